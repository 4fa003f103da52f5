//! Resampling tests of seed-paired differences: the sign-flip permutation test and the paired
//! bootstrap, written as SciPy computes them (`scipy.stats.permutation_test` with
//! `permutation_type="samples"`, percentiles as `numpy.percentile`), so that the golden tests
//! can compare with SciPy on the same inputs.

/// Differences up to this many pairs are tested exactly, over all `2^n` sign flips; above it,
/// over random flips.
pub const EXACT_MAX_PAIRS: usize = 16;

/// SplitMix64: a small seeded generator, so that a Monte Carlo p-value or a bootstrap interval
/// is the same each time the report is made.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias for small n is below 2^-50).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// A two-sided p-value from a null distribution of `resamples` statistics, of which `at_most`
/// are at most the observed value and `at_least` at least it; `exact` when the null
/// distribution is complete (no +1 adjustment). SciPy's definition: twice the smaller tail,
/// capped at 1.
fn two_sided(at_most: usize, at_least: usize, resamples: usize, exact: bool) -> f64 {
    let adjustment = usize::from(!exact);
    let tail = |count: usize| (count + adjustment) as f64 / (resamples + adjustment) as f64;
    (2.0 * tail(at_most).min(tail(at_least))).min(1.0)
}

/// The counts of a null statistic at most and at least the observed one, with SciPy's
/// relative tolerance for sums that are equal in theory and differ in rounding.
struct Tails {
    observed: f64,
    gamma: f64,
    at_most: usize,
    at_least: usize,
}

impl Tails {
    fn new(observed: f64) -> Self {
        Self {
            observed,
            gamma: (f64::EPSILON * 100.0 * observed).abs(),
            at_most: 0,
            at_least: 0,
        }
    }

    fn add(&mut self, statistic: f64) {
        self.at_most += usize::from(statistic <= self.observed + self.gamma);
        self.at_least += usize::from(statistic >= self.observed - self.gamma);
    }
}

/// The two-sided p-value of "the mean difference is zero" by flipping the signs of the
/// differences (exchanging treatment and baseline within a seed): exact over all `2^n` flips
/// for `n <=` [`EXACT_MAX_PAIRS`], else over `monte_carlo` random flips drawn from `seed`.
/// `None` for no differences.
pub fn sign_flip_p_value(differences: &[f64], monte_carlo: usize, seed: u64) -> Option<f64> {
    let n = differences.len();
    if n == 0 {
        return None;
    }
    let mean = |signs: &dyn Fn(usize) -> bool| {
        differences
            .iter()
            .enumerate()
            .map(|(i, d)| if signs(i) { -d } else { *d })
            .sum::<f64>()
            / n as f64
    };
    let mut tails = Tails::new(mean(&|_| false));
    if n <= EXACT_MAX_PAIRS {
        let flips = 1usize << n;
        for mask in 0..flips {
            tails.add(mean(&|i| mask >> i & 1 == 1));
        }
        return Some(two_sided(tails.at_most, tails.at_least, flips, true));
    }
    let mut rng = SplitMix::new(seed);
    let mut signs = vec![false; n];
    for _ in 0..monte_carlo {
        for sign in signs.iter_mut() {
            *sign = rng.next_u64() >> 63 == 1;
        }
        tails.add(mean(&|i| signs[i]));
    }
    Some(two_sided(tails.at_most, tails.at_least, monte_carlo, false))
}

/// The smallest two-sided p-value the exact sign-flip test can give `n` pairs: `2 / 2^n`, the
/// share of flips as extreme as all differences of one sign (0.25 for three seeds, 0.0625 for
/// five). A resampling p below it would claim more than the seeds' signs can show: the
/// bootstrap's percentile p is 0 whenever every difference has one sign, which Holm's
/// correction cannot raise (a multiple of 0 is 0). 1 for no pairs.
pub fn sign_flip_floor(n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    (2.0 * 0.5f64.powi(i32::try_from(n).unwrap_or(i32::MAX))).min(1.0)
}

