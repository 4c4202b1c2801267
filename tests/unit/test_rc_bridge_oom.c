/* Unit tests of the bridge's ownership lists when the OS refuses a mapping
 * (os_fail_after walks every mapping of the call in turn): an rc object
 * owned through gc_own_rc is released exactly once, by the collection that
 * finds its owner dead or by gc_heap_destroy — never lost, never tied to
 * another object that later takes the dead owner's cell. */
#include <setjmp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "rc_internal.h"
#include "unit_errors.h"

typedef struct cell {
    void    *next;
    uint64_t id;
} cell_t;

static const gc_type_t cell_type = { "cell", NULL, NULL };

static int destroys;
static void count_destroy(void *obj) {
    (void)obj;
    destroys++;
}

static int teardown(void **state) {
    os_fail_after(0);
    return teardown_errors(state);
}

/* Mappings gc_heap_destroy / gc_collect make are far fewer than this. */
enum { MAX_FAILURE = 64 };

/* gc_heap_destroy releases what live owners hold, even when the list it
 * gathers them in cannot grow. */
static void test_heap_destroy_releases_under_oom(void **state) {
    (void)state;
    for (uint64_t n = 1; n <= MAX_FAILURE; n++) {
        destroys = 0;
        gc_heap_t *h = gc_heap_create(NULL);
        assert_non_null(h);
        gc_thread_t *t = gc_thread_attach(h);
        assert_non_null(t);
        cell_t *owner = gc_alloc(t, &cell_type, sizeof *owner);
        assert_non_null(owner);
        void *res = rc_alloc(16, count_destroy);
        assert_non_null(res);
        assert_int_equal(gc_own_rc(t, owner, res), 0);
        rc_release(res); /* the owner's reference is the last one */
        gc_push_root(t, (void **)&owner);
        os_fail_after(n);
        gc_heap_destroy(h); /* owner still alive: destroy releases it */
        os_fail_after(0);
        if (destroys != 1) fail_msg("failure at mapping %" PRIu64 ": %d destroys, want 1", n, destroys);
    }
    assert_int_equal(reports, 0);
}

/* A collection that finds an owner dead releases its rc object, even when
 * the release list cannot grow; a new object in the dead owner's cell does
 * not inherit it. */
static void test_collection_releases_under_oom(void **state) {
    (void)state;
    for (uint64_t n = 1; n <= MAX_FAILURE; n++) {
        destroys = 0;
        gc_heap_t *h = gc_heap_create(NULL);
        assert_non_null(h);
        gc_thread_t *t = gc_thread_attach(h);
        assert_non_null(t);
        /* keepers hold the span, so the dead owner's cell is reused */
        cell_t *keep = gc_alloc(t, &cell_type, sizeof *keep), *owner = NULL, *heir = NULL;
        gc_push_root(t, (void **)&keep);
        gc_push_root(t, (void **)&owner);
        gc_push_root(t, (void **)&heir);
        owner = gc_alloc(t, &cell_type, sizeof *owner);
        assert_non_null(owner);
        void *res = rc_alloc(16, count_destroy);
        assert_non_null(res);
        assert_int_equal(gc_own_rc(t, owner, res), 0);
        rc_release(res);
        gc_collect(t); /* warm: the collector's own vectors mapped once */
        assert_int_equal(destroys, 0);

        void *dead = owner;
        owner = NULL;
        os_fail_after(n);
        gc_collect(t);
        os_fail_after(0);
        /* new objects take the free cells, the dead owner's among them */
        for (int i = 0; i < 8 && heir != dead; i++) heir = gc_alloc(t, &cell_type, sizeof *heir);
        gc_collect(t);
        gc_collect(t);
        if (destroys != 1)
            fail_msg("failure at mapping %" PRIu64 ": %d destroys after the owner died, want 1 (heir %s the "
                     "owner's cell)",
                     n, destroys, heir == dead ? "took" : "did not take");
        gc_pop_roots(t, 3);
        gc_thread_detach(t);
        gc_heap_destroy(h);
        assert_int_equal(destroys, 1);
    }
    assert_int_equal(reports, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_heap_destroy_releases_under_oom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collection_releases_under_oom, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
