/* test_gc_review_s15.c — black-box tests of the collector's moving, weak and
 * finalizer machinery together (review session 15): a finalizer reading a
 * weak reference to a target that moved, identity hashes of objects that
 * move on their way to finalization, headerless objects behind hashes, weak
 * references and handles through AUTO/ALWAYS and generational collections,
 * gc_heap_walk after compaction, a finalizer that pins itself, hands itself
 * to a handle or collects and verifies, a seeded mix of every feature
 * (pins, handles, weak references, hashes, resurrection, conservative
 * scanning, max_heap), and a max_heap tight enough that copies often find
 * no room. Every check is gc_verify plus object contents and addresses.
 *
 * Deterministic: random choices come from MULCH_TEST_SEED (printed). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367631501)
#define MULCH_TEST_GC_OBJECTS 1

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <mulch/gc.h>
#include <mulch/rc.h>

#include "mulch_test.h"

static gc_heap_t *heap_opts(int compaction, int conservative, int generational, size_t max)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = compaction;
    o.conservative_stack = conservative;
    o.generational = generational;
    o.max_heap = max;
    o.markers = 1;
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) fail();
    return h;
}

/* small headerless node */
typedef struct node { void *next; uint64_t v; } node_t;
static void trace_node(void *obj, gc_tracer_t *tr) { gc_trace_slot(tr, &((node_t *)obj)->next); }
static const gc_type_t T_NODE = { "test.node", trace_node, NULL };
static int gc_object_is_weak_pub(void *o) { const gc_type_t *t = gc_type_of(o); return t && strcmp(t->name, "mulch.weak") == 0; }

/* ---- 1: finalizer reads a weak ref to a live, moved target ---- */
static atomic_int g1_bad, g1_runs;
static void fin1(void *obj)
{
    tobj_t *o = obj;
    void *target = gc_weak_get(o->slot[0]);
    atomic_fetch_add(&g1_runs, 1);
    if (target == NULL || obj_problem(target, 77)) atomic_fetch_add(&g1_bad, 1);
}
static const gc_type_t T_FIN1 = { "test.fin1", trace_tobj, fin1 };

static void test_fin_weak_live_target(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_opts(GC_COMPACT_ALWAYS, 0, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    void *target = NULL, *holder = NULL;
    gc_push_root(t, &target);
    gc_push_root(t, &holder);
    target = mk(t, &T_PLAIN, 77, 3);
    holder = mk(t, &T_FIN1, 78, 1);
    void *w = gc_weak_new(t, target);
    set_slot(t, holder, 0, w);
    holder = NULL;
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g1_runs), 1);
    EXPECT_EQ(atomic_load(&g1_bad), 0);
    EXPECT_OBJ(target, 77);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 2);
    gc_heap_destroy(h);
}

/* ---- 2: identity hash of a finalizable object seen by its finalizer ---- */
static uintptr_t g2_hash;
static atomic_int g2_bad;
static void fin2(void *obj)
{
    if (gc_identity_hash(obj) != g2_hash) atomic_fetch_add(&g2_bad, 1);
}
static const gc_type_t T_FIN2 = { "test.fin2", trace_tobj, fin2 };

static void test_fin_identity_hash(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_opts(GC_COMPACT_ALWAYS, 0, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    void *holder = NULL;
    gc_push_root(t, &holder);
    holder = mk(t, &T_FIN2, 1, 1);
    g2_hash = gc_identity_hash(holder);
    gc_collect(t);
    EXPECT_EQ(gc_identity_hash(holder), g2_hash);
    holder = NULL;
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g2_bad), 0);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

