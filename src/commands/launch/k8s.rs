//! `ltsweep launch k8s`: Kubernetes manifests for the workers and the coordinator, printed as
//! JSON documents separated by `---` (YAML streams hold JSON as they are, so `kubectl apply
//! -f -` reads them).
//!
//! The workers are a Deployment rather than a Job: a worker evicted or preempted checkpoints,
//! gives its jobs back and exits 0, which would complete a Job's index for good; a
//! Deployment starts a new pod instead. The token is mounted from a Secret the user creates
//! (`kubectl create secret generic ltsweep-token --from-file=token=PATH`), so it is in no
//! manifest and on no command line.

use serde_json::{Value, json};

use super::K8sArgs;
use crate::exit::BadInput;

/// Where the token Secret is mounted in every pod.
const TOKEN_DIR: &str = "/var/run/ltsweep";
/// The file a worker creates once registered: its readiness.
const READY_FILE: &str = "/tmp/ltsweep-ready";
const PORT: u16 = 7070;
const SECRET: &str = "ltsweep-token";
const COORDINATOR: &str = "ltsweep-coordinator";

pub fn run(args: &K8sArgs) -> anyhow::Result<()> {
    let objects = render(args)?;
    if let Some(warning) = args
        .coordinator
        .as_deref()
        .and_then(super::loopback_warning)
    {
        eprintln!("{warning}");
    }
    let documents: Vec<String> = objects
        .iter()
        .map(|o| serde_json::to_string_pretty(o).expect("JSON values serialise"))
        .collect();
    println!("{}", documents.join("\n---\n"));
    eprintln!(
        "apply with `kubectl apply -f FILE`, after `kubectl -n {ns} create secret generic {SECRET} --from-file=token=PATH`",
        ns = args.namespace
    );
    Ok(())
}

/// The manifests: the coordinator's StatefulSet and Service (unless `--workers-only`), then
/// the workers' Deployment.
pub fn render(args: &K8sArgs) -> anyhow::Result<Vec<Value>> {
    if args.workers == 0 {
        return Err(BadInput("--workers must be at least 1".to_owned()).into());
    }
    if args.slots_per_device == 0 {
        return Err(BadInput("--slots-per-device must be at least 1".to_owned()).into());
    }
    if args.image.trim().is_empty() {
        return Err(BadInput("--image must name an image".to_owned()).into());
    }
    dns_label("namespace", &args.namespace)?;
    let mut objects = Vec::new();
    if !args.workers_only {
        objects.push(coordinator_set(args));
        objects.push(coordinator_service(args));
    }
    objects.push(workers(args));
    Ok(objects)
}

fn labels(component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "ltsweep",
        "app.kubernetes.io/component": component,
    })
}

fn token_volume() -> Value {
    // 0400: the token is for the process alone.
    json!({ "name": "token", "secret": { "secretName": SECRET, "defaultMode": 0o400 } })
}

fn token_mount() -> Value {
    json!({ "name": "token", "mountPath": TOKEN_DIR, "readOnly": true })
}

fn coordinator_set(args: &K8sArgs) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": { "name": COORDINATOR, "namespace": args.namespace, "labels": labels("coordinator") },
        "spec": {
            "serviceName": COORDINATOR,
            "replicas": 1,
            "selector": { "matchLabels": labels("coordinator") },
            "template": {
                "metadata": { "labels": labels("coordinator") },
                "spec": {
                    "containers": [{
                        "name": "coordinator",
                        "image": args.image,
                        "args": [
                            "coordinator",
                            "--listen", format!("0.0.0.0:{PORT}"),
                            "--state-dir", "/var/lib/ltsweep",
                            "--token-file", format!("{TOKEN_DIR}/token"),
                            "--durability", "full",
                        ],
                        "env": [{ "name": "RUST_LOG", "value": "info" }],
                        "ports": [{ "name": "grpc", "containerPort": PORT }],
                        // The standard gRPC health service, which needs no token.
                        "readinessProbe": { "grpc": { "port": PORT }, "periodSeconds": 10 },
                        "livenessProbe": {
                            "grpc": { "port": PORT },
                            "periodSeconds": 20,
                            "failureThreshold": 6,
                        },
                        "volumeMounts": [
                            { "name": "state", "mountPath": "/var/lib/ltsweep" },
                            token_mount(),
                        ],
                    }],
                    "volumes": [token_volume()],
                },
            },
            "volumeClaimTemplates": [{
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": { "name": "state" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": args.state_size } },
                },
            }],
        },
    })
}

fn coordinator_service(args: &K8sArgs) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": COORDINATOR, "namespace": args.namespace, "labels": labels("coordinator") },
        "spec": {
            "selector": labels("coordinator"),
            "ports": [{ "name": "grpc", "port": PORT, "targetPort": "grpc", "appProtocol": "grpc" }],
        },
    })
}

fn workers(args: &K8sArgs) -> Value {
    let coordinator = args
        .coordinator
        .clone()
        .unwrap_or_else(|| format!("http://{COORDINATOR}:{PORT}"));
    let mut container = json!({
        "name": "worker",
        "image": args.image,
        "args": ["worker"],
        "env": [
            { "name": "LTSWEEP_COORDINATOR", "value": coordinator },
            { "name": "LTSWEEP_TOKEN_FILE", "value": format!("{TOKEN_DIR}/token") },
            { "name": "LTSWEEP_DEVICES", "value": if args.gpus_per_worker > 0 { "auto" } else { "cpu" } },
            { "name": "LTSWEEP_SLOTS_PER_DEVICE", "value": args.slots_per_device.to_string() },
            { "name": "LTSWEEP_READY_FILE", "value": READY_FILE },
            { "name": "RUST_LOG", "value": "info" },
        ],
        // Ready once registered with the coordinator.
        "readinessProbe": {
            "exec": { "command": ["test", "-e", READY_FILE] },
            "periodSeconds": 5,
        },
        "volumeMounts": [token_mount()],
    });
    if args.gpus_per_worker > 0 {
        let gpus = args.gpus_per_worker.to_string();
        container["resources"] = json!({
            "requests": { "nvidia.com/gpu": gpus },
            "limits": { "nvidia.com/gpu": gpus },
        });
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "ltsweep-worker", "namespace": args.namespace, "labels": labels("worker") },
        "spec": {
            "replicas": args.workers,
            "selector": { "matchLabels": labels("worker") },
            "template": {
                "metadata": { "labels": labels("worker") },
                "spec": {
                    // After SIGTERM: time to finish the step, checkpoint, upload and give the
                    // jobs back before the kubelet's SIGKILL.
                    "terminationGracePeriodSeconds": args.grace_seconds,
                    "containers": [container],
                    "volumes": [token_volume()],
                },
            },
        },
    })
}

/// A Kubernetes name: lowercase letters, digits and `-`, at most 63.
fn dns_label(flag: &str, value: &str) -> anyhow::Result<()> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(BadInput(format!(
            "--{flag} `{value}`: a Kubernetes name is lowercase letters, digits and -, at most 63"
        ))
        .into())
    }
}
