/* test_gc_environment.c — black-box tests of the MULCH_GC_* environment
 * variables at the edges of what docs/tuning.md allows ("Environment
 * variables"): sizes too big for their k/m/g suffix saturate instead of
 * wrapping round to a small number, negative values read as 0, and counts
 * and percents too big for the field they set are clamped as documented
 * (EVACUATE_BELOW above 100 reads as 100, GENERATIONAL non-zero is on)
 * instead of being truncated to an unrelated value.
 *
 * Each test sets the variables it needs before gc_heap_create (which reads
 * them) and unsets them afterwards; main() clears every MULCH_GC_* the
 * harness may have set (the compact_always and generational variants), so
 * each variant runs the same checks. Deterministic: no randomness. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367656e76)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

static const char *const k_vars[] = {
    "MULCH_GC_INITIAL_HEAP", "MULCH_GC_MAX_HEAP",       "MULCH_GC_HEAP_GROWTH",
    "MULCH_GC_HEAP_KEEP",    "MULCH_GC_COMPACT",        "MULCH_GC_EVACUATE_BELOW",
    "MULCH_GC_GENERATIONAL", "MULCH_GC_MARKERS",        "MULCH_GC_STRESS",
    "MULCH_GC_VERIFY",
};

static void clear_gc_environment(void)
{
    for (size_t i = 0; i < sizeof k_vars / sizeof k_vars[0]; i++) unsetenv(k_vars[i]);
}

/* A heap created with `name`=`value` in the environment (and the given
 * compaction), the variable unset again once it is read. */
static gc_heap_t *heap_with(const char *name, const char *value, int compaction)
{
    setenv(name, value, 1);
    gc_heap_t *h = heap_new(0, 0, compaction);
    unsetenv(name);
    return h;
}

/* Allocates `bytes` of 4 KiB objects, all kept alive through a rooted
 * array; returns how many gc_alloc gave (NULL stops it). */
static size_t keep_alive(gc_heap_t *h, gc_thread_t *t, size_t bytes)
{
    size_t n = bytes / (4 * KiB);
    void **keep = calloc(n, sizeof *keep);
    EXPECT_NONNULL(keep);
    gc_root_add_range(h, keep, n);
    size_t got = 0;
    while (got < n && (keep[got] = gc_alloc(t, &T_RAW, 4 * KiB - 8)) != NULL) got++;
    gc_root_remove(h, keep);
    free(keep);
    return got;
}

/* Allocates `bytes` of garbage in 1 KiB objects; returns the collections
 * it took. */
static uint64_t garbage(gc_heap_t *h, gc_thread_t *t, size_t bytes)
{
    uint64_t before = stats_of(h).collections;
    for (size_t i = 0; i < bytes / KiB; i++) EXPECT_NONNULL(gc_alloc(t, &T_RAW, KiB - 8));
    return stats_of(h).collections - before;
}

/* 2^44 + 1 MiB and 2^54 + 1 KiB are 2^64 bytes and a bit: they wrapped
 * round to 1 MiB and 1 KiB, a max_heap that refused 4 MiB of live data
 * and an initial_heap that collected every megabyte. Too big for a size_t,
 * they mean "as big as can be". */