/* ---- 3: headerless objects, hashes, weak refs, handles, owners ---- */
static void test_headerless_everything(void **state)
{
    (void)state;
    TEST_START();
    for (int gen = 0; gen < 2; gen++) {
        gc_heap_t *h = heap_opts(gen ? GC_COMPACT_AUTO : GC_COMPACT_ALWAYS, 0, gen, 0);
        gc_thread_t *t = gc_thread_attach(h);
        void *list = NULL, *w = NULL;
        gc_push_root(t, &list);
        gc_push_root(t, &w);
        for (int i = 0; i < 5000; i++) {
            node_t *n = gc_alloc(t, &T_NODE, sizeof *n);
            n->v = (uint64_t)i;
            gc_write(t, n, &n->next, list);
            list = n;
        }
        uintptr_t hash = gc_identity_hash(list);
        w = gc_weak_new(t, list);
        gc_handle_t *hd = gc_handle_new(h, ((node_t *)list)->next);
        for (int r = 0; r < 4; r++) {
            gc_collect(t);
            /* garbage to fragment */
            for (int i = 0; i < 3000; i++) {
                node_t *n = gc_alloc(t, &T_NODE, sizeof *n);
                n->v = 1;
            }
        }
        EXPECT_EQ(gc_identity_hash(list), hash);
        EXPECT_PTR_EQ(gc_weak_get(w), list);
        EXPECT_PTR_EQ(gc_handle_get(hd), ((node_t *)list)->next);
        uint64_t k = 4999;
        for (node_t *n = list; n; n = n->next, k--) {
            if (n->v != k) { T_FAIL("node %p has %" PRIu64 " want %" PRIu64, (void *)n, n->v, k); break; }
        }
        EXPECT_VERIFY(h);
        rc_release(hd);
        gc_pop_roots(t, 2);
        gc_heap_destroy(h);
    }
}

/* ---- 4: heap walk after compaction ---- */
static void count_cb(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj; (void)size;
    if (type == &T_NODE) ++*(size_t *)ctx;
}
static void test_walk_after_compaction(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_opts(GC_COMPACT_ALWAYS, 0, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    void *list = NULL;
    gc_push_root(t, &list);
    for (int i = 0; i < 1000; i++) {
        node_t *n = gc_alloc(t, &T_NODE, sizeof *n);
        n->next = list;
        list = n;
    }
    gc_collect(t);
    gc_collect(t);
    size_t c = 0;
    gc_heap_walk(h, count_cb, &c);
    EXPECT_EQ(c, 1000u);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

/* ---- 5: generational + AUTO compaction, then minor collections ---- */
static void test_generational_auto(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_opts(GC_COMPACT_AUTO, 0, 1, 0);
    gc_thread_t *t = gc_thread_attach(h);
    enum { N = 20000 };
    void **keep = calloc(N, sizeof *keep);
    gc_root_add_range(h, keep, N);
    for (int i = 0; i < N; i++) keep[i] = mk(t, &T_PLAIN, (uint64_t)i % MAX_IDS, 1);
    for (int i = 0; i < N; i++) if (i % 5) keep[i] = NULL;
    gc_collect(t);
    gc_collect(t);
    /* old objects get young children through the barrier, minor collections run */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i += 5) {
            void *c = mk(t, &T_PLAIN, 5, 0);
            set_slot(t, keep[i], 0, c);
        }
        for (int i = 0; i < 20000; i++) (void)!gc_alloc(t, &T_RAW, 64);
    }
    EXPECT_VERIFY(h);
    gc_collect(t);
    for (int i = 0; i < N; i += 5) {
        EXPECT_OBJ(keep[i], (uint64_t)i % MAX_IDS);
        EXPECT_OBJ(slot_of(keep[i], 0), 5);
    }
    EXPECT_VERIFY(h);
    gc_root_remove(h, keep);
    free(keep);
    gc_heap_destroy(h);
}


/* ---- 6: random mix ---- */
#define FZ_ROOTS 48
#define FZ_HANDLES 16
#define FZ_PINS 8
static void *g_res[16];            /* global roots: resurrected objects */
static atomic_uint g_res_next;
static void fin_res(void *obj)
{
    tobj_t *o = obj;
    const char *why = obj_problem(o, o->id);
    if (why) AFAIL("resurrecting finalizer got a damaged object %p: %s", obj, why);
    if (o->id % 3 == 0) g_res[atomic_fetch_add(&g_res_next, 1) % 16] = obj;
}
static const gc_type_t T_RES = { "test.res", trace_tobj, fin_res };

