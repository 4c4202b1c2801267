#!/usr/bin/env bash
# fuzz.sh [seconds-per-target] — build the `fuzz` preset (clang, libFuzzer,
# address+undefined; the library is instrumented too), replay the seed
# corpora (ctest), then fuzz each target for the given time (default 20 s):
#   pool, gc (heap options from the input), gc-compact (MULCH_FUZZ_GC_COMPACT=always), rc,
#   lisp (the Lisp example's reader and evaluator)
# Each run works on build/fuzz/corpus/<run>/ (seeded from fuzz/corpus/<target>/,
# grown across runs; the tree stays clean), writes its log to
# build/fuzz/logs/<run>.log and any crashing input to build/fuzz/artifacts/<run>/.
# Prints the executions per target; exits non-zero on a finding.
# Reproduce a crash: build/fuzz/fuzz/<target>_fuzz <crash file>   (docs/fuzzing.md)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-20}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [seconds-per-target]   (a positive integer, default 20)" >&2
    exit 2
fi

# Sanitizers may fail to start (or loop on DEADLYSIGNAL) with more than 28
# bits of mmap ASLR entropy; .ci/run handles it the same way for its
# sanitizer stages. Re-run ourselves with ASLR off unless it already is.
bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
persona=$(cat /proc/self/personality 2>/dev/null || echo 0)
if [ "$bits" -gt 28 ] && [ $(( 0x$persona & 0x40000 )) -eq 0 ] && command -v setarch >/dev/null \
   && setarch "$(uname -m)" -R true 2>/dev/null; then
    echo "fuzz.sh: vm.mmap_rnd_bits=$bits: running with ASLR off (setarch -R)"
    exec setarch "$(uname -m)" -R bash "$0" "$@"
fi

bash scripts/setup.sh
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --parallel 2
ctest --preset fuzz     # every seed (and regression input) replays cleanly

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
out=build/fuzz
# run name, target, extra environment
runs=("pool pool" "gc gc" "gc-compact gc MULCH_FUZZ_GC_COMPACT=always" "rc rc" "lisp lisp")
summary=()
failed=0
for spec in "${runs[@]}"; do
    read -r run target env_extra <<<"$spec"
    corpus=$out/corpus/$run
    artifacts=$out/artifacts/$run
    log=$out/logs/$run.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    if [ -d fuzz/corpus/"$target" ]; then
        cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || cp fuzz/corpus/"$target"/* "$corpus"/
    fi
    if [ "$target" = lisp ]; then   # its seeds: programs of the example (fuzz/lisp_seeds.txt)
        while read -r program; do
            cp examples/lisp/programs/"$program".scm "$corpus"/seed-"$program".scm
        done <fuzz/lisp_seeds.txt
    fi
    echo "== fuzz $run: ${seconds}s on $corpus"
    rc=0
    env ${env_extra:+"$env_extra"} "$out/fuzz/${target}_fuzz" \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    line=$(printf '%-11s %10s execs  %6s execs/s  corpus %s files' "$run" "${execs:-?}" \
           "${rate:-?}" "$(find "$corpus" -type f | wc -l)")
    if [ "$rc" -ne 0 ]; then
        failed=1
        line+="  FINDING (exit $rc)"
        grep -E 'FUZZ CHECK FAILED|ERROR: |SUMMARY: ' "$log" | head -n 5 >&2 || true
        for crash in "$artifacts"/*; do
            [ -f "$crash" ] && echo "   reproduce: ${env_extra:+$env_extra }$out/fuzz/${target}_fuzz $crash" >&2
        done
        echo "   log: $log" >&2
    fi
    echo "$line"
    summary+=("$line")
done

echo "== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "fuzz.sh: FINDINGS: see the reproduce lines above and docs/fuzzing.md" >&2
    exit 1
fi