static void test_env_size_suffix_overflow_saturates(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const char *huge[] = { "17592186044417m", "18014398509481985k", "17179869185g",
                           "99999999999999999999999" };
    for (size_t v = 0; v < sizeof huge / sizeof huge[0]; v++) {
        gc_heap_t *h = heap_with("MULCH_GC_MAX_HEAP", huge[v], GC_COMPACT_AUTO);
        gc_thread_t *t = gc_thread_attach(h);
        size_t got = keep_alive(h, t, 4 * MiB);
        print_message("  MULCH_GC_MAX_HEAP=%s: %zu of 1024 live 4 KiB objects\n", huge[v], got);
        EXPECT_EQ(got, 1024u);
        gc_heap_destroy(h);

        h = heap_with("MULCH_GC_INITIAL_HEAP", huge[v], GC_COMPACT_AUTO);
        t = gc_thread_attach(h);
        uint64_t collections = garbage(h, t, 8 * MiB);
        print_message("  MULCH_GC_INITIAL_HEAP=%s: %llu collections in 8 MiB\n", huge[v],
                      (unsigned long long)collections);
        EXPECT_EQ(collections, 0u);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* strtoull negates "-1" into 2^64 - 1: an initial_heap of 16 EiB (a heap
 * that never collected) and an EVACUATE_BELOW of 100. Negative reads as
 * 0: the default initial_heap, no evacuation. */
static void test_env_negative_reads_as_zero(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_with("MULCH_GC_INITIAL_HEAP", "-1", GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    uint64_t collections = garbage(h, t, 8 * MiB);
    print_message("  MULCH_GC_INITIAL_HEAP=-1: %llu collections in 8 MiB\n", (unsigned long long)collections);
    EXPECT_GE(collections, 2u);                   /* the default 1 MiB */
    gc_heap_destroy(h);

    h = heap_with("MULCH_GC_MAX_HEAP", "-1", GC_COMPACT_AUTO);   /* 0: no limit */
    t = gc_thread_attach(h);
    EXPECT_EQ(keep_alive(h, t, 4 * MiB), 1024u);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* Fragments a heap (one 64-byte object in four kept) and collects twice:
 * the first collection flags the sparse spans, the second evacuates them.
 * Returns the bytes moved. */
static uint64_t fragment_and_collect(gc_heap_t *h)
{
    gc_thread_t *t = gc_thread_attach(h);
    enum { N = 20000 };
    void **keep = calloc(N / 4, sizeof *keep);
    EXPECT_NONNULL(keep);
    gc_root_add_range(h, keep, N / 4);
    for (size_t i = 0; i < N; i++) {
        void *o = gc_alloc(t, &T_RAW, 64);
        EXPECT_NONNULL(o);
        if (i % 4 == 0) keep[i / 4] = o;
    }
    gc_collect(t);
    gc_collect(t);
    uint64_t moved = stats_of(h).bytes_moved;
    gc_root_remove(h, keep);
    free(keep);
    gc_thread_detach(t);
    return moved;
}

/* "percent, 0-100 (more reads as 100)": 4294967296 was cast to unsigned,
 * 0, which turned evacuation off; -1 read as 100. */
static void test_env_evacuate_below_clamped(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    uint64_t moved_default = fragment_and_collect(h);
    gc_heap_destroy(h);
    h = heap_with("MULCH_GC_EVACUATE_BELOW", "4294967296", GC_COMPACT_AUTO);
    uint64_t moved_big = fragment_and_collect(h);
    gc_heap_destroy(h);
    h = heap_with("MULCH_GC_EVACUATE_BELOW", "-1", GC_COMPACT_AUTO);
    uint64_t moved_negative = fragment_and_collect(h);
    gc_heap_destroy(h);
    print_message("  bytes moved: default %llu, 4294967296 %llu, -1 %llu\n", (unsigned long long)moved_default,
                  (unsigned long long)moved_big, (unsigned long long)moved_negative);
    EXPECT_NE(moved_default, 0u);                 /* the setup does fragment the heap */
    EXPECT_GE(moved_big, moved_default);          /* 100: every span under full */
    EXPECT_EQ(moved_negative, 0u);                /* 0: AUTO evacuates nothing */
    EXPECT_NO_REPORTS(r0);
}

/* MULCH_GC_GENERATIONAL=4294967296 is non-zero: the mode is on (it was
 * truncated to an int, 0). Seen through gc_verify, which in generational
 * mode names an old object given a young pointer without gc_write. */
static void test_env_generational_big_value_is_on(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_with("MULCH_GC_GENERATIONAL", "4294967296", GC_COMPACT_NEVER);
    gc_thread_t *t = gc_thread_attach(h);
    void *old = NULL;
    gc_push_root(t, &old);
    old = mk(t, &T_PLAIN, 1, 1);
    gc_collect(t);                                  /* old is old */
    tobj_t *young = mk(t, &T_PLAIN, 2, 1);
    ((tobj_t *)old)->slot[0] = young;               /* no barrier */
    unsigned long r0 = rec_count();
    size_t problems = gc_verify(h);
    print_message("  gc_verify: %zu problem(s)\n", problems);
    EXPECT_GE(problems, 1u);
    EXPECT_GE(rec_count() - r0, 1u);
    set_slot(t, old, 0, slot_of(old, 0));           /* the same store through gc_write */
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_environment");
    clear_gc_environment();
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_env_size_suffix_overflow_saturates),
        T(test_env_negative_reads_as_zero),
        T(test_env_evacuate_below_clamped),
        T(test_env_generational_big_value_is_on),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
