/* test_gc_collection_events.c — black-box tests of the collection callback
 * (gc_set_collection_callback, gc_collection_info_t) and MULCH_GC_LOG
 * (<mulch/gc.h>; docs/gc.md "Watching collections").
 *
 * Each collection must produce exactly one call, numbered as gc_get_stats
 * counts, with the reason that started it (gc_collect, an allocation's
 * budget, an allocation that did not fit), its kind (minor or full), and
 * figures that agree with gc_get_stats: the pauses add up to
 * pause_ns_total, the moved bytes to bytes_moved, the live and heap bytes
 * of the last call are the stats' own. A callback's mulch calls that could
 * collect or take the heap's lock are reported and refused, not a
 * deadlock. MULCH_GC_LOG=1 prints one line a collection, naming its
 * kind and reason, and a summary when the heap is destroyed. Threads:
 * test_gc_collection_events_threads.c.
 *
 * Deterministic: no randomness; fixed workloads. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367636501)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "mulch_test.h"

enum { MAX_SEEN = 4096 };

typedef struct recorder {
    gc_collection_info_t seen[MAX_SEEN];
    size_t count;
    gc_heap_t *heap;   /* for the reentry test */
    gc_thread_t *thread;
    bool reenter;      /* call mulch from the callback */
    bool read_stats;   /* call gc_get_stats from the callback */
    gc_stats_t stats;  /* what it gave */
    void *allocated;   /* what gc_alloc gave the callback (NULL expected) */
} recorder_t;

static void record(const gc_collection_info_t *info, void *ctx)
{
    recorder_t *r = ctx;
    if (r->count < MAX_SEEN) r->seen[r->count] = *info;
    r->count++;
    if (r->read_stats) gc_get_stats(r->heap, &r->stats);
    if (r->reenter) {
        gc_collect(r->thread);
        r->allocated = gc_alloc(r->thread, &T_RAW, 64);
        gc_set_collection_callback(r->heap, NULL, NULL);
    }
}

static recorder_t *recorder_new(void)
{
    recorder_t *r = calloc(1, sizeof *r);
    EXPECT_NONNULL(r);
    return r;
}

static gc_heap_t *heap_with(size_t max_heap, int compaction, int generational, int markers)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.max_heap = max_heap;
    o.compaction = compaction;
    o.generational = generational;
    o.markers = markers;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    return h;
}

/* A heap (heap_with's options) with an attached thread, its collections
 * recorded; *h and *t are set, the recorder returned. */
static recorder_t *watched_heap(size_t max_heap, int compaction, int generational, int markers, gc_heap_t **h,
                                gc_thread_t **t)
{
    *h = heap_with(max_heap, compaction, generational, markers);
    *t = gc_thread_attach(*h);
    recorder_t *r = recorder_new();
    gc_set_collection_callback(*h, record, r);
    return r;
}

static void watched_heap_end(gc_heap_t *h, gc_thread_t *t, recorder_t *r)
{
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(r);
}

/* The calls since `first` agree with the stats' change since `before`;
 * `at_rest`: nothing was allocated since the last collection (the heap's
 * size is still the one it ended with). */
