#!/usr/bin/env python3
"""A PyTorch trainer of ltsweep's recipe, written the way the long-tail literature's code is
(LDAM-DRW's CIFAR ResNet and training loop), for accuracy parity with ltsweep.

    python3 bench/peers/lt_peer.py --data DIR --seed 0 --base ce [--epochs 6 ...]

It trains what one ltsweep job with the plan `comp=none,pc=none` trains, from the same files:
- data: MNIST-style IDX files (Fashion-MNIST, MNIST; gzip or not) in DIR;
- the long-tailed subset exactly as ltsweep picks it: n_i = floor(n_max * (1/ratio)^(i/(C-1)))
  images of class i, chosen by ltsweep's SplitMix64 generator from the sampling seed, so both
  train on the same images; Head = classes with at least --head-min-count images;
- a random crop of the zero-padded image (an eighth of the side) and a horizontal flip, drawn
  by PyTorch's generator from --seed, then normalisation by the subset's own per-channel mean
  and std: pad, then normalise, as ltsweep and Cao et al.'s torchvision transforms do, so the
  padding is black, not the mean;
- the CIFAR ResNet (6n+2, 16/32/64 channels, option-A shortcuts) initialised as ltsweep does:
  Kaiming-normal (fan-in) convolution and linear weights, PyTorch's linear bias, BatchNorm scale
  1 and shift 0; for ldam_drw the cosine classifier with unit-norm columns (NormedLinear) and
  logits s * cos, LDAM subtracting s * m_y, as ltsweep computes them;
- momentum SGD (0.9, weight decay 2e-4 on every parameter), linear warm-up, step decays;
- the base loss: ce, focal, cb, la or ldam_drw, from the reference definitions in
  worker/tests/data/losses/make_baselines.py (the ones ltsweep's losses are tested against);
- the sampler: instance, class_balanced or sqrt.
Prints one JSON line: {"acc_all", "acc_head", "acc_tail", "seconds", ...} (fractions in [0, 1]).
"""
import argparse
import gzip
import importlib.util
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F

