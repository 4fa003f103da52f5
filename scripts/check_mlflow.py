"""Checks an MLflow export of a sweep against the sweep's own epochs frame, with MLflow's client.

    python scripts/check_mlflow.py TRACKING_URI EXPERIMENT SWEEP_ID REPORT_DIR

REPORT_DIR holds the sweep's epochs.parquet (`ltsweep run` writes it). Prints JSON:
{"runs": N, "job_runs": N, "metrics": N (points compared), "run_ids": {job_id: run_id},
 "artifacts": [...]} and exits non-zero when a run, a parameter or a metric point is missing,
duplicated or different.
"""

import json
import math
import pathlib
import sys

import pandas as pd
from mlflow.tracking import MlflowClient

uri, experiment_name, sweep, report = sys.argv[1:5]
client = MlflowClient(tracking_uri=uri)
experiment = client.get_experiment_by_name(experiment_name)
assert experiment is not None, f"no experiment {experiment_name}"
runs = client.search_runs([experiment.experiment_id], f"tags.`ltsweep.sweep_id` = '{sweep}'",
                          max_results=10000)
epochs = pd.read_parquet(pathlib.Path(report) / "epochs.parquet")
problems = []
job_runs = {}
parents = [r for r in runs if r.data.tags.get("ltsweep.kind") == "sweep"]
if len(parents) != 1:
    problems.append(f"{len(parents)} runs of the sweep itself")
for run in runs:
    tags = run.data.tags
    if tags.get("ltsweep.exported") != "true":
        problems.append(f"run {run.info.run_id} is not marked exported")
    if tags.get("ltsweep.kind") != "job":
        continue
    job = tags["ltsweep.job_id"]
    if job in job_runs:
        problems.append(f"job {job} has two runs")
    job_runs[job] = run.info.run_id
    if parents and tags.get("mlflow.parentRunId") != parents[0].info.run_id:
        problems.append(f"job {job} is not under the sweep's run")
    if run.info.status != "FINISHED":
        problems.append(f"job {job}: status {run.info.status}")
checked = 0
for job, frame in epochs.groupby("job_id"):
    run_id = job_runs.get(job)
    if run_id is None:
        problems.append(f"job {job} has no run")
        continue
    run = client.get_run(run_id)
    seed = run.data.params.get("seed")
    if seed != str(int(frame["seed"].iloc[0])):
        problems.append(f"job {job}: param seed {seed}")
    if run.data.params.get("plan") != frame["plan"].iloc[0]:
        problems.append(f"job {job}: param plan {run.data.params.get('plan')}")
    for key, column in [("loss_base", "loss_base"), ("loss_comp", "loss_comp"),
                        ("loss_pc", "loss_pc"), ("lr", "lr"), ("test_acc_all", "acc_all"),
                        ("test_acc_tail", "acc_tail"), ("val_acc_all", "val_all"),
                        ("val_acc_head", "val_head")]:
        expected = {int(e): float(v) for e, v in zip(frame["epoch"], frame[column])
                    if v is not None and not math.isnan(v)}
        history = client.get_metric_history(run_id, key)
        found = {}
        for point in history:
            if point.step in found:
                problems.append(f"job {job}: {key} logged twice at step {point.step}")
            found[point.step] = point.value
        if found.keys() != expected.keys():
            problems.append(f"job {job}: {key} at steps {sorted(found)}, expected {sorted(expected)}")
            continue
        for step, value in expected.items():
            if not math.isclose(found[step], value, rel_tol=1e-12, abs_tol=1e-15):
                problems.append(f"job {job}: {key} at {step} is {found[step]}, expected {value}")
            checked += 1
artifacts = [a.path for a in client.list_artifacts(parents[0].info.run_id)] if parents else []
if "table1.md" not in artifacts:
    problems.append(f"the sweep's run has no table1.md: {artifacts}")
for problem in problems:
    print(problem, file=sys.stderr)
print(json.dumps({"runs": len(runs), "job_runs": len(job_runs), "metrics": checked,
                  "run_ids": job_runs, "artifacts": artifacts}))
sys.exit(1 if problems else 0)
