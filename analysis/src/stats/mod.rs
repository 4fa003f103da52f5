//! The statistics behind the tables: means and sample standard deviations over seeds, and
//! seed-paired differences with a 95% interval and a p-value by the test the report names
//! ([`PairedTest`]: Student t, the sign-flip permutation test or the paired bootstrap),
//! Holm-adjusted over each table ([`multiple`]); and the aggregates over several data sets
//! ([`aggregate`]). Pure functions on slices; the resampling ones are seeded.

pub mod aggregate;
pub mod multiple;
pub mod resampling;

use statrs::distribution::{Continuous, ContinuousCDF, StudentsT};

/// The arithmetic mean; `None` for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

/// The sample standard deviation (denominator n - 1); `None` for fewer than two values.
pub fn sample_std(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let mean = mean(values)?;
    // Two passes (mean first, then squared deviations) keep small spreads around large
    // means exact where the one-pass sum-of-squares formula would cancel.
    let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    Some((squares / (values.len() - 1) as f64).sqrt())
}

/// The 0.975 quantile of Student's t distribution with `df` degrees of freedom: the factor of a
/// two-sided 95% confidence interval. `None` for `df == 0`.
pub fn t_quantile_975(df: usize) -> Option<f64> {
    const P: f64 = 0.975;
    if df == 0 {
        return None;
    }
    let t = StudentsT::new(0.0, 1.0, df as f64).ok()?;
    // statrs inverts the regularised incomplete beta function with an approximation good to
    // about 1e-9; a few Newton steps on the (accurate) CDF bring it to machine precision.
    let mut x = t.inverse_cdf(P);
    for _ in 0..4 {
        let density = t.pdf(x);
        if !density.is_finite() || density <= 0.0 {
            break;
        }
        let step = (t.cdf(x) - P) / density;
        x -= step;
        if step.abs() <= 1e-15 * x.abs() {
            break;
        }
    }
    Some(x)
}

/// A 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// Differences `treatment - baseline` over the seeds where both have a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairedDifference {
    /// How many seeds were paired.
    pub pairs: usize,
    pub mean: f64,
    /// The sample standard deviation of the differences; `None` for a single pair.
    pub std: Option<f64>,
    /// The 95% interval of the mean difference by the test's method (Student t:
    /// `mean ± t(0.975, pairs - 1) * std / sqrt(pairs)`); `None` for a single pair.
    pub ci: Option<Interval>,
    /// The two-sided p-value of "no difference" by the test; `None` for a single pair.
    pub p: Option<f64>,
    /// `p` adjusted by Holm over the comparisons of the table the difference is in; `None`
    /// until the table sets it.
    pub p_holm: Option<f64>,
}

impl PairedDifference {
    /// Whether the difference holds after the table's correction: Holm-adjusted p below 0.05.
    pub fn holds(&self) -> bool {
        self.p_holm.is_some_and(|p| p < 0.05)
    }
}

/// How a seed-paired difference is tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PairedTest {
    /// The paired t-test and the Student t interval.
    #[default]
    StudentT,
    /// The sign-flip permutation test (exact over all sign flips up to
    /// [`resampling::EXACT_MAX_PAIRS`] pairs, Monte Carlo above), with the Student t interval.
    Permutation,
    /// The paired bootstrap's percentile interval and its p-value, never below the exact
    /// sign-flip test's smallest p for the same number of pairs
    /// ([`resampling::sign_flip_floor`]).
    Bootstrap,
}

impl PairedTest {
    pub fn as_str(self) -> &'static str {
        match self {
            PairedTest::StudentT => "t",
            PairedTest::Permutation => "permutation",
            PairedTest::Bootstrap => "bootstrap",
        }
    }
}

/// Random sign flips of a Monte Carlo permutation test (above 16 pairs).
pub const MONTE_CARLO_FLIPS: usize = 100_000;
/// Resamples of a bootstrap interval.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// The mean of the paired differences `treatment - baseline` with its 95% Student t interval
/// and t-test p-value; `None` when there is no pair. Each pair is `(treatment, baseline)` of
/// one seed.
pub fn paired_difference(pairs: &[(f64, f64)]) -> Option<PairedDifference> {
    paired_comparison(pairs, PairedTest::StudentT, 0)
}

/// [`paired_difference`] by the given test; `seed` draws the resamples of the Monte Carlo
/// permutation test and of the bootstrap.
pub fn paired_comparison(
    pairs: &[(f64, f64)],
    test: PairedTest,
    seed: u64,
) -> Option<PairedDifference> {
    let differences: Vec<f64> = pairs.iter().map(|(t, b)| t - b).collect();
    let n = differences.len();
    let mean = mean(&differences)?;
    let std = sample_std(&differences);
    let t_interval = std.and_then(|std| {
        let half = t_quantile_975(n - 1)? * std / (n as f64).sqrt();
        Some(Interval {
            low: mean - half,
            high: mean + half,
        })
    });
    let (ci, p) = if n < 2 {
        (None, None)
    } else {
        match test {
            PairedTest::StudentT => (t_interval, std.and_then(|std| t_test_p(mean, std, n))),
            PairedTest::Permutation => (
                t_interval,
                resampling::sign_flip_p_value(&differences, MONTE_CARLO_FLIPS, seed),
            ),
            PairedTest::Bootstrap => {
                let b = resampling::bootstrap(&differences, BOOTSTRAP_RESAMPLES, seed)?;
                (
                    Some(Interval {
                        low: b.low,
                        high: b.high,
                    }),
                    Some(b.p.max(resampling::sign_flip_floor(n))),
                )
            }
        }
    };
    Some(PairedDifference {
        pairs: n,
        mean,
        std,
        ci,
        p,
        p_holm: None,
    })
}