static void expect_consistent(const recorder_t *r, size_t first, gc_heap_t *h, gc_stats_t before, bool at_rest)
{
    gc_stats_t now = stats_of(h);
    EXPECT_EQ(r->count - first, now.collections - before.collections);
    EXPECT_LE(r->count, MAX_SEEN);
    uint64_t pauses = 0, moved = 0, marking = 0, sweeping = 0, minors = 0;
    for (size_t i = first; i < r->count; i++) {
        const gc_collection_info_t *c = &r->seen[i];
        EXPECT_EQ(c->sequence, before.collections + 1 + (i - first));
        EXPECT_GE(c->pause_ns, c->sweep_ns + c->mark_ns);
        EXPECT_GE(c->markers, 1);
        EXPECT_GE(c->heap_bytes_after, c->live_bytes);
        EXPECT_GE(c->budget, 1);
        EXPECT_GE(now.heap_bytes_peak, c->heap_bytes_before);
        EXPECT_GE(now.heap_bytes_peak, c->heap_bytes_after);
        pauses += c->pause_ns;
        moved += c->bytes_moved;
        marking += c->mark_ns;
        sweeping += c->sweep_ns;
        minors += c->minor != 0;
    }
    EXPECT_EQ(pauses, now.pause_ns_total - before.pause_ns_total);
    EXPECT_EQ(moved, now.bytes_moved - before.bytes_moved);
    EXPECT_EQ(marking, now.mark_ns_total - before.mark_ns_total);
    EXPECT_EQ(sweeping, now.sweep_ns_total - before.sweep_ns_total);
    EXPECT_EQ(minors, now.collections_minor - before.collections_minor);
    EXPECT_LE(now.collections_minor, now.collections);
    EXPECT_LE(now.mark_ns_total + now.sweep_ns_total, now.pause_ns_total);
    EXPECT_GE(now.heap_bytes_peak, now.heap_bytes);
    EXPECT_GE(now.heap_bytes_peak, before.heap_bytes_peak);
    if (r->count > first) {
        const gc_collection_info_t *last = &r->seen[r->count - 1];
        EXPECT_EQ(last->live_bytes, now.live_bytes);
        if (at_rest) EXPECT_EQ(last->heap_bytes_after, now.heap_bytes);
    }
}

/* gc_collect: one call each, reason gc_collect, full, its figures the
 * stats'; the live bytes are those of the rooted list. */
static void test_events_explicit_collections(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h;
    gc_thread_t *t;
    recorder_t *r = watched_heap(0, GC_COMPACT_NEVER, 0, 1, &h, &t);
    void *list = NULL;
    gc_push_root(t, &list);
    for (uint64_t i = 0; i < 1000; i++) {
        tobj_t *o = mk(t, &T_PLAIN, i % MAX_IDS, 4);
        o->slot[0] = list;
        list = o;
    }
    gc_stats_t before = stats_of(h);
    for (int i = 0; i < 3; i++) gc_collect(t);
    EXPECT_EQ(r->count, 3);
    EXPECT_EQ(r->seen[0].heap_bytes_before, before.heap_bytes); /* nothing allocated since */
    for (size_t i = 0; i < r->count; i++) {
        EXPECT_GE(r->seen[i].mark_ns, 1); /* 1000 objects marked */
        if (i > 0) EXPECT_EQ(r->seen[i].heap_bytes_before, r->seen[i - 1].heap_bytes_after);
        EXPECT_EQ(r->seen[i].reason, GC_REASON_EXPLICIT);
        EXPECT_EQ(r->seen[i].minor, 0);
        EXPECT_EQ(r->seen[i].markers, 1); /* markers = 1 */
        EXPECT_EQ(r->seen[i].bytes_moved, 0);
        EXPECT_GE(r->seen[i].live_bytes, 1000 * tobj_size(4));
    }
    expect_consistent(r, 0, h, before, true);
    gc_pop_roots(t, 1);
    watched_heap_end(h, t, r);
    EXPECT_NO_REPORTS(r0);
}

/* Garbage alone: every collection is an allocation's, and each is
 * reported (several in a row, numbered on). */
static void test_events_allocation_collections(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h;
    gc_thread_t *t;
    recorder_t *r = watched_heap(0, GC_COMPACT_NEVER, 0, 0, &h, &t);
    gc_stats_t before = stats_of(h);
    for (int i = 0; i < 200000 && r->count < 4; i++) EXPECT_NONNULL(gc_alloc(t, &T_RAW, 120));
    EXPECT_GE(r->count, 4);
    for (size_t i = 0; i < r->count; i++) {
        EXPECT_EQ(r->seen[i].reason, GC_REASON_ALLOCATION);
        EXPECT_EQ(r->seen[i].minor, 0);
    }
    expect_consistent(r, 0, h, before, false);
    watched_heap_end(h, t, r);
    EXPECT_NO_REPORTS(r0);
}

/* A rooted list that grows until max_heap refuses: the collection run for
 * the allocation that did not fit says so; afterwards the heap works. */
