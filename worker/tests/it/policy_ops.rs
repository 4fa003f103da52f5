//! The image ops of AutoAugment, RandAugment and TrivialAugmentWide against torchvision 0.26's
//! (`_apply_op`, the function its three transforms call, NEAREST, no fill) on fixed uint8
//! images, at a spread of the magnitude bins of the three policies' spaces, with both signs: equal pixel
//! for pixel, with no tolerance. The policies' tables (bins, signs, AutoAugment's sub-policies)
//! are compared with torchvision's too. The ops run as the trainer runs them, every case of a
//! group in one batch, each image with its own op.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ltsweep_data::rng::Rng;
use ltsweep_domain::Policy;
use ltsweep_worker::augment::PolicyOps;
use ltsweep_worker::augment::ops::{self, Op, OpDraw};
use serde_json::{Value, json};
use tch::{Kind, Tensor};

use crate::register;

/// Images of one size: `[N, C, H, W]` bytes.
struct Group {
    shape: [i64; 4],
    pixels: Vec<u8>,
}

/// Photographs are not needed to reach every branch: noise, a gradient, a flat channel
/// (AutoContrast's and Equalize's degenerate cases) beside two-valued ones, a narrow range;
/// grey noise, a grey gradient and four grey levels.
fn groups() -> Vec<Group> {
    let mut rng = Rng::derive(31, &[]);
    let mut rgb = Vec::new();
    let (h, w) = (32usize, 32usize);
    for kind in 0..4 {
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    rgb.push(match kind {
                        0 => rng.below(256) as u8,
                        1 => ((x * 8 + y * 3 + c * 40) % 256) as u8,
                        2 if c == 1 => 77,
                        2 => [30, 200][rng.below(2) as usize],
                        _ => 100 + rng.below(11) as u8,
                    });
                }
            }
        }
    }
    let grey: Vec<u8> = (0..3 * 28 * 28)
        .map(|i| match i / 784 {
            0 => rng.below(256) as u8,
            1 => ((i % 28) * 9) as u8,
            _ => (rng.below(4) * 60) as u8,
        })
        .collect();
    vec![
        Group {
            shape: [4, 3, 32, 32],
            pixels: rgb,
        },
        Group {
            shape: [3, 1, 28, 28],
            pixels: grey,
        },
    ]
}

fn spaces(h: i64, w: i64) -> Vec<(&'static str, PolicyOps)> {
    [
        ("autoaugment", Policy::AutoaugmentCifar10),
        (
            "randaugment",
            Policy::Randaugment {
                num_ops: 2,
                magnitude: 9,
            },
        ),
        ("trivialaugment_wide", Policy::TrivialaugmentWide),
    ]
    .into_iter()
    .map(|(name, policy)| (name, PolicyOps::new(policy, h, w).unwrap()))
    .collect()
}

/// Every op with a spread of the magnitudes the three spaces give it, both signs where signed.
fn cases(h: i64, w: i64) -> Vec<OpDraw> {
    let mut out = Vec::new();
    for op in Op::ALL {
        let mut magnitudes: Vec<f64> = vec![];
        let mut signed = false;
        for (_, ops) in spaces(h, w) {
            for (o, bins, s) in ops.space() {
                if o == op {
                    magnitudes.extend(bins);
                    signed |= s;
                }
            }
        }
        if magnitudes.is_empty() {
            magnitudes.push(0.0);
        }
        magnitudes.sort_by(f64::total_cmp);
        magnitudes.dedup();
        // Every fifth value and the largest: the bins themselves are compared as tables.
        let last = magnitudes.len() - 1;
        let picked = magnitudes
            .iter()
            .enumerate()
            .filter(|&(k, _)| k % 5 == 0 || k == last)
            .map(|(_, &m)| m);
        for m in picked {
            out.push(OpDraw { op, magnitude: m });
            if signed && m != 0.0 {
                out.push(OpDraw { op, magnitude: -m });
            }
        }
    }
    out
}

