/* test_rc_counts.c — black-box tests of reference-counted objects
 * (<mulch/rc.h>; docs: shared/API.md "RC", docs/rc.md), counting:
 *   - rc_retain / rc_release / rc_count: exact counts, through the inline
 *     and the library forms alike, also with references released on other
 *     threads; destroy runs exactly once, on the last release, on whichever
 *     thread makes it; a destroy that releases other rc objects (a
 *     1,000,000-long chain, a wide tree, a chain on a small stack) does not
 *     recurse.
 *
 * Biased counting: an object released last by a thread other than its
 * allocating thread may be destroyed only at the allocating thread's next
 * rc_retain / rc_release (or its exit). Tests that release on another
 * thread make the owner perform one before checking (rc_nudge()).
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372630c01)
#include <mulch/rc.h>

#include "rc_test.h"

/* ======================================================================== */
/* Counting and destroy                                                      */

static void test_rc_retain_release_counts(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    recobj_t *o = mk_rec(NULL, 3);
    EXPECT_EQ(rc_count(o), 1);
    void *ret = rc_retain(o);
    EXPECT_PTR_EQ(ret, o);
    EXPECT_EQ(rc_count(o), 2);
    rc_release(o);
    EXPECT_EQ(rc_count(o), 1);
    /* a random walk of retains and releases, the count exact at every step */
    size_t model = 1;
    size_t steps = scaled(200000, 20000);
    for (size_t i = 0; i < steps; i++) {
        if (model == 1 || rng_below(&r, 100) < 55) {
            size_t k = 1 + (size_t)rng_below(&r, 4);
            for (size_t j = 0; j < k; j++) EXPECT_PTR_EQ(rc_retain(o), o);
            model += k;
        } else {
            size_t k = 1 + (size_t)rng_below(&r, model - 1);
            if (k > 4) k = 4;
            for (size_t j = 0; j < k; j++) rc_release(o);
            model -= k;
        }
        size_t c = rc_count(o);
        if (c != model) T_FAIL("step %zu: rc_count = %zu, expected %zu", i, c, model);
        if (atomic_load(&g_destroys) != 0) T_FAIL("step %zu: destroyed at count %zu", i, model);
    }
    while (model > 1) {
        rc_release(o);
        model--;
    }
    EXPECT_EQ(rc_count(o), 1);
    EXPECT_EQ(o->destroy_runs, 0);
    EXPECT_DESTROYS(0);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(3, 1);
    EXPECT_PTR_EQ(atomic_load(&g_last_destroyed), o);
    pthread_mutex_lock(&g_destroy_mu);
    int same = pthread_equal(g_destroy_thread, pthread_self());
    pthread_mutex_unlock(&g_destroy_mu);
    if (!same) T_FAIL("destroy of an object released on this thread ran on another thread");

    /* a NULL destroy is allowed */
    void *plain = rc_alloc(32, NULL);
    EXPECT_NONNULL(plain);
    rc_retain(plain);
    rc_release(plain);
    rc_release(plain);
    EXPECT_DESTROYS(1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* Another thread takes a reference of its own (rc_retain there), the owner
 * lets go, the other thread drops the last reference: destroy runs there. */
static void *retain_then_release_last(void *arg)
{
    handoff_t *h = arg;
    rc_retain(h->obj);
    handoff_set(h, 1);
    handoff_wait(h, 2);            /* the owner released its reference */
    rc_release(h->obj);            /* the last one */
    return NULL;
}

/* <mulch/rc.h> inlines the owner's retain and non-final release (unless
 * sanitizers or MULCH_RC_NO_INLINE turn that off); (rc_retain)(o) is always
 * the library function. Both must keep one count: a seeded mix of the two,
 * with other threads' references in between, and the last release through
 * the inline form destroying exactly once. */
static void *release_on_thread(void *obj)
{
    rc_release(obj);
    return NULL;
}

static void test_rc_inline_and_library_paths_agree(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    destroy_reset();
    shadow_reset();
    recobj_t *o = mk_rec(NULL, 5);
    size_t model = 1;
    size_t steps = scaled(100000, 10000);
    for (size_t i = 0; i < steps; i++) {
        unsigned op = (unsigned)rng_below(&r, 100);
        if (op < 30 || model == 1) {
            EXPECT_PTR_EQ(rc_retain(o), o);          /* inline when enabled */
            model++;
        } else if (op < 50) {
            EXPECT_PTR_EQ((rc_retain)(o), o);        /* always the library */
            model++;
        } else if (op < 75) {
            rc_release(o);
            model--;
        } else if (op < 98) {
            (rc_release)(o);
            model--;
        } else {
            /* a reference released by another thread goes to `shared` */
            EXPECT_PTR_EQ(rc_retain(o), o);
            pthread_t th;
            if (pthread_create(&th, NULL, release_on_thread, o) != 0) T_FAIL("pthread_create");
            pthread_join(th, NULL);
        }
        size_t c = rc_count(o);
        if (c != model) T_FAIL("step %zu: rc_count = %zu, expected %zu", i, c, model);
    }
    while (model > 1) {
        if (model & 1) rc_release(o);
        else (rc_release)(o);
        model--;
    }
    EXPECT_DESTROYS(0);
    rc_release(o);                                   /* the owner's last: the library merges */
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(5, 1);
}

static void test_rc_last_release_on_other_thread(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();

    /* 1. The other thread holds a reference it took itself. */
    handoff_t h = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    h.obj = mk_rec(NULL, 4);
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, retain_then_release_last, &h), 0);
    handoff_wait(&h, 1);
    EXPECT_EQ(rc_count(h.obj), 2);
    rc_release(h.obj);
    EXPECT_DESTROYS(0);
    handoff_set(&h, 2);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(4, 1);
    pthread_mutex_lock(&g_destroy_mu);
    int on_them = pthread_equal(g_destroy_thread, th);
    pthread_mutex_unlock(&g_destroy_mu);
    if (!on_them) T_FAIL("destroy did not run on the thread that dropped the last reference");

    /* 2. The owner hands its only reference over: the other thread's release
     *    is the last, but the owner still counts it; the object is destroyed
     *    at the owner's next rc_retain / rc_release at the latest. */
    destroy_reset();
    handoff_t h2 = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    h2.obj = mk_rec(NULL, 5);
    EXPECT_EQ(pthread_create(&th, NULL, release_transferred, &h2), 0);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    unsigned long before_nudge = atomic_load(&g_destroys);
    rc_nudge();
    print_message("  transferred reference released on another thread: destroyed %s\n",
                  before_nudge ? "at once" : "at the owner's next rc operation");
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(5, 1);

    /* 3. Several transferred references, the owner keeping one. */
    destroy_reset();
    recobj_t *o = mk_rec(NULL, 6);
    for (int i = 0; i < 3; i++) rc_retain(o);
    handoff_t h3 = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    h3.obj = o;
    pthread_t ths[3];
    for (int i = 0; i < 3; i++) EXPECT_EQ(pthread_create(&ths[i], NULL, release_transferred, &h3), 0);
    for (int i = 0; i < 3; i++) EXPECT_EQ(pthread_join(ths[i], NULL), 0);
    rc_nudge();
    EXPECT_DESTROYS(0);
    EXPECT_EQ(rc_count(o), 1);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(6, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */
/* Destroy callbacks that release other objects                              */

typedef struct node {
    struct node *next;     /* a reference this node owns, or NULL */
    struct node *second;   /* tree: a second child */
    uint32_t id;
} node_t;

static unsigned char *g_node_seen; /* destroy runs per node id (capped) */
static size_t g_node_max;
static atomic_ulong g_node_destroys;
static atomic_ulong g_node_order_errors;
static size_t g_node_last_id;

static void node_destroy(void *obj)
{
    node_t *n = obj;
    if (n->id < g_node_max) {
        if (g_node_seen[n->id] != 0) AFAIL("node %u destroyed twice", n->id);
        if (g_node_seen[n->id] < 255) g_node_seen[n->id]++;
    } else {
        AFAIL("node id %u out of range", n->id);
    }
    g_node_last_id = n->id;
    atomic_fetch_add(&g_node_destroys, 1);
    if (n->next) rc_release(n->next);
    if (n->second) rc_release(n->second);
}

static void nodes_reset(size_t max)
{
    free(g_node_seen);
    g_node_seen = calloc(max, 1);
    assert_non_null(g_node_seen);
    g_node_max = max;
    atomic_store(&g_node_destroys, 0);
    atomic_store(&g_node_order_errors, 0);
}

/* head -> ... -> tail; the head is returned with the only reference. */
static node_t *chain_build(pool_t *pool, size_t n)
{
    node_t *next = NULL;
    for (size_t i = n; i-- > 0;) {
        node_t *c = rc_alloc_in(pool, sizeof *c, node_destroy);
        if (c == NULL) return NULL;
        c->id = (uint32_t)i;
        c->next = next; /* takes over the reference */
        next = c;
    }
    return next;
}

static node_t *tree_build(pool_t *pool, unsigned depth, uint32_t *id)
{
    node_t *t = rc_alloc_in(pool, sizeof *t, node_destroy);
    if (t == NULL) return NULL;
    t->id = (*id)++;
    if (depth > 0) {
        t->next = tree_build(pool, depth - 1, id);
        t->second = tree_build(pool, depth - 1, id);
    }
    return t;
}

static void expect_all_nodes_once(size_t n)
{
    unsigned long d = atomic_load(&g_node_destroys);
    if (d != n) T_FAIL("%lu node destroys, expected %zu", d, n);
    for (size_t i = 0; i < n; i++)
        if (g_node_seen[i] != 1) T_FAIL("node %zu destroyed %u time(s)", i, g_node_seen[i]);
}

static void test_rc_destroy_releases_chain(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);

    /* A 1,000,000-long chain, at every scale: recursion would need far
     * more stack than the main thread has. */
    const size_t n = 1000000;
    nodes_reset(n);
    node_t *head = chain_build(pool, n);
    if (head == NULL) T_FAIL("building a %zu-long chain ran out of memory", n);
    EXPECT_EQ(stats_of(pool).live_allocations, n);
    EXPECT_EQ(rc_count(head), 1);
    rc_release(head);
    expect_all_nodes_once(n);
    EXPECT_EQ(g_node_last_id, n - 1);     /* the tail went last */
    EXPECT_EQ(stats_of(pool).live_allocations, 0);

    /* A chain whose middle is also held from outside: destruction stops there. */
    const size_t m = scaled(100000, 10000);
    nodes_reset(m);
    head = chain_build(pool, m);
    EXPECT_NONNULL(head);
    node_t *mid = head;
    for (size_t i = 0; i < m / 2; i++) mid = mid->next;
    rc_retain(mid);
    rc_release(head);
    unsigned long d = atomic_load(&g_node_destroys);
    if (d != m / 2) T_FAIL("%lu nodes destroyed before the one still held, expected %zu", d, m / 2);
    EXPECT_EQ(rc_count(mid), 1);
    EXPECT_EQ(mid->id, m / 2);
    EXPECT_EQ(stats_of(pool).live_allocations, m - m / 2);
    rc_release(mid);
    expect_all_nodes_once(m);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);

    /* A wide tree: each destroy releases two objects. */
    unsigned depth = (unsigned)scaled(17, 13);
    size_t tn = ((size_t)1 << (depth + 1)) - 1;
    nodes_reset(tn);
    uint32_t id = 0;
    node_t *root = tree_build(pool, depth, &id);
    EXPECT_NONNULL(root);
    EXPECT_EQ(id, tn);
    rc_release(root);
    expect_all_nodes_once(tn);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);

    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* The same on a thread with a small stack, with objects allocated there. */
typedef struct {
    size_t n;
    int ok;
} small_stack_arg_t;

static void *small_stack_chain(void *arg)
{
    small_stack_arg_t *a = arg;
    node_t *head = chain_build(pool_default(), a->n);
    if (head == NULL) return NULL;
    rc_release(head);
    a->ok = 1;
    return NULL;
}

static void test_rc_destroy_chain_small_stack(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    small_stack_arg_t a = { scaled(200000, 50000), 0 };
    nodes_reset(a.n);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    size_t stack = MT_SANITIZED ? 1 * MiB : 128 * KiB;
    EXPECT_EQ(pthread_attr_setstacksize(&attr, stack), 0);
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, &attr, small_stack_chain, &a), 0);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&attr);
    if (!a.ok) T_FAIL("building a %zu-long chain on a %zu-byte stack failed", a.n, stack);
    expect_all_nodes_once(a.n);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_counts");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_retain_release_counts),
        T(test_rc_inline_and_library_paths_agree),
        T(test_rc_last_release_on_other_thread),
        T(test_rc_destroy_releases_chain),
        T(test_rc_destroy_chain_small_stack),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_node_seen);
    return failed;
}
