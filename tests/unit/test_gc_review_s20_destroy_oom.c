/* Unit test of review session 20 that needs memory to run short: a
 * gc_heap_destroy called from a thread that cannot attach (no memory for
 * its record) runs the rc destroy callbacks of the heap's owned
 * references with no record; a callback that ends the thread left the
 * destroy begun for ever. A lasting shortage is made by refusing every
 * mmap the library (linked statically) makes while `mmap_refused` is set. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <mulch/rc.h>

#include "gc_internal.h"
#include "mmap_refuse.h"
#include "unit_errors.h"

static int teardown(void **state) {
    mmap_refused = false;
    return teardown_errors(state);
}

static gc_heap_t *heap;
static int callback_calls;

/* The rc object's destroy callback ends its thread. */
static void destroy_exits(void *obj) {
    (void)obj;
    callback_calls++;
    mmap_refused = false;
    pthread_exit(NULL);
}

/* Owns an rc object from a GC object, detaches, then destroys the heap
 * with every mapping refused: the destroy cannot attach this thread. */
static void *destroy_unattached(void *unused) {
    (void)unused;
    void *rc = rc_alloc(16, destroy_exits);
    gc_thread_t *t = gc_thread_attach(heap);
    if (rc == NULL || t == NULL) return NULL;
    static const gc_type_t owner_type = { "test.owner", NULL, NULL };
    void *owner = gc_alloc(t, &owner_type, 16);
    if (owner == NULL || gc_own_rc(t, owner, rc) != 0) return NULL;
    rc_release(rc); /* the heap's reference is the last */
    gc_thread_detach(t);
    mmap_refused = true;
    gc_heap_destroy(heap); /* the callback ends this thread */
    mmap_refused = false;
    return NULL;
}

static void test_destroy_unattached_thread_ends_in_callback(void **state) {
    (void)state;
    if (!MMAP_REFUSABLE) skip();
    heap = gc_heap_create(NULL);
    assert_non_null(heap);
    callback_calls = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, destroy_unattached, NULL), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    if (pthread_timedjoin_np(th, NULL, &until) != 0) fail_msg("the destroying thread did not end");
    assert_int_equal(callback_calls, 1);
    if (reports) fail_msg("%d reports before the second destroy, the last \"%s\"", reports, last_what);
    /* the destroy never ended: another may finish it */
    gc_heap_destroy(heap);
    if (reports) fail_msg("%d reports, the last \"%s\"", reports, last_what);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_destroy_unattached_thread_ends_in_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
