//! Weight balancing's class-balanced loss and MaxNorm projection against the float64 vectors of
//! `tests/data/weight_balancing/make_vectors.py` (PyTorch, as Alshammari et al.'s code computes
//! them): every value and gradient within a relative 1e-9, at any magnitude.

use ltsweep_worker::baselines;
use ltsweep_worker::stage2::weight_balancing::{
    class_balanced_softmax_bce, max_norm_radius, project_rows, row_norms,
};
use tch::{Kind, Tensor};

use crate::register;
use crate::support::{matrix, number, vectors};

const RELATIVE: f64 = 1e-9;

fn assert_close(what: &str, actual: &Tensor, expected: &Tensor) {
    assert_eq!(actual.size(), expected.size(), "{what}: shape");
    let actual = Vec::<f64>::try_from(actual.flatten(0, -1)).unwrap();
    let expected = Vec::<f64>::try_from(expected.flatten(0, -1)).unwrap();
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert!(
            (a - e).abs() <= RELATIVE * e.abs(),
            "{what}[{i}]: {a} against the reference {e}"
        );
    }
}

register!(the_class_balanced_loss_matches_its_reference_in_value_and_gradient);
fn the_class_balanced_loss_matches_its_reference_in_value_and_gradient() {
    let doc = vectors("weight_balancing");
    let cases = doc["loss"].as_array().expect("loss vectors");
    assert!(cases.len() >= 4);
    for vector in cases {
        let what = format!("loss {}", vector["case"]);
        let logits = matrix(&vector["logits"])
            .to_kind(Kind::Double)
            .set_requires_grad(true);
        let labels: Vec<i64> = serde_json::from_value(vector["labels"].clone()).unwrap();
        let counts: Vec<u32> = serde_json::from_value(vector["class_counts"].clone()).unwrap();
        let weights = Tensor::from_slice(&baselines::class_balanced_weights(
            &counts,
            number(vector, "beta"),
        ));
        let value = class_balanced_softmax_bce(&logits, &Tensor::from_slice(&labels), &weights);
        value.backward();
        assert_close(
            &format!("{what} value"),
            &value,
            &Tensor::from(number(vector, "value")),
        );
        assert_close(
            &format!("{what} grad_logits"),
            &logits.grad(),
            &matrix(&vector["grad_logits"]),
        );
    }
}

register!(max_norm_projects_each_class_row_as_their_pgd_does);
fn max_norm_projects_each_class_row_as_their_pgd_does() {
    let doc = vectors("weight_balancing");
    let cases = doc["max_norm"].as_array().expect("MaxNorm vectors");
    assert!(cases.len() >= 4);
    for vector in cases {
        let what = format!("max_norm {}", vector["case"]);
        let weight = matrix(&vector["weight"]).to_kind(Kind::Double);
        let radius = max_norm_radius(&weight, number(vector, "max_norm"));
        let expected = number(vector, "radius");
        assert!(
            (radius - expected).abs() <= RELATIVE * expected,
            "{what}: radius {radius} against {expected}"
        );
        // Some rows are over the ball and some inside, so that both branches are compared.
        let norms = row_norms(&weight);
        assert!(norms.gt(radius).any().int64_value(&[]) == 1, "{what}");
        assert!(norms.le(radius).any().int64_value(&[]) == 1, "{what}");
        project_rows(&weight, radius);
        assert_close(
            &format!("{what} projected"),
            &weight,
            &matrix(&vector["projected"]),
        );
    }
}
