#!/usr/bin/env bash
# Sweep overhead, ours against Ray Tune, in one run: the paper's 9 loss plans x N seeds of
# minimal jobs, 2 at a time.
#
#   bench/sweep.sh [--seeds 10] [--concurrent 2] [--rounds 3]
#
# Ours: a coordinator and worker processes, each job a real (one-step) tch training job on tiny
# synthetic data, timed from the submit to the last result, and from the start of the
# processes. The peer: bench/peers/raytune_peer.py (trivial trials that report one metric),
# run from a virtualenv of its own (bench/.venv-ray) with bench/peers/requirements-ray.txt
# installed. Prints each figure's median and the ratio.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seeds=10 concurrent=2 rounds=3
while [[ $# -gt 0 ]]; do
    case $1 in
        --seeds) seeds=$2; shift 2 ;;
        --concurrent) concurrent=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
peer=$root/bench/peers/raytune_peer.py

./dev setup
ray_venv=$root/bench/.venv-ray
if [[ ! -x $ray_venv/bin/python ]]; then
    python3 -m venv "$ray_venv"
fi
"$ray_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements-ray.txt
ltsweep=${LTSWEEP_BIN:-}
if [[ -z $ltsweep ]]; then
    cargo build --quiet --release --bin ltsweep
    ltsweep=${CARGO_TARGET_DIR:-$root/target}/release/ltsweep
fi

ours=() ray=()
for round in $(seq "$rounds"); do
    ours+=("$("$ltsweep" bench sweep --seeds "$seeds" --workers "$concurrent" | tail -1)")
    ray+=("$("$ray_venv/bin/python" "$peer" --seeds "$seeds" --concurrent "$concurrent" 2>/dev/null | tail -1)")
    echo "round $round: ltsweep ${ours[-1]}" >&2
    echo "round $round: ray     ${ray[-1]}" >&2
done

python3 - "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${ray[@]}")" <<'PY'
import json, statistics, sys
ours = [json.loads(line) for line in sys.argv[1].splitlines()]
ray = [json.loads(line) for line in sys.argv[2].splitlines()]
med = lambda rows, key: statistics.median(r[key] for r in rows)
o_total, o_submit = med(ours, "total_s"), med(ours, "submit_to_last_result_s")
r_total, r_fit = med(ray, "total_s"), med(ray, "fit_s")
print(f"{ours[0]['trials']} jobs, {ours[0]['concurrent']} at a time, median of {len(ours)} rounds")
print("| figure | ltsweep | Ray Tune | Ray Tune / ltsweep |")
print("|---|---|---|---|")
print(f"| submit (fit) to last result | {o_submit:.2f} s | {r_fit:.2f} s | {r_fit / o_submit:.1f}x |")
print(f"| whole run, start-up included | {o_total:.2f} s | {r_total:.2f} s | {r_total / o_total:.1f}x (target >= 20x) |")
print(f"| per job | {med(ours, 'per_trial_s'):.3f} s | {med(ray, 'per_trial_s'):.3f} s | |")
print(f"(ltsweep jobs train for real: one tch step on synthetic data and a test evaluation; {ray[0]['tool']} trials report a constant)")
PY
