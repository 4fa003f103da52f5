//! Reading a paged `GetSweep`, `ListSweeps` or `ListWorkers` whole: the pages one after
//! another, joined.
//! Shared by the gRPC client and by callers of the service in the same process (the web page).

use std::future::Future;

use crate::pb;

/// Asks for every page of a sweep's status with `get` and joins them. The sweep is pinned by
/// the first answer's id (the first request may leave it empty for the latest sweep); counts
/// and `cancelled` are the last page's, the latest the coordinator sent.
pub async fn all_pages<F, Fut, E>(
    mut request: pb::GetSweepRequest,
    mut get: F,
) -> Result<pb::SweepStatus, E>
where
    F: FnMut(pb::GetSweepRequest) -> Fut,
    Fut: Future<Output = Result<pb::SweepStatus, E>>,
{
    request.page_token.clear();
    let mut whole = get(request.clone()).await?;
    request.sweep_id.clone_from(&whole.sweep_id);
    while !whole.next_page_token.is_empty() {
        request.page_token = std::mem::take(&mut whole.next_page_token);
        let page = get(request.clone()).await?;
        whole.jobs.extend(page.jobs);
        whole.counts = page.counts;
        whole.cancelled = page.cancelled;
        whole.next_page_token = page.next_page_token;
    }
    Ok(whole)
}

/// Asks for every page of the worker list with `list` and joins them, in registration order.
pub async fn all_worker_pages<F, Fut, E>(mut list: F) -> Result<Vec<pb::WorkerInfo>, E>
where
    F: FnMut(pb::ListWorkersRequest) -> Fut,
    Fut: Future<Output = Result<pb::ListWorkersResponse, E>>,
{
    let mut request = pb::ListWorkersRequest::default();
    let mut workers = Vec::new();
    loop {
        let page = list(request.clone()).await?;
        workers.extend(page.workers);
        if page.next_page_token.is_empty() {
            return Ok(workers);
        }
        request.page_token = page.next_page_token;
    }
}

/// Asks for every page of the sweep list with `list` and joins them, in submission order.
pub async fn all_sweeps<F, Fut, E>(
    mut request: pb::ListSweepsRequest,
    mut list: F,
) -> Result<Vec<pb::SweepSummary>, E>
where
    F: FnMut(pb::ListSweepsRequest) -> Fut,
    Fut: Future<Output = Result<pb::ListSweepsResponse, E>>,
{
    request.page_token.clear();
    let mut sweeps = Vec::new();
    loop {
        let page = list(request.clone()).await?;
        sweeps.extend(page.sweeps);
        if page.next_page_token.is_empty() {
            return Ok(sweeps);
        }
        request.page_token = page.next_page_token;
    }
}
