/* test_gc_basic.c — black-box tests of the collector's public contract
 * (<mulch/gc.h>; docs: shared/API.md "GC" and "Errors and misuse"):
 * reachability from every root kind (global slot, range, per-thread root
 * stack, root callback, pin), cycles, a very deep list, tagged and foreign
 * values in slots, root removal, zeroed memory, object queries, statistics,
 * gc_verify, userdata and gc_thread_current.
 *
 * Death is observed through finalizers that record the id of the object
 * they run for; objects are only reached through rooted slots across GC
 * points (objects may move), except pinned ones.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b01)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

/* ------------------------------------------------------------------------ */
/* Heap lifecycle, userdata, gc_thread_current                               */

static void *other_thread_current(void *arg)
{
    gc_heap_t *h = arg;
    gc_thread_t *before = gc_thread_current(h);
    gc_thread_t *t = gc_thread_attach(h);
    gc_thread_t *during = gc_thread_current(h);
    gc_thread_detach(t);
    gc_thread_t *after = gc_thread_current(h);
    if (before != NULL) AFAIL("gc_thread_current before attach on a new thread = %p", (void *)before);
    if (t == NULL) AFAIL("gc_thread_attach on a second thread returned NULL");
    if (during != t) AFAIL("gc_thread_current = %p, attach returned %p", (void *)during, (void *)t);
    if (after != NULL) AFAIL("gc_thread_current after detach = %p", (void *)after);
    return t;
}

static void test_gc_heap_userdata_and_thread_current(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = gc_heap_create(NULL);
    EXPECT_NONNULL(h);
    gc_heap_t *h2 = heap_new(0, 0, GC_COMPACT_AUTO);

    int token1, token2;
    gc_heap_set_userdata(h, &token1);
    gc_heap_set_userdata(h2, &token2);
    EXPECT_PTR_EQ(gc_heap_get_userdata(h), &token1);
    EXPECT_PTR_EQ(gc_heap_get_userdata(h2), &token2);
    gc_heap_set_userdata(h, NULL);
    EXPECT_NULL(gc_heap_get_userdata(h));
    EXPECT_PTR_EQ(gc_heap_get_userdata(h2), &token2);

    EXPECT_NULL(gc_thread_current(h));
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    EXPECT_NULL(gc_thread_current(h2));

    gc_thread_t *t2 = gc_thread_attach(h2);
    EXPECT_NONNULL(t2);
    if (t2 == t) T_FAIL("one thread attached to two heaps got the same gc_thread_t %p", (void *)t);
    EXPECT_PTR_EQ(gc_thread_current(h2), t2);
    EXPECT_PTR_EQ(gc_thread_current(h), t);

    /* Another OS thread sees NULL until it attaches. */
    pthread_t th;
    void *their = NULL;
    gc_enter_blocking(t);
    EXPECT_EQ(pthread_create(&th, NULL, other_thread_current, h), 0);
    EXPECT_EQ(pthread_join(th, &their), 0);
    gc_leave_blocking(t);
    EXPECT_NO_ASYNC_FAILURES();
    if (their == (void *)t) T_FAIL("two OS threads got the same gc_thread_t %p", their);
    EXPECT_PTR_EQ(gc_thread_current(h), t);

    /* Objects work in both heaps; the heaps are independent. */
    void *a = NULL, *b = NULL;
    gc_root_add(h, &a);
    gc_root_add(h2, &b);
    a = mk(t, &T_PLAIN, 1, 3);
    b = mk(t2, &T_PLAIN, 2, 5);
    gc_collect(t);
    gc_collect(t2);
    EXPECT_OBJ(a, 1);
    EXPECT_OBJ(b, 2);
    gc_root_remove(h, &a);
    gc_root_remove(h2, &b);

    gc_thread_detach(t2);
    EXPECT_NULL(gc_thread_current(h2));
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    gc_thread_detach(t);
    EXPECT_NULL(gc_thread_current(h));

    /* Re-attaching after a detach works. */
    t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    a = mk(t, &T_PLAIN, 3, 1);
    EXPECT_OBJ(a, 3);
    gc_collect(t);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);

    gc_heap_destroy(h);
    gc_heap_destroy(h2);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* Reachability from each root kind                                          */

static void test_gc_root_global_slot(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        static void *g_slot;         /* a static slot */
        void *local = NULL;          /* a slot in this frame */
        g_slot = NULL;
        gc_root_add(h, &g_slot);
        gc_root_add(h, &local);
        g_slot = mk(t, &T_FIN, 1, 8);
        local = mk(t, &T_FIN, 2, 0);
        mk_child(t, &local, 0, &T_FIN, 3, 2);            /* child of a rooted object */
        (void)mk(t, &T_FIN, 4, 5);                      /* garbage */
        for (int round = 0; round < 3; round++) {
            for (int k = 0; k < 200; k++) (void)mk(t, &T_PLAIN, 100, 16); /* churn */
            gc_collect(t);
            EXPECT_OBJ(g_slot, 1);
            EXPECT_OBJ(local, 2);
            EXPECT_OBJ(slot_of(local, 0), 3);
            EXPECT_FIN(1, 0);
            EXPECT_FIN(2, 0);
            EXPECT_FIN(3, 0);
            EXPECT_FIN(4, 1);
            EXPECT_VERIFY(h);
        }
        gc_root_remove(h, &g_slot);
        gc_collect(t);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 0);
        EXPECT_OBJ(local, 2);
        local = NULL;                     /* clearing the slot kills the object */
        gc_collect(t);
        EXPECT_FIN(2, 1);
        EXPECT_FIN(3, 1);
        EXPECT_FIN(4, 1);
        gc_root_remove(h, &local);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

