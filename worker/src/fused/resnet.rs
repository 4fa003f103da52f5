//! N CIFAR ResNets of the same shape as one model (horizontal fusion, as HFTA: Wang et al.,
//! MLSys 2021), so that one kernel launch does the work of N.
//!
//! The input is `[B, N*C, H, W]`: member i's batch is channels `i*C..(i+1)*C`. Every convolution
//! is grouped with N groups, so member i's convolution is group i and sees only its own
//! channels; a BatchNorm over N*C channels normalises each channel on its own, so it is exactly
//! N per-member BatchNorms (statistics, running averages, scale and shift); option-A shortcuts
//! pad each member's channels; the classifier is a batched matmul giving logits `[N, B, K]`.
//! Nothing mixes two members, so the gradient of the sum of the members' losses with respect to
//! member i's slice is member i's own gradient.
//!
//! Every variable has the name of the member [`ResNet`](crate::cifar_resnet::ResNet)'s variable and is
//! the members' tensors concatenated along dimension 0 (a convolution's output channels, a
//! BatchNorm's channels, the linear classifier's rows `[N*K, 64]` and bias `[N*K]`, the cosine
//! classifier's `[N*64, K]`), which makes the conversion both ways a concatenation and a slice:
//! [`FusedResNet::load_members`] and [`FusedResNet::member_variables`].

use tch::Tensor;
use tch::nn::{self, ModuleT};

use crate::cifar_resnet::{FEATURES, HeadKind, unit};

/// Fused variables start at zero: they are always overwritten by the members' values, and
/// drawing them would move libtorch's global generator under a job initialising on another
/// thread.
const ZERO: nn::Init = nn::Init::Const(0.0);

fn batch_norm(p: nn::Path, channels: i64) -> nn::BatchNorm {
    // Momentum and eps as `crate::cifar_resnet`'s.
    let config = nn::BatchNormConfig {
        ws_init: ZERO,
        bs_init: ZERO,
        momentum: 0.1,
        eps: 1e-5,
        ..Default::default()
    };
    nn::batch_norm2d(p, channels, config)
}

/// N 3x3 convolutions `c_in -> c_out` as one grouped convolution.
fn conv3x3(p: nn::Path, n: i64, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    let config = nn::ConvConfig {
        stride,
        padding: 1,
        bias: false,
        groups: n,
        ws_init: ZERO,
        ..Default::default()
    };
    nn::conv2d(p, n * c_in, n * c_out, 3, config)
}

#[derive(Debug)]
struct FusedBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    shortcut_pad: Option<i64>,
}

impl FusedBlock {
    fn new(p: nn::Path, n: i64, c_in: i64, c_out: i64, stride: i64) -> Self {
        Self {
            conv1: conv3x3(&p / "conv1", n, c_in, c_out, stride),
            bn1: batch_norm(&p / "bn1", n * c_out),
            conv2: conv3x3(&p / "conv2", n, c_out, c_out, 1),
            bn2: batch_norm(&p / "bn2", n * c_out),
            shortcut_pad: (stride != 1 || c_in != c_out).then_some((c_out - c_in) / 2),
        }
    }

    fn forward_t(&self, x: &Tensor, n: i64, train: bool) -> Tensor {
        let out = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let out = out.apply(&self.conv2).apply_t(&self.bn2, train);
        let shortcut = match self.shortcut_pad {
            None => x.shallow_clone(),
            Some(pad) => {
                let sub = x.slice(2, 0, None, 2).slice(3, 0, None, 2);
                let [b, c, h, w] = sub.size()[..] else {
                    unreachable!("a 4-D activation")
                };
                // Each member's channels padded on their own.
                sub.reshape([b, n, c / n, h, w])
                    .constant_pad_nd([0, 0, 0, 0, pad, pad])
                    .reshape([b, c + 2 * pad * n, h, w])
            }
        };
        (out + shortcut).relu()
    }
}

#[derive(Debug)]
enum FusedHead {
    /// `[N*K, 64]` weights and `[N*K]` biases.
    Linear { weight: Tensor, bias: Tensor },
    /// `[N*64, K]`: member i's cosine classifier's columns are rows `64*i..64*(i+1)`; every
    /// member's scale is the same (the shape key requires it).
    Cosine { weight: Tensor, scale: f64 },
}

/// N ResNets of one depth, input channels, classes and head as one model.
#[derive(Debug)]
pub struct FusedResNet {
    n: i64,
    classes: i64,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    blocks: Vec<FusedBlock>,
    head: FusedHead,
}

