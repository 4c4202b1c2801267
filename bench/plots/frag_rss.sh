# bench/plots/frag_rss.sh — data for frag_rss.gp: resident memory over the
# pool benchmark's frag workload (fill with log-uniform 16 B..64 KiB objects,
# free a random 90 %, trim), for every allocator that was built, against the
# requested bytes live. Sourced by bench/plot.sh (see there for the contract).
# plot_title and plot_targets are read by plot.sh; quick, build and log are
# plot.sh's globals.
# shellcheck shell=bash disable=SC2034,SC2154

plot_title="pool frag workload: RSS over time, mulch vs glibc, mimalloc, jemalloc"
frag_allocators="mulch glibc mimalloc jemalloc"
plot_targets=$(for a in $frag_allocators; do printf 'pool_bench_%s ' "$a"; done)

plot_data() {
    local data=$1 fill=512 every=1000 a bin tmp fill_end free_end
    local columns=()
    if [ "$quick" = 1 ]; then fill=64 every=250; fi
    tmp=$build/frag_rss
    mkdir -p "$tmp"
    for a in $frag_allocators; do
        rm -f "$tmp/$a.txt"
        bin=$(bench_find_bin "pool_bench_$a")
        if [ -z "$bin" ]; then note "frag_rss: pool_bench_$a not built, its column is NaN"; continue; fi
        # one run: its RESULT line goes to the log, its SAMPLE lines become
        # "op phase live_MiB rss_MiB"
        if ! timeout 600 "$bin" frag --fill-mib "$fill" --samples "$every" >"$tmp/$a.out" 2>>"$log" ||
            ! grep -q '^RESULT ' "$tmp/$a.out"; then
            note "frag_rss: $bin failed (see $log), its column is NaN"
            continue
        fi
        grep '^RESULT ' "$tmp/$a.out" >>"$log"
        awk '/^SAMPLE /{ for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                         printf "%s %s %.2f %.2f\n", f["op"], f["phase"], f["live_kib"] / 1024, f["rss_kib"] / 1024 }' \
            "$tmp/$a.out" >"$tmp/$a.txt"
        columns+=("$a=$tmp/$a.txt")
    done
    [ "${#columns[@]}" -gt 0 ] || return 1
    fill_end=$(awk '$2 == "fill" { x = $1 } END { print x + 0 }' "${columns[0]#*=}")
    free_end=$(awk '$2 == "free" { x = $1 } END { print x + 0 }' "${columns[0]#*=}")
    {
        echo "# frag_rss: pool_bench frag --fill-mib $fill --samples $every (seed 42), one run per allocator"
        echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(bench_commit) host=$(uname -n) cpus=$(nproc) quick=$quick"
        echo "# columns: allocator calls so far, phase, requested MiB live, then RSS in MiB per allocator"
        echo "#gnuplot: fill_end = $fill_end"
        echo "#gnuplot: free_end = $free_end"
        echo "#gnuplot: fill_mib = $fill"
        echo "op phase live_mib ${frag_allocators}"
        # the first file supplies op, phase and live_mib; each file its RSS
        plot_join "${columns[@]}" | awk -v want="$frag_allocators" -v have="${columns[*]%%=*}" '
            BEGIN { nw = split(want, w, " "); nh = split(have, h, " "); for (i = 1; i <= nh; i++) col[h[i]] = i }
            { nlead = NF - nh; line = $1 " " $2 " " $3
              for (i = 1; i <= nw; i++) line = line " " ((w[i] in col) ? $(nlead + col[w[i]]) : "NaN")
              print line }'
    } >"$data"
}
