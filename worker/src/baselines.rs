//! The long-tail baselines: the base losses a plan's Complement Entropy and Prototype
//! Conformity terms are added to, and the samplers of an epoch.
//!
//! The losses are those of `tests/data/losses/make_baselines.py` (PyTorch, float64), checked
//! against its vectors (value and gradient) by the `loss_vectors` test. Each follows the code the
//! literature reuses: focal loss, class-balanced weights and LDAM-DRW as Cao et al.'s LDAM-DRW
//! repository writes them (a weighted loss is PyTorch's weighted mean, `Σ w_y l / Σ w_y`), the
//! logit-adjusted loss as Menon et al. define it.

use ltsweep_domain::{BaseLoss, Sampler};
use tch::{Device, Kind, Tensor};

use crate::losses;
use ltsweep_data::rng::{Rng, purpose};

/// Per-sample `-log softmax(z_i)[y_i]`, `[N]`.
fn per_sample_ce(logits: &Tensor, labels: &Tensor) -> Tensor {
    -logits
        .log_softmax(1, logits.kind())
        .gather(1, &labels.view([-1, 1]), false)
        .squeeze_dim(1)
}

/// Focal loss (Lin et al. 2017): the mean of `(1 - p_y)^gamma * (-log p_y)`, with `p_y` not
/// detached (Cao et al.'s code); `gamma = 0` is cross entropy.
///
/// `1 - p_y` is computed as `-expm1(-ce)` and kept above the smallest normal number: Cao et
/// al.'s `1 - exp(-ce)` rounds to exactly 0 on a confident sample (in float32 once `ce` is
/// below about 6e-8), where the derivative of `x^gamma`, `gamma x^(gamma-1)`, is infinite for
/// `gamma < 1` and the gradient becomes NaN. The loss is `ce^(1+gamma)` there, of gradient 0;
/// elsewhere the two forms agree to rounding.
pub fn focal(logits: &Tensor, labels: &Tensor, gamma: f64) -> Tensor {
    let ce = per_sample_ce(logits, labels);
    let tiny = match logits.kind() {
        Kind::Double => f64::MIN_POSITIVE,
        _ => f64::from(f32::MIN_POSITIVE),
    };
    let one_minus_p = -(-&ce).expm1();
    let modulator = one_minus_p.clamp_min(tiny).pow_tensor_scalar(gamma);
    (modulator * ce).mean(logits.kind())
}

/// Cross entropy weighted by the label's class: `Σ w_{y_i} l_i / Σ w_{y_i}`, as PyTorch's
/// `cross_entropy(weight=w)`.
pub fn weighted_cross_entropy(logits: &Tensor, labels: &Tensor, weights: &Tensor) -> Tensor {
    let w = weights.index_select(0, labels).to_kind(logits.kind());
    let ce = per_sample_ce(logits, labels);
    (&w * ce).sum(logits.kind()) / w.sum(logits.kind())
}

/// The logit-adjusted loss (Menon et al. 2021): cross entropy of `z + tau * log(pi)`.
pub fn logit_adjusted(logits: &Tensor, labels: &Tensor, log_prior: &Tensor, tau: f64) -> Tensor {
    let adjusted = logits + log_prior.to_kind(logits.kind()).view([1, -1]) * tau;
    losses::cross_entropy(&adjusted, labels)
}

/// LDAM (Cao et al. 2019): cross entropy of `s * (cos - m_y e_y)`, weighted by class when
/// `weights` is given (deferred re-weighting), plain mean otherwise. `logits` are the cosine
/// classifier's, already scaled: `s * cos` (see [`crate::cifar_resnet::HeadKind::Cosine`]), so the
/// margin is subtracted as `s * m_y`.
pub fn ldam(
    logits: &Tensor,
    labels: &Tensor,
    margins: &Tensor,
    s: f64,
    weights: Option<&Tensor>,
) -> Tensor {
    let kind = logits.kind();
    let margin = margins.to_kind(kind).index_select(0, labels).view([-1, 1]) * s;
    let at_label = logits
        .zeros_like()
        .scatter_value(1, &labels.view([-1, 1]), 1.0);
    let shifted = logits - at_label * margin;
    match weights {
        Some(w) => weighted_cross_entropy(&shifted, labels, w),
        None => losses::cross_entropy(&shifted, labels),
    }
}

