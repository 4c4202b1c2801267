/* test_gc_review_s25_g_threads.c — attacks on the heap's cache of
 * detached thread records (gc/thread.c: records reused by the next
 * attach, at most GC_THREAD_CACHE per heap; a detaching thread's bins
 * hand their spans back).
 *
 *   - threads attach to heap A and B alternately while the main thread
 *     collects both; each attachment roots more slots than a root stack's
 *     first size (the record's stack grew: reused, it must still hold
 *     them), pins an object and keeps a weak reference to it, and leaves
 *     a finalizable object behind; every third attachment detaches from
 *     inside a blocking region; at the end every thread exits attached
 *     to both heaps with roots pushed. Every rooted and pinned object
 *     survives intact, weak references still name their targets, every
 *     finalizable object is finalized exactly once, gc_verify is clean;
 *   - gc_heap_destroy while threads sit detached from the heap (their
 *     records in its cache), after which they attach to another heap.
 *
 * Deterministic per thread; MULCH_TEST_QUICK=1 runs fewer cycles. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7332356774687264)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>

#include "mulch_test.h"

enum { WORKERS = 4, DEEP = 1500 }; /* DEEP > the root stack's first 1024 */

typedef struct worker {
    gc_heap_t *heaps[2];
    int        index;
    size_t     cycles;
    /* registered roots of heap k (gc_root_add by main): the last pinned
     * object and a weak reference to it */
    void      *pinned[2], *weak[2];
    uint64_t   pinned_id[2];
    size_t     finalizable;        /* T_FIN objects made (ids below) */
} worker_t;

static atomic_int workers_done;

static uint64_t fin_id(int worker, size_t k) { return 1 + (uint64_t)worker * 1000 + k; }

/* One attachment's work on heap k: DEEP rooted objects checked after more
 * allocation, a pinned object with a weak reference, a finalizable
 * object dropped. Leaves the roots pushed; returns the record. */
static gc_thread_t *attachment(worker_t *w, int k, void **deep, uint64_t tag)
{
    gc_thread_t *t = gc_thread_attach(w->heaps[k]);
    if (t == NULL) {
        AFAIL("worker %d: attach failed", w->index);
        return NULL;
    }
    for (size_t i = 0; i < DEEP; i++) {
        deep[i] = NULL;
        gc_push_root(t, &deep[i]);
    }
    for (size_t i = 0; i < DEEP; i++) deep[i] = mk_async(t, &T_PLAIN, tag + i, 1);
    if (w->finalizable < 1000) (void)mk_async(t, &T_FIN, fin_id(w->index, w->finalizable++), 1);
    void *pin = mk_async(t, &T_PLAIN, tag + DEEP, 2);
    if (pin != NULL) {
        gc_pin(w->heaps[k], pin);
        void *weak = gc_weak_new(t, pin);
        if (weak == NULL) AFAIL("worker %d: gc_weak_new failed", w->index);
        /* (registered roots, read by collections, which cannot run while
         * this thread runs: plain stores) */
        void *old = w->pinned[k];
        w->pinned[k] = pin;
        w->pinned_id[k] = tag + DEEP;
        w->weak[k] = weak;
        if (old != NULL) gc_unpin(w->heaps[k], old);
    }
    for (int k2 = 0; k2 < 64; k2++) (void)mk_async(t, &T_PLAIN, 0, 16); /* may collect */
    for (size_t i = 0; i < DEEP; i++)
        if (obj_problem(deep[i], tag + i) != NULL) {
            AFAIL("worker %d: rooted slot %zu of %d damaged", w->index, i, DEEP);
            break;
        }
    return t;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    void **deep = calloc(2 * DEEP, sizeof *deep);
    if (deep == NULL) return NULL;
    for (size_t c = 0; c < w->cycles; c++) {
        int k = (int)((c + (size_t)w->index) % 2);
        uint64_t tag = ((uint64_t)w->index << 40) | ((uint64_t)c << 16);
        gc_thread_t *t = attachment(w, k, deep, tag);
        if (t == NULL) break;
        gc_pop_roots(t, DEEP);
        /* every third time, detach from inside a blocking region */
        if (c % 3 == 0) gc_enter_blocking(t);
        gc_thread_detach(t);
    }
    /* exit attached to both heaps, roots pushed */
    uint64_t tag = ((uint64_t)w->index << 40) | ((uint64_t)0xffff << 16);
    gc_thread_t *t0 = attachment(w, 0, deep, tag);
    /* runs in one heap at a time: blocking in A while it works in B */
    if (t0 != NULL) gc_enter_blocking(t0);
    (void)attachment(w, 1, deep + DEEP, tag + 0x8000);
    atomic_fetch_add(&workers_done, 1);
    /* the exit hook drops the roots; main frees deep after the join */
    return deep;
}

/* Main runs in heap `running` and blocks in the other: swaps the two
 * (gc.md: enter the blocking region of the heap left, then leave the
 * other's). Returns the heap it now runs in. */
static int switch_heap(gc_thread_t *main_t[2], int running)
{
    gc_enter_blocking(main_t[running]);
    gc_leave_blocking(main_t[1 - running]);
    return 1 - running;
}

