//! `ltsweep launch k8s`: Kubernetes manifests for the workers and the coordinator, printed as
//! JSON documents separated by `---` (YAML streams hold JSON as they are, so `kubectl apply
//! -f -` reads them).
//!
//! The workers are a Deployment rather than a Job: a worker evicted or preempted checkpoints,
//! gives its jobs back and exits 0, which would complete a Job's index for good; a
//! Deployment starts a new pod instead.
//!
//! Every pod meets the "restricted" Pod Security Standard: a numeric non-root user, no
//! privilege escalation, no capabilities, the runtime's default seccomp profile, and a
//! read-only root file system with the paths ltsweep writes (the state dir, `/tmp`, the
//! worker's kernel caches) as volumes. No pod gets a service account token (ltsweep never calls
//! the Kubernetes API). Each container's requests equal its limits (the Guaranteed QoS class,
//! evicted last; a worker's CPU limit is also the core count it sizes libtorch's threads to).
//! A NetworkPolicy admits to the coordinator only the worker pods and the client pods, and one
//! admits nothing to the workers, which serve nothing.
//!
//! The tokens come from three Secrets the user creates (`ltsweep-worker-token`,
//! `ltsweep-user-token`, `ltsweep-viewer-token`, each with the key `token`), so they are in no
//! manifest and on no command line: the coordinator mounts all three, a worker only its own.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::{Value, json};

use crate::exit::BadInput;

/// Where the token Secrets are mounted in every pod.
const TOKEN_DIR: &str = "/var/run/ltsweep";
/// The file a worker creates once registered: its readiness.
const READY_FILE: &str = "/tmp/ltsweep-ready";
/// The worker's caches (libtorch's and CUDA's compiled kernels), on a volume of their own.
const CACHE_DIR: &str = "/var/cache/ltsweep";
const STATE_DIR: &str = "/var/lib/ltsweep";
const PORT: u16 = 7070;
const COORDINATOR: &str = "ltsweep-coordinator";
const WORKERS: &str = "ltsweep-worker";
/// The numeric user and group every container runs as; the images (deploy/Containerfile.*)
/// declare the same, and a high one, so it is no user of the node's.
const UID: u32 = 10001;

/// The Secret (each with the key `token`) of each credential, and the file name it is mounted
/// as in the coordinator's pod (the same names as the systemd credentials).
const WORKER_SECRET: &str = "ltsweep-worker-token";
const USER_SECRET: &str = "ltsweep-user-token";
const VIEWER_SECRET: &str = "ltsweep-viewer-token";

#[derive(Args, Debug)]
pub struct K8sArgs {
    /// The coordinator's address as the worker pods reach it (default: the coordinator
    /// Service these manifests create).
    #[arg(long)]
    pub coordinator: Option<String>,
    /// Worker pods (the Deployment's replicas).
    #[arg(long)]
    pub workers: u32,
    /// `nvidia.com/gpu` per worker pod; 0 trains on the CPU.
    #[arg(long)]
    pub gpus_per_worker: u32,
    /// The workers' image (deploy/Containerfile.worker builds it), best by digest:
    /// REPO@sha256:HEX. A tag can be moved to another image, so it is warned about.
    #[arg(long)]
    pub image: String,
    /// The coordinator's image (deploy/Containerfile.coordinator: no libtorch); default:
    /// --image, which can run a coordinator too.
    #[arg(long)]
    pub coordinator_image: Option<String>,
    /// A namespace of its own is best: `default` is shared with everything else.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long, default_value_t = 1)]
    pub slots_per_device: u32,
    /// The coordinator's state volume.
    #[arg(long, default_value = "10Gi")]
    pub state_size: String,
    /// Seconds a worker pod has after SIGTERM to checkpoint and give its jobs back.
    #[arg(long, default_value_t = 120)]
    pub grace_seconds: u32,
    /// Leave out the coordinator (it runs elsewhere: give --coordinator).
    #[arg(long, requires = "coordinator")]
    pub workers_only: bool,
    /// CPU of the coordinator (request and limit), as Kubernetes writes it: 1, 500m.
    #[arg(long, default_value = "1")]
    pub coordinator_cpu: String,
    /// Memory of the coordinator (request and limit): 2Gi holds about a million jobs.
    #[arg(long, default_value = "2Gi")]
    pub coordinator_memory: String,
    /// CPU of each worker (request and limit; libtorch uses that many threads); default: 2
    /// for a CPU worker, 4 per GPU.
    #[arg(long)]
    pub worker_cpu: Option<String>,
    /// Memory of each worker (request and limit); default: 4Gi for a CPU worker, 16Gi per GPU.
    #[arg(long)]
    pub worker_memory: Option<String>,
    /// The labels of the pods, besides the workers, that may reach the coordinator (users
    /// running `ltsweep submit`, notebooks), as KEY=VALUE,...; `""` admits every pod of the
    /// namespaces --client-namespaces selects.
    #[arg(
        long,
        default_value = "app.kubernetes.io/name=ltsweep,app.kubernetes.io/component=client"
    )]
    pub client_pods: String,
    /// The labels of the namespaces those client pods may be in (KEY=VALUE,..., e.g.
    /// kubernetes.io/metadata.name=analysts); default: the coordinator's namespace alone.
    #[arg(long)]
    pub client_namespaces: Option<String>,
}