/// Class-balanced weights (Cui et al. 2019): `(1 - beta) / (1 - beta^n_c)`, normalised to sum to
/// the number of classes. `beta = 0` gives every class weight 1.
pub fn class_balanced_weights(counts: &[u32], beta: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| (1.0 - beta) / (1.0 - beta.powf(f64::from(n))))
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|w| w * counts.len() as f64 / sum).collect()
}

/// LDAM's margins: `n_c^(-1/4)`, scaled so that the largest is `max_margin`.
pub fn ldam_margins(counts: &[u32], max_margin: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| 1.0 / f64::from(n).sqrt().sqrt())
        .collect();
    let largest = raw.iter().copied().fold(0.0, f64::max);
    raw.iter().map(|m| m * max_margin / largest).collect()
}

/// `log(pi_c)`, pi the training class frequencies.
pub fn log_priors(counts: &[u32]) -> Vec<f64> {
    let total: f64 = counts.iter().map(|&n| f64::from(n)).sum();
    counts
        .iter()
        .map(|&n| (f64::from(n) / total).ln())
        .collect()
}

/// A job's base loss with its class-dependent tensors on the training device.
pub struct BaseObjective {
    base: BaseLoss,
    /// Class weights (cb; ldam_drw once re-weighting is on).
    weights: Option<Tensor>,
    /// `log(pi)` (la) or the margins (ldam_drw).
    per_class: Option<Tensor>,
}

impl BaseObjective {
    pub fn new(base: BaseLoss, counts: &[u32], device: Device) -> Self {
        let tensor = |values: Vec<f64>| {
            Tensor::from_slice(&values)
                .to_kind(Kind::Float)
                .to_device(device)
        };
        let (weights, per_class) = match base {
            BaseLoss::Ce | BaseLoss::Focal { .. } => (None, None),
            BaseLoss::Cb { beta } => (Some(tensor(class_balanced_weights(counts, beta))), None),
            BaseLoss::La { .. } => (None, Some(tensor(log_priors(counts)))),
            BaseLoss::LdamDrw { max_margin, .. } => (
                Some(tensor(class_balanced_weights(counts, BaseLoss::DRW_BETA))),
                Some(tensor(ldam_margins(counts, max_margin))),
            ),
        };
        Self {
            base,
            weights,
            per_class,
        }
    }

    /// The loss of a batch in the 0-based `epoch`.
    pub fn loss(&self, logits: &Tensor, labels: &Tensor, epoch: u32) -> Tensor {
        let (weights, per_class) = (self.weights.as_ref(), self.per_class.as_ref());
        match self.base {
            BaseLoss::Ce => losses::cross_entropy(logits, labels),
            BaseLoss::Focal { gamma } => focal(logits, labels, gamma),
            BaseLoss::Cb { .. } => {
                weighted_cross_entropy(logits, labels, weights.expect("cb has weights"))
            }
            BaseLoss::La { tau } => {
                logit_adjusted(logits, labels, per_class.expect("la has priors"), tau)
            }
            BaseLoss::LdamDrw { s, drw_epoch, .. } => ldam(
                logits,
                labels,
                per_class.expect("ldam_drw has margins"),
                s,
                weights.filter(|_| epoch >= drw_epoch),
            ),
        }
    }
}

impl BaseObjective {
    /// The per-sample terms whose mean is the loss, for the base losses that are a plain mean
    /// (ce, la): Remix weighs each sample's two labels with them. The spec refuses Remix with
    /// the others.
    pub fn per_sample(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        match (self.base, self.per_class.as_ref()) {
            (BaseLoss::Ce, _) => per_sample_ce(logits, labels),
            (BaseLoss::La { tau }, Some(log_prior)) => {
                let adjusted = logits + log_prior.to_kind(logits.kind()).view([1, -1]) * tau;
                per_sample_ce(&adjusted, labels)
            }
            (base, _) => panic!("{} has no per-sample form for remix", base.kind()),
        }
    }
}

