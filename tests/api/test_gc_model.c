/* test_gc_model.c — seeded model test of the collector (<mulch/gc.h>; docs:
 * shared/API.md "GC"). A random graph of nodes (K reference slots, an id, a
 * checksum and a payload) is mutated through random operations — allocate a
 * node into a root, set or clear a field with gc_write (objects, NULL or
 * tagged immediates), drop or copy roots, allocate garbage, gc_collect,
 * gc_verify — while a plain-C model tracks the same graph. After each
 * collection the model's reachable set is computed and checked against the
 * heap: (a) every reachable node is intact (id, checksum, payload) and its
 * fields hold exactly the expected nodes / values; (b) no reachable node was
 * finalized, every finalizable node at most once, and (single mutator)
 * exactly the unreachable finalizable nodes were finalized. Roots are of
 * every kind: a registered range, the thread's root stack and a root
 * callback. Variants: each compaction mode with one mutator, and 4 mutator
 * threads each running its own model on one shared heap (collections
 * triggered by any of them).
 *
 * Deterministic per thread: seeded from MULCH_TEST_SEED (decimal or 0x-hex)
 * or a fixed default; the seed is printed at the start of each test and in
 * every failure message. MULCH_TEST_QUICK=1 (and sanitizer / valgrind builds)
 * scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b04)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>

#include "mulch_test.h"

/* ------------------------------------------------------------------------ */
/* Nodes                                                                     */

#define K 4
#define OWNER_SHIFT 40
#define MAX_OWNERS 8
#define NODE_SALT UINT64_C(0x5eed5eed12345678)

typedef struct node {
    void *f[K];
    uint64_t id;        /* (owner << OWNER_SHIFT) | index */
    uint64_t check;     /* mix64(id ^ NODE_SALT) */
    uint64_t nwords;
    uint64_t words[];
} node_t;

static uint64_t node_word(uint64_t id, uint64_t i) { return mix64(id * 31u + i + 1u); }

static const char *node_problem(const node_t *n, uint64_t id)
{
    if (n == NULL) return "NULL";
    if (((uintptr_t)n & 7u) != 0) return "misaligned pointer";
    if (n->id != id) return "wrong id";
    if (n->check != mix64(id ^ NODE_SALT)) return "checksum damaged";
    if (n->nwords > 4096) return "payload length damaged";
    for (uint64_t i = 0; i < n->nwords; i++)
        if (n->words[i] != node_word(id, i)) return "payload damaged";
    return NULL;
}

/* Finalizer bookkeeping, per owner (model): counts per node index. */
static atomic_uchar *g_fin_counts[MAX_OWNERS];
static size_t g_fin_cap[MAX_OWNERS];
static atomic_ulong g_fin_runs;

static void trace_node(void *obj, gc_tracer_t *tracer)
{
    node_t *n = obj;
    gc_trace_range(tracer, n->f, K);
}

static void fin_node(void *obj)
{
    node_t *n = obj;
    uint64_t owner = n->id >> OWNER_SHIFT, idx = n->id & (((uint64_t)1 << OWNER_SHIFT) - 1);
    const char *why = node_problem(n, n->id);
    if (why) {
        AFAIL("finalizer got a damaged node %p (id %#" PRIx64 "): %s", obj, n->id, why);
        return;
    }
    if (owner >= MAX_OWNERS || !g_fin_counts[owner] || idx >= g_fin_cap[owner]) {
        AFAIL("finalizer got node id %#" PRIx64 " outside every model", n->id);
        return;
    }
    if (atomic_fetch_add(&g_fin_counts[owner][idx], 1) != 0)
        AFAIL("node %" PRIu64 " of model %" PRIu64 " finalized twice", idx, owner);
    atomic_fetch_add(&g_fin_runs, 1);
}

static const gc_type_t T_NODE = { "model.node", trace_node, NULL };
static const gc_type_t T_NODE_FIN = { "model.node_fin", trace_node, fin_node };

/* ------------------------------------------------------------------------ */
/* The model                                                                 */

enum { V_NULL = 0, V_REF = 1, V_TAG = 2 };
typedef struct mval {
    uint8_t kind;
    uint64_t v;         /* V_REF: node index; V_TAG: the tagged word */
} mval_t;

enum { R_RANGE = 40, R_STACK = 6, R_CB = 6, R_ALL = R_RANGE + R_STACK + R_CB };

