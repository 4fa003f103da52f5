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
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flag arch resnet50 "torchvision's ResNet name (resnet10 ... resnet152, resnext50_32x4d)"
flag image-size 224 "the side of the square random images" int
flag batch 8 "batch size" int
flag images 16 "random images an epoch" int
flag epochs 2 "timed epochs, after one untimed warm-up epoch" int
flag rounds 1 "interleaved rounds; each figure is the median over them" int
flag threads 2 "libtorch threads of each run" int
flag device cpu "cpu or cuda"
common_flags ltsweep python setup out
parse_flags "$@"
use_ltsweep
use_python bench/peers/requirements.txt
use_out

common=(--arch "$arch" --image-size "$image_size" --batch "$batch" --images "$images" --epochs "$epochs"
        --device "$device" --threads "$threads")
peer() { "$python" bench/peers/pytorch_loop.py --mode tensor "${common[@]}" "$@" | rate; }

for round in $(seq "$rounds"); do
    record ltsweep_fp32 "$("$ltsweep" bench train "${common[@]}" --precision fp32 --channels-last false | rate)"
    record peer_fp32 "$(peer)"
    record ltsweep_bf16 "$("$ltsweep" bench train "${common[@]}" --precision bf16 --channels-last true | rate)"
    record peer_bf16 "$(peer --precision bf16 --channels-last)"
done

print_table imagenet arch="$arch" image_size="$image_size" batch="$batch" images="$images" \
    epochs="$epochs" threads="$threads" device="$device"
