//! The ImageNet ResNets against torchvision itself, pretrained weights written by PyTorch, and a
//! small ResNet-10 job of the ImageNet recipe (cosine schedule, linear scaling, no decay on
//! BatchNorm and biases, bf16, channels-last, initial weights from a file) trained, stopped,
//! resumed and compared with the run that was not interrupted.
//!
//! The torchvision side is `tests/data/imagenet/torchvision_reference.py`, run with the
//! repository's `.venv` (`./dev setup` installs torch, torchvision and safetensors there).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ltsweep_data::{DataRoot, longtail};
use ltsweep_domain::{Arch, JobResult, SweepSpec};
use ltsweep_worker::cifar_resnet::HeadKind;
use ltsweep_worker::imagenet::{Compute, ImageNetResNet};
use ltsweep_worker::pretrained;
use ltsweep_worker::train::{Observer, Outcome, Quiet, TrainError, Trainer, with_seed};
use tch::{Device, Kind, Tensor, nn};

use crate::register;
use crate::support::without_timing;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the reference script with the venv's Python; its stdout.
fn torchvision(args: &[&str]) -> String {
    let python = repo().join(".venv/bin/python");
    let script = repo().join("worker/tests/data/imagenet/torchvision_reference.py");
    let output = Command::new(&python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (./dev setup makes it): {e}",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "{} {args:?} failed (./dev setup installs torch, torchvision and safetensors): {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

register!(every_architecture_has_torchvisions_parameter_count);
fn every_architecture_has_torchvisions_parameter_count() {
    let counts: HashMap<String, i64> = serde_json::from_str(&torchvision(&["counts"])).unwrap();
    assert_eq!(counts.len(), Arch::ALL.len() - 1);
    for arch in Arch::ALL.into_iter().filter(|a| !a.is_cifar()) {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = with_seed(0, || {
            ImageNetResNet::new(&vs.root(), arch, 3, 1000, HeadKind::Linear, Compute::FP32)
        });
        let ours: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(ours, counts[arch.as_str()], "{arch}");
    }
}

register!(a_torchvision_resnet50_saved_by_pytorch_gives_pytorchs_logits);
fn a_torchvision_resnet50_saved_by_pytorch_gives_pytorchs_logits() {
    let dir = tempfile::tempdir().unwrap();
    torchvision(&["resnet50", dir.path().to_str().unwrap()]);
    let batch: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.path().join("batch.safetensors"))
            .unwrap()
            .into_iter()
            .collect();

    let vs = nn::VarStore::new(Device::Cpu);
    let net = with_seed(0, || {
        ImageNetResNet::new(
            &vs.root(),
            Arch::Resnet50,
            3,
            1000,
            HeadKind::Linear,
            Compute::FP32,
        )
    });
    let loaded =
        pretrained::load(&vs, &DataRoot::new(dir.path()), "resnet50.safetensors", &[]).unwrap();
    // 161 tensors: every variable (BatchNorm statistics included); the file's 53
    // num_batches_tracked counters are not variables.
    assert_eq!(loaded.loaded, vs.variables().len());
    let logits = tch::no_grad(|| net.forward_t(&batch["input"], false).0);
    let expected = &batch["logits"];
    // Float32 on both sides, the same libtorch: agreement to 1e-4 of the largest logit.
    let scale = expected.abs().max().double_value(&[]);
    let error = (&logits - expected).abs().max().double_value(&[]);
    assert!(scale > 0.1, "the reference logits are degenerate: {scale}");
    assert!(
        error <= 1e-4 * scale,
        "largest difference {error} against logits up to {scale}"
    );

    // The same file for 10 classes: the classifier is refused by name, or skipped when asked.
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = with_seed(0, || {
        ImageNetResNet::new(
            &vs.root(),
            Arch::Resnet50,
            3,
            10,
            HeadKind::Linear,
            Compute::FP32,
        )
    });
    let err = pretrained::load(&vs, &DataRoot::new(dir.path()), "resnet50.safetensors", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor `fc.bias` has shape [1000], the model's has [10]"),
        "{err}"
    );
    let loaded = pretrained::load(
        &vs,
        &DataRoot::new(dir.path()),
        "resnet50.safetensors",
        &["fc".to_owned()],
    )
    .unwrap();
    assert_eq!(loaded.skipped, ["fc.bias", "fc.weight"]);
    // And a ResNet-101 is not a ResNet-50.
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = with_seed(0, || {
        ImageNetResNet::new(
            &vs.root(),
            Arch::Resnet101,
            3,
            1000,
            HeadKind::Linear,
            Compute::FP32,
        )
    });
    let err = pretrained::load(&vs, &DataRoot::new(dir.path()), "resnet50.safetensors", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not in the file"), "{err}");
}

/// A ResNet-10 job of the ImageNet recipe on small synthetic images.
fn resnet10_job(extra_model: &str) -> SweepSpec {
    SweepSpec::parse(&format!(
        r#"
name = "resnet10"
seeds = [3]
[dataset]
kind = "synthetic"
classes = 4
train_per_class = 40
test_per_class = 10
image_size = 16
imbalance_ratio = 4
head_fraction = 0.5
[model]
arch = "resnet10"
{extra_model}
[train]
epochs = 3
batch_size = 32
lr = 0.05
lr_reference_batch = 64
lr_schedule = "cosine"
warmup_epochs = 1
weight_decay = 5e-4
decay_norm_and_bias = false
checkpoint_every = 1
[losses]
plans = [{{ pc = "head" }}]
"#
    ))
    .expect("a valid spec")
}

#[derive(Default)]
struct Keep(Vec<(u32, Vec<u8>)>);

impl Observer for Keep {
    fn checkpoint(&mut self, epoch: u32, bytes: Vec<u8>) -> Result<(), TrainError> {
        self.0.push((epoch, bytes));
        Ok(())
    }
}

fn finish(outcome: Outcome) -> JobResult {
    match outcome {
        Outcome::Finished(result) => *result,
        other => panic!("the run did not finish: {other:?}"),
    }
}

register!(a_resnet10_job_from_pretrained_weights_trains_and_resumes_exactly);
fn a_resnet10_job_from_pretrained_weights_trains_and_resumes_exactly() {
    // One libtorch thread: tests run side by side, and OpenMP's threads spinning against each
    // other on a loaded machine cost this test twenty times its own work.
    tch::set_num_threads(1);
    let root = tempfile::tempdir().unwrap();
    // "Pretrained" weights: another seed's ResNet-10 with ImageNet's 1,000 classes.
    let source = nn::VarStore::new(Device::Cpu);
    let _net = with_seed(99, || {
        ImageNetResNet::new(
            &source.root(),
            Arch::Resnet10,
            3,
            1000,
            HeadKind::Linear,
            Compute::FP32,
        )
    });
    let tensors: Vec<(String, Tensor)> = source.variables().into_iter().collect();
    Tensor::write_safetensors(&tensors, root.path().join("r10.safetensors")).unwrap();

    let spec = resnet10_job("init = \"r10.safetensors\"\ninit_skip = [\"fc\"]");
    let job = &spec.jobs()[0];
    assert_eq!(job.train.precision, ltsweep_domain::Precision::Bf16);
    assert!(job.train.channels_last);
    let data = longtail::prepare(&job.dataset, root.path()).unwrap();
    let result = finish(
        Trainer::start(job, &data, Device::Cpu, root.path())
            .unwrap()
            .run(&mut Quiet, None)
            .unwrap(),
    );
    // The cosine schedule after a one-epoch warm-up, at half the rate given: batch 32 against
    // the reference batch of 64.
    let rates: Vec<f64> = result.epochs.iter().map(|e| e.lr).collect();
    assert_eq!(rates, [0.025, 0.025, 0.0125]);
    assert!(
        result
            .epochs
            .iter()
            .all(|e| e.loss_base.is_finite() && e.loss_pc > 0.0)
    );

    let mut keep = Keep::default();
    let mut first = Trainer::start(job, &data, Device::Cpu, root.path()).unwrap();
    assert!(matches!(
        first.run(&mut keep, Some(1)).unwrap(),
        Outcome::Stopped { epoch: 1 }
    ));
    let (epoch, bytes) = keep.0.pop().expect("a checkpoint at the stop");
    assert_eq!(epoch, 1);
    let mut second = Trainer::new(job, &data, Device::Cpu);
    second.resume(&bytes).unwrap();
    let resumed = finish(second.run(&mut Quiet, None).unwrap());
    assert_eq!(without_timing(resumed), without_timing(result));
}

register!(initial_weights_come_from_the_file_except_what_is_skipped);
fn initial_weights_come_from_the_file_except_what_is_skipped() {
    tch::set_num_threads(1);
    let root = tempfile::tempdir().unwrap();
    let source = nn::VarStore::new(Device::Cpu);
    let _net = with_seed(99, || {
        ImageNetResNet::new(
            &source.root(),
            Arch::Resnet10,
            3,
            4,
            HeadKind::Linear,
            Compute::FP32,
        )
    });
    let tensors: Vec<(String, Tensor)> = source.variables().into_iter().collect();
    Tensor::write_safetensors(&tensors, root.path().join("r10.safetensors")).unwrap();
    let file = source.variables();

    let spec = resnet10_job("init = \"r10.safetensors\"\ninit_skip = [\"fc\", \"layer4.0.bn2\"]");
    let job = &spec.jobs()[0];
    let data = longtail::prepare(&job.dataset, root.path()).unwrap();
    let fresh = Trainer::new(job, &data, Device::Cpu);
    let started = Trainer::start(job, &data, Device::Cpu, root.path()).unwrap();
    // The trainers' variables, read through their checkpoints.
    let ours = checkpoint_variables(&started.checkpoint().unwrap());
    let own_draw = checkpoint_variables(&fresh.checkpoint().unwrap());
    for (name, tensor) in &file {
        let skipped = name.starts_with("fc.") || name.starts_with("layer4.0.bn2.");
        let expected = if skipped { &own_draw[name] } else { tensor };
        assert!(ours[name].equal(expected), "{name} (skipped: {skipped})");
    }

    // A missing file: the error names it, and the job cannot start.
    let spec = resnet10_job("init = \"none/r10.safetensors\"");
    let job = &spec.jobs()[0];
    let Err(err) = Trainer::start(job, &data, Device::Cpu, root.path()) else {
        panic!("a job whose weights file is missing started");
    };
    assert!(matches!(err, TrainError::Init(_)));
    assert!(
        err.to_string()
            .contains("none/r10.safetensors: not found (model.init is read relative to the worker's --data-root)"),
        "{err}"
    );
}

/// The model variables of a checkpoint, by name.
fn checkpoint_variables(bytes: &[u8]) -> HashMap<String, Tensor> {
    let (_, tensors) = ltsweep_worker::checkpoint_file::decode(bytes, Device::Cpu).unwrap();
    tensors
        .into_iter()
        .filter_map(|(name, t)| {
            name.strip_prefix("model/")
                .map(|n| (n.to_owned(), t.to_kind(Kind::Float)))
        })
        .collect()
}

register!(an_imagenet_network_never_enters_a_fused_array);
fn an_imagenet_network_never_enters_a_fused_array() {
    tch::set_num_threads(1);
    let spec = resnet10_job("").jobs()[0].clone();
    let mut other = spec.clone();
    other.seed = 4;
    other.id = ltsweep_domain::JobId("other".to_owned());
    let data = longtail::prepare(&spec.dataset, Path::new("")).unwrap();
    let members = vec![
        Trainer::new(&spec, &data, Device::Cpu),
        Trainer::new(&other, &data, Device::Cpu),
    ];
    let Err(err) = ltsweep_worker::fused::FusedTrainer::new(members) else {
        panic!("two ResNet-10 jobs were fused");
    };
    assert!(
        err.to_string()
            .ends_with("trains a resnet10: fused arrays hold CIFAR ResNets only"),
        "{err}"
    );
}
