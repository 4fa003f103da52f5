//! Asynchronous successive halving in the scheduler: pauses at rungs, promotions on the mean
//! over seeds, resumption from the rung's checkpoint, and the end of a search; Hyperband's
//! brackets, each judged apart.

use ltsweep_domain::{GroupAccuracy, JobId, JobState};
use ltsweep_proto::PROTOCOL_VERSION;
use proptest::prelude::*;

use super::tests::{TIMING, metrics, result_for, run, test_key, test_secret};
use super::*;
use crate::config::Durability;
use crate::store::Store;

/// Three configurations (plans) x two seeds; rungs at epochs 3, 9 and 27 of 30.
pub(crate) const ASHA: &str = r#"
name = "asha"
seeds = [0, 1]
[dataset]
kind = "synthetic"
val_per_class = 10
[train]
epochs = 30
lr_schedule = "cosine"
warmup_epochs = 2
[losses]
plans = [{}, { comp = "tail" }, { pc = "head" }]
[search]
method = "asha"
min_epochs = 3
"#;

/// Nine configurations (plans x PC weights) x two seeds, on `ASHA`'s schedule: enough for a
/// rung to promote while other configurations still queue.
const ASHA9: &str = r#"
name = "asha9"
seeds = [0, 1]
[dataset]
kind = "synthetic"
val_per_class = 10
[train]
epochs = 30
lr_schedule = "cosine"
warmup_epochs = 2
[losses]
plans = [{}, { comp = "tail" }, { pc = "head" }]
pc_weight = [0.1, 1.0, 10.0]
[search]
method = "asha"
min_epochs = 3
"#;

fn setup() -> (Scheduler, SweepId, WorkerId) {
    setup_with(ASHA)
}

/// A scheduler with `spec` submitted and one worker registered.
fn setup_with(spec: &str) -> (Scheduler, SweepId, WorkerId) {
    let mut s = Scheduler::new(TIMING, test_key());
    let sweep = run(&mut s, |s| s.submit(0, spec)).unwrap().sweep;
    let worker = run(&mut s, |s| {
        s.register_worker(0, "host", vec![], PROTOCOL_VERSION, "t", &test_secret(s))
    })
    .unwrap()
    .worker;
    (s, sweep, worker)
}

/// The metrics of a rung epoch: the validation accuracy the search reads.
fn at_rung(epoch: u32, val_all: f64) -> ltsweep_domain::EpochMetrics {
    ltsweep_domain::EpochMetrics {
        val_accuracy: Some(GroupAccuracy {
            acc_all: Some(val_all),
            ..GroupAccuracy::default()
        }),
        ..metrics(epoch, Some(0.5))
    }
}

/// Leases the next job and trains it as a worker does to the lease's rung (its checkpoint
/// there, then the lease given back); answers the lease.
fn train_to_rung(s: &mut Scheduler, worker: &WorkerId, val_all: f64) -> Lease {
    let lease = run(s, |s| s.poll(1, worker))
        .unwrap()
        .expect("a queued job");
    let rung = lease.stop_after.expect("a searched job stops at a rung");
    work_to_rung(s, worker, &lease, |epoch| {
        (epoch == rung).then_some(val_all)
    });
    lease
}

/// Trains `lease` as a worker does to its rung: each epoch's progress, with a validation
/// reading where `reading` gives one, then a checkpoint at the rung and the lease given back.
fn work_to_rung(
    s: &mut Scheduler,
    worker: &WorkerId,
    lease: &Lease,
    reading: impl Fn(u32) -> Option<f64>,
) {
    let rung = lease.stop_after.expect("a searched job stops at a rung");
    for epoch in lease.checkpoint_epoch + 1..=rung {
        let m = match reading(epoch) {
            Some(value) => at_rung(epoch, value),
            None => metrics(epoch, None),
        };
        run(s, |s| s.progress(2, worker, &lease.id, Some(&m))).unwrap();
    }
    let checkpoint = Checkpoint {
        epoch: rung,
        sha256: "ab".repeat(32).parse().unwrap(),
    };
    run(s, |s| s.record_checkpoint(3, worker, &lease.id, checkpoint)).unwrap();
    run(s, |s| {
        s.release(4, worker, &lease.id, ReleaseReason::Preempted)
    })
    .unwrap();
}

