/* gc_fuzz.c — libFuzzer target for the collector (<mulch/gc.h>).
 *
 * The input bytes are a program of graph mutations on one heap with one
 * mutator: allocate objects with k reference slots (some finalizable) into a
 * root or a field, set and clear fields (objects, NULL, tagged immediates),
 * push and pop the root stack, add and remove global roots, set the slots a
 * root callback traces (and remove and re-add it), make and read
 * weak references and ephemerons, pin and unpin (these in gc_fuzz_refs.h),
 * allocate garbage, collect, verify,
 * take identity hashes, make and release gc_handles, give objects rc objects
 * to own (gc_own_rc; these three in gc_fuzz_bridge.h), blocking regions
 * during which a second mutator thread allocates and collects, external
 * memory (gc_external_alloc), gc_report_bridge_cycles (these three in
 * gc_fuzz_threads.h), gc_write_init into fresh objects, and injected misuse.
 * The first byte picks the heap options (compaction mode,
 * markers, initial heap, generational mode: every field store goes through
 * gc_write, as that mode requires; small objects are headerless in every
 * mode; the conservative stack option, under which a stale word on the
 * stack may keep a dead object: the checks that dead objects are gone are
 * skipped); MULCH_FUZZ_GC_COMPACT=always|never|auto in
 * the environment overrides the compaction mode.
 *
 * The model holds the graph by object id. The program reaches objects only
 * through root slots and fields, never through a raw pointer kept across a
 * GC point, except pinned objects (which must not move), and handles (read
 * with gc_handle_get). Invariants checked:
 *   - after every operation the heap, walked from the roots and pins (and
 *     from the values of ephemerons whose keys the walk reached, to a
 *     fixpoint), has exactly the model's shape: ids, checksums, payloads,
 *     every field, and every such ephemeron's key and value; roots
 *     include the objects of live gc_handles;
 *     a pinned object is still at the address it was pinned at;
 *   - an object unreachable in the model never becomes reachable again, and
 *     a finalizer never runs for a reachable object, nor twice;
 *   - once a collection ran after an object died (in generational mode, a
 *     gc_collect: minor collections leave dead old objects alone), its weak
 *     references read NULL, and so do both slots of the ephemerons it was
 *     the key of; a live target's weak reference reads its current address;
 *   - after gc_collect every dead finalizable object was finalized exactly
 *     once, gc_verify returns 0, and gc_heap_walk visits every reachable
 *     object and nothing but intact objects;
 *   - valid calls report nothing; each injected misuse reports once, with
 *     the function's name, and changes nothing;
 *   - an object's identity hash never changes; gc_type_of and gc_size_of
 *     give its type and at least its size;
 *   - an rc object given to a GC object with gc_own_rc is destroyed only
 *     after its owner died;
 *   - gc_heap_destroy finalizes every finalizable object not yet finalized,
 *     releases every rc object owned through gc_own_rc, and leaves the
 *     handles not yet released reading NULL. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#include <mulch/gc.h>
#include <mulch/rc.h>

#include "fuzz_support.h"

#define MAX_OBJS 192
#define MAX_SLOTS 6
#define MAX_PAYLOAD 8
#define N_STACK 12
#define N_GLOBAL 8
#define N_WEAK 8
#define N_EPH 8
#define N_CB 4
#define N_HANDLE 4
#define V_NULL (-1)
#define V_TAG (-2)
#define SALT UINT64_C(0x6d756c636866757a)

/* The heap object. */
typedef struct gobj {
    uint32_t id;
    uint16_t nslots, npay;
    uint64_t check;         /* mix(id): a wrong or shifted object fails it */
    void *slot[];           /* nslots references, then npay payload words */
} gobj_t;

