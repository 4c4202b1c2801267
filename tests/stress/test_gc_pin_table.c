/* test_gc_pin_table.c — the collector's pin table (gc/roots.c) stays as big
 * as the pins that are live, however many pins came and went.
 *
 * A program that pins one object at a time (around a foreign call, say)
 * pins and unpins a different address each time. Entries whose count fell
 * to 0 are dropped when the table is rehashed; the table must then be sized
 * by the entries it kept. Deterministic (no randomness; the seed is printed
 * by the harness all the same).
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367631001)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"
#include "gc_internal.h"

static void test_gc_pin_table_does_not_grow_with_past_pins(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *kept = mk(t, &T_PLAIN, 1, 0); /* one pin that stays */
    gc_pin(h, kept);
    size_t rounds = scaled(100000, 20000);
    for (size_t i = 0; i < rounds; i++) {
        /* a new object each time: a new address (collections recycle cells) */
        void *o = mk(t, &T_PLAIN, 2, (size_t)(i % 4));
        gc_pin(h, o);
        gc_unpin(h, o);
    }
    pthread_mutex_lock(&h->lock);
    size_t capacity = h->pin_capacity, count = h->pin_count;
    pthread_mutex_unlock(&h->lock);
    print_message("  %zu pin/unpin pairs: pin table capacity %zu, entries counted %zu\n", rounds, capacity,
                  count);
    /* at most two live pins at any time: the first table (256) is enough */
    EXPECT_LE(capacity, 256u);
    EXPECT_OBJ(kept, 1);
    gc_unpin(h, kept);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_pin_table");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_pin_table_does_not_grow_with_past_pins),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
