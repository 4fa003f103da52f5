//! The calls a user makes (the CLI, the web page, the benchmark, a notebook), in domain types.
//! Large reads are paged underneath: [`SweepApi::status`] answers the whole sweep however many
//! jobs it has.

use std::convert::Infallible;

use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::paging;
use crate::pb;
use crate::pb::sweep_service_client::SweepServiceClient;
use crate::remote::RemoteError;
use crate::server::Caller;
use ltsweep_domain::status::{SweepEvent, SweepStatus, SweepSummary};
use ltsweep_domain::{JobId, JobResult, SweepId, WorkerInfo};

use super::{MAX_MESSAGE_BYTES, Transport};

/// The coordinator's answer to a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub sweep: SweepId,
    pub jobs: u32,
    /// False when this exact sweep was already submitted.
    pub created: bool,
}

/// Which sweep a call is about.
#[derive(Clone, Copy, Debug)]
pub enum Which<'a> {
    /// The most recently submitted sweep.
    Latest,
    Sweep(&'a SweepId),
}

/// A user's typed client; cheap to clone (one channel, or one service, underneath).
#[derive(Clone)]
pub struct SweepApi {
    transport: Transport,
    client: SweepServiceClient<Transport>,
    /// Jobs per `GetSweep` page; 0 for the coordinator's default.
    page_size: u32,
}

