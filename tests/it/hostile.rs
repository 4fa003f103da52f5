//! A real coordinator process under hostile input from a token holder: every limit hit and
//! refused with a message naming it, the coordinator's memory and state dir bounded through
//! all of it, and nothing it stored before lost, restart included.

use std::path::Path;

use ltsweep_proto::client::{Connection, WorkerClient};
use ltsweep_proto::pb;
use ltsweep_proto::pb::checkpoint_chunk::Part;
use tonic::Code;

use crate::cluster_support::{Process, TOKEN, listening_address, memory_mib};
use crate::harness::register;
use crate::support::ltsweep;

/// The coordinator's peak resident memory through the whole suite grows by less than this
/// over its footprint before the attacks (the binary maps libtorch: some 370 MiB).
const MEMORY_GROWTH_BOUND_MIB: u64 = 128;
/// The state dir stays under this (the jobs it may hold, a few KB each, and the SQLite log).
const STATE_BOUND_MIB: u64 = 64;

/// The limits this coordinator runs with, small enough to reach quickly.
const LIMITS: [&str; 12] = [
    "--max-spec-bytes",
    "64KiB",
    "--max-jobs-per-sweep",
    "2000",
    "--max-jobs",
    "5000",
    "--max-checkpoint-bytes",
    "4MiB",
    "--max-workers",
    "20",
    "--min-free-disk-bytes",
    "0",
];

pub(crate) fn start(state: &Path, extra: &[&str]) -> (Process, String) {
    let mut command = ltsweep();
    command
        .args(["coordinator", "--listen", "127.0.0.1:0"])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--lease-ttl", "60s"])
        .args(extra)
        .env("LTSWEEP_TOKEN", TOKEN)
        .env("RUST_LOG", "info");
    let process = Process::spawn(command);
    let address = listening_address(&process);
    (process, format!("http://{address}"))
}

/// The coordinator's peak resident memory so far (VmHWM), in MiB.
pub(crate) fn peak_memory_mib(process: &Process) -> u64 {
    memory_mib(process, "VmHWM:")
}

fn dir_size_mib(path: &Path) -> u64 {
    let mut bytes = 0;
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        bytes += if meta.is_dir() {
            dir_size_mib(&entry.path()) << 20
        } else {
            meta.len()
        };
    }
    bytes >> 20
}

