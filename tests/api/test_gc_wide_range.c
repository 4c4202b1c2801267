/* test_gc_wide_range.c — objects with very many slots traced through
 * gc_trace_range, which the tracer splits into range entries (a chunk of
 * slots at a time, the rest pushed back: gc/mark.c, range_defer).
 *
 * Checked: the exact live set (every survivor intact, every object cut
 * off gone, counted by gc_heap_walk) with 1, 2 and 4 markers and
 * compaction never or always, for a slot count that is no multiple of the
 * chunk and a range that does not start at the object's start; a big root
 * range (not deferred: it lies in no object); and in generational mode,
 * young objects stored into an old wide object, and into a young wide
 * object that is promoted by a minor collection while they stay young
 * (its card must be kept for them though its slots are traced from range
 * entries), surviving minor collections. As a test_gc_* file it also
 * runs with compaction always and in generational mode.
 *
 * Deterministic: random choices come from MULCH_TEST_SEED (printed). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6377696465)
#define MULCH_TEST_GC_OBJECTS 1
#include <stdbool.h>

#include <mulch/gc.h>

#include "mulch_test.h"
#include "gc_wide_test.h"

static void count_object(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj;
    (void)type;
    (void)size;
    ++*(size_t *)ctx;
}

static size_t heap_objects(gc_heap_t *h)
{
    size_t n = 0;
    gc_heap_walk(h, count_object, &n);
    return n;
}

static gc_heap_t *heap_with(int markers, int compaction, bool generational)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = markers;
    o.compaction = compaction;
    o.generational = generational;
    if (generational) o.initial_heap = 256 * KiB; /* allocation collects often */
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) fail();
    return h;
}

static wide_t *wide_new(gc_thread_t *t, size_t n)
{
    wide_t *w = gc_alloc(t, &T_WIDE, sizeof(wide_t) + n * sizeof(void *));
    if (!w) fail();
    w->n = n;
    return w;
}

/* Fills slot i of the rooted *wp with a leaf (id base + i) that has a
 * child (id base + n + i) when i is a multiple of 4; returns *wp (it may
 * have moved). */
static wide_t *wide_fill(gc_thread_t *t, wide_t **wp, size_t i, uint64_t base)
{
    void *leaf = mk(t, &T_PLAIN, base + i, 1);
    if (i % 4 == 0) {
        gc_push_root(t, &leaf);
        void *child = mk(t, &T_PLAIN, base + (*wp)->n + i, 0);
        set_slot(t, leaf, 0, child);
        gc_pop_roots(t, 1);
    }
    gc_write(t, *wp, &(*wp)->slots[i], leaf);
    return *wp;
}

static void wide_expect(const wide_t *w, uint64_t base, size_t *live)
{
    for (size_t i = 0; i < w->n; i++) {
        if (w->slots[i] == NULL) continue;
        EXPECT_OBJ(w->slots[i], base + i);
        *live += 1;
        if (i % 4 != 0) continue;
        EXPECT_OBJ(slot_of(w->slots[i], 0), base + w->n + i);
        *live += 1;
    }
}

/* One configuration: a wide object of n slots, then a third of them cut,
 * then all of them: after each collection exactly what is reachable
 * remains, intact. A root range of ROOTS slots rides along. */
