/* test_rc_threads.c — multi-threaded stress of reference-counted objects
 * (<mulch/rc.h>; docs: shared/API.md "RC", docs/rc.md "Threads"):
 *   - 4 threads racing retain/release on shared objects (allocated by all of
 *     them and by the main thread), in balanced pairs and by handing
 *     references to each other through a mutex-protected queue, so that the
 *     releasing thread is usually not the owner; short-lived objects whose
 *     last reference is dropped by a non-owner; every object destroyed
 *     exactly once at the end;
 *   - rc_count and rc_weak_new on other threads while the owner counts.
 * The races with an object's last release (rc_weak_lock, an owner thread's
 * exit) are in test_rc_threads_last_release.c; the harness both use is
 * rc_threads_support.h.
 *
 * Biased counting: an object whose last reference a non-owner drops while
 * the owner lives is destroyed at the owner's next rc_retain / rc_release
 * (or at its exit). After the joins, the main thread performs one
 * (rc_nudge) before checking objects it owns.
 *
 * Deterministic per thread (seed from MULCH_TEST_SEED or a fixed default,
 * printed at the start); interleavings of course vary. MULCH_TEST_QUICK=1
 * and sanitizer / valgrind builds scale the work down; MULCH_TEST_FILTER
 * (a cmocka pattern such as "*handoff*") runs only the matching tests. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372630c05)
#include <sched.h>

#include <mulch/rc.h>

#include "mulch_test.h"
#include "rc_threads_support.h"

/* ======================================================================== */
/* 1. Four threads racing retain / release, references handed across        */

#define NT 4

typedef struct {
    int index;
    size_t iters;
    tobj_t **shared;          /* every thread's and main's shared objects */
    size_t nshared;
    refq_t *queue;
    uint64_t id_base;         /* ids of this thread's short-lived objects */
    size_t id_room;
    size_t made;              /* short-lived objects made */
    spin_barrier_t *start;
    tobj_t **mine;            /* this thread's part of `shared` */
    size_t nmine;
    uint64_t mine_base;
} racer_t;

static void *racer(void *arg)
{
    racer_t *a = arg;
    rng_t r = test_rng("racer", (uint64_t)a->index);
    /* the shared objects this thread owns */
    for (size_t i = 0; i < a->nmine; i++) {
        a->mine[i] = tobj_new(a->mine_base + i);
        if (a->mine[i] == NULL) {
            AFAIL("thread %d: rc_alloc returned NULL", a->index);
            return NULL;
        }
    }
    spin_barrier_wait(a->start); /* everyone's objects are in `shared` */
    for (size_t it = 0; it < a->iters; it++) {
        unsigned op = (unsigned)rng_below(&r, 100);
        if (op < 30) {
            /* balanced pairs on a shared object */
            tobj_t *o = a->shared[rng_below(&r, a->nshared)];
            unsigned k = 1 + (unsigned)rng_below(&r, 3);
            for (unsigned j = 0; j < k; j++)
                if (rc_retain(o) != o) AFAIL("rc_retain did not return its argument");
            tobj_check(o, "balanced");
            atomic_fetch_add(&o->touches, 1);
            for (unsigned j = 0; j < k; j++) rc_release(o);
        } else if (op < 45) {
            /* hand a new reference to whichever thread pops it */
            tobj_t *o = a->shared[rng_below(&r, a->nshared)];
            rc_retain(o);
            if (!refq_push(a->queue, o)) rc_release(o);
        } else if (op < 90) {
            /* drop a reference some thread (often another) handed over */
            tobj_t *o = refq_pop(a->queue, &r);
            if (o) {
                tobj_check(o, "popped");
                rc_release(o);
            }
        } else if (a->made < a->id_room) {
            /* a short-lived object: its references all go to the queue, the
             * owner keeps none, so a non-owner drops the last one */
            tobj_t *o = tobj_new(a->id_base + a->made);
            if (o == NULL) {
                AFAIL("thread %d: rc_alloc returned NULL", a->index);
                break;
            }
            a->made++;
            unsigned extra = (unsigned)rng_below(&r, 3);
            for (unsigned j = 0; j < extra; j++) rc_retain(o);
            for (unsigned j = 0; j <= extra; j++)
                if (!refq_push(a->queue, o)) rc_release(o);
        }
    }
    return NULL;
}

