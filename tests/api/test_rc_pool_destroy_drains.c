/* test_rc_pool_destroy_drains.c — pool_destroy on one thread while another
 * thread's drain of a merge queue is under way (review session 35):
 * releasing every object of a pool before pool_destroy is enough for every
 * destroy callback to run (docs/rc.md "When destroy runs"), even when some
 * of them wait in a queue that a drain has taken but not merged yet.
 *
 * Checked:
 *   - the owner's drain runs a slow destroy callback (another pool's
 *     object) while an object of the destroyed pool waits behind it in the
 *     drain's hands: pool_destroy destroys that object itself, once, before
 *     it returns, and the drain does not touch it afterwards (it did merge
 *     it later, into freed memory: "destroyed twice", or a count read from
 *     a new pool's cell);
 *   - an object of the destroyed pool whose destroy callback another
 *     thread's drain runs now: pool_destroy waits for the callback to
 *     return before the pool's memory goes;
 *   - a destroy callback that releases one of its thread's objects while
 *     an object of another pool, released by another thread, waits in the
 *     thread's queue: the merge an allocation there asks for is put off until
 *     the callback returns, so the waiting object stays in the queue,
 *     where a pool_destroy on the other thread finds it (merged at once,
 *     it waited on the thread's pending list, which pool_destroy on
 *     another thread does not see: destroyed 0 times before it returned);
 *   - that wait is a blocking region of the waiting thread's GC heaps: a
 *     callback that collects while an attached thread waits in
 *     pool_destroy for it ends (it deadlocked: the collection waited for
 *     the waiting thread);
 *   - a thread that ends inside a destroy callback its drain runs gives the
 *     drain's rest back to its queue, where pool_destroy finds it (merged
 *     by the cleanup handler, it waited on the exiting thread's pending
 *     list, out of pool_destroy's sight);
 *   - a destroy callback that destroys its own object's pool (the drain
 *     that runs it is this thread's: not waited for) still works;
 *   - a chain: the callback another thread's drain runs releases the last
 *     reference of the next object of a list, whose callback releases the
 *     next, across two pools: pool_destroy of each pool waits for every
 *     destroy of its objects in the chain (it waited for the first only,
 *     then unmapped the pool under the rest: a crash in rc_destroy_one, or
 *     callbacks skipped with a false report) (review session 36).
 *
 * Deterministic: the threads step through flags (no sleeps decide an
 * outcome); a step that does not come within 30 s fails the test. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372633335)
#define MULCH_TEST_POOL 1
#include <mulch/gc.h>
#include <mulch/pool.h>
#include <mulch/rc.h>

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "mulch_test.h"

static atomic_int g_step;
static atomic_int g_victim_destroys, g_victim_done;
static pool_t *g_pool;
static void *g_victim, *g_slow;
static atomic_bool g_destroy_returned;

/* Waits (at most 30 s) until g_step reaches `step`; false on time-out. */
static bool wait_step(int step)
{
    for (int i = 0; i < 30000; i++) {
        if (atomic_load(&g_step) >= step) return true;
        usleep(1000);
    }
    return false;
}

/* A scenario's start: counters reset, a fresh g_pool, `owner` started and
 * past step 1 (its objects allocated). */
static pthread_t scenario_start(void *(*owner)(void *))
{
    atomic_store(&g_step, 0);
    atomic_store(&g_victim_destroys, 0);
    g_pool = pool_create(NULL);
    EXPECT_NONNULL(g_pool);
    pthread_t thread;
    EXPECT_EQ(pthread_create(&thread, NULL, owner, NULL), 0);
    if (!wait_step(1)) T_FAIL("the owner did not allocate");
    return thread;
}

/* pool_destroy(g_pool) once the owner reached step `reached`; then step
 * `release` lets it go on, and the victim must have been destroyed once
 * when pool_destroy returned and still after the owner ended. */
static void scenario_destroy_and_finish(pthread_t owner, int reached, int release, unsigned long r0)
{
    if (!wait_step(reached)) T_FAIL("the owner did not reach step %d", reached);
    pool_destroy(g_pool);
    int destroys = atomic_load(&g_victim_destroys);
    atomic_store(&g_step, release);
    EXPECT_EQ(pthread_join(owner, NULL), 0);
    if (destroys != 1) T_FAIL("pool_destroy returned with the victim destroyed %d time(s), expected once", destroys);
    EXPECT_EQ(atomic_load(&g_victim_destroys), 1);
    EXPECT_NO_REPORTS(r0);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ---- an object of the pool behind a slow callback, in the drain's hands -- */

static void victim_destroy(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_victim_destroys, 1);
}

/* Runs inside the owner's drain: step 3 lets the main thread destroy the
 * victim's pool; the drain goes on only after pool_destroy returned. */
