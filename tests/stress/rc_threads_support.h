/* rc_threads_support.h — the harness the multi-threaded rc stress tests
 * share (test_rc_threads.c, test_rc_threads_last_release.c): test objects
 * whose destroy callback counts per id (a double or missing destroy is
 * named), a pool of the test's own, a mutex-protected queue of references
 * in transit between threads, a start barrier that keeps racing threads'
 * start points close, and a random short busy wait.
 *
 * Include after mulch_test.h (and <mulch/rc.h>); everything here is static
 * and belongs to the including file. Invariant the checks rely on: an
 * object's magic word is OBJ_MAGIC from tobj_new until its destroy
 * callback, which runs once per id. */
#ifndef MULCH_TEST_RC_THREADS_SUPPORT_H
#define MULCH_TEST_RC_THREADS_SUPPORT_H

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

static inline void ids_reset(size_t n)
{
    free(g_destroyed);
    g_destroyed = calloc(n, sizeof *g_destroyed);
    assert_non_null(g_destroyed);
    g_ids = n;
    atomic_store(&g_destroys, 0);
}

static inline void tobj_destroy(void *obj)
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

static inline void pool_begin(void)
{
    g_pool = pool_create(NULL);
    assert_non_null(g_pool);
}

/* Only after a clean run: every object of the test is gone. */
static inline void pool_end(void)
{
    pool_stats_t s;
    pool_get_stats(g_pool, &s);
    size_t live = s.live_allocations;
    pool_destroy(g_pool);
    g_pool = NULL;
    if (live != 0) T_FAIL("%zu cell(s) still live in the test's pool at the end", live);
}

static inline tobj_t *tobj_new(uint64_t id)
{
    tobj_t *o = rc_alloc_in(g_pool, sizeof *o, tobj_destroy);
    if (o == NULL) return NULL;
    o->id = id;
    atomic_store(&o->magic, OBJ_MAGIC);
    return o;
}

/* A reference we hold must point to a live object. */
static inline int tobj_check(const tobj_t *o, const char *where)
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
static inline void expect_destroyed_once(size_t n, const char *what)
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
static inline void rc_nudge(void)
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

static inline void refq_init(refq_t *q, size_t cap)
{
    pthread_mutex_init(&q->mu, NULL);
    q->items = malloc(cap * sizeof *q->items);
    assert_non_null(q->items);
    q->count = 0;
    q->cap = cap;
}

static inline void refq_free(refq_t *q)
{
    free(q->items);
    pthread_mutex_destroy(&q->mu);
}

/* 0 when full: the caller keeps the reference. */
static inline int refq_push(refq_t *q, tobj_t *o)
{
    pthread_mutex_lock(&q->mu);
    int ok = q->count < q->cap;
    if (ok) q->items[q->count++] = o;
    pthread_mutex_unlock(&q->mu);
    return ok;
}

/* A random element (so references are taken out of order), or NULL. */
static inline tobj_t *refq_pop(refq_t *q, rng_t *r)
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
/* sees the phase change, and the weak-lock test's 4 x 30000 crossings      */
/* (test_rc_threads_last_release.c) took minutes, close to the ctest        */
/* timeout. A sleeper is woken as soon as the last thread arrives.          */

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

static inline void spin_barrier_init(spin_barrier_t *b, unsigned n)
{
    atomic_store(&b->arrived, 0);
    atomic_store(&b->phase, 0);
    b->n = n;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
}

static inline void spin_barrier_destroy(spin_barrier_t *b)
{
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
}

static inline void spin_barrier_wait(spin_barrier_t *b)
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

/* A short busy wait of random length: varies who gets there first. */
static inline void spin_delay(rng_t *r, unsigned max)
{
    volatile unsigned sink = 0;
    unsigned n = (unsigned)rng_below(r, max);
    for (unsigned i = 0; i < n; i++) sink += i;
    (void)sink;
}

#endif /* MULCH_TEST_RC_THREADS_SUPPORT_H */