static uintptr_t g_hash_of[MAX_IDS];
static unsigned char g_hashed[MAX_IDS];

static void check_obj(void *o)
{
    if (o == NULL || ((uintptr_t)o & 7u)) return;
    const gc_type_t *ty = gc_type_of(o);
    if (ty != &T_PLAIN && ty != &T_FIN && ty != &T_RES) return;
    tobj_t *x = o;
    const char *why = obj_problem(x, x->id);
    if (why) { T_FAIL("object %p damaged: %s", o, why); return; }
    if (x->id < MAX_IDS && g_hashed[x->id] && gc_identity_hash(o) != g_hash_of[x->id])
        T_FAIL("object id %" PRIu64 " changed its identity hash", x->id);
}

static void fuzz_run(int compaction, int conservative, int generational, size_t max, uint64_t k)
{
    gc_heap_t *h = heap_opts(compaction, conservative, generational, max);
    gc_thread_t *t = gc_thread_attach(h);
    rng_t r = test_rng("fuzz", k);
    void *roots[FZ_ROOTS] = { 0 };
    gc_root_add_range(h, roots, FZ_ROOTS);
    gc_root_add_range(h, g_res, 16);
    memset(g_res, 0, sizeof g_res);
    memset(g_hashed, 0, sizeof g_hashed);
    gc_handle_t *handles[FZ_HANDLES] = { 0 };
    void *pinned[FZ_PINS] = { 0 };
    uint64_t next_id = 1;
    fin_reset();
    for (int step = 0; step < 6000; step++) {
        size_t i = rng_below(&r, FZ_ROOTS), j = rng_below(&r, FZ_ROOTS), kk = rng_below(&r, NSLOTS);
        switch (rng_below(&r, 14)) {
        case 0: case 1: {
            const gc_type_t *ty = rng_below(&r, 4) == 0 ? &T_RES : rng_below(&r, 3) == 0 ? &T_FIN : &T_PLAIN;
            uint64_t id = next_id < MAX_IDS ? next_id++ : MAX_IDS + 1;
            if (id >= MAX_IDS && ty != &T_PLAIN) ty = &T_PLAIN;
            size_t words = rng_below(&r, 8) == 0 ? rng_below(&r, 300) : rng_below(&r, 4);
            void *o = gc_alloc(t, ty, tobj_size(words));
            if (!o) break;
            tobj_t *x = o;
            x->magic = OBJ_MAGIC; x->id = id; x->nwords = words;
            for (size_t w = 0; w < words; w++) x->words[w] = payload_word(id, w);
            roots[i] = o;
            break;
        }
        case 2:
            if (roots[i] && gc_type_of(roots[i]) != &T_NODE && !gc_object_is_weak_pub(roots[i])) set_slot(t, roots[i], kk, roots[j]);
            break;
        case 3: roots[i] = NULL; break;
        case 4: {
            if (!roots[j] || !roots[i] || gc_type_of(roots[i]) == &T_NODE || gc_object_is_weak_pub(roots[i])) break;
            void *w = gc_weak_new(t, roots[j]);
            if (w && roots[i]) set_slot(t, roots[i], kk, w);
            break;
        }
        case 5: {
            size_t p = rng_below(&r, FZ_PINS);
            if (pinned[p]) {
                check_obj(pinned[p]);
                gc_unpin(h, pinned[p]);
                pinned[p] = NULL;
            } else if (roots[j]) {
                pinned[p] = roots[j];
                gc_pin(h, roots[j]);
            }
            break;
        }
        case 6: {
            size_t p = rng_below(&r, FZ_HANDLES);
            if (handles[p]) { check_obj(gc_handle_get(handles[p])); rc_release(handles[p]); handles[p] = NULL; }
            else if (roots[j]) handles[p] = gc_handle_new(h, roots[j]);
            break;
        }
        case 7: {
            void *o = roots[j];
            const gc_type_t *ty = o ? gc_type_of(o) : NULL;
            if (ty == &T_PLAIN || ty == &T_FIN || ty == &T_RES) {
                tobj_t *x = o;
                if (x->id < MAX_IDS && !g_hashed[x->id]) { g_hash_of[x->id] = gc_identity_hash(o); g_hashed[x->id] = 1; }
            }
            break;
        }
        case 8:
            if (rng_below(&r, 4) == 0) {
                gc_collect(t);
                EXPECT_VERIFY(h);
                EXPECT_NO_ASYNC_FAILURES();
            }
            break;
        case 9:
            for (int g = 0; g < 200; g++) (void)!gc_alloc(t, &T_RAW, 8 + rng_below(&r, 200));
            break;
        case 10: {
            node_t *n = gc_alloc(t, &T_NODE, sizeof *n);
            if (n) { n->v = 12345; gc_write(t, n, &n->next, NULL); roots[i] = n; }
            break;
        }
        case 11: {
            if (roots[j]) { void *w = gc_weak_new(t, roots[j]); if (w) roots[i] = w; }
            break;
        }
        default:
            for (size_t q = 0; q < FZ_ROOTS; q++) {
                void *o = roots[q];
                if (!o) continue;
                if (gc_object_is_weak_pub(o)) { check_obj(gc_weak_get(o)); continue; }
                check_obj(o);
                if (gc_type_of(o) == &T_PLAIN || gc_type_of(o) == &T_FIN || gc_type_of(o) == &T_RES)
                    for (int s2 = 0; s2 < NSLOTS; s2++) {
                        void *c = slot_of(o, (size_t)s2);
                        if (c && gc_object_is_weak_pub(c)) check_obj(gc_weak_get(c));
                        else check_obj(c);
                    }
            }
            for (size_t p = 0; p < FZ_PINS; p++) if (pinned[p]) check_obj(pinned[p]);
            break;
        }
    }
    gc_collect(t);
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    for (size_t p = 0; p < FZ_PINS; p++) if (pinned[p]) gc_unpin(h, pinned[p]);
    for (size_t p = 0; p < FZ_HANDLES; p++) if (handles[p]) rc_release(handles[p]);
    gc_root_remove(h, roots);
    gc_root_remove(h, g_res);
    gc_heap_destroy(h);
}

