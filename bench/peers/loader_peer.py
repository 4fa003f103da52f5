"""The PyTorch peer of ltsweep's list data loader: a DataLoader over a Dataset of the same list
of JPEGs, with the same augmentations (RandomResizedCrop(224) with scale (0.08, 1) and ratio
(3/4, 4/3), a horizontal flip, ToTensor, Normalize with ImageNet's mean and std) and the same
output (shuffled float batches of [B, 3, 224, 224]).

Two decoders, each given its best set-up:
- `pil`: Pillow (libjpeg-turbo), with `draft()` reduced-size decoding whenever the crop still
  has 224 pixels each way at half, a quarter or an eighth of the size (as ltsweep does);
- `tv`: `torchvision.io.decode_jpeg` (libjpeg-turbo) and the tensor transforms (`v2`).

Prints what it ran, then `images_per_second=<float>` over the timed passes (one untimed pass
first, as ltsweep's), as the other throughput peers and `ltsweep bench loader` end.

With `--decode-only`, no loader: the same passes decode every JPEG whole (libjpeg-turbo through
the chosen decoder, in this process, one thread), files read beforehand; run on one core, its
rate times the cores is the most any loader that decodes whole images can reach there.
"""

import argparse
import math
import time
from io import BytesIO
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms import v2

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)


class PilDraft:
    """RandomResizedCrop with Pillow's reduced-size decoding where the crop allows it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rest = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])

    def __call__(self, path: str) -> torch.Tensor:
        image = Image.open(path)
        width, height = image.size
        top, left, h, w = T.RandomResizedCrop.get_params(image, SCALE, RATIO)
        scale = next((s for s in (8, 4, 2) if w / s >= self.size and h / s >= self.size), 1)
        if scale > 1:
            image.draft("RGB", (math.ceil(width / scale), math.ceil(height / scale)))
            sx, sy = image.size[0] / width, image.size[1] / height
            box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
            image = image.convert("RGB").resize((self.size, self.size), Image.BILINEAR, box=box)
        else:
            image = image.convert("RGB").crop((left, top, left + w, top + h))
            image = image.resize((self.size, self.size), Image.BILINEAR)
        return self.rest(image)


class Jpegs(Dataset):
    def __init__(self, root: Path, listing: Path, decoder: str, size: int) -> None:
        self.items = []
        for line in listing.read_text().splitlines():
            if line.strip():
                path, label = line.split()
                self.items.append((str(root / path), int(label)))
        self.decoder = decoder
        self.pil = PilDraft(size)
        self.tv = v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=SCALE, ratio=RATIO, antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(MEAN, STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, label = self.items[index]
        if self.decoder == "pil":
            return self.pil(path), label
        image = decode_jpeg(read_file(path), mode=ImageReadMode.RGB)
        return self.tv(image), label


def decode_only(args) -> None:
    """Whole-image decodes per second, the files already in memory."""
    torch.set_num_threads(1)
    root = args.root
    paths = [root / line.split()[0] for line in (root / args.list).read_text().splitlines() if line.strip()]
    blobs = [p.read_bytes() for p in paths]
    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    images, seconds = 0, 0.0
    for epoch in range(args.passes + 1):
        start = time.perf_counter()
        if args.decoder == "tv":
            for t in tensors:
                decode_jpeg(t, mode=ImageReadMode.RGB)
        else:
            for b in blobs:
                Image.open(BytesIO(b)).convert("RGB")
        if epoch > 0:
            images += len(blobs)
            seconds += time.perf_counter() - start
    print(f"decode only: decoder={args.decoder} images={images} seconds={seconds:.3f}")
    print(f"images_per_second={images / seconds:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--list", type=Path, required=True)
    parser.add_argument("--decoder", choices=["pil", "tv"], required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--decode-only", action="store_true", help="time whole-image decoding alone")
    args = parser.parse_args()
    if args.decode_only:
        decode_only(args)
        return
    dataset = Jpegs(args.root, args.root / args.list, args.decoder, args.crop)
    loader = DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        prefetch_factor=2 if args.workers > 0 else None,
    )
    images, seconds = 0, 0.0
    for epoch in range(args.passes + 1):
        start = time.perf_counter()
        count = 0
        for x, _ in loader:
            count += x.shape[0]
        if epoch > 0:
            images += count
            seconds += time.perf_counter() - start
    print(f"decoder={args.decoder} workers={args.workers} images={images} seconds={seconds:.3f}")
    print(f"images_per_second={images / seconds:.1f}")


if __name__ == "__main__":
    main()
