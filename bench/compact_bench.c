/* bench/compact_bench.c — the collector's compaction and parallel-marking
 * benchmarks (mulch only: the peers have neither).
 *
 *   compact_bench frag [--steps N] [--slots N] [--samples N] [--seed S]
 *       Fragmentation workload: a full table of `slots` rooted references to
 *       objects of mixed sizes (16..1024 bytes) with random lifetimes. The
 *       size mix drifts between phases (mostly small, then mostly large,
 *       ...), so the survivors of one phase sit scattered in spans the next
 *       phase does not want. Every `samples` steps it collects and prints
 *         SAMPLE step=<n> heap_bytes=<b> live_bytes=<b> ratio=<heap/live> rss_kib=<k>
 *       and at the end one RESULT line with the mean and maximum ratio over
 *       the second half of the run. Run it with MULCH_GC_COMPACT=auto and
 *       =never to compare (bench/run_compact_bench.sh does).
 *
 *   compact_bench mark [--mib N] [--collections N]
 *       Builds N MiB of live binary trees (default 1100: more than 1 GiB),
 *       then times `collections` full collections and prints
 *         RESULT bench=mark markers=<m> live_mib=<l> mark_seconds=<best pause>
 *       Run with MULCH_GC_MARKERS=1 and =2 to get the speed-up.
 */
#define _GNU_SOURCE 1
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mulch/gc.h>

static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static const char *mode_name(void) {
    const char *m = getenv("MULCH_GC_COMPACT");
    return m && *m ? m : "auto";
}

/* ---- frag ---------------------------------------------------------------- */

typedef struct blob {
    void    *next;        /* a reference, so the objects are traced */
    uint64_t words[];
} blob_t;

static void trace_blob(void *obj, gc_tracer_t *tracer) {
    gc_trace_slot(tracer, &((blob_t *)obj)->next);
}
static const gc_type_t blob_type = { "bench.blob", trace_blob, NULL };

static size_t pick_size(unsigned phase) {
    static const size_t small[] = { 16, 24, 32, 40, 48, 64 };
    static const size_t large[] = { 128, 192, 256, 384, 512, 1024 };
    bool want_small = (rng_next() % 10) < (phase % 2 == 0 ? 8u : 2u);
    const size_t *set = want_small ? small : large;
    return set[rng_next() % 6];
}

static int run_frag(uint64_t steps, size_t slots, uint64_t samples) {
    gc_heap_t *heap = gc_heap_create(NULL);
    gc_thread_t *t = gc_thread_attach(heap);
    void **table = calloc(slots, sizeof *table);
    if (!heap || !t || !table) return 1;
    gc_root_add_range(heap, table, slots);
    double sum = 0, max = 0;
    unsigned counted = 0;
    uint64_t phase_len = steps / 6 ? steps / 6 : 1;
    /* Fill the table first, so that the live set is steady from step 1. */
    for (size_t i = 0; i < slots; i++) {
        table[i] = gc_alloc(t, &blob_type, pick_size(0));
        if (!table[i]) return 1;
    }
    for (uint64_t step = 1; step <= steps; step++) {
        unsigned phase = (unsigned)(step / phase_len);
        size_t i = (size_t)(rng_next() % slots);
        /* Random lifetimes: a quarter of the slots hold long-lived objects
         * that are replaced 16 times less often. */
        if (i >= slots / 4 || rng_next() % 16 == 0) {
            blob_t *b = gc_alloc(t, &blob_type, pick_size(phase));
            if (!b) return 1;
            table[i] = b;
        }
        if (step % samples == 0) {
            gc_collect(t);
            gc_stats_t s;
            gc_get_stats(heap, &s);
            double ratio = s.live_bytes ? (double)s.heap_bytes / (double)s.live_bytes : 0;
            printf("SAMPLE step=%" PRIu64 " heap_bytes=%zu live_bytes=%zu ratio=%.3f rss_kib=%ld\n", step,
                   s.heap_bytes, s.live_bytes, ratio, rss_kib());
            if (step > steps / 2) {
                sum += ratio;
                counted++;
                if (ratio > max) max = ratio;
            }
        }
    }
    gc_stats_t s;
    gc_get_stats(heap, &s);
    printf("RESULT bench=frag compaction=%s mean_ratio=%.3f max_ratio=%.3f moved_mib=%.1f collections=%" PRIu64
           " max_pause_ms=%.2f rss_kib=%ld\n",
           mode_name(), counted ? sum / counted : 0, max, (double)s.bytes_moved / 1048576.0, s.collections,
           (double)s.pause_ns_max / 1e6, rss_kib());
    gc_root_remove(heap, table);
    gc_heap_destroy(heap);
    free(table);
    return 0;
}

