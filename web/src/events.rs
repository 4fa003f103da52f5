//! The live updates: the coordinator's `WatchSweep` stream, relayed as server-sent events.
//!
//! Each `job` event carries the job's new table row and the sweep's counts, rendered as the
//! page renders them; an `end` event says the sweep is over (nothing pending or running), so
//! the script stops listening instead of reconnecting to a finished stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, stream};
use ltsweep_domain::SweepId;
use ltsweep_domain::status::SweepEvent;
use ltsweep_proto::client::Watch;
use ltsweep_proto::server::Caller;
use serde::Serialize;

use crate::AppState;
use crate::pages::{counts_line, job_row};
use crate::respond::remote_response;

#[derive(Serialize)]
struct JobUpdate {
    job: String,
    state: String,
    row: String,
    counts: String,
}

fn job_event(event: &SweepEvent) -> Option<Event> {
    let job = event.job.as_ref()?;
    let update = JobUpdate {
        job: job.id.to_string(),
        state: job.state.as_str().to_owned(),
        row: job_row(job),
        counts: counts_line(&event.counts.unwrap_or_default()),
    };
    let data = serde_json::to_string(&update).ok()?;
    Some(Event::default().event("job").data(data))
}

/// The coordinator's watch stream of `sweep`, counted against the caller's streams (a page
/// past `--max-streams-per-credential` gets 429 and its script tries again later).
pub(crate) async fn sweep_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(sweep): Path<String>,
) -> Response {
    let watch = match state.api(caller).watch(&SweepId(sweep)).await {
        Ok(watch) => watch,
        Err(err) => return remote_response(&err),
    };
    Sse::new(relay(watch))
        // Proxies and browsers drop a silent connection; a comment now and then keeps it.
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The watch stream as events. The coordinator ends it cleanly only once the sweep is over:
/// then `end` follows. An error (the coordinator shutting down) ends it without `end`, so the
/// browser reconnects.
fn relay(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        loop {
            match watch.next().await {
                Ok(Some(event)) => {
                    if let Some(event) = job_event(&event) {
                        return Some((Ok(event), Some(watch)));
                    }
                }
                Err(_) => return None,
                Ok(None) => return Some((Ok(Event::default().event("end").data("over")), None)),
            }
        }
    })
}
