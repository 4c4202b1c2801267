/* test_gc_threads.c — multi-threaded stress of the collector (<mulch/gc.h>;
 * docs: shared/API.md "GC", "When objects move"): mutators building and
 * checking trees rooted on their thread root stacks while another thread
 * calls gc_collect / gc_verify in a loop; threads parked in blocking regions
 * (sleeps, condition-variable waits) while others collect, which must not
 * wait for them; threads attaching and detaching over and over, some with
 * roots still pushed. Every tree carries keys and checksums verified after
 * every GC point that could have moved it; long-lived trees in global roots
 * are checked at the end; gc_verify must be 0; every finalizable node is
 * finalized exactly once by the end of gc_heap_destroy; the error handler
 * must never be called.
 *
 * Deterministic per thread (seed from MULCH_TEST_SEED or a fixed default,
 * printed at the start); interleavings of course vary. MULCH_TEST_QUICK=1
 * and sanitizer / valgrind builds scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b05)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>

#include "mulch_test.h"

/* ------------------------------------------------------------------------ */
/* Trees                                                                     */

typedef struct tree {
    void *l, *r;
    uint64_t key;
    uint64_t check;
} tree_t;

static atomic_ulong g_tree_fin_allocs;  /* finalizable nodes allocated */
static atomic_ulong g_tree_fin_runs;
static atomic_ulong g_tree_fin_bad;

static void trace_tree(void *obj, gc_tracer_t *tracer)
{
    tree_t *t = obj;
    gc_trace_slot(tracer, &t->l);
    gc_trace_slot(tracer, &t->r);
}

static void fin_tree(void *obj)
{
    tree_t *t = obj;
    if (t->check != mix64(t->key)) {
        if (atomic_fetch_add(&g_tree_fin_bad, 1) == 0)
            AFAIL("finalizer got a damaged tree node %p (key %#" PRIx64 ")", obj, t->key);
    }
    atomic_fetch_add(&g_tree_fin_runs, 1);
}

static const gc_type_t T_TREE = { "stress.tree", trace_tree, NULL };
static const gc_type_t T_TREE_FIN = { "stress.tree_fin", trace_tree, fin_tree };
static const gc_type_t T_RAW_TH = { "stress.raw", NULL, NULL };

static uint64_t child_key(uint64_t key, int side) { return mix64(key * 2 + (uint64_t)side + 1); }

/* Builds a complete tree of `depth` levels under the root-stack discipline:
 * every node is in a pushed slot while its children are allocated. Leaves
 * (and every 7th key) get a finalizer. Returns NULL when gc_alloc fails. */
static void *tree_build(gc_thread_t *t, int depth, uint64_t key)
{
    void *n = NULL;
    gc_push_root(t, &n);
    int fin = depth == 0 || key % 7 == 0;
    n = gc_alloc(t, fin ? &T_TREE_FIN : &T_TREE, sizeof(tree_t));
    if (!n) {
        AFAIL("gc_alloc of a tree node returned NULL");
        gc_pop_roots(t, 1);
        return NULL;
    }
    if (fin) atomic_fetch_add(&g_tree_fin_allocs, 1);
    ((tree_t *)n)->key = key;
    ((tree_t *)n)->check = mix64(key);
    if (depth > 0) {
        void *l = tree_build(t, depth - 1, child_key(key, 0));
        gc_write(t, n, &((tree_t *)n)->l, l);          /* n re-read from its slot */
        void *r = tree_build(t, depth - 1, child_key(key, 1));
        gc_write(t, n, &((tree_t *)n)->r, r);
    }
    gc_pop_roots(t, 1);
    return n;
}

/* Number of nodes of a correct tree, or 0 (and a recorded failure). */
static size_t tree_check(const void *p, int depth, uint64_t key)
{
    const tree_t *n = p;
    if (!n || ((uintptr_t)n & 7u)) {
        AFAIL("tree node for key %#" PRIx64 " is %p", key, p);
        return 0;
    }
    if (n->key != key || n->check != mix64(key)) {
        AFAIL("tree node %p: key %#" PRIx64 " check %#" PRIx64 ", expected key %#" PRIx64, p,
              n->key, n->check, key);
        return 0;
    }
    if (depth == 0) {
        if (n->l || n->r) {
            AFAIL("leaf %p has children %p %p", p, n->l, n->r);
            return 0;
        }
        return 1;
    }
    size_t a = tree_check(n->l, depth - 1, child_key(key, 0));
    size_t b = a ? tree_check(n->r, depth - 1, child_key(key, 1)) : 0;
    return a && b ? 1 + a + b : 0;
}

