//! `[search]` and sampled settings: what they expand to and what `validate` refuses.

use super::*;
use crate::job::JobSpec;

fn parse(text: &str) -> Result<SweepSpec, String> {
    SweepSpec::parse(text).map_err(|e| e.to_string())
}

/// A synthetic spec with a validation split; `extra` is appended (sections and all).
fn spec(extra: &str) -> String {
    format!(
        "name = \"s\"\nseeds = [0, 1]\n[dataset]\nkind = \"synthetic\"\nval_per_class = 10\n{extra}"
    )
}

fn refusal(text: &str) -> String {
    parse(text).expect_err("refused")
}

#[test]
fn specs_without_a_search_keep_their_sweep_ids() {
    // The ids these examples had before `[search]` existed.
    for (text, id) in [
        (
            include_str!("../../../examples/paper-table1.toml"),
            "paper-table1-72b31520",
        ),
        (
            include_str!("../../../examples/fashion-mnist-lt-val.toml"),
            "fashion-mnist-lt-val-d2e9cc0c",
        ),
        (
            include_str!("../../../examples/two-stage.toml"),
            "two-stage-43584350",
        ),
        (
            include_str!("../../../examples/lt-baselines.toml"),
            "lt-baselines-5077607d",
        ),
    ] {
        let plain = SweepSpec::parse(text).unwrap();
        assert_eq!(plain.sweep_id().as_str(), id);
        let with_grid = format!("{text}\n[search]\nmethod = \"grid\"\n");
        let grid = SweepSpec::parse(&with_grid).unwrap();
        assert_eq!(grid.jobs(), plain.jobs());
        assert!(!SweepSpec::searches(text) && !SweepSpec::searches(&with_grid));
    }
}

#[test]
fn sampled_settings_draw_the_same_configurations_and_ids_from_the_same_spec() {
    let text = spec(
        "[train]\nlr = { log_uniform = [0.01, 0.5] }\nwarmup_epochs = { uniform = [1, 4] }\n\
         [losses]\nplans = [{}, { pc = \"head\" }]\npc_weight = { choice = [0.1, 1.0, 10.0] }\n\
         comp_weight = [0.5, 1.0]\n[search]\nsamples = 8\nseed = 3",
    );
    let spec = parse(&text).unwrap();
    let jobs = spec.jobs();
    // 2 plans x 2 comp weights x 8 drawn configurations x 2 seeds.
    assert_eq!(jobs.len(), 2 * 2 * 8 * 2);
    assert_eq!(spec.job_count(), jobs.len() as u128);
    assert_eq!(jobs, parse(&text).unwrap().jobs());
    let names: Vec<&str> = jobs[0].axes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["comp_weight", "lr", "warmup_epochs", "pc_weight"]);
    for job in &jobs {
        assert_eq!(job.train.lr, job.axes[1].value);
        assert!((0.01..=0.5).contains(&job.train.lr), "{}", job.train.lr);
        assert!((1..=4).contains(&job.train.warmup_epochs));
        assert!([0.1, 1.0, 10.0].contains(&job.losses.pc_weight));
    }
    // The 8 configurations are distinct, each with both seeds and the same 8 under every plan.
    let configurations = |plan_jobs: &[JobSpec]| -> Vec<(f64, u32, f64)> {
        plan_jobs
            .iter()
            .map(|j| (j.train.lr, j.train.warmup_epochs, j.losses.pc_weight))
            .collect()
    };
    let first: Vec<_> = configurations(&jobs[..16]).into_iter().step_by(2).collect();
    assert_eq!(first.len(), 8);
    for (i, c) in first.iter().enumerate() {
        assert!(!first[..i].contains(c), "{c:?} drawn twice");
    }
    assert_eq!(
        configurations(&jobs[..16]),
        configurations(&jobs[32..48]),
        "each plan runs the same drawn configurations"
    );
    // Another seed draws other configurations, under other ids.
    let reseeded = parse(&text.replace("seed = 3", "seed = 4")).unwrap().jobs();
    assert_ne!(reseeded[0].train.lr, jobs[0].train.lr);
    assert_ne!(reseeded[0].id, jobs[0].id);
    let mut ids: Vec<_> = jobs.iter().map(|j| &j.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), jobs.len());
}