impl FusedResNet {
    /// `members` ResNets as [`ResNet::with_head`](crate::cifar_resnet::ResNet::with_head) builds one;
    /// its variables are zero until [`FusedResNet::load_members`].
    pub fn new(
        p: &nn::Path,
        members: i64,
        depth: u32,
        in_channels: i64,
        classes: i64,
        head: HeadKind,
    ) -> Self {
        let n = members;
        let per_stage = (depth as usize - 2) / 6;
        let mut blocks = Vec::with_capacity(3 * per_stage);
        let mut c_in = 16;
        for (stage, c_out) in [16, 32, 64].into_iter().enumerate() {
            for i in 0..per_stage {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                blocks.push(FusedBlock::new(
                    p / format!("layer{}", stage + 1) / i,
                    n,
                    c_in,
                    c_out,
                    stride,
                ));
                c_in = c_out;
            }
        }
        let fc = p / "fc";
        let head = match head {
            HeadKind::Cosine { scale } => FusedHead::Cosine {
                weight: fc.var("weight", &[n * FEATURES, classes], ZERO),
                scale,
            },
            HeadKind::Linear => FusedHead::Linear {
                weight: fc.var("weight", &[n * classes, FEATURES], ZERO),
                bias: fc.var("bias", &[n * classes], ZERO),
            },
        };
        Self {
            n,
            classes,
            conv1: conv3x3(p / "conv1", n, in_channels, 16, 1),
            bn1: batch_norm(p / "bn1", n * 16),
            blocks,
            head,
        }
    }

    /// Members in the array.
    pub fn members(&self) -> i64 {
        self.n
    }

