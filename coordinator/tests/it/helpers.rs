//! A coordinator started for one test, its clients, and helpers to drive a worker.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ltsweep_coordinator::{CoordinatorConfig, CoordinatorError, serve};
use ltsweep_proto::pb;
use ltsweep_proto::pb::sweep_service_client::SweepServiceClient;
use ltsweep_proto::pb::worker_service_client::WorkerServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Two jobs: one loss plan, seeds 0 and 1.
pub const SPEC: &str = r#"
name = "it"
seeds = [0, 1]
max_attempts = 2
[dataset]
kind = "synthetic"
[losses]
plans = [{ comp = "none", pc = "none" }]
"#;

pub type WorkerClient = WorkerServiceClient<InterceptedService<Channel, Token>>;
pub type Sweeps = SweepServiceClient<InterceptedService<Channel, Token>>;

/// Adds `authorization: Bearer <token>` when there is a token, and on a worker's client the
/// secret of the last registration made through it (one client is one worker, as a worker
/// process is).
#[derive(Clone, Debug)]
pub struct Token(pub Option<String>, pub Secret);

/// The secret a worker's client carries, once [`register`] set it.
pub type Secret = Arc<Mutex<Option<String>>>;

impl Interceptor for Token {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}").parse().expect("a valid header");
            request.metadata_mut().insert("authorization", value);
        }
        if let Some(secret) = self.1.lock().unwrap().as_deref() {
            let value = secret.parse().expect("a hex secret");
            request
                .metadata_mut()
                .insert(ltsweep_proto::WORKER_SECRET_METADATA, value);
        }
        Ok(request)
    }
}

/// A worker's raw client, which carries the secret of the last registration made through it.
pub struct Workers {
    client: WorkerClient,
    secret: Secret,
}

impl Workers {
    /// The secret its calls carry, to carry on with after a restart.
    pub fn secret(&self) -> Option<String> {
        self.secret.lock().unwrap().clone()
    }

    /// Carries `secret` from now on (a registration's, or one made up).
    pub fn use_secret(&self, secret: Option<String>) {
        *self.secret.lock().unwrap() = secret;
    }
}

impl Deref for Workers {
    type Target = WorkerClient;
    fn deref(&self) -> &WorkerClient {
        &self.client
    }
}

impl DerefMut for Workers {
    fn deref_mut(&mut self) -> &mut WorkerClient {
        &mut self.client
    }
}

/// Short leases and polls, so that tests of expiry and empty polls finish quickly.
pub fn config(state_dir: &Path) -> CoordinatorConfig {
    let mut config = CoordinatorConfig::new(state_dir);
    config.lease_ttl = Duration::from_secs(5);
    config.heartbeat_interval = Duration::from_millis(500);
    config.poll_timeout = Duration::from_millis(300);
    config
}

/// A coordinator serving on a free loopback port until stopped.
pub struct TestCoordinator {
    pub addr: SocketAddr,
    token: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), CoordinatorError>>,
}

impl TestCoordinator {
    /// A coordinator with `config`'s access; its clients carry no token.
    pub async fn start(config: CoordinatorConfig) -> Self {
        Self::start_with(config, None).await
    }

    /// A coordinator whose clients carry `token` (one of `config.access`'s, or not).
    pub async fn start_with(config: CoordinatorConfig, token: Option<&str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = token.map(str::to_owned);
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(config, listener, async {
            let _ = stop.await;
        }));
        Self {
            addr,
            token,
            shutdown: Some(shutdown),
            server,
        }
    }

    /// A connection; the listener is bound already, so it is accepted once the server runs.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap()
    }

    pub async fn workers(&self) -> Workers {
        let secret = Secret::default();
        let token = Token(self.token.clone(), Arc::clone(&secret));
        Workers {
            client: WorkerServiceClient::with_interceptor(self.channel().await, token),
            secret,
        }
    }

    pub async fn sweeps(&self) -> Sweeps {
        let token = Token(self.token.clone(), Secret::default());
        SweepServiceClient::with_interceptor(self.channel().await, token)
    }

    /// The typed clients' connection, with this coordinator's token.
    pub fn connection(&self) -> ltsweep_proto::client::Connection {
        ltsweep_proto::client::Connection::new(
            &format!("http://{}", self.addr),
            self.token.as_deref(),
            None,
        )
        .unwrap()
    }

    /// Stops the server and checks that it stopped cleanly, promptly.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let served = tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("the server stops promptly at shutdown")
            .expect("the server task did not panic");
        served.expect("the server stopped without error");
    }
}

