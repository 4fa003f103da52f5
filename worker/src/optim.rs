//! Momentum SGD with weight decay for the network, plain SGD for the PC centres.
//!
//! Written here rather than taken from libtorch's optimiser because exact resume needs the
//! momentum buffers in the checkpoint, and libtorch's optimiser state is not reachable from tch.
//! The update is PyTorch's `torch.optim.SGD` (dampening 0, no Nesterov):
//! `d = g + wd * p; buf = momentum * buf + d; p -= lr * buf`. A zero-initialised buffer gives
//! the same first step as PyTorch's `buf = d`.
//!
//! Weight decay applies to every parameter, or, where a recipe leaves BatchNorm and biases out
//! (`decay_norm_and_bias = false`), to the parameters of more than one dimension only: the
//! convolution and classifier weights. That is the rule timm and the ImageNet recipes after
//! Goyal et al. (2017) apply, PyTorch's two parameter groups `weight_decay=wd` and
//! `weight_decay=0`; it needs no names, so a torchvision ResNet's `downsample.1.*` BatchNorm is
//! left out like every other.

use std::collections::HashMap;

use tch::{Tensor, nn};

/// A store's trainable parameters, sorted by name.
///
/// [`Sgd`]'s flat buffer lays the parameters out in the order it is given and a checkpoint's
/// momentum is matched back to them by name, so every trainer hands them over in this one
/// order: a resumed or fused run then finds each parameter where the run before left it.
pub fn trainable_in_name_order(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut params: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
}

/// Momentum SGD over every parameter at once.
///
/// The parameters are moved into one contiguous buffer (each stays a view of its part of it),
/// and gradients come from `run_backward`, which returns them instead of accumulating into
/// `.grad`: a step is then a handful of tensor operations on the whole buffer, not several per
/// parameter tensor, which matters most on a GPU, where each is a kernel launch.
pub struct Sgd {
    names: Vec<String>,
    params: Vec<Tensor>,
    flat: Tensor,
    buffer: Tensor,
    momentum: f64,
    weight_decay: f64,
    /// The decayed parameters are the buffer's first `decayed` elements.
    decayed: i64,
    /// Each element's factor of the learning rate, where some parameter has one other than 1
    /// (a parameter group of its own rate, as MiSLAS's classifier).
    lr_scale: Option<Tensor>,
}

impl Sgd {
    /// `decay_norm_and_bias = false` leaves the parameters of one dimension out of the decay.
    pub fn new(
        mut params: Vec<(String, Tensor)>,
        momentum: f64,
        weight_decay: f64,
        decay_norm_and_bias: bool,
    ) -> Self {
        if !decay_norm_and_bias {
            // A stable sort: the decayed parameters first, each group in the order given.
            params.sort_by_key(|(_, p)| p.dim() <= 1);
        }
        let decayed = params
            .iter()
            .filter(|(_, p)| decay_norm_and_bias || p.dim() > 1)
            .map(|(_, p)| p.numel() as i64)
            .sum();
        let flat = tch::no_grad(|| {
            let parts: Vec<Tensor> = params
                .iter()
                .map(|(_, p)| p.detach().reshape([-1]))
                .collect();
            Tensor::cat(&parts, 0)
        });
        let mut offset = 0;
        for (_, p) in &mut params {
            let len = p.numel() as i64;
            let view = flat.narrow(0, offset, len).view(p.size().as_slice());
            // Every handle to the parameter (the model's, the VarStore's) sees the new storage.
            p.set_data(&view);
            offset += len;
        }
        let (names, params) = params.into_iter().unzip();
        Self {
            names,
            params,
            buffer: flat.zeros_like(),
            flat,
            momentum,
            weight_decay,
            decayed,
            lr_scale: None,
        }
    }

    /// Trains the parameter `name` at `factor` times the learning rate of each step: PyTorch's
    /// parameter group with a learning rate of its own (the momentum and decay are the same).
    /// A name not among the parameters changes nothing.
    pub fn scale_lr(&mut self, name: &str, factor: f64) {
        let mut offset = 0;
        for (n, p) in self.names.iter().zip(&self.params) {
            let len = p.numel() as i64;
            if n == name {
                let scale = self.lr_scale.get_or_insert_with(|| self.flat.ones_like());
                let _ = scale.narrow(0, offset, len).fill_(factor);
            }
            offset += len;
        }
    }

    /// Back-propagates `loss` and updates the parameters with learning rate `lr`; returns the
    /// gradient of `extra` (a leaf outside the network, such as the PC centres), if given.
    pub fn backward_step(
        &mut self,
        loss: &Tensor,
        lr: f64,
        extra: Option<&Tensor>,
    ) -> Option<Tensor> {
        let extras: Vec<&Tensor> = extra.into_iter().collect();
        self.backward_step_with(loss, lr, &extras).pop()
    }

