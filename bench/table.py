#!/usr/bin/env python3
"""The benchmarks' tables, for every bench/*.sh: the header that dates a table (the date, the
commit, the machine, the ltsweep measured and the command that reprints it), the medians of the
interleaved rounds, ltsweep's ratios to its peers, and each script's table.

    python3 bench/table.py KIND --runs RUNS.tsv --command "bench/KIND.sh ..." [--ltsweep LABEL] [KEY=VALUE ...]
    python3 bench/table.py header --command "bench/KIND.sh ..." [--ltsweep LABEL]

RUNS.tsv holds one figure a line, `round<TAB>name<TAB>value`, as bench/lib.sh's `record` writes
them (a value is a number, or a JSON object for bench/sweep.sh); KEY=VALUE are the run's
settings, which the caption names. Standard library only: any Python 3 prints a table.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- what every table shares ---

def _run(*command):
    try:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine():
    """`2 cores (CPU model), x86_64, no GPU` (or the GPUs' names)."""
    cores = len(os.sched_getaffinity(0))
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    gpus = [g for g in _run("nvidia-smi", "--query-gpu=name", "--format=csv,noheader").splitlines() if g]
    gpu = ", ".join(gpus) if gpus else "no GPU"
    return f"{cores} cores{f' ({cpu})' if cpu else ''}, {platform.machine()}, {gpu}"


def header(command, ltsweep=None):
    """The line that heads every table: when, what, where, and how to print it again."""
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    commit = _run("git", "rev-parse", "--short", "HEAD") or "unknown"
    if _run("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    measured = f"; ltsweep: {ltsweep}" if ltsweep else ""
    return f"{date}, commit {commit}, {machine()}{measured}; reprinted by `{command}`"


def read_runs(path):
    """{name: [value of round 1, round 2, ...]}, values as written (strings)."""
    runs = defaultdict(list)
    with open(path) as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                raise SystemExit(f"{path}:{number}: not round<TAB>name<TAB>value")
            runs[parts[1]].append(parts[2])
    return runs


def medians(runs):
    return {name: statistics.median(float(v) for v in values) for name, values in runs.items()}


def rounds(values):
    return f"median of {len(values)} round{'s' if len(values) != 1 else ''}"


def ratio(a, b):
    return f"{a / b:.2f}x"


def markdown(columns, rows, align=None):
    """A Markdown table; `align` gives each column's separator (`---` by default)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(align or ["---"] * len(columns)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    # A trailing empty cell prints as `| |`, as the tables in docs were printed.
    return [line.replace("|  |", "| |") for line in lines]


# --- each script's table: (settings, runs) -> lines ---

def train(s, runs):
    """bench/train.sh: ltsweep's full loop against the peer's pipelines, at its best settings."""
    m = medians(runs)
    labels = {
        "loader0": "PyTorch, DataLoader in the training process (0 loader processes)",
        "loader1": "PyTorch, DataLoader with 1 loader process",
        "loader2": "PyTorch, DataLoader with 2 loader processes",
        "tensor": "PyTorch, batched tensor crop + flip on the device (ltsweep's pipeline)",
        "compute": "PyTorch, the model's math alone on one fixed batch (the floor)",
    }
    ours = m["ltsweep"]
    # With a policy, Cutout or mixing the peer has no tensor pipeline (train.sh leaves it out).
    present = [name for name in ("loader0", "loader1", "loader2", "tensor") if name in m]
    full = max(present, key=m.get)
    threads = f", {s['threads']} threads" if s.get("threads", "0") != "0" else ""
    extra = [f"{key} {s[key]}" for key, off in (("policy", "standard"), ("cutout", "0"), ("mix", "none"))
             if s.get(key, off) != off]
    augment = f"; both sides with {', '.join(extra)}" if extra else ""
    rows = [("ltsweep, full training loop (augmentation included)", f"{ours:.1f}", "")]
    for name, label in labels.items():
        if name not in m:
            continue
        mark = " (best full loop)" if name == full else ""
        rows.append((f"{label}{mark}", f"{m[name]:.1f}", ratio(ours, m[name])))
    return [f"ResNet-{s['depth']}, batch {s['batch']}, {s['images']} images an epoch, {s['epochs']} timed "
            f"epochs after one warm-up, {s['device']}{threads}, {rounds(runs['ltsweep'])}; "
            f"peer: SGD {s['sgd']}, allocator {s['alloc']} (its best here){augment}",
            *markdown(["figure", "images/s", "ltsweep / it"], rows),
            f"ltsweep / best PyTorch full loop: {ours / m[full]:.2f}x (target >= 1.00x)"]


def imagenet(s, runs):
    """bench/imagenet.sh: an ImageNet ResNet in float32 and in bf16 with channels-last."""
    m = medians(runs)
    rows = []
    for key, label in [("fp32", "float32"), ("bf16", "bf16 autocast, channels-last")]:
        ours, peer = m[f"ltsweep_{key}"], m[f"peer_{key}"]
        rows.append((label, f"{ours:.3f}", f"{peer:.3f}", ratio(ours, peer)))
    return [f"{s['arch']}, {s['image_size']}x{s['image_size']} random images, batch {s['batch']}, "
            f"{s['images']} images x {s['epochs']} timed epochs, {s['threads']} threads on {s['device']}, "
            f"{rounds(runs['ltsweep_fp32'])}",
            "",
            *markdown(["precision", "ltsweep images/s", "PyTorch images/s", "ltsweep / PyTorch"], rows,
                      ["---", "--:", "--:", "--:"])]


def gpu(s, runs):
    """bench/gpu.sh: one job, N slots, fused arrays and the peer on one device, and the study's
    projected wall time at the best configuration."""
    fig = {name: float(values[0]) for name, values in runs.items() if name != "slot"}
    # N slots: the N processes' rates, each over its own (overlapping) span, summed.
    fig["slots"] = sum(float(v) for v in runs["slot"])
    slots, workers = s["slots"], s["loader_workers"]
    fused = sorted((int(k[4:]), v) for k, v in fig.items() if k.startswith("fuse"))
    rows = [("ltsweep, one job", fig["one"]), (f"ltsweep, {slots} slots (processes) at once", fig["slots"])]
    rows += [(f"ltsweep, fused array of {n} jobs", v) for n, v in fused]
    rows += [(f"PyTorch, DataLoader ({workers} loader processes)", fig["loader"]),
             ("PyTorch, compute-only (one fixed batch, no data)", fig["compute"])]
    best_label, best = max(rows[:-2], key=lambda r: r[1])
    best_fused = max((v for _, v in fused), default=0.0)
    # The paper's study: 9 plans x 3 seeds x 300 epochs of 10,847 images; the 5 plans with
    # Complement Entropy take two passes a batch: (4 + 5 x 2) x 3 = 42 job-passes.
    study = 42 * 300 * 10847
    return [f"ResNet-{s['depth']}, batch {s['batch']}, {s['images']} images an epoch, {s['epochs']} timed "
            f"epochs after one warm-up, {s['device']}",
            *markdown(["configuration", "images/s", "/ one ltsweep job", "/ PyTorch DataLoader"],
                      [(label, f"{v:.1f}", ratio(v, fig["one"]), ratio(v, fig["loader"])) for label, v in rows]),
            f"best configuration: {best_label}, {best:.1f} images/s",
            f"paper's study (27 jobs x 300 epochs x 10,847 images, Comp plans twice: {study:,} image-passes) "
            f"projected at {study / best / 60:.1f} minutes (target <= 15 on one H200); "
            f"one PyTorch DataLoader job at a time: {study / fig['loader'] / 60:.1f} minutes",
            f"best / PyTorch DataLoader: {best / fig['loader']:.2f}x (target >= 8x); "
            f"best fused / {slots} slots: {best_fused / fig['slots']:.2f}x (target >= 1.3x)"]


def loader(s, runs):
    """bench/loader.sh: the list loader against the DataLoader's best worker count per decoder."""
    m = medians(runs)
    cores = int(s["cores"])
    ours = m["ltsweep"]
    rows = [(f"ltsweep ({cores} loader threads)", f"{ours:.1f}", "")]
    best_peer, best_name = 0.0, ""
    for decoder, label in [("pil", "Pillow + draft()"), ("tv", "torchvision.io.decode_jpeg")]:
        workers = max(range(cores + 2), key=lambda w: m[f"{decoder}-{w}"])
        best = m[f"{decoder}-{workers}"]
        rows.append((f"PyTorch DataLoader, {label}, best of 0-{cores + 1} workers: {workers}", f"{best:.1f}",
                     ratio(ours, best)))
        if best > best_peer:
            best_peer, best_name = best, label
    # The whole-image decode ceiling: libjpeg-turbo's faster decoder on one core, times the cores.
    decoder, one_core = max(((d, m[f"decode-{d}"]) for d in ("pil", "tv")), key=lambda x: x[1])
    ceiling = one_core * cores
    fastest = {"pil": "Pillow", "tv": "torchvision.io.decode_jpeg"}[decoder]
    rows.append((f"ceiling: whole-image decoding alone ({fastest}, libjpeg-turbo), one core x {cores}",
                 f"{ceiling:.1f}", ratio(ours, ceiling)))
    if "decode-ltsweep" in m:
        rows.append((f"ltsweep's decoder alone, whole images, one core x {cores}",
                     f"{m['decode-ltsweep'] * cores:.1f}", ratio(ours, m["decode-ltsweep"] * cores)))
    every = [f"  {name}: {m[name]:.1f}  (rounds: {' '.join(values)})" for name, values in runs.items()]
    return [f"{s['images']} JPEGs, batches of [{s['batch']}, 3, 224, 224], {cores} cores, "
            f"{rounds(runs['ltsweep'])}",
            *markdown(["loader", "images/s", "ltsweep / it"], rows),
            "",
            "every configuration's median (images/s; decode-* is one core decoding whole images):",
            *every,
            f"ltsweep / best peer ({best_name}): {ours / best_peer:.2f} (target >= 1.5); "
            f"ltsweep / whole-image decode ceiling: {ours / ceiling:.2f} (target > 1)"]


def sweep(s, runs):
    """bench/sweep.sh: a sweep of minimal jobs, ltsweep against Ray Tune."""
    ours = [json.loads(v) for v in runs["ltsweep"]]
    ray = [json.loads(v) for v in runs["ray"]]

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    o_total, o_submit = med(ours, "total_s"), med(ours, "submit_to_last_result_s")
    r_total, r_fit = med(ray, "total_s"), med(ray, "fit_s")
    return [f"{ours[0]['trials']} jobs, {ours[0]['concurrent']} at a time, {rounds(ours)}",
            *markdown(["figure", "ltsweep", "Ray Tune", "Ray Tune / ltsweep"], [
                ("submit (fit) to last result", f"{o_submit:.2f} s", f"{r_fit:.2f} s", f"{r_fit / o_submit:.1f}x"),
                ("whole run, start-up included", f"{o_total:.2f} s", f"{r_total:.2f} s",
                 f"{r_total / o_total:.1f}x (target >= 20x)"),
                ("per job", f"{med(ours, 'per_trial_s'):.3f} s", f"{med(ray, 'per_trial_s'):.3f} s", ""),
            ]),
            f"(ltsweep jobs train for real: one tch step on synthetic data and a test evaluation; "
            f"{ray[0]['tool']} trials report a constant)"]


def head_node(s, runs):
    """bench/head-node.sh: the head-node build beside the full one (no peer: a build against a build)."""
    fig = {name: int(values[0]) for name, values in runs.items()}

    def mib(b):
        return f"{b / 1048576:.1f} MiB"

    rows = [(build, mib(fig[f"{build}.binary"]), mib(fig[f"{build}.dwp"]), f"{fig[f'{build}.libtorch']} libraries",
             mib(fig[f"{build}.rss"] * 1024), mib(fig[f"{build}.hwm"] * 1024)) for build in ("full", "head-node")]
    return [f"release builds; an idle coordinator read {s['settle']} s after it listens",
            "",
            *markdown(["build", "binary", "split debug info (.dwp)", "libtorch in ldd", "idle coordinator VmRSS",
                       "VmHWM"], rows)]


TABLES = {"train": train, "imagenet": imagenet, "gpu": gpu, "loader": loader, "sweep": sweep,
          "head-node": head_node}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=["header", *TABLES])
    ap.add_argument("--command", required=True, help="the command that reprints the table")
    ap.add_argument("--ltsweep", help="the ltsweep measured (a build's profile, or a path)")
    ap.add_argument("--runs", help="the figures, round<TAB>name<TAB>value a line")
    ap.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    a = ap.parse_intermixed_args()
    lines = []
    if a.kind != "header":
        if not a.runs:
            ap.error(f"{a.kind} needs --runs")
        settings = {}
        for item in a.settings:
            key, sep, value = item.partition("=")
            if not sep:
                ap.error(f"setting '{item}' is not KEY=VALUE")
            settings[key] = value
        try:
            lines = TABLES[a.kind](settings, read_runs(a.runs))
        except KeyError as missing:
            raise SystemExit(f"{a.runs}: the {a.kind} table needs {missing}, a figure or setting this run lacks")
    print("\n".join([header(a.command, a.ltsweep), *lines]))

if __name__ == "__main__":
    sys.exit(main())
