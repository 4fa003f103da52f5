//! The runner of these tests: libtest-mimic, so that a test whose service is missing here
//! (Slurm, a browser, MLflow, ...) shows as *ignored, with its reason* in the runner's own
//! summary rather than as a pass. Where CI sets `LTSWEEP_REQUIRE_<NEED>=1`, the same missing
//! service fails the test instead.
//!
//! A test is a plain `fn name()` registered right below it with [`register!`]; a test that is
//! not registered is dead code, which the build (`-D warnings`) refuses.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Trial};

use crate::support::{extras_dir, repo};

/// One test: its name (`module::function`), what it needs, and its body.
pub struct Test {
    pub name: &'static str,
    pub needs: &'static [Need],
    pub run: fn(),
}

inventory::collect!(Test);

/// Registers `fn $name()` as a test, with what it needs (`needs: [Slurm]`).
macro_rules! register {
    ($name:ident) => {
        $crate::harness::register!($name, needs: []);
    };
    ($name:ident, needs: [$($need:ident),*]) => {
        inventory::submit! {
            $crate::harness::Test {
                name: concat!(module_path!(), "::", stringify!($name)),
                needs: &[$($crate::harness::Need::$need),*],
                run: $name,
            }
        }
    };
}
pub(crate) use register;

/// Something a test needs that a user's machine may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Debian's Slurm and munge daemons and clients, and root (slurmd starts jobs as users).
    Slurm,
    /// Debian's headless `chromium` and `chromedriver`.
    Browser,
    /// The `mlflow` package (`./dev setup-extras`).
    Mlflow,
    /// Checkov (`./dev setup-extras`).
    Checkov,
    /// `systemd-analyze` 252 or later (`security --offline`).
    SystemdAnalyze,
    /// The head-node build, named in `LTSWEEP_COORDINATOR_BIN` (CI builds it).
    HeadNode,
}

impl Need {
    /// The variable that makes this need's absence a failure (CI sets it).
    fn required_by(self) -> &'static str {
        match self {
            Need::Slurm => "LTSWEEP_REQUIRE_SLURM",
            Need::Browser => "LTSWEEP_REQUIRE_BROWSER",
            Need::Mlflow => "LTSWEEP_REQUIRE_MLFLOW",
            Need::Checkov => "LTSWEEP_REQUIRE_CHECKOV",
            Need::SystemdAnalyze => "LTSWEEP_REQUIRE_SYSTEMD_ANALYZE",
            Need::HeadNode => "LTSWEEP_REQUIRE_HEAD_NODE",
        }
    }

    /// Why it is missing here, if it is.
    fn missing(self) -> Option<String> {
        match self {
            Need::Slurm => crate::slurm_support::missing(),
            Need::Browser => {
                let absent: Vec<&str> = ["chromium", "chromedriver"]
                    .into_iter()
                    .filter(|program| !answers(program, "--version"))
                    .collect();
                (!absent.is_empty()).then(|| {
                    format!(
                        "{} not installed (apt-get install chromium chromium-driver)",
                        absent.join(" and ")
                    )
                })
            }
            Need::Mlflow => {
                let installed = Command::new(mlflow_python())
                    .args(["-c", "import mlflow"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                (!installed).then(|| "mlflow not installed (./dev setup-extras)".to_owned())
            }
            Need::Checkov => checkov()
                .is_none()
                .then(|| "checkov not installed (./dev setup-extras)".to_owned()),
            Need::SystemdAnalyze => match systemd_version() {
                Some(version) if version >= 252 => None,
                Some(version) => Some(format!(
                    "systemd-analyze {version} has no --offline (252 or later: apt-get install systemd)"
                )),
                None => Some("systemd-analyze not installed (apt-get install systemd)".to_owned()),
            },
            Need::HeadNode => head_node_binary().is_none().then(|| {
                "no head-node build (cargo build --no-default-features --bin ltsweep, named in LTSWEEP_COORDINATOR_BIN)"
                    .to_owned()
            }),
        }
    }
}

fn answers(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The Python of the virtualenv `./dev setup-extras` gives mlflow.
pub fn mlflow_python() -> PathBuf {
    extras_dir().join("mlflow/bin/python")
}

/// Checkov: the one `./dev setup-extras` installs in its own virtualenv, else one on the PATH.
pub fn checkov() -> Option<PathBuf> {
    let ours = extras_dir().join("checkov/bin/checkov");
    if ours.exists() {
        Some(ours)
    } else {
        answers("checkov", "--version").then(|| PathBuf::from("checkov"))
    }
}

fn systemd_version() -> Option<u32> {
    let output = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The head-node build (no `train` feature) that CI builds and names in LTSWEEP_COORDINATOR_BIN.
pub fn head_node_binary() -> Option<PathBuf> {
    std::env::var_os("LTSWEEP_COORDINATOR_BIN")
        .map(PathBuf::from)
        .map(|path| repo().join(path))
}

register!(no_test_is_left_to_libtest);
/// A `#[test]` here is compiled out without a word (this binary has no libtest), so a test
/// written the usual way, or merged in from a branch that predates this runner, would never
/// run: each must be a registered plain function instead.
fn no_test_is_left_to_libtest() {
    let mut unregistered = Vec::new();
    for entry in std::fs::read_dir(repo().join("tests/it")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                unregistered.push(format!("{}:{}", path.display(), number + 1));
            }
        }
    }
    assert!(
        unregistered.is_empty(),
        "tests that would never run (make each a plain fn with register!(name) above it): {}",
        unregistered.join(", ")
    );
}

fn trial(test: &'static Test) -> Trial {
    let name = test.name.strip_prefix("it::").unwrap_or(test.name);
    Trial::ignorable_test(name, move || {
        for need in test.needs {
            if let Some(why) = need.missing() {
                let variable = need.required_by();
                if std::env::var(variable).is_ok_and(|v| v == "1") {
                    return Err(format!("{variable}=1 but {why}").into());
                }
                return Ok(Completion::ignored_with(why));
            }
        }
        let started = Instant::now();
        (test.run)();
        TIMES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name, started.elapsed()));
        Ok(Completion::Completed)
    })
}

/// How long each test that ran took, for the summary of the slowest.
static TIMES: Mutex<Vec<(&str, Duration)>> = Mutex::new(Vec::new());

/// The slowest tests that ran, after the runner's summary: where `./dev test`'s time goes.
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

/// Runs the registered tests as the command line asks (`--test-threads`, `--exact`,
/// `--skip`, ...), keeping those that match any of the filters given, as libtest does.
pub fn main() -> ExitCode {
    let (filters, rest) = filters(std::env::args());
    let arguments = Arguments::from_iter(rest);
    let mut trials: Vec<Trial> = inventory::iter::<Test>
        .into_iter()
        .map(trial)
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
/// (and everyone's habit: `cargo test --test it -- spec_cli:: train_cli::`) several.
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
