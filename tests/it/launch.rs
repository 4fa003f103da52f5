//! `ltsweep launch`: the rendered sbatch script and Kubernetes manifests (snapshots compared
//! exactly; `LTSWEEP_UPDATE_SNAPSHOTS=1` rewrites them), the manifests parsed as the typed
//! Kubernetes API objects they claim to be, and the launcher's errors.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::register;
use crate::support::{ltsweep, repo, stderr, stdout};

/// `ltsweep launch ARGS` with none of the caller's ltsweep or Slurm settings.
pub fn launch(args: &[&str]) -> Command {
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

pub fn succeeded(output: Output) -> Output {
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

register!(slurm_dry_run_scripts_match_their_snapshots);
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

register!(slurm_token_files_must_be_private);
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

register!(slurm_bad_input_is_refused_with_the_reason);
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

register!(without_sbatch_the_error_says_slurm_client_tools_are_needed);
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

register!(an_sbatch_refusal_passes_its_message_and_exit_code_on);
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
pub fn documents(text: &str) -> Vec<Value> {
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
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let back = match doc["kind"].as_str() {
        Some("Deployment") => round_trip::<Deployment>(doc),
        Some("StatefulSet") => round_trip::<StatefulSet>(doc),
        Some("Service") => round_trip::<Service>(doc),
        Some("NetworkPolicy") => round_trip::<NetworkPolicy>(doc),
        other => panic!("an unexpected kind {other:?}"),
    };
    assert_eq!(
        &back, doc,
        "a field of this {} is not the Kubernetes API's",
        doc["kind"]
    );
}

/// An image digest of the right shape (64 hex digits), for the flags that take one.
pub fn digest_image(repository: &str) -> String {
    format!("{repository}@sha256:{}", "0123456789abcdef".repeat(4))
}

/// Four GPU workers with their coordinator, both images by digest.
pub fn gpu_k8s_args() -> Vec<String> {
    [
        "k8s",
        "--workers",
        "4",
        "--gpus-per-worker",
        "2",
        "--slots-per-device",
        "2",
        "--namespace",
        "research",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .chain([
        "--image".to_owned(),
        digest_image("registry.example.com/ltsweep-worker"),
        "--coordinator-image".to_owned(),
        digest_image("registry.example.com/ltsweep-coordinator"),
    ])
    .collect()
}

/// Three CPU workers of a coordinator that runs elsewhere.
pub fn cpu_workers_k8s_args() -> Vec<String> {
    [
        "k8s",
        "--workers",
        "3",
        "--gpus-per-worker",
        "0",
        "--namespace",
        "research",
        "--workers-only",
        "--coordinator",
        "http://head.example.com:7070",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .chain([
        "--image".to_owned(),
        digest_image("registry.example.com/ltsweep-worker"),
    ])
    .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The "restricted" Pod Security Standard, as its documentation lists it, and what the
/// launcher adds: a read-only root file system, no service account token, and requests equal
/// to limits.
fn assert_restricted(pod: &Value, what: &str) {
    assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(pod.get(key).is_none_or(|v| v == false), "{what}: {key}");
    }
    let pod_security = &pod["securityContext"];
    assert_eq!(
        pod_security["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    for volume in pod["volumes"].as_array().unwrap() {
        let kind = volume
            .as_object()
            .unwrap()
            .keys()
            .find(|k| *k != "name")
            .unwrap();
        assert!(
            ["emptyDir", "persistentVolumeClaim", "projected", "secret"].contains(&kind.as_str()),
            "{what}: a {kind} volume"
        );
    }
    let containers = pod["containers"].as_array().unwrap();
    assert!(!containers.is_empty());
    for container in containers {
        let security = &container["securityContext"];
        let either = |key: &str| {
            security
                .get(key)
                .filter(|v| !v.is_null())
                .unwrap_or(&pod_security[key])
                .clone()
        };
        assert_eq!(either("runAsNonRoot"), true, "{what}");
        let user = either("runAsUser").as_u64().expect("a numeric user");
        assert!(user >= 10000, "{what}: user {user}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
        assert_eq!(security["privileged"], false, "{what}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{what}");
        assert_eq!(
            security["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{what}"
        );
        assert!(security["capabilities"].get("add").is_none(), "{what}");
        assert!(container.get("ports").is_none_or(|ports| {
            ports
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p.get("hostPort").is_none())
        }));
        let resources = &container["resources"];
        for amount in ["cpu", "memory"] {
            assert!(
                resources["requests"][amount].is_string(),
                "{what}: {amount}"
            );
        }
        assert_eq!(resources["requests"], resources["limits"], "{what}");
        // Every path the process writes is a volume: /tmp, and the state or the caches.
        let mounts: Vec<&str> = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert!(mounts.contains(&"/tmp"), "{what}: {mounts:?}");
    }
}

register!(k8s_manifests_are_the_api_objects_they_claim_to_be);
fn k8s_manifests_are_the_api_objects_they_claim_to_be() {
    let gpu = gpu_k8s_args();
    let cpu = cpu_workers_k8s_args();
    let cases: [Vec<&str>; 4] = [
        strs(&gpu),
        vec![
            "k8s",
            "--workers",
            "1",
            "--gpus-per-worker",
            "0",
            "--image",
            "ltsweep:dev",
        ],
        strs(&cpu),
        vec![
            "k8s",
            "--workers",
            "2",
            "--gpus-per-worker",
            "8",
            "--image",
            "ltsweep:dev",
            "--state-size",
            "100Gi",
            "--worker-cpu",
            "30",
            "--worker-memory",
            "200Gi",
            "--coordinator-cpu",
            "500m",
            "--coordinator-memory",
            "1Gi",
        ],
    ];
    for args in cases {
        let output = succeeded(launch(&args).output().unwrap());
        let docs = documents(&stdout(&output));
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        if args.contains(&"--workers-only") {
            assert_eq!(kinds, ["Deployment", "NetworkPolicy"]);
        } else {
            assert_eq!(
                kinds,
                [
                    "StatefulSet",
                    "Service",
                    "NetworkPolicy",
                    "Deployment",
                    "NetworkPolicy"
                ]
            );
        }
        for doc in &docs {
            check_typed(doc);
            if let Some(pod) = doc["spec"]["template"].get("spec") {
                assert_restricted(pod, &format!("{args:?} {}", doc["kind"]));
            }
        }
        let by_kind = |kind: &'static str| docs.iter().filter(move |d| d["kind"] == kind);
        let workers = by_kind("Deployment").next().unwrap();
        let pod = &workers["spec"]["template"]["spec"];
        assert!(pod["terminationGracePeriodSeconds"].as_u64() >= Some(60));
        let container = &pod["containers"][0];
        assert!(container["readinessProbe"].is_object());
        let gpus = args[args.iter().position(|a| *a == "--gpus-per-worker").unwrap() + 1];
        let limits = &container["resources"]["limits"];
        if gpus == "0" {
            assert!(limits.get("nvidia.com/gpu").is_none());
            assert_eq!(limits["cpu"], "2");
        } else {
            assert_eq!(limits["nvidia.com/gpu"], gpus);
        }
        if let Some(at) = args.iter().position(|a| *a == "--worker-memory") {
            assert_eq!(limits["memory"], args[at + 1]);
        }
        // The tokens come from Secrets, never from a manifest's text: a worker mounts its own
        // alone, the coordinator all three.
        let secrets = |pod: &Value| -> Vec<String> {
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|v| {
                    v["projected"]["sources"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .map(|s| s["secret"]["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(secrets(pod), ["ltsweep-worker-token"]);
        assert!(container["env"].as_array().unwrap().contains(
            &serde_json::json!({ "name": "LTSWEEP_TOKEN_FILE", "value": "/var/run/ltsweep/token" })
        ));
        if let Some(coordinator) = by_kind("StatefulSet").next() {
            let pod = &coordinator["spec"]["template"]["spec"];
            assert_eq!(
                secrets(pod),
                [
                    "ltsweep-worker-token",
                    "ltsweep-user-token",
                    "ltsweep-viewer-token"
                ]
            );
            let container = &pod["containers"][0];
            let flags: Vec<&str> = container["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            for role in ["worker", "user", "viewer"] {
                let at = flags
                    .iter()
                    .position(|f| *f == format!("--{role}-token-file"))
                    .unwrap_or_else(|| panic!("no --{role}-token-file in {flags:?}"));
                assert_eq!(flags[at + 1], format!("/var/run/ltsweep/{role}-token"));
            }
            assert!(container["livenessProbe"]["grpc"].is_object());
        }
    }
}

register!(k8s_network_policies_admit_only_workers_and_clients);
fn k8s_network_policies_admit_only_workers_and_clients() {
    let policies = |extra: &[&str]| -> Vec<Value> {
        let gpu = gpu_k8s_args();
        let mut args = strs(&gpu);
        args.extend_from_slice(extra);
        documents(&stdout(&succeeded(launch(&args).output().unwrap())))
            .into_iter()
            .filter(|d| d["kind"] == "NetworkPolicy")
            .collect()
    };
    let worker = serde_json::json!({ "app.kubernetes.io/name": "ltsweep", "app.kubernetes.io/component": "worker" });
    let coordinator = serde_json::json!({ "app.kubernetes.io/name": "ltsweep", "app.kubernetes.io/component": "coordinator" });

    let found = policies(&[]);
    let [to_coordinator, to_workers] = &found[..] else {
        panic!("two policies: {found:?}")
    };
    assert_eq!(
        to_coordinator["spec"]["podSelector"]["matchLabels"],
        coordinator
    );
    assert_eq!(
        to_coordinator["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );
    let rules = to_coordinator["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["ports"],
        serde_json::json!([{ "protocol": "TCP", "port": 7070 }])
    );
    assert_eq!(
        rules[0]["from"],
        serde_json::json!([
            { "podSelector": { "matchLabels": worker } },
            { "podSelector": { "matchLabels": { "app.kubernetes.io/component": "client", "app.kubernetes.io/name": "ltsweep" } } },
        ])
    );
    // The workers serve nothing: a policy with no ingress rule admits no one.
    assert_eq!(to_workers["spec"]["podSelector"]["matchLabels"], worker);
    assert!(to_workers["spec"].get("ingress").is_none());

    let found = policies(&[
        "--client-pods",
        "team=vision",
        "--client-namespaces",
        "kubernetes.io/metadata.name=analysts",
    ]);
    assert_eq!(
        found[0]["spec"]["ingress"][0]["from"][1],
        serde_json::json!({
            "podSelector": { "matchLabels": { "team": "vision" } },
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "analysts" } },
        })
    );
    // Every pod of the chosen namespaces.
    let found = policies(&["--client-pods", "", "--client-namespaces", "team=vision"]);
    assert_eq!(
        found[0]["spec"]["ingress"][0]["from"][1]["podSelector"],
        serde_json::json!({ "matchLabels": {} })
    );
}

register!(k8s_images_by_digest_are_kept_and_tags_warned_about);
fn k8s_images_by_digest_are_kept_and_tags_warned_about() {
    let output = succeeded(launch(&strs(&gpu_k8s_args())).output().unwrap());
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    let docs = documents(&stdout(&output));
    let image = |kind: &str| {
        docs.iter().find(|d| d["kind"] == kind).unwrap()["spec"]["template"]["spec"]["containers"]
            [0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        image("Deployment"),
        digest_image("registry.example.com/ltsweep-worker")
    );
    assert_eq!(
        image("StatefulSet"),
        digest_image("registry.example.com/ltsweep-coordinator")
    );

    let output = succeeded(
        launch(&[
            "k8s",
            "--workers",
            "1",
            "--gpus-per-worker",
            "1",
            "--image",
            "registry.example.com/ltsweep:0.1.0",
        ])
        .output()
        .unwrap(),
    );
    let warnings = stderr(&output);
    assert!(
        warnings.contains("--image registry.example.com/ltsweep:0.1.0 names the image by tag"),
        "{warnings}"
    );
    let docs = documents(&stdout(&output));
    assert_eq!(
        docs[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/ltsweep:0.1.0",
        "without --coordinator-image the coordinator runs the workers' image"
    );
}

register!(k8s_manifests_match_their_snapshots);
fn k8s_manifests_match_their_snapshots() {
    let output = succeeded(launch(&strs(&gpu_k8s_args())).output().unwrap());
    snapshot("launch-k8s-gpu.yaml", &stdout(&output));
    let output = succeeded(launch(&strs(&cpu_workers_k8s_args())).output().unwrap());
    snapshot("launch-k8s-cpu-workers.yaml", &stdout(&output));
}

register!(k8s_bad_input_is_refused_with_the_reason);
fn k8s_bad_input_is_refused_with_the_reason() {
    let base = ["k8s", "--workers", "2", "--gpus-per-worker", "1"];
    let short_digest = "ltsweep@sha256:abc".to_owned();
    for (extra, reason) in [
        (
            vec!["--image", "x", "--namespace", "Research Lab"],
            "a Kubernetes name",
        ),
        (
            vec!["--image", &short_digest],
            "--image `ltsweep@sha256:abc`: a digest is",
        ),
        (
            vec!["--image", "x", "--coordinator-image", "a b"],
            "--coordinator-image",
        ),
        (
            vec!["--image", "x", "--worker-memory", "16GB"],
            "--worker-memory `16GB`: not a positive Kubernetes quantity",
        ),
        (
            vec!["--image", "x", "--coordinator-cpu", "0"],
            "--coordinator-cpu `0`",
        ),
        (
            vec!["--image", "x", "--client-pods", "team"],
            "--client-pods: `team` is not KEY=VALUE",
        ),
        (
            vec!["--image", "x", "--client-namespaces", "a=b c"],
            "--client-namespaces: `a=b c` is not a Kubernetes label",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(&extra);
        let output = launch(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(reason),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}