static void test_threads_alternate_heaps_and_exit_attached(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    atomic_store(&workers_done, 0);
    gc_heap_t *heaps[2] = { heap_new(512 * KiB, 0, GC_COMPACT_AUTO), heap_new(512 * KiB, 0, GC_COMPACT_AUTO) };
    static worker_t w[WORKERS];
    pthread_t th[WORKERS];
    size_t cycles = scaled(40, 8);
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (worker_t){ .heaps = { heaps[0], heaps[1] }, .index = i, .cycles = cycles };
        for (int k = 0; k < 2; k++) {
            gc_root_add(heaps[k], &w[i].pinned[k]);
            gc_root_add(heaps[k], &w[i].weak[k]);
        }
    }
    /* main runs in one heap at a time, blocking in the other */
    gc_thread_t *main_t[2];
    main_t[0] = gc_thread_attach(heaps[0]);
    gc_enter_blocking(main_t[0]);
    main_t[1] = gc_thread_attach(heaps[1]);
    int running = 1;
    for (int i = 0; i < WORKERS; i++) EXPECT_EQ(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    while (atomic_load(&workers_done) < WORKERS) {
        gc_collect(main_t[running]);
        running = switch_heap(main_t, running);
    }
    for (int i = 0; i < WORKERS; i++) {
        void *deep = NULL;
        pthread_join(th[i], &deep);
        free(deep);
    }
    EXPECT_NO_ASYNC_FAILURES();
    size_t finalizable = 0;
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 2; k++) {
            if (k != running) running = switch_heap(main_t, running);
            gc_collect(main_t[k]);
            EXPECT_VERIFY(heaps[k]);
            for (int i = 0; i < WORKERS; i++) {
                EXPECT_OBJ(w[i].pinned[k], w[i].pinned_id[k]);
                if (gc_weak_get(w[i].weak[k]) != w[i].pinned[k])
                    T_FAIL("worker %d heap %d: weak reference lost its pinned target", i, k);
            }
        }
    for (int i = 0; i < WORKERS; i++) {
        finalizable += w[i].finalizable;
        for (size_t f = 0; f < w[i].finalizable; f++) EXPECT_FIN(fin_id(i, f), 1);
    }
    if (atomic_load(&g_fin_total) != finalizable)
        T_FAIL("%u finalized, %zu finalizable made", (unsigned)atomic_load(&g_fin_total), finalizable);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < WORKERS; i++) {
            gc_unpin(heaps[k], w[i].pinned[k]);
            gc_root_remove(heaps[k], &w[i].pinned[k]);
            gc_root_remove(heaps[k], &w[i].weak[k]);
        }
    }
    /* detach from the blocking one first, then destroy both */
    gc_thread_detach(main_t[1 - running]);
    gc_thread_detach(main_t[running]);
    for (int k = 0; k < 2; k++) gc_heap_destroy(heaps[k]);
    EXPECT_NO_REPORTS(r0);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ---- gc_heap_destroy while threads sit detached --------------------------- */

typedef struct sitter {
    gc_heap_t  *first;
    gc_heap_t  *_Atomic second;
    atomic_int *detached;
    int         index;
} sitter_t;

static void *sitter_main(void *arg)
{
    sitter_t *s = arg;
    gc_thread_t *t = gc_thread_attach(s->first);
    if (t == NULL) {
        AFAIL("sitter %d: attach failed", s->index);
        return NULL;
    }
    void *keep = mk_async(t, &T_PLAIN, 42, 4);
    gc_push_root(t, &keep);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    atomic_fetch_add(s->detached, 1);
    gc_heap_t *next;
    while ((next = atomic_load(&s->second)) == NULL) sched_yield();
    t = gc_thread_attach(next);
    if (t == NULL) {
        AFAIL("sitter %d: second attach failed", s->index);
        return NULL;
    }
    keep = mk_async(t, &T_PLAIN, 43 + (uint64_t)s->index, 4);
    gc_push_root(t, &keep);
    gc_collect(t);
    if (obj_problem(keep, 43 + (uint64_t)s->index) != NULL) AFAIL("sitter %d: rooted object damaged", s->index);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

static void test_destroy_with_detached_threads(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    enum { SITTERS = 12 }; /* more than the cache holds */
    for (int round = 0; round < (int)scaled(4, 2); round++) {
        gc_heap_t *first = heap_new(256 * KiB, 0, GC_COMPACT_AUTO);
        atomic_int detached = 0;
        sitter_t s[SITTERS];
        pthread_t th[SITTERS];
        for (int i = 0; i < SITTERS; i++) {
            s[i] = (sitter_t){ .first = first, .detached = &detached, .index = i };
            atomic_store(&s[i].second, NULL);
            EXPECT_EQ(pthread_create(&th[i], NULL, sitter_main, &s[i]), 0);
        }
        while (atomic_load(&detached) < SITTERS) sched_yield();
        gc_heap_destroy(first);
        gc_heap_t *second = heap_new(256 * KiB, 0, GC_COMPACT_AUTO);
        for (int i = 0; i < SITTERS; i++) atomic_store(&s[i].second, second);
        for (int i = 0; i < SITTERS; i++) pthread_join(th[i], NULL);
        gc_thread_t *t = gc_thread_attach(second);
        gc_collect(t);
        EXPECT_VERIFY(second);
        gc_thread_detach(t);
        gc_heap_destroy(second);
    }
    EXPECT_NO_REPORTS(r0);
    EXPECT_NO_ASYNC_FAILURES();
}

int main(void)
{
    mt_init("test_gc_review_s25_g_threads");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_threads_alternate_heaps_and_exit_attached),
        T(test_destroy_with_detached_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
