/* test_gc_sizes.c — black-box tests of what objects of every size cost
 * (<mulch/gc.h>; docs/gc.md "Object sizes"): objects up to 256 KiB share
 * class spans, so a heap of medium objects (8 KiB to 256 KiB) holds at
 * most their class rounding plus a span tail more than their sizes, not a
 * 64 KiB block each; a large object's usable size is its size rounded up
 * to a page, all of it zeroed; a lone medium object takes a one-cell span;
 * a medium class whose preferred span does not
 * fit under max_heap still gets a one-cell span; objects of every size keep
 * their contents across collections (which move them when this test runs
 * with MULCH_GC_COMPACT=always, as ctest's _compact_always variant does).
 *
 * Deterministic: sizes come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is
 * printed at the start of each test and in every failure message.
 * MULCH_TEST_QUICK=1 (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367637a01)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

static const size_t k_medium_sizes[] = { 8 * KiB + 300, 12000, 20000, 33000, 40000, 65600, 100000, 200000 };
#define N_MEDIUM (sizeof k_medium_sizes / sizeof k_medium_sizes[0])

/* Every byte of the usable size is zero (gc_alloc's promise). */
static void expect_zeroed(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0) {
            T_FAIL("object %p is not zeroed at offset %zu of its %zu usable bytes", p, i, n);
            return;
        }
}

/* Many live objects of one medium size: heap_bytes stays within the class
 * rounding (1/8) plus span tails of their total, where a span per object
 * used to cost up to 7.7x. */
