//! `TestSlurm`: a one-node Slurm of the test's own (Debian's munge, slurmctld and slurmd),
//! configured in a temporary folder and torn down on drop. It needs root (slurmd starts job
//! steps as their user) and the packages `slurmctld slurmd slurm-client munge`: a test that
//! starts one needs `Slurm` (see `crate::harness`), which is ignored where [`missing`] says why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support::wait_until;

const DAEMONS: [&str; 3] = ["munged", "slurmctld", "slurmd"];
const CLIENTS: [&str; 4] = ["sbatch", "squeue", "scancel", "scontrol"];
const NODE: &str = "ltsweepnode";

pub struct TestSlurm {
    pub dir: tempfile::TempDir,
    conf: PathBuf,
    /// munged, slurmctld, slurmd: stopped in reverse order on drop.
    daemons: Vec<Child>,
}

/// `name` on the PATH or in the sbin folders (which a user's PATH may lack).
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Why Slurm cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    let absent: Vec<&str> = DAEMONS
        .iter()
        .chain(&CLIENTS)
        .copied()
        .filter(|name| find(name).is_none())
        .collect();
    if !absent.is_empty() {
        return Some(format!(
            "{} not installed (Debian: apt-get install slurmctld slurmd slurm-client munge)",
            absent.join(", ")
        ));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("slurmd must run as root to start job steps".to_owned());
    }
    None
}

impl TestSlurm {
    /// A running one-node Slurm (the test's harness checked that one can run here).
    pub fn start(test: &str) -> TestSlurm {
        // The daemons take their ports from the configuration, not from a listener of ours:
        // a port taken by someone else shows as a daemon that exits, and then another pair is
        // tried.
        let mut failures = Vec::new();
        for attempt in 0..5u16 {
            let seed = (std::process::id() as u16)
                .wrapping_mul(31)
                .wrapping_add(attempt.wrapping_mul(977));
            let port = 20_000 + (seed % 20_000) * 2;
            match Self::start_on(port) {
                Ok(slurm) => return slurm,
                Err(why) => failures.push(why),
            }
        }
        panic!("{test}: Slurm did not start: {}", failures.join("\n---\n"));
    }

