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

/// A list call's request, which names the page it asks for.
pub trait PageRequest: Clone {
    fn set_page_token(&mut self, token: String);
}

/// A list call's answer: a page of items and the token of the next (empty on the last).
pub trait ListPage {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, String);
}

/// Asks for every page of a list (`ListSweeps`, `ListWorkers`) with `list`, from the first,
/// and joins them in the coordinator's order.
pub async fn all_items<R, P, F, Fut, E>(mut request: R, mut list: F) -> Result<Vec<P::Item>, E>
where
    R: PageRequest,
    P: ListPage,
    F: FnMut(R) -> Fut,
    Fut: Future<Output = Result<P, E>>,
{
    request.set_page_token(String::new());
    let mut items = Vec::new();
    loop {
        let (page, next) = list(request.clone()).await?.into_parts();
        items.extend(page);
        if next.is_empty() {
            return Ok(items);
        }
        request.set_page_token(next);
    }
}

impl PageRequest for pb::ListSweepsRequest {
    fn set_page_token(&mut self, token: String) {
        self.page_token = token;
    }
}

impl PageRequest for pb::ListWorkersRequest {
    fn set_page_token(&mut self, token: String) {
        self.page_token = token;
    }
}

impl ListPage for pb::ListSweepsResponse {
    type Item = pb::SweepSummary;
    fn into_parts(self) -> (Vec<pb::SweepSummary>, String) {
        (self.sweeps, self.next_page_token)
    }
}

impl ListPage for pb::ListWorkersResponse {
    type Item = pb::WorkerInfo;
    fn into_parts(self) -> (Vec<pb::WorkerInfo>, String) {
        (self.workers, self.next_page_token)
    }
}
