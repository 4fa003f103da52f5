//! `ltsweep export mlflow` against a real MLflow tracking server (the `mlflow` package, which
//! `./dev setup-extras` installs in a virtualenv of its own): started by the test on loopback with a
//! SQLite store in a temporary folder, it holds every job's run, parameters and metrics after
//! an export, and the same runs, none twice, after a second one. MLflow's own client checks.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cluster_support::{TOKEN, serve_finished_study};
use crate::harness::mlflow_python;
use crate::harness::register;
use crate::support::{ltsweep, repo, run, stderr, stdout, wait_until, write};

/// `mlflow server` in a process group of its own: it starts its web server as a child process,
/// and the whole group goes when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let group = libc::pid_t::try_from(self.0.id()).expect("a pid");
        // SAFETY: kill(2) of the process group this test created for the server.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

const STUDY: &str = r#"
name = "tracked"
seeds = [0, 1]
[dataset]
kind = "synthetic"
classes = 4
train_per_class = 40
test_per_class = 10
image_size = 8
noise = 2.0
imbalance_ratio = 5
head_min_count = 20
val_per_class = 4
[model]
depth = 8
[train]
epochs = 2
batch_size = 16
lr = 0.05
warmup_epochs = 0
eval_epochs = [1]
checkpoint_every = 1
[losses]
plans = [{ comp = "none", pc = "none" }, { comp = "tail", pc = "head" }]
"#;

register!(an_mlflow_export_holds_every_run_and_metric_once, needs: [Mlflow]);
fn an_mlflow_export_holds_every_run_and_metric_once() {
    let python = mlflow_python();
    let dir = tempfile::tempdir().unwrap();
    // MLflow's server takes a port number and cannot say which it bound for port 0: one the
    // kernel just handed out is free as far as anything on this machine asked for it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(&python);
    command
        .args([
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--workers",
            "1",
        ])
        .args(["--port", &port.to_string()])
        .arg("--backend-store-uri")
        .arg(format!(
            "sqlite:///{}",
            dir.path().join("mlflow.db").display()
        ))
        .arg("--artifacts-destination")
        .arg(dir.path().join("artifacts"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let _server = Server(command.spawn().expect("mlflow server starts"));
    let uri = format!("http://127.0.0.1:{port}");
    wait_until(
        "the MLflow server to answer",
        Duration::from_secs(180),
        || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut stream| {
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let asked = stream.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_ok();
                let mut answer = String::new();
                asked && stream.read_to_string(&mut answer).is_ok() && answer.contains(" 200 ")
            })
        },
    );

    let spec = write(dir.path(), "study.toml", STUDY);
    let out = dir.path().join("study");
    let output = run(&[
        "run",
        spec.to_str().unwrap(),
        "--workers",
        "2",
        "--devices",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let sweep = stdout(&output)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    let (_coordinator, address) = serve_finished_study(&out);

    let export = || {
        let output = ltsweep()
            .args(["export", "mlflow", &sweep, "--tracking-uri", &uri])
            .args(["--coordinator", &format!("http://{address}")])
            .env("LTSWEEP_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let check = || {
        let output = Command::new(&python)
            .arg(repo().join("scripts/check_mlflow.py"))
            .args([&uri, &sweep, &sweep])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the export is not what the sweep holds:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };

    let first = export();
    assert!(first.contains("5 runs created, 0 already there"), "{first}");
    let after_first = check();
    // The sweep's run and 4 jobs; per job 2 epochs of 4 losses and lr, and the evaluation
    // after epochs 1 and 2 of 2 test and 2 validation accuracies.
    assert_eq!(after_first["runs"], 5);
    assert_eq!(after_first["job_runs"], 4);
    assert_eq!(after_first["metrics"], 4 * (2 * 4 + 2 * 4));

    let second = export();
    assert!(
        second.contains("0 runs created, 5 already there"),
        "{second}"
    );
    let after_second = check();
    assert_eq!(
        after_second, after_first,
        "the second export changed the runs"
    );
}
