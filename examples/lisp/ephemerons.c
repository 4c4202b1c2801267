/* ephemerons.c — (make-ephemeron key datum) and its accessors, the names
 * MIT Scheme and Racket use: data attached to an object without keeping
 * the object alive, even when the data refers back to it (a weak-keyed
 * table: an alist of ephemerons).
 *
 * A Lisp ephemeron is a small wrapper (kind LISP_EPHEMERON) around the
 * backend's ephemeron object (mulch: gc_ephemeron_new), which it traces
 * like any field. The key must be a heap object; the datum may be any
 * value (immediates are tagged, which mulch keeps as they are). Once a
 * collection finds the key dead, ephemeron-broken? answers #t and
 * ephemeron-key / ephemeron-datum give #f. Under Boehm (an emulation, see
 * backend.h) a datum that refers to its key keeps it alive.
 */
#include "lisp.h"

static void ephemeron_trace(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, &((struct lisp_ephemeron *)obj)->ephemeron);
}

static const gc_type_t ephemeron_type = { "lisp-ephemeron", ephemeron_trace, NULL };

static void *ephemeron_arg(value v, const char *who)
{
    if (!lisp_is(v, LISP_EPHEMERON)) lisp_type_error(who, "ephemeron", v);
    return ((struct lisp_ephemeron *)v)->ephemeron;
}

static value prim_make_ephemeron(value *args, int argc)
{
    (void)argc;
    if (!lisp_is_object(args[0])) lisp_type_error("make-ephemeron", "a heap object as the key", args[0]);
    void *ephemeron = lisp_backend_ephemeron_new(args[0], args[1]); /* a GC point */
    LISP_ROOT(ephemeron);
    struct lisp_ephemeron *e = lisp_alloc(&ephemeron_type, sizeof *e);
    e->hdr = LISP_HDR(LISP_EPHEMERON, 0);
    lisp_write_init(e, &e->ephemeron, ephemeron); /* (e is the last allocation) */
    lisp_unroot(1);
    return e;
}

static value prim_ephemeron_key(value *args, int argc)
{
    (void)argc;
    value key = lisp_backend_ephemeron_key(ephemeron_arg(args[0], "ephemeron-key"));
    return key == NULL ? LISP_FALSE : key;
}

static value prim_ephemeron_datum(value *args, int argc)
{
    (void)argc;
    void *ephemeron = ephemeron_arg(args[0], "ephemeron-datum");
    if (lisp_backend_ephemeron_key(ephemeron) == NULL) return LISP_FALSE;
    value datum = lisp_backend_ephemeron_datum(ephemeron);
    return datum == NULL ? LISP_FALSE : datum;
}

static value prim_ephemeron_brokenp(value *args, int argc)
{
    (void)argc;
    return lisp_bool(lisp_backend_ephemeron_key(ephemeron_arg(args[0], "ephemeron-broken?")) == NULL);
}

static value prim_ephemeronp(value *args, int argc)
{
    (void)argc;
    return lisp_bool(lisp_is(args[0], LISP_EPHEMERON));
}

void lisp_ephemerons_init(void)
{
    static const struct { const char *name; lisp_prim_fn fn; int min, max; } table[] = {
        { "make-ephemeron", prim_make_ephemeron, 2, 2 },   { "ephemeron-key", prim_ephemeron_key, 1, 1 },
        { "ephemeron-datum", prim_ephemeron_datum, 1, 1 }, { "ephemeron-broken?", prim_ephemeron_brokenp, 1, 1 },
        { "ephemeron?", prim_ephemeronp, 1, 1 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        lisp_define_primitive(table[i].name, table[i].fn, table[i].min, table[i].max);
}
