#!/usr/bin/env bash
# Training throughput: ltsweep against the PyTorch peer at its best configuration, in one run,
# on the same libtorch, over the same timed span (one warm-up epoch, then --epochs epochs).
#
#   bench/train.sh [--depth 20] [--images 4096] [--epochs 2] [--rounds 3] [--device cpu|cuda]
#
# The peer is bench/peers/pytorch_loop.py. First a calibration pass picks the peer's best
# optimiser (foreach, fused or per-parameter SGD) and allocator policy (glibc defaults, or freed
# memory kept as ltsweep keeps it) on this machine; then, for --rounds rounds, interleaved:
# `ltsweep bench train` (shuffle, on-device crop + flip + normalise, forward, backward, SGD) and
# the peer's input pipelines with those settings: a DataLoader with 0, 1 and 2 loader processes,
# the batched-tensor pipeline ltsweep uses written in PyTorch, and the model's math alone on one
# fixed batch (the floor). Prints each figure's median and ltsweep's ratio to each.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

depth=20 images=4096 epochs=2 rounds=3 device=cpu
while [[ $# -gt 0 ]]; do
    case $1 in
        --depth) depth=$2; shift 2 ;;
        --images) images=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --device) device=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

./dev setup
python=${PEER_PYTHON:-$root/.venv/bin/python}
"$python" -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements.txt
ltsweep=${LTSWEEP_BIN:-}
if [[ -z $ltsweep ]]; then
    cargo build --quiet --release --bin ltsweep
    ltsweep=${CARGO_TARGET_DIR:-$root/target}/release/ltsweep
fi

rate() { sed -n 's/^images_per_second=//p' | tail -1; }
common=(--depth "$depth" --images "$images" --epochs "$epochs" --device "$device")
peer() { "$python" bench/peers/pytorch_loop.py "${common[@]}" "$@" | rate; }

# Calibration on the model's math, where the optimiser and the allocator matter most.
best_rate=0 best_sgd=foreach best_alloc=default
for sgd in foreach fused single; do
    for alloc in default keep; do
        r=$(peer --mode compute --sgd "$sgd" --alloc "$alloc" || echo 0)
        echo "calibration: sgd=$sgd alloc=$alloc ${r:-0} images/s" >&2
        if awk -v a="${r:-0}" -v b="$best_rate" 'BEGIN { exit !(a > b) }'; then
            best_rate=$r best_sgd=$sgd best_alloc=$alloc
        fi
    done
done
echo "peer settings: sgd=$best_sgd alloc=$best_alloc" >&2
tuned=(--sgd "$best_sgd" --alloc "$best_alloc")

declare -A runs
names=(ltsweep loader0 loader1 loader2 tensor compute)
for round in $(seq "$rounds"); do
    runs[ltsweep]+=" $("$ltsweep" bench train "${common[@]}" | rate)"
    for w in 0 1 2; do runs[loader$w]+=" $(peer --mode loader --workers "$w" "${tuned[@]}")"; done
    runs[tensor]+=" $(peer --mode tensor "${tuned[@]}")"
    runs[compute]+=" $(peer --mode compute "${tuned[@]}")"
    line="round $round:"
    for n in "${names[@]}"; do line+=" $n $(awk '{print $NF}' <<<"${runs[$n]}")"; done
    echo "$line images/s" >&2
done

args=()
for n in "${names[@]}"; do args+=("$n=${runs[$n]}"); done
"$python" - "$depth" "$images" "$epochs" "$device" "$best_sgd" "$best_alloc" "${args[@]}" <<'PY'
import statistics, sys
depth, images, epochs, device, sgd, alloc = sys.argv[1:7]
runs = {}
for arg in sys.argv[7:]:
    name, values = arg.split("=", 1)
    runs[name] = statistics.median(float(v) for v in values.split())
labels = {
    "loader0": "PyTorch, DataLoader in the training process (0 loader processes)",
    "loader1": "PyTorch, DataLoader with 1 loader process",
    "loader2": "PyTorch, DataLoader with 2 loader processes",
    "tensor": "PyTorch, batched tensor crop + flip on the device (ltsweep's pipeline)",
    "compute": "PyTorch, the model's math alone on one fixed batch (the floor)",
}
ours = runs["ltsweep"]
full = max(("loader0", "loader1", "loader2", "tensor"), key=runs.get)
rounds = len(sys.argv[7].split("=", 1)[1].split())
print(f"ResNet-{depth}, batch 128, {images} images an epoch, {epochs} timed epochs after one warm-up, "
      f"{device}, median of {rounds} rounds; peer: SGD {sgd}, allocator {alloc} (its best here)")
print("| figure | images/s | ltsweep / it |")
print("|---|---|---|")
print(f"| ltsweep, full training loop (augmentation included) | {ours:.1f} | |")
for name, label in labels.items():
    mark = " (best full loop)" if name == full else ""
    print(f"| {label}{mark} | {runs[name]:.1f} | {ours / runs[name]:.2f}x |")
print(f"ltsweep / best PyTorch full loop: {ours / runs[full]:.2f}x (target >= 1.00x)")
PY
