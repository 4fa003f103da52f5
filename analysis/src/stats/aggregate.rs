//! Aggregates over several data sets (tasks) at once, as Agarwal et al. (NeurIPS 2021) define
//! them and their `rliable` library computes them: the interquartile mean of normalised scores
//! and the probability of improvement, each with a stratified-bootstrap 95% interval (runs
//! resampled within each task, tasks kept).

use super::resampling::{SplitMix, percentile};

/// The interquartile mean: the mean of the values left after cutting a quarter from each end
/// (`scipy.stats.trim_mean(values, 0.25)`: `floor(n / 4)` values from each end). `None` for no
/// values.
pub fn iqm(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cut = sorted.len() / 4;
    let kept = &sorted[cut..sorted.len() - cut];
    Some(kept.iter().sum::<f64>() / kept.len() as f64)
}

/// The probability that a run of `x` beats a run of `y` on one task: the Mann-Whitney U of x
/// over y divided by `|x| |y|`, a tie counting one half.
pub fn task_improvement(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let mut u = 0.0;
    for a in x {
        for b in y {
            u += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(u / (x.len() * y.len()) as f64)
}

/// The probability of improvement of `x` over `y` across tasks: the mean over tasks of
/// [`task_improvement`]. `x[t]` and `y[t]` are the runs of task t; `None` when a task has no
/// runs of either.
pub fn probability_of_improvement(x: &[Vec<f64>], y: &[Vec<f64>]) -> Option<f64> {
    if x.is_empty() || x.len() != y.len() {
        return None;
    }
    let per_task = x
        .iter()
        .zip(y)
        .map(|(x, y)| task_improvement(x, y))
        .collect::<Option<Vec<f64>>>()?;
    Some(per_task.iter().sum::<f64>() / per_task.len() as f64)
}

/// One stratified resample: for each task, indices into its runs drawn with replacement.
pub type Stratified = Vec<Vec<usize>>;

/// `resamples` stratified resamples of tasks with the given run counts.
pub fn stratified_indices(runs: &[usize], resamples: usize, rng: &mut SplitMix) -> Vec<Stratified> {
    (0..resamples)
        .map(|_| {
            runs.iter()
                .map(|&n| (0..n).map(|_| rng.below(n)).collect())
                .collect()
        })
        .collect()
}

fn pick(tasks: &[Vec<f64>], resample: &Stratified) -> Vec<Vec<f64>> {
    tasks
        .iter()
        .zip(resample)
        .map(|(runs, indices)| indices.iter().map(|&i| runs[i]).collect())
        .collect()
}

/// A point estimate and its 95% percentile interval over resamples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

fn estimate(value: f64, resampled: &[f64]) -> Option<Estimate> {
    Some(Estimate {
        value,
        low: percentile(resampled, 2.5)?,
        high: percentile(resampled, 97.5)?,
    })
}

/// Each task's runs as normalised scores, `(run - chance) / (mean(baseline) - chance)`;
/// `None` when a task's baseline has no runs or is no better than chance (no scale).
pub fn normalise(
    tasks: &[Vec<f64>],
    baseline: &[Vec<f64>],
    chance: &[f64],
) -> Option<Vec<Vec<f64>>> {
    tasks
        .iter()
        .zip(baseline)
        .zip(chance)
        .map(|((runs, base), &chance)| {
            let scale = super::mean(base)? - chance;
            (scale > 0.0).then(|| runs.iter().map(|v| (v - chance) / scale).collect())
        })
        .collect()
}

/// The IQM of normalised scores ([`normalise`]) with its interval, the normaliser resampled
/// with the runs: each resample draws the tasks' runs (`x_resamples`) and, independently, the
/// baseline's runs (`baseline_resamples`), and normalises by the resampled baseline's mean, so
/// that the interval carries the uncertainty of a normaliser estimated from a few seeds.
/// `None` when a task (or a resample of it) has no scale.
pub fn normalised_iqm_with(
    tasks: &[Vec<f64>],
    baseline: &[Vec<f64>],
    chance: &[f64],
    x_resamples: &[Stratified],
    baseline_resamples: &[Stratified],
) -> Option<Estimate> {
    let value = iqm(&normalise(tasks, baseline, chance)?.concat())?;
    let resampled: Vec<f64> = x_resamples
        .iter()
        .zip(baseline_resamples)
        .map(|(rx, rb)| iqm(&normalise(&pick(tasks, rx), &pick(baseline, rb), chance)?.concat()))
        .collect::<Option<_>>()?;
    estimate(value, &resampled)
}

/// The probability of improvement of `x` over `y` with its interval: `x` and `y` are resampled
/// independently within each task (`rliable`'s `StratifiedIndependentBootstrap`), by the
/// resamples given for each.
pub fn improvement_with(
    x: &[Vec<f64>],
    y: &[Vec<f64>],
    x_resamples: &[Stratified],
    y_resamples: &[Stratified],
) -> Option<Estimate> {
    let resampled: Vec<f64> = x_resamples
        .iter()
        .zip(y_resamples)
        .map(|(rx, ry)| probability_of_improvement(&pick(x, rx), &pick(y, ry)))
        .collect::<Option<_>>()?;
    estimate(probability_of_improvement(x, y)?, &resampled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iqm_cuts_a_quarter_from_each_end() {
        // 8 values: 2 cut from each end, the mean of 3, 4, 5, 6.
        assert_eq!(iqm(&[8.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]), Some(4.5));
        // 3 values: floor(3/4) = 0 cut, the plain mean.
        assert_eq!(iqm(&[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(iqm(&[]), None);
    }

    #[test]
    fn the_normaliser_is_resampled_with_the_runs() {
        // One task, chance 10: runs 50 and 70 over a baseline of 40 and 60 (mean 50, scale 40).
        let x = vec![vec![50.0, 70.0]];
        let base = vec![vec![40.0, 60.0]];
        assert_eq!(normalise(&x, &base, &[10.0]), Some(vec![vec![1.0, 1.5]]));
        // The runs kept whole, the baseline resampled to (40, 40) then (60, 60): scales 30 and
        // 50 give IQMs (40 + 60) / 2 / 30 = 5/3 and 50 / 50 = 1, where a fixed normaliser
        // would give 1.25 every time.
        let whole: Stratified = vec![vec![0, 1]];
        let estimate = normalised_iqm_with(
            &x,
            &base,
            &[10.0],
            &[whole.clone(), whole],
            &[vec![vec![0, 0]], vec![vec![1, 1]]],
        )
        .expect("a scale");
        assert_eq!(estimate.value, 1.25);
        // numpy.percentile of (1, 5/3) at 2.5 and 97.5.
        let spread = 5.0 / 3.0 - 1.0;
        assert!(
            (estimate.low - (1.0 + 0.025 * spread)).abs() < 1e-12,
            "{estimate:?}"
        );
        assert!(
            (estimate.high - (1.0 + 0.975 * spread)).abs() < 1e-12,
            "{estimate:?}"
        );
        // No scale: a baseline at chance.
        assert_eq!(normalise(&x, &[vec![10.0]], &[10.0]), None);
    }

    #[test]
    fn improvement_counts_ties_as_half() {
        assert_eq!(task_improvement(&[2.0, 3.0], &[1.0, 3.0]), Some(0.625));
        let x = vec![vec![2.0, 3.0], vec![0.0]];
        let y = vec![vec![1.0, 3.0], vec![1.0]];
        assert_eq!(probability_of_improvement(&x, &y), Some(0.3125));
    }
}
