/* test_gc_review_s20_genmodel.c — review session 20: a seeded model test
 * of the generational mode together with compaction and pinning.
 *
 * One heap (generational, compaction AUTO or ALWAYS, a small initial heap
 * so that allocation triggers many minor collections, MULCH_GC_VERIFY=1 so
 * that each collection checks the heap before and after) and one mutator.
 * The program reaches objects only through its roots: root-stack slots,
 * global roots, rc handles (gc_handle_new), pins, and the values of
 * ephemerons whose keys are reachable. Every pointer store into an object
 * goes through gc_write (gc_write_init right after the object's
 * allocation). Objects: headerless ones of two types, finalizable ones
 * (with a header), medium ones (header) and, rarely, large ones.
 * After every operation the heap, walked from the roots, must have exactly
 * the model's shape (ids, payloads, every field); pinned objects stay
 * where they were pinned; handles, weak references and ephemerons read
 * their live targets' current addresses; identity hashes stay the same
 * across moves; a finalizer never runs for a reachable object nor twice;
 * once a gc_collect ran after an object died its weak references read
 * NULL; gc_verify returns 0 and nothing is reported. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x733230c7656e6d64)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mulch_test.h"

#define MAXO 6000
#define MSLOTS 4
#define N_STACK 12
#define N_GLOBAL 6
#define N_HANDLE 4
#define N_PIN 4
#define N_WEAK 8
#define N_EPH 6

typedef struct gobj {
    uint64_t id;
    uint32_t nslots, npay;
    void *slot[]; /* nslots references, then npay payload words */
} gobj_t;

static uint64_t *payload_of(gobj_t *o) { return (uint64_t *)(void *)&o->slot[o->nslots]; }
static uint64_t pay_word(uint64_t id, uint64_t i) { return mix64(id * 0x9e3779b97f4a7c15u + i + 1); }

static void gobj_trace(void *obj, gc_tracer_t *tracer)
{
    gobj_t *o = obj;
    gc_trace_range(tracer, o->slot, o->nslots);
}

typedef struct mobj {
    uint8_t exists, dead, fin;
    uint8_t nslots;
    uint32_t npay;
    int slot[MSLOTS];
    unsigned finalized;
    int hashed;
    uintptr_t hash;
    uint64_t died_full; /* g.full when it died */
} mobj_t;

static struct {
    mobj_t o[MAXO];
    int nobj;
    gc_heap_t *heap;
    gc_thread_t *t;
    void *stack[N_STACK];
    int stack_id[N_STACK];
    void *global[N_GLOBAL];
    int global_id[N_GLOBAL];
    gc_handle_t *handle[N_HANDLE];
    int handle_id[N_HANDLE];
    int pin_id[N_PIN];
    void *pin_addr[N_PIN];
    void *weak[N_WEAK];
    int weak_id[N_WEAK]; /* -1: none (weak[] NULL) */
    void *eph[N_EPH];
    int eph_key[N_EPH], eph_val[N_EPH];
    uint64_t full; /* gc_collect calls */
    void *addr[MAXO];
    uint8_t seen[MAXO], reach[MAXO];
    unsigned long step;
} g;

static void gobj_finalize(void *obj)
{
    gobj_t *o = obj;
    if (o->id >= MAXO || !g.o[o->id].exists || !g.o[o->id].fin) {
        AFAIL("step %lu: finalizer got a damaged object %p (id %llu)", g.step, obj, (unsigned long long)o->id);
        return;
    }
    mobj_t *m = &g.o[o->id];
    if (!m->dead) AFAIL("step %lu: object %llu finalized while reachable", g.step, (unsigned long long)o->id);
    if (m->finalized++) AFAIL("step %lu: object %llu finalized twice", g.step, (unsigned long long)o->id);
}

static const gc_type_t T_A = { "s20.a", gobj_trace, NULL };
static const gc_type_t T_B = { "s20.b", gobj_trace, NULL };
static const gc_type_t T_FINAL = { "s20.fin", gobj_trace, gobj_finalize };

/* ---- the model's reachable set ---- */

static void reach_from(int id)
{
    if (id < 0 || g.reach[id]) return;
    g.reach[id] = 1;
    for (int k = 0; k < g.o[id].nslots; k++) reach_from(g.o[id].slot[k]);
}

