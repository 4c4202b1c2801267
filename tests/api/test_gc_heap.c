/* test_gc_heap.c — black-box tests of the collector's public contract
 * (<mulch/gc.h>; docs: shared/API.md "GC" and "Errors and misuse"), the heap
 * and its objects: userdata and gc_thread_current, gc_external_alloc and the
 * collection trigger, zeroed and aligned memory, object queries (type, size,
 * identity hash), statistics and gc_verify after a random mix of operations.
 *
 * Death is observed through finalizers that record the id of the object
 * they run for; objects are only reached through rooted slots across GC
 * points (objects may move), except pinned ones.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b01)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

/* ------------------------------------------------------------------------ */
/* Heap lifecycle, userdata, gc_thread_current                               */

static void *other_thread_current(void *arg)
{
    gc_heap_t *h = arg;
    gc_thread_t *before = gc_thread_current(h);
    gc_thread_t *t = gc_thread_attach(h);
    gc_thread_t *during = gc_thread_current(h);
    gc_thread_detach(t);
    gc_thread_t *after = gc_thread_current(h);
    if (before != NULL) AFAIL("gc_thread_current before attach on a new thread = %p", (void *)before);
    if (t == NULL) AFAIL("gc_thread_attach on a second thread returned NULL");
    if (during != t) AFAIL("gc_thread_current = %p, attach returned %p", (void *)during, (void *)t);
    if (after != NULL) AFAIL("gc_thread_current after detach = %p", (void *)after);
    return t;
}

static void test_gc_heap_userdata_and_thread_current(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = gc_heap_create(NULL);
    EXPECT_NONNULL(h);
    gc_heap_t *h2 = heap_new(0, 0, GC_COMPACT_AUTO);

    int token1, token2;
    gc_heap_set_userdata(h, &token1);
    gc_heap_set_userdata(h2, &token2);
    EXPECT_PTR_EQ(gc_heap_get_userdata(h), &token1);
    EXPECT_PTR_EQ(gc_heap_get_userdata(h2), &token2);
    gc_heap_set_userdata(h, NULL);
    EXPECT_NULL(gc_heap_get_userdata(h));
    EXPECT_PTR_EQ(gc_heap_get_userdata(h2), &token2);

    EXPECT_NULL(gc_thread_current(h));
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    EXPECT_NULL(gc_thread_current(h2));

    gc_thread_t *t2 = gc_thread_attach(h2);
    EXPECT_NONNULL(t2);
    if (t2 == t) T_FAIL("one thread attached to two heaps got the same gc_thread_t %p", (void *)t);
    EXPECT_PTR_EQ(gc_thread_current(h2), t2);
    EXPECT_PTR_EQ(gc_thread_current(h), t);

    /* Another OS thread sees NULL until it attaches. */
    pthread_t th;
    void *their = NULL;
    gc_enter_blocking(t);
    EXPECT_EQ(pthread_create(&th, NULL, other_thread_current, h), 0);
    EXPECT_EQ(pthread_join(th, &their), 0);
    gc_leave_blocking(t);
    EXPECT_NO_ASYNC_FAILURES();
    if (their == (void *)t) T_FAIL("two OS threads got the same gc_thread_t %p", their);
    EXPECT_PTR_EQ(gc_thread_current(h), t);

    /* Objects work in both heaps; the heaps are independent. */
    void *a = NULL, *b = NULL;
    gc_root_add(h, &a);
    gc_root_add(h2, &b);
    a = mk(t, &T_PLAIN, 1, 3);
    b = mk(t2, &T_PLAIN, 2, 5);
    gc_collect(t);
    gc_collect(t2);
    EXPECT_OBJ(a, 1);
    EXPECT_OBJ(b, 2);
    gc_root_remove(h, &a);
    gc_root_remove(h2, &b);

    gc_thread_detach(t2);
    EXPECT_NULL(gc_thread_current(h2));
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    gc_thread_detach(t);
    EXPECT_NULL(gc_thread_current(h));

    /* Re-attaching after a detach works. */
    t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    a = mk(t, &T_PLAIN, 3, 1);
    EXPECT_OBJ(a, 3);
    gc_collect(t);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);

    gc_heap_destroy(h);
    gc_heap_destroy(h2);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* External memory and the collection trigger                                */

