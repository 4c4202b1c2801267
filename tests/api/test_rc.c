/* test_rc.c — black-box tests of reference-counted objects and the rc/GC
 * bridge (<mulch/rc.h>; docs: shared/API.md "RC" and "Errors and misuse",
 * docs/rc.md):
 *   - rc_alloc / rc_alloc_in: zeroed, 16-byte aligned, count 1; the cell is
 *     visible in the pool's statistics and goes back when destroyed; OOM is
 *     not misuse; pool_destroy does not run destroy callbacks;
 *   - rc_retain / rc_release / rc_count: exact counts on one thread; destroy
 *     runs exactly once, on the last release; a destroy that releases other
 *     rc objects (a 1,000,000-long chain, a wide tree, a chain on a small
 *     stack) does not recurse;
 *   - misuse: release / retain / count of a destroyed object, of a malloc
 *     pointer, a stack address, a static address and NULL; retain and
 *     release from inside destroy: one report each, prefixed with the
 *     function's name, naming the pointer, otherwise ignored;
 *   - weak references: lock while alive (count + 1), NULL once destroyed,
 *     several handles, rc_weak_free before and after the object dies (no
 *     pool cell left), rc_weak_new on a dead object reported;
 *   - the bridge: gc_handle_new roots its object while its count is above
 *     0; gc_handle_get after gc_heap_destroy; gc_own_rc keeps the rc object
 *     while the owner is reachable, releases it after the owner is
 *     reclaimed (after its finalizer) or at gc_heap_destroy;
 *     gc_report_bridge_cycles.
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
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mulch/rc.h>

#include "mulch_test.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static uint64_t pat_word(uint64_t tag, size_t i)
{
    return tag ^ ((uint64_t)(i + 1) * UINT64_C(0x9e3779b97f4a7c15));
}

static void fill(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = launder(p);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(pat_word(tag, i / 8) >> (8 * (i % 8)));
}

/* SIZE_MAX when intact, else the first bad offset. */
static size_t check_fill(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = launder((void *)(uintptr_t)p);
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(pat_word(tag, i / 8) >> (8 * (i % 8)))) return i;
    return SIZE_MAX;
}

#define EXPECT_PATTERN(p, n, tag) \
    do { \
        size_t bad_ = check_fill((p), (n), (tag)); \
        if (bad_ != SIZE_MAX) \
            T_FAIL("contents of %s (%p, %zu bytes) damaged at offset %zu", #p, \
                   (const void *)(p), (size_t)(n), bad_); \
    } while (0)

static pool_stats_t pstats(pool_t *pool)
{
    pool_stats_t s;
    memset(&s, 0xCD, sizeof s);
    pool_get_stats(pool, &s);
    return s;
}

/* The calling thread performs an rc operation, which drains its merge
 * queue: objects it allocated whose last reference another thread dropped
 * are destroyed now. */
static void rc_nudge(void)
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

static void destroy_reset(void)
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

static void shadow_reset(void)
{
    for (size_t i = 0; i < SHADOW_MAX; i++) {
        atomic_store(&g_shadow_runs[i], 0);
        atomic_store(&g_shadow_seq[i], 0);
    }
}

static void rec_destroy(void *obj)
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

static recobj_t *mk_rec(pool_t *pool, uint64_t id)
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

/* ======================================================================== */
/* rc_alloc / rc_alloc_in                                                    */

static void test_rc_alloc_zeroed_aligned(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    size_t sizes[40] = { 0, 1, 7, 15, 16, 17, 31, 32, 33, 48, 63, 64, 100, 255, 1000, 4096,
                         4097, 16 * KiB, 20000, 64 * KiB, 100 * KiB, MiB, 3 * MiB + 7 };
    size_t n = 23;
    while (n < sizeof sizes / sizeof sizes[0]) sizes[n++] = (size_t)rng_below(&r, 9000);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            unsigned char *p = rc_alloc(sizes[i], NULL);
            if (p == NULL) T_FAIL("rc_alloc(%zu) returned NULL", sizes[i]);
            if ((uintptr_t)p % 16 != 0) T_FAIL("rc_alloc(%zu) = %p is not 16-byte aligned", sizes[i], (void *)p);
            for (size_t k = 0; k < sizes[i]; k++)
                if (p[k] != 0) T_FAIL("rc_alloc(%zu) = %p: byte %zu is 0x%02x, not 0 (round %d)", sizes[i],
                                      (void *)p, k, p[k], round);
            EXPECT_EQ(rc_count(p), 1);
            fill(p, sizes[i], 0xabcdef00u + i); /* dirty the cell: the next round may reuse it */
            EXPECT_PATTERN(p, sizes[i], 0xabcdef00u + i);
            rc_release(p);
        }
    }
    /* Same in a pool of our own, several objects alive at once. */
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    void *live[40];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++) {
            unsigned char *p = rc_alloc_in(pool, sizes[i], NULL);
            if (p == NULL) T_FAIL("rc_alloc_in(%zu) returned NULL", sizes[i]);
            if ((uintptr_t)p % 16 != 0) T_FAIL("rc_alloc_in(%zu) = %p is not 16-byte aligned", sizes[i], (void *)p);
            for (size_t k = 0; k < sizes[i]; k++)
                if (p[k] != 0) T_FAIL("rc_alloc_in(%zu) = %p: byte %zu is 0x%02x, not 0", sizes[i], (void *)p, k, p[k]);
            fill(p, sizes[i], i);
            live[i] = p;
        }
        for (size_t i = 0; i < n; i++) {
            EXPECT_PATTERN(live[i], sizes[i], i); /* neighbours did not overlap */
            EXPECT_EQ(rc_count(live[i]), 1);
        }
        for (size_t i = 0; i < n; i++) rc_release(live[i]);
        EXPECT_EQ(pstats(pool).live_allocations, 0);
    }
    pool_destroy(pool);
    EXPECT_NO_REPORTS(r0);
}

