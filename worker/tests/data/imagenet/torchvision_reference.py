#!/usr/bin/env python3
"""torchvision's side of ltsweep's ImageNet ResNets (worker/tests/it/imagenet.rs runs it).

  torchvision_reference.py counts
      prints {"resnet10": N, ...}: each architecture's trainable parameters with 1,000 classes,
      as `sum(p.numel() for p in model.parameters())` counts them.
  torchvision_reference.py resnet50 OUT_DIR
      writes a torchvision ResNet-50 as PyTorch saves it (`OUT_DIR/resnet50.safetensors`, its
      whole state_dict, num_batches_tracked included) and a fixed batch with the network's
      eval-mode logits (`OUT_DIR/batch.safetensors`: `input` [2, 3, 64, 64], `logits`
      [2, 1000]). Its BatchNorm scales, shifts and running statistics are drawn at random, so
      that evaluation mode exercises every one of them.

Needs torch==2.11.0, torchvision==0.26.0 and safetensors (./dev setup installs them).
"""
import json
import sys

import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models.resnet import BasicBlock, ResNet


def resnet10(num_classes=1000):
    """The long-tail papers' ResNet-10 (Liu et al. 2019): torchvision's ResNet with one basic
    block a stage."""
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)


ARCHITECTURES = {
    "resnet10": resnet10,
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
    "resnet152": torchvision.models.resnet152,
    "resnext50_32x4d": torchvision.models.resnext50_32x4d,
}


def counts():
    out = {}
    for name, build in ARCHITECTURES.items():
        # On the meta device: shapes only, nothing drawn or allocated.
        with torch.device("meta"):
            model = build()
        out[name] = sum(p.numel() for p in model.parameters())
    print(json.dumps(out))


def resnet50(out_dir):
    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(100)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, f"{out_dir}/resnet50.safetensors")
    save_file({"input": x, "logits": logits}, f"{out_dir}/batch.safetensors")
    print(f"logits max |z| = {logits.abs().max().item():.6g}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1:] == ["counts"]:
        counts()
    elif len(sys.argv) == 3 and sys.argv[1] == "resnet50":
        resnet50(sys.argv[2])
    else:
        sys.exit(__doc__)