static void test_rc_threads_retain_release_handoff(void **state)
{
    (void)state;
    TEST_START();
    const size_t per_thread = 64, main_owned = 64;
    const size_t iters = scaled(400000, 100000);
    const size_t room = iters / 10 + 1;
    const size_t nshared = NT * per_thread + main_owned;
    const size_t main_transient = 256;
    /* ids: [0, nshared) shared, then main's short-lived, then each thread's */
    const uint64_t main_tbase = nshared;
    const uint64_t tbase = main_tbase + main_transient;
    ids_reset(tbase + NT * room);
    pool_begin();

    tobj_t **shared = calloc(nshared, sizeof *shared);
    assert_non_null(shared);
    refq_t queue;
    refq_init(&queue, 1 << 14);
    spin_barrier_t start;
    spin_barrier_init(&start, NT + 1);

    /* main's shared objects */
    for (size_t i = 0; i < main_owned; i++) {
        shared[NT * per_thread + i] = tobj_new(NT * per_thread + i);
        EXPECT_NONNULL(shared[NT * per_thread + i]);
    }
    /* main's short-lived objects: their only reference goes into the queue,
     * so a worker drops it while main (their owner) sits in pthread_join */
    for (size_t i = 0; i < main_transient; i++) {
        tobj_t *o = tobj_new(main_tbase + i);
        EXPECT_NONNULL(o);
        if (!refq_push(&queue, o)) rc_release(o);
    }

    racer_t ra[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        ra[i] = (racer_t){ .index = i, .iters = iters, .shared = shared, .nshared = nshared,
                           .queue = &queue, .id_base = tbase + (uint64_t)i * room, .id_room = room,
                           .start = &start, .mine = shared + (size_t)i * per_thread,
                           .nmine = per_thread, .mine_base = (uint64_t)i * per_thread };
        EXPECT_EQ(pthread_create(&th[i], NULL, racer, &ra[i]), 0);
    }
    spin_barrier_wait(&start);
    for (int i = 0; i < NT; i++) EXPECT_EQ(pthread_join(th[i], NULL), 0);
    spin_barrier_destroy(&start);
    EXPECT_NO_ASYNC_FAILURES();

    /* drop the references still in transit */
    rng_t r = test_rng(__func__, 0);
    size_t left = 0;
    for (tobj_t *o; (o = refq_pop(&queue, &r)) != NULL; left++) {
        if (!tobj_check(o, "left in the queue")) break;
        rc_release(o);
    }
    EXPECT_NO_ASYNC_FAILURES();
    size_t made = main_transient;
    for (int i = 0; i < NT; i++) made += ra[i].made;
    print_message("  %zu short-lived objects, %zu references left in the queue\n", made, left);

    /* quiescent: each shared object holds exactly the array's reference */
    uint64_t touches = 0;
    for (size_t i = 0; i < nshared; i++) {
        size_t c = rc_count(shared[i]);
        if (c != 1) T_FAIL("shared object %zu (owner %s): rc_count = %zu after the joins, expected 1", i,
                           i < NT * per_thread ? "an exited thread" : "main", c);
        touches += atomic_load(&shared[i]->touches);
    }
    for (size_t i = 0; i < nshared; i++) rc_release(shared[i]);
    rc_nudge(); /* main's own objects released last by workers */

    /* every short-lived object and every shared object, exactly once */
    unsigned long d = atomic_load(&g_destroys);
    print_message("  %lu destroys, %" PRIu64 " balanced touches\n", d, touches);
    for (size_t i = 0; i < nshared; i++)
        if (atomic_load(&g_destroyed[i]) != 1)
            T_FAIL("shared object id %zu destroyed %u time(s)", i, (unsigned)atomic_load(&g_destroyed[i]));
    for (size_t i = 0; i < main_transient; i++)
        if (atomic_load(&g_destroyed[main_tbase + i]) != 1)
            T_FAIL("main's short-lived object id %zu destroyed %u time(s)", (size_t)(main_tbase + i),
                   (unsigned)atomic_load(&g_destroyed[main_tbase + i]));
    for (int t = 0; t < NT; t++)
        for (size_t i = 0; i < ra[t].made; i++) {
            uint64_t id = ra[t].id_base + i;
            if (atomic_load(&g_destroyed[id]) != 1)
                T_FAIL("thread %d's short-lived object %zu destroyed %u time(s)", t, i,
                       (unsigned)atomic_load(&g_destroyed[id]));
        }
    if (d != nshared + made) T_FAIL("%lu destroys for %zu objects", d, nshared + made);
    free(shared);
    refq_free(&queue);
    EXPECT_NO_ASYNC_FAILURES();
    pool_end();
    EXPECT_NO_REPORTS(0); /* none since setup_rec */
}