from resnet_cifar import ResNet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def reference_losses():
    path = os.path.join(ROOT, "worker/tests/data/losses/make_baselines.py")
    spec = importlib.util.spec_from_file_location("make_baselines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The reference sets float64 as the default; this trainer is float32, as ltsweep's.
    torch.set_default_dtype(torch.float32)
    return module


# --- ltsweep's deterministic generator (data/src/rng.rs), for the same long-tailed subset ---

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
SUBSET = 3


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Rng:
    def __init__(self, seed, path):
        state = mix(seed ^ 0x6C74737765657021)
        for part in path:
            state = mix(state ^ mix((part + GOLDEN) & MASK))
        self.state = state

    def next_u64(self):
        self.state = (self.state + GOLDEN) & MASK
        return mix(self.state)

    def below(self, n):
        return (self.next_u64() * n) >> 64

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


# --- data ---

def read_idx(folder, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read()
            dims = data[3]
            shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    raise SystemExit(f"{os.path.join(folder, name)}: not found (nor its .gz)")


def long_tail_counts(n_max, k, ratio):
    if k == 1:
        return [n_max]
    factor = 1.0 / ratio
    return [int(n_max * factor ** (i / (k - 1))) for i in range(k)]


def long_tailed(labels, ratio, sampling_seed):
    """The indices ltsweep keeps (data/src/longtail.rs), in file order, and the counts."""
    k = int(labels.max()) + 1
    by_class = [[] for _ in range(k)]
    for i, label in enumerate(labels.tolist()):
        by_class[label].append(i)
    n_max = min(len(members) for members in by_class)
    counts = long_tail_counts(n_max, k, ratio)
    chosen = []
    for c, members in enumerate(by_class):
        Rng(sampling_seed, [SUBSET, c]).shuffle(members)
        chosen.extend(sorted(members[:counts[c]]))
    return sorted(chosen), counts


# --- training ---

def epoch_order(labels, counts, sampler, gen):
    n = len(labels)
    if sampler == "instance":
        return torch.randperm(n, generator=gen)
    mass = torch.tensor([math.sqrt(c) if sampler == "sqrt" else 1.0 for c in counts])
    classes = torch.multinomial(mass / mass.sum(), n, replacement=True, generator=gen)
    by_class = [torch.nonzero(labels == c).flatten() for c in range(len(counts))]
    picks = torch.empty(n, dtype=torch.long)
    for c, members in enumerate(by_class):
        where = torch.nonzero(classes == c).flatten()
        picks[where] = members[torch.randint(len(members), (len(where),), generator=gen)]
    return picks


def augment(x, pad, gen):
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    rows = dy.view(b, 1) + torch.arange(h).view(1, h)
    cols = dx.view(b, 1) + torch.arange(w).view(1, w)
    cols = torch.where(flip.view(b, 1), cols.flip(1), cols)
    index = torch.arange(b).view(b, 1, 1)
    out = padded.permute(0, 2, 3, 1)[index, rows.view(b, h, 1), cols.view(b, 1, w)]
    return out.permute(0, 3, 1, 2).contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder of the IDX files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", choices=["ce", "focal", "cb", "la", "ldam_drw"], default="ce")
    ap.add_argument("--sampler", choices=["instance", "class_balanced", "sqrt"], default="instance")
    ap.add_argument("--imbalance-ratio", type=float, default=100.0)
    ap.add_argument("--sampling-seed", type=int, default=0)
    ap.add_argument("--head-min-count", type=int, default=1000)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=2e-4)
    ap.add_argument("--warmup-epochs", type=int, default=1)
    ap.add_argument("--lr-decay-epochs", default="4,5")
    ap.add_argument("--lr-decay-factor", type=float, default=0.1)
    ap.add_argument("--focal-gamma", type=float, default=1.0)
    ap.add_argument("--cb-beta", type=float, default=0.9999)
    ap.add_argument("--la-tau", type=float, default=1.0)
    ap.add_argument("--ldam-max-margin", type=float, default=0.5)
    ap.add_argument("--ldam-s", type=float, default=30.0)
    ap.add_argument("--drw-epoch", type=int, default=None, help="default: 80%% of the epochs")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    losses = reference_losses()

    train_x = read_idx(a.data, "train-images-idx3-ubyte")
    train_y = read_idx(a.data, "train-labels-idx1-ubyte").astype(np.int64)
    test_x = read_idx(a.data, "t10k-images-idx3-ubyte")
    test_y = read_idx(a.data, "t10k-labels-idx1-ubyte").astype(np.int64)
    keep, counts = long_tailed(train_y, a.imbalance_ratio, a.sampling_seed)
    k = len(counts)
    head = torch.tensor([c >= a.head_min_count for c in counts])
    # In [0, 1]: crops are padded with black before the images are normalised.
    x = torch.from_numpy(train_x[keep]).float().unsqueeze(1) / 255.0
    y = torch.from_numpy(train_y[keep])
    mean, std = x.mean().item(), x.std(unbiased=False).item()
    tx = (torch.from_numpy(test_x.copy()).float().unsqueeze(1) / 255.0 - mean) / std
    ty = torch.from_numpy(test_y)
    pad = max(1, x.shape[2] // 8)

    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    model = ResNet(a.depth, 1, k, a.ldam_s if a.base == "ldam_drw" else None)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum,
                          weight_decay=a.weight_decay)
    decays = [int(e) for e in a.lr_decay_epochs.split(",") if e]
    drw_epoch = a.drw_epoch if a.drw_epoch is not None else a.epochs * 4 // 5

    def loss_of(logits, labels, epoch):
        if a.base == "ce":
            return F.cross_entropy(logits, labels)
        if a.base == "focal":
            return losses.focal(logits, labels, a.focal_gamma)
        if a.base == "cb":
            weight = losses.class_balanced_weights(counts, a.cb_beta).float()
            return F.cross_entropy(logits, labels, weight=weight)
        if a.base == "la":
            return F.cross_entropy(logits + a.la_tau * losses.log_priors(counts).float(), labels)
        # The model gives s * cos for ldam_drw: the reference takes those, as ltsweep's loss.
        weight = losses.class_balanced_weights(counts, losses.DRW_BETA).float() \
            if epoch >= drw_epoch else None
        margins = losses.ldam_margins(counts, a.ldam_max_margin).float()
        index = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, labels.view(-1, 1), True)
        shifted = torch.where(index, logits - a.ldam_s * margins[labels].view(-1, 1), logits)
        return F.cross_entropy(shifted, labels, weight=weight)

    start = time.perf_counter()
    for epoch in range(a.epochs):
        if epoch < a.warmup_epochs:
            lr = a.lr * (epoch + 1) / a.warmup_epochs
        else:
            lr = a.lr * a.lr_decay_factor ** sum(epoch >= e for e in decays)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        order = epoch_order(y, counts, a.sampler, gen)
        for i in range(0, len(order), a.batch):
            index = order[i:i + a.batch]
            if len(index) < 2:
                break
            xb = (augment(x[index], pad, gen) - mean) / std
            loss = loss_of(model(xb), y[index], epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start

    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(tx[i:i + 1000]).argmax(1) for i in range(0, len(tx), 1000)])
    correct = predicted == ty

    def accuracy(mask):
        selected = mask[ty]
        return correct[selected].float().mean().item() if selected.any() else None

    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "seed": a.seed, "base": a.base,
        "sampler": a.sampler, "epochs": a.epochs, "train_images": len(keep),
        "acc_all": correct.float().mean().item(), "acc_head": accuracy(head),
        "acc_tail": accuracy(~head), "seconds": round(seconds, 1),
    }))


if __name__ == "__main__":
    main()
