#!/usr/bin/env bash
# bench/plot.sh — run the benchmarks that produce a time series and render
# each series as a PNG with gnuplot (Debian: gnuplot-nox, in scripts/setup.sh).
#
#   bench/plot.sh                  # every plot: build, run, render into docs/img
#   bench/plot.sh frag_rss         # just that one
#   bench/plot.sh --no-run         # re-render from the data files in docs/img
#   bench/plot.sh --list           # the plots and what each shows
#
# Options:
#   --quick      smaller runs (a smoke test: never commit its images)
#   --no-build   use the executables already in build/bench
#   --no-run     do not run anything: render docs/img/<plot>.dat again
#                (for changing a template without re-measuring)
#   --out DIR    where <plot>.dat and <plot>.png go (default docs/img)
#
# A plot is two files in bench/plots/ (copy frag_rss.* to add one):
#   <plot>.sh  sourced; sets plot_title (one line, for --list), plot_targets
#              (CMake targets of the bench preset it runs) and defines
#              plot_data <datafile>, which runs the benchmark and writes the
#              data file described below; it may use $quick, $search and
#              bench_find_bin from bench_lib.sh, and plot_join from here;
#   <plot>.gp  the gnuplot template: it is given `datafile` and `outfile`,
#              plus every `#gnuplot: <statement>` line of the data file.
# The data file is plain text: '#' comment lines first (what was run, when,
# on which commit; `#gnuplot:` lines carry values such as phase boundaries to
# the template), then one header line naming the columns (x first, then one
# column per series; gnuplot reads it with `columnheader`), then one row per
# x value, whitespace-separated, `NaN` where a series has no value.
# Runs go through bench_lib.sh (stderr in build/bench/plot_bench.log).
# shellcheck disable=SC2317  # functions called indirectly (bench_build, plots/*.sh)
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_init plot 2,31p
note() { echo "plot.sh: $*" >&2; }

out_dir=docs/img
do_run=1
list=0
plots=()
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --no-run) do_run=0 ;;
    --out) out_dir=${2:?--out needs a directory}; shift ;;
    --list) list=1 ;;
    -*) bench_common_option "$@"; shift $((bench_shift - 1)) ;;
    *) plots+=("$1") ;;
    esac
    shift
done
if [ "${#plots[@]}" -eq 0 ]; then
    for gp in bench/plots/*.gp; do plots+=("$(basename "$gp" .gp)"); done
fi

# plot_join <column name>=<file>...: prints, side by side, the last field of
# each file's lines (one series per file, rows in the same order), under a
# header of the given names. Files that do not exist become NaN columns.
# The rows come from the first file: its lines are "<x fields...> <value>",
# and every field but the last is copied as the leading columns.
plot_join() {
    local names=() files=() arg
    for arg in "$@"; do names+=("${arg%%=*}"); files+=("${arg#*=}"); done
    awk -v names="${names[*]}" '
        BEGIN { n = split(names, name, " ") }
        FNR == 1 { f++ }
        { v[f, FNR] = $NF; if (FNR > rows) rows = FNR
          if (f == 1) { $NF = ""; lead[FNR] = $0 } }
        END {
            for (r = 1; r <= rows; r++) {
                line = lead[r]
                for (i = 1; i <= n; i++) line = line (((i, r) in v) ? v[i, r] : "NaN") (i < n ? " " : "")
                print line
            }
        }' "${files[@]}" 2>/dev/null
}

# plot_load <plot>: sources bench/plots/<plot>.sh in the current shell.
plot_load() {
    plot_title="" plot_targets=""
    unset -f plot_data
    # shellcheck source=/dev/null
    . "bench/plots/$1.sh" || return 1
    declare -F plot_data >/dev/null || { note "bench/plots/$1.sh defines no plot_data"; return 1; }
}

for p in "${plots[@]}"; do
    if [ ! -f "bench/plots/$p.gp" ] || [ ! -f "bench/plots/$p.sh" ]; then
        echo "plot.sh: unknown plot '$p' (bench/plots/$p.gp and .sh)" >&2
        exit 64
    fi
done
if [ "$list" = 1 ]; then
    for p in "${plots[@]}"; do plot_load "$p" && printf '%-16s %s\n' "$p" "$plot_title"; done
    exit 0
fi
command -v gnuplot >/dev/null || { note "gnuplot not found: run scripts/setup.sh (gnuplot-nox)"; exit 1; }
mkdir -p "$build" "$out_dir"

build_with_cmake() {
    bench_cmake_configure || return 1
    local t built=0
    for t in $all_targets; do
        if "${bench_build_cmd[@]}" --target "$t" -j2 >&2; then built=1; else note "target $t did not build"; fi
    done
    [ "$built" = 1 ]
}
build_none() { note "no CMake build: build the bench preset first"; }

if [ "$do_run" = 1 ]; then
    all_targets=""
    for p in "${plots[@]}"; do plot_load "$p" && all_targets="$all_targets $plot_targets"; done
    bench_build build_with_cmake build_none
    : >"$log"
fi

status=0
for p in "${plots[@]}"; do
    plot_load "$p" || { status=1; continue; }
    data=$out_dir/$p.dat
    png=$out_dir/$p.png
    if [ "$do_run" = 1 ]; then
        note "$p: $plot_title"
        if ! plot_data "$data.new" || [ ! -s "$data.new" ]; then
            note "$p: no data (see $log)"
            rm -f "$data.new"
            status=1
            continue
        fi
        mv "$data.new" "$data"
    fi
    [ -f "$data" ] || { note "$p: $data missing (run without --no-run)"; status=1; continue; }
    vars=$build/$p.gpvars
    sed -n 's/^#gnuplot: //p' "$data" >"$vars"
    if gnuplot -e "datafile='$data'; outfile='$png'" -e "load '$vars'" "bench/plots/$p.gp"; then
        note "$p: wrote $png ($(du -k "$png" | cut -f1) KiB) from $data"
    else
        note "$p: gnuplot failed"
        status=1
    fi
done
exit "$status"
