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

# shellcheck source-path=SCRIPTDIR source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_init rc 2,30p
bench_keep_failed_result=0

ops=""
slots=1024
objects=256
variants="mulch rc_ptr shared_ptr naive plain"
configs="1 1mt 2"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1; reps=1 ;;
    --ops) ops=${2:?--ops needs a number}; shift ;;
    --slots) slots=${2:?--slots needs a number}; shift ;;
    --objects) objects=${2:?--objects needs a number}; shift ;;
    --variants) variants=$(bench_list "${2:?--variants needs a list}"); shift ;;
    *) bench_common_option "$@"; shift $((bench_shift - 1)) ;;
    esac
    shift
done
[ -n "$ops" ] || { if [ "$quick" = 1 ]; then ops=5M; else ops=50M; fi; }

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
    bench_cmake_configure && "${bench_build_cmd[@]}" --target rc_bench >&2
}

bench_build build_with_cmake build_by_hand
bin=$(bench_find_bin rc_bench)
[ -n "$bin" ] || { note "rc_bench not built"; exit 1; }

bench_start_results "commit=$(bench_commit)$(git diff --quiet HEAD -- runtime include 2>/dev/null || echo +dirty) ops=$ops/thread slots=$slots objects=$objects cxx=$("${CXX:-c++}" --version 2>/dev/null | head -n 1)"

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
            bench_run "variant=$v config=$c rep=$rep" "config=$c rep=$rep" "$v config $c" "${cmd[@]}"
        done
    done
done
bench_finish

# ------------------------------------------------------------------ table --
awk -v variants="$variants" -v configs="$configs" "${bench_awk_vars[@]}" -v ops="$ops" \
    "$bench_awk_lib$bench_awk_ratio"'
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
    # a failed run (rc=.. appended by bench_run) or a corrupted one stays out
    if (kv["errors"] + 0 > 0 || ("rc" in kv)) next
    key = kv["config"] SUBSEP kv["variant"]
    add(key, kv["ns_per_op"] + 0)
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
    print "ns/op: summed per-thread time of the timed loops / total ops (lower is better). Ratios < 1: mulch is faster. \"net of plain\" subtracts the harness floor (the plain variant: pick-table read + slot store) from both."
    print ""
    print "| target | measured | status |"
    print "|---|---:|---|"
    target("1 thread: mulch/shared_ptr <= 0.5 (single-threaded process)", r["1"], 0.5)
    target("1 thread: mulch/shared_ptr <= 0.5 (multi-threaded process)", r["1mt"], 0.5)
    target("2 threads sharing: mulch/shared_ptr <= 1.0", r["2"], 1.0)
}' "$results" | tee "$table"

echo
echo "raw results: $results (table: $table)"
bench_exit_status