static void test_fuzz(void **state)
{
    (void)state;
    TEST_START();
    for (uint64_t k = 0; k < 3; k++) {
        fuzz_run(GC_COMPACT_ALWAYS, 0, 0, 0, k);
        fuzz_run(GC_COMPACT_AUTO, 0, 1, 0, k);
        fuzz_run(GC_COMPACT_ALWAYS, 1, 0, 0, k);
        fuzz_run(GC_COMPACT_ALWAYS, 0, 0, 3 * MiB, k);
        fuzz_run(GC_COMPACT_AUTO, 1, 1, 3 * MiB, k);
    }
}

/* ---- 7: finalizer pins itself / handles itself / verifies ---- */
static gc_heap_t *g7_heap;
static gc_thread_t *g7_t;
static void *g7_pinned;
static gc_handle_t *g7_handle;
static atomic_int g7_bad;
static void fin7(void *obj)
{
    tobj_t *o = obj;
    if (o->id == 1) { gc_pin(g7_heap, obj); g7_pinned = obj; }
    if (o->id == 2) g7_handle = gc_handle_new(g7_heap, obj);
    if (o->id == 3) {
        gc_collect(g7_t);
        if (gc_verify(g7_heap) != 0) atomic_fetch_add(&g7_bad, 1);
        if (obj_problem(o, 3)) atomic_fetch_add(&g7_bad, 1);
    }
    (void)gc_identity_hash(obj);
}
static const gc_type_t T_FIN7 = { "test.fin7", trace_tobj, fin7 };

