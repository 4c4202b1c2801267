/* test_gc_verify_handler.c — gc_verify's reports and the error handler:
 * an error handler called by gc_verify runs with the world stopped and
 * the heap's lock held, so a mulch call from it must be reported and
 * refused (docs/gc.md, "Writing trace functions": "The same holds ... in
 * an error handler called during a collection, gc_verify or
 * gc_report_bridge_cycles"), not wait for that lock for ever.
 *
 * Deterministic: no randomness. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7665726966790016)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>

#include <pthread.h>
#include <time.h>

#include "mulch_test.h"

static const gc_type_t T_LEAF = { "leaf", NULL, NULL };

typedef struct verify_run {
    gc_heap_t *heap;
    size_t problems;
    unsigned long nested;      /* reports made by the handler's own calls */
    size_t nested_verify;      /* what the handler's gc_verify returned */
    gc_stats_t nested_stats;   /* what the handler's gc_get_stats wrote */
} verify_run_t;

static verify_run_t *g_run;
static _Thread_local int g_in_handler;

/* Records every report (rec_handler); on gc_verify's first one, calls
 * gc_get_stats and gc_verify of the same heap, as an unaware handler
 * might. */
static void calling_handler(const char *what, const void *ptr, void *ctx)
{
    rec_handler(what, ptr, ctx);
    if (g_in_handler || strncmp(what, "gc_verify:", 10) != 0) return;
    g_in_handler = 1;
    unsigned long before = rec_count();
    memset(&g_run->nested_stats, 0xCD, sizeof g_run->nested_stats);
    gc_get_stats(g_run->heap, &g_run->nested_stats);
    g_run->nested_verify = gc_verify(g_run->heap);
    g_run->nested += rec_count() - before;
    g_in_handler = 0;
}

static void *verifier(void *arg)
{
    verify_run_t *run = arg;
    run->problems = gc_verify(run->heap);
    return NULL;
}

/* A root holds a dead object: gc_verify reports it, and the handler's
 * gc_get_stats and gc_verify are each refused with one report (they used
 * to wait for the heap's lock, which the verifying thread held: a
 * deadlock). The verify runs on a thread of its own so that a deadlock
 * fails the test instead of hanging it. */
static void test_gc_verify_handler_calls_refused(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = gc_alloc(t, &T_LEAF, 32);
    gc_push_root(t, &keep);
    void *dead = gc_alloc(t, &T_LEAF, 32);
    EXPECT_NONNULL(keep);
    EXPECT_NONNULL(dead);
    gc_collect(t); /* frees dead */
    void *stale = dead;
    gc_root_add(h, &stale);
    gc_pop_roots(t, 1);
    gc_thread_detach(t); /* (an attached thread would hold up the stop) */

    verify_run_t run = { h, 0, 0, 0, { 0 } };
    g_run = &run;
    mulch_error_fn previous = mulch_set_error_handler(calling_handler, &g_ctx_token);
    pthread_t th;
    if (pthread_create(&th, NULL, verifier, &run) != 0) T_FAIL("pthread_create failed");
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    if (pthread_timedjoin_np(th, NULL, &until) != 0)
        T_FAIL("gc_get_stats from gc_verify's error handler deadlocked (the heap is left as it is)");
    mulch_set_error_handler(previous, &g_ctx_token);

    EXPECT_EQ(run.problems, 1);
    EXPECT_EQ(run.nested, 2);             /* gc_get_stats's and gc_verify's refusals */
    EXPECT_EQ(run.nested_verify, 1);      /* refused: one problem, reported */
    EXPECT_EQ(run.nested_stats.collections, 0); /* refused: *out zeroed */
    EXPECT_EQ(run.nested_stats.heap_bytes, 0);
    EXPECT_EQ(rec_count() - r0, 3);

    /* the heap is intact */
    gc_root_remove(h, &stale);
    unsigned long r1 = rec_count();
    EXPECT_VERIFY(h);
    gc_stats_t st = stats_of(h);
    EXPECT_EQ(st.collections, 1);
    EXPECT_NO_REPORTS(r1);
    gc_heap_destroy(h);
}

/* ---- reports made while the heap's lock is held, outside collections ---- */

static gc_heap_t *g_stats_heap;
static gc_stats_t g_handler_stats;
static int g_handler_stats_calls;

/* On a "not a live object" report, reads the heap's statistics, as a
 * handler that logs them might: outside a collection that is allowed. */
static void stats_handler(const char *what, const void *ptr, void *ctx)
{
    rec_handler(what, ptr, ctx);
    if (strstr(what, "not a live object") == NULL) return;
    gc_get_stats(g_stats_heap, &g_handler_stats);
    g_handler_stats_calls++;
}

static void *pin_and_hash(void *stale)
{
    gc_pin(g_stats_heap, stale);
    (void)gc_identity_hash(stale);
    return NULL;
}

/* gc_pin and gc_identity_hash of a dead object report it: they used to do
 * so with the heap's lock held, so a handler calling gc_get_stats waited
 * for that lock for ever. Run on a thread of their own, with a timed
 * join. (Where a collection released the dead object's whole span, as
 * GC_COMPACT_ALWAYS may, the reports say "not a GC object" instead, made
 * without the lock.) */
static void test_not_live_reports_let_handler_call_back(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = gc_alloc(t, &T_LEAF, 32);
    gc_push_root(t, &keep);
    void *dead = gc_alloc(t, &T_LEAF, 32);
    EXPECT_NONNULL(dead);
    gc_collect(t); /* frees dead */
    void *stale = dead;
    unsigned long r0 = rec_count();
    g_stats_heap = h;
    g_handler_stats_calls = 0;
    memset(&g_handler_stats, 0, sizeof g_handler_stats);
    mulch_error_fn previous = mulch_set_error_handler(stats_handler, &g_ctx_token);
    gc_enter_blocking(t); /* the other thread needs no stop, but may not wait for us */
    pthread_t th;
    if (pthread_create(&th, NULL, pin_and_hash, stale) != 0) T_FAIL("pthread_create failed");
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    if (pthread_timedjoin_np(th, NULL, &until) != 0)
        T_FAIL("gc_get_stats from the handler of a 'not a live object' report deadlocked");
    gc_leave_blocking(t);
    mulch_set_error_handler(previous, &g_ctx_token);
    EXPECT_EQ(rec_count() - r0, 2); /* gc_pin's and gc_identity_hash's */
    if (g_handler_stats_calls != 0) {
        EXPECT_EQ(g_handler_stats_calls, 2);
        EXPECT_EQ(g_handler_stats.collections, 1); /* the call ran */
    }
    gc_pop_roots(t, 1);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_verify_handler");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_verify_handler_calls_refused),
        T(test_not_live_reports_let_handler_call_back),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