static void slow_destroy(void *obj)
{
    (void)obj;
    atomic_store(&g_step, 3);
    if (!wait_step(4)) AFAIL("pool_destroy did not return while a drain ran another pool's destroy");
}

static void *owner_of_queued(void *arg)
{
    (void)arg;
    g_victim = rc_alloc_in(g_pool, 32, victim_destroy);
    g_slow = rc_alloc(32, slow_destroy);
    void *mine = rc_alloc(16, NULL);
    if (!g_victim || !g_slow || !mine) AFAIL("rc_alloc failed");
    atomic_store(&g_step, 1);
    if (!wait_step(2)) AFAIL("step 2 never came");
    rc_release(mine); /* drains the queue: slow's destroy first, the victim behind it */
    return NULL;
}

static void test_pool_destroy_takes_objects_from_a_drain(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pthread_t owner = scenario_start(owner_of_queued);
    rc_release(g_victim); /* the last references: both queued to the owner */
    rc_release(g_slow);   /* (pushed last: merged first) */
    atomic_store(&g_step, 2);
    scenario_destroy_and_finish(owner, 3, 4, r0); /* (3: the drain is inside the slow destroy) */
}

/* ---- an object of the pool whose callback another thread's drain runs ---- */

/* The victim's own callback, run by the owner's drain: step 3 starts the
 * destroying thread; it returns only after a while, and pool_destroy must
 * not have returned before. */
static void victim_destroy_slow(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_victim_destroys, 1);
    atomic_store(&g_step, 3);
    usleep(50 * 1000);
    if (atomic_load(&g_destroy_returned)) AFAIL("pool_destroy returned while a destroy callback of its pool ran");
    ((unsigned char *)obj)[0] = 1; /* its cell is still the pool's */
    atomic_store(&g_victim_done, 1);
}

static void *owner_of_victim(void *arg)
{
    (void)arg;
    g_victim = rc_alloc_in(g_pool, 32, victim_destroy_slow);
    void *mine = rc_alloc(16, NULL);
    if (!g_victim || !mine) AFAIL("rc_alloc failed");
    atomic_store(&g_step, 1);
    if (!wait_step(2)) AFAIL("step 2 never came");
    rc_release(mine); /* drains: the victim's callback runs here */
    return NULL;
}

static void *destroy_pool(void *arg)
{
    (void)arg;
    if (!wait_step(3)) AFAIL("the victim's callback did not start");
    pool_destroy(g_pool);
    atomic_store(&g_destroy_returned, true);
    return NULL;
}

static void test_pool_destroy_waits_for_a_running_callback(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_step, 0);
    atomic_store(&g_victim_destroys, 0);
    atomic_store(&g_victim_done, 0);
    atomic_store(&g_destroy_returned, false);
    g_pool = pool_create(NULL);
    EXPECT_NONNULL(g_pool);
    pthread_t owner, destroyer;
    EXPECT_EQ(pthread_create(&owner, NULL, owner_of_victim, NULL), 0);
    EXPECT_EQ(pthread_create(&destroyer, NULL, destroy_pool, NULL), 0);
    if (!wait_step(1)) T_FAIL("the owner did not allocate");
    rc_release(g_victim); /* the last reference: queued to the owner */
    atomic_store(&g_step, 2);
    EXPECT_EQ(pthread_join(destroyer, NULL), 0);
    EXPECT_EQ(atomic_load(&g_victim_done), 1);
    EXPECT_EQ(pthread_join(owner, NULL), 0);
    EXPECT_EQ(atomic_load(&g_victim_destroys), 1);
    EXPECT_NO_REPORTS(r0);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ---- a release inside a callback puts the drain off ---------------------- */

static void *g_kept;     /* an object of the owner with two references */
static pool_t *g_other;  /* (not the destroyed pool) */

/* Runs on the owner: the victim is queued to it meanwhile (step 4), then
 * an allocation asks for a merge, then the main thread destroys the
 * victim's pool (step 5) while this callback still runs. */
static void releasing_destroy(void *obj)
{
    (void)obj;
    atomic_store(&g_step, 3);
    if (!wait_step(4)) AFAIL("the victim was not released");
    rc_release(g_kept);                        /* not its last */
    rc_release(rc_alloc_in(g_other, 8, NULL)); /* rc_alloc asks for a merge of the queue */
    atomic_store(&g_step, 5);
    if (!wait_step(6)) AFAIL("pool_destroy did not return while a callback ran");
}

static void *owner_releasing_in_callback(void *arg)
{
    (void)arg;
    g_victim = rc_alloc_in(g_pool, 32, victim_destroy);
    void *releasing = rc_alloc(32, releasing_destroy);
    g_kept = rc_alloc(16, NULL);
    if (!g_victim || !releasing || !g_kept) AFAIL("rc_alloc failed");
    rc_retain(g_kept);
    atomic_store(&g_step, 1);
    if (!wait_step(2)) AFAIL("step 2 never came");
    rc_release(releasing); /* its last: the callback runs here */
    rc_release(g_kept);
    return NULL;
}

