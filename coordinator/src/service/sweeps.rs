//! `SweepService`: the calls users make (submit, read, watch, cancel, retry, delete, a kept
//! model).

use std::sync::Arc;

use futures::StreamExt;
use ltsweep_domain::SweepId;
use ltsweep_proto::pb;
use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status};
use tracing::info;

use super::{BoxStream, Coordinator, RpcResult, delete, models, paging, required, watchers};
use crate::error::CoordinatorError;
use crate::limits;
use crate::scheduler::Submission;

/// Bytes of results read from the store ahead of a `GetResults` client: a count of results
/// would let a stream that never reads hold that many of the largest results the coordinator
/// accepts (`--max-result-bytes` each). A result larger than this is read alone.
const RESULTS_BYTES_AHEAD: usize = 4 << 20;

/// The server's handlers of the calls users make: behind the gate over gRPC, and in-process
/// under the web page's typed client ([`crate::Opened::sweep_client`]), so every reader sees
/// the same answers.
#[derive(Clone, Debug)]
pub(crate) struct SweepHandlers(pub(crate) Arc<Coordinator>);

#[tonic::async_trait]
impl pb::sweep_service_server::SweepService for SweepHandlers {
    async fn submit_sweep(
        &self,
        request: Request<pb::SubmitSweepRequest>,
    ) -> RpcResult<pb::SubmitSweepResponse> {
        let spec_toml = required(request.into_inner().spec_toml, "spec_toml")?;
        let limits = self.0.limits;
        limits.check_spec_text(&spec_toml)?;
        // The grid's size from the spec alone, before it is expanded into memory.
        let spec = ltsweep_domain::SweepSpec::parse(&spec_toml).map_err(CoordinatorError::from)?;
        limits.check_jobs_per_sweep(spec.job_count())?;
        // Parsing and expanding the grid is the slow part: done before taking the lock.
        let submission = Submission::parse(&spec_toml).map_err(CoordinatorError::from)?;
        let now = self.0.now_ms();
        let answer = self
            .0
            .transact(|s| {
                if s.sweep(submission.sweep()).is_none() {
                    limits.check_total_jobs(s, submission.jobs().len())?;
                }
                Ok(s.submit_prepared(now, submission)?)
            })
            .await?;
        if answer.created {
            info!(sweep = %answer.sweep, jobs = answer.jobs, "sweep submitted");
        }
        Ok(Response::new(pb::SubmitSweepResponse {
            sweep_id: answer.sweep.0,
            jobs: answer.jobs,
            created: answer.created,
        }))
    }

    async fn get_sweep(&self, request: Request<pb::GetSweepRequest>) -> RpcResult<pb::SweepStatus> {
        Ok(Response::new(self.0.sweep_status(request.get_ref())?))
    }

    async fn list_sweeps(
        &self,
        request: Request<pb::ListSweepsRequest>,
    ) -> RpcResult<pb::ListSweepsResponse> {
        let request = request.into_inner();
        let page = self.0.read(|s| paging::sweeps_page(s, &request))?;
        Ok(Response::new(page))
    }

    type WatchSweepStream = BoxStream<pb::SweepEvent>;

    async fn watch_sweep(
        &self,
        request: Request<pb::WatchSweepRequest>,
    ) -> RpcResult<Self::WatchSweepStream> {
        let permit = self.0.stream_permit(&request)?;
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        let events = watchers::watch_sweep(Arc::clone(&self.0), sweep, permit)?;
        Ok(Response::new(Box::pin(events)))
    }

    async fn cancel_sweep(
        &self,
        request: Request<pb::CancelSweepRequest>,
    ) -> RpcResult<pb::CancelSweepResponse> {
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        let cancelled = self.0.transact(|s| Ok(s.cancel(&sweep)?)).await?;
        info!(sweep = %sweep, cancelled, "sweep cancelled");
        Ok(Response::new(pb::CancelSweepResponse { cancelled }))
    }

    async fn retry_failed(
        &self,
        request: Request<pb::RetryFailedRequest>,
    ) -> RpcResult<pb::RetryFailedResponse> {
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        let requeued = self.0.transact(|s| Ok(s.retry_failed(&sweep)?)).await?;
        info!(sweep = %sweep, requeued, "failed jobs requeued");
        Ok(Response::new(pb::RetryFailedResponse { requeued }))
    }

    async fn list_workers(
        &self,
        request: Request<pb::ListWorkersRequest>,
    ) -> RpcResult<pb::ListWorkersResponse> {
        let request = request.into_inner();
        let now = self.0.now_ms();
        let page = self.0.read(|s| paging::workers_page(s, &request, now))?;
        Ok(Response::new(page))
    }

    async fn delete_sweep(
        &self,
        request: Request<pb::DeleteSweepRequest>,
    ) -> RpcResult<pb::DeleteSweepResponse> {
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        let jobs = delete::delete_sweep(&self.0, &sweep).await?;
        info!(sweep = %sweep, jobs, "sweep deleted");
        Ok(Response::new(pb::DeleteSweepResponse { jobs }))
    }

    type GetModelStream = BoxStream<pb::CheckpointChunk>;

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> RpcResult<Self::GetModelStream> {
        models::get(&self.0, request).await
    }

    type GetResultsStream = BoxStream<pb::JobResult>;

    async fn get_results(
        &self,
        request: Request<pb::GetResultsRequest>,
    ) -> RpcResult<Self::GetResultsStream> {
        // Held by the reading thread: a client that stops reading holds one slot, not more.
        let permit = self.0.stream_permit(&request)?;
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        // The succeeded jobs as of now; their results are read from the store on a blocking
        // thread, a few megabytes ahead of the client, so a large sweep's report never sits in memory.
        // Read in a turn and synced: every job listed has its result committed.
        let turn = self.0.turn().await?;
        let jobs = self.0.read(|s| Ok(s.succeeded(&sweep)?))?;
        self.0.store.sync(turn).await?;
        let reader = self.0.results.clone();
        // Each result read holds its encoded size of this budget until the stream hands it
        // to the transport; the channel's count is bounded by the budget too.
        let ahead = Arc::new(Semaphore::new(RESULTS_BYTES_AHEAD));
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let read = reader.read(&jobs, |result| {
                let bytes = result.encoded_len().clamp(1, RESULTS_BYTES_AHEAD) as u32;
                let Ok(held) =
                    futures::executor::block_on(Arc::clone(&ahead).acquire_many_owned(bytes))
                else {
                    return false;
                };
                sender.send(Ok((result, held))).is_ok()
            });
            if let Err(e) = read {
                let _ = sender.send(Err(Status::from(e)));
            }
        });
        let results =
            UnboundedReceiverStream::new(receiver).map(|read| read.map(|(result, _held)| result));
        Ok(Response::new(Box::pin(results)))
    }
}
