//! Test-set metrics from a confusion matrix: top-1 accuracy by class group, per-class recall and
//! precision.

use ltsweep_domain::{ClassGroup, ClassMetrics, GroupAccuracy, Shot};

use crate::data::ClassInfo;

/// `counts[true class][predicted class]` on the test set.
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    pub counts: Vec<Vec<u32>>,
}

impl Confusion {
    /// From the flat row-major counts of `K * K` cells.
    pub fn from_flat(flat: &[i64], classes: usize) -> Self {
        Self {
            counts: flat
                .chunks(classes)
                .map(|row| row.iter().map(|&v| v as u32).collect())
                .collect(),
        }
    }

    fn correct(&self, class: usize) -> u32 {
        self.counts[class][class]
    }

    fn total(&self, class: usize) -> u32 {
        self.counts[class].iter().sum()
    }

    fn predicted(&self, class: usize) -> u32 {
        self.counts.iter().map(|row| row[class]).sum()
    }

    /// Accuracy over the test images of the given classes; `None` without any.
    fn accuracy_of(&self, classes: impl Iterator<Item = usize>) -> Option<f64> {
        let (correct, total) = classes.fold((0u64, 0u64), |(c, t), k| {
            (c + u64::from(self.correct(k)), t + u64::from(self.total(k)))
        });
        (total > 0).then(|| correct as f64 / total as f64)
    }

    pub fn group_accuracy(&self, info: &ClassInfo) -> GroupAccuracy {
        let k = info.num_classes();
        let group = |g: ClassGroup| (0..k).filter(move |&c| info.groups[c] == g);
        let shot = |s: Shot| (0..k).filter(move |&c| info.shots[c] == s);
        GroupAccuracy {
            acc_all: self.accuracy_of(0..k),
            acc_head: self.accuracy_of(group(ClassGroup::Head)),
            acc_tail: self.accuracy_of(group(ClassGroup::Tail)),
            acc_many: self.accuracy_of(shot(Shot::Many)),
            acc_medium: self.accuracy_of(shot(Shot::Medium)),
            acc_few: self.accuracy_of(shot(Shot::Few)),
        }
    }

    pub fn per_class(&self, info: &ClassInfo) -> Vec<ClassMetrics> {
        (0..info.num_classes())
            .map(|c| {
                let ratio = |num: u32, den: u32| {
                    if den == 0 {
                        0.0
                    } else {
                        f64::from(num) / f64::from(den)
                    }
                };
                ClassMetrics {
                    class: c as u32,
                    train_count: info.train_counts[c],
                    test_total: self.total(c),
                    test_correct: self.correct(c),
                    recall: ratio(self.correct(c), self.total(c)),
                    precision: ratio(self.correct(c), self.predicted(c)),
                    group: info.groups[c],
                    shot: info.shots[c],
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_recall_and_precision_by_hand() {
        let info = ClassInfo {
            train_counts: vec![200, 50, 5],
            groups: vec![ClassGroup::Head, ClassGroup::Tail, ClassGroup::Tail],
            shots: vec![Shot::Many, Shot::Medium, Shot::Few],
        };
        // Rows: true class; columns: predicted.
        let conf = Confusion::from_flat(&[8, 2, 0, 3, 6, 1, 5, 0, 5], 3);
        let acc = conf.group_accuracy(&info);
        assert_eq!(acc.acc_all, Some(19.0 / 30.0));
        assert_eq!(acc.acc_head, Some(0.8));
        assert_eq!(acc.acc_tail, Some(11.0 / 20.0));
        assert_eq!(acc.acc_few, Some(0.5));
        let per = conf.per_class(&info);
        assert_eq!(per[0].recall, 0.8);
        assert_eq!(per[0].precision, 8.0 / 16.0);
        assert_eq!(per[2].precision, 5.0 / 6.0);
    }
}
