#!/usr/bin/env python3
"""Opens a report's Parquet files with pandas (pyarrow) and checks their columns.

    python3 scripts/check_parquet.py REPORT_DIR [AXIS ...]

AXIS: the names of the sweep's list-valued settings, which the jobs frame has as columns.
Prints one line per file and exits non-zero when a file is missing a column or has no rows.
"""
import sys

import pandas as pd

EXPECTED = {
    "jobs.parquet": ["sweep", "job_id", "plan", "comp_on", "pc_on", "base", "sampler", "seed", "state", "attempts",
                     "acc_all_final", "acc_head_final", "acc_tail_final", "acc_many_final",
                     "acc_medium_final", "acc_few_final", "final_epoch", "acc_all_best",
                     "acc_tail_best", "best_epoch", "train_seconds", "worker"],
    "per_class.parquet": ["job_id", "plan", "seed", "epoch", "class", "train_count", "group",
                          "shot", "test_total", "test_correct", "recall", "precision"],
    "epochs.parquet": ["job_id", "plan", "seed", "epoch", "lr", "loss_base", "loss_comp",
                       "loss_pc", "acc_all", "acc_head", "acc_tail"],
}


def main():
    folder, axes = sys.argv[1], sys.argv[2:]
    failed = False
    for name, columns in EXPECTED.items():
        frame = pd.read_parquet(f"{folder}/{name}")
        wanted = columns + (axes if name == "jobs.parquet" else [])
        missing = [c for c in wanted if c not in frame.columns]
        print(f"{name}: {len(frame)} rows, {len(frame.columns)} columns"
              + (f"; missing {missing}" if missing else ""))
        failed |= bool(missing) or frame.empty
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
