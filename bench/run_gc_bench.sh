#!/usr/bin/env bash
# bench/run_gc_bench.sh — build the collector benchmarks and compare mulch's
# collector with Boehm's (libgc) and with malloc+free in one run.
#
#   bench/run_gc_bench.sh            # full run: GCBench + binary-trees depth 20,
#                                    # 3 repetitions (~2-3 minutes on 2 cores)
#   bench/run_gc_bench.sh --quick    # binary-trees depth 16, GCBench once (~15 s)
#
# Options:
#   --quick             binary-trees at depth 16 and GCBench run once (smoke
#                       test: the binary-trees targets are stated for depth 20)
#   --reps N            repetitions (default 3); runs are interleaved:
#                       for rep { for benchmark { for variant } }
#   --depth N           binary-trees depth (default 20, 16 with --quick)
#   --variants LIST     comma-separated subset of mulch,boehm,malloc
#   --verify            pass --verify to every run (node counts of every tree,
#                       gc_verify after every phase under mulch; slower, not
#                       for timing)
#   --no-build          use the executables already in build/bench
#
# Builds the `bench` preset (cmake --preset bench, then cmake --build --preset
# bench for each of the six targets, so one that fails to build - e.g. the
# mulch variants before the collector exists - does not stop the others),
# falling back to a plain configure of build/bench and then to compiling by
# hand with cc. Raw RESULT lines go to build/bench/gc_results.txt, the
# markdown tables to stdout and build/bench/gc_results.md, the programs'
# stderr and any failure (with the exact command) to build/bench/gc_bench.log.
# Exit status: 0 when every run succeeded, 1 otherwise.
# bench/README.md ("Collector benchmarks") says what each benchmark stresses.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
build=build/bench
results=$build/gc_results.txt
table=$build/gc_results.md
log=$build/gc_bench.log

reps=3
quick=0
depth=""
do_build=1
verify=""
variants="mulch boehm malloc"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --reps) reps=${2:?--reps needs a number}; shift ;;
    --depth) depth=${2:?--depth needs a number}; shift ;;
    --variants) variants=$(echo "${2:?--variants needs a list}" | tr ',' ' '); shift ;;
    --verify) verify="--verify" ;;
    --no-build) do_build=0 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "run_gc_bench.sh: unknown option $1" >&2; exit 64 ;;
    esac
    shift
done
[ -n "$depth" ] || { if [ "$quick" = 1 ]; then depth=16; else depth=20; fi; }
benches="gcbench binary_trees"
targets=""
for p in $benches; do for v in $variants; do targets="$targets ${p}_$v"; done; done

note() { echo "run_gc_bench: $*" >&2; }

