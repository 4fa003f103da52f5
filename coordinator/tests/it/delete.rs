//! `DeleteSweep`: only a sweep whose jobs ended goes, with its jobs and results, for good.

use ltsweep_coordinator::Limits;
use ltsweep_proto::pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_finished_sweep_is_deleted_for_good_and_frees_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Room for one sweep of SPEC's two jobs at a time.
    config.limits = Limits {
        max_jobs: 2,
        ..Limits::default()
    };
    let coordinator = TestCoordinator::start(config.clone()).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    let worker = register(&mut workers).await;
    let running = lease(&mut workers, &worker).await;

    let delete = |sweep: &str| pb::DeleteSweepRequest {
        sweep_id: sweep.to_owned(),
    };
    let refused = sweeps.delete_sweep(delete(&sweep)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("1 pending and 1 running jobs"),
        "{}",
        refused.message()
    );
    complete(&mut workers, &worker, &running, 0.5)
        .await
        .unwrap();
    let other = lease(&mut workers, &worker).await;
    complete(&mut workers, &worker, &other, 0.6).await.unwrap();
    assert_eq!(results(&mut sweeps, &sweep).await.len(), 2);

    let deleted = sweeps
        .delete_sweep(delete(&sweep))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.jobs, 2);
    let gone = sweeps
        .get_sweep(pb::GetSweepRequest {
            sweep_id: sweep.clone(),
            with_specs: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    // The old lease is stale now, not a crash.
    let late = complete(&mut workers, &worker, &running, 0.5)
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
    coordinator.stop().await;

    // Still gone after a restart, and its jobs no longer count against --max-jobs.
    let coordinator = TestCoordinator::start(config).await;
    let mut sweeps = coordinator.sweeps().await;
    let listed = sweeps
        .list_sweeps(pb::ListSweepsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sweeps;
    assert!(listed.is_empty(), "{listed:?}");
    let again = submit(&mut sweeps, SPEC).await;
    assert!(again.created);
    assert_eq!(
        status(&mut sweeps, &again.sweep_id)
            .await
            .counts
            .unwrap()
            .pending,
        2
    );
    coordinator.stop().await;
}

#[tokio::test]
async fn a_cancelled_sweep_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    sweeps
        .cancel_sweep(pb::CancelSweepRequest {
            sweep_id: sweep.clone(),
        })
        .await
        .unwrap();
    let deleted = sweeps
        .delete_sweep(pb::DeleteSweepRequest { sweep_id: sweep })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.jobs, 2);
    coordinator.stop().await;
}
