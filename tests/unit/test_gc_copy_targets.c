/* Unit tests of the tracer's own evacuation target spans (gc/evacuate.c,
 * tracer->copy_targets): copies of two classes that share a target entry
 * (class ids equal modulo GC_COPY_TARGETS), traced alternately, must fill
 * a few spans rather than open a new span at every switch; and with two
 * markers every object is still copied exactly once, intact. Both run in
 * GC_COMPACT_ALWAYS, where every small span is flagged and every object
 * that can move does. No randomness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "unit_errors.h"

/* Leaf objects: a payload only. One type per typed class: typed class ids
 * are handed out in order of first use, so the first and the
 * (GC_COPY_TARGETS + 1)th type share an entry. */
#define TYPES (GC_COPY_TARGETS + 1u)
static gc_type_t types[TYPES];

typedef struct leaf {
    uint64_t id, check;
} leaf_t;

static gc_heap_t *heap_new(int markers) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = GC_COMPACT_ALWAYS;
    o.markers = markers;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    return h;
}

static unsigned class_of(void *obj) {
    block_t *b = pool_block_of(obj);
    assert_non_null(b);
    return b->size_class;
}

static leaf_t *leaf_new(gc_thread_t *t, const gc_type_t *type, uint64_t id) {
    leaf_t *x = gc_alloc(t, type, sizeof *x);
    assert_non_null(x);
    x->id = id;
    x->check = id * UINT64_C(0x9e3779b97f4a7c15);
    return x;
}

static void leaves_check(void **slots, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const leaf_t *x = slots[i];
        assert_non_null(x);
        assert_int_equal(x->id, i);
        assert_int_equal(x->check, i * UINT64_C(0x9e3779b97f4a7c15));
    }
}

static void types_init(void) {
    for (unsigned k = 0; k < TYPES; k++) types[k] = (gc_type_t){ "leaf", NULL, NULL };
}

static void test_alternating_classes_share_spans(void **state) {
    (void)state;
    types_init();
    gc_heap_t *h = heap_new(1);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    /* Give each type its class, in order. */
    unsigned cls[TYPES];
    for (unsigned k = 0; k < TYPES; k++) cls[k] = class_of(leaf_new(t, &types[k], 0));
    const gc_type_t *a = &types[0], *b = &types[TYPES - 1];
    assert_int_not_equal(cls[0], cls[TYPES - 1]);
    assert_int_equal(cls[0] % GC_COPY_TARGETS, cls[TYPES - 1] % GC_COPY_TARGETS); /* they collide */

    enum { N = 4000 };
    void **slots = calloc(N, sizeof *slots);
    assert_non_null(slots);
    gc_root_add_range(h, slots, N);
    for (size_t i = 0; i < N; i++) slots[i] = leaf_new(t, i % 2 ? b : a, i);
    size_t spans_before = h->spans.count;
    for (int round = 0; round < 2; round++) {
        gc_stats_t s0, s1;
        gc_get_stats(h, &s0);
        gc_collect(t); /* every leaf moves, traced a, b, a, b ... */
        gc_get_stats(h, &s1);
        assert_true(s1.bytes_moved > s0.bytes_moved);
        leaves_check(slots, N);
        /* 4000 leaves of 16 bytes take a few spans per class; a new span
         * per switch took 4000. */
        assert_true(h->spans.count <= spans_before + 8);
        assert_int_equal(gc_verify(h), 0);
        assert_int_equal(gc_verify_untraced(h), 0);
    }

    gc_root_remove(h, (void **)slots);
    free(slots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_two_markers_copy_each_object_once(void **state) {
    (void)state;
    types_init();
    gc_heap_t *h = heap_new(2);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    /* markers = 2 runs the helper at any heap size; many classes in play,
     * so both markers copy into spans of their own at once. */
    enum { N = 100000 };
    void **slots = calloc(N, sizeof *slots);
    assert_non_null(slots);
    gc_root_add_range(h, slots, N);
    for (size_t i = 0; i < N; i++) slots[i] = leaf_new(t, &types[i % TYPES], i);
    for (int round = 0; round < 3; round++) {
        gc_collect(t);
        leaves_check(slots, N);
        assert_int_equal(gc_verify(h), 0);
        assert_int_equal(gc_verify_untraced(h), 0);
    }
    gc_root_remove(h, (void **)slots);
    free(slots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_alternating_classes_share_spans, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_two_markers_copy_each_object_once, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
