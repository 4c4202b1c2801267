/* test_gc_parallel.c — parallel marking gives the serial live set.
 *
 * The same seeded random graph is built in a heap marked by one marker and
 * in heaps marked by two and four (helper threads really run: the test
 * checks the marking generation of the heap's shared state), with and
 * without compaction. After each collection the set of finalized object
 * ids (the dead) must be identical, every survivor intact, gc_verify
 * clean. Deterministic: the graph comes from MULCH_TEST_SEED (printed).
 *
 * Also: the helper threads are named "mulch-marker-N" and block every
 * signal, even when the thread that started them blocks none (read back
 * from /proc/self/task); and an object with tens of thousands of slots
 * (a mark stack far deeper than a packet) is marked right when markers
 * share work from it (parallel.c fills the gap a donation leaves from the
 * stack's top once the stack is deep); and owning marking (parallel.c):
 * cross-linked trees whose markers set remote bits in each other's spans,
 * in full collections with and without compaction and in minor ones,
 * survive whole.
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630d01)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <dirent.h>
#include <signal.h>

#include "mulch_test.h"
#include "gc_wide_test.h"
#include "gc_internal.h"

enum { OBJECTS = 3000, ROOTS = 24, ROUNDS = 4 };

static gc_heap_t *heap_with(int markers, int compaction)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = markers;
    o.compaction = compaction;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    return h;
}

/* One run: builds the graph, collects ROUNDS times cutting random edges in
 * between; dead[round][id] records which ids were finalized by then. */
static void run(int markers, int compaction, uint64_t seed, unsigned char dead[ROUNDS][OBJECTS])
{
    fin_reset();
    gc_heap_t *h = heap_with(markers, compaction);
    gc_thread_t *t = gc_thread_attach(h);
    void **all = calloc(OBJECTS, sizeof *all);  /* rooted while building */
    void *roots[ROOTS] = { NULL };
    gc_root_add_range(h, all, OBJECTS);
    gc_root_add_range(h, roots, ROOTS);
    rng_t rng = { seed };
    for (size_t i = 0; i < OBJECTS; i++) all[i] = mk(t, &T_FIN, i, (size_t)(rng_next(&rng) % 6));
    for (size_t i = 0; i < OBJECTS; i++)
        for (size_t k = 0; k < NSLOTS; k++)
            if (rng_next(&rng) % 3) set_slot(t, all[i], k, all[rng_next(&rng) % OBJECTS]);
    for (size_t r = 0; r < ROOTS; r++) roots[r] = all[rng_next(&rng) % OBJECTS];
    memset(all, 0, OBJECTS * sizeof *all);
    uint64_t generation = h->mark_shared.generation;
    for (int round = 0; round < ROUNDS; round++) {
        gc_collect(t);
        for (size_t i = 0; i < OBJECTS; i++) dead[round][i] = (unsigned char)fin_of(i);
        EXPECT_VERIFY(h);
        /* Cut some edges of survivors reachable from a root. */
        for (size_t r = 0; r < ROOTS; r++) {
            void *n = roots[r];
            for (int step = 0; n && step < 8; step++) {
                size_t k = (size_t)(rng_next(&rng) % NSLOTS);
                EXPECT_OBJ(n, ((tobj_t *)n)->id);
                if (rng_next(&rng) % 4 == 0) set_slot(t, n, k, NULL);
                n = slot_of(n, (size_t)(rng_next(&rng) % NSLOTS));
            }
        }
        if (round == 1) roots[rng_next(&rng) % ROOTS] = NULL;
    }
    if (markers > 1 && h->mark_shared.generation == generation)
        T_FAIL("markers=%d: the helper markers never ran", markers);
    gc_root_remove(h, roots);
    gc_root_remove(h, all);
    gc_heap_destroy(h);
    free(all);
}

static void test_gc_parallel_same_live_set(void **state)
{
    (void)state;
    TEST_START();
    static unsigned char serial[ROUNDS][OBJECTS], parallel[ROUNDS][OBJECTS];
    int graphs = (int)scaled(6, 2);
    for (int g = 0; g < graphs; g++) {
        uint64_t seed = g_seed + (uint64_t)g;
        for (int c = 0; c < 2; c++) {
            int compaction = c ? GC_COMPACT_ALWAYS : GC_COMPACT_NEVER;
            run(1, compaction, seed, serial);
            for (int markers = 2; markers <= 4; markers += 2) {
                run(markers, compaction, seed, parallel);
                for (int round = 0; round < ROUNDS; round++)
                    for (size_t i = 0; i < OBJECTS; i++)
                        if (serial[round][i] != parallel[round][i])
                            T_FAIL("graph %d, compaction %d, markers %d, round %d: object %zu %s serially "
                                   "but %s in parallel",
                                   g, compaction, markers, round, i, serial[round][i] ? "died" : "lived",
                                   parallel[round][i] ? "died" : "lived");
            }
        }
    }
}