typedef struct model {
    int owner;
    int strict;             /* only mutator: unreachable <=> finalized after gc_collect */
    rng_t rng;
    gc_heap_t *heap;
    gc_thread_t *t;
    void **range;           /* R_RANGE registered slots */
    void *stk[R_STACK];     /* pushed on the thread's root stack */
    void *cb[R_CB];         /* traced by a root callback */
    void **slot[R_ALL];     /* every root slot */
    mval_t root[R_ALL];
    size_t n, cap;          /* nodes allocated so far */
    mval_t (*field)[K];
    uint8_t *finalizable;
    uint8_t *reach;
    uint32_t *seen;         /* visit epoch per node for the heap walk */
    uint32_t epoch;
    size_t *stack;
    node_t **ptrs;
    size_t step;
    int failed;
    unsigned long collects, checks, verifies;
} model_t;

static void model_cb(gc_tracer_t *tracer, void *ctx)
{
    model_t *m = ctx;
    gc_trace_range(tracer, m->cb, R_CB);
}

#define MFAIL(m, ...) \
    do { \
        if (!(m)->failed) { \
            (m)->failed = 1; \
            char b_[512]; \
            snprintf(b_, sizeof b_, __VA_ARGS__); \
            AFAIL("model %d, step %zu: %s", (m)->owner, (m)->step, b_); \
        } \
    } while (0)

static uint64_t node_id(const model_t *m, size_t idx)
{
    return ((uint64_t)m->owner << OWNER_SHIFT) | (uint64_t)idx;
}

static int model_init(model_t *m, int owner, int strict, gc_heap_t *heap, size_t cap, rng_t rng)
{
    memset(m, 0, sizeof *m);
    m->owner = owner;
    m->strict = strict;
    m->rng = rng;
    m->heap = heap;
    m->cap = cap;
    m->range = calloc(R_RANGE, sizeof *m->range);
    m->field = calloc(cap, sizeof *m->field);
    m->finalizable = calloc(cap, 1);
    m->reach = calloc(cap, 1);
    m->seen = calloc(cap, sizeof *m->seen);
    m->stack = calloc(cap + R_ALL, sizeof *m->stack);
    m->ptrs = calloc(cap + R_ALL, sizeof *m->ptrs);
    g_fin_counts[owner] = calloc(cap, sizeof(atomic_uchar));
    if (!m->range || !m->field || !m->finalizable || !m->reach || !m->seen || !m->stack ||
        !m->ptrs || !g_fin_counts[owner])
        return 0;
    for (size_t i = 0; i < cap; i++) atomic_init(&g_fin_counts[owner][i], 0);
    g_fin_cap[owner] = cap;
    for (size_t i = 0; i < R_RANGE; i++) m->slot[i] = &m->range[i];
    for (size_t i = 0; i < R_STACK; i++) m->slot[R_RANGE + i] = &m->stk[i];
    for (size_t i = 0; i < R_CB; i++) m->slot[R_RANGE + R_STACK + i] = &m->cb[i];
    return 1;
}

/* Registers the roots; called on the mutator thread, after attaching. */
static void model_attach(model_t *m, gc_thread_t *t)
{
    m->t = t;
    gc_root_add_range(m->heap, m->range, R_RANGE);
    for (size_t i = 0; i < R_STACK; i++) gc_push_root(t, &m->stk[i]);
    gc_root_add_callback(m->heap, model_cb, m);
}

/* Before the mutator detaches: the root stack goes away with it. */
static void model_release_stack(model_t *m)
{
    for (size_t i = 0; i < R_STACK; i++) {
        m->stk[i] = NULL;
        m->root[R_RANGE + i].kind = V_NULL;
    }
    gc_pop_roots(m->t, R_STACK);
}

static void model_free(model_t *m)
{
    free(m->range);
    free(m->field);
    free(m->finalizable);
    free(m->reach);
    free(m->seen);
    free(m->stack);
    free(m->ptrs);
    free((void *)g_fin_counts[m->owner]);
    g_fin_counts[m->owner] = NULL;
    g_fin_cap[m->owner] = 0;
}

static void *mval_word(const mval_t *v, void *ref_ptr)
{
    switch (v->kind) {
    case V_REF: return ref_ptr;
    case V_TAG: return (void *)(uintptr_t)v->v;
    default: return NULL;
    }
}

