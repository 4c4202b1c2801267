/* Unit tests of the per-thread rc records (runtime/rc.c): a thread that
 * used rc gets a record (its merge queue); once the thread has exited and
 * no object it allocated still waits for its counts to be merged, the
 * record is reused by a later thread instead of leaking (a page each: a
 * program that starts a thread per task grew without bound). A record is
 * never reused while an object it owns is unmerged. */
#include <pthread.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rc_internal.h"
#include "unit_errors.h"

static int destroys;
static void count_destroy(void *obj) {
    (void)obj;
    __atomic_fetch_add(&destroys, 1, __ATOMIC_RELAXED);
}

typedef struct {
    rc_thread_t *record; /* the thread's record */
    void        *keep;   /* if asked: an object handed out, still counted by the thread */
    bool         hand_out;
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    void *obj = rc_alloc(32, count_destroy);
    assert_non_null(obj);
    w->record = rc_self;
    if (w->hand_out) w->keep = obj; /* our reference goes to the joiner */
    else rc_release(obj);
    return NULL;
}

static rc_thread_t *run_worker(bool hand_out, void **keep) {
    worker_t w = { .hand_out = hand_out };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, worker, &w), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(w.record);
    if (keep) *keep = w.keep;
    return w.record;
}

static void test_exited_thread_record_is_reused(void **state) {
    (void)state;
    destroys = 0;
    rc_thread_t *first = run_worker(false, NULL);
    /* threads one after the other: each finds the previous one's record */
    for (int i = 0; i < 100; i++) {
        rc_thread_t *next = run_worker(false, NULL);
        if (next != first) fail_msg("thread %d got a new rc record %p, not the exited threads' %p", i, (void *)next,
                                    (void *)first);
    }
    assert_int_equal(destroys, 101);
    assert_int_equal(reports, 0);
}

static void test_record_kept_while_an_object_is_unmerged(void **state) {
    (void)state;
    destroys = 0;
    void *kept = NULL;
    rc_thread_t *owner = run_worker(true, &kept);
    assert_non_null(kept);
    /* the exited owner still counts `kept`: its record must stay its own */
    rc_thread_t *other = run_worker(false, NULL);
    assert_ptr_not_equal(other, owner);
    assert_int_equal(rc_count(kept), 1);
    rc_release(kept); /* folds the dead owner's count: destroyed here */
    assert_int_equal(destroys, 2);
    /* now both records are free: the next threads get them back */
    rc_thread_t *a = run_worker(false, NULL), *b = run_worker(false, NULL);
    assert_true(a == owner || a == other);
    assert_true(b == owner || b == other);
    assert_int_equal(destroys, 4);
    assert_int_equal(reports, 0);
}

/* Short-lived owners hand every object to a long-lived releaser and exit,
 * racing its releases (queued to a live owner, folded for a dead one):
 * every object is destroyed once, and the records keep being reused. */
enum { WAVES = 200, PER_OWNER = 8, RING = 64 };
static void *g_ring[RING];
static size_t g_head, g_tail;
static bool g_done;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static void *short_owner(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    for (int i = 0; i < PER_OWNER; i++) {
        void *obj = rc_alloc(16 + (seed % 5) * 16, count_destroy);
        assert_non_null(obj);
        if ((seed >> i) & 1) rc_retain(obj), rc_release(obj);
        pthread_mutex_lock(&g_mu);
        while (g_tail - g_head == RING) pthread_cond_wait(&g_cv, &g_mu);
        g_ring[g_tail++ % RING] = obj; /* our reference goes with it */
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
    }
    return NULL;
}

static void *releaser(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_mu);
        while (g_head == g_tail && !g_done) pthread_cond_wait(&g_cv, &g_mu);
        if (g_head == g_tail) {
            pthread_mutex_unlock(&g_mu);
            return NULL;
        }
        void *obj = g_ring[g_head++ % RING];
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
        rc_release(obj);
    }
}

