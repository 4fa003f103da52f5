//! `GetSweep`, `ListSweeps` and `ListWorkers` in pages, so that no answer nears the gRPC
//! message limit whatever the sweep's size (a 100,000-job sweep with specs is tens of
//! megabytes in one message), the number of sweeps or the number of workers.
//!
//! A sweep's page token is the index of the page's first job in the sweep's grid order. A
//! sweep's jobs never change after submission (deletion removes the whole sweep), so an index
//! stays valid between pages; job states may move on between two pages, as between two calls.
//! A worker list's page token is the registration ordinal the page starts at: workers come
//! and go between pages, and each is listed at most once, in registration order.

use ltsweep_proto::pb;
use prost::Message;

use crate::error::CoordinatorError;
use crate::scheduler::{Scheduler, Sweep};
use crate::wire;

/// Jobs per page when the request leaves `page_size` at 0.
pub(crate) const DEFAULT_PAGE_JOBS: u32 = 1_000;
/// The most jobs a page holds, whatever the request asks.
pub(crate) const MAX_PAGE_JOBS: u32 = 10_000;
/// A page stops growing once its jobs pass this many encoded bytes: a quarter of tonic's
/// default 4 MiB decoding limit, so even a client with default settings reads every page.
pub(crate) const PAGE_BYTES: usize = 1 << 20;

/// Where a page starts and how many jobs it holds at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    first: usize,
    jobs: usize,
}

impl Page {
    /// Reads a request's `page_size` and `page_token`.
    pub(crate) fn of(request: &pb::GetSweepRequest) -> Result<Self, CoordinatorError> {
        let first = if request.page_token.is_empty() {
            0
        } else {
            request.page_token.parse::<usize>().map_err(|_| {
                CoordinatorError::invalid(
                    "page_token",
                    "not a token this coordinator gave: pass the last answer's next_page_token, or none for the first page",
                )
            })?
        };
        let jobs = match request.page_size {
            0 => DEFAULT_PAGE_JOBS,
            n => n.min(MAX_PAGE_JOBS),
        };
        Ok(Self {
            first,
            jobs: jobs as usize,
        })
    }
}

/// One page of a sweep's status: its header fields and the page's jobs, at least one (so a
/// reader always gets on) and no more than the page size or [`PAGE_BYTES`] allow.
pub(crate) fn sweep_page(
    scheduler: &Scheduler,
    sweep: &Sweep,
    with_specs: bool,
    page: Page,
) -> Result<pb::SweepStatus, CoordinatorError> {
    let total = sweep.jobs.len();
    if page.first > total {
        return Err(CoordinatorError::invalid(
            "page_token",
            format!("points past the sweep's {total} jobs: pass the last answer's next_page_token"),
        ));
    }
    let mut jobs = Vec::new();
    let mut bytes = 0;
    let mut next = page.first;
    for job in scheduler.jobs_of(sweep).skip(page.first) {
        if jobs.len() == page.jobs || (!jobs.is_empty() && bytes >= PAGE_BYTES) {
            break;
        }
        let status = wire::job_status(job, sweep.record.search.as_ref(), with_specs);
        bytes += status.encoded_len();
        jobs.push(status);
        next += 1;
    }
    Ok(pb::SweepStatus {
        sweep_id: sweep.record.id.0.clone(),
        name: sweep.record.name.clone(),
        counts: Some(sweep.counts.into()),
        jobs,
        cancelled: sweep.record.cancelled,
        submitted_unix_ms: sweep.record.submitted_ms,
        next_page_token: if next < total {
            next.to_string()
        } else {
            String::new()
        },
    })
}

/// Workers per page when the request leaves `page_size` at 0.
pub(crate) const DEFAULT_PAGE_WORKERS: u32 = 500;