/* The model's reachable set, from the roots. */
static size_t model_reach(model_t *m)
{
    memset(m->reach, 0, m->n);
    size_t sp = 0, count = 0;
    for (size_t r = 0; r < R_ALL; r++)
        if (m->root[r].kind == V_REF && !m->reach[m->root[r].v]) {
            m->reach[m->root[r].v] = 1;
            m->stack[sp++] = (size_t)m->root[r].v;
        }
    while (sp) {
        size_t i = m->stack[--sp];
        count++;
        for (int k = 0; k < K; k++)
            if (m->field[i][k].kind == V_REF && !m->reach[m->field[i][k].v]) {
                m->reach[m->field[i][k].v] = 1;
                m->stack[sp++] = (size_t)m->field[i][k].v;
            }
    }
    return count;
}

/* Walks the heap graph from the roots alongside the model; returns the
 * number of nodes visited. No GC point inside. */
static size_t model_check_heap(model_t *m)
{
    m->epoch++;
    size_t sp = 0, visited = 0;
    node_t **ptrs = m->ptrs;     /* beside m->stack: the node's pointer */
    for (size_t r = 0; r < R_ALL && !m->failed; r++) {
        void *got = *m->slot[r];
        const mval_t *v = &m->root[r];
        if (v->kind != V_REF) {
            if (got != mval_word(v, NULL))
                MFAIL(m, "root %zu holds %p, model says %s %#" PRIx64, r, got,
                      v->kind == V_TAG ? "tagged" : "NULL", v->v);
            continue;
        }
        const char *why = node_problem(got, node_id(m, (size_t)v->v));
        if (why) {
            MFAIL(m, "root %zu = %p should be node %" PRIu64 ": %s", r, got, v->v, why);
            break;
        }
        if (m->seen[v->v] != m->epoch) {
            m->seen[v->v] = m->epoch;
            m->stack[sp] = (size_t)v->v;
            ptrs[sp++] = got;
        }
    }
    while (sp && !m->failed) {
        sp--;
        size_t i = m->stack[sp];
        node_t *n = ptrs[sp];
        visited++;
        for (int k = 0; k < K && !m->failed; k++) {
            const mval_t *v = &m->field[i][k];
            void *got = n->f[k];
            if (v->kind != V_REF) {
                if (got != mval_word(v, NULL))
                    MFAIL(m, "node %zu field %d holds %p, model says %s %#" PRIx64, i, k, got,
                          v->kind == V_TAG ? "tagged" : "NULL", v->v);
                continue;
            }
            const char *why = node_problem(got, node_id(m, (size_t)v->v));
            if (why) {
                MFAIL(m, "node %zu field %d = %p should be node %" PRIu64 ": %s", i, k, got, v->v,
                      why);
                break;
            }
            if (m->seen[v->v] != m->epoch) {
                m->seen[v->v] = m->epoch;
                m->stack[sp] = (size_t)v->v;
                ptrs[sp++] = got;
            }
        }
    }
    return visited;
}

/* Full check after a gc_collect by this mutator. `exact`: every unreachable
 * finalizable node must have been finalized by now. */
static void model_check(model_t *m, int exact)
{
    size_t nreach = model_reach(m);
    size_t visited = model_check_heap(m);
    if (m->failed) return;
    if (visited != nreach) MFAIL(m, "heap walk visited %zu nodes, model reaches %zu", visited, nreach);
    for (size_t i = 0; i < m->n && !m->failed; i++) {
        unsigned f = atomic_load(&g_fin_counts[m->owner][i]);
        if (f > 1) MFAIL(m, "node %zu finalized %u times", i, f);
        else if (m->reach[i] && f) MFAIL(m, "reachable node %zu was finalized", i);
        else if (!m->finalizable[i] && f) MFAIL(m, "node %zu has no finalizer but was finalized", i);
        else if (exact && m->finalizable[i] && !m->reach[i] && f != 1)
            MFAIL(m, "unreachable finalizable node %zu not finalized after gc_collect", i);
    }
    m->checks++;
}

/* A random node reachable from a random root, found by a short walk through
 * the model and the heap together: (index, pointer). No GC point. */
