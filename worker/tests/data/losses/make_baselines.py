#!/usr/bin/env python3
"""Reference definitions of the long-tail base losses, in PyTorch (float64), and their vectors.

The companion of `losses.py` (cross entropy, Complement Entropy, Prototype Conformity): the
Rust base losses must match these. Run from this folder:

    python3 make_baselines.py . [SEED]

It writes `baselines_<case>.json` files of the same format as the other vectors, each with
`class_counts` (the training counts the class-dependent terms come from) and the loss's own
settings. Every loss takes logits [N][K] and gives `grad_logits` [N][K]:

- `focal`: mean over the batch of (1 - p_y)^gamma * (-log p_y), p_y not detached (Lin et al.
  2017, as Cao et al.'s LDAM-DRW code writes it), with 1 - p_y computed as -expm1(-ce) and kept
  above the smallest normal number: Cao et al.'s 1 - exp(-ce) rounds to 0 on a confident sample,
  where gamma < 1 gives NaN gradients; elsewhere the two agree to rounding; `gamma`.
- `class_balanced`: cross entropy weighted by w_y, w_c = (1 - beta) / (1 - beta^n_c) normalised
  to sum to K (Cui et al. 2019), reduced as PyTorch's `cross_entropy(weight=w)`: the weighted
  mean sum_i w_{y_i} l_i / sum_i w_{y_i}; `beta`.
- `logit_adjusted`: cross entropy of z + tau * log(pi), pi_c = n_c / sum(n) (Menon et al. 2021;
  Balanced Softmax at tau = 1); `tau`.
- `ldam`: cross entropy of s * (z - m_y e_y) with m_c = n_c^(-1/4) scaled so the largest is
  `max_margin` (Cao et al. 2019), plain mean, or, with `drw` true, weighted by the
  class-balanced weights of beta 0.9999 as above (deferred re-weighting once it is on);
  `max_margin`, `s`, `drw`. Its `logits` are the scaled ones the loss sees, s * z (ltsweep's
  cosine classifier outputs s * cos), and `grad_logits` is with respect to them.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

DRW_BETA = 0.9999


def class_balanced_weights(counts, beta):
    counts = torch.as_tensor(counts, dtype=torch.float64)
    raw = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta), counts))
    return raw * len(counts) / raw.sum()


def ldam_margins(counts, max_margin):
    counts = torch.as_tensor(counts, dtype=torch.float64)
    raw = 1.0 / torch.sqrt(torch.sqrt(counts))
    return raw * (max_margin / raw.max())


def log_priors(counts):
    counts = torch.as_tensor(counts, dtype=torch.float64)
    return torch.log(counts / counts.sum())


def focal(logits, labels, gamma):
    ce = F.cross_entropy(logits, labels, reduction="none")
    one_minus_p = (-torch.expm1(-ce)).clamp_min(torch.finfo(logits.dtype).tiny)
    return (one_minus_p ** gamma * ce).mean()


def class_balanced(logits, labels, counts, beta):
    return F.cross_entropy(logits, labels, weight=class_balanced_weights(counts, beta))


def logit_adjusted(logits, labels, counts, tau):
    return F.cross_entropy(logits + tau * log_priors(counts), labels)


def ldam(scaled, labels, counts, max_margin, s, drw):
    """Cao et al.'s LDAMLoss of the cosines z = scaled / s."""
    z = scaled / s
    margins = ldam_margins(counts, max_margin)
    index = torch.zeros_like(z, dtype=torch.bool).scatter_(1, labels.view(-1, 1), True)
    shifted = torch.where(index, z - margins[labels].view(-1, 1), z)
    weight = class_balanced_weights(counts, DRW_BETA) if drw else None
    return F.cross_entropy(s * shifted, labels, weight=weight)


def long_tail_counts(n_max, k, ratio):
    """As ltsweep (and LDAM-DRW's code) computes a long-tailed set's counts."""
    if k == 1:
        return [n_max]
    return [int(n_max * (1.0 / ratio) ** (i / (k - 1))) for i in range(k)]


def _case(gen, name, n, k, counts, scale, confident=False, cosine=False):
    logits = torch.randn(n, k, generator=gen) * scale
    if cosine:
        # Cosines, in [-1, 1]; LDAM sees them scaled by its s.
        logits = torch.tanh(logits)
    labels = torch.randint(0, k, (n,), generator=gen)
    if confident:
        logits[torch.arange(n), labels] += 15.0
    runs = [
        ("focal", {"gamma": 1.0}, lambda z: focal(z, labels, 1.0)),
        ("focal", {"gamma": 2.0}, lambda z: focal(z, labels, 2.0)),
        ("focal", {"gamma": 0.5}, lambda z: focal(z, labels, 0.5)),
        ("class_balanced", {"beta": 0.9999}, lambda z: class_balanced(z, labels, counts, 0.9999)),
        ("class_balanced", {"beta": 0.99}, lambda z: class_balanced(z, labels, counts, 0.99)),
        ("logit_adjusted", {"tau": 1.0}, lambda z: logit_adjusted(z, labels, counts, 1.0)),
        ("logit_adjusted", {"tau": 0.5}, lambda z: logit_adjusted(z, labels, counts, 0.5)),
        ("ldam", {"max_margin": 0.5, "s": 30.0, "drw": False},
         lambda z: ldam(z, labels, counts, 0.5, 30.0, False)),
        ("ldam", {"max_margin": 0.5, "s": 30.0, "drw": True},
         lambda z: ldam(z, labels, counts, 0.5, 30.0, True)),
        ("ldam", {"max_margin": 0.3, "s": 10.0, "drw": True},
         lambda z: ldam(z, labels, counts, 0.3, 10.0, True)),
    ]
    out = []
    for loss, settings, fn in runs:
        # LDAM's input is the scaled logits s * z its loss sees.
        seen = (logits * settings["s"] if loss == "ldam" else logits).clone().requires_grad_(True)
        value = fn(seen)
        (grad,) = torch.autograd.grad(value, [seen])
        vector = {"case": name, "loss": loss, "num_classes": k, "class_counts": counts,
                  "logits": seen.tolist(), "labels": labels.tolist(),
                  "value": value.item(), "grad_logits": grad.tolist()}
        vector.update(settings)
        out.append(vector)
    return out


def main():
    out_dir = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    gen = torch.Generator().manual_seed(seed)
    cases = [
        ("small", 8, 5, long_tail_counts(500, 5, 100.0), 1.0),
        ("cifar100_shape", 12, 100, long_tail_counts(500, 100, 100.0), 3.0),
        ("two_classes", 7, 2, [900, 9], 2.0),
        ("fashion_shape", 24, 10, long_tail_counts(6000, 10, 100.0), 2.0),
        ("confident", 10, 10, long_tail_counts(5000, 10, 10.0), 1.0, True),
        ("cosine", 16, 10, long_tail_counts(5000, 10, 100.0), 1.5, False, True),
    ]
    os.makedirs(out_dir, exist_ok=True)
    for name, *rest in cases:
        vectors = _case(gen, name, *rest)
        assert all(math.isfinite(v["value"]) for v in vectors)
        assert all(math.isfinite(g) for v in vectors for row in v["grad_logits"] for g in row)
        with open(os.path.join(out_dir, f"baselines_{name}.json"), "w") as f:
            json.dump({"generator": "make_baselines.py", "seed": seed, "vectors": vectors}, f)
    print(f"wrote {len(cases)} files to {out_dir}")


if __name__ == "__main__":
    main()
