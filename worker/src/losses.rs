//! The three losses, exactly as `reference/losses.py` defines them (value and gradient; checked
//! against its test vectors by the `loss_vectors` test).
//!
//! A masked loss is summed over the samples whose class is switched on and divided by the FULL
//! batch size: a sample outside the mask contributes zero and does not change the denominator;
//! an empty selection gives exactly 0 and zero gradients.

use tch::{Kind, Tensor};

/// Mean over the batch of `-log softmax(z_i)[y_i]`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    // Not tch's `cross_entropy_for_logits`: it computes in float32 whatever the input, which
    // loses the tiny losses of confident predictions.
    logits.log_softmax(1, logits.kind()).nll_loss(labels)
}

/// The per-sample weights of a masked loss: `class_mask[y_i]` as 0/1 in the logits' kind.
pub fn sample_mask(class_mask: &Tensor, labels: &Tensor, kind: Kind) -> Tensor {
    class_mask.index_select(0, labels).to_kind(kind)
}

/// The complement of each sample's label, as 1.0 everywhere but 0.0 at the label.
fn wrong_classes(like: &Tensor, labels: &Tensor) -> Tensor {
    like.ones_like()
        .scatter_value(1, &labels.view([-1, 1]), 0.0)
}

/// Complement Entropy (Chen et al., ICLR 2019). `mask` is [`sample_mask`]'s.
///
/// `q_ij = p_ij / (1 - p_ig + 1e-7)` for the wrong classes j; the loss of a sample is
/// `1/(K-1) * sum_j q_ij log(q_ij + 1e-10)` (≤ 0), so minimising it flattens the wrong-class
/// distribution.
pub fn complement_entropy(logits: &Tensor, labels: &Tensor, mask: &Tensor) -> Tensor {
    let (n, k) = logits.size2().expect("logits are [N, K]");
    let p = logits.softmax(1, logits.kind());
    let pg = p.gather(1, &labels.view([-1, 1]), false);
    let q: Tensor = &p / (1.0 - pg + 1e-7);
    let log_q: Tensor = (&q + 1e-10).log();
    let per_sample =
        (&q * log_q * wrong_classes(&p, labels)).sum_dim_intlist(1, false, logits.kind())
            / (k - 1) as f64;
    (per_sample * mask).sum(logits.kind()) / n as f64
}

/// Squared Euclidean distances between the rows of `a` `[N, D]` and `b` `[M, D]`: `[N, M]`.
fn squared_distances(a: &Tensor, b: &Tensor) -> Tensor {
    let kind = a.kind();
    let a2 = a.pow_tensor_scalar(2).sum_dim_intlist(1, true, kind);
    let b2 = b.pow_tensor_scalar(2).sum_dim_intlist(1, true, kind);
    a2 + b2.transpose(0, 1) - 2.0 * a.matmul(&b.transpose(0, 1))
}

/// Prototype Conformity (Mustafa et al., ICCV 2019) with one shared matrix of class centres:
/// `alpha_i - push_weight/(K-1) * sum_{j≠y_i} (beta_ij + gamma_ij)`, where alpha pulls a feature
/// to its own centre, beta pushes it from the other centres and gamma pushes its centre from
/// theirs.
pub fn prototype_conformity(
    features: &Tensor,
    centers: &Tensor,
    labels: &Tensor,
    mask: &Tensor,
    push_weight: f64,
) -> Tensor {
    let n = features.size()[0];
    let k = centers.size()[0];
    let d_fc = squared_distances(features, centers);
    let d_cc = squared_distances(centers, centers).index_select(0, labels);
    let alpha = d_fc.gather(1, &labels.view([-1, 1]), false).squeeze_dim(1);
    let kind = features.kind();
    let push = ((&d_fc + d_cc) * wrong_classes(&d_fc, labels)).sum_dim_intlist(1, false, kind)
        / (k - 1) as f64;
    let per_sample = alpha - push_weight * push;
    (per_sample * mask).sum(kind) / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn an_empty_mask_gives_zero_and_zero_gradients() {
        let opts = (Kind::Double, Device::Cpu);
        let logits = Tensor::randn([4, 3], opts).set_requires_grad(true);
        let labels = Tensor::from_slice(&[0i64, 1, 2, 1]);
        let mask = Tensor::zeros([4], opts);
        let loss = complement_entropy(&logits, &labels, &mask);
        loss.backward();
        assert_eq!(loss.double_value(&[]), 0.0);
        assert_eq!(logits.grad().abs().sum(Kind::Double).double_value(&[]), 0.0);
    }
}