/* gc_external_alloc counts towards the collection trigger. */
static void test_gc_external_alloc_triggers_collection(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = NULL;
    gc_root_add(h, &keep);
    keep = mk(t, &T_PLAIN, 1, 2);
    gc_collect(t);
    gc_stats_t s0 = stats_of(h);
    gc_external_alloc(h, (ptrdiff_t)(1024 * MiB));
    /* Enough small allocation to pass through the allocator's slow path
     * many times. */
    for (int k = 0; k < 40000; k++) {
        void *p = gc_alloc(t, &T_RAW, 64);
        EXPECT_NONNULL(p);
    }
    gc_stats_t s1 = stats_of(h);
    print_message("  collections %ju -> %ju with 1 GiB of external memory\n",
                  (uintmax_t)s0.collections, (uintmax_t)s1.collections);
    EXPECT_GE(s1.collections, s0.collections + 1);
    gc_external_alloc(h, -(ptrdiff_t)(1024 * MiB));
    EXPECT_OBJ(keep, 1);
    gc_root_remove(h, &keep);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* Zeroed, aligned memory; object queries                                    */

static size_t rand_size(rng_t *r)
{
    switch (rng_below(r, 10)) {
    case 0: return 1 + (size_t)rng_below(r, 16);
    case 1: return 64 * KiB + (size_t)rng_below(r, 300 * KiB);
    case 2: return 4 * KiB + (size_t)rng_below(r, 12 * KiB);
    default: return 1 + (size_t)rng_below(r, 1024);
    }
}

static void test_gc_alloc_zeroed_aligned(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(256 * KiB, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    const size_t n = scaled(3000, 600);
    void **keep = calloc(n, sizeof *keep);
    size_t *sizes = calloc(n, sizeof *sizes);
    EXPECT_NONNULL(keep);
    EXPECT_NONNULL(sizes);
    gc_root_add_range(h, keep, n);
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < n; i++) {
            size_t sz = (round == 0 && i < 1024) ? i + 1 : rand_size(&r);
            if (i == n - 1) sz = 1 * MiB + 13;
            unsigned char *p = gc_alloc(t, &T_RAW, sz);
            if (!p) T_FAIL("gc_alloc(raw, %zu) returned NULL (round %d, #%zu)", sz, round, i);
            p = launder(p);
            if (((uintptr_t)p & 7u) != 0) T_FAIL("gc_alloc(%zu) = %p is not 8-aligned", sz, (void *)p);
            for (size_t k = 0; k < sz; k++)
                if (p[k] != 0)
                    T_FAIL("gc_alloc(%zu) = %p: byte %zu is 0x%02x, not zero (round %d)", sz,
                           (void *)p, k, p[k], round);
            EXPECT_PTR_EQ(gc_type_of(p), &T_RAW);
            size_t us = gc_size_of(p);
            if (us < sz) T_FAIL("gc_size_of(%p) = %zu < requested %zu", (void *)p, us, sz);
            memset(p, 0xA5 ^ round, sz);           /* dirty it for the next round */
            keep[i] = p;
            sizes[i] = sz;
        }
        /* Contents survive the collections the allocations made. */
        for (size_t i = 0; i < n; i++) {
            const unsigned char *p = launder(keep[i]);
            if (p[0] != (0xA5 ^ round) || p[sizes[i] - 1] != (0xA5 ^ round))
                T_FAIL("object %zu (%zu bytes) changed", i, sizes[i]);
        }
        memset(keep, 0, n * sizeof *keep);
        gc_collect(t);
    }
    gc_root_remove(h, keep);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(keep);
    free(sizes);
    EXPECT_NO_REPORTS(r0);
}

