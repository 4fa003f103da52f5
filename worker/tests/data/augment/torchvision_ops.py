"""torchvision 0.26's AutoAugment ops on fixed uint8 images, for the `policy_ops` test.

Usage: torchvision_ops.py DIR. DIR/cases.json holds the image groups' shapes and the cases
`[group, image, op, magnitude]`; DIR/images_G.u8 each group's images (N, C, H, W). Writes, for
each group, DIR/out_G.u8: the result of each of its cases, in order, computed by the function
torchvision's AutoAugment, RandAugment and TrivialAugmentWide call (`_apply_op`, NEAREST, no
fill); and DIR/tables.json: the magnitude bins and signs of `_augmentation_space` of each
policy at each group's size, and AutoAugment's CIFAR10 and IMAGENET sub-policies.
"""

import json
import sys
from pathlib import Path

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import (
    AutoAugment,
    AutoAugmentPolicy,
    RandAugment,
    TrivialAugmentWide,
    _apply_op,
)


def space(meta):
    return {
        op: {"bins": [float(v) for v in mags.reshape(-1).tolist()] if mags.ndim > 0 else [], "signed": signed}
        for op, (mags, signed) in meta.items()
    }


def main(folder):
    folder = Path(folder)
    spec = json.loads((folder / "cases.json").read_text())
    tables = {"groups": [], "policies": {}}
    for name, policy in [("cifar10", AutoAugmentPolicy.CIFAR10), ("imagenet", AutoAugmentPolicy.IMAGENET)]:
        tables["policies"][name] = [
            [[op, p, bin_] for op, p, bin_ in sub] for sub in AutoAugment(policy)._get_policies(policy)
        ]
    for g, shape in enumerate(spec["shapes"]):
        n, c, h, w = shape
        images = torch.frombuffer(bytearray((folder / f"images_{g}.u8").read_bytes()), dtype=torch.uint8)
        images = images.reshape(n, c, h, w)
        tables["groups"].append(
            {
                "autoaugment": space(AutoAugment()._augmentation_space(10, (h, w))),
                "randaugment": space(RandAugment()._augmentation_space(31, (h, w))),
                "trivialaugment_wide": space(TrivialAugmentWide()._augmentation_space(31)),
            }
        )
        out = []
        for group, index, op, magnitude in spec["cases"]:
            if group != g:
                continue
            result = _apply_op(images[index], op, magnitude, interpolation=InterpolationMode.NEAREST, fill=None)
            assert result.dtype == torch.uint8 and result.shape == (c, h, w), (op, result.dtype, result.shape)
            out.append(result.contiguous())
        (folder / f"out_{g}.u8").write_bytes(torch.stack(out).numpy().tobytes())
    (folder / "tables.json").write_text(json.dumps(tables))


if __name__ == "__main__":
    main(sys.argv[1])