static void test_events_heap_limit(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h;
    gc_thread_t *t;
    recorder_t *r = watched_heap(4 * MiB, GC_COMPACT_NEVER, 0, 0, &h, &t);
    gc_stats_t before = stats_of(h);
    void *list = NULL;
    gc_push_root(t, &list);
    size_t made = 0;
    for (;;) {
        tobj_t *o = gc_alloc(t, &T_PLAIN, tobj_size(8));
        if (o == NULL) break;
        o->slot[0] = list;
        list = o;
        made++;
        EXPECT_LT(made, 1000000);
    }
    size_t limits = 0;
    for (size_t i = 0; i < r->count; i++) limits += r->seen[i].reason == GC_REASON_HEAP_LIMIT;
    print_message("  %zu objects, %zu collections, %zu for the limit\n", made, r->count, limits);
    EXPECT_GE(limits, 1);
    expect_consistent(r, 0, h, before, false);
    list = NULL;
    gc_collect(t);
    EXPECT_EQ(r->seen[r->count - 1].reason, GC_REASON_EXPLICIT);
    EXPECT_NONNULL(gc_alloc(t, &T_PLAIN, tobj_size(8)));
    gc_pop_roots(t, 1);
    watched_heap_end(h, t, r);
    EXPECT_NO_REPORTS(r0);
}

/* A generational heap: allocation's collections are minor (but for the
 * occasional full one), gc_collect's are full. */
static void test_events_minor_and_full(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h;
    gc_thread_t *t;
    recorder_t *r = watched_heap(0, GC_COMPACT_NEVER, 1, 0, &h, &t);
    gc_stats_t before = stats_of(h);
    size_t minors = 0;
    for (int i = 0; i < 400000 && minors < 3; i++) {
        EXPECT_NONNULL(gc_alloc(t, &T_RAW, 120));
        minors = 0;
        for (size_t k = 0; k < r->count && k < MAX_SEEN; k++) minors += r->seen[k].minor != 0;
    }
    EXPECT_GE(minors, 3);
    for (size_t i = 0; i < r->count; i++) EXPECT_EQ(r->seen[i].reason, GC_REASON_ALLOCATION);
    gc_collect(t);
    EXPECT_EQ(r->seen[r->count - 1].minor, 0);
    EXPECT_EQ(r->seen[r->count - 1].reason, GC_REASON_EXPLICIT);
    expect_consistent(r, 0, h, before, true);
    watched_heap_end(h, t, r);
    EXPECT_NO_REPORTS(r0);
}

/* A compacting collection of a sparse heap moves objects, and its call
 * says how many bytes (the same the stats gained). */
