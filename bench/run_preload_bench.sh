#!/usr/bin/env bash
# bench/run_preload_bench.sh — time real programs with libmulch-malloc.so
# preloaded against the same programs on glibc malloc (and, when installed,
# with libjemalloc / libmimalloc preloaded), in the same run.
#
#   bench/run_preload_bench.sh               # ~1-2 minutes on 2 cores
#   bench/run_preload_bench.sh --reps 3
#
# Options:
#   --reps N     repetitions (default 5); runs are interleaved:
#                for rep { for program { for allocator } }
#   --lib PATH   libmulch-malloc.so to test (default: build it in build/default)
#   --table      only print the table of the last run's results
#
# Each program's wall time is the median of the reps (and the fastest rep,
# which is steadier on a loaded machine); the table gives it per allocator
# and the ratio to glibc (< 1: faster than glibc), plus the peak RSS (max of
# the reps, from /usr/bin/time when installed). Raw lines
# go to build/bench/preload_results.txt. Outputs are checked: a program
# whose stdout differs from the glibc run is reported and its row marked; a
# run that exits non-zero is left out of the times (n/a when none is left),
# counted in its cell, and makes the exit status 1.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
reps=5
lib=""
table_only=0
while [ $# -gt 0 ]; do
    case $1 in
    --reps) reps=${2:?--reps needs a number}; shift ;;
    --lib) lib=${2:?--lib needs a path}; shift ;;
    --table) table_only=1 ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "run_preload_bench.sh: unknown option $1" >&2; exit 64 ;;
    esac
    shift
done

work=build/bench/preload
results=build/bench/preload_results.txt
alloc_names=(glibc mulch)
alloc_libs=("" "$lib")
if [ "$table_only" = 0 ]; then
if [ -z "$lib" ]; then
    cmake --preset default >/dev/null && cmake --build build/default -j2 >/dev/null || exit 1
    lib=$root/build/default/preload/libmulch-malloc.so
fi
[ -f "$lib" ] || { echo "no $lib" >&2; exit 1; }
lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
alloc_libs[1]=$lib
mkdir -p "$work"

# Allocators: name and LD_PRELOAD value (empty: glibc).
for peer in jemalloc:libjemalloc.so.2 mimalloc:libmimalloc.so.2; do
    path=$(/sbin/ldconfig -p 2>/dev/null | awk -v l="${peer#*:}" '$1 == l { print $NF; exit }')
    if [ -n "$path" ]; then
        alloc_names+=("${peer%%:*}")
        alloc_libs+=("$path")
    fi
done

# Programs: name and shell command (run from $work).
python=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)
[ -f "$work/lines.txt" ] || sh tests/preload/gen_lines.sh 1000000 "$work/lines.txt"
threads_bin=build/default/tests/preload/threads
prog_names=()
prog_cmds=()
add_program() { prog_names+=("$1"); prog_cmds+=("$2"); }
[ -n "$python" ] && add_program python "$python $root/tests/preload/workload.py"
command -v sort >/dev/null && add_program sort "LC_ALL=C sort -k3,3 -k1,1n $work/lines.txt"
add_program cmake_version_x20 "for i in \$(seq 20); do cmake --version; done"
command -v gcc >/dev/null &&
    add_program gcc_O2_compile "gcc -O2 -S -o - -D_GNU_SOURCE -I$root/include -I$root/pool $root/pool/alloc.c"
add_program ls_lR "ls -lR /usr/include"
[ -x "$threads_bin" ] && add_program threads_4x "$root/$threads_bin"

have_time=0
[ -x /usr/bin/time ] && have_time=1

{
    echo "# run_preload_bench.sh $(date -u +%FT%TZ) on $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), reps $reps"
    echo "# lib $lib"
} >"$results"

