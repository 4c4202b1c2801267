/* test_gc_policy.c — black-box tests of when collections happen
 * (<mulch/gc.h>; docs/gc.md "Heap policy"): the budget between collections
 * is (heap_growth - 1) x live, but a heap that already reached a bigger size
 * reuses it, up to MULCH_GC_HEAP_KEEP x live (default 1.5 x heap_growth),
 * so a program whose live data shrank after a peak collects about half as
 * often, without its heap growing past that peak; MULCH_GC_HEAP_KEEP=1
 * turns the reuse off; allocation from many size classes is counted and
 * checked against the budget a bitmap word at a time.
 *
 * Deterministic: no randomness; the workload is fixed. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367637001)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <stdbool.h>

#include "mulch_test.h"

enum { OBJECT_BYTES = 1024 };

typedef struct phases {
    unsigned long long collections; /* during the garbage phase */
    size_t heap_peak;                /* heap_bytes seen at its highest, all phases */
    size_t heap_after_spike;         /* heap_bytes after the spike was collected */
} phases_t;

static void note_heap(gc_heap_t *h, phases_t *out)
{
    size_t now = stats_of(h).heap_bytes;
    if (now > out->heap_peak) out->heap_peak = now;
}

/* A spike of `spike` live bytes, then `live` bytes kept (the first ones,
 * or with `scattered` one in every spike/live objects, which leaves every
 * span sparse) and `garbage` bytes of short-lived objects allocated. */
