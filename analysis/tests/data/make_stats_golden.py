"""Golden values for ltsweep's statistics, computed by the field's own implementations.

Writes stats_golden.json beside this file; analysis/tests/it/stats_golden.rs compares the Rust
statistics with it. Run with the project's virtualenv after `./dev setup` (scipy, statsmodels):

    .venv/bin/python analysis/tests/data/make_stats_golden.py

Sources of each value:
- paired t-test: scipy.stats.ttest_rel; the 95% interval from scipy.stats.t.ppf;
- Holm: statsmodels.stats.multitest.multipletests(method="holm");
- sign-flip permutation test: scipy.stats.permutation_test(permutation_type="samples"),
  exact (n_resamples=inf) for every case, including the 20-pair case the Rust code tests by
  Monte Carlo;
- paired bootstrap: a reference implementation on resampling indices drawn here (the Rust code
  is given the same indices), and scipy.stats.bootstrap(method="percentile") for the interval
  the Rust code draws with its own generator, compared at a tolerance estimated here;
- IQM: scipy.stats.trim_mean(proportiontocut=0.25);
- probability of improvement: rliable's definition (library/metrics.py,
  probability_of_improvement), written here with scipy.stats.mannwhitneyu;
- stratified-bootstrap intervals of both: rliable's StratifiedBootstrap /
  StratifiedIndependentBootstrap resampling (runs within each task, with replacement), on
  indices drawn here, percentile intervals as rliable's default;
- the IQM of normalised scores with the normaliser (CE alone's mean) resampled with the runs:
  rliable's IQM and StratifiedIndependentBootstrap, the normalisation done inside each
  resample (rliable itself normalises by fixed reference scores);
- zero-variance paired t-tests: scipy.stats.ttest_rel's own answer (NaN, or p = 0 at t = inf),
  which ltsweep answers with no p;
- the exact sign-flip test's smallest p for n pairs of one sign (scipy.stats.permutation_test),
  the floor of ltsweep's bootstrap p.
"""

import json
import pathlib

import numpy as np
import scipy
import scipy.stats
import statsmodels
from statsmodels.stats.multitest import multipletests

rng = np.random.default_rng(20261201)
golden = {
    "versions": {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__,
    }
}


def paired_cases():
    """Seed-paired accuracies: (treatment, baseline) lists of several sizes and spreads."""
    cases = []
    for n, shift, spread in [(3, 1.0, 1.5), (5, 0.4, 1.0), (8, -0.7, 2.0), (12, 0.3, 0.5),
                             (16, 0.2, 1.2), (20, 0.5, 1.5)]:
        baseline = rng.normal(70.0, 2.0, n)
        treatment = baseline + rng.normal(shift, spread, n)
        cases.append((treatment.round(4).tolist(), baseline.round(4).tolist()))
    return cases


t_cases = []
for treatment, baseline in paired_cases():
    x, y = np.array(treatment), np.array(baseline)
    d = x - y
    n = len(d)
    half = scipy.stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)
    t_cases.append({
        "treatment": treatment,
        "baseline": baseline,
        "p": float(scipy.stats.ttest_rel(x, y).pvalue),
        "ci_low": float(d.mean() - half),
        "ci_high": float(d.mean() + half),
    })
golden["t_test"] = t_cases

