/* test_gc_environment.c — black-box tests of the MULCH_GC_* environment
 * variables at the edges of what docs/tuning.md allows ("Environment
 * variables"): sizes too big for their k/m/g suffix saturate instead of
 * wrapping round to a small number, negative values read as 0, and counts
 * and percents too big for the field they set are clamped as documented
 * (EVACUATE_BELOW above 100 reads as 100, GENERATIONAL non-zero is on)
 * instead of being truncated to an unrelated value. Each value not taken
 * as written is reported, naming the variable and the value: a malformed
 * one (trailing text, an unknown suffix or word, a decimal comma) is
 * ignored, one out of range clamped. Decimal numbers read '.' as the
 * decimal point whatever LC_NUMERIC says.
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

#include <locale.h>

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

/* Exactly `n` reports since `since`, the last one's text `text`. */
static void expect_reports(unsigned long since, unsigned long n, const char *text)
{
    char what[256];
    rec_last(what, sizeof what, NULL);
    if (rec_count() - since != n) {
        rec_print_since(since);
        T_FAIL("expected %lu report(s) ending with \"%s\", got %lu", n, text, rec_count() - since);
    }
    if (strcmp(what, text) != 0) T_FAIL("report \"%s\", expected \"%s\"", what, text);
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
        char text[200];
        snprintf(text, sizeof text, "gc_heap_create: MULCH_GC_MAX_HEAP=%s is too big (the largest size used)",
                 huge[v]);
        expect_reports(r0, 2 * v + 1, text);

        h = heap_with("MULCH_GC_INITIAL_HEAP", huge[v], GC_COMPACT_AUTO);
        t = gc_thread_attach(h);
        uint64_t collections = garbage(h, t, 8 * MiB);
        print_message("  MULCH_GC_INITIAL_HEAP=%s: %llu collections in 8 MiB\n", huge[v],
                      (unsigned long long)collections);
        EXPECT_EQ(collections, 0u);
        gc_heap_destroy(h);
        snprintf(text, sizeof text, "gc_heap_create: MULCH_GC_INITIAL_HEAP=%s is too big (the largest size used)",
                 huge[v]);
        expect_reports(r0, 2 * v + 2, text);
    }
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
    expect_reports(r0, 1, "gc_heap_create: MULCH_GC_INITIAL_HEAP=-1 is negative (0 used)");

    h = heap_with("MULCH_GC_MAX_HEAP", "-1", GC_COMPACT_AUTO);   /* 0: no limit */
    t = gc_thread_attach(h);
    EXPECT_EQ(keep_alive(h, t, 4 * MiB), 1024u);
    gc_heap_destroy(h);
    expect_reports(r0, 2, "gc_heap_create: MULCH_GC_MAX_HEAP=-1 is negative (0 used)");
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
    expect_reports(r0, 1, "gc_heap_create: MULCH_GC_EVACUATE_BELOW=4294967296 is too big (100 used)");
    h = heap_with("MULCH_GC_EVACUATE_BELOW", "-1", GC_COMPACT_AUTO);
    uint64_t moved_negative = fragment_and_collect(h);
    gc_heap_destroy(h);
    expect_reports(r0, 2, "gc_heap_create: MULCH_GC_EVACUATE_BELOW=-1 is negative (0 used)");
    print_message("  bytes moved: default %llu, 4294967296 %llu, -1 %llu\n", (unsigned long long)moved_default,
                  (unsigned long long)moved_big, (unsigned long long)moved_negative);
    EXPECT_NE(moved_default, 0u);                 /* the setup does fragment the heap */
    EXPECT_GE(moved_big, moved_default);          /* 100: every span under full */
    EXPECT_EQ(moved_negative, 0u);                /* 0: AUTO evacuates nothing */
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

/* One variable set to one value: exactly one report, `text`. */
static void expect_env_report(const char *name, const char *value, const char *text)
{
    unsigned long r0 = rec_count();
    gc_heap_destroy(heap_with(name, value, GC_COMPACT_AUTO));
    expect_reports(r0, 1, text);
}