static void model_reach(void)
{
    memset(g.reach, 0, (size_t)g.nobj);
    for (int i = 0; i < N_STACK; i++) reach_from(g.stack_id[i]);
    for (int i = 0; i < N_GLOBAL; i++) reach_from(g.global_id[i]);
    for (int i = 0; i < N_HANDLE; i++) reach_from(g.handle_id[i]);
    for (int i = 0; i < N_PIN; i++) reach_from(g.pin_id[i]);
    for (int changed = 1; changed;) {
        changed = 0;
        for (int e = 0; e < N_EPH; e++)
            if (g.eph[e] && g.eph_key[e] >= 0 && g.reach[g.eph_key[e]] && g.eph_val[e] >= 0
                && !g.reach[g.eph_val[e]]) {
                reach_from(g.eph_val[e]);
                changed = 1;
            }
    }
    for (int id = 0; id < g.nobj; id++)
        if (g.o[id].exists && !g.o[id].dead && !g.reach[id]) {
            g.o[id].dead = 1;
            g.o[id].died_full = g.full;
        }
}

/* ---- the check ---- */

static void check_obj(void *p, int id, const char *from);

static void check_obj(void *p, int id, const char *from)
{
    if (id < 0) {
        if (p != NULL) T_FAIL("step %lu: %s holds %p, model NULL", g.step, from, p);
        return;
    }
    if (p == NULL) T_FAIL("step %lu: %s is NULL, model object %d", g.step, from, id);
    if (g.seen[id]) {
        if (g.addr[id] != p) T_FAIL("step %lu: object %d at %p and %p (%s)", g.step, id, g.addr[id], p, from);
        return;
    }
    g.seen[id] = 1;
    g.addr[id] = p;
    gobj_t *o = p;
    mobj_t *m = &g.o[id];
    if (o->id != (uint64_t)id || o->nslots != m->nslots || o->npay != m->npay)
        T_FAIL("step %lu: %s: object %d at %p reads id %llu shape %u/%u (model %u/%u)", g.step, from, id, p,
               (unsigned long long)o->id, o->nslots, o->npay, m->nslots, m->npay);
    const gc_type_t *want = m->fin ? &T_FINAL : NULL;
    const gc_type_t *type = gc_type_of(p);
    if (want ? type != want : (type != &T_A && type != &T_B))
        T_FAIL("step %lu: object %d has type %s", g.step, id, type ? type->name : "NULL");
    uint64_t *pay = payload_of(o);
    for (uint32_t i = 0; i < m->npay; i += 1 + (m->npay > 64 ? 97 : 0))
        if (pay[i] != pay_word((uint64_t)id, i)) T_FAIL("step %lu: object %d payload word %u damaged", g.step, id, i);
    char buf[64];
    for (int k = 0; k < m->nslots; k++) {
        snprintf(buf, sizeof buf, "object %d slot %d", id, k);
        check_obj(o->slot[k], m->slot[k], buf);
    }
}

static void check_all(void)
{
    model_reach();
    memset(g.seen, 0, (size_t)g.nobj);
    for (int i = 0; i < N_STACK; i++) check_obj(g.stack[i], g.stack_id[i], "stack root");
    for (int i = 0; i < N_GLOBAL; i++) check_obj(g.global[i], g.global_id[i], "global root");
    for (int i = 0; i < N_HANDLE; i++)
        if (g.handle[i]) check_obj(gc_handle_get(g.handle[i]), g.handle_id[i], "handle");
    for (int i = 0; i < N_PIN; i++)
        if (g.pin_id[i] >= 0) {
            int id = g.pin_id[i];
            if (!g.seen[id]) check_obj(g.pin_addr[i], id, "pin"); /* held by the pin alone */
            else if (g.addr[id] != g.pin_addr[i])
                T_FAIL("step %lu: pinned object %d moved from %p to %p", g.step, id, g.pin_addr[i], g.addr[id]);
        }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int e = 0; e < N_EPH; e++) {
            if (!g.eph[e]) continue;
            int key = g.eph_key[e];
            if (!g.seen[key]) continue;
            if (gc_ephemeron_key(g.eph[e]) != g.addr[key])
                T_FAIL("step %lu: ephemeron %d key %p, object %d at %p", g.step, e, gc_ephemeron_key(g.eph[e]), key,
                       g.addr[key]);
            int v = g.eph_val[e];
            if (v >= 0 && !g.seen[v]) changed = 1;
            check_obj(gc_ephemeron_value(g.eph[e]), v, "ephemeron value");
        }
    }
    for (int id = 0; id < g.nobj; id++)
        if (g.o[id].exists && !g.o[id].dead && !g.seen[id]) T_FAIL("step %lu: live object %d not found", g.step, id);
    for (int w = 0; w < N_WEAK; w++) {
        if (!g.weak[w]) continue;
        int id = g.weak_id[w];
        void *got = gc_weak_get(g.weak[w]);
        if (!g.o[id].dead) {
            if (got != g.addr[id]) T_FAIL("step %lu: weak %d reads %p, object %d at %p", g.step, w, got, id, g.addr[id]);
        } else if (g.full > g.o[id].died_full && got != NULL) {
            T_FAIL("step %lu: weak %d reads %p after its target %d died and gc_collect ran", g.step, w, got, id);
        }
    }
    for (int id = 0; id < g.nobj; id++)
        if (g.seen[id] && g.o[id].hashed && gc_identity_hash(g.addr[id]) != g.o[id].hash)
            T_FAIL("step %lu: object %d's identity hash changed", g.step, id);
}

