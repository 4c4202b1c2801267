/* attach / detach / exit / blocking regions / walk / verify
 * racing collections (run under tsan too). */
#define _GNU_SOURCE 1
#define DEFAULT_SEED UINT64_C(0x7265766965770003)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <sched.h>
#include <stdbool.h>

#include "mulch_test.h"

static gc_heap_t *g_heap;
static atomic_int g_stop;

static void walk_fn(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj; (void)type; (void)size; (void)ctx;
}

static void *churn(void *arg)
{
    uintptr_t who = (uintptr_t)arg;
    rng_t r = test_rng("churn", who);
    for (int round = 0; round < (int)scaled(300, 60) && !atomic_load(&g_stop); round++) {
        gc_thread_t *t = gc_thread_attach(g_heap);
        void *keep = NULL;
        gc_push_root(t, &keep);
        for (int i = 0; i < 200; i++) {
            tobj_t *o = gc_alloc(t, rng_below(&r, 3) ? &T_PLAIN : &T_FIN, tobj_size(rng_below(&r, 8)));
            if (!o) break;
            o->magic = OBJ_MAGIC; o->id = MAX_IDS + 1; o->nwords = 0;
            gc_write(t, o, &o->slot[0], keep);
            keep = o;
            if (i % 50 == 0) {
                gc_enter_blocking(t);
                gc_enter_blocking(t);
                if (rng_below(&r, 2)) gc_heap_walk(g_heap, walk_fn, NULL);
                else if (gc_verify(g_heap)) AFAIL("verify inside blocking region");
                gc_leave_blocking(t);
                gc_leave_blocking(t);
            }
            if (i % 64 == 0) {
                void *w = gc_weak_new(t, keep);
                if (w && gc_weak_get(w) != keep) AFAIL("weak mismatch");
            }
        }
        unsigned how = (unsigned)rng_below(&r, 3);
        if (how == 0) {
            gc_pop_roots(t, 1);
            gc_thread_detach(t);
        } else if (how == 1) {
            gc_pop_roots(t, 1); /* (not inside: collections read the root stack) */
            gc_enter_blocking(t);
            gc_thread_detach(t); /* inside a blocking region */
        } else {
            gc_pop_roots(t, 1);
            return NULL; /* exit while attached: the hook detaches */
        }
    }
    return NULL;
}

static void *collector(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    while (!atomic_load(&g_stop)) {
        gc_collect(t);
        gc_safepoint(t);
        /* (a tight loop of collections starves the other threads of the
         * heap's lock under valgrind, whose scheduler runs one thread) */
        sched_yield();
    }
    gc_thread_detach(t);
    return NULL;
}

static void *outsider(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop)) {
        gc_heap_walk(g_heap, walk_fn, NULL);
        if (gc_verify(g_heap)) AFAIL("verify from unattached thread");
        gc_stats_t s; gc_get_stats(g_heap, &s);
        sched_yield();
    }
    return NULL;
}

static void test_lifecycle_race(void **state)
{
    (void)state;
    TEST_START();
    gc_options_t o = { 0 };
    o.initial_heap = 128 * KiB;
    o.compaction = GC_COMPACT_ALWAYS;
    o.markers = 2;
    g_heap = gc_heap_create(&o);
    pthread_t c, u, w[3];
    pthread_create(&c, NULL, collector, NULL);
    pthread_create(&u, NULL, outsider, NULL);
    for (uintptr_t i = 0; i < 3; i++) pthread_create(&w[i], NULL, churn, (void *)i);
    /* a churn thread that exits restarts */
    for (int i = 0; i < 3; i++) pthread_join(w[i], NULL);
    for (int k = 0; k < 6; k++) {
        pthread_t x;
        pthread_create(&x, NULL, churn, (void *)(uintptr_t)(10 + k));
        pthread_join(x, NULL);
    }
    atomic_store(&g_stop, 1);
    pthread_join(c, NULL);
    pthread_join(u, NULL);
    EXPECT_VERIFY(g_heap);
    EXPECT_NO_ASYNC_FAILURES();
    gc_heap_destroy(g_heap);
}

int main(void)
{
    mt_init("test_gc_lifecycle_race");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lifecycle_race, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
