//! Kept models through the real binaries: a coordinator and a worker process train a sweep
//! that keeps its models; `ltsweep model` writes one as safetensors, which PyTorch's
//! `safetensors` package opens and which gives ltsweep's logits on a fixed batch.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ltsweep_worker::cifar_resnet::{HeadKind, ResNet};
use tch::{Device, Kind, Tensor, nn};

use crate::cluster_support::TestCluster;
use crate::harness::register;
use crate::support::{repo, stderr, stdout, write};

/// Two jobs whose models are kept.
const SPEC: &str = r#"
name = "kept"
seeds = [0, 1]
keep_models = true
[dataset]
kind = "synthetic"
classes = 4
train_per_class = 40
test_per_class = 10
image_size = 8
noise = 2.0
imbalance_ratio = 5
head_min_count = 20
[model]
depth = 8
[train]
epochs = 2
batch_size = 16
lr = 0.05
warmup_epochs = 0
lr_decay_epochs = [1]
[losses]
plans = [{}]
"#;

/// The project's Python with PyTorch and `safetensors` (`./dev setup` installs both).
fn python_with_safetensors(test: &str) -> PathBuf {
    let python = repo().join(".venv/bin/python");
    // Found, not imported: importing torch takes seconds, and the comparison's script pays
    // for that once already.
    let found = std::process::Command::new(&python)
        .args([
            "-c",
            "import importlib.util, sys\n\
             missing = [m for m in ('safetensors', 'torch') if importlib.util.find_spec(m) is None]\n\
             sys.exit(', '.join(missing) + ' missing' if missing else 0)",
        ])
        .output();
    match found {
        Ok(output) if output.status.success() => python,
        Ok(output) => panic!(
            "{test}: {} lacks safetensors or torch (./dev setup installs them): {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => panic!("{test}: {}: {e}; run ./dev setup", python.display()),
    }
}

/// ltsweep's logits of the model in `bytes` on `batch`.
fn ltsweep_logits(bytes: &[u8], batch: &Tensor) -> Tensor {
    let (tensors, _) = ltsweep_worker::model_file::decode(bytes).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = ResNet::with_head(&vs.root(), 8, 3, 4, HeadKind::Linear);
    let saved: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    tch::no_grad(|| {
        for (name, mut variable) in vs.variables() {
            variable.copy_(&saved[&name]);
        }
    });
    tch::no_grad(|| net.forward_t(batch, false).0)
}

/// A CIFAR ResNet in PyTorch with torchvision's names (conv1, bn1, layer1..3, fc): the model
/// file is loaded into it and its logits on the batch printed as JSON.
const PYTORCH: &str = r#"
import json, sys
import torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file

class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = (c_out - c_in) // 2 if (stride != 1 or c_in != c_out) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)

class ResNet(nn.Module):
    def __init__(self, depth, channels, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        c_in = 16
        for stage, c_out in enumerate([16, 32, 64]):
            blocks = [Block(c_in if i == 0 else c_out, c_out, 2 if i == 0 and stage > 0 else 1)
                      for i in range(n)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            c_in = c_out
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))

model_path, batch_path = sys.argv[1], sys.argv[2]
state = load_file(model_path)
net = ResNet(8, 3, 4)
missing, unexpected = net.load_state_dict(state, strict=False)
assert not unexpected, unexpected
assert all(k.endswith("num_batches_tracked") for k in missing), missing
net.eval()
with open(batch_path) as f:
    batch = torch.tensor(json.load(f), dtype=torch.float32).view(5, 3, 8, 8)
with torch.no_grad():
    print(json.dumps(net(batch).flatten().tolist()))
"#;

fn check_in_pytorch(python: &Path, model: &Path, dir: &Path) {
    let bytes = std::fs::read(model).unwrap();
    tch::manual_seed(11);
    let batch = Tensor::randn([5, 3, 8, 8], (Kind::Float, Device::Cpu));
    let values = Vec::<f32>::try_from(batch.flatten(0, -1)).unwrap();
    let batch_file = write(dir, "batch.json", &serde_json::to_string(&values).unwrap());
    let output = std::process::Command::new(python)
        .args(["-c", PYTORCH])
        .arg(model)
        .arg(&batch_file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let theirs: Vec<f32> = serde_json::from_slice(&output.stdout).unwrap();
    let ours = Vec::<f32>::try_from(ltsweep_logits(&bytes, &batch).flatten(0, -1)).unwrap();
    assert_eq!(theirs.len(), ours.len());
    let scale = ours.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale.max(1.0),
            "logit {i}: ltsweep {a}, PyTorch {b}"
        );
    }
}

register!(a_model_written_by_ltsweep_model_gives_its_logits_in_pytorch);
fn a_model_written_by_ltsweep_model_gives_its_logits_in_pytorch() {
    let test = "kept_model::a_model_written_by_ltsweep_model_gives_its_logits_in_pytorch";
    let cluster = TestCluster::start(1);
    let spec = cluster.write_spec(SPEC);
    let sweep = cluster.submit(&spec);
    let status = cluster.wait_for_state(
        &sweep,
        "both jobs to succeed",
        Duration::from_secs(120),
        |s| s["succeeded"] == 2 || s["failed"].as_u64() > Some(0),
    );
    assert_eq!(status["succeeded"], 2, "{status:#}");
    let job = status["jobs"][0]["id"].as_str().unwrap().to_owned();
    let model = cluster.dir.path().join("model.safetensors");
    let output = cluster.cli(&["model", &sweep, &job, "--out", model.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("wrote the model"),
        "{}",
        stdout(&output)
    );
    let missing = cluster.cli(&["model", &sweep, "nosuchjob", "--out", "unused.safetensors"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("nosuchjob"),
        "{}",
        stderr(&missing)
    );
    let python = python_with_safetensors(test);
    check_in_pytorch(&python, &model, cluster.dir.path());
}
