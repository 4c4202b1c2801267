#!/usr/bin/env bash
# bench/run_lisp_bench.sh — the Scheme-like interpreter of examples/lisp on
# mulch's collector vs on Boehm's (libgc), same interpreter core, same run.
#
#   bench/run_lisp_bench.sh            # full run: 3 repetitions (~2 minutes on 2 cores)
#   bench/run_lisp_bench.sh --quick    # smaller sizes, 1 repetition (~15 s)
#
# Options:
#   --quick             smaller sizes, one repetition (a smoke test)
#   --reps N            repetitions (default 3); runs are interleaved:
#                       for rep { for program { for backend } }
#   --programs LIST     comma-separated subset of binary_trees,strings,sort,closures
#   --no-build          use the executables already in build/bench
#
# The allocation-heavy programs of examples/lisp/programs run with bigger
# sizes than in the tests (passed as the script's argument, *args*):
# binary_trees depth 16, strings 20000, sort 30000, closures 300000
# (--quick: 13, 4000, 6000, 60000). Each run is `mulch-lisp --stats
# <program> <size>` (or mulch-lisp-boehm), whose RESULT line gives the wall
# and CPU time of the script, peak RSS, collections and the longest pause.
# Builds the `bench` preset's targets mulch-lisp and mulch-lisp-boehm (the
# examples are part of that build). Raw RESULT lines go to
# build/bench/lisp_results.txt, the markdown table to stdout and
# build/bench/lisp_results.md, the programs' output and any failure (with
# the exact command) to build/bench/lisp_bench.log. Exit status: 0 when
# every run succeeded, 1 otherwise.
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_init lisp 2,27p

programs="binary_trees strings sort closures"
variants="mulch boehm"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1; reps=1 ;;
    --programs) programs=$(bench_list "${2:?--programs needs a list}"); shift ;;
    *) bench_common_option "$@"; shift $((bench_shift - 1)) ;;
    esac
    shift
done

declare -A size
if [ "$quick" = 1 ]; then
    size=([binary_trees]=13 [strings]=4000 [sort]=6000 [closures]=60000)
else
    size=([binary_trees]=16 [strings]=20000 [sort]=30000 [closures]=300000)
fi
declare -A target=([mulch]=mulch-lisp [boehm]=mulch-lisp-boehm)

build_with_cmake() {
    bench_cmake_configure || return 1
    local built=0 v
    for v in $variants; do
        if "${bench_build_cmd[@]}" --target "${target[$v]}" >&2; then
            built=$((built + 1))
        else
            note "target ${target[$v]} failed to build; its rows will say n/a"
        fi
    done
    [ "$built" -gt 0 ]
}
build_by_hand() { note "the interpreter is built with CMake only"; }

bench_build build_with_cmake build_by_hand
search=$build/examples/lisp

declare -A bin
for v in $variants; do
    b=$(bench_find_bin "${target[$v]}")
    if [ -n "$b" ]; then bin[$v]=$b; else note "${target[$v]} not built, its rows will say n/a"; fi
done
[ "${#bin[@]}" -gt 0 ] || { note "nothing to run"; exit 1; }

sizes=""
for p in $programs; do sizes="$sizes $p=${size[$p]}"; done
bench_start_results "commit=$(bench_commit) sizes:$sizes"

# The programs write nothing but stdout; run them from a scratch directory.
workdir=$build/lisp_work
mkdir -p "$workdir"
for rep in $(seq 1 "$reps"); do
    for p in $programs; do
        for v in $variants; do
            [ -n "${bin[$v]:-}" ] || continue
            note "rep $rep/$reps $p $v (size ${size[$p]})"
            echo "## rep=$rep $p $v ${size[$p]}" >>"$log"
            bench_run "bench=$p variant=$v rep=$rep" "bench=$p variant=$v rep=$rep size=${size[$p]}" \
                "$p $v" "$root/${bin[$v]}" --stats "$root/examples/lisp/programs/$p.scm" "${size[$p]}"
        done
    done
done
bench_finish

# ------------------------------------------------------------------ table --
awk -v programs="$programs" "${bench_awk_vars[@]}" "$bench_awk_lib$bench_awk_ratio"'
function get(b, m, v) { return med(b SUBSEP m SUBSEP v) }
function fmt(x, d) { return x == "" ? "n/a" : sprintf("%." d "f", x) }
function rfmt(x) { return x == "" ? "n/a" : sprintf("%.2fx", x) }
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { k = $i; sub(/=.*/, "", k); x = $i; sub(/^[^=]*=/, "", x); kv[k] = x }
    if ("rc" in kv) next
    b = kv["bench"]; v = kv["variant"]; sz[b] = kv["size"]
    add(b SUBSEP "seconds" SUBSEP v, kv["seconds"] + 0)
    add(b SUBSEP "cpu" SUBSEP v, kv["cpu_seconds"] + 0)
    add(b SUBSEP "peak" SUBSEP v, kv["peak_rss_kib"] + 0)
    add(b SUBSEP "coll" SUBSEP v, kv["collections"] + 0)
    add(b SUBSEP "pause" SUBSEP v, kv["max_pause_ms"] + 0)
}
END {
    np = split(programs, P, " ")
    printf "### Lisp interpreter: mulch vs Boehm (%d rep%s, %d s, %d failed run%s, %s CPUs, load average %s)\n\n",
        reps, (reps == 1 ? "" : "s"), elapsed, failed, (failed == 1 ? "" : "s"), cpus, load
    print "Medians over the repetitions. time = wall clock of the script (start-up excluded); CPU = user+system time of the process. Ratios are mulch ÷ Boehm (<1 = mulch faster / smaller). Target: time ≤ 0.6× Boehm on each program.\n"
    print "| program (size) | backend | time (s) | CPU (s) | peak RSS (MiB) | collections | max pause (ms) |"
    print "|---|---|---:|---:|---:|---:|---:|"
    for (i = 1; i <= np; i++) {
        b = P[i]
        split("mulch boehm", V, " ")
        for (j = 1; j <= 2; j++) {
            v = V[j]
            printf "| %s (%s) | %s | %s | %s | %s | %s | %s |\n", b, sz[b], v, fmt(get(b, "seconds", v), 3),
                fmt(get(b, "cpu", v), 3), fmt(get(b, "peak", v) == "" ? "" : get(b, "peak", v) / 1024, 1),
                fmt(get(b, "coll", v), 0), fmt(get(b, "pause", v), 2)
        }
    }
    print ""
    print "| program | time mulch/Boehm | CPU mulch/Boehm | peak RSS mulch/Boehm | max pause mulch/Boehm | target time <= 0.6x |"
    print "|---|---:|---:|---:|---:|---|"
    for (i = 1; i <= np; i++) {
        b = P[i]
        t = ratio(get(b, "seconds", "mulch"), get(b, "seconds", "boehm"))
        printf "| %s | %s | %s | %s | %s | %s |\n", b, rfmt(t),
            rfmt(ratio(get(b, "cpu", "mulch"), get(b, "cpu", "boehm"))),
            rfmt(ratio(get(b, "peak", "mulch"), get(b, "peak", "boehm"))),
            rfmt(ratio(get(b, "pause", "mulch"), get(b, "pause", "boehm"))),
            (t == "" ? "n/a" : (t <= 0.6 ? "PASS" : "FAIL"))
    }
}' "$results" | tee "$table"

echo
echo "raw results: $results (table: $table, log: $log)"
bench_exit_status