static void exact_run(int markers, int compaction, size_t n)
{
    gc_heap_t *h = heap_with(markers, compaction, false);
    gc_thread_t *t = gc_thread_attach(h);
    if (!t) fail();
    enum { ROOTS = 3000 };
    void **roots = calloc(ROOTS, sizeof *roots);
    if (!roots) fail();
    gc_root_add_range(h, roots, ROOTS);
    wide_t *w = wide_new(t, n);
    gc_push_root(t, (void **)&w);
    for (size_t i = 0; i < n; i++) w = wide_fill(t, &w, i, 0);
    for (size_t i = 0; i < ROOTS; i++) roots[i] = mk(t, &T_PLAIN, 1000000000u + i, 0);
    rng_t rng = test_rng("wide range cuts", (uint64_t)markers * 4 + (uint64_t)compaction);
    for (int round = 0; round < 3; round++) {
        if (round == 1)
            for (size_t i = 0; i < n; i++)
                if (rng_below(&rng, 3) == 0) gc_write(t, w, &w->slots[i], NULL);
        if (round == 2)
            for (size_t i = 0; i < n; i++) gc_write(t, w, &w->slots[i], NULL);
        gc_collect(t);
        EXPECT_VERIFY(h);
        size_t live = 1 + ROOTS;
        wide_expect(w, 0, &live);
        for (size_t i = 0; i < ROOTS; i++) EXPECT_OBJ(roots[i], 1000000000u + i);
        size_t found = heap_objects(h);
        if (found != live)
            T_FAIL("markers %d, compaction %d, round %d: %zu objects in the heap, %zu reachable", markers,
                   compaction, round, found, live);
    }
    gc_pop_roots(t, 1);
    gc_root_remove(h, roots);
    free(roots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_gc_wide_range_exact_live_set(void **state)
{
    (void)state;
    TEST_START();
    /* (no multiple of the 128-slot chunk) */
    size_t n = scaled(300000, 30000) + 37;
    static const int compactions[] = { GC_COMPACT_NEVER, GC_COMPACT_ALWAYS };
    for (unsigned c = 0; c < 2; c++)
        for (int markers = 1; markers <= 4; markers *= 2) exact_run(markers, compactions[c], n);
}

/* Allocates young garbage until the heap collects once more (in
 * generational mode, a minor collection). */
static void collect_by_allocation(gc_heap_t *h, gc_thread_t *t)
{
    uint64_t before = stats_of(h).collections;
    for (size_t k = 0; stats_of(h).collections == before; k++) {
        (void)mk(t, &T_PLAIN, 0, 8);
        if (k > ((size_t)1 << 24)) T_FAIL("no collection after %zu allocations", k);
    }
}

/* Generational mode: an old wide object and a young one (promoted by the
 * second minor collection it survives) get young children at random
 * slots between minor collections; every child survives, and gc_verify
 * (which checks that an old object pointing to a young one is on a dirty
 * card) stays clean. */
static void generational_run(int markers, size_t n)
{
    gc_heap_t *h = heap_with(markers, GC_COMPACT_NEVER, true);
    gc_thread_t *t = gc_thread_attach(h);
    if (!t) fail();
    wide_t *old = wide_new(t, n);
    gc_push_root(t, (void **)&old);
    for (size_t i = 0; i < n; i += 2) old = wide_fill(t, &old, i, 0);
    gc_collect(t); /* full: old is old */
    wide_t *young = wide_new(t, n);
    gc_push_root(t, (void **)&young);
    for (size_t i = 1; i < n; i += 2) young = wide_fill(t, &young, i, 10 * n);
    rng_t rng = test_rng("wide range generational", (uint64_t)markers);
    for (int round = 0; round < 8; round++) {
        /* young children into both, at slots not filled yet, every other
         * round: the minor collection after a round without stores finds
         * them only through cards that the one before kept (a promoted
         * wide object's card, kept by its range entries) */
        for (int k = 0; k < 64 && round % 2 == 1; k++) {
            size_t i = (size_t)rng_below(&rng, n);
            if (old->slots[i] == NULL) old = wide_fill(t, &old, i, 0);
            i = (size_t)rng_below(&rng, n);
            if (young->slots[i] == NULL) young = wide_fill(t, &young, i, 10 * n);
        }
        collect_by_allocation(h, t);
        EXPECT_VERIFY(h);
        size_t live = 0;
        wide_expect(old, 0, &live);
        wide_expect(young, 10 * n, &live);
    }
    gc_collect(t);
    EXPECT_VERIFY(h);
    size_t live = 0;
    wide_expect(old, 0, &live);
    wide_expect(young, 10 * n, &live);
    gc_pop_roots(t, 2);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_gc_wide_range_generational(void **state)
{
    (void)state;
    TEST_START();
    size_t n = scaled(100000, 20000) + 37;
    for (int markers = 1; markers <= 2; markers++) generational_run(markers, n);
}

int main(void)
{
    mt_init("test_gc_wide_range");
    mt_env_ignore("MULCH_GC_MARKERS");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_wide_range_exact_live_set),
        T(test_gc_wide_range_generational),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
