/* test_gc_thread_cache.c — cheap attach and detach (<mulch/gc.h>; docs:
 * gc.md "Threads", api.md gc_thread_attach / gc_thread_detach): a heap
 * keeps detached thread records for its next attaches (gc/thread.c).
 *
 *   - detach hands the spans of the thread's bins back to the heap: a
 *     thread attaching around a small task took a new span per class at
 *     every attach until the next collection (heap_bytes grew by a span a
 *     cycle, each one faulted in and zeroed);
 *   - attach/detach churn from several threads with rooted lists and
 *     collections in between: every rooted object survives intact, and
 *     gc_verify is clean;
 *   - a record recycled to another thread: the stale pointer of the
 *     thread that detached it is reported, once per call, and the new
 *     owner's attachment is untouched;
 *   - a recycled record starts clean: no roots (the old ones no longer
 *     keep anything alive), no blocking region, an empty finalizable list;
 *   - a stale gc_push_root on a cached record is reported, not stored.
 *
 * Deterministic per thread (seeded; the seed is printed); MULCH_TEST_QUICK=1
 * and sanitizer / valgrind builds run fewer cycles. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7468726561646361)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <pthread.h>
#include <stdbool.h>

#include "mulch_test.h"

static size_t heap_bytes_of(gc_heap_t *h)
{
    gc_stats_t s;
    gc_get_stats(h, &s);
    return s.heap_bytes;
}

/* ---- detach gives the bins' spans back ----------------------------------- */

static void test_detach_returns_spans(void **state)
{
    (void)state;
    TEST_START();
    /* no collection in the loop: only the detaches can give spans back */
    gc_heap_t *h = heap_new(64 * MiB, 0, GC_COMPACT_AUTO);
    unsigned long r0 = rec_count();
    size_t after_first = 0;
    enum { CYCLES = 256 };
    for (int i = 0; i < CYCLES; i++) {
        gc_thread_t *t = gc_thread_attach(h);
        EXPECT_NONNULL(t);
        (void)mk(t, &T_PLAIN, (uint64_t)i, 1);
        (void)mk(t, &T_RAW, (uint64_t)i, 40); /* a second class */
        gc_thread_detach(t);
        if (i == 0) after_first = heap_bytes_of(h);
    }
    size_t after_all = heap_bytes_of(h);
    print_message("  heap_bytes after 1 cycle %zu, after %d: %zu\n", after_first, CYCLES, after_all);
    /* 512 small objects fit the first spans of their two classes */
    if (after_all > 2 * after_first)
        T_FAIL("heap_bytes grew from %zu to %zu over %d attach/allocate/detach cycles", after_first, after_all,
               CYCLES);
    EXPECT_VERIFY(h);
    EXPECT_NO_REPORTS(r0);
    gc_heap_destroy(h);
}

/* ---- churn from several threads ------------------------------------------ */

#define CHURN_THREADS 4
#define LIST_LEN 6

typedef struct churner {
    gc_heap_t *heap;
    int        index;
    size_t     cycles;
} churner_t;

static void *global_keep[CHURN_THREADS]; /* a global root each: kept across attachments */

/* One task: attach, build a rooted list (ids derived from the thread, the
 * cycle and the seed), collect now and then, check it, detach (now and
 * then with the root still pushed). */
static void *churn_main(void *arg)
{
    churner_t *c = arg;
    rng_t rng = test_rng("churn", (uint64_t)c->index);
    for (size_t cycle = 0; cycle < c->cycles; cycle++) {
        gc_thread_t *t = gc_thread_attach(c->heap);
        if (t == NULL) {
            AFAIL("gc_thread_attach returned NULL");
            return NULL;
        }
        if (gc_root_depth(t) != 0) AFAIL("a new attachment has %zu roots", gc_root_depth(t));
        uint64_t base = (uint64_t)c->index << 40 | (uint64_t)cycle << 8;
        void *head = NULL;
        gc_push_root(t, &head);
        for (uint64_t k = 0; k < LIST_LEN; k++) {
            void *n = mk_async(t, rng_below(&rng, 4) == 0 ? &T_FIN : &T_PLAIN, base + k, (size_t)rng_below(&rng, 6));
            if (n == NULL) break;
            set_slot(t, n, 0, head);
            head = n;
        }
        if (rng_below(&rng, 3) == 0) gc_collect(t);
        uint64_t k = LIST_LEN;
        for (tobj_t *n = head; n; n = n->slot[0]) {
            const char *why = obj_problem(n, base + --k);
            if (why) {
                AFAIL("thread %d cycle %zu: list node %" PRIu64 " at %p: %s", c->index, cycle, k, (void *)n, why);
                break;
            }
        }
        if (k != 0) AFAIL("thread %d cycle %zu: list lost %" PRIu64 " nodes", c->index, cycle, k);
        if (cycle % 16 == 0) {
            /* a list that outlives the attachment, in a global root */
            void *keep = mk_async(t, &T_PLAIN, base | 0xff, 2);
            global_keep[c->index] = keep;
        }
        if (rng_below(&rng, 2) == 0) gc_pop_roots(t, 1); /* else: detached with the root pushed */
        gc_thread_detach(t);
    }
    return NULL;
}

