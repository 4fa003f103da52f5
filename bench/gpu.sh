#!/usr/bin/env bash
# Throughput on one GPU: one ltsweep job, N slots (N job processes at once), fused arrays of
# 4, 9 and 27 jobs, and the PyTorch peer (DataLoader and compute-only), then the projected wall
# time of the paper's whole study at the best configuration, and the ratios. One prepared run,
# under 8 minutes on one H200.
#
#   bench/gpu.sh                   # on cuda
#   GPU_SH_DEVICE=cpu bench/gpu.sh # shortened, on the CPU: checks that the script works
#
# Settings (environment): GPU_SH_DEVICE (cuda), GPU_SH_DEPTH (20), GPU_SH_IMAGES (10847, the
# paper's CIFAR-10-LT epoch), GPU_SH_EPOCHS (2 timed epochs after one warm-up), GPU_SH_SLOTS (4),
# GPU_SH_FUSE ("4 9 27"), GPU_SH_LOADER_WORKERS (4), LTSWEEP_BIN (a built ltsweep; otherwise
# built here in release), PEER_PYTHON (the peer's Python; .venv's by default), GPU_SH_SKIP_SETUP=1
# (skip ./dev setup and the peer's pip install: an offline machine already set up).
#
# What each figure is: `ltsweep bench train` on random 32x32 images, ResNet-DEPTH, batch 128,
# crop + flip + normalise on the device, cross entropy; images/s over the timed epochs, summed
# over the jobs of a fused array. "N slots" runs N such processes at once on the device and sums
# their rates (each timed over its own span, which overlap). The PyTorch peer is
# bench/peers/pytorch_loop.py with the same recipe, foreach SGD.
#
# The projection: the paper's study is 9 plans x 3 seeds = 27 jobs x 300 epochs of 10,847
# images; the 5 plans with Complement Entropy (alternating) take a second forward and backward
# pass on every batch, so they count twice: (4 + 5 x 2) x 3 = 42 job-passes x 300 x 10,847
# images. PC's cost (a distance matrix on 64-d features) is not counted. Evaluation neither.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

device=${GPU_SH_DEVICE:-cuda}
if [[ $device == cpu ]]; then
    # Shortened: a check that every step runs, not a measurement.
    depth=${GPU_SH_DEPTH:-8} images=${GPU_SH_IMAGES:-256} epochs=${GPU_SH_EPOCHS:-1}
    slots=${GPU_SH_SLOTS:-2} fuse=${GPU_SH_FUSE:-"2 3"} loader_workers=${GPU_SH_LOADER_WORKERS:-0}
else
    depth=${GPU_SH_DEPTH:-20} images=${GPU_SH_IMAGES:-10847} epochs=${GPU_SH_EPOCHS:-2}
    slots=${GPU_SH_SLOTS:-4} fuse=${GPU_SH_FUSE:-"4 9 27"} loader_workers=${GPU_SH_LOADER_WORKERS:-4}
fi

python=${PEER_PYTHON:-$root/.venv/bin/python}
if [[ -z ${GPU_SH_SKIP_SETUP:-} ]]; then
    ./dev setup
    "$python" -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
fi
ltsweep=${LTSWEEP_BIN:-}
if [[ -z $ltsweep ]]; then
    cargo build --quiet --release --bin ltsweep
    ltsweep=${CARGO_TARGET_DIR:-$root/target}/release/ltsweep
fi

rate() { sed -n 's/^images_per_second=//p' | tail -1; }
common=(--depth "$depth" --images "$images" --epochs "$epochs" --device "$device")
ours() { "$ltsweep" bench train "${common[@]}" "$@" | rate; }
peer() { "$python" bench/peers/pytorch_loop.py "${common[@]}" --sgd foreach "$@" | rate; }
say() { echo "$*" >&2; }

declare -A figure
figure[one]=$(ours); say "one job: ${figure[one]} images/s"

# N slots: N processes on the device at once, their rates summed.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for i in $(seq "$slots"); do ours >"$dir/slot$i" & done
wait
figure[slots]=$(cat "$dir"/slot* | awk '{ s += $1 } END { printf "%.1f", s }')
say "$slots slots: ${figure[slots]} images/s"

for n in $fuse; do
    figure[fuse$n]=$(ours --fuse "$n"); say "fused array of $n: ${figure[fuse$n]} images/s"
done

figure[loader]=$(peer --mode loader --workers "$loader_workers"); say "PyTorch DataLoader ($loader_workers loader processes): ${figure[loader]} images/s"
figure[compute]=$(peer --mode compute); say "PyTorch compute-only: ${figure[compute]} images/s"

args=()
for k in "${!figure[@]}"; do args+=("$k=${figure[$k]}"); done
"$python" - "$depth" "$images" "$epochs" "$device" "$slots" "$loader_workers" "${args[@]}" <<'PY'
import sys
depth, images, epochs, device, slots, loader_workers = sys.argv[1:7]
fig = {k: float(v) for k, v in (a.split("=", 1) for a in sys.argv[7:])}
fused = sorted((int(k[4:]), v) for k, v in fig.items() if k.startswith("fuse"))
rows = [("ltsweep, one job", fig["one"]), (f"ltsweep, {slots} slots (processes) at once", fig["slots"])]
rows += [(f"ltsweep, fused array of {n} jobs", v) for n, v in fused]
rows += [(f"PyTorch, DataLoader ({loader_workers} loader processes)", fig["loader"]),
         ("PyTorch, compute-only (one fixed batch, no data)", fig["compute"])]
print(f"ResNet-{depth}, batch 128, {images} images an epoch, {epochs} timed epochs after one warm-up, {device}")
print("| configuration | images/s | / one ltsweep job | / PyTorch DataLoader |")
print("|---|---|---|---|")
for label, v in rows:
    print(f"| {label} | {v:.1f} | {v / fig['one']:.2f}x | {v / fig['loader']:.2f}x |")
best_label, best = max(rows[:-2], key=lambda r: r[1])
best_fused = max((v for _, v in fused), default=0.0)
study = 42 * 300 * 10847
print(f"best configuration: {best_label}, {best:.1f} images/s")
print(f"paper's study (27 jobs x 300 epochs x 10,847 images, Comp plans twice: {study:,} image-passes) "
      f"projected at {study / best / 60:.1f} minutes (target <= 15 on one H200); "
      f"one PyTorch DataLoader job at a time: {study / fig['loader'] / 60:.1f} minutes")
print(f"best / PyTorch DataLoader: {best / fig['loader']:.2f}x (target >= 8x); "
      f"best fused / {slots} slots: {best_fused / fig['slots']:.2f}x (target >= 1.3x)")
PY
