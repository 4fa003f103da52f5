"""Reference vectors (float64) of the mixed-label losses of batch mixing, for `mixed_vectors`.

mixup and CutMix (facebookresearch/mixup-cifar10's `mixup_criterion`, clovaai/CutMix-PyTorch's
`criterion(output, target_a) * lam + criterion(output, target_b) * (1. - lam)`):
    lam * L(z, y_a) + (1 - lam) * L(z, y_b)
for the base losses ce, focal, cb and la as ../losses/make_baselines.py writes them; Remix (Chou et al.
2020, Eq. 6) with its per-sample label weights w_i:
    mean_i [ w_i * l_i(z, y_a) + (1 - w_i) * l_i(z, y_b) ]
for ce and la (l_i: the per-sample cross entropy of the, adjusted, logits). Each vector holds
the logits, both labels, the class counts, lambda (and Remix's weights), the value and its
gradient with respect to the logits.

Usage: python3 make_mixed.py [OUT_DIR [SEED]] (default: this folder, seed 0).
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "losses"))
from make_baselines import class_balanced, focal, log_priors, logit_adjusted, long_tail_counts

torch.set_default_dtype(torch.float64)


def remix_weight(n_a, n_b, lam, kappa, tau):
    ratio = n_a / n_b
    if ratio >= kappa and lam < tau:
        return 0.0
    if ratio <= 1.0 / kappa and 1.0 - lam < tau:
        return 1.0
    return lam


def base_loss(name, logits, labels, counts):
    if name == "ce":
        return F.cross_entropy(logits, labels)
    if name == "focal":
        return focal(logits, labels, 1.0)
    if name == "cb":
        return class_balanced(logits, labels, counts, 0.99)
    if name == "la":
        return logit_adjusted(logits, labels, counts, 1.0)
    raise ValueError(name)


def per_sample(name, logits, labels, counts):
    if name == "la":
        logits = logits + 1.0 * log_priors(counts)
    return F.cross_entropy(logits, labels, reduction="none")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    gen = torch.Generator().manual_seed(seed)
    n, k = 12, 6
    counts = long_tail_counts(500, k, 100)
    vectors = []
    for lam in [0.3, 0.35, 0.9]:
        logits0 = torch.randn(n, k, generator=gen) * 2.0
        labels = torch.randint(k, (n,), generator=gen)
        partner = labels[torch.randperm(n, generator=gen)]
        for base in ["ce", "focal", "cb", "la"]:
            logits = logits0.clone().requires_grad_(True)
            value = lam * base_loss(base, logits, labels, counts) + (1 - lam) * base_loss(base, logits, partner, counts)
            value.backward()
            vectors.append({"mix": "mixup", "base": base, "lam": lam, "logits": logits0.tolist(),
                            "labels": labels.tolist(), "partner": partner.tolist(), "counts": counts,
                            "value": value.item(), "grad": logits.grad.tolist()})
        for base in ["ce", "la"]:
            w = torch.tensor([remix_weight(counts[a], counts[b], lam, 3.0, 0.5)
                              for a, b in zip(labels.tolist(), partner.tolist())])
            logits = logits0.clone().requires_grad_(True)
            value = (w * per_sample(base, logits, labels, counts)
                     + (1 - w) * per_sample(base, logits, partner, counts)).mean()
            value.backward()
            vectors.append({"mix": "remix", "base": base, "lam": lam, "kappa": 3.0, "tau": 0.5,
                            "weights": w.tolist(), "logits": logits0.tolist(), "labels": labels.tolist(),
                            "partner": partner.tolist(), "counts": counts,
                            "value": value.item(), "grad": logits.grad.tolist()})
    with open(os.path.join(out_dir, "mixed.json"), "w") as f:
        json.dump({"generator": "make_mixed.py", "seed": seed, "vectors": vectors}, f)


if __name__ == "__main__":
    main()
