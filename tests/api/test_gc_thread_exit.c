/* A mutator thread that exits without gc_thread_detach is detached for it:
 * later collections do not wait for it, its objects stay correct; and a
 * collection that runs while its exit hook waits does not read the root
 * slots it left pushed (they were in the frames of a function that
 * returned). */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
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
    assert_int_equal(gc_verify_untraced(heap), 0);
    gc_root_remove(heap, &shared_list);
    gc_thread_detach(self);
    gc_heap_destroy(heap);
}

/* ---- the exit hook drops the root stack -------------------------------- */

static atomic_int exit_ready, exit_go, exit_finalized, exit_reports;
static char exit_report[200];

static void exit_fin(void *obj) {
    (void)obj;
    atomic_fetch_add(&exit_finalized, 1);
}
static const gc_type_t exit_type = { "exit.fin", NULL, exit_fin };

static void exit_handler(const char *what, const void *ptr, void *ctx) {
    (void)ptr;
    (void)ctx;
    if (atomic_fetch_add(&exit_reports, 1) == 0) snprintf(exit_report, sizeof exit_report, "%s", what);
}

/* Pushes a slot of its own frame and returns with it pushed, attached and
 * running: the slot is dead storage from then on (the exit hook's frames
 * reuse it). */
static void *exit_with_root(void *arg) {
    (void)arg;
    gc_thread_t *t = gc_thread_attach(heap);
    void *slot = gc_alloc(t, &exit_type, 32);
    gc_push_root(t, &slot);
    atomic_store(&exit_ready, 1);
    while (!atomic_load(&exit_go)) sched_yield(); /* no GC point: a collection waits for us */
    return NULL;
}

static void *release_later(void *arg) {
    (void)arg;
    /* after the main thread began its collection, which waits for the
     * exiting thread: its exit hook then parks, and the collection runs */
    struct timespec pause = { 0, 100 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    atomic_store(&exit_go, 1);
    return NULL;
}

static void test_gc_thread_exit_drops_its_roots(void **state) {
    (void)state;
    print_message("[test_gc_thread_exit_drops_its_roots] (no randomness)\n");
    mulch_error_fn previous = mulch_set_error_handler(exit_handler, NULL);
    heap = gc_heap_create(NULL);
    assert_non_null(heap);
    gc_thread_t *self = gc_thread_attach(heap);
    for (int round = 0; round < 3; round++) {
        atomic_store(&exit_ready, 0);
        atomic_store(&exit_go, 0);
        atomic_store(&exit_finalized, 0);
        pthread_t exiting, releaser;
        assert_int_equal(pthread_create(&exiting, NULL, exit_with_root, NULL), 0);
        /* a GC point: under MULCH_GC_STRESS the thread's gc_alloc collects,
         * and that collection waits for this (attached) thread */
        while (!atomic_load(&exit_ready)) {
            gc_safepoint(self);
            sched_yield();
        }
        assert_int_equal(pthread_create(&releaser, NULL, release_later, NULL), 0);
        gc_collect(self); /* its object is garbage: the thread that rooted it is gone */
        int finalized = atomic_load(&exit_finalized);
        gc_enter_blocking(self);
        assert_int_equal(pthread_join(exiting, NULL), 0);
        assert_int_equal(pthread_join(releaser, NULL), 0);
        gc_leave_blocking(self);
        if (atomic_load(&exit_reports) != 0)
            fail_msg("round %d: %d report(s), first \"%s\"", round, atomic_load(&exit_reports), exit_report);
        if (finalized != 1)
            fail_msg("round %d: the object rooted only by the exited thread's dead slot was %s", round,
                     finalized ? "finalized more than once" : "kept alive by that slot");
    }
    assert_int_equal(gc_verify(heap), 0);
    assert_int_equal(gc_verify_untraced(heap), 0);
    gc_thread_detach(self);
    gc_heap_destroy(heap);
    mulch_set_error_handler(previous, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gc_thread_exit_detaches),
        cmocka_unit_test(test_gc_thread_exit_drops_its_roots),
    };
    return cmocka_run_group_tests_name("gc_thread_exit", tests, NULL, NULL);
}