static void test_gc_type_size_identity(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        enum { N = 200 };
        void *objs[N] = { 0 };
        uintptr_t hash[N];
        size_t size[N];
        const gc_type_t *type[N];
        gc_root_add_range(h, objs, N);
        static const gc_type_t *const types[3] = { &T_PLAIN, &T_FIN, &T_RAW };
        for (size_t i = 0; i < N; i++) {
            type[i] = types[i % 3];
            size_t nw = (size_t)rng_below(&r, 40);
            if (type[i] == &T_RAW) {
                size[i] = 1 + (size_t)rng_below(&r, 700);
                objs[i] = gc_alloc(t, &T_RAW, size[i]);
                EXPECT_NONNULL(objs[i]);
            } else {
                size[i] = tobj_size(nw);
                objs[i] = mk(t, type[i], 1000 + i, nw);
            }
            hash[i] = gc_identity_hash(objs[i]);
            EXPECT_EQ(gc_identity_hash(objs[i]), hash[i]);
            if (i % 2) (void)mk(t, &T_PLAIN, 3000, 8);   /* garbage between */
        }
        for (int round = 0; round < 4; round++) {
            for (int k = 0; k < 200; k++) (void)mk(t, &T_PLAIN, 3000, (size_t)k % 30);
            gc_collect(t);
            for (size_t i = 0; i < N; i++) {
                if (gc_identity_hash(objs[i]) != hash[i])
                    T_FAIL("identity hash of object %zu changed: %#jx -> %#jx (round %d)", i,
                           (uintmax_t)hash[i], (uintmax_t)gc_identity_hash(objs[i]), round);
                if (gc_type_of(objs[i]) != type[i])
                    T_FAIL("gc_type_of(object %zu) = %p, expected %s %p", i,
                           (const void *)gc_type_of(objs[i]), type[i]->name, (const void *)type[i]);
                EXPECT_GE(gc_size_of(objs[i]), size[i]);
                if (type[i] != &T_RAW) EXPECT_OBJ(objs[i], 1000 + i);
            }
            /* Drop a few each round. */
            for (size_t i = (size_t)round; i < N; i += 7)
                if (type[i] == &T_RAW) objs[i] = NULL, type[i] = NULL;
            for (size_t i = 0; i < N; i++)
                if (!type[i]) {
                    type[i] = &T_RAW;
                    size[i] = 8;
                    objs[i] = gc_alloc(t, &T_RAW, 8);
                    EXPECT_NONNULL(objs[i]);
                    hash[i] = gc_identity_hash(objs[i]);
                }
        }
        EXPECT_VERIFY(h);
        gc_root_remove(h, objs);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */

static void test_gc_stats(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    gc_stats_t s0 = stats_of(h);
    EXPECT_EQ(s0.bytes_allocated, 0);
    EXPECT_EQ(s0.objects_finalized, 0);
    EXPECT_GE(s0.pause_ns_total, s0.pause_ns_max);
    EXPECT_GE(s0.heap_bytes_peak, s0.heap_bytes);

    const size_t n = scaled(4000, 1000);
    void **keep = calloc(n, sizeof *keep);
    EXPECT_NONNULL(keep);
    gc_root_add_range(h, keep, n);
    size_t total = 0, live = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nw = 8 + (size_t)rng_below(&r, 56);         /* 96..536 bytes */
        int fin = i % 4 == 0;
        void *o = mk(t, fin ? &T_FIN : &T_PLAIN, i % MAX_IDS, nw);
        total += tobj_size(nw);
        if (i % 2 == 0) {
            keep[i] = o;
            live += tobj_size(nw);
        }
    }
    gc_stats_t s1 = stats_of(h);
    EXPECT_GE(s1.bytes_allocated - s0.bytes_allocated, total);
    EXPECT_GE(s1.collections, s0.collections);
    gc_collect(t);
    gc_stats_t s2 = stats_of(h);
    EXPECT_GE(s2.collections, s1.collections + 1);
    EXPECT_EQ(s2.bytes_allocated, s1.bytes_allocated);
    /* Every finalizable object (i % 4 == 0) is live, so nothing dead is kept
     * back for finalization and live_bytes is the kept half. */
    EXPECT_GE(s2.live_bytes, live);
    EXPECT_LE(s2.live_bytes, 2 * live);
    EXPECT_GE(s2.heap_bytes, s2.live_bytes);
    EXPECT_GE(s2.pause_ns_total, s2.pause_ns_max);
    EXPECT_GE(s2.pause_ns_total, s1.pause_ns_total);
    EXPECT_LE(s2.mark_ns_total + s2.sweep_ns_total, s2.pause_ns_total);
    if (s2.mark_ns_total == 0) T_FAIL("mark_ns_total is 0 after %ju collections", (uintmax_t)s2.collections);
    EXPECT_LE(s2.collections_minor, s2.collections);
    if (s2.pause_ns_max == 0) T_FAIL("pause_ns_max is 0 after %ju collections", (uintmax_t)s2.collections);
    EXPECT_EQ(s2.objects_finalized, 0);

    /* Drop every live finalizable object: objects_finalized counts them. */
    size_t nfin = 0;
    for (size_t i = 0; i < n; i += 4) {
        keep[i] = NULL;
        nfin++;
    }
    live = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i]) live += tobj_size(((tobj_t *)keep[i])->nwords);
    gc_collect(t);
    gc_stats_t s3 = stats_of(h);
    EXPECT_EQ(atomic_load(&g_fin_total), nfin);
    EXPECT_EQ(s3.objects_finalized, nfin);
    EXPECT_GE(s3.collections, s2.collections + 1);
    gc_collect(t);               /* reclaims the finalized ones */
    gc_stats_t s4 = stats_of(h);
    EXPECT_GE(s4.live_bytes, live);
    EXPECT_LE(s4.live_bytes, 2 * live);
    EXPECT_EQ(s4.objects_finalized, nfin);

    /* Allocation is counted exactly, whatever the size. */
    gc_stats_t s5 = stats_of(h);
    void *big = gc_alloc(t, &T_RAW, 3 * MiB + 5);
    EXPECT_NONNULL(big);
    gc_stats_t s6 = stats_of(h);
    EXPECT_GE(s6.bytes_allocated - s5.bytes_allocated, 3 * MiB + 5);
    EXPECT_GE(s6.heap_bytes, 3 * MiB);
    EXPECT_GE(s6.heap_bytes_peak, s6.heap_bytes);
    EXPECT_GE(s6.heap_bytes_peak, s2.heap_bytes_peak);

    /* Everything dropped: live_bytes falls to (almost) nothing. */
    memset(keep, 0, n * sizeof *keep);
    gc_collect(t);
    gc_stats_t s7 = stats_of(h);
    EXPECT_LE(s7.live_bytes, 16 * KiB);
    EXPECT_GE(s7.heap_bytes, s7.live_bytes);
    EXPECT_GE(s7.collections, s4.collections + 1);
    /* the large object's span went back: the heap shrank, its peak stays */
    EXPECT_LT(s7.heap_bytes, s6.heap_bytes);
    EXPECT_GE(s7.heap_bytes_peak, s6.heap_bytes);
    print_message("  collections %ju, allocated %ju, heap %zu, live %zu, pause total %ju ns max %ju ns\n",
                  (uintmax_t)s7.collections, (uintmax_t)s7.bytes_allocated, s7.heap_bytes,
                  s7.live_bytes, (uintmax_t)s7.pause_ns_total, (uintmax_t)s7.pause_ns_max);
    gc_root_remove(h, keep);
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(keep);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* gc_verify through a random mix of operations                              */

