#!/usr/bin/env bash
# Training throughput, ours against the PyTorch peer, in one run on the same libtorch.
#
#   bench/train.sh [--depth 20] [--images 4096] [--rounds 3] [--device cpu|cuda]
#
# Runs, alternating, for --rounds rounds: `ltsweep bench train` (our full loop: shuffle,
# on-device crop + flip + normalise, forward, backward, SGD), the peer's `--mode loader`
# (torchvision transforms through a DataLoader: what users run today) and `--mode compute` (the
# model's math on one fixed batch: the floor). Prints each figure's median and the ratios.
# The peer is ../shared/bench/pytorch_peer.py unless PYTORCH_PEER names another copy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

depth=20 images=4096 rounds=3 device=cpu
while [[ $# -gt 0 ]]; do
    case $1 in
        --depth) depth=$2; shift 2 ;;
        --images) images=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --device) device=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
peer=${PYTORCH_PEER:-$root/../shared/bench/pytorch_peer.py}
[[ -f $peer ]] || { echo "no PyTorch peer at $peer (set PYTORCH_PEER)" >&2; exit 2; }

./dev setup
python=${PEER_PYTHON:-$root/.venv/bin/python}
# The peer's own needs, beside the torch the set-up installed.
"$python" -m pip install --quiet --disable-pip-version-check torchvision==0.26.0 numpy pillow
ltsweep=${LTSWEEP_BIN:-}
if [[ -z $ltsweep ]]; then
    cargo build --quiet --release --bin ltsweep
    ltsweep=${CARGO_TARGET_DIR:-$root/target}/release/ltsweep
fi

rate() { sed -n 's/^images_per_second=//p' | tail -1; }
ours=() loader=() compute=()
for round in $(seq "$rounds"); do
    ours+=("$("$ltsweep" bench train --depth "$depth" --images "$images" --device "$device" | rate)")
    loader+=("$("$python" "$peer" --mode loader --depth "$depth" --images "$images" | rate)")
    compute+=("$("$python" "$peer" --mode compute --depth "$depth" --images "$images" | rate)")
    echo "round $round: ltsweep ${ours[-1]}  pytorch-loader ${loader[-1]}  pytorch-compute ${compute[-1]} images/s" >&2
done

"$python" - "$depth" "$images" "$device" "${ours[*]}" "${loader[*]}" "${compute[*]}" <<'PY'
import statistics, sys
depth, images, device = sys.argv[1:4]
ours, loader, compute = ([float(x) for x in arg.split()] for arg in sys.argv[4:7])
m = {name: statistics.median(v) for name, v in [("ours", ours), ("loader", loader), ("compute", compute)]}
print(f"ResNet-{depth}, batch 128, {images} images an epoch, {device}, median of {len(ours)} rounds")
print(f"| figure | images/s | ltsweep / it |")
print(f"|---|---|---|")
print(f"| ltsweep full loop (augmentation included) | {m['ours']:.1f} | |")
print(f"| PyTorch peer, DataLoader + torchvision (--mode loader) | {m['loader']:.1f} | {m['ours'] / m['loader']:.2f}x (target >= 1.10x) |")
print(f"| PyTorch peer, model math only (--mode compute) | {m['compute']:.1f} | {m['ours'] / m['compute']:.2f}x (target >= 0.95x) |")
PY
