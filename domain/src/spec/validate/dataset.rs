//! The `[dataset]` section's checks.

use super::{Invalid, check, check_under_data_root, positive_counts};
use crate::job::{DEFAULT_IMBALANCE_RATIO, DatasetKind, SyntheticConfig};
use crate::spec::limits::*;
use crate::spec::{Axis, DatasetSection};

impl crate::spec::SweepSpec {
    pub(super) fn validate_dataset(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        let synthetic = d.kind == DatasetKind::Synthetic;
        check_path(d, synthetic)?;
        if d.kind.is_list() {
            self.validate_list()?;
        } else {
            no_list_settings(d)?;
        }
        check_long_tail(d)?;
        check_validation_split(d, synthetic)?;
        check_synthetic_settings(d)?;
        if synthetic {
            self.validate_synthetic_size()?;
            self.validate_synthetic_counts()?;
        }
        Ok(())
    }

    /// The synthetic set's long-tailed counts are known here: a subset that leaves a class
    /// without a training image is refused naming the class (a file data set's counts are
    /// known on the worker, which fails such a job for good).
    fn validate_synthetic_counts(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        let classes = d
            .classes
            .as_ref()
            .map_or(&[SyntheticConfig::DEFAULT_CLASSES][..], Axis::values);
        let sizes = d.train_per_class.as_ref().map_or(
            &[SyntheticConfig::DEFAULT.train_per_class][..],
            Axis::values,
        );
        for &ratio in d
            .imbalance_ratio
            .as_ref()
            .map_or(&[DEFAULT_IMBALANCE_RATIO][..], Axis::values)
        {
            for &size in sizes {
                for &k in classes {
                    let counts = crate::job::long_tail_counts(size, k as usize, ratio);
                    if let Some(class) = crate::job::first_empty_class(&counts) {
                        return Err(Invalid {
                            key: "dataset.imbalance_ratio".to_owned(),
                            message: format!(
                                "at ratio {ratio}, {size} training images a class leave class {class} of {k} with none (n_i = floor({size} * (1/{ratio})^(i/{}))): lower the ratio or raise dataset.train_per_class",
                                k - 1
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// List data: the lists named (or known to the preset), crop sizes, jitter; no setting that
    /// makes a set long-tailed, since the lists already are.
    fn validate_list(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        check(
            d.imbalance_ratio.is_none(),
            "dataset.imbalance_ratio",
            &format!(
                "list data is trained as its lists give it ({} is long-tailed already); remove the key",
                d.kind
            ),
        )?;
        let preset = d.kind.preset();
        if preset.is_some() {
            check(
                d.classes.is_none(),
                "dataset.classes",
                &format!(
                    "{} has a fixed class count; use kind = \"list\" for other lists",
                    d.kind
                ),
            )?;
        } else {
            check(
                d.train_list.is_some(),
                "dataset.train_list",
                "give the training list (`relative/path.jpg label` a line, or COCO-style .json), relative to dataset.path",
            )?;
            check(
                d.test_list.is_some(),
                "dataset.test_list",
                "give the test list, relative to dataset.path",
            )?;
            if let Some(classes) = &d.classes {
                check(
                    matches!(classes, Axis::One(_)),
                    "dataset.classes",
                    "takes one value for list data: the lists' class count",
                )?;
            }
        }
        for (key, file) in [
            ("dataset.train_list", &d.train_list),
            ("dataset.val_list", &d.val_list),
            ("dataset.test_list", &d.test_list),
            ("dataset.packed", &d.packed),
        ] {
            if let Some(file) = file {
                check(
                    !file.is_empty() && file.len() <= MAX_PATH_BYTES && !file.contains('\0'),
                    key,
                    &format!(
                        "give a file name relative to dataset.path, of 1 to {MAX_PATH_BYTES} bytes"
                    ),
                )?;
                check_under_data_root(key, file, "dataset.path")?;
            }
        }
        let crop = d.crop_size.unwrap_or(DEFAULT_CROP);
        check(
            (MIN_CROP..=MAX_IMAGE_SIZE).contains(&crop),
            "dataset.crop_size",
            &format!("{crop} pixels is not between {MIN_CROP} and {MAX_IMAGE_SIZE}"),
        )?;
        let resize = d.resize_size.unwrap_or(crop * 8 / 7);
        check(
            resize >= crop && resize <= 2 * MAX_IMAGE_SIZE,
            "dataset.resize_size",
            &format!(
                "{resize} pixels: evaluation resizes the shorter side to at least the crop ({crop}) and at most {}",
                2 * MAX_IMAGE_SIZE
            ),
        )?;
        let jitter = d.color_jitter.unwrap_or(0.0);
        check(
            jitter.is_finite() && (0.0..1.0).contains(&jitter),
            "dataset.color_jitter",
            &format!("{jitter} is not in [0, 1) (0.4 is the decoupling recipe's)"),
        )?;
        self.validate_normalization()
    }

    /// `dataset.mean` and `dataset.std`: both or neither, three values each, in the range of
    /// pixels scaled to [0, 1].
    fn validate_normalization(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        check(
            d.mean.is_some() == d.std.is_some(),
            if d.mean.is_some() {
                "dataset.std"
            } else {
                "dataset.mean"
            },
            "give dataset.mean and dataset.std together (or neither, for the preset's)",
        )?;
        for (key, values, lo, hi) in [
            ("dataset.mean", &d.mean, 0.0, 1.0),
            ("dataset.std", &d.std, 0.01, 1.0),
        ] {
            let Some(values) = values else { continue };
            check(
                values.len() == 3,
                key,
                &format!("{} values: give three, for R, G and B", values.len()),
            )?;
            for &v in values {
                check(
                    v.is_finite() && (lo..=hi).contains(&v),
                    key,
                    &format!("{v} is not between {lo} and {hi} (pixels are scaled to [0, 1])"),
                )?;
            }
        }
        Ok(())
    }

    /// The largest synthetic set of the grid (each axis at its largest) must fit the limit.
    fn validate_synthetic_size(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        let default = SyntheticConfig::DEFAULT;
        let largest = |axis: &Option<Axis<u32>>, default: u32| {
            u64::from(axis.as_ref().map_or(default, |a| {
                a.values().iter().copied().max().unwrap_or(default)
            }))
        };
        let classes = largest(&d.classes, SyntheticConfig::DEFAULT_CLASSES);
        let images = largest(&d.train_per_class, default.train_per_class)
            + largest(&d.test_per_class, default.test_per_class);
        let size = largest(&d.image_size, default.image_size);
        let bytes = classes * images * largest(&d.channels, default.channels) * size * size;
        let key = if d.image_size.is_some() {
            "dataset.image_size"
        } else {
            "dataset.train_per_class"
        };
        check(
            bytes <= MAX_SYNTHETIC_BYTES,
            key,
            &format!(
                "the synthetic set would hold {bytes} bytes of pixels, over the limit of {MAX_SYNTHETIC_BYTES} (2 GiB): fewer classes, images or pixels"
            ),
        )
    }
}

/// `dataset.path`: none for the generated synthetic set; for the others, a folder under the
/// workers' `--data-root`, and none of the synthetic set's own settings.
fn check_path(d: &DatasetSection, synthetic: bool) -> Result<(), Invalid> {
    if synthetic {
        check(
            d.path.is_none(),
            "dataset.path",
            "the synthetic data set is generated, it has no path",
        )?;
    } else {
        check(
            d.path.as_deref().is_some_and(|p| !p.is_empty()),
            "dataset.path",
            &format!("give the folder of the {} files", d.kind),
        )?;
        let path = d.path.as_deref().unwrap_or_default();
        check(
            path.len() <= MAX_PATH_BYTES,
            "dataset.path",
            &format!(
                "{} bytes is over the limit of {MAX_PATH_BYTES}: give the folder relative to the workers' --data-root",
                path.len()
            ),
        )?;
        check(
            !path.contains('\0'),
            "dataset.path",
            "holds a NUL character, which no file name can",
        )?;
        check_under_data_root("dataset.path", path, "the --data-root")?;
        for (key, given) in [
            ("dataset.train_per_class", d.train_per_class.is_some()),
            ("dataset.test_per_class", d.test_per_class.is_some()),
            ("dataset.image_size", d.image_size.is_some()),
            ("dataset.channels", d.channels.is_some()),
            ("dataset.noise", d.noise.is_some()),
        ] {
            check(
                !given,
                key,
                &format!("applies to the synthetic data set only, not to {}", d.kind),
            )?;
        }
    }
    Ok(())
}

/// A data set held in memory takes none of list data's settings.
fn no_list_settings(d: &DatasetSection) -> Result<(), Invalid> {
    for (key, given) in [
        ("dataset.train_list", d.train_list.is_some()),
        ("dataset.val_list", d.val_list.is_some()),
        ("dataset.test_list", d.test_list.is_some()),
        ("dataset.crop_size", d.crop_size.is_some()),
        ("dataset.resize_size", d.resize_size.is_some()),
        ("dataset.color_jitter", d.color_jitter.is_some()),
        ("dataset.mean", d.mean.is_some()),
        ("dataset.std", d.std.is_some()),
        ("dataset.reduced_decode", d.reduced_decode.is_some()),
        ("dataset.packed", d.packed.is_some()),
    ] {
        check(
            !given,
            key,
            &format!(
                "applies to list data (kind = \"list\" or a preset) only, not to {}",
                d.kind
            ),
        )?;
    }
    Ok(())
}

/// What makes the set long-tailed and splits it: the imbalance ratio, the Head/Tail split, the
/// class count.
fn check_long_tail(d: &DatasetSection) -> Result<(), Invalid> {
    let ratios = d.imbalance_ratio.as_ref().map(Axis::values);
    for &ratio in ratios.unwrap_or_default() {
        check(
            ratio >= 1.0,
            "dataset.imbalance_ratio",
            &format!("{ratio} is below 1 (1 keeps every class at full size)"),
        )?;
    }
    check(
        !(d.head_min_count.is_some() && d.head_fraction.is_some()),
        "dataset.head_fraction",
        "give head_min_count or head_fraction, not both",
    )?;
    positive_counts(d.head_min_count.as_ref(), "dataset.head_min_count")?;
    if let Some(fraction) = &d.head_fraction {
        for &f in fraction.values() {
            check(
                f > 0.0 && f < 1.0,
                "dataset.head_fraction",
                &format!("{f} is not between 0 and 1"),
            )?;
        }
    }
    if let Some(classes) = &d.classes {
        for &c in classes.values() {
            check(
                c >= 2,
                "dataset.classes",
                &format!("{c} classes is too few; at least 2"),
            )?;
            check(
                c <= MAX_CLASSES,
                "dataset.classes",
                &format!("{c} classes is over the limit of {MAX_CLASSES}"),
            )?;
        }
    }
    Ok(())
}

/// `dataset.val_per_class`: within the limit, none for list data (it has its own list), and
/// leaving the synthetic set images to train on.
fn check_validation_split(d: &DatasetSection, synthetic: bool) -> Result<(), Invalid> {
    check(
        d.val_per_class <= MAX_IMAGES_PER_CLASS,
        "dataset.val_per_class",
        &format!(
            "{} images a class is over the limit of {MAX_IMAGES_PER_CLASS}",
            d.val_per_class
        ),
    )?;
    check(
        !(d.kind.is_list() && d.val_per_class > 0),
        "dataset.val_per_class",
        &format!(
            "list data has its own validation list (val_list); {} takes none from training",
            d.kind
        ),
    )?;
    if synthetic && d.val_per_class > 0 {
        // File data sets are checked when loaded: only then are their class sizes known.
        let default = SyntheticConfig::DEFAULT.train_per_class;
        let smallest = d.train_per_class.as_ref().map_or(default, |axis| {
            axis.values().iter().copied().min().unwrap_or(default)
        });
        check(
            d.val_per_class < smallest,
            "dataset.val_per_class",
            &format!(
                "{} validation images a class leave none to train on: train_per_class is {smallest}",
                d.val_per_class
            ),
        )?;
    }
    Ok(())
}

/// The synthetic set's own settings: image counts, image size, channels, noise.
fn check_synthetic_settings(d: &DatasetSection) -> Result<(), Invalid> {
    positive_counts(d.train_per_class.as_ref(), "dataset.train_per_class")?;
    positive_counts(d.test_per_class.as_ref(), "dataset.test_per_class")?;
    for (key, axis) in [
        ("dataset.train_per_class", &d.train_per_class),
        ("dataset.test_per_class", &d.test_per_class),
    ] {
        for &n in axis.as_ref().map(Axis::values).unwrap_or_default() {
            check(
                n <= MAX_IMAGES_PER_CLASS,
                key,
                &format!("{n} images a class is over the limit of {MAX_IMAGES_PER_CLASS}"),
            )?;
        }
    }
    if let Some(size) = &d.image_size {
        for &s in size.values() {
            check(
                s >= 4,
                "dataset.image_size",
                &format!("{s} pixels is too small; at least 4"),
            )?;
            check(
                s <= MAX_IMAGE_SIZE,
                "dataset.image_size",
                &format!("{s} pixels is over the limit of {MAX_IMAGE_SIZE} (CIFAR images are 32)"),
            )?;
        }
    }
    if let Some(channels) = &d.channels {
        for &c in channels.values() {
            check(
                c == 1 || c == 3,
                "dataset.channels",
                &format!("{c} channels; images have 1 or 3"),
            )?;
        }
    }
    if let Some(noise) = &d.noise {
        for &n in noise.values() {
            check(n >= 0.0, "dataset.noise", &format!("{n} is negative"))?;
        }
    }
    Ok(())
}
