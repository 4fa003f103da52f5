//! List data through the binary, on a few hundred small photographic JPEGs the test writes:
//! `ltsweep data summary` (exact counts and shots), `data check` (every unreadable image with
//! its list line), `data pack`, and a two-epoch job that trains, checkpoints, resumes exactly
//! and reports, from the files and from the pack; stage-2 jobs (cRT, NCM, τ-norm) after a stage-1 job, through a
//! coordinator and a worker process; and `bench loader`, the loader's and the decoder's rates.

#[path = "../../worker/tests/it/photos.rs"]
pub(crate) mod photos;

use std::path::Path;
use std::time::Duration;

use ltsweep_domain::{JobResult, Stage2Method};
use serde_json::Value;

use crate::cluster_support::TestCluster;
use crate::harness::register;
use crate::support::{repo, run, stderr, stdout, write};

const COUNTS: [usize; 8] = [120, 80, 50, 30, 20, 12, 8, 5];

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos::photos(&repo().join("worker/tests/data/photos"));
    let (train, val, test) = photos::write_images(dir.path(), &photos, &COUNTS, 5);
    photos::write_list(&dir.path().join("train.txt"), &train);
    photos::write_list(&dir.path().join("val.txt"), &val);
    photos::write_list(&dir.path().join("test.txt"), &test);
    photos::write_coco(&dir.path().join("train.json"), &train, COUNTS.len());
    photos::write_coco(&dir.path().join("test.json"), &test, COUNTS.len());
    dir
}

/// The CIFAR ResNet-8: the quickest network. These tests are about the data path, scheduling and
/// exact resumes, which do not depend on the network; torchvision's ResNet-10 on list data (bf16,
/// pretrained weights, exact resume) is `worker/tests/it/imagenet.rs`'s.
const RESNET8: &str = "depth = 8";

fn spec(dir: &Path, packed: Option<&str>, model: &str) -> std::path::PathBuf {
    let packed = packed.map_or(String::new(), |p| format!("packed = \"{p}\"\n"));
    write(
        dir,
        "spec.toml",
        &format!(
            r#"
name = "lists"
seeds = [0]
[dataset]
kind = "list"
path = "."
train_list = "train.txt"
val_list = "val.txt"
test_list = "test.txt"
crop_size = 32
resize_size = 36
head_min_count = 40
{packed}[model]
{model}
[train]
epochs = 2
batch_size = 32
lr = 0.05
warmup_epochs = 0
checkpoint_every = 1
[losses]
plans = [{{}}]
"#
        ),
    )
}

fn train(spec: &Path, root: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        spec.to_str().unwrap(),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--loader-threads",
        "2",
        "--data-root",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// result.json without the clock.
fn metrics(dir: &Path) -> Value {
    let mut result: Value =
        serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap()).unwrap();
    result["train_seconds"] = Value::Null;
    for epoch in result["epochs"].as_array_mut().unwrap() {
        epoch["seconds"] = Value::Null;
        epoch["images_per_second"] = Value::Null;
    }
    result
}