holm_cases = []
for m in [1, 3, 6, 12, 24]:
    p = rng.uniform(0.0, 0.2, m)
    p[: m // 3] = rng.uniform(0.0, 0.01, m // 3)
    if m >= 6:
        p[4] = p[5]  # a tie
    holm_cases.append({
        "p": p.tolist(),
        "adjusted": multipletests(p, method="holm")[1].tolist(),
    })
golden["holm"] = holm_cases


def mean_difference(x, y, axis):
    return np.mean(x - y, axis=axis)


permutation_cases = []
for treatment, baseline in paired_cases():
    x, y = np.array(treatment), np.array(baseline)
    result = scipy.stats.permutation_test(
        (x, y), mean_difference, permutation_type="samples", vectorized=True,
        n_resamples=np.inf, alternative="two-sided", batch=65536)
    permutation_cases.append({
        "differences": (x - y).tolist(),
        "exact_p": float(result.pvalue),
    })
# Ties in the null distribution: differences of equal size.
for d in [[1.0, -1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [2.0, -1.0, 1.0, 0.0, 3.0]]:
    d = np.array(d)
    result = scipy.stats.permutation_test(
        (d, np.zeros_like(d)), mean_difference, permutation_type="samples", vectorized=True,
        n_resamples=np.inf, alternative="two-sided")
    permutation_cases.append({"differences": d.tolist(), "exact_p": float(result.pvalue)})
golden["permutation"] = permutation_cases


def bootstrap_reference(d, indices):
    means = d[indices].mean(axis=1)
    below, above = np.mean(means <= 0.0), np.mean(means >= 0.0)
    return {
        "low": float(np.percentile(means, 2.5)),
        "high": float(np.percentile(means, 97.5)),
        "p": float(min(1.0, 2.0 * min(below, above))),
    }


bootstrap_cases = []
for treatment, baseline in paired_cases()[:4]:
    d = np.array(treatment) - np.array(baseline)
    n = len(d)
    indices = rng.integers(0, n, size=(1000, n))
    same = bootstrap_reference(d, indices)
    # SciPy's percentile interval with many resamples, and how far a 10,000-resample interval
    # (the report's) strays from it: the spread of 40 such intervals drawn here.
    scipy_ci = scipy.stats.bootstrap(
        (d,), np.mean, n_resamples=200_000, method="percentile", vectorized=True,
        rng=np.random.default_rng(7)).confidence_interval
    spread = []
    for k in range(40):
        draws = np.random.default_rng(100 + k).integers(0, n, size=(10_000, n))
        means = d[draws].mean(axis=1)
        spread.append(np.percentile(means, [2.5, 97.5]))
    spread = np.array(spread).std(axis=0)
    bootstrap_cases.append({
        "differences": d.tolist(),
        "indices": indices.tolist(),
        "same_indices": same,
        "scipy_low": float(scipy_ci.low),
        "scipy_high": float(scipy_ci.high),
        # Five standard deviations of a 10,000-resample endpoint, plus SciPy's own error.
        "tolerance": float(5.0 * spread.max() + 1e-9),
    })
golden["bootstrap"] = bootstrap_cases

iqm_cases = []
for n in [1, 3, 4, 7, 8, 13, 30]:
    values = rng.normal(1.0, 0.3, n)
    iqm_cases.append({
        "values": values.tolist(),
        "iqm": float(scipy.stats.trim_mean(values, proportiontocut=0.25)),
    })
golden["iqm"] = iqm_cases


def probability_of_improvement(x_tasks, y_tasks):
    """rliable's probability_of_improvement, per task list (runs may differ in number)."""
    per_task = []
    for x, y in zip(x_tasks, y_tasks):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape == y.shape and np.array_equal(x, y):
            per_task.append(0.5)
        else:
            u = scipy.stats.mannwhitneyu(x, y, alternative="greater").statistic
            per_task.append(u / (len(x) * len(y)))
    return float(np.mean(per_task))


def stratified(tasks, resamples):
    return [[rng.integers(0, len(task), size=len(task)).tolist() for task in tasks]
            for _ in range(resamples)]


def pick(tasks, resample):
    return [np.asarray(task)[idx] for task, idx in zip(tasks, resample)]


aggregate_cases = []
for runs, tasks in [([3, 3, 3], 3), ([5, 4, 6, 5], 4), ([10, 10], 2)]:
    x = [np.round(rng.normal(1.05, 0.1, r), 3).tolist() for r in runs]
    y = [np.round(rng.normal(1.0, 0.1, r), 3).tolist() for r in runs]
    y[0][0] = x[0][0]  # a tie across the two
    x_resamples = stratified(x, 300)
    y_resamples = stratified(y, 300)
    iqms = [scipy.stats.trim_mean(np.concatenate(pick(x, r)), 0.25) for r in x_resamples]
    pois = [probability_of_improvement(pick(x, rx), pick(y, ry))
            for rx, ry in zip(x_resamples, y_resamples)]
    aggregate_cases.append({
        "x": x,
        "y": y,
        "x_resamples": x_resamples,
        "y_resamples": y_resamples,
        "iqm": float(scipy.stats.trim_mean(np.concatenate(x), 0.25)),
        "iqm_low": float(np.percentile(iqms, 2.5)),
        "iqm_high": float(np.percentile(iqms, 97.5)),
        "improvement": probability_of_improvement(x, y),
        "improvement_low": float(np.percentile(pois, 2.5)),
        "improvement_high": float(np.percentile(pois, 97.5)),
    })
golden["aggregate"] = aggregate_cases

normalised_cases = []
for runs, chance in [([3, 3, 3], [10.0, 10.0, 1.0]), ([5, 4, 6, 5], [10.0, 1.0, 10.0, 0.5]),
                     ([10, 10], [10.0, 10.0])]:
    x = [np.round(rng.normal(62.0, 4.0, r), 2).tolist() for r in runs]
    y = [np.round(rng.normal(58.0, 4.0, r), 2).tolist() for r in runs]
    x_resamples = stratified(x, 300)
    y_resamples = stratified(y, 300)

    def normalised(xs, ys):
        return np.concatenate([(np.asarray(a) - c) / (np.mean(b) - c)
                               for a, b, c in zip(xs, ys, chance)])

    iqms = [scipy.stats.trim_mean(normalised(pick(x, rx), pick(y, ry)), 0.25)
            for rx, ry in zip(x_resamples, y_resamples)]
    normalised_cases.append({
        "x": x,
        "y": y,
        "chance": chance,
        "x_resamples": x_resamples,
        "y_resamples": y_resamples,
        "iqm": float(scipy.stats.trim_mean(normalised(x, y), 0.25)),
        "iqm_low": float(np.percentile(iqms, 2.5)),
        "iqm_high": float(np.percentile(iqms, 97.5)),
    })
golden["normalised_iqm"] = normalised_cases

zero_variance = []
for treatment, baseline in [([71.2, 73.5, 70.1], [71.2, 73.5, 70.1]),
                            ([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]),
                            ([72.5, 71.0, 74.0, 70.5], [71.5, 70.0, 73.0, 69.5])]:
    with np.errstate(all="ignore"):
        result = scipy.stats.ttest_rel(treatment, baseline)
    zero_variance.append({
        "treatment": treatment,
        "baseline": baseline,
        # JSON has no NaN or infinity: their names.
        "scipy_p": "nan" if np.isnan(result.pvalue) else float(result.pvalue),
        "scipy_t": "nan" if np.isnan(result.statistic) else ("inf" if np.isinf(result.statistic)
                                                             else float(result.statistic)),
    })
golden["t_test_zero_variance"] = zero_variance

floors = []
for n in range(2, 11):
    d = np.arange(1.0, n + 1.0)
    result = scipy.stats.permutation_test((d,), lambda x, axis: np.mean(x, axis=axis),
                                          permutation_type="samples", n_resamples=np.inf,
                                          alternative="two-sided")
    floors.append({"pairs": n, "p": float(result.pvalue)})
golden["sign_flip_floor"] = floors

out = pathlib.Path(__file__).with_name("stats_golden.json")
out.write_text(json.dumps(golden, separators=(",", ":")) + "\n")
print(f"wrote {out}")
