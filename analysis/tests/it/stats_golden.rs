//! The statistics against the field's implementations on fixed inputs: SciPy's paired t-test
//! and permutation test, statsmodels' Holm adjustment, SciPy's trimmed mean and bootstrap, and
//! rliable's probability of improvement and stratified bootstrap. The values come from
//! `analysis/tests/data/make_stats_golden.py` (kept beside its output, `stats_golden.json`).

use ltsweep_analysis::stats::aggregate::{self, Stratified};
use ltsweep_analysis::stats::resampling::{self, EXACT_MAX_PAIRS};
use ltsweep_analysis::stats::{
    BOOTSTRAP_RESAMPLES, MONTE_CARLO_FLIPS, PairedTest, multiple, paired_comparison,
};
use serde_json::Value;

fn golden() -> Value {
    let text = include_str!("../data/stats_golden.json");
    serde_json::from_str(text).expect("the golden file is JSON")
}

fn reals(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

fn real(value: &Value) -> f64 {
    value.as_f64().expect("a number")
}

fn indices(value: &Value) -> Vec<Vec<usize>> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("a row")
                .iter()
                .map(|i| i.as_u64().expect("an index") as usize)
                .collect()
        })
        .collect()
}

fn stratified(value: &Value) -> Vec<Stratified> {
    value
        .as_array()
        .expect("resamples")
        .iter()
        .map(indices)
        .collect()
}

fn tasks(value: &Value) -> Vec<Vec<f64>> {
    value.as_array().expect("tasks").iter().map(reals).collect()
}

fn assert_close(found: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (found - expected).abs() <= tolerance,
        "{what}: found {found}, expected {expected} (tolerance {tolerance})"
    );
}

fn pairs(case: &Value) -> Vec<(f64, f64)> {
    reals(&case["treatment"])
        .into_iter()
        .zip(reals(&case["baseline"]))
        .collect()
}

/// scipy.stats.ttest_rel and the t interval: statrs's t distribution is accurate to about
/// 1e-10 here (its incomplete beta function), so p-values match to 1e-9.
#[test]
fn the_paired_t_test_matches_scipy() {
    for case in golden()["t_test"].as_array().expect("cases") {
        let d = paired_comparison(&pairs(case), PairedTest::StudentT, 0).expect("pairs");
        let what = format!("{} pairs", d.pairs);
        assert_close(d.p.expect("a p-value"), real(&case["p"]), 1e-9, &what);
        let ci = d.ci.expect("an interval");
        assert_close(ci.low, real(&case["ci_low"]), 1e-9, &what);
        assert_close(ci.high, real(&case["ci_high"]), 1e-9, &what);
    }
}

/// statsmodels' multipletests(method="holm"): the same arithmetic, to rounding.
#[test]
fn holm_matches_statsmodels() {
    for case in golden()["holm"].as_array().expect("cases") {
        let adjusted = multiple::holm(&reals(&case["p"]));
        for (found, expected) in adjusted.iter().zip(reals(&case["adjusted"])) {
            assert_close(*found, expected, 1e-15, "Holm");
        }
    }
}

/// scipy.stats.permutation_test over sign flips: exactly SciPy's p up to 16 pairs (the same
/// enumeration and tie tolerance); above, the Monte Carlo p of 100,000 random flips against
/// SciPy's exact one, within 4.5 standard errors of a binomial proportion.
#[test]
fn the_sign_flip_test_matches_scipy() {
    let mut monte_carlo = 0;
    for case in golden()["permutation"].as_array().expect("cases") {
        let differences = reals(&case["differences"]);
        let expected = real(&case["exact_p"]);
        let found = resampling::sign_flip_p_value(&differences, MONTE_CARLO_FLIPS, 11)
            .expect("differences");
        let what = format!("{} pairs", differences.len());
        if differences.len() <= EXACT_MAX_PAIRS {
            assert_close(found, expected, 1e-12, &what);
        } else {
            monte_carlo += 1;
            let se = (expected * (1.0 - expected) / MONTE_CARLO_FLIPS as f64).sqrt();
            // Twice a tail, so twice its standard error.
            assert_close(found, expected, 4.5 * 2.0 * se + 1e-5, &what);
        }
    }
    assert!(monte_carlo > 0, "no case above 16 pairs");
}