static void test_release_in_callback_leaves_the_queue_visible(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    g_other = pool_default();
    pthread_t owner = scenario_start(owner_releasing_in_callback);
    atomic_store(&g_step, 2);
    if (!wait_step(3)) T_FAIL("the owner's callback did not run");
    rc_release(g_victim); /* the last reference: queued to the owner, inside its callback */
    atomic_store(&g_step, 4);
    scenario_destroy_and_finish(owner, 5, 6, r0); /* (5: the callback allocated) */
}

/* ---- the wait is a blocking region: a callback may collect ----------------- */

static gc_heap_t *g_heap;
static gc_thread_t *g_owner_thread;

static void collecting_victim_destroy(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_victim_destroys, 1);
    atomic_store(&g_step, 3);
    usleep(50 * 1000);        /* (the main thread is in pool_destroy's wait, most likely) */
    gc_collect(g_owner_thread); /* stops the world: the main thread is attached */
}

static void *collecting_owner(void *arg)
{
    (void)arg;
    g_owner_thread = gc_thread_attach(g_heap);
    g_victim = rc_alloc_in(g_pool, 32, collecting_victim_destroy);
    void *mine = rc_alloc(16, NULL);
    if (!g_owner_thread || !g_victim || !mine) AFAIL("attach or rc_alloc failed");
    atomic_store(&g_step, 1);
    if (!wait_step(2)) AFAIL("step 2 never came");
    rc_release(mine); /* drains: the victim's callback collects */
    gc_thread_detach(g_owner_thread);
    return NULL;
}

static void test_wait_lets_a_collecting_callback_finish(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_step, 0);
    atomic_store(&g_victim_destroys, 0);
    g_heap = gc_heap_create(NULL);
    EXPECT_NONNULL(g_heap);
    gc_thread_t *self = gc_thread_attach(g_heap);
    EXPECT_NONNULL(self);
    g_pool = pool_create(NULL);
    EXPECT_NONNULL(g_pool);
    pthread_t owner;
    EXPECT_EQ(pthread_create(&owner, NULL, collecting_owner, NULL), 0);
    if (!wait_step(1)) T_FAIL("the owner did not allocate");
    rc_release(g_victim); /* queued to the owner */
    atomic_store(&g_step, 2);
    if (!wait_step(3)) T_FAIL("the victim's callback did not start");
    pool_destroy(g_pool); /* waits for the callback, which collects */
    EXPECT_EQ(atomic_load(&g_victim_destroys), 1);
    EXPECT_EQ(pthread_join(owner, NULL), 0);
    gc_thread_detach(self);
    gc_heap_destroy(g_heap);
    EXPECT_NO_REPORTS(r0);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ---- a thread ending inside a callback its drain runs ------------------------ */

static pthread_key_t g_early_key; /* made before rc's exit key: its destructor runs first */

static void early_destructor(void *value)
{
    (void)value;
    atomic_store(&g_step, 3); /* the drain's cleanup handlers ran; rc's exit hook has not */
    if (!wait_step(4)) AFAIL("pool_destroy did not return while the thread was exiting");
}

static void exiting_destroy(void *obj)
{
    (void)obj;
    pthread_exit(NULL);
}

static void *owner_ending_in_callback(void *arg)
{
    (void)arg;
    pthread_setspecific(g_early_key, (void *)1);
    g_victim = rc_alloc_in(g_pool, 32, victim_destroy);
    g_slow = rc_alloc(32, exiting_destroy);
    void *mine = rc_alloc(16, NULL);
    if (!g_victim || !g_slow || !mine) AFAIL("rc_alloc failed");
    atomic_store(&g_step, 1);
    if (!wait_step(2)) AFAIL("step 2 never came");
    rc_release(mine); /* drains: the exiting callback first, the victim behind it */
    return NULL;
}

static void test_thread_ending_in_callback_gives_the_rest_back(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pthread_t owner = scenario_start(owner_ending_in_callback);
    rc_release(g_victim); /* queued first: merged after the exiting callback */
    rc_release(g_slow);
    atomic_store(&g_step, 2);
    scenario_destroy_and_finish(owner, 3, 4, r0); /* (3: the owner is exiting) */
}

/* ---- a callback destroying its own object's pool, inside a drain ---------- */

static void destroy_own_pool(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_victim_destroys, 1);
    pool_destroy(g_pool); /* this thread's drain has this object in hand: no wait */
}

