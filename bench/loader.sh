#!/usr/bin/env bash
# The list data loader's throughput: ltsweep against PyTorch's DataLoader, in one run, on the
# same JPEGs and the same cores.
#
#   bench/loader.sh [--images 1000] [--rounds 3] [--cores N]
#
# Makes --images JPEGs once (target/bench-loader/): photographs shipped in scikit-image's wheel
# on PyPI (its public-domain and CC0 images), cut at random places and scales to 500 x 375 (a
# quarter of them 375 x 500, ImageNet's typical sizes), saved at quality 90 by Pillow, with a
# list file. Then, for --rounds rounds, interleaved: `ltsweep bench loader` (--cores loader
# threads) and the peer bench/peers/loader_peer.py with Pillow (+ draft()) and with
# torchvision.io.decode_jpeg, each with 0 to --cores + 1 loader processes. Every figure is
# images/s of shuffled float batches of [128, 3, 224, 224] after RandomResizedCrop(224), a flip
# and normalisation, over two passes after one untimed pass. Prints each configuration's median,
# each decoder's best, and ltsweep's ratio to the best peer.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

images=1000 rounds=3 cores=$(nproc)
while [[ $# -gt 0 ]]; do
    case $1 in
        --images) images=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --cores) cores=$2; shift 2 ;;
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

data=$root/target/bench-loader
if [[ ! -f $data/.made-$images ]]; then
    mkdir -p "$data/wheel"
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --dest "$data/wheel" scikit-image==0.26.0
    "$python" - "$data" "$images" <<'EOF'
import random, sys, zipfile
from io import BytesIO
from pathlib import Path
from PIL import Image

data, count = Path(sys.argv[1]), int(sys.argv[2])
# The colour photographs of scikit-image's data folder: NASA's and SpaceX's (public domain),
# and the CC0 ones (cat, coffee, retina, textures).
names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "retina.jpg",
         "hubble_deep_field.jpg", "ihc.png", "brick.png", "grass.png", "gravel.png"]
wheel = zipfile.ZipFile(next(data.joinpath("wheel").glob("scikit_image-*.whl")))
photos = [Image.open(BytesIO(wheel.read(f"skimage/data/{n}"))).convert("RGB") for n in names]
rng = random.Random(0)
out = data / "images"
out.mkdir(exist_ok=True)
lines = []
for i in range(count):
    photo = photos[i % len(photos)]
    w, h = photo.size
    tw, th = (375, 500) if rng.random() < 0.25 else (500, 375)
    ratio = tw / th
    side = rng.uniform(0.5, 1.0)
    cw = min(w, int((side * w * h * ratio) ** 0.5))
    ch = min(h, int(cw / ratio))
    cw = int(ch * ratio)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    image = photo.crop((x, y, x + cw, y + ch)).resize((tw, th), Image.BICUBIC)
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    image.save(out / f"{i:05d}.jpg", quality=90)
    lines.append(f"images/{i:05d}.jpg {i % 100}\n")
(data / "train.txt").write_text("".join(lines))
EOF
    touch "$data/.made-$images"
fi
echo "data: $images JPEGs in $data ($(du -sh "$data/images" | cut -f1)); $cores cores" >&2

rate() { sed -n 's/^images_per_second=//p' | tail -1; }
peer() {
    taskset -c "0-$((cores - 1))" "$python" bench/peers/loader_peer.py --root "$data" --list train.txt "$@" |
        "$python" -c 'import json, sys; print(round(json.loads(sys.stdin.read())["images_per_second"], 1))'
}

declare -A runs
names=(ltsweep)
for decoder in pil tv; do
    for workers in $(seq 0 $((cores + 1))); do
        names+=("$decoder-$workers")
    done
done
for round in $(seq "$rounds"); do
    runs[ltsweep]+=" $(taskset -c "0-$((cores - 1))" "$ltsweep" bench loader --path "$data" --list train.txt --threads "$cores" | rate)"
    for decoder in pil tv; do
        for workers in $(seq 0 $((cores + 1))); do
            runs[$decoder-$workers]+=" $(peer --decoder "$decoder" --workers "$workers")"
        done
    done
    echo "round $round: $(for n in "${names[@]}"; do printf '%s=%s ' "$n" "$(echo "${runs[$n]}" | awk '{print $NF}')"; done)" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ours=$(echo "${runs[ltsweep]}" | median)
echo
echo "| loader | images/s | ltsweep / it |"
echo "|---|---|---|"
echo "| ltsweep ($cores loader threads) | $ours | |"
best_peer=0 best_name=
for decoder in pil tv; do
    best=0 best_workers=0
    for workers in $(seq 0 $((cores + 1))); do
        m=$(echo "${runs[$decoder-$workers]}" | median)
        if awk -v a="$m" -v b="$best" 'BEGIN { exit !(a > b) }'; then best=$m best_workers=$workers; fi
    done
    label=$([[ $decoder == pil ]] && echo "Pillow + draft()" || echo "torchvision.io.decode_jpeg")
    ratio=$(awk -v a="$ours" -v b="$best" 'BEGIN { printf "%.2fx", a / b }')
    echo "| PyTorch DataLoader, $label, best of 0-$((cores + 1)) workers: $best_workers | $best | $ratio |"
    if awk -v a="$best" -v b="$best_peer" 'BEGIN { exit !(a > b) }'; then best_peer=$best best_name=$label; fi
done
echo
echo "every configuration's median (images/s):"
for n in "${names[@]}"; do echo "  $n: $(echo "${runs[$n]}" | median)  (rounds:${runs[$n]})"; done
echo "ltsweep / best peer ($best_name): $(awk -v a="$ours" -v b="$best_peer" 'BEGIN { printf "%.2f", a / b }')"
