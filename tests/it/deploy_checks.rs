//! What an administrator checks before deploying ltsweep: the printed Kubernetes manifests and
//! the Containerfiles pass Checkov (the skipped checks are in `.checkov.yaml` and the
//! Containerfiles, each with its reason), `systemd-analyze security` rates every unit below
//! 3.0, the worker image's library list is all the worker loads, and the head-node build
//! links no libtorch, refuses the training commands and checks, summarises and packs list data.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::register;
use crate::harness::{checkov, head_node_binary};
use crate::launch::{cpu_workers_k8s_args, gpu_k8s_args, launch, succeeded};
use crate::list_cli::photos;
use crate::support::{repo, stderr, stdout, subcommands, trainer};

fn containerfiles() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("Containerfile.")
        })
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["Containerfile.coordinator", "Containerfile.worker"]);
    files
}

/// The image each FROM line names, and the instructions of the last stage.
fn stages(text: &str) -> (Vec<String>, Vec<String>) {
    let mut images = Vec::new();
    let mut last = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("FROM ") {
            images.push(rest.split_whitespace().next().unwrap().to_owned());
            last.clear();
        }
        last.push(line.to_owned());
    }
    (images, last)
}

register!(containerfiles_are_multi_stage_non_root_and_pinned_by_digest);
fn containerfiles_are_multi_stage_non_root_and_pinned_by_digest() {
    for file in containerfiles() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let (images, last) = stages(&text);
        assert!(images.len() >= 2, "{name}: one stage builds, another runs");
        for image in &images {
            let digest = image.split_once("@sha256:").map(|(_, d)| d);
            assert!(
                digest.is_some_and(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())),
                "{name}: FROM {image} is not pinned by digest"
            );
        }
        let user = last
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("USER "))
            .unwrap_or_else(|| panic!("{name}: the final stage sets no USER"));
        for id in user.split(':') {
            let id: u32 = id
                .parse()
                .unwrap_or_else(|_| panic!("{name}: USER {user} is not numeric"));
            assert!(id >= 10000, "{name}: USER {user}");
        }
        // Nothing of a build stage but the binary and, for the worker, the listed libraries.
        let copies: Vec<&String> = last.iter().filter(|l| l.starts_with("COPY")).collect();
        assert!(
            copies.iter().all(
                |c| c.starts_with("COPY --from=build /src/target/release/ltsweep ")
                    || c.starts_with("COPY --from=build /stage/ ")
            ),
            "{name}: {copies:?}"
        );
    }
    let coordinator =
        std::fs::read_to_string(repo().join("deploy/Containerfile.coordinator")).unwrap();
    assert!(
        coordinator.contains("cargo build --release --locked --no-default-features --bin ltsweep")
    );
}

register!(deployments_pass_checkov, needs: [Checkov]);
/// Runs Checkov on the rendered manifests and the Containerfiles together (one start of a
/// slow program) with the repository's `.checkov.yaml`.
fn deployments_pass_checkov() {
    let checkov = checkov().expect("checkov, which the harness found");
    // Checkov's Kubernetes runner passes over folders whose names start with a dot, as
    // tempdir()'s do.
    let dir = tempfile::Builder::new()
        .prefix("ltsweep-checkov")
        .tempdir()
        .unwrap();
    for (name, args) in [
        ("gpu.yaml", gpu_k8s_args()),
        ("cpu-workers.yaml", cpu_workers_k8s_args()),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = succeeded(launch(&args).output().unwrap());
        std::fs::write(dir.path().join(name), stdout(&output)).unwrap();
    }
    // Checkov knows Dockerfiles by name only.
    for file in containerfiles() {
        let role = file.extension().unwrap().to_string_lossy().into_owned();
        std::fs::copy(&file, dir.path().join(format!("{role}.Dockerfile"))).unwrap();
    }
    let output = Command::new(&checkov)
        .arg("--directory")
        .arg(dir.path())
        .args(["--framework", "kubernetes", "dockerfile"])
        .arg("--config-file")
        .arg(repo().join(".checkov.yaml"))
        // No network: the check list ships with the package.
        .args(["--skip-download", "--output", "json"])
        .output()
        .expect("checkov runs");
    let text = stdout(&output);
    let reports: Vec<Value> = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(reports)) => reports,
        Ok(report) => vec![report],
        Err(e) => panic!(
            "checkov printed no JSON ({e}); exit {:?}\n{text}\n{}",
            output.status,
            stderr(&output)
        ),
    };
    let mut failures = Vec::new();
    let mut frameworks = Vec::new();
    for report in &reports {
        let framework = report["check_type"].as_str().unwrap().to_owned();
        let summary = &report["summary"];
        for failed in report["results"]["failed_checks"].as_array().unwrap() {
            failures.push(format!(
                "{framework} {} {} ({})",
                failed["check_id"].as_str().unwrap(),
                failed["check_name"].as_str().unwrap(),
                failed["resource"].as_str().unwrap()
            ));
        }
        // Each skip in a Containerfile carries its reason.
        for skipped in report["results"]["skipped_checks"].as_array().unwrap() {
            let reason = skipped["check_result"]["suppress_comment"]
                .as_str()
                .unwrap_or("");
            assert!(
                reason.len() > 20,
                "{} is skipped without a reason",
                skipped["check_id"]
            );
        }
        assert_eq!(summary["parsing_errors"], 0, "{framework}: {summary}");
        assert!(
            summary["passed"].as_u64().unwrap() > 10,
            "{framework}: {summary}"
        );
        frameworks.push((framework, summary["resource_count"].as_u64().unwrap()));
    }
    frameworks.sort();
    // Every file was read: 2 Containerfiles; 5 + 2 Kubernetes objects, of which Checkov counts
    // the pods of the StatefulSet and the Deployments beside them.
    assert_eq!(frameworks.len(), 2, "{frameworks:?}");
    assert_eq!(
        frameworks[0],
        ("dockerfile".to_owned(), 2),
        "{frameworks:?}"
    );
    assert!(
        frameworks[1].0 == "kubernetes" && frameworks[1].1 >= 7,
        "{frameworks:?}"
    );
    assert!(
        failures.is_empty(),
        "Checkov failed:\n{}",
        failures.join("\n")
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

register!(systemd_units_are_rated_below_3, needs: [SystemdAnalyze]);
fn systemd_units_are_rated_below_3() {
    let mut units: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    units.sort();
    assert_eq!(units.len(), 2, "{units:?}");
    for unit in units {
        let output = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&unit)
            .output()
            .unwrap();
        let text = stdout(&output);
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        let marker = format!("Overall exposure level for {name}: ");
        let score: f64 = text
            .lines()
            .find_map(|l| l.split_once(&marker).map(|(_, rest)| rest))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no overall rating\n{text}\n{}", stderr(&output)));
        assert!(score < 3.0, "{name} is rated {score}:\n{text}");
    }
}