static uint64_t mix(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static uint64_t *gobj_payload(gobj_t *o) { return (uint64_t *)(void *)&o->slot[o->nslots]; }
static uint64_t payload_word(uint32_t id, unsigned i) { return mix(SALT ^ ((uint64_t)id << 8) ^ i); }

/* The model of one object. */
typedef struct mobj {
    uint8_t exists, dead, fin, nslots, npay;
    int16_t slot[MAX_SLOTS];        /* object id, V_NULL or V_TAG */
    uintptr_t tag[MAX_SLOTS];       /* the immediate, for V_TAG */
    uint64_t died_at;               /* collections counted when it died */
    uint32_t pins;
    void *pin_addr;                 /* where it was pinned (it must stay) */
    uint8_t hashed;                 /* gc_identity_hash was called: it must not change */
    uintptr_t hash;
    uint16_t owned_rc;              /* rc objects it owns through gc_own_rc */
} mobj_t;

typedef struct run {
    fz_input_t in;
    gc_heap_t *heap;
    gc_thread_t *t;
    size_t base_depth;
    mobj_t obj[MAX_OBJS];
    uint32_t nobj;
    void *stack[N_STACK];           /* pushed slots: stack[0..depth) */
    int16_t stack_m[N_STACK];
    size_t depth;
    void *global[N_GLOBAL];
    int16_t global_m[N_GLOBAL];
    uint8_t global_on[N_GLOBAL];
    void *cb[N_CB];                 /* traced by a root callback while cb_on */
    int16_t cb_m[N_CB];
    uint8_t cb_on;
    void *weak[N_WEAK];             /* a registered root range */
    int16_t weak_m[N_WEAK];         /* target id, V_NULL, or V_TAG: no weak object */
    void *eph[N_EPH];               /* a registered root range of ephemerons */
    int16_t eph_key[N_EPH];         /* key id, or V_TAG: no ephemeron */
    int16_t eph_value[N_EPH];       /* value id, V_NULL or V_TAG (eph_tag) */
    uintptr_t eph_tag[N_EPH];
    gc_handle_t *handle[N_HANDLE];  /* rc handles rooting handle_m (NULL: none) */
    int16_t handle_m[N_HANDLE];     /* target id or V_NULL */
    /* Recomputed after every operation. */
    uint8_t reach[MAX_OBJS];
    void *addr[MAX_OBJS];
    int16_t live_list[MAX_OBJS];
    size_t nlive;
    size_t expected_reports;
    int destroying;
    uint64_t collections;
    int generational;
    int conservative;               /* stack scanning may keep dead objects: no death checks */
    uint64_t full_collections;      /* gc_collect calls (generational mode) */
    size_t external;                /* gc_external_alloc's running sum */
} run_t;

static run_t g_run;
static uint8_t g_fin_count[MAX_OBJS];
static uint16_t g_rc_destroyed[MAX_OBJS];   /* gc_own_rc objects destroyed, by owner */
static int g_compact_override = -1;

/* ------------------------------------------------------------------------ */
/* Types                                                                     */

static void gobj_trace(void *obj, gc_tracer_t *tracer)
{
    gobj_t *o = obj;
    gc_trace_range(tracer, o->slot, o->nslots);
}

FZ_NO_COVERAGE static const char *gobj_problem(gobj_t *o, uint32_t id)
{
    if (o == NULL) return "NULL";
    if (o->id != id) return "wrong id";
    if (o->check != mix(id ^ SALT)) return "checksum damaged";
    if (o->npay > MAX_PAYLOAD || o->nslots > MAX_SLOTS) return "shape damaged";
    const uint64_t *pay = gobj_payload(o);
    for (unsigned i = 0; i < o->npay; i++)
        if (pay[i] != payload_word(id, i)) return "payload damaged";
    return NULL;
}

static void gobj_finalize(void *obj)
{
    run_t *r = &g_run;
    gobj_t *o = obj;
    FZ_CHECK(&r->in, o->id < r->nobj, "finalizer got an object with id %u (of %u)", o->id, r->nobj);
    const char *why = gobj_problem(o, o->id);
    FZ_CHECK(&r->in, why == NULL, "finalizer got object %u damaged: %s", o->id, why);
    FZ_CHECK(&r->in, r->obj[o->id].fin, "finalizer ran for object %u of a type without one", o->id);
    FZ_CHECK(&r->in, r->destroying || !r->reach[o->id], "finalizer ran for reachable object %u", o->id);
    FZ_CHECK(&r->in, g_fin_count[o->id] == 0, "object %u finalized twice", o->id);
    g_fin_count[o->id]++;
}

static const gc_type_t T_PLAIN = { "fuzz.plain", gobj_trace, NULL };
static const gc_type_t T_FIN = { "fuzz.fin", gobj_trace, gobj_finalize };

/* ------------------------------------------------------------------------ */
/* Model walk                                                                */

/* Collections that may have freed any dead object. In generational mode
 * those triggered by allocation may be minor, which leave dead old
 * objects (and their weak references) alone: only gc_collect counts. */
static uint64_t collections_now(run_t *r)
{
    if (r->generational) return r->full_collections;
    gc_stats_t s;
    gc_get_stats(r->heap, &s);
    return s.collections;
}

FZ_NO_COVERAGE static void note_addr(run_t *r, int16_t id, void *p, const char *where, int *queue, size_t *qn)
{
    FZ_CHECK(&r->in, id >= 0 && (uint32_t)id < r->nobj && !r->obj[id].dead,
             "%s: model value %d is not a live object", where, id);
    FZ_CHECK(&r->in, p != NULL, "%s: holds NULL, model says object %d", where, id);
    if (r->addr[id] == NULL) {
        const char *why = gobj_problem(p, (uint32_t)id);
        FZ_CHECK(&r->in, why == NULL, "%s: object %d at %p: %s", where, id, p, why);
        r->addr[id] = p;
        queue[(*qn)++] = id;
    } else {
        FZ_CHECK(&r->in, r->addr[id] == p, "%s: object %d at %p, elsewhere seen at %p",
                 where, id, p, r->addr[id]);
    }
}

FZ_NO_COVERAGE static void check_value(run_t *r, int16_t m, uintptr_t tag, void *p, const char *where,
                        int *queue, size_t *qn)
{
    if (m == V_NULL) FZ_CHECK(&r->in, p == NULL, "%s: holds %p, model NULL", where, p);
    else if (m == V_TAG) FZ_CHECK(&r->in, (uintptr_t)p == tag, "%s: holds %p, model tag %#lx",
                                  where, p, (unsigned long)tag);
    else note_addr(r, m, p, where, queue, qn);
}

/* Recomputes reachability and every live object's address from the real
 * roots, checking the heap against the model on the way. Objects that fell
 * out of reach are dead from now on. */
FZ_NO_COVERAGE static void walk(run_t *r)
{
    int queue[MAX_OBJS];
    size_t qn = 0;
    memset(r->addr, 0, sizeof r->addr);
    for (size_t i = 0; i < r->depth; i++)
        check_value(r, r->stack_m[i], 0, r->stack[i], "root stack slot", queue, &qn);
    for (size_t g = 0; g < N_GLOBAL; g++)
        if (r->global_on[g]) check_value(r, r->global_m[g], 0, r->global[g], "global root", queue, &qn);
    for (size_t i = 0; r->cb_on && i < N_CB; i++)
        check_value(r, r->cb_m[i], 0, r->cb[i], "callback root", queue, &qn);
    for (uint32_t id = 0; id < r->nobj; id++)
        if (r->obj[id].pins) note_addr(r, (int16_t)id, r->obj[id].pin_addr, "pinned object", queue, &qn);
    for (size_t h = 0; h < N_HANDLE; h++)
        if (r->handle[h] != NULL)
            check_value(r, r->handle_m[h], 0, gc_handle_get(r->handle[h]), "gc_handle_get", queue, &qn);
    size_t k = 0;
    for (;;) {
        for (; k < qn; k++) {
            int id = queue[k];
            const mobj_t *m = &r->obj[id];
            gobj_t *o = r->addr[id];
            FZ_CHECK(&r->in, o->nslots == m->nslots && o->npay == m->npay,
                     "object %d has shape %u/%u, model %u/%u", id, o->nslots, o->npay, m->nslots, m->npay);
            for (unsigned j = 0; j < m->nslots; j++)
                check_value(r, m->slot[j], m->tag[j], o->slot[j], "object field", queue, &qn);
        }
        /* the values of ephemerons whose keys are reached, until no new
         * object is */
        for (size_t e = 0; e < N_EPH; e++) {
            int16_t key = r->eph_key[e];
            if (key < 0 || r->addr[key] == NULL) continue;
            void *got = gc_ephemeron_key(r->eph[e]);
            FZ_CHECK(&r->in, got == r->addr[key], "ephemeron %zu: key %d reads %p, not %p", e, key, got,
                     r->addr[key]);
            check_value(r, r->eph_value[e], r->eph_tag[e], gc_ephemeron_value(r->eph[e]), "ephemeron value",
                        queue, &qn);
        }
        if (k == qn) break;
    }
    uint64_t now = 0;
    int asked = 0;
    r->nlive = 0;
    for (uint32_t id = 0; id < r->nobj; id++) {
        mobj_t *m = &r->obj[id];
        r->reach[id] = r->addr[id] != NULL;
        if (r->reach[id]) {
            r->live_list[r->nlive++] = (int16_t)id;
        } else if (!m->dead) {
            if (!asked) { now = collections_now(r); asked = 1; }
            m->dead = 1;
            m->died_at = now;
        }
        /* Pinned objects never move: the walk found them where pinned. */
        if (m->pins) FZ_CHECK(&r->in, r->addr[id] == m->pin_addr, "pinned object %u moved", id);
    }
}

/* Weak references and finalizers against what died and when. `full`: a
 * gc_collect just returned, so every dead finalizable object has run. */
FZ_NO_COVERAGE static void check_deaths(run_t *r, int full)
{
    uint64_t now = collections_now(r);
    for (size_t w = 0; w < N_WEAK; w++) {
        int16_t m = r->weak_m[w];
        if (m == V_TAG) continue;
        void *got = gc_weak_get(r->weak[w]);
        if (m == V_NULL) {
            FZ_CHECK(&r->in, got == NULL, "weak %zu to NULL reads %p", w, got);
        } else if (!r->obj[m].dead) {
            FZ_CHECK(&r->in, got == r->addr[m], "weak %zu to live object %d reads %p, not %p",
                     w, m, got, r->addr[m]);
        } else if (now > r->obj[m].died_at && !r->conservative) {
            FZ_CHECK(&r->in, got == NULL, "weak %zu to object %d (dead, collected since) reads %p",
                     w, m, got);
        }
    }
    for (size_t e = 0; e < N_EPH; e++) {
        int16_t key = r->eph_key[e];
        if (key < 0 || !r->obj[key].dead || now <= r->obj[key].died_at || r->conservative) continue;
        void *got_key = gc_ephemeron_key(r->eph[e]), *got_value = gc_ephemeron_value(r->eph[e]);
        FZ_CHECK(&r->in, got_key == NULL && got_value == NULL,
                 "ephemeron %zu of key %d (dead, collected since) reads key %p value %p", e, key, got_key,
                 got_value);
    }
    for (uint32_t id = 0; id < r->nobj; id++) {
        const mobj_t *m = &r->obj[id];
        if (!m->dead || !m->fin) {
            FZ_CHECK(&r->in, g_fin_count[id] == 0, "object %u (live or plain) finalized", id);
        if (!m->dead)
            FZ_CHECK(&r->in, g_rc_destroyed[id] == 0, "live object %u: an rc object it owns was destroyed", id);
        } else if (full && !r->conservative) {
            FZ_CHECK(&r->in, g_fin_count[id] == 1,
                     "dead finalizable object %u finalized %u times after gc_collect", id,
                     g_fin_count[id]);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Choices                                                                   */

/* A live object id, or V_NULL when none (or when the input says NULL). */
static int16_t pick_live(run_t *r, int allow_null)
{
    size_t k = fz_u8(&r->in);
    if (r->nlive == 0 || (allow_null && k % 8 == 7)) return V_NULL;
    return r->live_list[k % r->nlive];
}

static void *value_of(run_t *r, int16_t m) { return m >= 0 ? r->addr[m] : NULL; }

static void expect_no_new_reports(run_t *r, const char *call)
{
    fz_expect_reports(&r->in, r->expected_reports, 0, NULL, call);
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

/* A new object, initialised before the next GC point. Its id is dead until
 * the caller stores it somewhere reachable. */
static gobj_t *new_object(run_t *r, int16_t *id_out, size_t extra)
{
    if (r->nobj >= MAX_OBJS) return NULL;
    uint8_t shape = fz_u8(&r->in);
    unsigned nslots = shape % (MAX_SLOTS + 1), npay = (shape >> 3) % (MAX_PAYLOAD + 1);
    int fin = shape >> 7;
    size_t size = sizeof(gobj_t) + nslots * sizeof(void *) + npay * 8 + extra;
    gobj_t *o = gc_alloc(r->t, fin ? &T_FIN : &T_PLAIN, size);
    FZ_CHECK(&r->in, o != NULL, "gc_alloc(%zu) returned NULL without a heap limit", size);
    size_t dirty = fz_first_nonzero(o, size);
    FZ_CHECK(&r->in, dirty == SIZE_MAX, "gc_alloc(%zu): byte %zu not zeroed", size, dirty);
    int16_t id = (int16_t)r->nobj++;
    mobj_t *m = &r->obj[id];
    memset(m, 0, sizeof *m);
    m->exists = 1;
    m->fin = (uint8_t)fin;
    m->nslots = (uint8_t)nslots;
    m->npay = (uint8_t)npay;
    for (unsigned j = 0; j < MAX_SLOTS; j++) m->slot[j] = V_NULL;
    o->id = (uint32_t)id;
    o->nslots = (uint16_t)nslots;
    o->npay = (uint16_t)npay;
    o->check = mix((uint64_t)id ^ SALT);
    uint64_t *pay = gobj_payload(o);
    for (unsigned i = 0; i < npay; i++) pay[i] = payload_word((uint32_t)id, i);
    *id_out = id;
    return o;
}

/* Where a new object or value goes: 0 push, 1 stack slot, 2 global, 3 field. */
static void op_alloc(run_t *r)
{
    uint8_t where = fz_u8(&r->in) % 4;
    size_t pos = fz_u8(&r->in);
    int16_t parent = pick_live(r, 0);
    size_t field = fz_u8(&r->in);
    int16_t id;
    if (where == 0 && r->depth == N_STACK) where = 1;
    if (where == 1 && r->depth == 0) where = 0;
    if (where == 3 && (parent < 0 || r->obj[parent].nslots == 0)) where = 0;
    if (where == 0 && r->depth == N_STACK) return;

    gobj_t *o = new_object(r, &id, 0);
    if (o == NULL) return;
    /* gc_alloc may have collected and moved everything: re-read the roots.
     * The walk counts the new object dead (nothing holds it yet); it is
     * stored below, before the next GC point, so it is not. */
    walk(r);
    r->obj[id].dead = 0;
    switch (where) {
    case 0:
        r->stack[r->depth] = o;
        r->stack_m[r->depth] = id;
        gc_push_root(r->t, &r->stack[r->depth]);
        r->depth++;
        break;
    case 1: {
        size_t i = pos % r->depth;
        r->stack[i] = o;
        r->stack_m[i] = id;
        break;
    }
    case 2: {
        size_t g = pos % N_GLOBAL;
        r->global[g] = o;
        r->global_m[g] = id;
        if (!r->global_on[g]) gc_root_add(r->heap, &r->global[g]);
        r->global_on[g] = 1;
        break;
    }
    default: {
        gobj_t *p = r->addr[parent];
        unsigned j = (unsigned)(field % r->obj[parent].nslots);
        gc_write(r->t, p, &p->slot[j], o);
        r->obj[parent].slot[j] = id;
        break;
    }
    }
}

#include "gc_fuzz_refs.h"     /* op_set_field, op_stack, op_global, op_callback,
                                * op_weak_new, op_ephemeron_new, op_pin */

/* Objects that are garbage from birth, some big, some pointing at live ones. */
static void op_garbage(run_t *r)
{
    unsigned n = 1 + fz_u8(&r->in) % 12;
    for (unsigned k = 0; k < n; k++) {
        uint8_t b = fz_u8(&r->in);
        size_t extra = (size_t)(b & 0x3f) * 96;
        int16_t id;
        int16_t y = pick_live(r, 1);
        gobj_t *o = new_object(r, &id, extra);
        if (o == NULL) return;
        walk(r);                        /* the new id dies here; others may have moved */
        if (o->nslots > 0 && y >= 0 && !r->obj[y].dead) {
            /* o is fresh (no GC point since gc_alloc; the walk is none):
             * an initializing store may skip the barrier */
            if (b & 0x40) gc_write_init(r->t, o, &o->slot[0], r->addr[y]);
            else gc_write(r->t, o, &o->slot[0], r->addr[y]);
            r->obj[id].slot[0] = y;
        }
    }
}

/* gc_heap_walk after a full collection: every object it visits of this
 * run's types is intact (a dead finalizable one waits for the next
 * collection to be freed, whole), and every reachable object is among them
 * at its address; mulch's own objects (weak references) only count. */
typedef struct heap_walk_check {
    const run_t *r;
    uint8_t seen[MAX_OBJS];
    size_t count, bad;
} heap_walk_check_t;

FZ_NO_COVERAGE static void heap_walk_visit(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    heap_walk_check_t *c = ctx;
    c->count++;
    if (type != &T_PLAIN && type != &T_FIN) return;
    gobj_t *o = obj;
    if (o->id >= c->r->nobj || gobj_problem(o, o->id) != NULL
        || size < sizeof *o + ((size_t)o->nslots + o->npay) * sizeof(void *)) {
        c->bad++;
        return;
    }
    if (c->r->addr[o->id] == obj) c->seen[o->id] = 1;
}

static void check_heap_walk(run_t *r)
{
    static heap_walk_check_t c;
    memset(&c, 0, sizeof c);
    c.r = r;
    size_t n = gc_heap_walk(r->heap, heap_walk_visit, &c);
    FZ_CHECK(&r->in, n == c.count, "gc_heap_walk returned %zu, called back %zu times", n, c.count);
    FZ_CHECK(&r->in, c.bad == 0, "gc_heap_walk visited %zu damaged or foreign objects", c.bad);
    for (size_t k = 0; k < r->nlive; k++)
        FZ_CHECK(&r->in, c.seen[r->live_list[k]], "gc_heap_walk missed live object %d", r->live_list[k]);
}

#include "gc_fuzz_bridge.h"   /* op_identity, op_handle, op_own_rc, check_hashes */

static void op_collect(run_t *r)
{
    gc_collect(r->t);
    r->full_collections++;
    walk(r);
    check_deaths(r, 1);
    check_heap_walk(r);
    check_hashes(r);
    size_t problems = gc_verify(r->heap);
    FZ_CHECK(&r->in, problems == 0, "gc_verify found %zu problem(s) (last: \"%s\")", problems,
             fz_last_what);
}

#include "gc_fuzz_misuse.h"   /* op_misuse */
#include "gc_fuzz_threads.h"  /* op_blocking, op_external, op_bridge_cycles */

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

static void run_begin(run_t *r, const uint8_t *data, size_t size)
{
    memset(r, 0, sizeof *r);
    memset(g_fin_count, 0, sizeof g_fin_count);
    memset(g_rc_destroyed, 0, sizeof g_rc_destroyed);
    r->in = (fz_input_t){ data, size, 0, 0 };
    r->expected_reports = fz_report_count();
    for (size_t w = 0; w < N_WEAK; w++) r->weak_m[w] = V_TAG;
    for (size_t e = 0; e < N_EPH; e++) r->eph_key[e] = V_TAG;
    for (size_t i = 0; i < N_CB; i++) r->cb_m[i] = V_NULL;
    for (size_t h = 0; h < N_HANDLE; h++) r->handle_m[h] = V_NULL;

    uint8_t config = fz_u8(&r->in);
    gc_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.compaction = g_compact_override >= 0 ? g_compact_override : config % 3;
    opts.markers = 1 + (config >> 2) % 2;
    opts.initial_heap = (config >> 3) % 2 ? (size_t)256 * 1024 : 0;
    opts.generational = (config >> 4) % 2;
    r->generational = opts.generational;
    opts.conservative_stack = (config >> 5) % 2;
    r->conservative = opts.conservative_stack;
    r->heap = gc_heap_create(&opts);
    FZ_CHECK(&r->in, r->heap != NULL, "gc_heap_create failed");
    r->t = gc_thread_attach(r->heap);
    FZ_CHECK(&r->in, r->t != NULL, "gc_thread_attach failed");
    r->base_depth = gc_root_depth(r->t);
    gc_root_add_range(r->heap, r->weak, N_WEAK);
    gc_root_add_range(r->heap, r->eph, N_EPH);
    gc_root_add_callback(r->heap, cb_roots, r);
    r->cb_on = 1;
}

static void run_end(run_t *r)
{
    op_collect(r);
    expect_no_new_reports(r, "the last collection");
    gc_pop_roots_to(r->t, r->base_depth);
    for (size_t g = 0; g < N_GLOBAL; g++)
        if (r->global_on[g]) gc_root_remove(r->heap, &r->global[g]);
    gc_root_remove(r->heap, r->weak);
    gc_root_remove(r->heap, r->eph);
    if (r->cb_on) gc_root_remove_callback(r->heap, cb_roots, r);
    /* even handles are released before the heap is destroyed, odd ones after */
    for (size_t h = 0; h < N_HANDLE; h += 2)
        if (r->handle[h] != NULL) rc_release(r->handle[h]);
    if (r->external) gc_external_alloc(r->heap, -(ptrdiff_t)r->external);
    r->destroying = 1;
    gc_heap_destroy(r->heap);
    expect_no_new_reports(r, "gc_heap_destroy");
    for (size_t h = 1; h < N_HANDLE; h += 2) {
        if (r->handle[h] == NULL) continue;
        void *got = gc_handle_get(r->handle[h]);
        FZ_CHECK(&r->in, got == NULL, "gc_handle_get after gc_heap_destroy gave %p", got);
        rc_release(r->handle[h]);
    }
    expect_no_new_reports(r, "the last handles' release");
    /* An owned rc object released on the second mutator thread (its
     * collection found the owner dead) while this thread, which
     * allocated it, still counted its reference waits in this thread's
     * merge queue: destroyed at this thread's next rc_alloc or rc_release
     * (docs/rc.md), which this one is. */
    (rc_release)(rc_alloc(1, NULL));
    for (uint32_t id = 0; id < r->nobj; id++)
        FZ_CHECK(&r->in, g_rc_destroyed[id] == r->obj[id].owned_rc,
                 "after gc_heap_destroy object %u: %u of its %u owned rc objects destroyed", id,
                 g_rc_destroyed[id], r->obj[id].owned_rc);
    for (uint32_t id = 0; id < r->nobj; id++)
        FZ_CHECK(&r->in, g_fin_count[id] == r->obj[id].fin,
                 "after gc_heap_destroy object %u (finalizable: %u) finalized %u times",
                 id, r->obj[id].fin, g_fin_count[id]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fz_install_handler();
    const char *mode = getenv("MULCH_FUZZ_GC_COMPACT");
    if (mode && strcmp(mode, "always") == 0) g_compact_override = GC_COMPACT_ALWAYS;
    else if (mode && strcmp(mode, "never") == 0) g_compact_override = GC_COMPACT_NEVER;
    else if (mode && strcmp(mode, "auto") == 0) g_compact_override = GC_COMPACT_AUTO;
    else if (mode && *mode) {
        fprintf(stderr, "gc_fuzz: MULCH_FUZZ_GC_COMPACT must be always, never or auto\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_t *r = &g_run;
    run_begin(r, data, size);
    walk(r);
    while (fz_more(&r->in)) {
        r->in.step++;
        switch (fz_u8(&r->in) % 16) {
        case 0: case 1: case 2: op_alloc(r); break;
        case 3: case 4: op_set_field(r, 0); break;
        case 5:  op_set_field(r, 1); break;
        case 6:  op_stack(r); break;
        case 7:  op_global(r); break;
        case 8:  if (fz_u8(&r->in) & 1) op_ephemeron_new(r); else op_weak_new(r); break;
        case 9:  op_pin(r, 0); break;
        case 10: op_pin(r, 1); break;
        case 11: op_garbage(r); break;
        case 12: op_collect(r); break;
        case 13: op_misuse(r); break;
        case 14: op_callback(r); break;
        default: {
            /* (odd: a safepoint, as before the bridge and hash calls were added) */
            uint8_t kind = fz_u8(&r->in);
            if (kind & 1) { gc_safepoint(r->t); break; }
            if ((kind >> 1) % 8 == 1) { op_identity(r); break; }
            if ((kind >> 1) % 8 == 2) { op_handle(r); break; }
            if ((kind >> 1) % 8 == 3) { op_own_rc(r); break; }
            if ((kind >> 1) % 8 == 4) { op_blocking(r); break; }
            if ((kind >> 1) % 8 == 5) { op_external(r); break; }
            if ((kind >> 1) % 8 == 6) { op_bridge_cycles(r); break; }
            size_t problems = gc_verify(r->heap);
            FZ_CHECK(&r->in, problems == 0, "gc_verify found %zu problem(s) (last: \"%s\")",
                     problems, fz_last_what);
            break;
        }
        }
        walk(r);
        check_deaths(r, 0);
        expect_no_new_reports(r, "a valid operation");
    }
    run_end(r);
    return 0;
}