static void test_gc_root_range(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        enum { N = 64 };
        void **range = calloc(N, sizeof *range);
        EXPECT_NONNULL(range);
        gc_root_add_range(h, range, N);
        for (size_t i = 0; i < N; i++) {
            range[i] = mk(t, &T_FIN, 10 + i, i % 9);
            (void)mk(t, &T_FIN, 200 + i, 1); /* garbage in between */
        }
        gc_collect(t);
        for (size_t i = 0; i < N; i++) {
            EXPECT_OBJ(range[i], 10 + i);
            EXPECT_FIN(10 + i, 0);
            EXPECT_FIN(200 + i, 1);
        }
        /* The first, a middle and the last slot of the range are all roots. */
        range[0] = NULL;
        range[N / 2] = NULL;
        range[N - 1] = NULL;
        gc_collect(t);
        EXPECT_FIN(10, 1);
        EXPECT_FIN(10 + N / 2, 1);
        EXPECT_FIN(10 + N - 1, 1);
        for (size_t i = 1; i < N - 1; i++)
            if (i != N / 2) {
                EXPECT_OBJ(range[i], 10 + i);
                EXPECT_FIN(10 + i, 0);
            }
        EXPECT_VERIFY(h);
        /* gc_root_remove removes a range by its start. */
        gc_root_remove(h, range);
        gc_collect(t);
        for (size_t i = 0; i < N; i++) EXPECT_FIN(10 + i, 1);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        free(range);
        EXPECT_NO_REPORTS(r0);
    }
}

static void test_gc_root_thread_stack(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        size_t d0 = gc_root_depth(t);
        void *a = NULL, *b = NULL, *c = NULL;
        gc_push_root(t, &a);
        a = mk(t, &T_FIN, 1, 1);
        gc_push_root(t, &b);
        b = mk(t, &T_FIN, 2, 2);
        gc_push_root(t, &c);
        c = mk(t, &T_FIN, 3, 3);
        mk_child(t, &c, 1, &T_FIN, 4, 4);
        EXPECT_EQ(gc_root_depth(t), d0 + 3);
        gc_collect(t);
        EXPECT_OBJ(a, 1);
        EXPECT_OBJ(b, 2);
        EXPECT_OBJ(c, 3);
        EXPECT_OBJ(slot_of(c, 1), 4);
        for (uint64_t id = 1; id <= 4; id++) EXPECT_FIN(id, 0);

        gc_pop_roots(t, 1);                     /* c */
        EXPECT_EQ(gc_root_depth(t), d0 + 2);
        gc_collect(t);
        EXPECT_FIN(3, 1);
        EXPECT_FIN(4, 1);
        EXPECT_OBJ(a, 1);
        EXPECT_OBJ(b, 2);

        /* A nested frame unwound with gc_pop_roots_to. */
        size_t mark = gc_root_depth(t);
        enum { F = 50 };
        void *frame[F];
        for (size_t i = 0; i < F; i++) {
            frame[i] = NULL;
            gc_push_root(t, &frame[i]);
            frame[i] = mk(t, &T_FIN, 100 + i, i % 5);
            if (i > 0) set_slot(t, frame[i], 0, frame[i - 1]);
        }
        EXPECT_EQ(gc_root_depth(t), mark + F);
        gc_collect(t);
        for (size_t i = 0; i < F; i++) {
            EXPECT_OBJ(frame[i], 100 + i);
            if (i > 0) EXPECT_PTR_EQ(slot_of(frame[i], 0), frame[i - 1]);
        }
        gc_pop_roots_to(t, mark);
        EXPECT_EQ(gc_root_depth(t), mark);
        gc_collect(t);
        for (size_t i = 0; i < F; i++) EXPECT_FIN(100 + i, 1);
        EXPECT_OBJ(a, 1);
        EXPECT_OBJ(b, 2);
        EXPECT_FIN(1, 0);
        EXPECT_FIN(2, 0);

        /* The same slot pushed twice is fine; popping one push keeps it. */
        gc_push_root(t, &a);
        gc_pop_roots(t, 1);
        gc_collect(t);
        EXPECT_OBJ(a, 1);

        /* The inline push/pop of <mulch/gc.h> and the library functions
         * share one stack: interleaved, past the stack's first growth. */
        size_t mixed_mark = gc_root_depth(t);
        enum { M = 5000 };
        void **mixed = calloc(M, sizeof *mixed);
        if (mixed == NULL) fail();
        for (size_t i = 0; i < M; i++) {
            if (i % 3 == 0) (gc_push_root)(t, &mixed[i]);
            else gc_push_root(t, &mixed[i]);
            if (i % 500 == 0) mixed[i] = mk(t, &T_FIN, 200 + i / 500, 1);
        }
        EXPECT_EQ(gc_root_depth(t), mixed_mark + M);
        gc_collect(t);
        for (size_t i = 0; i < M; i += 500) EXPECT_OBJ(mixed[i], 200 + i / 500);
        for (size_t i = 0; i < M; i += 10) {
            if (i % 20 == 0) (gc_pop_roots)(t, 10);
            else gc_pop_roots(t, 10);
        }
        EXPECT_EQ(gc_root_depth(t), mixed_mark);
        gc_collect(t);
        for (size_t i = 0; i < M; i += 500) EXPECT_FIN(200 + i / 500, 1);
        free(mixed);

        gc_pop_roots_to(t, d0);
        EXPECT_EQ(gc_root_depth(t), d0);
        gc_collect(t);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* Another thread's root stack keeps its objects alive while it sits in a
 * blocking region and the main thread collects. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int phase;
    gc_heap_t *heap;
} g_ping = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL };

static void ping_set(int phase)
{
    pthread_mutex_lock(&g_ping.mu);
    g_ping.phase = phase;
    pthread_cond_broadcast(&g_ping.cv);
    pthread_mutex_unlock(&g_ping.mu);
}

static void ping_wait(int phase)
{
    pthread_mutex_lock(&g_ping.mu);
    while (g_ping.phase < phase) pthread_cond_wait(&g_ping.cv, &g_ping.mu);
    pthread_mutex_unlock(&g_ping.mu);
}

