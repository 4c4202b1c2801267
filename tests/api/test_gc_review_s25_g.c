/* test_gc_review_s25_g.c — attacks on range entries (gc/mark.c,
 * range_defer): a wide object's gc_trace_range is marked a chunk at a
 * time from the mark stack, so every phase that traces must drain them
 * and every way of reading slots must still see them all.
 *
 * Checked, each with 1, 2 and 4 markers (and, as a test_gc_* file, with
 * compaction always and in generational mode):
 *   - gc_verify (generational: the only mode where it reads slots)
 *     reports a young object stored without gc_write deep inside an old
 *     wide object (its checking tracer traces ranges at once);
 *   - a trace function that reports overlapping ranges, one starting
 *     mid-object and ending before the object's end, keeps exactly what
 *     they cover;
 *   - a wide array of weak references and one of ephemerons: targets and
 *     values of live keys survive intact, dead ones read NULL;
 *   - an unreachable wide object with a finalizer: the finalizer finds
 *     every referent intact (the finalizer-reachability marking drained
 *     the range entries), and a pinned wide object stays where it is.
 *
 * Deterministic: random choices come from MULCH_TEST_SEED (printed). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7332356777696465)
#define MULCH_TEST_GC_OBJECTS 1
#include <stdbool.h>

#include <mulch/gc.h>

#include "mulch_test.h"
#include "gc_wide_test.h"

/* Two overlapping ranges: [n/4, 3n/4) and [n/2, n - 7); the first n/4
 * slots and the last 7 are not traced (they must not keep anything). */
static void trace_overlap(void *obj, gc_tracer_t *tracer)
{
    wide_t *w = obj;
    gc_trace_range(tracer, w->slots + w->n / 4, w->n / 2);
    gc_trace_range(tracer, w->slots + w->n / 2, w->n - 7 - w->n / 2);
}
static const gc_type_t T_OVERLAP = { "test.overlap", trace_overlap, NULL };
static bool overlap_traced(size_t n, size_t i) { return i >= n / 4 && i < n - 7; }

/* Finalizer of a wide object: every referent (id base + i) intact. */
static _Atomic size_t wide_finalized, wide_final_damaged;
static void finalize_wide(void *obj)
{
    wide_t *w = obj;
    for (size_t i = 0; i < w->n; i++) {
        const tobj_t *o = w->slots[i];
        if (obj_problem(o, 5000000u + i) != NULL) atomic_fetch_add(&wide_final_damaged, 1);
    }
    atomic_fetch_add(&wide_finalized, 1);
}
static const gc_type_t T_WIDE_FIN = { "test.wide_fin", trace_wide, finalize_wide };

static size_t wide_n(void) { return scaled(30000, 5000) + 37; }

static gc_heap_t *heap_with(int markers)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = markers;
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) fail();
    return h;
}

static wide_t *wide_new(gc_thread_t *t, const gc_type_t *type, size_t n)
{
    wide_t *w = gc_alloc(t, type, sizeof(wide_t) + n * sizeof(void *));
    if (!w) fail();
    w->n = n;
    return w;
}

/* Fills every slot of the rooted *wp with a leaf of id base + i. */
static void wide_fill_all(gc_thread_t *t, wide_t **wp, uint64_t base)
{
    for (size_t i = 0; i < (*wp)->n; i++) {
        void *leaf = mk(t, &T_PLAIN, base + i, 1);
        gc_write(t, *wp, &(*wp)->slots[i], leaf);
    }
}

/* gc_verify checks slots in generational mode only (verify_barriers: an
 * old object on a clean card must not point to a young one): a young
 * object stored without gc_write deep in an old wide object is reported. */
static void verify_finds_unbarriered_slot(int markers, size_t n)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = markers;
    o.generational = true;
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) fail();
    gc_thread_t *t = gc_thread_attach(h);
    if (!t) fail();
    wide_t *w = wide_new(t, &T_WIDE, n);
    gc_push_root(t, (void **)&w);
    wide_fill_all(t, &w, 0);
    gc_collect(t); /* full: w and its leaves are old, w's card clean */
    EXPECT_VERIFY(h);
    size_t at = n > 200 ? n - 100 : n / 2; /* deep in the range: in a deferred chunk */
    void *young = mk(t, &T_PLAIN, 9000000u, 1);
    w->slots[at] = young; /* no gc_write */
    unsigned long before = rec_count();
    size_t problems = gc_verify(h);
    if (problems == 0 || rec_count() == before)
        T_FAIL("markers %d: gc_verify missed a young object stored without gc_write at slot %zu of %zu", markers,
               at, n);
    gc_write(t, w, &w->slots[at], young);
    EXPECT_VERIFY(h);
    gc_collect(t);
    EXPECT_OBJ(w->slots[at], 9000000u);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_gc_review_s25_g_verify_wide(void **state)
{
    (void)state;
    TEST_START();
    verify_finds_unbarriered_slot(1, 10);
    for (int markers = 1; markers <= 4; markers *= 2) verify_finds_unbarriered_slot(markers, wide_n());
}

static void count_object(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj;
    (void)type;
    (void)size;
    ++*(size_t *)ctx;
}