static void test_churn_threads(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(256 * KiB, 0, GC_COMPACT_AUTO);
    unsigned long r0 = rec_count();
    fin_reset();
    for (int i = 0; i < CHURN_THREADS; i++) {
        global_keep[i] = NULL;
        gc_root_add(h, &global_keep[i]);
    }
    churner_t c[CHURN_THREADS];
    pthread_t th[CHURN_THREADS];
    size_t cycles = scaled(400, 60);
    for (int i = 0; i < CHURN_THREADS; i++) {
        c[i] = (churner_t){ h, i, cycles };
        EXPECT_EQ(pthread_create(&th[i], NULL, churn_main, &c[i]), 0);
    }
    for (int i = 0; i < CHURN_THREADS; i++) pthread_join(th[i], NULL);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_t *t = gc_thread_attach(h);
    gc_collect(t);
    for (int i = 0; i < CHURN_THREADS; i++) {
        uint64_t last = ((cycles - 1) / 16) * 16;
        EXPECT_OBJ(global_keep[i], (uint64_t)i << 40 | last << 8 | 0xff);
    }
    EXPECT_VERIFY(h);
    for (int i = 0; i < CHURN_THREADS; i++) gc_root_remove(h, &global_keep[i]);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ---- a stale record recycled to another thread ---------------------------- */

typedef struct holder {
    gc_heap_t  *heap;
    gc_thread_t *record;
    void       *rooted;          /* on the holder's root stack */
    atomic_int  stage;           /* 1: attached and rooted; 2: main is done */
    bool        still_current, root_intact;
    size_t      depth;
} holder_t;

static void *holder_main(void *arg)
{
    holder_t *hd = arg;
    gc_thread_t *t = gc_thread_attach(hd->heap);
    hd->record = t;
    gc_push_root(t, &hd->rooted);
    hd->rooted = mk_async(t, &T_PLAIN, 77, 3);
    /* main collects and misuses meanwhile: wait in a blocking region */
    gc_enter_blocking(t);
    atomic_store(&hd->stage, 1);
    while (atomic_load(&hd->stage) != 2) sched_yield();
    gc_leave_blocking(t);
    hd->still_current = gc_thread_current(hd->heap) == t;
    hd->depth = gc_root_depth(t);
    hd->root_intact = obj_problem(hd->rooted, 77) == NULL;
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

static void test_stale_record_recycled(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *stale = gc_thread_attach(h);
    gc_thread_detach(stale);
    holder_t hd = { .heap = h };
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, holder_main, &hd), 0);
    while (atomic_load(&hd.stage) != 1) sched_yield();
    /* the cache hands the last detached record to the next attach */
    EXPECT_PTR_EQ(hd.record, stale);
    unsigned long r0 = rec_count();
    gc_collect(stale);
    EXPECT_ONE_REPORT(r0, "gc_collect: not a thread attached by the calling thread", stale);
    unsigned long r1 = rec_count();
    gc_thread_detach(stale);
    EXPECT_ONE_REPORT(r1, "gc_thread_detach: not a thread attached by the calling thread", stale);
    unsigned long r2 = rec_count();
    EXPECT_EQ(gc_root_depth(stale), 0);
    EXPECT_ONE_REPORT(r2, "gc_root_depth: not a thread attached by the calling thread", stale);
    unsigned long r3 = rec_count();
    gc_enter_blocking(stale);
    EXPECT_ONE_REPORT(r3, "gc_enter_blocking: not a thread attached by the calling thread", stale);
    unsigned long r4 = rec_count();
    EXPECT_NULL(gc_alloc(stale, &T_PLAIN, tobj_size(200))); /* a slow-path size */
    EXPECT_ONE_REPORT(r4, "gc_alloc: not a thread attached by the calling thread", stale);
    EXPECT_NULL(gc_thread_current(h));
    /* a real collection from an attachment of main's own, with the holder's
     * object only on the holder's (recycled) root stack */
    gc_thread_t *mine = gc_thread_attach(h);
    if (mine == stale) T_FAIL("main's new record %p is the holder's", (void *)mine);
    gc_collect(mine);
    atomic_store(&hd.stage, 2);
    pthread_join(th, NULL);
    EXPECT_EQ(hd.still_current, true);
    EXPECT_EQ(hd.depth, 1);
    EXPECT_EQ(hd.root_intact, true);
    EXPECT_VERIFY(h);
    gc_thread_detach(mine);
    gc_heap_destroy(h);
    EXPECT_EQ(rec_count() - r0, 5);
}