static void *stack_owner(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_ping.heap);
    void *x = NULL, *y = NULL;
    gc_push_root(t, &x);
    gc_push_root(t, &y);
    x = mk(t, &T_FIN, 1, 7);
    y = mk(t, &T_FIN, 2, 1);
    mk_child(t, &y, 3, &T_FIN, 3, 2);
    gc_enter_blocking(t);
    ping_set(1);                  /* main collects while we are blocked */
    ping_wait(2);
    gc_leave_blocking(t);
    const char *why;
    if ((why = obj_problem(x, 1)) != NULL) AFAIL("x after the other thread's collections: %s", why);
    if ((why = obj_problem(y, 2)) != NULL) AFAIL("y after the other thread's collections: %s", why);
    if ((why = obj_problem(slot_of(y, 3), 3)) != NULL) AFAIL("y's child: %s", why);
    gc_pop_roots(t, 1);           /* y and its child die */
    gc_enter_blocking(t);
    ping_set(3);
    ping_wait(4);
    gc_leave_blocking(t);
    if ((why = obj_problem(x, 1)) != NULL) AFAIL("x after the second round: %s", why);
    gc_thread_detach(t);          /* x dies with the root stack */
    return NULL;
}

static void test_gc_root_thread_stack_other_thread(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    g_ping.heap = h;
    g_ping.phase = 0;
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, stack_owner, NULL), 0);
    gc_enter_blocking(t);
    ping_wait(1);
    gc_leave_blocking(t);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 100; k++) (void)mk(t, &T_PLAIN, 500, 8);
        gc_collect(t);
    }
    EXPECT_FIN(1, 0);
    EXPECT_FIN(2, 0);
    EXPECT_FIN(3, 0);
    gc_enter_blocking(t);
    ping_set(2);
    ping_wait(3);
    gc_leave_blocking(t);
    gc_collect(t);
    EXPECT_FIN(1, 0);
    EXPECT_FIN(2, 1);
    EXPECT_FIN(3, 1);
    gc_enter_blocking(t);
    ping_set(4);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    gc_leave_blocking(t);
    gc_collect(t);
    EXPECT_FIN(1, 1);
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

typedef struct cb_ctx {
    void *slots[3];
    void *one;
    atomic_ulong calls;
} cb_ctx_t;

static void root_cb(gc_tracer_t *tracer, void *ctx)
{
    cb_ctx_t *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    gc_trace_range(tracer, c->slots, 3);
    gc_trace_slot(tracer, &c->one);
}

static void test_gc_root_callback(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        cb_ctx_t c1, c2;
        memset(&c1, 0, sizeof c1);
        memset(&c2, 0, sizeof c2);
        atomic_init(&c1.calls, 0);
        atomic_init(&c2.calls, 0);
        gc_root_add_callback(h, root_cb, &c1);
        gc_root_add_callback(h, root_cb, &c2);   /* same fn, other ctx */
        for (size_t i = 0; i < 3; i++) {
            c1.slots[i] = mk(t, &T_FIN, 1 + i, i);
            c2.slots[i] = mk(t, &T_FIN, 11 + i, i + 1);
        }
        c1.one = mk(t, &T_FIN, 4, 4);
        mk_child(t, &c1.one, 2, &T_FIN, 5, 1);
        c2.one = mk(t, &T_FIN, 14, 0);
        (void)mk(t, &T_FIN, 99, 1);
        unsigned long k1 = atomic_load(&c1.calls), k2 = atomic_load(&c2.calls);
        gc_collect(t);
        EXPECT_GE(atomic_load(&c1.calls), k1 + 1);
        EXPECT_GE(atomic_load(&c2.calls), k2 + 1);
        for (size_t i = 0; i < 3; i++) {
            EXPECT_OBJ(c1.slots[i], 1 + i);
            EXPECT_OBJ(c2.slots[i], 11 + i);
        }
        EXPECT_OBJ(c1.one, 4);
        EXPECT_OBJ(slot_of(c1.one, 2), 5);
        EXPECT_OBJ(c2.one, 14);
        EXPECT_FIN(99, 1);
        EXPECT_EQ(atomic_load(&g_fin_total), 1);
        EXPECT_VERIFY(h);

        /* Removing (fn, c1) leaves (fn, c2) in place. */
        gc_root_remove_callback(h, root_cb, &c1);
        k1 = atomic_load(&c1.calls);
        gc_collect(t);
        EXPECT_EQ(atomic_load(&c1.calls), k1);
        for (size_t i = 0; i < 3; i++) {
            EXPECT_FIN(1 + i, 1);
            EXPECT_FIN(11 + i, 0);
            EXPECT_OBJ(c2.slots[i], 11 + i);
        }
        EXPECT_FIN(4, 1);
        EXPECT_FIN(5, 1);
        EXPECT_OBJ(c2.one, 14);
        gc_root_remove_callback(h, root_cb, &c2);
        gc_collect(t);
        for (size_t i = 0; i < 3; i++) EXPECT_FIN(11 + i, 1);
        EXPECT_FIN(14, 1);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

static void test_gc_root_pinned(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        /* Garbage before and after, so that a compacting heap has reasons
         * to move things. */
        for (int k = 0; k < 300; k++) (void)mk(t, &T_PLAIN, 500, 4);
        tobj_t *p = mk(t, &T_FIN, 1, 6);
        gc_pin(h, p);
        void *pp = p;
        mk_child(t, &pp, 0, &T_FIN, 2, 3);              /* referent: may move */
        void *n3 = mk(t, &T_FIN, 3, 0);
        set_slot(t, slot_of(p, 0), 1, n3);              /* read after the GC point */
        for (int k = 0; k < 300; k++) (void)mk(t, &T_PLAIN, 500, 4);
        uintptr_t where = (uintptr_t)p;
        for (int round = 0; round < 3; round++) {
            gc_collect(t);
            EXPECT_OBJ((tobj_t *)where, 1);
            EXPECT_OBJ(slot_of(p, 0), 2);
            EXPECT_OBJ(slot_of(slot_of(p, 0), 1), 3);
            for (int k = 0; k < 100; k++) (void)mk(t, &T_PLAIN, 500, 4);
        }
        EXPECT_EQ(atomic_load(&g_fin_total), 0);
        EXPECT_VERIFY(h);
        gc_unpin(h, p);
        p = NULL;
        gc_collect(t);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        EXPECT_FIN(3, 1);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* Cycles                                                                    */

static void test_gc_cycles_collected(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        void *r1 = NULL, *r2 = NULL, *first = NULL, *cur = NULL, *keep = NULL;
        gc_push_root(t, &r1);
        gc_push_root(t, &r2);
        gc_push_root(t, &first);
        gc_push_root(t, &cur);
        gc_root_add(h, &keep);

        /* a <-> b */
        r1 = mk(t, &T_FIN, 1, 1);
        r2 = mk(t, &T_FIN, 2, 1);
        set_slot(t, r1, 0, r2);
        set_slot(t, r2, 0, r1);
        r1 = r2 = NULL;
        /* self loop */
        r1 = mk(t, &T_FIN, 3, 0);
        set_slot(t, r1, 0, r1);
        set_slot(t, r1, 3, r1);
        r1 = NULL;
        /* ring of 100 (ids 10..109) with chords */
        for (uint64_t i = 0; i < 100; i++) {
            void *n = mk(t, &T_FIN, 10 + i, i % 3);
            set_slot(t, n, 0, cur);
            if (i % 7 == 3) set_slot(t, n, 1, first);
            cur = n;
            if (i == 0) first = n;
        }
        set_slot(t, first, 0, cur);
        first = cur = NULL;
        /* a kept ring of 50 (ids 200..249), rooted through one member */
        for (uint64_t i = 0; i < 50; i++) {
            void *n = mk(t, &T_FIN, 200 + i, 2);
            set_slot(t, n, 0, cur);
            cur = n;
            if (i == 0) first = n;
        }
        set_slot(t, first, 0, cur);
        keep = first;
        first = cur = NULL;

        gc_collect(t);
        for (uint64_t id = 1; id <= 3; id++) EXPECT_FIN(id, 1);
        for (uint64_t i = 0; i < 100; i++) EXPECT_FIN(10 + i, 1);
        for (uint64_t i = 0; i < 50; i++) EXPECT_FIN(200 + i, 0);
        EXPECT_EQ(atomic_load(&g_fin_total), 103);
        /* The kept ring is intact: keep = 200 -> 249 -> 248 -> ... -> 201 -> 200. */
        void *n = keep;
        EXPECT_OBJ(n, 200);
        for (uint64_t i = 0; i < 50; i++) {
            n = slot_of(n, 0);
            EXPECT_OBJ(n, 249 - i);
        }
        EXPECT_PTR_EQ(n, keep);
        gc_collect(t);
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_fin_total), 103);  /* each exactly once */
        EXPECT_VERIFY(h);

        keep = NULL;
        gc_collect(t);
        for (uint64_t i = 0; i < 50; i++) EXPECT_FIN(200 + i, 1);
        EXPECT_EQ(atomic_load(&g_fin_total), 153);
        gc_root_remove(h, &keep);
        gc_pop_roots(t, 4);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* A very deep list: marking must not recurse on the C stack                  */

typedef struct cell {
    void *next;
    uint64_t id;
} cell_t;

static atomic_ulong g_cell_fin;

static void trace_cell(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, &((cell_t *)obj)->next);
}

