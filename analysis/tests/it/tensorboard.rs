//! The report's TensorBoard event files, read back by TensorBoard's own reader (the
//! `tensorboard` package that `./dev setup` installs): every job a run named by its plan and
//! axes, every epoch's losses, learning rate and accuracies (test and validation) a scalar.

use std::path::PathBuf;
use std::process::Command;

use ltsweep_analysis::{Frames, write_report};
use ltsweep_domain::GroupAccuracy;
use serde_json::Value;

use crate::fixtures;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

#[test]
fn tensorboards_reader_reads_every_scalar_back() {
    let mut records = fixtures::golden();
    // A validation set's accuracies at the evaluated epochs, a few points under the test set's.
    for record in &mut records.jobs {
        let result = record.result.as_mut().expect("a result");
        for metrics in &mut result.epochs {
            metrics.val_accuracy = metrics.accuracy.as_ref().map(|a| GroupAccuracy {
                acc_all: a.acc_all.map(|v| v - 0.03),
                ..a.clone()
            });
        }
    }
    let frames = Frames::from_records(&records).expect("frames");
    let out = tempfile::tempdir().expect("a temporary directory");
    write_report(&frames, out.path()).expect("report");
    // Written twice: each event is still there once.
    write_report(&frames, out.path()).expect("report");

    let python = repo().join(".venv/bin/python");
    let output = Command::new(&python)
        .arg(repo().join("scripts/read_tensorboard.py"))
        .arg(out.path().join("tensorboard"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run ./dev setup", python.display()));
    assert!(
        output.status.success(),
        "TensorBoard's reader failed (./dev setup installs tensorboard): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let runs: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let runs = runs.as_object().expect("runs");
    assert_eq!(runs.len(), 9, "one run a job: {:?}", runs.keys());

    let mut checked = 0;
    for record in &records.jobs {
        let spec = &record.spec;
        let run = format!("{}/seed={}", spec.plan, spec.seed);
        let scalars = runs
            .get(&run)
            .unwrap_or_else(|| panic!("no run {run}: {:?}", runs.keys()));
        let series = |tag: &str| -> Vec<(u64, f64)> {
            scalars[tag]
                .as_array()
                .unwrap_or_else(|| panic!("{run}: no {tag}"))
                .iter()
                .map(|point| {
                    (
                        point[0].as_u64().expect("a step"),
                        point[1].as_f64().expect("a value"),
                    )
                })
                .collect()
        };
        let result = record.result.as_ref().expect("a result");
        let mut close = |found: f64, expected: f64, what: &str| {
            // The event files hold float32.
            assert!(
                (found - expected).abs() <= 1e-5 * expected.abs().max(1.0),
                "{run} {what}: {found} against {expected}"
            );
            checked += 1;
        };
        let every = |tag: &str, value: &dyn Fn(&ltsweep_domain::EpochMetrics) -> f64| {
            let points = series(tag);
            assert_eq!(points.len(), result.epochs.len(), "{run} {tag}");
            points
                .into_iter()
                .zip(&result.epochs)
                .map(|((step, found), metrics)| {
                    assert_eq!(step, u64::from(metrics.epoch));
                    (found, value(metrics))
                })
                .collect::<Vec<_>>()
        };
        for (found, expected) in every("loss/base", &|m| m.loss_base)
            .into_iter()
            .chain(every("loss/comp", &|m| m.loss_comp))
            .chain(every("loss/pc", &|m| m.loss_pc))
            .chain(every("lr", &|m| m.lr))
        {
            close(found, expected, "loss or lr");
        }
        let evaluated: Vec<&ltsweep_domain::EpochMetrics> = result
            .epochs
            .iter()
            .filter(|m| m.accuracy.is_some())
            .collect();
        for (set, pick) in [
            (
                "test",
                (|m| m.accuracy.clone()) as fn(&ltsweep_domain::EpochMetrics) -> _,
            ),
            ("val", |m| m.val_accuracy.clone()),
        ] {
            for (tag, group) in [
                ("all", (|a| a.acc_all) as fn(&GroupAccuracy) -> Option<f64>),
                ("head", |a| a.acc_head),
                ("tail", |a| a.acc_tail),
                ("many", |a| a.acc_many),
                ("medium", |a| a.acc_medium),
                ("few", |a| a.acc_few),
            ] {
                let points = series(&format!("{set}/{tag}"));
                assert_eq!(points.len(), evaluated.len(), "{run} {set}/{tag}");
                for ((step, found), metrics) in points.into_iter().zip(&evaluated) {
                    assert_eq!(step, u64::from(metrics.epoch));
                    let expected = group(&pick(metrics).expect("evaluated")).expect("a group");
                    close(found, expected * 100.0, &format!("{set}/{tag}"));
                }
            }
        }
    }
    // 9 jobs x (4 epochs x 4 losses and lr + 2 evaluations x 12 accuracies).
    assert_eq!(checked, 9 * (4 * 4 + 2 * 12));
}
