//! Momentum SGD with weight decay for the network, plain SGD for the PC centres.
//!
//! Written here rather than taken from libtorch's optimiser because exact resume needs the
//! momentum buffers in the checkpoint, and libtorch's optimiser state is not reachable from tch.
//! The update is PyTorch's `torch.optim.SGD` (dampening 0, no Nesterov):
//! `d = g + wd * p; buf = momentum * buf + d; p -= lr * buf`. A zero-initialised buffer gives
//! the same first step as PyTorch's `buf = d`.

use tch::Tensor;

pub struct Sgd {
    params: Vec<(String, Tensor)>,
    buffers: Vec<Tensor>,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(params: Vec<(String, Tensor)>, momentum: f64, weight_decay: f64) -> Self {
        let buffers = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Self {
            params,
            buffers,
            momentum,
            weight_decay,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter_mut().zip(&mut self.buffers) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let d = if self.weight_decay != 0.0 {
                    grad + &*p * self.weight_decay
                } else {
                    grad
                };
                let _ = buf.g_mul_scalar_(self.momentum);
                let _ = buf.g_add_(&d);
                let _ = p.g_sub_(&(&*buf * lr));
            }
        });
    }

    /// The momentum buffers, named after their parameters, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .map(|((name, _), buf)| (name.clone(), buf.shallow_clone()))
            .collect()
    }

    /// Restores the buffers from [`Sgd::state`]'s tensors; every parameter must have one.
    pub fn load_state(
        &mut self,
        mut named: std::collections::HashMap<String, Tensor>,
    ) -> Result<(), String> {
        for ((name, _), buf) in self.params.iter().zip(&mut self.buffers) {
            let saved = named
                .remove(name)
                .ok_or_else(|| format!("the checkpoint has no momentum for {name}"))?;
            tch::no_grad(|| buf.copy_(&saved));
        }
        Ok(())
    }
}

/// One plain SGD step of the PC centres with their gradient rescaled by `1/pc_weight`, as the
/// PC reference code does, so that the centres move at `center_lr` whatever the loss weight.
pub fn step_centers(centers: &mut Tensor, center_lr: f64, pc_weight: f64) {
    tch::no_grad(|| {
        let grad = centers.grad();
        if grad.defined() {
            let _ = centers.g_sub_(&(grad * (center_lr / pc_weight)));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn matches_pytorch_sgd_by_hand() {
        // p = 1, g = 2 (from loss 2p), wd = 0.1, momentum 0.9, lr 0.5:
        // step 1: d = 2 + 0.1 = 2.1, buf = 2.1, p = 1 - 1.05 = -0.05
        // step 2: g = 2, d = 2 - 0.005 = 1.995, buf = 0.9*2.1 + 1.995 = 3.885, p = -0.05 - 1.9425
        let p = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let mut sgd = Sgd::new(vec![("p".into(), p.shallow_clone())], 0.9, 0.1);
        for _ in 0..2 {
            sgd.zero_grad();
            (&p * 2.0).sum(Kind::Double).backward();
            sgd.step(0.5);
        }
        assert!((p.double_value(&[0]) - (-1.9925)).abs() < 1e-12);
    }
}
