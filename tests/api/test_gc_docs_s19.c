/* test_gc_docs_s19.c — the collector's documented behaviour checked
 * against the code (session 19's review of docs/api.md, docs/gc.md and
 * docs/tuning.md): each test pins one promise of the docs that the code
 * did not keep.
 *
 * The tests set the MULCH_GC_* variables they need and unset them again;
 * main() drops the ones the harness's variants set (compact_always,
 * generational), so every variant runs the same checks. Deterministic:
 * no randomness. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367641901)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>

#include <math.h>

#include "mulch_test.h"

/* A heap made from `o` with `name`=`value` in the environment: exactly one
 * report, `what` exactly `want`, naming `o`. */
static void expect_create_report(const gc_options_t *o, const char *name, const char *value, const char *want)
{
    if (name) setenv(name, value, 1);
    unsigned long r0 = rec_count();
    gc_heap_t *h = gc_heap_create(o);
    if (name) unsetenv(name);
    EXPECT_NONNULL(h);
    EXPECT_ONE_REPORT(r0, want, o);
    char what[256];
    rec_last(what, sizeof what, NULL);
    if (strcmp(what, want) != 0) T_FAIL("report \"%s\", expected \"%s\"", what, want);
    gc_heap_destroy(h);
}

/* docs/api.md (gc_options_t): a field set to a value it cannot mean is
 * reported, "then uses the documented replacement" — and a set MULCH_GC_*
 * variable overrides the field (docs/tuning.md). With both, the report
 * named a replacement that was not used: compaction 7 with
 * MULCH_GC_COMPACT=always said "(nothing moves)" of a heap where
 * everything moves, heap_growth 0.5 with MULCH_GC_HEAP_GROWTH=3 said
 * "(2.0 used)". The report now names what is used: the variable. */
static void test_create_report_names_what_is_used(void **state)
{
    (void)state;
    TEST_START();
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = 7;
    expect_create_report(&o, NULL, NULL, "gc_heap_create: compaction is not a GC_COMPACT_* value (nothing moves)");
    expect_create_report(&o, "MULCH_GC_COMPACT", "always",
                         "gc_heap_create: compaction is not a GC_COMPACT_* value (MULCH_GC_COMPACT used)");
    memset(&o, 0, sizeof o);
    o.heap_growth = 0.5;
    expect_create_report(&o, NULL, NULL, "gc_heap_create: heap_growth must be above 1.0 (2.0 used)");
    expect_create_report(&o, "MULCH_GC_HEAP_GROWTH", "3",
                         "gc_heap_create: heap_growth must be above 1.0 (MULCH_GC_HEAP_GROWTH used)");
    o.heap_growth = (double)INFINITY;
    expect_create_report(&o, NULL, NULL, "gc_heap_create: heap_growth above 1000 (1000 used)");
    expect_create_report(&o, "MULCH_GC_HEAP_GROWTH", "3",
                         "gc_heap_create: heap_growth above 1000 (MULCH_GC_HEAP_GROWTH used)");
    memset(&o, 0, sizeof o);
    o.markers = -1;
    expect_create_report(&o, NULL, NULL, "gc_heap_create: markers is negative (one per CPU used)");
    expect_create_report(&o, "MULCH_GC_MARKERS", "2",
                         "gc_heap_create: markers is negative (MULCH_GC_MARKERS used)");
    /* an empty variable overrides nothing (docs/tuning.md: "set, non-empty") */
    expect_create_report(&o, "MULCH_GC_MARKERS", "", "gc_heap_create: markers is negative (one per CPU used)");
}

int main(void)
{
    mt_init("test_gc_docs_s19");
    mt_env_ignore("MULCH_GC_COMPACT");
    mt_env_ignore("MULCH_GC_HEAP_GROWTH");
    mt_env_ignore("MULCH_GC_MARKERS");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_create_report_names_what_is_used),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