static void test_fin_pins_handles(void **state)
{
    (void)state;
    TEST_START();
    {
        gc_heap_t *h = heap_opts(GC_COMPACT_ALWAYS, 0, 0, 0);
        gc_thread_t *t = gc_thread_attach(h);
        g7_heap = h; g7_t = t; g7_pinned = NULL; g7_handle = NULL;
        for (uint64_t id = 1; id <= 3; id++) {
            void *o = mk(t, &T_FIN7, id, 2);
            gc_push_root(t, &o);
            mk_child(t, &o, 0, &T_PLAIN, 10 + id, 3);
            gc_pop_roots(t, 1);
        }
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g7_bad), 0);
        EXPECT_NONNULL(g7_pinned);
        EXPECT_NONNULL(g7_handle);
        uintptr_t hash1 = gc_identity_hash(g7_pinned), hash2 = gc_identity_hash(gc_handle_get(g7_handle));
        for (int i = 0; i < 3; i++) {
            gc_collect(t);
            for (int g = 0; g < 3000; g++) (void)!gc_alloc(t, &T_RAW, 24);
        }
        EXPECT_OBJ(g7_pinned, 1);
        EXPECT_OBJ(slot_of(g7_pinned, 0), 11);
        EXPECT_OBJ(gc_handle_get(g7_handle), 2);
        EXPECT_OBJ(slot_of(gc_handle_get(g7_handle), 0), 12);
        EXPECT_EQ(gc_identity_hash(g7_pinned), hash1);
        EXPECT_EQ(gc_identity_hash(gc_handle_get(g7_handle)), hash2);
        EXPECT_VERIFY(h);
        gc_unpin(h, g7_pinned);
        rc_release(g7_handle);
        gc_collect(t);
        EXPECT_VERIFY(h);
        gc_heap_destroy(h);
    }
}

/* ---- 9: tight max_heap, mixed sizes, ALWAYS ---- */
static void test_tight_heap(void **state)
{
    (void)state;
    TEST_START();
    for (int gen = 0; gen < 2; gen++) {
        gc_heap_t *h = heap_opts(gen ? GC_COMPACT_AUTO : GC_COMPACT_ALWAYS, gen, gen, 1 * MiB);
        gc_thread_t *t = gc_thread_attach(h);
        rng_t r = test_rng("tight", (uint64_t)gen);
        void *roots[256] = { 0 };
        gc_root_add_range(h, roots, 256);
        memset(g_res, 0, sizeof g_res);
        gc_root_add_range(h, g_res, 16);
        for (int step = 0; step < 20000; step++) {
            size_t i = rng_below(&r, 256);
            int kind = (int)rng_below(&r, 10);
            if (kind < 6) {
                size_t words = rng_below(&r, 3) ? rng_below(&r, 6) : rng_below(&r, 2000);
                const gc_type_t *ty = kind == 0 ? &T_RES : kind == 1 ? &T_FIN : &T_PLAIN;
                tobj_t *o = gc_alloc(t, ty, tobj_size(words));
                if (!o) { roots[rng_below(&r, 256)] = NULL; continue; }
                o->magic = OBJ_MAGIC; o->id = MAX_IDS + 7; o->nwords = words;
                for (size_t w = 0; w < words; w++) o->words[w] = payload_word(o->id, w);
                if (roots[i] && rng_below(&r, 2)) set_slot(t, o, 0, roots[i]);
                roots[i] = o;
            } else if (kind < 8) {
                node_t *n = gc_alloc(t, &T_NODE, sizeof *n);
                if (n) { n->v = 3; roots[i] = n; }
            } else if (kind == 8) {
                if (roots[i]) { void *w = gc_weak_new(t, roots[i]); if (w) roots[rng_below(&r, 256)] = w; }
            } else {
                roots[i] = NULL;
            }
            if (step % 2000 == 0) {
                for (size_t q = 0; q < 256; q++) check_obj(roots[q]);
                EXPECT_VERIFY(h);
            }
        }
        gc_collect(t);
        for (size_t q = 0; q < 256; q++) check_obj(roots[q]);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_root_remove(h, roots);
        gc_root_remove(h, g_res);
        gc_heap_destroy(h);
    }
}