build_by_hand() {
    local out=$build/manual cc=${CC:-cc}
    local flags="-O2 -std=c11 -D_GNU_SOURCE"
    mkdir -p "$out"
    note "no usable CMake build; compiling by hand into $out"
    for p in $benches; do
        for v in $variants; do
            case $v in
            mulch)
                # shellcheck disable=SC2046
                $cc $flags -DBENCH_GC_MULCH -DMULCH_STATIC_DEFINE -Iinclude -Ipool -Igc -Iruntime \
                    bench/$p.c $(ls pool/*.c gc/*.c runtime/*.c 2>/dev/null) \
                    -o "$out/${p}_mulch" -latomic_ops -lpthread -ldl ;;
            boehm)
                # shellcheck disable=SC2046
                $cc $flags -DBENCH_GC_BOEHM bench/$p.c -o "$out/${p}_boehm" \
                    $(pkg-config --cflags --libs bdw-gc 2>/dev/null || echo -lgc) ;;
            malloc)
                $cc $flags -DBENCH_GC_MALLOC bench/$p.c -o "$out/${p}_malloc" ;;
            esac || note "${p}_$v failed to build by hand"
        done
    done
}

build_with_cmake() {
    if [ -f CMakePresets.json ] && cmake --list-presets 2>/dev/null | grep -q '"bench"'; then
        cmake --preset bench >&2 || return 1
        build_cmd=(cmake --build --preset bench)
        cmake --build --list-presets 2>/dev/null | grep -q '"bench"' || build_cmd=(cmake --build "$build")
    else
        local gen=()
        if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
        cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
            -DMULCH_BUILD_BENCH=ON -DMULCH_BUILD_TESTS=OFF >&2 || return 1
        build_cmd=(cmake --build "$build")
    fi
    local built=0
    for t in $targets; do
        if "${build_cmd[@]}" --target "$t" >&2; then
            built=$((built + 1))
        else
            note "target $t failed to build; its row will say n/a"
        fi
    done
    [ "$built" -gt 0 ]
}

mkdir -p "$build"
search=$build   # where to look for the executables
if [ "$do_build" = 1 ]; then
    if [ -f CMakeLists.txt ] && build_with_cmake; then
        search=$build/bench
    else
        [ -f CMakeLists.txt ] && note "CMake build failed"
        build_by_hand
        search=$build/manual
    fi
fi

# The newest executable of a target under $search.
find_bin() {
    find "$search" -type f -name "$1" -perm -u+x -printf '%T@ %p\n' 2>/dev/null |
        sort -rn | head -n 1 | cut -d' ' -f2-
}
declare -A bin
for t in $targets; do
    b=$(find_bin "$t")
    if [ -n "$b" ]; then bin[$t]=$b; else note "$t not built, its row will say n/a"; fi
done
[ "${#bin[@]}" -gt 0 ] || { note "nothing to run"; exit 1; }

{
    echo "# gc_bench $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r) cpus=$(nproc) reps=$reps quick=$quick loadavg_start=$(cut -d' ' -f1 /proc/loadavg)"
    echo "# commit=$(git rev-parse --short HEAD 2>/dev/null || echo none) gcbench: standard parameters | binary_trees: depth $depth | verify=${verify:-off}"
} >"$results"
: >"$log"

start=$(date +%s)
failed=0
for rep in $(seq 1 "$reps"); do
    for p in $benches; do
        # --quick: GCBench once.
        [ "$p" = gcbench ] && [ "$quick" = 1 ] && [ "$rep" -gt 1 ] && continue
        args=$verify
        [ "$p" = binary_trees ] && args="$depth $verify"
        for v in $variants; do
            t=${p}_$v
            [ -n "${bin[$t]:-}" ] || continue
            note "rep $rep/$reps $p $v"
            echo "## rep=$rep $t $args" >>"$log"
            # shellcheck disable=SC2086  # args is a word list on purpose
            out=$(timeout 600 "${bin[$t]}" $args 2>>"$log")
            rc=$?
            line=$(printf '%s\n' "$out" | grep '^RESULT ' | head -n 1)
            if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
                failed=$((failed + 1))
                echo "# FAILED bench=$p variant=$v rep=$rep rc=$rc cmd: ${bin[$t]} $args" |
                    tee -a "$log" >>"$results"
                note "FAILED: $t (exit $rc), see $log"
                # a RESULT line with ok=0 (exit 2) is kept, marked, and left out of the table
                [ -n "$line" ] && echo "$line rc=$rc" >>"$results"
                continue
            fi
            echo "$line rep=$rep" >>"$results"
        done
    done
done
elapsed=$(( $(date +%s) - start ))
load_end=$(cut -d' ' -f1 /proc/loadavg)
echo "# done elapsed=${elapsed}s loadavg_end=$load_end" >>"$results"

# ------------------------------------------------------------------ tables --
load_start=$(sed -n 's/.*loadavg_start=\([0-9.]*\).*/\1/p' "$results" | head -n 1)
awk -v variants="$variants" -v reps="$reps" -v quick="$quick" -v depth="$depth" \
    -v elapsed="$elapsed" -v failed="$failed" -v cpus="$(nproc)" \
    -v load="${load_start:-?} -> $load_end" '
function add(key, x) { cnt[key]++; val[key, cnt[key]] = x }
function med(key,    n, i, j, t, v) {
    n = cnt[key]; if (n == 0) return ""
    for (i = 1; i <= n; i++) v[i] = val[key, i]
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function get(b, m, v) { return med(b SUBSEP m SUBSEP v) }
function fmt(x, d) { return x == "" ? "n/a" : sprintf("%." d "f", x) }
function ratio(a, b) { return (a != "" && b != "" && b > 0) ? a / b : "" }
function rfmt(x) { return x == "" ? "n/a" : sprintf("%.2fx", x) }
function target(desc, x, limit, caveat,    st) {
    if (x == "") st = "n/a"
    else st = (x <= limit) ? "PASS" : "FAIL"
    if (caveat != "" && st != "n/a") st = st " " caveat
    printf "| %s | %s | %s |\n", desc, (x == "" ? "n/a" : sprintf("%.2fx", x)), st
}
function table(b, title,    i, v, p) {
    printf "#### %s\n\n", title
    print "| variant | time (s) | CPU (s) | peak RSS (MiB) | collections | max pause (ms) | runs |"
    print "|---|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nv; i++) {
        v = V[i]; p = get(b, "pause", v)
        printf "| %s | %s | %s | %s | %s | %s | %d |\n", v, fmt(get(b, "seconds", v), 3),
            fmt(get(b, "cpu", v), 3),
            fmt(get(b, "peak", v) == "" ? "" : get(b, "peak", v) / 1024, 1),
            fmt(get(b, "coll", v), 0), (p == "" ? "n/a" : (p < 0 ? "-" : sprintf("%.2f", p))),
            cnt[b SUBSEP "seconds" SUBSEP v]
    }
    print ""
    print "| ratio | time | CPU | peak RSS |"
    print "|---|---:|---:|---:|"
    for (i = 1; i <= nv; i++) {
        v = V[i]; if (v == "mulch") continue
        printf "| mulch/%s | %s | %s | %s |\n", v,
            rfmt(ratio(get(b, "seconds", "mulch"), get(b, "seconds", v))),
            rfmt(ratio(get(b, "cpu", "mulch"), get(b, "cpu", v))),
            rfmt(ratio(get(b, "peak", "mulch"), get(b, "peak", v)))
    }
    print ""
}
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { k = $i; sub(/=.*/, "", k); x = $i; sub(/^[^=]*=/, "", x); kv[k] = x }
    if (kv["ok"] != "1" || ("rc" in kv)) next
    b = kv["bench"]; v = kv["variant"]
    add(b SUBSEP "seconds" SUBSEP v, kv["seconds"] + 0)
    add(b SUBSEP "peak" SUBSEP v, kv["peak_rss_kib"] + 0)
    if ("cpu_seconds" in kv) add(b SUBSEP "cpu" SUBSEP v, kv["cpu_seconds"] + 0)
    add(b SUBSEP "coll" SUBSEP v, kv["collections"] + 0)
    add(b SUBSEP "pause" SUBSEP v, kv["max_pause_ms"] + 0)
}
END {
    nv = split(variants, V, " ")
    printf "### Collector benchmarks (%d rep%s%s, %d s, %d failed run%s, %s CPUs, load average %s)\n\n",
        reps, (reps == 1 ? "" : "s"), (quick ? ", quick: GCBench once" : ""), elapsed, failed,
        (failed == 1 ? "" : "s"), cpus, load
    print "Medians over the repetitions. time = wall clock of the workload; CPU = user+system time of the whole process (less sensitive to other load; the targets use time). Ratios are mulch ÷ peer (<1 = mulch faster / smaller). max pause: mulch from gc_get_stats, Boehm from its collection-event callback (GC_EVENT_START..END); malloc has no collector (-).\n"
    table("gcbench", "GCBench (stretch 18, long-lived 16, array 500000, depths 4..16)")
    table("binary_trees", "binary-trees, depth " depth)
    caveat = (depth == 20) ? "" : "(depth " depth ", target is for 20)"
    print "| target | measured | status |"
    print "|---|---:|---|"
    target("GCBench: mulch/Boehm time <= 0.5", ratio(get("gcbench", "seconds", "mulch"), get("gcbench", "seconds", "boehm")), 0.5, "")
    target("binary-trees depth 20: mulch/Boehm time <= 0.4", ratio(get("binary_trees", "seconds", "mulch"), get("binary_trees", "seconds", "boehm")), 0.4, caveat)
    target("binary-trees depth 20: mulch/Boehm peak RSS <= 0.5", ratio(get("binary_trees", "peak", "mulch"), get("binary_trees", "peak", "boehm")), 0.5, caveat)
}' "$results" | tee "$table"

echo
echo "raw results: $results (tables: $table, log: $log)"
[ "$failed" -eq 0 ] || { note "$failed run(s) failed, see $log"; exit 1; }
