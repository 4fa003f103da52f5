//! `ltsweep bench ...`: benchmark programs. Each prints a table of measured figures and, last,
//! one `key=value` line for scripts; the scripts in `bench/` run the peers in the same run.
//!
//! `bench coordinator` needs no trainer and is in every build; `bench train`, `bench sweep` and
//! `bench loader` train or decode, and only a build with the `train` feature has them.

mod coordinator;
#[cfg(feature = "train")]
mod loader;
#[cfg(feature = "train")]
mod training;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::cli::BenchCommand;

pub fn run(command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Coordinator(args) => coordinator::run(args),
        #[cfg(feature = "train")]
        BenchCommand::Train(args) => training::train(args),
        #[cfg(feature = "train")]
        BenchCommand::Sweep(args) => training::sweep(args),
        #[cfg(feature = "train")]
        BenchCommand::Loader(args) => loader::loader(args),
        #[cfg(not(feature = "train"))]
        BenchCommand::Untrained(words) => Err(super::untrained::refuse("bench", words)),
    }
}

/// A child `ltsweep` process, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Child {
    fn spawn(args: &[&str], token: &str, stderr: std::process::Stdio) -> anyhow::Result<Child> {
        let child = std::process::Command::new(std::env::current_exe()?)
            .args(args)
            .env("LTSWEEP_TOKEN", token)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()?;
        Ok(Child(child))
    }

    /// The peak resident memory of the process, from /proc.
    fn peak_memory_mib(&self) -> Option<f64> {
        self.memory_mib("VmHWM:")
    }

    /// The resident memory of the process now, from /proc.
    fn resident_memory_mib(&self) -> Option<f64> {
        self.memory_mib("VmRSS:")
    }

    fn memory_mib(&self, field: &str) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

/// Starts `ltsweep coordinator` on loopback with its state in `state`. It binds port 0 itself
/// and holds that listener: the port is read from the line it prints once listening, so no
/// other process can take the port between a probe and the bind.
fn start_coordinator(state: &Path, token: &str, extra: &[&str]) -> anyhow::Result<(Child, String)> {
    use std::io::BufRead;

    let mut args = vec![
        "coordinator",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().context("a UTF-8 path")?,
    ];
    args.extend_from_slice(extra);
    let mut child = Child::spawn(&args, token, std::process::Stdio::piped())?;
    let stderr = child.0.stderr.take().context("a piped stderr")?;
    let (found, address) = std::sync::mpsc::channel();
    // Reads on past the address line, passing the coordinator's warnings on, so that it never
    // blocks on a full pipe.
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let address = line
                .split_once("listening on ")
                .and_then(|(_, rest)| rest.split([' ', ',']).next())
                .map(str::to_owned);
            match (address, found.take()) {
                (Some(address), Some(sender)) => {
                    let _ = sender.send(address);
                }
                (_, sender) => {
                    found = sender;
                    eprintln!("{line}");
                }
            }
        }
    });
    let address = address
        .recv_timeout(Duration::from_secs(60))
        .context("the coordinator did not say where it listens within 60 s")?;
    Ok((child, format!("http://{address}")))
}
