//! The Rust losses against the reference vectors of `reference/losses.py` (PyTorch, float64):
//! every value and every autograd gradient within a relative tolerance of 1e-4.
//!
//! Reads `tests/data/losses/*.json`, and also every `*.json` in the folder named by the
//! environment variable `LTSWEEP_LOSS_VECTORS` when it is set (vectors written with another
//! seed: `python3 losses.py OUT_DIR SEED`).

use std::path::{Path, PathBuf};

use ltsweep_worker::losses;
use serde_json::Value;
use tch::{Kind, Tensor};

const RELATIVE: f64 = 1e-4;
/// Below this, a value counts as zero (an empty mask's exact zeros).
const ABSOLUTE: f64 = 1e-12;

fn matrix(value: &Value) -> Tensor {
    let rows: Vec<Vec<f64>> =
        serde_json::from_value(value.clone()).expect("a list of lists of numbers");
    let cols = rows.first().map_or(0, Vec::len);
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    Tensor::from_slice(&flat).view([-1, cols as i64])
}

fn labels(value: &Value) -> Tensor {
    let labels: Vec<i64> = serde_json::from_value(value.clone()).expect("a list of labels");
    Tensor::from_slice(&labels)
}

fn class_mask(value: &Value) -> Tensor {
    let mask: Vec<bool> = serde_json::from_value(value.clone()).expect("a list of booleans");
    Tensor::from_slice(&mask)
}

fn assert_close(what: &str, actual: &Tensor, expected: &Tensor) {
    assert_eq!(actual.size(), expected.size(), "{what}: shape");
    let actual = Vec::<f64>::try_from(actual.flatten(0, -1)).unwrap();
    let expected = Vec::<f64>::try_from(expected.flatten(0, -1)).unwrap();
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert!(
            (a - e).abs() <= RELATIVE * e.abs() + ABSOLUTE,
            "{what}[{i}]: {a} against the reference {e}"
        );
    }
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
        other => panic!("{what}: unknown loss {other}"),
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

#[test]
fn loss_vectors() {
    let mut dirs = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/losses")];
    if let Some(extra) = std::env::var_os("LTSWEEP_LOSS_VECTORS") {
        dirs.push(PathBuf::from(extra));
    }
    for dir in dirs {
        let files = vector_files(&dir);
        assert!(!files.is_empty(), "no vectors in {}", dir.display());
        let mut checked = std::collections::BTreeMap::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let doc: Value = serde_json::from_str(&text).unwrap();
            for vector in doc["vectors"].as_array().expect("a list of vectors") {
                *checked.entry(check(vector, file)).or_insert(0) += 1;
            }
        }
        // Every file has one vector of each loss.
        assert_eq!(checked.len(), 3, "{checked:?}");
        assert!(checked.values().all(|&n| n == files.len()), "{checked:?}");
    }
}
