//! `ltsweep export mlflow SWEEP --tracking-uri URI`: a sweep's jobs as MLflow runs, through the
//! tracking server's REST API (version 2.0).
//!
//! The sweep is one run (tagged `ltsweep.kind = sweep`) holding Table 1 and the shots table as
//! artifacts; each job with a result is a run under it (`mlflow.parentRunId`), named by its
//! label, with its plan, seed, axes and recipe as parameters and every epoch's losses,
//! learning rate and accuracies (test and validation) as metrics stepped by the epoch. Each
//! run carries `ltsweep.sweep_id` and `ltsweep.job_id`, and gets `ltsweep.exported = true`
//! once everything of it is logged: a second export finds the runs by these tags and creates
//! none that is there; a run an interrupted export left without the mark is deleted and made
//! again, so no metric is ever logged twice.

mod http;

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use ltsweep_analysis::{Frames, SweepRecords, live_report};
use ltsweep_domain::time::unix_ms_now;
use ltsweep_domain::{EpochMetrics, GroupAccuracy, JobSpec};
use serde_json::{Value, json};

use self::http::Endpoint;
use super::client::{block_on, connect, records};
use crate::cli::MlflowArgs;
use crate::exit::BadInput;

/// MLflow's limits on one `runs/log-batch` call.
const BATCH_METRICS: usize = 1000;
const BATCH_PARAMS: usize = 100;
/// Runs a search answers at once (MLflow's own upper bound).
const SEARCH_PAGE: usize = 1000;

const TAG_SWEEP: &str = "ltsweep.sweep_id";
const TAG_JOB: &str = "ltsweep.job_id";
const TAG_KIND: &str = "ltsweep.kind";
const TAG_DONE: &str = "ltsweep.exported";

pub fn export(args: &MlflowArgs) -> anyhow::Result<()> {
    let token = std::env::var("MLFLOW_TRACKING_TOKEN").ok();
    let server = Mlflow {
        endpoint: Endpoint::parse(&args.tracking_uri, token, args.insecure).map_err(BadInput)?,
    };
    block_on(async {
        let connection = connect(&args.remote)?;
        let records = records(&connection, &args.sweep, &args.remote).await?;
        let experiment = args.experiment.as_deref().unwrap_or(&records.sweep_id);
        let summary = export_sweep(&server, &records, experiment).await?;
        println!(
            "mlflow: experiment {experiment} (id {}) at {}: {} runs created, {} already there, \
             {} jobs without a result left out (export again once they finish)",
            summary.experiment_id,
            args.tracking_uri,
            summary.created,
            summary.kept,
            summary.without_result
        );
        Ok(())
    })
}

struct Summary {
    experiment_id: String,
    created: usize,
    kept: usize,
    without_result: usize,
}

/// A run found on the server: its id and whether an export finished it.
struct Found {
    run_id: String,
    exported: bool,
}

