/* test_gc_rc_stress_s21.c — review session 21: a seeded multi-thread
 * stress of rc objects, weak rc references and the rc/GC bridge (run
 * under tsan and asan too; also as _compact_always and _generational).
 *
 * Worker threads, attached to one heap, make rc nodes whose destroy
 * callbacks make, lock and free a weak reference to their child and
 * release it (nested destroys); publish weak references to them in shared
 * slots that other threads lock (racing the objects' destroys) and
 * replace; hand strong references and handles to other threads to release
 * (non-owner releases: merge queues); make GC objects rooted by handles
 * that own nodes (gc_own_rc) and check them through gc_handle_get across
 * collections; then the heap is destroyed with handles and owned nodes
 * still live. Every node must be destroyed exactly once, intact, with no
 * report. It found the collector's releasing thread reading the heap's
 * release function after dropping the heap's lock, while gc_own_rc on
 * other threads stored it under the lock (a data race under tsan); the
 * second test aims at that race alone (collections releasing owned nodes
 * while other threads keep calling gc_own_rc).
 *
 * Deterministic per thread: random choices come from a splitmix64
 * generator seeded from MULCH_TEST_SEED (decimal or 0x-hex) or a fixed
 * default; the seed is printed at the start of each test and in every
 * failure message. MULCH_TEST_QUICK=1 (and sanitizer / valgrind builds)
 * scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372732101)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/rc.h>

#include "mulch_test.h"

#define THREADS    4
#define WEAK_SLOTS 32
#define PASS_SLOTS 16
#define LOCAL      8
#define NODE_MAGIC UINT64_C(0x6e6f64652d726321)

typedef struct node {
    uint64_t     magic;
    uint64_t     id;
    struct node *child; /* a reference of ours, or NULL */
} node_t;

static atomic_ulong g_made, g_destroyed, g_next_id;

static void node_destroy(void *obj)
{
    node_t *n = obj;
    if (n->magic != NODE_MAGIC) {
        AFAIL("destroy of a damaged node %p", obj);
        return;
    }
    n->magic = 0;
    atomic_fetch_add(&g_destroyed, 1);
    node_t *child = n->child;
    if (child == NULL) return;
    if (child->magic != NODE_MAGIC) AFAIL("node %p: child %p damaged", obj, (void *)child);
    rc_weak_t *w = rc_weak_new(child);
    if (w == NULL) {
        AFAIL("rc_weak_new of a live child returned NULL");
    } else {
        node_t *again = rc_weak_lock(w);
        if (again != child) AFAIL("rc_weak_lock of a live child gave %p, not %p", (void *)again, (void *)child);
        if (again) rc_release(again);
        rc_weak_free(w);
    }
    rc_release(child); /* often the last reference: a nested destroy */
}

static node_t *node_new(node_t *child)
{
    node_t *n = rc_alloc(sizeof *n, node_destroy);
    if (n == NULL) {
        AFAIL("rc_alloc returned NULL");
        if (child) rc_release(child);
        return NULL;
    }
    n->magic = NODE_MAGIC;
    n->id = atomic_fetch_add(&g_next_id, 1);
    n->child = child;
    atomic_fetch_add(&g_made, 1);
    return n;
}

static struct {
    pthread_mutex_t mu;
    rc_weak_t      *weak;
} g_weak[WEAK_SLOTS];

/* strong references (tagged 1: a handle) passed to any other thread */
static _Atomic(uintptr_t) g_pass[PASS_SLOTS];

static gc_heap_t *g_heap;
static size_t g_rounds;

static void pass_release(uintptr_t v)
{
    if (v == 0) return;
    if (v & 1) {
        gc_handle_t *h = (gc_handle_t *)(v - 1);
        tobj_t *o = gc_handle_get(h);
        const char *why = obj_problem(o, o ? o->id : 0);
        if (why) AFAIL("a passed handle's object %p: %s", (void *)o, why);
        rc_release(h);
    } else {
        node_t *n = (node_t *)v;
        if (n->magic != NODE_MAGIC) AFAIL("a passed node %p damaged", (void *)n);
        rc_release(n);
    }
}

typedef struct {
    gc_handle_t *h;
    uint64_t     id;
} held_handle_t;

