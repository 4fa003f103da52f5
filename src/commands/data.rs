//! `ltsweep data summary` and `ltsweep data synth`.

use std::path::Path;

use ltsweep_proto::{ClassGroup, DatasetConfig, DatasetKind, HeadSplit, Shot, SyntheticConfig};
use ltsweep_worker::data::{self, DataError, ImageSet, Splits, cifar, synthetic};
use serde_json::json;

use crate::cli::{CifarFormat, DataCommand, DataSummaryArgs, DataSynthArgs};
use crate::exit::BadInput;

pub fn run(command: &DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Summary(args) => summary(args),
        DataCommand::Synth(args) => synth(args),
    }
}

/// Data errors are the user's to fix: a wrong path or a broken file.
pub fn bad_data(err: DataError) -> anyhow::Error {
    BadInput(err.to_string()).into()
}

fn summary(args: &DataSummaryArgs) -> anyhow::Result<()> {
    let kind: DatasetKind = args.kind.parse().map_err(BadInput)?;
    if args.imbalance < 1.0 {
        return Err(BadInput(format!("--imbalance {} is below 1", args.imbalance)).into());
    }
    let config = DatasetConfig {
        kind,
        path: args.path.as_ref().map(|p| p.display().to_string()),
        imbalance_ratio: args.imbalance,
        head: match (args.head_min_count, args.head_fraction) {
            (_, Some(f)) => HeadSplit::Fraction(f),
            (count, None) => HeadSplit::MinCount(count.unwrap_or(100)),
        },
        sampling_seed: args.sampling_seed,
        classes: args.classes,
        synthetic: default_synthetic(),
        val_per_class: args.val_per_class,
        subset_seed: None,
    };
    if kind != DatasetKind::Synthetic && config.path.is_none() {
        return Err(BadInput(format!("--path is needed for {kind}")).into());
    }
    let data = data::longtail::prepare(&config, Path::new("")).map_err(bad_data)?;
    let info = &data.classes;
    let classes_where = |keep: &dyn Fn(usize) -> bool| -> Vec<usize> {
        (0..info.num_classes()).filter(|&c| keep(c)).collect()
    };
    let summary = json!({
        "train_total": data.train.len(),
        "val_total": data.val.as_ref().map_or(0, ImageSet::len),
        "test_total": data.test.len(),
        "class_counts": info.train_counts,
        "head_classes": info.classes_in(ClassGroup::Head),
        "tail_classes": info.classes_in(ClassGroup::Tail),
        "many": classes_where(&|c| info.shots[c] == Shot::Many),
        "medium": classes_where(&|c| info.shots[c] == Shot::Medium),
        "few": classes_where(&|c| info.shots[c] == Shot::Few),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let counts = &info.train_counts;
        println!(
            "{} training images in {} classes ({} to {} a class), {} validation images, {} test images",
            data.train.len(),
            counts.len(),
            counts.first().unwrap_or(&0),
            counts.last().unwrap_or(&0),
            data.val.as_ref().map_or(0, ImageSet::len),
            data.test.len()
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

fn synth(args: &DataSynthArgs) -> anyhow::Result<()> {
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
