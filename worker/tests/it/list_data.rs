//! List data in the trainer, on a few hundred small photographic JPEGs the test writes: exact
//! counts and shots from `path label` lists and from COCO-style JSON, every kind of bad input
//! named with its file and line, a streamed job preempted mid-epoch that ends exactly as an
//! uninterrupted one, stage-2 jobs on streamed data, and the normalisation a job gives.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use ltsweep_data::list::Split;
use ltsweep_data::{FileData, Prepared};
use ltsweep_domain::{
    ClassGroup, JobResult, JobSpec, Normalization, Shot, Stage2Method, SweepSpec,
};
use ltsweep_proto::client::Retry;
use ltsweep_worker::loader::Loader;
use ltsweep_worker::stage2;
use ltsweep_worker::train::{Outcome, Quiet, Trainer};
use tch::{Device, Kind, Tensor};

use crate::photos;
use crate::register;
use crate::support::{PreemptAt, finished};

/// Training images a class: Many (over 100), Medium (20 to 100) and Few (under 20) shots.
const COUNTS: [usize; 10] = [150, 120, 90, 60, 40, 25, 18, 12, 8, 5];
const TEST_PER_CLASS: usize = 6;

struct Fixture {
    dir: tempfile::TempDir,
    train: photos::Listing,
    val: photos::Listing,
    test: photos::Listing,
}

