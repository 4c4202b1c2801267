/* gc_fuzz_misuse.h — gc_fuzz's injected misuse (included once, by
 * gc_fuzz.c, after its model walk and choices): one wrong call per
 * operation (a pin of a stack address, an unpin of an unpinned object,
 * popping too many roots, removing an unregistered root, a weak reference
 * or an ephemeron key that is no GC object, gc_weak_get and
 * gc_ephemeron_value of a plain object, gc_root_add of a field), each of
 * which must be reported exactly once, with the function's name, and
 * change nothing: the model walk after the operation checks the graph. */
#ifndef MULCH_GC_FUZZ_MISUSE_H
#define MULCH_GC_FUZZ_MISUSE_H

/* One misuse call: exactly one report with the function's prefix; the walk
 * after the operation checks that the graph did not change. */
#define MISUSE(r, call_expr, prefix, name)                                 \
    do {                                                                   \
        size_t before_ = fz_report_count();                                \
        call_expr;                                                         \
        fz_expect_reports(&(r)->in, before_, 1, (prefix), (name));         \
        (r)->expected_reports++;                                           \
    } while (0)

static void op_misuse(run_t *r)
{
    uint8_t kind = fz_u8(&r->in) % 9;
    int16_t x = pick_live(r, 0);
    size_t g = fz_below(&r->in, N_GLOBAL);
    long local[4] = { 0 };
    void *got = NULL;

    switch (kind) {
    case 0:
        MISUSE(r, gc_pin(r->heap, local), "gc_pin: ", "gc_pin(stack address)");
        break;
    case 1:
        if (x < 0 || r->obj[x].pins) return;
        MISUSE(r, gc_unpin(r->heap, r->addr[x]), "gc_unpin: ", "gc_unpin(not pinned)");
        break;
    case 2:
        MISUSE(r, gc_pop_roots(r->t, r->base_depth + r->depth + 1), "gc_pop_roots: ", "gc_pop_roots(too many)");
        break;
    case 3:
        if (r->global_on[g]) return;
        MISUSE(r, gc_root_remove(r->heap, &r->global[g]), "gc_root_remove: ",
               "gc_root_remove(not registered)");
        break;
    case 4:
        MISUSE(r, got = gc_weak_new(r->t, local), "gc_weak_new: ", "gc_weak_new(foreign)");
        FZ_CHECK(&r->in, got == NULL, "gc_weak_new(foreign) gave %p", got);
        walk(r);                        /* a GC point */
        break;
    case 5:
        if (x < 0) return;
        got = (void *)1;
        MISUSE(r, got = gc_weak_get(r->addr[x]), "gc_weak_get: ", "gc_weak_get(not weak)");
        FZ_CHECK(&r->in, got == NULL, "gc_weak_get(not weak) gave %p", got);
        break;
    case 6:
        MISUSE(r, got = gc_ephemeron_new(r->t, local, NULL), "gc_ephemeron_new: ", "gc_ephemeron_new(foreign key)");
        FZ_CHECK(&r->in, got == NULL, "gc_ephemeron_new(foreign key) gave %p", got);
        walk(r);                        /* a GC point */
        break;
    case 7:
        if (x < 0) return;
        got = (void *)1;
        MISUSE(r, got = gc_ephemeron_value(r->addr[x]), "gc_ephemeron_value: ", "gc_ephemeron_value(not one)");
        FZ_CHECK(&r->in, got == NULL, "gc_ephemeron_value(not one) gave %p", got);
        break;
    default: {
        if (x < 0 || r->obj[x].nslots == 0) return;
        gobj_t *o = r->addr[x];
        MISUSE(r, gc_root_add(r->heap, &o->slot[0]), "gc_root_add: ", "gc_root_add(field)");
        break;
    }
    }
}

#undef MISUSE

#endif /* MULCH_GC_FUZZ_MISUSE_H */
