//! The mixed-label losses of batch mixing against `tests/data/mixing/make_mixed.py`'s float64
//! vectors (PyTorch autograd): `λ·L(y_a) + (1 − λ)·L(y_b)` of ce, focal, cb and la (mixup,
//! CutMix), and Remix's per-sample form for ce and la with its label weights, each value and
//! gradient within a relative 1e-6 (float64 on both sides; the rest is summation order).

use std::path::Path;

use ltsweep_domain::BaseLoss;
use ltsweep_worker::augment::{LabelWeight, mixed_loss, remix_weight};
use ltsweep_worker::baselines::BaseObjective;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::register;
use crate::support::matrix;

fn labels(value: &Value) -> Tensor {
    Tensor::from_slice(&serde_json::from_value::<Vec<i64>>(value.clone()).unwrap())
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-6 * expected.abs().max(1e-12),
        "{what}: {actual} against the reference {expected}"
    );
}

register!(mixed_losses_and_gradients_equal_the_float64_reference);
fn mixed_losses_and_gradients_equal_the_float64_reference() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mixing/mixed.json");
    let file: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 18);
    for v in vectors {
        let base = match v["base"].as_str().unwrap() {
            "ce" => BaseLoss::Ce,
            "focal" => BaseLoss::Focal { gamma: 1.0 },
            "cb" => BaseLoss::Cb { beta: 0.99 },
            "la" => BaseLoss::La { tau: 1.0 },
            other => panic!("{other}"),
        };
        let counts: Vec<u32> = serde_json::from_value(v["counts"].clone()).unwrap();
        let objective = BaseObjective::new(base, &counts, Device::Cpu);
        let lam = v["lam"].as_f64().unwrap();
        let (y_a, y_b) = (labels(&v["labels"]), labels(&v["partner"]));
        let what = format!("{} {} λ {lam}", v["mix"], v["base"]);
        let weight = if v["mix"] == "remix" {
            let a: Vec<i64> = Vec::try_from(&y_a).unwrap();
            let b: Vec<i64> = Vec::try_from(&y_b).unwrap();
            let weights: Vec<f64> = a
                .iter()
                .zip(&b)
                .map(|(&a, &b)| {
                    remix_weight(
                        f64::from(counts[a as usize]),
                        f64::from(counts[b as usize]),
                        lam,
                        3.0,
                        0.5,
                    )
                })
                .collect();
            let theirs: Vec<f64> = serde_json::from_value(v["weights"].clone()).unwrap();
            assert_eq!(weights, theirs, "{what}: Remix's label weights");
            LabelWeight::PerSample(Tensor::from_slice(&weights))
        } else {
            LabelWeight::Batch(lam)
        };
        let logits = matrix(&v["logits"]).set_requires_grad(true);
        let loss = mixed_loss(
            &weight,
            &y_a,
            &y_b,
            &|y| objective.loss(&logits, y, 0),
            &|y| objective.per_sample(&logits, y),
        );
        assert_eq!(loss.kind(), Kind::Double);
        close(loss.double_value(&[]), v["value"].as_f64().unwrap(), &what);
        loss.backward();
        let grad = Vec::<f64>::try_from(logits.grad().flatten(0, -1)).unwrap();
        let expected = Vec::<f64>::try_from(matrix(&v["grad"]).flatten(0, -1)).unwrap();
        for (i, (g, e)) in grad.iter().zip(&expected).enumerate() {
            close(*g, *e, &format!("{what}: grad[{i}]"));
        }
    }
}
