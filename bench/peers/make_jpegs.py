#!/usr/bin/env python3
"""The JPEGs bench/loader.sh times both loaders on, made once into a folder:

    python3 bench/peers/make_jpegs.py --data target/bench-loader --images 1000

Photographs shipped in scikit-image's wheel on PyPI (its public-domain and CC0 images; the wheel
is downloaded into DATA/wheel by pip), cut at random places and scales to 500 x 375 (a quarter of
them 375 x 500, ImageNet's typical sizes), saved at quality 90 by Pillow as DATA/images/NNNNN.jpg,
with the list DATA/train.txt (`images/NNNNN.jpg LABEL` a line, 100 labels). The cut is drawn
from a fixed seed: the same count makes the same images.
"""
import argparse
import random
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

from PIL import Image

WHEEL = "scikit-image==0.26.0"
# The colour photographs of scikit-image's data folder: NASA's and SpaceX's (public domain),
# and the CC0 ones (cat, coffee, retina, textures).
NAMES = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "retina.jpg",
         "hubble_deep_field.jpg", "ihc.png", "brick.png", "grass.png", "gravel.png"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the folder to fill")
    ap.add_argument("--images", type=int, required=True, help="how many JPEGs")
    a = ap.parse_args()
    if a.images < 1:
        ap.error("--images must be at least 1")
    wheels = a.data / "wheel"
    wheels.mkdir(parents=True, exist_ok=True)
    if not any(wheels.glob("scikit_image-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--dest", str(wheels), WHEEL], check=True)
    wheel = zipfile.ZipFile(next(wheels.glob("scikit_image-*.whl")))
    photos = [Image.open(BytesIO(wheel.read(f"skimage/data/{n}"))).convert("RGB") for n in NAMES]
    rng = random.Random(0)
    out = a.data / "images"
    out.mkdir(exist_ok=True)
    lines = []
    for i in range(a.images):
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
    (a.data / "train.txt").write_text("".join(lines))


if __name__ == "__main__":
    main()
