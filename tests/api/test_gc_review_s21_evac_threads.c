/* test_gc_review_s21_evac_threads.c — session 21's review of compaction
 * with several mutator threads (gc/evacuate.c, gc/generation.c,
 * gc/collect.c, gc/parallel.c): attached threads hold objects through
 * root stacks, handles, pins, weak references and ephemerons while another
 * thread collects with GC_COMPACT_ALWAYS, in the default and generational
 * modes. After every GC point each thread
 * checks that every object it reaches holds its id, pinned objects did not
 * move and identity hashes did not change; at the end a heap walk finds
 * every live id once (no object copied twice). Seeded: prints its seed.
 * It found a lazy sweep that stored the span's epoch after clearing its
 * mark bits: gc_type_of on another thread took a live headerless object
 * for a freed one in that window (NULL and a report), a few times a
 * second with three threads allocating against a collecting one. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6576616374687264)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <stdbool.h>

#include "mulch_test.h"

struct node {
    void *next;  /* another node of the same thread (several parents) */
    void *child; /* a node reachable only through this field */
    uint64_t id;
    uint64_t check;
};

static void node_trace(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, &((struct node *)obj)->next);
    gc_trace_slot(tracer, &((struct node *)obj)->child);
}
static const gc_type_t T_NODE = { "test.evac_node", node_trace, NULL };

#define SLOTS 48
#define PINS 4
#define HANDLES 4
#define WEAKS 4
#define EPHS 4

static uint64_t check_of(uint64_t id) { return id * UINT64_C(0x9e3779b97f4a7c15) ^ UINT64_C(0x5555); }

typedef struct {
    gc_heap_t *heap;
    int index;
    int rounds;
    bool generational;
    atomic_int *running;
    uint64_t next_id;
    void *roots[SLOTS];
    uint64_t ids[SLOTS];
    uintptr_t hashes[SLOTS];
    void *pins[PINS];
    uint64_t pin_ids[PINS];
    gc_handle_t *handles[HANDLES];
    uint64_t handle_ids[HANDLES];
    void *weaks[WEAKS];
    int weak_of[WEAKS];
    void *ephs[EPHS];
    int eph_of[EPHS];
    uint64_t eph_value_ids[EPHS];
    unsigned long allocs_failed;
} mut_t;

static bool node_ok(const void *p, uint64_t id)
{
    const struct node *n = p;
    return n != NULL && gc_type_of(p) == &T_NODE && n->id == id && n->check == check_of(id);
}

/* A new node with a fresh id and a fresh child; NULL when out of memory. */
static void *new_node(gc_thread_t *t, mut_t *m, uint64_t *id_out)
{
    void *child = NULL, *n = NULL;
    gc_push_root(t, &child);
    gc_push_root(t, &n);
    child = gc_alloc(t, &T_NODE, sizeof(struct node));
    if (child) {
        uint64_t cid = ((uint64_t)m->index << 40) | m->next_id++;
        ((struct node *)child)->id = cid;
        ((struct node *)child)->check = check_of(cid);
        n = gc_alloc(t, &T_NODE, sizeof(struct node));
        if (n) {
            uint64_t id = ((uint64_t)m->index << 40) | m->next_id++;
            ((struct node *)n)->id = id;
            ((struct node *)n)->check = check_of(id);
            gc_write(t, n, &((struct node *)n)->child, child);
            *id_out = id;
        }
    }
    void *result = n;
    gc_pop_roots(t, 2);
    return result; /* no GC point before the caller stores it */
}

static void check_all(mut_t *m, const char *when)
{
    for (int i = 0; i < SLOTS; i++) {
        struct node *n = m->roots[i];
        if (n == NULL) continue;
        if (!node_ok(n, m->ids[i])) {
            AFAIL("thread %d %s: root %d %p does not hold id %llx", m->index, when, i, (void *)n,
                  (unsigned long long)m->ids[i]);
            return;
        }
        if (!node_ok(n->child, m->ids[i] - 1)) {
            AFAIL("thread %d %s: child of root %d is wrong", m->index, when, i);
            return;
        }
        if (n->next) {
            const struct node *x = n->next;
            if (gc_type_of(x) != &T_NODE || x->check != check_of(x->id)) {
                AFAIL("thread %d %s: next of root %d is wrong", m->index, when, i);
                return;
            }
        }
        if (gc_identity_hash(n) != m->hashes[i]) {
            AFAIL("thread %d %s: root %d identity hash changed", m->index, when, i);
            return;
        }
    }
    for (int i = 0; i < PINS; i++)
        if (m->pins[i] && !node_ok(m->pins[i], m->pin_ids[i])) {
            AFAIL("thread %d %s: pinned %d moved or changed", m->index, when, i);
            return;
        }
    for (int i = 0; i < HANDLES; i++)
        if (m->handles[i] && !node_ok(gc_handle_get(m->handles[i]), m->handle_ids[i])) {
            AFAIL("thread %d %s: handle %d is wrong", m->index, when, i);
            return;
        }
    for (int i = 0; i < WEAKS; i++)
        if (m->weaks[i] && gc_weak_get(m->weaks[i]) != m->roots[m->weak_of[i]]) {
            AFAIL("thread %d %s: weak %d does not read its (rooted) target", m->index, when, i);
            return;
        }
    for (int i = 0; i < EPHS; i++) {
        if (m->ephs[i] == NULL) continue;
        if (gc_ephemeron_key(m->ephs[i]) != m->roots[m->eph_of[i]] ||
            !node_ok(gc_ephemeron_value(m->ephs[i]), m->eph_value_ids[i])) {
            AFAIL("thread %d %s: ephemeron %d is wrong", m->index, when, i);
            return;
        }
    }
}

