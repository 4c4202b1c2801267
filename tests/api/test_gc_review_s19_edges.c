/* test_gc_review_s19_edges.c — review session 19 (the collector's API
 * edges: roots, weak references and ephemerons read from a trace
 * function): regressions for bugs found there. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7331395f65646765)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

/* An empty range (n 0) was refused when its start was NULL, as a NULL
 * slot ("gc_root_add_range: slot is NULL"), though no collection reads
 * it: a program registering an empty vector's items got a report, and its
 * matching gc_root_remove another. Accepted now, with any start, and
 * removed by gc_root_remove(heap, slots). */
static void test_root_add_range_empty(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = mk(t, &T_PLAIN, 1, 2);
    gc_push_root(t, &keep);
    static void *table[2];
    unsigned long r0 = rec_count();
    gc_root_add_range(h, NULL, 0);
    gc_root_add_range(h, table, 0);
    EXPECT_NO_REPORTS(r0);
    gc_collect(t);
    EXPECT_OBJ(keep, 1);
    EXPECT_VERIFY(h);
    gc_root_remove(h, NULL);
    gc_root_remove(h, table);
    EXPECT_NO_REPORTS(r0);
    /* removed: nothing left to remove */
    gc_root_remove(h, NULL);
    EXPECT_ONE_REPORT(r0, "gc_root_remove: slot is not a registered root", NULL);
    /* a NULL start with slots in the range is still a NULL slot */
    gc_root_add_range(h, NULL, 2);
    EXPECT_ONE_REPORT(r0 + 1, "gc_root_add_range: slot is NULL", NULL);
    gc_collect(t);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 2);
}

int main(void)
{
    mt_init("test_gc_review_s19_edges");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_root_add_range_empty),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
