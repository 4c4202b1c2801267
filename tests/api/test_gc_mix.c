/* test_gc_mix.c — seeded model test of the collector's features together
 * (<mulch/gc.h>, <mulch/rc.h>; docs: shared/API.md "GC" and "RC").
 *
 * One mutator mutates a random graph of nodes while a plain-C model tracks
 * it: roots (a registered range), weak references (kept in a root range),
 * pins (held by raw address only), handles, gc_own_rc pairs, identity
 * hashes, finalizers that resurrect their object or allocate, weak_get
 * resurrection of a dead-but-uncollected target, garbage, large objects,
 * external memory. Every configuration mixes compaction ALWAYS/AUTO, one or
 * two markers, generational mode, conservative scanning and max_heap.
 * Checked after every GC point: the reachable graph is intact (ids, fields)
 * and pinned nodes did not move; weak targets are the live node or NULL,
 * never a stale address; no finalizer runs twice or for a reachable node;
 * no rc object owned by a reachable node is released. After each gc_collect
 * (precise configurations): every unreachable finalizable node was
 * finalized, every weak to an unreachable node is cleared, and gc_verify
 * finds nothing.
 *
 * Deterministic: MULCH_TEST_SEED or a fixed default; the seed is printed at
 * the start and in every failure. Debugging: MIX_CONFIG=<name> runs one
 * configuration, MIX_TRACE=1 prints the operations, MIX_WATCH=<id> where
 * the walk finds a node, MIX_VERBOSE=1 a summary per configuration. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d69786d69780001)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include "mulch_test.h"

#define K 3
#define MAXN 12000
#define NROOTS 48
#define NRES 32
#define NWEAK 24
#define NHANDLE 8
#define NOWN 32
#define NONE (-1)

typedef struct node {
    void *f[K];
    uint64_t id;
    uint64_t check;
} node_t;

static uint64_t node_check(uint64_t id) { return mix64(id ^ UINT64_C(0x5eedfeed)); }

static void node_trace(void *obj, gc_tracer_t *tracer) { gc_trace_range(tracer, ((node_t *)obj)->f, K); }
static void node_finalize(void *obj);

static const gc_type_t T_PLAIN = { "mix.plain", node_trace, NULL };
static const gc_type_t T_FIN = { "mix.fin", node_trace, node_finalize };

/* ---- the model ------------------------------------------------------------ */

typedef struct config {
    const char *name;
    int compaction, markers, generational, conservative;
    size_t max_heap;
} config_t;

static struct {
    const config_t *cfg;
    gc_heap_t *heap;
    gc_thread_t *t;
    rng_t rng;
    size_t step;
    int n;                          /* ids handed out */
    int field[MAXN][K];
    uint8_t fin_type[MAXN];
    uint8_t fin_runs[MAXN];
    uint8_t resurrects[MAXN];       /* its finalizer stores it into res[] */
    uint8_t reach[MAXN];
    uint8_t revived[MAXN];          /* reachable from a resurrected object: its weak
                                       references may have been cleared */
    uint8_t hashed[MAXN];
    uintptr_t hash[MAXN];
    unsigned pins[MAXN];
    void *pin_addr[MAXN];
    node_t *addr[MAXN];             /* after the last walk; NULL: not reached */
    int root_id[NROOTS];
    int res_id[NRES];
    int weak_target[NWEAK];         /* NONE: no weak, or cleared */
    int handle_id[NHANDLE];
    gc_handle_t *handles[NHANDLE];
    int own_owner[NOWN];            /* owner id of rc object k; NONE: free */
    int own_released[NOWN];
    long external;
    int list[MAXN], count;          /* reachable ids (model) */
    unsigned long nulls;            /* allocations refused (max_heap) */
    int destroying;                 /* gc_heap_destroy finalizes everything */
    int resurrected;                /* a finalizer resurrected during this op: what
                                       died with its object may be reachable again */
} M;

static void *roots[NROOTS], *res[NRES], *weaks[NWEAK];

