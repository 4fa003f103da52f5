//! `ltsweep launch`: the rendered sbatch script and Kubernetes manifests (snapshots compared
//! exactly; `LTSWEEP_UPDATE_SNAPSHOTS=1` rewrites them), the manifests parsed as the typed
//! Kubernetes API objects they claim to be, and the launcher's errors.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{ltsweep, repo, stderr, stdout};

/// `ltsweep launch ARGS` with none of the caller's ltsweep or Slurm settings.
fn launch(args: &[&str]) -> Command {
    let mut command = ltsweep();
    command.arg("launch").args(args);
    for var in [
        "LTSWEEP_COORDINATOR",
        "LTSWEEP_TOKEN",
        "LTSWEEP_TOKEN_FILE",
        "SLURM_CONF",
    ] {
        command.env_remove(var);
    }
    command
}

fn succeeded(output: Output) -> Output {
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// Compares `actual` with the snapshot file, or rewrites it under LTSWEEP_UPDATE_SNAPSHOTS=1.
fn snapshot(name: &str, actual: &str) {
    let path = repo().join("tests/snapshots").join(name);
    if std::env::var("LTSWEEP_UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; LTSWEEP_UPDATE_SNAPSHOTS=1 writes it",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "{} differs (LTSWEEP_UPDATE_SNAPSHOTS=1 rewrites it); got:\n{actual}",
        path.display()
    );
}

const GPU_SLURM: &[&str] = &[
    "slurm",
    "--dry-run",
    "--coordinator",
    "http://head.cluster:7070",
    "--workers",
    "8",
    "--gpus-per-worker",
    "2",
    "--slots-per-device",
    "3",
    "--cpus-per-worker",
    "16",
    "--partition",
    "gpu",
    "--time",
    "2-00:00:00",
    "--account",
    "vision-lab",
    "--extra-sbatch",
    "--qos=high --mem=64G",
    "--data-root",
    "/shared/datasets",
    "--ltsweep",
    "/shared/bin/ltsweep",
    "--log-dir",
    "/shared/logs",
];

#[test]
fn slurm_dry_run_scripts_match_their_snapshots() {
    let output = succeeded(
        launch(GPU_SLURM)
            .env("LTSWEEP_TOKEN", "secret")
            .output()
            .unwrap(),
    );
    let script = stdout(&output);
    assert!(
        !script.contains("secret"),
        "the token is never in the script"
    );
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
    snapshot("launch-slurm-gpu.sbatch", &script);

    let output = succeeded(
        launch(&[
            "slurm",
            "--dry-run",
            "--coordinator",
            "http://127.0.0.1:7070",
            "--workers",
            "1",
            "--ltsweep",
            "/usr/local/bin/ltsweep",
            "--log-dir",
            "/tmp",
        ])
        .output()
        .unwrap(),
    );
    let warnings = stderr(&output);
    assert!(warnings.contains("loopback"), "{warnings}");
    assert!(warnings.contains("no --token-file"), "{warnings}");
    snapshot("launch-slurm-cpu.sbatch", &stdout(&output));
}

#[test]
fn slurm_token_files_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    let secret = "a-token-of-at-least-32-bytes-0123456789";
    std::fs::write(&token, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let args = |token: &Path| {
        let mut command = launch(&[
            "slurm",
            "--dry-run",
            "--coordinator",
            "http://head:7070",
            "--workers",
            "2",
        ]);
        command.arg("--token-file").arg(token);
        command.output().unwrap()
    };
    let output = args(&token);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("chmod 600"), "{}", stderr(&output));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let script = stdout(&succeeded(args(&token)));
    let canonical = std::fs::canonicalize(&token).unwrap();
    assert!(
        script.contains(&format!(
            "export LTSWEEP_TOKEN_FILE={}",
            canonical.display()
        )),
        "{script}"
    );
    assert!(!script.contains(secret));
    // The same check as every command's: no link, no short token.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&token, &link).unwrap();
    let output = args(&link);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("symbolic link"),
        "{}",
        stderr(&output)
    );
    std::fs::write(&token, "secret\n").unwrap();
    let output = args(&token);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("shorter than the 32"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn slurm_bad_input_is_refused_with_the_reason() {
    let base = ["slurm", "--dry-run", "--coordinator", "http://head:7070"];
    for (extra, reason) in [
        (&["--workers", "0"][..], "--workers must be at least 1"),
        (&["--workers", "2", "--partition", "a b"], "one word"),
        (
            &["--workers", "2", "--extra-sbatch", "qos=high"],
            "not an sbatch option",
        ),
        // A field opened inside one flag's value, to be filled by another's: refused, not
        // filled (the two together once ran a shell command in the script).
        (
            &[
                "--workers",
                "2",
                "--ltsweep",
                "/bin/ltsweep{{data_root}}",
                "--data-root",
                "/d'; touch /tmp/pwned; '",
            ],
            "--ltsweep: `{{` cannot appear",
        ),
        (
            &["--workers", "2", "--warning-seconds", "0"],
            "--warning-seconds",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let output = launch(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(reason),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = launch(&["slurm", "--cancel", "12; rm -rf /"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not a Slurm job id"));
}

#[test]
fn without_sbatch_the_error_says_slurm_client_tools_are_needed() {
    let empty = tempfile::tempdir().unwrap();
    for args in [
        &[
            "slurm",
            "--coordinator",
            "http://head:7070",
            "--workers",
            "2",
        ][..],
        &["slurm", "--cancel", "42"],
    ] {
        let output = launch(args).env("PATH", empty.path()).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains("Slurm's client tools"), "{message}");
    }
}

#[test]
fn an_sbatch_refusal_passes_its_message_and_exit_code_on() {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    // Stands in for a cluster's sbatch that refuses the script as Slurm does, on stderr with
    // a code of its own.
    let sbatch = bin.path().join("sbatch");
    std::fs::write(
        &sbatch,
        "#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified' >&2\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = launch(&[
        "slurm",
        "--coordinator",
        "http://head:7070",
        "--workers",
        "2",
    ])
    .env("PATH", bin.path())
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(7));
    assert!(
        stderr(&output).contains("Invalid account or account/partition combination specified"),
        "{}",
        stderr(&output)
    );
}

/// The documents of `launch k8s` output.
fn documents(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|doc| serde_json::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}")))
        .collect()
}

/// Deserialises `value` as the typed Kubernetes object `T` and serialises it back: a field the
/// API type does not know (which serde would drop) makes the two differ.
fn round_trip<T>(value: &Value) -> Value
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("not a valid {}: {e}", value["kind"]));
    serde_json::to_value(&typed).unwrap()
}

