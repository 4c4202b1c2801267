/* Unit test of the wait in gc_evacuate_object (gc/evacuate.c): a parallel
 * marker that meets an object another marker has claimed (its header says
 * GC_FORWARD_BUSY) waits for the copy, and gives up its CPU while it waits
 * (sched_yield), so that a copier which shares its CPU gets to finish.
 *
 * The object is a fake (a header word and a body in a buffer, a zeroed
 * span record of a headered class): the wait reads only the header. The
 * test thread plays the copier: it holds the claim until the waiter has
 * yielded (gc_evacuate_wait_yields), then publishes the forwarding word,
 * and the waiter returns the copy. Both threads run on one CPU when the
 * affinity can be set, as on an overloaded machine. A waiter that spun
 * without yielding never lets the count move: the test fails after its
 * deadline instead of hanging. No randomness. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_setaffinity */
#endif
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "unit_errors.h"

/* How long the copier waits for a yield: generous (valgrind, loaded CI). */
#define WAIT_SECONDS 20

static const gc_type_t fake_type = { "fake", NULL, NULL };

typedef struct waiter {
    gc_tracer_t tracer;
    block_t     span;
    uintptr_t  *object;   /* the fake object: [-1] is its header */
    void       *result;
} waiter_t;

static void *waiter_main(void *arg) {
    waiter_t *w = arg;
    w->result = gc_evacuate_object(&w->tracer, &w->span, 0, w->object);
    return NULL;
}

static void pin_to_one_cpu(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        (void)sched_setaffinity(0, sizeof set, &set); /* threads inherit it */
        return;
    }
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_waiter_yields_until_the_copy_is_published(void **state) {
    (void)state;
    cpu_set_t saved;
    bool restore = sched_getaffinity(0, sizeof saved, &saved) == 0;
    pin_to_one_cpu();

    static _Alignas(16) uintptr_t old_cell[4], new_cell[4];
    waiter_t w;
    memset(&w, 0, sizeof w);
    w.span.size_class = 0; /* a headered class: the header holds the state */
    w.object = &old_cell[1];
    void *copy = &new_cell[1];
    _Atomic uintptr_t *header = (_Atomic uintptr_t *)&old_cell[0];
    /* claimed by "another marker": us */
    atomic_store(header, (uintptr_t)&fake_type | GC_FORWARD_BUSY);

    unsigned long yields_before = gc_evacuate_wait_yields();
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, waiter_main, &w), 0);
    double deadline = seconds_now() + WAIT_SECONDS;
    bool yielded = false;
    while (!(yielded = gc_evacuate_wait_yields() > yields_before) && seconds_now() < deadline) {
        struct timespec pause = { 0, 100000 };
        nanosleep(&pause, NULL);
    }
    /* the copy, published as the copier does; the waiter may go now */
    atomic_store_explicit(header, (uintptr_t)copy | GC_FORWARDED, memory_order_release);
    assert_int_equal(pthread_join(thread, NULL), 0);
    if (restore) (void)sched_setaffinity(0, sizeof saved, &saved);

    if (!yielded) fail_msg("the waiter never yielded its CPU in %d s while the copy was pending", WAIT_SECONDS);
    assert_ptr_equal(w.result, copy);
    assert_int_equal(reports, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_waiter_yields_until_the_copy_is_published, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
