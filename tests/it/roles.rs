//! Tokens by role against a real coordinator process: each token does its role's work and is
//! refused the rest, over gRPC, the CLI and the web page; tokens come from files (checked the
//! same way by every command) or from systemd credentials.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ltsweep_proto::client::Connection;
use ltsweep_proto::pb;
use tonic::Code;

use crate::cluster_support::{Process, listening_address, tiny_spec};
use crate::harness::register;
use crate::support::{ltsweep, ltsweep_for, stderr, trainer, wait_until, write};
use crate::web::Served;

pub(crate) const WORKER_TOKEN: &str = "worker-token-0123456789abcdef0123456789";
pub(crate) const USER_TOKEN: &str = "user-token-0123456789abcdef0123456789ab";
pub(crate) const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef0123456789";

/// A private token file (mode 600) holding `token`.
pub(crate) fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    let path = write(dir, name, &format!("{token}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The three role tokens in files under `dir`, as the coordinator's flags.
pub(crate) fn role_flags(dir: &Path) -> Vec<String> {
    let mut flags = Vec::new();
    for (flag, name, token) in [
        ("--worker-token-file", "worker-token", WORKER_TOKEN),
        ("--user-token-file", "user-token", USER_TOKEN),
        ("--viewer-token-file", "viewer-token", VIEWER_TOKEN),
    ] {
        flags.push(flag.to_owned());
        flags.push(
            token_file(dir, name, token)
                .to_str()
                .expect("a UTF-8 path")
                .to_owned(),
        );
    }
    flags
}

/// The call was refused as `role`'s: exit code 3 and the message naming who may.
fn refused(output: &std::process::Output, credential: &str, call: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("the {credential} may not call {call}")),
        "{err}"
    );
}