static int model_pick(model_t *m, size_t *idx, node_t **ptr)
{
    size_t r0 = (size_t)rng_below(&m->rng, R_ALL);
    for (size_t a = 0; a < R_ALL; a++) {
        size_t r = (r0 + a) % R_ALL;
        if (m->root[r].kind != V_REF) continue;
        size_t i = (size_t)m->root[r].v;
        node_t *p = *m->slot[r];
        unsigned depth = (unsigned)rng_below(&m->rng, 6);
        for (unsigned d = 0; d < depth; d++) {
            int k0 = (int)rng_below(&m->rng, K), k;
            for (k = 0; k < K; k++)
                if (m->field[i][(k0 + k) % K].kind == V_REF) break;
            if (k == K) break;
            k = (k0 + k) % K;
            i = (size_t)m->field[i][k].v;
            p = p->f[k];
        }
        const char *why = node_problem(p, node_id(m, i));
        if (why) {
            MFAIL(m, "walk reached %p for node %zu: %s", (void *)p, i, why);
            return 0;
        }
        *idx = i;
        *ptr = p;
        return 1;
    }
    return 0;
}

static mval_t random_value(model_t *m, void **word)
{
    mval_t v = { V_NULL, 0 };
    *word = NULL;
    uint64_t c = rng_below(&m->rng, 10);
    if (c < 2) return v;
    if (c < 3) {
        v.kind = V_TAG;
        v.v = (rng_next(&m->rng) << 3) | (1u + rng_below(&m->rng, 7));
        *word = (void *)(uintptr_t)v.v;
        return v;
    }
    size_t i;
    node_t *p;
    if (model_pick(m, &i, &p)) {
        v.kind = V_REF;
        v.v = i;
        *word = p;
    }
    return v;
}

/* Allocates node m->n (a GC point). Returns NULL on failure. */
static node_t *model_alloc(model_t *m)
{
    if (m->n >= m->cap) return NULL;
    size_t idx = m->n;
    size_t nw;
    uint64_t c = rng_below(&m->rng, 100);
    if (c == 0) nw = 1100 + (size_t)rng_below(&m->rng, 300);    /* > 8 KiB: its own span */
    else if (c < 5) nw = 50 + (size_t)rng_below(&m->rng, 150);
    else nw = (size_t)rng_below(&m->rng, 13);
    int fin = rng_below(&m->rng, 10) < 7;
    node_t *n = gc_alloc(m->t, fin ? &T_NODE_FIN : &T_NODE, sizeof(node_t) + nw * 8);
    if (!n) {
        MFAIL(m, "gc_alloc(%zu bytes) returned NULL", sizeof(node_t) + nw * 8);
        return NULL;
    }
    for (int k = 0; k < K; k++)
        if (n->f[k]) MFAIL(m, "new node's field %d is %p, not zeroed", k, n->f[k]);
    n->id = node_id(m, idx);
    n->check = mix64(n->id ^ NODE_SALT);
    n->nwords = nw;
    for (size_t i = 0; i < nw; i++) n->words[i] = node_word(n->id, i);
    m->finalizable[idx] = (uint8_t)fin;
    for (int k = 0; k < K; k++) m->field[idx][k].kind = V_NULL;
    m->n++;
    return n;
}

