/* test_gc_review_s21_ephemeron_model.c — review session 21: a seeded
 * model of weak references, ephemerons and finalizers (some of which
 * resurrect their object) under every compaction mode, generational or
 * not. Random mutations (objects, links, roots, weak references and
 * ephemerons made and dropped, targets read back through gc_weak_get and
 * gc_ephemeron_value and rooted again), then gc_collect; after each
 * collection the heap (walked) holds exactly the objects the model keeps,
 * with the model's links, and every weak target, ephemeron key and value
 * is set or cleared exactly as the model says (docs/gc.md: Weak
 * references, Ephemerons, Finalizers): a value reachable only through an
 * ephemeron whose key died is freed, weak references and ephemeron keys
 * are cleared before the finalizers run, and each unreachable finalizable
 * object is finalized once. Only gc_collect collects (a budget the test
 * never spends: checked), so the model knows every collection. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7332315f6570686d)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <stdbool.h>

#include "mulch_test.h"

#define MAXN  2500 /* model objects per run */
#define NR    8    /* root slots */
#define NW    24   /* rooted weak references */
#define NE    24   /* rooted ephemerons */
#define NREV  MAXN /* slots the resurrecting finalizers fill */

typedef struct mnode {
    bool alloc, fin, resurrect, finalized;
    int slot[NSLOTS];
} mnode_t;

static struct {
    mnode_t node[MAXN];
    int count;
    void *addr[MAXN];
    void *roots[NR];
    int mroot[NR];
    void *weaks[NW];
    int mweak[NW]; /* target id, -1 cleared or NULL; weaks[w] NULL: none */
    void *ephs[NE];
    int mkey[NE], mval[NE];
    void *revived[NREV]; /* filled by the finalizers */
    int nrevived;        /* real count */
    bool mrevived[MAXN]; /* the model's */
    int pre_weak[NW], pre_key[NE]; /* targets before the collection */
    unsigned fin_runs[MAXN];
    bool live[MAXN];
} g;

static void fin_model(void *obj);
static const gc_type_t T_M = { "s21.model", trace_tobj, NULL };
static const gc_type_t T_MF = { "s21.model_fin", trace_tobj, fin_model };

/* Weak references and ephemeron keys naming the object are cleared
 * before its finalizer runs; a resurrecting one roots its object. */
static void fin_model(void *obj)
{
    tobj_t *o = obj;
    uint64_t id = o->id;
    if (id >= MAXN) {
        AFAIL("finalizer got a bad id %" PRIu64, id);
        return;
    }
    g.fin_runs[id]++;
    for (int w = 0; w < NW; w++)
        if (g.weaks[w] && g.pre_weak[w] == (int)id && gc_weak_get(g.weaks[w]) != NULL)
            AFAIL("weak reference %d to object %" PRIu64 " still set in its finalizer", w, id);
    for (int e = 0; e < NE; e++)
        if (g.ephs[e] && g.pre_key[e] == (int)id
            && (gc_ephemeron_key(g.ephs[e]) != NULL || gc_ephemeron_value(g.ephs[e]) != NULL))
            AFAIL("ephemeron %d keyed by object %" PRIu64 " still set in its finalizer", e, id);
    if (g.node[id].resurrect) {
        if (g.nrevived >= NREV) AFAIL("revived table full");
        else g.revived[g.nrevived++] = obj;
    }
}

/* ---- the model ------------------------------------------------------------ */

static void mark(bool *set, int id)
{
    int stack[MAXN * NSLOTS + 1], depth = 0;
    if (id < 0 || set[id]) return;
    set[id] = true;
    stack[depth++] = id;
    while (depth) {
        mnode_t *n = &g.node[stack[--depth]];
        for (int k = 0; k < NSLOTS; k++) {
            int c = n->slot[k];
            if (c >= 0 && !set[c]) {
                set[c] = true;
                stack[depth++] = c;
            }
        }
    }
}

/* What is reachable now: roots, revived objects, then ephemeron values
 * whose keys are reached, to a fixpoint. */