/// Links (or, across file systems, copies) `files` from `from` into `to`, keeping their paths.
fn stage(files: &[&str], from: &Path, to: &Path) {
    for file in files {
        let target = to.join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        if std::fs::hard_link(from.join(file), &target).is_err() {
            std::fs::copy(from.join(file), &target).unwrap();
        }
    }
}

/// The libraries of a system that the worker image's base (debian:bookworm-slim) has.
const BASE_LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libutil.so.1",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    // zlib: dpkg needs it, so every Debian image has it.
    "libz.so.1",
];

/// Checks with `ldd` (under LD_LIBRARY_PATH=`stage/torch/lib`) that `object` loads every
/// library from the stage or the base image's system libraries; the GPU driver's libcuda comes
/// from the host.
fn loads_from_stage(object: &Path, stage: &Path) {
    let output = Command::new("ldd")
        .arg(object)
        .env("LD_LIBRARY_PATH", stage.join("torch/lib"))
        .output()
        .unwrap();
    for line in stdout(&output).lines().map(str::trim) {
        let Some((name, path)) = line.split_once(" => ") else {
            continue;
        };
        let path = path.split(" (").next().unwrap();
        if name == "libcuda.so.1" {
            continue;
        }
        assert!(
            path != "not found",
            "{}: {name} not found",
            object.display()
        );
        let resolved = std::fs::canonicalize(path).unwrap();
        assert!(
            resolved.starts_with(stage) || BASE_LIBRARIES.contains(&name),
            "{}: {name} comes from {}, which the image lacks",
            object.display(),
            resolved.display()
        );
    }
}

