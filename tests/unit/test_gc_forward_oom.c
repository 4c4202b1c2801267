/* Unit tests of evacuation for headerless objects when their spans' state
 * tables cannot be mapped (os_fail_after): those spans are simply not
 * evacuated that time — every object stays where it is, intact and
 * reachable — and the next collection moves them as usual. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "unit_errors.h"

typedef struct node {
    void    *next;
    uint64_t id;
} node_t;

static void node_trace(void *obj, gc_tracer_t *tracer) {
    gc_trace_slot(tracer, &((node_t *)obj)->next);
}
static const gc_type_t node_type = { "node", node_trace, NULL };

static int teardown(void **state) {
    os_fail_after(0);
    return teardown_errors(state);
}

static void list_check(const node_t *x, size_t n) {
    for (size_t i = 0; i < n; i++, x = x->next) {
        assert_non_null(x);
        assert_int_equal(x->id, i);
    }
    assert_null(x);
}

static void test_forward_tables_unavailable(void **state) {
    (void)state;
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = GC_COMPACT_ALWAYS;
    o.markers = 1;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *head = NULL;
    gc_push_root(t, &head);
    enum { N = 3000 };
    for (size_t i = N; i-- > 0;) {
        node_t *x = gc_alloc(t, &node_type, sizeof *x);
        assert_non_null(x);
        x->id = i;
        gc_write(t, x, &x->next, head);
        head = x;
    }
    block_t *span = pool_block_of(head);
    assert_non_null(span);
    assert_true(gc_span_headerless(span));
    gc_collect(t); /* warm: the tracer's stack and every vector mapped once */
    list_check(head, N);

    /* The warm collection's tables were small: kept for the next one. */
    assert_non_null(h->forward_spare);
    /* Without them, the first mapping of the collection is the state
     * tables'. */
    gc_evacuation_spare_free(h);
    void *before = head;
    gc_stats_t s0, s1;
    gc_get_stats(h, &s0);
    os_fail_after(1);
    gc_collect(t);
    assert_int_equal(os_fail_after(0), 0); /* the failure was used */
    gc_get_stats(h, &s1);
    assert_ptr_equal(head, before);
    assert_int_equal(s1.bytes_moved, s0.bytes_moved);
    list_check(head, N);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);

    gc_collect(t); /* tables again: everything moves */
    gc_get_stats(h, &s0);
    assert_true(head != before);
    assert_true(s0.bytes_moved >= s1.bytes_moved + (uint64_t)N * sizeof(node_t));
    list_check(head, N);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    assert_int_equal(reports, 0);

    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_forward_tables_unavailable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