static void model_reach(bool *set)
{
    memset(set, 0, MAXN * sizeof *set);
    for (int r = 0; r < NR; r++) mark(set, g.mroot[r]);
    for (int i = 0; i < g.count; i++)
        if (g.mrevived[i]) mark(set, i);
    bool changed;
    do {
        changed = false;
        for (int e = 0; e < NE; e++)
            if (g.ephs[e] && g.mkey[e] >= 0 && set[g.mkey[e]] && g.mval[e] >= 0 && !set[g.mval[e]]) {
                mark(set, g.mval[e]);
                changed = true;
            }
    } while (changed);
}

/* A collection in the model; `pending` gets the objects to finalize. */
static void model_collect(bool *pending)
{
    static bool reach[MAXN], kept[MAXN];
    model_reach(reach);
    for (int w = 0; w < NW; w++)
        if (g.weaks[w] && g.mweak[w] >= 0 && !reach[g.mweak[w]]) g.mweak[w] = -1;
    for (int e = 0; e < NE; e++)
        if (g.ephs[e] && g.mkey[e] >= 0 && !reach[g.mkey[e]]) g.mkey[e] = g.mval[e] = -1;
    memcpy(kept, reach, sizeof kept);
    for (int i = 0; i < g.count; i++) {
        mnode_t *n = &g.node[i];
        pending[i] = n->alloc && n->fin && !n->finalized && !reach[i];
        if (pending[i]) mark(kept, i);
    }
    for (int i = 0; i < g.count; i++) {
        if (pending[i]) {
            g.node[i].finalized = true;
            if (g.node[i].resurrect) g.mrevived[i] = true;
        }
        if (!kept[i]) g.node[i].alloc = false;
    }
}

/* ---- the real heap --------------------------------------------------------- */

static int id_of(const void *p)
{
    if (p == NULL) return -1;
    uint64_t id = ((const tobj_t *)p)->id;
    if (id >= (uint64_t)g.count || g.addr[id] != p) T_FAIL("pointer %p names no object the walk found", p);
    return (int)id;
}

typedef struct census {
    size_t objects, twice;
} census_t;

static void census_add(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)size;
    census_t *c = ctx;
    if (type != &T_M && type != &T_MF) return;
    uint64_t id = ((tobj_t *)obj)->id;
    if (id >= MAXN) return;
    if (g.live[id]) c->twice++;
    g.live[id] = true;
    g.addr[id] = obj;
    c->objects++;
}

/* The heap against the model, after a collection. */
static void check(gc_heap_t *h, int round)
{
    memset(g.live, 0, sizeof g.live);
    census_t c = { 0, 0 };
    gc_heap_walk(h, census_add, &c);
    if (c.twice) T_FAIL("round %d: an id was walked twice", round);
    for (int i = 0; i < g.count; i++)
        if (g.live[i] != g.node[i].alloc)
            T_FAIL("round %d: object %d is %s, the model says %s", round, i, g.live[i] ? "allocated" : "freed",
                   g.node[i].alloc ? "kept" : "freed");
    for (int i = 0; i < g.count; i++) {
        if (!g.node[i].alloc) continue;
        EXPECT_OBJ(g.addr[i], i);
        for (int k = 0; k < NSLOTS; k++) {
            void *s = slot_of(g.addr[i], (size_t)k);
            int want = g.node[i].slot[k];
            int got = id_of(s);
            if (got != want) T_FAIL("round %d: object %d slot %d holds %d, the model %d", round, i, k, got, want);
        }
    }
    for (int r = 0; r < NR; r++)
        if (id_of(g.roots[r]) != g.mroot[r]) T_FAIL("round %d: root %d differs from the model", round, r);
    for (int w = 0; w < NW; w++) {
        if (!g.weaks[w]) continue;
        int got = id_of(gc_weak_get(g.weaks[w]));
        if (got != g.mweak[w]) T_FAIL("round %d: weak %d reads %d, the model %d", round, w, got, g.mweak[w]);
    }
    for (int e = 0; e < NE; e++) {
        if (!g.ephs[e]) continue;
        int key = id_of(gc_ephemeron_key(g.ephs[e])), val = id_of(gc_ephemeron_value(g.ephs[e]));
        if (key != g.mkey[e] || val != g.mval[e])
            T_FAIL("round %d: ephemeron %d reads (%d, %d), the model (%d, %d)", round, e, key, val, g.mkey[e],
                   g.mval[e]);
    }
    int revived = 0;
    for (int i = 0; i < g.nrevived; i++)
        if (g.revived[i]) {
            int id = id_of(g.revived[i]);
            if (!g.mrevived[id]) T_FAIL("round %d: object %d revived, not in the model", round, id);
            revived++;
        }
    int mrevived = 0;
    for (int i = 0; i < g.count; i++) mrevived += g.mrevived[i];
    if (revived != mrevived) T_FAIL("round %d: %d objects revived, the model %d", round, revived, mrevived);
}

