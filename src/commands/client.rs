//! The user's calls to a coordinator: `submit`, `status`, `watch`, `cancel`, `retry-failed`,
//! `workers`. Each answer from the coordinator that is an error becomes one clear line and an
//! exit code (see `exit`).

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ltsweep_analysis::SweepRecords;
use ltsweep_domain::{BaseKind, JobId, JobState, Sampler, SweepId, SweepStatus, WORKER_COLUMNS};
use ltsweep_proto::client::{Connection, Which};
use ltsweep_proto::token::{Token, read_token_file, sent_in_clear, systemd_credential};
use ltsweep_proto::{ErrorKind, RemoteError};

use crate::cli::{RemoteArgs, StatusArgs, SubmitArgs, SweepArgs};
use crate::exit::{BadInput, Refused};

/// Runs a future on a runtime made for one command.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// The token from --token-file (checked as every token file is: see
/// `ltsweep_proto::token`), else LTSWEEP_TOKEN, else the systemd credential `credential` when
/// one is named; none when none is given. An empty or short one is an error, not "no token":
/// a variable set to nothing by mistake must not turn the coordinator's auth off.
pub fn token(
    token_file: Option<&std::path::Path>,
    credential: Option<&str>,
) -> anyhow::Result<Option<Token>> {
    let found = match token_file {
        Some(path) => read_token_file(path).map(Some),
        None => match std::env::var("LTSWEEP_TOKEN") {
            Ok(text) => Token::parse(&text, "LTSWEEP_TOKEN").map(Some),
            Err(std::env::VarError::NotPresent) => match credential {
                Some(name) => systemd_credential(name),
                None => Ok(None),
            },
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(BadInput("LTSWEEP_TOKEN is not valid text".into()).into());
            }
        },
    };
    found.map_err(|e| BadInput(e.to_string()).into())
}

/// Must be called inside a tokio runtime (the channel's connection task lives there).
pub fn connect(remote: &RemoteArgs) -> anyhow::Result<Connection> {
    connect_with(remote, None)
}

/// [`connect`] that also reads the systemd credential `credential` when no token is given.
pub fn connect_with(remote: &RemoteArgs, credential: Option<&str>) -> anyhow::Result<Connection> {
    let token = token(remote.token_file.as_deref(), credential)?;
    if token.is_some()
        && let Some(host) = sent_in_clear(&remote.coordinator)
    {
        tracing::warn!(
            "the token travels to {host} in clear text (http://): anyone on the path can read and reuse it; serve the coordinator with --tls-cert and --tls-key, and use https://"
        );
    }
    Connection::new(
        &remote.coordinator,
        token.as_ref().map(Token::as_str),
        remote.tls_ca.as_deref(),
    )
    .map_err(|e| BadInput(e.to_string()).into())
}

/// One line for a refused or failed call, and its exit code (see `exit`).
pub fn remote_error(err: RemoteError, remote: &RemoteArgs) -> anyhow::Error {
    let message = err.message().to_owned();
    match err.kind() {
        Some(ErrorKind::InvalidArgument | ErrorKind::NotFound) => BadInput(message).into(),
        Some(ErrorKind::Unauthenticated) => Refused(format!(
            "the coordinator refused the token ({message}); give it with --token-file or LTSWEEP_TOKEN"
        ))
        .into(),
        Some(ErrorKind::PermissionDenied) => Refused(format!(
            "{message}; give that token with --token-file or LTSWEEP_TOKEN"
        ))
        .into(),
        Some(ErrorKind::Precondition | ErrorKind::Exhausted) => Refused(message).into(),
        Some(ErrorKind::Unavailable) => anyhow::anyhow!(
            "cannot reach the coordinator at {} ({message}); is it running? (--coordinator, LTSWEEP_COORDINATOR)",
            remote.coordinator
        ),
        _ => anyhow::anyhow!("the coordinator call failed: {err}"),
    }
}

/// Every job of a sweep with its state and, when it succeeded, its result; an empty `sweep`
/// is the latest one.
pub async fn records(
    connection: &Connection,
    sweep: &str,
    remote: &RemoteArgs,
) -> anyhow::Result<SweepRecords> {
    let api = connection.sweep_api();
    let id = (!sweep.is_empty()).then(|| SweepId::from(sweep));
    let status = api
        .status(id.as_ref().map_or(Which::Latest, Which::Sweep), true)
        .await
        .map_err(|e| remote_error(e, remote))?;
    let results = api
        .results(&status.id)
        .await
        .map_err(|e| remote_error(e, remote))?;
    Ok(SweepRecords::from_status(status, results)?)
}

