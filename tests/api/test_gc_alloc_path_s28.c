/* test_gc_alloc_path_s28.c — what session 28's shorter allocation path
 * keeps (include/mulch/gc.h's inline gc_alloc, gc/alloc.c's bin_load).
 *
 *   - the typed cache's slot of (type, granule): one type's 32 granules take
 *     32 different slots below 64, their second places (slot ^ 32) none of
 *     them, and types 1 KiB or 24 bytes apart spread over the cache (the
 *     first form of the shorter hash, without `>> 3`, did not);
 *   - bytes_allocated stays exact through the inline path's one-instruction
 *     count, for this thread and for another thread read while it runs;
 *   - every cell handed out is zeroed: cells of whole free words (one
 *     memset) and of words a collection left partly used (run by run).
 *
 * Deterministic: addresses and the kept pattern come from splitmix64 seeded
 * from MULCH_TEST_SEED or the default below; the seed is printed at the
 * start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x73323863616c6c6f)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>

#include "mulch_test.h"

typedef struct pair {
    void    *next;
    uint64_t payload;
} pair_t; /* 16 bytes: a headerless 16-byte cell */

static void pair_trace(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, &((pair_t *)obj)->next);
}
static const gc_type_t T_PAIR = { "s28.pair", pair_trace, NULL };
static const gc_type_t T_LEAF = { "s28.leaf", NULL, NULL };

static void test_typed_slot_spreads(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    for (int k = 0; k < 1000; k++) {
        uintptr_t address = (uintptr_t)(rng_next(&r) & UINT64_C(0x00007ffffffffff8));
        const gc_type_t *type = (const gc_type_t *)address;
        uint64_t taken = 0;
        for (size_t g = 0; g < 32; g++) {
            size_t slot = mulch_gc_typed_slot_(type, g);
            EXPECT_LT(slot, (size_t)MULCH_GC_TYPED_CACHE_);
            EXPECT_EQ((taken >> slot) & 1u, 0);
            taken |= UINT64_C(1) << slot;
        }
        for (size_t g = 0; g < 32; g++) EXPECT_EQ((taken >> (mulch_gc_typed_slot_(type, g) ^ 32u)) & 1u, 0);
    }
    /* 64 types at a fixed stride (per-class records 1 KiB apart, static
     * descriptors 24 bytes apart) must not crowd into a few slots (about
     * 51 of 64 on average; a hash without the >> 3 gave 17 and 21) */
    static const uintptr_t strides[] = { 1024, 24 };
    for (size_t s = 0; s < 2; s++) {
        uintptr_t base = (uintptr_t)(rng_next(&r) & UINT64_C(0x00007ffffff00000));
        uint64_t used = 0;
        for (uintptr_t i = 0; i < 64; i++)
            used |= UINT64_C(1) << mulch_gc_typed_slot_((const gc_type_t *)(base + i * strides[s]), 1);
        EXPECT_GE((uint64_t)__builtin_popcountll(used), 40);
    }
}

static gc_heap_t *heap_mode(void)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_heap = 256 * KiB;
    gc_heap_t *h = gc_heap_create(&o); /* MULCH_GC_GENERATIONAL / _COMPACT from the test variant */
    EXPECT_NONNULL(h);
    return h;
}

static void test_inline_count_exact(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_mode();
    gc_thread_t *t = gc_thread_attach(h);
    uint64_t before = stats_of(h).bytes_allocated;
    size_t n = scaled(200000, 20000);
    for (size_t i = 0; i < n; i++) {
        pair_t *p = gc_alloc(t, &T_PAIR, sizeof *p);
        EXPECT_NONNULL(p);
    }
    EXPECT_EQ(stats_of(h).bytes_allocated - before, (uint64_t)n * 16);
    gc_thread_detach(t);
    EXPECT_EQ(stats_of(h).bytes_allocated - before, (uint64_t)n * 16);
    gc_heap_destroy(h);
}

struct counting_worker {
    gc_heap_t      *heap;
    size_t          n;
    _Atomic size_t  done;
};

static void *counting_worker_run(void *arg)
{
    struct counting_worker *w = arg;
    gc_thread_t *t = gc_thread_attach(w->heap);
    if (t == NULL) return NULL;
    for (size_t i = 0; i < w->n; i++) {
        if (gc_alloc(t, &T_LEAF, 16) == NULL) AFAIL("gc_alloc returned NULL at %zu", i);
        atomic_store_explicit(&w->done, i + 1, memory_order_release);
    }
    gc_thread_detach(t);
    return NULL;
}

/* Another thread's count, read while it allocates, never runs ahead of the
 * allocations it has finished nor falls behind them. */
static void test_count_read_while_allocating(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_mode();
    gc_thread_t *t = gc_thread_attach(h);
    uint64_t before = stats_of(h).bytes_allocated;
    struct counting_worker w = { h, scaled(100000, 10000), 0 };
    pthread_t thread;
    gc_enter_blocking(t);
    EXPECT_EQ(pthread_create(&thread, NULL, counting_worker_run, &w), 0);
    for (;;) {
        size_t done = atomic_load_explicit(&w.done, memory_order_acquire);
        uint64_t counted = stats_of(h).bytes_allocated - before;
        size_t after = atomic_load_explicit(&w.done, memory_order_acquire);
        EXPECT_GE(counted, (uint64_t)done * 16);
        EXPECT_LE(counted, (uint64_t)(after + 1) * 16);
        if (done == w.n) break;
    }
    pthread_join(thread, NULL);
    gc_leave_blocking(t);
    EXPECT_EQ(stats_of(h).bytes_allocated - before, (uint64_t)w.n * 16);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* Cells come back zeroed whether their word was wholly free (one memset)
 * or left partly used by a collection (a run at a time). */
static void test_cells_zeroed(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    gc_heap_t *h = heap_mode();
    gc_thread_t *t = gc_thread_attach(h);
    size_t n = scaled(20000, 4000);
    pair_t **kept = calloc(n, sizeof *kept);
    EXPECT_NONNULL(kept);
    gc_root_add_range(h, (void **)kept, n);
    for (int round = 0; round < 6; round++) {
        for (size_t i = 0; i < n; i++) {
            pair_t *p = gc_alloc(t, &T_PAIR, sizeof *p);
            EXPECT_NONNULL(p);
            if (p->next != NULL || p->payload != 0)
                T_FAIL("round %d: cell %zu not zeroed (%p, %" PRIx64 ")", round, i, p->next, p->payload);
            p->payload = ~UINT64_C(0);
            p->next = (void *)(uintptr_t)1; /* a tagged immediate: skipped by the tracer */
            /* round 0..2: keep about half at random (partly used words);
             * later rounds: keep nothing (whole free words) */
            kept[i] = round < 3 && (rng_next(&r) & 1) ? p : NULL;
        }
        gc_collect(t);
    }
    EXPECT_VERIFY(h);
    gc_root_remove(h, (void **)kept);
    free(kept);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_alloc_path_s28");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typed_slot_spreads),
        cmocka_unit_test(test_inline_count_exact),
        cmocka_unit_test_setup_teardown(test_count_read_while_allocating, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_cells_zeroed, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
