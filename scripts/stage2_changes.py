"""What each stage-2 setting changes, seed by seed: for every method of a two-stage report, the
method at its defaults (Kang et al.'s code) against each variant of it in the same sweep, as
seed-paired differences (default minus variant) of the final test accuracies, with a 95% t
interval and a paired t-test, Holm-adjusted over the table.

    .venv/bin/python scripts/stage2_changes.py report/two-stage

reads `jobs.parquet` of the report folder and prints a Markdown table.
"""

import re
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

GROUPS = [("All", "acc_all_final"), ("Head", "acc_head_final"), ("Tail", "acc_tail_final")]


def kind_and_options(label):
    """`crt(epochs=10,lr=0.1,bn=frozen)` -> ("crt(epochs=10,lr=0.1)", "bn=frozen"): the method
    with its numeric settings, and the options off their defaults."""
    match = re.fullmatch(r"(\w+)(?:\((.*)\))?", label)
    name, inner = match.group(1), match.group(2)
    settings = inner.split(",") if inner else []
    numeric = [s for s in settings if re.fullmatch(r"\w+=-?[0-9.e+-]+", s)]
    words = [s for s in settings if s not in numeric]
    method = f"{name}({','.join(numeric)})" if numeric else name
    return method, ",".join(words)


def holm(p_values):
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def main(folder):
    jobs = pd.read_parquet(Path(folder) / "jobs.parquet")
    jobs = jobs[(jobs["state"] == "succeeded") & (jobs["stage2"] != "none")]
    split = jobs["stage2"].map(kind_and_options)
    jobs = jobs.assign(method=split.map(lambda s: s[0]), options=split.map(lambda s: s[1]))
    rows, p_values = [], []
    for method, of_method in jobs.groupby("method", sort=False):
        default = of_method[of_method["options"] == ""].set_index("seed")
        for options, variant in of_method[of_method["options"] != ""].groupby("options", sort=False):
            variant = variant.set_index("seed")
            seeds = default.index.intersection(variant.index)
            cells = []
            for _, column in GROUPS:
                d = (default.loc[seeds, column] - variant.loc[seeds, column]) * 100.0
                mean, n = d.mean(), len(d)
                half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / n**0.5
                p = stats.ttest_1samp(d, 0.0).pvalue
                cells.append((mean, mean - half, mean + half))
                p_values.append(p)
            rows.append((method, options, len(seeds), cells))
    adjusted = iter(holm(p_values))
    header = " | ".join(f"{g}: default − variant" for g, _ in GROUPS)
    print(f"| method | variant | n | {header} |")
    print("| :-- | :-- | --: |" + " --: |" * len(GROUPS))
    for method, options, n, cells in rows:
        text = []
        for mean, lo, hi in cells:
            p = next(adjusted)
            star = "*" if p < 0.05 else ""
            text.append(f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}] p={p:.3f}{star}")
        print(f"| {method} | {options} | {n} | " + " | ".join(text) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: stage2_changes.py REPORT_FOLDER")
    main(sys.argv[1])
