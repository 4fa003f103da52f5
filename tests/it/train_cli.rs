//! `ltsweep train` and `ltsweep data`: result.json, exact resume through the command line, the
//! CIFAR-100-LT counts, and clear errors for bad data files.

use std::path::Path;

use serde_json::Value;

use crate::harness::register;
use crate::support::{run, stderr, stdout, write};

const SPEC: &str = r#"
name = "cli-train"
seeds = [0]
[dataset]
kind = "synthetic"
classes = 5
train_per_class = 60
test_per_class = 20
image_size = 8
noise = 2.0
imbalance_ratio = 10
head_min_count = 20
[model]
depth = 8
[train]
epochs = 4
batch_size = 16
lr = 0.05
warmup_epochs = 1
lr_decay_epochs = [3]
checkpoint_every = 1
"#;

fn train(spec: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        spec.to_str().unwrap(),
        "--plan",
        "comp=tail,pc=head",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// result.json without the clock.
fn metrics(dir: &Path) -> Value {
    let mut result: Value =
        serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap()).unwrap();
    result["train_seconds"] = Value::Null;
    for epoch in result["epochs"].as_array_mut().unwrap() {
        epoch["seconds"] = Value::Null;
        epoch["images_per_second"] = Value::Null;
    }
    result
}

register!(two_epochs_and_a_resume_end_as_four_straight);
fn two_epochs_and_a_resume_end_as_four_straight() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "spec.toml", SPEC);
    let straight = dir.path().join("straight");
    let resumed = dir.path().join("resumed");
    let output = train(&spec, &straight, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = train(&spec, &resumed, &["--stop-after", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("stopped after epoch 2"));
    assert!(!resumed.join("result.json").exists());
    let output = train(&spec, &resumed, &["--resume"]);
    assert!(output.status.success(), "{}", stderr(&output));

    let result = metrics(&straight);
    assert_eq!(result, metrics(&resumed));
    for key in [
        "acc_all",
        "acc_head",
        "acc_tail",
        "acc_many",
        "acc_medium",
        "acc_few",
    ] {
        assert!(result.get(key).is_some(), "result.json has {key}");
    }
    let class = &result["per_class"][0];
    for key in [
        "class",
        "train_count",
        "test_total",
        "test_correct",
        "recall",
        "precision",
    ] {
        assert!(class.get(key).is_some(), "per_class has {key}");
    }
    assert_eq!(result["epochs"].as_array().unwrap().len(), 4);
    assert!(
        result["acc_all"].as_f64().unwrap() > 0.2,
        "{}",
        result["acc_all"]
    );
}

register!(resume_without_a_checkpoint_is_a_clear_error);
fn resume_without_a_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "spec.toml", SPEC);
    let output = train(&spec, &dir.path().join("none"), &["--resume"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("checkpoint.ltsw"),
        "{}",
        stderr(&output)
    );
}

register!(cifar100_lt_counts_from_files_in_the_official_format);
fn cifar100_lt_counts_from_files_in_the_official_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar-100-binary");
    let output = run(&[
        "data",
        "synth",
        "--format",
        "cifar100",
        "--classes",
        "100",
        "--train-per-class",
        "500",
        "--test-per-class",
        "100",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(&[
        "data",
        "summary",
        "--kind",
        "cifar100",
        "--path",
        data.to_str().unwrap(),
        "--imbalance",
        "100",
        "--head-min-count",
        "100",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["train_total"], 10_847);
    assert_eq!(summary["test_total"], 10_000);
    let counts: Vec<u64> = serde_json::from_value(summary["class_counts"].clone()).unwrap();
    assert_eq!(&counts[..3], &[500, 477, 455]);
    assert_eq!(counts[99], 5);
    let len = |key: &str| summary[key].as_array().unwrap().len();
    assert_eq!((len("head_classes"), len("tail_classes")), (35, 65));
    assert_eq!((len("many"), len("medium"), len("few")), (35, 35, 30));
    assert_eq!(summary["head_classes"][34], 34);
}

/// Exit code 2 and one line naming `needle`.
fn assert_bad_data(args: &[&str], needle: &str) {
    let output = run(args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "names {needle}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

register!(bad_data_files_are_named);
fn bad_data_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("c10");
    let path = data.to_str().unwrap();
    let summary = [
        "data",
        "summary",
        "--kind",
        "cifar10",
        "--path",
        path,
        "--imbalance",
        "5",
    ];
    assert_bad_data(&summary, path);

    let output = run(&[
        "data",
        "synth",
        "--format",
        "cifar10",
        "--classes",
        "10",
        "--train-per-class",
        "5",
        "--test-per-class",
        "2",
        "--out",
        path,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(run(&summary).status.success());
    // 5 images a class at ratio 10: floor(5 * 0.1^(7/9)) = 0 images of class 7.
    let mut steeper = summary.to_vec();
    let last = steeper.len() - 1;
    steeper[last] = "10";
    assert_bad_data(&steeper, "leaves class 7 of 10 with no training image");
    let mut more = summary.to_vec();
    more.extend(["--classes", "20"]);
    assert_bad_data(&more, "20 classes asked");

    let batch = data.join("data_batch_3.bin");
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &bytes[..bytes.len() - 1]).unwrap();
    assert_bad_data(&summary, "data_batch_3.bin");

    let mut wrong_label = bytes.clone();
    wrong_label[0] = 200;
    std::fs::write(&batch, wrong_label).unwrap();
    assert_bad_data(&summary, "label 200");

    let mnist = dir.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(mnist.join(name), [0u8, 0, 9, 9, 0, 0, 0, 0]).unwrap();
    }
    assert_bad_data(
        &[
            "data",
            "summary",
            "--kind",
            "mnist",
            "--path",
            mnist.to_str().unwrap(),
        ],
        "train-images-idx3-ubyte: not an IDX file of unsigned bytes: wrong magic number",
    );
}

register!(a_training_job_on_missing_data_names_the_folder);
fn a_training_job_on_missing_data_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "spec.toml",
        "name = \"m\"\nseeds = [0]\n[dataset]\nkind = \"cifar100\"\npath = \"nowhere\"\n[train]\nepochs = 2\n",
    );
    let out = dir.path().join("out");
    assert_bad_data(
        &[
            "train",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--data-root",
            dir.path().to_str().unwrap(),
        ],
        "nowhere: not found",
    );
}
