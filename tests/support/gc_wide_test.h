/* gc_wide_test.h — the wide object of the range-entry tests
 * (tests/api/test_gc_wide_range.c, test_gc_review_s25_g.c,
 * tests/stress/test_gc_parallel.c): a count, then that many slots, traced
 * with one gc_trace_range that starts one word into the object, so a long
 * one is deferred as range entries (gc/mark.c).
 *
 * Include it after <mulch/gc.h>. Everything here is static and belongs to
 * the including file. */
#ifndef MULCH_GC_WIDE_TEST_H
#define MULCH_GC_WIDE_TEST_H

#include <stddef.h>

typedef struct wide {
    size_t n;
    void  *slots[];
} wide_t;

static inline void trace_wide(void *obj, gc_tracer_t *tracer)
{
    wide_t *w = obj;
    gc_trace_range(tracer, w->slots, w->n);
}
static const gc_type_t T_WIDE = { "test.wide", trace_wide, NULL };

#endif
