#!/usr/bin/env bash
# Sweep overhead, ours against Ray Tune, in one run: the paper's 9 loss plans x N seeds of
# minimal jobs, 2 at a time.
#
#   bench/sweep.sh [--seeds 10] [--concurrent 2] [--rounds 3]
#
# Ours: a coordinator and worker processes, each job a real (one-step) tch training job on tiny
# synthetic data, timed from the submit to the last result, and from the start of the
# processes. The peer: bench/peers/raytune_peer.py (trivial trials that report one metric),
# run from a virtualenv of its own (--ray-venv) with bench/peers/requirements-ray.txt
# installed. Prints each figure's median and the ratio.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flag seeds 10 "seeds of each of the 9 plans" int
flag concurrent 2 "jobs at a time (ltsweep's worker processes, Ray Tune's concurrent trials)" int
flag rounds 3 "interleaved rounds; each figure is the median over them" int
flag ray-venv "$root/bench/.venv-ray" "the virtualenv Ray Tune is installed into" path
common_flags ltsweep setup out
parse_flags "$@"
if [[ $skip_setup != true ]]; then
    [[ -x $ray_venv/bin/python ]] || python3 -m venv "$ray_venv"
    "$ray_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/peers/requirements-ray.txt
fi
[[ -x $ray_venv/bin/python ]] || die "--ray-venv $ray_venv: no virtualenv there (run without --skip-setup)"
use_ltsweep
use_out

for round in $(seq "$rounds"); do
    record ltsweep "$("$ltsweep" bench sweep --seeds "$seeds" --workers "$concurrent" | tail -1)"
    record ray "$("$ray_venv/bin/python" bench/peers/raytune_peer.py --seeds "$seeds" \
        --concurrent "$concurrent" 2>/dev/null | tail -1)"
done

print_table sweep
