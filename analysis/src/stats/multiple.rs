//! Correction for the many comparisons of one table: Holm's step-down adjustment, as
//! `statsmodels.stats.multitest.multipletests(method="holm")` computes it.

/// Holm-adjusted p-values, in the order given: with the m p-values sorted ascending,
/// `adjusted_(i) = min(1, max_{j <= i} (m - j) * p_(j))` (0-based j). A comparison holds at
/// level alpha for the whole family when its adjusted p-value is below alpha; the family-wise
/// error rate is then at most alpha, whatever the dependence between the comparisons.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    // Stable: equal p-values keep their order, as statsmodels' mergesort does.
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max((m - rank) as f64 * p_values[i]);
        adjusted[i] = running.min(1.0);
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_by_hand() {
        // Sorted 0.01, 0.02, 0.04 times 3, 2, 1: 0.03, 0.04, 0.04 (the running maximum).
        let adjusted = holm(&[0.04, 0.01, 0.02]);
        let expected = [0.04, 0.03, 0.04];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-15, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
    }
}