/// `jobs` jobs: one plan, seeds 0..jobs.
fn spec(name: &str, jobs: usize, extra_dataset: &str) -> String {
    let seeds: Vec<String> = (0..jobs).map(|s| s.to_string()).collect();
    format!(
        "name = \"{name}\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"\n{extra_dataset}\n[losses]\nplans = [{{ comp = \"none\", pc = \"none\" }}]\n",
        seeds.join(", ")
    )
}

/// The call was refused with `code`, naming `names`.
fn refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, tonic::Status>,
    code: Code,
    names: &str,
) {
    let status = match result {
        Ok(answer) => panic!("{what} was accepted: {answer:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert!(
        status.message().contains(names),
        "{what}: `{}` does not name {names}",
        status.message()
    );
}

/// Registers a worker named `host` and polls one lease for it: its client (carrying the
/// registration's secret), its id and the lease.
pub(crate) async fn register_and_lease(
    connection: &Connection,
    host: &str,
) -> (WorkerClient, String, pb::Lease) {
    let registered = connection
        .worker()
        .register_worker(register_request(host.into()))
        .await
        .unwrap()
        .into_inner();
    let mut workers = connection.worker_as(&registered.worker_secret).unwrap();
    let lease = workers
        .poll_work(pb::PollWorkRequest {
            worker_id: registered.worker_id.clone(),
            device: "cpu".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .lease
        .expect("a pending job to lease");
    (workers, registered.worker_id, lease)
}

pub(crate) fn register_request(host: String) -> pb::RegisterWorkerRequest {
    pb::RegisterWorkerRequest {
        host,
        devices: vec![pb::Device {
            name: "cpu".into(),
            slots: 1,
        }],
        protocol_version: ltsweep_proto::PROTOCOL_VERSION,
        version: "hostile".into(),
        slurm: None,
    }
}

/// A checkpoint upload of `data`, its header announcing `size` bytes.
fn upload(lease: &str, size: u64, data: Vec<u8>) -> Vec<pb::CheckpointChunk> {
    let header = pb::CheckpointChunk {
        part: Some(Part::Header(pb::CheckpointHeader {
            lease_id: lease.to_owned(),
            epoch: 1,
            size,
            sha256: "0".repeat(64),
        })),
    };
    std::iter::once(header)
        .chain(data.chunks(1 << 20).map(|chunk| pb::CheckpointChunk {
            part: Some(Part::Data(chunk.to_vec())),
        }))
        .collect()
}

register!(a_coordinator_under_hostile_input_refuses_each_limit_and_loses_nothing);
fn a_coordinator_under_hostile_input_refuses_each_limit_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (mut coordinator, url) = start(&state, &LIMITS);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connection = {
        let _guard = runtime.enter();
        Connection::new(&url, Some(TOKEN), None).unwrap()
    };
    let mut sweeps = connection.sweeps();
    let idle_memory = peak_memory_mib(&coordinator);

    runtime.block_on(async {
        // What is stored before the attacks: a sweep with one result.
        let kept = sweeps
            .submit_sweep(pb::SubmitSweepRequest {
                spec_toml: spec("kept", 3, ""),
            })
            .await
            .unwrap()
            .into_inner();
        // Its calls carry its registration's secret from now on.
        let (mut workers, worker, lease) = register_and_lease(&connection, "honest").await;
        let job = lease.job.clone().unwrap();
        workers
            .complete_job(pb::CompleteJobRequest {
                worker_id: worker.clone(),
                lease_id: lease.lease_id.clone(),
                result: Some(
                    ltsweep_domain::JobResult {
                        device: "cpu".into(),
                        ..ltsweep_domain::JobResult::blank(&job.try_into().unwrap())
                    }
                    .into(),
                ),
            })
            .await
            .unwrap();

        // Specs: a long name on 1,008 jobs, a long path, a million-pixel synthetic image, a
        // spec past the size limit, one far past it, a grid past the per-sweep limit.
        let submit = |text: String| {
            let mut sweeps = sweeps.clone();
            async move {
                sweeps
                    .submit_sweep(pb::SubmitSweepRequest { spec_toml: text })
                    .await
            }
        };
        refused(
            "a name of 1,000 characters",
            submit(spec(&"n".repeat(1_000), 1_008, "")).await,
            Code::InvalidArgument,
            "over the limit of 64",
        );
        let path_spec = format!(
            "name = \"p\"\nseeds = [0]\n[dataset]\nkind = \"cifar10\"\npath = \"{}\"\n",
            "d".repeat(10_000)
        );
        refused(
            "a path of 10,000 bytes",
            submit(path_spec).await,
            Code::InvalidArgument,
            "over the limit of 1024",
        );
        refused(
            "a synthetic image of a million pixels a side",
            submit(spec("wide", 2, "image_size = 1000000")).await,
            Code::InvalidArgument,
            "dataset.image_size",
        );
        refused(
            "a 100 KiB spec",
            submit(format!(
                "{}# {}\n",
                spec("padded", 1, ""),
                "x".repeat(100 << 10)
            ))
            .await,
            Code::InvalidArgument,
            "--max-spec-bytes",
        );
        let far = submit(format!(
            "{}# {}\n",
            spec("far", 1, ""),
            "x".repeat(32 << 20)
        ))
        .await;
        assert!(far.is_err(), "a 32 MiB spec was accepted");
        refused(
            "a grid of 3,000 jobs",
            submit(spec("big", 3_000, "")).await,
            Code::InvalidArgument,
            "--max-jobs-per-sweep",
        );
        // Sweeps up to the limit of jobs in all, then one more.
        for i in 0..2 {
            submit(spec(&format!("fill-{i}"), 2_000, "")).await.unwrap();
        }
        refused(
            "jobs past the limit in all",
            submit(spec("over", 1_000, "")).await,
            Code::ResourceExhausted,
            "--max-jobs",
        );

        // Workers: oversized fields, then more than the limit.
        refused(
            "a 1 MB host name",
            workers
                .register_worker(register_request("h".repeat(1 << 20)))
                .await,
            Code::InvalidArgument,
            "host",
        );
        let mut registered = 1;
        let last = loop {
            let answer = workers
                .register_worker(register_request(format!("w{registered}")))
                .await;
            if answer.is_err() || registered > 20 {
                break answer;
            }
            registered += 1;
        };
        assert_eq!(registered, 20, "the 21st worker is the one refused");
        refused(
            "the 21st worker",
            last,
            Code::ResourceExhausted,
            "--max-workers",
        );

        // Checkpoints: 2^60 bytes announced, then 4 MiB announced and 16 MiB sent.
        let second = workers
            .poll_work(pb::PollWorkRequest {
                worker_id: worker.clone(),
                device: "cpu".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .lease
            .expect("another job of the kept sweep");
        let chunks = upload(&second.lease_id, 1 << 60, vec![1; 16 << 20]);
        refused(
            "a checkpoint announcing 2^60 bytes",
            workers.upload_checkpoint(tokio_stream::iter(chunks)).await,
            Code::ResourceExhausted,
            "--max-checkpoint-bytes",
        );
        let chunks = upload(&second.lease_id, 4 << 20, vec![1; 16 << 20]);
        refused(
            "a checkpoint longer than announced",
            workers.upload_checkpoint(tokio_stream::iter(chunks)).await,
            Code::InvalidArgument,
            "more arrived",
        );
        let files = std::fs::read_dir(state.join("checkpoints"))
            .unwrap()
            .count();
        assert_eq!(files, 0, "nothing of a refused upload is on disk");

        // A 10 MB failure reason is kept cut short.
        workers
            .fail_job(pb::FailJobRequest {
                worker_id: worker.clone(),
                lease_id: second.lease_id.clone(),
                reason: "r".repeat(10 << 20),
                retryable: true,
                epoch: 0,
            })
            .await
            .unwrap();
        let status = sweeps
            .get_sweep(pb::GetSweepRequest {
                sweep_id: kept.sweep_id.clone(),
                with_specs: false,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let longest = status.jobs.iter().map(|j| j.error.len()).max().unwrap();
        assert!(longest < 8 << 10, "a reason of {longest} bytes was kept");
    });

    let memory = peak_memory_mib(&coordinator);
    assert!(
        memory < idle_memory + MEMORY_GROWTH_BOUND_MIB,
        "the coordinator peaked at {memory} MiB, {idle_memory} MiB before the attacks"
    );
    let size = dir_size_mib(&state);
    assert!(
        size < STATE_BOUND_MIB,
        "the state dir holds {size} MiB, over {STATE_BOUND_MIB} MiB"
    );

    // The CLI lists what is there, and after a SIGKILL and a restart all of it is still there.
    let list = |url: &str| {
        let output = ltsweep()
            .args(["sweeps", "--coordinator", url])
            .env("LTSWEEP_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let before = list(&url);
    coordinator.kill();
    let (_coordinator, url) = start(&state, &LIMITS);
    let after = list(&url);
    assert_eq!(after, before);
    for name in ["kept", "fill-0", "fill-1"] {
        assert!(after.contains(name), "{name} is listed: {after}");
    }
    let status = ltsweep()
        .args(["status", "--json", "--coordinator", &url])
        .env("LTSWEEP_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(status.status.success());
    drop(runtime);
}

register!(an_upload_below_the_free_disk_floor_is_refused);
fn an_upload_below_the_free_disk_floor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (_coordinator, url) = start(&state, &["--min-free-disk-bytes", "1000000TiB"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connection = {
        let _guard = runtime.enter();
        Connection::new(&url, Some(TOKEN), None).unwrap()
    };
    runtime.block_on(async {
        let mut sweeps = connection.sweeps();
        sweeps
            .submit_sweep(pb::SubmitSweepRequest {
                spec_toml: spec("floor", 1, ""),
            })
            .await
            .unwrap();
        let (mut workers, _, lease) = register_and_lease(&connection, "w").await;
        let chunks = upload(&lease.lease_id, 1024, vec![1; 1024]);
        refused(
            "an upload below the disk floor",
            workers.upload_checkpoint(tokio_stream::iter(chunks)).await,
            Code::ResourceExhausted,
            "--min-free-disk-bytes",
        );
    });
}
