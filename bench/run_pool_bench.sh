#!/usr/bin/env bash
# bench/run_pool_bench.sh — build the pool benchmark and compare mulch's pool
# with glibc malloc, mimalloc and jemalloc in one run.
#
#   bench/run_pool_bench.sh            # full run, ~2-3 minutes on 2 cores
#   bench/run_pool_bench.sh --quick    # smaller sizes, one repetition (~20 s)
#
# Options:
#   --quick             sizes / 5 and 1 repetition (smoke test, not for claims)
#   --reps N            repetitions (default 3); runs are interleaved:
#                       for rep { for workload { for allocator } }
#   --allocators LIST   comma-separated subset of mulch,glibc,mimalloc,jemalloc
#                       and of mulch's own variants (ratios in the table are
#                       mulch / variant, so they read as the variant's cost):
#                         mulch-secure  the same binary with MULCH_SECURE=1
#                         mulch-novg    built with MULCH_VALGRIND=OFF
#                         mulch-base    the pool of --baseline COMMIT
#   --baseline COMMIT   build mulch-base from COMMIT's pool/ and include/ (by
#                       hand with cc -O3, into build/bench/baseline) and add
#                       it to the allocators
#   --workloads LIST    comma-separated subset of churn,prodcons,frag,realloc
#   --no-build          use the executables already in build/bench
#
# Builds the `bench` preset if there is one (cmake --preset bench &&
# cmake --build --preset bench), else configures build/bench by hand; with no
# top-level CMakeLists.txt at all it compiles the four variants with cc.
# Raw RESULT lines go to build/bench/pool_results.txt, the markdown table to
# stdout and build/bench/pool_results.md, failures to build/bench/pool_bench.log.
# See bench/README.md for what each workload stresses and how to read the table.
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=bench_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_init pool 2,30p

allocators="mulch glibc mimalloc jemalloc"
workloads=""
baseline=""
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1; reps=1 ;;
    --allocators) allocators=$(bench_list "${2:?--allocators needs a list}"); shift ;;
    --baseline) baseline=${2:?--baseline needs a commit}; shift ;;
    --workloads) workloads=$(bench_list "${2:?--workloads needs a list}"); shift ;;
    *) bench_common_option "$@"; shift $((bench_shift - 1)) ;;
    esac
    shift
done

# Workload sizes: each full run takes ~0.5-3 s per allocator.
churn_args="--ops 20000000 --live 100000"
prodcons_args="--threads 2 --ops 10000000"
frag_args="--fill-mib 512"
realloc_args="--ops 10 --fill-mib 256"
if [ "$quick" = 1 ]; then
    churn_args="--ops 4000000 --live 100000"
    prodcons_args="--threads 2 --ops 2000000"
    frag_args="--fill-mib 128"
    realloc_args="--ops 3 --fill-mib 64"
fi
workloads=${workloads:-"churn prodcons frag realloc"}

