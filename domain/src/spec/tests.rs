use super::*;
use crate::arch::{Arch, Precision};

fn error(text: &str) -> SpecError {
    SweepSpec::parse(text).unwrap_err()
}

#[test]
fn a_missing_section_is_named_without_a_line() {
    let err = error("name = \"x\"\nseeds = [0]\n");
    assert_eq!(err.to_string(), "missing key `dataset`");
}

#[test]
fn a_missing_key_in_a_section_names_the_section() {
    let err = error("name = \"x\"\nseeds = [0]\n[dataset]\npath = \"p\"\n");
    assert_eq!(err.to_string(), "line 3: dataset: missing key `kind`");
}

#[test]
fn dotted_keys_and_inline_tables_are_located() {
    let err = error("name = \"x\"\nseeds = [0]\ndataset = { kind = \"synthetic\", noise = -1 }\n");
    assert_eq!(err.to_string(), "line 3: dataset.noise: -1 is negative");
    let err =
        error("name = \"x\"\nseeds = [0]\ndataset.kind = \"synthetic\"\nmodel.depth = [20, 21]\n");
    assert!(
        err.to_string()
            .starts_with("line 4: model.depth: 21 is not"),
        "{err}"
    );
}

#[test]
fn a_grid_of_millions_of_jobs_is_refused() {
    let err = error(
        "name = \"x\"\nseeds = [0, 1]\n[dataset]\nkind = \"synthetic\"\n[train]\nlr = [1,2,3,4,5,6,7,8,9,10]\nmomentum = [0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9]\nweight_decay = [0,1,2,3,4,5,6,7,8,9]\nlr_decay_factor = [0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1]\n[losses]\npc_weight = [1,2,3,4,5,6,7,8,9,10]\n",
    );
    assert!(
        err.to_string().contains("the grid has 1800000 jobs"),
        "{err}"
    );
}

#[test]
fn a_list_of_one_value_is_no_axis() {
    let spec = SweepSpec::parse(
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[losses]\npc_weight = [0.1]\n",
    )
    .unwrap();
    assert_eq!(spec.losses.pc_weight, Axis::One(0.1));
    assert!(spec.axes().is_empty());
}

#[test]
fn whole_number_settings_refuse_fractions() {
    let err = error(
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[train]\nepochs = 2.5\n",
    );
    assert_eq!(
        err.to_string(),
        "line 6: train.epochs: 2.5 is not a whole number"
    );
}

#[test]
fn file_data_sets_need_a_path_and_no_synthetic_settings() {
    let err = error("name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"cifar10\"\n");
    assert_eq!(
        err.to_string(),
        "line 3: dataset.path: give the folder of the cifar10 files"
    );
    let err =
        error("name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"mnist\"\npath = \"m\"\nnoise = 1\n");
    assert!(
        err.to_string()
            .starts_with("line 6: dataset.noise: applies to the synthetic"),
        "{err}"
    );
}

#[test]
fn a_long_name_or_path_is_refused_naming_the_limit() {
    let name = "n".repeat(MAX_NAME_CHARS + 1);
    let err = error(&format!(
        "name = \"{name}\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n"
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "line 1: name: 65 characters is over the limit of 64: every job's id carries the name, give a shorter one"
        )
    );
    let path = "p".repeat(MAX_PATH_BYTES + 1);
    let err = error(&format!(
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"cifar10\"\npath = \"{path}\"\n"
    ));
    assert!(
        err.to_string()
            .starts_with("line 5: dataset.path: 1025 bytes is over the limit of 1024"),
        "{err}"
    );
    SweepSpec::parse(&format!(
        "name = \"{}\"\nseeds = [0]\n[dataset]\nkind = \"cifar10\"\npath = \"{}\"\n",
        "n".repeat(MAX_NAME_CHARS),
        "p".repeat(MAX_PATH_BYTES)
    ))
    .unwrap();
}

#[test]
fn synthetic_sizes_a_worker_cannot_hold_are_refused() {
    let synthetic = |extra: &str| {
        SweepSpec::parse(&format!(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n{extra}\n"
        ))
    };
    let err = synthetic("image_size = 1000000").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 5: dataset.image_size: 1000000 pixels is over the limit of 512 (CIFAR images are 32)"
    );
    let err = synthetic("train_per_class = 1000000").unwrap_err();
    assert!(
        err.to_string()
            .contains("1000000 images a class is over the limit of 100000"),
        "{err}"
    );
    let err = synthetic("classes = 20000").unwrap_err();
    assert!(err.to_string().contains("over the limit of 10000"), "{err}");
    // Each setting within its limit, together too much: 1000 classes of 600 images of
    // 3 x 512 x 512.
    let err = synthetic("classes = 1000\nimage_size = 512").unwrap_err();
    assert!(
        err.to_string()
            .contains("over the limit of 2147483648 (2 GiB)"),
        "{err}"
    );
    synthetic("classes = 100\nimage_size = 64").unwrap();
}

