#!/bin/sh
# run_leak_report.sh LIB PROGRAM — runs PROGRAM (which leaks 12345 bytes from
# its exported function plant_leak, and 12963 through reallocarray from
# plant_leak_array) with LD_PRELOAD=LIB and MULCH_LEAK_REPORT=1, and fails
# unless the report on stderr names those allocations and their sites (the
# callers of malloc and reallocarray, not the drop-in itself), and does not
# list the block PROGRAM's fdopen reallocs while the report is being opened;
# then the corners: a program that takes the report's descriptor, a low
# descriptor limit, and a forked child that exits (it prints no reports).
set -u
lib=$1
program=$2
err=$(LD_PRELOAD=$lib MULCH_LEAK_REPORT=1 "$program" 2>&1 >/dev/null)
status=$?
if [ "$status" -ne 0 ]; then
    echo "$program exited with $status"
    echo "$err" | head -20
    exit 1
fi
if ! echo "$err" | grep -q '^mulch leak: 0x[0-9a-f]* size 12345 allocated at plant_leak+0x'; then
    echo "the leak report does not name plant_leak for the 12345-byte leak:"
    echo "$err" | head -40
    exit 1
fi
if ! echo "$err" | grep -q '^mulch leak: 0x[0-9a-f]* size 12963 allocated at plant_leak_array+0x'; then
    echo "the leak report does not name plant_leak_array for the 12963-byte reallocarray leak:"
    echo "$err" | grep 'size 12963'
    exit 1
fi
# The block the program's fdopen reallocs while the report is being
# opened was moved and freed: not listed, its bytes kept.
if echo "$err" | grep -q 'plant_kept\|^leak.c:'; then
    echo "a block realloc'd while the drop-in wrote its report was kept, or lost its bytes:"
    echo "$err" | grep 'plant_kept\|^leak.c:'
    exit 1
fi
if ! echo "$err" | grep -q '^mulch leak summary:'; then
    echo "no leak summary"
    exit 1
fi
echo "$err" | grep 'plant_leak'
# Without MULCH_LEAK_REPORT nothing is printed.
quiet=$(LD_PRELOAD=$lib "$program" 2>&1 >/dev/null)
if [ -n "$quiet" ]; then
    echo "stderr without MULCH_LEAK_REPORT should be empty, got:"
    echo "$quiet" | head
    exit 1
fi
# A program that takes the drop-in's report descriptor for a file of its
# own: the reports stay out of that file and still reach stderr.
file=$(mktemp)
err=$(LD_PRELOAD=$lib MULCH_LEAK_REPORT=1 MULCH_MALLOC_STATS=1 "$program" "$file" 2>&1 >/dev/null)
status=$?
content=$(cat "$file")
rm -f "$file"
if [ "$status" -ne 0 ] || [ "$content" != "program data" ]; then
    echo "the reports went into the program's own file (status $status):"
    echo "$content" | head -5
    exit 1
fi
if ! echo "$err" | grep -q '^mulch-malloc: allocs ' || ! echo "$err" | grep -q 'size 12345 allocated at plant_leak+0x'; then
    echo "with its descriptor taken, the reports no longer reach stderr:"
    echo "$err" | head -10
    exit 1
fi
# A descriptor limit below the drop-in's preferred number for its copy of
# stderr (100): the reports must still come out.
err=$( (ulimit -n 64 && LD_PRELOAD=$lib MULCH_LEAK_REPORT=1 MULCH_MALLOC_STATS=1 "$program") 2>&1 >/dev/null)
if ! echo "$err" | grep -q '^mulch-malloc: allocs ' || ! echo "$err" | grep -q 'size 12345 allocated at plant_leak+0x'; then
    echo "under ulimit -n 64, the reports do not reach stderr:"
    echo "$err" | head -10
    exit 1
fi
# A forked child that calls exit prints no reports of its own: one stats
# line and one leak report, the parent's.
err=$(LD_PRELOAD=$lib MULCH_LEAK_REPORT=1 MULCH_MALLOC_STATS=1 "$program" --fork 2>&1 >/dev/null)
status=$?
stats=$(echo "$err" | grep -c '^mulch-malloc: allocs ')
summaries=$(echo "$err" | grep -c '^mulch leak summary:')
if [ "$status" -ne 0 ] || [ "$stats" -ne 1 ] || [ "$summaries" -ne 1 ]; then
    echo "a forked child's exit printed reports too (status $status, $stats stats lines, $summaries leak summaries):"
    echo "$err" | grep '^mulch-malloc\|^mulch leak summary\|size 777 '
    exit 1
fi
exit 0