/// The two-sided p-value of the paired t-test (`scipy.stats.ttest_rel`) from the differences'
/// mean, sample std and count; `None` when the differences are all equal. Without spread the
/// test estimates nothing: SciPy answers NaN when they are all zero and 0 (t = ±inf) when they
/// are equal and non-zero, and three seeds that happen to agree are no evidence of either, so
/// no p is given and no claim made.
pub fn t_test_p(mean: f64, std: f64, n: usize) -> Option<f64> {
    // Differences equal but for rounding (1.0000000000000142 beside 1.0) count as equal: their
    // spread is the arithmetic's, not the seeds'.
    if n < 2 || std <= 64.0 * f64::EPSILON * mean.abs() {
        return None;
    }
    let t = mean / (std / (n as f64).sqrt());
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    // The lower tail at -|t|, doubled: no cancellation for small p.
    Some((2.0 * dist.cdf(-t.abs())).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn mean_and_sample_std_of_known_values() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[2.0, 4.0, 9.0]), Some(5.0));
        // Deviations -3, -1, 4: squares 26, over n - 1 = 2 gives 13.
        let std = sample_std(&[2.0, 4.0, 9.0]).expect("three values");
        assert!(close(std, 13f64.sqrt(), 1e-15));
        assert_eq!(sample_std(&[7.0]), None);
        assert_eq!(sample_std(&[3.0, 3.0, 3.0]), Some(0.0));
    }

    #[test]
    fn t_quantiles_match_tables() {
        assert_eq!(t_quantile_975(0), None);
        let quantile = |df| t_quantile_975(df).expect("df >= 1");
        // Closed forms: df 1 is the Cauchy distribution, tan(0.475 pi); for df 2,
        // F(t) = 1/2 + t / (2 sqrt(2 + t^2)) gives t = 0.95 / sqrt(2 * 0.975 * 0.025).
        assert!(close(
            quantile(1),
            (0.475 * std::f64::consts::PI).tan(),
            1e-11
        ));
        assert!(close(
            quantile(2),
            0.95 / (2.0f64 * 0.975 * 0.025).sqrt(),
            1e-12
        ));
        assert!(close(quantile(1), 12.7062047, 1e-7));
        assert!(close(quantile(2), 4.30265273, 1e-8));
        assert!(close(quantile(4), 2.7764451, 1e-7));
        assert!(close(quantile(9), 2.2621572, 1e-7));
        assert!(close(quantile(29), 2.0452296, 1e-7));
    }

    #[test]
    fn paired_difference_has_a_t_interval() {
        // Differences 5, 5, 8: mean 6, deviations -1, -1, 2, variance 6 / 2 = 3, so the
        // half-width is t(0.975, 2) * sqrt(3) / sqrt(3) = t(0.975, 2).
        let difference =
            paired_difference(&[(45.0, 40.0), (47.0, 42.0), (52.0, 44.0)]).expect("three pairs");
        let t2 = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt();
        assert_eq!(difference.pairs, 3);
        assert!(close(difference.mean, 6.0, 1e-12));
        assert!(close(
            difference.std.expect("three pairs"),
            3f64.sqrt(),
            1e-12
        ));
        let ci = difference.ci.expect("three pairs");
        assert!(close(ci.low, 6.0 - t2, 1e-12));
        assert!(close(ci.high, 6.0 + t2, 1e-12));
    }

    #[test]
    fn equal_differences_give_no_t_test_p() {
        // SciPy: NaN for (1, 2, 3) against itself, p = 0 (t = inf) for (2, 3, 4) against
        // (1, 2, 3); without spread neither is evidence, so no p.
        for pairs in [
            [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)],
            [(2.0, 1.0), (3.0, 2.0), (4.0, 3.0)],
            // Differences of 1 but for rounding.
            [(73.4, 72.4), (72.5, 71.5), (74.1, 73.1)],
        ] {
            let d = paired_difference(&pairs).expect("three pairs");
            assert_eq!(d.p, None, "{pairs:?}");
            assert!(!d.holds());
        }
    }

    #[test]
    fn the_bootstrap_claims_no_more_than_the_exact_sign_flip_test_can() {
        // Three differences of one sign: every resampled mean is positive (percentile p = 0),
        // but no test of three pairs can go below 2 / 2^3.
        let d = paired_comparison(
            &[(2.0, 1.0), (4.0, 2.0), (7.0, 4.0)],
            PairedTest::Bootstrap,
            3,
        )
        .expect("three pairs");
        assert_eq!(d.p, Some(0.25));
    }

    #[test]
    fn one_pair_has_no_interval_and_none_has_no_difference() {
        let single = paired_difference(&[(3.0, 1.0)]).expect("one pair");
        assert_eq!(single.mean, 2.0);
        assert_eq!(single.std, None);
        assert_eq!(single.ci, None);
        assert_eq!(paired_difference(&[]), None);
    }
}
