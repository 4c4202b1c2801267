/* test_rc_threads_last_release.c — multi-threaded stress of the races
 * with a reference-counted object's last release (<mulch/rc.h>; docs:
 * shared/API.md "RC", docs/rc.md "Threads"):
 *   - rc_weak_lock racing with the last release on another thread (merged
 *     objects, references the owner still counts, and the owner's own last
 *     release): the lock returns NULL or a live, retained object; destroy
 *     runs exactly once; many rounds;
 *   - an owner thread that exits while other threads still hold references
 *     it counts: their releases destroy the objects (the releasing thread
 *     folds the counts), also when they race with the exit.
 * The retain/release hand-offs and the observers are in test_rc_threads.c;
 * the harness both use is rc_threads_support.h.
 *
 * Biased counting: an object whose last reference a non-owner drops while
 * the owner lives is destroyed at the owner's next rc_retain / rc_release
 * (or at its exit). After the joins, the main thread performs one
 * (rc_nudge) before checking objects it owns.
 *
 * Deterministic per thread (seed from MULCH_TEST_SEED or a fixed default,
 * the same as test_rc_threads.c's, printed at the start); interleavings of
 * course vary. MULCH_TEST_QUICK=1 and sanitizer / valgrind builds scale
 * the work down; MULCH_TEST_FILTER (a cmocka pattern such as "*owner*")
 * runs only the matching tests. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372630c05)
#include <sched.h>

#include <mulch/rc.h>

#include "mulch_test.h"
#include "rc_threads_support.h"

/* ======================================================================== */
/* 2. rc_weak_lock racing with the last release                             */

enum { WL_MERGED, WL_TRANSFERRED, WL_OWNER_LAST, WL_MODES };
static const char *const k_wl_names[] = { "merged (the other thread took its own reference)",
                                          "transferred (the owner still counts it)",
                                          "the owner's own last release" };

typedef struct {
    spin_barrier_t bar;
    size_t rounds;
    int mode;                   /* this round's, set by main before barrier 1 */
    tobj_t *obj;                /* this round's object */
    rc_weak_t *weak;
    int stop;                   /* set by main before barrier 1: leave now */
    /* results */
    size_t locked_live[WL_MODES], locked_null[WL_MODES];
} wl_t;

/* The releaser: takes a reference of its own (merged mode), allocates the
 * object (owner mode), and drops the last reference at the start line. */
static void *wl_releaser(void *arg)
{
    wl_t *w = arg;
    rng_t r = test_rng("wl_releaser", 0);
    for (size_t round = 0; round < w->rounds; round++) {
        spin_barrier_wait(&w->bar); /* 1: mode set */
        if (w->stop) break;
        if (w->mode == WL_MERGED) rc_retain(w->obj);
        if (w->mode == WL_OWNER_LAST) {
            w->obj = tobj_new((uint64_t)round);
            w->weak = w->obj ? rc_weak_new(w->obj) : NULL;
            if (w->weak == NULL) AFAIL("round %zu: rc_alloc / rc_weak_new failed", round);
        }
        spin_barrier_wait(&w->bar); /* 2: set up */
        spin_barrier_wait(&w->bar); /* 3: main let go (merged mode); go */
        spin_delay(&r, 200);
        rc_release(w->obj);         /* the last reference */
        spin_barrier_wait(&w->bar); /* 4: done */
    }
    return NULL;
}

static void *wl_locker(void *arg)
{
    wl_t *w = arg;
    rng_t r = test_rng("wl_locker", 0);
    for (size_t round = 0; round < w->rounds; round++) {
        spin_barrier_wait(&w->bar); /* 1 */
        if (w->stop) break;
        spin_barrier_wait(&w->bar); /* 2 */
        spin_barrier_wait(&w->bar); /* 3: go */
        int mode = w->mode;
        spin_delay(&r, 200);
        tobj_t *p = rc_weak_lock(w->weak);
        if (p) {
            if (p != w->obj) AFAIL("round %zu: rc_weak_lock returned %p, not the object %p", round,
                                   (void *)p, (void *)w->obj);
            tobj_check(p, "rc_weak_lock result");
            atomic_fetch_add(&p->touches, 1);
            rc_release(p);
            w->locked_live[mode]++;
        } else {
            w->locked_null[mode]++;
        }
        spin_barrier_wait(&w->bar); /* 4 */
    }
    return NULL;
}

/* Test 2 is 4 barrier crossings per round, each a wake-up of a sleeping
 * thread when the machine is busy: on a loaded 2-core machine (ThreadSanitizer,
 * parallel ctest) the rounds are scheduler-bound and the full count can run
 * into the ctest timeout. Past WL_MIN_ROUNDS, the test stops at its time
 * budget; every round it ran is checked as before. */