async fn export_sweep(
    server: &Mlflow,
    records: &SweepRecords,
    experiment: &str,
) -> anyhow::Result<Summary> {
    let experiment_id = server.experiment(experiment).await?;
    let mut found = server.runs_of(&experiment_id, &records.sweep_id).await?;
    let mut created = 0;
    let mut kept = 0;

    let sweep_tags = [(TAG_SWEEP, records.sweep_id.as_str()), (TAG_KIND, "sweep")];
    let (parent, artifact_uri) = match found.remove("") {
        Some(run) if run.exported => {
            kept += 1;
            let uri = server.artifact_uri(&run.run_id).await?;
            (run.run_id, uri)
        }
        stale => {
            if let Some(run) = stale {
                server.delete(&run.run_id).await?;
            }
            created += 1;
            let (run_id, uri) = server
                .create_run(&experiment_id, &records.sweep_id, &sweep_tags)
                .await?;
            server.finish(&run_id).await?;
            (run_id, uri)
        }
    };
    // Table 1 of the results so far, written again each time: a later export of a sweep that
    // has since finished replaces a partial table.
    let report = live_report(&Frames::from_records(records)?)?;
    for (name, text) in [
        ("table1.md", &report.table1_markdown),
        ("shots.md", &report.shots_markdown),
    ] {
        server
            .upload(&artifact_uri, name, Bytes::from(text.clone()))
            .await?;
    }
    server.tag(&parent, &[(TAG_DONE, "true")]).await?;

    let mut without_result = 0;
    for record in &records.jobs {
        let Some(result) = &record.result else {
            without_result += 1;
            continue;
        };
        let job_id = record.spec.id.as_str();
        match found.remove(job_id) {
            Some(run) if run.exported => {
                kept += 1;
                continue;
            }
            Some(run) => server.delete(&run.run_id).await?,
            None => {}
        }
        let tags = [
            (TAG_SWEEP, records.sweep_id.as_str()),
            (TAG_JOB, job_id),
            (TAG_KIND, "job"),
            ("mlflow.parentRunId", parent.as_str()),
        ];
        let (run_id, _) = server
            .create_run(&experiment_id, &record.spec.label(), &tags)
            .await?;
        let params: Vec<(String, String)> = params(&record.spec).into_iter().collect();
        let metrics = metrics(&result.epochs, now_ms());
        server.log(&run_id, &params, &metrics).await?;
        server.finish(&run_id).await?;
        // Last: only a run with everything logged is left alone by the next export.
        server.tag(&run_id, &[(TAG_DONE, "true")]).await?;
        created += 1;
    }
    Ok(Summary {
        experiment_id,
        created,
        kept,
        without_result,
    })
}

/// MLflow's timestamps are signed milliseconds.
fn now_ms() -> i64 {
    i64::try_from(unix_ms_now()).unwrap_or(i64::MAX)
}

/// A job's parameters: what it is (plan, base loss, sampler, seed), its axes, and its recipe.
fn params(spec: &JobSpec) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        params.insert(key.to_owned(), value);
    };
    put("plan", spec.plan.to_string());
    put("comp", spec.plan.comp.to_string());
    put("pc", spec.plan.pc.to_string());
    put("base", spec.losses.base.kind().to_string());
    put("sampler", spec.train.sampler.to_string());
    put("seed", spec.seed.to_string());
    put("dataset", spec.dataset.kind.to_string());
    put("imbalance_ratio", spec.dataset.imbalance_ratio.to_string());
    put("val_per_class", spec.dataset.val_per_class.to_string());
    put("depth", spec.model.depth.to_string());
    put("epochs", spec.train.epochs.to_string());
    put("batch_size", spec.train.batch_size.to_string());
    put("lr", spec.train.lr.to_string());
    put("pc_weight", spec.losses.pc_weight.to_string());
    // An axis is one of the settings above or another: its value is the job's either way.
    for axis in &spec.axes {
        put(&axis.name, axis.value.to_string());
    }
    params
}

/// One metric point: key, value, step (the epoch), timestamp.
type Point = (String, f64, u32, i64);

/// Every epoch's losses and learning rate, and at evaluated epochs the test and validation
/// accuracies (fractions, as in the results), timed by the epochs' own seconds from `start`.
fn metrics(epochs: &[EpochMetrics], start: i64) -> Vec<Point> {
    let mut points = Vec::new();
    let mut at = start;
    for epoch in epochs {
        at += (epoch.seconds * 1000.0) as i64;
        let step = epoch.epoch;
        for (key, value) in [
            ("loss_base", epoch.loss_base),
            ("loss_comp", epoch.loss_comp),
            ("loss_pc", epoch.loss_pc),
            ("lr", epoch.lr),
            ("images_per_second", epoch.images_per_second),
        ] {
            points.push((key.to_owned(), value, step, at));
        }
        for (set, accuracy) in [("test", &epoch.accuracy), ("val", &epoch.val_accuracy)] {
            let Some(accuracy) = accuracy else { continue };
            for (group, value) in groups(accuracy) {
                if let Some(value) = value {
                    points.push((format!("{set}_acc_{group}"), value, step, at));
                }
            }
        }
    }
    points
}