static void test_events_bytes_moved(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_with(0, GC_COMPACT_ALWAYS, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    enum { N = 20000, KEEP_EVERY = 16 };
    void **keep = calloc(N / KEEP_EVERY, sizeof *keep);
    EXPECT_NONNULL(keep);
    gc_root_add_range(h, keep, N / KEEP_EVERY);
    for (size_t i = 0; i < N; i++) {
        tobj_t *o = mk(t, &T_PLAIN, i % MAX_IDS, 2);
        if (i % KEEP_EVERY == 0) keep[i / KEEP_EVERY] = o;
    }
    recorder_t *r = recorder_new();
    gc_set_collection_callback(h, record, r);
    gc_stats_t before = stats_of(h);
    gc_collect(t);
    EXPECT_EQ(r->count, 1);
    print_message("  moved %zu bytes\n", r->seen[0].bytes_moved);
    EXPECT_GE(r->seen[0].bytes_moved, 1);
    expect_consistent(r, 0, h, before, true);
    for (size_t i = 0; i < N / KEEP_EVERY; i++) EXPECT_OBJ(keep[i], (i * KEEP_EVERY) % MAX_IDS);
    gc_root_remove(h, keep);
    free(keep);
    watched_heap_end(h, t, r);
    EXPECT_NO_REPORTS(r0);
}

/* Two markers asked for: each collection says 1 or 2, and within a few
 * collections of a tree (whose subtrees the markers share) the helper
 * joins at least once (full-size runs: a sanitizer or valgrind may keep
 * it from waking in time). */
static void *tree_new(gc_thread_t *t, unsigned depth, uint64_t *id)
{
    tobj_t *n = mk(t, &T_PLAIN, (*id)++ % MAX_IDS, 0);
    if (depth == 0) return n;
    gc_push_root(t, (void **)&n);
    void *child = tree_new(t, depth - 1, id);
    n->slot[0] = child;
    child = tree_new(t, depth - 1, id);
    n->slot[1] = child;
    gc_pop_roots(t, 1);
    return n;
}

static void test_events_markers(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h;
    gc_thread_t *t;
    recorder_t *r = watched_heap(0, GC_COMPACT_NEVER, 0, 2, &h, &t);
    void *tree = NULL;
    gc_push_root(t, &tree);
    uint64_t id = 0;
    tree = tree_new(t, (unsigned)scaled(16, 10), &id);
    size_t first = r->count, joined = 0;
    for (int i = 0; i < 30 && joined == 0; i++) {
        gc_collect(t);
        const gc_collection_info_t *c = &r->seen[r->count - 1];
        EXPECT_GE(c->markers, 1);
        EXPECT_LE(c->markers, 2);
        joined += c->markers == 2;
    }
    print_message("  %zu collections until the helper joined one (%zu)\n", r->count - first, joined);
    if (!g_quick && joined == 0) T_FAIL("no collection of a %" PRIu64 "-node tree reported 2 markers", id);
    gc_pop_roots(t, 1);
    watched_heap_end(h, t, r);
    EXPECT_NO_REPORTS(r0);
}

/* From the callback (lock held, world stopped): gc_collect, gc_alloc and
 * gc_set_collection_callback are each reported once and do nothing. */
static void test_events_callback_reentry_refused(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_with(0, GC_COMPACT_NEVER, 0, 1);
    gc_thread_t *t = gc_thread_attach(h);
    recorder_t *r = recorder_new();
    r->heap = h;
    r->thread = t;
    r->reenter = true;
    gc_set_collection_callback(h, record, r);
    unsigned long r0 = rec_count();
    gc_collect(t);
    EXPECT_EQ(r->count, 1);
    EXPECT_NULL(r->allocated);
    EXPECT_EQ(rec_count() - r0, 3);
    /* the refused removal left the callback in place */
    r->reenter = false;
    unsigned long r1 = rec_count();
    gc_collect(t);
    EXPECT_EQ(r->count, 2);
    EXPECT_NO_REPORTS(r1);
    EXPECT_VERIFY(h);
    watched_heap_end(h, t, r);
}

/* gc_get_stats from the callback (its thread holds the heap's lock)
 * reads the heap as the collection left it, without waiting for the
 * lock. */
static void test_events_stats_from_callback(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_with(0, GC_COMPACT_NEVER, 0, 1);
    gc_thread_t *t = gc_thread_attach(h);
    recorder_t *r = recorder_new();
    r->heap = h;
    r->read_stats = true;
    gc_set_collection_callback(h, record, r);
    void *keep = NULL;
    gc_push_root(t, &keep);
    keep = mk(t, &T_PLAIN, 5, 100);
    gc_collect(t);
    gc_collect(t);
    EXPECT_EQ(r->count, 2);
    EXPECT_EQ(r->stats.collections, 2);
    EXPECT_EQ(r->stats.live_bytes, r->seen[1].live_bytes);
    EXPECT_EQ(r->stats.pause_ns_total, r->seen[0].pause_ns + r->seen[1].pause_ns);
    EXPECT_GE(r->stats.live_bytes, tobj_size(100));
    EXPECT_NO_REPORTS(r0);
    gc_pop_roots(t, 1);
    watched_heap_end(h, t, r);
}

/* From a trace function (the collector holds the lock) or another heap's
 * collection callback: gc_get_stats is reported and gives zeros instead
 * of waiting for ever. */
static unsigned long g_trace_stats_collections = 99;
static gc_heap_t *g_traced_heap;
static void trace_reading_stats(void *obj, gc_tracer_t *tracer)
{
    (void)obj, (void)tracer;
    gc_stats_t s;
    gc_get_stats(g_traced_heap, &s);
    g_trace_stats_collections = (unsigned long)s.collections;
}
static const gc_type_t T_STATS_READER = { "test.stats_reader", trace_reading_stats, NULL };

static void test_events_stats_elsewhere_refused(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_with(0, GC_COMPACT_NEVER, 0, 1);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = NULL;
    gc_push_root(t, &keep);
    keep = gc_alloc(t, &T_STATS_READER, 16);
    EXPECT_NONNULL(keep);
    unsigned long r0 = rec_count();
    g_traced_heap = h;
    gc_collect(t);
    EXPECT_EQ(g_trace_stats_collections, 0);
    EXPECT_ONE_REPORT(r0, "gc_get_stats: called from a trace function", h);
    gc_pop_roots(t, 1);

    /* heap h's callback reads another heap's stats: refused too */
    gc_heap_t *other = heap_with(0, GC_COMPACT_NEVER, 0, 1);
    recorder_t *r = recorder_new();
    r->heap = other;
    r->read_stats = true;
    memset(&r->stats, 0xCD, sizeof r->stats);
    gc_set_collection_callback(h, record, r);
    unsigned long r1 = rec_count();
    gc_collect(t);
    EXPECT_EQ(r->count, 1);
    EXPECT_EQ(r->stats.collections, 0);
    EXPECT_ONE_REPORT(r1, "gc_get_stats: called from a trace function", other);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    gc_heap_destroy(other);
    free(r);
}

/* fn NULL removes the callback; a NULL heap is reported. */
static void test_events_callback_removed(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_with(0, GC_COMPACT_NEVER, 0, 1);
    gc_thread_t *t = gc_thread_attach(h);
    recorder_t *r = recorder_new();
    unsigned long r0 = rec_count();
    gc_set_collection_callback(h, record, r);
    gc_collect(t);
    gc_set_collection_callback(h, NULL, NULL);
    gc_collect(t);
    EXPECT_EQ(r->count, 1);
    EXPECT_NO_REPORTS(r0);
    gc_set_collection_callback(NULL, record, r);
    EXPECT_ONE_REPORT(r0, "gc_set_collection_callback", NULL);
    watched_heap_end(h, t, r);
}

/* What stderr receives while fn runs (the heap created inside it, with
 * MULCH_GC_LOG=value), in `out`. */
static void stderr_of(void (*fn)(void), char *out, size_t size)
{
    fflush(stderr);
    FILE *capture = tmpfile();
    EXPECT_NONNULL(capture);
    int saved = dup(STDERR_FILENO);
    EXPECT_GE(saved, 0);
    EXPECT_GE(dup2(fileno(capture), STDERR_FILENO), 0);
    fn();
    fflush(stderr);
    EXPECT_GE(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    rewind(capture);
    size_t n = fread(out, 1, size - 1, capture);
    out[n] = '\0';
    fclose(capture);
}

/* A heap that collects n times with gc_collect, then is destroyed. */
static void collections_then_destroy(int n)
{
    gc_heap_t *h = heap_with(0, GC_COMPACT_NEVER, 0, 1);
    gc_thread_t *t = gc_thread_attach(h);
    for (int i = 0; i < n; i++) gc_collect(t);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void two_collections(void) { collections_then_destroy(2); }
static void one_collection(void) { collections_then_destroy(1); }

static size_t lines_of(const char *text, const char *prefix)
{
    size_t n = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, strlen(prefix)) == 0) n++;
    return n;
}

/* MULCH_GC_LOG=1: a line a collection, numbered, saying why; a value that
 * is no switch word is reported and taken as on, as every MULCH_* switch
 * (docs/tuning.md); 0 and unset: no lines. */
static void test_events_log_environment(void **state)
{
    (void)state;
    TEST_START();
    static char text[8192];
    unsigned long r0 = rec_count();
    setenv("MULCH_GC_LOG", "1", 1);
    stderr_of(two_collections, text, sizeof text);
    print_message("  %s", text);
    EXPECT_EQ(lines_of(text, "mulch gc "), 3); /* and the summary */
    EXPECT_NONNULL(strstr(text, "#1: full (gc_collect), pause "));
    EXPECT_NONNULL(strstr(text, "#2: full (gc_collect), pause "));
    EXPECT_NONNULL(strstr(text, "1 marker)"));
    EXPECT_NONNULL(strstr(text, " destroyed: 2 collections (0 minor), pauses "));
    stderr_of(one_collection, text, sizeof text);
    EXPECT_NONNULL(strstr(text, " destroyed: 1 collection (0 minor), pauses "));
    EXPECT_NO_REPORTS(r0);

    setenv("MULCH_GC_LOG", "maybe", 1);
    stderr_of(two_collections, text, sizeof text);
    EXPECT_EQ(lines_of(text, "mulch gc "), 3);
    EXPECT_ONE_REPORT(r0, "gc_heap_create: MULCH_GC_LOG=maybe is not 0, 1", getenv("MULCH_GC_LOG"));

    unsigned long r1 = rec_count();
    setenv("MULCH_GC_LOG", "0", 1);
    stderr_of(two_collections, text, sizeof text);
    EXPECT_EQ(lines_of(text, "mulch gc "), 0);
    unsetenv("MULCH_GC_LOG");
    stderr_of(two_collections, text, sizeof text);
    EXPECT_EQ(lines_of(text, "mulch gc "), 0);
    EXPECT_NO_REPORTS(r1);
}

static size_t occurrences(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle)) n++;
    return n;
}

