/* Unit tests from review session 19 (runtime/rc.c, pool_destroy's hook)
 * under a lasting memory shortage (mmap_refuse.h):
 *   - pool_destroy frees the pool's live rc objects without destroys; the
 *     objects that an exited thread still counted let go of its record
 *     through a walk that maps a sorted array of every record first. When
 *     that mapping failed the walk was skipped: the record kept its holds
 *     and never went back on the free list (the leak the walk exists to
 *     stop), and a running owner kept counting the freed objects. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rc_internal.h"
#include "mmap_refuse.h"
#include "unit_errors.h"

static int teardown(void **state) {
    mmap_refused = false;
    return teardown_errors(state);
}

typedef struct {
    pool_t      *pool;
    rc_thread_t *record;
    void        *obj;
} worker_t;

/* Allocates an object in the pool and exits still counting it. */
static void *worker(void *arg) {
    worker_t *w = arg;
    w->obj = rc_alloc_in(w->pool, 32, NULL);
    w->record = rc_self;
    return NULL;
}

static void test_pool_destroy_unowns_without_memory(void **state) {
    (void)state;
    if (!MMAP_REFUSABLE) skip();
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    worker_t w = { .pool = pool };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, worker, &w), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(w.obj);
    rc_thread_t *rec = w.record;
    assert_non_null(rec);
    assert_ptr_equal(atomic_load(&rc_header_of(w.obj)->owner), rec);
    assert_int_equal(atomic_load(&rec->holds), 1); /* the object still names it */

    /* this thread's own: counted in its `live` */
    void *mine = rc_alloc_in(pool, 32, NULL);
    assert_non_null(mine);
    size_t live = rc_self->live;

    mmap_refused = true;
    pool_destroy(pool);
    mmap_refused = false;
    /* the exited thread's record is free again; this thread counts one less */
    assert_int_equal(atomic_load(&rec->holds), 0);
    assert_int_equal(rc_self->live, live - 1);
    assert_int_equal(reports, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pool_destroy_unowns_without_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
