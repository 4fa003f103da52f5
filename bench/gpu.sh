#!/usr/bin/env bash
# Throughput on one GPU: one ltsweep job, N slots (N job processes at once), fused arrays of
# 4, 9 and 27 jobs, and the PyTorch peer (DataLoader and compute-only), then the projected wall
# time of the paper's whole study at the best configuration, and the ratios. One prepared run,
# under 8 minutes on one H200.
#
#   bench/gpu.sh                 # on cuda
#   bench/gpu.sh --device cpu    # shortened, on the CPU: checks that the script works
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
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The sizes' defaults depend on the device: --device cpu is a check that every step runs, not
# a measurement.
flag device cuda "cuda, or cpu for a shortened check"
flag depth "" "the CIFAR ResNet's depth (default: 20; 8 with --device cpu)" int
flag images "" "random images an epoch (default: 10847, the paper's CIFAR-10-LT epoch; 256 with --device cpu)" int
flag epochs "" "timed epochs after one warm-up (default: 2; 1 with --device cpu)" int
flag slots "" "ltsweep processes at once on the device (default: 4; 2 with --device cpu)" int
flag fuse "" "the fused arrays' sizes (default: 4,9,27; 2,3 with --device cpu)" ints
flag loader-workers "" "the peer's DataLoader processes (default: 4; 0 with --device cpu)" int
common_flags ltsweep python setup out
parse_flags "$@"
if [[ $device == cpu ]]; then
    : "${depth:=8}" "${images:=256}" "${epochs:=1}" "${slots:=2}" "${fuse:=2,3}" "${loader_workers:=0}"
else
    : "${depth:=20}" "${images:=10847}" "${epochs:=2}" "${slots:=4}" "${fuse:=4,9,27}" "${loader_workers:=4}"
fi
use_ltsweep
use_python bench/peers/requirements.txt
use_out

common=(--depth "$depth" --images "$images" --epochs "$epochs" --device "$device")
ours() { "$ltsweep" bench train "${common[@]}" "$@" | rate; }
peer() { "$python" bench/peers/pytorch_loop.py "${common[@]}" --sgd foreach "$@" | rate; }

record one "$(ours)"

# N slots: N processes on the device at once; the table sums their rates.
for i in $(seq "$slots"); do ours >"$out/slot$i" & done
wait
for i in $(seq "$slots"); do record slot "$(cat "$out/slot$i")"; done

for n in ${fuse//,/ }; do record "fuse$n" "$(ours --fuse "$n")"; done

record loader "$(peer --mode loader --workers "$loader_workers")"
record compute "$(peer --mode compute)"

print_table gpu depth="$depth" images="$images" epochs="$epochs" device="$device" batch=128 \
    slots="$slots" loader_workers="$loader_workers"