pub fn run(args: &K8sArgs) -> anyhow::Result<()> {
    let objects = render(args)?;
    for warning in warnings(args) {
        eprintln!("{warning}");
    }
    let documents: Vec<String> = objects
        .iter()
        .map(|o| serde_json::to_string_pretty(o).expect("JSON values serialise"))
        .collect();
    println!("{}", documents.join("\n---\n"));
    let secrets = if args.workers_only {
        vec![WORKER_SECRET]
    } else {
        vec![WORKER_SECRET, USER_SECRET, VIEWER_SECRET]
    };
    let create: Vec<String> = secrets
        .iter()
        .map(|secret| {
            format!(
                "kubectl -n {ns} create secret generic {secret} --from-file=token=FILE",
                ns = args.namespace
            )
        })
        .collect();
    eprintln!(
        "apply with `kubectl apply -f FILE`, after creating the token Secrets: {}",
        create.join("; ")
    );
    Ok(())
}

/// What the user should know about these flags; the manifests are printed all the same.
fn warnings(args: &K8sArgs) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(warning) = args
        .coordinator
        .as_deref()
        .and_then(super::loopback_warning)
    {
        warnings.push(warning);
    }
    let mut images = vec![("image", args.image.as_str())];
    if !args.workers_only
        && let Some(image) = &args.coordinator_image
    {
        images.push(("coordinator-image", image));
    }
    for (flag, image) in images {
        if !image.contains('@') {
            warnings.push(format!(
                "warning: --{flag} {image} names the image by tag, which its registry can move to another image; name it by digest (REPO@sha256:...) to run exactly the image you checked"
            ));
        }
    }
    warnings
}