static void *owner_destroying_own_pool(void *arg)
{
    (void)arg;
    g_victim = rc_alloc_in(g_pool, 32, destroy_own_pool);
    void *mine = rc_alloc(16, NULL);
    if (!g_victim || !mine) AFAIL("rc_alloc failed");
    atomic_store(&g_step, 1);
    if (!wait_step(2)) AFAIL("step 2 never came");
    rc_release(mine);
    return NULL;
}

static void test_callback_destroys_its_pool_inside_a_drain(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_step, 0);
    atomic_store(&g_victim_destroys, 0);
    g_pool = pool_create(NULL);
    EXPECT_NONNULL(g_pool);
    pthread_t owner;
    EXPECT_EQ(pthread_create(&owner, NULL, owner_destroying_own_pool, NULL), 0);
    if (!wait_step(1)) T_FAIL("the owner did not allocate");
    rc_release(g_victim);
    atomic_store(&g_step, 2);
    EXPECT_EQ(pthread_join(owner, NULL), 0);
    EXPECT_EQ(atomic_load(&g_victim_destroys), 1);
    EXPECT_NO_REPORTS(r0);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ---- a chain of destroys the drain's callback set off --------------------- */

enum { CHAIN_NODES = 4, CHAIN_IN_FIRST_POOL = 3 };
typedef struct chain_node {
    struct chain_node *next;
    int index;
} chain_node_t;
static pool_t *g_second;
static atomic_bool g_second_returned;
static atomic_int g_chain_destroys;

/* Node i's callback, on the owner: nodes 0-2 are g_pool's, node 3
 * g_second's; each pool's pool_destroy must not have returned yet. */
static void chain_destroy(void *obj)
{
    chain_node_t *node = obj;
    if (node->index == 0) atomic_store(&g_step, 3);
    usleep(10 * 1000); /* (the main thread is in pool_destroy, most likely) */
    atomic_bool *returned = node->index < CHAIN_IN_FIRST_POOL ? &g_destroy_returned : &g_second_returned;
    if (atomic_load(returned)) AFAIL("pool_destroy returned before node %d's callback did", node->index);
    atomic_fetch_add(&g_chain_destroys, 1);
    if (node->next) rc_release(node->next); /* the next one's last reference */
}

static void *owner_of_chain(void *arg)
{
    (void)arg;
    chain_node_t *next = NULL;
    for (int i = CHAIN_NODES - 1; i >= 0; i--) {
        chain_node_t *node = rc_alloc_in(i < CHAIN_IN_FIRST_POOL ? g_pool : g_second, sizeof *node, chain_destroy);
        if (!node) AFAIL("rc_alloc_in failed");
        node->next = next;
        node->index = i;
        next = node;
    }
    g_victim = next;
    void *mine = rc_alloc(16, NULL);
    if (!mine) AFAIL("rc_alloc failed");
    atomic_store(&g_step, 1);
    if (!wait_step(2)) AFAIL("step 2 never came");
    rc_release(mine); /* drains: node 0's callback, then the chain */
    return NULL;
}

static void test_pool_destroy_waits_for_a_chain_of_destroys(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_destroy_returned, false);
    atomic_store(&g_second_returned, false);
    atomic_store(&g_chain_destroys, 0);
    g_second = pool_create(NULL);
    EXPECT_NONNULL(g_second);
    pthread_t owner = scenario_start(owner_of_chain);
    rc_release(g_victim); /* node 0's last reference: queued to the owner */
    atomic_store(&g_step, 2);
    if (!wait_step(3)) T_FAIL("node 0's callback did not start");
    pool_destroy(g_pool);
    int first = atomic_load(&g_chain_destroys);
    atomic_store(&g_destroy_returned, true);
    pool_destroy(g_second);
    int all = atomic_load(&g_chain_destroys);
    atomic_store(&g_second_returned, true);
    EXPECT_EQ(pthread_join(owner, NULL), 0);
    if (first < CHAIN_IN_FIRST_POOL) T_FAIL("pool_destroy returned after %d of its %d destroys", first, CHAIN_IN_FIRST_POOL);
    EXPECT_EQ(all, CHAIN_NODES);
    EXPECT_NO_REPORTS(r0);
    EXPECT_NO_ASYNC_FAILURES();
}

int main(void)
{
    mt_init("test_rc_pool_destroy_drains");
    /* (before any rc call makes rc's exit key: its destructor runs first) */
    if (pthread_key_create(&g_early_key, early_destructor) != 0) return 1;
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_destroy_takes_objects_from_a_drain),
        T(test_pool_destroy_waits_for_a_running_callback),
        T(test_release_in_callback_leaves_the_queue_visible),
        T(test_wait_lets_a_collecting_callback_finish),
        T(test_thread_ending_in_callback_gives_the_rest_back),
        T(test_callback_destroys_its_pool_inside_a_drain),
        T(test_pool_destroy_waits_for_a_chain_of_destroys),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
