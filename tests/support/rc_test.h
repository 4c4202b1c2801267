/* rc_test.h — helpers shared by the black-box rc tests
 * tests/api/test_rc_{alloc,counts,misuse,weak,bridge}.c: rc_nudge (drain the
 * calling thread's merge queue), recorded objects (recobj_t, mk_rec) whose
 * destroy callback counts runs, the last object, its thread and a global
 * sequence number (EXPECT_DESTROYS, EXPECT_SHADOW_RUNS), and a two-thread
 * handoff (handoff_t, release_transferred).
 *
 * Include it instead of mulch_test.h, after defining DEFAULT_SEED: it
 * includes <mulch/rc.h> and mulch_test.h with MULCH_TEST_POOL (fill,
 * EXPECT_PATTERN and stats_of come from there). Everything here is static
 * (inline) and belongs to the including file. */
#ifndef MULCH_RC_TEST_H
#define MULCH_RC_TEST_H

#ifdef MULCH_TEST_H
#  error "include rc_test.h instead of mulch_test.h"
#endif
#define MULCH_TEST_POOL 1
#include <mulch/rc.h>

#include "mulch_test.h"

/* The calling thread performs an rc operation, which drains its merge
 * queue: objects it allocated whose last reference another thread dropped
 * are destroyed now. */
static inline void rc_nudge(void)
{
    void *tmp = rc_alloc(1, NULL);
    if (tmp) {
        rc_retain(tmp);
        rc_release(tmp);
        rc_release(tmp);
    }
}

/* Records destroy callbacks: how many, the last object, its thread, and a
 * global sequence number shared with the finalizers (ordering checks). */
static atomic_ulong g_seq;
static atomic_ulong g_destroys;
static _Atomic(void *) g_last_destroyed;
static pthread_t g_destroy_thread;
static pthread_mutex_t g_destroy_mu = PTHREAD_MUTEX_INITIALIZER;

static inline void destroy_reset(void)
{
    atomic_store(&g_destroys, 0);
    atomic_store(&g_last_destroyed, NULL);
}

/* Payload of the recorded objects. */
#define REC_MAGIC UINT64_C(0x7263206f626a2121)
typedef struct recobj {
    uint64_t magic;
    uint64_t id;
    unsigned long destroyed_seq; /* 0 until destroy ran */
    unsigned destroy_runs;
} recobj_t;

/* Objects whose destroy_runs we check after they die live in `g_shadow`:
 * destroy copies its runs and seq there by id (the object itself is gone). */
#define SHADOW_MAX 64
static atomic_uint g_shadow_runs[SHADOW_MAX];
static atomic_ulong g_shadow_seq[SHADOW_MAX];

static inline void shadow_reset(void)
{
    for (size_t i = 0; i < SHADOW_MAX; i++) {
        atomic_store(&g_shadow_runs[i], 0);
        atomic_store(&g_shadow_seq[i], 0);
    }
}

static inline void rec_destroy(void *obj)
{
    recobj_t *o = obj;
    if (o->magic != REC_MAGIC) AFAIL("destroy got %p whose magic is %" PRIx64, obj, o->magic);
    o->destroy_runs++;
    o->destroyed_seq = atomic_fetch_add(&g_seq, 1) + 1;
    if (o->id < SHADOW_MAX) {
        if (atomic_fetch_add(&g_shadow_runs[o->id], 1) != 0)
            AFAIL("destroy ran twice for object id %" PRIu64, o->id);
        atomic_store(&g_shadow_seq[o->id], o->destroyed_seq);
    }
    pthread_mutex_lock(&g_destroy_mu);
    g_destroy_thread = pthread_self();
    pthread_mutex_unlock(&g_destroy_mu);
    atomic_store(&g_last_destroyed, obj);
    atomic_fetch_add(&g_destroys, 1);
    o->magic = 0;
}

static inline recobj_t *mk_rec(pool_t *pool, uint64_t id)
{
    recobj_t *o = pool ? rc_alloc_in(pool, sizeof *o, rec_destroy) : rc_alloc(sizeof *o, rec_destroy);
    if (o == NULL) {
        print_error("rc_alloc(%zu) returned NULL\n", sizeof *o);
        fail();
    }
    o->magic = REC_MAGIC;
    o->id = id;
    return o;
}

#define EXPECT_DESTROYS(n) \
    do { \
        unsigned long got_ = atomic_load(&g_destroys), want_ = (unsigned long)(n); \
        if (got_ != want_) T_FAIL("destroy callbacks run: %lu, expected %lu", got_, want_); \
    } while (0)

#define EXPECT_SHADOW_RUNS(id, n) \
    do { \
        unsigned got_ = atomic_load(&g_shadow_runs[(id)]), want_ = (unsigned)(n); \
        if (got_ != want_) \
            T_FAIL("destroy of object id %d ran %u time(s), expected %u", (int)(id), got_, want_); \
    } while (0)

/* A reference handed to another thread, with a step counter both sides
 * wait on. */
typedef struct {
    void *obj;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int step;
    pthread_t self;
} handoff_t;

static inline void handoff_wait(handoff_t *h, int step)
{
    pthread_mutex_lock(&h->mu);
    while (h->step < step) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static inline void handoff_set(handoff_t *h, int step)
{
    pthread_mutex_lock(&h->mu);
    h->step = step;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static inline void *release_transferred(void *arg)
{
    handoff_t *h = arg;
    rc_release(h->obj);            /* a reference the owner counted, dropped here */
    return NULL;
}

#endif /* MULCH_RC_TEST_H */
