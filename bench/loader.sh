#!/usr/bin/env bash
# The list data loader's throughput: ltsweep against PyTorch's DataLoader, in one run, on the
# same JPEGs and the same cores.
#
#   bench/loader.sh [--images 1000] [--rounds 3] [--cores N]
#
# Makes --images JPEGs once into --data (bench/peers/make_jpegs.py: photographs of scikit-image's
# wheel cut to 500 x 375 and 375 x 500, quality 90, with a list file). Then, for --rounds rounds,
# interleaved: `ltsweep bench loader` (--cores loader threads) and the peer
# bench/peers/loader_peer.py with Pillow (+ draft()) and with torchvision.io.decode_jpeg, each
# with 0 to --cores + 1 loader processes, every process pinned to the first --cores cores. Every
# figure is images/s of shuffled float batches of [--batch, 3, 224, 224] after
# RandomResizedCrop(224), a flip and normalisation, over --passes passes after one untimed pass.
# Each round also times libjpeg-turbo decoding whole images alone (Pillow and torchvision, files
# in memory, one thread pinned to the first core): the faster one's rate times --cores is the
# ceiling of any loader that decodes whole images on these cores; and ltsweep's own decoder
# the same way (`ltsweep bench loader --decode-only`).
# Prints each configuration's median, each decoder's best, the ceiling, and ltsweep's ratio to the
# best peer and to the ceiling.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flag images 1000 "JPEGs in the list" int
flag rounds 3 "interleaved rounds; each figure is the median over them" int
flag cores "$(nproc)" "cores both loaders run on: ltsweep's threads, the peer's 0 to cores + 1 processes" int
flag batch 128 "batch size" int
flag passes 2 "timed passes over the list, after one untimed pass" int
flag data "$root/target/bench-loader" "the folder of the JPEGs, made once for each --images" path
common_flags ltsweep python setup out
parse_flags "$@"
((cores >= 1)) || die "--cores must be at least 1"
use_ltsweep
use_python bench/peers/requirements.txt
use_out

if [[ ! -f $data/.made-$images ]]; then
    "$python" bench/peers/make_jpegs.py --data "$data" --images "$images"
    touch "$data/.made-$images"
fi
say "data: $images JPEGs in $data ($(du -sh "$data/images" | cut -f1)); $cores cores"

pinned() { taskset -c "0-$((cores - 1))" "$@"; }
for round in $(seq "$rounds"); do
    record decode-ltsweep "$(taskset -c 0 "$ltsweep" bench loader --path "$data" --list train.txt \
        --passes "$passes" --decode-only | rate)"
    record ltsweep "$(pinned "$ltsweep" bench loader --path "$data" --list train.txt --threads "$cores" \
        --batch "$batch" --passes "$passes" | rate)"
    for decoder in pil tv; do
        for workers in $(seq 0 $((cores + 1))); do
            record "$decoder-$workers" "$(pinned "$python" bench/peers/loader_peer.py --root "$data" \
                --list train.txt --decoder "$decoder" --workers "$workers" --batch "$batch" \
                --passes "$passes" | rate)"
        done
        record "decode-$decoder" "$(taskset -c 0 "$python" bench/peers/loader_peer.py --root "$data" \
            --list train.txt --decoder "$decoder" --workers 0 --passes "$passes" --decode-only | rate)"
    done
done

print_table loader images="$images" cores="$cores" batch="$batch"
