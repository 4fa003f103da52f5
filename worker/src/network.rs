//! The network a job trains: the CIFAR ResNet of `model.depth` ([`crate::cifar_resnet`]), or one of
//! torchvision's ImageNet ResNets named by `model.arch` ([`crate::imagenet`]), each with the
//! classifier its base loss needs (the cosine one for LDAM-DRW).

use ltsweep_domain::{Arch, JobSpec};
use tch::Tensor;
use tch::nn::{self, ModuleT};

use crate::cifar_resnet::{FEATURES, Head, HeadKind, ResNet};
use crate::imagenet::{Compute, ImageNetResNet};

#[derive(Debug)]
pub enum Network {
    Cifar(ResNet),
    ImageNet(ImageNetResNet),
}

impl Network {
    /// The job's network, its variables under `p`, drawn from libtorch's generator as it stands.
    pub fn new(p: &nn::Path, job: &JobSpec, in_channels: i64, classes: i64) -> Self {
        let head = HeadKind::of(&job.losses.base);
        match job.model.arch {
            Arch::Cifar => Network::Cifar(ResNet::with_head(
                p,
                job.model.depth,
                in_channels,
                classes,
                head,
            )),
            arch => Network::ImageNet(ImageNetResNet::new(
                p,
                arch,
                in_channels,
                classes,
                head,
                Compute {
                    precision: job.train.precision,
                    channels_last: job.train.channels_last,
                },
            )),
        }
    }

    /// Logits `[N, classes]` and pooled features `[N, features]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        match self {
            Network::Cifar(net) => net.forward_t(x, train),
            Network::ImageNet(net) => net.forward_t(x, train),
        }
    }

    /// The pooled features `[N, features]` alone: the backbone without its classifier.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Network::Cifar(net) => net.features_t(x, train),
            Network::ImageNet(net) => net.features_t(x, train),
        }
    }

    /// The classifier on the pooled features.
    pub(crate) fn head(&self) -> &Head {
        match self {
            Network::Cifar(net) => &net.head,
            Network::ImageNet(net) => net.head(),
        }
    }

    /// Width of the pooled features (the PC centres' width).
    pub fn features(&self) -> i64 {
        match self {
            Network::Cifar(_) => FEATURES,
            Network::ImageNet(net) => net.features(),
        }
    }
}

impl ModuleT for Network {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        Network::forward_t(self, x, train).0
    }
}