/* ---- a thread detaching when the heap's list cannot take its weak
 * references (the OS refuses memory: RLIMIT_AS at the current size) ---- */
static gc_heap_t *g10_heap;
static void *g10_target, *g10_weak;   /* global roots */
static int g10_detached_under_limit;

static void *detach_under_limit(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g10_heap);
    g10_target = mk(t, &T_PLAIN, 41, 2);
    g10_weak = gc_weak_new(t, g10_target);
    /* a hundred more in this thread's list: merging them into the heap's
     * (4000 of 4096) needs a bigger array, and so does the other way round;
     * 64 KiB, more than the pool keeps of released metadata for reuse
     * (pool/os.c), so it takes a new mapping, which the limit refuses */
    for (int i = 0; i < 100; i++) (void)gc_weak_new(t, NULL);
    struct rlimit old, low;
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%lu", &pages) != 1 || getrlimit(RLIMIT_AS, &old) != 0) {
        if (f) fclose(f);
        gc_thread_detach(t);
        return NULL;
    }
    fclose(f);
    low = old;
    low.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
    if (setrlimit(RLIMIT_AS, &low) == 0) {
        gc_thread_detach(t); /* its weak list cannot be merged: reported */
        setrlimit(RLIMIT_AS, &old);
        g10_detached_under_limit = 1;
    } else {
        gc_thread_detach(t);
    }
    return NULL;
}

static void test_detach_oom_keeps_weak_refs_safe(void **state)
{
    (void)state;
    TEST_START();
    /* the sanitizers' shadow memory and valgrind's own do not live under
     * RLIMIT_AS at the program's size */
    if (MT_SANITIZED || MT_ON_VALGRIND()) skip();
    gc_heap_t *h = heap_opts(GC_COMPACT_NEVER, 0, 0, 0);
    g10_heap = h;
    gc_thread_t *t = gc_thread_attach(h);
    static void *mine[4000];
    gc_root_add_range(h, mine, 4000);
    gc_root_add(h, &g10_target);
    gc_root_add(h, &g10_weak);
    for (int i = 0; i < 4000; i++) mine[i] = gc_weak_new(t, NULL);
    gc_collect(t); /* the heap's list now holds 4000 (room for 4096) */
    pthread_t th;
    gc_enter_blocking(t);
    EXPECT_EQ(pthread_create(&th, NULL, detach_under_limit, NULL), 0);
    pthread_join(th, NULL);
    gc_leave_blocking(t);
    if (!g10_detached_under_limit) skip();
    /* reported; the weak reference may be cleared early, never left to dangle */
    char what[256];
    rec_last(what, sizeof what, NULL);
    if (strstr(what, "gc_thread_detach: out of memory") == NULL) T_FAIL("no out-of-memory report, last: \"%s\"", what);
    if (gc_weak_get(g10_weak) != NULL) EXPECT_PTR_EQ(gc_weak_get(g10_weak), g10_target);
    g10_target = NULL; /* the target dies */
    gc_collect(t);
    for (int i = 0; i < 2000; i++) mk(t, &T_PLAIN, 99, 2); /* its cell is reused */
    void *seen = gc_weak_get(g10_weak);
    if (seen != NULL) T_FAIL("the weak reference still gives %p after its target died (id there %" PRIu64 ")",
                             seen, ((tobj_t *)seen)->id);
    gc_root_remove(h, mine);
    gc_root_remove(h, &g10_target);
    gc_root_remove(h, &g10_weak);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_review_s15");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_fin_weak_live_target),
        T(test_fin_identity_hash),
        T(test_headerless_everything),
        T(test_walk_after_compaction),
        T(test_generational_auto),
        T(test_fuzz),
        T(test_fin_pins_handles),
        T(test_tight_heap),
        T(test_detach_oom_keeps_weak_refs_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