/// The manifests: the coordinator's StatefulSet, Service and NetworkPolicy (unless
/// `--workers-only`), then the workers' Deployment and NetworkPolicy.
pub fn render(args: &K8sArgs) -> anyhow::Result<Vec<Value>> {
    if args.workers == 0 {
        return Err(BadInput("--workers must be at least 1".to_owned()).into());
    }
    if args.slots_per_device == 0 {
        return Err(BadInput("--slots-per-device must be at least 1".to_owned()).into());
    }
    dns_label("namespace", &args.namespace)?;
    image("image", &args.image)?;
    if let Some(coordinator_image) = &args.coordinator_image {
        image("coordinator-image", coordinator_image)?;
    }
    quantity("state-size", &args.state_size)?;
    let worker = Resources {
        cpu: match &args.worker_cpu {
            Some(cpu) => quantity("worker-cpu", cpu)?,
            None if args.gpus_per_worker == 0 => "2".to_owned(),
            None => (4 * args.gpus_per_worker).to_string(),
        },
        memory: match &args.worker_memory {
            Some(memory) => quantity("worker-memory", memory)?,
            None if args.gpus_per_worker == 0 => "4Gi".to_owned(),
            None => format!("{}Gi", 16 * args.gpus_per_worker),
        },
    };
    let mut objects = Vec::new();
    if !args.workers_only {
        let coordinator = Resources {
            cpu: quantity("coordinator-cpu", &args.coordinator_cpu)?,
            memory: quantity("coordinator-memory", &args.coordinator_memory)?,
        };
        let clients = ClientPeers {
            pods: label_set("client-pods", &args.client_pods)?,
            namespaces: args
                .client_namespaces
                .as_deref()
                .map(|labels| label_set("client-namespaces", labels))
                .transpose()?,
        };
        objects.push(coordinator_set(args, &coordinator));
        objects.push(coordinator_service(args));
        objects.push(coordinator_policy(args, &clients));
    }
    objects.push(workers(args, &worker));
    objects.push(workers_policy(args));
    Ok(objects)
}

/// A container's CPU and memory, requested and limited alike.
struct Resources {
    cpu: String,
    memory: String,
}

impl Resources {
    fn to_json(&self, gpus: u32) -> Value {
        let mut amounts = json!({ "cpu": self.cpu, "memory": self.memory });
        if gpus > 0 {
            amounts["nvidia.com/gpu"] = json!(gpus.to_string());
        }
        json!({ "requests": amounts, "limits": amounts })
    }
}

/// Who besides the workers may reach the coordinator.
struct ClientPeers {
    pods: BTreeMap<String, String>,
    namespaces: Option<BTreeMap<String, String>>,
}

fn labels(component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "ltsweep",
        "app.kubernetes.io/component": component,
    })
}

/// The pod-level half of the restricted profile; `fsGroup` makes the volumes (the state, the
/// Secrets) the container user's group's.
fn pod_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

fn container_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": false,
        "privileged": false,
        "readOnlyRootFilesystem": true,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// The Secrets a pod mounts, as one volume: each Secret's `token` under the file name `name`.
/// 0440: the process reads it through its group (`fsGroup`), no one else can.
fn token_volume(tokens: &[(&str, &str)]) -> Value {
    let sources: Vec<Value> = tokens
        .iter()
        .map(|(secret, name)| {
            json!({ "secret": { "name": secret, "items": [{ "key": "token", "path": name }] } })
        })
        .collect();
    json!({ "name": "tokens", "projected": { "sources": sources, "defaultMode": 0o440 } })
}

/// Each token file mounted by itself (a `subPath`): the path is then the file, not the
/// symbolic link into the volume's timestamped folder that a whole-volume mount shows.
fn token_mounts(tokens: &[(&str, &str)]) -> Vec<Value> {
    tokens
        .iter()
        .map(|(_, name)| {
            json!({
                "name": "tokens",
                "mountPath": format!("{TOKEN_DIR}/{name}"),
                "subPath": name,
                "readOnly": true,
            })
        })
        .collect()
}

/// A scratch volume, erased with its pod.
fn scratch(name: &str, size: &str) -> Value {
    json!({ "name": name, "emptyDir": { "sizeLimit": size } })
}