/// The `q`-th percentile (0 to 100) of values, interpolated linearly between the two nearest
/// ranks: `numpy.percentile`'s default.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let h = (sorted.len() - 1) as f64 * q / 100.0;
    let low = h.floor() as usize;
    let high = (low + 1).min(sorted.len() - 1);
    Some(sorted[low] + (h - low as f64) * (sorted[high] - sorted[low]))
}

/// Resamples: `resamples` draws of `n` indices into `0..n`, with replacement.
pub fn bootstrap_indices(n: usize, resamples: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = SplitMix::new(seed);
    (0..resamples)
        .map(|_| (0..n).map(|_| rng.below(n)).collect())
        .collect()
}

/// What a paired bootstrap of the mean difference gives: its 95% percentile interval and the
/// two-sided p-value of "no difference" that goes with it (twice the smaller share of
/// resampled means on either side of zero, capped at 1: the largest level at which the
/// percentile interval excludes zero).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bootstrap {
    pub low: f64,
    pub high: f64,
    pub p: f64,
}

/// The paired bootstrap over the given resamples (indices into `differences`): seeds are
/// drawn with replacement, pairs kept together. `None` without differences or resamples.
pub fn bootstrap_with(differences: &[f64], resamples: &[Vec<usize>]) -> Option<Bootstrap> {
    if differences.is_empty() || resamples.is_empty() {
        return None;
    }
    let means: Vec<f64> = resamples
        .iter()
        .map(|indices| indices.iter().map(|&i| differences[i]).sum::<f64>() / indices.len() as f64)
        .collect();
    let below = means.iter().filter(|&&m| m <= 0.0).count();
    let above = means.iter().filter(|&&m| m >= 0.0).count();
    let share = |count: usize| count as f64 / means.len() as f64;
    Some(Bootstrap {
        low: percentile(&means, 2.5)?,
        high: percentile(&means, 97.5)?,
        p: (2.0 * share(below).min(share(above))).min(1.0),
    })
}

/// [`bootstrap_with`] over `resamples` resamples drawn from `seed`.
pub fn bootstrap(differences: &[f64], resamples: usize, seed: u64) -> Option<Bootstrap> {
    bootstrap_with(
        differences,
        &bootstrap_indices(differences.len(), resamples, seed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_pairs_of_one_sign_give_the_smallest_exact_p() {
        // Of 8 sign flips, only all-plus and all-minus reach |mean| = 2: p = 2/8.
        assert_eq!(sign_flip_p_value(&[1.0, 2.0, 3.0], 0, 0), Some(0.25));
        assert_eq!(sign_flip_p_value(&[0.0, 0.0], 0, 0), Some(1.0));
        assert_eq!(sign_flip_p_value(&[], 0, 0), None);
        assert_eq!(sign_flip_floor(3), 0.25);
        assert_eq!(sign_flip_floor(1), 1.0);
        for n in 1..=10 {
            let one_sign: Vec<f64> = (1..=n).map(f64::from).collect();
            assert_eq!(
                sign_flip_p_value(&one_sign, 0, 0),
                Some(sign_flip_floor(n as usize))
            );
        }
    }

    #[test]
    fn percentiles_interpolate_as_numpy_does() {
        let values = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&values, 100.0), Some(4.0));
        // h = 3 * 0.5 = 1.5: halfway between 2 and 3.
        assert_eq!(percentile(&values, 50.0), Some(2.5));
        assert_eq!(percentile(&values, 2.5), Some(1.075));
    }

    #[test]
    fn bootstrap_resamples_are_reproducible_and_in_range() {
        let a = bootstrap_indices(5, 100, 7);
        assert_eq!(a, bootstrap_indices(5, 100, 7));
        assert_ne!(a, bootstrap_indices(5, 100, 8));
        assert!(a.iter().flatten().all(|&i| i < 5));
        let all_positive = bootstrap(&[1.0, 2.0, 3.0], 1000, 1).unwrap();
        assert!(all_positive.low >= 1.0 && all_positive.high <= 3.0);
        assert_eq!(all_positive.p, 0.0);
    }
}