/* ---- operations ---- */

/* A live object, or -1: a root's object, then a few random fields. */
static int pick_live(rng_t *r, void **out)
{
    void *p = NULL;
    int id = -1;
    for (int tries = 0; tries < 8 && id < 0; tries++) {
        unsigned k = (unsigned)rng_below(r, N_STACK + N_GLOBAL);
        if (k < N_STACK) { p = g.stack[k]; id = g.stack_id[k]; }
        else { p = g.global[k - N_STACK]; id = g.global_id[k - N_STACK]; }
    }
    if (id < 0) return -1;
    for (unsigned hops = (unsigned)rng_below(r, 5); hops > 0; hops--) {
        mobj_t *m = &g.o[id];
        if (m->nslots == 0) break;
        int k = (int)rng_below(r, m->nslots);
        if (m->slot[k] < 0) break;
        id = m->slot[k];
        p = ((gobj_t *)p)->slot[k];
    }
    *out = p;
    return id;
}

/* A fresh object; stored into a root at once. NULL: no id left. */
static void op_alloc(rng_t *r)
{
    if (g.nobj >= MAXO) return;
    int id = g.nobj;
    unsigned kind = (unsigned)rng_below(r, 100);
    const gc_type_t *type = kind < 45 ? &T_A : kind < 85 ? &T_B : &T_FINAL;
    uint32_t nslots = (uint32_t)rng_below(r, MSLOTS + 1);
    uint32_t npay = (uint32_t)rng_below(r, 6);
    if (kind % 10 == 0) npay = 40 + (uint32_t)rng_below(r, 40);          /* > 256 bytes: a header */
    if (rng_below(r, 400) == 0) npay = 33000 + (uint32_t)rng_below(r, 500); /* a large object */
    size_t size = sizeof(gobj_t) + nslots * sizeof(void *) + npay * 8u;
    gobj_t *o = gc_alloc(g.t, type, size);
    if (o == NULL) T_FAIL("step %lu: gc_alloc(%zu) returned NULL", g.step, size);
    g.nobj++;
    mobj_t *m = &g.o[id];
    *m = (mobj_t){ .exists = 1, .fin = type == &T_FINAL, .nslots = (uint8_t)nslots, .npay = npay };
    o->id = (uint64_t)id;
    o->nslots = nslots;
    o->npay = npay;
    uint64_t *pay = payload_of(o);
    for (uint32_t i = 0; i < npay; i++) pay[i] = pay_word((uint64_t)id, i);
    for (uint32_t k = 0; k < nslots; k++) {
        m->slot[k] = -1;
        if (rng_below(r, 2)) continue;
        void *v;
        int vid = pick_live(r, &v);
        if (vid < 0) continue;
        gc_write_init(g.t, o, &o->slot[k], v);
        m->slot[k] = vid;
    }
    unsigned where = (unsigned)rng_below(r, N_STACK + N_GLOBAL + 2);
    if (where < N_STACK) {
        g.stack[where] = o;
        g.stack_id[where] = id;
    } else if (where < N_STACK + N_GLOBAL) {
        g.global[where - N_STACK] = o;
        g.global_id[where - N_STACK] = id;
    } else {
        /* into a field of a live (maybe old) object: the barrier */
        void *p;
        int pid = pick_live(r, &p);
        if (pid >= 0 && g.o[pid].nslots > 0) {
            int k = (int)rng_below(r, g.o[pid].nslots);
            gc_write(g.t, p, &((gobj_t *)p)->slot[k], o);
            g.o[pid].slot[k] = id;
        } else {
            g.stack[0] = o;
            g.stack_id[0] = id;
        }
    }
}

