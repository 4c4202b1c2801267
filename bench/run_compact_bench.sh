#!/usr/bin/env bash
# bench/run_compact_bench.sh — issue figures for compaction and parallel
# marking, all ratios from one run:
#   1. fragmentation workload (compact_bench frag): heap_bytes/live_bytes
#      after collections over the second half of the run, and final RSS,
#      MULCH_GC_COMPACT=auto vs never (target: auto <= 1.3);
#   2. marking a > 1 GiB live heap of trees (compact_bench mark): best
#      full-collection pause with MULCH_GC_MARKERS=1 vs 2 (target >= 1.6x);
#   3. GCBench and binary-trees (depth 20) under mulch with compaction
#      auto vs never (target: auto no more than 5 % slower).
#
#   bench/run_compact_bench.sh            # full run (~3-5 minutes on 2 cores)
#   bench/run_compact_bench.sh --quick    # small sizes, a smoke test
#   bench/run_compact_bench.sh --reps N   # repetitions of part 3 (default 3)
#
# Builds the bench preset's compact_bench, gcbench_mulch and
# binary_trees_mulch. The table goes to stdout and
# build/bench/compact_results.md, raw lines to build/bench/compact_results.txt;
# a run that exits non-zero or prints no RESULT line is recorded as "# FAILED"
# there, shows as n/a in the table and makes the exit status 1.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0 reps=3
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --reps) reps=${2:?--reps needs a number}; shift ;;
    *) echo "usage: $0 [--quick] [--reps N]" >&2; exit 2 ;;
    esac
    shift
done
steps=6000000 samples=100000 mib=1100 depth=20
if [ "$quick" = 1 ]; then steps=600000 samples=20000 mib=64 depth=16 reps=1; fi

cmake --preset bench >/dev/null || exit 1
cmake --build build/bench --target compact_bench gcbench_mulch binary_trees_mulch >&2 || exit 1
bin=build/bench/bench
results=build/bench/compact_results.txt
table=build/bench/compact_results.md
: >"$results"

failed=0
run() { # run <label> <env...> -- <command...>: appends "label RESULT ..." lines
    local label=$1 out rc
    shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    echo "run_compact_bench: $label" >&2
    out=$(env "${envs[@]}" "$@" 2>>build/bench/compact_bench.log)
    rc=$?
    if [ "$rc" -ne 0 ] || ! printf '%s\n' "$out" | grep -q '^RESULT '; then
        # a failed run is recorded, left out of the table and makes the exit status 1
        failed=$((failed + 1))
        echo "# FAILED $label rc=$rc cmd: ${envs[*]} $*" | tee -a build/bench/compact_bench.log >>"$results"
        echo "run_compact_bench: FAILED: $label (exit $rc), see build/bench/compact_bench.log" >&2
        return 1
    fi
    printf '%s\n' "$out" | grep '^RESULT ' | sed "s/^/$label /" >>"$results"
}

for mode in auto never; do
    run "frag_$mode" MULCH_GC_COMPACT=$mode -- "$bin/compact_bench" frag --steps $steps --samples $samples
done
for markers in 1 2; do
    run "mark_$markers" MULCH_GC_MARKERS=$markers -- "$bin/compact_bench" mark --mib $mib --collections 3
done
for rep in $(seq 1 "$reps"); do
    for mode in auto never; do
        run "gcbench_$mode" MULCH_GC_COMPACT=$mode -- "$bin/gcbench_mulch"
        run "binary_trees_$mode" MULCH_GC_COMPACT=$mode -- "$bin/binary_trees_mulch" $depth
    done
done

awk -v quick="$quick" -v depth="$depth" -v cpus="$(nproc)" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '
function val(line, key,    i, n, kv) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[1] == key) return kv[2] }
    return ""
}
function median(label,    n, i, j, t, a) {
    n = cnt[label]; for (i = 1; i <= n; i++) a[i] = sec[label, i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n ? a[int((n + 1) / 2)] : ""
}
{ line[$1] = $0 }
$1 ~ /^(gcbench|binary_trees)_/ { cnt[$1]++; sec[$1, cnt[$1]] = val($0, "seconds") + 0; cpu[$1] += val($0, "cpu_seconds"); moved[$1] = val($0, "moved_mib") }
END {
    printf "### Compaction and parallel marking (%s, %s CPUs, load average %s)\n\n", quick ? "quick" : "full", cpus, load
    print "| fragmentation workload | mean heap/live (2nd half) | max heap/live | moved (MiB) | final RSS (MiB) | max pause (ms) |"
    print "|---|---:|---:|---:|---:|---:|"
    for (m = 1; m <= 2; m++) {
        mode = m == 1 ? "auto" : "never"; l = line["frag_" mode]
        printf "| compaction %s | %s | %s | %s | %.1f | %s |\n", mode, val(l, "mean_ratio"), val(l, "max_ratio"),
            val(l, "moved_mib"), val(l, "rss_kib") / 1024, val(l, "max_pause_ms")
    }
    r1 = val(line["mark_1"], "mark_seconds"); r2 = val(line["mark_2"], "mark_seconds")
    print ""
    print "| marking | live (MiB) | best pause (s) |"
    print "|---|---:|---:|"
    printf "| 1 marker | %s | %s |\n| 2 markers | %s | %s |\n", val(line["mark_1"], "live_mib"), r1, val(line["mark_2"], "live_mib"), r2
    printf "| **speed-up** | | **%s** |\n\n", (r1 != "" && r2 > 0 ? sprintf("%.2fx", r1 / r2) : "n/a")
    print "| benchmark (mulch) | auto (s) | never (s) | auto/never | moved by auto (MiB) |"
    print "|---|---:|---:|---:|---:|"
    split("gcbench binary_trees", B, " ")
    for (i = 1; i <= 2; i++) {
        a = median(B[i] "_auto"); n = median(B[i] "_never")
        printf "| %s%s | %s | %s | %s | %s |\n", B[i], (B[i] == "binary_trees" ? " depth " depth : ""),
            (a == "" ? "n/a" : sprintf("%.3f", a)), (n == "" ? "n/a" : sprintf("%.3f", n)),
            (a != "" && n > 0 ? sprintf("%.3f", a / n) : "n/a"), moved[B[i] "_auto"]
    }
}' "$results" | tee "$table"
if [ "$failed" -gt 0 ]; then
    echo "run_compact_bench: $failed run(s) failed, see build/bench/compact_bench.log" >&2
    exit 1
fi