#define MFAIL(...) \
    do { \
        print_error("step %zu, config %s: ", M.step, M.cfg->name); \
        T_FAIL(__VA_ARGS__); \
    } while (0)

/* Everything reachable from id (in the model) came back with it. */
static void model_revive(int id) {
    static int stack[MAXN];
    int sp = 0;
    if (M.revived[id] == 2) return;
    M.revived[id] = 2;
    stack[sp++] = id;
    while (sp) {
        int x = stack[--sp];
        for (int k = 0; k < K; k++) {
            int y = M.field[x][k];
            if (y != NONE && M.revived[y] != 2) {
                M.revived[y] = 2;
                stack[sp++] = y;
            }
        }
    }
    /* (2: visited by this walk; the flag is all that matters later) */
}

static void model_reach(void) {
    static int stack[MAXN];
    int sp = 0;
    memset(M.reach, 0, (size_t)M.n);
    M.count = 0;
#define PUSH(id) \
    do { \
        int i_ = (id); \
        if (i_ != NONE && !M.reach[i_]) { \
            M.reach[i_] = 1; \
            stack[sp++] = i_; \
        } \
    } while (0)
    for (int i = 0; i < NROOTS; i++) PUSH(M.root_id[i]);
    for (int i = 0; i < NRES; i++) PUSH(M.res_id[i]);
    for (int i = 0; i < NHANDLE; i++) PUSH(M.handle_id[i]);
    for (int i = 0; i < M.n; i++)
        if (M.pins[i]) PUSH(i);
    while (sp) {
        int id = stack[--sp];
        M.list[M.count++] = id;
        for (int k = 0; k < K; k++) PUSH(M.field[id][k]);
    }
#undef PUSH
}

/* Finalizers run at GC points, with the model as it was before the
 * operation that made them run. */
static void node_finalize(void *obj) {
    node_t *n = obj;
    if (n->id >= (uint64_t)M.n || n->check != node_check(n->id)) {
        AFAIL("finalizer got a damaged node %p (id %" PRIu64 ")", obj, n->id);
        return;
    }
    int id = (int)n->id;
    if (getenv("MIX_TRACE")) print_message("  finalize %d (resurrects %d)\n", id, M.resurrects[id]);
    if (M.fin_runs[id]++) AFAIL("node %d finalized twice", id);
    if (M.destroying) return;
    model_reach();
    if (M.reach[id] && !M.resurrected) {
        AFAIL("node %d finalized while reachable (step %zu, config %s)", id, M.step, M.cfg->name);
        if (getenv("MIX_TRACE")) {
            for (int i = 0; i < NROOTS; i++) if (M.root_id[i] == id) print_message("  root %d\n", i);
            for (int i = 0; i < NRES; i++) if (M.res_id[i] == id) print_message("  res %d\n", i);
            for (int i = 0; i < NHANDLE; i++) if (M.handle_id[i] == id) print_message("  handle %d\n", i);
            if (M.pins[id]) print_message("  pinned %u\n", M.pins[id]);
            for (int i = 0; i < M.n; i++)
                for (int k = 0; k < K; k++)
                    if (M.field[i][k] == id) print_message("  field %d of %d (reach %d)\n", k, i, M.reach[i]);
        }
    }
    if (!M.resurrects[id]) return;
    for (int i = 0; i < NRES; i++) {
        if (M.res_id[i] != NONE) continue;
        M.resurrected = 1;
        for (int j = 0; j < M.n; j++)
            if (M.revived[j] == 2) M.revived[j] = 1;
        model_revive(id);
        if (M.resurrects[id] == 2 && M.n < MAXN) {
            /* allocate in the finalizer; its object is kept meanwhile */
            node_t *fresh = gc_alloc(M.t, &T_PLAIN, sizeof(node_t));
            if (fresh == NULL) return;
            int nid = M.n++;
            for (int k = 0; k < K; k++) M.field[nid][k] = NONE;
            fresh->id = (uint64_t)nid;
            fresh->check = node_check((uint64_t)nid);
            gc_write(M.t, fresh, &fresh->f[0], obj);
            M.field[nid][0] = id;
            res[i] = fresh;
            M.res_id[i] = nid;
        } else {
            res[i] = obj;
            M.res_id[i] = id;
        }
        return;
    }
}

