/* Unit test of gc_thread_drop_unfinished (gc/alloc.c), which a fork child
 * runs for each thread it drops: a thread that was between taking a cell
 * of its bin and writing the cell's header left an allocated cell with a
 * zero header, which the child's gc_heap_walk handed to its callback with
 * a NULL type and gc_verify reported as an invalid type pointer. The test
 * makes that state by hand (a fork cannot be stopped inside the window):
 * one finished object, one whose header is cleared, then the drop. The
 * finished object stays; the unfinished cell is free. No randomness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "gc_object.h"
#include "unit_errors.h"

/* Above GC_HEADERLESS_MAX: a class whose cells have headers. */
typedef struct wide {
    uint64_t words[40];
} wide_t;

static const gc_type_t wide_type = { "wide", NULL, NULL };

typedef struct census {
    size_t objects, untyped;
} census_t;

static void count(void *obj, const gc_type_t *type, size_t size, void *ctx) {
    (void)obj;
    (void)size;
    census_t *c = ctx;
    c->objects++;
    c->untyped += type != &wide_type;
}

static void test_unfinished_cell_dropped(void **state) {
    (void)state;
    gc_heap_t *h = gc_heap_create(NULL);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *finished = gc_alloc(t, &wide_type, sizeof(wide_t));
    void *unfinished = gc_alloc(t, &wide_type, sizeof(wide_t));
    assert_non_null(finished);
    assert_non_null(unfinished);
    assert_ptr_equal(pool_block_of(finished), pool_block_of(unfinished)); /* one bin's span */
    /* as if its thread stopped before gc_object_init_zeroed wrote the type */
    memset((unsigned char *)unfinished - GC_HEADER, 0, GC_HEADER);

    /* (no walk before the drop: a walk's stop retires the bins) */
    gc_thread_drop_unfinished(t);
    census_t after = { 0, 0 };
    assert_int_equal(gc_heap_walk(h, count, &after), 1);
    assert_int_equal(after.untyped, 0);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(reports, 0);

    /* the bin goes on from where it was; the dropped cell is free after
     * the next collection's sweep, and the finished one (rooted) stays */
    gc_push_root(t, &finished);
    gc_collect(t);
    census_t collected = { 0, 0 };
    assert_int_equal(gc_heap_walk(h, count, &collected), 1);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    assert_int_equal(reports, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unfinished_cell_dropped, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