static void fin_cell(void *obj)
{
    cell_t *c = obj;
    if (c->id % 1000 != 0) AFAIL("finalizer ran for cell %" PRIu64 " of a type without one", c->id);
    atomic_fetch_add(&g_cell_fin, 1);
}

static const gc_type_t T_CELL = { "test.cell", trace_cell, NULL };
static const gc_type_t T_CELL_FIN = { "test.cell_fin", trace_cell, fin_cell };

static void test_gc_deep_list(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_cell_fin, 0);
    const size_t n = scaled(5000000, 1000000);
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *head = NULL;
    gc_root_add(h, &head);
    for (size_t i = 0; i < n; i++) {
        cell_t *c = gc_alloc(t, i % 1000 == 0 ? &T_CELL_FIN : &T_CELL, sizeof(cell_t));
        if (!c) T_FAIL("gc_alloc of cell %zu returned NULL", i);
        c->id = i;
        gc_write(t, c, &c->next, head);
        head = c;
    }
    print_message("  built %zu cells (%.2f s)\n", n, elapsed_s());
    gc_collect(t);
    print_message("  collected with the list live (%.2f s)\n", elapsed_s());
    gc_stats_t s = stats_of(h);
    EXPECT_GE(s.live_bytes, n * sizeof(cell_t));
    EXPECT_EQ(atomic_load(&g_cell_fin), 0);
    size_t count = 0;
    for (cell_t *c = head; c; c = c->next) {
        if (c->id != n - 1 - count)
            T_FAIL("cell %zu from the head has id %" PRIu64 ", expected %zu", count, c->id,
                   n - 1 - count);
        count++;
        if (count > n) T_FAIL("list longer than %zu cells", n);
    }
    EXPECT_EQ(count, n);
    EXPECT_PTR_EQ(gc_type_of(head), (n - 1) % 1000 == 0 ? &T_CELL_FIN : &T_CELL);

    head = NULL;
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_cell_fin), (n + 999) / 1000);
    gc_collect(t);                 /* finalized cells are reclaimed by a later one */
    EXPECT_EQ(atomic_load(&g_cell_fin), (n + 999) / 1000);
    s = stats_of(h);
    EXPECT_LE(s.live_bytes, n * sizeof(cell_t) / 16);
    print_message("  collected the dead list (%.2f s), live_bytes %zu\n", elapsed_s(), s.live_bytes);
    EXPECT_VERIFY(h);
    gc_root_remove(h, &head);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* Tagged immediates are skipped silently                                    */