fn coordinator_set(args: &K8sArgs, resources: &Resources) -> Value {
    let tokens = [
        (WORKER_SECRET, "worker-token"),
        (USER_SECRET, "user-token"),
        (VIEWER_SECRET, "viewer-token"),
    ];
    let mut mounts = vec![
        json!({ "name": "state", "mountPath": STATE_DIR }),
        json!({ "name": "tmp", "mountPath": "/tmp" }),
    ];
    mounts.extend(token_mounts(&tokens));
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
                    "automountServiceAccountToken": false,
                    "securityContext": pod_security(),
                    "containers": [{
                        "name": "coordinator",
                        "image": args.coordinator_image.as_deref().unwrap_or(&args.image),
                        "args": [
                            "coordinator",
                            "--listen", format!("0.0.0.0:{PORT}"),
                            "--state-dir", STATE_DIR,
                            "--worker-token-file", format!("{TOKEN_DIR}/worker-token"),
                            "--user-token-file", format!("{TOKEN_DIR}/user-token"),
                            "--viewer-token-file", format!("{TOKEN_DIR}/viewer-token"),
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
                        "resources": resources.to_json(0),
                        "securityContext": container_security(),
                        "volumeMounts": mounts,
                    }],
                    "volumes": [token_volume(&tokens), scratch("tmp", "1Gi")],
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

/// Admits to the coordinator's port the workers of its namespace and the client pods, and
/// nothing else. (The kubelet's probes come from the node, which network policies leave
/// alone, and `kubectl port-forward` enters the pod's own network.)
fn coordinator_policy(args: &K8sArgs, clients: &ClientPeers) -> Value {
    let mut client = json!({ "podSelector": { "matchLabels": clients.pods } });
    if let Some(namespaces) = &clients.namespaces {
        client["namespaceSelector"] = json!({ "matchLabels": namespaces });
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": COORDINATOR, "namespace": args.namespace, "labels": labels("coordinator") },
        "spec": {
            "podSelector": { "matchLabels": labels("coordinator") },
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    { "podSelector": { "matchLabels": labels("worker") } },
                    client,
                ],
                "ports": [{ "protocol": "TCP", "port": PORT }],
            }],
        },
    })
}

/// A worker serves nothing: no one may connect to it.
fn workers_policy(args: &K8sArgs) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": WORKERS, "namespace": args.namespace, "labels": labels("worker") },
        "spec": {
            "podSelector": { "matchLabels": labels("worker") },
            "policyTypes": ["Ingress"],
        },
    })
}