pub fn submit(args: &SubmitArgs) -> anyhow::Result<()> {
    // Checked here first, so a mistake names this file rather than coming back from afar.
    let (text, spec) = super::load_spec(&args.spec)?;
    block_on(async {
        let connection = connect(&args.remote)?;
        let response = connection
            .sweep_api()
            .submit(&text)
            .await
            .map_err(|e| remote_error(e, &args.remote))?;
        if response.created {
            println!("submitted {}: {} jobs", spec.name, response.jobs);
        } else {
            println!(
                "{} was already submitted: the same {} jobs",
                spec.name, response.jobs
            );
        }
        if args.watch {
            watch_sweep(&connection, &response.sweep, &args.remote).await?;
        }
        // Scripts take the sweep id from the last line.
        println!("{}", response.sweep);
        Ok(())
    })
}

pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let sweep = block_on(async {
        let connection = connect(&args.remote)?;
        let id = args.sweep.as_deref().map(SweepId::from);
        let which = id.as_ref().map_or(Which::Latest, Which::Sweep);
        connection
            .sweep_api()
            .status(which, false)
            .await
            .map_err(|e| remote_error(e, &args.remote))
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sweep.to_json())?);
        return Ok(());
    }
    // Every axis that varies has a column, as in `validate`: the base loss and sampler where
    // any job has other than the default, a stage-2 job's method, then the grid's axes.
    let jobs = &sweep.jobs;
    let show_base = jobs
        .iter()
        .any(|j| j.base.is_some_and(|b| b != BaseKind::Ce));
    let show_sampler = jobs
        .iter()
        .any(|j| j.sampler.is_some_and(|s| s != Sampler::Instance));
    let show_stage2 = jobs.iter().any(|j| j.stage2.is_some());
    let axis_names: Vec<&str> = jobs.first().map_or_else(Vec::new, |job| {
        job.axes.iter().map(|a| a.name.as_str()).collect()
    });
    let mut header = vec!["id", "plan"];
    if show_base {
        header.push("base");
    }
    if show_sampler {
        header.push("sampler");
    }
    header.extend(&axis_names);
    if show_stage2 {
        header.push("stage 2");
    }
    header.extend(["seed", "state", "epoch", "attempts", "worker", "note"]);
    let header: Vec<String> = header.into_iter().map(str::to_owned).collect();
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            let mut row = vec![job.id.to_string(), job.plan.to_string()];
            if show_base {
                row.push(job.base.map_or_else(String::new, |b| b.to_string()));
            }
            if show_sampler {
                row.push(job.sampler.map_or_else(String::new, |s| s.to_string()));
            }
            row.extend(job.axes.iter().map(|axis| axis.value.to_string()));
            if show_stage2 {
                row.push(job.stage2.clone().unwrap_or_else(|| "none".to_owned()));
            }
            row.extend([
                job.seed.to_string(),
                job.state.as_str().to_owned(),
                format!("{}/{}", job.epoch, job.epochs_total),
                job.attempts.to_string(),
                job.worker.as_deref().unwrap_or_default().to_owned(),
                // A stage-2 job waits for its stage-1 job: the note names it.
                job.error.clone().unwrap_or_else(|| {
                    job.parent
                        .as_ref()
                        .map_or_else(String::new, |parent| format!("after {parent}"))
                }),
            ]);
            row
        })
        .collect();
    print!("{}", crate::table::render(&header, &rows));
    print_rungs(&sweep);
    let counts = sweep.counts;
    println!(
        "{} ({}): {} jobs: {} pending, {} running, {} succeeded, {} failed, {} cancelled",
        sweep.id,
        sweep.name,
        counts.total,
        counts.pending,
        counts.running,
        counts.succeeded,
        counts.failed,
        counts.cancelled
    );
    Ok(())
}

/// A search's configurations, their seeds together: the rung each reached, whether it waits
/// there, was promoted past it or stopped, and its reading (the seeds' mean, percent).
fn print_rungs(sweep: &SweepStatus) {
    let configurations = sweep.configurations();
    if configurations.is_empty() {
        return;
    }
    let header: Vec<String> = ["configuration", "seeds", "rung", "standing", "reading"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<Vec<String>> = configurations
        .iter()
        .map(|c| {
            vec![
                c.label.clone(),
                c.seeds.to_string(),
                c.standing
                    .rung()
                    .map_or_else(|| "-".to_owned(), |r| r.to_string()),
                c.standing.as_str().to_owned(),
                c.reading
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.2}", r * 100.0)),
            ]
        })
        .collect();
    println!();
    print!("{}", crate::table::render(&header, &rows));
}

pub fn watch(args: &SweepArgs) -> anyhow::Result<()> {
    block_on(async {
        let connection = connect(&args.remote)?;
        watch_sweep(
            &connection,
            &SweepId::from(args.sweep.as_str()),
            &args.remote,
        )
        .await
    })
}