fn check_typed(doc: &Value) {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::core::v1::Service;
    let back = match doc["kind"].as_str() {
        Some("Deployment") => round_trip::<Deployment>(doc),
        Some("StatefulSet") => round_trip::<StatefulSet>(doc),
        Some("Service") => round_trip::<Service>(doc),
        other => panic!("an unexpected kind {other:?}"),
    };
    assert_eq!(
        &back, doc,
        "a field of this {} is not the Kubernetes API's",
        doc["kind"]
    );
}

const GPU_K8S: &[&str] = &[
    "k8s",
    "--workers",
    "4",
    "--gpus-per-worker",
    "2",
    "--slots-per-device",
    "2",
    "--image",
    "registry.example.com/ltsweep:0.1.0",
    "--namespace",
    "research",
];

#[test]
fn k8s_manifests_are_the_api_objects_they_claim_to_be() {
    let cases: [&[&str]; 4] = [
        GPU_K8S,
        &[
            "k8s",
            "--workers",
            "1",
            "--gpus-per-worker",
            "0",
            "--image",
            "ltsweep:dev",
        ],
        &[
            "k8s",
            "--workers",
            "16",
            "--gpus-per-worker",
            "1",
            "--image",
            "ltsweep:dev",
            "--workers-only",
            "--coordinator",
            "http://head.example.com:7070",
            "--grace-seconds",
            "300",
        ],
        &[
            "k8s",
            "--workers",
            "2",
            "--gpus-per-worker",
            "8",
            "--image",
            "ltsweep:dev",
            "--state-size",
            "100Gi",
        ],
    ];
    for args in cases {
        let output = succeeded(launch(args).output().unwrap());
        let docs = documents(&stdout(&output));
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        if args.contains(&"--workers-only") {
            assert_eq!(kinds, ["Deployment"]);
        } else {
            assert_eq!(kinds, ["StatefulSet", "Service", "Deployment"]);
        }
        for doc in &docs {
            check_typed(doc);
        }
        let workers = docs.last().unwrap();
        let pod = &workers["spec"]["template"]["spec"];
        assert!(pod["terminationGracePeriodSeconds"].as_u64() >= Some(60));
        let container = &pod["containers"][0];
        assert!(container["readinessProbe"].is_object());
        let gpus = args[args.iter().position(|a| *a == "--gpus-per-worker").unwrap() + 1];
        if gpus == "0" {
            assert!(container.get("resources").is_none());
        } else {
            assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], gpus);
        }
        // The token comes from a Secret, never from a manifest's text.
        assert_eq!(pod["volumes"][0]["secret"]["secretName"], "ltsweep-token");
    }
}

#[test]
fn k8s_manifests_match_their_snapshots() {
    let output = succeeded(launch(GPU_K8S).output().unwrap());
    snapshot("launch-k8s-gpu.yaml", &stdout(&output));
    let output = succeeded(
        launch(&[
            "k8s",
            "--workers",
            "3",
            "--gpus-per-worker",
            "0",
            "--image",
            "ltsweep:dev",
            "--workers-only",
            "--coordinator",
            "http://head.example.com:7070",
        ])
        .output()
        .unwrap(),
    );
    snapshot("launch-k8s-cpu-workers.yaml", &stdout(&output));
}

#[test]
fn k8s_bad_input_is_refused_with_the_reason() {
    let output = launch(&[
        "k8s",
        "--workers",
        "2",
        "--gpus-per-worker",
        "1",
        "--image",
        "x",
        "--namespace",
        "Research Lab",
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("a Kubernetes name"),
        "{}",
        stderr(&output)
    );
}
