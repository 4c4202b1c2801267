/* Unit test of the root stack's reserve (gc/roots.c): when the stack cannot
 * grow (os_fail_after fails the mapping), a push is still honoured in the
 * GC_ROOT_RESERVE spare entries and reported; the object it roots survives
 * collections, and the program's matching pops remove exactly the roots
 * they should. Past the reserve a push is dropped, reported as such. No
 * randomness (no seed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "pool_internal.h"
#include "unit_errors.h"

typedef struct blob {
    uint64_t id, pad;
} blob_t;

static const gc_type_t blob_type = { "blob", NULL, NULL };

enum { FIRST = 1024, TOTAL = FIRST + GC_ROOT_RESERVE };
static blob_t *slots[TOTAL + 1];

static int teardown(void **state) {
    os_fail_after(0);
    return teardown_errors(state);
}

/* The rooted objects kept their contents (a freed cell would be zeroed by
 * the garbage allocated into it next round) and gc_verify finds every
 * root slot naming a live object. */
static void expect_ids(gc_heap_t *heap, size_t count) {
    for (size_t i = 0; i < count; i++) assert_int_equal(slots[i]->id, i);
    int before = reports;
    assert_int_equal(gc_verify(heap), 0);
    assert_int_equal(gc_verify_untraced(heap), 0);
    assert_int_equal(reports, before);
}

static void test_pushes_kept_in_reserve_when_the_stack_cannot_grow(void **state) {
    (void)state;
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = GC_COMPACT_NEVER;
    gc_heap_t *heap = gc_heap_create(&o);
    assert_non_null(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    assert_non_null(t);
    for (size_t i = 0; i < FIRST; i++) {
        slots[i] = gc_alloc(t, &blob_type, sizeof(blob_t));
        assert_non_null(slots[i]);
        slots[i]->id = i;
        gc_push_root(t, (void **)&slots[i]);
    }
    assert_int_equal(t->root_capacity, FIRST);
    /* the reserve's objects, rooted through the reserve only */
    for (size_t i = FIRST; i <= TOTAL; i++) {
        slots[i] = gc_alloc(t, &blob_type, sizeof(blob_t));
        assert_non_null(slots[i]);
        slots[i]->id = i;
    }
    reports = 0;
    for (size_t i = FIRST; i < TOTAL; i++) {
        os_fail_after(1);
        gc_push_root(t, (void **)&slots[i]);
        os_fail_after(0);
        assert_int_equal(reports, (int)(i - FIRST + 1));
        assert_non_null(strstr(last_what, "kept in its reserve"));
    }
    assert_int_equal(gc_root_depth(t), TOTAL);
    os_fail_after(1);
    gc_push_root(t, (void **)&slots[TOTAL]); /* past the reserve */
    os_fail_after(0);
    assert_non_null(strstr(last_what, "dropped"));
    assert_int_equal(gc_root_depth(t), TOTAL);

    /* Garbage, then collections: every rooted object stays, at its place
     * (compaction is off), with its contents. */
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < 20000; i++) {
            blob_t *garbage = gc_alloc(t, &blob_type, sizeof(blob_t));
            assert_non_null(garbage);
        }
        gc_collect(t);
        expect_ids(heap, TOTAL);
    }
    reports = 0;
    /* The pops match the honoured pushes: the first FIRST roots remain. */
    gc_pop_roots(t, GC_ROOT_RESERVE);
    assert_int_equal(gc_root_depth(t), FIRST);
    gc_collect(t);
    expect_ids(heap, FIRST);
    /* The stack grows again once memory is back. */
    gc_push_root(t, (void **)&slots[FIRST]);
    assert_int_equal(t->root_capacity, 2 * FIRST);
    assert_int_equal(reports, 0);
    gc_pop_roots_to(t, 0);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pushes_kept_in_reserve_when_the_stack_cannot_grow, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