/// Progress bars until every job of the sweep has ended; reconnects through coordinator
/// restarts.
pub async fn watch_sweep(
    connection: &Connection,
    sweep: &SweepId,
    remote: &RemoteArgs,
) -> anyhow::Result<()> {
    let bars = MultiProgress::new();
    let overall = bars.add(ProgressBar::new(0));
    overall.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} jobs done {msg} [{elapsed}, ETA {eta}]")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let job_style =
        ProgressStyle::with_template("  {prefix:<40} [{bar:20}] epoch {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
    let mut running: BTreeMap<JobId, ProgressBar> = BTreeMap::new();
    // The note last printed for each job, so that each change is said once.
    let mut notes: BTreeMap<JobId, String> = BTreeMap::new();
    let mut failures = 0u32;
    let api = connection.sweep_api();
    loop {
        let mut stream = match api.watch(sweep).await {
            Ok(stream) => stream,
            Err(err) if err.is_transient() && failures < 120 => {
                failures += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(err) => return Err(remote_error(err, remote)),
        };
        loop {
            match stream.next().await {
                Ok(Some(event)) => {
                    failures = 0;
                    if let Some(counts) = &event.counts {
                        overall.set_length(u64::from(counts.total));
                        overall.set_position(u64::from(counts.ended()));
                        overall.set_message(format!(
                            "({} running, {} failed, {} cancelled)",
                            counts.running, counts.failed, counts.cancelled
                        ));
                    }
                    let Some(job) = event.job else { continue };
                    let key = job.id.clone();
                    if job.state == JobState::Running {
                        let bar = running.entry(key).or_insert_with(|| {
                            let bar = bars.add(ProgressBar::new(u64::from(job.epochs_total)));
                            bar.set_style(job_style.clone());
                            bar.set_prefix(format!("{} seed {}", job.label(), job.seed));
                            bar
                        });
                        bar.set_position(u64::from(job.epoch));
                        if let Some(acc) = job.last_accuracy {
                            bar.set_message(format!(
                                "test {:.1}% on {}",
                                100.0 * acc,
                                job.worker.as_deref().unwrap_or("?")
                            ));
                        }
                    } else if let Some(bar) = running.remove(&key) {
                        bar.finish_and_clear();
                        bars.remove(&bar);
                    }
                    // A job that stops with a note (waiting at a search's rung, stopped there,
                    // failed) says it above the bars.
                    if job.state != JobState::Running
                        && let Some(note) = &job.error
                        && notes.get(&job.id) != Some(note)
                    {
                        let _ = bars.println(format!("{} seed {}: {note}", job.label(), job.seed));
                        notes.insert(job.id.clone(), note.clone());
                    }
                }
                Ok(None) => {
                    overall.finish();
                    return Ok(());
                }
                Err(err) if err.is_transient() => {
                    // The coordinator went away mid-stream: start over once it is back.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
                Err(err) => return Err(remote_error(err, remote)),
            }
        }
    }
}

pub fn cancel(args: &SweepArgs) -> anyhow::Result<()> {
    let cancelled = block_on(async {
        let connection = connect(&args.remote)?;
        connection
            .sweep_api()
            .cancel(&SweepId::from(args.sweep.as_str()))
            .await
            .map_err(|e| remote_error(e, &args.remote))
    })?;
    println!("cancelled {cancelled} jobs of {}", args.sweep);
    Ok(())
}

pub fn retry_failed(args: &SweepArgs) -> anyhow::Result<()> {
    let requeued = block_on(async {
        let connection = connect(&args.remote)?;
        connection
            .sweep_api()
            .retry_failed(&SweepId::from(args.sweep.as_str()))
            .await
            .map_err(|e| remote_error(e, &args.remote))
    })?;
    println!("{requeued} jobs of {} are back in the queue", args.sweep);
    Ok(())
}

pub fn workers(remote: &RemoteArgs) -> anyhow::Result<()> {
    let workers = block_on(async {
        let connection = connect(remote)?;
        connection
            .sweep_api()
            .workers()
            .await
            .map_err(|e| remote_error(e, remote))
    })?;
    let now = ltsweep_domain::time::unix_ms_now();
    let header: Vec<String> = WORKER_COLUMNS.iter().map(|s| (*s).to_owned()).collect();
    let rows: Vec<Vec<String>> = workers.iter().map(|w| w.row(now).to_vec()).collect();
    print!("{}", crate::table::render(&header, &rows));
    Ok(())
}

pub fn sweeps(remote: &RemoteArgs) -> anyhow::Result<()> {
    let sweeps = block_on(async {
        let connection = connect(remote)?;
        connection
            .sweep_api()
            .sweeps()
            .await
            .map_err(|e| remote_error(e, remote))
    })?;
    let header: Vec<String> = [
        "sweep",
        "jobs",
        "pending",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let rows: Vec<Vec<String>> = sweeps
        .iter()
        .map(|s| {
            let c = s.counts;
            [s.id.to_string()]
                .into_iter()
                .chain(
                    [
                        c.total,
                        c.pending,
                        c.running,
                        c.succeeded,
                        c.failed,
                        c.cancelled,
                    ]
                    .map(|n| n.to_string()),
                )
                .collect()
        })
        .collect();
    print!("{}", crate::table::render(&header, &rows));
    Ok(())
}
