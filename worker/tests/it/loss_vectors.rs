//! The Rust losses against the reference vectors of `reference/losses.py` and of
//! `tests/data/losses/make_baselines.py` (PyTorch, float64): every value and every autograd
//! gradient within a relative tolerance of 1e-4, however small (LDAM's gradients reach 1e-230,
//! a confident focal loss's 1e-21: an absolute floor would pass any value below it), and the
//! reference's exact zeros (an empty mask's) exactly.
//!
//! Reads `tests/data/losses/*.json`, and also every `*.json` in the folder named by the
//! environment variable `LTSWEEP_LOSS_VECTORS` when it is set (vectors written with another
//! seed: `python3 losses.py OUT_DIR SEED`, `python3 make_baselines.py OUT_DIR SEED`).

use std::path::{Path, PathBuf};

use ltsweep_worker::{baselines, losses};
use serde_json::Value;
use tch::{Kind, Tensor};

use crate::register;
use crate::support::{matrix, number};

const RELATIVE: f64 = 1e-4;

fn labels(value: &Value) -> Tensor {
    let labels: Vec<i64> = serde_json::from_value(value.clone()).expect("a list of labels");
    Tensor::from_slice(&labels)
}

fn class_mask(value: &Value) -> Tensor {
    let mask: Vec<bool> = serde_json::from_value(value.clone()).expect("a list of booleans");
    Tensor::from_slice(&mask)
}

/// Equal within [`RELATIVE`] of the reference, at any magnitude; a reference zero only to zero.
fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= RELATIVE * expected.abs()
}

fn assert_close(what: &str, actual: &Tensor, expected: &Tensor) {
    assert_eq!(actual.size(), expected.size(), "{what}: shape");
    let actual = Vec::<f64>::try_from(actual.flatten(0, -1)).unwrap();
    let expected = Vec::<f64>::try_from(expected.flatten(0, -1)).unwrap();
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert!(close(*a, *e), "{what}[{i}]: {a} against the reference {e}");
    }
}

fn counts(value: &Value) -> Vec<u32> {
    serde_json::from_value(value.clone()).expect("a list of class counts")
}

fn per_class(values: Vec<f64>) -> Tensor {
    Tensor::from_slice(&values)
}

/// The base losses: logits in, `grad_logits` out; class terms from `class_counts`.
fn base_loss(loss: &str, vector: &Value, logits: &Tensor, y: &Tensor) -> Option<Tensor> {
    let n = || counts(&vector["class_counts"]);
    Some(match loss {
        "focal" => baselines::focal(logits, y, number(vector, "gamma")),
        "class_balanced" => baselines::weighted_cross_entropy(
            logits,
            y,
            &per_class(baselines::class_balanced_weights(
                &n(),
                number(vector, "beta"),
            )),
        ),
        "logit_adjusted" => baselines::logit_adjusted(
            logits,
            y,
            &per_class(baselines::log_priors(&n())),
            number(vector, "tau"),
        ),
        "ldam" => {
            let weights = vector["drw"].as_bool().expect("drw: a boolean").then(|| {
                per_class(baselines::class_balanced_weights(
                    &n(),
                    ltsweep_domain::BaseLoss::DRW_BETA,
                ))
            });
            baselines::ldam(
                logits,
                y,
                &per_class(baselines::ldam_margins(&n(), number(vector, "max_margin"))),
                number(vector, "s"),
                weights.as_ref(),
            )
        }
        _ => return None,
    })
}

fn leaf(t: Tensor) -> Tensor {
    t.to_kind(Kind::Double).set_requires_grad(true)
}

