#!/usr/bin/env python3
"""Reference vectors of MiSLAS's label-aware smoothing (Zhong et al., CVPR 2021), in PyTorch
float64, as their code (github.com/dvlab-research/MiSLAS, `methods.py`, `LabelAwareSmoothing`)
computes it. Run from this folder:

    python3 make_vectors.py . [SEED]

It writes `vectors.json`: `{"generator", "seed", "factors": [...], "loss": [...]}`.

- `factors` vectors: `class_counts` [K], `smooth_head`, `smooth_tail`, `shape` → `smooth` [K],
  each class's smoothing factor. With n_1 the largest count and n_K the smallest, and
  r = (n - n_K) / (n_1 - n_K):
    concave: tail + (head - tail) * sin(pi r / 2)
    linear:  tail + (head - tail) * r
    convex:  head + (head - tail) * sin(3 pi / 2 + pi r / 2)
  so that the rarest class gets `smooth_tail` and the most frequent `smooth_head` in each shape.
- `loss` vectors: the same keys with `logits` [N][K], `labels` [N] → `value`, `grad_logits`
  [N][K]. The loss is `LabelAwareSmoothing.forward`: with s = smooth[y] and log p the
  log-softmax, the mean over the batch of (1 - s) * (-log p_y) + s * (-mean_c log p_c). It is
  written out here twice, as their forward pass and term by term, and the two checked equal.
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def long_tail_counts(n_max, k, ratio):
    """As ltsweep (and LDAM-DRW's code) computes a long-tailed set's counts."""
    return [int(n_max * (1.0 / ratio) ** (i / (k - 1))) for i in range(k)]


def their_factors(counts, head, tail, shape):
    """`LabelAwareSmoothing.__init__`, in numpy float64 as theirs (before its `.float()`)."""
    n_1, n_k = max(counts), min(counts)
    n = np.array(counts)
    if shape == "concave":
        return tail + (head - tail) * np.sin((n - n_k) * np.pi / (2 * (n_1 - n_k)))
    if shape == "linear":
        return tail + (head - tail) * (n - n_k) / (n_1 - n_k)
    if shape == "convex":
        return head + (head - tail) * np.sin(1.5 * np.pi + (n - n_k) * np.pi / (2 * (n_1 - n_k)))
    raise ValueError(shape)


def their_loss(x, target, smooth):
    """`LabelAwareSmoothing.forward`, line by line."""
    smoothing = smooth[target]
    confidence = 1.0 - smoothing
    logprobs = F.log_softmax(x, dim=-1)
    nll_loss = -logprobs.gather(dim=-1, index=target.unsqueeze(1))
    nll_loss = nll_loss.squeeze(1)
    smooth_loss = -logprobs.mean(dim=-1)
    loss = confidence * nll_loss + smoothing * smooth_loss
    return loss.mean()


def term_by_term(x, target, smooth):
    n, k = x.shape
    total = torch.zeros(())
    for i in range(n):
        log_p = x[i] - torch.logsumexp(x[i], dim=0)
        s = smooth[target[i]]
        total = total + (1.0 - s) * -log_p[target[i]] + s * -(log_p.sum() / k)
    return total / n


def factors_case(name, counts, head, tail, shape):
    smooth = their_factors(counts, head, tail, shape)
    rarest, commonest = counts.index(min(counts)), counts.index(max(counts))
    assert math.isclose(smooth[rarest], tail, abs_tol=1e-12), (shape, smooth[rarest])
    assert math.isclose(smooth[commonest], head, abs_tol=1e-12), (shape, smooth[commonest])
    return {"case": name, "class_counts": counts, "smooth_head": head, "smooth_tail": tail,
            "shape": shape, "smooth": smooth.tolist()}


def loss_case(gen, name, n, counts, scale, head, tail, shape):
    k = len(counts)
    smooth = torch.from_numpy(their_factors(counts, head, tail, shape))
    logits = (torch.randn(n, k, generator=gen) * scale).requires_grad_(True)
    labels = torch.randint(0, k, (n,), generator=gen)
    value = their_loss(logits, labels, smooth)
    (grad,) = torch.autograd.grad(value, [logits])
    written = term_by_term(logits, labels, smooth)
    (written_grad,) = torch.autograd.grad(written, [logits])
    assert math.isclose(value.item(), written.item(), rel_tol=1e-12), (value, written)
    assert torch.allclose(grad, written_grad, rtol=1e-9, atol=1e-15)
    return {"case": name, "class_counts": counts, "smooth_head": head, "smooth_tail": tail,
            "shape": shape, "logits": logits.tolist(), "labels": labels.tolist(),
            "value": value.item(), "grad_logits": grad.tolist()}


def main():
    out_dir = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    gen = torch.Generator().manual_seed(seed)
    cifar = long_tail_counts(500, 100, 100.0)
    small = long_tail_counts(500, 7, 100.0)
    factors = [factors_case(f"cifar100_{shape}", cifar, 0.4, 0.1, shape)
               for shape in ("concave", "linear", "convex")]
    # Head below tail, and counts not in decreasing order: the formula reads the counts alone.
    factors.append(factors_case("reversed_concave", [3, 40, 7, 100, 25], 0.0, 0.3, "concave"))
    factors.append(factors_case("reversed_convex", [3, 40, 7, 100, 25], 0.05, 0.5, "convex"))
    loss = [
        loss_case(gen, "small_concave", 8, small, 1.0, 0.4, 0.1, "concave"),
        loss_case(gen, "small_linear", 8, small, 1.0, 0.4, 0.1, "linear"),
        loss_case(gen, "small_convex", 8, small, 2.0, 0.4, 0.1, "convex"),
        loss_case(gen, "cifar100_concave", 32, cifar, 3.0, 0.4, 0.1, "concave"),
        loss_case(gen, "fashion_convex", 24, long_tail_counts(6000, 10, 100.0), 4.0, 0.3, 0.0,
                  "convex"),
    ]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vectors.json"), "w") as f:
        json.dump({"generator": "make_vectors.py", "seed": seed, "factors": factors,
                   "loss": loss}, f)
    print(f"wrote {len(factors)} factor and {len(loss)} loss vectors to {out_dir}")


if __name__ == "__main__":
    main()
