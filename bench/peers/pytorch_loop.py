#!/usr/bin/env python3
"""The PyTorch peer that `ltsweep bench train` is measured against: the same recipe, written the
way the common long-tail recognition scripts write it (LDAM-DRW style), with the knobs a careful
PyTorch user would turn to make it fast on the machine at hand.

The recipe: the CIFAR ResNet of resnet_cifar.py (option-A shortcuts, depth 6n+2), batch 128,
4-pixel padded random crop, horizontal flip, normalisation, cross entropy, momentum SGD (lr 0.1,
momentum 0.9, weight decay 2e-4). Data is random pixels and labels, as in `ltsweep bench
train`: throughput does not depend on content.

Modes (the input pipeline):
  loader   torchvision transforms in a DataLoader, `--workers N` processes (0: in the training
           process). What users run today.
  tensor   the data set as one uint8 tensor on the training device, crop + flip + normalise as
           batched tensor ops, no loader: the same pipeline ltsweep uses, written in PyTorch.
  compute  one fixed batch, already normalised, on the device: the model's math and the
           optimiser alone, a floor no input pipeline can beat.
Knobs: `--sgd foreach|fused|single` (PyTorch's multi-tensor, fused or per-parameter SGD),
`--alloc keep|default` (keep freed memory in glibc's heap, as ltsweep's trainer does, or not),
`--threads N`, `--device cpu|cuda`.

Stronger augmentation (loader mode): `--policy autoaugment_cifar10` adds torchvision's
`AutoAugment(AutoAugmentPolicy.CIFAR10)` after the flip, `--cutout N` DeVries & Taylor's Cutout
after normalisation (one square of side N, centre uniform, clipped at the borders, zeroed; as
uoguelph-mlrg/Cutout's util/cutout.py), `--mix mixup` Zhang et al.'s mixup on each batch (as
facebookresearch/mixup-cifar10's mixup_data and mixup_criterion, alpha 1): the pipeline of
`ltsweep bench train --policy ... --cutout ... --mix ...`. The tensor mode has no per-image
policy in PyTorch and refuses them.

The ImageNet networks: `--arch resnet50` (any of torchvision's ResNets, `resnext50_32x4d`, or
`resnet10`, torchvision's ResNet with one basic block a stage) on random `--image-size` images,
with `--precision bf16` (torch.autocast to bfloat16, the loss in float32) and `--channels-last`
(model and inputs in torch.channels_last), as `ltsweep bench train --arch` trains them. The
crop pads an eighth of the side, as ltsweep's does (4 pixels at 32).

The timed span is the one `ltsweep bench train` times: one untimed warm-up epoch, then
`--epochs` whole epochs of `--images` images (the last partial batch dropped on both sides).
The last line printed is `images_per_second=<float>`.

Needs torch==2.11.0, torchvision==0.26.0, numpy, pillow (bench/peers/requirements.txt).
"""
import argparse
import ctypes
import time

import numpy as np
import torch
import torch.nn.functional as F

import resnet_cifar

MEAN = (0.5071, 0.4865, 0.4409)
STD = (0.2673, 0.2564, 0.2762)