/// One page of the worker list: the workers registered at or after the token's ordinal, at
/// least one (so a reader always gets on) and no more than the page size or [`PAGE_BYTES`]
/// allow.
pub(crate) fn workers_page(
    scheduler: &Scheduler,
    request: &pb::ListWorkersRequest,
    now_ms: u64,
) -> Result<pb::ListWorkersResponse, CoordinatorError> {
    let first = if request.page_token.is_empty() {
        0
    } else {
        request.page_token.parse::<u64>().map_err(|_| {
            CoordinatorError::invalid(
                "page_token",
                "not a token this coordinator gave: pass the last answer's next_page_token, or none for the first page",
            )
        })?
    };
    let size = match request.page_size {
        0 => DEFAULT_PAGE_WORKERS,
        n => n.min(MAX_PAGE_JOBS),
    } as usize;
    let mut workers = Vec::new();
    let mut bytes = 0;
    let mut next = None;
    for worker in scheduler
        .workers()
        .into_iter()
        .filter(|w| w.record.ordinal >= first)
    {
        if workers.len() == size || (!workers.is_empty() && bytes >= PAGE_BYTES) {
            next = Some(worker.record.ordinal);
            break;
        }
        let info = wire::worker_info(scheduler, worker, now_ms);
        bytes += info.encoded_len();
        workers.push(info);
    }
    Ok(pb::ListWorkersResponse {
        workers,
        next_page_token: next.map(|ordinal| ordinal.to_string()).unwrap_or_default(),
    })
}

/// Sweeps a `ListSweeps` page holds when the request leaves `page_size` at 0.
pub(crate) const DEFAULT_PAGE_SWEEPS: u32 = 1_000;
/// The most sweeps a page holds, whatever the request asks.
pub(crate) const MAX_PAGE_SWEEPS: u32 = 10_000;

/// One page of the sweep list, in submission order. Its token is the id of the page's last
/// sweep (not an index: a sweep deleted between two pages would shift an index), so the next
/// page starts after that sweep; a token naming a sweep deleted since is refused.
pub(crate) fn sweeps_page(
    scheduler: &Scheduler,
    request: &pb::ListSweepsRequest,
) -> Result<pb::ListSweepsResponse, CoordinatorError> {
    let size = match request.page_size {
        0 => DEFAULT_PAGE_SWEEPS,
        n => n.min(MAX_PAGE_SWEEPS),
    } as usize;
    let mut all = scheduler.sweeps().peekable();
    if !request.page_token.is_empty() {
        crate::limits::check_length(&request.page_token, "page_token")?;
        if !scheduler
            .sweeps()
            .any(|sweep| sweep.record.id.0 == request.page_token)
        {
            return Err(CoordinatorError::invalid(
                "page_token",
                "names no sweep held now (it was deleted, or the token is not one this coordinator gave): list from the first page",
            ));
        }
        for sweep in all.by_ref() {
            if sweep.record.id.0 == request.page_token {
                break;
            }
        }
    }
    let mut sweeps = Vec::new();
    let mut bytes = 0;
    while let Some(sweep) = all.next_if(|_| sweeps.len() < size && bytes < PAGE_BYTES) {
        let summary = wire::sweep_summary(sweep);
        bytes += summary.encoded_len();
        sweeps.push(summary);
    }
    let next_page_token = match (all.peek(), sweeps.last()) {
        (Some(_), Some(last)) => last.sweep_id.clone(),
        _ => String::new(),
    };
    Ok(pb::ListSweepsResponse {
        sweeps,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(page_size: u32, page_token: &str) -> pb::GetSweepRequest {
        pb::GetSweepRequest {
            sweep_id: "s".into(),
            with_specs: false,
            page_size,
            page_token: page_token.into(),
        }
    }

    #[test]
    fn page_sizes_are_bounded_and_tokens_checked() {
        assert_eq!(
            Page::of(&request(0, "")).unwrap(),
            Page {
                first: 0,
                jobs: DEFAULT_PAGE_JOBS as usize
            }
        );
        assert_eq!(
            Page::of(&request(u32::MAX, "20")).unwrap(),
            Page {
                first: 20,
                jobs: MAX_PAGE_JOBS as usize
            }
        );
        let err = Page::of(&request(5, "x1")).unwrap_err();
        assert!(err.to_string().contains("page_token"), "{err}");
    }
}