#[test]
fn a_bad_distribution_or_sample_count_is_refused_naming_its_key() {
    for (extra, expected) in [
        (
            "[train]\nlr = { log_uniform = [0, 0.5] }\n[search]\nsamples = 4",
            "train.lr: log_uniform = [0, 0.5]: both bounds must be positive",
        ),
        (
            "[train]\nlr = { uniform = [0.5, 0.1] }\n[search]\nsamples = 4",
            "train.lr: uniform = [0.5, 0.1]: the low bound must be below the high one",
        ),
        (
            "[train]\nlr = { uniform = [0.1] }\n[search]\nsamples = 4",
            "train.lr: uniform takes two bounds, [low, high]; 1 given",
        ),
        (
            "[train]\nlr = { normal = [0.1, 1] }\n[search]\nsamples = 4",
            "train.lr: unknown distribution `normal`",
        ),
        (
            "[losses]\npc_weight = { choice = [1, 1] }\n[search]\nsamples = 4",
            "losses.pc_weight: choice lists 1 twice",
        ),
        (
            "[train]\nepochs = { uniform = [1.5, 3] }\n[search]\nsamples = 4",
            "train.epochs.uniform[0]: 1.5 is not a whole number",
        ),
        (
            "[train]\nlr = { uniform = [-1, 1] }\n[search]\nsamples = 4",
            "train.lr: -1 is not positive",
        ),
        (
            "[train]\nlr = { uniform = [0.1, 1] }",
            "search.samples: lr is given as a distribution: say how many configurations to draw",
        ),
        (
            "[search]\nsamples = 4",
            "search.samples: no setting is a distribution",
        ),
        (
            "[train]\nlr = { uniform = [0.1, 1] }\n[search]\nsamples = 10001",
            "search.samples: 10001 is not from 1 to 10000",
        ),
        (
            "[train]\nlr = { uniform = [0.1, 1] }\n[search]\nsamples = 0",
            "search.samples: 0 is not from 1 to 10000",
        ),
        (
            "[losses]\nfocal_gamma = { uniform = [0, 2] }\n[search]\nsamples = 4",
            "losses.focal_gamma: takes one value",
        ),
        (
            "[stage2]\nmethod = [\"tau_norm\"]\n[stage2.tau_norm]\ntau = { uniform = [0, 2] }\n[search]\nsamples = 4",
            "stage2.tau_norm.tau: a stage-2 setting takes a value or a list, not a distribution",
        ),
    ] {
        let err = refusal(&spec(extra));
        assert!(err.contains(expected), "{extra}\n{err}");
    }
}

/// An ASHA spec on a cosine schedule of 30 epochs with a 2-epoch warm-up.
fn asha(train: &str, search: &str) -> String {
    spec(&format!(
        "[train]\nepochs = 30\nlr_schedule = \"cosine\"\nwarmup_epochs = 2\n{train}\n\
         [search]\nmethod = \"asha\"\nmin_epochs = 3\n{search}"
    ))
}

#[test]
fn the_metric_is_read_on_the_validation_split_never_the_test_set() {
    let spec_of = |metric: &str| asha("", &format!("metric = \"{metric}\""));
    assert_eq!(
        parse(&spec_of("val_tail")).unwrap().search.metric(),
        SearchMetric::ValTail
    );
    assert_eq!(
        parse(&asha("", "")).unwrap().search.metric(),
        SearchMetric::ValAll
    );
    assert!(SweepSpec::searches(&asha("", "")));
    let err = refusal(&spec_of("test_tail"));
    assert!(
        err.contains("search.metric: `test_tail` is read on the test set: a configuration chosen on it makes the reported test accuracy optimistic"),
        "{err}"
    );
    let err = refusal(&spec_of("val_head"));
    assert!(
        err.contains("search.metric: `val_head` is not a validation metric (val_all, val_tail, val_all_tail_mean)"),
        "{err}"
    );
    let accuracy = crate::result::GroupAccuracy {
        acc_all: Some(0.8),
        acc_head: Some(0.9),
        acc_tail: Some(0.4),
        acc_many: None,
        acc_medium: None,
        acc_few: None,
    };
    assert_eq!(SearchMetric::ValAll.read(&accuracy), Some(0.8));
    assert_eq!(SearchMetric::ValTail.read(&accuracy), Some(0.4));
    assert_eq!(
        SearchMetric::ValAllTailMean.read(&accuracy),
        Some((0.8 + 0.4) / 2.0)
    );
}