build_by_hand() {
    local out=$build/manual
    local -a cc flags=(-O2 -std=c11 -D_GNU_SOURCE)
    read -r -a cc <<<"${CC:-cc}"
    mkdir -p "$out"
    note "no usable CMake build; compiling by hand into $out"
    if ls pool/*.c >/dev/null 2>&1; then
        "${cc[@]}" "${flags[@]}" -Iinclude -Ipool pool/*.c bench/pool_bench.c -DBENCH_ALLOC_MULCH \
            -o "$out/pool_bench_mulch" -latomic_ops -lpthread -ldl ||
            note "pool_bench_mulch failed to build"
    else
        note "no pool/*.c yet, skipping pool_bench_mulch"
    fi
    "${cc[@]}" "${flags[@]}" bench/pool_bench.c -DBENCH_ALLOC_GLIBC \
        -o "$out/pool_bench_glibc" -lpthread -ldl ||
        note "pool_bench_glibc failed to build"
    "${cc[@]}" "${flags[@]}" bench/pool_bench.c -DBENCH_ALLOC_MIMALLOC \
        -o "$out/pool_bench_mimalloc" -lmimalloc -lpthread -ldl ||
        note "pool_bench_mimalloc failed to build (libmimalloc-dev?)"
    "${cc[@]}" "${flags[@]}" bench/pool_bench.c -DBENCH_ALLOC_JEMALLOC \
        -o "$out/pool_bench_jemalloc" -ljemalloc -lpthread -ldl ||
        note "pool_bench_jemalloc failed to build (libjemalloc-dev?)"
}

build_with_cmake() {
    bench_cmake_configure && "${bench_build_cmd[@]}" >&2
}

bench_build build_with_cmake build_by_hand

# mulch-base: the pool as of $baseline, with today's benchmark source,
# compiled like the library's Release objects.
build_baseline() {
    local src=$build/baseline/src out=$build/baseline
    rm -rf "$src" && mkdir -p "$src" || return 1
    git archive "$baseline" pool include | tar -x -C "$src" || return 1
    ${CC:-cc} -O3 -DNDEBUG -std=c11 -D_GNU_SOURCE -fvisibility=hidden -DMULCH_ASSERT_LEVEL=1 \
        -DMULCH_STATIC_DEFINE -I"$src/include" -I"$src/pool" "$src"/pool/*.c bench/pool_bench.c \
        -DBENCH_ALLOC_MULCH '-DBENCH_MULCH_NAME="mulch-base"' \
        -o "$out/pool_bench_mulch_base" -latomic_ops -lpthread -ldl
}
if [ -n "$baseline" ]; then
    case " $allocators " in *" mulch-base "*) ;; *) allocators="$allocators mulch-base" ;; esac
    build_baseline || note "mulch-base ($baseline) failed to build"
fi

declare -A bin wrap
present=""
for a in $allocators; do
    case $a in
    mulch-secure) b=$(bench_find_bin pool_bench_mulch)
                  wrap[$a]="MULCH_SECURE=1 BENCH_RENAME=mulch-secure" ;;
    mulch-base) b=$build/baseline/pool_bench_mulch_base; [ -x "$b" ] || b="" ;;
    *) b=$(bench_find_bin "pool_bench_${a//-/_}") ;;
    esac
    if [ -n "$b" ]; then
        bin[$a]=$b
        present="$present $a"
    else
        note "pool_bench_$a not built, its column will say n/a"
    fi
done
[ -n "$present" ] || { note "nothing to run"; exit 1; }

bench_start_results "commit=$(bench_commit)$(git diff --quiet HEAD -- pool include 2>/dev/null || echo +dirty-pool) churn: $churn_args | prodcons: $prodcons_args | frag: $frag_args | realloc: $realloc_args"

for rep in $(seq 1 "$reps"); do
    for w in $workloads; do
        case $w in
        churn) args=$churn_args ;;
        prodcons) args=$prodcons_args ;;
        frag) args=$frag_args ;;
        realloc) args=$realloc_args ;;
        esac
        for a in $present; do
            note "rep $rep/$reps $w $a"
            # a RESULT line printed with errors>0 (exit 2) is still kept, marked
            # shellcheck disable=SC2086  # args are word lists on purpose
            if [ -n "${wrap[$a]:-}" ]; then
                # shellcheck disable=SC2086
                bench_run "allocator=$a workload=$w rep=$rep" "rep=$rep" "$a $w" \
                    bash -c 'set -o pipefail; export '"${wrap[$a]}"'; "$@" | sed "s/^RESULT allocator=mulch /RESULT allocator=$BENCH_RENAME /"' \
                    _ "${bin[$a]}" "$w" $args --seed 42
            else
                bench_run "allocator=$a workload=$w rep=$rep" "rep=$rep" "$a $w" \
                    "${bin[$a]}" "$w" $args --seed 42
            fi
        done
    done
done
bench_finish

# ------------------------------------------------------------------ table --
# (only the rows and targets of the workloads that ran: --workloads)
awk -v allocs="$allocators" -v ran_list="$workloads" "${bench_awk_vars[@]}" "$bench_awk_lib"'
function best(key,    n, i, b) {
    n = cnt[key]; if (n == 0) return ""
    b = val[key, 1]; for (i = 2; i <= n; i++) if (val[key, i] > b) b = val[key, i]
    return b
}
function get(w, m, a, how) { return how == "best" ? best(w SUBSEP m SUBSEP a) : med(w SUBSEP m SUBSEP a) }
function fmt(x, unit) {
    if (x == "") return "n/a"
    if (unit == "mib") return sprintf("%.1f", x / 1024)
    if (unit == "ratio") return sprintf("%.3f", x)
    return sprintf("%.2f", x)
}
function cell(w, a, x, unit) { return (x == "" && ((w, a) in broken)) ? "FAIL" : fmt(x, unit) }
function row(w, label, m, how, unit,    i, a, mine, peer, line, r) {
    if (!(w in ran)) return
    mine = get(w, m, "mulch", how)
    line = "| " w " | " label " | " cell(w, "mulch", mine, unit) " |"
    for (i = 2; i <= na; i++) {
        a = A[i]; peer = get(w, m, a, how)
        r = (mine != "" && peer != "" && peer > 0) ? sprintf("%.2fx", mine / peer) : "n/a"
        line = line " " cell(w, a, peer, unit) " | " r " |"
        ratio[w, m, a] = (mine != "" && peer != "" && peer > 0) ? mine / peer : ""
    }
    print line
}
function target(w, desc, x, ok_if_ge, limit,    st) {
    if (!(w in ran)) return
    if (x == "") st = "n/a"
    else st = ((ok_if_ge && x >= limit) || (!ok_if_ge && x <= limit)) ? "PASS" : "FAIL"
    printf "| %s | %s | %s |\n", desc, (x == "" ? "n/a" : sprintf("%.2f", x)), st
}
/^# FAILED / {
    for (i = 3; i <= NF; i++) { split($i, p, "="); if (p[1] == "allocator") fa = p[2]; if (p[1] == "workload") fw = p[2] }
    broken[fw, fa] = 1
}
/^RESULT / {
    delete kv
    for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    # a failed run (rc=.. appended by bench_run) or a corrupted one stays out
    if (kv["errors"] + 0 > 0 || ("rc" in kv)) next
    a = kv["allocator"]; w = kv["workload"]
    add(w SUBSEP "mops" SUBSEP a, kv["mops"] + 0)
    add(w SUBSEP "secs" SUBSEP a, kv["seconds"] + 0)
    add(w SUBSEP "peak" SUBSEP a, kv["peak_rss_kib"] + 0)
    add(w SUBSEP "after" SUBSEP a, kv["rss_after_trim_kib"] + 0)
    add(w SUBSEP "before" SUBSEP a, kv["rss_before_trim_kib"] + 0)
    add(w SUBSEP "tratio" SUBSEP a, kv["trim_ratio"] + 0)
    add(w SUBSEP "live" SUBSEP a, kv["live_bytes"] / 1024)
}
END {
    nw = split(ran_list, W, " ")
    for (i = 1; i <= nw; i++) ran[W[i]] = 1
    na = split("mulch", A, " ")
    n = split(allocs, L, " ")
    for (i = 1; i <= n; i++) if (L[i] != "mulch") A[++na] = L[i]
    hdr = "| workload | metric | mulch |"; sep = "|---|---|---:|"
    for (i = 2; i <= na; i++) { hdr = hdr " " A[i] " | mulch/" A[i] " |"; sep = sep "---:|---:|" }
    printf "### Pool benchmark (%d rep%s, %d s, %d failed run%s, %s CPUs, load average %s)\n\n", reps, (reps == 1 ? "" : "s"), elapsed, failed, (failed == 1 ? "" : "s"), cpus, load
    print hdr; print sep
    row("churn", "throughput, Mops/s (best)", "mops", "best", "")
    row("churn", "peak RSS, MiB (median)", "peak", "med", "mib")
    row("prodcons", "throughput, Mops/s (best)", "mops", "best", "")
    row("prodcons", "peak RSS, MiB (median)", "peak", "med", "mib")
    row("frag", "fill (memset) + free, Mops/s (best)", "mops", "best", "")
    row("frag", "peak RSS, MiB (median)", "peak", "med", "mib")
    row("frag", "RSS before trim, MiB (median)", "before", "med", "mib")
    row("frag", "RSS after trim, MiB (median)", "after", "med", "mib")
    row("frag", "RSS after trim / live (median)", "tratio", "med", "ratio")
    row("realloc", "time, s (median; ratio < 1 = mulch faster)", "secs", "med", "")
    row("realloc", "peak RSS, MiB (median)", "peak", "med", "mib")
    live = ""; for (i = 1; i <= na && live == ""; i++) live = get("frag", "live", A[i], "med")
    printf "\n"
    if ("frag" in ran) printf "frag live bytes: %s MiB (same for every allocator). ", fmt(live, "mib")
    printf "Speed ratios: mulch ÷ peer throughput (>1 = mulch faster); memory ratios: mulch RSS ÷ peer RSS (<1 = mulch smaller).\n\n"
    if (!("churn" in ran) && !("prodcons" in ran) && !("frag" in ran)) exit
    print "| target | measured | status |"
    print "|---|---:|---|"
    target("churn", "churn: mulch/mimalloc throughput >= 1.0", ratio["churn", "mops", "mimalloc"], 1, 1.0)
    target("churn", "churn: mulch/glibc throughput >= 2.0", ratio["churn", "mops", "glibc"], 1, 2.0)
    target("prodcons", "prodcons: mulch/mimalloc throughput >= 1.0", ratio["prodcons", "mops", "mimalloc"], 1, 1.0)
    target("frag", "frag: mulch RSS after trim / live <= 1.3", get("frag", "tratio", "mulch", "med"), 0, 1.3)
    target("frag", "frag: mulch/mimalloc peak RSS <= 1.1", ratio["frag", "peak", "mimalloc"], 0, 1.1)
}' "$results" | tee "$table"

echo
echo "raw results: $results (table: $table)"
bench_exit_status