    /// Logits `[N, B, classes]` and pooled features `[N, B, 64]` of a batch `[B, N*C, H, W]`
    /// (member i's images are channels `i*C..(i+1)*C`, see [`stack_inputs`]).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let n = self.n;
        let mut out = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        for block in &self.blocks {
            out = block.forward_t(&out, n, train);
        }
        let b = out.size()[0];
        let features = out
            .adaptive_avg_pool2d([1, 1])
            .view([b, n, FEATURES])
            .transpose(0, 1);
        let k = self.classes;
        let logits = match &self.head {
            FusedHead::Linear { weight, bias } => bias.view([n, 1, k]).baddbmm(
                &features,
                &weight.view([n, k, FEATURES]).transpose(1, 2),
                1,
                1,
            ),
            FusedHead::Cosine { weight, scale } => {
                unit(&features, 2).bmm(&unit(&weight.view([n, FEATURES, k]), 1)) * *scale
            }
        };
        (logits, features)
    }

    /// Sets the fused variables from the members' (each a standard ResNet's `VarStore`
    /// variables, by name), in member order: fused = concatenation along dimension 0.
    pub fn load_members(
        fused: &nn::VarStore,
        members: &[Vec<(String, Tensor)>],
    ) -> Result<(), String> {
        let n = members.len() as i64;
        let mut by_name: Vec<std::collections::HashMap<&str, &Tensor>> = members
            .iter()
            .map(|vars| vars.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .collect();
        tch::no_grad(|| {
            for (name, mut variable) in fused.variables() {
                let parts = by_name
                    .iter_mut()
                    .enumerate()
                    .map(|(i, vars)| {
                        vars.remove(name.as_str())
                            .ok_or_else(|| format!("member {i} has no variable {name}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut expected = parts[0].size();
                expected[0] *= n;
                if parts.iter().any(|p| p.size() != parts[0].size()) || variable.size() != expected
                {
                    return Err(format!(
                        "{name}: members of shape {:?} do not make the fused shape {:?}",
                        parts[0].size(),
                        variable.size()
                    ));
                }
                variable
                    .f_copy_(&Tensor::cat(&parts, 0))
                    .map_err(|e| format!("{name}: {e}"))?;
            }
            match by_name
                .iter()
                .enumerate()
                .find(|(_, vars)| !vars.is_empty())
            {
                Some((i, vars)) => Err(format!(
                    "member {i} has variables the fused model lacks: {:?}",
                    vars.keys().collect::<Vec<_>>()
                )),
                None => Ok(()),
            }
        })
    }

    /// Member `i`'s slice of each named fused tensor (variables or momentum buffers): views
    /// that a standard ResNet's variables of the same names can be copied from.
    pub fn member_slices(
        fused: &[(String, Tensor)],
        members: i64,
        i: i64,
    ) -> Vec<(String, Tensor)> {
        fused
            .iter()
            .map(|(name, t)| {
                let len = t.size()[0] / members;
                (name.clone(), t.narrow(0, i * len, len))
            })
            .collect()
    }

    /// Member `i`'s variables, by name, as views of the fused ones.
    pub fn member_variables(fused: &nn::VarStore, members: i64, i: i64) -> Vec<(String, Tensor)> {
        let vars: Vec<(String, Tensor)> = fused.variables().into_iter().collect();
        Self::member_slices(&vars, members, i)
    }
}

impl ModuleT for FusedResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        FusedResNet::forward_t(self, x, train).0
    }
}

/// The fused input of the members' batches, each `[B, C, H, W]`: `[B, N*C, H, W]`.
pub fn stack_inputs(batches: &[Tensor]) -> Tensor {
    Tensor::cat(batches, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cifar_resnet::ResNet;
    use tch::{Device, Kind};

    fn members(n: usize, head: HeadKind) -> Vec<(nn::VarStore, ResNet)> {
        (0..n)
            .map(|i| {
                let vs = nn::VarStore::new(Device::Cpu);
                let net = crate::train::with_seed(i as i64, || {
                    ResNet::with_head(&vs.root(), 8, 3, 5, head)
                });
                (vs, net)
            })
            .collect()
    }

    fn close(a: &Tensor, b: &Tensor) -> bool {
        let scale = b.abs().max().double_value(&[]).max(1e-6);
        (a - b).abs().max().double_value(&[]) <= 1e-5 * scale
    }

    #[test]
    fn a_fused_array_computes_what_its_members_compute_and_converts_back_losslessly() {
        for head in [HeadKind::Linear, HeadKind::Cosine { scale: 30.0 }] {
            let members = members(3, head);
            let fused_vs = nn::VarStore::new(Device::Cpu);
            let fused = FusedResNet::new(&fused_vs.root(), 3, 8, 3, 5, head);
            let vars: Vec<Vec<(String, Tensor)>> = members
                .iter()
                .map(|(vs, _)| vs.variables().into_iter().collect())
                .collect();
            FusedResNet::load_members(&fused_vs, &vars).unwrap();
            let xs: Vec<Tensor> = (0..3)
                .map(|_| Tensor::randn([4, 3, 12, 12], (Kind::Float, Device::Cpu)))
                .collect();
            for train in [true, false] {
                let (logits, features) = fused.forward_t(&stack_inputs(&xs), train);
                assert_eq!(logits.size(), [3, 4, 5]);
                assert_eq!(features.size(), [3, 4, 64]);
                for (i, (_, net)) in members.iter().enumerate() {
                    let (l, f) = net.forward_t(&xs[i], train);
                    assert!(close(&logits.get(i as i64), &l), "{head:?} member {i}");
                    assert!(close(&features.get(i as i64), &f), "{head:?} member {i}");
                }
            }
            // Training mode moved the running statistics of each member alike.
            for (i, (vs, _)) in members.iter().enumerate() {
                let back = FusedResNet::member_variables(&fused_vs, 3, i as i64);
                let own = vs.variables();
                assert_eq!(back.len(), own.len());
                for (name, t) in back {
                    assert!(close(&t, &own[&name]), "{name}");
                }
            }
        }
    }

    #[test]
    fn members_of_another_shape_are_refused() {
        let members = members(2, HeadKind::Linear);
        let fused_vs = nn::VarStore::new(Device::Cpu);
        let _fused = FusedResNet::new(&fused_vs.root(), 2, 8, 3, 6, HeadKind::Linear);
        let vars: Vec<Vec<(String, Tensor)>> = members
            .iter()
            .map(|(vs, _)| vs.variables().into_iter().collect())
            .collect();
        let error = FusedResNet::load_members(&fused_vs, &vars).unwrap_err();
        assert!(error.contains("fc."), "{error}");
    }

    /// Gradients of `loss(logits, y)` summed over members, fused and member by member, in the
    /// given kind; each list holds every member's gradients, flattened, in variable-name order.
    fn gradients(
        kind: Kind,
        batch: i64,
        loss: &dyn Fn(&Tensor, &Tensor) -> Tensor,
    ) -> (Vec<Vec<Tensor>>, Vec<Vec<Tensor>>) {
        let mut members = members(3, HeadKind::Linear);
        let mut fused_vs = nn::VarStore::new(Device::Cpu);
        let fused = FusedResNet::new(&fused_vs.root(), 3, 8, 3, 5, HeadKind::Linear);
        let vars: Vec<Vec<(String, Tensor)>> = members
            .iter()
            .map(|(vs, _)| vs.variables().into_iter().collect())
            .collect();
        FusedResNet::load_members(&fused_vs, &vars).unwrap();
        if kind == Kind::Double {
            fused_vs.double();
            for (vs, _) in &mut members {
                vs.double();
            }
        }
        let (xs, ys): (Vec<Tensor>, Vec<Tensor>) = crate::train::with_seed(7, || {
            let xs = (0..3)
                .map(|_| {
                    Tensor::randn([batch, 3, 12, 12], (Kind::Float, Device::Cpu)).to_kind(kind)
                })
                .collect();
            let ys = (0..3)
                .map(|_| Tensor::randint(5, [batch], (Kind::Int64, Device::Cpu)))
                .collect();
            (xs, ys)
        });
        let names = |vs: &nn::VarStore| {
            let mut v: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let (logits, _) = fused.forward_t(&stack_inputs(&xs), true);
        let total = (0..3)
            .map(|i| loss(&logits.get(i), &ys[i as usize]))
            .reduce(|a, b| a + b)
            .unwrap();
        let fused_params = names(&fused_vs);
        let inputs: Vec<&Tensor> = fused_params.iter().map(|(_, t)| t).collect();
        let grads = Tensor::run_backward(&[total], &inputs, false, false);
        let named: Vec<(String, Tensor)> = fused_params
            .iter()
            .map(|(n, _)| n.clone())
            .zip(grads)
            .collect();
        let mut fused_grads = Vec::new();
        let mut alone_grads = Vec::new();
        for (i, (vs, net)) in members.iter().enumerate() {
            let slices = FusedResNet::member_slices(&named, 3, i as i64);
            fused_grads.push(slices.into_iter().map(|(_, g)| g).collect());
            let (l, _) = net.forward_t(&xs[i], true);
            let params = names(vs);
            let inputs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
            let grads = Tensor::run_backward(&[loss(&l, &ys[i])], &inputs, false, false);
            alone_grads.push(grads);
        }
        (fused_grads, alone_grads)
    }

    /// The largest difference over the tensors, relative to each tensor's largest value.
    fn relative(a: &[Tensor], truth: &[Tensor]) -> f64 {
        a.iter()
            .zip(truth)
            .map(|(a, t)| {
                let t = t.to_kind(Kind::Double);
                let a = a.to_kind(Kind::Double);
                (&a - &t).abs().max().double_value(&[]) / t.abs().max().double_value(&[])
            })
            .fold(0.0, f64::max)
    }

    /// The fused gradient is as close to the float64 gradient as the member's own float32
    /// gradient is: the two float32 gradients differ by rounding (grouped and plain
    /// convolutions sum in different orders), not by anything the fusion computes differently.
    #[test]
    fn fused_gradients_are_as_exact_as_the_members_own() {
        let ce = |l: &Tensor, y: &Tensor| crate::losses::cross_entropy(l, y);
        let comp = |l: &Tensor, y: &Tensor| {
            crate::losses::complement_entropy(l, y, &y.ones_like().to_kind(l.kind()))
        };
        for (name, loss) in [
            ("ce", &ce as &dyn Fn(&Tensor, &Tensor) -> Tensor),
            ("comp", &comp),
        ] {
            for batch in [32, 128] {
                let (fused32, alone32) = gradients(Kind::Float, batch, loss);
                let (fused64, alone64) = gradients(Kind::Double, batch, loss);
                for i in 0..3 {
                    let exact_fusion = relative(&fused64[i], &alone64[i]);
                    let fused_error = relative(&fused32[i], &alone64[i]);
                    let alone_error = relative(&alone32[i], &alone64[i]);
                    let between = relative(&fused32[i], &alone32[i]);
                    println!(
                        "{name} batch {batch} member {i}: float64 fused vs alone {exact_fusion:e}; float32 fused {fused_error:e}, alone {alone_error:e} from float64; fused vs alone in float32 {between:e}"
                    );
                    assert!(exact_fusion < 1e-10, "{name} member {i}");
                    assert!(
                        fused_error < 10.0 * alone_error.max(1e-7),
                        "{name} member {i}"
                    );
                }
            }
        }
    }
}