enum { WL_MIN_ROUNDS = 1000, WL_BUDGET_S = 60 };

static void test_rc_weak_lock_races_last_release(void **state)
{
    (void)state;
    TEST_START();
    wl_t w;
    memset(&w, 0, sizeof w);
    w.rounds = scaled(30000, 10000);
    spin_barrier_init(&w.bar, 3);
    ids_reset(w.rounds);
    pool_begin();
    rng_t r = test_rng(__func__, 0);
    pthread_t rel, lock;
    EXPECT_EQ(pthread_create(&rel, NULL, wl_releaser, &w), 0);
    EXPECT_EQ(pthread_create(&lock, NULL, wl_locker, &w), 0);
    unsigned long bad_round_reported = 0;
    size_t round;
    for (round = 0; round < w.rounds; round++) {
        int mode = (int)rng_below(&r, WL_MODES);
        w.mode = mode;
        if (round >= WL_MIN_ROUNDS && elapsed_s() > WL_BUDGET_S) {
            w.stop = 1; /* out of time: the rounds run so far are checked below */
            spin_barrier_wait(&w.bar);
            break;
        }
        if (atomic_load(&g_failures)) {
            /* a double destroy frees a cell twice: the pool is damaged now,
             * so stop before it hands one cell out twice */
            w.stop = 1;
            spin_barrier_wait(&w.bar);
            break;
        }
        if (mode != WL_OWNER_LAST) {
            w.obj = tobj_new((uint64_t)round);
            EXPECT_NONNULL(w.obj);
            w.weak = rc_weak_new(w.obj);
            EXPECT_NONNULL(w.weak);
        }
        spin_barrier_wait(&w.bar); /* 1 */
        spin_barrier_wait(&w.bar); /* 2: the releaser holds its reference */
        if (mode == WL_MERGED) rc_release(w.obj); /* the releaser's is the last now */
        /* WL_TRANSFERRED: our reference is the one the releaser drops */
        spin_barrier_wait(&w.bar); /* 3: go */
        spin_barrier_wait(&w.bar); /* 4: both done */
        if (mode == WL_TRANSFERRED) rc_nudge(); /* we own it: complete a queued release */
        unsigned c = atomic_load(&g_destroyed[round]);
        if (c != 1 && !bad_round_reported) {
            bad_round_reported = 1;
            print_error("round %zu (%s): destroy ran %u time(s), expected 1\n", round, k_wl_names[mode], c);
            AFAIL("round %zu (%s): destroy ran %u time(s)", round, k_wl_names[mode], c);
        }
        void *after = rc_weak_lock(w.weak);
        if (after != NULL) {
            AFAIL("round %zu (%s): rc_weak_lock after the last release returned %p", round,
                  k_wl_names[mode], after);
            rc_release(after);
        }
        rc_weak_free(w.weak);
    }
    EXPECT_EQ(pthread_join(rel, NULL), 0);
    EXPECT_EQ(pthread_join(lock, NULL), 0);
    spin_barrier_destroy(&w.bar);
    for (int m = 0; m < WL_MODES; m++)
        print_message("  %s: the lock won %zu time(s), saw NULL %zu time(s)\n", k_wl_names[m],
                      w.locked_live[m], w.locked_null[m]);
    if (round < w.rounds)
        print_message("  stopped after round %zu of %zu (%.1f s)\n", round, w.rounds, elapsed_s());
    EXPECT_NO_ASYNC_FAILURES();
    expect_destroyed_once(round, "weak lock vs last release");
    pool_end();
    EXPECT_NO_REPORTS(0); /* none since setup_rec */
}

/* ======================================================================== */
/* 3. The owner exits while others still hold references it counts          */

typedef struct {
    size_t n;
    tobj_t **objs;            /* n objects */
    unsigned *refs;           /* references handed out per object */
    tobj_t ***lists;          /* per worker: references to drop */
    size_t *list_len;
    int nworkers;
    uint64_t seed_k;
    /* racing variant: workers may start while the owner still runs */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int published;
} owner_t;

