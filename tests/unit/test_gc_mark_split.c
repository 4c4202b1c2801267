/* Unit tests of splitting a range entry (mark.c gc_mark_split_range, used
 * by parallel.c's donation: an idle marker gets half of a wide object's
 * remaining chunks instead of the whole range entry, which two markers
 * passed back and forth). Inside a real collection, a wide object's trace
 * function pushes its range entry, splits it, and checks the halves: the
 * entry keeps the first half of the chunks, the half the rest, contiguous
 * and with the same tag; split again and again, a range ends as one-chunk
 * entries, which are not split. The half is
 * pushed back, and after the collection every object the wide object
 * holds survives and nothing else does (a slot the split lost would free
 * its object). One marker: the split is the test's, not a donation's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "unit_errors.h"

typedef struct leaf {
    uint64_t id;
} leaf_t;
static const gc_type_t leaf_type = { "leaf", NULL, NULL };

typedef struct wide {
    size_t n;
    void  *slots[];
} wide_t;

/* What the wide object's trace function saw (one collection at a time). */
static struct {
    bool   checked;       /* the trace function ran the checks            */
    bool   split;         /* gc_mark_split_range's answer                 */
    size_t chunks_before; /* of the range entry it pushed                 */
    size_t kept, given;   /* chunks of the entry and of the half after    */
    bool   contiguous;    /* the half starts where the kept part ends     */
    bool   same_tag;
    size_t splits;        /* repeat: splits until none was left           */
} seen;
static bool repeat; /* split until every range entry has one chunk */

static gc_mark_entry_t *bottom_range(gc_tracer_t *tracer) {
    for (size_t k = 0; k < tracer->depth; k++)
        if (tracer->stack[k].type != NULL && strcmp(tracer->stack[k].type->name, "mulch.range") == 0)
            return &tracer->stack[k];
    return NULL;
}

static void wide_trace(void *obj, gc_tracer_t *tracer) {
    wide_t *w = obj;
    size_t before = tracer->depth;
    gc_trace_range(tracer, w->slots, w->n);
    gc_mark_entry_t *range = bottom_range(tracer);
    seen.checked = true;
    if (range == NULL || tracer->depth <= before) return;
    uintptr_t word = (uintptr_t)range->obj;
    seen.chunks_before = word >> GC_RANGE_SHIFT;
    gc_mark_entry_t half = { NULL, NULL };
    seen.split = gc_mark_split_range(tracer, tracer->depth, &half);
    if (!seen.split) return;
    uintptr_t kept = (uintptr_t)range->obj, given = (uintptr_t)half.obj;
    seen.kept = kept >> GC_RANGE_SHIFT;
    seen.given = given >> GC_RANGE_SHIFT;
    seen.contiguous = (void **)(kept & GC_RANGE_ADDRESS) + seen.kept * GC_RANGE_CHUNK == (void **)(given & GC_RANGE_ADDRESS);
    seen.same_tag = (kept & GC_ENTRY_YOUNG) == (given & GC_ENTRY_YOUNG) && (kept & GC_ENTRY_YOUNG) == (word & GC_ENTRY_YOUNG);
    gc_tracer_push_entry(tracer, half);
    seen.splits = 1;
    while (repeat && gc_mark_split_range(tracer, tracer->depth, &half)) {
        gc_tracer_push_entry(tracer, half);
        seen.splits++;
    }
}
static const gc_type_t wide_type = { "wide", wide_trace, NULL };

static void count_object(void *obj, const gc_type_t *type, size_t size, void *ctx) {
    (void)obj;
    (void)type;
    (void)size;
    ++*(size_t *)ctx;
}

/* A wide object of n slots, each a distinct leaf, then garbage; after a
 * collection: the split's figures, and exactly 1 + n objects left. */
static void run(size_t n, size_t expect_chunks, bool repeat_splits) {
    repeat = repeat_splits;
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = 1;
    o.compaction = GC_COMPACT_NEVER;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *root = NULL;
    gc_root_add_range(h, &root, 1);
    wide_t *w = gc_alloc(t, &wide_type, sizeof *w + n * sizeof(void *));
    assert_non_null(w);
    w->n = n;
    root = w;
    for (size_t i = 0; i < n; i++) {
        leaf_t *leaf = gc_alloc(t, &leaf_type, sizeof *leaf);
        assert_non_null(leaf);
        leaf->id = i;
        gc_write(t, root, &((wide_t *)root)->slots[i], leaf);
        assert_non_null(gc_alloc(t, &leaf_type, sizeof *leaf)); /* garbage */
    }
    memset(&seen, 0, sizeof seen);
    gc_collect(t);
    assert_true(seen.checked);
    assert_int_equal(seen.chunks_before, expect_chunks);
    if (expect_chunks < 2) {
        assert_false(seen.split);
    } else {
        assert_true(seen.split);
        assert_int_equal(seen.kept, expect_chunks / 2);
        assert_int_equal(seen.given, expect_chunks - expect_chunks / 2);
        assert_true(seen.contiguous);
        assert_true(seen.same_tag);
        /* a range of c chunks ends as c one-chunk entries after c - 1 splits */
        if (repeat) assert_int_equal(seen.splits, expect_chunks - 1);
    }
    assert_int_equal(reports, 0);
    size_t objects = 0;
    gc_heap_walk(h, count_object, &objects);
    assert_int_equal(objects, 1 + n);
    w = root;
    for (size_t i = 0; i < n; i++) assert_int_equal(((leaf_t *)w->slots[i])->id, i);
    gc_root_remove(h, &root);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* (n - 1) / GC_RANGE_CHUNK chunks go into range entries (mark.c range_defer). */
static void test_split_odd_chunks(void **state) {
    (void)state;
    run(7 * GC_RANGE_CHUNK + 3, 7, false);
}

static void test_split_even_chunks(void **state) {
    (void)state;
    run(40 * GC_RANGE_CHUNK + 1, 40, false);
}

/* Split until no range entry of two chunks or more is left: one-chunk
 * entries are not split (range_defer makes none smaller than 4 chunks),
 * and no slot is lost on the way. */
static void test_split_down_to_single_chunks(void **state) {
    (void)state;
    run(GC_RANGE_MIN + 1, GC_RANGE_MIN / GC_RANGE_CHUNK, true);
    run(33 * GC_RANGE_CHUNK + 1, 33, true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_odd_chunks, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_split_even_chunks, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_split_down_to_single_chunks, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