static const char *const g_when[8] = { "after a pin",          "after a handle",
                                      "after a weak reference", "after an ephemeron",
                                      "after a safepoint",      "after a blocking region",
                                      "after nothing",          "after nothing" };

static void *mutator(void *arg)
{
    mut_t *m = arg;
    gc_thread_t *t = gc_thread_attach(m->heap);
    if (t == NULL) {
        AFAIL("attach failed");
        return NULL;
    }
    rng_t rng = test_rng("evac_threads", (uint64_t)m->index);
    for (int i = 0; i < SLOTS; i++) gc_push_root(t, &m->roots[i]);
    for (int i = 0; i < WEAKS; i++) gc_push_root(t, &m->weaks[i]);
    for (int i = 0; i < EPHS; i++) gc_push_root(t, &m->ephs[i]);
    for (int r = 0; r < m->rounds; r++) {
        int i = (int)rng_below(&rng, SLOTS);
        uint64_t id = 0;
        void *n = new_node(t, m, &id);
        if (n == NULL) {
            m->allocs_failed++;
        } else {
            /* weak refs and ephemerons keyed by slot i die with the old object */
            for (int w = 0; w < WEAKS; w++)
                if (m->weaks[w] && m->weak_of[w] == i) m->weaks[w] = NULL;
            for (int e = 0; e < EPHS; e++)
                if (m->ephs[e] && m->eph_of[e] == i) m->ephs[e] = NULL;
            m->roots[i] = n;
            m->ids[i] = id;
            m->hashes[i] = gc_identity_hash(n);
            int j = (int)rng_below(&rng, SLOTS);
            if (m->roots[j]) gc_write(t, m->roots[j], &((struct node *)m->roots[j])->next, n);
        }
        check_all(m, "after alloc");
        int what = (int)rng_below(&rng, 8);
        switch (what) {
        case 0: { /* pin slot's object */
            int p = (int)rng_below(&rng, PINS);
            if (m->pins[p]) gc_unpin(m->heap, m->pins[p]);
            m->pins[p] = NULL;
            int k = (int)rng_below(&rng, SLOTS);
            if (m->roots[k]) {
                gc_pin(m->heap, m->roots[k]);
                m->pins[p] = m->roots[k];
                m->pin_ids[p] = m->ids[k];
            }
            break;
        }
        case 1: { /* a handle */
            int h = (int)rng_below(&rng, HANDLES);
            if (m->handles[h]) rc_release(m->handles[h]);
            m->handles[h] = NULL;
            int k = (int)rng_below(&rng, SLOTS);
            if (m->roots[k]) {
                m->handles[h] = gc_handle_new(m->heap, m->roots[k]);
                m->handle_ids[h] = m->ids[k];
            }
            break;
        }
        case 2: { /* a weak reference */
            int w = (int)rng_below(&rng, WEAKS);
            int k = (int)rng_below(&rng, SLOTS);
            m->weaks[w] = NULL;
            if (m->roots[k]) {
                void *weak = gc_weak_new(t, m->roots[k]);
                if (weak && m->roots[k]) {
                    m->weaks[w] = weak;
                    m->weak_of[w] = k;
                }
            }
            break;
        }
        case 3: { /* an ephemeron whose value only it holds */
            int e = (int)rng_below(&rng, EPHS);
            int k = (int)rng_below(&rng, SLOTS);
            m->ephs[e] = NULL;
            uint64_t vid = 0;
            void *v = new_node(t, m, &vid);
            if (v == NULL || m->roots[k] == NULL) break;
            gc_push_root(t, &v);
            void *eph = gc_ephemeron_new(t, m->roots[k], v);
            gc_pop_roots(t, 1);
            if (eph) {
                m->ephs[e] = eph;
                m->eph_of[e] = k;
                m->eph_value_ids[e] = vid - 0; /* the value is the parent node */
            }
            break;
        }
        case 4:
            gc_safepoint(t);
            break;
        case 5:
            gc_enter_blocking(t);
            sched_yield();
            gc_leave_blocking(t);
            break;
        default:
            break;
        }
        check_all(m, g_when[what]);
        if (atomic_load(&g_failures)) break;
    }
    check_all(m, "at the end");
    for (int i = 0; i < PINS; i++)
        if (m->pins[i]) gc_unpin(m->heap, m->pins[i]);
    for (int i = 0; i < HANDLES; i++)
        if (m->handles[i]) rc_release(m->handles[i]);
    gc_pop_roots(t, SLOTS + WEAKS + EPHS);
    atomic_fetch_sub(m->running, 1);
    gc_thread_detach(t);
    return NULL;
}

