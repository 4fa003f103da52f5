# The set-up every bench/*.sh shares, sourced as its first line:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   flag depth 20 "the CIFAR ResNet's depth, 6n+2" int
#   common_flags ltsweep python setup out
#   parse_flags "$@"
#   use_ltsweep; use_python bench/peers/requirements.txt; use_out
#   ... record NAME "$(... | rate)" ...
#   print_table train depth="$depth" ...
#
# It strict-modes the script and moves to the repository's root; declares and parses the
# script's `--flag value` options and answers `--help` from the script's leading comment; finds
# or builds the ltsweep binary (LTSWEEP_BIN sets the default of --ltsweep, as the docs use it);
# sets up the peers' Python; makes the run's folder, where every figure is recorded
# (runs.tsv) and the table is saved (table.md); and prints the table through bench/table.py,
# which heads it with the date, the commit, the machine and the command that reprints it.
set -euo pipefail
# Paths given as options are relative to where the script was started.
caller_dir=$PWD
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bench_script=bench/$(basename "${BASH_SOURCE[1]}")
bench_name=$(basename "$bench_script" .sh)
# libtorch for an ltsweep binary built elsewhere (LTSWEEP_BIN) and for the peers' torch.
if [[ -d $root/.venv/libtorch/lib ]]; then
    export LD_LIBRARY_PATH=$root/.venv/libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

say() { echo "[$bench_script] $*" >&2; }
die() { say "$*"; exit 2; }

# --- options ---

flag_names=() flag_defaults=() flag_helps=() flag_kinds=()

# `flag NAME DEFAULT HELP [KIND]`: an option `--NAME VALUE` setting the variable NAME (dashes
# as underscores), DEFAULT when not given. KIND checks the value: int (a whole number >= 0),
# ints (whole numbers separated by commas), path (made absolute), or nothing (any text).
flag() {
    flag_names+=("$1") flag_defaults+=("$2") flag_helps+=("$3") flag_kinds+=("${4:-}")
    printf -v "${1//-/_}" '%s' "$2"
}

# `switch NAME HELP`: an option `--NAME` without a value, setting NAME to true (false by default).
switch() { flag "$1" false "$2" switch; }

# The options several scripts share: `ltsweep` (the binary), `python` (the peers' Python),
# `setup` (--skip-setup), `out` (the run's folder).
common_flags() {
    local name
    for name in "$@"; do
        case $name in
            ltsweep) flag ltsweep "${LTSWEEP_BIN:-release}" \
                "the ltsweep measured: release or debug (build this checkout's in that profile), or the path of a built binary; LTSWEEP_BIN sets the default" ;;
            python) flag python "$root/.venv/bin/python" "the peers' Python, with torch 2.11.0 (./dev setup makes .venv)" path ;;
            setup) switch skip-setup "skip ./dev setup and the peers' pip installs (a machine set up before, offline)" ;;
            out) flag out "" "a folder for the run's figures (runs.tsv), files and table (table.md); default: target/bench/$bench_name/DATE-TIME" path ;;
            *) die "common_flags: no shared option $name" ;;
        esac
    done
}

usage() {
    # The script's leading comment, then its options.
    sed -n '2,/^[^#]/p' "$root/$bench_script" | sed '$d' | sed 's/^# \{0,1\}//'
    echo
    echo "Options:"
    local i value help
    for i in "${!flag_names[@]}"; do
        case ${flag_kinds[i]} in
            switch) value= ;;
            int) value=" N" ;;
            ints) value=" N,N,..." ;;
            path) value=" PATH" ;;
            *) value=" VALUE" ;;
        esac
        help=${flag_helps[i]}
        if [[ -n ${flag_defaults[i]} && ${flag_kinds[i]} != switch ]]; then
            help+=" (default: ${flag_defaults[i]#"$root"/})"
        fi
        echo "  --${flag_names[i]}$value"
        fold -s -w 90 <<<"$help" | sed 's/ *$//; s/^/      /'
    done
    echo "  --help"
    echo "      this text"
}

# An argument as a shell reads it back: as it is where it needs no quoting (bash's %q would
# also escape the commas of a list, `--seeds 0\,1`), quoted by %q where it does.
shell_word() {
    if [[ $1 =~ ^[A-Za-z0-9_./:,=+@%-]+$ ]]; then printf '%s' "$1"; else printf '%q' "$1"; fi
}