/* ---- a recycled record starts clean ---------------------------------------- */

static void *g_left_root;           /* on the first attachment's stack when it detached */
static void *g_left_weak;

typedef struct reuser {
    gc_heap_t   *heap;
    gc_thread_t *record;
    size_t       depth;
    bool         allocated, weak_cleared;
} reuser_t;

static void *reuser_main(void *arg)
{
    reuser_t *r = arg;
    gc_thread_t *t = gc_thread_attach(r->heap);
    r->record = t;
    r->depth = gc_root_depth(t);
    /* a stale blocking depth would refuse these ("inside a blocking region") */
    r->allocated = gc_alloc(t, &T_PLAIN, tobj_size(1)) != NULL;
    gc_collect(t);
    r->weak_cleared = gc_weak_get(g_left_weak) == NULL;
    gc_thread_detach(t);
    return NULL;
}

static void test_recycled_record_clean(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    fin_reset();
    unsigned long r0 = rec_count();
    gc_thread_t *t = gc_thread_attach(h);
    g_left_root = mk(t, &T_FIN, 5, 2);
    gc_push_root(t, &g_left_root);
    g_left_weak = gc_weak_new(t, g_left_root);
    EXPECT_NONNULL(g_left_weak);
    gc_root_add(h, (void **)&g_left_weak);
    /* detached inside a blocking region, with the root pushed */
    gc_enter_blocking(t);
    gc_thread_detach(t);
    reuser_t r = { .heap = h };
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, reuser_main, &r), 0);
    pthread_join(th, NULL);
    EXPECT_PTR_EQ(r.record, t);
    EXPECT_EQ(r.depth, 0);
    EXPECT_EQ(r.allocated, true);
    /* the old root no longer keeps the object: its weak reference is
     * cleared and its finalizer ran once */
    EXPECT_EQ(r.weak_cleared, true);
    EXPECT_FIN(5, 1);
    EXPECT_NO_REPORTS(r0);
    gc_root_remove(h, (void **)&g_left_weak);
    gc_heap_destroy(h);
    EXPECT_FIN(5, 1);
    EXPECT_NO_REPORTS(r0);
}

/* ---- a stale push onto a cached record ------------------------------------- */

static void test_stale_push_on_cached_record(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *slot = NULL;
    gc_push_root(t, &slot); /* its root stack is mapped and cached with it */
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    unsigned long r0 = rec_count();
    gc_push_root(t, &slot);
    EXPECT_ONE_REPORT(r0, "gc_push_root: not a thread attached by the calling thread", t);
    gc_thread_t *again = gc_thread_attach(h);
    EXPECT_PTR_EQ(again, t);
    EXPECT_EQ(gc_root_depth(again), 0); /* the stale push was not stored */
    gc_thread_detach(again);
    gc_heap_destroy(h);
    EXPECT_EQ(rec_count() - r0, 1);
}

int main(void)
{
    mt_init("test_gc_thread_cache");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_detach_returns_spans),
        T(test_churn_threads),
        T(test_stale_record_recycled),
        T(test_recycled_record_clean),
        T(test_stale_push_on_cached_record),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
