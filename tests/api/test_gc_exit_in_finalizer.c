/* A thread that ends inside a finalizer (cancelled at a cancellation point
 * the finalizer reaches, e.g. close() or write(); pthread_testcancel stands
 * for one here). Its exit hook used to detach it but leave
 * heap->finalizing set, naming its freed record: no finalizer ran again and
 * every later gc_collect waited for ever. The hook now frees the role
 * (gc_finalizer_thread_exiting_locked); a later gc_collect returns and runs
 * the pending finalizers, and the interrupted one does not run twice. */
#define _GNU_SOURCE 1
#define DEFAULT_SEED UINT64_C(0x7265766965770004)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <sched.h>
#include <stdbool.h>

#include "mulch_test.h"

static gc_heap_t *g_heap;
static atomic_int g_fins;

static void fin_cancel(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_fins, 1);
    pthread_testcancel(); /* e.g. close(fd) in a real finalizer */
}
static const gc_type_t T_CFIN = { "test.cancel_fin", NULL, fin_cancel };

static void *victim(void *arg)
{
    pthread_t *self_id = arg;
    (void)self_id;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    gc_thread_t *t = gc_thread_attach(g_heap);
    void *garbage = gc_alloc(t, &T_CFIN, 16);
    (void)garbage;
    garbage = NULL;
    /* the cancel request arrives while this thread runs mulch code */
    pthread_cancel(pthread_self());
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    gc_collect(t); /* its finalizer runs here, and the thread ends there */
    gc_thread_detach(t);
    return NULL;
}

static void *later_collect(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    void *garbage = gc_alloc(t, &T_CFIN, 16);
    (void)garbage;
    garbage = NULL;
    gc_collect(t);
    gc_thread_detach(t);
    return NULL;
}

static void test_thread_ends_inside_finalizer(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    /* The cancel unwinds the victim's stack through mulch's frames, and
     * AddressSanitizer does not unpoison the redzones of frames left by a
     * forced unwind: its own thread teardown then trips over them
     * (stack-buffer-underflow in sigaltstack). Default, tsan, clang and
     * valgrind runs cover this test. */
    skip();
#endif
    TEST_START();
    g_heap = heap_new(0, 0, GC_COMPACT_NEVER);
    pthread_t v, c;
    assert_int_equal(pthread_create(&v, NULL, victim, NULL), 0);
    void *ret = NULL;
    pthread_join(v, &ret);
    if (ret != PTHREAD_CANCELED) T_FAIL("setup: victim was not cancelled inside its finalizer");
    EXPECT_EQ(atomic_load(&g_fins), 1);
    /* (this attach takes the address of the victim's freed record, which
     * heap->finalizer_thread still names: the helper's record is another) */
    gc_thread_t *me = gc_thread_attach(g_heap);
    gc_enter_blocking(me);
    assert_int_equal(pthread_create(&c, NULL, later_collect, NULL), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    if (pthread_timedjoin_np(c, NULL, &until) != 0)
        T_FAIL("gc_collect on another thread never returned: heap->finalizing is stuck (finalizer_thread %s)",
               "is the exited thread's freed record");
    gc_leave_blocking(me);
    /* the helper's garbage was finalized by its gc_collect */
    EXPECT_EQ(atomic_load(&g_fins), 2);
    gc_thread_detach(me);
    gc_heap_destroy(g_heap);
}

int main(void)
{
    mt_init("test_gc_exit_in_finalizer");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_thread_ends_inside_finalizer, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