def keep_freed_memory():
    """glibc's thresholds as ltsweep's trainer sets them (worker/src/alloc.rs)."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 256 << 20)
    libc.mallopt(m_trim_threshold, 1 << 30)


def tensor_batches(images, labels, batch, device, generator):
    """Crop, flip and normalise whole batches with tensor ops on `device`."""
    n = images.shape[0] // batch * batch
    size = images.shape[-1]
    pad = size // 8
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255
    padded = F.pad(images, (pad, pad, pad, pad))  # uint8, N x 3 x 40 x 40 at 32
    order = torch.randperm(images.shape[0], generator=generator)[:n].to(device)
    base = torch.arange(size, device=device)
    for start in range(0, n, batch):
        idx = order[start:start + batch]
        b = idx.shape[0]
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(device)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(device)
        flip = torch.rand(b, generator=generator).to(device) < 0.5
        rows = (dy[:, None] + base[None, :])  # b x size
        cols = dx[:, None] + torch.where(flip[:, None], size - 1 - base[None, :], base[None, :])
        x = padded[idx]  # b x 3 x (size + 2 pad) x (size + 2 pad)
        x = x.gather(2, rows[:, None, :, None].expand(b, 3, size, size + 2 * pad))
        x = x.gather(3, cols[:, None, None, :].expand(b, 3, size, size))
        yield (x.float() - mean) / std, labels[idx]


def imagenet_model(arch, num_classes):
    """torchvision's network of that name; ResNet-10 is its ResNet with one basic block a stage."""
    import torchvision
    from torchvision.models.resnet import BasicBlock, ResNet
    if arch == "resnet10":
        return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
    return getattr(torchvision.models, arch)(num_classes=num_classes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["loader", "tensor", "compute"], default="loader")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs, after one warm-up epoch")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader processes (loader mode)")
    ap.add_argument("--sgd", choices=["foreach", "fused", "single"], default="foreach")
    ap.add_argument("--alloc", choices=["keep", "default"], default="default")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", default=None, help="a torchvision ResNet instead of the CIFAR one")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--policy", choices=["standard", "autoaugment_cifar10"], default="standard")
    ap.add_argument("--cutout", type=int, default=0, help="Cutout's side in pixels (0: off)")
    ap.add_argument("--mix", choices=["none", "mixup"], default="none")
    a = ap.parse_args()
    augmented = a.policy != "standard" or a.cutout > 0 or a.mix != "none"
    if augmented and a.mode != "loader":
        ap.error("--policy, --cutout and --mix are built for the loader mode")
    if a.alloc == "keep":
        keep_freed_memory()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    if a.arch:
        model = imagenet_model(a.arch, a.classes).to(device)
    else:
        model = resnet_cifar.ResNet(a.depth, 3, a.classes).to(device)
    memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    size = a.image_size
    sgd = {"foreach": dict(foreach=True), "fused": dict(fused=True), "single": dict(foreach=False)}[a.sgd]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4, **sgd)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(a.images, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, a.classes, size=a.images)

    def step(x, y):
        if a.mix == "mixup":
            lam = float(np.random.beta(1.0, 1.0))
            index = torch.randperm(x.shape[0], device=device)
            x = lam * x + (1 - lam) * x[index]
        x = x.contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            logits = model(x)
        if a.mix == "mixup":
            loss = lam * F.cross_entropy(logits.float(), y) + (1 - lam) * F.cross_entropy(logits.float(), y[index])
        else:
            loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if a.mode == "compute":
        fixed_x = torch.randn(a.batch, 3, size, size, device=device)
        fixed_y = torch.randint(0, a.classes, (a.batch,), device=device)

        def epoch():
            for _ in range(a.images // a.batch):
                step(fixed_x, fixed_y)
            return a.images // a.batch * a.batch
    elif a.mode == "tensor":
        data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
        targets = torch.from_numpy(labels).to(device)
        generator = torch.Generator().manual_seed(0)

        def epoch():
            n = 0
            for x, y in tensor_batches(data, targets, a.batch, device, generator):
                step(x, y)
                n += x.shape[0]
            return n
    else:
        import torchvision.transforms as T
        from PIL import Image

        def cutout(img):
            h, w = img.shape[1], img.shape[2]
            y, x = np.random.randint(h), np.random.randint(w)
            half = a.cutout // 2
            mask = torch.ones(h, w)
            mask[max(y - half, 0):min(y + half, h), max(x - half, 0):min(x + half, w)] = 0.0
            return img * mask

        policy = [T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)] if a.policy != "standard" else []
        cut = [T.Lambda(cutout)] if a.cutout > 0 else []
        tf = T.Compose([T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip(), *policy,
                        T.ToTensor(), T.Normalize(MEAN, STD), *cut])

        class Images(torch.utils.data.Dataset):
            def __len__(self):
                return a.images

            def __getitem__(self, i):
                return tf(Image.fromarray(images[i])), int(labels[i])

        loader = torch.utils.data.DataLoader(Images(), batch_size=a.batch, shuffle=True,
                                             num_workers=a.workers, drop_last=True,
                                             persistent_workers=a.workers > 0, pin_memory=cuda)

        def epoch():
            n = 0
            for x, y in loader:
                step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
                n += x.shape[0]
            return n

    model.train()
    epoch()  # warm-up: starts loader processes, allocator pools, CUDA kernels
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = sum(epoch() for _ in range(a.epochs))
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    network = f"arch={a.arch} precision={a.precision} channels_last={a.channels_last}" if a.arch \
        else f"depth={a.depth}"
    print(f"mode={a.mode} workers={a.workers} sgd={a.sgd} alloc={a.alloc} device={a.device} "
          f"{network} size={size} images={n} seconds={dt:.3f} threads={torch.get_num_threads()}")
    print(f"images_per_second={n / dt:.3f}")


if __name__ == "__main__":
    main()