register!(summary_check_and_pack_of_list_data);
fn summary_check_and_pack_of_list_data() {
    let dir = fixture();
    let root = dir.path().to_str().unwrap();
    let lists = [
        "--path",
        root,
        "--train-list",
        "train.txt",
        "--val-list",
        "val.txt",
        "--test-list",
        "test.txt",
    ];
    let mut args = vec!["data", "summary", "--kind", "list", "--json"];
    args.extend_from_slice(&lists);
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(summary["train_total"], 325);
    assert_eq!(summary["val_total"], 40);
    assert_eq!(summary["test_total"], 40);
    assert_eq!(summary["class_counts"], serde_json::json!(COUNTS));
    assert_eq!(summary["many"], serde_json::json!([0]));
    assert_eq!(summary["medium"], serde_json::json!([1, 2, 3, 4]));
    assert_eq!(summary["few"], serde_json::json!([5, 6, 7]));

    // The same from COCO-style JSON.
    let output = run(&[
        "data",
        "summary",
        "--kind",
        "list",
        "--json",
        "--path",
        root,
        "--train-list",
        "train.json",
        "--test-list",
        "test.json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let from_json: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(from_json["class_counts"], summary["class_counts"]);
    assert_eq!(from_json["test_total"], 40);

    // Two broken images: `data check` names both with their list lines, and fails.
    let test_list = std::fs::read_to_string(dir.path().join("test.txt")).unwrap();
    let lines: Vec<&str> = test_list.lines().collect();
    let cut = lines[3].split(' ').next().unwrap();
    let whole = std::fs::read(dir.path().join(cut)).unwrap();
    std::fs::write(dir.path().join(cut), &whole[..whole.len() / 3]).unwrap();
    let png = lines[17].split(' ').next().unwrap();
    std::fs::write(dir.path().join(png), b"\x89PNG\r\n\x1a\n").unwrap();
    let mut args = vec!["data", "check", "--kind", "list", "--threads", "2"];
    args.extend_from_slice(&lists);
    let output = run(&args);
    assert!(!output.status.success());
    let text = stdout(&output);
    let test_txt = dir.path().join("test.txt");
    assert!(
        text.contains(&format!(
            "{}: truncated JPEG: the data ends before the image does (listed at {} line 4)",
            dir.path().join(cut).display(),
            test_txt.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}: not a JPEG file (it starts with a PNG signature) (listed at {} line 18)",
            dir.path().join(png).display(),
            test_txt.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("checked 405 images (325 train, 40 validation, 40 test): 2 unreadable"),
        "{text}"
    );
    assert!(
        stderr(&output).contains("2 of 405 images cannot be read"),
        "{}",
        stderr(&output)
    );

    // A pack refuses broken images, and writes nothing.
    let mut args = vec!["data", "pack", "--kind", "list", "--out"];
    let pack = dir.path().join("lists.ltpack");
    args.push(pack.to_str().unwrap());
    args.extend_from_slice(&lists);
    let output = run(&args);
    assert!(!output.status.success());
    assert!(!pack.exists() && !dir.path().join("lists.partial").exists());
    std::fs::write(dir.path().join(cut), &whole).unwrap();
    std::fs::write(dir.path().join(png), &whole).unwrap();
    args.extend_from_slice(&["--shorter-side", "48"]);
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("packed 405 images"),
        "{}",
        stdout(&output)
    );
    let mut args = vec![
        "data",
        "check",
        "--kind",
        "list",
        "--packed",
        "lists.ltpack",
    ];
    args.extend_from_slice(&lists);
    let output = run(&args);
    assert!(output.status.success(), "{}", stdout(&output));
}

register!(a_two_epoch_job_on_list_data_trains_checkpoints_resumes_exactly_and_reports);
fn a_two_epoch_job_on_list_data_trains_checkpoints_resumes_exactly_and_reports() {
    let dir = fixture();
    let root = dir.path();
    let spec_path = spec(root, None, RESNET8);
    let straight = root.join("straight");
    let output = train(&spec_path, root, &straight, &[]);
    assert!(
        stdout(&output).contains("top-1 %: all"),
        "{}",
        stdout(&output)
    );
    let result = metrics(&straight);
    assert_eq!(result["spec"]["model"]["depth"], 8, "{result}");
    assert_eq!(result["train_images"], 325);
    assert_eq!(result["epochs"].as_array().unwrap().len(), 2);
    assert!(result["acc_few"].is_number());

    // Stopped after the first epoch with its checkpoint, resumed with one thread more.
    let resumed = root.join("resumed");
    let output = train(&spec_path, root, &resumed, &["--stop-after", "1"]);
    assert!(stdout(&output).contains("stopped after epoch 1"));
    assert!(resumed.join("checkpoint.ltsw").exists());
    let mut args = vec![
        "train",
        spec_path.to_str().unwrap(),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--loader-threads",
        "3",
        "--data-root",
        root.to_str().unwrap(),
        "--out",
        resumed.to_str().unwrap(),
        "--resume",
    ];
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(metrics(&resumed), result);

    // From a packed copy (images kept as they are, all being smaller than 96): the same bytes,
    // so the same result.
    let pack = root.join("lists.ltpack");
    let output = run(&[
        "data",
        "pack",
        "--kind",
        "list",
        "--path",
        root.to_str().unwrap(),
        "--train-list",
        "train.txt",
        "--val-list",
        "val.txt",
        "--test-list",
        "test.txt",
        "--shorter-side",
        "96",
        "--out",
        pack.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let packed_spec = spec(root, Some("lists.ltpack"), RESNET8);
    let from_pack = root.join("from-pack");
    args[1] = packed_spec.to_str().unwrap();
    args[11] = from_pack.to_str().unwrap();
    args.pop();
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let mut packed = metrics(&from_pack);
    // The spec differs in `packed`: its job id and spec do, nothing else.
    for key in ["job_id", "sweep_id", "spec"] {
        packed[key] = result[key].clone();
    }
    assert_eq!(packed, result);
}

register!(a_fused_slot_leases_list_data_jobs_one_at_a_time);
/// A fused slot (`--fuse 3`) takes a job that trains alone (list data streams from the files)
/// one at a time: it never holds the lease of a job it is not training.
fn a_fused_slot_leases_list_data_jobs_one_at_a_time() {
    let dir = fixture();
    let root = dir.path();
    let text = std::fs::read_to_string(spec(root, None, RESNET8))
        .unwrap()
        .replace("seeds = [0]", "seeds = [0, 1, 2]")
        .replace("epochs = 2", "epochs = 1");
    let spec_path = write(root, "three.toml", &text);
    let output = crate::support::trainer()
        .args(["run", spec_path.to_str().unwrap()])
        .args(["--workers", "1", "--devices", "cpu", "--threads", "1"])
        .args(["--fuse", "3", "--data-root", root.to_str().unwrap()])
        .args(["--out", root.join("out").to_str().unwrap()])
        .env("RUST_LOG", "ltsweep_worker=info")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    let events: Vec<&str> = log
        .lines()
        .filter_map(|line| {
            if line.contains("job started") {
                Some("started")
            } else if line.contains("job completed") {
                Some("completed")
            } else {
                None
            }
        })
        .collect();
    assert_eq!(events, ["started", "completed"].repeat(3), "{log}");
}

register!(stage2_jobs_run_on_list_data_after_their_stage1_job);
/// cRT, NCM and τ-norm on the JPEG lists, through a coordinator and a worker process: the worker
/// streams stage 2's class-balanced batches and NCM's feature pass from the files, as stage 1's.
fn stage2_jobs_run_on_list_data_after_their_stage1_job() {
    let dir = fixture();
    let root = dir.path();
    let text = std::fs::read_to_string(spec(root, None, RESNET8)).unwrap()
        + "[stage2]\nmethod = [\"none\", \"crt\", \"ncm\", \"tau_norm\"]\n[stage2.crt]\nepochs = 2\n";
    let spec_path = write(root, "two-stage.toml", &text);
    let output = run(&["validate", spec_path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("1 stage-1 job + 3 stage-2 jobs after it"),
        "{}",
        stdout(&output)
    );

    let mut cluster = TestCluster::start(0);
    let url = cluster.url();
    cluster.add_worker_with(&url, &["--data-root", root.to_str().unwrap()]);
    let sweep = cluster.submit(&spec_path);
    let status = cluster.wait_for_state(
        &sweep,
        "the stage-1 job and its three stage-2 jobs to succeed",
        Duration::from_secs(300),
        |s| s["succeeded"] == 4 || s["failed"].as_u64() > Some(0),
    );
    assert_eq!(status["succeeded"], 4, "{status:#}");

    let results = cluster.results(&sweep);
    assert_eq!(results.len(), 4);
    let stage1 = results.iter().find(|r| r.spec.stage2.is_none()).unwrap();
    let of = |is: fn(&Stage2Method) -> bool| -> &JobResult {
        results
            .iter()
            .find(|r| r.spec.stage2.as_ref().is_some_and(|s| is(&s.method)))
            .unwrap()
    };
    let crt = of(|m| matches!(m, Stage2Method::Crt { .. }));
    let ncm = of(|m| matches!(m, Stage2Method::Ncm { .. }));
    let tau_norm = of(|m| matches!(m, Stage2Method::TauNorm { .. }));
    let test_images = 5 * COUNTS.len() as u32;
    for result in [crt, ncm, tau_norm] {
        let stage2 = result.spec.stage2.as_ref().unwrap();
        assert_eq!(stage2.parent, stage1.spec.id, "{}", stage2.method);
        let evaluated: u32 = result.confusion.iter().flatten().sum();
        assert_eq!(evaluated, test_images, "{}", stage2.method);
        assert!(result.accuracy.acc_all.is_some(), "{}", stage2.method);
        // The validation list is evaluated too, as for a stage-1 job.
        assert!(result.val_accuracy.is_some(), "{}", stage2.method);
    }
    // cRT trained a classifier of its own for its two epochs on the streamed batches; NCM's
    // class means are another classifier too.
    assert_eq!(crt.epochs.len(), 2);
    assert!(
        crt.epochs
            .iter()
            .all(|e| e.loss_base.is_finite() && e.loss_base > 0.0)
    );
    // With a validation list every epoch is evaluated on it, and the test set only at the
    // first epoch of the best validation accuracy, the one cRT keeps.
    let val_all: Vec<f64> = crt
        .epochs
        .iter()
        .map(|e| e.val_accuracy.as_ref().unwrap().acc_all.unwrap())
        .collect();
    let highest = val_all.iter().copied().fold(f64::MIN, f64::max);
    let best = val_all.iter().position(|&v| v == highest).unwrap();
    let tested: Vec<usize> = (0..2)
        .filter(|&i| crt.epochs[i].accuracy.is_some())
        .collect();
    assert_eq!(tested, [best]);
    assert_ne!(crt.confusion, stage1.confusion, "cRT predicts as stage 1");
    assert!(ncm.epochs.is_empty());
    assert_ne!(ncm.confusion, stage1.confusion, "NCM predicts as stage 1");
}

register!(bench_loader_times_the_loader_and_the_decoder_alone_and_names_a_broken_file);
fn bench_loader_times_the_loader_and_the_decoder_alone_and_names_a_broken_file() {
    let dir = fixture();
    let root = dir.path().to_str().unwrap();
    let rate = |output: &std::process::Output| -> f64 {
        assert!(output.status.success(), "{}", stderr(output));
        let out = stdout(output);
        out.lines()
            .find_map(|l| l.strip_prefix("images_per_second="))
            .unwrap_or_else(|| panic!("no rate in {out}"))
            .parse()
            .unwrap()
    };
    let common = ["bench", "loader", "--path", root, "--list", "train.txt"];
    let loader = run(&[
        &common[..],
        &["--batch", "16", "--passes", "1", "--threads", "2"],
    ]
    .concat());
    assert!(rate(&loader) > 0.0);
    let decode = run(&[&common[..], &["--passes", "1", "--decode-only"]].concat());
    assert!(rate(&decode) > 0.0);
    assert!(stdout(&decode).contains("325 JPEGs decoded whole on one thread"));

    // Its options are the decoder's alone.
    let output = run(&[&common[..], &["--decode-only", "--threads", "2"]].concat());
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--threads"), "{}", stderr(&output));

    // A file cut short stops it, named.
    let broken = dir.path().join("images/train/c3/7.jpg");
    let bytes = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let output = run(&[&common[..], &["--decode-only"]].concat());
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("images/train/c3/7.jpg") && err.contains("truncated JPEG"),
        "{err}"
    );
}
