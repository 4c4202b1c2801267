/* test_gc_review_s15_gen.c — coverage the session-15 review (D) of the
 * generational mode and conservative scanning added; it found no bug
 * there. The write barrier on parents other than small headered objects
 * (a large object: one cell, its card table's first card only; a medium
 * object in a multi-block span), young children kept through several
 * minor collections (aging, kept cards), and a conservative word pointing
 * into a large object's later blocks, with and without generational mode.
 *
 * Deterministic (no randomness; MULCH_TEST_SEED only labels the run). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367631501)
#define MULCH_TEST_GC_OBJECTS 1
#include <stdbool.h>

#include <mulch/gc.h>

#include "mulch_test.h"

static gc_heap_t *review_heap(int generational, int conservative, int compaction)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = generational;
    o.conservative_stack = conservative;
    o.compaction = compaction;
    o.initial_heap = 64 * KiB; /* allocation collects often */
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) fail();
    return h;
}

static uint64_t collections(gc_heap_t *h)
{
    return stats_of(h).collections;
}

/* Young garbage until `n` collections have run. */
static void churn(gc_thread_t *t, gc_heap_t *h, uint64_t n)
{
    uint64_t until = collections(h) + n;
    for (uint64_t i = 0; collections(h) < until; i++) {
        (void)mk(t, &T_PLAIN, 0, (size_t)(i % 8));
        if (i > 10000000u) {
            T_FAIL("no collection came");
            return;
        }
    }
}

/* Old parents of `nwords` payload words get young children through
 * gc_write; minor collections must keep them. */
static void old_parents_keep_young_children(size_t nwords, const gc_type_t *child_type)
{
    fin_reset();
    gc_heap_t *h = review_heap(1, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    enum { OLD = 4 };
    void *old[OLD] = { NULL };
    gc_root_add_range(h, old, OLD);
    for (size_t i = 0; i < OLD; i++) old[i] = mk(t, &T_PLAIN, 1 + i, nwords);
    gc_collect(t); /* full: old now */
    for (int round = 0; round < 6; round++) {
        for (size_t i = 0; i < OLD; i++) {
            size_t k = (size_t)round % NSLOTS;
            void *child = mk(t, child_type, 100 + (size_t)round * OLD + i, 2);
            set_slot(t, old[i], k, child);
        }
        churn(t, h, 2);
        EXPECT_VERIFY(h);
        for (size_t i = 0; i < OLD; i++) {
            EXPECT_OBJ(old[i], 1 + i);
            size_t k = (size_t)round % NSLOTS;
            EXPECT_OBJ(slot_of(old[i], k), 100 + (size_t)round * OLD + i);
        }
    }
    gc_root_remove(h, old);
    gc_heap_destroy(h);
}

static void test_review_large_old_parent(void **state)
{
    (void)state;
    TEST_START();
    old_parents_keep_young_children(300000 / 8, &T_PLAIN);
}

static void test_review_medium_old_parent(void **state)
{
    (void)state;
    TEST_START();
    old_parents_keep_young_children(40000 / 8, &T_PLAIN);
}

static void test_review_small_old_parent(void **state)
{
    (void)state;
    TEST_START();
    old_parents_keep_young_children(2, &T_FIN);
}

static __attribute__((noinline)) void collect_a_few(gc_thread_t *t)
{
    for (int i = 0; i < 3; i++) gc_collect(t);
}

/* A word pointing into a large object's later blocks keeps it. */
static void test_review_conservative_large_interior(void **state)
{
    (void)state;
    TEST_START();
    for (int gen = 0; gen < 2; gen++) {
        fin_reset();
        gc_heap_t *h = review_heap(gen, 1, GC_COMPACT_ALWAYS);
        gc_thread_t *t = gc_thread_attach(h);
        tobj_t *big = mk(t, &T_FIN, 7, 300000 / 8);
        volatile uintptr_t inside = (uintptr_t)&big->words[200000 / 8];
        big = NULL;
        collect_a_few(t);
        churn(t, h, 3);
        tobj_t *again = (tobj_t *)(inside - offsetof(tobj_t, words) - 200000);
        EXPECT_OBJ(again, 7);
        EXPECT_FIN(7, 0);
        EXPECT_VERIFY(h);
        gc_heap_destroy(h);
    }
}

int main(void)
{
    mt_init("test_gc_review_s15_gen");
    mt_env_ignore_policy();
    mt_env_ignore("MULCH_GC_COMPACT");
    mt_env_ignore("MULCH_GC_GENERATIONAL");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_review_large_old_parent),
        T(test_review_medium_old_parent),
        T(test_review_small_old_parent),
        T(test_review_conservative_large_interior),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
