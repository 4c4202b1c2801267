/* test_gc_external.c — black-box tests of gc_external_alloc at the edges of
 * its range (<mulch/gc.h>; docs/tuning.md "When a collection starts"):
 * amounts near PTRDIFF_MAX and PTRDIFF_MIN saturate instead of wrapping,
 * and a basis x heap_growth beyond SIZE_MAX is an unbounded budget, not a
 * double-to-size_t conversion out of range.
 *
 * What is observed is the number of collections while a fixed amount of
 * garbage is allocated after the external amounts were declared: a wrapped
 * counter or a wrapped budget shows up as collections where the policy says
 * none, or none where it says some.
 *
 * Deterministic: no randomness; the workload is fixed. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367634501)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <stdbool.h>

#include "mulch_test.h"

enum { GARBAGE_OBJECT = 120 };
#define GARBAGE_BYTES (4 * MiB)

typedef struct ext_run {
    ptrdiff_t first, second; /* the two gc_external_alloc amounts */
    bool collect_after;      /* a gc_collect after them (a budget from them) */
    double growth;           /* heap_growth; 0 = default */
} ext_run_t;

/* Collections while GARBAGE_BYTES of garbage are allocated after the run's
 * external amounts; the heap must stay sound and its rooted object intact. */
static unsigned long long collections_after(ext_run_t run)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.heap_growth = run.growth;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    void *keep = NULL;
    gc_push_root(t, &keep);
    keep = mk(t, &T_PLAIN, 7, 4);
    for (int i = 0; i < 1000; i++) EXPECT_NONNULL(gc_alloc(t, &T_RAW, 100));
    gc_external_alloc(h, run.first);
    gc_external_alloc(h, run.second);
    if (run.collect_after) gc_collect(t);
    unsigned long long before = stats_of(h).collections;
    for (size_t i = 0; i < GARBAGE_BYTES / (GARBAGE_OBJECT + 8); i++)
        EXPECT_NONNULL(gc_alloc(t, &T_RAW, GARBAGE_OBJECT));
    unsigned long long collections = stats_of(h).collections - before;
    gc_collect(t);
    EXPECT_OBJ(keep, 7);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    return collections;
}

/* Twice PTRDIFF_MAX bytes of external memory: the budget is spent (the
 * allocation count saturates), so the next allocation collects; after
 * that the external memory, counted as live, makes the budget unbounded.
 * The count used to wrap round to a few bytes: no collection at first,
 * then one per initial_heap. */
static void test_gc_external_huge_positive_saturates(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    unsigned long long n = collections_after((ext_run_t){ PTRDIFF_MAX, PTRDIFF_MAX, false, 0 });
    print_message("  2 x PTRDIFF_MAX external: %llu collections in %zu bytes\n", n, (size_t)GARBAGE_BYTES);
    EXPECT_EQ(n, 1);
    EXPECT_NO_REPORTS(r0);
}

/* PTRDIFF_MAX external bytes then a collection: basis x growth is about
 * 2^64 (and with heap_growth 1000, 2^56 x 1000 is far past it), more than
 * a size_t holds: the budget is unbounded. The conversion out of range
 * gave 0 instead: a budget of initial_heap, a collection per MiB. */
static void test_gc_external_budget_beyond_size_max(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    unsigned long long n = collections_after((ext_run_t){ PTRDIFF_MAX, 0, true, 0 });
    print_message("  PTRDIFF_MAX external, growth 2: %llu collections\n", n);
    EXPECT_EQ(n, 0);
    n = collections_after((ext_run_t){ (ptrdiff_t)1 << 56, 0, true, 1000.0 });
    print_message("  2^56 external, growth 1000: %llu collections\n", n);
    EXPECT_EQ(n, 0);
    EXPECT_NO_REPORTS(r0);
}

/* Giving back PTRDIFF_MIN bytes when -1 is declared already: the sum
 * saturates at PTRDIFF_MIN (nothing held outside: the basis is the live
 * data alone, a budget of initial_heap) instead of wrapping round to
 * PTRDIFF_MAX, which made the budget unbounded (with a growth whose
 * product with it still converts). */
static void test_gc_external_huge_negative_saturates(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    /* (growth 1.5: 1.5 x a wrapped PTRDIFF_MAX still fits a size_t) */
    unsigned long long n = collections_after((ext_run_t){ -1, PTRDIFF_MIN, true, 1.5 });
    unsigned long long plain = collections_after((ext_run_t){ 0, 0, true, 1.5 });
    print_message("  -1 + PTRDIFF_MIN external: %llu collections; none declared: %llu\n", n, plain);
    EXPECT_GE(plain, 2);
    EXPECT_EQ(n, plain);
    /* and back from there: the balance is exact again once in range */
    n = collections_after((ext_run_t){ PTRDIFF_MIN, PTRDIFF_MAX, true, 1.5 });
    EXPECT_EQ(n, plain);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_external");
    mt_env_ignore_policy();
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_external_huge_positive_saturates),
        T(test_gc_external_budget_beyond_size_max),
        T(test_gc_external_huge_negative_saturates),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