static void op_store(rng_t *r)
{
    void *p, *v = NULL;
    int pid = pick_live(r, &p);
    if (pid < 0 || g.o[pid].nslots == 0) return;
    int vid = rng_below(r, 5) ? pick_live(r, &v) : -1;
    if (vid < 0) v = NULL;
    int k = (int)rng_below(r, g.o[pid].nslots);
    gc_write(g.t, p, &((gobj_t *)p)->slot[k], v);
    g.o[pid].slot[k] = vid;
}

static void op_root(rng_t *r)
{
    void *v = NULL;
    int vid = rng_below(r, 3) ? pick_live(r, &v) : -1;
    if (vid < 0) v = NULL;
    unsigned k = (unsigned)rng_below(r, N_STACK + N_GLOBAL);
    if (k < N_STACK) { g.stack[k] = v; g.stack_id[k] = vid; }
    else { g.global[k - N_STACK] = v; g.global_id[k - N_STACK] = vid; }
}

static void op_handle(rng_t *r)
{
    int i = (int)rng_below(r, N_HANDLE);
    if (g.handle[i]) {
        rc_release(g.handle[i]);
        g.handle[i] = NULL;
        g.handle_id[i] = -1;
        return;
    }
    void *p;
    int id = pick_live(r, &p);
    if (id < 0) return;
    g.handle[i] = gc_handle_new(g.heap, p);
    if (g.handle[i] == NULL) T_FAIL("step %lu: gc_handle_new returned NULL", g.step);
    g.handle_id[i] = id;
}

static void op_pin(rng_t *r)
{
    int i = (int)rng_below(r, N_PIN);
    if (g.pin_id[i] >= 0) {
        gc_unpin(g.heap, g.pin_addr[i]);
        g.pin_id[i] = -1;
        g.pin_addr[i] = NULL;
        return;
    }
    void *p;
    int id = pick_live(r, &p);
    if (id < 0) return;
    gc_pin(g.heap, p);
    g.pin_id[i] = id;
    g.pin_addr[i] = p;
}

static void op_weak(rng_t *r)
{
    int w = (int)rng_below(r, N_WEAK);
    void *p;
    int id = pick_live(r, &p);
    if (id < 0) {
        g.weak[w] = NULL;
        return;
    }
    void *weak = gc_weak_new(g.t, p); /* a GC point: p may be stale now */
    if (weak == NULL) T_FAIL("step %lu: gc_weak_new returned NULL", g.step);
    g.weak[w] = weak;
    g.weak_id[w] = id;
}

static void op_eph(rng_t *r)
{
    int e = (int)rng_below(r, N_EPH);
    void *k, *v = NULL;
    int kid = pick_live(r, &k);
    if (kid < 0) {
        g.eph[e] = NULL;
        return;
    }
    int vid = rng_below(r, 4) ? pick_live(r, &v) : -1;
    if (vid < 0) v = NULL;
    void *eph = gc_ephemeron_new(g.t, k, v);
    if (eph == NULL) T_FAIL("step %lu: gc_ephemeron_new returned NULL", g.step);
    g.eph[e] = eph;
    g.eph_key[e] = kid;
    g.eph_val[e] = vid;
}

static void op_hash(rng_t *r)
{
    void *p;
    int id = pick_live(r, &p);
    if (id < 0) return;
    uintptr_t h = gc_identity_hash(p);
    if (g.o[id].hashed && h != g.o[id].hash) T_FAIL("step %lu: object %d's identity hash changed", g.step, id);
    g.o[id].hashed = 1;
    g.o[id].hash = h;
}

static const gc_type_t T_JUNK = { "s20.junk", NULL, NULL };

static void op_garbage(rng_t *r)
{
    unsigned n = 20 + (unsigned)rng_below(r, 200);
    for (unsigned i = 0; i < n; i++) {
        void *j = gc_alloc(g.t, &T_JUNK, 16 + 8 * (size_t)rng_below(r, 30));
        if (j == NULL) T_FAIL("step %lu: gc_alloc of garbage returned NULL", g.step);
    }
}

