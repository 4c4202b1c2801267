/* gc_fuzz_refs.h — gc_fuzz's operations that make and drop references
 * (included once, by gc_fuzz.c, after its model and choices): set and
 * clear a field (an object, NULL or a tagged immediate, through
 * gc_write), push and pop the root stack, add and remove global roots,
 * set the slots a root callback traces (and remove and re-add the
 * callback), make weak references and ephemerons into registered slots,
 * pin and unpin.
 *
 * Invariants: each operation changes the heap and the model alike (the
 * model's slot, root or pin mirrors the call just made), so the walk
 * after the operation finds exactly the model's graph; an object is
 * reached only through a root or a field, never a raw pointer kept across
 * a GC point, except pinned objects (pin_addr). */
#ifndef MULCH_GC_FUZZ_REFS_H
#define MULCH_GC_FUZZ_REFS_H


static void op_set_field(run_t *r, int clear)
{
    int16_t x = pick_live(r, 0);
    size_t field = fz_u8(&r->in);
    uint8_t kind = fz_u8(&r->in);
    int16_t y = pick_live(r, 1);
    if (x < 0 || r->obj[x].nslots == 0) return;
    gobj_t *p = r->addr[x];
    unsigned j = (unsigned)(field % r->obj[x].nslots);
    void *value = NULL;
    int16_t m = V_NULL;
    if (!clear && kind % 5 == 4) {                  /* a tagged immediate */
        uintptr_t tag = ((uintptr_t)kind << 3) | 1u | (uintptr_t)(kind & 6);
        value = (void *)tag;
        m = V_TAG;
        r->obj[x].tag[j] = tag;
    } else if (!clear) {
        m = y;
        value = value_of(r, y);
    }
    gc_write(r->t, p, &p->slot[j], value);
    r->obj[x].slot[j] = m;
}

static void op_stack(run_t *r)
{
    uint8_t kind = fz_u8(&r->in);
    int16_t y = pick_live(r, 1);
    if (kind % 3 != 2 && r->depth < N_STACK) {
        r->stack[r->depth] = value_of(r, y);
        r->stack_m[r->depth] = y;
        gc_push_root(r->t, &r->stack[r->depth]);
        r->depth++;
    } else if (r->depth > 0) {
        size_t n = 1 + (kind >> 2) % r->depth;
        if (kind & 2) gc_pop_roots(r->t, n);
        else gc_pop_roots_to(r->t, r->base_depth + r->depth - n);
        r->depth -= n;
    }
    size_t depth = gc_root_depth(r->t);
    FZ_CHECK(&r->in, depth == r->base_depth + r->depth, "gc_root_depth %zu, model %zu",
             depth, r->base_depth + r->depth);
}

static void op_global(run_t *r)
{
    size_t g = fz_below(&r->in, N_GLOBAL);
    int16_t y = pick_live(r, 1);
    if (r->global_on[g] && (y == V_NULL)) {          /* unregister */
        gc_root_remove(r->heap, &r->global[g]);
        r->global_on[g] = 0;
        r->global[g] = NULL;
        r->global_m[g] = V_NULL;
        return;
    }
    r->global[g] = value_of(r, y);
    r->global_m[g] = y;
    if (!r->global_on[g]) gc_root_add(r->heap, &r->global[g]);
    r->global_on[g] = 1;
}

static void cb_roots(gc_tracer_t *tracer, void *ctx)
{
    run_t *r = ctx;
    gc_trace_range(tracer, r->cb, N_CB);
}

/* Set a callback-traced slot, or unregister / register the callback. */
static void op_callback(run_t *r)
{
    uint8_t kind = fz_u8(&r->in);
    int16_t y = pick_live(r, 1);
    if (kind % 8 == 7) {
        if (r->cb_on) {
            gc_root_remove_callback(r->heap, cb_roots, r);
            for (size_t i = 0; i < N_CB; i++) { r->cb[i] = NULL; r->cb_m[i] = V_NULL; }
        } else {
            gc_root_add_callback(r->heap, cb_roots, r);
        }
        r->cb_on = !r->cb_on;
        return;
    }
    if (!r->cb_on) return;
    size_t i = kind % N_CB;
    r->cb[i] = value_of(r, y);
    r->cb_m[i] = y;
}

static void op_weak_new(run_t *r)
{
    size_t w = fz_below(&r->in, N_WEAK);
    int16_t y = pick_live(r, 1);
    /* The target is rooted (it is live in the model); the weak object goes
     * straight into a registered slot. */
    void *weak = gc_weak_new(r->t, value_of(r, y));
    FZ_CHECK(&r->in, weak != NULL, "gc_weak_new returned NULL");
    r->weak[w] = weak;
    r->weak_m[w] = y;
}

/* An ephemeron into a registered slot: a live key, and a live object,
 * NULL or a tagged immediate for the value (both rooted, as live in the
 * model, across the call). */
static void op_ephemeron_new(run_t *r)
{
    size_t e = fz_below(&r->in, N_EPH);
    int16_t key = pick_live(r, 0);
    uint8_t kind = fz_u8(&r->in);
    int16_t value = kind % 8 == 0 ? V_NULL : kind % 8 == 1 ? V_TAG : pick_live(r, 1);
    uintptr_t tag = value == V_TAG ? ((uintptr_t)kind << 4) | 1u : 0;
    if (key < 0) return;
    void *eph = gc_ephemeron_new(r->t, r->addr[key], value == V_TAG ? (void *)tag : value_of(r, value));
    FZ_CHECK(&r->in, eph != NULL, "gc_ephemeron_new returned NULL");
    r->eph[e] = eph;
    r->eph_key[e] = key;
    r->eph_value[e] = value;
    r->eph_tag[e] = tag;
}

static void op_pin(run_t *r, int unpin)
{
    if (unpin) {
        size_t start = fz_u8(&r->in);
        for (uint32_t k = 0; k < r->nobj; k++) {
            mobj_t *m = &r->obj[(start + k) % r->nobj];
            if (m->pins == 0) continue;
            gc_unpin(r->heap, m->pin_addr);
            if (--m->pins == 0) m->pin_addr = NULL;
            return;
        }
        return;
    }
    int16_t x = pick_live(r, 0);
    if (x < 0) return;
    gc_pin(r->heap, r->addr[x]);
    if (r->obj[x].pins++ == 0) r->obj[x].pin_addr = r->addr[x];
}

#endif /* MULCH_GC_FUZZ_REFS_H */
