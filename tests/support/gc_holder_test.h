/* gc_holder_test.h — the objects of the heap-check tests
 * (tests/api/test_gc_verify_references.c, test_gc_verify_untraced.c): a
 * holder of two reference fields and a plain word, traced whole or with
 * `right` forgotten (the classic embedder bug), in the three shapes a span
 * can hold (headerless in a typed span, with a header when finalizable,
 * large in a span of its own).
 *
 * Include it after <mulch/gc.h> and mulch_test.h, and define
 * holder_finalize (the finalizer of the finalizable types). Everything
 * here is static and belongs to the including file. */
#ifndef MULCH_GC_HOLDER_TEST_H
#define MULCH_GC_HOLDER_TEST_H

#include <stdint.h>

typedef struct holder {
    void     *left, *right;
    uintptr_t word; /* read by no trace function */
} holder_t;

static void trace_both(void *obj, gc_tracer_t *tracer)
{
    holder_t *h = obj;
    gc_trace_slot(tracer, &h->left);
    gc_trace_slot(tracer, &h->right);
}

/* `right` is forgotten. */
static void trace_left_only(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, &((holder_t *)obj)->left);
}

static void holder_finalize(void *obj);

static const gc_type_t T_LEAF = { "test.leaf", NULL, NULL };
static const gc_type_t T_PAIR = { "test.pair", trace_both, NULL };
static const gc_type_t T_PAIR_FIN = { "test.pair_fin", trace_both, holder_finalize };
static const gc_type_t T_FORGET = { "test.forget", trace_left_only, NULL };
static const gc_type_t T_FORGET_FIN = { "test.forget_fin", trace_left_only, holder_finalize };

#define LARGE_BYTES ((size_t)300 << 10) /* > 256 KiB: a span of its own */

static void *alloc_or_fail(gc_thread_t *t, const gc_type_t *type, size_t size)
{
    void *p = gc_alloc(t, type, size);
    EXPECT_NONNULL(p);
    return p;
}

enum holder_kind { HOLDER_HEADERLESS, HOLDER_HEADER, HOLDER_LARGE, HOLDER_KINDS };
static const char *const k_holder_names[] = { "headerless (typed span)", "with a header (finalizable)",
                                              "large (own span)" };

/* An object of the kind: its trace function forgets `right`, or not. */
static holder_t *holder_new(gc_thread_t *t, enum holder_kind kind, bool forgetful)
{
    switch (kind) {
    case HOLDER_HEADERLESS: return alloc_or_fail(t, forgetful ? &T_FORGET : &T_PAIR, sizeof(holder_t));
    case HOLDER_HEADER: return alloc_or_fail(t, forgetful ? &T_FORGET_FIN : &T_PAIR_FIN, sizeof(holder_t));
    default: return alloc_or_fail(t, forgetful ? &T_FORGET : &T_PAIR, LARGE_BYTES);
    }
}

#endif