/// The training-set indices of one epoch, in the order they are trained: every image once,
/// shuffled (`instance`), or as many draws as images, with replacement, of a class chosen with
/// probability 1/K (`class_balanced`) or ∝ sqrt(n_c) (`sqrt`) and then one of its images
/// uniformly. A function of the labels, the sampler, the seed and the epoch alone.
pub fn epoch_order(
    labels: &[i64],
    classes: usize,
    sampler: Sampler,
    seed: u64,
    epoch: u32,
) -> Vec<i64> {
    let n = labels.len();
    if sampler == Sampler::Instance {
        let mut order: Vec<i64> = (0..n as i64).collect();
        Rng::derive(seed, &[purpose::SHUFFLE, u64::from(epoch)]).shuffle(&mut order);
        return order;
    }
    let mut by_class: Vec<Vec<i64>> = vec![Vec::new(); classes];
    for (i, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(i as i64);
    }
    let mass: Vec<f64> = by_class
        .iter()
        .map(|members| match (members.is_empty(), sampler) {
            (true, _) => 0.0,
            (false, Sampler::Sqrt) => (members.len() as f64).sqrt(),
            (false, _) => 1.0,
        })
        .collect();
    let total: f64 = mass.iter().sum();
    let mut cumulative = Vec::with_capacity(classes);
    let mut running = 0.0;
    for m in &mass {
        running += m / total;
        cumulative.push(running);
    }
    let mut rng = Rng::derive(seed, &[purpose::SAMPLER, u64::from(epoch)]);
    (0..n)
        .map(|_| {
            let u = rng.unit();
            // The last class with images takes what rounding leaves above its cumulative sum.
            let class = cumulative
                .iter()
                .position(|&c| u < c)
                .unwrap_or_else(|| mass.iter().rposition(|&m| m > 0.0).unwrap_or(0));
            let members = &by_class[class];
            members[rng.below(members.len() as u64) as usize]
        })
        .collect()
}

/// Images of one class drawn in a row by [`ClassAware`] (`num_samples_cls` of Kang et al.'s
/// cRT and LWS configs).
pub const SAMPLES_PER_CLASS: usize = 4;

/// Kang et al.'s `ClassAwareSampler` (`data/ClassAwareSampler.py` of
/// facebookresearch/classifier-balancing), the sampler of their cRT and LWS: the classes are
/// cycled in a shuffled order, reshuffled each time every class has had its turn; a class's
/// turn is [`SAMPLES_PER_CLASS`] images in a row from its own cycle, its images in a shuffled
/// order reshuffled each time it is exhausted (a class of fewer images repeats within a turn,
/// as the reference's does). An epoch is as many draws as the largest class's count times the
/// classes with images, the reference's `num_samples`. The cycles run on from one epoch to the
/// next, as the reference's iterators do; every shuffle comes from one generator of `seed`.
pub struct ClassAware {
    classes: Cycle,
    members: Vec<Cycle>,
    epoch_len: usize,
    rng: Rng,
}

/// `RandomCycleIter`: its items in a shuffled order, reshuffled when exhausted. It starts
/// exhausted, so its first item comes after a first shuffle.
struct Cycle {
    items: Vec<i64>,
    next: usize,
}

impl Cycle {
    fn new(items: Vec<i64>) -> Self {
        let next = items.len();
        Self { items, next }
    }

    fn draw(&mut self, rng: &mut Rng) -> i64 {
        if self.next == self.items.len() {
            rng.shuffle(&mut self.items);
            self.next = 0;
        }
        self.next += 1;
        self.items[self.next - 1]
    }
}

impl ClassAware {
    /// The sampler of the training images of `labels` (in `0..classes`).
    pub fn new(labels: &[i64], classes: usize, seed: u64) -> Self {
        let mut by_class: Vec<Vec<i64>> = vec![Vec::new(); classes];
        for (i, &label) in labels.iter().enumerate() {
            by_class[label as usize].push(i as i64);
        }
        let present: Vec<i64> = (0..classes as i64)
            .filter(|&c| !by_class[c as usize].is_empty())
            .collect();
        let largest = by_class.iter().map(Vec::len).max().unwrap_or(0);
        Self {
            epoch_len: largest * present.len(),
            classes: Cycle::new(present),
            members: by_class.into_iter().map(Cycle::new).collect(),
            rng: Rng::derive(seed, &[purpose::SAMPLER]),
        }
    }