static void test_rc_alloc_oom_is_not_misuse(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    volatile size_t huge = SIZE_MAX;
    void *p = rc_alloc(huge, NULL);
    if (p) T_FAIL("rc_alloc(SIZE_MAX) = %p", p);
    p = rc_alloc(huge - 64, NULL);
    if (p) T_FAIL("rc_alloc(SIZE_MAX - 64) = %p", p);
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.limit = 4 * MiB;
    pool_t *pool = pool_create(&o);
    EXPECT_NONNULL(pool);
    p = rc_alloc_in(pool, 8 * MiB, NULL);
    if (p) T_FAIL("rc_alloc_in(8 MiB) = %p in a 4 MiB-limited pool", p);
    size_t cap = 1 << 15, got = 0;
    void **v = malloc(cap * sizeof *v);
    assert_non_null(v);
    while (got < cap && (v[got] = rc_alloc_in(pool, 200, NULL)) != NULL) got++;
    if (got == cap) T_FAIL("%zu rc objects of 200 bytes fit in a 4 MiB-limited pool", got);
    EXPECT_NO_REPORTS(r0);
    /* still fully usable once room is made */
    for (size_t i = 0; i < got; i++) rc_release(v[i]);
    EXPECT_EQ(pstats(pool).live_allocations, 0);
    p = rc_alloc_in(pool, 200, NULL);
    EXPECT_NONNULL(p);
    EXPECT_EQ(rc_count(p), 1);
    rc_release(p);
    free(v);
    pool_destroy(pool);
    EXPECT_NO_REPORTS(r0);
}