/// Checks one vector; returns its loss name.
fn check(vector: &Value, file: &Path) -> String {
    let loss = vector["loss"].as_str().expect("a loss name").to_owned();
    let what = format!("{}: {} {}", file.display(), vector["case"], loss);
    let y = labels(&vector["labels"]);
    let expected_value = Tensor::from(vector["value"].as_f64().expect("a value"));
    match loss.as_str() {
        "cross_entropy" => {
            let logits = leaf(matrix(&vector["logits"]));
            let value = losses::cross_entropy(&logits, &y);
            value.backward();
            assert_close(&format!("{what} value"), &value, &expected_value);
            assert_close(
                &format!("{what} grad_logits"),
                &logits.grad(),
                &matrix(&vector["grad_logits"]),
            );
        }
        "complement_entropy" => {
            let logits = leaf(matrix(&vector["logits"]));
            let mask = losses::sample_mask(&class_mask(&vector["class_mask"]), &y, Kind::Double);
            let value = losses::complement_entropy(&logits, &y, &mask);
            value.backward();
            assert_close(&format!("{what} value"), &value, &expected_value);
            assert_close(
                &format!("{what} grad_logits"),
                &logits.grad(),
                &matrix(&vector["grad_logits"]),
            );
        }
        "prototype_conformity" => {
            let features = leaf(matrix(&vector["features"]));
            let centers = leaf(matrix(&vector["centers"]));
            let mask = losses::sample_mask(&class_mask(&vector["class_mask"]), &y, Kind::Double);
            let push = vector["push_weight"].as_f64().expect("a push weight");
            let value = losses::prototype_conformity(&features, &centers, &y, &mask, push);
            value.backward();
            assert_close(&format!("{what} value"), &value, &expected_value);
            assert_close(
                &format!("{what} grad_features"),
                &features.grad(),
                &matrix(&vector["grad_features"]),
            );
            assert_close(
                &format!("{what} grad_centers"),
                &centers.grad(),
                &matrix(&vector["grad_centers"]),
            );
        }
        other => {
            let logits = leaf(matrix(&vector["logits"]));
            let value = base_loss(other, vector, &logits, &y)
                .unwrap_or_else(|| panic!("{what}: unknown loss {other}"));
            value.backward();
            assert_close(&format!("{what} value"), &value, &expected_value);
            assert_close(
                &format!("{what} grad_logits"),
                &logits.grad(),
                &matrix(&vector["grad_logits"]),
            );
        }
    }
    loss
}

fn vector_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The losses of `losses.py`: each of its files has one vector of each.
const REFERENCE: [&str; 3] = [
    "complement_entropy",
    "cross_entropy",
    "prototype_conformity",
];
/// The base losses of `make_baselines.py`.
const BASELINES: [&str; 4] = ["class_balanced", "focal", "ldam", "logit_adjusted"];

register!(the_comparison_fails_on_a_near_zero_value_that_is_wrong);
fn the_comparison_fails_on_a_near_zero_value_that_is_wrong() {
    // A gradient of 1e-20 computed as 0, or 10% off, fails; rounding in the last digits passes.
    assert!(!close(0.0, 1e-20));
    assert!(!close(1.1e-20, 1e-20));
    assert!(close(1.000_000_000_1e-20, 1e-20));
    assert!(!close(1e-30, 0.0));
    assert!(close(0.0, 0.0) && close(-0.0, 0.0));
}

register!(loss_vectors);
fn loss_vectors() {
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/losses");
    let mut dirs = vec![ours.clone()];
    if let Some(extra) = std::env::var_os("LTSWEEP_LOSS_VECTORS") {
        dirs.push(PathBuf::from(extra));
    }
    for dir in dirs {
        let files = vector_files(&dir);
        assert!(!files.is_empty(), "no vectors in {}", dir.display());
        let mut checked = std::collections::BTreeMap::new();
        let mut reference_files = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let doc: Value = serde_json::from_str(&text).unwrap();
            reference_files += usize::from(doc["generator"] == "losses.py");
            for vector in doc["vectors"].as_array().expect("a list of vectors") {
                *checked.entry(check(vector, file)).or_insert(0) += 1;
            }
        }
        // Every file of losses.py has one vector of each of its losses.
        for loss in REFERENCE {
            assert_eq!(
                checked.get(loss).copied().unwrap_or(0),
                reference_files,
                "{loss}: {checked:?}"
            );
        }
        if dir == ours {
            // Ours hold every loss, the base losses included.
            assert!(reference_files > 0, "no vectors of losses.py");
            for loss in BASELINES {
                assert!(
                    checked.contains_key(loss),
                    "no vectors of {loss}: {checked:?}"
                );
            }
        }
    }
}