typedef struct {
    uint64_t *ids;
    size_t count, cap;
} walk_t;

static void walk_ids(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)size;
    walk_t *w = ctx;
    if (type != &T_NODE) return;
    if (w->count < w->cap) w->ids[w->count] = ((struct node *)obj)->id;
    w->count++;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

#ifndef MUTATORS
#define MUTATORS 3
#endif

/* A ballast of `ballast` bytes of 32-byte nodes, rooted by the collector
 * thread, then MUTATORS threads against a collector looping gc_collect
 * (and gc_verify). */
static void run(int generational, int markers, size_t ballast, size_t max_heap)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = GC_COMPACT_ALWAYS;
    o.generational = generational;
    o.markers = markers;
    o.max_heap = max_heap;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    void *ballast_list = NULL;
    gc_push_root(t, &ballast_list);
    size_t nballast = ballast / 32;
    for (size_t i = 0; i < nballast; i++) {
        struct node *n = gc_alloc(t, &T_NODE, sizeof *n);
        if (n == NULL) break;
        n->id = (UINT64_C(0xff) << 40) | i;
        n->check = check_of(n->id);
        gc_write(t, n, &n->next, ballast_list);
        ballast_list = n;
    }
    atomic_int running = MUTATORS;
    static mut_t muts[MUTATORS];
    pthread_t th[MUTATORS];
    memset(muts, 0, sizeof muts);
    for (int i = 0; i < MUTATORS; i++) {
        muts[i] = (mut_t){ .heap = h, .index = i + 1, .rounds = (int)scaled(3000, 600),
                           .generational = generational, .running = &running };
        if (pthread_create(&th[i], NULL, mutator, &muts[i]) != 0) T_FAIL("pthread_create");
    }
    int collections = 0;
    while (atomic_load(&running) > 0) {
        gc_collect(t);
        collections++;
        if ((collections & 7) == 0) {
            unsigned long r = rec_count();
            size_t v = gc_verify(h);
            if (v) {
                char w[256];
                const void *p;
                rec_last(w, sizeof w, &p);
                AFAIL("gc_verify: %zu problem(s) after %d collections: %s", v, collections, w);
                (void)r;
            }
        }
        gc_enter_blocking(t);
        sched_yield();
        gc_leave_blocking(t);
    }
    for (int i = 0; i < MUTATORS; i++) pthread_join(th[i], NULL);
    EXPECT_NO_ASYNC_FAILURES();
    /* the ballast kept its contents */
    size_t seen = 0;
    for (struct node *n = ballast_list; n; n = n->next, seen++)
        if (n->check != check_of(n->id)) T_FAIL("ballast node %zu corrupted", seen);
    gc_collect(t);
    EXPECT_VERIFY(h);
    walk_t w = { NULL, 0, 0 };
    gc_heap_walk(h, walk_ids, &w);
    w.cap = w.count;
    w.ids = calloc(w.cap ? w.cap : 1, sizeof *w.ids);
    EXPECT_NONNULL(w.ids);
    w.count = 0;
    gc_heap_walk(h, walk_ids, &w);
    EXPECT_EQ(w.count, w.cap);
    qsort(w.ids, w.count, sizeof *w.ids, cmp_u64);
    for (size_t i = 1; i < w.count; i++)
        if (w.ids[i] == w.ids[i - 1]) T_FAIL("id %llx walked twice: copied twice", (unsigned long long)w.ids[i]);
    free(w.ids);
    printf("# generational %d markers %d: %d collections, %zu ballast nodes, %llu bytes moved\n", generational,
           markers, collections, seen, (unsigned long long)stats_of(h).bytes_moved);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_evac_threads_default(void **state)
{
    (void)state;
    run(0, 1, 256 * KiB, 0);
}

static void test_evac_threads_generational(void **state)
{
    (void)state;
    run(1, 1, 256 * KiB, 0);
}

int main(void)
{
    mt_init("test_gc_review_s21_evac_threads");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_evac_threads_default),
        T(test_evac_threads_generational),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
