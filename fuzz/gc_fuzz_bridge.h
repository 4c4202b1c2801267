/* gc_fuzz_bridge.h — gc_fuzz's operations on an object's identity and on
 * the rc bridge (included once, by gc_fuzz.c, after its model walk and
 * choices, whose run_t, walk and pick_live they use):
 *   - gc_identity_hash, gc_type_of and gc_size_of of a live object; the
 *     first hash taken of an object is its hash for life (check_hashes,
 *     after every gc_collect: moves and promotions keep it);
 *   - gc_handle_new / gc_handle_get / the handle's last rc_release: a
 *     handle roots its object (the model walk starts from the handles too)
 *     and reads its current address;
 *   - gc_own_rc: a live object owns a new rc object (one or two
 *     references), which is destroyed only after its owner died, and by
 *     the end of gc_heap_destroy at the latest (run_end counts). */
#ifndef MULCH_GC_FUZZ_BRIDGE_H
#define MULCH_GC_FUZZ_BRIDGE_H

/* Every live object whose identity hash was taken still has it (moves by
 * compaction and promotions by minor collections included). */
static void check_hashes(run_t *r)
{
    for (size_t k = 0; k < r->nlive; k++) {
        int16_t id = r->live_list[k];
        if (!r->obj[id].hashed) continue;
        uintptr_t h = gc_identity_hash(r->addr[id]);
        FZ_CHECK(&r->in, h == r->obj[id].hash, "object %d: gc_identity_hash %#lx, was %#lx", id,
                 (unsigned long)h, (unsigned long)r->obj[id].hash);
    }
}

/* gc_identity_hash, gc_type_of and gc_size_of of a live object. */
static void op_identity(run_t *r)
{
    int16_t x = pick_live(r, 0);
    if (x < 0) return;
    mobj_t *m = &r->obj[x];
    void *p = r->addr[x];
    uintptr_t h = gc_identity_hash(p);
    if (!m->hashed) {
        m->hashed = 1;
        m->hash = h;
    }
    FZ_CHECK(&r->in, h == m->hash, "object %d: gc_identity_hash %#lx, was %#lx", x, (unsigned long)h,
             (unsigned long)m->hash);
    const gc_type_t *type = gc_type_of(p);
    FZ_CHECK(&r->in, type == (m->fin ? &T_FIN : &T_PLAIN), "object %d: gc_type_of gave %s", x,
             type != NULL ? type->name : "NULL");
    size_t size = gc_size_of(p), least = sizeof(gobj_t) + ((size_t)m->nslots + m->npay) * sizeof(void *);
    FZ_CHECK(&r->in, size >= least, "object %d: gc_size_of %zu, allocated at least %zu", x, size, least);
}

/* Bridge 1: make a handle to a live object (or NULL), or release one. */
static void op_handle(run_t *r)
{
    size_t h = fz_below(&r->in, N_HANDLE);
    int16_t y = pick_live(r, 1);
    if (r->handle[h] != NULL) {
        rc_release(r->handle[h]);
        r->handle[h] = NULL;
        return;
    }
    gc_handle_t *handle = gc_handle_new(r->heap, value_of(r, y));
    FZ_CHECK(&r->in, handle != NULL, "gc_handle_new returned NULL");
    r->handle[h] = handle;
    r->handle_m[h] = y;
}

/* An rc object that a GC object owns through gc_own_rc: destroyed only
 * after its owner died. */
typedef struct owned_rc {
    uint32_t owner;
    uint64_t check;
} owned_rc_t;

static void owned_rc_destroy(void *obj)
{
    run_t *r = &g_run;
    owned_rc_t *o = obj;
    FZ_CHECK(&r->in, o->owner < r->nobj && o->check == mix(o->owner ^ ~SALT),
             "gc_own_rc: destroyed rc object damaged (owner %u)", o->owner);
    FZ_CHECK(&r->in, r->destroying || r->obj[o->owner].dead,
             "gc_own_rc: rc object of live object %u destroyed", o->owner);
    g_rc_destroyed[o->owner]++;
}

/* Bridge 2: a live object takes a reference to a new rc object (a GC
 * point); sometimes two references to it. */
static void op_own_rc(run_t *r)
{
    int16_t x = pick_live(r, 0);
    uint8_t twice = fz_u8(&r->in) & 1;
    if (x < 0) return;
    owned_rc_t *o = rc_alloc(sizeof *o, owned_rc_destroy);
    FZ_CHECK(&r->in, o != NULL, "rc_alloc returned NULL");
    o->owner = (uint32_t)x;
    o->check = mix((uint64_t)x ^ ~SALT);
    for (unsigned k = 0; k <= twice; k++) {
        int got = gc_own_rc(r->t, r->addr[x], o);
        FZ_CHECK(&r->in, got == 0, "gc_own_rc gave %d", got);
        walk(r);                        /* a GC point: x may have moved */
    }
    r->obj[x].owned_rc++;
    rc_release(o);
}

#endif /* MULCH_GC_FUZZ_BRIDGE_H */
