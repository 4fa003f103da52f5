"""Pillow + torchvision's evaluation transform on the JPEGs ltsweep transformed, compared.

Reads `paths.txt` (one JPEG a line) and `ltsweep.f32` (ltsweep's [N, 3, C, C] float32 output,
little-endian) from the folder given, applies `Resize(R)`, `CenterCrop(C)`, `ToTensor()` and
`Normalize(ImageNet mean, std)` to each image opened with Pillow, and prints one JSON line per
image: the largest and the mean absolute difference, and the share of values off by more than
one 8-bit level (1/255/std).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T


def main() -> None:
    folder = Path(sys.argv[1])
    resize, crop = int(sys.argv[2]), int(sys.argv[3])
    paths = folder.joinpath("paths.txt").read_text().split("\n")
    paths = [p for p in paths if p]
    ours = np.fromfile(folder / "ltsweep.f32", dtype="<f4").reshape(len(paths), 3, crop, crop)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    transform = T.Compose(
        [
            T.Resize(resize),
            T.CenterCrop(crop),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            size = image.size
            theirs = transform(image.convert("RGB"))
        diff = (torch.from_numpy(ours[i].copy()) - theirs).abs()
        level = 1.0 / 255.0 / std
        print(
            json.dumps(
                {
                    "path": path,
                    "size": size,
                    "max": float(diff.max()),
                    "mean": float(diff.mean()),
                    "over_one_level": float((diff > level * 1.001).float().mean()),
                }
            )
        )


if __name__ == "__main__":
    main()
