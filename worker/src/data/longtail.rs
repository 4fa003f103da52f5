//! The long-tailed training set: `n_i = floor(n_max * (1/ratio)^(i/(C-1)))` images of class `i`,
//! chosen deterministically from the sampling seed; the test set stays balanced. Each class gets
//! its group (Head/Tail, by count threshold or by fraction of classes) and its shot
//! (Many/Medium/Few).

use std::path::Path;

use ltsweep_proto::{ClassGroup, DatasetConfig, HeadSplit, Shot};

use super::{DataError, ImageSet, Splits, load_splits};
use crate::rng::{Rng, purpose};

/// What the trainer and the metrics need to know about each class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassInfo {
    pub train_counts: Vec<u32>,
    pub groups: Vec<ClassGroup>,
    pub shots: Vec<Shot>,
}

impl ClassInfo {
    pub fn num_classes(&self) -> usize {
        self.train_counts.len()
    }

    pub fn is_head(&self, class: usize) -> bool {
        self.groups[class] == ClassGroup::Head
    }

    pub fn classes_in(&self, group: ClassGroup) -> Vec<usize> {
        (0..self.num_classes())
            .filter(|&c| self.groups[c] == group)
            .collect()
    }
}

/// A data set ready to train on.
#[derive(Clone, Debug)]
pub struct LongTailData {
    pub train: ImageSet,
    pub test: ImageSet,
    pub classes: ClassInfo,
}

pub use ltsweep_proto::job::long_tail_counts as class_counts;

/// Head/Tail of classes whose counts are sorted from largest to smallest.
pub fn groups(counts: &[u32], split: HeadSplit) -> Vec<ClassGroup> {
    let heads = match split {
        HeadSplit::MinCount(min) => counts.iter().filter(|&&n| n >= min).count(),
        HeadSplit::Fraction(f) => ((f * counts.len() as f64).round() as usize).max(1),
    };
    (0..counts.len())
        .map(|i| {
            if i < heads {
                ClassGroup::Head
            } else {
                ClassGroup::Tail
            }
        })
        .collect()
}

/// Makes balanced splits long-tailed.
pub fn make_long_tailed(
    splits: Splits,
    config: &DatasetConfig,
    source_name: &str,
) -> Result<LongTailData, DataError> {
    let has = splits.train.num_classes;
    let classes = config.classes.map_or(has, |c| c as usize);
    if classes > has {
        return Err(DataError::TooManyClasses {
            asked: classes,
            has,
            source_name: source_name.to_owned(),
        });
    }
    let (train, test) = if classes < has {
        (
            splits.train.first_classes(classes),
            splits.test.first_classes(classes),
        )
    } else {
        (splits.train, splits.test)
    };
    let available = train.class_counts();
    let n_max = available.iter().copied().min().unwrap_or(0);
    if n_max == 0 {
        return Err(DataError::Invalid(format!(
            "{source_name}: a class has no training images"
        )));
    }
    let counts = class_counts(n_max, classes, config.imbalance_ratio);
    if let Some(class) = ltsweep_proto::job::first_empty_class(&counts) {
        return Err(DataError::EmptyClass {
            source_name: source_name.to_owned(),
            class,
            classes,
            n_max,
            ratio: config.imbalance_ratio,
        });
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &label) in train.labels.iter().enumerate() {
        by_class[label as usize].push(i);
    }
    let mut chosen = Vec::with_capacity(counts.iter().map(|&n| n as usize).sum());
    for (class, indices) in by_class.iter_mut().enumerate() {
        Rng::derive(config.sampling_seed, &[purpose::SUBSET, class as u64]).shuffle(indices);
        let mut take = indices[..counts[class] as usize].to_vec();
        // Keep the file's order within a class: the subset, not its order, is random.
        take.sort_unstable();
        chosen.extend(take);
    }
    chosen.sort_unstable();
    let groups = groups(&counts, config.head);
    if !groups.contains(&ClassGroup::Tail) || !groups.contains(&ClassGroup::Head) {
        tracing::warn!(
            ?counts,
            "every class falls in one group; Head or Tail accuracy will be empty"
        );
    }
    Ok(LongTailData {
        train: train.select(&chosen),
        test,
        classes: ClassInfo {
            shots: counts.iter().map(|&n| Shot::of_count(n)).collect(),
            train_counts: counts,
            groups,
        },
    })
}

/// Loads the data set a job names and makes it long-tailed.
pub fn prepare(config: &DatasetConfig, data_root: &Path) -> Result<LongTailData, DataError> {
    let splits = load_splits(config, data_root)?;
    let name = match &config.path {
        Some(path) => data_root.join(path).display().to_string(),
        None => config.kind.to_string(),
    };
    make_long_tailed(splits, config, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar100_lt_counts_match_the_paper() {
        let counts = class_counts(500, 100, 100.0);
        assert_eq!(counts.iter().sum::<u32>(), 10_847);
        assert_eq!(&counts[..2], &[500, 477]);
        assert_eq!(counts[99], 5);
        let groups = groups(&counts, HeadSplit::MinCount(100));
        assert_eq!(
            groups.iter().filter(|&&g| g == ClassGroup::Head).count(),
            35
        );
        let shots: Vec<Shot> = counts.iter().map(|&n| Shot::of_count(n)).collect();
        let count = |s| shots.iter().filter(|&&x| x == s).count();
        assert_eq!(
            (count(Shot::Many), count(Shot::Medium), count(Shot::Few)),
            (35, 35, 30)
        );
    }

    #[test]
    fn a_subset_that_leaves_a_class_empty_is_refused_naming_it() {
        let splits = crate::data::synthetic::splits(
            10,
            &ltsweep_proto::SyntheticConfig {
                train_per_class: 50,
                test_per_class: 2,
                image_size: 4,
                channels: 1,
                noise: 1.0,
            },
        );
        let config = |ratio: f64| DatasetConfig {
            kind: ltsweep_proto::DatasetKind::Synthetic,
            path: None,
            imbalance_ratio: ratio,
            head: HeadSplit::MinCount(10),
            sampling_seed: 0,
            classes: Some(10),
            synthetic: ltsweep_proto::SyntheticConfig {
                train_per_class: 50,
                test_per_class: 2,
                image_size: 4,
                channels: 1,
                noise: 1.0,
            },
        };
        // 50 * (1/100)^(i/9) is below 1 from class 8 on (0.72).
        let err = make_long_tailed(splits.clone(), &config(100.0), "synthetic").unwrap_err();
        assert!(
            matches!(err, DataError::EmptyClass { class: 8, .. }),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("class 8"), "{message}");
        make_long_tailed(splits, &config(50.0), "synthetic").unwrap();
    }

    #[test]
    fn a_fraction_split_counts_classes() {
        let counts = class_counts(100, 10, 10.0);
        let groups = groups(&counts, HeadSplit::Fraction(0.3));
        assert_eq!(groups.iter().filter(|&&g| g == ClassGroup::Head).count(), 3);
    }
}