static void test_gc_medium_objects_share_spans(void **state)
{
    (void)state;
    TEST_START();
    const size_t count = scaled(200, 40);
    for (size_t k = 0; k < N_MEDIUM; k++) {
        size_t size = k_medium_sizes[k];
        gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
        gc_thread_t *t = gc_thread_attach(h);
        void **slots = calloc(count, sizeof *slots);
        EXPECT_NONNULL(slots);
        gc_root_add_range(h, slots, count);
        size_t nwords = (size - sizeof(tobj_t)) / 8;
        for (size_t i = 0; i < count; i++) {
            slots[i] = mk(t, &T_PLAIN, i, nwords);
            size_t usable = gc_size_of(slots[i]);
            EXPECT_GE(usable, size);
            EXPECT_LE(usable, size + size / 8 + 16);
        }
        gc_collect(t);
        gc_stats_t s = stats_of(h);
        size_t live = count * size;
        print_message("  %zu objects of %zu bytes: heap %zu bytes, %.3f x their size\n", count, size,
                      s.heap_bytes, (double)s.heap_bytes / (double)live);
        /* rounding up to 1/8, plus at most one partly used span per class
         * (and one block of small objects) */
        EXPECT_LE(s.heap_bytes, live + live / 8 + 2 * MiB + 64 * KiB);
        for (size_t i = 0; i < count; i++) EXPECT_OBJ(slots[i], i);
        EXPECT_VERIFY(h);
        gc_root_remove(h, slots);
        free(slots);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
}

/* Random sizes from 16 bytes to 600 KiB, random drops, collections: every
 * survivor keeps its contents, every new object is zeroed over its whole
 * usable size, and usable sizes follow the rules (class rounding below
 * 256 KiB, pages above). */
static void test_gc_mixed_sizes_keep_contents(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    enum { N = 256 };
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void **slots = calloc(N, sizeof *slots);
    EXPECT_NONNULL(slots);
    gc_root_add_range(h, slots, N);
    const size_t steps = scaled(3000, 600);
    for (size_t step = 0; step < steps; step++) {
        size_t i = (size_t)rng_below(&r, N);
        if (slots[i]) EXPECT_OBJ(slots[i], i);
        size_t size;
        switch (rng_below(&r, 4)) {
        case 0: size = sizeof(tobj_t) + (size_t)rng_below(&r, 2000); break;
        case 1: size = 8 * KiB + (size_t)rng_below(&r, 56 * KiB); break;
        case 2: size = 64 * KiB + (size_t)rng_below(&r, 192 * KiB); break;
        default: size = 256 * KiB + (size_t)rng_below(&r, 344 * KiB); break;
        }
        tobj_t *o = gc_alloc(t, &T_PLAIN, size);
        EXPECT_NONNULL(o);
        size_t usable = gc_size_of(o);
        EXPECT_GE(usable, size);
        if (size + 8 > 256 * KiB)
            EXPECT_EQ(usable, ((size + 8 + 4 * KiB - 1) & ~(4 * KiB - 1)) - 8);
        else
            EXPECT_LE(usable, size + size / 8 + 16);
        expect_zeroed(o, usable);
        o->magic = OBJ_MAGIC;
        o->id = i;
        o->nwords = (size - sizeof(tobj_t)) / 8;
        for (size_t w = 0; w < o->nwords; w++) o->words[w] = payload_word(i, w);
        slots[i] = o;
        if (step % 97 == 0) gc_collect(t);
    }
    gc_collect(t);
    for (size_t i = 0; i < N; i++)
        if (slots[i]) EXPECT_OBJ(slots[i], i);
    EXPECT_VERIFY(h);
    gc_root_remove(h, slots);
    free(slots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* A large object's usable size is its size plus the header rounded up to a
 * page, less the header; heap_bytes holds it in whole blocks, no more. */
static void test_gc_large_object_usable_size(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *big = NULL;
    gc_push_root(t, &big);
    const size_t sizes[] = { 256 * KiB, 300000, 1 * MiB + 1, 3 * MiB + 12345 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t before = stats_of(h).heap_bytes;
        big = gc_alloc(t, &T_RAW, sizes[k]);
        EXPECT_NONNULL(big);
        size_t usable = gc_size_of(big);
        EXPECT_EQ(usable, ((sizes[k] + 8 + 4 * KiB - 1) & ~(4 * KiB - 1)) - 8);
        expect_zeroed(big, usable);
        memset(big, 0x5a, usable);
        size_t grew = stats_of(h).heap_bytes - before;
        EXPECT_LE(grew, sizes[k] + 8 + 64 * KiB);
        gc_collect(t);
        EXPECT_EQ(((unsigned char *)big)[usable - 1], 0x5a);
        big = NULL;
        gc_collect(t);
    }
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* The first span of a medium class holds one cell: a lone medium object
 * costs its whole blocks, as a span of its own would, not a span of four
 * cells or more. */
static void test_gc_lone_medium_object_takes_one_cell(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *lone = NULL;
    gc_push_root(t, &lone);
    size_t before = stats_of(h).heap_bytes;
    lone = mk(t, &T_PLAIN, 7, (100000 - sizeof(tobj_t)) / 8);
    size_t grew = stats_of(h).heap_bytes - before;
    EXPECT_LE(grew, 2 * 64 * KiB); /* 100000 bytes: one 112 KiB cell in 2 blocks */
    gc_collect(t);
    EXPECT_OBJ(lone, 7);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* max_heap below a medium class's preferred span (4 cells or more): the
 * class falls back to a span of one cell, so the objects that fit are
 * allocated; the next one is refused quietly and the heap stays usable. */
static void test_gc_medium_span_fits_max_heap(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const size_t max = 600 * KiB, size = 200000;
    gc_heap_t *h = heap_new(64 * KiB, max, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *a = NULL, *b = NULL, *c = NULL;
    gc_push_root(t, &a);
    gc_push_root(t, &b);
    gc_push_root(t, &c);
    size_t nwords = (size - sizeof(tobj_t)) / 8;
    a = mk(t, &T_PLAIN, 1, nwords);
    b = mk(t, &T_PLAIN, 2, nwords);
    c = gc_alloc(t, &T_PLAIN, size);
    EXPECT_NULL(c);
    EXPECT_LE(stats_of(h).heap_bytes, max);
    EXPECT_OBJ(a, 1);
    EXPECT_OBJ(b, 2);
    b = NULL;
    c = mk(t, &T_PLAIN, 3, nwords); /* room again once b is dropped */
    EXPECT_OBJ(a, 1);
    EXPECT_OBJ(c, 3);
    EXPECT_LE(stats_of(h).heap_bytes, max);
    EXPECT_NO_REPORTS(r0);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 3);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_sizes");
    mt_env_ignore_policy();
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_medium_objects_share_spans),
        T(test_gc_mixed_sizes_keep_contents),
        T(test_gc_large_object_usable_size),
        T(test_gc_lone_medium_object_takes_one_cell),
        T(test_gc_medium_span_fits_max_heap),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
