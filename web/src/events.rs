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
use futures::{Stream, StreamExt, stream};
use ltsweep_coordinator::Caller;
use ltsweep_proto::pb;
use ltsweep_proto::pb::sweep_service_server::SweepService;
use serde::Serialize;

use crate::pages::{counts_line, job_row};
use crate::respond::status_response;
use crate::{AppState, request_of};

#[derive(Serialize)]
struct JobUpdate {
    job: String,
    state: String,
    row: String,
    counts: String,
}

fn job_event(event: &pb::SweepEvent) -> Option<Event> {
    let job = event.job.as_ref()?;
    let update = JobUpdate {
        job: job.job_id.clone(),
        state: ltsweep_proto::JobState::try_from(job.state)
            .map_or("unknown", ltsweep_proto::JobState::as_str)
            .to_owned(),
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
    let watch = match state
        .api
        .watch_sweep(request_of(
            caller,
            pb::WatchSweepRequest { sweep_id: sweep },
        ))
        .await
    {
        Ok(watch) => watch.into_inner(),
        Err(status) => return status_response(status),
    };
    Sse::new(relay(watch))
        // Proxies and browsers drop a silent connection; a comment now and then keeps it.
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The watch stream as events. The coordinator ends it cleanly only once the sweep is over:
/// then `end` follows. An error (the coordinator shutting down) ends it without `end`, so the
/// browser reconnects.
fn relay(
    watch: impl Stream<Item = Result<pb::SweepEvent, tonic::Status>> + Send + 'static,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    stream::unfold(Some(Box::pin(watch)), |watch| async move {
        let mut watch = watch?;
        loop {
            match watch.next().await {
                Some(Ok(event)) => {
                    if let Some(event) = job_event(&event) {
                        return Some((Ok(event), Some(watch)));
                    }
                }
                Some(Err(_)) => return None,
                None => return Some((Ok(Event::default().event("end").data("over")), None)),
            }
        }
    })
}