register!(each_token_does_its_roles_work_and_is_refused_the_rest);
fn each_token_does_its_roles_work_and_is_refused_the_rest() {
    let tokens = tempfile::tempdir().unwrap();
    let flags = role_flags(tokens.path());
    let served = Served::start_with(|command| {
        command.args(&flags);
    });
    let spec = write(served.dir.path(), "tiny.toml", &tiny_spec(2));
    let spec = spec.to_str().unwrap();

    // A worker's token cannot submit, cancel, delete, or even read.
    refused(
        &served.cli_as(WORKER_TOKEN, &["submit", spec]),
        "worker token",
        "SubmitSweep",
    );
    let submitted = served.cli_as(USER_TOKEN, &["submit", spec]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let sweep = String::from_utf8_lossy(&submitted.stdout)
        .lines()
        .last()
        .unwrap()
        .to_owned();
    for (args, call) in [
        (vec!["cancel", &sweep], "CancelSweep"),
        (vec!["delete", &sweep], "DeleteSweep"),
        (vec!["status", &sweep], "GetSweep"),
    ] {
        refused(&served.cli_as(WORKER_TOKEN, &args), "worker token", call);
    }
    // A viewer's token reads, and cannot cancel or submit.
    let status = served.cli_as(VIEWER_TOKEN, &["status", &sweep, "--json"]);
    assert!(status.status.success(), "{}", stderr(&status));
    refused(
        &served.cli_as(VIEWER_TOKEN, &["cancel", &sweep]),
        "viewer token",
        "CancelSweep",
    );
    refused(
        &served.cli_as(VIEWER_TOKEN, &["retry-failed", &sweep]),
        "viewer token",
        "RetryFailed",
    );

    // Over gRPC: only the worker's token registers a worker; the user's takes no job.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://{}", served.grpc);
    let register = |token: &str| {
        let connection = {
            let _guard = runtime.enter();
            Connection::new(&url, Some(token), None).unwrap()
        };
        runtime.block_on(async {
            connection
                .worker()
                .register_worker(pb::RegisterWorkerRequest {
                    host: "roles-test".into(),
                    devices: vec![pb::Device {
                        name: "cpu".into(),
                        slots: 1,
                    }],
                    protocol_version: ltsweep_proto::PROTOCOL_VERSION,
                    version: "test".into(),
                    slurm: None,
                })
                .await
                .map(drop)
                .map_err(|status| status.code())
        })
    };
    assert_eq!(register(WORKER_TOKEN), Ok(()));
    assert_eq!(register(USER_TOKEN), Err(Code::PermissionDenied));
    assert_eq!(register(VIEWER_TOKEN), Err(Code::PermissionDenied));

    // The page asks the same table: the viewer reads and cannot cancel, the worker cannot
    // read, the user cancels.
    let bearer = |token: &str| format!("Bearer {token}");
    let cancel = format!("/api/sweeps/{sweep}/cancel");
    assert_eq!(
        served
            .get("/api/sweeps", &[("Authorization", &bearer(VIEWER_TOKEN))])
            .status,
        200
    );
    let viewer_cancel = served.post(&cancel, &[("Authorization", &bearer(VIEWER_TOKEN))], "");
    assert_eq!(viewer_cancel.status, 403, "{}", viewer_cancel.body);
    assert!(
        viewer_cancel.body.contains("CancelSweep"),
        "{}",
        viewer_cancel.body
    );
    assert_eq!(
        served
            .get("/api/sweeps", &[("Authorization", &bearer(WORKER_TOKEN))])
            .status,
        403
    );
    let origin = format!("http://127.0.0.1:{}", served.web_port);
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", origin.as_str()),
    ];
    let worker_login = served.post("/login", &form, &format!("token={WORKER_TOKEN}"));
    assert_eq!(worker_login.status, 403, "{}", worker_login.body);
    assert!(worker_login.header("set-cookie").is_none());
    let cancelled = served.post(&cancel, &[("Authorization", &bearer(USER_TOKEN))], "");
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    // Cancelled, the sweep is the user's to delete, still not the worker's.
    refused(
        &served.cli_as(WORKER_TOKEN, &["delete", &sweep]),
        "worker token",
        "DeleteSweep",
    );
    let deleted = served.cli_as(USER_TOKEN, &["delete", &sweep]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
}

/// `ltsweep coordinator` with `args`, run until it says why it stopped.
fn coordinator_refuses(args: &[&str]) -> String {
    let state = tempfile::tempdir().unwrap();
    let mut command = ltsweep();
    command
        .args(["coordinator", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .args(args)
        .env_remove("LTSWEEP_TOKEN")
        .env_remove("CREDENTIALS_DIRECTORY");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    stderr(&output)
}

register!(tokens_come_from_safe_files_or_systemd_credentials);
fn tokens_come_from_safe_files_or_systemd_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let good = token_file(dir, "good", USER_TOKEN);
    let good = good.to_str().unwrap();

    // Every command checks a token file the same way: the coordinator, a worker, a client.
    let readable = write(dir, "readable", USER_TOKEN);
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(good, &link).unwrap();
    let short = token_file(dir, "short", "s3cret");
    for (file, why) in [
        (&readable, "chmod 600"),
        (&link, "symbolic link"),
        (&short, "shorter than the 32"),
    ] {
        let err = coordinator_refuses(&["--user-token-file", file.to_str().unwrap()]);
        assert!(err.contains(why), "{err}");
        for command in [vec!["worker", "--devices", "cpu"], vec!["status"]] {
            let output = ltsweep_for(command[0])
                .args(&command)
                .args(["--coordinator", "http://127.0.0.1:1", "--token-file"])
                .arg(file)
                .output()
                .unwrap();
            assert_eq!(
                output.status.code(),
                Some(2),
                "{command:?}: {}",
                stderr(&output)
            );
            assert!(
                stderr(&output).contains(why),
                "{command:?}: {}",
                stderr(&output)
            );
        }
    }
    let err = coordinator_refuses(&["--token-file", readable.to_str().unwrap()]);
    assert!(err.contains("chmod 600"), "{err}");
    let output = ltsweep()
        .args(["status", "--coordinator", "http://127.0.0.1:1"])
        .env("LTSWEEP_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("LTSWEEP_TOKEN"),
        "{}",
        stderr(&output)
    );

    // One token for every role does not mix with tokens by role; two roles, two tokens.
    let other = token_file(dir, "other", WORKER_TOKEN);
    let err = coordinator_refuses(&[
        "--token-file",
        good,
        "--worker-token-file",
        other.to_str().unwrap(),
    ]);
    assert!(err.contains("cannot go with"), "{err}");
    let err = coordinator_refuses(&["--worker-token-file", good, "--user-token-file", good]);
    assert!(err.contains("the same token"), "{err}");

    // Under systemd: the coordinator reads its role tokens, and a worker its token, from
    // $CREDENTIALS_DIRECTORY.
    let credentials = dir.join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    token_file(&credentials, "worker-token", WORKER_TOKEN);
    token_file(&credentials, "user-token", USER_TOKEN);
    token_file(&credentials, "token", WORKER_TOKEN);
    let state = dir.join("state");
    let mut command = ltsweep();
    command
        .args(["coordinator", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .env_remove("LTSWEEP_TOKEN")
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .env("RUST_LOG", "info");
    let coordinator = Process::spawn(command);
    let url = format!("http://{}", listening_address(&coordinator));
    let mut command = trainer();
    command
        .args(["worker", "--coordinator", &url, "--devices", "cpu"])
        .args(["--threads", "1"])
        .env_remove("LTSWEEP_TOKEN")
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .env("RUST_LOG", "info");
    let _worker = Process::spawn(command);
    wait_until(
        "the worker to register with its credential",
        Duration::from_secs(120),
        || coordinator.line_containing("worker registered").is_some(),
    );
    let submitted = ltsweep()
        .args(["sweeps", "--coordinator", &url])
        .env("LTSWEEP_TOKEN", USER_TOKEN)
        .output()
        .unwrap();
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    // No viewer credential was given: the viewer's token is nobody's.
    let output = ltsweep()
        .args(["sweeps", "--coordinator", &url])
        .env("LTSWEEP_TOKEN", VIEWER_TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}