static void owner_publish(owner_t *o)
{
    pthread_mutex_lock(&o->mu);
    o->published = 1;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void *owner_thread(void *arg)
{
    owner_t *o = arg;
    rng_t r = test_rng("owner", o->seed_k);
    for (size_t i = 0; i < o->n; i++) {
        tobj_t *x = tobj_new(i);
        if (x == NULL) {
            AFAIL("owner: rc_alloc returned NULL");
            break;
        }
        o->objs[i] = x;
        /* 1..4 references for the workers, all counted by this thread; it
         * keeps none of its own (sometimes it takes and drops one more) */
        unsigned k = 1 + (unsigned)rng_below(&r, 4);
        for (unsigned j = 1; j < k; j++) rc_retain(x);
        if (rng_below(&r, 4) == 0) {
            rc_retain(x);
            rc_release(x);
        }
        for (unsigned j = 0; j < k; j++) {
            int wk = (int)rng_below(&r, (uint64_t)o->nworkers);
            o->lists[wk][o->list_len[wk]++] = x;
        }
        o->refs[i] = k;
    }
    owner_publish(o);
    /* racing variant: keep counting a little while the workers start */
    for (int i = 0; i < 2000; i++) rc_nudge();
    return NULL;
}

typedef struct {
    owner_t *o;
    int index;
    int wait_publish;
} owner_worker_t;

static void *owner_worker(void *arg)
{
    owner_worker_t *w = arg;
    owner_t *o = w->o;
    if (w->wait_publish) {
        pthread_mutex_lock(&o->mu);
        while (!o->published) pthread_cond_wait(&o->cv, &o->mu);
        pthread_mutex_unlock(&o->mu);
    }
    rng_t r = test_rng("owner_worker", o->seed_k * 16 + (uint64_t)w->index);
    tobj_t **list = o->lists[w->index];
    size_t n = o->list_len[w->index];
    /* shuffle, so that the workers interleave on the same objects */
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, i);
        tobj_t *t = list[i - 1];
        list[i - 1] = list[j];
        list[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        tobj_check(list[i], "worker's reference");
        if (rng_below(&r, 8) == 0) { /* a balanced pair first */
            rc_retain(list[i]);
            rc_release(list[i]);
        }
        rc_release(list[i]);
    }
    return NULL;
}

static void owner_exit_case(int racing, uint64_t k)
{
    owner_t o;
    memset(&o, 0, sizeof o);
    o.n = scaled(20000, 5000);
    o.nworkers = 3;
    o.seed_k = k;
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    o.objs = calloc(o.n, sizeof *o.objs);
    o.refs = calloc(o.n, sizeof *o.refs);
    o.lists = calloc((size_t)o.nworkers, sizeof *o.lists);
    o.list_len = calloc((size_t)o.nworkers, sizeof *o.list_len);
    assert_non_null(o.objs);
    assert_non_null(o.refs);
    assert_non_null(o.lists);
    assert_non_null(o.list_len);
    for (int i = 0; i < o.nworkers; i++) {
        o.lists[i] = calloc(o.n * 4, sizeof **o.lists);
        assert_non_null(o.lists[i]);
    }
    ids_reset(o.n);

    pthread_t owner, workers[3];
    owner_worker_t wa[3];
    EXPECT_EQ(pthread_create(&owner, NULL, owner_thread, &o), 0);
    if (!racing) EXPECT_EQ(pthread_join(owner, NULL), 0); /* the owner is gone first */
    for (int i = 0; i < o.nworkers; i++) {
        wa[i] = (owner_worker_t){ &o, i, racing };
        EXPECT_EQ(pthread_create(&workers[i], NULL, owner_worker, &wa[i]), 0);
    }
    if (racing) EXPECT_EQ(pthread_join(owner, NULL), 0);
    for (int i = 0; i < o.nworkers; i++) EXPECT_EQ(pthread_join(workers[i], NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    /* no rc operation on this thread before the check: the owner is dead,
     * so the releasing threads (or its exit) must have done everything */
    unsigned long d = atomic_load(&g_destroys);
    print_message("  %s: %zu objects, %lu destroyed after the joins\n",
                  racing ? "workers racing the owner's exit" : "owner exited first", o.n, d);
    expect_destroyed_once(o.n, racing ? "owner exit, racing" : "owner exited first");

    for (int i = 0; i < o.nworkers; i++) free(o.lists[i]);
    free(o.lists);
    free(o.list_len);
    free(o.objs);
    free(o.refs);
    pthread_mutex_destroy(&o.mu);
    pthread_cond_destroy(&o.cv);
}

static void test_rc_owner_exits_with_outstanding_refs(void **state)
{
    (void)state;
    TEST_START();
    pool_begin();
    owner_exit_case(0, 1);
    EXPECT_NO_ASYNC_FAILURES();
    size_t rounds = scaled(20, 8);
    for (size_t i = 0; i < rounds; i++) owner_exit_case(1, 2 + i);
    EXPECT_NO_ASYNC_FAILURES();
    pool_end();
    EXPECT_NO_REPORTS(0); /* none since setup_rec */
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_threads_last_release");
    const char *filter = getenv("MULCH_TEST_FILTER"); /* e.g. "*owner*" */
    if (filter && *filter) cmocka_set_test_filter(filter);
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_weak_lock_races_last_release),
        T(test_rc_owner_exits_with_outstanding_refs),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_destroyed);
    return failed;
}