/* A random object the model reaches now, -1 when none. */
static int pick_live(rng_t *rng)
{
    static bool reach[MAXN];
    static int list[MAXN];
    model_reach(reach);
    int n = 0;
    for (int i = 0; i < g.count; i++)
        if (reach[i]) list[n++] = i;
    return n ? list[rng_below(rng, (uint64_t)n)] : -1;
}

static void link_slot(gc_thread_t *t, int a, int k, int b)
{
    set_slot(t, g.addr[a], (size_t)k, b >= 0 ? g.addr[b] : NULL);
    g.node[a].slot[k] = b;
}

static int new_object(gc_thread_t *t, rng_t *rng)
{
    if (g.count >= MAXN) return -1;
    int id = g.count++;
    unsigned kind = (unsigned)rng_below(rng, 4);
    mnode_t *n = &g.node[id];
    memset(n, 0, sizeof *n);
    for (int k = 0; k < NSLOTS; k++) n->slot[k] = -1;
    n->alloc = true;
    n->fin = kind >= 2;
    n->resurrect = kind == 3;
    g.addr[id] = mk(t, n->fin ? &T_MF : &T_M, (uint64_t)id, rng_below(rng, 3));
    return id;
}

static void mutate(gc_thread_t *t, rng_t *rng)
{
    int a, b;
    unsigned r = (unsigned)rng_below(rng, NR), w = (unsigned)rng_below(rng, NW), e = (unsigned)rng_below(rng, NE);
    switch (rng_below(rng, 11)) {
    case 0:
    case 1: /* a new object, rooted, linked to live ones */
        a = new_object(t, rng);
        if (a < 0) return;
        for (int k = 0; k < NSLOTS; k++)
            if (rng_below(rng, 2)) link_slot(t, a, k, pick_live(rng));
        g.roots[r] = g.addr[a];
        g.mroot[r] = a;
        return;
    case 2: /* a link between live objects, or cut */
        a = pick_live(rng);
        b = rng_below(rng, 4) ? pick_live(rng) : -1;
        if (a >= 0) link_slot(t, a, (int)rng_below(rng, NSLOTS), b);
        return;
    case 3: /* a root moved or cleared */
        b = rng_below(rng, 3) ? pick_live(rng) : -1;
        g.roots[r] = b >= 0 ? g.addr[b] : NULL;
        g.mroot[r] = b;
        return;
    case 4: /* a weak reference */
        a = pick_live(rng);
        g.weaks[w] = gc_weak_new(t, a >= 0 ? g.addr[a] : NULL);
        EXPECT_NONNULL(g.weaks[w]);
        g.mweak[w] = a;
        return;
    case 5: /* an ephemeron: a live key, a live or a new value, or NULL */
        a = pick_live(rng);
        if (a < 0) return;
        b = rng_below(rng, 3) == 0 ? -1 : rng_below(rng, 2) ? pick_live(rng) : new_object(t, rng);
        if (b >= 0 && rng_below(rng, 2)) link_slot(t, b, 0, a); /* the value refers to its key */
        if (b >= 0 && rng_below(rng, 3) == 0) { /* a chain: the value holds another ephemeron's key */
            unsigned e2 = (unsigned)rng_below(rng, NE);
            if (g.ephs[e2] && g.mkey[e2] >= 0) link_slot(t, b, 1, g.mkey[e2]);
        }
        g.ephs[e] = gc_ephemeron_new(t, g.addr[a], b >= 0 ? g.addr[b] : NULL);
        EXPECT_NONNULL(g.ephs[e]);
        g.mkey[e] = a;
        g.mval[e] = b;
        return;
    case 6: /* a weak reference dropped */
        g.weaks[w] = NULL;
        return;
    case 7: /* an ephemeron dropped */
        g.ephs[e] = NULL;
        return;
    case 8: /* a weak target read back and rooted (it may be garbage not yet collected) */
        if (g.weaks[w]) {
            void *p = gc_weak_get(g.weaks[w]);
            if (id_of(p) != g.mweak[w]) T_FAIL("weak %u reads %d, the model %d", w, id_of(p), g.mweak[w]);
            g.roots[r] = p;
            g.mroot[r] = g.mweak[w];
        }
        return;
    case 9: /* an ephemeron's value read back and rooted */
        if (g.ephs[e]) {
            void *p = gc_ephemeron_value(g.ephs[e]);
            if (id_of(p) != g.mval[e]) T_FAIL("ephemeron %u value %d, the model %d", e, id_of(p), g.mval[e]);
            g.roots[r] = p;
            g.mroot[r] = g.mval[e];
        }
        return;
    default: /* a revived object let go */
        for (int i = 0; i < g.nrevived; i++)
            if (g.revived[i] && rng_below(rng, 2)) {
                g.mrevived[id_of(g.revived[i])] = false;
                g.revived[i] = NULL;
                return;
            }
        return;
    }
}

