//! MiSLAS's label-aware smoothing, its factors and its loss, against the float64 vectors of
//! `tests/data/mislas/make_vectors.py` (PyTorch, as `LabelAwareSmoothing` of Zhong et al.'s
//! `methods.py` computes them): every factor, value and gradient within a relative 1e-9.

use ltsweep_domain::SmoothShape;
use ltsweep_worker::stage2::mislas::{label_aware_smoothing, smoothing_factors};
use serde_json::Value;
use tch::{Kind, Tensor};

use crate::register;
use crate::support::{matrix, number, vectors};

const RELATIVE: f64 = 1e-9;

fn assert_close(what: &str, actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        // Smoothing factors of 0 are compared absolutely.
        assert!(
            (a - e).abs() <= RELATIVE * e.abs().max(1e-6),
            "{what}[{i}]: {a} against the reference {e}"
        );
    }
}

/// The vector's factors as ltsweep computes them.
fn factors(vector: &Value) -> Vec<f64> {
    let counts: Vec<u32> = serde_json::from_value(vector["class_counts"].clone()).unwrap();
    let shape: SmoothShape = vector["shape"].as_str().unwrap().parse().unwrap();
    smoothing_factors(
        &counts,
        number(vector, "smooth_head"),
        number(vector, "smooth_tail"),
        shape,
    )
    .expect("counts that differ")
}

register!(the_label_aware_smoothing_factors_match_their_reference_in_every_shape);
fn the_label_aware_smoothing_factors_match_their_reference_in_every_shape() {
    let doc = vectors("mislas");
    let cases = doc["factors"].as_array().expect("factor vectors");
    assert!(cases.len() >= 5);
    let mut shapes = Vec::new();
    for vector in cases {
        let what = format!("factors {}", vector["case"]);
        let expected: Vec<f64> = serde_json::from_value(vector["smooth"].clone()).unwrap();
        assert_close(&what, &factors(vector), &expected);
        shapes.push(vector["shape"].as_str().unwrap().to_owned());
    }
    for shape in ["concave", "linear", "convex"] {
        assert!(shapes.iter().any(|s| s == shape), "no {shape} vector");
    }
}

register!(the_label_aware_smoothing_loss_matches_its_reference_in_value_and_gradient);
fn the_label_aware_smoothing_loss_matches_its_reference_in_value_and_gradient() {
    let doc = vectors("mislas");
    let cases = doc["loss"].as_array().expect("loss vectors");
    assert!(cases.len() >= 5);
    for vector in cases {
        let what = format!("loss {}", vector["case"]);
        let logits = matrix(&vector["logits"])
            .to_kind(Kind::Double)
            .set_requires_grad(true);
        let labels: Vec<i64> = serde_json::from_value(vector["labels"].clone()).unwrap();
        let smooth = Tensor::from_slice(&factors(vector));
        let value = label_aware_smoothing(&logits, &Tensor::from_slice(&labels), &smooth);
        value.backward();
        assert_close(
            &format!("{what} value"),
            &[value.double_value(&[])],
            &[number(vector, "value")],
        );
        let grad = Vec::<f64>::try_from(logits.grad().flatten(0, -1)).unwrap();
        let expected = Vec::<f64>::try_from(matrix(&vector["grad_logits"]).flatten(0, -1)).unwrap();
        assert_close(&format!("{what} grad_logits"), &grad, &expected);
    }
}