static void overlap_run(int markers)
{
    gc_heap_t *h = heap_with(markers);
    gc_thread_t *t = gc_thread_attach(h);
    if (!t) fail();
    size_t n = wide_n();
    wide_t *w = wide_new(t, &T_OVERLAP, n);
    gc_push_root(t, (void **)&w);
    wide_fill_all(t, &w, 0);
    /* the untraced slots' leaves are garbage: clear them once collected
     * (they would dangle), and count what stays */
    gc_collect(t);
    size_t live = 1;
    for (size_t i = 0; i < n; i++) {
        if (overlap_traced(n, i)) {
            EXPECT_OBJ(w->slots[i], i);
            live++;
        } else {
            w->slots[i] = NULL;
        }
    }
    size_t found = 0;
    gc_heap_walk(h, count_object, &found);
    if (found != live) T_FAIL("markers %d: %zu objects in the heap, %zu traced", markers, found, live);
    gc_collect(t);
    EXPECT_VERIFY(h);
    for (size_t i = n / 4; i < n - 7; i++) EXPECT_OBJ(w->slots[i], i);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_gc_review_s25_g_overlapping_ranges(void **state)
{
    (void)state;
    TEST_START();
    for (int markers = 1; markers <= 4; markers *= 2) overlap_run(markers);
}

/* Wide arrays of weak references and of ephemerons, their targets/keys
 * kept by a third wide array at random indices only. */
static void weak_run(int markers)
{
    gc_heap_t *h = heap_with(markers);
    gc_thread_t *t = gc_thread_attach(h);
    if (!t) fail();
    size_t n = scaled(8000, 2000) + 37;
    rng_t rng = test_rng("weak wide", (uint64_t)markers);
    wide_t *keep = wide_new(t, &T_WIDE, n), *weaks = NULL, *ephs = NULL;
    gc_push_root(t, (void **)&keep);
    gc_push_root(t, (void **)&weaks);
    gc_push_root(t, (void **)&ephs);
    weaks = wide_new(t, &T_WIDE, n);
    ephs = wide_new(t, &T_WIDE, n);
    bool *kept = calloc(n, sizeof *kept);
    if (!kept) fail();
    for (size_t i = 0; i < n; i++) {
        void *target = mk(t, &T_PLAIN, 1000000u + i, 1);
        gc_push_root(t, &target);
        void *value = mk(t, &T_PLAIN, 3000000u + i, 1);
        gc_push_root(t, &value);
        void *weak = gc_weak_new(t, target);
        if (!weak) fail();
        gc_write(t, weaks, &weaks->slots[i], weak);
        void *eph = gc_ephemeron_new(t, target, value);
        if (!eph) fail();
        gc_write(t, ephs, &ephs->slots[i], eph);
        kept[i] = rng_below(&rng, 2) == 0;
        if (kept[i]) gc_write(t, keep, &keep->slots[i], target);
        gc_pop_roots(t, 2);
    }
    for (int round = 0; round < 2; round++) {
        gc_collect(t);
        EXPECT_VERIFY(h);
        for (size_t i = 0; i < n; i++) {
            void *target = gc_weak_get(weaks->slots[i]);
            void *key = gc_ephemeron_key(ephs->slots[i]);
            void *value = gc_ephemeron_value(ephs->slots[i]);
            if (kept[i]) {
                EXPECT_OBJ(target, 1000000u + i);
                if (key != target) T_FAIL("markers %d: ephemeron %zu key %p, target %p", markers, i, key, target);
                EXPECT_OBJ(value, 3000000u + i);
            } else if (target != NULL || key != NULL || value != NULL) {
                T_FAIL("markers %d: slot %zu dead target kept: weak %p key %p value %p", markers, i, target, key,
                       value);
            }
        }
    }
    free(kept);
    gc_pop_roots(t, 3);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_gc_review_s25_g_weak_and_ephemeron_arrays(void **state)
{
    (void)state;
    TEST_START();
    for (int markers = 1; markers <= 4; markers *= 2) weak_run(markers);
}

/* An unreachable finalizable wide object: its finalizer reads every
 * referent intact. A pinned wide object beside it stays put. */
static void finalizer_run(int markers)
{
    gc_heap_t *h = heap_with(markers);
    gc_thread_t *t = gc_thread_attach(h);
    if (!t) fail();
    size_t n = wide_n();
    atomic_store(&wide_finalized, 0);
    atomic_store(&wide_final_damaged, 0);
    wide_t *dying = wide_new(t, &T_WIDE_FIN, n), *pinned = NULL;
    gc_push_root(t, (void **)&dying);
    gc_push_root(t, (void **)&pinned);
    wide_fill_all(t, &dying, 5000000u);
    pinned = wide_new(t, &T_WIDE, n);
    wide_fill_all(t, &pinned, 7000000u);
    gc_pin(h, pinned);
    wide_t *pinned_at = pinned;
    dying = NULL;
    for (int round = 0; round < 3; round++) {
        gc_collect(t);
        EXPECT_VERIFY(h);
        if (pinned != pinned_at) T_FAIL("markers %d: pinned wide object moved", markers);
        for (size_t i = 0; i < n; i++) EXPECT_OBJ(pinned->slots[i], 7000000u + i);
    }
    if (atomic_load(&wide_finalized) != 1)
        T_FAIL("markers %d: wide finalizer ran %zu times", markers, atomic_load(&wide_finalized));
    if (atomic_load(&wide_final_damaged) != 0)
        T_FAIL("markers %d: finalizer found %zu damaged referents", markers, atomic_load(&wide_final_damaged));
    gc_unpin(h, pinned);
    gc_pop_roots(t, 2);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_gc_review_s25_g_finalized_and_pinned(void **state)
{
    (void)state;
    TEST_START();
    for (int markers = 1; markers <= 4; markers *= 2) finalizer_run(markers);
}

int main(void)
{
    mt_init("test_gc_review_s25_g");
    mt_env_ignore("MULCH_GC_MARKERS");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_review_s25_g_verify_wide),
        T(test_gc_review_s25_g_overlapping_ranges),
        T(test_gc_review_s25_g_weak_and_ephemeron_arrays),
        T(test_gc_review_s25_g_finalized_and_pinned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
