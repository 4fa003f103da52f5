#!/usr/bin/env bash
# Accuracy parity: ltsweep against a PyTorch trainer of the same recipe (bench/peers/lt_peer.py),
# on Fashion-MNIST-LT (ratio 100, Head = classes with >= 1,000 images), with the fashion
# example's recipe (ResNet-8, 6 epochs, batch 128, lr 0.1, 1 warm-up epoch, x0.1 after epochs 4
# and 5), no Comp. or PC, for each base loss and sampler, over seeds. Both train on the same
# long-tailed subset (the peer reimplements ltsweep's choice of images); the random draws
# (initial weights, order, crops) differ, so the question is whether the difference of the means
# is within seed noise: |ltsweep - pytorch| < 2 x its standard error. The seeds are enough when
# 2 x that standard error is below 1.5 points All: a difference of 1.5 points would then show.
# Twelve seeds by default: at eight, cross entropy's seed spread (about 1.8 points All) left 2 x
# the standard error at 1.6 points (docs/results.md has the table). A configuration's seed, both
# trainers, takes about 70 s on two cores.
# The runs go one after another; the run's folder keeps every finished one, so the same command
# with the same --out goes on where an interrupted run stopped (seeds are interleaved with
# configurations, so a run cut short still compares every one).
#
#   sudo apt-get install dataset-fashion-mnist
#   bench/parity.sh                                             # 12 seeds x 5 configurations: 70 min on 2 cores
#   bench/parity.sh --seeds 0 --epochs 1 --configs ce:instance  # a quick check
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
common_flags ltsweep python setup out
flag seeds 0,1,2,3,4,5,6,7,8,9,10,11 "the seeds; each configuration trains once a seed in each trainer" ints
flag configs ce:instance,la:instance,cb:instance,ldam_drw:instance,ce:class_balanced \
    "BASE:SAMPLER pairs separated by commas (bases: ce, focal, cb, la, ldam_drw; samplers: instance, class_balanced, sqrt)"
flag epochs 6 "epochs of the recipe (its warm-up and the decays that fit are kept)" int
flag threads 2 "libtorch threads of each run" int
flag data-root /usr/share/datasets "the folder that holds fashion-mnist/" path
parse_flags "$@"

seeds=${seeds//,/ }
configs=${configs//,/ }
for c in $configs; do
    [[ $c =~ ^[a-z_]+:[a-z_]+$ ]] || die "--configs: '$c' is not BASE:SAMPLER"
done
((epochs > 0)) || die "--epochs: at least 1"
bases=$(for c in $configs; do echo "${c%%:*}"; done | sort -u | tr '\n' ' ')
samplers=$(for c in $configs; do echo "${c##*:}"; done | sort -u | tr '\n' ' ')
[[ -d $data_root/fashion-mnist ]] ||
    die "no Fashion-MNIST in $data_root/fashion-mnist: apt-get install dataset-fashion-mnist (or --data-root)"
use_ltsweep
use_python
use_out
{ print_header; echo; } | tee "$out/table.md"

# The fashion example's recipe, cut to $epochs: the warm-up and the decays that fit.
warmup=$((epochs > 1 ? 1 : 0))
decays=()
for e in 4 5; do ((e < epochs)) && decays+=("$e"); done
decay_list=$(IFS=,; echo "${decays[*]:-}")
base_list=$(printf '"%s", ' $bases)
sampler_list=$(printf '"%s", ' $samplers)
seed_list=$(echo "$seeds" | tr ' ' ',')
spec=$out/parity.toml
cat > "$spec" <<EOF
name = "parity"
seeds = [$seed_list]
[dataset]
kind = "fashion-mnist"
path = "fashion-mnist"
imbalance_ratio = 100
head_min_count = 1000
[model]
depth = 8
[train]
epochs = $epochs
batch_size = 128
lr = 0.1
warmup_epochs = $warmup
lr_decay_epochs = [$decay_list]
lr_decay_factor = 0.1
checkpoint_every = $epochs
sampler = [${sampler_list%, }]
[losses]
plans = [{}]
base = [${base_list%, }]
EOF
"$ltsweep" validate "$spec" >&2

# Seeds interleaved with configurations, so that a run cut short still compares every one.
for seed in $seeds; do
    for config in $configs; do
        base=${config%%:*} sampler=${config##*:}
        run=$out/ltsweep-$base-$sampler-$seed
        peer=$out/pytorch-$base-$sampler-$seed.json
        if [[ ! -f $run/result.json ]]; then
            "$ltsweep" train "$spec" --base "$base" --sampler "$sampler" --seed "$seed" \
                --threads "$threads" --data-root "$data_root" --out "$run" >&2
        fi
        if [[ ! -s $peer ]]; then
            "$python" bench/peers/lt_peer.py --data "$data_root/fashion-mnist" --base "$base" \
                --sampler "$sampler" --seed "$seed" --epochs "$epochs" --warmup-epochs "$warmup" \
                --lr-decay-epochs "$decay_list" --threads "$threads" > "$peer.tmp"
            mv "$peer.tmp" "$peer"
        fi
        say "$base $sampler seed $seed: ltsweep $(grep -o '"acc_all": *[0-9.]*' "$run/result.json" | head -1), pytorch $(grep -o '"acc_all": *[0-9.]*' "$peer")"
    done
done

"$python" - "$out" "$epochs" "${seeds// /,}" $configs <<'PY' | tee -a "$out/table.md"
import json, math, statistics, sys
out, epochs, seeds, configs = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4:]

def accuracies(who, config):
    base, sampler = config.split(":")
    runs = []
    for seed in seeds:
        name = f"{out}/{who}-{base}-{sampler}-{seed}"
        with open(f"{name}/result.json" if who == "ltsweep" else f"{name}.json") as f:
            runs.append(json.load(f))
    return {g: [100 * r[f"acc_{g}"] for r in runs] for g in ("all", "head", "tail")}

def mean_std(values):
    m = statistics.mean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else None)

def cell(values):
    m, s = mean_std(values)
    return f"{m:.2f} ± {s:.2f}" if s is not None else f"{m:.2f}"

print(f"Fashion-MNIST-LT (ratio 100), ResNet-8, {epochs} epochs, no Comp. or PC, each base loss "
      "and sampler; top-1 % on the 10,000 test images, mean ± std over seeds; 'shows 1.5': "
      "whether a difference of 1.5 points would exceed 2 standard errors")
print("| base | sampler | group | n | ltsweep | PyTorch | difference | its std. error | "
      "within 2 SE | shows 1.5 |")
print("|---|---|---|--:|--:|--:|--:|--:|:-:|:-:|")
for config in configs:
    base, sampler = config.split(":")
    ours, theirs = accuracies("ltsweep", config), accuracies("pytorch", config)
    for group in ("all", "head", "tail"):
        a, b = ours[group], theirs[group]
        if not a or not b:
            continue
        (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
        diff = ma - mb
        if sa is None or sb is None:
            se, verdict, shows = "n/a", "n/a (one seed)", "n/a"
        else:
            se_value = math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b))
            se = f"{se_value:.2f}"
            verdict = "yes" if abs(diff) < 2 * se_value else "NO"
            shows = "yes" if 1.5 > 2 * se_value else "no"
        print(f"| {base} | {sampler} | {group.capitalize()} | {len(a)} | {cell(a)} | {cell(b)} | "
              f"{diff:+.2f} | {se} | {verdict} | {shows} |")
PY
say "runs and table in ${out#"$root"/}"