static void test_gc_tagged_values_skipped(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        enum { NT = 16 };
        void *tags[NT];
        uintptr_t want[NT];
        for (size_t i = 0; i < NT; i++) {
            uintptr_t v = ((uintptr_t)i << 3) | (1u + i % 7);     /* low bits 1..7 */
            if (i == NT - 1) v = UINTPTR_MAX;
            if (i == NT - 2) v = UINTPTR_MAX - 6;                /* ...f9 */
            if (i == NT - 3) v = (uintptr_t)0x7ffffffff001u;
            want[i] = v;
            tags[i] = (void *)v;
        }
        gc_root_add_range(h, tags, NT);
        void *single = (void *)(uintptr_t)0x2a3;                  /* fixnum-ish */
        gc_root_add(h, &single);
        void *holder = NULL, *victim = NULL;
        gc_root_add(h, &holder);
        gc_push_root(t, &victim);
        void *stk = (void *)(uintptr_t)0x5;
        gc_push_root(t, &stk);
        holder = mk(t, &T_FIN, 1, 2);
        victim = mk(t, &T_FIN, 3, 1);
        set_slot(t, holder, 0, (void *)(uintptr_t)0x13);
        mk_child(t, &holder, 1, &T_FIN, 2, 3);
        /* A tagged pointer to a real object does not keep it alive. */
        set_slot(t, holder, 2, (void *)((uintptr_t)victim | 4u));
        uintptr_t victim_tagged = (uintptr_t)victim | 4u;
        set_slot(t, holder, 3, (void *)(uintptr_t)1);
        victim = NULL;
        for (int round = 0; round < 3; round++) {
            gc_collect(t);
            EXPECT_NO_REPORTS(r0);
            for (size_t i = 0; i < NT; i++) EXPECT_EQ((uintptr_t)tags[i], want[i]);
            EXPECT_EQ((uintptr_t)single, 0x2a3);
            EXPECT_EQ((uintptr_t)stk, 0x5);
            EXPECT_OBJ(holder, 1);
            EXPECT_EQ((uintptr_t)slot_of(holder, 0), 0x13);
            EXPECT_OBJ(slot_of(holder, 1), 2);
            EXPECT_EQ((uintptr_t)slot_of(holder, 2), victim_tagged);
            EXPECT_EQ((uintptr_t)slot_of(holder, 3), 1);
            EXPECT_FIN(1, 0);
            EXPECT_FIN(2, 0);
            EXPECT_FIN(3, 1);
            EXPECT_VERIFY(h);
        }
        gc_pop_roots(t, 2);
        gc_root_remove(h, tags);
        gc_root_remove(h, &single);
        gc_root_remove(h, &holder);
        gc_collect(t);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* Foreign values in roots and fields are reported and left alone            */

static void test_gc_foreign_pointer_reported(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        _Alignas(16) uint64_t stack_words[4] = { 1, 2, 3, 4 };
        uint64_t *heap_words = malloc(64);
        EXPECT_NONNULL(heap_words);
        memset(heap_words, 0x5a, 64);
        void *live = NULL;
        gc_root_add(h, &live);
        live = mk(t, &T_FIN, 1, 4);
        mk_child(t, &live, 1, &T_FIN, 2, 2);

        void *const foreign[2] = { &stack_words[0], heap_words };
        const char *const names[2] = { "stack address", "malloc pointer" };
        for (int f = 0; f < 2; f++) {
            /* in a global root */
            void *froot = foreign[f];
            gc_root_add(h, &froot);
            unsigned long r0 = rec_count();
            gc_collect(t);
            unsigned long n1 = rec_count() - r0;
            print_message("  %s in a root: %lu report(s)\n", names[f], n1);
            EXPECT_GC_REPORTS(r0);
            EXPECT_PTR_EQ(froot, foreign[f]);            /* left alone */
            EXPECT_OBJ(live, 1);
            EXPECT_OBJ(slot_of(live, 1), 2);
            gc_root_remove(h, &froot);

            /* in a thread root stack slot */
            void *sroot = foreign[f];
            gc_push_root(t, &sroot);
            r0 = rec_count();
            gc_collect(t);
            EXPECT_GC_REPORTS(r0);
            EXPECT_PTR_EQ(sroot, foreign[f]);
            gc_pop_roots(t, 1);

            /* in a field of a live object */
            set_slot(t, live, 0, foreign[f]);
            r0 = rec_count();
            gc_collect(t);
            print_message("  %s in a field: %lu report(s)\n", names[f], rec_count() - r0);
            EXPECT_GC_REPORTS(r0);
            EXPECT_PTR_EQ(slot_of(live, 0), foreign[f]);
            EXPECT_OBJ(live, 1);
            EXPECT_OBJ(slot_of(live, 1), 2);
            set_slot(t, live, 0, NULL);

            /* gone: no more reports, heap sound */
            r0 = rec_count();
            gc_collect(t);
            EXPECT_NO_REPORTS(r0);
            EXPECT_VERIFY(h);
            EXPECT_FIN(1, 0);
            EXPECT_FIN(2, 0);
        }
        EXPECT_EQ(stack_words[0] + stack_words[1] + stack_words[2] + stack_words[3], 10);
        for (int i = 0; i < 8; i++) EXPECT_EQ(heap_words[i], UINT64_C(0x5a5a5a5a5a5a5a5a));
        free(heap_words);
        live = NULL;
        unsigned long r0 = rec_count();
        gc_collect(t);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        gc_root_remove(h, &live);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* Values that look like heap pointers but are not object starts of this
 * heap: an interior pointer, the address of a dead (reclaimed) object, an
 * object of another heap. Each is reported and left alone. */
static void test_gc_non_object_heap_pointers_reported(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_heap_t *h2 = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        gc_thread_t *t2 = gc_thread_attach(h2);
        void *live = NULL, *other = NULL, *bad = NULL;
        gc_root_add(h, &live);
        gc_root_add(h2, &other);
        live = mk(t, &T_FIN, 1, 6);
        other = mk(t2, &T_FIN, 2, 2);

        /* interior pointer into a live object, 8-aligned */
        gc_root_add(h, &bad);
        bad = (char *)live + 16;
        void *want = bad;
        unsigned long r0 = rec_count();
        gc_collect(t);
        print_message("  interior pointer: %lu report(s)\n", rec_count() - r0);
        EXPECT_GC_REPORTS(r0);
        EXPECT_PTR_EQ(bad, want);
        EXPECT_OBJ(live, 1);

        /* an object of another heap, in a root and in a field */
        bad = other;
        r0 = rec_count();
        gc_collect(t);
        print_message("  other heap's object in a root: %lu report(s)\n", rec_count() - r0);
        EXPECT_GC_REPORTS(r0);
        EXPECT_PTR_EQ(bad, other);
        bad = NULL;
        set_slot(t, live, 2, other);
        r0 = rec_count();
        gc_collect(t);
        EXPECT_GC_REPORTS(r0);
        EXPECT_PTR_EQ(slot_of(live, 2), other);
        set_slot(t, live, 2, NULL);
        EXPECT_OBJ(other, 2);            /* the other heap is untouched */
        EXPECT_FIN(2, 0);

        /* the address of an object that died and was reclaimed (no
         * allocation since, so the cell is still free) */
        void *d = NULL;
        gc_push_root(t, &d);
        d = mk(t, &T_PLAIN, 3, 1);
        uintptr_t dead_addr = (uintptr_t)d;
        gc_pop_roots(t, 1);
        d = NULL;
        gc_collect(t);
        gc_collect(t);
        bad = (void *)dead_addr;
        r0 = rec_count();
        gc_collect(t);
        print_message("  dead object's address in a root: %lu report(s)\n", rec_count() - r0);
        /* A moving collection may have put a copy in the freed cell. */
        gc_stats_t moved;
        gc_get_stats(h, &moved);
        if (moved.bytes_moved == 0) {
            EXPECT_GC_REPORTS(r0);
            EXPECT_EQ((uintptr_t)bad, dead_addr);
        }
        bad = NULL;
        r0 = rec_count();
        gc_collect(t);
        EXPECT_NO_REPORTS(r0);
        EXPECT_VERIFY(h);
        EXPECT_VERIFY(h2);
        /* Allocation still hands out sound, zeroed objects. */
        for (int k = 0; k < 100; k++) (void)mk(t, &T_PLAIN, 4, 1);
        EXPECT_OBJ(live, 1);
        gc_root_remove(h, &bad);
        gc_root_remove(h, &live);
        gc_root_remove(h2, &other);
        gc_collect(t);
        gc_collect(t2);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        EXPECT_NO_REPORTS(r0);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t2);
        gc_thread_detach(t);
        gc_heap_destroy(h2);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* gc_external_alloc counts towards the collection trigger. */
static void test_gc_external_alloc_triggers_collection(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = NULL;
    gc_root_add(h, &keep);
    keep = mk(t, &T_PLAIN, 1, 2);
    gc_collect(t);
    gc_stats_t s0 = stats_of(h);
    gc_external_alloc(h, (ptrdiff_t)(1024 * MiB));
    /* Enough small allocation to pass through the allocator's slow path
     * many times. */
    for (int k = 0; k < 40000; k++) {
        void *p = gc_alloc(t, &T_RAW, 64);
        EXPECT_NONNULL(p);
    }
    gc_stats_t s1 = stats_of(h);
    print_message("  collections %ju -> %ju with 1 GiB of external memory\n",
                  (uintmax_t)s0.collections, (uintmax_t)s1.collections);
    EXPECT_GE(s1.collections, s0.collections + 1);
    gc_external_alloc(h, -(ptrdiff_t)(1024 * MiB));
    EXPECT_OBJ(keep, 1);
    gc_root_remove(h, &keep);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* gc_root_remove                                                            */

static void test_gc_root_remove(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *a = NULL, *b = NULL, *shared1 = NULL, *shared2 = NULL;
    void *range[8] = { 0 };
    gc_root_add(h, &a);
    gc_root_add(h, &b);
    gc_root_add(h, &shared1);
    gc_root_add(h, &shared2);
    gc_root_add_range(h, range, 8);
    a = mk(t, &T_FIN, 1, 0);
    b = mk(t, &T_FIN, 2, 0);
    shared1 = mk(t, &T_FIN, 3, 0);
    shared2 = shared1;
    for (size_t i = 0; i < 8; i++) range[i] = mk(t, &T_FIN, 10 + i, i);
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_fin_total), 0);

    gc_root_remove(h, &a);
    gc_collect(t);
    EXPECT_FIN(1, 1);
    EXPECT_FIN(2, 0);
    EXPECT_OBJ(b, 2);

    /* Two roots holding one object: removing one keeps it. */
    gc_root_remove(h, &shared1);
    gc_collect(t);
    EXPECT_FIN(3, 0);
    EXPECT_OBJ(shared2, 3);
    gc_root_remove(h, &shared2);
    gc_collect(t);
    EXPECT_FIN(3, 1);

    /* A removed slot can be added again. */
    a = mk(t, &T_FIN, 4, 1);   /* unrooted until the add: no GC point between */
    gc_root_add(h, &a);
    gc_collect(t);
    EXPECT_FIN(4, 0);
    EXPECT_OBJ(a, 4);
    EXPECT_OBJ(b, 2);
    for (size_t i = 0; i < 8; i++) EXPECT_OBJ(range[i], 10 + i);

    gc_root_remove(h, range);
    gc_collect(t);
    for (size_t i = 0; i < 8; i++) EXPECT_FIN(10 + i, 1);
    EXPECT_OBJ(a, 4);
    EXPECT_OBJ(b, 2);
    gc_root_remove(h, &a);
    gc_root_remove(h, &b);
    gc_collect(t);
    EXPECT_FIN(4, 1);
    EXPECT_FIN(2, 1);
    EXPECT_EQ(atomic_load(&g_fin_total), 12);      /* ids 1..4 and 10..17 */
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* Zeroed, aligned memory; object queries                                    */

static size_t rand_size(rng_t *r)
{
    switch (rng_below(r, 10)) {
    case 0: return 1 + (size_t)rng_below(r, 16);
    case 1: return 64 * KiB + (size_t)rng_below(r, 300 * KiB);
    case 2: return 4 * KiB + (size_t)rng_below(r, 12 * KiB);
    default: return 1 + (size_t)rng_below(r, 1024);
    }
}

static void test_gc_alloc_zeroed_aligned(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(256 * KiB, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    const size_t n = scaled(3000, 600);
    void **keep = calloc(n, sizeof *keep);
    size_t *sizes = calloc(n, sizeof *sizes);
    EXPECT_NONNULL(keep);
    EXPECT_NONNULL(sizes);
    gc_root_add_range(h, keep, n);
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < n; i++) {
            size_t sz = (round == 0 && i < 1024) ? i + 1 : rand_size(&r);
            if (i == n - 1) sz = 1 * MiB + 13;
            unsigned char *p = gc_alloc(t, &T_RAW, sz);
            if (!p) T_FAIL("gc_alloc(raw, %zu) returned NULL (round %d, #%zu)", sz, round, i);
            p = launder(p);
            if (((uintptr_t)p & 7u) != 0) T_FAIL("gc_alloc(%zu) = %p is not 8-aligned", sz, (void *)p);
            for (size_t k = 0; k < sz; k++)
                if (p[k] != 0)
                    T_FAIL("gc_alloc(%zu) = %p: byte %zu is 0x%02x, not zero (round %d)", sz,
                           (void *)p, k, p[k], round);
            EXPECT_PTR_EQ(gc_type_of(p), &T_RAW);
            size_t us = gc_size_of(p);
            if (us < sz) T_FAIL("gc_size_of(%p) = %zu < requested %zu", (void *)p, us, sz);
            memset(p, 0xA5 ^ round, sz);           /* dirty it for the next round */
            keep[i] = p;
            sizes[i] = sz;
        }
        /* Contents survive the collections the allocations made. */
        for (size_t i = 0; i < n; i++) {
            const unsigned char *p = launder(keep[i]);
            if (p[0] != (0xA5 ^ round) || p[sizes[i] - 1] != (0xA5 ^ round))
                T_FAIL("object %zu (%zu bytes) changed", i, sizes[i]);
        }
        memset(keep, 0, n * sizeof *keep);
        gc_collect(t);
    }
    gc_root_remove(h, keep);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(keep);
    free(sizes);
    EXPECT_NO_REPORTS(r0);
}

static void test_gc_type_size_identity(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        enum { N = 200 };
        void *objs[N] = { 0 };
        uintptr_t hash[N];
        size_t size[N];
        const gc_type_t *type[N];
        gc_root_add_range(h, objs, N);
        static const gc_type_t *const types[3] = { &T_PLAIN, &T_FIN, &T_RAW };
        for (size_t i = 0; i < N; i++) {
            type[i] = types[i % 3];
            size_t nw = (size_t)rng_below(&r, 40);
            if (type[i] == &T_RAW) {
                size[i] = 1 + (size_t)rng_below(&r, 700);
                objs[i] = gc_alloc(t, &T_RAW, size[i]);
                EXPECT_NONNULL(objs[i]);
            } else {
                size[i] = tobj_size(nw);
                objs[i] = mk(t, type[i], 1000 + i, nw);
            }
            hash[i] = gc_identity_hash(objs[i]);
            EXPECT_EQ(gc_identity_hash(objs[i]), hash[i]);
            if (i % 2) (void)mk(t, &T_PLAIN, 3000, 8);   /* garbage between */
        }
        for (int round = 0; round < 4; round++) {
            for (int k = 0; k < 200; k++) (void)mk(t, &T_PLAIN, 3000, (size_t)k % 30);
            gc_collect(t);
            for (size_t i = 0; i < N; i++) {
                if (gc_identity_hash(objs[i]) != hash[i])
                    T_FAIL("identity hash of object %zu changed: %#jx -> %#jx (round %d)", i,
                           (uintmax_t)hash[i], (uintmax_t)gc_identity_hash(objs[i]), round);
                if (gc_type_of(objs[i]) != type[i])
                    T_FAIL("gc_type_of(object %zu) = %p, expected %s %p", i,
                           (const void *)gc_type_of(objs[i]), type[i]->name, (const void *)type[i]);
                EXPECT_GE(gc_size_of(objs[i]), size[i]);
                if (type[i] != &T_RAW) EXPECT_OBJ(objs[i], 1000 + i);
            }
            /* Drop a few each round. */
            for (size_t i = (size_t)round; i < N; i += 7)
                if (type[i] == &T_RAW) objs[i] = NULL, type[i] = NULL;
            for (size_t i = 0; i < N; i++)
                if (!type[i]) {
                    type[i] = &T_RAW;
                    size[i] = 8;
                    objs[i] = gc_alloc(t, &T_RAW, 8);
                    EXPECT_NONNULL(objs[i]);
                    hash[i] = gc_identity_hash(objs[i]);
                }
        }
        EXPECT_VERIFY(h);
        gc_root_remove(h, objs);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */

static void test_gc_stats(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    gc_stats_t s0 = stats_of(h);
    EXPECT_EQ(s0.bytes_allocated, 0);
    EXPECT_EQ(s0.objects_finalized, 0);
    EXPECT_GE(s0.pause_ns_total, s0.pause_ns_max);

    const size_t n = scaled(4000, 1000);
    void **keep = calloc(n, sizeof *keep);
    EXPECT_NONNULL(keep);
    gc_root_add_range(h, keep, n);
    size_t total = 0, live = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nw = 8 + (size_t)rng_below(&r, 56);         /* 96..536 bytes */
        int fin = i % 4 == 0;
        void *o = mk(t, fin ? &T_FIN : &T_PLAIN, i % MAX_IDS, nw);
        total += tobj_size(nw);
        if (i % 2 == 0) {
            keep[i] = o;
            live += tobj_size(nw);
        }
    }
    gc_stats_t s1 = stats_of(h);
    EXPECT_GE(s1.bytes_allocated - s0.bytes_allocated, total);
    EXPECT_GE(s1.collections, s0.collections);
    gc_collect(t);
    gc_stats_t s2 = stats_of(h);
    EXPECT_GE(s2.collections, s1.collections + 1);
    EXPECT_EQ(s2.bytes_allocated, s1.bytes_allocated);
    /* Every finalizable object (i % 4 == 0) is live, so nothing dead is kept
     * back for finalization and live_bytes is the kept half. */
    EXPECT_GE(s2.live_bytes, live);
    EXPECT_LE(s2.live_bytes, 2 * live);
    EXPECT_GE(s2.heap_bytes, s2.live_bytes);
    EXPECT_GE(s2.pause_ns_total, s2.pause_ns_max);
    EXPECT_GE(s2.pause_ns_total, s1.pause_ns_total);
    if (s2.pause_ns_max == 0) T_FAIL("pause_ns_max is 0 after %ju collections", (uintmax_t)s2.collections);
    EXPECT_EQ(s2.objects_finalized, 0);

    /* Drop every live finalizable object: objects_finalized counts them. */
    size_t nfin = 0;
    for (size_t i = 0; i < n; i += 4) {
        keep[i] = NULL;
        nfin++;
    }
    live = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i]) live += tobj_size(((tobj_t *)keep[i])->nwords);
    gc_collect(t);
    gc_stats_t s3 = stats_of(h);
    EXPECT_EQ(atomic_load(&g_fin_total), nfin);
    EXPECT_EQ(s3.objects_finalized, nfin);
    EXPECT_GE(s3.collections, s2.collections + 1);
    gc_collect(t);               /* reclaims the finalized ones */
    gc_stats_t s4 = stats_of(h);
    EXPECT_GE(s4.live_bytes, live);
    EXPECT_LE(s4.live_bytes, 2 * live);
    EXPECT_EQ(s4.objects_finalized, nfin);

    /* Allocation is counted exactly, whatever the size. */
    gc_stats_t s5 = stats_of(h);
    void *big = gc_alloc(t, &T_RAW, 3 * MiB + 5);
    EXPECT_NONNULL(big);
    gc_stats_t s6 = stats_of(h);
    EXPECT_GE(s6.bytes_allocated - s5.bytes_allocated, 3 * MiB + 5);

    /* Everything dropped: live_bytes falls to (almost) nothing. */
    memset(keep, 0, n * sizeof *keep);
    gc_collect(t);
    gc_stats_t s7 = stats_of(h);
    EXPECT_LE(s7.live_bytes, 16 * KiB);
    EXPECT_GE(s7.heap_bytes, s7.live_bytes);
    EXPECT_GE(s7.collections, s4.collections + 1);
    print_message("  collections %ju, allocated %ju, heap %zu, live %zu, pause total %ju ns max %ju ns\n",
                  (uintmax_t)s7.collections, (uintmax_t)s7.bytes_allocated, s7.heap_bytes,
                  s7.live_bytes, (uintmax_t)s7.pause_ns_total, (uintmax_t)s7.pause_ns_max);
    gc_root_remove(h, keep);
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(keep);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* gc_verify through a random mix of operations                              */

