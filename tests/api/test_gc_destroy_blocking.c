/* gc_heap_destroy called by an attached thread inside a blocking region
 * (it takes no gc_thread_t; it may be called from any thread) runs the
 * remaining finalizers on that thread. They may allocate: the destroy
 * ends the caller's blocking regions first (it detaches it anyway), where
 * it used to leave them, so a finalizer's gc_alloc was refused ("gc_alloc:
 * called inside a blocking region"). */
#define _GNU_SOURCE 1
#define DEFAULT_SEED UINT64_C(0x7265766965770005)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <stdbool.h>

#include "mulch_test.h"

static gc_heap_t *g_heap;
static atomic_int g_fin_ok, g_fin_null;

static void fin_alloc(void *obj)
{
    (void)obj;
    gc_thread_t *t = gc_thread_current(g_heap);
    void *p = t ? gc_alloc(t, &T_PLAIN, 600) : NULL; /* > 256 bytes: the slow path */
    if (p) atomic_fetch_add(&g_fin_ok, 1);
    else atomic_fetch_add(&g_fin_null, 1);
}
static const gc_type_t T_AFIN = { "test.alloc_fin", NULL, fin_alloc };

static void test_destroy_inside_blocking_region(void **state)
{
    (void)state;
    TEST_START();
    g_heap = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(g_heap);
    static void *keep;
    gc_root_add(g_heap, &keep);
    keep = gc_alloc(t, &T_AFIN, 32);
    unsigned long r0 = rec_count();
    gc_enter_blocking(t);
    gc_heap_destroy(g_heap); /* detaches t too */
    EXPECT_EQ(atomic_load(&g_fin_ok) + atomic_load(&g_fin_null), 1);
    if (atomic_load(&g_fin_null)) {
        rec_print_since(r0);
        T_FAIL("the finalizer run by gc_heap_destroy could not allocate (%lu report(s))", rec_count() - r0);
    }
}

int main(void)
{
    mt_init("test_gc_destroy_blocking");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_destroy_inside_blocking_region, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
