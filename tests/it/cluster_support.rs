//! `TestCluster`: a real coordinator process and worker processes on loopback, with short
//! leases so that faults resolve in seconds, torn down on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ltsweep_domain::{JobResult, JobState, SweepId, SweepStatus};
use ltsweep_proto::client::{Connection, Which};
use ltsweep_proto::pb;

use crate::support::{ltsweep, trainer, wait_until};

/// The token every test cluster uses: one for every role, as a laptop's set-up (tests of the
/// roles give each its own).
pub const TOKEN: &str = "test-token-0123456789abcdef0123456789";
/// Short enough that a lost worker's job is leased again within seconds.
pub const LEASE_TTL: &str = "3s";

/// A child process whose stderr lines are collected.
pub struct Process {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    /// Set once the process closed its stderr (it exited): a test waiting for a line says so
    /// at once, with what the process wrote, instead of timing out.
    closed: Arc<AtomicBool>,
}

impl Process {
    pub fn spawn(mut command: std::process::Command) -> Process {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the ltsweep binary starts");
        let stderr = child.stderr.take().expect("a piped stderr");
        Process::collecting(child, stderr)
    }

    /// A process whose `output` (its stderr, or stdout for a tool that reports there) is
    /// collected line by line.
    pub fn collecting(child: Child, output: impl std::io::Read + Send + 'static) -> Process {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let closed = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&closed);
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
            done.store(true, Ordering::SeqCst);
        });
        Process {
            child,
            lines,
            closed,
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` to the process while it runs (a reaped one's id may belong to another).
    fn signal(&mut self, signal: libc::c_int) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
            // SAFETY: kill(2) with a pid of a child this process has not reaped.
            unsafe { libc::kill(pid, signal) };
        }
    }

    pub fn line_containing(&self, needle: &str) -> Option<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub address: String,
    lease_ttl: String,
    pub coordinator: Process,
    pub workers: Vec<Process>,
    runtime: tokio::runtime::Runtime,
}

impl TestCluster {
    /// A coordinator on a free port and `workers` worker processes, one CPU slot each.
    pub fn start(workers: usize) -> TestCluster {
        Self::start_with_lease(workers, LEASE_TTL)
    }

    pub fn start_with_lease(workers: usize, lease_ttl: &str) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let (coordinator, address) =
            start_coordinator(&dir.path().join("state"), "127.0.0.1:0", lease_ttl);
        let mut cluster = TestCluster {
            dir,
            address,
            lease_ttl: lease_ttl.to_owned(),
            coordinator,
            workers: Vec::new(),
            runtime: tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        for _ in 0..workers {
            cluster.add_worker();
        }
        cluster
    }

    pub fn add_worker(&mut self) {
        self.add_worker_at(&self.url());
    }

    /// A worker that reaches the coordinator at `url` (through a proxy, say).
    pub fn add_worker_at(&mut self, url: &str) {
        self.add_worker_with(url, &[]);
    }

    /// A worker with more flags (`--data-root`, say).
    pub fn add_worker_with(&mut self, url: &str, extra: &[&str]) {
        let mut command = trainer();
        command
            .args([
                "worker",
                "--coordinator",
                url,
                "--devices",
                "cpu",
                "--threads",
                "1",
            ])
            .args(extra)
            .env("LTSWEEP_TOKEN", TOKEN)
            .env("RUST_LOG", "info");
        self.workers.push(Process::spawn(command));
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Kills the coordinator with SIGKILL and starts a new one on the same state and port.
    pub fn restart_coordinator(&mut self) {
        self.coordinator.kill();
        let (coordinator, _) = start_coordinator(
            &self.dir.path().join("state"),
            &self.address,
            &self.lease_ttl,
        );
        self.coordinator = coordinator;
    }

    /// Restarts the coordinator (as [`Self::restart_coordinator`]) with another lease ttl.
    pub fn restart_coordinator_with_lease(&mut self, lease_ttl: &str) {
        lease_ttl.clone_into(&mut self.lease_ttl);
        self.restart_coordinator();
    }

    /// The worker id a worker process registered as.
    pub fn worker_id(&self, index: usize) -> String {
        let mut id = None;
        wait_until("the worker to register", Duration::from_secs(60), || {
            id = self.workers[index].line_containing("registered");
            id.is_some()
        });
        let line = id.unwrap();
        let start = line.find("worker=").expect("the log names the worker") + "worker=".len();
        line[start..].split_whitespace().next().unwrap().to_owned()
    }

    pub fn write_spec(&self, text: &str) -> PathBuf {
        crate::support::write(self.dir.path(), "spec.toml", text)
    }

    /// Runs `ltsweep ARGS --coordinator URL` with the token.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        ltsweep()
            .args(args)
            .args(["--coordinator", &self.url()])
            .env("LTSWEEP_TOKEN", TOKEN)
            .output()
            .unwrap()
    }

    pub fn submit(&self, spec: &Path) -> String {
        let output = self.cli(&["submit", spec.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        stdout
            .lines()
            .last()
            .expect("the sweep id is the last line")
            .to_owned()
    }

    /// The sweep's status as `ltsweep status --json` prints it, read in-process: a poll that
    /// started a CLI process each time would spend half a CPU-second on loading libtorch, taken
    /// from the workers the test waits for.
    pub fn status(&self, sweep: &str) -> serde_json::Value {
        self.try_status(sweep)
            .expect("the coordinator answers the sweep's status")
    }

    /// Status, or None while the coordinator does not answer (restarting).
    pub fn try_status(&self, sweep: &str) -> Option<serde_json::Value> {
        self.sweep_status(sweep).map(|status| status.to_json())
    }

    pub fn connection(&self) -> Connection {
        let _guard = self.runtime.enter();
        Connection::new(&self.url(), Some(TOKEN), None).unwrap()
    }

    /// The sweep's status straight from the coordinator (no CLI process in between); `None`
    /// while it does not answer (restarting).
    pub fn sweep_status(&self, sweep: &str) -> Option<SweepStatus> {
        let id = SweepId::from(sweep);
        let api = self.connection().sweep_api();
        self.block_on(api.status(Which::Sweep(&id), false)).ok()
    }

    /// Runs `act` with every worker process stopped (SIGSTOP), then lets them go on
    /// (SIGCONT). A stopped worker can neither finish its job nor report, so what the
    /// coordinator says runs on a worker stays so while `act` runs: a test acts on a job that
    /// is certainly in mid-run, however loaded the machine, instead of hoping that a status
    /// poll caught it.
    pub fn with_workers_stopped<T>(&mut self, act: impl FnOnce(&mut TestCluster) -> T) -> T {
        for worker in &mut self.workers {
            worker.signal(libc::SIGSTOP);
        }
        let answer = act(self);
        for worker in &mut self.workers {
            worker.signal(libc::SIGCONT);
        }
        answer
    }

    /// Waits for a job running on a worker that `pick` accepts, with at least `min_epoch`
    /// epochs done, and calls `act` with its id and worker while every worker is stopped (see
    /// [`Self::with_workers_stopped`]); answers the job and worker. Fails once the sweep's
    /// status has not changed for a minute (a slow machine makes the wait longer, a stuck
    /// sweep fails it).
    pub fn act_on_running_job(
        &mut self,
        sweep: &str,
        what: &str,
        min_epoch: u32,
        pick: impl Fn(&str) -> bool,
        mut act: impl FnMut(&mut TestCluster, &str, &str),
    ) -> (String, String) {
        let stall = Duration::from_secs(60);
        let mut seen: Option<SweepStatus> = None;
        let mut changed = std::time::Instant::now();
        loop {
            let (status, found) = self.with_workers_stopped(|cluster| {
                let status = cluster.sweep_status(sweep);
                let found = status.as_ref().and_then(|status| {
                    let job = status.jobs.iter().find(|j| {
                        j.state == JobState::Running
                            && j.epoch >= min_epoch
                            && j.worker.as_deref().is_some_and(&pick)
                    })?;
                    Some((job.id.to_string(), job.worker.as_ref()?.to_string()))
                });
                if let Some((job, worker)) = &found {
                    act(cluster, job, worker);
                }
                (status, found)
            });
            if let Some(found) = found {
                return found;
            }
            if status.is_some() && status != seen {
                seen = status;
                changed = std::time::Instant::now();
            }
            assert!(
                changed.elapsed() < stall,
                "waiting for {what}: the sweep did not change for {stall:?}; last status: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Every result the coordinator streams for the sweep.
    pub fn results(&self, sweep: &str) -> Vec<JobResult> {
        let connection = self.connection();
        self.block_on(async {
            let mut stream = connection
                .sweeps()
                .get_results(pb::GetResultsRequest {
                    sweep_id: sweep.to_owned(),
                })
                .await
                .unwrap()
                .into_inner();
            let mut results = Vec::new();
            while let Some(result) = stream.message().await.unwrap() {
                results.push(JobResult::try_from(result).unwrap());
            }
            results
        })
    }

    /// Waits until the sweep's status satisfies `done`. `stall` bounds the time without any
    /// change of the status, not the whole wait: a slow machine makes a sweep slower, not the
    /// test fail, while a stuck sweep fails the test within `stall`.
    pub fn wait_for_state(
        &self,
        sweep: &str,
        what: &str,
        stall: Duration,
        mut done: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut changed = std::time::Instant::now();
        let mut seen: Option<serde_json::Value> = None;
        loop {
            let status = self.try_status(sweep);
            if let Some(status) = &status {
                if done(status) {
                    return status.clone();
                }
                if seen.as_ref() != Some(status) {
                    seen = Some(status.clone());
                    changed = std::time::Instant::now();
                }
            }
            assert!(
                changed.elapsed() < stall,
                "waiting for {what}: nothing changed for {stall:?}; last status: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn start_coordinator(state: &Path, listen: &str, lease_ttl: &str) -> (Process, String) {
    let mut command = ltsweep();
    command
        .args([
            "coordinator",
            "--listen",
            listen,
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .args([
            "--lease-ttl",
            lease_ttl,
            "--heartbeat",
            "300ms",
            "--poll-timeout",
            "1s",
        ])
        .env("LTSWEEP_TOKEN", TOKEN)
        .env("RUST_LOG", "info");
    let process = Process::spawn(command);
    let address = listening_address(&process);
    (process, address)
}

/// A coordinator serving the state a finished `ltsweep run --out DIR` left in `DIR/state`, on a
/// port of its own choosing (it holds the port it says it listens on; none is probed): the
/// process and its address.
pub fn serve_finished_study(out: &Path) -> (Process, String) {
    let mut command = ltsweep();
    command
        .args(["coordinator", "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(out.join("state"))
        .env("LTSWEEP_TOKEN", TOKEN);
    let coordinator = Process::spawn(command);
    let address = listening_address(&coordinator);
    (coordinator, address)
}

/// Waits until a coordinator process says where it listens, and answers that address: with
/// `--listen 127.0.0.1:0` it holds its port from the start, and no test probes for a free one.
pub fn listening_address(process: &Process) -> String {
    let mut line = None;
    wait_until("the coordinator to listen", Duration::from_secs(60), || {
        line = process.line_containing("listening on");
        assert!(
            line.is_some() || !process.closed.load(Ordering::SeqCst),
            "the coordinator exited before it listened:\n{}",
            process.lines.lock().unwrap().join("\n")
        );
        line.is_some()
    });
    line.unwrap()
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the address follows `listening on`")
        .to_owned()
}

/// A field of the process's `/proc/PID/status` in MiB: `VmRSS:` (resident now), `VmHWM:`
/// (the peak so far).
pub fn memory_mib(process: &Process, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.child.id()))
        .expect("the process is alive");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("Linux reports {field}"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in kB"));
    kib / 1024
}

/// 9 paper plans x 2 seeds of tiny synthetic data: 18 jobs of well under a second each.
pub fn tiny_spec(epochs: u32) -> String {
    spec_with(epochs, 1, "[0, 1]")
}

/// The tiny sweep with a checkpoint every `checkpoint_every` epochs and the given seeds.
pub fn spec_with(epochs: u32, checkpoint_every: u32, seeds: &str) -> String {
    format!(
        r#"
name = "tiny"
seeds = {seeds}
max_attempts = 10
[dataset]
kind = "synthetic"
classes = 4
train_per_class = 40
test_per_class = 10
image_size = 8
noise = 2.0
imbalance_ratio = 5
head_min_count = 20
[model]
depth = 8
[train]
epochs = {epochs}
batch_size = 16
lr = 0.05
warmup_epochs = 0
lr_decay_epochs = [{decay}]
pretrain_ce_epochs = 1
checkpoint_every = {checkpoint_every}
"#,
        decay = epochs - 1
    )
}

/// Each job id exactly once among the results.
pub fn assert_one_result_per_job(results: &[JobResult], jobs: usize) {
    let mut ids: Vec<&str> = results.iter().map(|r| r.job_id.as_str()).collect();
    ids.sort_unstable();
    let total = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), total, "a job has two results");
    assert_eq!(total, jobs, "results for every job");
}