#[test]
fn asha_needs_a_validation_split_and_every_bound_is_named() {
    let without_val = asha("", "").replace("val_per_class = 10\n", "");
    let err = refusal(&without_val);
    assert!(
        err.contains("search.method: asha judges configurations on a validation split, which the data set lacks: set dataset.val_per_class"),
        "{err}"
    );
    // List data: a preset with a validation list passes, one without (iNaturalist) does not.
    let list = |kind: &str| {
        format!(
            "name = \"l\"\nseeds = [0]\n[dataset]\nkind = \"{kind}\"\npath = \"d\"\n\
             [losses]\nplans = [{{}}]\n[train]\nepochs = 30\nlr_schedule = \"cosine\"\n\
             warmup_epochs = 2\n[search]\nmethod = \"asha\"\nmin_epochs = 3"
        )
    };
    parse(&list("imagenet-lt")).unwrap();
    assert!(refusal(&list("inat2018")).contains("dataset.val_list"));
    for (train, search, expected) in [
        (
            "",
            "reduction_factor = 1",
            "search.reduction_factor: 1 is not from 2 to 16",
        ),
        (
            "",
            "reduction_factor = 17",
            "search.reduction_factor: 17 is not from 2 to 16",
        ),
        (
            "",
            "min_epochs = 30",
            "search.min_epochs: 30 is not from 1 to 29 (below train.epochs = 30",
        ),
        (
            "",
            "max_epochs = 31",
            "search.max_epochs: 31 is not from search.min_epochs = 3 to train.epochs = 30",
        ),
        (
            "",
            "max_epochs = 2",
            "search.max_epochs: 2 is not from search.min_epochs = 3",
        ),
        (
            "",
            "budget_epochs = 100\nbudget_jobs = 4",
            "search.budget_jobs: give one budget",
        ),
        (
            "",
            "budget_epochs = 5",
            "search.budget_epochs: 5 is not from 6 (one configuration's 2 seeds to the first rung at epoch 3) to 540",
        ),
        (
            "",
            "budget_jobs = 19",
            "search.budget_jobs: 19 is not from 2 (one configuration's seeds) to 18",
        ),
        (
            "epochs = [20, 30]",
            "",
            "train.epochs: takes one value under search.method = \"asha\"",
        ),
    ] {
        // `train` replaces the 30 epochs; `search` may replace the first rung.
        let text = asha("", search)
            .replace("min_epochs = 3\nmin_epochs", "min_epochs")
            .replace(
                "epochs = 30",
                if train.is_empty() {
                    "epochs = 30"
                } else {
                    train
                },
            );
        let err = refusal(&text);
        assert!(err.contains(expected), "{train} {search}\n{err}");
    }
    let err = refusal(&spec("[search]\nmethod = \"asha\""));
    assert!(
        err.contains("search.min_epochs: asha needs the first rung's epoch"),
        "{err}"
    );
    let err = refusal(&spec("[search]\nreduction_factor = 2"));
    assert!(
        err.contains(
            "search.reduction_factor: applies to search.method = \"asha\" or \"hyperband\""
        ),
        "{err}"
    );
    let err = refusal(&format!(
        "{}\n[stage2]\nmethod = [\"none\", \"ncm\"]",
        asha("", "")
    ));
    assert!(
        err.contains("stage2.method: stage-2 jobs are not run under"),
        "{err}"
    );
    // Within every bound.
    parse(&asha("", "budget_epochs = 6\nmax_epochs = 30")).unwrap();
    parse(&asha("", "budget_jobs = 18")).unwrap();
}

#[test]
fn rungs_lie_at_powers_of_the_reduction_factor_and_are_evaluated() {
    let spec = parse(&asha("eval_epochs = [10]", "")).unwrap();
    assert_eq!(spec.rungs(), [3, 9, 27]);
    let job = &spec.jobs()[0];
    assert_eq!(job.train.eval_epochs, [3, 9, 10, 27]);
    assert_eq!(
        parse(&asha("", "reduction_factor = 2\nmax_epochs = 20"))
            .unwrap()
            .rungs(),
        [3, 6, 12]
    );
    // No rung at the last epoch: it ends the job.
    assert_eq!(
        parse(&asha("", "").replace("min_epochs = 3", "min_epochs = 10"))
            .unwrap()
            .rungs(),
        [10]
    );
    assert!(parse(&spec_text_grid()).unwrap().rungs().is_empty());
}

fn spec_text_grid() -> String {
    spec("[train]\nepochs = 30")
}