#[test]
fn older_specs_keep_their_ids() {
    // Printed by `ltsweep validate --json examples/paper-table1.toml` before the model and
    // recipe settings of the ImageNet models existed.
    let spec = SweepSpec::parse(include_str!("../../../examples/paper-table1.toml")).unwrap();
    let jobs = spec.jobs();
    assert_eq!(jobs[0].sweep.as_str(), "paper-table1-72b31520");
    assert_eq!(jobs[0].id.as_str(), "1f5ae0c9b399");
    assert_eq!(jobs[1].id.as_str(), "ef9e87e085e0");
}

fn imagenet(extra: &str) -> Result<SweepSpec, SpecError> {
    SweepSpec::parse(&format!(
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n{extra}\n"
    ))
}

#[test]
fn imagenet_models_take_their_own_depth_and_default_to_bf16_channels_last() {
    let spec = imagenet("[model]\narch = \"resnet50\"").unwrap();
    let job = &spec.jobs()[0];
    assert_eq!(job.model.depth, 50);
    assert_eq!(job.model.arch, Arch::Resnet50);
    assert_eq!(job.train.precision, Precision::Bf16);
    assert!(job.train.channels_last);
    let err = imagenet("[model]\narch = \"resnet50\"\ndepth = 20").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 7: model.depth: applies to the CIFAR ResNet; resnet50 has its own depth"
    );
    let err = imagenet("[model]\narch = \"resnet51\"").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line 6: model.arch: unknown variant `resnet51`"),
        "{err}"
    );
    let err = imagenet("[train]\nprecision = \"bf16\"").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line 6: train.precision: applies to the ImageNet"),
        "{err}"
    );
    let spec = imagenet(
        "[model]\narch = \"resnet10\"\n[train]\nprecision = \"fp32\"\nchannels_last = false",
    )
    .unwrap();
    let job = &spec.jobs()[0];
    assert_eq!(
        (job.train.precision, job.train.channels_last),
        (Precision::Fp32, false)
    );
}

#[test]
fn a_cosine_schedule_has_no_decay_epochs_and_scales_with_the_batch() {
    let err = imagenet("[train]\nlr_schedule = \"cosine\"\nlr_decay_epochs = [10]").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line 7: train.lr_decay_epochs: applies to the step"),
        "{err}"
    );
    let spec = imagenet("[train]\nlr_schedule = \"cosine\"\nbatch_size = 512\nlr_reference_batch = 256\nlr = 0.1\nwarmup_epochs = 0").unwrap();
    let train = &spec.jobs()[0].train;
    assert!(train.lr_decay_epochs.is_empty());
    assert!((train.lr_at(0) - 0.2).abs() < 1e-12);
    let err = imagenet("[train]\nlr_reference_batch = 0").unwrap_err();
    assert!(
        err.to_string()
            .contains("train.lr_reference_batch: must be at least 1"),
        "{err}"
    );
}

#[test]
fn init_files_stay_inside_the_data_root() {
    for (path, message) in [
        (
            "/etc/r50.safetensors",
            "`/etc/r50.safetensors` is absolute; a spec reads only files inside the workers' --data-root",
        ),
        (
            "../r50.safetensors",
            "`../r50.safetensors` has a `..` component; a spec reads only files inside",
        ),
        ("w/r50.pth", "is not a .safetensors file"),
    ] {
        let err =
            imagenet(&format!("[model]\narch = \"resnet50\"\ninit = \"{path}\"")).unwrap_err();
        assert!(err.to_string().starts_with("line 7: model.init: "), "{err}");
        assert!(err.to_string().contains(message), "{err}");
    }
    let err = imagenet("[model]\ninit_skip = [\"fc\"]").unwrap_err();
    assert!(
        err.to_string().contains("model.init_skip: names variables"),
        "{err}"
    );
    let spec = imagenet("[model]\narch = \"resnet152\"\ninit = \"weights/resnet152.safetensors\"\ninit_skip = [\"fc\"]").unwrap();
    let model = &spec.jobs()[0].model;
    assert_eq!(model.init.as_deref(), Some("weights/resnet152.safetensors"));
    assert_eq!(model.init_skip, ["fc"]);
}