static void model_step(model_t *m)
{
    uint64_t op = rng_below(&m->rng, 1000);
    size_t r = (size_t)rng_below(&m->rng, R_ALL);
    if (op < 330) {                               /* allocate into a root */
        node_t *n = model_alloc(m);
        if (!n) return;
        size_t idx = m->n - 1;
        int links = (int)rng_below(&m->rng, 3);
        for (int l = 0; l < links; l++) {          /* fields: existing nodes, tags */
            int k = (int)rng_below(&m->rng, K);
            void *w;
            mval_t v = random_value(m, &w);
            gc_write(m->t, n, &n->f[k], w);
            m->field[idx][k] = v;
        }
        *m->slot[r] = n;
        m->root[r].kind = V_REF;
        m->root[r].v = idx;
    } else if (op < 600) {                        /* set / clear a field */
        size_t i;
        node_t *p;
        if (!model_pick(m, &i, &p)) return;
        int k = (int)rng_below(&m->rng, K);
        void *w;
        mval_t v = random_value(m, &w);
        gc_write(m->t, p, &p->f[k], w);
        m->field[i][k] = v;
    } else if (op < 700) {                        /* drop a root */
        *m->slot[r] = NULL;
        m->root[r].kind = V_NULL;
    } else if (op < 740) {                        /* tagged value in a root */
        uint64_t tag = (rng_next(&m->rng) << 3) | (1u + rng_below(&m->rng, 7));
        *m->slot[r] = (void *)(uintptr_t)tag;
        m->root[r].kind = V_TAG;
        m->root[r].v = tag;
    } else if (op < 800) {                        /* a deep node into a root */
        size_t i;
        node_t *p;
        if (!model_pick(m, &i, &p)) return;
        *m->slot[r] = p;
        m->root[r].kind = V_REF;
        m->root[r].v = i;
    } else if (op < 960) {                        /* garbage: unreachable at once */
        node_t *n = model_alloc(m);
        if (!n) return;
        size_t i;
        node_t *p;
        if (rng_below(&m->rng, 2) && model_pick(m, &i, &p)) {   /* pointing into the graph */
            gc_write(m->t, n, &n->f[0], p);
            m->field[m->n - 1][0].kind = V_REF;
            m->field[m->n - 1][0].v = i;
        }
    } else if (op < 978) {
        gc_safepoint(m->t);
    } else if (op < 993) {
        gc_collect(m->t);
        m->collects++;
        model_check(m, m->strict);
    } else {
        unsigned long r0 = rec_count();
        size_t v = gc_verify(m->heap);
        m->verifies++;
        if (v != 0 || rec_count() != r0)
            MFAIL(m, "gc_verify = %zu (%lu reports)", v, rec_count() - r0);
    }
}

static void model_run(model_t *m, size_t steps)
{
    for (m->step = 0; m->step < steps && !m->failed; m->step++) {
        model_step(m);
        if (m->n >= m->cap) break;
    }
    if (!m->failed) {
        gc_collect(m->t);
        model_check(m, m->strict);
    }
}

static size_t model_finalizable_count(const model_t *m)
{
    size_t c = 0;
    for (size_t i = 0; i < m->n; i++) c += m->finalizable[i];
    return c;
}

/* After gc_heap_destroy: every finalizable node finalized exactly once. */
static void model_check_destroyed(model_t *m)
{
    for (size_t i = 0; i < m->n && !m->failed; i++) {
        unsigned f = atomic_load(&g_fin_counts[m->owner][i]);
        if (f != m->finalizable[i])
            MFAIL(m, "after gc_heap_destroy node %zu (%s, %s) finalized %u times", i,
                  m->finalizable[i] ? "finalizable" : "no finalizer",
                  m->reach[i] ? "reachable" : "unreachable", f);
    }
}

/* ------------------------------------------------------------------------ */
/* One mutator                                                               */

static void single_model(int compaction, size_t initial_heap, const char *name)
{
    unsigned long r0 = rec_count();
    atomic_store(&g_fin_runs, 0);
    const size_t steps = scaled(60000, 10000);
    gc_heap_t *h = heap_new(initial_heap, 0, compaction);
    gc_thread_t *t = gc_thread_attach(h);
    model_t *m = malloc(sizeof *m);
    EXPECT_NONNULL(m);
    if (!model_init(m, 0, 1, h, steps + 16, test_rng(name, (uint64_t)compaction)))
        T_FAIL("out of memory setting up the model");
    model_attach(m, t);
    model_run(m, steps);
    gc_stats_t s = stats_of(h);
    print_message("  %zu steps, %zu nodes (%zu finalizable), %lu gc_collect, %lu checks, "
                  "%lu verifies, %ju collections in all, %lu finalized\n", m->step, m->n,
                  model_finalizable_count(m), m->collects, m->checks, m->verifies,
                  (uintmax_t)s.collections, atomic_load(&g_fin_runs));
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(s.objects_finalized, atomic_load(&g_fin_runs));
    EXPECT_VERIFY(h);
    gc_root_remove_callback(h, model_cb, m);
    model_release_stack(m);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    model_check_destroyed(m);
    EXPECT_NO_ASYNC_FAILURES();
    model_free(m);
    free(m);
    EXPECT_NO_REPORTS(r0);
}

static void test_gc_model_single_auto(void **state)
{
    (void)state;
    TEST_START();
    single_model(GC_COMPACT_AUTO, 256 * KiB, __func__);
}