static void test_gc_verify_after_operations(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(512 * KiB, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_VERIFY(h);                      /* empty heap */
    enum { R = 32 };
    void *roots[R] = { 0 };
    gc_root_add_range(h, roots, R);
    void *pinned[4] = { 0 };
    size_t steps = scaled(20000, 4000);
    for (size_t s = 0; s < steps; s++) {
        size_t i = (size_t)rng_below(&r, R), j = (size_t)rng_below(&r, R);
        switch (rng_below(&r, 12)) {
        case 0: case 1: case 2: case 3:
            roots[i] = mk(t, rng_below(&r, 2) ? &T_FIN : &T_PLAIN, 1000000, (size_t)rng_below(&r, 20));
            break;
        case 4: case 5:
            if (roots[i]) set_slot(t, roots[i], (size_t)rng_below(&r, NSLOTS), roots[j]);
            break;
        case 6:
            roots[i] = NULL;
            break;
        case 7: {
            void *raw = gc_alloc(t, &T_RAW, 1 + (size_t)rng_below(&r, 5000));
            EXPECT_NONNULL(raw);
            break;
        }
        case 8: {
            size_t k = (size_t)rng_below(&r, 4);
            if (pinned[k]) {
                gc_unpin(h, pinned[k]);
                pinned[k] = NULL;
            } else if (roots[i]) {
                pinned[k] = roots[i];
                gc_pin(h, pinned[k]);
            }
            break;
        }
        case 9:
            if (rng_below(&r, 20) == 0) gc_collect(t);
            break;
        default:
            if (rng_below(&r, 50) == 0) EXPECT_VERIFY(h);
            break;
        }
        for (size_t k = 0; k < 4; k++)
            if (pinned[k]) EXPECT_OBJ(pinned[k], 1000000);
    }
    EXPECT_VERIFY(h);
    gc_collect(t);
    EXPECT_VERIFY(h);
    for (size_t k = 0; k < 4; k++)
        if (pinned[k]) gc_unpin(h, pinned[k]);
    gc_root_remove(h, roots);
    gc_collect(t);
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_basic");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_heap_userdata_and_thread_current),
        T(test_gc_root_global_slot),
        T(test_gc_root_range),
        T(test_gc_root_thread_stack),
        T(test_gc_root_thread_stack_other_thread),
        T(test_gc_root_callback),
        T(test_gc_root_pinned),
        T(test_gc_cycles_collected),
        T(test_gc_deep_list),
        T(test_gc_tagged_values_skipped),
        T(test_gc_foreign_pointer_reported),
        T(test_gc_non_object_heap_pointers_reported),
        T(test_gc_external_alloc_triggers_collection),
        T(test_gc_root_remove),
        T(test_gc_alloc_zeroed_aligned),
        T(test_gc_type_size_identity),
        T(test_gc_stats),
        T(test_gc_verify_after_operations),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
