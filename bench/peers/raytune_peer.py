#!/usr/bin/env python3
"""The peer for ltsweep's sweep overhead: Ray Tune on a grid of trivial trials (the paper's 9
plans x N seeds, N concurrent).

Each trial reports one metric and returns at once, so the wall time is the tool's own cost:
start-up, scheduling, result collection. Prints one JSON line.
    python3 bench/peers/raytune_peer.py --seeds 10 --concurrent 2
Needs ray[tune] as pinned in bench/peers/requirements-ray.txt (with 2.60.0: 3.4 s to start, then
about 1.0 s wall per trial at 2 concurrent, flat from 18 to 90 trials, on two cores).
"""
import argparse, json, time

ap = argparse.ArgumentParser()
ap.add_argument("--seeds", type=int, default=2)
ap.add_argument("--concurrent", type=int, default=2)
a = ap.parse_args()
t0 = time.perf_counter()
import ray
from ray import tune

PLANS = ["none/none", "all/none", "head/none", "tail/none", "none/all", "none/head", "none/tail",
         "head/tail", "tail/head"]


def trial(config):
    tune.report({"acc": 0.0})


ray.init(num_cpus=a.concurrent, include_dashboard=False, log_to_driver=False)
t_init = time.perf_counter()
tuner = tune.Tuner(trial,
                   param_space={"plan": tune.grid_search(PLANS), "seed": tune.grid_search(list(range(a.seeds)))},
                   tune_config=tune.TuneConfig(max_concurrent_trials=a.concurrent),
                   run_config=tune.RunConfig(verbose=0))
res = tuner.fit()
t_end = time.perf_counter()
df = res.get_dataframe()
print(json.dumps({"tool": "ray-tune " + ray.__version__, "trials": len(df), "concurrent": a.concurrent,
                  "init_s": round(t_init - t0, 2), "fit_s": round(t_end - t_init, 2),
                  "total_s": round(t_end - t0, 2), "per_trial_s": round((t_end - t_init) / len(df), 3)}))
ray.shutdown()