fn fixture(counts: &[usize]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos::photos(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos"));
    let (train, val, test) = photos::write_images(dir.path(), &photos, counts, TEST_PER_CLASS);
    photos::write_list(&dir.path().join("train.txt"), &train);
    photos::write_list(&dir.path().join("val.txt"), &val);
    photos::write_list(&dir.path().join("test.txt"), &test);
    photos::write_coco(&dir.path().join("train.json"), &train, counts.len());
    photos::write_coco(&dir.path().join("test.json"), &test, counts.len());
    Fixture {
        dir,
        train,
        val,
        test,
    }
}

fn spec(dataset: &str, train: &str) -> SweepSpec {
    SweepSpec::parse(&format!(
        "name = \"lists\"\nseeds = [1]\n[dataset]\n{dataset}\n[model]\ndepth = 8\n[train]\n{train}\n[losses]\nplans = [{{}}]\n"
    ))
    .unwrap()
}

fn job_of(spec: &SweepSpec) -> JobSpec {
    spec.jobs().remove(0)
}

fn files(job: &JobSpec, root: &Path) -> Arc<FileData> {
    match ltsweep_data::prepare(&job.dataset, root).unwrap() {
        Prepared::Files(files) => files,
        Prepared::Memory(_) => panic!("list data is streamed"),
    }
}

fn error_of(job: &JobSpec, root: &Path) -> String {
    ltsweep_data::prepare(&job.dataset, root)
        .unwrap_err()
        .to_string()
}

register!(lists_and_coco_json_give_exact_counts_and_shots);
fn lists_and_coco_json_give_exact_counts_and_shots() {
    let f = fixture(&COUNTS);
    let job = job_of(&spec(
        "kind = \"list\"\npath = \".\"\ntrain_list = \"train.txt\"\nval_list = \"val.txt\"\ntest_list = \"test.txt\"\nhead_min_count = 50",
        "",
    ));
    let data = files(&job, f.dir.path());
    assert_eq!(data.train.len(), 528);
    assert_eq!(
        data.val.as_ref().map(|v| v.len()),
        Some(10 * TEST_PER_CLASS)
    );
    assert_eq!(data.test.len(), 10 * TEST_PER_CLASS);
    let expected: Vec<u32> = COUNTS.iter().map(|&n| n as u32).collect();
    assert_eq!(data.classes.train_counts, expected);
    let count = |shot| data.classes.shots.iter().filter(|&&s| s == shot).count();
    assert_eq!(
        (count(Shot::Many), count(Shot::Medium), count(Shot::Few)),
        (2, 4, 4)
    );
    assert_eq!(data.classes.classes_in(ClassGroup::Head), vec![0, 1, 2, 3]);
    // Entries keep the list's order and its line numbers.
    let first = &data.train.entries[0];
    assert_eq!(
        (first.path.as_str(), first.label, first.at),
        (f.train[0].0.as_str(), f.train[0].1, 1)
    );
    assert_eq!(data.val.as_ref().unwrap().entries[3].path, f.val[3].0);

    // The same images as COCO-style JSON: category ids 100.. become labels 0..
    let json = job_of(&spec(
        "kind = \"list\"\npath = \".\"\ntrain_list = \"train.json\"\ntest_list = \"test.json\"\nhead_min_count = 50",
        "",
    ));
    let from_json = files(&json, f.dir.path());
    assert_eq!(from_json.classes.train_counts, expected);
    assert!(from_json.val.is_none());
    let pairs = |split: &ltsweep_data::list::FileSplit| -> Vec<(String, u32)> {
        split
            .entries
            .iter()
            .map(|e| (e.path.clone(), e.label))
            .collect()
    };
    assert_eq!(pairs(&from_json.train), pairs(&data.train));
    assert_eq!(pairs(&from_json.test), f.test);
}

register!(bad_input_is_named_with_its_file_and_line);
fn bad_input_is_named_with_its_file_and_line() {
    let f = fixture(&[12, 10, 8]);
    let root = f.dir.path();
    let list_job = |train: &str, extra: &str| {
        job_of(&spec(
            &format!(
                "kind = \"list\"\npath = \".\"\ntrain_list = \"{train}\"\ntest_list = \"test.txt\"\n{extra}"
            ),
            "epochs = 1\nbatch_size = 8",
        ))
    };
    let good: String = f.train.iter().map(|(p, l)| format!("{p} {l}\n")).collect();
    let train = root.join("train.txt").display().to_string();

    std::fs::write(root.join("bad_line.txt"), format!("{good}images/x.jpg\n")).unwrap();
    let line = f.train.len() + 1;
    assert_eq!(
        error_of(&list_job("bad_line.txt", ""), root),
        format!(
            "{}: line {line}: expected `relative/path.jpg label`, found 1 field (12 bytes)",
            root.join("bad_line.txt").display()
        )
    );

    std::fs::write(
        root.join("bad_label.txt"),
        format!("{good}{} 7\n", f.train[0].0),
    )
    .unwrap();
    assert_eq!(
        error_of(&list_job("bad_label.txt", "classes = 3"), root),
        format!(
            "{}: line {line}: label 7 is out of range: the data set has 3 classes (0 to 2)",
            root.join("bad_label.txt").display()
        )
    );

    std::fs::write(
        root.join("missing.txt"),
        format!("{good}images/gone.jpg 1\n"),
    )
    .unwrap();
    assert_eq!(
        error_of(&list_job("missing.txt", ""), root),
        format!(
            "{}: no such file (listed at {} line {line})",
            root.join("images/gone.jpg").display(),
            root.join("missing.txt").display()
        )
    );

    let coco = r#"{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"id": 9, "image_id": 2, "category_id": 0}], "categories": [{"id": 0}]}"#;
    std::fs::write(root.join("orphan.json"), coco).unwrap();
    assert_eq!(
        error_of(&list_job("orphan.json", ""), root),
        format!(
            "{}: annotations[0] (id 9): image_id 2 has no entry in `images`",
            root.join("orphan.json").display()
        )
    );
    assert!(error_of(&list_job("nope.txt", ""), root).contains("nope.txt: not found"));

    // A truncated JPEG and a file that is no JPEG are there, so they are found while training:
    // the job fails, not retryable, naming the file and its list line.
    for (name, bytes) in [
        ("cut.jpg", {
            let whole = std::fs::read(root.join(&f.train[0].0)).unwrap();
            whole[..whole.len() / 2].to_vec()
        }),
        ("text.jpg", b"GIF89a, not a JPEG".to_vec()),
    ] {
        std::fs::write(root.join(name), bytes).unwrap();
        std::fs::write(root.join("broken.txt"), format!("{good}{name} 2\n")).unwrap();
        let job = list_job("broken.txt", "");
        let mut trainer = Trainer::streaming(&job, files(&job, root), Device::Cpu, 2);
        let err = trainer.run(&mut Quiet, None).unwrap_err();
        assert_eq!(err.retry(), Retry::Never, "{err}");
        let message = err.to_string();
        let detail = if name == "cut.jpg" {
            "truncated JPEG: the data ends before the image does".to_owned()
        } else {
            "not a JPEG file (it starts with a GIF signature)".to_owned()
        };
        assert_eq!(
            message,
            format!(
                "{}: {detail} (listed at {} line {line})",
                root.join(name).display(),
                train.replace("train.txt", "broken.txt")
            )
        );
    }
}

register!(a_streamed_job_preempted_mid_epoch_ends_exactly_as_an_uninterrupted_one);
fn a_streamed_job_preempted_mid_epoch_ends_exactly_as_an_uninterrupted_one() {
    let f = fixture(&[40, 30, 20, 14, 10, 6]);
    let plain = preempted_and_resumed(f.dir.path(), "");
    // RandAugment and Cutout on the device after the loader's crop, flip and jitter, and
    // mixup: drawn from the seed by position in the epoch, so a resume makes the same choices.
    let augmented = preempted_and_resumed(
        f.dir.path(),
        "[augment]\npolicy = \"randaugment\"\ncutout = 8\nmix = \"mixup\"\n",
    );
    assert_ne!(
        plain.epochs[0].loss_base, augmented.epochs[0].loss_base,
        "the augmentation changes training"
    );
}

/// A job trained straight through, and preempted mid-epoch and resumed, ends the same; the
/// result. `augment` is appended to the spec.
fn preempted_and_resumed(root: &Path, augment: &str) -> JobResult {
    let job = job_of(&spec(
        "kind = \"list\"\npath = \".\"\ntrain_list = \"train.txt\"\ntest_list = \"test.txt\"\ncrop_size = 32\nresize_size = 36\ncolor_jitter = 0.4\nhead_min_count = 20",
        &format!(
            "epochs = 2\nbatch_size = 16\nlr = 0.05\nwarmup_epochs = 0\ncheckpoint_every = 1\n{augment}"
        ),
    ));
    let data = files(&job, root);
    // One loader thread against three: the batches do not depend on the threads' timing.
    let straight = finished(
        Trainer::streaming(&job, Arc::clone(&data), Device::Cpu, 1)
            .run(&mut Quiet, None)
            .unwrap(),
    );
    assert_eq!(straight.epochs.len(), 2);
    assert_eq!(straight.train_images, 120);
    assert!(straight.accuracy.acc_all.is_some());

    // 120 images in batches of 16: 8 steps an epoch (the last of 8 images). Stop in the second
    // epoch before its third step, with a checkpoint of the epoch in progress; resume, finish.
    let mut first = Trainer::streaming(&job, Arc::clone(&data), Device::Cpu, 3);
    let mut observer = PreemptAt {
        at: 8 + 3,
        asked: Cell::new(0),
        checkpoint: None,
    };
    match first.run(&mut observer, None).unwrap() {
        Outcome::Preempted { epoch } => assert_eq!(epoch, 1),
        other => panic!("expected a preemption, got {other:?}"),
    }
    let mut resumed = Trainer::streaming(&job, Arc::clone(&data), Device::Cpu, 3);
    resumed
        .resume(&observer.checkpoint.as_ref().unwrap().1)
        .unwrap();
    assert_eq!(resumed.position(), (1, 32));
    let resumed = finished(resumed.run(&mut Quiet, None).unwrap());
    assert_eq!(resumed, straight, "{augment}");
    straight
}

register!(streamed_stage2_jobs_train_on_their_own_classifier_whatever_the_loader_threads);
fn streamed_stage2_jobs_train_on_their_own_classifier_whatever_the_loader_threads() {
    let f = fixture(&[40, 30, 20, 14, 10, 6]);
    let jobs = SweepSpec::parse(
        "name = \"lists\"\nseeds = [1]\n[dataset]\nkind = \"list\"\npath = \".\"\ntrain_list = \"train.txt\"\ntest_list = \"test.txt\"\ncrop_size = 32\nresize_size = 36\ncolor_jitter = 0.4\nhead_min_count = 20\n[model]\ndepth = 8\n[train]\nepochs = 1\nbatch_size = 16\nlr = 0.05\nwarmup_epochs = 0\n[losses]\nplans = [{}]\n[stage2]\nmethod = [\"none\", \"crt\", \"ncm\"]\n[stage2.crt]\nepochs = 2\n",
    )
    .unwrap()
    .jobs();
    let data = files(&jobs[0], f.dir.path());
    let mut stage1 = Trainer::streaming(&jobs[0], Arc::clone(&data), Device::Cpu, 2);
    let stage1_result = finished(stage1.run(&mut Quiet, None).unwrap());
    let model = stage1.model_bytes().unwrap();
    let stage2_of = |method: fn(&Stage2Method) -> bool, threads: usize| {
        let job = jobs
            .iter()
            .find(|j| j.stage2.as_ref().is_some_and(|s| method(&s.method)))
            .unwrap();
        let mut trainer = Trainer::streaming(job, Arc::clone(&data), Device::Cpu, threads);
        trainer.load_model(&model).unwrap();
        let method = job.stage2.as_ref().unwrap().method;
        finished(stage2::run(&trainer, method, &mut Quiet).unwrap())
    };
    // cRT's class-balanced batches, crops and jitter come from its seed alone: one loader
    // thread and three give the same classifier, epoch by epoch.
    let is_crt = |m: &Stage2Method| matches!(m, Stage2Method::Crt { .. });
    let crt = stage2_of(is_crt, 1);
    assert_eq!(crt, stage2_of(is_crt, 3));
    assert_eq!(crt.epochs.len(), 2);
    assert!(crt.epochs.iter().all(|e| e.loss_base.is_finite()));
    assert_ne!(crt.confusion, stage1_result.confusion);
    let ncm = stage2_of(|m| matches!(m, Stage2Method::Ncm { .. }), 3);
    assert!(ncm.epochs.is_empty());
    let tested: u32 = ncm.confusion.iter().flatten().sum();
    assert_eq!(tested as usize, 6 * TEST_PER_CLASS);
    assert_ne!(ncm.confusion, stage1_result.confusion);
}

register!(a_list_job_normalises_its_images_with_the_mean_and_std_it_gives);
fn a_list_job_normalises_its_images_with_the_mean_and_std_it_gives() {
    let f = fixture(&[12, 8]);
    let dataset = "kind = \"list\"\npath = \".\"\ntrain_list = \"train.txt\"\ntest_list = \"test.txt\"\ncrop_size = 32\nresize_size = 36\nhead_min_count = 10";
    let plain = job_of(&spec(dataset, "epochs = 1"));
    let given = job_of(&spec(
        &format!("{dataset}\nmean = [0.466, 0.471, 0.380]\nstd = [0.195, 0.194, 0.192]"),
        "epochs = 1",
    ));
    assert_eq!(
        given.dataset.list.as_ref().unwrap().normalization,
        Normalization::INAT2018
    );
    let images = |job: &JobSpec| {
        let loader = Loader::new(files(job, f.dir.path()), 2, Device::Cpu);
        let mut feed = loader.eval(Split::Test, 64);
        feed.next_batch().unwrap().unwrap().0
    };
    let (imagenet, inat) = (images(&plain), images(&given));
    assert_eq!(imagenet.size(), [12, 3, 32, 32]);
    // Back to `v / 255` from each normalisation: the same pixels.
    let pixels = |x: &Tensor, n: Normalization| {
        let channel = |v: [f64; 3]| {
            Tensor::from_slice(&v)
                .view([1, 3, 1, 1])
                .to_kind(Kind::Float)
        };
        x * channel(n.std) + channel(n.mean)
    };
    let gap = (pixels(&imagenet, Normalization::IMAGENET) - pixels(&inat, Normalization::INAT2018))
        .abs()
        .max()
        .double_value(&[]);
    assert!(gap < 1e-5, "{gap}");
    let moved = (&imagenet - &inat).abs().max().double_value(&[]);
    assert!(moved > 0.1, "{moved}");
}

register!(mislas_retrains_an_imagenet_networks_classifier_on_list_data);
fn mislas_retrains_an_imagenet_networks_classifier_on_list_data() {
    // MiSLAS's ImageNet-LT recipe in small (examples/mislas-imagenet-lt.toml): a torchvision
    // ResNet trained with mixup on the list, then its classifier and scales re-trained.
    tch::set_num_threads(1);
    let f = fixture(&[40, 30, 20, 14, 10, 6]);
    let jobs = SweepSpec::parse(
        "name = \"mislas-lists\"\nseeds = [1]\n[dataset]\nkind = \"list\"\npath = \".\"\ntrain_list = \"train.txt\"\ntest_list = \"test.txt\"\ncrop_size = 32\nresize_size = 36\ncolor_jitter = 0.4\nhead_min_count = 20\n[model]\narch = \"resnet10\"\n[train]\nepochs = 1\nbatch_size = 16\nlr = 0.05\nwarmup_epochs = 0\nlr_schedule = \"cosine\"\n[losses]\nplans = [{}]\n[augment]\nmix = \"mixup\"\nmix_alpha = 0.2\n[stage2]\nmethod = [\"none\", \"mislas\"]\n[stage2.mislas]\nepochs = 2\nsmooth_head = 0.3\nsmooth_tail = 0.0\nlr_factor = 0.05\n",
    )
    .unwrap()
    .jobs();
    let data = files(&jobs[0], f.dir.path());
    let mut stage1 = Trainer::streaming(&jobs[0], Arc::clone(&data), Device::Cpu, 2);
    let stage1_result = finished(stage1.run(&mut Quiet, None).unwrap());
    let job = jobs
        .iter()
        .find(|j| {
            j.stage2
                .as_ref()
                .is_some_and(|s| matches!(s.method, Stage2Method::Mislas(_)))
        })
        .unwrap();
    let mut trainer = Trainer::streaming(job, Arc::clone(&data), Device::Cpu, 2);
    trainer.load_model(&stage1.model_bytes().unwrap()).unwrap();
    let method = job.stage2.as_ref().unwrap().method;
    let mislas = finished(stage2::run(&trainer, method, &mut Quiet).unwrap());
    assert_eq!(mislas.epochs.len(), 2);
    assert!(mislas.epochs.iter().all(|e| e.loss_base.is_finite()));
    let tested: u32 = mislas.confusion.iter().flatten().sum();
    assert_eq!(tested as usize, 6 * TEST_PER_CLASS);
    assert_ne!(mislas.confusion, stage1_result.confusion);
}
