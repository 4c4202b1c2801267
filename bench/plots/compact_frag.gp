# bench/plots/compact_frag.gp — the collector's fragmentation workload with
# compaction AUTO vs NEVER. Given by bench/plot.sh: datafile, outfile, steps.
# Columns: step, ratio_auto, rss_auto, ratio_never, rss_never.
set terminal pngcairo size 1040,700 font "DejaVu Sans,11" noenhanced
set output outfile
set datafile missing "NaN"
set multiplot layout 2,1 title "gc fragmentation workload: mixed sizes, random lifetimes, drifting size mix"
set key outside right center vertical box
set grid ytics lc rgb "#dddddd"
set xlabel "allocations (millions)"
set ylabel "heap bytes / live bytes"
set yrange [1:*]
plot datafile using ($1 / 1e6):2 with linespoints lw 2 pt 7 ps 0.6 lc 1 title "compaction auto", \
     datafile using ($1 / 1e6):4 with linespoints lw 2 pt 7 ps 0.6 lc 2 title "compaction never", \
     1.3 with lines dt 2 lc rgb "black" title "target 1.3"
set ylabel "resident memory (MiB)"
set yrange [0:*]
plot datafile using ($1 / 1e6):3 with linespoints lw 2 pt 7 ps 0.6 lc 1 title "compaction auto", \
     datafile using ($1 / 1e6):5 with linespoints lw 2 pt 7 ps 0.6 lc 2 title "compaction never"
unset multiplot