static void test_owners_exit_racing_releases(void **state) {
    (void)state;
    uint64_t seed = UINT64_C(0x72637265636f7264); /* "rcrecord" */
    destroys = 0;
    g_head = g_tail = 0;
    g_done = false;
    pthread_t rel;
    assert_int_equal(pthread_create(&rel, NULL, releaser, NULL), 0);
    for (int w = 0; w < WAVES; w++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, short_owner, (void *)(uintptr_t)(seed >> (20 * i))), 0);
        for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    pthread_mutex_lock(&g_mu);
    g_done = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    assert_int_equal(pthread_join(rel, NULL), 0);
    /* every owner exited, so nothing waits in a merge queue */
    if (__atomic_load_n(&destroys, __ATOMIC_RELAXED) != WAVES * 2 * PER_OWNER)
        fail_msg("seed 0x%" PRIx64 ": %d destroys, want %d", seed, destroys, WAVES * 2 * PER_OWNER);
    /* the records went back: threads one after the other share one */
    rc_thread_t *a = run_worker(false, NULL), *b = run_worker(false, NULL);
    assert_ptr_equal(a, b);
    assert_int_equal(reports, 0);
}

/* pool_destroy merges the objects of its pool that wait in a running
 * owner's queue, counting them for that owner (only it changes its own
 * `live`). When the owner exited between pool_destroy's look at `dead`
 * and a merge (here: a destroy callback run by the first merge joins it),
 * the exit had already taken the count: the later merge was never
 * subtracted, its hold on the record stayed, and the record was never
 * reused (a leaked page). */
static pthread_t g_exiting_owner;
static bool g_owner_joined;
static pthread_mutex_t g_owner_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_owner_cv = PTHREAD_COND_INITIALIZER;
static int g_owner_step;

static void owner_step(int step) {
    pthread_mutex_lock(&g_owner_mu);
    g_owner_step = step;
    pthread_cond_broadcast(&g_owner_cv);
    pthread_mutex_unlock(&g_owner_mu);
}
static void owner_wait(int step) {
    pthread_mutex_lock(&g_owner_mu);
    while (g_owner_step < step) pthread_cond_wait(&g_owner_cv, &g_owner_mu);
    pthread_mutex_unlock(&g_owner_mu);
}

static void join_owner_destroy(void *obj) {
    (void)obj;
    destroys++;
    if (g_owner_joined) return;
    g_owner_joined = true;
    owner_step(2); /* the owner exits now, while pool_destroy merges */
    assert_int_equal(pthread_join(g_exiting_owner, NULL), 0);
}

typedef struct {
    pool_t      *pool;
    void        *objs[2];
    rc_thread_t *record;
} pool_owner_t;

static void *pool_owner(void *arg) {
    pool_owner_t *p = arg;
    for (int i = 0; i < 2; i++) {
        p->objs[i] = rc_alloc_in(p->pool, 32, join_owner_destroy);
        assert_non_null(p->objs[i]);
    }
    p->record = rc_self;
    owner_step(1); /* our references go to the main thread */
    owner_wait(2); /* no rc call until the exit */
    return NULL;
}

static void test_pool_destroy_merge_racing_owner_exit(void **state) {
    (void)state;
    destroys = 0;
    g_owner_joined = false;
    g_owner_step = 0;
    pool_owner_t p = { .pool = pool_create(NULL) };
    assert_non_null(p.pool);
    assert_int_equal(pthread_create(&g_exiting_owner, NULL, pool_owner, &p), 0);
    owner_wait(1);
    /* queued to the running owner: their destroys wait for its merge */
    rc_release(p.objs[0]);
    rc_release(p.objs[1]);
    assert_int_equal(destroys, 0);
    pool_destroy(p.pool); /* merges both; the first destroy joins the owner */
    assert_true(g_owner_joined);
    assert_int_equal(destroys, 2);
    /* the owner's record went back: the next thread gets it */
    rc_thread_t *next = run_worker(false, NULL);
    if (next != p.record)
        fail_msg("the exited owner's record %p was not reused (the next thread got %p)", (void *)p.record,
                 (void *)next);
    assert_int_equal(reports, 0);
}

/* A thread per task: the task makes rc objects in a pool of its own, the
 * thread exits still counting them, and the pool is destroyed with them
 * (pool_destroy frees live rc objects without their destroys). The
 * records stayed held by the freed objects and were never reused: a page
 * per thread (about 8 MB per 2,000 tasks). The same when the pool goes
 * while its objects' owner still runs, and when the owner destroys it. */
