//! The runner both integration binaries share, the root's (`tests/it`) and the worker's
//! (`worker/tests/it`, which includes this file): libtest-mimic with libtest's command line
//! (several filters, as `cargo test --test it -- spec_cli:: train_cli::`), and after the summary
//! the slowest tests that ran, so that `./dev test` says where its time went in each binary.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};

/// How long each test that ran took, for the summary of the slowest.
static TIMES: Mutex<Vec<(&'static str, Duration)>> = Mutex::new(Vec::new());

/// Runs a test's body, recording how long it took under its name.
pub fn timed(name: &'static str, body: fn()) {
    let started = Instant::now();
    body();
    TIMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((name, started.elapsed()));
}

/// The slowest tests that ran, after the runner's summary.
fn print_slowest(count: usize) {
    let mut times = TIMES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    times.sort_by_key(|&(_, took)| std::cmp::Reverse(took));
    if times.is_empty() {
        return;
    }
    let slowest: Vec<String> = times
        .iter()
        .take(count)
        .map(|(name, took)| format!("{name} {:.0} s", took.as_secs_f64()))
        .collect();
    println!("slowest: {}", slowest.join(", "));
}

/// Runs the trials as the command line asks (`--test-threads`, `--exact`, `--skip`, ...),
/// keeping those that match any of the filters given, as libtest does.
pub fn main(trials: Vec<Trial>) -> ExitCode {
    let (filters, rest) = filters(std::env::args());
    let arguments = Arguments::from_iter(rest);
    let mut trials: Vec<Trial> = trials
        .into_iter()
        .filter(|trial| {
            filters.is_empty()
                || filters.iter().any(|filter| {
                    if arguments.exact {
                        trial.name() == filter
                    } else {
                        trial.name().contains(filter.as_str())
                    }
                })
        })
        .collect();
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    let conclusion = libtest_mimic::run(&arguments, trials);
    print_slowest(8);
    conclusion.exit_code()
}

/// The free arguments (filters) apart from the rest: libtest-mimic takes one filter, libtest
/// (and everyone's habit) several.
fn filters(args: impl Iterator<Item = String>) -> (Vec<String>, Vec<String>) {
    const TAKES_A_VALUE: [&str; 6] = [
        "--test-threads",
        "--logfile",
        "--skip",
        "--color",
        "--format",
        "-Z",
    ];
    let mut args = args.peekable();
    let mut rest: Vec<String> = args.next().into_iter().collect();
    let mut filters = Vec::new();
    while let Some(arg) = args.next() {
        if TAKES_A_VALUE.contains(&arg.as_str()) {
            rest.push(arg);
            rest.extend(args.next());
        } else if arg.starts_with('-') {
            rest.push(arg);
        } else {
            filters.push(arg);
        }
    }
    (filters, rest)
}