fn runtime<'a>(s: &'a Scheduler, job: &JobId) -> &'a JobRuntime {
    &s.job(job).unwrap().runtime
}

#[test]
fn a_configuration_waits_at_its_rung_and_the_best_mean_of_a_third_goes_on() {
    let (mut s, sweep, worker) = setup();
    let jobs = s.sweep(&sweep).unwrap().jobs.clone();
    // Configuration 2 has the best seed (0.9) but the middle mean (0.6); 1 the best mean.
    let readings = [0.4, 0.6, 0.7, 0.7, 0.9, 0.3];
    for (i, value) in readings.into_iter().enumerate() {
        let lease = train_to_rung(&mut s, &worker, value);
        assert_eq!(lease.job.id, jobs[i]);
        assert_eq!((lease.checkpoint_epoch, lease.stop_after), (0, Some(3)));
        let paused: Vec<Option<u32>> = jobs.iter().map(|j| runtime(&s, j).paused_at()).collect();
        if i < 5 {
            // Fewer than 3 configurations reached the rung: a third of them is none.
            assert!(
                paused[..=i].iter().all(|p| *p == Some(3)),
                "{i}: {paused:?}"
            );
            assert_eq!(runtime(&s, &jobs[i]).state, JobState::Pending);
            assert!(runtime(&s, &jobs[i]).is_waiting());
            assert_eq!(
                runtime(&s, &jobs[i]).error.as_deref(),
                Some("waiting at the rung at epoch 3 for its configuration to be promoted")
            );
        }
    }
    // The third arrival promotes configuration 1, both seeds; 0 and 2 wait.
    let states: Vec<(Option<u32>, bool)> = jobs
        .iter()
        .map(|j| {
            (
                runtime(&s, j).paused_at(),
                runtime(&s, j).queue_seq.is_some(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (Some(3), false),
            (Some(3), false),
            (None, true),
            (None, true),
            (Some(3), false),
            (Some(3), false)
        ]
    );
    assert_eq!(
        runtime(&s, &jobs[2]).error,
        None,
        "promoted: no longer waiting"
    );
    // The promoted resume from the rung's checkpoint, to the next rung: no epoch retrained.
    for (i, value) in [(2, 0.8), (3, 0.8)] {
        let lease = train_to_rung(&mut s, &worker, value);
        assert_eq!(lease.job.id, jobs[i]);
        assert_eq!((lease.checkpoint_epoch, lease.stop_after), (3, Some(9)));
        assert_eq!(runtime(&s, &jobs[i]).epochs_retrained, 0);
        // A pause at a rung is no attempt spent and no preemption.
        assert_eq!(
            runtime(&s, &jobs[i]).attempts - runtime(&s, &jobs[i]).retry_base,
            0
        );
        assert_eq!(runtime(&s, &jobs[i]).preemptions, 0);
    }
    // Alone at rung 9 with nothing else to run, it goes on (at least one a rung), to 27 ...
    for i in [2, 3] {
        let lease = train_to_rung(&mut s, &worker, 0.9);
        assert_eq!(lease.job.id, jobs[i]);
        assert_eq!((lease.checkpoint_epoch, lease.stop_after), (9, Some(27)));
    }
    // ... then to the last epoch.
    for i in [2, 3] {
        let lease = run(&mut s, |s| s.poll(5, &worker)).unwrap().unwrap();
        assert_eq!(lease.job.id, jobs[i]);
        assert_eq!((lease.checkpoint_epoch, lease.stop_after), (27, None));
        run(&mut s, |s| {
            s.complete(6, &worker, &lease.id, result_for(&lease.job, 0.8))
        })
        .unwrap();
    }
    // The sweep is over: the others were stopped where they waited.
    for (i, job) in jobs.iter().enumerate() {
        let rt = runtime(&s, job);
        if i == 2 || i == 3 {
            assert_eq!(rt.state, JobState::Succeeded);
        } else {
            assert_eq!(rt.state, JobState::Cancelled, "{i}");
            assert_eq!(rt.search.as_ref().unwrap().stopped_at, Some(3));
            assert!(
                rt.error
                    .as_deref()
                    .unwrap()
                    .starts_with("stopped by the search at its rung at epoch 3"),
                "{:?}",
                rt.error
            );
        }
    }
    assert!(s.sweep(&sweep).unwrap().counts.all_final());
    // A retry sends a stopped job on from its rung to the last epoch, outside the search.
    run(&mut s, |s| s.retry_failed(&sweep)).unwrap();
    let lease = run(&mut s, |s| s.poll(7, &worker)).unwrap().unwrap();
    assert_eq!(lease.job.id, jobs[0]);
    assert_eq!((lease.checkpoint_epoch, lease.stop_after), (3, None));
    run(&mut s, |s| {
        s.release(8, &worker, &lease.id, ReleaseReason::Preempted)
    })
    .unwrap();
    assert_eq!(
        runtime(&s, &jobs[0]).paused_at(),
        None,
        "a preemption, no pause"
    );
    assert!(runtime(&s, &jobs[0]).queue_seq.is_some());
}

#[test]
fn a_preemption_before_the_rung_requeues_and_a_grid_lease_has_no_rung() {
    let (mut s, _, worker) = setup();
    let lease = run(&mut s, |s| s.poll(1, &worker)).unwrap().unwrap();
    run(&mut s, |s| {
        s.progress(2, &worker, &lease.id, Some(&metrics(1, None)))
    })
    .unwrap();
    run(&mut s, |s| {
        s.release(3, &worker, &lease.id, ReleaseReason::Preempted)
    })
    .unwrap();
    let rt = runtime(&s, &lease.job.id);
    assert_eq!(rt.paused_at(), None);
    assert!(rt.queue_seq.is_some());
    assert_eq!(rt.preemptions, 1);

    let mut grid = Scheduler::new(TIMING, test_key());
    run(&mut grid, |s| s.submit(0, super::tests::SPEC)).unwrap();
    let worker = run(&mut grid, |s| {
        s.register_worker(0, "host", vec![], PROTOCOL_VERSION, "t", &test_secret(s))
    })
    .unwrap()
    .worker;
    let lease = run(&mut grid, |s| s.poll(1, &worker)).unwrap().unwrap();
    assert_eq!(lease.stop_after, None);
}

#[test]
fn a_budget_starts_only_the_configurations_and_promotions_it_can_pay_for() {
    for (budget, stopped_at) in [
        (12, [Some(3), Some(3), None]),
        (30, [Some(3), Some(9), Some(3)]),
    ] {
        let (mut s, sweep, worker) = setup_with(&format!("{ASHA}budget_epochs = {budget}\n"));
        let jobs = s.sweep(&sweep).unwrap().jobs.clone();
        // Configuration 1 reads best; each job to its rung while the budget lets it start.
        while s.pending() > 0 {
            let Some(lease) = run(&mut s, |s| s.poll(1, &worker)).unwrap() else {
                break;
            };
            let index = jobs.iter().position(|j| *j == lease.job.id).unwrap();
            let value = if index / 2 == 1 { 0.9 } else { 0.5 };
            let rung = lease.stop_after.unwrap();
            work_to_rung(&mut s, &worker, &lease, |epoch| {
                (epoch == rung).then_some(value)
            });
        }
        assert!(s.sweep(&sweep).unwrap().counts.all_final());
        for (config, expected) in stopped_at.into_iter().enumerate() {
            for job in &jobs[2 * config..2 * config + 2] {
                let rt = runtime(&s, job);
                assert_eq!(rt.state, JobState::Cancelled, "{budget}: {config}");
                assert_eq!(
                    rt.search.as_ref().and_then(|x| x.stopped_at),
                    expected,
                    "{budget}: {config}"
                );
                if expected.is_none() {
                    assert_eq!(rt.attempts, 0);
                    assert!(
                        rt.error.as_deref().unwrap().starts_with(&format!(
                            "not started: the search's budget_epochs = {budget} cannot take"
                        )),
                        "{:?}",
                        rt.error
                    );
                }
            }
        }
    }
}

#[test]
fn hyperband_starts_each_bracket_at_its_rung_and_promotes_within_it() {
    let (mut s, sweep, worker) =
        setup_with(&ASHA9.replace("method = \"asha\"", "method = \"hyperband\""));
    let jobs = s.sweep(&sweep).unwrap().jobs.clone();
    // Rungs 3, 9, 27 and four brackets for nine configurations (hyperband_brackets): 0 takes
    // configurations 0, 2, 4, 6, 8; 1 takes 1 and 7; 2 takes 3; 3 (no rung) takes 5.
    let bracket = [0, 1, 0, 2, 0, 3, 0, 1, 0];
    let first_rung = [Some(3), Some(9), Some(27), None];
    // Bracket 0's readings; the others read 0.99 at every rung, which would take bracket 0's
    // one promotion if the brackets were judged together.
    let reading = [0.5, 0.99, 0.6, 0.99, 0.7, 0.99, 0.8, 0.99, 0.4];
    for (i, job) in jobs.iter().enumerate() {
        let configuration = i / 2;
        let lease = run(&mut s, |s| s.poll(1, &worker))
            .unwrap()
            .expect("a queued job");
        assert_eq!(&lease.job.id, job);
        assert_eq!(
            lease.stop_after, first_rung[bracket[configuration]],
            "configuration {configuration}"
        );
        if lease.stop_after.is_none() {
            continue;
        }
        // A worker evaluates at every rung epoch, its bracket's or not.
        work_to_rung(&mut s, &worker, &lease, |epoch| {
            [3, 9, 27]
                .contains(&epoch)
                .then_some(reading[configuration])
        });
    }
    // Bracket 0 promoted as arrivals came: configuration 4 when it was the best of three, 6
    // when it was the best of four; with the other brackets' readings at epoch 3 among them,
    // neither would have been in the top third.
    for (i, job) in jobs.iter().enumerate() {
        let configuration = i / 2;
        let r = runtime(&s, job);
        let promoted = r.search.as_ref().map_or(0, |x| x.promoted);
        match (bracket[configuration], configuration) {
            (0, 4 | 6) => assert_eq!((r.paused_at(), promoted), (None, 1), "{i}"),
            (3, _) => assert_eq!(r.state, JobState::Running),
            (b, _) => assert_eq!(r.paused_at(), first_rung[b], "{i}"),
        }
    }
    let lease = run(&mut s, |s| s.poll(5, &worker))
        .unwrap()
        .expect("the promoted");
    assert_eq!(lease.job.id, jobs[8]);
    assert_eq!((lease.checkpoint_epoch, lease.stop_after), (3, Some(9)));
}

/// A search run to its end: leases held `width` at a time, the held one advanced each step
/// picked by `picks`, each job's reading at rung `k` taken from `readings`; at step `kill_at`
/// the coordinator restarts from its store. Answers each job's end: its state, the rungs it
/// was promoted past and where it stopped.
fn drive(
    readings: &[u8],
    picks: &[usize],
    width: usize,
    budget: Option<u64>,
    kill_at: Option<usize>,
    hyperband: bool,
) -> std::result::Result<Vec<(JobState, u32, Option<u32>)>, TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), Durability::Normal).unwrap();
    let mut s = Scheduler::new(TIMING, test_key());
    let commit = |s: &mut Scheduler, store: &mut Store, changes: &[Change]| {
        store.commit(changes).unwrap();
        s.apply(changes);
    };
    let mut spec = match budget {
        Some(epochs) => format!("{ASHA9}budget_epochs = {epochs}\n"),
        None => ASHA9.to_owned(),
    };
    if hyperband {
        spec = spec.replace("method = \"asha\"", "method = \"hyperband\"");
    }
    let planned = s.submit(0, &spec).unwrap();
    let sweep = planned.answer.sweep.clone();
    commit(&mut s, &mut store, &planned.changes);
    let planned = s
        .register_worker(0, "host", vec![], PROTOCOL_VERSION, "t", &test_secret(&s))
        .unwrap();
    let worker = planned.answer.worker.clone();
    commit(&mut s, &mut store, &planned.changes);
    let jobs = s.sweep(&sweep).unwrap().jobs.clone();
    let plan = s.sweep(&sweep).unwrap().record.search.clone().unwrap();
    let mut held: Vec<Lease> = Vec::new();
    let mut now = 1;
    for step in 0.. {
        prop_assert!(step < 1_000, "the search never ends");
        while held.len() < width {
            let planned = s.poll(now, &worker).unwrap();
            commit(&mut s, &mut store, &planned.changes);
            match planned.answer {
                Some(lease) => held.push(lease),
                None => break,
            }
        }
        // A poll that found nothing to lease may still have promoted a configuration when the
        // sweep fell idle: the next poll leases it.
        if held.is_empty() && s.queue.is_empty() {
            break;
        }
        if held.is_empty() {
            continue;
        }
        let lease = held.remove(picks[step % picks.len()] % held.len());
        let index = jobs.iter().position(|j| *j == lease.job.id).unwrap();
        let mut call = |s: &mut Scheduler, plan: Result<Planned<()>>| {
            let planned = plan.unwrap();
            commit(s, &mut store, &planned.changes);
        };
        match lease.stop_after {
            Some(rung) => {
                let k = plan.rungs.iter().position(|r| *r == rung).unwrap();
                let value = f64::from(readings[(index * 3 + k) % readings.len()]) / 10.0;
                for epoch in lease.checkpoint_epoch + 1..=rung {
                    let m = if epoch == rung {
                        at_rung(epoch, value)
                    } else {
                        metrics(epoch, None)
                    };
                    let p = s.progress(now, &worker, &lease.id, Some(&m));
                    call(
                        &mut s,
                        p.map(|p| Planned {
                            answer: (),
                            changes: p.changes,
                        }),
                    );
                }
                let checkpoint = Checkpoint {
                    epoch: rung,
                    sha256: "ab".repeat(32).parse().unwrap(),
                };
                let p = s.record_checkpoint(now, &worker, &lease.id, checkpoint);
                call(
                    &mut s,
                    p.map(|p| Planned {
                        answer: (),
                        changes: p.changes,
                    }),
                );
                let p = s.release(now, &worker, &lease.id, ReleaseReason::Preempted);
                call(&mut s, p);
            }
            None => {
                let p = s.complete(now, &worker, &lease.id, result_for(&lease.job, 0.5));
                call(&mut s, p);
            }
        }
        now += 1;
        if kill_at == Some(step) {
            let mut expected = s.clone();
            expected.renew_leases(now);
            let loaded = store.load(TIMING, test_key(), now).unwrap();
            prop_assert_eq!(&loaded, &expected, "the restarted state differs");
            s = loaded;
        }
        check_asha(&s, &sweep, &plan)?;
    }
    let configurations = super::search::configurations(&s, s.sweep(&sweep).unwrap());
    let brackets = plan.brackets_of(configurations.len());
    Ok(jobs
        .iter()
        .map(|id| {
            let rt = runtime(&s, id);
            let search = rt.search.as_deref().cloned().unwrap_or_default();
            let index = configurations.iter().position(|c| c.contains(id)).unwrap();
            // A bracket's rungs below its first count as passed.
            let promoted = search.promoted.max(brackets[index] as u32);
            (rt.state, promoted, search.stopped_at)
        })
        .collect())
}

