use super::*;
use crate::spec::SweepSpec;

fn parse(extra: &str) -> Result<SweepSpec, crate::spec::SpecError> {
    SweepSpec::parse(&format!(
        "name = \"t\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n\
         [losses]\nplans = [{{}}]\n{extra}"
    ))
}

fn labels(spec: &SweepSpec) -> Vec<String> {
    spec.jobs()
        .iter()
        .filter_map(|j| j.stage2.as_ref().map(|s| s.method.to_string()))
        .collect()
}

const DEFAULT: &str =
    "mislas(epochs=10,lr=0.1,lr_factor=0.2,weight_decay=0.0002,smooth_head=0.4,smooth_tail=0.1";

#[test]
fn each_setting_is_an_axis_of_mislass_jobs_alone() {
    let spec = parse(
        "[stage2]\nmethod = [\"none\", \"mislas\", \"ncm\"]\n\
         [stage2.mislas]\nshape = [\"concave\", \"convex\"]\nclassifier = [\"stage1\", \"fresh\"]",
    )
    .unwrap();
    assert_eq!(
        labels(&spec),
        [
            format!("{DEFAULT})"),
            format!("{DEFAULT},classifier=fresh)"),
            format!("{DEFAULT},shape=convex)"),
            format!("{DEFAULT},shape=convex,classifier=fresh)"),
            "ncm".to_owned(),
        ]
    );
    let jobs = spec.jobs();
    assert!(
        jobs[1..]
            .iter()
            .all(|j| j.stage2.as_ref().unwrap().parent == jobs[0].id)
    );
    // The defaults written out are the spec without them, ids and all.
    let written = parse(
        "[stage2]\nmethod = [\"none\", \"mislas\"]\n\
         [stage2.mislas]\nepochs = 10\nlr = 0.1\nlr_factor = 0.2\nweight_decay = 2e-4\n\
         smooth_head = 0.4\nsmooth_tail = 0.1\nshape = \"concave\"\nbn = \"train\"\n\
         classifier = \"stage1\"\nscaling = \"learned\"",
    )
    .unwrap();
    let plain = parse("[stage2]\nmethod = [\"none\", \"mislas\"]").unwrap();
    assert_eq!(written.jobs(), plain.jobs());
    assert_eq!(plain.jobs().len(), 2);
}

#[test]
fn a_spec_without_mislas_keeps_its_job_ids() {
    // The ids of a spec that never names MiSLAS, computed before MiSLAS existed.
    let spec = parse("[stage2]\nmethod = [\"none\", \"crt\", \"weight_balancing\"]").unwrap();
    let ids: Vec<String> = spec.jobs().iter().map(|j| j.id.to_string()).collect();
    assert_eq!(ids, BEFORE_MISLAS);
}

/// The job ids of [`a_spec_without_mislas_keeps_its_job_ids`]'s spec on the commit before
/// MiSLAS.
const BEFORE_MISLAS: [&str; 3] = ["291049af4e41", "a3e0b1e5c95e", "e3f157c9c6fb"];

#[test]
fn a_bad_setting_is_refused_by_name() {
    let m = "[stage2]\nmethod = [\"mislas\"]\n[stage2.mislas]\n";
    for (setting, message) in [
        ("epochs = 0", "stage2.mislas.epochs: must be at least 1"),
        ("lr = 0", "stage2.mislas.lr: 0 is not a positive number"),
        (
            "lr_factor = -0.2",
            "stage2.mislas.lr_factor: -0.2 is not a positive number",
        ),
        ("weight_decay = -1", "stage2.mislas.weight_decay: -1 is not"),
        (
            "smooth_head = 1.5",
            "stage2.mislas.smooth_head: 1.5 is outside [0, 1]",
        ),
        (
            "smooth_tail = -0.1",
            "stage2.mislas.smooth_tail: -0.1 is outside [0, 1]",
        ),
        (
            "smooth_tail = [0.1, 0.1]",
            "stage2.mislas.smooth_tail: 0.1 is listed twice",
        ),
        ("shape = \"exp\"", "stage2.mislas.shape"),
        ("classifier = \"random\"", "stage2.mislas.classifier"),
        ("scaling = \"tau\"", "stage2.mislas.scaling"),
        ("bn = \"eval\"", "stage2.mislas.bn"),
        ("shift_bn = true", "shift_bn"),
    ] {
        let err = parse(&format!("{m}{setting}")).unwrap_err().to_string();
        assert!(err.contains(message), "{setting}: {err}");
    }
    let err = parse("[stage2]\nmethod = [\"crt\"]\n[stage2.mislas]\nlr = 0.1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stage2.mislas: settings of `mislas`, which stage2.method does not list"),
        "{err}"
    );
    let err = SweepSpec::parse(
        "name = \"t\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n\
         [losses]\nplans = [{}]\nbase = [\"ce\", \"ldam_drw\"]\n\
         [stage2]\nmethod = [\"mislas\"]",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("stage2.method: `mislas` re-trains a linear classifier"),
        "{err}"
    );
}

#[test]
fn the_defaults_are_their_cifar100_lt_settings() {
    assert_eq!(
        MislasSetting::default().methods(),
        vec![Stage2Method::mislas()]
    );
}

#[test]
fn the_example_is_their_cifar100_lt_recipe() {
    let text = include_str!("../../../../examples/mislas-cifar100-lt.toml");
    let spec = SweepSpec::parse(text).unwrap();
    let jobs = spec.jobs();
    // Per seed: the stage-1 job and its MiSLAS job.
    assert_eq!(jobs.len(), 3 * 2);
    for pair in jobs.chunks(2) {
        let (stage1, stage2) = (&pair[0], &pair[1]);
        assert!(stage1.stage2.is_none());
        let t = &stage1.train;
        assert_eq!((t.epochs, t.batch_size, t.warmup_epochs), (200, 128, 5));
        assert_eq!((t.lr, t.momentum, t.weight_decay), (0.1, 0.9, 2e-4));
        assert_eq!(
            t.augmentation.mix,
            crate::augment::Mix::Mixup { alpha: 1.0 }
        );
        let m = stage2.stage2.as_ref().unwrap();
        assert_eq!(m.parent, stage1.id);
        assert_eq!(m.method, Stage2Method::mislas());
    }
}

#[test]
fn the_imagenet_example_is_their_imagenet_lt_recipe() {
    let text = include_str!("../../../../examples/mislas-imagenet-lt.toml");
    let jobs = SweepSpec::parse(text).unwrap().jobs();
    assert_eq!(jobs.len(), 2);
    let (stage1, stage2) = (&jobs[0], &jobs[1]);
    let t = &stage1.train;
    assert_eq!((t.epochs, t.batch_size, t.warmup_epochs), (180, 256, 0));
    assert_eq!((t.lr, t.momentum, t.weight_decay), (0.1, 0.9, 5e-4));
    assert_eq!(t.lr_schedule, crate::job::LrSchedule::Cosine);
    assert_eq!(
        t.augmentation.mix,
        crate::augment::Mix::Mixup { alpha: 0.2 }
    );
    let Stage2Method::Mislas(m) = stage2.stage2.as_ref().unwrap().method else {
        panic!("a mislas job");
    };
    assert_eq!(
        (m.epochs, m.lr, m.lr_factor, m.weight_decay),
        (10, 0.1, 0.05, 5e-4)
    );
    assert_eq!((m.smooth_head, m.smooth_tail), (0.3, 0.0));
}
