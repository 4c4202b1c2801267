/* test_gc_collection_events_threads.c — the collection callback
 * (gc_set_collection_callback) with several threads: it runs on whichever
 * thread collects, once a collection, serialized with the others (so its
 * context needs no lock of its own), and a callback set or removed while
 * other threads collect takes effect between two collections, never
 * within one: each collection's call goes to exactly the callback set
 * when its report began, and none after the callback was removed.
 *
 * Deterministic in what it checks: which thread collects, and how the
 * setting interleaves with collections, vary from run to run; the
 * invariants do not. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367637402)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "mulch_test.h"

enum { MAX_CALLS = 1 << 16, WORKERS = 2 };

/* One callback's calls: their sequence numbers and whether each ran on
 * the thread `collector` names (when it is set). Written by the callback
 * only, under the heap's lock; read after the writers were joined. */
typedef struct calls {
    uint64_t sequence[MAX_CALLS];
    size_t count;
    pthread_t collector;
    bool check_collector;
    size_t elsewhere; /* calls on another thread than `collector` */
} calls_t;

static void record_call(const gc_collection_info_t *info, void *ctx)
{
    calls_t *c = ctx;
    if (c->count < MAX_CALLS) c->sequence[c->count] = info->sequence;
    c->count++;
    if (c->check_collector && !pthread_equal(pthread_self(), c->collector)) c->elsewhere++;
}

static calls_t *calls_new(void)
{
    calls_t *c = calloc(1, sizeof *c);
    EXPECT_NONNULL(c);
    return c;
}

/* ---- a collecting thread other than the main one -------------------------- */

typedef struct worker {
    gc_heap_t *heap;
    calls_t *calls;
    size_t collections_wanted;
} worker_t;

/* Collects twice with gc_collect, then allocates garbage until the
 * callback saw collections_wanted calls (each on this thread). */
static void *collect_on_worker(void *arg)
{
    worker_t *w = arg;
    /* (the callback, which reads these, runs on this thread until the
     * main thread joins it) */
    w->calls->collector = pthread_self();
    w->calls->check_collector = true;
    gc_thread_t *t = gc_thread_attach(w->heap);
    gc_collect(t);
    gc_collect(t);
    for (size_t i = 0; i < 4000000 && w->calls->count < w->collections_wanted; i++)
        if (gc_alloc(t, &T_RAW, 200) == NULL) break;
    gc_thread_detach(t);
    return NULL;
}

/* A thread the main one started collects (the main thread, attached, waits
 * in a blocking region): every call runs on it, numbered as the stats
 * count, with gc_collect's and allocation's reasons. */
static void test_events_callback_on_other_thread(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_NEVER);
    gc_thread_t *main_thread = gc_thread_attach(h);
    calls_t *c = calls_new();
    worker_t w = { h, c, 6 };
    gc_stats_t before = stats_of(h);
    gc_set_collection_callback(h, record_call, c);
    pthread_t id;
    EXPECT_EQ(pthread_create(&id, NULL, collect_on_worker, &w), 0);
    gc_enter_blocking(main_thread);
    EXPECT_EQ(pthread_join(id, NULL), 0);
    gc_leave_blocking(main_thread);
    gc_stats_t after = stats_of(h);
    print_message("  %zu calls, %zu elsewhere\n", c->count, c->elsewhere);
    EXPECT_GE(c->count, w.collections_wanted);
    EXPECT_NE(pthread_equal(c->collector, id), 0);
    EXPECT_EQ(c->elsewhere, 0);
    EXPECT_LE(c->count, after.collections - before.collections);
    for (size_t i = 1; i < c->count; i++) EXPECT_EQ(c->sequence[i], c->sequence[i - 1] + 1);
    EXPECT_EQ(c->sequence[c->count - 1], after.collections);

    /* and back on the main thread, which collects now */
    c->collector = pthread_self();
    size_t calls_before = c->count;
    gc_collect(main_thread);
    EXPECT_EQ(c->count, calls_before + 1);
    EXPECT_EQ(c->elsewhere, 0);
    gc_thread_detach(main_thread);
    gc_heap_destroy(h);
    free(c);
    EXPECT_NO_REPORTS(r0);
}

/* ---- setting the callback while other threads collect --------------------- */

typedef struct churner {
    gc_heap_t *heap;
    atomic_bool *stop;
} churner_t;