/// The paired bootstrap: on the resampling indices drawn by the script, the same interval
/// and p-value as its reference to rounding; with the report's own 10,000 resamples, the
/// interval of scipy.stats.bootstrap (200,000 resamples) within the tolerance the script
/// measured (five standard deviations of a 10,000-resample endpoint).
#[test]
fn the_paired_bootstrap_matches_scipy() {
    for case in golden()["bootstrap"].as_array().expect("cases") {
        let differences = reals(&case["differences"]);
        let what = format!("{} pairs", differences.len());
        let same = resampling::bootstrap_with(&differences, &indices(&case["indices"]))
            .expect("resamples");
        let reference = &case["same_indices"];
        assert_close(same.low, real(&reference["low"]), 1e-12, &what);
        assert_close(same.high, real(&reference["high"]), 1e-12, &what);
        assert_close(same.p, real(&reference["p"]), 1e-12, &what);

        let pairs: Vec<(f64, f64)> = differences.iter().map(|&d| (d, 0.0)).collect();
        let own = paired_comparison(&pairs, PairedTest::Bootstrap, 5).expect("pairs");
        let ci = own.ci.expect("an interval");
        let tolerance = real(&case["tolerance"]);
        assert_close(ci.low, real(&case["scipy_low"]), tolerance, &what);
        assert_close(ci.high, real(&case["scipy_high"]), tolerance, &what);
        assert_eq!(
            BOOTSTRAP_RESAMPLES, 10_000,
            "the tolerance is measured for 10,000"
        );
    }
}

/// scipy.stats.trim_mean(values, 0.25).
#[test]
fn the_iqm_matches_scipy() {
    for case in golden()["iqm"].as_array().expect("cases") {
        let values = reals(&case["values"]);
        let found = aggregate::iqm(&values).expect("values");
        assert_close(
            found,
            real(&case["iqm"]),
            1e-12,
            &format!("{} values", values.len()),
        );
    }
}

/// rliable's probability of improvement and its stratified-bootstrap interval, on the resamples
/// the script drew.
#[test]
fn the_aggregates_match_rliable() {
    for case in golden()["aggregate"].as_array().expect("cases") {
        let (x, y) = (tasks(&case["x"]), tasks(&case["y"]));
        let what = format!("{} tasks", x.len());
        let improvement = aggregate::improvement_with(
            &x,
            &y,
            &stratified(&case["x_resamples"]),
            &stratified(&case["y_resamples"]),
        )
        .expect("runs");
        assert_close(improvement.value, real(&case["improvement"]), 1e-12, &what);
        assert_close(
            improvement.low,
            real(&case["improvement_low"]),
            1e-12,
            &what,
        );
        assert_close(
            improvement.high,
            real(&case["improvement_high"]),
            1e-12,
            &what,
        );
    }
}

/// The IQM of normalised scores with CE alone's mean resampled with the runs, on the resamples
/// the script drew.
#[test]
fn the_normalised_iqm_resamples_its_normaliser() {
    for case in golden()["normalised_iqm"].as_array().expect("cases") {
        let (x, y) = (tasks(&case["x"]), tasks(&case["y"]));
        let what = format!("{} tasks", x.len());
        let iqm = aggregate::normalised_iqm_with(
            &x,
            &y,
            &reals(&case["chance"]),
            &stratified(&case["x_resamples"]),
            &stratified(&case["y_resamples"]),
        )
        .expect("runs above chance");
        assert_close(iqm.value, real(&case["iqm"]), 1e-12, &what);
        assert_close(iqm.low, real(&case["iqm_low"]), 1e-12, &what);
        assert_close(iqm.high, real(&case["iqm_high"]), 1e-12, &what);
    }
}

/// Where SciPy's paired t-test has no spread to work with (NaN, or p = 0 at an infinite t),
/// ltsweep gives no p.
#[test]
fn a_zero_variance_t_test_gives_no_p() {
    for case in golden()["t_test_zero_variance"].as_array().expect("cases") {
        let scipy = (&case["scipy_p"], &case["scipy_t"]);
        assert!(
            scipy.0 == "nan" || scipy.1 == "inf",
            "the script's case has a spread: {case}"
        );
        let d = paired_comparison(&pairs(case), PairedTest::StudentT, 0).expect("pairs");
        assert_eq!(d.p, None, "{case}");
    }
}

/// The bootstrap's p never goes below the exact sign-flip test's smallest p (SciPy's), which
/// a difference of one sign on every seed reaches.
#[test]
fn the_bootstrap_p_is_floored_at_the_exact_sign_flip_minimum() {
    for case in golden()["sign_flip_floor"].as_array().expect("cases") {
        let n = case["pairs"].as_u64().expect("a count") as usize;
        let floor = real(&case["p"]);
        assert_close(resampling::sign_flip_floor(n), floor, 1e-15, "the floor");
        let one_sign: Vec<(f64, f64)> = (1..=n).map(|i| (70.0 + i as f64, 70.0)).collect();
        let d = paired_comparison(&one_sign, PairedTest::Bootstrap, 11).expect("pairs");
        assert_close(d.p.expect("a p"), floor, 1e-15, &format!("{n} pairs"));
    }
}