/* A documented spelling: taken without a report. */
static void expect_env_silent(const char *name, const char *value)
{
    unsigned long r0 = rec_count();
    gc_heap_destroy(heap_with(name, value, GC_COMPACT_AUTO));
    EXPECT_NO_REPORTS(r0);
}

/* "12X" was taken in part: an initial_heap of 12 bytes, a heap that
 * collected at every span. Malformed, it is reported and ignored: the
 * option's value (here the default 1 MiB) stays. */
static void test_env_malformed_size_is_reported_and_ignored(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_with("MULCH_GC_INITIAL_HEAP", "12X", GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    uint64_t collections = garbage(h, t, 8 * MiB);
    print_message("  MULCH_GC_INITIAL_HEAP=12X: %llu collections in 8 MiB\n", (unsigned long long)collections);
    EXPECT_LE(collections, 16u);                  /* the default 1 MiB: about 8 */
    gc_heap_destroy(h);
    expect_reports(r0, 1,
                   "gc_heap_create: MULCH_GC_INITIAL_HEAP=12X is not a number (digits, then an optional k, m or g) "
                   "(ignored)");
    expect_env_report("MULCH_GC_STRESS", "1.5",
                      "gc_heap_create: MULCH_GC_STRESS=1.5 is not a number (digits, then an optional k, m or g) "
                      "(ignored)");
    expect_env_report("MULCH_GC_MARKERS", "two",
                      "gc_heap_create: MULCH_GC_MARKERS=two is not a number (digits, then an optional k, m or g) "
                      "(ignored)");
    /* (the value the markers are capped at, not INT_MAX: review session 37) */
    expect_env_report("MULCH_GC_MARKERS", "99999999999", "gc_heap_create: MULCH_GC_MARKERS=99999999999 is too big "
                                                         "(64 used)");
    expect_env_report("MULCH_GC_MARKERS", "65", "gc_heap_create: MULCH_GC_MARKERS=65 is too big (64 used)");
    expect_env_silent("MULCH_GC_MARKERS", "64");
    expect_env_report("MULCH_GC_GENERATIONAL", "ja",
                      "gc_heap_create: MULCH_GC_GENERATIONAL=ja is not 0, 1, on, off, true, false, yes or no (on)");
    expect_env_report("MULCH_GC_VERIFY", "2", "gc_heap_create: MULCH_GC_VERIFY=2 is not 0 or 1 (on)");
    /* documented spellings stay silent (blanks round a value are allowed) */
    expect_env_silent("MULCH_GC_INITIAL_HEAP", "512k");
    expect_env_silent("MULCH_GC_INITIAL_HEAP", " 2M ");
    expect_env_silent("MULCH_GC_MAX_HEAP", "1g");
    expect_env_silent("MULCH_GC_MAX_HEAP", "0");
    expect_env_silent("MULCH_GC_MARKERS", "2");
    expect_env_silent("MULCH_GC_EVACUATE_BELOW", "100");
    expect_env_silent("MULCH_GC_GENERATIONAL", "0");
    expect_env_silent("MULCH_GC_VERIFY", "1");
    expect_env_silent("MULCH_GC_GENERATIONAL", "yes");
}

/* "64q": an unknown suffix was no suffix, a max_heap of 64 bytes that
 * refused every allocation. Now reported and ignored: no limit. */
static void test_env_unknown_suffix_is_reported_and_ignored(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_with("MULCH_GC_MAX_HEAP", "64q", GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    size_t got = keep_alive(h, t, 4 * MiB);
    print_message("  MULCH_GC_MAX_HEAP=64q: %zu of 1024 live 4 KiB objects\n", got);
    EXPECT_EQ(got, 1024u);
    gc_heap_destroy(h);
    expect_reports(r0, 1,
                   "gc_heap_create: MULCH_GC_MAX_HEAP=64q is not a number (digits, then an optional k, m or g) "
                   "(ignored)");
    expect_env_report("MULCH_GC_MAX_HEAP", "64kb",
                      "gc_heap_create: MULCH_GC_MAX_HEAP=64kb is not a number (digits, then an optional k, m or g) "
                      "(ignored)");
    /* below one span: no allocation could succeed (review session 37) */
    expect_env_report("MULCH_GC_MAX_HEAP", "512",
                      "gc_heap_create: MULCH_GC_MAX_HEAP of 512 bytes is below one span (65536 bytes): every "
                      "allocation gets NULL (kept)");
    expect_env_silent("MULCH_GC_MAX_HEAP", "64k");
    unsetenv("MULCH_GC_MAX_HEAP");
    gc_options_t o = { .max_heap = 65535 };
    r0 = rec_count();
    h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    EXPECT_ONE_REPORT(r0, "gc_heap_create: max_heap of 65535 bytes is below one span (65536 bytes): every "
                          "allocation gets NULL (kept)", &o);
    t = gc_thread_attach(h);
    static const gc_type_t leaf = { "leaf", NULL, NULL };
    EXPECT_NULL(gc_alloc(t, &leaf, 16)); /* as documented: out of memory, not reported again */
    EXPECT_EQ(rec_count(), r0 + 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* "alwys" was auto compaction, silently. An unknown word is reported and
 * ignored: the program's GC_COMPACT_NEVER stays, nothing moves. */
static void test_env_unknown_word_is_reported_and_ignored(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_with("MULCH_GC_COMPACT", "alwys", GC_COMPACT_NEVER);
    uint64_t moved = fragment_and_collect(h);
    gc_heap_destroy(h);
    print_message("  MULCH_GC_COMPACT=alwys over GC_COMPACT_NEVER: %llu bytes moved\n", (unsigned long long)moved);
    EXPECT_EQ(moved, 0u);
    expect_reports(r0, 1, "gc_heap_create: MULCH_GC_COMPACT=alwys is not never, auto or always (ignored)");
    expect_env_silent("MULCH_GC_COMPACT", "never");
    expect_env_silent("MULCH_GC_COMPACT", "auto");
    expect_env_silent("MULCH_GC_COMPACT", "always");
}

/* Collections while 2 MiB stay live and 24 MiB of garbage go by, with
 * heap_growth `option` and MULCH_GC_HEAP_GROWTH=`value` (NULL: unset). */
static uint64_t collections_with_growth(double option, const char *value)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_heap = 256 * KiB;
    o.heap_growth = option;
    o.compaction = GC_COMPACT_NEVER;
    if (value) setenv("MULCH_GC_HEAP_GROWTH", value, 1);
    gc_heap_t *h = gc_heap_create(&o);
    unsetenv("MULCH_GC_HEAP_GROWTH");
    EXPECT_NONNULL(h);
    gc_thread_t *t = gc_thread_attach(h);
    enum { LIVE = 512 };
    void **keep = calloc(LIVE, sizeof *keep);
    EXPECT_NONNULL(keep);
    gc_root_add_range(h, keep, LIVE);
    for (size_t i = 0; i < LIVE; i++) EXPECT_NONNULL(keep[i] = gc_alloc(t, &T_RAW, 4 * KiB - 8));
    uint64_t collections = garbage(h, t, 24 * MiB);
    gc_root_remove(h, keep);
    free(keep);
    gc_heap_destroy(h);
    return collections;
}

/* A decimal comma ("1,5") was read as 1 by strtod: a heap_growth of 2.0,
 * silently. Now it is reported and ignored; '.' is the decimal point, and
 * "1.5" means what heap_growth = 1.5 means. Out-of-range values and
 * strtod's "nan" and "inf" are reported too. */
static void test_env_decimal_comma_and_range(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    uint64_t option_3 = collections_with_growth(3.0, NULL);
    uint64_t option_1_5 = collections_with_growth(1.5, NULL);
    uint64_t env_1_5 = collections_with_growth(3.0, "1.5");
    EXPECT_NO_REPORTS(r0);
    uint64_t env_comma = collections_with_growth(3.0, "1,5");
    print_message("  collections: heap_growth 3.0 %llu, 1.5 %llu; env 1.5 %llu, env 1,5 %llu\n",
                  (unsigned long long)option_3, (unsigned long long)option_1_5, (unsigned long long)env_1_5,
                  (unsigned long long)env_comma);
    EXPECT_GE(option_1_5, option_3 + 1);            /* the workload tells the two apart */
    EXPECT_EQ(env_1_5, option_1_5);
    EXPECT_EQ(env_comma, option_3);               /* ignored: the option stays */
    expect_reports(r0, 1,
                   "gc_heap_create: MULCH_GC_HEAP_GROWTH=1,5 is not a decimal number: the decimal point is '.' "
                   "(ignored)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "1.5x",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=1.5x is not a decimal number (ignored)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "nan",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=nan is not a decimal number (ignored)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "inf",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=inf is not a decimal number (ignored)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "0.5",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=0.5 is not above 1.0 (2.0 used)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "1e4",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=1e4 is above 1000 (1000 used)");
    expect_env_report("MULCH_GC_HEAP_KEEP", "2,5",
                      "gc_heap_create: MULCH_GC_HEAP_KEEP=2,5 is not a decimal number: the decimal point is '.' "
                      "(ignored)");
    expect_env_report("MULCH_GC_HEAP_KEEP", "-1", "gc_heap_create: MULCH_GC_HEAP_KEEP=-1 is negative (0 used)");
    expect_env_report("MULCH_GC_HEAP_KEEP", "100", "gc_heap_create: MULCH_GC_HEAP_KEEP=100 is above 64 (64 used)");
    expect_env_silent("MULCH_GC_HEAP_GROWTH", "1.5");
    expect_env_silent("MULCH_GC_HEAP_GROWTH", "2");
    expect_env_silent("MULCH_GC_HEAP_GROWTH", ".5e1");
    expect_env_silent("MULCH_GC_HEAP_KEEP", "0");
    expect_env_silent("MULCH_GC_HEAP_KEEP", "3.25");
}

/* An embedder's setlocale(LC_NUMERIC, ...) with a decimal comma made
 * strtod read "1.5" as 1. Skipped when no such locale is installed
 * (C.UTF-8 has '.'). */
static void test_env_decimal_under_comma_locale(void **state)
{
    (void)state;
    TEST_START();
    static const char *const candidates[] = { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8",
                                              "nl_NL.UTF-8", "ru_RU.UTF-8", "de_DE",      "fr_FR" };
    const char *chosen = NULL;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && !chosen; i++) {
        if (setlocale(LC_NUMERIC, candidates[i]) == NULL) continue;
        if (strcmp(localeconv()->decimal_point, ",") == 0) chosen = candidates[i];
        else setlocale(LC_NUMERIC, "C");
    }
    if (chosen == NULL) {
        print_message("  no locale with a decimal comma is installed: skipped\n");
        skip();
    }
    print_message("  LC_NUMERIC=%s\n", chosen);
    unsigned long r0 = rec_count();
    uint64_t env_1_5 = collections_with_growth(3.0, "1.5");
    setlocale(LC_NUMERIC, "C");
    uint64_t option_1_5 = collections_with_growth(1.5, NULL);
    EXPECT_EQ(env_1_5, option_1_5);
    EXPECT_NO_REPORTS(r0);
}

/* Whether a heap made with `name`=`value` runs in generational mode (its
 * attached threads keep cards), and the reports it made since `since`
 * are exactly `reports`. */
static bool generational_with(const char *value, unsigned long reports)
{
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_with("MULCH_GC_GENERATIONAL", value, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    bool on = ((const struct mulch_gc_thread_roots_ *)(const void *)t)->generational != 0;
    gc_thread_detach(t);
    gc_heap_destroy(h);
    if (rec_count() - r0 != reports) {
        rec_print_since(r0);
        T_FAIL("MULCH_GC_GENERATIONAL=\"%s\": %lu report(s), expected %lu", value, rec_count() - r0, reports);
    }
    return on;
}

/* The pool's switches took off, false and no (any case) as off and the
 * collector's rejected every word ("yes" was ignored, reported, "on"
 * too): every boolean MULCH_* variable now reads the same words, and an
 * unknown one is reported once. */
static void test_env_flag_words_as_the_pool_reads_them(void **state)
{
    (void)state;
    TEST_START();
    static const char *const on[] = { "1", "on", "ON", "true", "True", "yes", "YES", " yes " };
    static const char *const off[] = { "0", "off", "Off", "false", "FALSE", "no", "No", " no" };
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        if (!generational_with(on[i], 0)) T_FAIL("MULCH_GC_GENERATIONAL=\"%s\" left the mode off", on[i]);
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        if (generational_with(off[i], 0)) T_FAIL("MULCH_GC_GENERATIONAL=\"%s\" turned the mode on", off[i]);
    /* an unknown word: one report, and on (as the pool's switches read it) */
    if (!generational_with("maybe", 1)) T_FAIL("the mode is off");
    char what[256];
    rec_last(what, sizeof what, NULL);
    const char *want = "gc_heap_create: MULCH_GC_GENERATIONAL=maybe is not 0, 1, on, off, true, false, yes or no (on)";
    if (strcmp(what, want) != 0) T_FAIL("report \"%s\", expected \"%s\"", what, want);
    if (generational_with("0ff", 1)) T_FAIL("the mode is on"); /* starting with 0: off, as ever */
}

/* A value too big for a size_t was reported twice: "is too big (on)",
 * then "is not 0 or 1 (on)". Once now. */
static void test_env_flag_huge_value_reported_once(void **state)
{
    (void)state;
    TEST_START();
    if (!generational_with("99999999999999999999999", 1)) T_FAIL("the mode is off");
    char what[256];
    rec_last(what, sizeof what, NULL);
    const char *want = "gc_heap_create: MULCH_GC_GENERATIONAL=99999999999999999999999 is not 0 or 1 (on)";
    if (strcmp(what, want) != 0) T_FAIL("report \"%s\", expected \"%s\"", what, want);
    unsigned long r0 = rec_count();
    gc_heap_destroy(heap_with("MULCH_GC_VERIFY", "18446744073709551617", GC_COMPACT_AUTO));
    expect_reports(r0, 1, "gc_heap_create: MULCH_GC_VERIFY=18446744073709551617 is not 0 or 1 (on)");
}

/* An option the program set wrong is reported with what is used instead:
 * the variable when the environment replaces the field. A malformed
 * variable replaces nothing (it is reported and ignored), yet the report
 * said "(MULCH_GC_HEAP_GROWTH used)" of a heap that used 2.0. */
static void test_env_malformed_value_is_not_said_to_be_used(void **state)
{
    (void)state;
    TEST_START();
    static const struct {
        const char *name, *value, *want;
        double growth;
        int compaction, markers;
    } cases[] = {
        { "MULCH_GC_HEAP_GROWTH", "abc", "gc_heap_create: heap_growth must be above 1.0 (2.0 used)", 0.5, 0, 0 },
        { "MULCH_GC_HEAP_GROWTH", "1,5", "gc_heap_create: heap_growth above 1000 (1000 used)", 5000.0, 0, 0 },
        { "MULCH_GC_COMPACT", "alwys", "gc_heap_create: compaction is not a GC_COMPACT_* value (nothing moves)", 0,
          7, 0 },
        { "MULCH_GC_MARKERS", "two", "gc_heap_create: markers is negative (one per CPU used)", 0, 0, -1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gc_options_t o;
        memset(&o, 0, sizeof o);
        o.heap_growth = cases[i].growth;
        o.compaction = cases[i].compaction;
        o.markers = cases[i].markers;
        unsigned long r0 = rec_count();
        setenv(cases[i].name, cases[i].value, 1);
        gc_heap_t *h = gc_heap_create(&o);
        unsetenv(cases[i].name);
        EXPECT_NONNULL(h);
        gc_heap_destroy(h);
        /* two reports: the variable's (ignored) and the option's */
        bool found = false;
        pthread_mutex_lock(&g_rec.mu);
        unsigned long n = g_rec.count - r0;
        for (unsigned long k = r0; k < g_rec.count; k++)
            if (strcmp(g_rec.what[k % REC_KEEP], cases[i].want) == 0) found = true;
        pthread_mutex_unlock(&g_rec.mu);
        if (n != 2 || !found) {
            rec_print_since(r0);
            T_FAIL("%s=%s: %lu report(s), expected 2 with \"%s\"", cases[i].name, cases[i].value, n, cases[i].want);
        }
    }
}

/* Edge cases of the number parsers (session 28): each malformed or
 * out-of-range value gives one report whose text shows the value without
 * its surrounding blanks (env.c's invariant; the range reports of
 * MULCH_GC_HEAP_GROWTH and MULCH_GC_HEAP_KEEP showed the raw string), and
 * the documented fallback is used. */
static void test_env_number_edge_cases(void **state)
{
    (void)state;
    TEST_START();
    expect_env_report("MULCH_GC_HEAP_GROWTH", " 0.5 ",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=0.5 is not above 1.0 (2.0 used)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "\t1e400",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=1e400 is above 1000 (1000 used)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "1e-400",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=1e-400 is not above 1.0 (2.0 used)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "1e99999999999",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=1e99999999999 is above 1000 (1000 used)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "-inf",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=-inf is not a decimal number (ignored)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "0x10",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=0x10 is not a decimal number (ignored)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "1e", "gc_heap_create: MULCH_GC_HEAP_GROWTH=1e is not a decimal number (ignored)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", ".", "gc_heap_create: MULCH_GC_HEAP_GROWTH=. is not a decimal number (ignored)");
    expect_env_report("MULCH_GC_HEAP_GROWTH", "1.5 2",
                      "gc_heap_create: MULCH_GC_HEAP_GROWTH=1.5 2 is not a decimal number (ignored)");
    expect_env_report("MULCH_GC_HEAP_KEEP", "  100\n", "gc_heap_create: MULCH_GC_HEAP_KEEP=100 is above 64 (64 used)");
    expect_env_report("MULCH_GC_HEAP_KEEP", " -1", "gc_heap_create: MULCH_GC_HEAP_KEEP=-1 is negative (0 used)");
    expect_env_report("MULCH_GC_HEAP_KEEP", "1e400", "gc_heap_create: MULCH_GC_HEAP_KEEP=1e400 is above 64 (64 used)");
    expect_env_report("MULCH_GC_MAX_HEAP", "0x10",
                      "gc_heap_create: MULCH_GC_MAX_HEAP=0x10 is not a number (digits, then an optional k, m or g) "
                      "(ignored)");
    expect_env_report("MULCH_GC_MAX_HEAP", "nan",
                      "gc_heap_create: MULCH_GC_MAX_HEAP=nan is not a number (digits, then an optional k, m or g) "
                      "(ignored)");
    expect_env_report("MULCH_GC_MAX_HEAP", "  12 k",
                      "gc_heap_create: MULCH_GC_MAX_HEAP=12 k is not a number (digits, then an optional k, m or g) "
                      "(ignored)");
    expect_env_silent("MULCH_GC_HEAP_GROWTH", "");
    expect_env_silent("MULCH_GC_HEAP_GROWTH", "   ");
    expect_env_silent("MULCH_GC_HEAP_GROWTH", " 1.5\t");
    expect_env_silent("MULCH_GC_HEAP_GROWTH", "1000");
    expect_env_silent("MULCH_GC_HEAP_KEEP", "-0");
    expect_env_silent("MULCH_GC_MAX_HEAP", "");
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
        T(test_env_malformed_size_is_reported_and_ignored),
        T(test_env_unknown_suffix_is_reported_and_ignored),
        T(test_env_unknown_word_is_reported_and_ignored),
        T(test_env_decimal_comma_and_range),
        T(test_env_decimal_under_comma_locale),
        T(test_env_flag_words_as_the_pool_reads_them),
        T(test_env_flag_huge_value_reported_once),
        T(test_env_malformed_value_is_not_said_to_be_used),
        T(test_env_number_edge_cases),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
