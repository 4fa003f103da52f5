//! The pages and HTML fragments, rendered on the server from the coordinator's own answers;
//! the script only swaps fragments in.

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use ltsweep_domain::status::{JobStatus, SweepCounts};
use ltsweep_domain::time::{ago, unix_ms_now};
use ltsweep_domain::{SweepId, WORKER_COLUMNS, WorkerId, WorkerInfo};
use ltsweep_proto::RemoteError;
use ltsweep_proto::client::Which;
use ltsweep_proto::server::Caller;

use crate::AppState;
use crate::auth::same_origin;
use crate::html::{escape, nav, page, path_segment};
use crate::respond::remote_response;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

pub(crate) async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

pub(crate) async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// Only this server's script and styles run, no other site may frame the page, and under TLS
/// browsers keep to HTTPS for a year (HSTS).
pub(crate) async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if state.secure {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: under it browsers send `Origin: null` with the page's own form
        // posts, and the same-origin check would refuse them.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

// ---------------------------------------------------------------------------------------------
// The sweeps

pub(crate) async fn sweeps_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    match sweeps_table(&state, caller).await {
        Ok(table) => page(
            "ltsweep: sweeps",
            &format!(
                r#"{nav}<main id="sweeps-page"><h1>Sweeps</h1><div id="sweeps" data-refresh="/api/sweeps">{table}</div>
<h2>Workers</h2><div id="workers" data-refresh="/api/workers"></div></main>"#,
                nav = nav("sweeps"),
            ),
            true,
        )
        .into_response(),
        Err(response) => response,
    }
}

pub(crate) async fn sweeps_fragment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    match sweeps_table(&state, caller).await {
        Ok(table) => Html(table).into_response(),
        Err(response) => response,
    }
}

async fn sweeps_table(state: &AppState, caller: Caller) -> Result<String, Response> {
    let sweeps = state
        .api(caller)
        .sweeps()
        .await
        .map_err(|err| remote_response(&err))?;
    if sweeps.is_empty() {
        return Ok(
            r#"<p class="empty">No sweep yet: <code>ltsweep submit SPEC.toml</code> one.</p>"#
                .to_owned(),
        );
    }
    let mut html = String::from(
        r#"<table class="sweeps"><thead><tr><th>sweep</th><th>id</th><th>submitted</th><th>progress</th></tr></thead><tbody>"#,
    );
    let now = unix_ms_now();
    // Newest first: the one a researcher just submitted.
    for sweep in sweeps.iter().rev() {
        let _ = write!(
            html,
            r#"<tr><td><a href="/sweeps/{path}">{name}</a></td><td><code>{id}</code></td><td>{when}</td><td>{counts}</td></tr>"#,
            path = path_segment(sweep.id.as_str()),
            id = escape(sweep.id.as_str()),
            name = escape(&sweep.name),
            when = ago(now, sweep.submitted_unix_ms),
            counts = counts_line(&sweep.counts),
        );
    }
    html.push_str("</tbody></table>");
    Ok(html)
}