fn workers(args: &K8sArgs, resources: &Resources) -> Value {
    let coordinator = args
        .coordinator
        .clone()
        .unwrap_or_else(|| format!("http://{COORDINATOR}:{PORT}"));
    let tokens = [(WORKER_SECRET, "token")];
    let mut env = vec![
        json!({ "name": "LTSWEEP_COORDINATOR", "value": coordinator }),
        json!({ "name": "LTSWEEP_TOKEN_FILE", "value": format!("{TOKEN_DIR}/token") }),
        json!({ "name": "LTSWEEP_DEVICES", "value": if args.gpus_per_worker > 0 { "auto" } else { "cpu" } }),
        json!({ "name": "LTSWEEP_SLOTS_PER_DEVICE", "value": args.slots_per_device.to_string() }),
        json!({ "name": "LTSWEEP_READY_FILE", "value": READY_FILE }),
        // libtorch's compiled-kernel cache lives under XDG_CACHE_HOME.
        json!({ "name": "XDG_CACHE_HOME", "value": CACHE_DIR }),
        json!({ "name": "RUST_LOG", "value": "info" }),
    ];
    if args.gpus_per_worker > 0 {
        // CUDA's cache of kernels compiled for this GPU, by default under $HOME.
        env.push(json!({ "name": "CUDA_CACHE_PATH", "value": format!("{CACHE_DIR}/nv") }));
    }
    let mut mounts = vec![
        json!({ "name": "tmp", "mountPath": "/tmp" }),
        json!({ "name": "cache", "mountPath": CACHE_DIR }),
    ];
    mounts.extend(token_mounts(&tokens));
    let container = json!({
        "name": "worker",
        "image": args.image,
        "args": ["worker"],
        "env": env,
        // Ready once registered with the coordinator.
        "readinessProbe": {
            "exec": { "command": ["test", "-e", READY_FILE] },
            "periodSeconds": 5,
        },
        "resources": resources.to_json(args.gpus_per_worker),
        "securityContext": container_security(),
        "volumeMounts": mounts,
    });
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": WORKERS, "namespace": args.namespace, "labels": labels("worker") },
        "spec": {
            "replicas": args.workers,
            "selector": { "matchLabels": labels("worker") },
            "template": {
                "metadata": { "labels": labels("worker") },
                "spec": {
                    // After SIGTERM: time to finish the step, checkpoint, upload and give the
                    // jobs back before the kubelet's SIGKILL.
                    "terminationGracePeriodSeconds": args.grace_seconds,
                    "automountServiceAccountToken": false,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [
                        token_volume(&tokens),
                        scratch("tmp", "1Gi"),
                        scratch("cache", "4Gi"),
                    ],
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

/// An image reference: no spaces, and a digest, when given, in full (`@sha256:` and 64 hex
/// digits), since a digest is the one thing that pins the image.
fn image(flag: &str, value: &str) -> anyhow::Result<()> {
    if value.trim().is_empty() || value.chars().any(char::is_whitespace) {
        return Err(BadInput(format!("--{flag} `{value}`: give an image, without spaces")).into());
    }
    if let Some((name, digest)) = value.split_once('@') {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        let valid = !name.is_empty()
            && hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(BadInput(format!(
                "--{flag} `{value}`: a digest is @sha256: and 64 lowercase hex digits, as `docker buildx imagetools inspect IMAGE` prints it"
            ))
            .into());
        }
    }
    Ok(())
}

/// A Kubernetes quantity as the API takes it: a number with an optional suffix (`500m`, `2`,
/// `1.5`, `4Gi`, `100M`); anything else would only be refused by `kubectl apply`.
fn quantity(flag: &str, value: &str) -> anyhow::Result<String> {
    const SUFFIXES: &[&str] = &[
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(split);
    let number_valid = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1
        && number.bytes().any(|b| b != b'0' && b != b'.');
    if number_valid && SUFFIXES.contains(&suffix) {
        Ok(value.to_owned())
    } else {
        Err(BadInput(format!(
            "--{flag} `{value}`: not a positive Kubernetes quantity (e.g. 2, 500m, 4Gi)"
        ))
        .into())
    }
}

/// `KEY=VALUE,...` as label pairs, each checked as Kubernetes checks labels.
fn label_set(flag: &str, text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(BadInput(format!("--{flag}: `{pair}` is not KEY=VALUE")).into());
        };
        if !label_key(key) || !label_value(value) {
            return Err(BadInput(format!(
                "--{flag}: `{pair}` is not a Kubernetes label (a key is [PREFIX/]NAME, a value at most 63 letters, digits, -, _ or .)"
            ))
            .into());
        }
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(labels)
}

fn label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_valid = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    });
    prefix_valid && !name.is_empty() && label_value(name)
}

fn label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && value
            .bytes()
            .next()
            .is_none_or(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .last()
            .is_none_or(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_kubernetes_ones() {
        for good in ["1", "500m", "1.5", "4Gi", "100M", "10Gi"] {
            assert!(quantity("x", good).is_ok(), "{good}");
        }
        for bad in ["", "4GB", "0", "-1", "1..5", ".5", "Gi", "4 Gi"] {
            assert!(quantity("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_are_checked_and_tags_allowed() {
        let digest = format!("registry.example.com/ltsweep@sha256:{}", "a1".repeat(32));
        assert!(image("image", &digest).is_ok());
        assert!(image("image", "registry.example.com/ltsweep:0.1.0").is_ok());
        for bad in [
            "registry.example.com/ltsweep@sha256:abc".to_owned(),
            format!("registry.example.com/ltsweep@md5:{}", "a1".repeat(32)),
            format!("@sha256:{}", "a1".repeat(32)),
            "ltsweep dev".to_owned(),
        ] {
            assert!(image("image", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_kubernetes_ones() {
        let labels =
            label_set("client-pods", "app.kubernetes.io/name=ltsweep, team=vision").unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], "ltsweep");
        assert_eq!(labels["team"], "vision");
        assert!(label_set("client-pods", "").unwrap().is_empty());
        for bad in [
            "team",
            "Team.Example/x=y",
            "team=-vision",
            "a/b/c=d",
            "team=a b",
        ] {
            assert!(label_set("client-pods", bad).is_err(), "{bad}");
        }
    }
}