    /// [`Sgd::backward_step`] with any number of leaves outside the network (a fused array's
    /// PC centres, one tensor per member); returns their gradients in order.
    pub fn backward_step_with(
        &mut self,
        loss: &Tensor,
        lr: f64,
        extras: &[&Tensor],
    ) -> Vec<Tensor> {
        let mut inputs: Vec<&Tensor> = self.params.iter().collect();
        inputs.extend(extras);
        let mut grads = Tensor::run_backward(&[loss], &inputs, false, false);
        let extra_grads = grads.split_off(self.params.len());
        tch::no_grad(|| {
            let flat_grad = Tensor::cat(
                &grads.iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(),
                0,
            );
            let every = self.decayed == self.flat.numel() as i64;
            let d = if self.weight_decay == 0.0 || self.decayed == 0 {
                flat_grad
            } else if every {
                flat_grad + &self.flat * self.weight_decay
            } else {
                let decay = self.flat.narrow(0, 0, self.decayed) * self.weight_decay;
                let _ = flat_grad.narrow(0, 0, self.decayed).g_add_(&decay);
                flat_grad
            };
            let _ = self.buffer.g_mul_scalar_(self.momentum);
            let _ = self.buffer.g_add_(&d);
            let step = match &self.lr_scale {
                Some(scale) => &self.buffer * scale * lr,
                None => &self.buffer * lr,
            };
            let _ = self.flat.g_sub_(&step);
        });
        extra_grads
    }

    /// The momentum buffers, named after their parameters, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut offset = 0;
        self.names
            .iter()
            .zip(&self.params)
            .map(|(name, p)| {
                let len = p.numel() as i64;
                let part = self.buffer.narrow(0, offset, len).view(p.size().as_slice());
                offset += len;
                (name.clone(), part)
            })
            .collect()
    }

    /// Restores the buffers from [`Sgd::state`]'s tensors; every parameter must have one.
    pub fn load_state(&mut self, mut named: HashMap<String, Tensor>) -> Result<(), MomentumError> {
        for (name, mut part) in self.state() {
            let Some(saved) = named.remove(&name) else {
                return Err(MomentumError::Missing { name });
            };
            if let Err(source) = tch::no_grad(|| part.f_copy_(&saved)) {
                return Err(MomentumError::Mismatch { name, source });
            }
        }
        Ok(())
    }
}

/// Momentum buffers ([`Sgd::load_state`]) that do not match the parameters.
#[derive(Debug, thiserror::Error)]
pub enum MomentumError {
    #[error("no momentum for {name}")]
    Missing { name: String },
    /// Another shape or kind than its parameter's.
    #[error("the momentum for {name} does not fit it: {source}")]
    Mismatch {
        name: String,
        #[source]
        source: tch::TchError,
    },
}

