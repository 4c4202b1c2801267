#!/bin/sh
# gen_lines.sh N FILE — N deterministic lines of text (about 24 bytes each)
# for the sort tests and benchmark.
set -eu
awk -v n="$1" 'BEGIN {
    x = 12345
    for (i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) % 2147483648
        printf "%d %08x key%03d line-%d\n", x % 100000, x, (x / 7) % 997, i
    }
}' >"$2"
