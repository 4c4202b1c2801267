/* test_gc_review_s17_threads.c — session 17's review of the collector's
 * thread protocol (gc/thread.c, gc/collect.c, runtime/bridge.c's
 * gc_own_rc): calls made with a gc_thread_t the calling thread does not
 * hold are reported and ignored, never read through or counted as the
 * owner's stop; threads that end attached to several heaps leave them
 * while those heaps collect.
 *
 * Calls that could hang run on a helper thread joined with a time limit,
 * so that a regression fails the test instead of stalling it. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367631117)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <sched.h>
#include <stdbool.h>

#include "mulch_test.h"

#define HANG_LIMIT_S 20

static bool finishes(void *(*fn)(void *), void *arg)
{
    return mt_finishes_within(fn, arg, HANG_LIMIT_S);
}

/* ------------------------------------------------------------------------ */
/* gc_own_rc with a record the caller does not hold                          */

static atomic_int g_rc_destroyed;
static void rc_counted_destroy(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_rc_destroyed, 1);
}

/* A detached record is unmapped: gc_own_rc read its heap from it (a
 * crash), where gc_weak_new, gc_collect and the blocking calls report. */
static void test_own_rc_detached_record(void **state)
{
    (void)state;
    TEST_START();
    atomic_store(&g_rc_destroyed, 0);
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *owner = mk(t, &T_PLAIN, 1, 2);
    gc_root_add(h, &owner);
    void *rc = rc_alloc(32, rc_counted_destroy);
    EXPECT_NONNULL(rc);
    unsigned long r0 = rec_count();
    gc_thread_detach(t);
    EXPECT_NO_REPORTS(r0);
    EXPECT_EQ(gc_own_rc(t, owner, rc), -1);
    EXPECT_ONE_REPORT(r0, "gc_own_rc: not a thread attached by the calling thread", t);
    EXPECT_EQ(rc_count(rc), 1); /* nothing retained */
    t = gc_thread_attach(h);
    EXPECT_EQ(gc_own_rc(t, owner, rc), 0);
    rc_release(rc);
    gc_root_remove(h, &owner);
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_rc_destroyed), 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 1);
}

static gc_thread_t *g_foreign;
static void *g_foreign_owner, *g_foreign_rc;
static int g_foreign_result;

static void *own_rc_with_foreign_record(void *unused)
{
    (void)unused;
    g_foreign_result = gc_own_rc(g_foreign, g_foreign_owner, g_foreign_rc);
    return NULL;
}

/* Another thread's record: gc_own_rc's safepoint parked the owner's
 * record from the wrong thread while a collection was waiting, taking
 * the owner (still running) out of the count a second time. */
static void test_own_rc_other_threads_record(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    g_foreign = t;
    g_foreign_owner = mk(t, &T_PLAIN, 1, 2);
    gc_push_root(t, &g_foreign_owner);
    g_foreign_rc = rc_alloc(32, NULL);
    EXPECT_NONNULL(g_foreign_rc);
    g_foreign_result = 0;
    unsigned long r0 = rec_count();
    gc_enter_blocking(t); /* the helper may stop the world meanwhile */
    if (!finishes(own_rc_with_foreign_record, NULL)) T_FAIL("gc_own_rc with another thread's gc_thread_t hung");
    gc_leave_blocking(t);
    EXPECT_EQ(g_foreign_result, -1);
    EXPECT_ONE_REPORT(r0, "gc_own_rc: not a thread attached by the calling thread", t);
    EXPECT_EQ(rc_count(g_foreign_rc), 1);
    gc_collect(t);
    EXPECT_OBJ(g_foreign_owner, 1);
    EXPECT_VERIFY(h);
    rc_release(g_foreign_rc);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 1);
}

/* ------------------------------------------------------------------------ */
/* gc_safepoint with another thread's record while a collection waits        */

static gc_heap_t *g_sp_heap;
static gc_thread_t *g_sp_owner;

static uint64_t collections_of(gc_heap_t *h)
{
    gc_stats_t s;
    gc_get_stats(h, &s);
    return s.collections;
}

static void *collect_on_own_thread(void *unused)
{
    (void)unused;
    gc_thread_t *t = gc_thread_attach(g_sp_heap);
    if (t == NULL) return (void *)1;
    gc_collect(t);
    gc_thread_detach(t);
    return NULL;
}

/* Not attached: calls gc_safepoint with the owner's record until the
 * collection's stop is requested (a report), or it ended without one. */
static void *safepoint_with_owners_record(void *arg)
{
    unsigned long r0 = *(unsigned long *)arg;
    uint64_t c0 = collections_of(g_sp_heap);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        gc_safepoint(g_sp_owner);
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (rec_count() == r0 && collections_of(g_sp_heap) == c0 && now.tv_sec - start.tv_sec < 10);
    return NULL;
}

/* The collection waits for the owner, which runs (it is in pthread_join,
 * outside a blocking region): a gc_safepoint made with its record by
 * another thread parked the record, and the collection ran while the
 * owner was still running. */
