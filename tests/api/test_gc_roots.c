/* test_gc_roots.c — black-box tests of the collector's public contract
 * (<mulch/gc.h>; docs: shared/API.md "GC" and "Errors and misuse"), the
 * roots: reachability from every root kind (global slot, range, per-thread
 * root stack, also another thread's, root callback, pin) and root removal.
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

int main(void)
{
    mt_init("test_gc_roots");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_root_global_slot),
        T(test_gc_root_range),
        T(test_gc_root_thread_stack),
        T(test_gc_root_thread_stack_other_thread),
        T(test_gc_root_callback),
        T(test_gc_root_pinned),
        T(test_gc_root_remove),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
