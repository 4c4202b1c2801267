/* test_rc_threads.c — multi-threaded stress of reference-counted objects
 * (<mulch/rc.h>; docs: shared/API.md "RC", docs/rc.md "Threads"):
 *   - 4 threads racing retain/release on shared objects (allocated by all of
 *     them and by the main thread), in balanced pairs and by handing
 *     references to each other through a mutex-protected queue, so that the
 *     releasing thread is usually not the owner; short-lived objects whose
 *     last reference is dropped by a non-owner; every object destroyed
 *     exactly once at the end;
 *   - rc_weak_lock racing with the last release on another thread (merged
 *     objects, references the owner still counts, and the owner's own last
 *     release): the lock returns NULL or a live, retained object; destroy
 *     runs exactly once; many rounds;
 *   - an owner thread that exits while other threads still hold references
 *     it counts: their releases destroy the objects (the releasing thread
 *     folds the counts), also when they race with the exit;
 *   - rc_count and rc_weak_new on other threads while the owner counts.
 *
 * Biased counting: an object whose last reference a non-owner drops while
 * the owner lives is destroyed at the owner's next rc_retain / rc_release
 * (or at its exit). After the joins, the main thread performs one
 * (rc_nudge) before checking objects it owns.
 *
 * Deterministic per thread (seed from MULCH_TEST_SEED or a fixed default,
 * printed at the start); interleavings of course vary. MULCH_TEST_QUICK=1
 * and sanitizer / valgrind builds scale the work down; MULCH_TEST_FILTER
 * (a cmocka pattern such as "*owner*") runs only the matching tests. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372630c05)
#include <sched.h>

#include <mulch/rc.h>

#include "mulch_test.h"

/* ------------------------------------------------------------------------ */
/* Test objects: a magic word (cleared by destroy) and an id; destroy counts */
/* per id, so a double destroy or a missing one is named.                    */

#define OBJ_MAGIC UINT64_C(0x72632d7468726421)
#define OBJ_DEAD  UINT64_C(0xdeaddeaddeaddead)

typedef struct tobj {
    _Atomic uint64_t magic;
    uint64_t id;
    _Atomic uint64_t touches;
} tobj_t;

static atomic_uchar *g_destroyed; /* per id */
static size_t g_ids;
static atomic_ulong g_destroys;

static void ids_reset(size_t n)
{
    free(g_destroyed);
    g_destroyed = calloc(n, sizeof *g_destroyed);
    assert_non_null(g_destroyed);
    g_ids = n;
    atomic_store(&g_destroys, 0);
}

static void tobj_destroy(void *obj)
{
    tobj_t *o = obj;
    uint64_t m = atomic_exchange(&o->magic, OBJ_DEAD);
    if (m != OBJ_MAGIC) AFAIL("destroy of %p (id %" PRIu64 "): magic was %" PRIx64, obj, o->id, m);
    if (o->id >= g_ids) AFAIL("destroy of an object with id %" PRIu64 " out of range", o->id);
    else if (atomic_fetch_add(&g_destroyed[o->id], 1) != 0)
        AFAIL("destroy ran twice for object id %" PRIu64, o->id);
    atomic_fetch_add(&g_destroys, 1);
}

/* Each test allocates its objects from a pool of its own, so that damage
 * one test finds (a double destroy frees a cell twice) stays there. */
static pool_t *g_pool;

static void pool_begin(void)
{
    g_pool = pool_create(NULL);
    assert_non_null(g_pool);
}

/* Only after a clean run: every object of the test is gone. */
static void pool_end(void)
{
    pool_stats_t s;
    pool_get_stats(g_pool, &s);
    size_t live = s.live_allocations;
    pool_destroy(g_pool);
    g_pool = NULL;
    if (live != 0) T_FAIL("%zu cell(s) still live in the test's pool at the end", live);
}

static tobj_t *tobj_new(uint64_t id)
{
    tobj_t *o = rc_alloc_in(g_pool, sizeof *o, tobj_destroy);
    if (o == NULL) return NULL;
    o->id = id;
    atomic_store(&o->magic, OBJ_MAGIC);
    return o;
}

/* A reference we hold must point to a live object. */
static int tobj_check(const tobj_t *o, const char *where)
{
    uint64_t m = atomic_load(&((tobj_t *)o)->magic);
    if (m != OBJ_MAGIC) {
        AFAIL("%s: object %p (id %" PRIu64 ") is dead (magic %" PRIx64 ") while a reference is held",
              where, (const void *)o, o->id, m);
        return 0;
    }
    return 1;
}

