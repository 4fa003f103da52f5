#!/usr/bin/env bash
# Training throughput: ltsweep against the PyTorch peer at its best configuration, in one run,
# on the same libtorch, over the same timed span (one warm-up epoch, then --epochs epochs).
#
#   bench/train.sh [--depth 20] [--images 4096] [--epochs 2] [--rounds 3] [--device cpu|cuda]
#                  [--policy autoaugment_cifar10] [--cutout 16] [--mix mixup]
#
# The peer is bench/peers/pytorch_loop.py. First a calibration pass picks the peer's best
# optimiser (foreach, fused or per-parameter SGD) and allocator policy (glibc defaults, or freed
# memory kept as ltsweep keeps it) on this machine; then, for --rounds rounds, interleaved:
# `ltsweep bench train` (shuffle, on-device crop + flip + normalise, forward, backward, SGD) and
# the peer's input pipelines with those settings: a DataLoader with 0, 1 and 2 loader processes,
# the batched-tensor pipeline ltsweep uses written in PyTorch, and the model's math alone on one
# fixed batch (the floor). Prints each figure's median and ltsweep's ratio to each.
#
# With --policy, --cutout or --mix both sides train with them: ltsweep on the device, batched
# (`[augment]`), the peer with torchvision's AutoAugment and the authors' Cutout and mixup in
# its DataLoader on the same cores. PyTorch has no batched per-image policy, so the peer's tensor
# pipeline is left out then; the compute floor stays the unaugmented math.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flag depth 20 "the CIFAR ResNet's depth (6n+2)" int
flag images 4096 "random 32x32 images an epoch" int
flag batch 128 "batch size" int
flag epochs 2 "timed epochs, after one untimed warm-up epoch" int
flag rounds 3 "interleaved rounds; each figure is the median over them" int
flag threads 0 "libtorch threads of each run (0: libtorch's default)" int
flag device cpu "cpu or cuda"
flag policy standard "standard or autoaugment_cifar10"
flag cutout 0 "Cutout's side in pixels (0: off)" int
flag mix none "none or mixup"
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

augment=(--policy "$policy" --cutout "$cutout" --mix "$mix")
augmented=$([[ $policy == standard && $cutout == 0 && $mix == none ]] && echo no || echo yes)
for round in $(seq "$rounds"); do
    record ltsweep "$("$ltsweep" bench train "${common[@]}" "${augment[@]}" | rate)"
    for w in 0 1 2; do
        record "loader$w" "$(peer --mode loader --workers "$w" "${tuned[@]}" "${augment[@]}")"
    done
    [[ $augmented == yes ]] || record tensor "$(peer --mode tensor "${tuned[@]}")"
    record compute "$(peer --mode compute "${tuned[@]}")"
done

print_table train depth="$depth" images="$images" batch="$batch" epochs="$epochs" \
    threads="$threads" device="$device" sgd="$best_sgd" alloc="$best_alloc" \
    policy="$policy" cutout="$cutout" mix="$mix"