/* For each thread of the process named mulch-marker-*, whether its SigBlk
 * mask has SIGINT and SIGTERM blocked; returns how many such threads. */
static int markers_blocking(int *blocking)
{
    DIR *dir = opendir("/proc/self/task");
    EXPECT_NONNULL(dir);
    int found = 0;
    *blocking = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) continue;
        bool marker = fgets(line, sizeof line, f) && strncmp(line, "mulch-marker-", 13) == 0;
        fclose(f);
        if (!marker) continue;
        found++;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        f = fopen(path, "r");
        EXPECT_NONNULL(f);
        while (fgets(line, sizeof line, f)) {
            unsigned long long mask;
            if (sscanf(line, "SigBlk: %llx", &mask) == 1) {
                unsigned long long want = (1ull << (SIGINT - 1)) | (1ull << (SIGTERM - 1));
                if ((mask & want) == want) ++*blocking;
            }
        }
        fclose(f);
    }
    closedir(dir);
    return found;
}

static void test_gc_parallel_helpers_named_and_masked(void **state)
{
    (void)state;
    TEST_START();
    sigset_t none, old;
    sigemptyset(&none);
    EXPECT_EQ(pthread_sigmask(SIG_SETMASK, &none, &old), 0);
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = 3;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    void *keep = mk(t, &T_FIN, 1, 0);
    gc_push_root(t, &keep);
    gc_collect(t); /* starts the helpers */
    int blocking = 0;
    EXPECT_EQ(markers_blocking(&blocking), 2);
    EXPECT_EQ(blocking, 2);
    /* the collecting thread's own mask is as it was */
    sigset_t now;
    EXPECT_EQ(pthread_sigmask(SIG_SETMASK, NULL, &now), 0);
    EXPECT_EQ(sigismember(&now, SIGINT), 0);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

/* One wide object (gc_wide_test.h): the marker that traces it defers its
 * range as entries, and each time an idle marker asks, gives away half of
 * what it holds. */
static void wide_run(int markers, int compaction, size_t n)
{
    fin_reset();
    gc_heap_t *h = heap_with(markers, compaction);
    gc_thread_t *t = gc_thread_attach(h);
    wide_t *w = gc_alloc(t, &T_WIDE, sizeof(wide_t) + n * sizeof(void *));
    EXPECT_NONNULL(w);
    w->n = n;
    gc_push_root(t, (void **)&w);
    /* The first MAX_IDS slots hold finalizable objects (the dead can be
     * named), the rest plain ones; each has a child of its own. */
    for (size_t i = 0; i < n; i++) {
        void *leaf = mk(t, i < MAX_IDS ? &T_FIN : &T_PLAIN, i, 1);
        gc_push_root(t, &leaf);
        void *child = mk(t, &T_PLAIN, n + i, 0);
        set_slot(t, leaf, 0, child);
        gc_write(t, w, &w->slots[i], leaf);
        gc_pop_roots(t, 1);
    }
    uint64_t generation = h->mark_shared.generation;
    for (int round = 0; round < 2; round++) {
        /* round 0 drops every third of the finalizable ones */
        if (round == 0)
            for (size_t i = 0; i < MAX_IDS && i < n; i += 3) gc_write(t, w, &w->slots[i], NULL);
        gc_collect(t);
        gc_collect(t); /* the dead's finalizers ran after the first */
        EXPECT_VERIFY(h);
        for (size_t i = 0; i < n; i++) {
            if (i < MAX_IDS) EXPECT_FIN(i, i % 3 == 0 ? 1 : 0);
            if (i < MAX_IDS && i % 3 == 0) continue;
            EXPECT_OBJ(w->slots[i], i);
            EXPECT_OBJ(slot_of(w->slots[i], 0), n + i);
        }
    }
    if (markers > 1 && h->mark_shared.generation == generation)
        T_FAIL("markers=%d: the helper markers never ran", markers);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_gc_parallel_wide_object(void **state)
{
    (void)state;
    TEST_START();
    size_t n = scaled(60000, 12000);
    for (int c = 0; c < 2; c++)
        for (int markers = 1; markers <= 4; markers *= 2)
            wide_run(markers, c ? GC_COMPACT_ALWAYS : GC_COMPACT_NEVER, n);
}

/* Owning marking (parallel.c): a tree whose nodes also point across it at
 * random, so that the two markers, given separate subtrees, still reach
 * many objects of the other's spans and set remote bits there. Every
 * reachable node survives intact (the cells of the dead are taken again
 * and written between collections, so a reachable node freed by mistake
 * would be overwritten), the dead die, gc_verify is clean (it checks that
 * the remote bits, the age bits of a heap without generations, are zero
 * again), and in a full-size run that marks by owning, remote bits were
 * merged at all. Then again with compaction AUTO, which evacuates half the
 * tree's spans while markers own the others (a copy into an owned span
 * sets a remote bit). */
typedef struct cross_node {
    struct cross_node *left, *right, *across;
    uint64_t id;
} cross_node_t;

static void cross_trace(void *obj, gc_tracer_t *tracer)
{
    cross_node_t *n = obj;
    gc_trace_slot(tracer, (void **)&n->left);
    gc_trace_slot(tracer, (void **)&n->right);
    gc_trace_slot(tracer, (void **)&n->across);
}
static const gc_type_t cross_type = { "cross_node", cross_trace, NULL };

static cross_node_t *cross_new(gc_thread_t *t, uint64_t id)
{
    cross_node_t *n = gc_alloc(t, &cross_type, sizeof *n);
    EXPECT_NONNULL(n);
    n->id = id;
    return n;
}

/* Checks the subtree at n (ids: heap order, node k's children 2k+1 and
 * 2k+2) and its cross links; returns its node count. */
static size_t cross_check(const cross_node_t *n, uint64_t id, size_t nodes)
{
    size_t count = 0;
    while (n != NULL) {
        if (n->id != id) T_FAIL("node %" PRIu64 " holds id %" PRIu64 ": freed while reachable", id, n->id);
        if (n->across == NULL || n->across->id >= nodes) T_FAIL("node %" PRIu64 ": cross link lost", id);
        count++;
        count += cross_check(n->left, 2 * id + 1, nodes);
        n = n->right;
        id = 2 * id + 2;
    }
    return count;
}

/* One run at compaction `compaction`: in its first half, nodes alternate
 * with garbage (sparse spans, which AUTO evacuates), in the second half
 * not (dense spans, marked in place by their owners, some of them the
 * copies' targets). Returns the spans whose remote bits were merged. */
static uint64_t owning_run(int compaction, size_t nodes)
{
    gc_heap_t *h = heap_with(2, compaction);
    gc_thread_t *t = gc_thread_attach(h);
    cross_node_t **all = calloc(nodes, sizeof *all);
    EXPECT_NONNULL(all);
    gc_root_add_range(h, (void **)all, nodes);
    rng_t rng = { g_seed };
    for (size_t k = 0; k < nodes; k++) {
        all[k] = cross_new(t, k);
        if (k < nodes / 2) (void)cross_new(t, UINT64_MAX);
    }
    for (size_t k = 0; k < nodes; k++) {
        if (2 * k + 1 < nodes) gc_write(t, all[k], (void **)&all[k]->left, all[2 * k + 1]);
        if (2 * k + 2 < nodes) gc_write(t, all[k], (void **)&all[k]->right, all[2 * k + 2]);
        gc_write(t, all[k], (void **)&all[k]->across, all[rng_next(&rng) % nodes]);
    }
    cross_node_t *root = all[0];
    gc_push_root(t, (void **)&root);
    memset(all, 0, nodes * sizeof *all);
    uint64_t before = h->mark_shared.remote_spans;
    for (int round = 0; round < 4; round++) {
        gc_collect(t);
        EXPECT_VERIFY(h);
        /* the garbage's cells again, written with ids no node has */
        for (size_t k = 0; k < nodes / 2; k++) (void)cross_new(t, UINT64_MAX - 1);
        EXPECT_EQ(cross_check(root, 0, nodes), nodes);
    }
    gc_stats_t stats;
    gc_get_stats(h, &stats);
    if (compaction == GC_COMPACT_AUTO && !h->generational && h->options.compaction == GC_COMPACT_AUTO
        && stats.bytes_moved == 0)
        T_FAIL("compaction auto moved nothing: the sparse half was not evacuated");
    uint64_t remote = h->mark_shared.remote_spans - before;
    print_message("owning marking, compaction %d: remote bits merged in %" PRIu64 " spans, %" PRIu64
                  " bytes moved\n", compaction, remote, (uint64_t)stats.bytes_moved);
    gc_pop_roots(t, 1);
    gc_root_remove(h, (void **)all);
    free(all);
    /* (the compact variant of this test runs it with every span evacuated:
     * those are never owned) */
    bool owning = h->options.compaction == compaction;
    gc_thread_detach(t);
    gc_heap_destroy(h);
    return owning ? remote : UINT64_MAX;
}

static void test_gc_parallel_owning_shares_spans(void **state)
{
    (void)state;
    TEST_START();
    size_t nodes = scaled((size_t)1 << 18, (size_t)1 << 13) - 1;
    uint64_t remote = owning_run(GC_COMPACT_NEVER, nodes);
    if (!g_quick && remote == 0)
        T_FAIL("no marker set a remote bit in 4 collections of %zu cross-linked nodes", nodes);
    (void)owning_run(GC_COMPACT_AUTO, nodes);
}

/* Node `id` of a tree in heap order under root (node k's children are
 * 2k+1 and 2k+2): the path from the root is id + 1's bits after the
 * first. Read afresh each time, so it holds across collections. */
static cross_node_t *cross_node_at(cross_node_t *root, size_t id)
{
    size_t path = id + 1;
    int bit = 63 - __builtin_clzll((unsigned long long)path);
    cross_node_t *n = root;
    while (n != NULL && bit-- > 0) n = (path >> bit) & 1u ? n->right : n->left;
    return n;
}

/* A generational heap marked by two markers whatever its size, that
 * never compacts (minor collections do not move). */
static gc_heap_t *generational_heap_two_markers(void)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = 2;
    o.generational = 1;
    o.compaction = GC_COMPACT_NEVER;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    return h;
}

/* Allocates 1024 garbage nodes; true when that collected. */
static bool garbage_collected(gc_heap_t *h, gc_thread_t *t)
{
    gc_stats_t s0, s1;
    gc_get_stats(h, &s0);
    for (size_t k = 0; k < 1024; k++) (void)cross_new(t, UINT64_MAX - 1);
    gc_get_stats(h, &s1);
    return s1.collections != s0.collections;
}

/* Owning marking in minor collections (generational mode, whose age
 * bits are in use: the remote bits have a mapping of their own). A
 * cross-linked tree grows from an old object, each node linked in as it
 * is made (no root range, which would mark the nodes serially before the
 * markers start); allocation triggers minor collections, whose markers
 * mark the young tree in parallel. It survives intact, gc_verify is
 * clean, and in a full-size run remote bits were merged. */
static void test_gc_parallel_owning_minor(void **state)
{
    (void)state;
    TEST_START();
    size_t nodes = scaled((size_t)1 << 16, (size_t)1 << 12) - 1;
    gc_heap_t *h = generational_heap_two_markers();
    gc_thread_t *t = gc_thread_attach(h);
    cross_node_t *holder = cross_new(t, UINT64_MAX - 2);
    gc_push_root(t, (void **)&holder);
    gc_collect(t); /* (full: holder is old from now on) */
    uint64_t before = h->mark_shared.remote_spans;
    rng_t rng = { g_seed };
    int minors = 0;
    /* Three trees, and up to nine more while no remote bit was set: a
     * helper that a loaded machine wakes late shares little of a minor
     * collection's few milliseconds (of 24 runs of three trees, two
     * at a time, three set none). */
    int trees = 0;
    for (; trees < 12 && (trees < 3 || (!g_quick && h->mark_shared.remote_spans == before)); trees++) {
        for (size_t k = 0; k < nodes; k++) {
            cross_node_t *n = cross_new(t, k);
            gc_push_root(t, (void **)&n);
            if (k == 0) {
                gc_write(t, holder, (void **)&holder->left, n);
            } else {
                cross_node_t *parent = cross_node_at(holder->left, (k - 1) / 2);
                gc_write(t, parent, k % 2 ? (void **)&parent->left : (void **)&parent->right, n);
            }
            gc_write(t, n, (void **)&n->across, cross_node_at(holder->left, (size_t)(rng_next(&rng) % (k + 1))));
            gc_pop_roots(t, 1);
        }
        /* allocation until a collection that leaves the tree young */
        for (int step = 0; step < 400; step++) {
            if (!garbage_collected(h, t)) continue;
            EXPECT_EQ(cross_check(holder->left, 0, nodes), nodes);
            if (h->sweep_ages) {
                minors++;
                break;
            }
        }
        EXPECT_VERIFY(h);
    }
    /* (compaction always, as the compact variant of this test sets it,
     * makes every collection a full one) */
    bool minor_possible = h->generational && h->options.compaction != GC_COMPACT_ALWAYS;
    if (minor_possible && minors == 0) T_FAIL("no minor collection after any of %d trees", trees);
    uint64_t remote = h->mark_shared.remote_spans - before;
    print_message("owning marking, %d trees, minor collections: %d, remote bits merged in %" PRIu64 " spans\n", trees,
                  minors, remote);
    if (!g_quick && minor_possible && remote == 0)
        T_FAIL("no marker set a remote bit while %d young trees of %zu cross-linked nodes were marked", trees, nodes);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* A minor collection's card scan runs on every marker (gc_mark_parallel's
 * `first`), each taking spans from a shared cursor, and its drains give
 * work to the others while parallel markers mark young objects in the
 * spans it reads. Many old nodes, each given a young chain through
 * gc_write (their cards dirty, the chains reachable only through them),
 * then allocation until a minor collection: every chain survives whole
 * (a span whose cards no marker scanned loses chains), gc_verify is
 * clean; three rounds (the chains of a round turn old in the next), and
 * in full-size runs up to nine more until a helper scanned some spans. */
static void test_gc_parallel_cards_shared(void **state)
{
    (void)state;
    TEST_START();
    size_t holders = scaled(20000, 2000), chain = 6;
    gc_heap_t *h = generational_heap_two_markers();
    gc_thread_t *t = gc_thread_attach(h);
    cross_node_t **old = calloc(holders, sizeof *old);
    EXPECT_NONNULL(old);
    gc_root_add_range(h, (void **)old, holders);
    for (size_t k = 0; k < holders; k++) old[k] = cross_new(t, k);
    gc_collect(t); /* (full: the holders are old from now on) */
    int minors = 0;
    bool minor_possible = h->generational && h->options.compaction != GC_COMPACT_ALWAYS;
    uint64_t helper_spans = atomic_load(&h->mark_shared.helper_card_spans);
    uint64_t round = 1;
    for (; round <= 3 || (round <= 12 && !g_quick && minor_possible
                          && atomic_load(&h->mark_shared.helper_card_spans) == helper_spans);
         round++) {
        for (size_t k = 0; k < holders; k++) {
            cross_node_t *prev = NULL; /* (rooted: the compact variant moves objects) */
            gc_push_root(t, (void **)&prev);
            for (size_t c = 0; c < chain; c++) {
                cross_node_t *n = cross_new(t, round << 48 | (uint64_t)(k * chain + c));
                gc_write(t, n, (void **)&n->across, old[k]);
                if (prev == NULL) gc_write(t, old[k], (void **)&old[k]->right, n);
                else gc_write(t, prev, (void **)&prev->left, n);
                prev = n;
            }
            gc_pop_roots(t, 1);
        }
        /* allocation until a collection, which should be minor */
        for (int step = 0; step < 400; step++) {
            if (!garbage_collected(h, t)) continue;
            if (h->sweep_ages) minors++;
            break;
        }
        for (size_t k = 0; k < holders; k++) {
            const cross_node_t *n = old[k]->right;
            for (size_t c = 0; c < chain; c++, n = n->left) {
                uint64_t want = round << 48 | (uint64_t)(k * chain + c);
                if (n == NULL || n->id != want || n->across != old[k])
                    T_FAIL("round %" PRIu64 ": holder %zu's chain lost node %zu (reachable only through a card)",
                           round, k, c);
            }
        }
        EXPECT_VERIFY(h);
    }
    helper_spans = atomic_load(&h->mark_shared.helper_card_spans) - helper_spans;
    print_message("card scan with helpers: %d minor collections of %" PRIu64 " rounds, %" PRIu64
                  " spans scanned by a helper\n", minors, round - 1, helper_spans);
    if (minor_possible && minors == 0) T_FAIL("no minor collection in %" PRIu64 " rounds", round - 1);
    if (minor_possible && !g_quick && helper_spans == 0)
        T_FAIL("no helper scanned a span's cards in %d minor collections", minors);
    gc_root_remove(h, (void **)old);
    free(old);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_parallel");
    mt_env_ignore("MULCH_GC_MARKERS");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_parallel_same_live_set),
        T(test_gc_parallel_helpers_named_and_masked),
        T(test_gc_parallel_wide_object),
        T(test_gc_parallel_owning_shares_spans),
        T(test_gc_parallel_owning_minor),
        T(test_gc_parallel_cards_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
