# bench/plots/compact_frag.sh — data for compact_frag.gp: the collector's
# fragmentation workload (compact_bench frag: mixed sizes, random lifetimes,
# a size mix that drifts between phases) with compaction AUTO vs NEVER:
# heap_bytes / live_bytes after each sampled collection, and RSS.
# Sourced by bench/plot.sh (see there for the contract).
# shellcheck shell=bash disable=SC2034,SC2154

plot_title="gc fragmentation workload: heap/live and RSS over time, compaction auto vs never"
plot_targets="compact_bench"

plot_data() {
    local data=$1 steps=6000000 every=100000 mode bin tmp
    local columns=()
    if [ "$quick" = 1 ]; then steps=600000 every=20000; fi
    tmp=$build/compact_frag
    mkdir -p "$tmp"
    bin=$(bench_find_bin compact_bench)
    [ -n "$bin" ] || { note "compact_frag: compact_bench not built"; return 1; }
    for mode in auto never; do
        if ! MULCH_GC_COMPACT=$mode timeout 900 "$bin" frag --steps "$steps" --samples "$every" \
                >"$tmp/$mode.out" 2>>"$log" || ! grep -q '^RESULT ' "$tmp/$mode.out"; then
            note "compact_frag: $bin ($mode) failed (see $log)"
            continue
        fi
        grep '^RESULT ' "$tmp/$mode.out" >>"$log"
        # "step ratio" and "step rss_mib" per mode
        awk '/^SAMPLE /{ for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                         printf "%s %s\n", f["step"], f["ratio"] }' "$tmp/$mode.out" >"$tmp/ratio_$mode.txt"
        awk '/^SAMPLE /{ for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                         printf "%s %.1f\n", f["step"], f["rss_kib"] / 1024 }' "$tmp/$mode.out" >"$tmp/rss_$mode.txt"
        columns+=("ratio_$mode=$tmp/ratio_$mode.txt" "rss_$mode=$tmp/rss_$mode.txt")
    done
    [ "${#columns[@]}" -eq 4 ] || return 1
    {
        echo "# compact_frag: compact_bench frag --steps $steps --samples $every (seed 42), MULCH_GC_COMPACT=auto and never"
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(bench_commit) host=$(uname -n) cpus=$(nproc) quick=$quick"
        echo "# columns: step, heap/live ratio (auto), RSS MiB (auto), ratio (never), RSS MiB (never)"
        echo "#gnuplot: steps = $steps"
        echo "step ${columns[*]%%=*}"
        plot_join "${columns[@]}"
    } >"$data"
}
