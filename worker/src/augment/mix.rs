//! Batch mixing on the normalised batch, as the authors' training loops do it:
//! - mixup: `mixup_data` of facebookresearch/mixup-cifar10 (`train.py`): λ ~ Beta(α, α), the
//!   batch mixed with a permutation of itself, `λ·L(y_a) + (1 − λ)·L(y_b)` (`mixup_criterion`);
//! - CutMix: clovaai/CutMix-PyTorch (`train.py`): with probability `cutmix_prob`, a box of
//!   side `int(size·sqrt(1 − λ))` about a uniform centre (`rand_bbox`, clipped at the borders)
//!   pasted from the permuted batch, and λ re-computed as the share of pixels kept;
//! - Remix (Chou et al. 2020, "Remix: Rebalanced Mixup", Eq. 4–6): mixup's images, the label
//!   weight of a pair set to 0 when the first image's class has at least κ times the second's
//!   training images and λ < τ, to 1 in the mirrored case, λ otherwise.
//!
//! λ, the permutation, CutMix's coin and box are drawn from the job's seed, the epoch and the
//! batch's first position in the epoch, so a resumed epoch mixes its batches as before.

use ltsweep_data::rng::{Rng, purpose};
use ltsweep_domain::Mix;
use tch::{Device, Tensor};

/// A job's mixing, with the training class counts Remix reads.
pub struct BatchMix {
    mix: Mix,
    counts: Vec<f64>,
}

/// The weight of the first label (`y_a`) in a mixed batch's loss.
#[derive(Debug)]
pub enum LabelWeight {
    /// λ for every sample (mixup, CutMix).
    Batch(f64),
    /// A weight each sample (Remix), `[B]`.
    PerSample(Tensor),
}

/// A mixed batch: its images and its second labels (`y_b`, the permuted batch's).
pub struct Mixed {
    pub images: Tensor,
    pub partner: Tensor,
    pub weight: LabelWeight,
}

impl BatchMix {
    /// `None` when the job does not mix.
    pub fn new(mix: Mix, counts: &[u32]) -> Option<Self> {
        (!mix.is_none()).then(|| Self {
            mix,
            counts: counts.iter().map(|&n| f64::from(n)).collect(),
        })
    }

    /// Mixes the normalised batch `[B, C, H, W]` whose first sample is the epoch's `from`-th;
    /// `None` when CutMix's coin leaves the batch as it is.
    pub fn apply(
        &self,
        images: &Tensor,
        labels: &Tensor,
        seed: u64,
        epoch: u32,
        from: i64,
    ) -> Option<Mixed> {
        let mut rng = Rng::derive(seed, &[purpose::MIX, u64::from(epoch), from as u64]);
        let size = images.size();
        let (b, h, w) = (size[0], size[2], size[3]);
        let device = images.device();
        match self.mix {
            Mix::None => None,
            Mix::Mixup { alpha } => {
                let lam = beta(&mut rng, alpha);
                let index = permutation(&mut rng, b, device);
                Some(Mixed {
                    images: mixup(images, &index, lam),
                    partner: labels.index_select(0, &index),
                    weight: LabelWeight::Batch(lam),
                })
            }
            Mix::Cutmix { alpha, prob } => {
                // `r = np.random.rand(1); if args.beta > 0 and r < args.cutmix_prob`.
                if rng.unit() >= prob {
                    return None;
                }
                let lam = beta(&mut rng, alpha);
                let index = permutation(&mut rng, b, device);
                // `rand_bbox(input.size(), lam)`: its W is dimension 2, its H dimension 3.
                let cut_rat = (1.0 - lam).sqrt();
                let cut_w = (h as f64 * cut_rat) as i64;
                let cut_h = (w as f64 * cut_rat) as i64;
                let cx = rng.below(h as u64) as i64;
                let cy = rng.below(w as u64) as i64;
                let bbx1 = (cx - cut_w / 2).clamp(0, h);
                let bby1 = (cy - cut_h / 2).clamp(0, w);
                let bbx2 = (cx + cut_w / 2).clamp(0, h);
                let bby2 = (cy + cut_h / 2).clamp(0, w);
                let mixed = images.copy();
                if bbx2 > bbx1 && bby2 > bby1 {
                    let pasted = images
                        .index_select(0, &index)
                        .narrow(2, bbx1, bbx2 - bbx1)
                        .narrow(3, bby1, bby2 - bby1);
                    mixed
                        .narrow(2, bbx1, bbx2 - bbx1)
                        .narrow(3, bby1, bby2 - bby1)
                        .copy_(&pasted);
                }
                // "adjust lambda to exactly match pixel ratio".
                let lam = 1.0 - ((bbx2 - bbx1) * (bby2 - bby1)) as f64 / (w * h) as f64;
                Some(Mixed {
                    images: mixed,
                    partner: labels.index_select(0, &index),
                    weight: LabelWeight::Batch(lam),
                })
            }
            Mix::Remix { alpha, kappa, tau } => {
                let lam = beta(&mut rng, alpha);
                let index = permutation(&mut rng, b, device);
                let partner = labels.index_select(0, &index);
                let first: Vec<i64> =
                    Vec::try_from(&labels.to_device(Device::Cpu)).expect("labels");
                let second: Vec<i64> =
                    Vec::try_from(&partner.to_device(Device::Cpu)).expect("labels");
                let weights: Vec<f64> = first
                    .iter()
                    .zip(&second)
                    .map(|(&a, &b)| {
                        remix_weight(
                            self.counts[a as usize],
                            self.counts[b as usize],
                            lam,
                            kappa,
                            tau,
                        )
                    })
                    .collect();
                Some(Mixed {
                    images: mixup(images, &index, lam),
                    partner,
                    weight: LabelWeight::PerSample(Tensor::from_slice(&weights).to_device(device)),
                })
            }
        }
    }
}

