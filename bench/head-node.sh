#!/usr/bin/env bash
# The head-node build (`--no-default-features`: no trainer, no libtorch) beside the full one:
# the release binary's size and its split debug info (ltsweep.dwp), whether `ldd` shows
# libtorch, and an idle coordinator's resident memory: VmRSS once it says it listens and has
# settled, and its peak, VmHWM.
#
#   bench/head-node.sh       # builds both in release first (the full one about 16 minutes cold)
#
# Settings (environment): HEAD_NODE_SETTLE (seconds between "listening" and the reading, 3),
# HEAD_NODE_SKIP_BUILD=1 (measure the two binaries already in $CARGO_TARGET_DIR/head-node-bench).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

target=${CARGO_TARGET_DIR:-$root/target}
out=$target/head-node-bench
settle=${HEAD_NODE_SETTLE:-3}
mkdir -p "$out"

# Both builds write target/release/ltsweep: each is copied aside, with its .dwp.
if [[ ${HEAD_NODE_SKIP_BUILD:-0} != 1 ]]; then
    ./dev setup
    for build in full head-node; do
        flags=()
        [[ $build == head-node ]] && flags=(--no-default-features)
        cargo build --quiet --release "${flags[@]}" --bin ltsweep
        cp "$target/release/ltsweep" "$out/ltsweep-$build"
        cp "$target/release/ltsweep.dwp" "$out/ltsweep-$build.dwp"
    done
fi

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# Starts a coordinator of `$1` on loopback and prints "VmRSS VmHWM" in KiB.
idle_memory() {
    local binary=$1 dir
    dir=$(mktemp -d)
    LTSWEEP_TOKEN=head-node-bench-token-0123456789abcdef "$binary" coordinator \
        --listen 127.0.0.1:0 --state-dir "$dir/state" 2>"$dir/stderr" &
    local pid=$!
    for _ in $(seq 600); do
        grep -q "listening on" "$dir/stderr" && break
        kill -0 "$pid" 2>/dev/null || { cat "$dir/stderr" >&2; exit 1; }
        sleep 0.1
    done
    sleep "$settle"
    awk '/^VmRSS:/ { rss = $2 } /^VmHWM:/ { hwm = $2 } END { print rss, hwm }' "/proc/$pid/status"
    kill "$pid"
    wait "$pid" || true
    rm -rf "$dir"
}

echo "bench/head-node.sh: $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) cores, $(uname -m), release builds"
echo
echo "| build | binary | split debug info (.dwp) | libtorch in ldd | idle coordinator VmRSS | VmHWM |"
echo "|---|---|---|---|---|---|"
for build in full head-node; do
    binary=$out/ltsweep-$build
    read -r rss hwm < <(idle_memory "$binary")
    libtorch=$(ldd "$binary" | grep -c -E 'libtorch|libc10' || true)
    echo "| $build | $(mib "$(stat -c %s "$binary")") | $(mib "$(stat -c %s "$binary.dwp")") | $libtorch libraries | $(mib $((rss * 1024))) | $(mib $((hwm * 1024))) |"
done