parse_flags() {
    local command=$bench_script arg name value i found
    for arg in "$@"; do command+=" $(shell_word "$arg")"; done
    # The command that reprints the run, as the table's header names it.
    bench_command=$command
    while [[ $# -gt 0 ]]; do
        arg=$1
        shift
        [[ $arg == --help || $arg == -h ]] && { usage; exit 0; }
        [[ $arg == --* ]] || die "unexpected argument '$arg' (see --help)"
        name=${arg#--} value=
        if [[ $name == *=* ]]; then
            value=${name#*=} name=${name%%=*}
        fi
        found=
        for i in "${!flag_names[@]}"; do
            [[ ${flag_names[i]} == "$name" ]] && found=$i && break
        done
        [[ -n $found ]] || die "unknown option --$name (see --help)"
        if [[ ${flag_kinds[found]} == switch ]]; then
            [[ $arg == *=* ]] && die "--$name takes no value"
            value=true
        elif [[ $arg != *=* ]]; then
            [[ $# -gt 0 ]] || die "--$name needs a value"
            value=$1
            shift
        fi
        case ${flag_kinds[found]} in
            int) [[ $value =~ ^[0-9]+$ ]] || die "--$name: '$value' is not a whole number" ;;
            ints) [[ $value =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--$name: '$value' is not whole numbers separated by commas" ;;
            path) [[ -n $value ]] || die "--$name: an empty path"
                [[ $value == /* ]] || value=$caller_dir/$value ;;
        esac
        printf -v "${name//-/_}" '%s' "$value"
    done
}

# --- set-up ---

# Sets `ltsweep` to the binary to measure and `ltsweep_label` to how the table names it.
use_ltsweep() {
    case $ltsweep in
        release | debug)
            local profile=$ltsweep flags=()
            [[ $profile == release ]] && flags=(--release)
            [[ ${skip_setup:-false} == true ]] || ./dev setup
            say "building ltsweep ($profile; a cold release build takes a quarter of an hour or more)"
            cargo build --quiet "${flags[@]}" --bin ltsweep
            ltsweep=${CARGO_TARGET_DIR:-$root/target}/$profile/ltsweep
            ltsweep_label="$profile build"
            ;;
        *)
            [[ $ltsweep == /* ]] || ltsweep=$caller_dir/$ltsweep
            [[ -x $ltsweep ]] || die "--ltsweep $ltsweep: no such executable (release, debug or a path)"
            ltsweep_label=${ltsweep#"$root"/}
            ;;
    esac
}

# `use_python [REQUIREMENTS...]`: the peers' Python set up, with these requirement files.
use_python() {
    if [[ $skip_setup != true ]]; then
        ./dev setup
        local requirements
        for requirements in "$@"; do
            "$python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
        done
    fi
    [[ -x $python ]] || die "--python $python: no such executable (./dev setup makes .venv)"
}

# Makes the run's folder: `out`, with an empty runs.tsv.
use_out() {
    [[ -n $out ]] || out=$root/target/bench/$bench_name/$(date -u +%Y%m%d-%H%M%S)
    mkdir -p "$out"
    : > "$out/runs.tsv"
    say "run's files in ${out#"$root"/}"
}

# --- figures and tables ---

# The figure of a throughput program's output: its last `images_per_second=` line.
rate() { sed -n 's/^images_per_second=//p' | tail -1; }

# `record NAME VALUE`: one figure of round `$round` (1 unless the script counts rounds).
record() {
    [[ -n $2 ]] || die "no figure for $1 (round ${round:-1}): its program printed none"
    printf '%s\t%s\t%s\n' "${round:-1}" "$1" "$2" >> "$out/runs.tsv"
    say "round ${round:-1}: $1 $2"
}

table_python() {
    if [[ -x ${python:-} ]]; then echo "$python"
    elif [[ -x $root/.venv/bin/python ]]; then echo "$root/.venv/bin/python"
    else echo python3
    fi
}

# The header alone (a script that prints its table itself).
print_header() {
    "$(table_python)" "$root/bench/table.py" header --command "$bench_command" \
        ${ltsweep_label:+--ltsweep "$ltsweep_label"}
}

# `print_table KIND [KEY=VALUE...]`: the table of this run's figures, also saved as table.md.
print_table() {
    local kind=$1
    shift
    "$(table_python)" "$root/bench/table.py" "$kind" --runs "$out/runs.tsv" \
        --command "$bench_command" ${ltsweep_label:+--ltsweep "$ltsweep_label"} "$@" |
        tee "$out/table.md"
}