impl std::fmt::Debug for SweepApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweepApi")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl SweepApi {
    pub(super) fn over(transport: Transport) -> Self {
        let client = SweepServiceClient::new(transport.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Self {
            transport,
            client,
            page_size: 0,
        }
    }

    /// The client of a coordinator's `SweepService` in this process: a tonic server of the
    /// protocol, which never fails as a service (its refusals are statuses in its answers).
    /// The service checks no role: the caller checks its own callers' and names each with
    /// [`SweepApi::as_caller`].
    pub fn in_process<S>(service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self::over(BoxCloneSyncService::new(service.map_err(
            |never: Infallible| -> tonic::transport::Error { match never {} },
        )))
    }

    /// This client with every call made as `caller`, in-process: the coordinator counts the
    /// caller's streams by it (`--max-streams-per-credential`). Over a channel the token
    /// decides who calls, and this changes nothing.
    pub fn as_caller(&self, caller: Caller) -> Self {
        let transport = self.transport.clone().map_request(
            move |mut request: http::Request<tonic::body::Body>| {
                request.extensions_mut().insert(caller);
                request
            },
        );
        Self {
            page_size: self.page_size,
            ..Self::over(BoxCloneSyncService::new(transport))
        }
    }

    /// Reads in pages of at most `items`: jobs of a status, sweeps of the list (the
    /// coordinator may cut a page shorter).
    pub fn with_page_size(mut self, items: u32) -> Self {
        self.page_size = items;
        self
    }

    /// Submits a sweep spec (TOML text); the same spec again is the same sweep.
    pub async fn submit(&self, spec_toml: &str) -> Result<Submitted, RemoteError> {
        let response = self
            .client
            .clone()
            .submit_sweep(pb::SubmitSweepRequest {
                spec_toml: spec_toml.to_owned(),
            })
            .await?
            .into_inner();
        Ok(Submitted {
            sweep: SweepId(response.sweep_id),
            jobs: response.jobs,
            created: response.created,
        })
    }

    /// A sweep and all its jobs, read page by page; `with_specs` adds each job's full spec.
    pub async fn status(
        &self,
        sweep: Which<'_>,
        with_specs: bool,
    ) -> Result<SweepStatus, RemoteError> {
        let request = pb::GetSweepRequest {
            sweep_id: match sweep {
                Which::Latest => String::new(),
                Which::Sweep(id) => id.0.clone(),
            },
            with_specs,
            page_size: self.page_size,
            page_token: String::new(),
        };
        let whole = paging::all_pages(request, |request| {
            let mut client = self.client.clone();
            async move { Ok::<_, RemoteError>(client.get_sweep(request).await?.into_inner()) }
        })
        .await?;
        Ok(SweepStatus::try_from(whole)?)
    }

    /// Every sweep, in submission order, read page by page.
    pub async fn sweeps(&self) -> Result<Vec<SweepSummary>, RemoteError> {
        let request = pb::ListSweepsRequest {
            page_size: self.page_size,
            page_token: String::new(),
        };
        let sweeps = paging::all_items(request, |request| {
            let mut client = self.client.clone();
            async move { Ok::<_, RemoteError>(client.list_sweeps(request).await?.into_inner()) }
        })
        .await?;
        Ok(sweeps.into_iter().map(Into::into).collect())
    }

    /// Every job's status, then each change, until the sweep ends.
    pub async fn watch(&self, sweep: &SweepId) -> Result<Watch, RemoteError> {
        let stream = self
            .client
            .clone()
            .watch_sweep(pb::WatchSweepRequest {
                sweep_id: sweep.0.clone(),
            })
            .await?
            .into_inner();
        Ok(Watch { stream })
    }

    /// Cancels the sweep's pending and running jobs; answers how many.
    pub async fn cancel(&self, sweep: &SweepId) -> Result<u32, RemoteError> {
        let response = self
            .client
            .clone()
            .cancel_sweep(pb::CancelSweepRequest {
                sweep_id: sweep.0.clone(),
            })
            .await?;
        Ok(response.into_inner().cancelled)
    }

    /// Returns the sweep's failed and cancelled jobs to the queue; answers how many.
    pub async fn retry_failed(&self, sweep: &SweepId) -> Result<u32, RemoteError> {
        let response = self
            .client
            .clone()
            .retry_failed(pb::RetryFailedRequest {
                sweep_id: sweep.0.clone(),
            })
            .await?;
        Ok(response.into_inner().requeued)
    }

    /// Removes an ended sweep with its jobs, results and checkpoints; answers how many jobs.
    pub async fn delete(&self, sweep: &SweepId) -> Result<u32, RemoteError> {
        let response = self
            .client
            .clone()
            .delete_sweep(pb::DeleteSweepRequest {
                sweep_id: sweep.0.clone(),
            })
            .await?;
        Ok(response.into_inner().jobs)
    }

    /// Every registered worker, read page by page.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, RemoteError> {
        let request = pb::ListWorkersRequest {
            page_size: self.page_size,
            page_token: String::new(),
        };
        let workers = paging::all_items(request, |request| {
            let mut client = self.client.clone();
            async move { Ok::<_, RemoteError>(client.list_workers(request).await?.into_inner()) }
        })
        .await?;
        Ok(workers.into_iter().map(WorkerInfo::from).collect())
    }

    /// A job's kept model (safetensors bytes), checked against its header's size and SHA-256.
    pub async fn model(&self, sweep: &SweepId, job: &JobId) -> Result<Vec<u8>, RemoteError> {
        let stream = self
            .client
            .clone()
            .get_model(pb::GetModelRequest {
                sweep_id: sweep.0.clone(),
                job_id: job.0.clone(),
            })
            .await?
            .into_inner();
        Ok(crate::chunks::receive(stream).await?.1)
    }

    /// The results of the sweep's succeeded jobs (a stream: one message a job).
    pub async fn results(&self, sweep: &SweepId) -> Result<Vec<JobResult>, RemoteError> {
        let mut stream = self
            .client
            .clone()
            .get_results(pb::GetResultsRequest {
                sweep_id: sweep.0.clone(),
            })
            .await?
            .into_inner();
        let mut results = Vec::new();
        while let Some(result) = stream.message().await? {
            results.push(JobResult::try_from(result)?);
        }
        Ok(results)
    }
}

/// A sweep being watched.
pub struct Watch {
    stream: tonic::Streaming<pb::SweepEvent>,
}

impl Watch {
    /// The next event; `None` once the sweep has ended.
    pub async fn next(&mut self) -> Result<Option<SweepEvent>, RemoteError> {
        match self.stream.message().await? {
            Some(event) => Ok(Some(SweepEvent::try_from(event)?)),
            None => Ok(None),
        }
    }
}