/// `3 pending · 1 running · 5 succeeded of 9`, with a bar.
pub(crate) fn counts_line(counts: &SweepCounts) -> String {
    let mut html = String::from(r#"<span class="counts">"#);
    let total = counts.total.max(1);
    html.push_str(r#"<span class="bar">"#);
    for (n, state) in [
        (counts.succeeded, "succeeded"),
        (counts.running, "running"),
        (counts.failed, "failed"),
        (counts.cancelled, "cancelled"),
        (counts.pending, "pending"),
    ] {
        if n > 0 {
            let _ = write!(
                html,
                r#"<span class="s-{state}" style="width:{:.2}%"></span>"#,
                f64::from(n) * 100.0 / f64::from(total)
            );
        }
    }
    html.push_str("</span>");
    let parts: Vec<String> = [
        (counts.pending, "pending"),
        (counts.running, "running"),
        (counts.succeeded, "succeeded"),
        (counts.failed, "failed"),
        (counts.cancelled, "cancelled"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, state)| format!(r#"<span class="n-{state}">{n} {state}</span>"#))
    .collect();
    let _ = write!(html, " {} of {}</span>", parts.join(" · "), counts.total);
    html
}

// ---------------------------------------------------------------------------------------------
// One sweep

pub(crate) async fn sweep_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(sweep): Path<String>,
) -> Response {
    let sweep = SweepId(sweep);
    let status = match state.api(caller).status(Which::Sweep(&sweep), false).await {
        Ok(status) => status,
        Err(err) => return remote_response(&err),
    };
    let id = escape(status.id.as_str());
    let name = escape(&status.name);
    let mut rows = String::new();
    for job in &status.jobs {
        rows.push_str(&job_row(job));
    }
    // A sweep without other axes hides their column (rows added live keep the layout).
    let table_class = if status.jobs.iter().any(|job| !job.axes.is_empty()) {
        ""
    } else {
        "no-axes"
    };
    let cancelled = if status.cancelled {
        r#" <span class="tag">cancelled</span>"#
    } else {
        ""
    };
    let body = format!(
        r#"{nav}<main id="sweep" data-sweep="{id}">
<header class="sweep"><h1>{name}{cancelled}</h1><p><code>{id}</code></p>
<p id="counts">{counts}</p>
<p class="actions"><button type="button" id="cancel" class="danger">Cancel sweep</button>
<button type="button" id="retry-failed">Retry failed</button>
<span id="action-status" role="status"></span> <span id="live" class="live">connecting…</span></p></header>
<section><h2>Jobs</h2><div class="scroll"><table id="jobs" class="{table_class}"><thead><tr><th>plan</th><th>seed</th><th>axes</th><th>state</th><th>worker</th><th>epoch</th><th>attempts</th><th>last acc.</th><th>rung</th></tr></thead>
<tbody>{rows}</tbody></table></div></section>
<section><h2>Workers</h2><div id="workers" data-refresh="/api/workers"><p class="empty">loading…</p></div></section>
<section><h2>Results so far</h2><div id="report" data-refresh="/api/sweeps/{path}/report"><p class="empty">loading…</p></div></section>
</main>"#,
        nav = nav(&status.name),
        path = path_segment(status.id.as_str()),
        counts = counts_line(&status.counts),
    );
    page(&format!("ltsweep: {}", status.name), &body, true).into_response()
}

/// One job's row; its id and `data-state` let the script replace it when the job changes.
pub(crate) fn job_row(job: &JobStatus) -> String {
    let state = job.state.as_str();
    let axes: Vec<String> = job
        .axes
        .iter()
        .map(|axis| format!("{}={}", axis.name, axis.value))
        .collect();
    let accuracy = job
        .last_accuracy
        .map_or(String::new(), |a| format!("{:.2}", a * 100.0));
    let error = job.error.as_ref().map_or(String::new(), |error| {
        format!(r#" title="{}""#, escape(error))
    });
    format!(
        r#"<tr id="job-{id}" data-state="{state}"><td>{plan}</td><td>{seed}</td><td>{axes}</td><td class="state"><span class="badge s-{state}"{error}>{state}</span></td><td class="worker">{worker}</td><td class="epoch">{epoch}/{epochs}</td><td>{attempts}</td><td class="acc">{accuracy}</td><td class="rung">{rung}</td></tr>"#,
        id = escape(job.id.as_str()),
        plan = escape(&job.plan.to_string()),
        seed = job.seed,
        axes = escape(&axes.join(" ")),
        worker = escape(job.worker.as_ref().map_or("", WorkerId::as_str)),
        epoch = job.epoch,
        epochs = job.epochs_total,
        attempts = job.attempts,
        rung = escape(&rung_cell(job)),
    )
}

/// A searched job's last rung and its reading there [%], and whether it waits or was stopped
/// there (`2: 41.25 waiting`); empty for a grid's job or before its first rung.
fn rung_cell(job: &JobStatus) -> String {
    let Some(search) = &job.search else {
        return String::new();
    };
    let Some(&(rung, value)) = search.readings.last() else {
        return String::new();
    };
    let standing = if search.stopped_at == Some(rung) {
        " stopped"
    } else if search.paused_at == Some(rung) {
        " waiting"
    } else {
        ""
    };
    format!("{rung}: {:.2}{standing}", value * 100.0)
}

// ---------------------------------------------------------------------------------------------
// Workers

pub(crate) async fn workers_fragment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    match state.api(caller).workers().await {
        Ok(workers) => Html(workers_table(&workers, unix_ms_now())).into_response(),
        Err(err) => remote_response(&err),
    }
}

pub(crate) fn workers_table(workers: &[WorkerInfo], now_ms: u64) -> String {
    if workers.is_empty() {
        return r#"<p class="empty">No worker has registered: start one with <code>ltsweep worker --coordinator URL</code>.</p>"#.to_owned();
    }
    let mut html = String::from(r#"<table id="worker-list"><thead><tr>"#);
    for column in WORKER_COLUMNS {
        let _ = write!(html, "<th>{column}</th>");
    }
    html.push_str("</tr></thead><tbody>");
    for worker in workers {
        let alive = if worker.alive { "alive" } else { "gone" };
        let _ = write!(html, r#"<tr class="{alive}">"#);
        for cell in worker.row(now_ms) {
            let _ = write!(html, "<td>{}</td>", escape(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

// ---------------------------------------------------------------------------------------------
// Write actions

/// Cookie-carrying (or tokenless) requests must come from this page: a cross-site form cannot
/// cancel a sweep. A browser never sends an `Authorization` header on its own (a script of
/// another site would need this server's CORS consent, which it never gives).
fn check_write(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    if !headers.contains_key(header::AUTHORIZATION) && !same_origin(state.secure, headers) {
        return Some(
            (
                StatusCode::FORBIDDEN,
                "a write from another origin: use the page's own buttons",
            )
                .into_response(),
        );
    }
    None
}

fn json(value: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(sweep): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = check_write(&state, &headers) {
        return refused;
    }
    answer(
        state.api(caller).cancel(&SweepId(sweep)).await,
        |cancelled| serde_json::json!({ "cancelled": cancelled }),
    )
}

pub(crate) async fn retry_failed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(sweep): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = check_write(&state, &headers) {
        return refused;
    }
    answer(
        state.api(caller).retry_failed(&SweepId(sweep)).await,
        |requeued| serde_json::json!({ "requeued": requeued }),
    )
}

/// A write action's answer as JSON, or its error's HTTP status.
fn answer<T>(
    result: Result<T, RemoteError>,
    body: impl FnOnce(T) -> serde_json::Value,
) -> Response {
    match result {
        Ok(answer) => json(&body(answer)),
        Err(err) => remote_response(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ltsweep_proto::pb;

    #[test]
    fn a_job_row_carries_its_state_and_escapes_its_error() {
        let job = JobStatus::try_from(pb::JobStatus {
            job_id: "j1".into(),
            plan: Some(ltsweep_domain::LossPlan::CE_ONLY.into()),
            seed: 2,
            state: pb::JobState::Failed.into(),
            epoch: 3,
            epochs_total: 6,
            error: "<b>boom</b>".into(),
            last_accuracy: Some(0.5),
            ..Default::default()
        })
        .unwrap();
        let row = job_row(&job);
        assert!(
            row.starts_with(r#"<tr id="job-j1" data-state="failed">"#),
            "{row}"
        );
        assert!(row.contains("3/6") && row.contains("50.00"), "{row}");
        assert!(
            row.contains("&lt;b&gt;boom") && !row.contains("<b>"),
            "{row}"
        );
        assert!(row.ends_with(r#"<td class="rung"></td></tr>"#), "{row}");
    }

    #[test]
    fn a_searched_job_row_shows_its_last_rung() {
        let job = JobStatus::try_from(pb::JobStatus {
            job_id: "j2".into(),
            plan: Some(ltsweep_domain::LossPlan::CE_ONLY.into()),
            state: pb::JobState::Pending.into(),
            search: Some(pb::JobSearchStatus {
                readings: vec![
                    pb::RungReading {
                        epoch: 2,
                        value: 0.4,
                    },
                    pb::RungReading {
                        epoch: 6,
                        value: 0.4125,
                    },
                ],
                paused_at: Some(6),
                stopped_at: None,
                metric: "val_tail".into(),
            }),
            ..Default::default()
        })
        .unwrap();
        let row = job_row(&job);
        assert!(
            row.ends_with(r#"<td class="rung">6: 41.25 waiting</td></tr>"#),
            "{row}"
        );
    }
}
