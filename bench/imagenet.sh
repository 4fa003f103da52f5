#!/usr/bin/env bash
# Training throughput of an ImageNet ResNet: ltsweep against the PyTorch peer (torchvision's
# model), same batch, same images, same span (one warm-up epoch, then --epochs epochs), same
# libtorch, in float32 and in bf16 mixed precision with channels-last activations.
#
#   bench/imagenet.sh [--arch resnet50] [--image-size 224] [--batch 8] [--images 16]
#                     [--epochs 2] [--rounds 1] [--threads 2] [--device cpu|cuda]
#
# ltsweep: `ltsweep bench train --arch ...` (shuffle, on-device crop + flip + normalise, forward,
# backward, SGD). The peer: bench/peers/pytorch_loop.py --mode tensor, the same batched pipeline
# written in PyTorch, torch.autocast(bfloat16) and torch.channels_last for the second setting,
# torch.optim.SGD(foreach=True) (PyTorch's default; the optimiser is a few milliseconds of a
# ResNet-50 step). Rounds are interleaved; each figure is the median over rounds.
# LTSWEEP_BIN picks the binary (default: a release build, made here).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

arch=resnet50 size=224 batch=8 images=16 epochs=2 rounds=1 threads=2 device=cpu
while [[ $# -gt 0 ]]; do
    case $1 in
        --arch) arch=$2; shift 2 ;;
        --image-size) size=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --images) images=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --device) device=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

./dev setup
python=${PEER_PYTHON:-$root/.venv/bin/python}
ltsweep=${LTSWEEP_BIN:-}
if [[ -z $ltsweep ]]; then
    cargo build --quiet --release --bin ltsweep
    ltsweep=${CARGO_TARGET_DIR:-$root/target}/release/ltsweep
fi

rate() { sed -n 's/^images_per_second=//p' | tail -1; }
common=(--arch "$arch" --image-size "$size" --batch "$batch" --images "$images" --epochs "$epochs"
        --device "$device" --threads "$threads")

declare -A runs
names=(ltsweep_fp32 peer_fp32 ltsweep_bf16 peer_bf16)
for round in $(seq "$rounds"); do
    runs[ltsweep_fp32]+=" $("$ltsweep" bench train "${common[@]}" --precision fp32 --channels-last false | rate)"
    runs[peer_fp32]+=" $("$python" bench/peers/pytorch_loop.py --mode tensor "${common[@]}" | rate)"
    runs[ltsweep_bf16]+=" $("$ltsweep" bench train "${common[@]}" --precision bf16 --channels-last true | rate)"
    runs[peer_bf16]+=" $("$python" bench/peers/pytorch_loop.py --mode tensor "${common[@]}" --precision bf16 --channels-last | rate)"
    line="round $round:"
    for n in "${names[@]}"; do line+=" $n $(awk '{print $NF}' <<<"${runs[$n]}")"; done
    echo "$line images/s" >&2
done

args=()
for n in "${names[@]}"; do args+=("$n=${runs[$n]}"); done
"$python" - "$arch" "$size" "$batch" "$images" "$epochs" "$threads" "$device" "${args[@]}" <<'PY'
import statistics, sys
arch, size, batch, images, epochs, threads, device = sys.argv[1:8]
runs = {}
for arg in sys.argv[8:]:
    name, values = arg.split("=", 1)
    runs[name] = statistics.median(float(v) for v in values.split())
print(f"{arch}, {size}x{size} random images, batch {batch}, {images} images x {epochs} timed epochs, "
      f"{threads} threads on {device}, median of the rounds")
print()
print("| precision | ltsweep images/s | PyTorch images/s | ltsweep / PyTorch |")
print("|---|--:|--:|--:|")
for key, label in [("fp32", "float32"), ("bf16", "bf16 autocast, channels-last")]:
    ours, peer = runs[f"ltsweep_{key}"], runs[f"peer_{key}"]
    print(f"| {label} | {ours:.3f} | {peer:.3f} | {ours / peer:.2f}x |")
PY
