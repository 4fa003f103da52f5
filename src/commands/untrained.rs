//! A head node's build: `ltsweep` built without the `train` feature has no trainer and links no
//! libtorch. Its training commands are refused with how to get a build that trains, as a usage
//! error (exit 2): the command exists, this binary is the wrong one to run it with.

use crate::exit::BadInput;

/// The commands (with their parent, `bench`) that need the trainer.
const TRAINING: &[(&str, &str)] = &[
    ("", "worker"),
    ("", "train"),
    ("", "run"),
    ("", "doctor"),
    ("bench", "train"),
    ("bench", "sweep"),
    ("bench", "loader"),
];

/// Closes `ltsweep --help` in this build.
pub const NOTE: &str = "This build has no trainer (built without the `train` feature, for a head \
node): worker, train, run, doctor, bench train, bench sweep and bench loader need a build with the default \
features (`cargo build --release`).";

/// The error for `words` (the command and its arguments) given to `ltsweep PARENT`.
pub fn refuse(parent: &str, words: &[String]) -> anyhow::Error {
    let name = words.first().map_or("", String::as_str);
    let command = [parent, name]
        .iter()
        .filter(|w| !w.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let message = if TRAINING.contains(&(parent, name)) {
        format!(
            "`ltsweep {command}` needs the trainer and libtorch, which this build leaves out (built without the `train` feature, for a head node): run it with a build that trains, `cargo build --release` with the default features, or the worker image (deploy/Containerfile.worker)"
        )
    } else {
        let help = [parent, "--help"]
            .iter()
            .filter(|w| !w.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        format!("unrecognized subcommand `{command}`: `ltsweep {help}` lists this build's")
    };
    BadInput(message).into()
}