#[test]
fn a_validation_split_must_leave_images_to_train_on() {
    let err = error(
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\ntrain_per_class = [40, 20]\nval_per_class = 20\n",
    );
    assert_eq!(
        err.to_string(),
        "line 6: dataset.val_per_class: 20 validation images a class leave none to train on: train_per_class is 20"
    );
    let err = error(
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\nsubset_seed = \"each\"\n",
    );
    assert!(err.to_string().contains("dataset.subset_seed"), "{err}");
    SweepSpec::parse(
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"cifar10\"\npath = \"c\"\nval_per_class = 50\nsubset_seed = \"job\"\n",
    )
    .unwrap();
}

#[test]
fn a_synthetic_subset_that_leaves_a_class_empty_is_refused_naming_it() {
    let err = error(
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\ntrain_per_class = 50\nimbalance_ratio = [10, 100]\n",
    );
    assert!(
        err.to_string().starts_with(
            "line 6: dataset.imbalance_ratio: at ratio 100, 50 training images a class leave class 8 of 10 with none"
        ),
        "{err}"
    );
    SweepSpec::parse(
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\ntrain_per_class = 50\nimbalance_ratio = 50\n",
    )
    .unwrap();
}

#[test]
fn the_job_count_is_the_product_of_the_axes() {
    let spec = SweepSpec::parse("name = \"x\"\nseeds = [0, 1, 2]\n[dataset]\nkind = \"synthetic\"\n[losses]\npc_weight = [0.1, 1.0]\n").unwrap();
    assert_eq!(spec.job_count(), 9 * 3 * 2);
    assert_eq!(spec.job_count(), spec.jobs().len() as u128);
}

#[test]
fn list_settings_are_checked_and_named() {
    let list =
        |extra: &str| SweepSpec::parse(&format!("name = \"x\"\nseeds = [0]\n[dataset]\n{extra}\n"));
    let err = list("kind = \"list\"\npath = \"d\"\ntest_list = \"t.txt\"").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line 3: dataset.train_list: give the training list"),
        "{err}"
    );
    let err = list(
        "kind = \"list\"\npath = \"d\"\ntrain_list = \"a\"\ntest_list = \"b\"\nval_per_class = 5",
    )
    .unwrap_err();
    assert!(err.to_string().contains("dataset.val_per_class"), "{err}");
    assert!(err.to_string().contains("val_list"), "{err}");
    let err = list("kind = \"imagenet-lt\"\npath = \"d\"\nimbalance_ratio = 10").unwrap_err();
    assert!(
        err.to_string().starts_with(
            "line 6: dataset.imbalance_ratio: list data is trained as its lists give it"
        ),
        "{err}"
    );
    let err = list("kind = \"places-lt\"\npath = \"d\"\nclasses = 10").unwrap_err();
    assert!(
        err.to_string()
            .contains("places-lt has a fixed class count"),
        "{err}"
    );
    let err = list("kind = \"cifar10\"\npath = \"d\"\ncrop_size = 32").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 6: dataset.crop_size: applies to list data (kind = \"list\" or a preset) only, not to cifar10"
    );
    let err = list("kind = \"inat2018\"\npath = \"d\"\ncrop_size = 4").unwrap_err();
    assert!(
        err.to_string()
            .contains("4 pixels is not between 8 and 512"),
        "{err}"
    );
    let err = list("kind = \"inat2018\"\npath = \"d\"\nresize_size = 200").unwrap_err();
    assert!(err.to_string().contains("at least the crop (224)"), "{err}");
    let err = list("kind = \"inat2018\"\npath = \"d\"\ncolor_jitter = 1.5").unwrap_err();
    assert!(err.to_string().contains("1.5 is not in [0, 1)"), "{err}");
    let err = list("kind = \"inat2018\"\npath = \"d\"\nmean = [0.5, 0.5, 0.5]").unwrap_err();
    assert!(
        err.to_string()
            .contains("dataset.std: give dataset.mean and dataset.std together"),
        "{err}"
    );
    let err = list("kind = \"places-lt\"\npath = \"d\"\nmean = [0.5, 0.5]\nstd = [0.2, 0.2, 0.2]")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("dataset.mean: 2 values: give three"),
        "{err}"
    );
    let err =
        list("kind = \"places-lt\"\npath = \"d\"\nmean = [0.5, 0.5, 0.5]\nstd = [0.2, 0, 0.2]")
            .unwrap_err();
    assert!(
        err.to_string()
            .contains("dataset.std: 0 is not between 0.01 and 1"),
        "{err}"
    );
    let err = list("kind = \"cifar10\"\npath = \"d\"\nreduced_decode = false").unwrap_err();
    assert!(
        err.to_string()
            .contains("dataset.reduced_decode: applies to list data"),
        "{err}"
    );
    list("kind = \"list\"\npath = \"d\"\ntrain_list = \"a.txt\"\ntest_list = \"b.json\"\nclasses = 3")
        .unwrap();
}

