//! A report directory holds every file, and its Parquet frames have their columns.

use std::fs::File;
use std::path::{Path, PathBuf};

use ltsweep_analysis::{Frames, write_report};
use polars::prelude::{DataType, ParquetReader, SerReader};

use crate::fixtures;

const FILES: [&str; 15] = [
    "table1.md",
    "table1.csv",
    "table1.tex",
    "shots.md",
    "shots.csv",
    "shots.tex",
    "recall.csv",
    "per_class_recall.csv",
    "jobs.parquet",
    "per_class.parquet",
    "epochs.parquet",
    "figure1.png",
    "figure1.svg",
    "curves.png",
    "curves.svg",
];

fn columns(path: &Path) -> Vec<(String, DataType)> {
    let frame = ParquetReader::new(File::open(path).expect("open"))
        .finish()
        .expect("read");
    frame
        .schema()
        .iter()
        .map(|(name, dtype)| (name.to_string(), dtype.clone()))
        .collect()
}

fn names(columns: &[(String, DataType)]) -> Vec<&str> {
    columns.iter().map(|(name, _)| name.as_str()).collect()
}

#[test]
fn report_writes_every_file() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("report");
    let report = write_report(&frames, &out).expect("report");

    let (events, files): (Vec<&PathBuf>, Vec<&PathBuf>) = report
        .files
        .iter()
        .partition(|path| path.starts_with(out.join("tensorboard")));
    // One TensorBoard run a job, named by its plan and seed.
    assert_eq!(events.len(), 9);
    assert!(
        events.iter().any(|path| path
            .to_string_lossy()
            .contains("tensorboard/comp=tail,pc=head/seed=2/events.out.tfevents.")),
        "{events:?}"
    );
    let mut written: Vec<String> = files
        .into_iter()
        .map(|path| {
            assert_eq!(path.parent(), Some(out.as_path()));
            path.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    written.sort();
    let mut expected = FILES.map(String::from).to_vec();
    expected.sort();
    assert_eq!(written, expected);
    for name in FILES {
        let size = std::fs::metadata(out.join(name)).expect(name).len();
        assert!(size > 0, "{name} is empty");
    }
    let png = std::fs::read(out.join("figure1.png")).expect("figure1.png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(out.join("curves.svg")).expect("curves.svg");
    assert!(svg.contains("<svg") && svg.contains("comp=tail,pc=head (best)"));
    assert_eq!(
        std::fs::read_to_string(out.join("table1.md")).expect("table1.md"),
        report.table1_markdown
    );
}

/// Figure 1's early panel is the first evaluation once the plans' losses differ: one made
/// during the CE-only pre-training epochs shows every plan of a seed alike.
#[test]
fn figure1_is_early_after_the_ce_only_epochs() {
    let mut records = fixtures::golden();
    for job in &mut records.jobs {
        let result = job.result.as_mut().expect("every golden job succeeded");
        let early = result.epochs[fixtures::EARLY_EPOCH as usize - 1].clone();
        let first = &mut result.epochs[0];
        (first.loss_comp, first.loss_pc) = (0.0, 0.0);
        (first.accuracy, first.per_class) = (early.accuracy, early.per_class);
    }
    let frames = Frames::from_records(&records).expect("frames");
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_report(&frames, dir.path()).expect("report");
    let svg = std::fs::read_to_string(dir.path().join("figure1.svg")).expect("figure1.svg");
    assert!(
        svg.contains(&format!("Early: epoch {}", fixtures::EARLY_EPOCH)),
        "{svg}"
    );
}

/// Figure 1 sets CE alone against the best plan; when CE alone is best, against the runner-up.
#[test]
fn figure1_compares_ce_with_the_best_other_plan() {
    let figure1_text = |outcomes: &[fixtures::Outcome]| {
        let records = fixtures::sweep(fixtures::GOLDEN_SPEC, outcomes);
        let frames = Frames::from_records(&records).expect("frames");
        let dir = tempfile::tempdir().expect("a temporary directory");
        write_report(&frames, dir.path()).expect("report");
        std::fs::read_to_string(dir.path().join("figure1.svg")).expect("figure1.svg")
    };
    let seeds = |head, tail| [fixtures::succeeded(head, tail); 3];

    let svg = figure1_text(&[seeds(60.0, 20.0), seeds(62.0, 22.0), seeds(66.0, 26.0)].concat());
    assert!(svg.contains("CE alone vs comp=tail,pc=head"), "{svg}");
    assert!(svg.contains("best: comp=tail,pc=head"), "{svg}");

    let svg = figure1_text(&[seeds(70.0, 40.0), seeds(60.0, 30.0), seeds(66.0, 34.0)].concat());
    assert!(svg.contains("CE alone vs comp=tail,pc=head"), "{svg}");
    assert!(
        svg.contains("CE alone, the best plan (comp=none,pc=none)"),
        "{svg}"
    );
    assert!(svg.contains("runner-up: comp=tail,pc=head"), "{svg}");
}

#[test]
fn parquet_frames_have_their_columns_in_plain_types() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_report(&frames, dir.path()).expect("report");

    let jobs = columns(&dir.path().join("jobs.parquet"));
    assert_eq!(
        names(&jobs),
        [
            "sweep",
            "job_id",
            "plan",
            "comp_on",
            "pc_on",
            "base",
            "sampler",
            "stage2",
            "augment",
            "seed",
            "state",
            "attempts",
            "acc_all_final",
            "acc_head_final",
            "acc_tail_final",
            "acc_many_final",
            "acc_medium_final",
            "acc_few_final",
            "final_epoch",
            "acc_all_best",
            "acc_head_best",
            "acc_tail_best",
            "acc_many_best",
            "acc_medium_best",
            "acc_few_best",
            "best_epoch",
            "train_seconds",
            "epochs_retrained",
            "worker",
            "error",
            "parent_id",
            "val_all_final",
            "val_head_final",
            "val_tail_final",
            "val_many_final",
            "val_medium_final",
            "val_few_final",
            "acc_all_best_val",
            "acc_head_best_val",
            "acc_tail_best_val",
            "acc_many_best_val",
            "acc_medium_best_val",
            "acc_few_best_val",
            "val_all_best_val",
            "val_head_best_val",
            "val_tail_best_val",
            "val_many_best_val",
            "val_medium_best_val",
            "val_few_best_val",
            "best_val_epoch",
            "stopped_at",
            "stopped_reading",
            "search_metric",
            "rung_readings",
        ]
    );
    let per_class = columns(&dir.path().join("per_class.parquet"));
    assert_eq!(
        names(&per_class),
        [
            "job_id",
            "plan",
            "seed",
            "epoch",
            "class",
            "train_count",
            "group",
            "shot",
            "test_total",
            "test_correct",
            "recall",
            "precision",
            "final",
        ]
    );
    let epochs = columns(&dir.path().join("epochs.parquet"));
    assert_eq!(
        names(&epochs),
        [
            "job_id",
            "plan",
            "seed",
            "epoch",
            "lr",
            "loss_base",
            "loss_comp",
            "loss_pc",
            "images_per_second",
            "seconds",
            "acc_all",
            "acc_head",
            "acc_tail",
            "acc_many",
            "acc_medium",
            "acc_few",
            "val_all",
            "val_head",
            "val_tail",
            "val_many",
            "val_medium",
            "val_few",
        ]
    );
    for (name, dtype) in jobs.iter().chain(&per_class).chain(&epochs) {
        assert!(
            matches!(
                dtype,
                DataType::String
                    | DataType::Float64
                    | DataType::UInt32
                    | DataType::UInt64
                    | DataType::Boolean
            ),
            "{name} is {dtype}"
        );
    }
}
