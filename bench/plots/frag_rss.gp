# bench/plots/frag_rss.gp — RSS over the pool benchmark's frag workload.
# Given by bench/plot.sh: datafile, outfile, fill_end, free_end, fill_mib.
# Columns of datafile: op phase live_mib, then one RSS column (MiB) per
# allocator, named in the header line; NaN where an allocator was not built.
set terminal pngcairo size 1040,540 font "DejaVu Sans,11" noenhanced
set output outfile
set datafile missing "NaN"
set title sprintf("frag: fill %d MiB of 16 B..64 KiB objects, free a random 90 %%, trim", fill_mib)
set xlabel "allocator calls (thousands)"
set ylabel "resident memory (MiB)"
set key outside right center vertical box
set grid ytics lc rgb "#dddddd"
set yrange [0:*]
# the trim sample shares its op count with the last free: draw it a little
# to the right, so the drop reads as a step of its own
trim_gap = free_end * 0.03
x(op, phase) = (phase eq "trim" ? op + trim_gap : op) / 1000.0
set xrange [0:(free_end + 2 * trim_gap) / 1000.0]
set arrow from fill_end / 1000.0, graph 0 to fill_end / 1000.0, graph 1 nohead dt 3 lc rgb "#888888"
set arrow from free_end / 1000.0, graph 0 to free_end / 1000.0, graph 1 nohead dt 3 lc rgb "#888888"
set label "fill" at graph 0.02, graph 0.95
set label "free 90 %" at fill_end / 1000.0, graph 0.95 offset 1, 0
set label "trim" at free_end / 1000.0, graph 0.95 offset 0.5, 0
# columns 4.. are the allocators, in the header's order
first = 4
stats datafile every ::1::1 nooutput
last = STATS_columns
plot datafile using (x($1, strcol(2))):3 with lines dt 2 lw 2 lc rgb "black" title "live (requested bytes)", \
     for [i = first:last] datafile using (x($1, strcol(2))):i with lines lw 2 lc (i - first + 1) title columnheader(i), \
     for [i = first:last] datafile using (x($1, strcol(2))):(strcol(2) eq "trim" ? column(i) : NaN) \
         with points pt 7 ps 1.2 lc (i - first + 1) notitle
