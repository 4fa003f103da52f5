//! The runner of these tests: libtest-mimic, so that a test whose service is missing here
//! (Slurm, a browser, MLflow, ...) shows as *ignored, with its reason* in the runner's own
//! summary rather than as a pass. Where CI sets `LTSWEEP_REQUIRE_<NEED>=1`, the same missing
//! service fails the test instead.
//!
//! A test is a plain `fn name()` registered right below it with [`register!`]; a test that is
//! not registered is dead code, which the build (`-D warnings`) refuses.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use libtest_mimic::{Completion, Trial};

use crate::runner;
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
    /// The head-node build, named in `LTSWEEP_COORDINATOR_BIN` (`./dev test` builds it).
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
                // Found, not imported: importing mlflow takes seconds, and its server does
                // that anyway.
                let installed = Command::new(mlflow_python())
                    .args([
                        "-c",
                        "import importlib.util, sys; sys.exit(importlib.util.find_spec('mlflow') is None)",
                    ])
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
                "no head-node build (./dev test builds one and names it in LTSWEEP_COORDINATOR_BIN)"
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

/// The head-node build (no `train` feature) that `./dev test` builds and names in
/// LTSWEEP_COORDINATOR_BIN.
pub fn head_node_binary() -> Option<PathBuf> {
    std::env::var_os("LTSWEEP_COORDINATOR_BIN")
        .map(PathBuf::from)
        .map(|path| repo().join(path))
}

register!(no_test_is_left_to_libtest);
/// A `#[test]` here or in the worker's binary is compiled out without a word (neither has
/// libtest), so a test written the usual way, or merged in from a branch that predates this
/// runner, would never run: each must be a registered plain function instead.
fn no_test_is_left_to_libtest() {
    let mut unregistered = Vec::new();
    let folders = ["tests/it", "worker/tests/it"].map(|folder| repo().join(folder));
    for entry in folders
        .iter()
        .flat_map(|folder| std::fs::read_dir(folder).unwrap())
    {
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
        runner::timed(name, test.run);
        Ok(Completion::Completed)
    })
}

/// Runs the registered tests as the command line asks.
pub fn main() -> ExitCode {
    runner::main(inventory::iter::<Test>.into_iter().map(trial).collect())
}
