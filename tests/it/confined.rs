//! A user's spec reads only the workers' data root. Absolute paths and `..` are refused by
//! `validate`, at the coordinator too (through the raw API); what `validate` cannot see, a
//! symbolic link under the root that leads out of it, a FIFO or a device, is refused by the
//! worker when it opens the file, and the job's failure names the file without quoting it.

use std::path::Path;
use std::time::Duration;

use ltsweep_proto::pb;
use tonic::Code;

use crate::cluster_support::{TOKEN, TestCluster, memory_mib};
use crate::harness::register;

/// A list data set of one job that fails for good on its first attempt.
fn list_spec(name: &str, path: &str, list: &str) -> String {
    format!(
        r#"
name = "{name}"
seeds = [0]
max_attempts = 1
[dataset]
kind = "list"
path = "{path}"
train_list = "{list}"
test_list = "{list}"
[model]
depth = 8
[train]
epochs = 1
[losses]
plans = [{{}}]
"#
    )
}

/// The failure of the sweep's one job, once it has failed.
fn failure_of(cluster: &TestCluster, sweep: &str) -> String {
    let status = cluster.wait_for_state(
        sweep,
        "the job to fail",
        Duration::from_secs(120),
        |status| status["jobs"][0]["error"].is_string(),
    );
    status["jobs"][0]["error"].as_str().unwrap().to_owned()
}

fn submit(cluster: &TestCluster, spec: String) -> Result<String, tonic::Status> {
    let mut sweeps = cluster.connection().sweeps();
    cluster
        .block_on(sweeps.submit_sweep(pb::SubmitSweepRequest { spec_toml: spec }))
        .map(|response| response.into_inner().sweep_id)
}

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

register!(a_spec_reads_nothing_outside_the_data_root_and_quotes_nothing);
fn a_spec_reads_nothing_outside_the_data_root_and_quotes_nothing() {
    let mut cluster = TestCluster::start(0);
    let root = cluster.dir.path().join("data");
    let outside = cluster.dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // What a worker must never hand to a viewer: the system's users and a token.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let first_user = passwd.lines().next().unwrap().to_owned();
    std::fs::write(outside.join("worker-token"), format!("{TOKEN}\n")).unwrap();
    // Links under the root that lead out of it, which `validate` cannot see.
    symlink("/etc", root.join("etc"));
    symlink(outside.join("worker-token"), root.join("token.txt"));
    symlink("/etc", root.join("escape"));
    std::fs::write(root.join("lines.txt"), "escape/passwd 0\n").unwrap();
    symlink("/dev/zero", root.join("zero.txt"));
    let fifo = std::ffi::CString::new(root.join("fifo.txt").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    // The reviewer's spec, and one naming the token file, refused at the coordinator.
    for (spec, key) in [
        (list_spec("etc", "/etc", "passwd"), "dataset.path"),
        (
            list_spec(
                "tok",
                "d",
                &outside.join("worker-token").display().to_string(),
            ),
            "dataset.train_list",
        ),
        (
            list_spec("up", "../outside", "worker-token"),
            "dataset.path",
        ),
    ] {
        let refused = submit(&cluster, spec).expect_err("a spec reading outside the root");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains(&format!("{key}: `")),
            "{refused:?}"
        );
    }

    let url = cluster.url();
    cluster.add_worker_with(&url, &["--data-root", root.to_str().unwrap()]);
    let cases = [
        ("etc", list_spec("etc", "etc", "passwd"), root.join("etc")),
        (
            "token",
            list_spec("token", ".", "token.txt"),
            root.join("token.txt"),
        ),
        (
            "line",
            list_spec("line", ".", "lines.txt"),
            root.join("escape/passwd"),
        ),
        (
            "fifo",
            list_spec("fifo", ".", "fifo.txt"),
            root.join("fifo.txt"),
        ),
    ];
    let sweeps: Vec<String> = cases
        .iter()
        .map(|(_, spec, _)| submit(&cluster, spec.clone()).expect("passes validate"))
        .collect();
    for ((case, _, named), sweep) in cases.iter().zip(&sweeps) {
        let error = failure_of(&cluster, sweep);
        let named = named.display().to_string();
        assert!(error.contains(&named), "{case}: `{error}` names {named}");
        assert!(!error.contains("root:x:0:0"), "{case}: {error}");
        assert!(!error.contains(&first_user), "{case}: {error}");
        assert!(!error.contains(TOKEN), "{case}: {error}");
        let why = if *case == "fifo" {
            "a FIFO, not a regular file"
        } else {
            "lies outside the worker's --data-root"
        };
        assert!(error.contains(why), "{case}: {error}");
    }
    let line = cluster.status(&sweeps[2])["jobs"][0]["error"].to_string();
    assert!(line.contains("lines.txt line 1"), "{line}");

    // /dev/zero through a link: its metadata says 0 bytes, and a read never ends. Refused
    // without the worker reading it.
    let before = memory_mib(&cluster.workers[0], "VmHWM:");
    let zero = submit(&cluster, list_spec("zero", ".", "zero.txt")).expect("passes validate");
    let error = failure_of(&cluster, &zero);
    assert!(
        error.contains(&format!(
            "{}: lies outside",
            root.join("zero.txt").display()
        )),
        "{error}"
    );
    let after = memory_mib(&cluster.workers[0], "VmHWM:");
    assert!(
        after < before + 200,
        "the worker's peak memory grew from {before} MiB to {after} MiB"
    );
}