static void test_gc_verify_after_operations(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(512 * KiB, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_VERIFY(h);                      /* empty heap */
    enum { R = 32 };
    void *roots[R] = { 0 };
    gc_root_add_range(h, roots, R);
    void *pinned[4] = { 0 };
    size_t steps = scaled(20000, 4000);
    for (size_t s = 0; s < steps; s++) {
        size_t i = (size_t)rng_below(&r, R), j = (size_t)rng_below(&r, R);
        switch (rng_below(&r, 12)) {
        case 0: case 1: case 2: case 3:
            roots[i] = mk(t, rng_below(&r, 2) ? &T_FIN : &T_PLAIN, 1000000, (size_t)rng_below(&r, 20));
            break;
        case 4: case 5:
            if (roots[i]) set_slot(t, roots[i], (size_t)rng_below(&r, NSLOTS), roots[j]);
            break;
        case 6:
            roots[i] = NULL;
            break;
        case 7: {
            void *raw = gc_alloc(t, &T_RAW, 1 + (size_t)rng_below(&r, 5000));
            EXPECT_NONNULL(raw);
            break;
        }
        case 8: {
            size_t k = (size_t)rng_below(&r, 4);
            if (pinned[k]) {
                gc_unpin(h, pinned[k]);
                pinned[k] = NULL;
            } else if (roots[i]) {
                pinned[k] = roots[i];
                gc_pin(h, pinned[k]);
            }
            break;
        }
        case 9:
            if (rng_below(&r, 20) == 0) gc_collect(t);
            break;
        default:
            if (rng_below(&r, 50) == 0) EXPECT_VERIFY(h);
            break;
        }
        for (size_t k = 0; k < 4; k++)
            if (pinned[k]) EXPECT_OBJ(pinned[k], 1000000);
    }
    EXPECT_VERIFY(h);
    gc_collect(t);
    EXPECT_VERIFY(h);
    for (size_t k = 0; k < 4; k++)
        if (pinned[k]) gc_unpin(h, pinned[k]);
    gc_root_remove(h, roots);
    gc_collect(t);
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_heap");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_heap_userdata_and_thread_current),
        T(test_gc_external_alloc_triggers_collection),
        T(test_gc_alloc_zeroed_aligned),
        T(test_gc_type_size_identity),
        T(test_gc_stats),
        T(test_gc_verify_after_operations),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