fn groups(a: &GroupAccuracy) -> [(&'static str, Option<f64>); 6] {
    [
        ("all", a.acc_all),
        ("head", a.acc_head),
        ("tail", a.acc_tail),
        ("many", a.acc_many),
        ("medium", a.acc_medium),
        ("few", a.acc_few),
    ]
}

/// The tracking server's REST API, as far as the export needs it.
struct Mlflow {
    endpoint: Endpoint,
}

impl Mlflow {
    async fn call(&self, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, bytes) = self
            .endpoint
            .call(
                method,
                path,
                "application/json",
                Bytes::from(body.to_string()),
            )
            .await
            .map_err(anyhow::Error::msg)?;
        let answer: Value = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&bytes).map_err(|_| {
                anyhow::anyhow!(
                    "{path}: the tracking server answered {status} with no JSON: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                )
            })?
        };
        if status.is_success() {
            Ok(answer)
        } else {
            Err(ApiError {
                status,
                code: answer["error_code"].as_str().unwrap_or("").to_owned(),
                message: format!(
                    "{path}: the tracking server answered {status}: {}",
                    answer["message"].as_str().unwrap_or("(no message)")
                ),
            }
            .into())
        }
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, &format!("/api/2.0/mlflow/{path}"), body)
            .await
    }

    /// The experiment's id, creating it when missing.
    async fn experiment(&self, name: &str) -> anyhow::Result<String> {
        let query: String = url_encode(name);
        match self
            .call(
                Method::GET,
                &format!("/api/2.0/mlflow/experiments/get-by-name?experiment_name={query}"),
                json!({}),
            )
            .await
        {
            Ok(answer) => id(&answer["experiment"]["experiment_id"], "experiment_id"),
            Err(e)
                if e.downcast_ref::<ApiError>()
                    .is_some_and(|a| a.code == "RESOURCE_DOES_NOT_EXIST") =>
            {
                let answer = self
                    .post("experiments/create", json!({ "name": name }))
                    .await?;
                id(&answer["experiment_id"], "experiment_id")
            }
            Err(e) => Err(e),
        }
    }

    /// The sweep's runs on the server, by job id ("" for the sweep's own run).
    async fn runs_of(
        &self,
        experiment_id: &str,
        sweep: &str,
    ) -> anyhow::Result<HashMap<String, Found>> {
        if sweep.contains('\'') {
            anyhow::bail!("sweep id {sweep} holds a quote, which an MLflow filter cannot");
        }
        let mut found = HashMap::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": [experiment_id],
                "filter": format!("tags.`{TAG_SWEEP}` = '{sweep}'"),
                "max_results": SEARCH_PAGE,
            });
            if let Some(token) = &page_token {
                body["page_token"] = json!(token);
            }
            let answer = self.post("runs/search", body).await?;
            for run in answer["runs"].as_array().into_iter().flatten() {
                let tags: HashMap<&str, &str> = run["data"]["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| Some((t["key"].as_str()?, t["value"].as_str()?)))
                    .collect();
                let key = match tags.get(TAG_KIND) {
                    Some(&"sweep") => String::new(),
                    _ => match tags.get(TAG_JOB) {
                        Some(job) => (*job).to_owned(),
                        None => continue,
                    },
                };
                let run_id = id(&run["info"]["run_id"], "run_id")?;
                let exported = tags.get(TAG_DONE) == Some(&"true");
                // Two runs of one job (an export interrupted twice): keep a finished one.
                if found.get(&key).is_none_or(|f: &Found| !f.exported) {
                    if let Some(stale) = found.insert(key, Found { run_id, exported }) {
                        self.delete(&stale.run_id).await?;
                    }
                } else {
                    self.delete(&run_id).await?;
                }
            }
            match answer["next_page_token"].as_str() {
                Some(token) if !token.is_empty() => page_token = Some(token.to_owned()),
                _ => break,
            }
        }
        Ok(found)
    }

    async fn create_run(
        &self,
        experiment_id: &str,
        name: &str,
        tags: &[(&str, &str)],
    ) -> anyhow::Result<(String, String)> {
        let answer = self
            .post(
                "runs/create",
                json!({
                    "experiment_id": experiment_id,
                    "run_name": name,
                    "start_time": now_ms(),
                    "tags": tag_list(tags),
                }),
            )
            .await?;
        let info = &answer["run"]["info"];
        Ok((
            id(&info["run_id"], "run_id")?,
            info["artifact_uri"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    async fn artifact_uri(&self, run_id: &str) -> anyhow::Result<String> {
        let answer = self
            .call(
                Method::GET,
                &format!("/api/2.0/mlflow/runs/get?run_id={}", url_encode(run_id)),
                json!({}),
            )
            .await?;
        Ok(answer["run"]["info"]["artifact_uri"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn log(
        &self,
        run_id: &str,
        params: &[(String, String)],
        metrics: &[Point],
    ) -> anyhow::Result<()> {
        for chunk in params.chunks(BATCH_PARAMS) {
            let params: Vec<Value> = chunk
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": value }))
                .collect();
            self.post(
                "runs/log-batch",
                json!({ "run_id": run_id, "params": params }),
            )
            .await?;
        }
        for chunk in metrics.chunks(BATCH_METRICS) {
            let metrics: Vec<Value> = chunk
                .iter()
                .map(|(key, value, step, timestamp)| {
                    json!({ "key": key, "value": value, "step": step, "timestamp": timestamp })
                })
                .collect();
            self.post(
                "runs/log-batch",
                json!({ "run_id": run_id, "metrics": metrics }),
            )
            .await?;
        }
        Ok(())
    }

    async fn tag(&self, run_id: &str, tags: &[(&str, &str)]) -> anyhow::Result<()> {
        self.post(
            "runs/log-batch",
            json!({ "run_id": run_id, "tags": tag_list(tags) }),
        )
        .await
        .map(drop)
    }

    async fn finish(&self, run_id: &str) -> anyhow::Result<()> {
        self.post(
            "runs/update",
            json!({ "run_id": run_id, "status": "FINISHED", "end_time": now_ms() }),
        )
        .await
        .map(drop)
    }

    async fn delete(&self, run_id: &str) -> anyhow::Result<()> {
        self.post("runs/delete", json!({ "run_id": run_id }))
            .await
            .map(drop)
    }

    /// Uploads an artifact through the server's artifact proxy (`mlflow-artifacts:` URIs).
    async fn upload(&self, artifact_uri: &str, name: &str, bytes: Bytes) -> anyhow::Result<()> {
        let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
            anyhow::bail!(
                "the tracking server stores this run's artifacts at {artifact_uri}, which ltsweep \
                 cannot write to: start the server with its artifact proxy (mlflow server \
                 --serve-artifacts, the default since MLflow 2)"
            );
        };
        // `mlflow-artifacts:/1/RUN/artifacts`, or with an authority: `mlflow-artifacts://h/1/...`.
        let path = match rest.strip_prefix("//") {
            Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
            None => rest.trim_start_matches('/'),
        };
        let (status, answer) = self
            .endpoint
            .call(
                Method::PUT,
                &format!("/api/2.0/mlflow-artifacts/artifacts/{path}/{name}"),
                "application/octet-stream",
                bytes,
            )
            .await
            .map_err(anyhow::Error::msg)?;
        if !status.is_success() {
            anyhow::bail!(
                "uploading {name}: the tracking server answered {status}: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(300)])
            );
        }
        Ok(())
    }
}

/// An error answer of the REST API.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

fn id(value: &Value, what: &str) -> anyhow::Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the tracking server's answer has no {what}"))
}

fn tag_list(tags: &[(&str, &str)]) -> Vec<Value> {
    tags.iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