/* Allocates 24 MiB of garbage on a generational heap (minor collections),
 * then fills a 4 MiB heap until an allocation fails. */
static void minor_and_limit_collections(void)
{
    gc_heap_t *h = heap_with(0, GC_COMPACT_NEVER, 1, 1);
    gc_thread_t *t = gc_thread_attach(h);
    for (int i = 0; i < 200000; i++) EXPECT_NONNULL(gc_alloc(t, &T_RAW, 120));
    gc_thread_detach(t);
    gc_heap_destroy(h);

    h = heap_with(4 * MiB, GC_COMPACT_NEVER, 0, 1);
    t = gc_thread_attach(h);
    void *list = NULL;
    gc_push_root(t, &list);
    for (size_t made = 0; made < 1000000; made++) {
        tobj_t *o = gc_alloc(t, &T_PLAIN, tobj_size(8));
        if (o == NULL) break;
        o->slot[0] = list;
        list = o;
    }
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* The log names minor collections and those an allocation that did not
 * fit started. */
static void test_events_log_minor_and_limit(void **state)
{
    (void)state;
    TEST_START();
    static char text[1 << 16];
    unsigned long r0 = rec_count();
    setenv("MULCH_GC_LOG", "1", 1);
    stderr_of(minor_and_limit_collections, text, sizeof text);
    unsetenv("MULCH_GC_LOG");
    size_t lines = lines_of(text, "mulch gc ");
    size_t minors = occurrences(text, ": minor (allocation), pause ");
    size_t limits = occurrences(text, ": full (heap limit), pause ");
    print_message("  %zu lines: %zu minor, %zu for the heap limit\n", lines, minors, limits);
    EXPECT_GE(minors, 3);
    EXPECT_GE(limits, 1);
    EXPECT_LT(lines, sizeof text / 120); /* all of them captured */
    /* each heap's summary counts its lines: the two add up to all but themselves */
    EXPECT_EQ(occurrences(text, " destroyed: "), 2);
    unsigned long long summed = 0, summed_minor = 0;
    for (const char *p = strstr(text, " destroyed: "); p != NULL; p = strstr(p + 1, " destroyed: ")) {
        unsigned long long collections = 0, minor = 0;
        EXPECT_EQ(sscanf(p, " destroyed: %llu collections (%llu minor)", &collections, &minor), 2);
        summed += collections;
        summed_minor += minor;
    }
    EXPECT_EQ(summed, lines - 2);
    EXPECT_EQ(summed_minor, minors);
    EXPECT_NO_REPORTS(r0);
}

/* ---- cancellation: the callback's and the log's writes ------------------ */

static gc_heap_t *g_cancel_heap;
static FILE *g_cancel_out;
static atomic_int g_cancel_collected;

static void write_info(const gc_collection_info_t *info, void *ctx)
{
    (void)ctx;
    fprintf(g_cancel_out, "gc #%llu\n", (unsigned long long)info->sequence); /* a write: a cancellation point */
}

/* A thread with a cancel pending collects: the write in the callback (or
 * the log line) must not act on it with the heap's lock held. */
static void *cancel_victim(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_cancel_heap);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_cancel(pthread_self());
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    gc_collect(t); /* no mulch call is a cancellation point */
    atomic_store(&g_cancel_collected, 1);
    gc_thread_detach(t);
    pthread_testcancel(); /* the cancel acts here, outside mulch */
    return NULL;
}