/// One plain SGD step of the PC centres with their gradient rescaled by `1/pc_weight`, as the
/// PC reference code does, so that the centres move at `center_lr` whatever the loss weight.
pub fn step_centers(centers: &mut Tensor, grad: &Tensor, center_lr: f64, pc_weight: f64) {
    tch::no_grad(|| {
        let _ = centers.g_sub_(&(grad * (center_lr / pc_weight)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn a_parameter_of_its_own_rate_steps_as_pytorchs_parameter_group() {
        // Two parameter groups of PyTorch's SGD (momentum 0.9, wd 0.1), `a` at 0.2 * lr and
        // `b` at lr = 0.5, both with loss 2a + 2b, by hand:
        // step 1: d = 2 + 0.1 = 2.1 for both; a = 1 - 0.2 * 0.5 * 2.1 = 0.79, b = 1 - 1.05
        // step 2: d_a = 2 + 0.079 = 2.079, buf_a = 1.89 + 2.079 = 3.969, a = 0.79 - 0.1 * 3.969
        let a = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let b = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let mut sgd = Sgd::new(
            vec![
                ("a".into(), a.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            0.9,
            0.1,
            true,
        );
        sgd.scale_lr("a", 0.2);
        sgd.scale_lr("not a parameter", 7.0);
        for _ in 0..2 {
            let loss = (&a * 2.0 + &b * 2.0).sum(Kind::Double);
            sgd.backward_step(&loss, 0.5, None);
        }
        let (a, b) = (a.double_value(&[0]), b.double_value(&[0]));
        assert!((a - (0.79 - 0.1 * 3.969)).abs() < 1e-12, "{a}");
        // b: step 2 d = 2 - 0.005 = 1.995, buf = 1.89 + 1.995 = 3.885, b = -0.05 - 1.9425.
        assert!((b - (-0.05 - 1.9425)).abs() < 1e-12, "{b}");
    }

    #[test]
    fn matches_pytorch_sgd_by_hand() {
        // p = 1, g = 2 (from loss 2p), wd = 0.1, momentum 0.9, lr 0.5:
        // step 1: d = 2 + 0.1 = 2.1, buf = 2.1, p = 1 - 1.05 = -0.05
        // step 2: g = 2, d = 2 - 0.005 = 1.995, buf = 0.9*2.1 + 1.995 = 3.885, p = -0.05 - 1.9425
        let p = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let q = Tensor::from_slice(&[3.0f64, 4.0]).set_requires_grad(true);
        let mut sgd = Sgd::new(
            vec![
                ("p".into(), p.shallow_clone()),
                ("q".into(), q.shallow_clone()),
            ],
            0.9,
            0.1,
            true,
        );
        for _ in 0..2 {
            let loss = (&p * 2.0).sum(Kind::Double) + (&q * 0.0).sum(Kind::Double);
            sgd.backward_step(&loss, 0.5, None);
        }
        // The caller's handles see the updates made in the shared buffer.
        assert!((p.double_value(&[0]) - (-1.9925)).abs() < 1e-12);
        let state = sgd.state();
        assert_eq!(state[1].0, "q");
        assert_eq!(state[1].1.size(), [2]);
        assert!((state[0].1.double_value(&[0]) - 3.885).abs() < 1e-12);
    }

    #[test]
    fn batch_norm_and_biases_can_be_left_out_of_the_decay() {
        // A weight [2, 2], a bias and a BatchNorm scale [2], no gradient: one step moves each
        // decayed element by lr * wd * p and leaves the others as they were.
        for decay_all in [true, false] {
            let weight = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0])
                .view([2, 2])
                .set_requires_grad(true);
            let bias = Tensor::from_slice(&[5.0f64, 6.0]).set_requires_grad(true);
            let scale = Tensor::from_slice(&[1.0f64, 1.0]).set_requires_grad(true);
            let params = vec![
                ("bn.weight".to_owned(), scale.shallow_clone()),
                ("fc.bias".to_owned(), bias.shallow_clone()),
                ("fc.weight".to_owned(), weight.shallow_clone()),
            ];
            let mut sgd = Sgd::new(params, 0.9, 0.1, decay_all);
            let zero = (&weight * 0.0).sum(Kind::Double)
                + (&bias * 0.0).sum(Kind::Double)
                + (&scale * 0.0).sum(Kind::Double);
            sgd.backward_step(&zero, 0.5, None);
            let values = |t: &Tensor| {
                Vec::<f64>::try_from(t.flatten(0, -1))
                    .unwrap()
                    .iter()
                    .map(|v| (v * 1e9).round() / 1e9)
                    .collect::<Vec<f64>>()
            };
            assert_eq!(values(&weight), [0.95, 1.9, 2.85, 3.8]);
            let (b, s) = if decay_all {
                (vec![4.75, 5.7], vec![0.95, 0.95])
            } else {
                (vec![5.0, 6.0], vec![1.0, 1.0])
            };
            assert_eq!(values(&bias), b, "decay_all={decay_all}");
            assert_eq!(values(&scale), s, "decay_all={decay_all}");
            // The momentum buffers keep their names whatever the order in the buffer.
            let state: std::collections::HashMap<String, Tensor> =
                sgd.state().into_iter().collect();
            assert_eq!(values(&state["fc.weight"]), [0.1, 0.2, 0.3, 0.4]);
            assert_eq!(state["fc.bias"].size(), [2]);
        }
    }

    #[test]
    fn a_missing_or_misshapen_momentum_is_named_and_keeps_its_cause() {
        let p = Tensor::from_slice(&[1.0f64, 2.0]).set_requires_grad(true);
        let mut sgd = Sgd::new(vec![("fc.bias".into(), p)], 0.9, 0.0, true);
        let missing = sgd.load_state(HashMap::new()).unwrap_err();
        assert!(
            matches!(&missing, MomentumError::Missing { name } if name == "fc.bias"),
            "{missing}"
        );
        let wrong = HashMap::from([(
            "fc.bias".to_owned(),
            Tensor::zeros([3], tch::kind::FLOAT_CPU),
        )]);
        let mismatch = sgd.load_state(wrong).unwrap_err();
        assert!(
            matches!(&mismatch, MomentumError::Mismatch { name, .. } if name == "fc.bias"),
            "{mismatch}"
        );
        assert!(std::error::Error::source(&mismatch).is_some(), "{mismatch}");
    }

    #[test]
    fn trainable_parameters_come_in_name_order_without_frozen_ones() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let _ = root.var("zeta", &[1], nn::Init::Const(0.0));
        let _ = root.var("alpha", &[1], nn::Init::Const(0.0));
        let _ = root.zeros_no_train("frozen", &[1]);
        let _ = (&root / "mid").var("weight", &[1], nn::Init::Const(0.0));
        let names: Vec<String> = trainable_in_name_order(&vs)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["alpha", "mid.weight", "zeta"]);
    }
}