static void test_rc_alloc_in_custom_pool(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    pool_stats_t s0 = pstats(pool);
    EXPECT_EQ(s0.live_allocations, 0);

    recobj_t *o = mk_rec(pool, 1);
    pool_stats_t s1 = pstats(pool);
    EXPECT_EQ(s1.live_allocations, 1);
    EXPECT_EQ(s1.allocs, s0.allocs + 1);
    EXPECT_GE(s1.bytes_in_use, sizeof(recobj_t));
    rc_retain(o);
    rc_retain(o);
    EXPECT_EQ(rc_count(o), 3);
    EXPECT_EQ(pstats(pool).live_allocations, 1); /* counting allocates nothing */
    rc_release(o);
    rc_release(o);
    EXPECT_DESTROYS(0);
    EXPECT_EQ(pstats(pool).live_allocations, 1);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(1, 1);
    pool_stats_t s2 = pstats(pool);
    EXPECT_EQ(s2.live_allocations, 0);
    EXPECT_EQ(s2.bytes_in_use, 0);
    EXPECT_EQ(s2.frees, s0.frees + 1);

    /* many objects of random sizes: every one is a cell of this pool */
    enum { N = 500 };
    void *v[N];
    size_t in_use_before = pstats(pool).bytes_in_use;
    pool_stats_t sd0 = pstats(pool_default());
    for (size_t i = 0; i < N; i++) {
        v[i] = rc_alloc_in(pool, (size_t)rng_below(&r, 3000), NULL);
        EXPECT_NONNULL(v[i]);
    }
    pool_stats_t s3 = pstats(pool);
    EXPECT_EQ(s3.live_allocations, N);
    EXPECT_GE(s3.bytes_in_use, in_use_before + N * 16);
    pool_stats_t sd1 = pstats(pool_default());
    if (sd1.allocs != sd0.allocs)
        T_FAIL("rc_alloc_in(pool) made %" PRIu64 " allocation(s) in the default pool",
               sd1.allocs - sd0.allocs);
    for (size_t i = 0; i < N; i++) rc_release(v[i]);
    EXPECT_EQ(pstats(pool).live_allocations, 0);

    /* pool_destroy does not run destroy callbacks */
    destroy_reset();
    recobj_t *left = mk_rec(pool, 2);
    rc_retain(left);
    (void)left;
    pool_destroy(pool);
    EXPECT_DESTROYS(0);
    EXPECT_SHADOW_RUNS(2, 0);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

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
typedef struct {
    void *obj;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int step;
    pthread_t self;
} handoff_t;

static void handoff_wait(handoff_t *h, int step)
{
    pthread_mutex_lock(&h->mu);
    while (h->step < step) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void handoff_set(handoff_t *h, int step)
{
    pthread_mutex_lock(&h->mu);
    h->step = step;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void *retain_then_release_last(void *arg)
{
    handoff_t *h = arg;
    rc_retain(h->obj);
    handoff_set(h, 1);
    handoff_wait(h, 2);            /* the owner released its reference */
    rc_release(h->obj);            /* the last one */
    return NULL;
}

static void *release_transferred(void *arg)
{
    handoff_t *h = arg;
    rc_release(h->obj);            /* a reference the owner counted, dropped here */
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
    EXPECT_EQ(pstats(pool).live_allocations, n);
    EXPECT_EQ(rc_count(head), 1);
    rc_release(head);
    expect_all_nodes_once(n);
    EXPECT_EQ(g_node_last_id, n - 1);     /* the tail went last */
    EXPECT_EQ(pstats(pool).live_allocations, 0);

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
    EXPECT_EQ(pstats(pool).live_allocations, m - m / 2);
    rc_release(mid);
    expect_all_nodes_once(m);
    EXPECT_EQ(pstats(pool).live_allocations, 0);

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
    EXPECT_EQ(pstats(pool).live_allocations, 0);

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
/* Misuse                                                                    */

/* Calls on destroyed objects: <mulch/rc.h>'s inline fast path reads the
 * header before validating it (documented), which memcheck flags as a read
 * of freed memory; under valgrind these go straight to the library
 * functions, which validate first. Elsewhere the inline path must report
 * the misuse just the same. */
static void *misuse_retain(void *o)
{
    return MT_ON_VALGRIND() ? (rc_retain)(o) : rc_retain(o);
}
static void misuse_release(void *o)
{
    if (MT_ON_VALGRIND()) (rc_release)(o);
    else rc_release(o);
}

static void test_rc_misuse_destroyed_object(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    /* neighbours keep the span alive, so the dead cell stays recognisable */
    recobj_t *before = mk_rec(pool, 10);
    recobj_t *o = mk_rec(pool, 11);
    recobj_t *after = mk_rec(pool, 12);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(11, 1);
    EXPECT_NO_REPORTS(r0);
    pool_stats_t s0 = pstats(pool);

    unsigned long r1 = rec_count();
    misuse_release(o); /* double release */
    EXPECT_ONE_REPORT(r1, "rc_release:", o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(11, 1);
    pool_stats_t s1 = pstats(pool);
    EXPECT_EQ(s1.frees, s0.frees);
    EXPECT_EQ(s1.live_allocations, s0.live_allocations);
    EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);

    r1 = rec_count();
    (void)misuse_retain(o); /* retain after the last release */
    EXPECT_ONE_REPORT(r1, "rc_retain:", o);
    r1 = rec_count();
    size_t c = rc_count(o);
    EXPECT_EQ(c, 0);
    EXPECT_ONE_REPORT(r1, "rc_count:", o);
    r1 = rec_count();
    misuse_release(o); /* the retain above must not have revived it */
    EXPECT_ONE_REPORT(r1, "rc_release:", o);
    EXPECT_DESTROYS(1);
    pool_stats_t s2 = pstats(pool);
    EXPECT_EQ(s2.frees, s0.frees);
    EXPECT_EQ(s2.allocs, s0.allocs);
    EXPECT_EQ(s2.live_allocations, s0.live_allocations);

    /* the neighbours are untouched and the pool hands out distinct cells */
    unsigned long r2 = rec_count();
    EXPECT_EQ(before->magic, REC_MAGIC);
    EXPECT_EQ(after->magic, REC_MAGIC);
    EXPECT_EQ(rc_count(before), 1);
    EXPECT_EQ(rc_count(after), 1);
    recobj_t *fresh[8];
    for (int i = 0; i < 8; i++) {
        fresh[i] = mk_rec(pool, 20 + (uint64_t)i);
        for (int j = 0; j < i; j++)
            if (fresh[j] == fresh[i]) T_FAIL("the pool handed out %p twice", (void *)fresh[i]);
        if ((void *)fresh[i] == (void *)before || (void *)fresh[i] == (void *)after)
            T_FAIL("a live object's cell %p was handed out again", (void *)fresh[i]);
    }
    for (int i = 0; i < 8; i++) rc_release(fresh[i]);
    rc_release(before);
    rc_release(after);
    EXPECT_DESTROYS(11);
    EXPECT_SHADOW_RUNS(10, 1);
    EXPECT_SHADOW_RUNS(12, 1);
    EXPECT_EQ(pstats(pool).live_allocations, 0);
    EXPECT_NO_REPORTS(r2);
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
}

static void foreign_case(void *p, const char *what_kind)
{
    print_message("  %s %p\n", what_kind, p);
    unsigned long r1 = rec_count();
    (void)rc_retain(p);
    EXPECT_ONE_REPORT(r1, "rc_retain:", p);
    r1 = rec_count();
    rc_release(p);
    EXPECT_ONE_REPORT(r1, "rc_release:", p);
    r1 = rec_count();
    size_t c = rc_count(p);
    EXPECT_EQ(c, 0);
    EXPECT_ONE_REPORT(r1, "rc_count:", p);
}

static _Alignas(64) unsigned char g_static_buf[4096];

static void test_rc_misuse_foreign_pointers(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    recobj_t *live = mk_rec(NULL, 30); /* a real object, untouched throughout */

    /* malloc memory, with room before it so a header read stays inside */
    unsigned char *m = aligned_alloc(64, 256);
    assert_non_null(m);
    fill(m, 256, 77);
    foreign_case(m + 64, "malloc pointer");
    foreign_case(m + 128, "malloc pointer");
    EXPECT_PATTERN(m, 256, 77);
    free(m);

    /* a stack address */
    _Alignas(64) unsigned char local[256];
    fill(local, sizeof local, 78);
    foreign_case(local + 64, "stack address");
    EXPECT_PATTERN(local, sizeof local, 78);

    /* a static address */
    fill(g_static_buf, sizeof g_static_buf, 79);
    foreign_case(g_static_buf + 64, "static address");
    EXPECT_PATTERN(g_static_buf, sizeof g_static_buf, 79);

    /* NULL */
    foreign_case(NULL, "NULL");

    EXPECT_DESTROYS(0);
    unsigned long r1 = rec_count();
    EXPECT_EQ(rc_count(live), 1);
    EXPECT_EQ(live->magic, REC_MAGIC);
    rc_release(live);
    EXPECT_DESTROYS(1);
    EXPECT_NO_REPORTS(r1);
    (void)r0;
    EXPECT_NO_ASYNC_FAILURES();
}

/* Inside destroy the count is 0: retaining or releasing again is misuse. */
static atomic_int g_in_destroy_mode;

static void misbehaving_destroy(void *obj)
{
    atomic_fetch_add(&g_destroys, 1);
    if (atomic_load(&g_in_destroy_mode) == 1) (void)rc_retain(obj);
    else rc_release(obj);
}

static void test_rc_misuse_inside_destroy(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    for (int mode = 1; mode <= 2; mode++) {
        atomic_store(&g_in_destroy_mode, mode);
        destroy_reset();
        void *p = rc_alloc_in(pool, 40, misbehaving_destroy);
        EXPECT_NONNULL(p);
        unsigned long r1 = rec_count();
        rc_release(p);
        EXPECT_ONE_REPORT(r1, mode == 1 ? "rc_retain:" : "rc_release:", p);
        EXPECT_DESTROYS(1);
        EXPECT_EQ(pstats(pool).live_allocations, 0);
    }
    pool_destroy(pool);
}

/* ======================================================================== */
/* Weak references                                                           */

static void test_rc_weak_basic(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);

    recobj_t *o = mk_rec(pool, 40);
    rc_weak_t *w = rc_weak_new(o);
    EXPECT_NONNULL(w);
    EXPECT_EQ(rc_count(o), 1); /* a weak reference does not count */

    void *p = rc_weak_lock(w);
    EXPECT_PTR_EQ(p, o);
    EXPECT_EQ(rc_count(o), 2);
    void *q = rc_weak_lock(w);
    EXPECT_PTR_EQ(q, o);
    EXPECT_EQ(rc_count(o), 3);
    rc_release(q);
    rc_release(p);
    EXPECT_EQ(rc_count(o), 1);
    EXPECT_DESTROYS(0);

    /* the locked reference can outlive the original one */
    p = rc_weak_lock(w);
    EXPECT_PTR_EQ(p, o);
    rc_release(o);
    EXPECT_DESTROYS(0);
    EXPECT_EQ(rc_count(p), 1);
    EXPECT_EQ(((recobj_t *)p)->magic, REC_MAGIC);
    rc_release(p); /* the last reference, from a lock */
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(40, 1);
    EXPECT_NULL(rc_weak_lock(w));
    EXPECT_NULL(rc_weak_lock(w));
    rc_weak_free(w); /* after the object died */
    EXPECT_EQ(pstats(pool).live_allocations, 0);

    /* several weak references to one object; some freed before it dies */
    destroy_reset();
    o = mk_rec(pool, 41);
    rc_weak_t *ws[5];
    for (int i = 0; i < 5; i++) {
        ws[i] = rc_weak_new(o);
        EXPECT_NONNULL(ws[i]);
        if (i && ws[i] == ws[i - 1]) T_FAIL("rc_weak_new returned the same handle twice");
    }
    EXPECT_EQ(rc_count(o), 1);
    for (int i = 0; i < 5; i++) {
        p = rc_weak_lock(ws[i]);
        EXPECT_PTR_EQ(p, o);
        EXPECT_EQ(rc_count(o), 2);
        rc_release(p);
    }
    rc_weak_free(ws[0]);
    rc_weak_free(ws[3]);
    p = rc_weak_lock(ws[1]);
    EXPECT_PTR_EQ(p, o);
    rc_release(p);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(41, 1);
    EXPECT_NULL(rc_weak_lock(ws[1]));
    EXPECT_NULL(rc_weak_lock(ws[2]));
    EXPECT_NULL(rc_weak_lock(ws[4]));
    rc_weak_free(ws[1]);
    rc_weak_free(ws[2]);
    rc_weak_free(ws[4]);
    EXPECT_EQ(pstats(pool).live_allocations, 0);

    /* every weak reference freed before the object dies */
    destroy_reset();
    o = mk_rec(pool, 42);
    for (int i = 0; i < 3; i++) ws[i] = rc_weak_new(o);
    for (int i = 0; i < 3; i++) rc_weak_free(ws[i]);
    EXPECT_EQ(rc_count(o), 1);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_EQ(pstats(pool).live_allocations, 0);

    /* weak references created and freed again and again: nothing piles up */
    o = mk_rec(pool, 43);
    size_t live0 = pstats(pool).live_allocations;
    for (int i = 0; i < 1000; i++) {
        rc_weak_t *t = rc_weak_new(o);
        EXPECT_NONNULL(t);
        rc_weak_free(t);
    }
    size_t live1 = pstats(pool).live_allocations;
    if (live1 > live0 + 1) T_FAIL("1000 rc_weak_new/rc_weak_free left %zu cells (before: %zu)", live1, live0);
    rc_release(o);
    EXPECT_EQ(pstats(pool).live_allocations, 0);

    /* a weak reference on another thread's object, locked on this one */
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static void test_rc_weak_new_misuse(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    recobj_t *keep = mk_rec(pool, 50);
    recobj_t *o = mk_rec(pool, 51);
    rc_release(o);
    EXPECT_DESTROYS(1);

    unsigned long r1 = rec_count();
    rc_weak_t *w = rc_weak_new(o);
    EXPECT_NULL(w);
    EXPECT_ONE_REPORT(r1, "rc_weak_new:", o);

    unsigned char *m = aligned_alloc(64, 256);
    assert_non_null(m);
    memset(m, 0, 256);
    r1 = rec_count();
    w = rc_weak_new(m + 64);
    EXPECT_NULL(w);
    EXPECT_ONE_REPORT(r1, "rc_weak_new:", m + 64);
    free(m);

    r1 = rec_count();
    w = rc_weak_new(NULL);
    EXPECT_NULL(w);
    EXPECT_ONE_REPORT(r1, "rc_weak_new:", NULL);

    /* NULL handles are harmless */
    r1 = rec_count();
    EXPECT_NULL(rc_weak_lock(NULL));
    rc_weak_free(NULL);
    (void)r1;

    rc_release(keep);
    EXPECT_EQ(pstats(pool).live_allocations, 0);
    pool_destroy(pool);
}

/* ======================================================================== */
/* The bridge                                                                */

/* GC objects: two reference slots, an id; finalizers record the id and the
 * global sequence number. */
#define GOBJ_MAGIC UINT64_C(0x676f626a2d726321)
typedef struct gobj {
    void *slot[2];
    uint64_t magic;
    uint64_t id;
} gobj_t;

#define GMAX 64
static atomic_uint g_fin[GMAX];
static atomic_ulong g_fin_seq[GMAX];

static void fin_reset(void)
{
    for (size_t i = 0; i < GMAX; i++) {
        atomic_store(&g_fin[i], 0);
        atomic_store(&g_fin_seq[i], 0);
    }
}

static void trace_gobj(void *obj, gc_tracer_t *tracer)
{
    gobj_t *o = obj;
    gc_trace_range(tracer, o->slot, 2);
}

static void fin_gobj(void *obj)
{
    gobj_t *o = obj;
    if (o->magic != GOBJ_MAGIC) AFAIL("finalizer got %p with a damaged magic", obj);
    if (o->id < GMAX) {
        if (atomic_fetch_add(&g_fin[o->id], 1) != 0) AFAIL("object id %" PRIu64 " finalized twice", o->id);
        atomic_store(&g_fin_seq[o->id], atomic_fetch_add(&g_seq, 1) + 1);
    }
}

static const gc_type_t T_G = { "test.rc.gobj", trace_gobj, NULL };
static const gc_type_t T_GFIN = { "test.rc.gobj_fin", trace_gobj, fin_gobj };

static gobj_t *gmk(gc_thread_t *t, const gc_type_t *type, uint64_t id)
{
    gobj_t *o = gc_alloc(t, type, sizeof *o);
    if (o == NULL) {
        print_error("gc_alloc(%s) returned NULL\n", type->name);
        fail();
    }
    o->magic = GOBJ_MAGIC;
    o->id = id;
    return o;
}

#define EXPECT_FIN(id, n) \
    do { \
        unsigned got_ = atomic_load(&g_fin[(id)]), want_ = (unsigned)(n); \
        if (got_ != want_) \
            T_FAIL("GC object id %d finalized %u time(s), expected %u", (int)(id), got_, want_); \
    } while (0)

#define EXPECT_VERIFY(heap) \
    do { \
        unsigned long r_ = rec_count(); \
        size_t v_ = gc_verify(heap); \
        if (v_ != 0) { \
            rec_print_since(r_); \
            T_FAIL("gc_verify found %zu problem(s)", v_); \
        } \
    } while (0)

static void churn(gc_thread_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) (void)gmk(t, &T_G, 63);
}

static void test_bridge_handle_roots_object(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);

    gobj_t *a = gmk(t, &T_GFIN, 1);
    gc_handle_t *h = gc_handle_new(heap, a);
    EXPECT_NONNULL(h);
    EXPECT_EQ(rc_count(h), 1);
    EXPECT_PTR_EQ(gc_handle_get(h), a);
    /* a child reachable only through the handle's object */
    gobj_t *child = gmk(t, &T_GFIN, 2);
    a = gc_handle_get(h);
    gc_write(t, a, &a->slot[0], child);
    (void)gmk(t, &T_GFIN, 3); /* garbage */
    for (int round = 0; round < 3; round++) {
        churn(t, 300);
        gc_collect(t);
        gobj_t *now = gc_handle_get(h);
        EXPECT_NONNULL(now);
        EXPECT_EQ(now->magic, GOBJ_MAGIC);
        EXPECT_EQ(now->id, 1);
        EXPECT_NONNULL(now->slot[0]);
        EXPECT_EQ(((gobj_t *)now->slot[0])->id, 2);
        EXPECT_FIN(1, 0);
        EXPECT_FIN(2, 0);
        EXPECT_FIN(3, 1);
        EXPECT_VERIFY(heap);
    }

    /* more references to the handle: it roots while the count is above 0 */
    EXPECT_PTR_EQ(rc_retain(h), h);
    EXPECT_EQ(rc_count(h), 2);
    rc_release(h);
    gc_collect(t);
    EXPECT_FIN(1, 0);
    EXPECT_EQ(((gobj_t *)gc_handle_get(h))->id, 1);

    /* two handles to one object: both must go */
    gc_handle_t *h2 = gc_handle_new(heap, gc_handle_get(h));
    EXPECT_NONNULL(h2);
    EXPECT_PTR_EQ(gc_handle_get(h2), gc_handle_get(h));
    rc_release(h);
    gc_collect(t);
    EXPECT_FIN(1, 0);
    EXPECT_EQ(((gobj_t *)gc_handle_get(h2))->id, 1);
    rc_release(h2); /* the last reference: the object is unreachable now */
    gc_collect(t);
    EXPECT_FIN(1, 1);
    EXPECT_FIN(2, 1);
    EXPECT_VERIFY(heap);

    /* a handle to NULL, and a handle released by another thread */
    gc_handle_t *hn = gc_handle_new(heap, NULL);
    EXPECT_NONNULL(hn);
    EXPECT_NULL(gc_handle_get(hn));
    gc_collect(t);
    rc_release(hn);

    gobj_t *b = gmk(t, &T_GFIN, 4);
    gc_handle_t *hb = gc_handle_new(heap, b);
    EXPECT_NONNULL(hb);
    handoff_t ho = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    ho.obj = hb; /* our reference, handed over */
    pthread_t th;
    gc_enter_blocking(t);
    EXPECT_EQ(pthread_create(&th, NULL, release_transferred, &ho), 0);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    gc_leave_blocking(t);
    rc_nudge(); /* the handle was allocated here: let its release complete */
    gc_collect(t);
    EXPECT_FIN(4, 1);

    /* misuse: not a GC object */
    unsigned long r1 = rec_count();
    int local;
    gc_handle_t *bad = gc_handle_new(heap, &local);
    EXPECT_NULL(bad);
    EXPECT_ONE_REPORT(r1, "gc_handle_new:", &local);
    r0 = rec_count();

    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* gc_handle_get after gc_heap_destroy: the handle outlives the heap. */
static int handle_outlives_heap(pool_t *pool)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.pool = pool;
    gc_heap_t *heap = gc_heap_create(&o);
    if (heap == NULL) return 10;
    gc_thread_t *t = gc_thread_attach(heap);
    if (t == NULL) return 11;
    gobj_t *a = gmk(t, &T_GFIN, 5);
    gc_handle_t *h = gc_handle_new(heap, a);
    if (h == NULL) return 12;
    if (gc_handle_get(h) != a) return 13;
    rc_retain(h);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    if (atomic_load(&g_fin[5]) != 1) return 14; /* heap destroy runs every finalizer */
    if (gc_handle_get(h) != NULL) return 15;
    rc_release(h);
    if (gc_handle_get(h) != NULL) return 16;
    rc_release(h);
    return 0;
}

static void test_bridge_handle_after_heap_destroy_user_pool(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    int rc = handle_outlives_heap(pool);
    if (rc != 0) T_FAIL("handle past its heap (heap on our pool): step %d failed", rc);
    pool_stats_t s = pstats(pool);
    if (s.live_allocations != 0)
        T_FAIL("%zu cell(s) of the heap's pool still live after gc_heap_destroy and the last "
               "handle release", s.live_allocations);
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* The same with the heap's own pool, in a child process: a crash there must
 * fail this test, not end the whole run. */
static void test_bridge_handle_after_heap_destroy_own_pool(void **state)
{
    (void)state;
    TEST_START();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) T_FAIL("fork failed");
    if (pid == 0) {
        /* cmocka catches these to report a crashed test; here a crash must
         * end the child so that the parent sees it */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        fin_reset();
        unsigned long r0 = rec_count();
        int rc = handle_outlives_heap(NULL);
        if (rc == 0 && rec_count() != r0) rc = 20;
        _exit(rc);
    }
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        T_FAIL("gc_handle_get / rc_release on a handle after gc_heap_destroy (heap with its own "
               "pool) killed the process with signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        T_FAIL("handle past its heap (heap's own pool): step %d failed", WEXITSTATUS(status));
}

static void test_bridge_own_rc(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    destroy_reset();
    shadow_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);

    void *root = NULL;
    gc_root_add(heap, &root);
    root = gmk(t, &T_G, 6);
    recobj_t *r = mk_rec(NULL, 1);
    EXPECT_EQ(gc_own_rc(t, root, r), 0);
    EXPECT_EQ(rc_count(r), 2);
    EXPECT_EQ(gc_own_rc(t, root, r), 0); /* each call adds one reference */
    EXPECT_EQ(rc_count(r), 3);
    rc_release(r); /* ours: the owner keeps it alive */
    EXPECT_EQ(rc_count(r), 2);
    for (int round = 0; round < 3; round++) {
        churn(t, 200);
        gc_collect(t);
        EXPECT_DESTROYS(0);
        EXPECT_EQ(rc_count(r), 2);
        EXPECT_EQ(r->magic, REC_MAGIC);
    }
    /* the owner becomes unreachable: released by the time gc_collect returns */
    root = NULL;
    gc_collect(t);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(1, 1);
    gc_collect(t);
    EXPECT_DESTROYS(1);

    /* an rc object owned by a reachable object is released at heap destroy */
    root = gmk(t, &T_G, 7);
    recobj_t *r2 = mk_rec(NULL, 2);
    EXPECT_EQ(gc_own_rc(t, root, r2), 0);
    rc_release(r2);
    /* and one owned by an unreachable object no collection has seen yet */
    gobj_t *garbage = gmk(t, &T_G, 8);
    recobj_t *r3 = mk_rec(NULL, 3);
    EXPECT_EQ(gc_own_rc(t, garbage, r3), 0);
    rc_release(r3);
    EXPECT_DESTROYS(1);
    EXPECT_VERIFY(heap);

    gc_root_remove(heap, &root);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_DESTROYS(3);
    EXPECT_SHADOW_RUNS(2, 1);
    EXPECT_SHADOW_RUNS(3, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static void test_bridge_own_rc_misuse(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    shadow_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *root = NULL;
    gc_root_add(heap, &root);
    root = gmk(t, &T_G, 18);

    /* the owner is not a GC object: nothing retained */
    unsigned long r1 = rec_count();
    int local;
    recobj_t *r = mk_rec(NULL, 8);
    EXPECT_EQ(gc_own_rc(t, &local, r), -1);
    EXPECT_ONE_REPORT(r1, "gc_own_rc:", &local);
    EXPECT_EQ(rc_count(r), 1);
    rc_release(r);
    EXPECT_DESTROYS(1);

    /* the rc object is already destroyed */
    r1 = rec_count();
    int res = gc_own_rc(t, root, r);
    EXPECT_EQ(res, -1);
    EXPECT_ONE_REPORT(r1, "gc_own_rc:", r);
    EXPECT_DESTROYS(1);

    gc_root_remove(heap, &root);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(8, 1);
    EXPECT_NO_ASYNC_FAILURES();
}

static void test_bridge_own_rc_finalizer_order(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    destroy_reset();
    shadow_reset();
    atomic_store(&g_seq, 0);
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);

    /* collected owner with a finalizer */
    gobj_t *a = gmk(t, &T_GFIN, 9);
    recobj_t *r = mk_rec(NULL, 5);
    EXPECT_EQ(gc_own_rc(t, a, r), 0);
    rc_release(r);
    int collections = 0;
    while (atomic_load(&g_shadow_runs[5]) == 0 && collections < 4) {
        gc_collect(t);
        collections++;
    }
    EXPECT_FIN(9, 1);
    EXPECT_SHADOW_RUNS(5, 1);
    unsigned long fseq = atomic_load(&g_fin_seq[9]), dseq = atomic_load(&g_shadow_seq[5]);
    print_message("  finalizer seq %lu, destroy seq %lu, after %d collection(s)\n", fseq, dseq, collections);
    if (!(fseq != 0 && dseq != 0 && fseq < dseq))
        T_FAIL("the owner's finalizer (seq %lu) must run before the rc object's destroy (seq %lu)",
               fseq, dseq);

    /* reachable owner with a finalizer, at heap destroy */
    void *root = NULL;
    gc_root_add(heap, &root);
    root = gmk(t, &T_GFIN, 10);
    recobj_t *r2 = mk_rec(NULL, 6);
    EXPECT_EQ(gc_own_rc(t, root, r2), 0);
    rc_release(r2);
    gc_collect(t);
    EXPECT_FIN(10, 0);
    EXPECT_SHADOW_RUNS(6, 0);
    gc_root_remove(heap, &root);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_FIN(10, 1);
    EXPECT_SHADOW_RUNS(6, 1);
    fseq = atomic_load(&g_fin_seq[10]);
    dseq = atomic_load(&g_shadow_seq[6]);
    if (!(fseq != 0 && dseq != 0 && fseq < dseq))
        T_FAIL("at gc_heap_destroy: finalizer seq %lu, destroy seq %lu (finalizer must come first)",
               fseq, dseq);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static size_t cycles_to_text(gc_heap_t *heap, char *buf, size_t n)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    size_t c = gc_report_bridge_cycles(heap, f);
    rewind(f);
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
    return c;
}

static void test_bridge_report_cycles(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    destroy_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    gc_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.pool = pool;
    gc_heap_t *heap = gc_heap_create(&opts);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    char text[4096];

    /* nothing bridged */
    size_t c = cycles_to_text(heap, text, sizeof text);
    EXPECT_EQ(c, 0);

    /* bridges without a cycle: handle -> A owns rc R and handle H2 -> B;
     * B owns nothing */
    gobj_t *a = gmk(t, &T_GFIN, 11);
    gc_handle_t *ha = gc_handle_new(heap, a);
    gobj_t *b = gmk(t, &T_GFIN, 12);
    gc_handle_t *hb = gc_handle_new(heap, b);
    recobj_t *r = mk_rec(NULL, 7);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(ha), r), 0);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(ha), hb), 0);
    rc_release(r);
    rc_release(hb);
    c = cycles_to_text(heap, text, sizeof text);
    if (c != 0) T_FAIL("gc_report_bridge_cycles = %zu without a cycle; it wrote: %s", c, text);
    EXPECT_VERIFY(heap);
    rc_release(ha); /* A, then B (owned through A), become garbage */
    gc_collect(t);
    gc_collect(t);
    gc_collect(t);
    EXPECT_FIN(11, 1);
    EXPECT_FIN(12, 1);
    EXPECT_DESTROYS(1);

    /* one handle whose object owns that same handle */
    gobj_t *s = gmk(t, &T_GFIN, 13);
    gc_handle_t *hs = gc_handle_new(heap, s);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(hs), hs), 0);
    EXPECT_EQ(rc_count(hs), 2);
    rc_release(hs); /* ours gone: only the cycle keeps it */
    c = cycles_to_text(heap, text, sizeof text);
    if (c != 1) T_FAIL("gc_report_bridge_cycles = %zu for one self-owning handle; it wrote: %s", c, text);
    if (strstr(text, "cycle") == NULL) T_FAIL("the cycle report does not mention \"cycle\": \"%s\"", text);
    print_message("  report: %s", text);
    gc_collect(t);
    gc_collect(t);
    EXPECT_FIN(13, 0); /* never collected */
    EXPECT_VERIFY(heap);

    /* heap destroy releases what the cycles hold: every cell goes back */
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_FIN(13, 1);
    pool_stats_t ps = pstats(pool);
    if (ps.live_allocations != 0)
        T_FAIL("%zu cell(s) still live in the heap's pool after gc_heap_destroy (the cycles' "
               "handles should have been released)", ps.live_allocations);
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* The two-handle cycle on its own: exactly one cycle. */
static void test_bridge_report_two_handle_cycle(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    char text[4096];
    gobj_t *x = gmk(t, &T_GFIN, 16);
    gc_handle_t *h1 = gc_handle_new(heap, x);
    gobj_t *y = gmk(t, &T_GFIN, 17);
    gc_handle_t *h2 = gc_handle_new(heap, y);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(h1), h2), 0);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(h2), h1), 0);
    rc_release(h1);
    rc_release(h2);
    size_t c = cycles_to_text(heap, text, sizeof text);
    if (strstr(text, "cycle") == NULL) T_FAIL("the cycle report does not mention \"cycle\": \"%s\"", text);
    if (c != 1)
        T_FAIL("gc_report_bridge_cycles = %zu for one cycle through two handles "
               "(H1 -> X owns H2 -> Y owns H1), expected 1; it wrote:\n%s", c, text);
    gc_collect(t);
    EXPECT_FIN(16, 0);
    EXPECT_FIN(17, 0);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_FIN(16, 1);
    EXPECT_FIN(17, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_alloc_zeroed_aligned),
        T(test_rc_alloc_oom_is_not_misuse),
        T(test_rc_alloc_in_custom_pool),
        T(test_rc_retain_release_counts),
        T(test_rc_inline_and_library_paths_agree),
        T(test_rc_last_release_on_other_thread),
        T(test_rc_destroy_releases_chain),
        T(test_rc_destroy_chain_small_stack),
        T(test_rc_misuse_destroyed_object),
        T(test_rc_misuse_foreign_pointers),
        T(test_rc_misuse_inside_destroy),
        T(test_rc_weak_basic),
        T(test_rc_weak_new_misuse),
        T(test_bridge_handle_roots_object),
        T(test_bridge_handle_after_heap_destroy_user_pool),
        T(test_bridge_handle_after_heap_destroy_own_pool),
        T(test_bridge_own_rc),
        T(test_bridge_own_rc_misuse),
        T(test_bridge_own_rc_finalizer_order),
        T(test_bridge_report_cycles),
        T(test_bridge_report_two_handle_cycle),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_node_seen);
    return failed;
}