typedef struct {
    pool_t      *pool;
    rc_thread_t *record;
    bool         destroy_pool; /* the task destroys its own pool */
    bool         wait;         /* until told, after the allocations */
} pool_task_t;

static void *pool_task(void *arg) {
    pool_task_t *t = arg;
    void *big = rc_alloc_in(t->pool, 1u << 20, count_destroy); /* a huge object */
    assert_non_null(big);
    for (int i = 0; i < 3; i++) assert_non_null(rc_alloc_in(t->pool, 32 + 16 * (size_t)i, count_destroy));
    t->record = rc_self;
    if (t->destroy_pool) {
        size_t live = rc_self->live;
        pool_destroy(t->pool);
        assert_int_equal(rc_self->live, live - 4);
    }
    if (t->wait) {
        owner_step(1);
        owner_wait(2);
    }
    return NULL;
}

static void test_pool_destroy_of_live_objects_frees_records(void **state) {
    (void)state;
    destroys = 0;
    rc_thread_t *first = NULL;
    for (int i = 0; i < 3 * 20; i++) {
        pool_task_t t = { .pool = pool_create(NULL), .destroy_pool = i % 3 == 1, .wait = i % 3 == 2 };
        assert_non_null(t.pool);
        g_owner_step = 0;
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, pool_task, &t), 0);
        if (t.wait) {
            owner_wait(1);
            pool_destroy(t.pool); /* the owner still runs */
            owner_step(2);
        }
        assert_int_equal(pthread_join(th, NULL), 0);
        if (i % 3 == 0) pool_destroy(t.pool); /* the owner has exited */
        if (first == NULL) first = t.record;
        else if (t.record != first)
            fail_msg("task %d got a new rc record %p, not the exited tasks' %p", i, (void *)t.record, (void *)first);
    }
    assert_int_equal(destroys, 0);
    assert_int_equal(reports, 0);
}

/* pool_destroy takes every non-empty merge queue and pushes back the
 * objects of other pools. An owner that exited while its queue was taken
 * found it empty at its last drain: the objects pushed back waited in a
 * dead thread's queue for ever (their destroys never ran, the record was
 * never reused). The hook joins the owner inside that window. */
static pthread_t g_hook_owner;
static rc_thread_t *g_hook_record;
static bool g_hook_joined;

static void join_owner_hook(rc_thread_t *rec) {
    if (rec != g_hook_record || g_hook_joined) return;
    g_hook_joined = true;
    owner_step(2); /* the owner exits now, its queue in pool_destroy's hands */
    assert_int_equal(pthread_join(g_hook_owner, NULL), 0);
}

static void *queue_owner(void *arg) {
    void **out = arg;
    *out = rc_alloc(32, count_destroy);
    assert_non_null(*out);
    g_hook_record = rc_self;
    owner_step(1); /* our reference goes to the main thread */
    owner_wait(2); /* no rc call until the exit */
    return NULL;
}

static void test_pool_destroy_pushes_back_to_exited_owner(void **state) {
    (void)state;
    destroys = 0;
    g_owner_step = 0;
    g_hook_joined = false;
    void *obj = NULL;
    assert_int_equal(pthread_create(&g_hook_owner, NULL, queue_owner, &obj), 0);
    owner_wait(1);
    rc_release(obj); /* queued to the running owner */
    assert_int_equal(destroys, 0);
    pool_t *pool = pool_create(NULL); /* another pool than obj's */
    assert_non_null(pool);
    mulch_rc_queues_test_hook = join_owner_hook;
    pool_destroy(pool);
    mulch_rc_queues_test_hook = NULL;
    assert_true(g_hook_joined);
    if (destroys != 1) fail_msg("%d destroys after the owner's exit, want 1 (left in a dead queue)", destroys);
    rc_thread_t *next = run_worker(false, NULL);
    if (next != g_hook_record)
        fail_msg("the exited owner's record %p was not reused (the next thread got %p)", (void *)g_hook_record,
                 (void *)next);
    assert_int_equal(reports, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exited_thread_record_is_reused, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_record_kept_while_an_object_is_unmerged, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_owners_exit_racing_releases, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_pool_destroy_merge_racing_owner_exit, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_pool_destroy_of_live_objects_frees_records, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_pool_destroy_pushes_back_to_exited_owner, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
