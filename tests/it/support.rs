//! Shared helpers: running the binary, temporary folders, waiting on conditions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `ltsweep` binary cargo built for these tests.
pub fn ltsweep() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ltsweep"))
}

/// The repository root, where `examples/` lives.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `ltsweep ARGS` and returns its output.
pub fn run(args: &[&str]) -> Output {
    ltsweep()
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
