/* A mutator thread that exits without gc_thread_detach is detached for it:
 * later collections do not wait for it, its objects stay correct. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <mulch/gc.h>

typedef struct cell { struct cell *next; intptr_t value; } cell_t;

static void cell_trace(void *obj, gc_tracer_t *tracer) {
    gc_trace_slot(tracer, (void **)&((cell_t *)obj)->next);
}
static const gc_type_t cell_type = { "cell", cell_trace, NULL };

static gc_heap_t *heap;
static void *shared_list; /* a global root */

static void *exiting_mutator(void *arg) {
    intptr_t n = (intptr_t)arg;
    gc_thread_t *t = gc_thread_attach(heap);
    for (intptr_t i = 0; i < n; i++) {
        cell_t *c = gc_alloc(t, &cell_type, sizeof(cell_t));
        if (c == NULL) return NULL;
        c->value = i;
        c->next = shared_list; /* single writer at a time: threads run one by one */
        shared_list = c;
    }
    return NULL; /* no gc_thread_detach */
}

static void test_gc_thread_exit_detaches(void **state) {
    (void)state;
    heap = gc_heap_create(NULL);
    assert_non_null(heap);
    gc_root_add(heap, &shared_list);
    gc_thread_t *self = gc_thread_attach(heap);
    for (int round = 0; round < 4; round++) {
        pthread_t thread;
        gc_enter_blocking(self);
        assert_int_equal(pthread_create(&thread, NULL, exiting_mutator, (void *)(intptr_t)5000), 0);
        assert_int_equal(pthread_join(thread, NULL), 0);
        gc_leave_blocking(self);
        gc_collect(self); /* would wait forever for a thread left attached */
    }
    size_t count = 0;
    for (cell_t *c = shared_list; c; c = c->next) count++;
    assert_int_equal(count, 4 * 5000);
    assert_int_equal(gc_verify(heap), 0);
    gc_root_remove(heap, &shared_list);
    gc_thread_detach(self);
    gc_heap_destroy(heap);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gc_thread_exit_detaches),
    };
    return cmocka_run_group_tests_name("gc_thread_exit", tests, NULL, NULL);
}
