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
    /// Balanced validation images: held out of the training images (`val_per_class`) or the
    /// data set's own; `None` when the job has none.
    pub val: Option<ImageSet>,
    pub test: ImageSet,
    pub classes: ClassInfo,
}

/// The per-class counts of the long-tailed training set.
pub fn class_counts(n_max: u32, classes: usize, ratio: f64) -> Vec<u32> {
    if classes == 1 {
        return vec![n_max];
    }
    // Written as the common LDAM-DRW code computes it, so the counts match it exactly.
    let factor = 1.0 / ratio;
    (0..classes)
        .map(|i| (f64::from(n_max) * factor.powf(i as f64 / (classes - 1) as f64)) as u32)
        .collect()
}

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

/// Which of the balanced training images become validation images and which the long-tailed
/// training set: indices into the training split, each list in the file's order.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitIndices {
    /// `val_per_class` images of every class; empty without a validation split.
    pub val: Vec<usize>,
    /// The long-tailed subset, drawn from the images not held out.
    pub train: Vec<usize>,
    /// Long-tailed training images per class.
    pub counts: Vec<u32>,
}

/// Draws the validation images and the long-tailed subset from balanced training labels.
///
/// The validation images come first, `val_per_class` of every class drawn from the sampling
/// seed alone, so they are the same for every job of a data set (and `subset_seed = "job"`
/// varies only the subset). The subset is drawn from what is left: the largest class keeps
/// `n_max = (fewest images of a class) - val_per_class` images, and class `i` keeps
/// `floor(n_max * (1/ratio)^(i/(C-1)))`. Without a validation split and with the fixed subset
/// seed this is exactly the subset earlier versions drew.
pub fn split_indices(
    labels: &[i64],
    classes: usize,
    config: &DatasetConfig,
    source_name: &str,
) -> Result<SplitIndices, DataError> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(i);
    }
    let held_out = config.val_per_class as usize;
    if let Some((class, images)) = by_class
        .iter()
        .enumerate()
        .find(|(_, images)| images.len() <= held_out)
    {
        return Err(DataError::Invalid(if held_out == 0 {
            format!("{source_name}: class {class} has no training images")
        } else {
            format!(
                "{source_name}: dataset.val_per_class = {held_out} leaves class {class} no \
                 training image: it has {} (at most {} can be held out)",
                images.len(),
                images.len().saturating_sub(1)
            )
        }));
    }
    let mut val = Vec::with_capacity(held_out * classes);
    if held_out > 0 {
        for (class, images) in by_class.iter_mut().enumerate() {
            Rng::derive(config.sampling_seed, &[purpose::VALIDATION, class as u64]).shuffle(images);
            val.extend_from_slice(&images[..held_out]);
            images.drain(..held_out);
            // The subset below is drawn from the rest in the file's order, as without a split.
            images.sort_unstable();
        }
        val.sort_unstable();
    }
    let n_max = by_class.iter().map(Vec::len).min().unwrap_or(0) as u32;
    let counts = class_counts(n_max, classes, config.imbalance_ratio);
    let mut train = Vec::with_capacity(counts.iter().map(|&n| n as usize).sum());
    for (class, images) in by_class.iter_mut().enumerate() {
        let mut path = vec![purpose::SUBSET, class as u64];
        path.extend(config.subset_seed);
        Rng::derive(config.sampling_seed, &path).shuffle(images);
        let mut take = images[..counts[class] as usize].to_vec();
        // Keep the file's order within a class: the subset, not its order, is random.
        take.sort_unstable();
        train.extend(take);
    }
    train.sort_unstable();
    Ok(SplitIndices { val, train, counts })
}

/// Makes balanced splits long-tailed, with the validation images the job asks for.
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
    if splits.val.is_some() && config.val_per_class > 0 {
        return Err(DataError::Invalid(format!(
            "{source_name} ships its own validation images: leave dataset.val_per_class out"
        )));
    }
    let (train, shipped_val, test) = if classes < has {
        (
            splits.train.first_classes(classes),
            splits.val.map(|val| val.first_classes(classes)),
            splits.test.first_classes(classes),
        )
    } else {
        (splits.train, splits.val, splits.test)
    };
    let chosen = split_indices(&train.labels, classes, config, source_name)?;
    let groups = groups(&chosen.counts, config.head);
    if !groups.contains(&ClassGroup::Tail) || !groups.contains(&ClassGroup::Head) {
        tracing::warn!(
            counts = ?chosen.counts,
            "every class falls in one group; Head or Tail accuracy will be empty"
        );
    }
    let val = shipped_val.or_else(|| (!chosen.val.is_empty()).then(|| train.select(&chosen.val)));
    Ok(LongTailData {
        train: train.select(&chosen.train),
        val,
        test,
        classes: ClassInfo {
            shots: chosen.counts.iter().map(|&n| Shot::of_count(n)).collect(),
            train_counts: chosen.counts,
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
    fn a_fraction_split_counts_classes() {
        let counts = class_counts(100, 10, 10.0);
        let groups = groups(&counts, HeadSplit::Fraction(0.3));
        assert_eq!(groups.iter().filter(|&&g| g == ClassGroup::Head).count(), 3);
    }
}
