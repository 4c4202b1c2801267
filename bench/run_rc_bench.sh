#!/usr/bin/env bash
# bench/run_rc_bench.sh — build rc_bench and compare mulch's reference
# counting with std::shared_ptr and a naive atomic count in one run.
#
#   bench/run_rc_bench.sh            # 50 M ops per thread, 3 repetitions (~30 s on 2 cores)
#   bench/run_rc_bench.sh --quick    # 5 M ops, 1 repetition: a smoke test
#
# Options:
#   --quick             5 M ops per thread, one repetition
#   --reps N            repetitions (default 3); runs are interleaved:
#                       for rep { for configuration { for variant } }
#   --ops N             ops per thread (default 50M; k/M/G suffixes)
#   --slots M           slots per thread (default 1024)
#   --objects N         shared objects (default 256)
#   --variants LIST     comma-separated subset of mulch,rc_ptr,shared_ptr,naive,plain
#   --no-build          use the rc_bench already in build/bench
#
# Configurations: `1` (one thread, single-threaded process), `1mt` (one
# thread, in a process that has started a thread before: glibc's
# __libc_single_threaded is then false and libstdc++'s shared_ptr counts
# atomically) and `2` (two threads sharing the objects).
#
# Builds the `bench` preset (cmake --preset bench, then cmake --build --preset
# bench --target rc_bench), falling back to a plain configure of build/bench
# and then to compiling by hand. Raw RESULT lines go to
# build/bench/rc_results.txt, the markdown tables to stdout and
# build/bench/rc_results.md, the program's stderr and any failure (with the
# exact command) to build/bench/rc_bench.log. Exit status: 0 when every run
# succeeded, 1 otherwise. bench/README.md ("Reference-counting benchmark")
# says what the workload measures.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
build=build/bench
results=$build/rc_results.txt
table=$build/rc_results.md
log=$build/rc_bench.log

reps=3
quick=0
ops=""
slots=1024
objects=256
do_build=1
variants="mulch rc_ptr shared_ptr naive plain"
configs="1 1mt 2"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1; reps=1 ;;
    --reps) reps=${2:?--reps needs a number}; shift ;;
    --ops) ops=${2:?--ops needs a number}; shift ;;
    --slots) slots=${2:?--slots needs a number}; shift ;;
    --objects) objects=${2:?--objects needs a number}; shift ;;
    --variants) variants=$(echo "${2:?--variants needs a list}" | tr ',' ' '); shift ;;
    --no-build) do_build=0 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "run_rc_bench.sh: unknown option $1" >&2; exit 64 ;;
    esac
    shift
done
[ -n "$ops" ] || { if [ "$quick" = 1 ]; then ops=5M; else ops=50M; fi; }

note() { echo "run_rc_bench: $*" >&2; }