    /// The next epoch's training images, in order.
    pub fn epoch(&mut self) -> Vec<i64> {
        let mut order = Vec::with_capacity(self.epoch_len);
        while order.len() < self.epoch_len {
            let class = self.classes.draw(&mut self.rng) as usize;
            // A turn takes all its images from the class's cycle even where the epoch ends
            // within it (the reference's `zip` takes the whole tuple).
            let turn: Vec<i64> = (0..SAMPLES_PER_CLASS)
                .map(|_| self.members[class].draw(&mut self.rng))
                .collect();
            let room = self.epoch_len - order.len();
            order.extend(turn.into_iter().take(room));
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_aware_draws_visit_every_class_four_times_in_runs_of_four() {
        // 5 classes of 40, 12, 7, 3 and 1 images.
        let counts = [40usize, 12, 7, 3, 1];
        let labels: Vec<i64> = counts
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| std::iter::repeat_n(c as i64, n))
            .collect();
        let k = counts.len();
        let mut sampler = ClassAware::new(&labels, k, 11);
        let first = sampler.epoch();
        // The reference's epoch: the largest class's count times the classes.
        assert_eq!(first.len(), 40 * k);
        let class_of = |i: i64| labels[i as usize];
        // Turn after turn, every class once per cycle of K turns: its first 4K draws visit each
        // class exactly 4 times, in runs of 4.
        for cycle in first.chunks(SAMPLES_PER_CLASS * k) {
            let mut visits = vec![0; k];
            for run in cycle.chunks(SAMPLES_PER_CLASS) {
                let class = class_of(run[0]);
                assert!(run.iter().all(|&i| class_of(i) == class), "{run:?}");
                visits[class as usize] += run.len();
            }
            assert_eq!(visits, vec![SAMPLES_PER_CLASS; k]);
        }
        // Without replacement within a class: class 0's 40 images come once each before any
        // repeats (its first 10 turns).
        let mut head: Vec<i64> = first
            .iter()
            .copied()
            .filter(|&i| class_of(i) == 0)
            .collect();
        head.truncate(40);
        head.sort_unstable();
        assert_eq!(head, (0..40).collect::<Vec<i64>>());
        // The classes' order is reshuffled, not one order repeated; the cycles run on across
        // epochs, and the draws are a function of the seed.
        let turns: Vec<i64> = first
            .chunks(SAMPLES_PER_CLASS)
            .map(|run| class_of(run[0]))
            .collect();
        assert!(turns.chunks(k).any(|c| c != &turns[..k]));
        let second = sampler.epoch();
        assert_ne!(first, second);
        let mut again = ClassAware::new(&labels, k, 11);
        assert_eq!(again.epoch(), first);
        assert_eq!(again.epoch(), second);
        assert_ne!(ClassAware::new(&labels, k, 12).epoch(), first);
    }

    #[test]
    fn weights_and_margins_are_normalised() {
        let counts = [500, 100, 10];
        let w = class_balanced_weights(&counts, 0.999);
        assert!((w.iter().sum::<f64>() - 3.0).abs() < 1e-12);
        assert!(w[0] < w[1] && w[1] < w[2]);
        assert_eq!(class_balanced_weights(&counts, 0.0), vec![1.0; 3]);
        let m = ldam_margins(&counts, 0.5);
        assert!((m[2] - 0.5).abs() < 1e-12);
        assert!((m[0] / m[2] - (10.0f64 / 500.0).powf(0.25)).abs() < 1e-12);
        let p = log_priors(&counts);
        assert!((p.iter().map(|l| l.exp()).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    /// Float32 logits of confident samples: the label's logit 40 above the rest, so that
    /// `exp(-ce)` rounds to exactly 1.
    fn confident_logits() -> (Tensor, Tensor) {
        let labels = Tensor::from_slice(&[0i64, 1, 2, 1]);
        let logits = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu))
            .scatter_value(1, &labels.view([-1, 1]), 40.0)
            .set_requires_grad(true);
        (logits, labels)
    }

    #[test]
    fn focal_loss_below_gamma_one_has_finite_gradients_on_confident_samples() {
        for gamma in [0.1, 0.5, 0.9, 1.0, 2.0] {
            let (logits, labels) = confident_logits();
            let loss = focal(&logits, &labels, gamma);
            loss.backward();
            let grad = logits.grad();
            assert!(
                bool::try_from(grad.isfinite().all()).unwrap(),
                "gamma {gamma}: {grad}"
            );
            assert!(loss.double_value(&[]).is_finite());
        }
        // Cao et al.'s `(1 - exp(-ce))^gamma * ce` on the same samples: the NaN this avoids.
        let (logits, labels) = confident_logits();
        let ce = per_sample_ce(&logits, &labels);
        let literal = ((-(-&ce).exp() + 1.0).pow_tensor_scalar(0.5) * ce).mean(Kind::Float);
        literal.backward();
        assert!(bool::try_from(logits.grad().isnan().any()).unwrap());
    }

    #[test]
    fn deferred_re_weighting_starts_at_its_epoch() {
        let counts = [500, 50, 5];
        let base = BaseLoss::LdamDrw {
            max_margin: 0.5,
            s: 30.0,
            drw_epoch: 4,
        };
        let objective = BaseObjective::new(base, &counts, Device::Cpu);
        let logits = Tensor::from_slice(&[0.2f32, -0.1, 0.3, 0.5, 0.1, -0.4, 0.0, 0.2, 0.1])
            .view([3, 3])
            * 30.0;
        let labels = Tensor::from_slice(&[0i64, 1, 2]);
        let margins = Tensor::from_slice(&ldam_margins(&counts, 0.5)).to_kind(Kind::Float);
        let weights = Tensor::from_slice(&class_balanced_weights(&counts, BaseLoss::DRW_BETA))
            .to_kind(Kind::Float);
        let plain = ldam(&logits, &labels, &margins, 30.0, None).double_value(&[]);
        let weighted = ldam(&logits, &labels, &margins, 30.0, Some(&weights)).double_value(&[]);
        assert!((plain - weighted).abs() > 1e-3, "{plain} {weighted}");
        for epoch in 0..4 {
            assert_eq!(
                objective.loss(&logits, &labels, epoch).double_value(&[]),
                plain
            );
        }
        for epoch in 4..7 {
            assert_eq!(
                objective.loss(&logits, &labels, epoch).double_value(&[]),
                weighted
            );
        }
    }

    /// Counts of each class among an epoch's draws.
    fn drawn(labels: &[i64], classes: usize, sampler: Sampler, epoch: u32) -> Vec<f64> {
        let mut counts = vec![0.0; classes];
        for i in epoch_order(labels, classes, sampler, 7, epoch) {
            counts[labels[i as usize] as usize] += 1.0;
        }
        counts
    }

    #[test]
    fn samplers_draw_classes_at_their_frequencies_over_an_epoch() {
        // 20,000 images: 10,000 / 6,000 / 3,000 / 1,000.
        let sizes = [10_000usize, 6_000, 3_000, 1_000];
        let labels: Vec<i64> = sizes
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| std::iter::repeat_n(c as i64, n))
            .collect();
        let n = labels.len() as f64;

        // Instance: every image exactly once.
        let mut once = epoch_order(&labels, 4, Sampler::Instance, 7, 0);
        assert_ne!(once, (0..labels.len() as i64).collect::<Vec<_>>());
        once.sort_unstable();
        assert_eq!(once, (0..labels.len() as i64).collect::<Vec<_>>());

        let expected_balanced = [0.25; 4];
        let roots: Vec<f64> = sizes.iter().map(|&s| (s as f64).sqrt()).collect();
        let root_sum: f64 = roots.iter().sum();
        let expected_sqrt: Vec<f64> = roots.iter().map(|r| r / root_sum).collect();
        for (sampler, expected) in [
            (Sampler::ClassBalanced, expected_balanced.to_vec()),
            (Sampler::Sqrt, expected_sqrt),
        ] {
            let counts = drawn(&labels, 4, sampler, 3);
            assert_eq!(counts.iter().sum::<f64>(), n);
            for (c, (&got, &p)) in counts.iter().zip(&expected).enumerate() {
                // Binomial: five standard deviations is about 1.3% of n at most here.
                let sd = (n * p * (1.0 - p)).sqrt();
                assert!(
                    (got - n * p).abs() < 5.0 * sd,
                    "{sampler} class {c}: {got} draws, expected {}",
                    n * p
                );
            }
        }
        // Within a class, draws spread over its images (class 3 has 1,000, drawn ~5,000 times).
        let order = epoch_order(&labels, 4, Sampler::ClassBalanced, 7, 3);
        let mut tail: Vec<i64> = order.into_iter().filter(|&i| i >= 19_000).collect();
        tail.sort_unstable();
        tail.dedup();
        assert!(tail.len() > 990, "{} distinct tail images", tail.len());
    }

    #[test]
    fn an_epoch_is_a_function_of_seed_and_epoch() {
        let labels: Vec<i64> = (0..500).map(|i| i64::from(i % 7 == 0)).collect();
        for sampler in Sampler::ALL {
            let a = epoch_order(&labels, 2, sampler, 1, 4);
            assert_eq!(a, epoch_order(&labels, 2, sampler, 1, 4));
            assert_ne!(a, epoch_order(&labels, 2, sampler, 1, 5));
            assert_ne!(a, epoch_order(&labels, 2, sampler, 2, 4));
        }
    }
}
