//! `ltsweep data summary` and `ltsweep data synth`, and the list flags every `data` command
//! reads (`data check` and `data pack` are in `data_files`).

use std::path::Path;

use ltsweep_domain::{
    ClassGroup, DatasetConfig, DatasetKind, HeadSplit, ListConfig, Shot, SyntheticConfig,
};
use ltsweep_worker::data::list::Lists;
use ltsweep_worker::data::{self, ClassInfo, DataError, ImageSet, Splits, cifar, synthetic};
use serde_json::json;

use crate::cli::{CifarFormat, DataSummaryArgs, DataSynthArgs, ListArgs};
use crate::exit::BadInput;

/// The lists a command's flags name: the flags' files, else the preset's.
pub fn list_config(kind: DatasetKind, lists: &ListArgs) -> anyhow::Result<ListConfig> {
    if !kind.is_list() {
        return Err(BadInput(format!("{kind} is not list data")).into());
    }
    let preset = kind.preset();
    let named = |flag: &str, given: &Option<String>, known: Option<&str>| {
        given
            .clone()
            .or_else(|| known.map(str::to_owned))
            .ok_or_else(|| BadInput(format!("{flag} is needed for kind {kind}")))
    };
    Ok(ListConfig {
        train: named("--train-list", &lists.train_list, preset.map(|p| p.train))?,
        val: lists
            .val_list
            .clone()
            .or_else(|| preset.and_then(|p| p.val.map(str::to_owned))),
        test: named("--test-list", &lists.test_list, preset.map(|p| p.test))?,
        crop_size: ltsweep_domain::spec::DEFAULT_CROP,
        resize_size: ltsweep_domain::spec::DEFAULT_CROP * 8 / 7,
        color_jitter: 0.0,
        normalization: kind.normalization(),
        reduced_decode: true,
        packed: lists.packed.clone(),
    })
}

/// Reads and checks the lists of list data named by flags.
pub fn read_lists(
    kind: DatasetKind,
    path: &Path,
    lists: &ListArgs,
    classes: Option<u32>,
    head: HeadSplit,
) -> anyhow::Result<Lists> {
    if kind.preset().is_some() && classes.is_some() {
        return Err(BadInput(format!(
            "{kind} has a fixed class count; --classes is for kind list"
        ))
        .into());
    }
    // The administrator's own command: the folder they give is the data root itself, so an
    // absolute --path works, and the lists and images are held to it as a worker holds a
    // spec's to its --data-root.
    let config = DatasetConfig {
        kind,
        path: None,
        imbalance_ratio: 1.0,
        head,
        sampling_seed: 0,
        classes,
        synthetic: default_synthetic(),
        val_per_class: 0,
        subset_seed: None,
        list: Some(list_config(kind, lists)?),
    };
    data::list::read_lists(&config, path).map_err(bad_data)
}

/// Data errors are the user's to fix: a wrong path or a broken file.
pub fn bad_data(err: DataError) -> anyhow::Error {
    BadInput(err.to_string()).into()
}

pub fn summary(args: &DataSummaryArgs) -> anyhow::Result<()> {
    let kind: DatasetKind = args.kind.parse().map_err(BadInput)?;
    if args.imbalance < 1.0 {
        return Err(BadInput(format!("--imbalance {} is below 1", args.imbalance)).into());
    }
    let head = match (args.head_min_count, args.head_fraction) {
        (_, Some(f)) => HeadSplit::Fraction(f),
        (count, None) => HeadSplit::MinCount(count.unwrap_or(100)),
    };
    // As for list data (see `read_lists`): --path is the root, the data set its whole folder.
    let config = DatasetConfig {
        kind,
        path: args.path.as_ref().map(|_| String::new()),
        imbalance_ratio: args.imbalance,
        head,
        sampling_seed: args.sampling_seed,
        classes: args.classes,
        synthetic: default_synthetic(),
        val_per_class: args.val_per_class,
        subset_seed: None,
        list: None,
    };
    if kind != DatasetKind::Synthetic && config.path.is_none() {
        return Err(BadInput(format!("--path is needed for {kind}")).into());
    }
    if kind.is_list() {
        let path = args.path.as_deref().unwrap_or(Path::new(""));
        let lists = read_lists(kind, path, &args.lists, args.classes, head)?;
        let val = lists.val.as_ref().map(|v| v.len());
        return print_summary(
            &lists.classes,
            (lists.train.len(), val, lists.test.len()),
            args.json,
        );
    }
    let root = args.path.as_deref().unwrap_or(Path::new(""));
    let data = data::longtail::prepare(&config, root).map_err(bad_data)?;
    print_summary(
        &data.classes,
        (
            data.train.len(),
            data.val.as_ref().map(ImageSet::len),
            data.test.len(),
        ),
        args.json,
    )
}

