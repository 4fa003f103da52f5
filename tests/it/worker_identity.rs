//! Workers against each other, on a real coordinator process: a second worker with the same
//! worker token cannot find, use or end an honest worker's lease (each call on it is refused
//! exactly as a call on a lease never issued), and a flood of registrations leaves the worker
//! list and the page's worker table working.

use ltsweep_domain::SweepId;
use ltsweep_proto::chunks::{self, CheckpointHeader};
use ltsweep_proto::client::Connection;
use ltsweep_proto::pb;
use tonic::Code;

use crate::cluster_support::TOKEN;
use crate::harness::register;
use crate::web::Served;

/// One job whose model is kept (so that a model upload is the job's to make).
const KEPT_MODEL_SPEC: &str = "name = \"hijack\"\nseeds = [0]\nkeep_models = true\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]\n";

fn registration(host: String, devices: Vec<pb::Device>) -> pb::RegisterWorkerRequest {
    pb::RegisterWorkerRequest {
        host,
        devices,
        protocol_version: ltsweep_proto::PROTOCOL_VERSION,
        version: "identity-test".into(),
        slurm: None,
    }
}

fn cpu() -> Vec<pb::Device> {
    vec![pb::Device {
        name: "cpu".into(),
        slots: 1,
    }]
}

/// A refusal as a caller sees it, with the lease id it names written as `LEASE`: two
/// refusals that differ in nothing else are the same refusal.
fn refusal<T: std::fmt::Debug>(answer: Result<T, tonic::Status>, lease: &str) -> String {
    let status = answer.expect_err("refused");
    format!("{:?}: {}", status.code(), status.message()).replace(lease, "LEASE")
}

