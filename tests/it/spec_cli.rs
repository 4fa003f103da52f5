//! `ltsweep validate`: the grids of the examples, and one clear error for each kind of bad spec.

use serde_json::Value;

use crate::harness::register;
use crate::support::{repo, run, stderr, stdout, write};

fn validate_json(spec: &str) -> Value {
    let output = run(&["validate", spec, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

register!(the_large_data_set_examples_validate);
/// The large data sets' examples are valid specs, each the grid its comments describe.
fn the_large_data_set_examples_validate() {
    for (name, jobs, bases) in [
        ("imagenet-lt", 6, vec!["ce", "la"]),
        ("inat2018", 2, vec!["ce", "ldam_drw"]),
        ("places-lt", 6, vec!["ce", "la"]),
    ] {
        let path = repo().join(format!("examples/{name}.toml"));
        let grid = validate_json(path.to_str().unwrap());
        assert_eq!(grid["sweep"], name);
        let listed = grid["jobs"].as_array().unwrap();
        assert_eq!(listed.len(), jobs, "{name}");
        let mut seen: Vec<&str> = listed.iter().map(|j| j["base"].as_str().unwrap()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, bases, "{name}");
    }
}

register!(paper_example_is_81_jobs_of_the_papers_plans_at_three_pc_weights);
fn paper_example_is_81_jobs_of_the_papers_plans_at_three_pc_weights() {
    let path = repo().join("examples/paper-table1.toml");
    let grid = validate_json(path.to_str().unwrap());
    assert_eq!(grid["sweep"], "paper-table1");
    let jobs = grid["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 81);
    let plans: Vec<&str> = jobs
        .iter()
        .step_by(9)
        .map(|j| j["plan"].as_str().unwrap())
        .collect();
    assert_eq!(
        plans,
        [
            "comp=none,pc=none",
            "comp=all,pc=none",
            "comp=head,pc=none",
            "comp=tail,pc=none",
            "comp=none,pc=all",
            "comp=none,pc=head",
            "comp=none,pc=tail",
            "comp=head,pc=tail",
            "comp=tail,pc=head",
        ]
    );
    let seeds: Vec<u64> = jobs[..3]
        .iter()
        .map(|j| j["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [0, 1, 2]);
    let weights: Vec<f64> = jobs[..9]
        .iter()
        .step_by(3)
        .map(|j| j["pc_weight"].as_f64().unwrap())
        .collect();
    assert_eq!(weights, [0.01, 0.1, 1.0]);
    // The same spec always gives the same ids.
    assert_eq!(grid, validate_json(path.to_str().unwrap()));
}

register!(baselines_example_is_two_plans_on_five_base_losses);
fn baselines_example_is_two_plans_on_five_base_losses() {
    let path = repo().join("examples/lt-baselines.toml");
    let grid = validate_json(path.to_str().unwrap());
    let jobs = grid["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2 * 5 * 3);
    let rows: Vec<(&str, &str)> = jobs
        .iter()
        .step_by(3)
        .map(|j| (j["base"].as_str().unwrap(), j["plan"].as_str().unwrap()))
        .collect();
    let mut expected = Vec::new();
    for base in ["ce", "focal", "cb", "la", "ldam_drw"] {
        for plan in ["comp=none,pc=none", "comp=tail,pc=head"] {
            expected.push((base, plan));
        }
    }
    assert_eq!(rows, expected);
    assert!(jobs.iter().all(|j| j["sampler"] == "instance"));
    let output = run(&["validate", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("ldam_drw"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("30 jobs = 5 base losses x 2 plans x 3 seeds"),
        "{text}"
    );
}

register!(base_loss_settings_are_checked);
fn base_loss_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let head = "name = \"b\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[train]\nepochs = 10\n";
    for (extra, key, message) in [
        (
            "[losses]\nbase = \"ldam\"\n",
            "losses.base",
            "unknown variant `ldam`",
        ),
        (
            "[losses]\nbase = [\"la\", \"la\"]\n",
            "losses.base",
            "la is listed twice",
        ),
        (
            "[losses]\ncb_beta = 1.0\n",
            "losses.cb_beta",
            "not in [0, 1)",
        ),
        (
            "[losses]\nfocal_gamma = [1, 2]\n",
            "losses.focal_gamma",
            "takes one value",
        ),
        (
            "[losses]\ndrw_epoch = 10\n",
            "losses.drw_epoch",
            "never starts in 10 epochs",
        ),
        (
            "[train]\nsampler = \"square\"\n",
            "train.sampler",
            "unknown variant `square`",
        ),
    ] {
        let text = if extra.starts_with("[train]") {
            head.replace("[train]\nepochs = 10\n", &format!("{extra}epochs = 10\n"))
        } else {
            format!("{head}{extra}")
        };
        let path = write(dir.path(), "b.toml", &text);
        let output = run(&["validate", path.to_str().unwrap()]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{extra}: {err}");
        assert!(err.contains(key) && err.contains(message), "{extra}: {err}");
    }
}

register!(full_grid_has_16_plans_per_seed_and_a_list_doubles_the_jobs);
fn full_grid_has_16_plans_per_seed_and_a_list_doubles_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let base = "name = \"g\"\nseeds = [0]\n[dataset]\nkind = \"cifar100\"\npath = \"c\"\n[losses]\ngrid = \"full\"\n";
    let one = write(dir.path(), "one.toml", base);
    let two = write(
        dir.path(),
        "two.toml",
        &format!("{base}pc_weight = [0.1, 1.0]\n"),
    );
    assert_eq!(
        validate_json(one.to_str().unwrap())["jobs"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
    let doubled = validate_json(two.to_str().unwrap());
    let jobs = doubled["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 32);
    assert_eq!(jobs[0]["pc_weight"], 0.1);
    assert_eq!(jobs[1]["pc_weight"], 1.0);
}

register!(the_table_lists_every_job);
fn the_table_lists_every_job() {
    let output = run(&[
        "validate",
        repo().join("examples/quickstart.toml").to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("comp=tail,pc=head"));
    assert!(
        text.trim_end().ends_with("27 jobs = 9 plans x 3 seeds"),
        "{text}"
    );
}

const GOOD: &str = r#"name = "bad"
seeds = [0, 1]

[dataset]
kind = "synthetic"

[train]
epochs = 10
batch_size = 32

[losses]
plans = [{ comp = "tail", pc = "head" }]
"#;

/// Runs `validate` on GOOD with `from` replaced by `to`: it must fail with exit code 2 and one
/// line on stderr naming the key and its line, and print nothing on stdout.
fn assert_refused(from: &str, to: &str, key: &str, line: usize) -> String {
    assert!(GOOD.contains(from), "the test's spec has no {from:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.toml", &GOOD.replacen(from, to, 1));
    let output = run(&["validate", path.to_str().unwrap()]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(output.stdout.is_empty(), "stdout: {}", stdout(&output));
    assert_eq!(err.trim_end().lines().count(), 1, "one message: {err}");
    assert!(err.contains(key), "names the key {key}: {err}");
    assert!(
        err.contains(&format!("line {line}")),
        "names line {line}: {err}"
    );
    assert!(err.contains("bad.toml"), "names the file: {err}");
    err
}

register!(a_good_spec_passes);
fn a_good_spec_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "good.toml", GOOD);
    assert!(run(&["validate", path.to_str().unwrap()]).status.success());
}

register!(an_unknown_key_is_named);
fn an_unknown_key_is_named() {
    let err = assert_refused("batch_size = 32", "batch_sise = 32", "train.batch_sise", 9);
    assert!(err.contains("unknown key"), "{err}");
}

register!(a_wrong_value_is_named);
fn a_wrong_value_is_named() {
    let err = assert_refused(
        "comp = \"tail\"",
        "comp = \"middle\"",
        "losses.plans[0].comp",
        12,
    );
    assert!(err.contains("middle"), "{err}");
}

register!(negative_and_zero_counts_are_refused);
fn negative_and_zero_counts_are_refused() {
    assert_refused("epochs = 10", "epochs = -3", "train.epochs", 8);
    assert_refused("batch_size = 32", "batch_size = 0", "train.batch_size", 9);
}

register!(no_seeds_is_refused);
fn no_seeds_is_refused() {
    let err = assert_refused("seeds = [0, 1]", "seeds = []", "seeds", 2);
    assert!(err.contains("at least one seed"), "{err}");
}

register!(a_decay_epoch_past_the_last_epoch_is_refused);
fn a_decay_epoch_past_the_last_epoch_is_refused() {
    let err = assert_refused(
        "epochs = 10",
        "epochs = 10\nlr_decay_epochs = [5, 12]",
        "train.lr_decay_epochs",
        9,
    );
    assert!(err.contains("12"), "{err}");
}

register!(a_file_that_is_not_toml_is_refused);
fn a_file_that_is_not_toml_is_refused() {
    let err = assert_refused("kind = \"synthetic\"", "kind = = synthetic", "column", 5);
    assert!(err.contains("not valid TOML"), "{err}");
}

register!(synthetic_sizes_past_their_limits_are_refused);
fn synthetic_sizes_past_their_limits_are_refused() {
    let err = assert_refused(
        "kind = \"synthetic\"",
        "kind = \"synthetic\"\nimage_size = 1000000",
        "dataset.image_size",
        6,
    );
    assert!(err.contains("over the limit of 512"), "{err}");
    let err = assert_refused(
        "kind = \"synthetic\"",
        "kind = \"synthetic\"\nclasses = 1000\nimage_size = 512",
        "dataset.image_size",
        7,
    );
    assert!(err.contains("2 GiB"), "{err}");
}

register!(a_long_name_is_refused_naming_the_limit);
fn a_long_name_is_refused_naming_the_limit() {
    let long = format!("name = \"{}\"", "n".repeat(100_000));
    let err = assert_refused("name = \"bad\"", &long, "name", 1);
    assert!(err.contains("over the limit of 64"), "{err}");
}

register!(a_missing_file_names_the_path);
fn a_missing_file_names_the_path() {
    let output = run(&["validate", "/no/such/spec.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/no/such/spec.toml"));
    assert_eq!(stderr(&output).trim_end().lines().count(), 1);
}