static void test_safepoint_other_threads_record(void **state)
{
    (void)state;
    TEST_START();
    g_sp_heap = heap_new(0, 0, GC_COMPACT_AUTO);
    g_sp_owner = gc_thread_attach(g_sp_heap);
    void *keep = mk(g_sp_owner, &T_PLAIN, 7, 2);
    gc_push_root(g_sp_owner, &keep);
    uint64_t c0 = collections_of(g_sp_heap);
    unsigned long r0 = rec_count();
    pthread_t collector;
    if (pthread_create(&collector, NULL, collect_on_own_thread, NULL) != 0) T_FAIL("pthread_create");
    if (!finishes(safepoint_with_owners_record, &r0)) T_FAIL("gc_safepoint with another thread's record hung");
    EXPECT_ONE_REPORT(r0, "gc_safepoint: not a thread attached by the calling thread", g_sp_owner);
    EXPECT_EQ(collections_of(g_sp_heap), c0); /* still waiting for the owner */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += HANG_LIMIT_S;
    void *result = NULL;
    bool joined = false;
    while (!joined) {
        gc_safepoint(g_sp_owner); /* the owner stops: the collection runs */
        struct timespec soon = { 0, 1000 * 1000 };
        nanosleep(&soon, NULL);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        joined = pthread_tryjoin_np(collector, &result) == 0;
        if (!joined && now.tv_sec > until.tv_sec) {
            pthread_detach(collector);
            T_FAIL("the collection never ended");
        }
    }
    EXPECT_PTR_EQ(result, NULL);
    EXPECT_EQ(collections_of(g_sp_heap), c0 + 1);
    EXPECT_OBJ(keep, 7);
    EXPECT_VERIFY(g_sp_heap);
    gc_pop_roots(g_sp_owner, 1);
    gc_thread_detach(g_sp_owner);
    gc_heap_destroy(g_sp_heap);
    EXPECT_NO_REPORTS(r0 + 1);
}

/* ------------------------------------------------------------------------ */
/* Threads that end attached to two heaps while both heaps collect           */

static gc_heap_t *g_heaps[2];
static atomic_int g_exit_ready, g_exit_go;

/* Attached to both heaps, running in heaps[arg] and blocking in the other
 * (docs/gc.md "Several heaps"); attached to heaps[arg] first, so the exit
 * hook leaves the other heap first. Spins (a collection of heaps[arg] waits
 * for it) until told to end, then ends attached. */
static void *exit_attached_to_two_heaps(void *arg)
{
    int run = (int)(intptr_t)arg, other = 1 - run;
    gc_thread_t *mine = gc_thread_attach(g_heaps[run]);
    if (mine == NULL) return (void *)1;
    gc_enter_blocking(mine);
    gc_thread_t *theirs = gc_thread_attach(g_heaps[other]);
    if (theirs == NULL) return (void *)1;
    gc_enter_blocking(theirs);
    gc_leave_blocking(mine);
    atomic_fetch_add(&g_exit_ready, 1);
    while (!atomic_load(&g_exit_go)) sched_yield();
    return NULL; /* the exit hook detaches both */
}

static void *collect_one_heap(void *arg)
{
    gc_thread_t *t = gc_thread_attach(g_heaps[(intptr_t)arg]);
    if (t == NULL) return (void *)1;
    gc_collect(t);
    gc_thread_detach(t);
    return NULL;
}

/* Each exiting thread's hook waited, before leaving its blocking heap,
 * for that heap's collection while still running in its other heap,
 * whose collection waited for it: with two such threads in opposite
 * heaps, neither collection ever ended. */
static void test_exit_hooks_of_two_heaps_while_both_collect(void **state)
{
    (void)state;
    TEST_START();
    g_heaps[0] = heap_new(0, 0, GC_COMPACT_AUTO);
    g_heaps[1] = heap_new(0, 0, GC_COMPACT_AUTO);
    atomic_store(&g_exit_ready, 0);
    atomic_store(&g_exit_go, 0);
    unsigned long r0 = rec_count();
    pthread_t threads[4];
    for (intptr_t i = 0; i < 2; i++)
        if (pthread_create(&threads[i], NULL, exit_attached_to_two_heaps, (void *)i) != 0) T_FAIL("pthread_create");
    while (atomic_load(&g_exit_ready) < 2) sched_yield();
    for (intptr_t i = 0; i < 2; i++)
        if (pthread_create(&threads[2 + i], NULL, collect_one_heap, (void *)i) != 0) T_FAIL("pthread_create");
    /* both collections start, and wait for the spinning threads */
    struct timespec pause = { 0, 200 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    atomic_store(&g_exit_go, 1);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += HANG_LIMIT_S;
    bool hung = false;
    for (int i = 0; i < 4; i++) {
        void *result = NULL;
        if (pthread_timedjoin_np(threads[i], &result, &until) != 0) {
            hung = true;
            pthread_detach(threads[i]);
        } else if (result != NULL) {
            T_FAIL("thread %d failed", i);
        }
    }
    if (hung) T_FAIL("threads ending attached to two heaps hung with both heaps collecting");
    for (int h = 0; h < 2; h++) {
        EXPECT_PTR_EQ(gc_thread_current(g_heaps[h]), NULL);
        EXPECT_VERIFY(g_heaps[h]);
        gc_heap_destroy(g_heaps[h]);
    }
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_review_s17_threads");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_own_rc_detached_record),
        T(test_own_rc_other_threads_record),
        T(test_safepoint_other_threads_record),
        T(test_exit_hooks_of_two_heaps_while_both_collect),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