static size_t tree_nodes(int depth) { return ((size_t)2 << depth) - 1; }

/* Error handler: in these tests nothing is misuse, so any call is a failure. */
static atomic_ulong g_reports;
static void counting_handler(const char *what, const void *ptr, void *ctx)
{
    (void)ctx;
    if (atomic_fetch_add(&g_reports, 1) == 0)
        AFAIL("unexpected error-handler call: \"%s\" ptr %p", what ? what : "(null)", ptr);
}

static int setup(void **state)
{
    (void)state;
    atomic_store(&g_failures, 0);
    g_fail_msg[0] = 0;
    atomic_store(&g_reports, 0);
    atomic_store(&g_tree_fin_allocs, 0);
    atomic_store(&g_tree_fin_runs, 0);
    atomic_store(&g_tree_fin_bad, 0);
    g_prev_handler = mulch_set_error_handler(counting_handler, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mulch_set_error_handler(g_prev_handler, NULL);
    print_message("  (%.2f s)\n", elapsed_s());
    return 0;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

/* After destroy every finalizable node ran its finalizer exactly once. */
static void expect_all_tree_finalizers_ran(void)
{
    unsigned long a = atomic_load(&g_tree_fin_allocs), r = atomic_load(&g_tree_fin_runs);
    if (a != r)
        T_FAIL("%lu finalizable tree nodes allocated, %lu finalizer runs after gc_heap_destroy", a,
               r);
    EXPECT_EQ(atomic_load(&g_tree_fin_bad), 0);
}

/* ------------------------------------------------------------------------ */
/* 1. Mutators building trees + a collector thread                           */

enum { NMUT = 4, KEEP = 4 };

typedef struct mut_arg {
    gc_heap_t *heap;
    int id;
    size_t rounds;
    void **long_slot;           /* global root: a long-lived tree */
    uint64_t long_key;
    int long_depth;
    atomic_int *stop;
    unsigned long built, blocked;
    uint64_t nodes;             /* allocated by the short-lived trees */
} mut_arg_t;

static pthread_mutex_t g_cv_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static atomic_ulong g_collector_rounds;

static void *mutator(void *p)
{
    mut_arg_t *a = p;
    rng_t r = test_rng("mutator", (uint64_t)a->id);
    gc_thread_t *t = gc_thread_attach(a->heap);
    if (!t) {
        AFAIL("attach failed");
        return NULL;
    }
    size_t d0 = gc_root_depth(t);
    /* The long-lived tree: built under the root stack, then published in
     * its global root. */
    *a->long_slot = tree_build(t, a->long_depth, a->long_key);
    void *keep[KEEP] = { 0 };
    uint64_t keep_key[KEEP] = { 0 };
    int keep_depth[KEEP] = { 0 };
    for (int k = 0; k < KEEP; k++) gc_push_root(t, &keep[k]);
    for (size_t round = 0; round < a->rounds && !atomic_load(&g_failures); round++) {
        int depth = 2 + (int)rng_below(&r, 9);                 /* 7 .. 2047 nodes */
        uint64_t key = rng_next(&r);
        void *tr = NULL;
        gc_push_root(t, &tr);
        tr = tree_build(t, depth, key);
        a->built++;
        a->nodes += tree_nodes(depth);
        if (tree_check(tr, depth, key) != tree_nodes(depth)) break;
        switch (rng_below(&r, 6)) {
        case 0: {                                   /* sleep in a blocking region */
            gc_enter_blocking(t);
            sleep_us(50 + (long)rng_below(&r, 400));
            gc_leave_blocking(t);
            a->blocked++;
            break;
        }
        case 1: {                                   /* condvar wait in a blocking region */
            unsigned long seen = atomic_load(&g_collector_rounds);
            gc_enter_blocking(t);
            pthread_mutex_lock(&g_cv_mu);
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_nsec += 2000000;                  /* 2 ms at most */
            if (dl.tv_nsec >= 1000000000) dl.tv_sec++, dl.tv_nsec -= 1000000000;
            while (atomic_load(&g_collector_rounds) == seen && !atomic_load(a->stop))
                if (pthread_cond_timedwait(&g_cv, &g_cv_mu, &dl) != 0) break;
            pthread_mutex_unlock(&g_cv_mu);
            gc_leave_blocking(t);
            a->blocked++;
            break;
        }
        case 2:
            gc_safepoint(t);
            break;
        default:
            break;
        }
        /* The tree may have moved: check it through its slot. */
        if (tree_check(tr, depth, key) != tree_nodes(depth)) break;
        int k = (int)rng_below(&r, KEEP);
        if (keep[k] && tree_check(keep[k], keep_depth[k], keep_key[k]) != tree_nodes(keep_depth[k]))
            break;
        keep[k] = tr;                               /* the old one becomes garbage */
        keep_key[k] = key;
        keep_depth[k] = depth;
        gc_pop_roots(t, 1);
        if (round % 16 == 0 &&
            tree_check(*a->long_slot, a->long_depth, a->long_key) != tree_nodes(a->long_depth))
            break;
    }
    for (int k = 0; k < KEEP; k++)
        if (keep[k] && !atomic_load(&g_failures))
            (void)tree_check(keep[k], keep_depth[k], keep_key[k]);
    gc_pop_roots_to(t, d0);
    gc_thread_detach(t);
    return NULL;
}

typedef struct collector_arg {
    gc_heap_t *heap;
    atomic_int *stop;
    unsigned long collects, verifies;
} collector_arg_t;

static void *collector(void *p)
{
    collector_arg_t *c = p;
    gc_thread_t *t = gc_thread_attach(c->heap);
    /* At least one collection, even when the mutators were done before
     * this thread first ran (a loaded machine: CI's ASan stage once saw
     * none in quick mode). */
    do {
        gc_collect(t);
        c->collects++;
        atomic_fetch_add(&g_collector_rounds, 1);
        pthread_mutex_lock(&g_cv_mu);
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_cv_mu);
        if (c->collects % 8 == 0) {
            size_t v = gc_verify(c->heap);
            c->verifies++;
            if (v) AFAIL("gc_verify = %zu during the run", v);
        }
        if (c->collects % 4 == 0) {                 /* let the mutators run a bit */
            gc_enter_blocking(t);
            sleep_us(200);
            gc_leave_blocking(t);
        }
    } while (!atomic_load(c->stop) && !atomic_load(&g_failures));
    gc_thread_detach(t);
    return NULL;
}

/* gc_verify from a thread that is not attached: it stops the world too. */
typedef struct verifier_arg {
    gc_heap_t *heap;
    atomic_int *stop;
    unsigned long runs;
} verifier_arg_t;

static void *unattached_verifier(void *p)
{
    verifier_arg_t *v = p;
    while (!atomic_load(v->stop) && !atomic_load(&g_failures)) {
        size_t problems = gc_verify(v->heap);
        v->runs++;
        if (problems) AFAIL("gc_verify from an unattached thread = %zu", problems);
        sleep_us(1000);
    }
    return NULL;
}

static void trees_with_collector(int compaction)
{
    gc_heap_t *h = heap_new(1 * MiB, 0, compaction);
    gc_thread_t *main_t = gc_thread_attach(h);
    static void *long_slots[NMUT];
    memset(long_slots, 0, sizeof long_slots);
    gc_root_add_range(h, long_slots, NMUT);
    atomic_int stop;
    atomic_init(&stop, 0);
    mut_arg_t ma[NMUT];
    pthread_t mt[NMUT], ct;
    collector_arg_t ca = { h, &stop, 0, 0 };
    gc_enter_blocking(main_t);
    for (int i = 0; i < NMUT; i++) {
        memset(&ma[i], 0, sizeof ma[i]);
        ma[i].heap = h;
        ma[i].id = i + 10 * compaction;
        ma[i].rounds = scaled(1000, 60);
        ma[i].long_slot = &long_slots[i];
        ma[i].long_key = mix64(g_seed ^ (uint64_t)i);
        ma[i].long_depth = 10 + i % 2;
        ma[i].stop = &stop;
        EXPECT_EQ(pthread_create(&mt[i], NULL, mutator, &ma[i]), 0);
    }
    EXPECT_EQ(pthread_create(&ct, NULL, collector, &ca), 0);
    verifier_arg_t va = { h, &stop, 0 };
    pthread_t vt;
    EXPECT_EQ(pthread_create(&vt, NULL, unattached_verifier, &va), 0);
    for (int i = 0; i < NMUT; i++) EXPECT_EQ(pthread_join(mt[i], NULL), 0);
    atomic_store(&stop, 1);
    EXPECT_EQ(pthread_join(ct, NULL), 0);
    EXPECT_EQ(pthread_join(vt, NULL), 0);
    gc_leave_blocking(main_t);
    EXPECT_NO_ASYNC_FAILURES();

    unsigned long built = 0, blocked = 0;
    uint64_t nodes = 0;
    for (int i = 0; i < NMUT; i++) {
        built += ma[i].built;
        blocked += ma[i].blocked;
        nodes += ma[i].nodes + tree_nodes(ma[i].long_depth);
    }
    /* Exact for every allocation made before the call, on any thread
     * (the mutators have detached by now). */
    EXPECT_GE(stats_of(h).bytes_allocated, nodes * sizeof(tree_t));
    gc_collect(main_t);
    for (int i = 0; i < NMUT; i++) {
        size_t got = tree_check(long_slots[i], ma[i].long_depth, ma[i].long_key);
        EXPECT_EQ(got, tree_nodes(ma[i].long_depth));
    }
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(gc_verify(h), 0);
    EXPECT_EQ(gc_verify_untraced(h), 0);
    gc_stats_t s = stats_of(h);
    print_message("  %lu trees built, %lu blocking waits, collector %lu gc_collect + %lu "
                  "gc_verify, unattached gc_verify %lu, %ju collections, %ju finalized, max pause "
                  "%.2f ms\n", built, blocked, ca.collects, ca.verifies, va.runs,
                  (uintmax_t)s.collections,
                  (uintmax_t)s.objects_finalized, (double)s.pause_ns_max / 1e6);
    EXPECT_GE(ca.collects, 1);
    gc_root_remove(h, long_slots);
    gc_thread_detach(main_t);
    gc_heap_destroy(h);
    expect_all_tree_finalizers_ran();
    EXPECT_EQ(atomic_load(&g_reports), 0);
    EXPECT_NO_ASYNC_FAILURES();
}

static void test_gc_threads_trees_with_collector(void **state)
{
    (void)state;
    TEST_START();
    print_message("  compaction auto\n");
    trees_with_collector(GC_COMPACT_AUTO);
    print_message("  compaction always\n");
    trees_with_collector(GC_COMPACT_ALWAYS);
}

/* ------------------------------------------------------------------------ */
/* 2. Collections never wait for threads in blocking regions                 */

enum { NBLOCK = 3 };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int release;            /* set by the collector after its collections */
    int parked;             /* threads in their blocking wait */
    atomic_ulong progress;  /* threads parked + collections finished so far */
} g_gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };

/* How long a blocker waits for the next sign of progress (a blocker parked,
 * a collection finished) before it calls the collector stuck. A limit on
 * the whole phase would measure the machine: on a loaded 2-core machine
 * with a sanitizer the collector's loop alone can take that long. */
enum { STUCK_SECONDS = 60 };

typedef struct blocker_arg {
    gc_heap_t *heap;
    int id;
} blocker_arg_t;

static void *blocker(void *p)
{
    blocker_arg_t *b = p;
    gc_thread_t *t = gc_thread_attach(b->heap);
    uint64_t key = mix64(g_seed + (uint64_t)b->id);
    void *tr = NULL;
    gc_push_root(t, &tr);
    tr = tree_build(t, 9, key);
    int ok = tree_check(tr, 9, key) == tree_nodes(9);
    gc_enter_blocking(t);                      /* no GC pointer touched from here */
    pthread_mutex_lock(&g_gate.mu);
    g_gate.parked++;
    atomic_fetch_add(&g_gate.progress, 1);
    pthread_cond_broadcast(&g_gate.cv);
    unsigned long seen = atomic_load(&g_gate.progress);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += STUCK_SECONDS;
    while (!g_gate.release) {
        if (pthread_cond_timedwait(&g_gate.cv, &g_gate.mu, &dl) != 0) {
            unsigned long now = atomic_load(&g_gate.progress);
            if (now != seen) { /* slow, not stuck: wait for the next step */
                seen = now;
                clock_gettime(CLOCK_REALTIME, &dl);
                dl.tv_sec += STUCK_SECONDS;
                continue;
            }
            AFAIL("blocker %d: no collection finished for %d s while we were in a blocking region "
                  "(did a collection wait for us?)", b->id, STUCK_SECONDS);
            break;
        }
    }
    pthread_mutex_unlock(&g_gate.mu);
    gc_leave_blocking(t);                      /* a GC point: the tree may have moved */
    if (ok) (void)tree_check(tr, 9, key);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

static void test_gc_threads_blocking_regions(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    g_gate.release = 0;
    g_gate.parked = 0;
    atomic_store(&g_gate.progress, 0);
    blocker_arg_t ba[NBLOCK];
    pthread_t bt[NBLOCK];
    gc_enter_blocking(t);
    for (int i = 0; i < NBLOCK; i++) {
        ba[i].heap = h;
        ba[i].id = i;
        EXPECT_EQ(pthread_create(&bt[i], NULL, blocker, &ba[i]), 0);
    }
    pthread_mutex_lock(&g_gate.mu);
    while (g_gate.parked < NBLOCK && !atomic_load(&g_failures)) pthread_cond_wait(&g_gate.cv, &g_gate.mu);
    pthread_mutex_unlock(&g_gate.mu);
    gc_leave_blocking(t);
    /* Everyone else is blocked: collect and allocate a lot. */
    const int n = (int)scaled(200, 40);
    void *mine = NULL;
    gc_push_root(t, &mine);
    for (int i = 0; i < n; i++) {
        mine = tree_build(t, 6, (uint64_t)i);
        gc_collect(t);
        atomic_fetch_add(&g_gate.progress, 1);
        if (tree_check(mine, 6, (uint64_t)i) != tree_nodes(6)) break;
    }
    gc_pop_roots(t, 1);
    EXPECT_EQ(gc_verify(h), 0);
    EXPECT_EQ(gc_verify_untraced(h), 0);
    pthread_mutex_lock(&g_gate.mu);
    g_gate.release = 1;
    pthread_cond_broadcast(&g_gate.cv);
    pthread_mutex_unlock(&g_gate.mu);
    gc_enter_blocking(t);
    for (int i = 0; i < NBLOCK; i++) EXPECT_EQ(pthread_join(bt[i], NULL), 0);
    gc_leave_blocking(t);
    EXPECT_NO_ASYNC_FAILURES();
    gc_collect(t);
    EXPECT_EQ(gc_verify(h), 0);
    EXPECT_EQ(gc_verify_untraced(h), 0);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    expect_all_tree_finalizers_ran();
    EXPECT_EQ(atomic_load(&g_reports), 0);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* 3. Threads attaching and detaching over and over                          */

typedef struct churn_arg {
    gc_heap_t *heap;
    int id;
    size_t cycles;
    void **shared_slot;     /* global root this thread refreshes */
    pthread_mutex_t *shared_mu;
} churn_arg_t;

static void *churner(void *p)
{
    churn_arg_t *c = p;
    rng_t r = test_rng("churner", (uint64_t)c->id);
    for (size_t cycle = 0; cycle < c->cycles && !atomic_load(&g_failures); cycle++) {
        gc_thread_t *t = gc_thread_attach(c->heap);
        if (!t) {
            AFAIL("gc_thread_attach returned NULL");
            return NULL;
        }
        if (gc_thread_current(c->heap) != t) AFAIL("gc_thread_current is not the attached thread");
        int depth = 1 + (int)rng_below(&r, 6);
        uint64_t key = rng_next(&r);
        void *tr = NULL;
        gc_push_root(t, &tr);
        tr = tree_build(t, depth, key);
        if (rng_below(&r, 4) == 0) gc_collect(t);
        else gc_safepoint(t);
        if (tree_check(tr, depth, key) != tree_nodes(depth)) return NULL;
        if (rng_below(&r, 8) == 0) {
            /* Publish a tree in the global root; the main thread checks the
             * last one. The lock is taken inside a blocking region. */
            gc_enter_blocking(t);
            pthread_mutex_lock(c->shared_mu);
            gc_leave_blocking(t);      /* may stop here for a collection: fine, tr is rooted */
            *c->shared_slot = tr;
            pthread_mutex_unlock(c->shared_mu);
        }
        if (rng_below(&r, 2) == 0) gc_pop_roots(t, 1);
        /* else: detach with the root still pushed — allowed at any time */
        gc_thread_detach(t);
        if (gc_thread_current(c->heap) != NULL) AFAIL("gc_thread_current after detach is not NULL");
    }
    return NULL;
}

static void test_gc_threads_attach_detach_churn(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(512 * KiB, 0, GC_COMPACT_AUTO);
    gc_thread_t *main_t = gc_thread_attach(h);
    enum { NCHURN = 6 };
    static void *shared[NCHURN];
    pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
    memset(shared, 0, sizeof shared);
    gc_root_add_range(h, shared, NCHURN);
    atomic_int stop;
    atomic_init(&stop, 0);
    collector_arg_t ca = { h, &stop, 0, 0 };
    churn_arg_t cha[NCHURN];
    pthread_t cht[NCHURN], ct;
    gc_enter_blocking(main_t);
    EXPECT_EQ(pthread_create(&ct, NULL, collector, &ca), 0);
    /* Waves of short-lived threads too: each wave's threads start, churn
     * and exit. */
    const int waves = (int)scaled(8, 3);
    for (int w = 0; w < waves; w++) {
        for (int i = 0; i < NCHURN; i++) {
            cha[i].heap = h;
            cha[i].id = w * NCHURN + i;
            cha[i].cycles = scaled(300, 40);
            cha[i].shared_slot = &shared[i];
            cha[i].shared_mu = &shared_mu;
            EXPECT_EQ(pthread_create(&cht[i], NULL, churner, &cha[i]), 0);
        }
        for (int i = 0; i < NCHURN; i++) EXPECT_EQ(pthread_join(cht[i], NULL), 0);
    }
    atomic_store(&stop, 1);
    EXPECT_EQ(pthread_join(ct, NULL), 0);
    gc_leave_blocking(main_t);
    EXPECT_NO_ASYNC_FAILURES();
    gc_collect(main_t);
    /* Published trees are intact (keys unknown here: check structure and
     * checksums). */
    for (int i = 0; i < NCHURN; i++) {
        const tree_t *n = shared[i];
        if (!n) continue;
        int depth = 0;
        for (const tree_t *x = n; x->l; x = x->l) depth++;
        EXPECT_EQ(tree_check(n, depth, n->key), tree_nodes(depth));
    }
    EXPECT_EQ(gc_verify(h), 0);
    EXPECT_EQ(gc_verify_untraced(h), 0);
    gc_stats_t s = stats_of(h);
    print_message("  %d waves x %d threads, collector %lu gc_collect, %ju collections\n", waves,
                  NCHURN, ca.collects, (uintmax_t)s.collections);
    gc_root_remove(h, shared);
    gc_thread_detach(main_t);
    gc_heap_destroy(h);
    expect_all_tree_finalizers_ran();
    EXPECT_EQ(atomic_load(&g_reports), 0);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* 4. Several mutators against max_heap                                      */

enum { NLIM = 4, LIM_SLOTS = 2048 };

typedef struct lim_arg {
    gc_heap_t *heap;
    size_t max;
    int id;
    size_t steps;
    void **slots;               /* registered range, LIM_SLOTS */
    size_t *sizes;
    unsigned long nulls, allocs;
    size_t max_seen;
} lim_arg_t;

static void *limit_mutator(void *p)
{
    lim_arg_t *a = p;
    rng_t r = test_rng("limit_mutator", (uint64_t)a->id);
    gc_thread_t *t = gc_thread_attach(a->heap);
    gc_root_add_range(a->heap, a->slots, LIM_SLOTS);
    for (size_t s = 0; s < a->steps && !atomic_load(&g_failures); s++) {
        size_t i = (size_t)rng_below(&r, LIM_SLOTS);
        size_t sz = rng_below(&r, 16) == 0 ? 16 * KiB + (size_t)rng_below(&r, 200 * KiB)
                                           : 16 + (size_t)rng_below(&r, 3000);
        unsigned char *o = gc_alloc(t, &T_RAW_TH, sz);
        gc_stats_t st;
        gc_get_stats(a->heap, &st);
        if (st.heap_bytes > a->max_seen) a->max_seen = st.heap_bytes;
        if (st.heap_bytes > a->max)
            AFAIL("heap_bytes %zu > max_heap %zu (thread %d)", st.heap_bytes, a->max, a->id);
        if (!o) {
            a->nulls++;
            /* Out of room: drop a third of this thread's objects. */
            for (size_t k = 0; k < LIM_SLOTS; k++)
                if (rng_below(&r, 3) == 0) a->slots[k] = NULL;
            continue;
        }
        a->allocs++;
        o[0] = (unsigned char)(a->id * 16 + (int)(i & 15));
        o[sz - 1] = (unsigned char)i;
        a->slots[i] = o;
        a->sizes[i] = sz;
        if (rng_below(&r, 500) == 0) gc_collect(t);
    }
    for (size_t i = 0; i < LIM_SLOTS && !atomic_load(&g_failures); i++) {
        const unsigned char *o = a->slots[i];
        if (o && (o[0] != (unsigned char)(a->id * 16 + (int)(i & 15)) ||
                  o[a->sizes[i] - 1] != (unsigned char)i))
            AFAIL("thread %d object %zu (%zu bytes) damaged", a->id, i, a->sizes[i]);
    }
    gc_root_remove(a->heap, a->slots);
    gc_thread_detach(t);
    return NULL;
}

static void test_gc_threads_max_heap(void **state)
{
    (void)state;
    TEST_START();
    const size_t max = 16 * MiB;
    gc_heap_t *h = heap_new(1 * MiB, max, GC_COMPACT_AUTO);
    lim_arg_t la[NLIM];
    pthread_t lt[NLIM];
    for (int i = 0; i < NLIM; i++) {
        memset(&la[i], 0, sizeof la[i]);
        la[i].heap = h;
        la[i].max = max;
        la[i].id = i;
        la[i].steps = scaled(30000, 4000);
        la[i].slots = calloc(LIM_SLOTS, sizeof *la[i].slots);
        la[i].sizes = calloc(LIM_SLOTS, sizeof *la[i].sizes);
        EXPECT_NONNULL(la[i].slots);
        EXPECT_NONNULL(la[i].sizes);
        EXPECT_EQ(pthread_create(&lt[i], NULL, limit_mutator, &la[i]), 0);
    }
    for (int i = 0; i < NLIM; i++) EXPECT_EQ(pthread_join(lt[i], NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    unsigned long nulls = 0, allocs = 0;
    size_t max_seen = 0;
    for (int i = 0; i < NLIM; i++) {
        nulls += la[i].nulls;
        allocs += la[i].allocs;
        if (la[i].max_seen > max_seen) max_seen = la[i].max_seen;
    }
    gc_stats_t s = stats_of(h);
    print_message("  %lu allocations, %lu NULLs, largest heap_bytes seen %zu of %zu, %ju "
                  "collections\n", allocs, nulls, max_seen, max, (uintmax_t)s.collections);
    EXPECT_LE(s.heap_bytes, max);
    gc_thread_t *t = gc_thread_attach(h);
    gc_collect(t);
    EXPECT_EQ(gc_verify(h), 0);
    EXPECT_EQ(gc_verify_untraced(h), 0);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    for (int i = 0; i < NLIM; i++) {
        free(la[i].slots);
        free(la[i].sizes);
    }
    EXPECT_EQ(atomic_load(&g_reports), 0);
    EXPECT_NO_ASYNC_FAILURES();
}

int main(void)
{
    mt_init("test_gc_threads");
    mt_env_ignore_policy();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gc_threads_trees_with_collector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_threads_blocking_regions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_threads_attach_detach_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_threads_max_heap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
