/* test_rc_review_s16.c — black-box regression tests from review session 16
 * (<mulch/rc.h>, docs/rc.md "Destroy callbacks", "Functions"):
 *   - a destroy callback that releases the last references to objects of
 *     a pool (rc_alloc_in) and then destroys that pool: the released
 *     objects waited on the thread's pending-destroy list, which then
 *     linked into the unmapped pool (a crash once the callback returned);
 *     their destroys now run inside pool_destroy, as for queued objects
 *     (also when the release queued one to its owner thread: the merge in
 *     pool_destroy then put it on the pending list too);
 *   - a destroy callback that destroys the pool its own object lives in
 *     (an arena owning its pool): rc wrote the object's magic and freed
 *     its cell into the unmapped pool after the callback (a crash);
 *   - a thread that ends inside a destroy callback (pthread_exit; gc.md
 *     "Cancellation"): the objects whose destroys were queued behind that
 *     callback never had them run (the thread's rc state stayed
 *     "destroying"); they now run at the thread's exit.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372631601)
#include <mulch/rc.h>

#include "rc_test.h"

/* A context object (default pool) that owns a pool and a list of objects
 * in it; its destroy releases the list, then destroys the pool. */
typedef struct ctx {
    pool_t *pool;
    recobj_t *items[4];
    void *chain; /* first of a chain of plain nodes, each owning the next */
} ctx_t;

typedef struct node {
    struct node *next;
    recobj_t *item; /* released by the node's destroy */
} node_t;

static atomic_ulong g_nodes_destroyed;

static void node_destroy(void *obj)
{
    node_t *n = obj;
    atomic_fetch_add(&g_nodes_destroyed, 1);
    if (n->item) rc_release(n->item);
    if (n->next) rc_release(n->next);
}

static void ctx_destroy(void *obj)
{
    ctx_t *c = obj;
    for (int i = 0; i < 4; i++) rc_release(c->items[i]); /* last references */
    rc_release(c->chain);
    pool_destroy(c->pool);
}

static void test_rc_pool_destroy_in_destroy_callback(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    atomic_store(&g_nodes_destroyed, 0);

    ctx_t *c = rc_alloc(sizeof *c, ctx_destroy);
    EXPECT_NONNULL(c);
    c->pool = pool_create(NULL);
    EXPECT_NONNULL(c->pool);
    for (int i = 0; i < 4; i++) c->items[i] = mk_rec(c->pool, (uint64_t)(1 + i));
    /* a chain whose destroys release more of the pool's objects as they go */
    node_t *head = NULL;
    for (int i = 0; i < 3; i++) {
        node_t *n = rc_alloc_in(c->pool, sizeof *n, node_destroy);
        EXPECT_NONNULL(n);
        n->item = mk_rec(c->pool, (uint64_t)(10 + i));
        n->next = head;
        head = n;
    }
    c->chain = head;

    rc_release(c); /* crashed here before the fix */

    EXPECT_DESTROYS(4 + 3);
    EXPECT_EQ(atomic_load(&g_nodes_destroyed), 3);
    for (int i = 0; i < 4; i++) EXPECT_SHADOW_RUNS(1 + i, 1);
    for (int i = 0; i < 3; i++) EXPECT_SHADOW_RUNS(10 + i, 1);

    /* the thread's rc state is sane afterwards */
    recobj_t *o = mk_rec(NULL, 20);
    rc_release(o);
    EXPECT_SHADOW_RUNS(20, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* The pool's object is owned by another thread, which still runs: the
 * callback's release queues it to that owner; pool_destroy merges it,
 * and its destroy, pending behind the callback's, runs there too. */
typedef struct owner_arg {
    pool_t *pool;
    recobj_t *obj;
    handoff_t ho;
} owner_arg_t;

static void *owner_thread(void *arg)
{
    owner_arg_t *a = arg;
    a->obj = mk_rec(a->pool, 21); /* this thread counts its reference */
    handoff_set(&a->ho, 1);
    handoff_wait(&a->ho, 2); /* alive, and no rc call, until the end */
    return NULL;
}

static void test_rc_pool_destroy_in_destroy_callback_queued(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();

    owner_arg_t a = { .ho = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER } };
    a.pool = pool_create(NULL);
    EXPECT_NONNULL(a.pool);
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, owner_thread, &a), 0);
    handoff_wait(&a.ho, 1);

    ctx_t *c = rc_alloc(sizeof *c, ctx_destroy);
    EXPECT_NONNULL(c);
    c->pool = a.pool;
    c->items[0] = a.obj; /* the owner's reference, handed over */
    for (int i = 1; i < 4; i++) c->items[i] = mk_rec(c->pool, (uint64_t)(21 + i));
    c->chain = rc_alloc_in(c->pool, sizeof(node_t), node_destroy);
    EXPECT_NONNULL(c->chain);

    rc_release(c);

    EXPECT_DESTROYS(4);
    for (int i = 0; i < 4; i++) EXPECT_SHADOW_RUNS(21 + i, 1);
    handoff_set(&a.ho, 2);
    pthread_join(t, NULL);
    EXPECT_DESTROYS(4);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* An arena: an rc object in the pool it owns, with objects of that pool;
 * its destroy releases them and destroys the pool, itself included. */