/// The asynchronous promise: no configuration waits at a rung while among the top
/// `1 / reduction_factor` of those that reached it (and the budget could pay for it); a
/// configuration's seeds move together; the epochs committed stay within the budget.
fn check_asha(
    s: &Scheduler,
    sweep: &SweepId,
    plan: &SearchPlan,
) -> std::result::Result<(), TestCaseError> {
    let sweep = s.sweep(sweep).unwrap();
    let configurations = super::search::configurations(s, sweep);
    let brackets = plan.brackets_of(configurations.len());
    let bound = |k: u32| plan.rungs.get(k as usize).copied().unwrap_or(plan.epochs);
    // The rungs passed, those below the configuration's bracket counted.
    let level = |r: &JobRuntime, index: usize| {
        r.search
            .as_ref()
            .map_or(0, |x| x.promoted)
            .max(brackets[index] as u32)
    };
    let mut committed = 0u64;
    for (index, jobs) in configurations.iter().enumerate() {
        let runtimes: Vec<&JobRuntime> = jobs.iter().map(|j| runtime(s, j)).collect();
        if runtimes
            .iter()
            .any(|r| r.attempts > 0 || r.search.is_some())
        {
            for r in runtimes {
                committed += u64::from(bound(level(r, index)));
            }
        }
    }
    if let Some(budget) = plan.budget_epochs {
        prop_assert!(
            committed <= budget,
            "{committed} epochs committed of {budget}"
        );
    }
    for (bracket, (k, &rung)) in (0..plan.brackets as usize)
        .flat_map(|b| plan.rungs.iter().enumerate().skip(b).map(move |r| (b, r)))
    {
        let mut reached: Vec<(f64, usize, bool)> = Vec::new();
        for (index, jobs) in configurations.iter().enumerate() {
            if brackets[index] != bracket {
                continue;
            }
            let runtimes: Vec<&JobRuntime> = jobs.iter().map(|j| runtime(s, j)).collect();
            let readings: Option<Vec<f64>> = runtimes
                .iter()
                .map(|r| {
                    r.search
                        .as_ref()?
                        .readings
                        .iter()
                        .find(|g| g.epoch == rung)
                        .map(|g| g.value)
                })
                .collect();
            let levels: Vec<u32> = runtimes.iter().map(|r| level(r, index)).collect();
            prop_assert!(
                levels.iter().all(|l| *l == levels[0]),
                "seeds apart: {levels:?}"
            );
            if let Some(readings) = readings {
                let waiting = runtimes
                    .iter()
                    .all(|r| r.paused_at() == Some(rung) && levels[0] as usize == k);
                let mean = readings.iter().sum::<f64>() / readings.len() as f64;
                reached.push((mean, index, waiting));
            }
        }
        reached.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let top = reached.len() / plan.reduction_factor as usize;
        let more = u64::from(bound(k as u32 + 1) - rung) * 2;
        let affords = plan.budget_epochs.is_none_or(|b| committed + more <= b);
        for &(mean, index, waiting) in &reached[..top] {
            prop_assert!(
                !(waiting && affords),
                "configuration {index} waits at rung {rung} among the top {top} ({mean})"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the order the jobs reach their rungs in and whatever they read there, every job
    /// ends once (succeeded, or stopped where it waited), no epoch is trained twice, the best
    /// configuration trains to the last epoch, and a coordinator restarted from its store at
    /// any step ends with the same promotions.
    #[test]
    fn a_search_ends_the_same_whenever_the_coordinator_restarts(
        readings in proptest::collection::vec(0..10u8, 1..20),
        picks in proptest::collection::vec(0..8usize, 1..12),
        width in 1..4usize,
        budget in proptest::option::of(6..200u64),
        kill_at in 0..20usize,
        hyperband in any::<bool>(),
    ) {
        let ended = drive(&readings, &picks, width, budget, None, hyperband)?;
        prop_assert!(
            budget.is_some() || ended.iter().any(|(state, _, _)| *state == JobState::Succeeded)
        );
        for (state, promoted, stopped) in &ended {
            match state {
                JobState::Succeeded => prop_assert_eq!((*promoted, *stopped), (3, None)),
                // Stopped where it waited, or never started for the budget.
                JobState::Cancelled => prop_assert!(stopped.is_some() || budget.is_some()),
                other => prop_assert!(false, "a job ended {}", other),
            }
        }
        prop_assert_eq!(drive(&readings, &picks, width, budget, Some(kill_at), hyperband)?, ended);
    }
}