/* ======================================================================== */
/* 4. rc_count and rc_weak_new on other threads while the owner counts       */

typedef struct {
    tobj_t **objs;
    size_t n;
    size_t iters;
    atomic_int done;
    int index;
} observer_t;

static void *observer(void *arg)
{
    observer_t *a = arg;
    rng_t r = test_rng("observer", (uint64_t)a->index);
    while (!atomic_load(&a->done)) {
        tobj_t *o = a->objs[rng_below(&r, a->n)];
        size_t c = rc_count(o); /* not exact while others count, but never 0 */
        if (c == 0) AFAIL("rc_count of an object with a held reference returned 0");
        rc_weak_t *w = rc_weak_new(o);
        if (w == NULL) {
            AFAIL("rc_weak_new on a live object returned NULL");
            continue;
        }
        tobj_t *p = rc_weak_lock(w);
        if (p != o) AFAIL("rc_weak_lock on a live object returned %p, not %p", (void *)p, (void *)o);
        if (p) rc_release(p);
        rc_weak_free(w);
    }
    return NULL;
}

static void test_rc_count_and_weak_new_concurrent(void **state)
{
    (void)state;
    TEST_START();
    const size_t n = 16;
    ids_reset(n);
    pool_begin();
    tobj_t *objs[16];
    for (size_t i = 0; i < n; i++) {
        objs[i] = tobj_new(i);
        EXPECT_NONNULL(objs[i]);
    }
    observer_t ob[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        ob[i] = (observer_t){ .objs = objs, .n = n, .index = i };
        atomic_store(&ob[i].done, 0);
        EXPECT_EQ(pthread_create(&th[i], NULL, observer, &ob[i]), 0);
    }
    /* the owner (this thread) counts with plain stores meanwhile */
    rng_t r = test_rng(__func__, 0);
    size_t iters = scaled(2000000, 300000);
    for (size_t it = 0; it < iters; it++) {
        tobj_t *o = objs[rng_below(&r, n)];
        rc_retain(o);
        rc_release(o);
    }
    for (int i = 0; i < 2; i++) atomic_store(&ob[i].done, 1);
    for (int i = 0; i < 2; i++) EXPECT_EQ(pthread_join(th[i], NULL), 0);
    for (size_t i = 0; i < n; i++) EXPECT_EQ(rc_count(objs[i]), 1);
    for (size_t i = 0; i < n; i++) rc_release(objs[i]);
    expect_destroyed_once(n, "rc_count / rc_weak_new observers");
    EXPECT_NO_ASYNC_FAILURES();
    pool_end();
    EXPECT_NO_REPORTS(0); /* none since setup_rec */
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_threads");
    const char *filter = getenv("MULCH_TEST_FILTER"); /* e.g. "*handoff*" */
    if (filter && *filter) cmocka_set_test_filter(filter);
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_threads_retain_release_handoff),
        T(test_rc_count_and_weak_new_concurrent),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_destroyed);
    return failed;
}