fn python() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

register!(every_op_equals_torchvisions_pixel_for_pixel);
fn every_op_equals_torchvisions_pixel_for_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let groups = groups();
    let mut all_cases = Vec::new();
    let mut per_group = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        std::fs::write(dir.path().join(format!("images_{g}.u8")), &group.pixels).unwrap();
        let [n, _, h, w] = group.shape;
        let mut mine = Vec::new();
        for draw in cases(h, w) {
            for i in 0..n {
                all_cases.push(json!([g, i, draw.op.name(), draw.magnitude]));
                mine.push((i, draw));
            }
        }
        per_group.push(mine);
    }
    let shapes: Vec<[i64; 4]> = groups.iter().map(|g| g.shape).collect();
    std::fs::write(
        dir.path().join("cases.json"),
        json!({"shapes": shapes, "cases": all_cases}).to_string(),
    )
    .unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/augment/torchvision_ops.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("the project's .venv python (./dev setup makes it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tables: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tables.json")).unwrap()).unwrap();

    for (g, group) in groups.iter().enumerate() {
        let [_, c, h, w] = group.shape;
        // The magnitude bins and signs of each policy's space.
        for (name, ops) in spaces(h, w) {
            let theirs = &tables["groups"][g][name];
            let mine: BTreeMap<&str, (Vec<f64>, bool)> = ops
                .space()
                .into_iter()
                .map(|(op, bins, signed)| (op.name(), (bins, signed)))
                .collect();
            let theirs: BTreeMap<&str, (Vec<f64>, bool)> = theirs
                .as_object()
                .unwrap()
                .iter()
                .map(|(op, v)| {
                    let bins = v["bins"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|b| b.as_f64().unwrap());
                    (
                        op.as_str(),
                        (bins.collect(), v["signed"].as_bool().unwrap()),
                    )
                })
                .collect();
            assert_eq!(mine, theirs, "{name}'s space at {h}x{w}");
        }
        // Every case of the group in one batch, each image with its op.
        let images = Tensor::from_slice(&group.pixels).view(group.shape);
        let cases = &per_group[g];
        let index: Vec<i64> = cases.iter().map(|(i, _)| *i).collect();
        let batch = images.index_select(0, &Tensor::from_slice(&index));
        let draws: Vec<OpDraw> = cases.iter().map(|(_, d)| *d).collect();
        let mine = ops::apply(&batch, &draws);
        let theirs = std::fs::read(dir.path().join(format!("out_{g}.u8"))).unwrap();
        let theirs = Tensor::from_slice(&theirs).view([cases.len() as i64, c, h, w]);
        let differ = mine
            .ne_tensor(&theirs)
            .view([cases.len() as i64, -1])
            .sum_dim_intlist(1, false, Kind::Int64);
        let wrong: Vec<String> = (0..cases.len())
            .filter(|&k| differ.int64_value(&[k as i64]) > 0)
            .map(|k| {
                let (i, d) = cases[k];
                format!(
                    "{}({}) on image {i}: {} pixels",
                    d.op.name(),
                    d.magnitude,
                    differ.int64_value(&[k as i64])
                )
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "group {g}: {} of {} cases differ from torchvision, e.g. {:?}",
            wrong.len(),
            cases.len(),
            &wrong[..wrong.len().min(8)]
        );
    }
    // AutoAugment's sub-policies.
    for (name, policy) in [
        ("cifar10", Policy::AutoaugmentCifar10),
        ("imagenet", Policy::AutoaugmentImagenet),
    ] {
        let mine: Vec<Value> = PolicyOps::new(policy, 32, 32)
            .unwrap()
            .sub_policies()
            .iter()
            .map(|sub| json!(sub.map(|(op, p, bin)| json!([op.name(), p, bin]))))
            .collect();
        assert_eq!(Value::Array(mine), tables["policies"][name], "{name}");
    }
}
