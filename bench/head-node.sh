#!/usr/bin/env bash
# The head-node build (`--no-default-features`: no trainer, no libtorch) beside the full one:
# the release binary's size and its split debug info (ltsweep.dwp), whether `ldd` shows
# libtorch, and an idle coordinator's resident memory: VmRSS once it says it listens and has
# settled, and its peak, VmHWM.
#
#   bench/head-node.sh       # builds both in release first (the full one about 16 minutes cold)
#
# Both builds write target/release/ltsweep, so each is copied aside, with its .dwp, into
# --builds; --skip-build measures the two copies already there.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

flag settle 3 "seconds between the coordinator's \"listening\" and the reading" int
flag builds "${CARGO_TARGET_DIR:-$root/target}/head-node-bench" "where the two release builds are copied (ltsweep-full, ltsweep-head-node)" path
switch skip-build "measure the two copies already in --builds"
common_flags out
parse_flags "$@"
use_out

if [[ $skip_build != true ]]; then
    ./dev setup
    mkdir -p "$builds"
    for build in full head-node; do
        flags=()
        [[ $build == head-node ]] && flags=(--no-default-features)
        cargo build --quiet --release "${flags[@]}" --bin ltsweep
        cp "${CARGO_TARGET_DIR:-$root/target}/release/ltsweep" "$builds/ltsweep-$build"
        cp "${CARGO_TARGET_DIR:-$root/target}/release/ltsweep.dwp" "$builds/ltsweep-$build.dwp"
    done
fi

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

for build in full head-node; do
    binary=$builds/ltsweep-$build
    [[ -x $binary && -f $binary.dwp ]] || die "no $binary (and .dwp): run without --skip-build"
    read -r rss hwm < <(idle_memory "$binary")
    record "$build.binary" "$(stat -L -c %s "$binary")"
    record "$build.dwp" "$(stat -L -c %s "$binary.dwp")"
    record "$build.libtorch" "$(ldd "$binary" | grep -c -E 'libtorch|libc10' || true)"
    record "$build.rss" "$rss"
    record "$build.hwm" "$hwm"
done

print_table head-node settle="$settle"