static void *cancel_run(void *arg)
{
    pthread_t v;
    if (pthread_create(&v, NULL, cancel_victim, NULL) != 0) return NULL;
    pthread_join(v, (void **)arg);
    return NULL;
}

static void cancel_scenario(void)
{
    atomic_store(&g_cancel_collected, 0);
    void *result = NULL;
    if (!mt_finishes_within(cancel_run, &result, 20))
        T_FAIL("a collection whose thread had a cancel pending never finished (the heap's lock left held)");
    EXPECT_EQ(atomic_load(&g_cancel_collected), 1);
    EXPECT_PTR_EQ(result, PTHREAD_CANCELED);
    /* the heap's lock is free: another thread collects */
    gc_thread_t *t = gc_thread_attach(g_cancel_heap);
    gc_collect(t);
    gc_thread_detach(t);
}

static void cancel_with_log(void)
{
    g_cancel_heap = heap_with(0, GC_COMPACT_NEVER, 0, 1);
    cancel_scenario();
    gc_heap_destroy(g_cancel_heap);
}

static void test_events_cancel_pending(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    g_cancel_out = tmpfile();
    EXPECT_NONNULL(g_cancel_out);
    setvbuf(g_cancel_out, NULL, _IONBF, 0);
    g_cancel_heap = heap_with(0, GC_COMPACT_NEVER, 0, 1);
    gc_set_collection_callback(g_cancel_heap, write_info, NULL);
    cancel_scenario();
    gc_heap_destroy(g_cancel_heap);
    fclose(g_cancel_out);

    static char text[2048];
    setenv("MULCH_GC_LOG", "1", 1);
    stderr_of(cancel_with_log, text, sizeof text);
    unsetenv("MULCH_GC_LOG");
    EXPECT_EQ(lines_of(text, "mulch gc "), 3);
    EXPECT_NONNULL(strstr(text, " destroyed: 2 collections (0 minor), pauses "));
    EXPECT_NO_REPORTS(r0);
}