/* ---- mark ---------------------------------------------------------------- */

typedef struct node {
    struct node *left, *right;
} node_t;

static void trace_node(void *obj, gc_tracer_t *tracer) {
    node_t *n = obj;
    gc_trace_slot(tracer, (void **)&n->left);
    gc_trace_slot(tracer, (void **)&n->right);
}
static const gc_type_t node_type = { "bench.node", trace_node, NULL };

/* A tree of the given depth; its root is stored into *out (a rooted slot). */
static void make_tree(gc_thread_t *t, int depth, void **out) {
    *out = gc_alloc(t, &node_type, sizeof(node_t));
    if (depth == 0 || *out == NULL) return;
    void *child = NULL;
    gc_push_root(t, &child);
    make_tree(t, depth - 1, &child);
    ((node_t *)*out)->left = child;
    make_tree(t, depth - 1, &child);
    ((node_t *)*out)->right = child;
    gc_pop_roots(t, 1);
}

static int run_mark(size_t mib, unsigned collections) {
    gc_heap_t *heap = gc_heap_create(NULL);
    gc_thread_t *t = gc_thread_attach(heap);
    /* 2^19 - 1 nodes a tree: 8 MiB of 16-byte cells (headerless nodes),
     * 12 MiB with headers. The first tree says which (its cells are all
     * the heap has allocated), and as many trees as pass `mib` follow. */
    enum { DEPTH = 18 };
    size_t nodes = ((size_t)1 << (DEPTH + 1)) - 1;
    size_t capacity = mib * 1048576 / (nodes * 16) + 1;
    void **forest = calloc(capacity, sizeof *forest);
    gc_root_add_range(heap, forest, capacity);
    make_tree(t, DEPTH, &forest[0]);
    gc_stats_t first;
    gc_get_stats(heap, &first);
    size_t tree_bytes = first.bytes_allocated ? (size_t)first.bytes_allocated : nodes * 16;
    size_t trees = mib * 1048576 / tree_bytes + 1;
    if (trees > capacity) trees = capacity;
    for (size_t i = 1; i < trees; i++) make_tree(t, DEPTH, &forest[i]);
    double best = 1e30, total = 0;
    for (unsigned c = 0; c < collections; c++) {
        gc_stats_t before, after;
        gc_get_stats(heap, &before);
        gc_collect(t);
        gc_get_stats(heap, &after);
        double pause = (double)(after.pause_ns_total - before.pause_ns_total) / 1e9;
        total += pause;
        if (pause < best) best = pause;
    }
    gc_stats_t s;
    gc_get_stats(heap, &s);
    const char *markers = getenv("MULCH_GC_MARKERS");
    printf("RESULT bench=mark markers=%s live_mib=%.0f mark_seconds=%.4f mean_seconds=%.4f\n",
           markers && *markers ? markers : "default", (double)s.live_bytes / 1048576.0, best, total / collections);
    gc_root_remove(heap, forest);
    gc_heap_destroy(heap);
    free(forest);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s frag|mark [options]\n", argv[0]);
        return 2;
    }
    uint64_t steps = 6000000, samples = 100000, seed = 42;
    size_t slots = 400000, mib = 1100;
    unsigned collections = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        unsigned long long v = strtoull(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--steps")) steps = v;
        else if (!strcmp(argv[i], "--slots")) slots = (size_t)v;
        else if (!strcmp(argv[i], "--samples")) samples = v;
        else if (!strcmp(argv[i], "--seed")) seed = v;
        else if (!strcmp(argv[i], "--mib")) mib = (size_t)v;
        else if (!strcmp(argv[i], "--collections")) collections = (unsigned)v;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    rng_state = seed;
    if (!strcmp(argv[1], "frag")) return run_frag(steps, slots ? slots : 1, samples ? samples : 1);
    if (!strcmp(argv[1], "mark")) return run_mark(mib, collections ? collections : 1);
    fprintf(stderr, "unknown benchmark %s\n", argv[1]);
    return 2;
}