static phases_t run_phases(size_t spike, size_t live, size_t garbage, bool scattered)
{
    phases_t out = { 0, 0, 0 };
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    size_t n = spike / OBJECT_BYTES, kept = live / OBJECT_BYTES;
    void **slots = calloc(n, sizeof *slots);
    EXPECT_NONNULL(slots);
    gc_root_add_range(h, slots, n);
    for (size_t i = 0; i < n; i++) {
        slots[i] = gc_alloc(t, &T_RAW, OBJECT_BYTES - 8);
        EXPECT_NONNULL(slots[i]);
        if (i % 1024 == 0) note_heap(h, &out);
    }
    gc_collect(t); /* the heap's high water: the whole spike */
    note_heap(h, &out);
    /* the live data shrinks */
    size_t stride = scattered ? n / kept : 1;
    for (size_t i = 0; i < n; i++)
        if (scattered ? i % stride != 0 : i >= kept) slots[i] = NULL;
    gc_collect(t);
    out.heap_after_spike = stats_of(h).heap_bytes;
    unsigned long long before = stats_of(h).collections;
    for (size_t i = 0; i < garbage / OBJECT_BYTES; i++) {
        void *p = gc_alloc(t, &T_RAW, OBJECT_BYTES - 8);
        EXPECT_NONNULL(p);
        if (i % 1024 == 0) note_heap(h, &out);
    }
    out.collections = stats_of(h).collections - before;
    for (size_t i = 0; i < (scattered ? n : kept); i += stride) EXPECT_NONNULL(slots[i]);
    EXPECT_VERIFY(h);
    gc_root_remove(h, slots);
    free(slots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    return out;
}

/* 32 MiB spike, then 8 MiB live: the budget is min(32, 3 x 8) - 8 = 16 MiB
 * instead of 8 MiB, so half the collections, and the heap never grows past
 * what the spike took. */
static void test_gc_heap_reuses_its_high_water(void **state)
{
    (void)state;
    TEST_START();
    unsetenv("MULCH_GC_HEAP_KEEP");
    const size_t spike = 32 * MiB, live = 8 * MiB, garbage = scaled(512, 128) * MiB;
    phases_t keep = run_phases(spike, live, garbage, false);
    setenv("MULCH_GC_HEAP_KEEP", "1", 1);
    phases_t plain = run_phases(spike, live, garbage, false);
    unsetenv("MULCH_GC_HEAP_KEEP");
    print_message("  reuse: %llu collections, heap peak %zu; without: %llu collections, heap peak %zu\n",
                  keep.collections, keep.heap_peak, plain.collections, plain.heap_peak);
    /* 8 MiB and 16 MiB budgets (a collection lands late by up to a span
     * per size class, so allow a little) */
    EXPECT_GE(plain.collections, garbage / (8 * MiB) - 2);
    EXPECT_LE(keep.collections, garbage / (16 * MiB) + 2);
    EXPECT_LE(keep.collections * 3, plain.collections * 2);
    /* reused memory, not new: the peak is the spike's */
    EXPECT_LE(keep.heap_peak, plain.heap_peak + 2 * MiB);
}

/* The same shrink, but every span keeps a few live objects: the heap is
 * still as big as the spike when the budget is set, so there is no room to
 * grow into, and the heap must not outgrow what it does without the rule
 * (its sparse spans are evacuated by the next collection meanwhile). */
static void test_gc_heap_keep_counts_a_sparse_heap(void **state)
{
    (void)state;
    TEST_START();
    const size_t spike = 32 * MiB, live = 8 * MiB, garbage = scaled(256, 64) * MiB;
    unsetenv("MULCH_GC_HEAP_KEEP");
    phases_t keep = run_phases(spike, live, garbage, true);
    setenv("MULCH_GC_HEAP_KEEP", "1", 1);
    phases_t plain = run_phases(spike, live, garbage, true);
    unsetenv("MULCH_GC_HEAP_KEEP");
    print_message("  reuse: %llu collections, heap peak %zu; without: %llu collections, heap peak %zu\n",
                  keep.collections, keep.heap_peak, plain.collections, plain.heap_peak);
    EXPECT_LE(keep.heap_peak, plain.heap_peak + 2 * MiB);
    EXPECT_LE(keep.collections, plain.collections);
}

/* Without a bigger past, nothing changes: live data that only grows gets
 * the (heap_growth - 1) x live budget with the rule on or off. */
static void test_gc_heap_keep_needs_a_bigger_past(void **state)
{
    (void)state;
    TEST_START();
    const size_t live = 8 * MiB, garbage = scaled(256, 64) * MiB;
    unsetenv("MULCH_GC_HEAP_KEEP");
    phases_t keep = run_phases(live, live, garbage, false);
    setenv("MULCH_GC_HEAP_KEEP", "1", 1);
    phases_t plain = run_phases(live, live, garbage, false);
    unsetenv("MULCH_GC_HEAP_KEEP");
    print_message("  reuse: %llu collections; without: %llu collections\n", keep.collections,
                  plain.collections);
    /* the high water is the live data's own heap, about 1.0-1.1 x live:
     * at most a sliver of extra budget */
    EXPECT_LE(plain.collections, keep.collections + 2);
    EXPECT_LE(keep.collections, plain.collections + 2);
}

/* Allocation from many size classes at once is counted as it happens (a
 * bitmap word of cells at a time) and checked against the budget as often:
 * eight classes with a 64 KiB budget collect about every 64 KiB, neither
 * early (counting whole spans when a thread takes them) nor late (checking
 * only when a span is used up: 420 KiB past the budget). */
static void test_gc_budget_counts_allocation_across_classes(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(64 * KiB, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    const size_t n = scaled(40000, 10000);
    size_t bytes = 0;
    unsigned long long before = stats_of(h).collections;
    for (size_t i = 0; i < n; i++) {
        size_t size = 56 + (i % 8) * 8; /* cells of 64..120 bytes: eight classes */
        void *p = gc_alloc(t, &T_RAW, size);
        EXPECT_NONNULL(p);
        bytes += size + 8;
    }
    unsigned long long collections = stats_of(h).collections - before;
    size_t budgets = bytes / (64 * KiB);
    print_message("  %zu bytes in 8 classes, 64 KiB budget: %llu collections (%zu budgets)\n", bytes,
                  collections, budgets);
    /* A word's 64 cells count when it is loaded: with eight classes of
     * ~100-byte cells up to 48 KiB is counted ahead, so against a budget
     * this small a collection comes up to that much early (span-at-a-time
     * counting: far earlier; span-end checks: 7x later). */
    EXPECT_GE(collections, budgets * 3 / 4);
    EXPECT_LE(collections, budgets * 3 / 2 + 2);
    EXPECT_LE(stats_of(h).heap_bytes, 8 * 2 * 64 * KiB);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* Medium classes (a few cells per span, one bitmap word for the whole
 * span): loading a word must not count the whole span ahead of use. With
 * four medium classes each holding a live object (so their next spans take
 * four or more cells), one garbage object per class per round, a 1 MiB
 * budget is 1 MiB of allocation, not the first two spans' free cells. */
static void test_gc_budget_counts_medium_cells_as_used(void **state)
{
    (void)state;
    TEST_START();
    static const size_t sizes[] = { 70000, 100000, 140000, 200000 };
    gc_heap_t *h = heap_new(1 * MiB, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep[4] = { 0 };
    gc_root_add_range(h, keep, 4);
    for (size_t k = 0; k < 4; k++) {
        keep[k] = gc_alloc(t, &T_RAW, sizes[k]);
        EXPECT_NONNULL(keep[k]);
    }
    const size_t rounds = scaled(400, 100);
    size_t bytes = 0;
    unsigned long long before = stats_of(h).collections;
    for (size_t i = 0; i < rounds; i++) {
        for (size_t k = 0; k < 4; k++) {
            void *p = gc_alloc(t, &T_RAW, sizes[k]);
            EXPECT_NONNULL(p);
            bytes += sizes[k];
        }
    }
    unsigned long long collections = stats_of(h).collections - before;
    size_t budgets = bytes / MiB;
    print_message("  %zu bytes in 4 medium classes, 1 MiB budget: %llu collections (%zu budgets)\n", bytes,
                  collections, budgets);
    EXPECT_LE(collections, budgets * 3 / 2 + 2);
    EXPECT_VERIFY(h);
    gc_root_remove(h, keep);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* MULCH_GC_HEAP_KEEP is clamped: "inf" (or 1e400) once made the budget of
 * a heap with no live data NaN, converted to 2^63 bytes: no collection. */
static void test_gc_heap_keep_out_of_range(void **state)
{
    (void)state;
    TEST_START();
    const char *values[] = { "inf", "1e400", "nan", "-5" };
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
        setenv("MULCH_GC_HEAP_KEEP", values[v], 1);
        gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
        gc_thread_t *t = gc_thread_attach(h);
        for (size_t i = 0; i < 32 * MiB / OBJECT_BYTES; i++) EXPECT_NONNULL(gc_alloc(t, &T_RAW, OBJECT_BYTES - 8));
        gc_stats_t s = stats_of(h);
        print_message("  MULCH_GC_HEAP_KEEP=%s: %llu collections, heap %zu bytes\n", values[v],
                      (unsigned long long)s.collections, s.heap_bytes);
        EXPECT_GE(s.collections, 8u);
        EXPECT_LE(s.heap_bytes, 8 * MiB);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    unsetenv("MULCH_GC_HEAP_KEEP");
}

int main(void)
{
    mt_init("test_gc_policy");
    mt_env_ignore_policy();
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_heap_reuses_its_high_water),
        T(test_gc_heap_keep_counts_a_sparse_heap),
        T(test_gc_heap_keep_needs_a_bigger_past),
        T(test_gc_budget_counts_allocation_across_classes),
        T(test_gc_heap_keep_out_of_range),
        T(test_gc_budget_counts_medium_cells_as_used),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
