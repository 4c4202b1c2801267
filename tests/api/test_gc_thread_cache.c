/* test_gc_thread_cache.c — cheap attach and detach (<mulch/gc.h>; docs:
 * gc.md "Threads", api.md gc_thread_attach / gc_thread_detach): a heap
 * keeps detached thread records for its next attaches (gc/thread.c).
 *
 *   - detach hands the spans of the thread's bins back to the heap: a
 *     thread attaching around a small task took a new span per class at
 *     every attach until the next collection (heap_bytes grew by a span a
 *     cycle, each one faulted in and zeroed).
 *
 * Deterministic per thread (seeded; the seed is printed); MULCH_TEST_QUICK=1
 * and sanitizer / valgrind builds run fewer cycles. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7468726561646361)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

static size_t heap_bytes_of(gc_heap_t *h)
{
    gc_stats_t s;
    gc_get_stats(h, &s);
    return s.heap_bytes;
}

/* ---- detach gives the bins' spans back ----------------------------------- */

static void test_detach_returns_spans(void **state)
{
    (void)state;
    TEST_START();
    /* no collection in the loop: only the detaches can give spans back */
    gc_heap_t *h = heap_new(64 * MiB, 0, GC_COMPACT_AUTO);
    unsigned long r0 = rec_count();
    size_t after_first = 0;
    enum { CYCLES = 256 };
    for (int i = 0; i < CYCLES; i++) {
        gc_thread_t *t = gc_thread_attach(h);
        EXPECT_NONNULL(t);
        (void)mk(t, &T_PLAIN, (uint64_t)i, 1);
        (void)mk(t, &T_RAW, (uint64_t)i, 40); /* a second class */
        gc_thread_detach(t);
        if (i == 0) after_first = heap_bytes_of(h);
    }
    size_t after_all = heap_bytes_of(h);
    print_message("  heap_bytes after 1 cycle %zu, after %d: %zu\n", after_first, CYCLES, after_all);
    /* 512 small objects fit the first spans of their two classes */
    if (after_all > 2 * after_first)
        T_FAIL("heap_bytes grew from %zu to %zu over %d attach/allocate/detach cycles", after_first, after_all,
               CYCLES);
    EXPECT_VERIFY(h);
    EXPECT_NO_REPORTS(r0);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_thread_cache");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_detach_returns_spans),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