/* Allocates garbage (so collects now and then) until told to stop. */
static void *churn_until_stopped(void *arg)
{
    churner_t *ch = arg;
    gc_thread_t *t = gc_thread_attach(ch->heap);
    unsigned n = 0;
    while (!atomic_load_explicit(ch->stop, memory_order_relaxed)) {
        if (gc_alloc(t, &T_RAW, 96 + (n++ % 8) * 64) == NULL) break;
        if (n % 4096 == 0) gc_collect(t);
    }
    gc_thread_detach(t);
    return NULL;
}

/* Every collection's sequence number is in at most one callback's calls,
 * and each callback's are increasing. */
static void expect_disjoint_and_ordered(const calls_t *a, const calls_t *b, uint64_t collections)
{
    static unsigned char owner[MAX_CALLS * 4];
    memset(owner, 0, sizeof owner);
    const calls_t *both[] = { a, b };
    for (int k = 0; k < 2; k++) {
        const calls_t *c = both[k];
        EXPECT_LE(c->count, MAX_CALLS);
        for (size_t i = 0; i < c->count; i++) {
            uint64_t s = c->sequence[i];
            EXPECT_GE(s, 1);
            EXPECT_LE(s, collections);
            if (i > 0) EXPECT_LT(c->sequence[i - 1], s);
            if (s < sizeof owner) {
                if (owner[s] != 0) T_FAIL("collection %llu reported to two callbacks", (unsigned long long)s);
                owner[s] = (unsigned char)(k + 1);
            }
        }
    }
}

/* The main thread (not attached) switches the callback among two
 * recorders and none while two threads collect: no collection reaches
 * two of them, none is reported twice, none after the last removal; the
 * callback set last gets the next collection. ThreadSanitizer checks
 * that the recorders' writes are ordered by the heap's lock. */
static void test_events_callback_set_while_collecting(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_NEVER);
    calls_t *a = calls_new(), *b = calls_new();
    atomic_bool stop = false;
    churner_t ch = { h, &stop };
    pthread_t ids[WORKERS];
    for (int i = 0; i < WORKERS; i++) EXPECT_EQ(pthread_create(&ids[i], NULL, churn_until_stopped, &ch), 0);
    /* until the churners collected `wanted` times (at most 60 s), and at
     * least 3000 switches; yielding now and then, so that on a loaded
     * host this loop does not keep the churners off the CPUs */
    uint64_t wanted = scaled(2000, 200), collections_seen = 0;
    size_t switches = 0;
    struct timespec began;
    clock_gettime(CLOCK_MONOTONIC, &began);
    for (size_t i = 0; i < 3000 || collections_seen < wanted; i++, switches++) {
        switch (i % 3) {
        case 0: gc_set_collection_callback(h, record_call, a); break;
        case 1: gc_set_collection_callback(h, record_call, b); break;
        default: gc_set_collection_callback(h, NULL, NULL); break;
        }
        if (i % 64 == 0) {
            gc_stats_t s;
            gc_get_stats(h, &s);
            collections_seen = s.collections;
            sched_yield();
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - began.tv_sec > 60) break;
        }
    }
    /* removed for good: no call from here on */
    gc_set_collection_callback(h, NULL, NULL);
    gc_stats_t at_removal = stats_of(h);
    atomic_store(&stop, true);
    for (int i = 0; i < WORKERS; i++) EXPECT_EQ(pthread_join(ids[i], NULL), 0);
    gc_stats_t end = stats_of(h);
    print_message("  %zu switches, %llu collections (%llu before the last removal): %zu to a, %zu to b\n",
                  switches, (unsigned long long)end.collections, (unsigned long long)at_removal.collections,
                  a->count, b->count);
    EXPECT_GE(at_removal.collections, wanted);
    /* (how many each recorder got depends on timing: a host that keeps
     * this thread off the CPU may leave one without any) */
    /* (numbers up to at_removal's only: the collections after the
     * removal reached neither) */
    expect_disjoint_and_ordered(a, b, at_removal.collections);

    /* the callback set last gets the next collection, numbered as counted */
    size_t before = b->count;
    gc_set_collection_callback(h, record_call, b);
    gc_thread_t *t = gc_thread_attach(h);
    gc_collect(t);
    EXPECT_EQ(b->count, before + 1);
    EXPECT_EQ(b->sequence[b->count - 1], stats_of(h).collections);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(a);
    free(b);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_collection_events_threads");
    mt_env_ignore_policy();
    mt_env_ignore("MULCH_GC_COMPACT");
    mt_env_ignore("MULCH_GC_GENERATIONAL");
    mt_env_ignore("MULCH_GC_MARKERS");
    mt_env_ignore("MULCH_GC_LOG");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_events_callback_on_other_thread),
        T(test_events_callback_set_while_collecting),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