static void test_gc_model_single_always(void **state)
{
    (void)state;
    TEST_START();
    single_model(GC_COMPACT_ALWAYS, 256 * KiB, __func__);
}

static void test_gc_model_single_never(void **state)
{
    (void)state;
    TEST_START();
    single_model(GC_COMPACT_NEVER, 0, __func__);
}

/* ------------------------------------------------------------------------ */
/* Four mutators, each with its own model, one heap                          */

enum { NTHREADS = 4 };

typedef struct worker {
    model_t *m;
    size_t steps;
} worker_t;

static void *model_thread(void *arg)
{
    worker_t *w = arg;
    gc_thread_t *t = gc_thread_attach(w->m->heap);
    if (!t) {
        AFAIL("gc_thread_attach returned NULL on worker %d", w->m->owner);
        return NULL;
    }
    model_attach(w->m, t);
    model_run(w->m, w->steps);
    model_release_stack(w->m);
    gc_thread_detach(t);
    return NULL;
}

static void test_gc_model_threads(void **state)
{
    (void)state;
    TEST_START();
    for (int variant = 0; variant < 2; variant++) {
        int compaction = variant == 0 ? GC_COMPACT_AUTO : GC_COMPACT_ALWAYS;
        print_message("  compaction %s\n", variant == 0 ? "auto" : "always");
        unsigned long r0 = rec_count();
        atomic_store(&g_fin_runs, 0);
        const size_t steps = scaled(20000, 3000);
        gc_heap_t *h = heap_new(512 * KiB, 0, compaction);
        gc_thread_t *main_t = gc_thread_attach(h);
        model_t *ms = calloc(NTHREADS, sizeof *ms);
        worker_t wk[NTHREADS];
        pthread_t th[NTHREADS];
        EXPECT_NONNULL(ms);
        for (int i = 0; i < NTHREADS; i++) {
            if (!model_init(&ms[i], i, 0, h, steps + 16, test_rng(__func__, (uint64_t)(i + 10 * variant))))
                T_FAIL("out of memory setting up model %d", i);
            wk[i].m = &ms[i];
            wk[i].steps = steps;
        }
        /* The main thread stays attached but blocked while the workers run. */
        gc_enter_blocking(main_t);
        for (int i = 0; i < NTHREADS; i++)
            EXPECT_EQ(pthread_create(&th[i], NULL, model_thread, &wk[i]), 0);
        for (int i = 0; i < NTHREADS; i++) EXPECT_EQ(pthread_join(th[i], NULL), 0);
        gc_leave_blocking(main_t);
        EXPECT_NO_ASYNC_FAILURES();

        /* Only the main thread now: every model is exact after two collections
         * (the first also runs finalizers workers left pending, if any). */
        gc_collect(main_t);
        gc_collect(main_t);
        unsigned long collects = 0, checks = 0;
        size_t nodes = 0;
        for (int i = 0; i < NTHREADS; i++) {
            model_check(&ms[i], 1);
            collects += ms[i].collects;
            checks += ms[i].checks;
            nodes += ms[i].n;
        }
        EXPECT_NO_ASYNC_FAILURES();
        gc_stats_t s = stats_of(h);
        print_message("  %d threads x %zu steps, %zu nodes, %lu gc_collect + %lu checks by "
                      "workers, %ju collections in all, %lu finalized\n", NTHREADS, steps, nodes,
                      collects, checks, (uintmax_t)s.collections, atomic_load(&g_fin_runs));
        EXPECT_EQ(s.objects_finalized, atomic_load(&g_fin_runs));
        EXPECT_VERIFY(h);
        for (int i = 0; i < NTHREADS; i++) gc_root_remove_callback(h, model_cb, &ms[i]);
        gc_thread_detach(main_t);
        gc_heap_destroy(h);
        for (int i = 0; i < NTHREADS; i++) model_check_destroyed(&ms[i]);
        EXPECT_NO_ASYNC_FAILURES();
        for (int i = 0; i < NTHREADS; i++) model_free(&ms[i]);
        free(ms);
        EXPECT_NO_REPORTS(r0);
    }
}

int main(void)
{
    mt_init("test_gc_model");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_model_single_auto),
        T(test_gc_model_single_always),
        T(test_gc_model_single_never),
        T(test_gc_model_threads),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