typedef struct arena {
    pool_t *pool;
    recobj_t *item;
} arena_t;

static atomic_ulong g_arenas_destroyed;

static void arena_destroy(void *obj)
{
    arena_t *a = obj;
    atomic_fetch_add(&g_arenas_destroyed, 1);
    rc_release(a->item);
    pool_destroy(a->pool);
}

typedef struct holder {
    arena_t *arena;
} holder_t;

static void holder_destroy(void *obj)
{
    rc_release(((holder_t *)obj)->arena);
}

static void test_rc_destroy_callback_destroys_own_pool(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    atomic_store(&g_arenas_destroyed, 0);

    enum { ROUNDS = 4 };
    for (int round = 0; round < ROUNDS; round++) {
        pool_t *pool = pool_create(NULL);
        EXPECT_NONNULL(pool);
        arena_t *a = rc_alloc_in(pool, sizeof *a, arena_destroy);
        EXPECT_NONNULL(a);
        a->pool = pool;
        a->item = mk_rec(pool, (uint64_t)(30 + round));
        if (round & 1) {
            /* the last release from inside another object's destroy */
            holder_t *h = rc_alloc(sizeof *h, holder_destroy);
            EXPECT_NONNULL(h);
            h->arena = a; /* takes over our reference */
            rc_release(h);
        } else {
            rc_release(a); /* crashed here before the fix */
        }
        EXPECT_EQ(atomic_load(&g_arenas_destroyed), (unsigned long)(round + 1));
        EXPECT_SHADOW_RUNS(30 + round, 1);
    }
    /* the thread's rc state is sane afterwards */
    recobj_t *o = mk_rec(NULL, 40);
    rc_release(o);
    EXPECT_SHADOW_RUNS(40, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static recobj_t *g_behind[2];

static void exiting_destroy(void *obj)
{
    (void)obj;
    rc_release(g_behind[0]); /* last references: queued behind this one */
    rc_release(g_behind[1]);
    pthread_exit(NULL);
}

static void *exiting_thread(void *arg)
{
    (void)arg;
    g_behind[0] = mk_rec(NULL, 50);
    g_behind[1] = mk_rec(NULL, 51);
    void *a = rc_alloc(16, exiting_destroy);
    if (a == NULL) AFAIL("rc_alloc returned NULL");
    else rc_release(a);
    return NULL;
}

static void test_rc_thread_ends_inside_destroy_callback(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, exiting_thread, NULL), 0);
    pthread_join(t, NULL);
    EXPECT_DESTROYS(2);
    EXPECT_SHADOW_RUNS(50, 1);
    EXPECT_SHADOW_RUNS(51, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_review_s16");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_pool_destroy_in_destroy_callback),
        T(test_rc_pool_destroy_in_destroy_callback_queued),
        T(test_rc_destroy_callback_destroys_own_pool),
        T(test_rc_thread_ends_inside_destroy_callback),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