#[cfg(feature = "train")]
register!(the_worker_image_lists_every_library_the_worker_loads);
fn the_worker_image_lists_every_library_the_worker_loads() {
    // The wheel's torch/lib, which the build linked; its site-packages is two folders up.
    let lib = env!("LTSWEEP_LIBTORCH_LIB");
    let site = std::fs::canonicalize(Path::new(lib).join("../..")).unwrap();
    let binary = env!("CARGO_BIN_EXE_ltsweep");
    let output = Command::new(repo().join("deploy/worker-libraries.sh"))
        .arg(binary)
        .arg(&site)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let listed = stdout(&output);
    let files: Vec<&str> = listed.lines().collect();
    for expected in [
        "torch/lib/libtorch.so",
        "torch/lib/libtorch_cpu.so",
        "torch/lib/libc10.so",
    ] {
        assert!(
            files.contains(&expected),
            "{expected} is not listed:\n{listed}"
        );
    }
    assert!(
        !files
            .iter()
            .any(|f| f.contains("libtorch_python") || f.ends_with(".py")),
        "Python's bindings are not the worker's:\n{listed}"
    );

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let staged = std::fs::canonicalize(dir.path()).unwrap();
    stage(&files, &site, &staged);
    loads_from_stage(Path::new(binary), &staged);
    for file in &files {
        loads_from_stage(&staged.join(file), &staged);
    }
    // And libtorch, loaded from the listed files alone, trains a few steps.
    let output = trainer()
        .args([
            "bench",
            "train",
            "--device",
            "cpu",
            "--depth",
            "8",
            "--images",
            "64",
            "--batch",
            "32",
            "--classes",
            "2",
            "--epochs",
            "1",
            "--threads",
            "1",
        ])
        .env("LD_LIBRARY_PATH", staged.join("torch/lib"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("images_per_second="));
}

register!(the_head_node_build_links_no_libtorch_and_refuses_to_train, needs: [HeadNode]);
fn the_head_node_build_links_no_libtorch_and_refuses_to_train() {
    let binary = head_node_binary().expect("the head-node build, which the harness found");
    let output = Command::new("ldd").arg(&binary).output().unwrap();
    let libraries = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    for torch in ["libtorch", "libc10", "libgomp", "libcuda"] {
        assert!(!libraries.contains(torch), "{torch} in:\n{libraries}");
    }

    let run = |args: &[&str]| Command::new(&binary).args(args).output().unwrap();
    let help = stdout(&run(&["--help"]));
    assert!(help.contains("This build has no trainer"), "{help}");
    for args in [
        &["worker", "--coordinator", "http://head:7070"][..],
        &["train", "examples/quickstart.toml", "--out", "runs/x"],
        &["run", "examples/quickstart.toml", "--out", "report/x"],
        &["doctor"],
        &["bench", "train"],
        &["bench", "sweep"],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains("this build leaves out")
                && message.contains("cargo build --release` with the default features"),
            "{args:?}: {message}"
        );
    }
    // Every command the full build has and this one lacks, read from both builds' help rather
    // than from a list kept by hand, is refused as needing the trainer.
    let full = Path::new(env!("CARGO_BIN_EXE_ltsweep"));
    for parent in [&[][..], &["bench"][..]] {
        let head_has = subcommands(&binary, parent);
        let lacking: Vec<String> = subcommands(full, parent)
            .into_iter()
            .filter(|name| !head_has.contains(name))
            .collect();
        assert!(
            parent.is_empty() || !lacking.is_empty(),
            "the head-node build has every `bench` command: {head_has:?}"
        );
        for name in lacking {
            let mut args: Vec<&str> = parent.to_vec();
            args.push(&name);
            let output = run(&args);
            let message = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
            assert!(
                message.contains("this build leaves out"),
                "{args:?}: {message}"
            );
        }
    }
    let output = run(&["sumbit"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unrecognized subcommand `sumbit`"));

    // What a head node does still works without a coordinator to ask.
    let spec = repo().join("examples/quickstart.toml");
    let output = run(&["validate", spec.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(&[
        "launch",
        "k8s",
        "--workers",
        "1",
        "--gpus-per-worker",
        "1",
        "--image",
        "x",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
}

register!(the_head_node_build_checks_and_packs_list_data, needs: [HeadNode]);
fn the_head_node_build_checks_and_packs_list_data() {
    let binary = head_node_binary().expect("the head-node build, which the harness found");
    let dir = tempfile::tempdir().unwrap();
    let photos = photos::photos(&repo().join("worker/tests/data/photos"));
    let (train, _, test) = photos::write_images(dir.path(), &photos, &[4, 2], 2);
    photos::write_list(&dir.path().join("train.txt"), &train);
    photos::write_list(&dir.path().join("test.txt"), &test);
    let run = |command: &[&str], extra: &[&str]| {
        let root = dir.path().to_str().unwrap();
        let lists = [
            "--kind",
            "list",
            "--path",
            root,
            "--train-list",
            "train.txt",
            "--test-list",
            "test.txt",
        ];
        let output = Command::new(&binary)
            .args(command)
            .args(lists)
            .args(extra)
            .output()
            .unwrap();
        (output.status.success(), stdout(&output), stderr(&output))
    };

    let (ok, out, err) = run(&["data", "summary", "--json"], &[]);
    assert!(ok, "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["class_counts"], serde_json::json!([4, 2]));
    assert_eq!(summary["test_total"], 4);

    let (ok, out, err) = run(&["data", "check"], &["--threads", "2"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("checked 10 images (6 train, 4 test): 0 unreadable"),
        "{out}"
    );

    // The pack's --out is the administrator's path; `--packed` names it within --path.
    let pack = dir.path().join("small.ltpack");
    let (ok, out, err) = run(
        &["data", "pack"],
        &["--out", pack.to_str().unwrap(), "--shorter-side", "48"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("packed 10 images"), "{out}");
    let (ok, out, err) = run(&["data", "check"], &["--packed", "small.ltpack"]);
    assert!(ok, "{out}{err}");

    // A cut-short image is found by decoding it, which a check of the lists alone would miss.
    let cut = dir.path().join(&test[1].0);
    let whole = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 3]).unwrap();
    let (ok, out, _) = run(&["data", "check"], &[]);
    assert!(!ok);
    assert!(
        out.contains(&format!("{}: truncated JPEG", cut.display())),
        "{out}"
    );
}
