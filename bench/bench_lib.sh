# bench/bench_lib.sh — shell helpers shared by bench/run_*_bench.sh.
# Sourced, never run: each script does
#   . "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
#   bench_init pool 2,22p      # or gc, rc; 2,22p: the --help lines
# and then parses its options (bench_common_option for the shared ones),
# builds (bench_build), writes the header (bench_start_results), runs each
# program through bench_run, closes the results (bench_finish) and prints its
# tables with awk, using $bench_awk_lib and "${bench_awk_vars[@]}".
#
# Globals set here and used by the scripts:
#   root build results table log   paths (cwd is the repository root)
#   reps quick do_build            option defaults (3, 0, 1)
#   search                         where bench_build left the executables
#   failed elapsed load_start load_end bench_awk_vars
# shellcheck shell=bash disable=SC2034  # the globals are read by the scripts

# bench_init <name> <help lines>: cd to the repository root and set the paths
# of build/bench/<name>_results.{txt,md} and build/bench/<name>_bench.log;
# --help prints <help lines> (a sed range such as 2,22p) of the script.
bench_init() {
    bench_name=$1
    bench_help_lines=$2
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cd "$root" || exit 1
    build=build/bench
    results=$build/${bench_name}_results.txt
    table=$build/${bench_name}_results.md
    log=$build/${bench_name}_bench.log
    reps=3
    quick=0
    do_build=1
    bench_keep_failed_result=1
}

note() { echo "run_${bench_name}_bench: $*" >&2; }

# bench_list <a,b,c>: the comma-separated list as words.
bench_list() { echo "$1" | tr ',' ' '; }

# bench_common_option <args...>: handles --reps N, --no-build and -h/--help,
# rejects anything else.
# Sets bench_shift to the number of arguments used.
bench_common_option() {
    bench_shift=1
    case $1 in
    --reps) reps=${2:?--reps needs a number}; bench_shift=2 ;;
    --no-build) do_build=0 ;;
    -h|--help) sed -n "$bench_help_lines" "$0"; exit 0 ;;
    *) echo "run_${bench_name}_bench.sh: unknown option $1" >&2; exit 64 ;;
    esac
}

# bench_cmake_configure: configure build/bench (the `bench` preset if there is
# one, else by hand) and set bench_build_cmd to the matching build command.
bench_cmake_configure() {
    if [ -f CMakePresets.json ] && cmake --list-presets 2>/dev/null | grep -q '"bench"'; then
        cmake --preset bench >&2 || return 1
        bench_build_cmd=(cmake --build --preset bench)
        cmake --build --list-presets 2>/dev/null | grep -q '"bench"' || bench_build_cmd=(cmake --build "$build")
    else
        local gen=()
        if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
        cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
            -DMULCH_BUILD_BENCH=ON -DMULCH_BUILD_TESTS=OFF >&2 || return 1
        bench_build_cmd=(cmake --build "$build")
    fi
}

# bench_build <cmake function> <by-hand function>: unless --no-build, build
# with CMake, falling back to compiling by hand; sets search to the directory
# holding the executables.
bench_build() {
    mkdir -p "$build"
    search=$build   # where to look for the executables
    if [ "$do_build" = 1 ]; then
        if [ -f CMakeLists.txt ] && "$1"; then
            search=$build/bench
        else
            [ -f CMakeLists.txt ] && note "CMake build failed"
            "$2"
            search=$build/manual
        fi
    fi
}

# bench_find_bin <name>: the newest executable called <name> under $search.
bench_find_bin() {
    find "$search" -type f -name "$1" -perm -u+x -printf '%T@ %p\n' 2>/dev/null |
        sort -rn | head -n 1 | cut -d' ' -f2-
}

bench_commit() { git rev-parse --short HEAD 2>/dev/null || echo none; }

# bench_start_results <second header line>: start $results with the machine
# header line and "# <second header line>", empty $log, start the clock.
bench_start_results() {
    {
        echo "# ${bench_name}_bench $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(uname -n) kernel=$(uname -r) cpus=$(nproc) reps=$reps quick=$quick loadavg_start=$(cut -d' ' -f1 /proc/loadavg)"
        echo "# $1"
    } >"$results"
    : >"$log"
    bench_start=$(date +%s)
    failed=0
}

# bench_run <failure fields> <result suffix> <label> <command...>: run the
# command (stderr to $log, 600 s limit) and append its RESULT line plus
# " <result suffix>" to $results. On a non-zero exit or no RESULT line: count
# it in $failed, record "# FAILED <failure fields> rc=.. cmd: .." in both
# files and, if bench_keep_failed_result=1, keep the RESULT line marked rc=..
bench_run() {
    local fields=$1 suffix=$2 label=$3 out rc line
    shift 3
    out=$(timeout 600 "$@" 2>>"$log")
    rc=$?
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | head -n 1)
    if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
        failed=$((failed + 1))
        echo "# FAILED $fields rc=$rc cmd: $*" | tee -a "$log" >>"$results"
        note "FAILED: $label (exit $rc), see $log"
        if [ "$bench_keep_failed_result" = 1 ] && [ -n "$line" ]; then
            echo "$line rc=$rc" >>"$results"
        fi
        return 1
    fi
    echo "$line $suffix" >>"$results"
}

# bench_finish: close $results with the elapsed time and load average, and set
# bench_awk_vars to the awk -v options every table header uses
# (reps elapsed failed cpus load).
bench_finish() {
    elapsed=$(( $(date +%s) - bench_start ))
    load_end=$(cut -d' ' -f1 /proc/loadavg)
    echo "# done elapsed=${elapsed}s loadavg_end=$load_end" >>"$results"
    load_start=$(sed -n 's/.*loadavg_start=\([0-9.]*\).*/\1/p' "$results" | head -n 1)
    bench_awk_vars=(-v reps="$reps" -v elapsed="$elapsed" -v failed="$failed"
        -v cpus="$(nproc)" -v load="${load_start:-?} -> $load_end")
}

# bench_exit_status: exit 1 (with a note) when a run failed.
bench_exit_status() {
    [ "$failed" -eq 0 ] || { note "$failed run(s) failed, see $log"; exit 1; }
}

# awk functions for the tables: add(key, x) collects a sample, med(key) is the
# median of key's samples ("" when none), ratio(a, b) is a / b or "".
bench_awk_lib='
function add(key, x) { cnt[key]++; val[key, cnt[key]] = x }
function med(key,    n, i, j, t, v) {
    n = cnt[key]; if (n == 0) return ""
    for (i = 1; i <= n; i++) v[i] = val[key, i]
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}'
bench_awk_ratio='
function ratio(a, b) { return (a != "" && b != "" && b > 0) ? a / b : "" }'