# run_one <prog index> <alloc index> <rep>: appends a RESULT line.
run_one() {
    local p=$1 a=$2 rep=$3 start end rc rss=0 out="$work/out.${prog_names[$1]}.${alloc_names[$2]}"
    start=$(date +%s%N)
    if [ "$have_time" = 1 ]; then
        LD_PRELOAD=${alloc_libs[$a]} /usr/bin/time -f %M -o "$work/rss" sh -c "${prog_cmds[$p]}" >"$out" 2>/dev/null
    else
        LD_PRELOAD=${alloc_libs[$a]} sh -c "${prog_cmds[$p]}" >"$out" 2>/dev/null
    fi
    rc=$?
    end=$(date +%s%N)
    [ "$have_time" = 1 ] && rss=$(tail -n 1 "$work/rss")
    local same=1
    cmp -s "$out" "$work/out.${prog_names[$p]}.glibc" || same=0
    echo "RESULT program=${prog_names[$p]} allocator=${alloc_names[$a]} rep=$rep seconds=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.4f", (e - s) / 1e9 }') max_rss_kib=$rss same_output=$same rc=$rc" >>"$results"
}

for ((rep = 1; rep <= reps; rep++)); do
    for ((p = 0; p < ${#prog_names[@]}; p++)); do
        for ((a = 0; a < ${#alloc_names[@]}; a++)); do
            run_one "$p" "$a" "$rep"
        done
    done
done
fi
alloc_names=($(sed -n 's/^RESULT .*allocator=\([^ ]*\) rep=1 .*/\1/p' "$results" | awk '!seen[$0]++'))

awk -v names="${alloc_names[*]}" '
function fastest(list,   n, v, i, m) {
    n = split(list, v, " ")
    m = v[1]
    for (i = 2; i <= n; i++) if (v[i] + 0 < m + 0) m = v[i]
    return m
}
function median(list,   n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
/^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    key = f["program"] SUBSEP f["allocator"]
    # a run that exited non-zero (a crash is often fast) is not timed
    if (("rc" in f) && f["rc"] != 0) { failed[key]++; delete f; next }
    times[key] = times[key] " " f["seconds"]
    if (f["max_rss_kib"] + 0 > rss[key] + 0) rss[key] = f["max_rss_kib"]
    if (f["same_output"] == 0) differs[key] = 1
    if (!(f["program"] in seen)) { seen[f["program"]] = 1; order[++np] = f["program"] }
    delete f
}
END {
    na = split(names, an, " ")
    header = "| program |"; rule = "|---|"
    for (a = 1; a <= na; a++) { header = header " " an[a] " s |"; rule = rule "---|" }
    for (a = 2; a <= na; a++) { header = header " " an[a] "/glibc |"; rule = rule "---|" }
    for (a = 2; a <= na; a++) { header = header " " an[a] "/glibc fastest |"; rule = rule "---|" }
    for (a = 1; a <= na; a++) { header = header " " an[a] " RSS MiB |"; rule = rule "---|" }
    print header; print rule
    for (p = 1; p <= np; p++) {
        line = "| " order[p] " |"
        for (a = 1; a <= na; a++) {
            k = order[p] SUBSEP an[a]
            m[a] = (k in times) ? median(times[k]) : ""
            line = line sprintf(" %s%s%s |", (m[a] == "" ? "n/a" : sprintf("%.3f", m[a])),
                                differs[k] ? " (output differs!)" : "",
                                (k in failed) ? " (" failed[k] " run(s) failed)" : "")
        }
        for (a = 2; a <= na; a++) line = line " " (m[1] > 0 && m[a] != "" ? sprintf("%.2f", m[a] / m[1]) : "n/a") " |"
        for (a = 1; a <= na; a++) { k = order[p] SUBSEP an[a]; fa[a] = (k in times) ? fastest(times[k]) : "" }
        for (a = 2; a <= na; a++) line = line " " (fa[1] > 0 && fa[a] != "" ? sprintf("%.2f", fa[a] / fa[1]) : "n/a") " |"
        for (a = 1; a <= na; a++) line = line sprintf(" %.1f |", rss[order[p] SUBSEP an[a]] / 1024)
        print line
    }
}' "$results"
if grep -Eq '^RESULT .* rc=[1-9]' "$results"; then
    echo "run_preload_bench.sh: some runs exited non-zero, see $results" >&2
    exit 1
fi