/// Counts and class groups, as JSON or text; `val` is shown for data sets that have one.
fn print_summary(
    info: &ClassInfo,
    (train, val, test): (usize, Option<usize>, usize),
    as_json: bool,
) -> anyhow::Result<()> {
    let classes_where = |keep: &dyn Fn(usize) -> bool| -> Vec<usize> {
        (0..info.num_classes()).filter(|&c| keep(c)).collect()
    };
    let mut summary = json!({
        "train_total": train,
        "test_total": test,
        "class_counts": info.train_counts,
        "head_classes": info.classes_in(ClassGroup::Head),
        "tail_classes": info.classes_in(ClassGroup::Tail),
        "many": classes_where(&|c| info.shots[c] == Shot::Many),
        "medium": classes_where(&|c| info.shots[c] == Shot::Medium),
        "few": classes_where(&|c| info.shots[c] == Shot::Few),
    });
    if let Some(val) = val {
        summary["val_total"] = json!(val);
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let counts = &info.train_counts;
        let val = val.map_or(String::new(), |v| format!("{v} validation images, "));
        println!(
            "{train} training images in {} classes ({} to {} a class), {val}{test} test images",
            counts.len(),
            counts.iter().max().unwrap_or(&0),
            counts.iter().min().unwrap_or(&0),
        );
        for (name, key) in [
            ("Head", "head_classes"),
            ("Tail", "tail_classes"),
            ("Many", "many"),
            ("Medium", "medium"),
            ("Few", "few"),
        ] {
            println!(
                "{name:>6}: {} classes",
                summary[key].as_array().map_or(0, Vec::len)
            );
        }
    }
    Ok(())
}

/// The synthetic set's settings when a command gives none.
fn default_synthetic() -> SyntheticConfig {
    SyntheticConfig {
        train_per_class: 500,
        test_per_class: 100,
        image_size: 32,
        channels: 3,
        noise: 1.0,
    }
}

pub fn synth(args: &DataSynthArgs) -> anyhow::Result<()> {
    let (format, most) = match args.format {
        CifarFormat::Cifar10 => (cifar::Format::Cifar10, 10),
        CifarFormat::Cifar100 => (cifar::Format::Cifar100, 100),
    };
    if args.classes < 2 || args.classes > most {
        return Err(BadInput(format!(
            "--classes {} is not between 2 and {most} for this format",
            args.classes
        ))
        .into());
    }
    if args.train_per_class == 0 || args.test_per_class == 0 {
        return Err(BadInput(
            "--train-per-class and --test-per-class must be at least 1".to_owned(),
        )
        .into());
    }
    let config = SyntheticConfig {
        train_per_class: args.train_per_class,
        test_per_class: args.test_per_class,
        ..default_synthetic()
    };
    let Splits {
        mut train,
        mut test,
        ..
    } = synthetic::splits(args.classes as usize, &config);
    // The format's label space, whatever the number of classes used.
    train.num_classes = format.classes();
    test.num_classes = format.classes();
    cifar::write(
        &args.out,
        format,
        &Splits {
            train,
            val: None,
            test,
        },
    )
    .map_err(bad_data)?;
    println!(
        "wrote {} training and {} test images of {} classes to {}",
        args.classes * args.train_per_class,
        args.classes * args.test_per_class,
        args.classes,
        args.out.display()
    );
    Ok(())
}