static void run_model(int compaction, uint64_t salt, int markers)
{
    memset(&g, 0, sizeof g);
    for (int i = 0; i < N_STACK; i++) g.stack_id[i] = -1;
    for (int i = 0; i < N_GLOBAL; i++) g.global_id[i] = -1;
    for (int i = 0; i < N_HANDLE; i++) g.handle_id[i] = -1;
    for (int i = 0; i < N_PIN; i++) g.pin_id[i] = -1;
    for (int i = 0; i < N_WEAK; i++) g.weak_id[i] = -1;
    for (int i = 0; i < N_EPH; i++) g.eph_key[i] = g.eph_val[i] = -1;
    setenv("MULCH_GC_VERIFY", "1", 1);
    gc_options_t opts = { .initial_heap = 256 * KiB, .compaction = compaction, .generational = 1, .markers = markers };
    g.heap = gc_heap_create(&opts);
    unsetenv("MULCH_GC_VERIFY");
    assert_non_null(g.heap);
    g.t = gc_thread_attach(g.heap);
    assert_non_null(g.t);
    for (int i = 0; i < N_STACK; i++) gc_push_root(g.t, &g.stack[i]);
    gc_root_add_range(g.heap, g.global, N_GLOBAL);
    gc_root_add_range(g.heap, g.weak, N_WEAK);
    gc_root_add_range(g.heap, g.eph, N_EPH);
    /* parallel marking starts at 8 MiB of heap */
    static void *ballast;
    ballast = NULL;
    gc_root_add(g.heap, &ballast);
    if (markers > 1) ballast = gc_alloc(g.t, &T_JUNK, 9 * MiB);
    rng_t r = test_rng("genmodel", salt);
    unsigned long steps = scaled(6000, 1500);
    unsigned long r0 = rec_count();
    for (g.step = 0; g.step < steps && g.nobj < MAXO; g.step++) {
        unsigned op = (unsigned)rng_below(&r, 100);
        if (op < 30) op_alloc(&r);
        else if (op < 50) op_store(&r);
        else if (op < 60) op_root(&r);
        else if (op < 64) op_handle(&r);
        else if (op < 68) op_pin(&r);
        else if (op < 73) op_weak(&r);
        else if (op < 77) op_eph(&r);
        else if (op < 82) op_hash(&r);
        else if (op < 94) op_garbage(&r);
        else if (op < 96) {
            gc_collect(g.t);
            g.full++;
        } else if (op < 98) gc_safepoint(g.t);
        else if (gc_verify(g.heap) != 0) T_FAIL("step %lu: gc_verify found problems", g.step);
        check_all();
        EXPECT_NO_ASYNC_FAILURES();
        if (rec_count() != r0) {
            rec_print_since(r0);
            T_FAIL("step %lu: unexpected reports", g.step);
        }
    }
    gc_collect(g.t);
    g.full++;
    gc_collect(g.t);
    g.full++;
    check_all();
    for (int id = 0; id < g.nobj; id++)
        if (g.o[id].fin && g.o[id].dead && g.o[id].finalized != 1)
            T_FAIL("dead finalizable object %d finalized %u times after two gc_collect", id, g.o[id].finalized);
    EXPECT_VERIFY(g.heap);
    gc_stats_t st = stats_of(g.heap);
    print_message("compaction %d: %d objects, %" PRIu64 " collections, %" PRIu64 " bytes moved\n", compaction,
                  g.nobj, st.collections, st.bytes_moved);
    for (int i = 0; i < N_HANDLE; i++)
        if (g.handle[i]) rc_release(g.handle[i]);
    for (int id = 0; id < g.nobj; id++) g.o[id].dead = 1; /* the destroy finalizes the rest */
    gc_thread_detach(g.t);
    gc_heap_destroy(g.heap);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static void test_genmodel_auto(void **state)
{
    (void)state;
    TEST_START();
    run_model(GC_COMPACT_AUTO, 1, 0);
}

static void test_genmodel_always(void **state)
{
    (void)state;
    TEST_START();
    run_model(GC_COMPACT_ALWAYS, 2, 0);
}

static void test_genmodel_parallel(void **state)
{
    (void)state;
    TEST_START();
    run_model(GC_COMPACT_ALWAYS, 3, 2);
    run_model(GC_COMPACT_AUTO, 4, 2);
}

int main(void)
{
    mt_init("test_gc_review_s20_genmodel");
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
        T(test_genmodel_auto),
        T(test_genmodel_always),
        T(test_genmodel_parallel),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
