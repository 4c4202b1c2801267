/* A mutator thread cancelled (pthread_cancel) while parked at a safepoint.
 * pthread_cond_wait is a cancellation point that takes the mutex back
 * before the thread unwinds: the thread used to exit holding heap->lock,
 * and its exit hook, like every other thread of the heap, waited for it
 * for ever. mulch's waits run with cancellation disabled now
 * (gc_cond_wait): the collection finishes, and the cancel acts at the
 * thread's next cancellation point outside mulch. */
#define _GNU_SOURCE 1
#define DEFAULT_SEED UINT64_C(0x7265766965770001)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <sched.h>
#include <stdbool.h>

#include "mulch_test.h"

static gc_heap_t *g_heap;
static atomic_int g_attached, g_go, g_collected;

static void *victim(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    atomic_store(&g_attached, 1);
    while (!atomic_load(&g_go)) sched_yield();      /* the cancel is pending now */
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    /* no cancellation point of our own until the collection is over: the
     * collection parks us (pthread_cond_wait). sched_yield is not a
     * cancellation point; it lets the collector run under valgrind, whose
     * scheduler can hand a thread spinning without system calls its time
     * slice again and again (once in CI the collector missed its 10 s). */
    while (!atomic_load(&g_collected)) {
        gc_safepoint(t);
        sched_yield();
    }
    pthread_testcancel(); /* the cancel acts here, outside mulch */
    return NULL;
}

static void *collector(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    gc_collect(t);
    atomic_store(&g_collected, 1);
    gc_thread_detach(t);
    return NULL;
}

static void test_cancel_while_parked(void **state)
{
    (void)state;
    TEST_START();
    g_heap = heap_new(0, 0, GC_COMPACT_AUTO);
    pthread_t v, c;
    assert_int_equal(pthread_create(&v, NULL, victim, NULL), 0);
    while (!atomic_load(&g_attached)) sched_yield();
    pthread_cancel(v);
    atomic_store(&g_go, 1);
    assert_int_equal(pthread_create(&c, NULL, collector, NULL), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int rc = pthread_timedjoin_np(c, NULL, &until);
    if (rc != 0) T_FAIL("gc_collect did not finish within 10 s: the cancelled thread left heap->lock held");
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    /* the cancelled thread must finish exiting (its hook detaches it) */
    if (pthread_timedjoin_np(v, NULL, &until) != 0)
        T_FAIL("the cancelled thread never finished exiting: its exit hook waits for heap->lock, which it holds");
    gc_heap_destroy(g_heap);
}

int main(void)
{
    mt_init("test_gc_cancel");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cancel_while_parked, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
