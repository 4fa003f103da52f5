//! The coordinator's web page (`--http`): its endpoints refuse what lacks the token, and, in a
//! real headless Chromium, a sweep's page follows the sweep live: jobs go pending → running →
//! succeeded and Table 1 gains rows without a reload; the cancel button cancels.
//!
//! `LTSWEEP_WEB_SCREENSHOT=docs/web-ui.png` makes the browser test save the page mid-sweep.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::cluster_support::{Process, TOKEN};
use crate::harness::register;
use crate::support::{ltsweep, repo, trainer, wait_until};
use crate::webdriver::{Answer, Browser, http};

/// A coordinator serving gRPC and the page, on ports it chose.
pub(crate) struct Served {
    pub(crate) coordinator: Process,
    pub(crate) grpc: String,
    pub(crate) web_port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Served {
    /// With one token for every role, [`TOKEN`].
    fn start() -> Served {
        Self::start_with(|command| {
            command.env("LTSWEEP_TOKEN", TOKEN);
        })
    }

    /// `configure` gives the tokens (and any other flag).
    pub(crate) fn start_with(configure: impl FnOnce(&mut std::process::Command)) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut command = ltsweep();
        command
            .args([
                "coordinator",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            // A killed worker's job stays running for the rest of the test.
            .args([
                "--lease-ttl",
                "10m",
                "--heartbeat",
                "1s",
                "--poll-timeout",
                "2s",
            ])
            .env_remove("LTSWEEP_TOKEN")
            .env("RUST_LOG", "info");
        configure(&mut command);
        let coordinator = Process::spawn(command);
        let (mut grpc, mut web) = (None, None);
        wait_until(
            "the coordinator and its page to listen",
            Duration::from_secs(60),
            || {
                grpc = coordinator.line_containing("listening on ");
                web = coordinator.line_containing("web page at http://");
                grpc.is_some() && web.is_some()
            },
        );
        let grpc = grpc.unwrap();
        let grpc = grpc
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap()
            .to_owned();
        let web = web.unwrap();
        let web_port = web
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("a port in {web:?}"));
        Served {
            coordinator,
            grpc,
            web_port,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.web_port)
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_as(TOKEN, args)
    }

    /// `ltsweep ARGS` against this coordinator with `token`.
    pub(crate) fn cli_as(&self, token: &str, args: &[&str]) -> std::process::Output {
        ltsweep()
            .args(args)
            .args(["--coordinator", &format!("http://{}", self.grpc)])
            .env("LTSWEEP_TOKEN", token)
            .output()
            .unwrap()
    }

    fn submit(&self, spec: &Path) -> String {
        let output = self.cli(&["submit", spec.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .expect("the sweep id is the last line")
            .to_owned()
    }

    fn status(&self, sweep: &str) -> Value {
        let output = self.cli(&["status", sweep, "--json"]);
        assert!(output.status.success());
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn worker(&self) -> Process {
        let mut command = trainer();
        command
            .args(["worker", "--coordinator", &format!("http://{}", self.grpc)])
            .args(["--devices", "cpu", "--threads", "1"])
            .arg("--data-root")
            .arg(self.dir.path())
            .env("LTSWEEP_TOKEN", TOKEN)
            .env("RUST_LOG", "info");
        Process::spawn(command)
    }

    pub(crate) fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        http(self.web_port, "GET", path, headers, "")
    }

    pub(crate) fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        http(self.web_port, "POST", path, headers, body)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.coordinator.kill();
    }
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

register!(every_endpoint_but_the_login_form_needs_the_token);
fn every_endpoint_but_the_login_form_needs_the_token() {
    let served = Served::start();
    let spec = repo().join("examples/quickstart.toml");
    let sweep = served.submit(&spec);
    let events = format!("/api/sweeps/{sweep}/events");
    let report = format!("/api/sweeps/{sweep}/report");
    let cancel = format!("/api/sweeps/{sweep}/cancel");

    // Without the token: the pages are the login form and nothing of the sweep.
    for page in ["/", &format!("/sweeps/{sweep}")] {
        let answer = served.get(page, &[]);
        assert_eq!(answer.status, 401, "{page}");
        assert!(
            answer.body.contains(r#"id="login""#),
            "{page}: {}",
            answer.body
        );
        assert!(
            !answer.body.contains("quickstart"),
            "{page}: {}",
            answer.body
        );
    }
    for path in ["/api/sweeps", "/api/workers", &events, &report] {
        assert_eq!(served.get(path, &[]).status, 401, "{path}");
        let wrong = served.get(path, &[("Authorization", &format!("{}N", bearer()))]);
        assert_eq!(wrong.status, 401, "{path}");
    }
    assert_eq!(served.post(&cancel, &[], "").status, 401);
    assert_eq!(served.get("/assets/app.js", &[]).status, 200);

    // With the header: the data.
    let sweeps = served.get("/api/sweeps", &[("Authorization", &bearer())]);
    assert_eq!(sweeps.status, 200);
    assert!(sweeps.body.contains(&sweep), "{}", sweeps.body);
    let report = served.get(&report, &[("Authorization", &bearer())]);
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(report.body.contains(r#"id="table1""#), "{}", report.body);

    // The login form: a wrong token is refused, the right one sets an HttpOnly,
    // SameSite=Strict session cookie (not the token); the form only counts when posted from
    // the page's origin.
    let origin = format!("http://127.0.0.1:{}", served.web_port);
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", origin.as_str()),
    ];
    assert_eq!(served.post("/login", &form, "token=nope").status, 401);
    let foreign = [form[0], ("Origin", "http://evil.example")];
    let right = format!("token={TOKEN}");
    assert_eq!(served.post("/login", &foreign, &right).status, 403);
    let login = served.post("/login", &form, &right);
    assert_eq!(login.status, 303);
    let cookie = login.header("set-cookie").expect("a cookie").to_owned();
    assert!(
        cookie.starts_with("ltsweep_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = served.get("/", &[("Cookie", &cookie)]);
    assert_eq!(with_cookie.status, 200);
    assert!(with_cookie.body.contains(&sweep), "{}", with_cookie.body);

    // A write with the cookie from another origin (or none) is refused and changes nothing;
    // from the page's origin it cancels.
    let cross = served.post(
        &cancel,
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(cross.status, 403);
    assert_eq!(served.post(&cancel, &[("Cookie", &cookie)], "").status, 403);
    assert_eq!(served.status(&sweep)["cancelled"].as_u64(), Some(0));
    let same = served.post(&cancel, &[("Cookie", &cookie), ("Origin", &origin)], "");
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(served.status(&sweep)["cancelled"].as_u64(), Some(27));
}

/// Each job row's states as the page saw them, by job.
fn rows(browser: &Browser) -> Vec<Vec<String>> {
    let seen = browser.eval(
        "return Array.from(document.querySelectorAll('#jobs tbody tr'))
            .map(r => (r.dataset.seen || r.dataset.state).split(' '));",
    );
    serde_json::from_value(seen).unwrap()
}

fn table1_rows(browser: &Browser) -> i64 {
    browser
        .eval("const t = document.querySelector('#table1 tbody'); return t ? t.rows.length : -1;")
        .as_i64()
        .unwrap()
}

register!(the_page_follows_a_sweep_live_and_cancels_it, needs: [Browser]);
fn the_page_follows_a_sweep_live_and_cancels_it() {
    let browser = Browser::start();
    let served = Served::start();
    let sweep = served.submit(&repo().join("examples/quickstart.toml"));
    let page = served.url(&format!("/sweeps/{sweep}"));

    // Without the token: only the login form.
    browser.goto(&page);
    let shown = browser.eval(
        "return { login: !!document.getElementById('login'),
                  jobs: !!document.getElementById('jobs'), text: document.body.innerText };",
    );
    assert_eq!(shown["login"], true, "{shown}");
    assert_eq!(shown["jobs"], false, "{shown}");
    assert!(
        !shown["text"].as_str().unwrap().contains("quickstart"),
        "{shown}"
    );

    // Logged in once, the cookie opens every page.
    browser.type_into("#token", TOKEN);
    browser.click("#login button");
    wait_until("the sweeps list", Duration::from_secs(30), || {
        browser
            .eval("return document.querySelector('#sweeps a') !== null;")
            .as_bool()
            .unwrap()
    });
    browser.goto(&page);
    wait_until("the empty Table 1", Duration::from_secs(60), || {
        table1_rows(&browser) == 0
    });
    let before = rows(&browser);
    assert_eq!(before.len(), 27);
    assert!(before.iter().all(|seen| seen == &["pending"]), "{before:?}");
    browser.eval("window.ltsweepMarker = 'not reloaded'; return null;");

    // A worker takes the jobs; the page shows it happen.
    let mut worker = served.worker();
    let mut lived = false;
    wait_until(
        "a job seen pending, running and succeeded",
        Duration::from_secs(600),
        || {
            lived = rows(&browser)
                .iter()
                .any(|seen| seen == &["pending", "running", "succeeded"]);
            lived
        },
    );
    wait_until("Table 1 to gain rows", Duration::from_secs(600), || {
        table1_rows(&browser) >= 2
    });
    worker.kill();
    let marker = browser.eval("return window.ltsweepMarker || null;");
    assert_eq!(marker, "not reloaded", "the page reloaded");
    let shown = browser.eval(
        "return { workers: document.querySelectorAll('#worker-list tbody tr').length,
                  curves: !!document.querySelector('#curves svg'),
                  figure1: !!document.querySelector('#figure1 svg') };",
    );
    assert_eq!(shown["curves"], true, "{shown}");
    assert_eq!(shown["figure1"], true, "{shown}");
    assert_eq!(shown["workers"], 1, "{shown}");
    if let Ok(path) = std::env::var("LTSWEEP_WEB_SCREENSHOT") {
        browser.screenshot(&repo().join(path));
    }

    // The cancel button cancels what is left, and the page shows it.
    browser.click("#cancel");
    browser.accept_dialog();
    wait_until(
        "the rest of the jobs cancelled",
        Duration::from_secs(60),
        || {
            let rows = rows(&browser);
            rows.iter()
                .all(|seen| ["succeeded", "cancelled"].contains(&seen.last().unwrap().as_str()))
        },
    );
    let status = served.status(&sweep);
    let cancelled = status["cancelled"].as_u64().unwrap();
    assert!(cancelled > 0, "{status}");
    let succeeded = status["succeeded"].as_u64().unwrap();
    assert_eq!(cancelled + succeeded, 27, "{status}");
    let said = browser.eval("return document.getElementById('action-status').innerText;");
    assert_eq!(said, format!("{cancelled} jobs cancelled"));
}