fn result_of(job: &pb::JobSpec, accuracy: f64) -> pb::JobResult {
    let spec: ltsweep_domain::JobSpec = job.clone().try_into().expect("the leased job's spec");
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

register!(a_second_worker_cannot_find_use_or_end_another_workers_lease);
fn a_second_worker_cannot_find_use_or_end_another_workers_lease() {
    let served = Served::start_with(|command| {
        command.env("LTSWEEP_TOKEN", TOKEN);
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connection = {
        let _guard = runtime.enter();
        Connection::new(&format!("http://{}", served.grpc), Some(TOKEN), None).unwrap()
    };
    runtime.block_on(async {
        let sweep = connection
            .sweep_api()
            .submit(KEPT_MODEL_SPEC)
            .await
            .unwrap()
            .sweep;
        let register = |host: &str| {
            let mut client = connection.worker();
            let request = registration(host.into(), cpu());
            async move { client.register_worker(request).await.unwrap().into_inner() }
        };
        let honest = register("honest").await;
        let intruder = register("intruder").await;
        let mut honest_calls = connection.worker_as(&honest.worker_secret).unwrap();
        let mut intruder_calls = connection.worker_as(&intruder.worker_secret).unwrap();
        let lease = honest_calls
            .poll_work(pb::PollWorkRequest {
                worker_id: honest.worker_id.clone(),
                device: "cpu".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .lease
            .expect("the job is leased to the honest worker");
        assert!(lease.keep_model);
        let job = lease.job.clone().unwrap();
        let live = lease.lease_id.clone();
        let tag = live.strip_prefix("l-").unwrap().split_once('-').unwrap().0;
        assert_eq!(tag.len(), 32, "128 random bits: {live}");
        let made_up = format!("l-{}-{}", "0".repeat(32), job.job_id);

        // The oracles: a checkpoint download and a heartbeat answer the intruder the same
        // on the honest worker's live lease as on one never issued, whatever worker id it
        // claims.
        let download = |lease: String| {
            let mut client = intruder_calls.clone();
            async move {
                client
                    .download_checkpoint(pb::DownloadCheckpointRequest { lease_id: lease })
                    .await
                    .map(drop)
            }
        };
        let on_live = refusal(download(live.clone()).await, &live);
        let on_made_up = refusal(download(made_up.clone()).await, &made_up);
        assert_eq!(on_live, on_made_up, "DownloadCheckpoint is an oracle");
        assert!(on_live.starts_with("FailedPrecondition"), "{on_live}");
        for claimed in [&intruder.worker_id, &honest.worker_id] {
            let heartbeat = |lease: &str| pb::ReportProgressRequest {
                worker_id: claimed.clone(),
                lease_id: lease.to_owned(),
                epoch: None,
            };
            let on_live = intruder_calls.report_progress(heartbeat(&live)).await;
            let on_made_up = intruder_calls.report_progress(heartbeat(&made_up)).await;
            assert_eq!(
                refusal(on_live, &live),
                refusal(on_made_up, &made_up),
                "a heartbeat is an oracle (claiming {claimed})"
            );
        }

        // The forgeries: a checkpoint, a completion at 0.999, a model, a failure for good.
        let bytes = vec![7u8; 1024];
        let upload = |lease: &str, epoch: u32| {
            let header = CheckpointHeader::of(lease, epoch, &bytes);
            tokio_stream::iter(chunks::chunks(&header, bytes.clone()).collect::<Vec<_>>())
        };
        let forged_checkpoint = intruder_calls.upload_checkpoint(upload(&live, 1)).await;
        assert_eq!(refusal(forged_checkpoint, &live), on_made_up);
        let forged_model = intruder_calls.upload_model(upload(&live, 1)).await;
        assert_eq!(refusal(forged_model, &live), on_made_up);
        for claimed in [&intruder.worker_id, &honest.worker_id] {
            let forged_completion = intruder_calls
                .complete_job(pb::CompleteJobRequest {
                    worker_id: claimed.clone(),
                    lease_id: live.clone(),
                    result: Some(result_of(&job, 0.999)),
                })
                .await;
            assert_eq!(refusal(forged_completion, &live), on_made_up);
            let forged_failure = intruder_calls
                .fail_job(pb::FailJobRequest {
                    worker_id: claimed.clone(),
                    lease_id: live.clone(),
                    reason: "forged".into(),
                    retryable: false,
                    epoch: 0,
                })
                .await;
            assert_eq!(refusal(forged_failure, &live), on_made_up);
        }

        // The honest worker still holds its lease: it finds no checkpoint (the forged one was
        // never kept), uploads its model and completes, and its result is the one kept.
        let none = honest_calls
            .download_checkpoint(pb::DownloadCheckpointRequest {
                lease_id: live.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(none.code(), Code::NotFound, "{none:?}");
        honest_calls
            .report_progress(pb::ReportProgressRequest {
                worker_id: honest.worker_id.clone(),
                lease_id: live.clone(),
                epoch: None,
            })
            .await
            .unwrap();
        let model = vec![3u8; 2048];
        let header = CheckpointHeader::of(&live, 1, &model);
        let chunks: Vec<_> = chunks::chunks(&header, model.clone()).collect();
        honest_calls
            .upload_model(tokio_stream::iter(chunks))
            .await
            .unwrap();
        honest_calls
            .complete_job(pb::CompleteJobRequest {
                worker_id: honest.worker_id.clone(),
                lease_id: live.clone(),
                result: Some(result_of(&job, 0.5)),
            })
            .await
            .unwrap();
        let sweep = SweepId(sweep.0.clone());
        let results = connection.sweep_api().results(&sweep).await.unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(
            results[0].worker_id.as_deref(),
            Some(honest.worker_id.as_str())
        );
        assert_eq!(results[0].accuracy.acc_all, Some(0.5));
        let kept = connection
            .sweep_api()
            .model(&sweep, &ltsweep_domain::JobId(job.job_id.clone()))
            .await
            .unwrap();
        assert_eq!(kept, model, "the kept model is the honest worker's");
    });
}

register!(twelve_hundred_registrations_leave_the_worker_list_and_the_page_working);
fn twelve_hundred_registrations_leave_the_worker_list_and_the_page_working() {
    const WORKERS: usize = 1_200;
    let served = Served::start_with(|command| {
        command.env("LTSWEEP_TOKEN", TOKEN);
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connection = {
        let _guard = runtime.enter();
        Connection::new(&format!("http://{}", served.grpc), Some(TOKEN), None).unwrap()
    };
    // The largest registration the coordinator takes: 64 devices whose names fill 4 KiB.
    let devices = |host: usize| -> Vec<pb::Device> {
        (0..64)
            .map(|i| pb::Device {
                name: format!("cuda:{i}-{host}-")
                    .chars()
                    .chain(std::iter::repeat('x'))
                    .take(64)
                    .collect(),
                slots: 1,
            })
            .collect()
    };
    runtime.block_on(async {
        let mut client = connection.worker();
        // What main kept whole (256 devices of 256 bytes, 68 KB a registration) is refused,
        // naming the limit.
        let huge: Vec<pb::Device> = (0..256)
            .map(|i| pb::Device {
                name: format!("{i:0>256}"),
                slots: 1,
            })
            .collect();
        let refused = client
            .register_worker(registration("h".repeat(256), huge))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("devices"),
            "{}",
            refused.message()
        );

        for batch in 0..WORKERS / 100 {
            let mut calls = tokio::task::JoinSet::new();
            for i in 0..100 {
                let host = batch * 100 + i;
                let mut client = client.clone();
                let request = registration(format!("{host:0>256}"), devices(host));
                calls.spawn(async move { client.register_worker(request).await.map(drop) });
            }
            while let Some(answer) = calls.join_next().await {
                answer.unwrap().unwrap();
            }
        }

        // One page is bounded: it ends early with a token to go on from.
        let first = client_list(&connection, pb::ListWorkersRequest::default()).await;
        assert!(
            !first.next_page_token.is_empty(),
            "one page held every worker"
        );
        assert!(first.workers.len() < WORKERS);
        // The typed client (and `ltsweep workers`) follows the pages.
        let all = connection.sweep_api().workers().await.unwrap();
        assert_eq!(all.len(), WORKERS);
        let mut ids: Vec<_> = all.iter().map(|w| w.id.0.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), WORKERS, "each worker listed once");
    });

    // The page's worker list answers, with every worker.
    let answer = served.get(
        "/api/workers",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(
        answer.status,
        200,
        "{}",
        answer.body.chars().take(300).collect::<String>()
    );
    assert_eq!(answer.body.matches("<tr class=").count(), WORKERS);

    // And `ltsweep workers` lists them all.
    let output = served.cli_as(TOKEN, &["workers"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn client_list(
    connection: &Connection,
    request: pb::ListWorkersRequest,
) -> pb::ListWorkersResponse {
    connection
        .sweeps()
        .list_workers(request)
        .await
        .unwrap()
        .into_inner()
}