/* Every id below n destroyed exactly once. */
static void expect_destroyed_once(size_t n, const char *what)
{
    unsigned long d = atomic_load(&g_destroys);
    size_t missing = 0, twice = 0, first_missing = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned c = atomic_load(&g_destroyed[i]);
        if (c == 0) {
            if (first_missing == SIZE_MAX) first_missing = i;
            missing++;
        } else if (c > 1) {
            twice++;
        }
    }
    if (missing || twice || d != n)
        T_FAIL("%s: %lu destroy callbacks for %zu objects; %zu never destroyed (first id %zu), "
               "%zu destroyed more than once", what, d, n, missing, first_missing, twice);
}

/* The calling thread performs rc operations, which drain its merge queue. */
static void rc_nudge(void)
{
    void *tmp = rc_alloc(1, NULL);
    if (tmp) {
        rc_retain(tmp);
        rc_release(tmp);
        rc_release(tmp);
    }
}

/* ------------------------------------------------------------------------ */
/* A mutex-protected queue of references in transit between threads          */

typedef struct {
    pthread_mutex_t mu;
    tobj_t **items;
    size_t count, cap;
} refq_t;

static void refq_init(refq_t *q, size_t cap)
{
    pthread_mutex_init(&q->mu, NULL);
    q->items = malloc(cap * sizeof *q->items);
    assert_non_null(q->items);
    q->count = 0;
    q->cap = cap;
}

static void refq_free(refq_t *q)
{
    free(q->items);
    pthread_mutex_destroy(&q->mu);
}

/* 0 when full: the caller keeps the reference. */
static int refq_push(refq_t *q, tobj_t *o)
{
    pthread_mutex_lock(&q->mu);
    int ok = q->count < q->cap;
    if (ok) q->items[q->count++] = o;
    pthread_mutex_unlock(&q->mu);
    return ok;
}

/* A random element (so references are taken out of order), or NULL. */
static tobj_t *refq_pop(refq_t *q, rng_t *r)
{
    pthread_mutex_lock(&q->mu);
    tobj_t *o = NULL;
    if (q->count) {
        size_t i = (size_t)rng_below(r, q->count);
        o = q->items[i];
        q->items[i] = q->items[--q->count];
    }
    pthread_mutex_unlock(&q->mu);
    return o;
}

/* ------------------------------------------------------------------------ */
/* Start barrier: keeps the racing threads' start points close together     */
/*                                                                          */
/* Waiters spin for a short while (the common case when every thread has a  */
/* CPU), then sleep on a condition variable. A sched_yield spin is no good  */
/* here: on an oversubscribed machine (2 cores, parallel ctest, sanitizers) */
/* a yielding waiter gives its CPU to every other runnable task before it   */
/* sees the phase change, and test 2's 4 x 30000 crossings took minutes,    */
/* close to the ctest timeout. A sleeper is woken as soon as the last       */
/* thread arrives.                                                          */

typedef struct {
    atomic_uint arrived;
    atomic_uint phase;
    unsigned n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} spin_barrier_t;

/* (fewer under sanitizers, whose atomics are calls: a long spin there only
 * keeps the CPU from the thread being waited for) */
#define SPIN_BARRIER_SPINS (MT_SANITIZED ? 500u : 20000u)

static void spin_barrier_init(spin_barrier_t *b, unsigned n)
{
    atomic_store(&b->arrived, 0);
    atomic_store(&b->phase, 0);
    b->n = n;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
}

static void spin_barrier_destroy(spin_barrier_t *b)
{
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
}

static void spin_barrier_wait(spin_barrier_t *b)
{
    unsigned phase = atomic_load(&b->phase);
    if (atomic_fetch_add(&b->arrived, 1) + 1 == b->n) {
        atomic_store(&b->arrived, 0);
        /* under the mutex: a waiter that checked the phase and is about
         * to sleep holds it, so the broadcast cannot slip in between */
        pthread_mutex_lock(&b->mu);
        atomic_fetch_add(&b->phase, 1);
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        return;
    }
    for (unsigned spins = 0; spins < (unsigned)SPIN_BARRIER_SPINS; spins++)
        if (atomic_load(&b->phase) != phase) return;
    pthread_mutex_lock(&b->mu);
    while (atomic_load(&b->phase) == phase) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

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

/* A short busy wait of random length: varies who gets there first. */
static void spin_delay(rng_t *r, unsigned max)
{
    volatile unsigned sink = 0;
    unsigned n = (unsigned)rng_below(r, max);
    for (unsigned i = 0; i < n; i++) sink += i;
    (void)sink;
}

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
    const char *filter = getenv("MULCH_TEST_FILTER"); /* e.g. "*owner*" */
    if (filter && *filter) cmocka_set_test_filter(filter);
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_threads_retain_release_handoff),
        T(test_rc_weak_lock_races_last_release),
        T(test_rc_owner_exits_with_outstanding_refs),
        T(test_rc_count_and_weak_new_concurrent),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_destroyed);
    return failed;
}