/* ---- the heap walk ---------------------------------------------------------- */

static const char *g_where = "";
static int g_where_index;

static void walk_one(void *p, int want, int **sp) {
    if (want == NONE) {
        if (p != NULL) MFAIL("slot holds %p, the model says NULL", p);
        return;
    }
    node_t *n = p;
    if (n == NULL || n->id != (uint64_t)want || n->check != node_check((uint64_t)want))
        MFAIL("node %d: found %p (id %" PRIu64 ") in %s %d", want, p, n ? n->id : 0, g_where, g_where_index);
    if (M.addr[want] == NULL) {
        static int watch = -2;
        if (watch == -2) watch = getenv("MIX_WATCH") ? atoi(getenv("MIX_WATCH")) : -1;
        if (want == watch) print_message("  watch %d at %p via %s %d\n", want, p, g_where, g_where_index);
        M.addr[want] = n;
        *(*sp)++ = want;
    } else if (M.addr[want] != n) {
        MFAIL("node %d at two addresses %p and %p", want, (void *)M.addr[want], p);
    }
}

/* Walks the heap from every root the model knows, checking it against the
 * model and recording each node's address. */
static void walk(void) {
    static int stack[MAXN];
    int *sp = stack;
    memset(M.addr, 0, (size_t)M.n * sizeof M.addr[0]);
    model_reach();
    g_where = "root";
    for (int i = 0; i < NROOTS; i++) g_where_index = i, walk_one(roots[i], M.root_id[i], &sp);
    g_where = "res";
    for (int i = 0; i < NRES; i++) g_where_index = i, walk_one(res[i], M.res_id[i], &sp);
    g_where = "handle";
    for (int i = 0; i < NHANDLE; i++)
        g_where_index = i, walk_one(M.handles[i] ? gc_handle_get(M.handles[i]) : NULL, M.handle_id[i], &sp);
    g_where = "pin";
    for (int i = 0; i < M.n; i++)
        if (M.pins[i]) g_where_index = i, walk_one(M.pin_addr[i], i, &sp);
    g_where = "field of node";
    while (sp > stack) {
        int id = *--sp;
        for (int k = 0; k < K; k++) g_where_index = id, walk_one(M.addr[id]->f[k], M.field[id][k], &sp);
    }
    for (int i = 0; i < M.count; i++)
        if (M.addr[M.list[i]] == NULL) MFAIL("node %d reachable in the model, not found", M.list[i]);
    for (int i = 0; i < M.n; i++) {
        if (M.hashed[i] && M.addr[i] && gc_identity_hash(M.addr[i]) != M.hash[i])
            MFAIL("node %d's identity hash changed", i);
    }
    /* weak targets: the live node, or (dead, not collected yet) the intact
     * old node, or NULL for good */
    for (int w = 0; w < NWEAK; w++) {
        if (weaks[w] == NULL) continue;
        node_t *p = gc_weak_get(weaks[w]);
        int want = M.weak_target[w];
        if (p == NULL) {
            /* (a target that died may have been resurrected since) */
            if (want != NONE && M.reach[want] && !M.revived[want])
                MFAIL("weak %d cleared, its target %d is reachable", w, want);
            M.weak_target[w] = NONE;
        } else if (want == NONE) {
            MFAIL("weak %d was cleared and now holds %p", w, (void *)p);
        } else if (M.reach[want] && p != M.addr[want]) {
            MFAIL("weak %d holds %p, target %d is at %p", w, (void *)p, want, (void *)M.addr[want]);
        } else if (p->id != (uint64_t)want || p->check != node_check((uint64_t)want)) {
            MFAIL("weak %d holds a stale %p (id there %" PRIu64 ", target %d)", w, (void *)p, p->id, want);
        }
    }
    for (int k = 0; k < NOWN; k++)
        if (M.own_owner[k] != NONE && M.own_released[k] && M.reach[M.own_owner[k]])
            MFAIL("rc object %d released while its owner %d is reachable", k, M.own_owner[k]);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ---- operations -------------------------------------------------------------- */

static int random_reachable(void) { return M.count ? M.list[rng_below(&M.rng, (uint64_t)M.count)] : NONE; }

static void rc_destroy(void *obj) { M.own_released[*(int *)obj] = 1; }

static node_t *new_node(int fin, size_t extra) {
    if (M.n >= MAXN) return NULL;
    node_t *n = gc_alloc(M.t, fin ? &T_FIN : &T_PLAIN, sizeof(node_t) + extra);
    if (n == NULL) {
        M.nulls++;
        return NULL;
    }
    int id = M.n++;
    for (int k = 0; k < K; k++) M.field[id][k] = NONE;
    M.fin_type[id] = (uint8_t)fin;
    M.resurrects[id] = fin ? (uint8_t)rng_below(&M.rng, 4) % 3 : 0; /* 0, 1 or 2 */
    n->id = (uint64_t)id;
    n->check = node_check((uint64_t)id);
    if (getenv("MIX_TRACE")) print_message("  new %d fin %d extra %zu at %p\n", id, fin, extra, (void *)n);
    return n;
}

static size_t random_extra(void) {
    uint64_t r = rng_below(&M.rng, 100);
    if (r < 70) return 0;
    if (r < 95) return 8 * rng_below(&M.rng, 64);
    if (r < 99) return 4096 + 8 * rng_below(&M.rng, 4096);
    return ((size_t)300 << 10) + 8 * rng_below(&M.rng, 1024); /* a large object */
}

/* Precise configurations: after gc_collect the graph's dead part is gone. */
static void check_after_collect(const uint8_t *reach_before) {
    if (M.cfg->conservative) return;
    for (int i = 0; i < M.n; i++) {
        if (reach_before[i] || !M.fin_type[i]) continue;
        if (M.fin_runs[i] != 1) MFAIL("node %d unreachable at gc_collect, finalized %u times", i, M.fin_runs[i]);
    }
    for (int w = 0; w < NWEAK; w++)
        if (weaks[w] && M.weak_target[w] != NONE && !reach_before[M.weak_target[w]] && gc_weak_get(weaks[w]))
            MFAIL("weak %d still holds its dead target %d after gc_collect", w, M.weak_target[w]);
    EXPECT_VERIFY(M.heap);
}

static void op(void) {
    uint64_t r = rng_below(&M.rng, 1000);
    int slot = (int)rng_below(&M.rng, NROOTS);
    if (getenv("MIX_TRACE")) print_message("step %zu: op %d slot %d (n %d)\n", M.step, (int)r, slot, M.n);
    M.resurrected = 0;
    if (r < 200) { /* allocate into a root, maybe link it */
        node_t *n = new_node(rng_below(&M.rng, 3) == 0, random_extra());
        if (n != NULL) { /* (NULL: it may still have collected) */
            roots[slot] = n;
            M.root_id[slot] = (int)n->id;
        }
    } else if (r < 420) { /* link */
        int a = random_reachable(), b = rng_below(&M.rng, 5) ? random_reachable() : NONE;
        if (a == NONE) return;
        int k = (int)rng_below(&M.rng, K);
        if (getenv("MIX_TRACE"))
            print_message("  link %d.f[%d] = %d (%p.f = %p)\n", a, k, b, (void *)M.addr[a], b == NONE ? NULL : (void *)M.addr[b]);
        gc_write(M.t, M.addr[a], &M.addr[a]->f[k], b == NONE ? NULL : M.addr[b]);
        M.field[a][k] = b;
        return; /* no GC point */
    } else if (r < 500) {
        roots[slot] = NULL;
        M.root_id[slot] = NONE;
        return;
    } else if (r < 540) {
        int a = random_reachable();
        roots[slot] = a == NONE ? NULL : M.addr[a];
        M.root_id[slot] = a;
        return;
    } else if (r < 600) { /* a weak reference */
        int w = (int)rng_below(&M.rng, NWEAK), a = random_reachable();
        if (a == NONE) return;
        void *weak = gc_weak_new(M.t, M.addr[a]);
        weaks[w] = weak;
        M.weak_target[w] = weak ? a : NONE;
    } else if (r < 620) {
        int w = (int)rng_below(&M.rng, NWEAK);
        weaks[w] = NULL;
        M.weak_target[w] = NONE;
        return;
    } else if (r < 660) { /* resurrect a dead target through its weak */
        int w = (int)rng_below(&M.rng, NWEAK);
        node_t *p = weaks[w] ? gc_weak_get(weaks[w]) : NULL;
        if (p == NULL) return;
        roots[slot] = p;
        M.root_id[slot] = (int)p->id;
        if (getenv("MIX_TRACE")) print_message("  weak %d resurrects %d into root %d\n", w, (int)p->id, slot);
        return;
    } else if (r < 690) { /* pin or unpin */
        int a = random_reachable();
        if (a != NONE && M.pins[a] < 3 && rng_below(&M.rng, 2)) {
            gc_pin(M.heap, M.addr[a]);
            M.pins[a]++;
            M.pin_addr[a] = M.addr[a];
        } else {
            for (int i = 0; i < M.n; i++) {
                int j = (int)((size_t)(i + slot * 131) % (size_t)M.n);
                if (!M.pins[j]) continue;
                gc_unpin(M.heap, M.pin_addr[j]);
                M.pins[j]--;
                break;
            }
        }
        return;
    } else if (r < 710) {
        int a = random_reachable();
        if (a == NONE) return;
        uintptr_t h = gc_identity_hash(M.addr[a]);
        if (M.hashed[a] && h != M.hash[a]) MFAIL("node %d's identity hash changed", a);
        M.hashed[a] = 1;
        M.hash[a] = h;
        return;
    } else if (r < 740) { /* handles */
        int h = (int)rng_below(&M.rng, NHANDLE);
        if (M.handles[h]) {
            rc_release(M.handles[h]);
            M.handles[h] = NULL;
            M.handle_id[h] = NONE;
        } else {
            int a = random_reachable();
            if (a == NONE) return;
            M.handles[h] = gc_handle_new(M.heap, M.addr[a]);
            M.handle_id[h] = M.handles[h] ? a : NONE;
        }
        return;
    } else if (r < 760) { /* gc_own_rc */
        int a = random_reachable(), k;
        for (k = 0; k < NOWN && M.own_owner[k] != NONE; k++) {
        }
        if (a == NONE || k == NOWN) return;
        int *rc = rc_alloc(sizeof(int), rc_destroy);
        if (rc == NULL) return;
        *rc = k;
        M.own_owner[k] = a;
        M.own_released[k] = 0;
        if (gc_own_rc(M.t, M.addr[a], rc) != 0) M.own_owner[k] = NONE;
        rc_release(rc);
    } else if (r < 900) { /* garbage, some of it finalizable */
        unsigned n = 1 + (unsigned)rng_below(&M.rng, 40);
        for (unsigned i = 0; i < n; i++)
            if (new_node(rng_below(&M.rng, 4) == 0, rng_below(&M.rng, 8) ? 0 : random_extra()) == NULL) break;
    } else if (r < 920) {
        long delta = (long)rng_below(&M.rng, 256 << 10) - (M.external > 0 ? (long)(128 << 10) : 0);
        gc_external_alloc(M.heap, delta);
        M.external += delta;
        return;
    } else if (r < 935) {
        gc_safepoint(M.t);
    } else if (r < 945 && M.cfg->conservative) {
        /* a node held only by this frame across a collection: kept, in place */
        int a = random_reachable();
        if (a == NONE) return;
        node_t *volatile held = M.addr[a];
        gc_collect(M.t);
        if (held->id != (uint64_t)a || held->check != node_check((uint64_t)a))
            MFAIL("node %d held by the stack was freed or moved from %p", a, (void *)held);
        walk();
        if (M.reach[a] && M.addr[a] != held)
            MFAIL("node %d held by the stack moved from %p to %p", a, (void *)held, (void *)M.addr[a]);
    } else if (r < 975) {
        model_reach();
        static uint8_t before[MAXN];
        memcpy(before, M.reach, (size_t)M.n);
        gc_collect(M.t);
        walk();
        check_after_collect(before);
    } else {
        EXPECT_VERIFY(M.heap);
    }
    walk();
}

static void run_config(const config_t *cfg, size_t steps) {
    memset(&M, 0, sizeof M);
    memset(roots, 0, sizeof roots);
    memset(res, 0, sizeof res);
    memset(weaks, 0, sizeof weaks);
    M.cfg = cfg;
    M.rng = test_rng(cfg->name, 0);
    for (int i = 0; i < NROOTS; i++) M.root_id[i] = NONE;
    for (int i = 0; i < NRES; i++) M.res_id[i] = NONE;
    for (int i = 0; i < NWEAK; i++) M.weak_target[i] = NONE;
    for (int i = 0; i < NHANDLE; i++) M.handle_id[i] = NONE;
    for (int i = 0; i < NOWN; i++) M.own_owner[i] = NONE;
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_heap = 256 << 10;
    o.max_heap = cfg->max_heap;
    o.compaction = cfg->compaction;
    o.markers = cfg->markers;
    o.generational = cfg->generational;
    o.conservative_stack = cfg->conservative;
    M.heap = gc_heap_create(&o);
    EXPECT_NONNULL(M.heap);
    M.t = gc_thread_attach(M.heap);
    gc_root_add_range(M.heap, roots, NROOTS);
    gc_root_add_range(M.heap, res, NRES);
    gc_root_add_range(M.heap, weaks, NWEAK);
    unsigned long reports = rec_count();
    for (M.step = 0; M.step < steps && M.n < MAXN - 64; M.step++) op();
    EXPECT_NO_REPORTS(reports);
    EXPECT_VERIFY(M.heap);
    if (getenv("MIX_VERBOSE")) {
        gc_stats_t st = stats_of(M.heap);
        int fin = 0;
        for (int i = 0; i < M.n; i++) fin += M.fin_runs[i];
        print_message("  %s: %zu steps, %d nodes, %" PRIu64 " collections, %" PRIu64 " bytes moved, %d finalized, %lu NULL\n",
                      cfg->name, M.step, M.n, st.collections, st.bytes_moved, fin, M.nulls);
    }
    for (int h = 0; h < NHANDLE; h++)
        if (M.handles[h]) rc_release(M.handles[h]);
    gc_root_remove(M.heap, roots);
    gc_root_remove(M.heap, res);
    gc_root_remove(M.heap, weaks);
    gc_external_alloc(M.heap, -M.external);
    gc_thread_detach(M.t);
    M.destroying = 1;
    gc_heap_destroy(M.heap);
    EXPECT_NO_ASYNC_FAILURES();
}

static const config_t configs[] = {
    { "always", GC_COMPACT_ALWAYS, 1, 0, 0, 0 },
    { "auto", GC_COMPACT_AUTO, 1, 0, 0, 0 },
    { "always_markers2", GC_COMPACT_ALWAYS, 2, 0, 0, 0 },
    { "generational", GC_COMPACT_AUTO, 1, 1, 0, 0 },
    { "generational_markers2", GC_COMPACT_AUTO, 2, 1, 0, 0 },
    { "always_conservative", GC_COMPACT_ALWAYS, 1, 0, 1, 0 },
    { "generational_conservative", GC_COMPACT_AUTO, 2, 1, 1, 0 },
    { "always_max_heap", GC_COMPACT_ALWAYS, 1, 0, 0, (size_t)3 << 19 },
    { "generational_max_heap", GC_COMPACT_AUTO, 2, 1, 0, (size_t)3 << 19 },
};

static void test_gc_mix_configs(void **state) {
    (void)state;
    TEST_START();
    size_t steps = scaled(3000, 800);
    const char *only = getenv("MIX_CONFIG");
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++)
        if (only == NULL || strcmp(only, configs[c].name) == 0) run_config(&configs[c], steps);
}

int main(void) {
    mt_init("test_gc_mix");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_mix_configs),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