/// Waits until `condition` holds, checking every 20 ms; fails the test after 10 s.
pub async fn wait_until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Registers a worker through `workers`, whose calls carry its secret from now on.
pub async fn register(workers: &mut Workers) -> String {
    let answer = workers
        .register_worker(pb::RegisterWorkerRequest {
            host: "test-host".into(),
            devices: vec![pb::Device {
                name: "cpu".into(),
                slots: 2,
            }],
            protocol_version: ltsweep_proto::PROTOCOL_VERSION,
            version: "test".into(),
            slurm: None,
        })
        .await
        .unwrap()
        .into_inner();
    workers.use_secret(Some(answer.worker_secret));
    answer.worker_id
}

pub async fn submit(sweeps: &mut Sweeps, spec: &str) -> pb::SubmitSweepResponse {
    sweeps
        .submit_sweep(pb::SubmitSweepRequest {
            spec_toml: spec.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Polls until a job is leased (polls time out quickly in these tests).
pub async fn lease(workers: &mut Workers, worker: &str) -> pb::Lease {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = workers
            .poll_work(pb::PollWorkRequest {
                worker_id: worker.into(),
                device: "cpu".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(lease) = response.lease {
            return lease;
        }
        assert!(tokio::time::Instant::now() < give_up, "no job was leased");
    }
}

/// The result a worker sends for a leased job.
pub fn result_for(lease: &pb::Lease, accuracy: f64) -> pb::JobResult {
    let spec = lease.job.clone().expect("a lease carries its job");
    let spec = ltsweep_domain::JobSpec::try_from(spec).expect("a leased job's spec converts");
    ltsweep_domain::JobResult {
        accuracy: ltsweep_domain::GroupAccuracy {
            acc_all: Some(accuracy),
            ..Default::default()
        },
        train_seconds: 1.0,
        device: "cpu".into(),
        ..ltsweep_domain::JobResult::blank(&spec)
    }
    .into()
}

pub async fn complete(
    workers: &mut Workers,
    worker: &str,
    lease: &pb::Lease,
    accuracy: f64,
) -> Result<(), Status> {
    workers
        .complete_job(pb::CompleteJobRequest {
            worker_id: worker.into(),
            lease_id: lease.lease_id.clone(),
            result: Some(result_for(lease, accuracy)),
        })
        .await
        .map(drop)
}

pub async fn heartbeat(
    workers: &mut Workers,
    worker: &str,
    lease: &pb::Lease,
    epoch: Option<u32>,
) -> Result<pb::ReportProgressResponse, Status> {
    workers
        .report_progress(pb::ReportProgressRequest {
            worker_id: worker.into(),
            lease_id: lease.lease_id.clone(),
            epoch: epoch.map(|epoch| pb::EpochMetrics {
                epoch,
                ..Default::default()
            }),
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn status(sweeps: &mut Sweeps, sweep: &str) -> pb::SweepStatus {
    sweeps
        .get_sweep(pb::GetSweepRequest {
            with_specs: false,
            sweep_id: sweep.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

pub async fn results(sweeps: &mut Sweeps, sweep: &str) -> Vec<pb::JobResult> {
    let mut stream = sweeps
        .get_results(pb::GetResultsRequest {
            sweep_id: sweep.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut results = Vec::new();
    while let Some(result) = stream.message().await.unwrap() {
        results.push(result);
    }
    results
}
