/* test_gc_review_s20_collector.c — review session 20 (the collector's
 * leftovers): regressions for bugs found there. (gc_type_of/gc_size_of
 * on a headerless cell an object moved out of: test_gc_review_s17.) */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7332305f67636f6c)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "mulch_test.h"

/* ---- reports from a heap-walk callback name the pointer passed --------- */

#define WALK_CALLS 6

static struct {
    gc_heap_t *h;
    gc_thread_t *t;
    void *obj;
    bool done;
    unsigned long reports[WALK_CALLS];
    const void *ptr[WALK_CALLS];
} g_walk;

static void walk_calls_mulch(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)type;
    (void)size;
    (void)ctx;
    if (g_walk.done || obj != g_walk.obj) return;
    g_walk.done = true;
    for (int k = 0; k < WALK_CALLS; k++) {
        unsigned long r = rec_count();
        switch (k) {
        case 0: (void)gc_identity_hash(obj); break;
        case 1: gc_pin(g_walk.h, obj); break;
        case 2: gc_collect(g_walk.t); break;
        case 3: gc_safepoint(g_walk.t); break;
        case 4: (void)gc_heap_get_userdata(g_walk.h); break;
        case 5: (void)gc_weak_new(g_walk.t, obj); break;
        }
        g_walk.reports[k] = rec_count() - r;
        rec_last(NULL, 0, &g_walk.ptr[k]);
    }
}

/* The report "called from a trace function, ..." gave ptr NULL for
 * gc_identity_hash, gc_safepoint and every call refused through the heap
 * or thread checks: api.md says ptr is the pointer the caller passed. */
static void test_refused_from_walk_names_pointer(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    memset(&g_walk, 0, sizeof g_walk);
    g_walk.h = h;
    g_walk.t = t;
    g_walk.obj = mk(t, &T_PLAIN, 1, 0);
    gc_push_root(t, &g_walk.obj);
    EXPECT_GE(gc_heap_walk(h, walk_calls_mulch, NULL), 1);
    if (!g_walk.done) T_FAIL("the walk did not visit the rooted object");
    static const char *const names[WALK_CALLS] = { "gc_identity_hash", "gc_pin",   "gc_collect",
                                                   "gc_safepoint",     "gc_heap_get_userdata", "gc_weak_new" };
    const void *want[WALK_CALLS] = { g_walk.obj, h, t, t, h, t };
    for (int k = 0; k < WALK_CALLS; k++) {
        if (k == 3 && g_walk.reports[k] == 0) continue; /* no stop requested: nothing to refuse */
        if (g_walk.reports[k] != 1 || g_walk.ptr[k] != want[k])
            T_FAIL("%s from a heap-walk callback: %lu reports, ptr %p, want 1 naming %p", names[k],
                   g_walk.reports[k], g_walk.ptr[k], want[k]);
    }
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* ---- gc_collect waiting for another thread's finalizer run ------------- */

static struct {
    gc_heap_t *h;
    gc_thread_t *t;              /* the finalizing thread's record */
    atomic_bool in_finalizer;    /* the finalizer is waiting */
    atomic_bool collected;       /* the other thread's gc_collect returned */
    atomic_bool waited_out;      /* the finalizer gave up waiting */
} g_wait;

static bool wait_flag(atomic_bool *flag, double seconds)
{
    struct timespec step = { 0, 1000000 };
    for (long i = 0; i < (long)(seconds * 1000); i++) {
        if (atomic_load(flag)) return true;
        nanosleep(&step, NULL);
    }
    return atomic_load(flag);
}

/* Waits, in a blocking region, for another thread's gc_collect. */
static void fin_waits_for_collect(void *obj)
{
    (void)obj;
    gc_enter_blocking(g_wait.t);
    atomic_store(&g_wait.in_finalizer, true);
    if (!wait_flag(&g_wait.collected, 5.0)) atomic_store(&g_wait.waited_out, true);
    gc_leave_blocking(g_wait.t);
}
static const gc_type_t T_FIN_WAITS = { "test.fin_waits", trace_tobj, fin_waits_for_collect };

static void *collector_thread(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_wait.h);
    if (t == NULL) return NULL;
    gc_enter_blocking(t);
    if (wait_flag(&g_wait.in_finalizer, 5.0)) {
        gc_leave_blocking(t);
        gc_collect(t); /* finds nothing new to finalize */
        atomic_store(&g_wait.collected, true);
    } else {
        gc_leave_blocking(t);
    }
    gc_thread_detach(t);
    return NULL;
}

/* A gc_collect whose collection made no finalizer pending waited for
 * another thread's finalizer run to end: a finalizer waiting (in a
 * blocking region) for that gc_collect deadlocked. gc.md promises only
 * that the finalizers made pending by its own collection have run. */
static void test_collect_does_not_wait_for_others_finalizers(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    memset(&g_wait, 0, sizeof g_wait);
    g_wait.h = h;
    g_wait.t = t;
    (void)mk(t, &T_FIN_WAITS, 1, 0); /* garbage at once */
    pthread_t other;
    EXPECT_EQ(pthread_create(&other, NULL, collector_thread, NULL), 0);
    gc_collect(t); /* runs the finalizer here, which waits for `other` */
    pthread_join(other, NULL);
    if (atomic_load(&g_wait.waited_out))
        T_FAIL("the other thread's gc_collect waited for this thread's finalizer, which waited for it");
    if (!atomic_load(&g_wait.collected)) T_FAIL("the other thread never collected");
    EXPECT_NO_REPORTS(r0);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_review_s20_collector");
    mt_env_ignore("MULCH_GC_COMPACT");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_refused_from_walk_names_pointer),
        T(test_collect_does_not_wait_for_others_finalizers),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
