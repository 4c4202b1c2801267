/* Unit test of gc_own_rc pairs when a collection runs out of memory
 * (os_fail_after fails its nth mapping, n = 1, 2, ..., each on a fresh
 * heap). gc_own_rc reserves room on the release list for every pair, so
 * the collection that finds the owner dead queues its rc object whatever
 * fails: the object is released by that collection, in every run. Were it
 * not (a run "hit"), the pair would have to wait for a later collection
 * without naming the dead owner's address: that cell is free after the
 * sweep, and a new object allocated there would otherwise be taken for the
 * owner. Such runs fill the cell with live objects and check that the next
 * collection releases the rc object, and the test then fails anyway,
 * since the reservation promised no delay. No randomness (no seed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <mulch/rc.h>

#include "gc_internal.h"
#include "pool_internal.h"
#include "unit_errors.h"

typedef struct blob {
    uint64_t id;
    uint64_t pad[2];
} blob_t;

static const gc_type_t blob_type = { "blob", NULL, NULL };

static int released;
static void rc_destroyed(void *obj) {
    (void)obj;
    released++;
}

static int teardown(void **state) {
    os_fail_after(0);
    return teardown_errors(state);
}

enum { FILL = 4096 };
static void *fill[FILL];

/* 1: the failure hit the release queue and the test went on; 0: it did not. */
static int run(uint64_t n) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = GC_COMPACT_NEVER;
    o.markers = 1;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    released = 0;
    blob_t *owner = gc_alloc(t, &blob_type, sizeof *owner);
    assert_non_null(owner);
    void *rc = rc_alloc(16, rc_destroyed);
    assert_non_null(rc);
    assert_int_equal(gc_own_rc(t, owner, rc), 0);
    rc_release(rc); /* the owner holds the only reference now */
    uintptr_t dead = (uintptr_t)owner;
    owner = NULL;

    os_fail_after(n);
    gc_collect(t); /* the owner dies */
    uint64_t left = os_fail_after(0);
    int hit = released == 0;
    if (hit) {
        /* Live objects of the owner's size in its freed cell and around. */
        gc_root_add_range(h, fill, FILL);
        int reused = 0;
        for (size_t i = 0; i < FILL; i++) {
            fill[i] = gc_alloc(t, &blob_type, sizeof(blob_t));
            assert_non_null(fill[i]);
            reused |= (uintptr_t)fill[i] == dead;
        }
        assert_true(reused);
        gc_collect(t);
        if (released != 1)
            fail_msg("mapping %llu failed in the collection: the dead owner's rc object was not released by the "
                     "next one (its cell now holds a live object)",
                     (unsigned long long)n);
        gc_root_remove(h, fill);
        memset(fill, 0, sizeof fill);
    }
    (void)left;
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    assert_int_equal(released, 1);
    return hit;
}

static void test_owned_rc_release_queue_oom(void **state) {
    (void)state;
    int hits = 0;
    for (uint64_t n = 1; n <= 40; n++) hits += run(n);
    assert_int_equal(hits, 0); /* no failure delays the release */
    assert_int_equal(reports, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_owned_rc_release_queue_oom, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
