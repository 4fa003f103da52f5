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
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flag depth 20 "the CIFAR ResNet's depth (6n+2)" int
flag images 4096 "random 32x32 images an epoch" int
flag batch 128 "batch size" int
flag epochs 2 "timed epochs, after one untimed warm-up epoch" int
flag rounds 3 "interleaved rounds; each figure is the median over them" int
flag threads 0 "libtorch threads of each run (0: libtorch's default)" int
flag device cpu "cpu or cuda"
common_flags ltsweep python setup out
parse_flags "$@"
use_ltsweep
use_python bench/peers/requirements.txt
use_out

common=(--depth "$depth" --images "$images" --batch "$batch" --epochs "$epochs" --device "$device")
[[ $threads == 0 ]] || common+=(--threads "$threads")
peer() { "$python" bench/peers/pytorch_loop.py "${common[@]}" "$@" | rate; }

# Calibration on the model's math, where the optimiser and the allocator matter most.
best_rate=0 best_sgd=foreach best_alloc=default
for sgd in foreach fused single; do
    for alloc in default keep; do
        r=$(peer --mode compute --sgd "$sgd" --alloc "$alloc" || echo 0)
        say "calibration: sgd=$sgd alloc=$alloc ${r:-0} images/s"
        if awk -v a="${r:-0}" -v b="$best_rate" 'BEGIN { exit !(a > b) }'; then
            best_rate=$r best_sgd=$sgd best_alloc=$alloc
        fi
    done
done
say "peer settings: sgd=$best_sgd alloc=$best_alloc"
tuned=(--sgd "$best_sgd" --alloc "$best_alloc")

for round in $(seq "$rounds"); do
    record ltsweep "$("$ltsweep" bench train "${common[@]}" | rate)"
    for w in 0 1 2; do record "loader$w" "$(peer --mode loader --workers "$w" "${tuned[@]}")"; done
    record tensor "$(peer --mode tensor "${tuned[@]}")"
    record compute "$(peer --mode compute "${tuned[@]}")"
done

print_table train depth="$depth" images="$images" batch="$batch" epochs="$epochs" \
    threads="$threads" device="$device" sgd="$best_sgd" alloc="$best_alloc"
