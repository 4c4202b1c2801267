#!/bin/sh
# run_compare.sh LIB COMMAND [ARG...] — runs COMMAND once as is and once with
# LD_PRELOAD=LIB, and fails unless both runs exit with status 0 and print
# the same stdout, and the preloaded run really used LIB (its
# MULCH_MALLOC_STATS line counts allocations). Exit 77 (ctest: skipped) when
# COMMAND is not installed.
set -u
lib=$1
shift
if ! command -v "$1" >/dev/null 2>&1; then
    echo "skipped: $1 is not installed"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export LC_ALL=C

"$@" >"$work/plain.out" 2>"$work/plain.err"
plain_status=$?
LD_PRELOAD=$lib MULCH_MALLOC_STATS=1 "$@" >"$work/preload.out" 2>"$work/preload.err"
preload_status=$?

fail=0
if [ "$plain_status" -ne 0 ]; then
    echo "the command fails even without the drop-in (status $plain_status):"
    head -20 "$work/plain.err"
    fail=1
fi
if [ "$plain_status" -ne "$preload_status" ]; then
    echo "exit status differs: $plain_status without the drop-in, $preload_status with it"
    fail=1
fi
if ! cmp -s "$work/plain.out" "$work/preload.out"; then
    echo "stdout differs with the drop-in:"
    diff "$work/plain.out" "$work/preload.out" | head -20
    fail=1
fi
allocs=$(sed -n 's/^mulch-malloc: allocs \([0-9]*\) .*/\1/p' "$work/preload.err" | tail -n 1)
if [ -z "$allocs" ] || [ "$allocs" -eq 0 ]; then
    echo "the drop-in was not used (no 'mulch-malloc: allocs N' line on stderr)"
    fail=1
fi
echo "$* : status $plain_status, $(wc -c <"$work/plain.out") bytes of stdout, $allocs allocations in the drop-in"
if [ "$fail" -ne 0 ]; then
    echo "--- stderr with the drop-in:"
    head -40 "$work/preload.err"
fi
exit "$fail"
