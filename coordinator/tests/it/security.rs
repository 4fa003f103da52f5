//! The tokens and their roles, the open health and reflection services, TLS, and the
//! in-process client the web page calls as its own callers.

use std::time::Duration;

use ltsweep_coordinator::Opened;
use ltsweep_domain::SweepId;
use ltsweep_proto::ErrorKind;
use ltsweep_proto::client::Which;
use ltsweep_proto::pb;
use ltsweep_proto::pb::sweep_service_client::SweepServiceClient;
use ltsweep_proto::pb::worker_service_client::WorkerServiceClient;
use ltsweep_proto::roles::Roles;
use ltsweep_proto::server::Caller;
use ltsweep_proto::server::{Access, TlsFiles};
use ltsweep_proto::token;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::*;

#[tokio::test]
async fn calls_without_the_token_are_unauthenticated_but_health_and_reflection_are_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let shared = token::Token::generate();
    config.access = Access::shared(&shared);
    let coordinator = TestCoordinator::start_with(config, Some(shared.as_str())).await;

    let wrong = token::Token::generate().as_str().to_owned();
    for token in [None, Some(wrong.clone())] {
        let mut sweeps = SweepServiceClient::with_interceptor(
            coordinator.channel().await,
            Token(token.clone(), Secret::default()),
        );
        let err = sweeps
            .list_sweeps(pb::ListSweepsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}");
        assert!(err.message().contains("Bearer"), "{}", err.message());
        let mut workers = WorkerServiceClient::with_interceptor(
            coordinator.channel().await,
            Token(token, Secret::default()),
        );
        let err = workers
            .register_worker(pb::RegisterWorkerRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    // Two tokens in one call, the right one among them: refused, not tried in turn.
    let right = format!("Bearer {}", shared.as_str());
    let mut both = SweepServiceClient::with_interceptor(
        coordinator.channel().await,
        move |mut request: tonic::Request<()>| {
            let metadata = request.metadata_mut();
            metadata.append("authorization", format!("Bearer {wrong}").parse().unwrap());
            metadata.append("authorization", right.parse().unwrap());
            Ok(request)
        },
    );
    let err = both
        .list_sweeps(pb::ListSweepsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // With the token, calls go through.
    let mut sweeps = coordinator.sweeps().await;
    submit(&mut sweeps, SPEC).await;

    let mut health = HealthClient::new(coordinator.channel().await);
    for service in ["", "ltsweep.v1.WorkerService", "ltsweep.v1.SweepService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }

    let mut reflection = ServerReflectionClient::new(coordinator.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"ltsweep.v1.WorkerService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"ltsweep.v1.SweepService".to_owned()),
        "{names:?}"
    );
    coordinator.stop().await;
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_certificate_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let mut config = config(&dir.path().join("state"));
    config.tls = Some(TlsFiles { cert, key });
    let coordinator = TestCoordinator::start(config).await;

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{}", coordinator.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let mut sweeps = SweepServiceClient::new(channel);
    let listed = sweeps
        .list_sweeps(pb::ListSweepsRequest::default())
        .await
        .unwrap();
    assert!(listed.into_inner().sweeps.is_empty());

    let plaintext = Endpoint::from_shared(format!("http://{}", coordinator.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let refused = match plaintext.connect().await {
        Err(_) => true,
        Ok(channel) => SweepServiceClient::new(channel)
            .list_sweeps(pb::ListSweepsRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a plaintext client was served");
    coordinator.stop().await;
}

#[tokio::test]
async fn a_missing_tls_file_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let cert = dir.path().join("missing-cert.pem");
    config.tls = Some(TlsFiles {
        cert: cert.clone(),
        key: dir.path().join("missing-key.pem"),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = ltsweep_coordinator::serve(config, listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&cert.display().to_string()),
        "{err}"
    );
}

/// The page's way in: the typed client over the service in this process answers as gRPC does,
/// and each call is made as the caller the page names, whose streams are counted.
#[tokio::test]
async fn the_in_process_client_answers_as_grpc_does_and_counts_each_callers_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.limits.max_streams_per_credential = 1;
    let opened = Opened::open(config).unwrap();
    let api = opened.sweep_client();
    let submitted = api.submit(SPEC).await.unwrap();
    let status = api.status(Which::Sweep(&submitted.sweep), false).await;
    assert_eq!(status.unwrap().counts.pending, 2);
    let unknown = api
        .status(Which::Sweep(&SweepId("no-such-sweep".into())), false)
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), Some(ErrorKind::NotFound), "{unknown}");

    let viewer = Caller {
        credential: "viewer token",
        roles: Roles::VIEWER,
    };
    let user = Caller {
        credential: "user token",
        roles: Roles::USER,
    };
    let _held = api.as_caller(viewer).watch(&submitted.sweep).await.unwrap();
    let refused = match api.as_caller(viewer).watch(&submitted.sweep).await {
        Ok(_) => panic!("a second stream of the viewer's past --max-streams-per-credential 1"),
        Err(err) => err,
    };
    assert_eq!(refused.kind(), Some(ErrorKind::Exhausted), "{refused}");
    assert!(refused.message().contains("viewer token"), "{refused}");
    // Another caller has streams of its own.
    let _other = api.as_caller(user).watch(&submitted.sweep).await.unwrap();
}