/* MULCH_GC_STRESS's collections are an allocation's. */
static void test_events_stress_reason(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    setenv("MULCH_GC_STRESS", "4", 1);
    gc_heap_t *h = heap_with(0, GC_COMPACT_NEVER, 0, 1);
    unsetenv("MULCH_GC_STRESS");
    gc_thread_t *t = gc_thread_attach(h);
    recorder_t *r = recorder_new();
    gc_set_collection_callback(h, record, r);
    gc_stats_t before = stats_of(h);
    for (int i = 0; i < 2000 && r->count < 3; i++) EXPECT_NONNULL(gc_alloc(t, &T_RAW, 3000 + (size_t)i % 7 * 512));
    EXPECT_GE(r->count, 3);
    for (size_t i = 0; i < r->count; i++) EXPECT_EQ(r->seen[i].reason, GC_REASON_ALLOCATION);
    expect_consistent(r, 0, h, before, false);
    watched_heap_end(h, t, r);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_collection_events");
    mt_env_ignore_policy();
    mt_env_ignore("MULCH_GC_COMPACT");
    mt_env_ignore("MULCH_GC_GENERATIONAL");
    mt_env_ignore("MULCH_GC_MARKERS");
    mt_env_ignore("MULCH_GC_LOG");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_events_explicit_collections),
        T(test_events_allocation_collections),
        T(test_events_heap_limit),
        T(test_events_minor_and_full),
        T(test_events_bytes_moved),
        T(test_events_markers),
        T(test_events_callback_reentry_refused),
        T(test_events_callback_removed),
        T(test_events_stats_from_callback),
        T(test_events_stats_elsewhere_refused),
        T(test_events_log_environment),
        T(test_events_log_minor_and_limit),
        T(test_events_cancel_pending),
        T(test_events_stress_reason),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