static void run_model(int compaction, int generational, uint64_t stream)
{
    memset(&g, 0, sizeof g);
    for (int r = 0; r < NR; r++) g.mroot[r] = -1;
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = compaction;
    o.generational = generational;
    o.initial_heap = (size_t)1 << 30; /* only gc_collect collects */
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    gc_root_add_range(h, g.roots, NR);
    gc_root_add_range(h, g.weaks, NW);
    gc_root_add_range(h, g.ephs, NE);
    gc_root_add_range(h, g.revived, NREV);
    rng_t rng = test_rng("ephemeron_model", stream);
    int rounds = (int)scaled(60, 20);
    static bool pending[MAXN];
    for (int round = 0; round < rounds && g.count < MAXN - 64; round++) {
        int steps = 1 + (int)rng_below(&rng, 40);
        for (int s = 0; s < steps; s++) mutate(t, &rng);
        for (int w = 0; w < NW; w++) g.pre_weak[w] = g.weaks[w] ? g.mweak[w] : -1;
        for (int e = 0; e < NE; e++) g.pre_key[e] = g.ephs[e] ? g.mkey[e] : -1;
        uint64_t before = stats_of(h).collections;
        unsigned runs_before[MAXN];
        memcpy(runs_before, g.fin_runs, sizeof runs_before);
        gc_collect(t);
        if (stats_of(h).collections != before + 1)
            T_FAIL("round %d: %" PRIu64 " collections in one gc_collect: the model assumes 1", round,
                   stats_of(h).collections - before);
        model_collect(pending);
        EXPECT_NO_ASYNC_FAILURES();
        for (int i = 0; i < g.count; i++)
            if (g.fin_runs[i] - runs_before[i] != (pending[i] ? 1u : 0u))
                T_FAIL("round %d: object %d finalized %u time(s) by this collection, the model says %d", round, i,
                       g.fin_runs[i] - runs_before[i], pending[i]);
        check(h, round);
        EXPECT_VERIFY(h);
    }
    gc_root_remove(h, g.roots);
    gc_root_remove(h, g.weaks);
    gc_root_remove(h, g.ephs);
    gc_root_remove(h, g.revived);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_ephemeron_weak_finalizer_model(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (unsigned c = 0; c < N_MODES; c++)
        for (int gen = 0; gen <= 1; gen++) {
            print_message("  compaction %s, generational %d\n", k_mode_names[c], gen);
            run_model(k_modes[c], gen, c * 2 + (unsigned)gen);
        }
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_review_s21_ephemeron_model");
    mt_env_ignore("MULCH_GC_COMPACT");
    mt_env_ignore("MULCH_GC_GENERATIONAL");
    mt_env_ignore_policy();
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_ephemeron_weak_finalizer_model),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