static void *worker(void *arg)
{
    unsigned self = (unsigned)(uintptr_t)arg;
    rng_t r = test_rng("gc_rc_stress_s21", self);
    gc_thread_t *t = gc_thread_attach(g_heap);
    if (t == NULL) {
        AFAIL("gc_thread_attach returned NULL");
        return NULL;
    }
    node_t *local[LOCAL] = { 0 };
    held_handle_t handles[LOCAL] = { { 0 } };
    for (size_t i = 0; i < g_rounds; i++) {
        unsigned k = (unsigned)rng_below(&r, LOCAL);
        switch (rng_below(&r, 8)) {
        case 0:
        case 1: { /* a node (maybe the parent of another), published weakly */
            node_t *child = NULL;
            unsigned c = (unsigned)rng_below(&r, LOCAL);
            if (local[c] && rng_below(&r, 2)) child = rc_retain(local[c]);
            node_t *n = node_new(child);
            if (n == NULL) break;
            rc_weak_t *w = rc_weak_new(n);
            if (w == NULL) AFAIL("rc_weak_new returned NULL");
            unsigned s = (unsigned)rng_below(&r, WEAK_SLOTS);
            pthread_mutex_lock(&g_weak[s].mu);
            rc_weak_t *old = g_weak[s].weak;
            g_weak[s].weak = w;
            rc_weak_free(old);
            pthread_mutex_unlock(&g_weak[s].mu);
            if (local[k]) rc_release(local[k]);
            local[k] = n;
            break;
        }
        case 2: { /* lock another thread's weak reference (racing destroys) */
            unsigned s = (unsigned)rng_below(&r, WEAK_SLOTS);
            pthread_mutex_lock(&g_weak[s].mu);
            node_t *n = rc_weak_lock(g_weak[s].weak);
            pthread_mutex_unlock(&g_weak[s].mu);
            if (n == NULL) break;
            if (n->magic != NODE_MAGIC) AFAIL("rc_weak_lock gave a damaged node %p", (void *)n);
            if (rng_below(&r, 2)) {
                rc_release(n);
            } else {
                uintptr_t old = atomic_exchange(&g_pass[rng_below(&r, PASS_SLOTS)], (uintptr_t)n);
                pass_release(old);
            }
            break;
        }
        case 3: /* a strong reference to another thread */
            if (local[k]) {
                pass_release(atomic_exchange(&g_pass[rng_below(&r, PASS_SLOTS)], (uintptr_t)local[k]));
                local[k] = NULL;
            }
            break;
        case 4: { /* a GC object rooted by a handle, owning a node */
            uint64_t id = rng_below(&r, MAX_IDS);
            size_t nwords = (size_t)rng_below(&r, 6);
            tobj_t *o = gc_alloc(t, &T_PLAIN, tobj_size(nwords));
            if (o == NULL) {
                AFAIL("gc_alloc returned NULL");
                break;
            }
            o->magic = OBJ_MAGIC;
            o->id = id;
            o->nwords = nwords;
            for (size_t w = 0; w < nwords; w++) o->words[w] = payload_word(id, w);
            gc_handle_t *h = gc_handle_new(g_heap, o); /* no GC point since gc_alloc */
            if (h == NULL) {
                AFAIL("gc_handle_new returned NULL");
                break;
            }
            if (local[k] && gc_own_rc(t, o, local[k]) != 0) AFAIL("gc_own_rc failed");
            if (handles[k].h) rc_release(handles[k].h);
            handles[k] = (held_handle_t){ h, id };
            break;
        }
        case 5: /* check a handle; maybe pass it on */
            if (handles[k].h) {
                tobj_t *o = gc_handle_get(handles[k].h);
                const char *why = obj_problem(o, handles[k].id);
                if (why) AFAIL("handle's object %p: %s", (void *)o, why);
                if (rng_below(&r, 2)) {
                    pass_release(atomic_exchange(&g_pass[rng_below(&r, PASS_SLOTS)], (uintptr_t)handles[k].h + 1));
                    handles[k].h = NULL;
                }
            }
            break;
        case 6: /* garbage, now and then a collection */
            if (rng_below(&r, 16) == 0) gc_collect(t);
            else if (gc_alloc(t, &T_RAW, 16 + 8 * rng_below(&r, 64)) == NULL) AFAIL("gc_alloc returned NULL");
            break;
        default: /* release a local node */
            if (local[k]) rc_release(local[k]);
            local[k] = NULL;
            break;
        }
    }
    for (unsigned k = 0; k < LOCAL; k++) {
        if (local[k]) rc_release(local[k]);
        if (handles[k].h && rng_below(&r, 2)) rc_release(handles[k].h);
        else if (handles[k].h) pass_release(atomic_exchange(&g_pass[k % PASS_SLOTS], (uintptr_t)handles[k].h + 1));
    }
    gc_thread_detach(t);
    return NULL;
}

