/* finalizers that allocate, collect, resurrect, create weak
 * references and register new finalizable objects, on two threads, with
 * compaction ALWAYS and a max_heap, checked by gc_verify. */
#define _GNU_SOURCE 1
#define DEFAULT_SEED UINT64_C(0x7265766965770002)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <sched.h>
#include <stdbool.h>

#include "mulch_test.h"

#define RES 64
static gc_heap_t *g_heap;
static void *g_res[RES];          /* root range: resurrected objects */
static void *g_weak[RES];         /* root range: weak refs made by finalizers */
static uint64_t g_weak_id[RES];
static atomic_uint g_res_n, g_weak_n;
static atomic_ulong g_next_id = 100000;
static atomic_int g_stop;

static void fin_stress(void *obj);
static const gc_type_t T_SFIN = { "test.sfin", trace_tobj, fin_stress };

static void fin_stress(void *obj)
{
    tobj_t *o = obj;
    const char *why = obj_problem(o, o->id);
    if (why) { AFAIL("finalizer got damaged object id %" PRIu64 ": %s", o->id, why); return; }
    gc_thread_t *t = gc_thread_current(g_heap);
    if (!t) { AFAIL("finalizer on unattached thread"); return; }
    void *self = obj;
    gc_push_root(t, &self);
    switch (o->id % 6) {
    case 0: { /* allocate a child into the object, collect, check both */
        tobj_t *c = gc_alloc(t, &T_PLAIN, tobj_size(3));
        if (c) {
            c->magic = OBJ_MAGIC; c->id = o->id + 1; c->nwords = 3;
            for (int i = 0; i < 3; i++) c->words[i] = payload_word(c->id, (uint64_t)i);
            gc_write(t, self, &((tobj_t *)self)->slot[0], c);
        }
        gc_collect(t);
        if (self != obj) AFAIL("object moved while its finalizer ran");
        if (c && ((tobj_t *)self)->slot[0] != c) AFAIL("child of finalizing object moved");
        if (c && obj_problem(c, o->id + 1)) AFAIL("child damaged: %s", obj_problem(c, o->id + 1));
        break;
    }
    case 1: { /* weak refs to self */
        void *w = gc_weak_new(t, self);
        unsigned k = atomic_fetch_add(&g_weak_n, 1) % RES;
        g_weak_id[k] = ((tobj_t *)self)->id;
        __atomic_store_n(&g_weak[k], w, __ATOMIC_RELEASE);
        break;
    }
    case 2: { /* resurrect */
        unsigned k = atomic_fetch_add(&g_res_n, 1) % RES;
        __atomic_store_n(&g_res[k], self, __ATOMIC_RELEASE);
        break;
    }
    case 3: { /* a new finalizable object, unrooted */
        uint64_t id = atomic_fetch_add(&g_next_id, 6);
        id -= id % 6; /* case 0 next time */
        tobj_t *n = gc_alloc(t, &T_SFIN, tobj_size(2));
        if (n) {
            n->magic = OBJ_MAGIC; n->id = id + (uint64_t)(rng_next(&(rng_t){ id }) % 6); n->nwords = 2;
            for (int i = 0; i < 2; i++) n->words[i] = payload_word(n->id, (uint64_t)i);
        }
        break;
    }
    case 4: {
        size_t v = gc_verify(g_heap);
        if (v) AFAIL("gc_verify inside a finalizer: %zu problems", v);
        break;
    }
    default:
        gc_safepoint(t);
        break;
    }
    gc_pop_roots(t, 1);
}

static void *mutator(void *arg)
{
    uintptr_t who = (uintptr_t)arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    rng_t r = test_rng("stress", who);
    void *keep = NULL;
    gc_push_root(t, &keep);
    for (int it = 0; it < (int)scaled(20000, 3000) && !atomic_load(&g_stop); it++) {
        uint64_t id = atomic_fetch_add(&g_next_id, 1);
        size_t nw = (size_t)rng_below(&r, 40);
        tobj_t *o = gc_alloc(t, &T_SFIN, tobj_size(nw));
        if (!o) continue;
        o->magic = OBJ_MAGIC; o->id = id; o->nwords = nw;
        for (size_t i = 0; i < nw; i++) o->words[i] = payload_word(id, i);
        if (rng_below(&r, 4) == 0) { gc_write(t, o, &o->slot[1], keep); keep = o; }
        if (rng_below(&r, 64) == 0) keep = NULL;
        if (rng_below(&r, 500) == 0) gc_collect(t);
        if (who == 0 && it % 200 == 0) {
            for (unsigned k = 0; k < RES; k++) {
                tobj_t *x = __atomic_load_n((tobj_t **)&g_res[k], __ATOMIC_ACQUIRE);
                if (x && obj_problem(x, x->id)) AFAIL("resurrected object damaged: %s", obj_problem(x, x->id));
                void *w = __atomic_load_n(&g_weak[k], __ATOMIC_ACQUIRE);
                if (w) {
                    tobj_t *tg = gc_weak_get(w);
                    if (tg && obj_problem(tg, tg->id)) AFAIL("weak target damaged: %s", obj_problem(tg, tg->id));
                }
            }
        }
        if (who == 1 && it % 1000 == 0) {
            size_t v = gc_verify(g_heap);
            if (v) AFAIL("gc_verify: %zu problems", v);
        }
    }
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

static void test_finalizer_stress(void **state)
{
    (void)state;
    TEST_START();
    gc_options_t o = { 0 };
    o.initial_heap = 256 * KiB;
    o.max_heap = 16 * MiB;
    o.compaction = GC_COMPACT_ALWAYS;
    o.markers = 2;
    g_heap = gc_heap_create(&o);
    gc_root_add_range(g_heap, g_res, RES);
    gc_root_add_range(g_heap, g_weak, RES);
    pthread_t th[2];
    for (uintptr_t i = 0; i < 2; i++) pthread_create(&th[i], NULL, mutator, (void *)i);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    EXPECT_VERIFY(g_heap);
    EXPECT_NO_ASYNC_FAILURES();
    gc_heap_destroy(g_heap);
}

int main(void)
{
    mt_init("test_gc_finalizer_stress");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_finalizer_stress, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