/// `lam * x + (1 - lam) * x[index, :]`.
fn mixup(images: &Tensor, index: &Tensor, lam: f64) -> Tensor {
    images * lam + images.index_select(0, index) * (1.0 - lam)
}

/// Remix's label weight of the first image of a pair (Chou et al. 2020, Eq. 6).
pub fn remix_weight(n_first: f64, n_second: f64, lam: f64, kappa: f64, tau: f64) -> f64 {
    let ratio = n_first / n_second;
    if ratio >= kappa && lam < tau {
        0.0
    } else if ratio <= 1.0 / kappa && 1.0 - lam < tau {
        1.0
    } else {
        lam
    }
}

/// `torch.randperm(batch_size)`'s role: a uniform permutation of the batch.
fn permutation(rng: &mut Rng, n: i64, device: Device) -> Tensor {
    let mut index: Vec<i64> = (0..n).collect();
    rng.shuffle(&mut index);
    Tensor::from_slice(&index).to_device(device)
}

/// λ ~ Beta(α, α), as `X / (X + Y)` of two Gamma(α, 1) draws.
fn beta(rng: &mut Rng, alpha: f64) -> f64 {
    let x = gamma(rng, alpha);
    let y = gamma(rng, alpha);
    x / (x + y)
}

/// Gamma(α, 1) by Marsaglia & Tsang (2000); below α = 1 through `Gamma(α + 1) · U^(1/α)`.
fn gamma(rng: &mut Rng, alpha: f64) -> f64 {
    if alpha < 1.0 {
        let u = 1.0 - rng.unit();
        return gamma(rng, alpha + 1.0) * u.powf(1.0 / alpha);
    }
    let d = alpha - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let z = rng.normal();
        let v = (1.0 + c * z).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.unit();
        if u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// `λ·L(y_a) + (1 − λ)·L(y_b)` for a batch weight, with `loss` the base loss of a batch; for
/// per-sample weights, the mean of `w_i·l_i(y_a) + (1 − w_i)·l_i(y_b)` with `per_sample` the
/// base loss's per-sample terms.
pub fn mixed_loss(
    weight: &LabelWeight,
    labels: &Tensor,
    partner: &Tensor,
    loss: &dyn Fn(&Tensor) -> Tensor,
    per_sample: &dyn Fn(&Tensor) -> Tensor,
) -> Tensor {
    match weight {
        LabelWeight::Batch(lam) => loss(labels) * *lam + loss(partner) * (1.0 - lam),
        LabelWeight::PerSample(w) => {
            let a = per_sample(labels);
            let w = w.to_kind(a.kind());
            let b = per_sample(partner);
            let kind = a.kind();
            let w = w.to_kind(kind);
            let rest = w.ones_like() - &w;
            (&w * a + rest * b).mean(kind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn remix_gives_the_label_to_the_rarer_class_past_kappa_and_tau() {
        // The first class has 300 images, the second 50 (ratio 6 >= 3).
        assert_eq!(remix_weight(300.0, 50.0, 0.4, 3.0, 0.5), 0.0);
        assert_eq!(remix_weight(300.0, 50.0, 0.6, 3.0, 0.5), 0.6);
        assert_eq!(remix_weight(50.0, 300.0, 0.6, 3.0, 0.5), 1.0);
        assert_eq!(remix_weight(50.0, 300.0, 0.4, 3.0, 0.5), 0.4);
        assert_eq!(remix_weight(100.0, 50.0, 0.1, 3.0, 0.5), 0.1);
    }

    #[test]
    fn beta_draws_have_the_mean_and_variance_of_beta() {
        for alpha in [0.2, 1.0, 2.0] {
            let mut rng = Rng::derive(11, &[]);
            let n = 20_000;
            let draws: Vec<f64> = (0..n).map(|_| beta(&mut rng, alpha)).collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64;
            // Beta(α, α): mean 1/2, variance 1 / (4 (2α + 1)).
            let expected = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((mean - 0.5).abs() < 0.01, "α {alpha}: mean {mean}");
            assert!(
                (var - expected).abs() < 0.1 * expected,
                "α {alpha}: var {var} against {expected}"
            );
            assert!(draws.iter().all(|d| (0.0..=1.0).contains(d)));
        }
    }

    #[test]
    fn cutmix_pastes_one_box_and_lambda_is_the_share_kept() {
        let mix = BatchMix::new(
            Mix::Cutmix {
                alpha: 1.0,
                prob: 1.0,
            },
            &[1; 4],
        )
        .unwrap();
        // Image i is the constant i; its label is i, so the partner's label is its index.
        let images = Tensor::arange(4, (Kind::Float, Device::Cpu))
            .view([4, 1, 1, 1])
            .expand([4, 1, 8, 8], false)
            .contiguous();
        let labels = Tensor::arange(4, (Kind::Int64, Device::Cpu));
        let mut boxes = 0;
        for from in 0..20 {
            let mixed = mix.apply(&images, &labels, 3, 0, from).unwrap();
            let LabelWeight::Batch(lam) = mixed.weight else {
                panic!("a batch weight")
            };
            for i in 0..4 {
                let partner = mixed.partner.int64_value(&[i]);
                let image = mixed.images.get(i);
                let kept = image.eq(i as f64).sum(Kind::Float).double_value(&[]);
                let pasted = image.eq(partner as f64).sum(Kind::Float).double_value(&[]);
                if partner != i {
                    assert_eq!(kept + pasted, 64.0);
                    assert_eq!(kept / 64.0, lam, "batch at {from}, image {i}");
                    boxes += usize::from(pasted > 0.0);
                }
            }
        }
        assert!(boxes > 10, "{boxes} boxes pasted");
    }
}