    fn start_on(port: u16) -> Result<TestSlurm, String> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["munge", "state", "spool", "logs", "jobs"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        // munged checks that its socket's folder is reachable by all and its key private.
        set_mode(&d.join("munge"), 0o755);
        set_mode(d, 0o755);
        let key = d.join("munge/munge.key");
        let mut bytes = vec![0u8; 1024];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").unwrap(),
            &mut bytes,
        )
        .unwrap();
        std::fs::write(&key, &bytes).unwrap();
        set_mode(&key, 0o400);
        let socket = d.join("munge/munge.sock");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = d.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=ltsweeptest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/logs/slurmctld.log
SlurmdLogFile={d}/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
KillWait=60
NodeName={NODE} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes={NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
",
                slurmd_port = port + 1,
                socket = socket.display(),
                d = d.display(),
            ),
        )
        .unwrap();
        let mut slurm = TestSlurm {
            conf: conf.clone(),
            dir,
            daemons: Vec::new(),
        };
        let d = slurm.dir.path().to_owned();
        let log = |name: &str| std::fs::File::create(d.join("logs").join(name)).unwrap();
        let mut munged = Command::new(find("munged").unwrap());
        munged
            .args(["--foreground", "--force", "--socket"])
            .arg(&socket)
            .arg(format!("--key-file={}", key.display()))
            .arg(format!(
                "--log-file={}",
                d.join("logs/munged.log").display()
            ))
            .arg(format!(
                "--pid-file={}",
                d.join("munge/munged.pid").display()
            ))
            .arg(format!("--seed-file={}", d.join("munge/seed").display()));
        slurm.spawn(munged, log("munged.out"))?;
        slurm.wait_for("munged's socket", || socket.exists())?;
        let mut ctld = Command::new(find("slurmctld").unwrap());
        ctld.arg("-D").arg("-f").arg(&conf);
        slurm.spawn(ctld, log("slurmctld.out"))?;
        let mut slurmd = Command::new(find("slurmd").unwrap());
        slurmd.arg("-D").arg("-f").arg(&conf).args(["-N", NODE]);
        slurm.spawn(slurmd, log("slurmd.out"))?;
        slurm.wait_for("the node to be idle", || {
            client(&conf, "sinfo")
                .args(["-h", "-o", "%t"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        })?;
        Ok(slurm)
    }

    fn spawn(&mut self, mut command: Command, log: std::fs::File) -> Result<(), String> {
        command
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        self.daemons.push(child);
        Ok(())
    }

    /// Waits for `ready`, failing early (with the logs) when a daemon exits.
    fn wait_for(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let start = std::time::Instant::now();
        while !ready() {
            let exited = self
                .daemons
                .iter_mut()
                .any(|d| d.try_wait().ok().flatten().is_some());
            if exited || start.elapsed() > Duration::from_secs(60) {
                return Err(format!("no {what}: {}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Every daemon log, for a failure message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        let mut entries: Vec<_> = std::fs::read_dir(self.dir.path().join("logs"))
            .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for path in entries {
            let body = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = body.lines().rev().take(30).collect();
            text.push_str(&format!("\n== {}\n", path.display()));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// A Slurm client (or `ltsweep launch slurm`) that talks to this Slurm.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        client(&self.conf, program)
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
        output
    }

    /// The jobs `squeue` lists, one `ID_TASK STATE` line each.
    pub fn queue(&self) -> Vec<String> {
        let output = self.run("squeue", &["-h", "-o", "%i %T"]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn wait_for_empty_queue(&self) {
        wait_until("squeue to be empty", Duration::from_secs(180), || {
            self.queue().is_empty()
        });
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("jobs")
    }

    /// The worker log of array task `task` of job `job`.
    pub fn job_log(&self, job: &str, task: &str) -> String {
        let path = self
            .log_dir()
            .join(format!("ltsweep-workers-{job}_{task}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

/// The `ltsweep worker` process of array task `task` of job `job`, found by the variables
/// Slurm gave it (the test runs as root and reads every process's environment).
pub fn worker_pid(job: &str, task: &str) -> Option<libc::pid_t> {
    let wanted = [
        format!("SLURM_ARRAY_JOB_ID={job}"),
        format!("SLURM_ARRAY_TASK_ID={task}"),
    ];
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: libc::pid_t = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            if args.get(1) != Some(&&b"worker"[..]) {
                return None;
            }
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
            wanted
                .iter()
                .all(|w| vars.contains(&w.as_bytes()))
                .then_some(pid)
        })
}

/// What `/proc` says of a process: whether it is stopped, and the signals sent to it that
/// wait for delivery (a stopped process keeps them until it continues).
pub struct ProcessSignals {
    pub stopped: bool,
    pending: u64,
}

impl ProcessSignals {
    pub fn of(pid: libc::pid_t) -> Option<ProcessSignals> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let mask = |name: &str| u64::from_str_radix(field(name).unwrap_or("0"), 16).unwrap_or(0);
        Some(ProcessSignals {
            stopped: field("State:").is_some_and(|s| s.starts_with('T')),
            pending: mask("SigPnd:") | mask("ShdPnd:"),
        })
    }

    pub fn pending(&self, signal: libc::c_int) -> bool {
        self.pending & (1 << (signal - 1)) != 0
    }
}

/// Sends `signal` to process `pid`.
pub fn send(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory preconditions; a wrong pid is an error, not UB.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

/// `program` (a Slurm client found as [`find`] does, or a path) with `SLURM_CONF` set.
fn client(conf: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let program = program.as_ref();
    let resolved = program
        .to_str()
        .filter(|name| !name.contains('/'))
        .and_then(find)
        .unwrap_or_else(|| PathBuf::from(program));
    let mut command = Command::new(resolved);
    command.env("SLURM_CONF", conf);
    command
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Drop for TestSlurm {
    fn drop(&mut self) {
        // Jobs first, so that no worker outlives the test; then the daemons, newest first.
        let _ = self.command("scancel").args(["--user", "root"]).output();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(90)
            && self
                .command("squeue")
                .args(["-h"])
                .output()
                .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
        {
            std::thread::sleep(Duration::from_millis(500));
        }
        for daemon in self.daemons.iter_mut().rev() {
            let pid = libc::pid_t::try_from(daemon.id()).unwrap();
            // SAFETY: kill(2) on a child of ours.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let start = std::time::Instant::now();
            while daemon.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = daemon.kill();
                    let _ = daemon.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
