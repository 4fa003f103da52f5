//! The long-tailed training set: `n_i = floor(n_max * (1/ratio)^(i/(C-1)))` images of class `i`,
//! chosen deterministically from the sampling seed; the test set stays balanced. Each class gets
//! its group (Head/Tail, by count threshold or by fraction of classes) and its shot
//! (Many/Medium/Few).

use std::path::Path;

use ltsweep_domain::{ClassGroup, DatasetConfig, HeadSplit, Shot};

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

pub use ltsweep_domain::job::long_tail_counts as class_counts;

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
    if let Some(class) = ltsweep_domain::job::first_empty_class(&counts) {
        return Err(DataError::EmptyClass {
            source_name: source_name.to_owned(),
            class,
            classes,
            n_max,
            ratio: config.imbalance_ratio,
        });
    }
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
        Some(path) => super::root::join(data_root, path)
            .unwrap_or_else(|_| data_root.join(path))
            .display()
            .to_string(),
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

    fn config(val_per_class: u32, subset_seed: Option<u64>) -> DatasetConfig {
        DatasetConfig {
            kind: ltsweep_domain::DatasetKind::Synthetic,
            path: None,
            imbalance_ratio: 10.0,
            head: HeadSplit::MinCount(20),
            sampling_seed: 7,
            classes: None,
            synthetic: ltsweep_domain::SyntheticConfig {
                train_per_class: 50,
                test_per_class: 5,
                image_size: 4,
                channels: 1,
                noise: 0.5,
            },
            val_per_class,
            subset_seed,
            list: None,
        }
    }

    /// Balanced labels, interleaved as data files often are: 4 classes of 50.
    fn labels() -> Vec<i64> {
        (0..200).map(|i| i % 4).collect()
    }

    #[test]
    fn validation_images_are_balanced_and_never_trained_on() {
        let labels = labels();
        let split = split_indices(&labels, 4, &config(10, None), "t").unwrap();
        assert_eq!(split.val.len(), 40);
        for class in 0..4 {
            let of_class = |indices: &[usize]| {
                indices
                    .iter()
                    .filter(|&&i| labels[i] == class as i64)
                    .count()
            };
            assert_eq!(of_class(&split.val), 10, "class {class}");
            assert_eq!(of_class(&split.train), split.counts[class] as usize);
        }
        // The largest class keeps what is left of the smallest: 50 - 10.
        assert_eq!(split.counts, class_counts(40, 4, 10.0));
        assert!(
            split.val.iter().all(|i| !split.train.contains(i)),
            "a validation image is in the training set"
        );
        // The same validation images for every subset seed: only the subset varies.
        for seed in [0, 1, 2] {
            let other = split_indices(&labels, 4, &config(10, Some(seed)), "t").unwrap();
            assert_eq!(other.val, split.val);
            assert!(other.val.iter().all(|i| !other.train.contains(i)));
        }
    }

    #[test]
    fn without_a_split_the_subset_is_the_one_drawn_before() {
        let labels = labels();
        let split = split_indices(&labels, 4, &config(0, None), "t").unwrap();
        assert!(split.val.is_empty());
        // The subset as earlier versions drew it: each class's images in file order,
        // shuffled by the sampling seed and the class, the first n_i kept.
        let mut expected = Vec::new();
        for class in 0..4u64 {
            let mut images: Vec<usize> = (0..200).filter(|&i| i % 4 == class as usize).collect();
            Rng::derive(7, &[purpose::SUBSET, class]).shuffle(&mut images);
            expected.extend_from_slice(&images[..split.counts[class as usize] as usize]);
        }
        expected.sort_unstable();
        assert_eq!(split.train, expected);
        assert_eq!(split.counts, class_counts(50, 4, 10.0));
    }

    #[test]
    fn a_per_job_subset_varies_with_the_seed() {
        let labels = labels();
        let draw = |seed| {
            split_indices(&labels, 4, &config(0, seed), "t")
                .unwrap()
                .train
        };
        assert_ne!(draw(Some(0)), draw(Some(1)));
        assert_ne!(draw(Some(0)), draw(None));
        assert_eq!(draw(Some(3)), draw(Some(3)));
    }

    #[test]
    fn holding_out_every_image_of_a_class_is_refused() {
        let mut labels = labels();
        // Class 3 has 5 images only.
        labels.retain({
            let mut threes = 0;
            move |&l| {
                threes += usize::from(l == 3);
                l != 3 || threes <= 5
            }
        });
        let err = split_indices(&labels, 4, &config(5, None), "fmnist").unwrap_err();
        assert_eq!(
            err.to_string(),
            "fmnist: dataset.val_per_class = 5 leaves class 3 no training image: it has 5 (at most 4 can be held out)"
        );
        // Four held out leave it one image: balanced, every class keeps one.
        let balanced = DatasetConfig {
            imbalance_ratio: 1.0,
            ..config(4, None)
        };
        assert!(split_indices(&labels, 4, &balanced, "fmnist").is_ok());
    }

    #[test]
    fn a_shipped_validation_set_is_taken_as_it_is() {
        let synthetic = |n| {
            super::super::synthetic::splits(
                4,
                &ltsweep_domain::SyntheticConfig {
                    train_per_class: n,
                    test_per_class: 3,
                    image_size: 4,
                    channels: 1,
                    noise: 0.5,
                },
            )
        };
        let mut splits = synthetic(50);
        splits.val = Some(synthetic(6).train);
        let data = make_long_tailed(splits.clone(), &config(0, None), "list").unwrap();
        assert_eq!(data.val.as_ref().map(ImageSet::len), Some(24));
        assert_eq!(
            data.train.len() as u32,
            class_counts(50, 4, 10.0).iter().sum::<u32>()
        );
        let err = make_long_tailed(splits, &config(5, None), "list").unwrap_err();
        assert!(
            err.to_string().contains("ships its own validation images"),
            "{err}"
        );
    }

    #[test]
    fn a_subset_that_leaves_a_class_empty_is_refused_naming_it() {
        let splits = crate::data::synthetic::splits(
            10,
            &ltsweep_domain::SyntheticConfig {
                train_per_class: 50,
                test_per_class: 2,
                image_size: 4,
                channels: 1,
                noise: 1.0,
            },
        );
        let config = |ratio: f64| DatasetConfig {
            kind: ltsweep_domain::DatasetKind::Synthetic,
            path: None,
            imbalance_ratio: ratio,
            head: HeadSplit::MinCount(10),
            sampling_seed: 0,
            classes: Some(10),
            synthetic: ltsweep_domain::SyntheticConfig {
                train_per_class: 50,
                test_per_class: 2,
                image_size: 4,
                channels: 1,
                noise: 1.0,
            },
            val_per_class: 0,
            subset_seed: None,
            list: None,
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