#[test]
fn a_rung_before_a_switch_of_phase_is_refused_naming_the_switch() {
    for (train, min_epochs, accepted, expected) in [
        (
            "pretrain_ce_epochs = 10",
            4,
            11,
            "search.min_epochs: rung at epoch 4 falls before pretrain_ce_epochs = 10: every plan is still plain cross entropy",
        ),
        (
            "pretrain_ce_epochs = [0, 10]",
            10,
            11,
            "rung at epoch 10 falls before pretrain_ce_epochs = 10",
        ),
        (
            "warmup_epochs = 5",
            5,
            6,
            "rung at epoch 5 falls before the end of the warm-up (train.warmup_epochs = 5): the learning rate is still rising to its peak, before the cosine schedule starts",
        ),
    ] {
        let text = asha(train, &format!("min_epochs = {min_epochs}"))
            .replace("min_epochs = 3\n", "")
            .replace("warmup_epochs = 2\nwarmup_epochs = 5", "warmup_epochs = 5");
        let err = refusal(&text);
        assert!(err.contains(expected), "{train}\n{err}");
        // The first epoch past the switch compares configurations in one phase.
        parse(&text.replace(
            &format!("min_epochs = {min_epochs}"),
            &format!("min_epochs = {accepted}"),
        ))
        .unwrap();
    }
    // LDAM-DRW re-weights from 0-based epoch 24 (80% of 30): a rung needs epoch 24 trained.
    let drw = |min: u32| {
        asha("", &format!("min_epochs = {min}")).replace("min_epochs = 3\n", "")
            + "\n[losses]\nplans = [{}]\nbase = [\"ce\", \"ldam_drw\"]"
    };
    let err = refusal(&drw(24));
    assert!(
        err.contains("rung at epoch 24 falls before the DRW switch (losses.drw_epoch = 24, 0-based: re-weighting starts in epoch 25): ldam_drw has not re-weighted yet"),
        "{err}"
    );
    parse(&drw(25)).unwrap();
    // The same rung without LDAM-DRW among the base losses is fine.
    parse(&drw(24).replace(", \"ldam_drw\"", "")).unwrap();
    // A step schedule: the default decays at epochs 24 and 27 of 30.
    let step = |min: u32, decays: &str| {
        spec(&format!(
            "[train]\nepochs = 30\nwarmup_epochs = 2\n{decays}\n[search]\nmethod = \"asha\"\nmin_epochs = {min}"
        ))
    };
    let err = refusal(&step(24, ""));
    assert!(
        err.contains("rung at epoch 24 falls before the first learning-rate decay (train.lr_decay_epochs = [24, 27]): under a step schedule every configuration is far from its final accuracy until the decay"),
        "{err}"
    );
    let accepted = parse(&step(25, "")).unwrap();
    // A rung between the two decays is fine; the next would pass the last epoch.
    assert_eq!(accepted.rungs(), [25]);
    let err = refusal(&step(10, "lr_decay_epochs = [10, 20]"));
    assert!(err.contains("train.lr_decay_epochs = [10, 20]"), "{err}");
    assert_eq!(
        parse(&step(11, "lr_decay_epochs = [10, 20]"))
            .unwrap()
            .rungs(),
        [11]
    );
}

fn hyperband(search: &str) -> String {
    asha("", search).replace("\"asha\"", "\"hyperband\"")
}

#[test]
fn hyperband_runs_a_bracket_a_rung_and_one_without_and_bounds_them() {
    // Rungs 3, 9 and 27 of 30: brackets from every rung to none.
    let spec = parse(&hyperband("")).unwrap();
    assert_eq!((spec.rungs(), spec.brackets()), (vec![3, 9, 27], 4));
    assert_eq!(parse(&hyperband("brackets = 2")).unwrap().brackets(), 2);
    assert_eq!(parse(&asha("", "")).unwrap().brackets(), 1);
    for (search, expected) in [
        ("brackets = 0", "search.brackets: 0 is not from 1 to 4"),
        ("brackets = 5", "search.brackets: 5 is not from 1 to 4"),
    ] {
        let err = refusal(&hyperband(search));
        assert!(err.contains(expected), "{search}\n{err}");
    }
    let err = refusal(&asha("", "brackets = 2"));
    assert!(
        err.contains("search.brackets: applies to search.method = \"hyperband\""),
        "{err}"
    );
    // What asha checks, hyperband checks, naming itself.
    let err = refusal(&hyperband("").replace("val_per_class = 10\n", ""));
    assert!(
        err.contains("search.method: hyperband judges configurations on a validation split"),
        "{err}"
    );
}

#[test]
fn hyperbands_brackets_take_their_share_of_the_configurations_in_grid_order() {
    // Three rungs, factor 3: weights 27/4, 9/3, 3/2, 1/1 of 12.25.
    let brackets = hyperband_brackets(9, 3, 4, 3);
    assert_eq!(brackets, [0, 1, 0, 2, 0, 3, 0, 1, 0]);
    for n in [1, 27, 100, 1000] {
        let brackets = hyperband_brackets(n, 3, 4, 3);
        let weights = [6.75, 3.0, 1.5, 1.0];
        for (b, weight) in weights.iter().enumerate() {
            let given = brackets.iter().filter(|&&x| x as usize == b).count() as f64;
            let share = weight / 12.25 * n as f64;
            assert!(
                (given - share).abs() <= 1.0,
                "{n}: bracket {b} has {given}, its share {share}"
            );
        }
        // The first configurations of a grid: the same brackets whatever comes after them.
        let first = n.min(9);
        assert_eq!(brackets[..first], hyperband_brackets(9, 3, 4, 3)[..first]);
    }
    // Fewer brackets: the most aggressive ones; one bracket is ASHA.
    assert!(hyperband_brackets(20, 3, 2, 3).iter().all(|&b| b < 2));
    assert!(hyperband_brackets(20, 3, 1, 3).iter().all(|&b| b == 0));
}