#[test]
fn two_stage_specs_on_list_data_are_accepted() {
    for kind in [
        "kind = \"imagenet-lt\"",
        "kind = \"list\"\ntrain_list = \"a.txt\"\ntest_list = \"b.txt\"\nclasses = 3",
    ] {
        let spec = SweepSpec::parse(&format!(
            "name = \"x\"\nseeds = [0]\n[dataset]\n{kind}\npath = \"d\"\npacked = \"d.ltpack\"\n[losses]\nplans = [{{}}]\n[stage2]\nmethod = [\"none\", \"crt\", \"lws\", \"tau_norm\", \"ncm\", \"posthoc_la\"]\n"
        ))
        .unwrap_or_else(|err| panic!("{kind}: {err}"));
        let jobs = spec.jobs();
        assert_eq!(jobs.len(), 6, "{kind}");
        assert!(
            jobs[1..]
                .iter()
                .all(|j| j.stage2.as_ref().is_some_and(|s| s.parent == jobs[0].id))
        );
    }
}

fn dataset(lines: &str) -> Result<SweepSpec, SpecError> {
    SweepSpec::parse(&format!("name = \"x\"\nseeds = [0]\n[dataset]\n{lines}\n"))
}

#[test]
fn a_spec_reads_only_paths_under_the_data_root() {
    // A reviewer's reproduction: `/etc` and `passwd` passed, and the job's failure quoted
    // the file to every viewer.
    let err = dataset(
        "kind = \"list\"\npath = \"/etc\"\ntrain_list = \"passwd\"\ntest_list = \"passwd\"",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("line 5: dataset.path: `/etc` is absolute; a spec reads only files inside the workers' --data-root"),
        "{err}"
    );
    for (key, lines) in [
        ("dataset.path", "kind = \"cifar10\"\npath = \"../../etc\""),
        (
            "dataset.path",
            "kind = \"fashion-mnist\"\npath = \"data/../../x\"",
        ),
        (
            "dataset.train_list",
            "kind = \"list\"\npath = \"d\"\ntrain_list = \"/var/lib/ltsweep/worker-token\"\ntest_list = \"t.txt\"",
        ),
        (
            "dataset.test_list",
            "kind = \"list\"\npath = \"d\"\ntrain_list = \"a.txt\"\ntest_list = \"../../etc/passwd\"",
        ),
        (
            "dataset.val_list",
            "kind = \"list\"\npath = \"d\"\ntrain_list = \"a.txt\"\nval_list = \"/dev/zero\"\ntest_list = \"t.txt\"",
        ),
        (
            "dataset.packed",
            "kind = \"imagenet-lt\"\npath = \"d\"\npacked = \"../p.ltpack\"",
        ),
    ] {
        let err = dataset(lines).unwrap_err().to_string();
        assert!(err.contains(&format!("{key}: `")), "{lines}: {err}");
        assert!(
            err.contains("is absolute;") || err.contains("has a `..` component;"),
            "{lines}: {err}"
        );
    }
    // Inside the root: a folder, `.`, and names with dots in them.
    dataset(
        "kind = \"list\"\npath = \".\"\ntrain_list = \"lists/a..b.txt\"\ntest_list = \"./t.txt\"",
    )
    .unwrap();
    dataset("kind = \"cifar10\"\npath = \"sets/cifar-10-batches-bin\"").unwrap();
    assert_eq!(leaves_its_folder("a/b.jpg"), None);
    assert_eq!(leaves_its_folder("/a"), Some("is absolute"));
    assert_eq!(leaves_its_folder("a/../../b"), Some("has a `..` component"));
}

#[test]
fn max_attempts_is_bounded() {
    let spec = |attempts: u32| {
        SweepSpec::parse(&format!(
            "name = \"x\"\nseeds = [0]\nmax_attempts = {attempts}\n[dataset]\nkind = \"synthetic\"\n"
        ))
    };
    assert_eq!(spec(MAX_ATTEMPTS).unwrap().max_attempts, MAX_ATTEMPTS);
    let err = spec(MAX_ATTEMPTS + 1).unwrap_err().to_string();
    assert_eq!(
        err,
        "line 3: max_attempts: 101 attempts is over the limit of 100 a job"
    );
    assert!(spec(u32::MAX).is_err());
}