build_by_hand() {
    local out=$build/manual cc=${CC:-cc} cxx=${CXX:-c++} objs=() src
    mkdir -p "$out/rc_obj"
    note "no usable CMake build; compiling by hand into $out"
    for src in pool/*.c gc/*.c runtime/*.c; do
        [ -f "$src" ] || continue
        local o
        o="$out/rc_obj/$(echo "$src" | tr '/' '_').o"
        $cc -O2 -std=c11 -D_GNU_SOURCE -DMULCH_STATIC_DEFINE -DMULCH_ASSERT_LEVEL=1 \
            -Iinclude -Ipool -Igc -Iruntime -c "$src" -o "$o" || { note "$src failed to build"; return 1; }
        objs+=("$o")
    done
    $cxx -O2 -std=c++17 -DMULCH_STATIC_DEFINE -Iinclude bench/rc_bench.cpp "${objs[@]}" \
        -o "$out/rc_bench" -latomic_ops -lpthread -ldl || note "rc_bench failed to build by hand"
}

build_with_cmake() {
    if [ -f CMakePresets.json ] && cmake --list-presets 2>/dev/null | grep -q '"bench"'; then
        cmake --preset bench >&2 || return 1
        cmake --build --preset bench --target rc_bench >&2
    else
        local gen=()
        if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
        cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
            -DMULCH_BUILD_BENCH=ON -DMULCH_BUILD_TESTS=OFF >&2 &&
            cmake --build "$build" --target rc_bench >&2
    fi
}

mkdir -p "$build"
search=$build
if [ "$do_build" = 1 ]; then
    if [ -f CMakeLists.txt ] && build_with_cmake; then
        search=$build/bench
    else
        [ -f CMakeLists.txt ] && note "CMake build failed"
        build_by_hand
        search=$build/manual
    fi
fi
bin=$(find "$search" -type f -name rc_bench -perm -u+x -printf '%T@ %p\n' 2>/dev/null |
    sort -rn | head -n 1 | cut -d' ' -f2-)
[ -n "$bin" ] || { note "rc_bench not built"; exit 1; }

{
    echo "# rc_bench $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r) cpus=$(nproc) reps=$reps quick=$quick loadavg_start=$(cut -d' ' -f1 /proc/loadavg)"
    echo "# commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- runtime include 2>/dev/null || echo +dirty) ops=$ops/thread slots=$slots objects=$objects cxx=$("${CXX:-c++}" --version 2>/dev/null | head -n 1)"
} >"$results"
: >"$log"

start=$(date +%s)
failed=0
for rep in $(seq 1 "$reps"); do
    for c in $configs; do
        case $c in
        1) cargs=(--threads 1) ;;
        1mt) cargs=(--threads 1 --mt) ;;
        *) cargs=(--threads "$c") ;;
        esac
        for v in $variants; do
            cmd=("$bin" --variant "$v" "${cargs[@]}" --ops "$ops" --slots "$slots" --objects "$objects" --seed 42)
            note "rep $rep/$reps config $c $v"
            out=$(timeout 600 "${cmd[@]}" 2>>"$log")
            rc=$?
            line=$(printf '%s\n' "$out" | grep '^RESULT ' | head -n 1)
            if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
                failed=$((failed + 1))
                echo "# FAILED variant=$v config=$c rep=$rep rc=$rc cmd: ${cmd[*]}" | tee -a "$log" >>"$results"
                note "FAILED: $v config $c (exit $rc), see $log"
                continue
            fi
            echo "$line config=$c rep=$rep" >>"$results"
        done
    done
done
elapsed=$(( $(date +%s) - start ))
load_end=$(cut -d' ' -f1 /proc/loadavg)
echo "# done elapsed=${elapsed}s loadavg_end=$load_end" >>"$results"

# ------------------------------------------------------------------ table --
load_start=$(sed -n 's/.*loadavg_start=\([0-9.]*\).*/\1/p' "$results" | head -n 1)
awk -v variants="$variants" -v configs="$configs" -v reps="$reps" -v elapsed="$elapsed" \
    -v failed="$failed" -v load="${load_start:-?} -> $load_end" -v cpus="$(nproc)" -v ops="$ops" '
function med(key,    n, i, j, t, v) {
    n = cnt[key]; if (n == 0) return ""
    for (i = 1; i <= n; i++) v[i] = val[key, i]
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function ratio(a, b) { return (a != "" && b != "" && b > 0) ? a / b : "" }
function fmt(x, unit) {
    if (x == "") return "n/a"
    if (unit == "x") return sprintf("%.2fx", x)
    return sprintf("%.2f", x)
}
function target(desc, x, limit,    st) {
    st = (x == "") ? "n/a" : (x <= limit ? "PASS" : "FAIL")
    printf "| %s | %s | %s |\n", desc, (x == "" ? "n/a" : sprintf("%.2f", x)), st
}
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    if (kv["errors"] + 0 > 0) next
    key = kv["config"] SUBSEP kv["variant"]
    cnt[key]++; val[key, cnt[key]] = kv["ns_per_op"] + 0
}
END {
    nv = split(variants, V, " ")
    nc = split(configs, C, " ")
    label["1"] = "1 thread (single-threaded process)"
    label["1mt"] = "1 thread (multi-threaded process)"
    label["2"] = "2 threads sharing the objects"
    printf "### Reference counting, ns per op (median of %d rep%s, %s ops/thread, %d s, %d failed run%s, %s CPUs, load average %s)\n\n", reps, (reps == 1 ? "" : "s"), ops, elapsed, failed, (failed == 1 ? "" : "s"), cpus, load
    hdr = "| configuration |"; sep = "|---|"
    for (i = 1; i <= nv; i++) { hdr = hdr " " V[i] " |"; sep = sep "---:|" }
    hdr = hdr " mulch/shared_ptr | mulch/naive | mulch/shared_ptr net of plain |"; sep = sep "---:|---:|---:|"
    print hdr; print sep
    for (c = 1; c <= nc; c++) {
        cf = C[c]; line = "| " (cf in label ? label[cf] : cf " threads") " |"
        for (i = 1; i <= nv; i++) line = line " " fmt(med(cf SUBSEP V[i]), "") " |"
        m = med(cf SUBSEP "mulch"); s = med(cf SUBSEP "shared_ptr"); n = med(cf SUBSEP "naive"); pl = med(cf SUBSEP "plain")
        r[cf] = ratio(m, s)
        net = (m != "" && s != "" && pl != "" && s - pl > 0) ? (m - pl) / (s - pl) : ""
        line = line " " fmt(r[cf], "x") " | " fmt(ratio(m, n), "x") " | " fmt(net, "x") " |"
        print line
    }
    print ""
    print "ns/op: summed per-thread time of the timed loops / total ops (lower is better). Ratios < 1: mulch is faster. \"net of plain\" subtracts the harness floor (the plain variant: random draw + slot store) from both."
    print ""
    print "| target | measured | status |"
    print "|---|---:|---|"
    target("1 thread: mulch/shared_ptr <= 0.5 (single-threaded process)", r["1"], 0.5)
    target("1 thread: mulch/shared_ptr <= 0.5 (multi-threaded process)", r["1mt"], 0.5)
    target("2 threads sharing: mulch/shared_ptr <= 1.0", r["2"], 1.0)
}' "$results" | tee "$table"

echo
echo "raw results: $results (table: $table)"
[ "$failed" -eq 0 ] || { note "$failed run(s) failed, see $log"; exit 1; }
