//! Shared helpers: running the binary, temporary folders, waiting on conditions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The commands (their first word) that need the trainer, which the head-node build leaves out:
/// `bench` holds some that do not, and all of it runs on the trainer's build here.
const TRAINING: &[&str] = &["run", "train", "worker", "doctor", "bench"];

/// The `ltsweep` that trains, the build cargo made for these tests.
pub fn trainer_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ltsweep"))
}

/// The binary that runs `command` (its first word): the trainer's for the commands in
/// [`TRAINING`]; for every other, the head-node build where `./dev test` built it
/// (`LTSWEEP_COORDINATOR_BIN`), else the trainer's. A user runs those commands with either build;
/// the head-node one starts in milliseconds, while the trainer's first loads libtorch (about
/// half a CPU-second), and these tests start the binary some 300 times.
pub fn binary_for(command: &str) -> PathBuf {
    match crate::harness::head_node_binary() {
        Some(head_node) if !TRAINING.contains(&command) => head_node,
        _ => trainer_binary(),
    }
}

/// `ltsweep` for `command` (its first word): see [`binary_for`].
pub fn ltsweep_for(command: &str) -> Command {
    Command::new(binary_for(command))
}

/// `ltsweep` for a command that does not train.
pub fn ltsweep() -> Command {
    ltsweep_for("")
}

/// `ltsweep` for a command that trains.
pub fn trainer() -> Command {
    Command::new(trainer_binary())
}

/// The repository root, where `examples/` lives.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `ltsweep ARGS` and returns its output.
pub fn run(args: &[&str]) -> Output {
    ltsweep_for(args.first().copied().unwrap_or_default())
        .args(args)
        .output()
        .expect("the ltsweep binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What `binary PARENT --help` prints.
pub fn help(binary: &Path, parent: &[&str]) -> String {
    let output = Command::new(binary)
        .args(parent)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

/// The subcommands `binary PARENT --help` lists (clap's "Commands:" section), without `help`.
pub fn subcommands(binary: &Path, parent: &[&str]) -> Vec<String> {
    listed_commands(&help(binary, parent))
}

/// The subcommands a help text lists (clap's "Commands:" section), without `help`.
pub fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the temporary folder is writable");
    path
}

/// Waits until `condition` holds, polling; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut condition: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Where `./dev setup-extras` puts each heavy tool's virtualenv: `LTSWEEP_EXTRAS_DIR` (CI keeps
/// them outside the clone), else `.venv`.
pub fn extras_dir() -> PathBuf {
    std::env::var_os("LTSWEEP_EXTRAS_DIR").map_or_else(|| repo().join(".venv"), PathBuf::from)
}
