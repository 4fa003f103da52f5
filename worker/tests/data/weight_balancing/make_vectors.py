#!/usr/bin/env python3
"""Reference vectors of weight balancing's second stage (Alshammari et al., CVPR 2022), in
PyTorch float64: its class-balanced loss and its MaxNorm projection, as their code
(github.com/ShadeAlsha/LTR-weight-balancing) computes them. Run from this folder:

    python3 make_vectors.py . [SEED]

It writes `vectors.json`: `{"generator", "seed", "loss": [...], "max_norm": [...]}`.

- `loss` vectors: `logits` [N][K], `labels` [N], `class_counts` [K], `beta` → `value`,
  `grad_logits` [N][K]. The loss is `CB_loss(..., loss_type="softmax")` of their
  `utils/class_balanced_loss.py`: per-class weights (1 - beta) / (1 - beta^n) normalised to sum
  to K; p = softmax(logits); the binary cross entropy of p against the one-hot labels, every
  term of a sample weighted by its class's weight, averaged over N * K. It is written out here
  term by term (log p and log(1 - p)) and checked against `F.binary_cross_entropy`, the call
  their code makes.
- `max_norm` vectors: `weight` [K][D], `max_norm` → `radius`, `projected` [K][D]. The radius is
  `MaxNorm_via_PGD.setPerLayerThresh`'s, min + max_norm * (max - min) of the rows' L2 norms;
  the projection is its `PGD`: each row whose norm is over the radius scaled onto it, the
  others unchanged.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def long_tail_counts(n_max, k, ratio):
    """As ltsweep (and LDAM-DRW's code) computes a long-tailed set's counts."""
    return [int(n_max * (1.0 / ratio) ** (i / (k - 1))) for i in range(k)]


def class_balanced_weights(counts, beta):
    counts = torch.as_tensor(counts, dtype=torch.float64)
    raw = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta), counts))
    return raw * len(counts) / raw.sum()


def cb_softmax_loss(logits, labels, counts, beta):
    n, k = logits.shape
    w = class_balanced_weights(counts, beta)[labels].unsqueeze(1)
    p = logits.softmax(dim=1)
    t = F.one_hot(labels, k).to(logits.dtype)
    terms = t * torch.log(p) + (1.0 - t) * torch.log1p(-p)
    return -(w * terms).sum() / (n * k)


def their_form(logits, labels, counts, beta):
    k = logits.shape[1]
    w = class_balanced_weights(counts, beta)[labels].unsqueeze(1).repeat(1, k)
    t = F.one_hot(labels, k).to(logits.dtype)
    return F.binary_cross_entropy(logits.softmax(dim=1), t, weight=w)


def loss_case(gen, name, n, k, counts, scale, beta):
    logits = (torch.randn(n, k, generator=gen) * scale).requires_grad_(True)
    labels = torch.randint(0, k, (n,), generator=gen)
    value = cb_softmax_loss(logits, labels, counts, beta)
    (grad,) = torch.autograd.grad(value, [logits])
    theirs = their_form(logits, labels, counts, beta)
    (their_grad,) = torch.autograd.grad(theirs, [logits])
    assert math.isclose(value.item(), theirs.item(), rel_tol=1e-12), (value, theirs)
    assert torch.allclose(grad, their_grad, rtol=1e-9, atol=0.0)
    return {"case": name, "num_classes": k, "class_counts": counts, "beta": beta,
            "logits": logits.tolist(), "labels": labels.tolist(),
            "value": value.item(), "grad_logits": grad.tolist()}


def radius_of(weight, max_norm):
    norms = torch.linalg.norm(weight, ord=2, dim=1)
    return (norms.min() + max_norm * (norms.max() - norms.min())).item()


def project(weight, radius):
    norms = torch.linalg.norm(weight, ord=2, dim=1)
    over = norms > radius
    projected = weight.clone()
    projected[over] = weight[over] * (radius / norms[over]).unsqueeze(1)
    return projected


def max_norm_case(gen, name, k, d, max_norm):
    # Rows of decreasing norm, as a stage-1 classifier's from the Head classes to the Tail.
    scales = torch.linspace(3.0, 0.3, k)
    weight = torch.randn(k, d, generator=gen) * scales.unsqueeze(1)
    radius = radius_of(weight, max_norm)
    projected = project(weight, radius)
    norms = torch.linalg.norm(projected, dim=1)
    assert (norms <= radius * (1 + 1e-12)).all()
    return {"case": name, "max_norm": max_norm, "weight": weight.tolist(),
            "radius": radius, "projected": projected.tolist()}


def main():
    out_dir = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    gen = torch.Generator().manual_seed(seed)
    loss = [
        loss_case(gen, "small", 8, 5, long_tail_counts(500, 5, 100.0), 1.0, 0.9999),
        loss_case(gen, "small_beta_0.99", 8, 5, long_tail_counts(500, 5, 100.0), 1.0, 0.99),
        loss_case(gen, "cifar100_shape", 16, 100, long_tail_counts(500, 100, 100.0), 3.0, 0.9999),
        loss_case(gen, "fashion_shape", 24, 10, long_tail_counts(6000, 10, 100.0), 4.0, 0.9999),
    ]
    max_norm = [
        max_norm_case(gen, "cifar100_classes", 100, 8, 0.1),
        max_norm_case(gen, "small", 6, 16, 0.1),
        max_norm_case(gen, "half_spread", 10, 64, 0.5),
        max_norm_case(gen, "smallest_norm", 10, 64, 0.0),
    ]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vectors.json"), "w") as f:
        json.dump({"generator": "make_vectors.py", "seed": seed, "loss": loss,
                   "max_norm": max_norm}, f)
    print(f"wrote {len(loss)} loss and {len(max_norm)} MaxNorm vectors to {out_dir}")


if __name__ == "__main__":
    main()