static void test_gc_rc_bridge_stress(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    g_rounds = MT_SANITIZED || MT_ON_VALGRIND() ? 1500 : scaled(20000, 3000);
    atomic_store(&g_made, 0);
    atomic_store(&g_destroyed, 0);
    for (unsigned s = 0; s < WEAK_SLOTS; s++) {
        pthread_mutex_init(&g_weak[s].mu, NULL);
        g_weak[s].weak = NULL;
    }
    for (unsigned s = 0; s < PASS_SLOTS; s++) atomic_store(&g_pass[s], 0);
    g_heap = heap_new(256 * KiB, 0, GC_COMPACT_AUTO);
    pthread_t th[THREADS];
    for (unsigned i = 0; i < THREADS; i++) EXPECT_EQ(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i), 0);
    for (unsigned i = 0; i < THREADS; i++) EXPECT_EQ(pthread_join(th[i], NULL), 0);
    /* the handles still passed around, half of them released before the
     * heap's destroy, half after it (they outlive it) */
    uintptr_t after[PASS_SLOTS] = { 0 };
    /* (gc_handle_get reads a handle only on a thread attached to its
     * heap; gc_heap_destroy detaches this one) */
    EXPECT_NONNULL(gc_thread_attach(g_heap));
    for (unsigned s = 0; s < PASS_SLOTS; s++) {
        uintptr_t v = atomic_exchange(&g_pass[s], 0);
        if ((v & 1) && s % 2) after[s] = v;
        else pass_release(v);
    }
    gc_heap_destroy(g_heap); /* releases the owned nodes still held */
    for (unsigned s = 0; s < PASS_SLOTS; s++) {
        if (after[s] == 0) continue;
        EXPECT_NULL(gc_handle_get((gc_handle_t *)(after[s] - 1)));
        rc_release((gc_handle_t *)(after[s] - 1));
    }
    rc_release(rc_alloc(1, NULL)); /* merges this thread's queue */
    for (unsigned s = 0; s < WEAK_SLOTS; s++) {
        EXPECT_NULL(rc_weak_lock(g_weak[s].weak)); /* every node is gone */
        rc_weak_free(g_weak[s].weak);
        pthread_mutex_destroy(&g_weak[s].mu);
    }
    print_message("  %lu nodes made, %lu destroyed\n", atomic_load(&g_made), atomic_load(&g_destroyed));
    EXPECT_EQ(atomic_load(&g_destroyed), atomic_load(&g_made));
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static atomic_ulong g_owned_destroyed;

static void owned_destroy(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_owned_destroyed, 1);
}

static void *owning_worker(void *arg)
{
    size_t rounds = (size_t)(uintptr_t)arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    if (t == NULL) {
        AFAIL("gc_thread_attach returned NULL");
        return NULL;
    }
    for (size_t i = 0; i < rounds; i++) {
        void *o = gc_alloc(t, &T_RAW, 32);
        void *n = rc_alloc(8, owned_destroy);
        if (o == NULL || n == NULL) {
            AFAIL("gc_alloc or rc_alloc returned NULL");
            break;
        }
        /* no GC point since gc_alloc: o is live; garbage right after */
        if (gc_own_rc(t, o, n) != 0) AFAIL("gc_own_rc failed");
        rc_release(n); /* the GC object's reference is the last one */
        if (i % 8 == 0) gc_collect(t); /* releases owned nodes while others own more */
    }
    gc_thread_detach(t);
    return NULL;
}

static void test_gc_own_rc_while_collections_release(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    size_t rounds = MT_SANITIZED || MT_ON_VALGRIND() ? 2000 : scaled(20000, 4000);
    atomic_store(&g_owned_destroyed, 0);
    g_heap = heap_new(0, 0, GC_COMPACT_AUTO);
    pthread_t th[3];
    for (unsigned i = 0; i < 3; i++)
        EXPECT_EQ(pthread_create(&th[i], NULL, owning_worker, (void *)(uintptr_t)rounds), 0);
    for (unsigned i = 0; i < 3; i++) EXPECT_EQ(pthread_join(th[i], NULL), 0);
    gc_heap_destroy(g_heap);
    rc_release(rc_alloc(1, NULL)); /* merges this thread's queue */
    EXPECT_EQ(atomic_load(&g_owned_destroyed), 3 * rounds);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_rc_stress_s21");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_rc_bridge_stress),
        T(test_gc_own_rc_while_collections_release),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
