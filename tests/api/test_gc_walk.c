/* test_gc_walk.c — gc_heap_walk (<mulch/gc.h>, docs/api.md): every
 * allocated object visited exactly once with its type and size; garbage
 * until a collection finds it, none after; mulch's own objects under
 * mulch's types; calls from the callback that would take the heap's lock
 * reported and refused; misuse reported; a walk stopping the world while
 * another thread allocates. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6377616c6b)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <sched.h>
#include <stdbool.h>

#include "mulch_test.h"

/* A census: objects seen per type (the test types, mulch.weak, others),
 * each object's address once, sizes checked against gc_size_of. */
#define MAX_SEEN 20000

typedef struct census {
    size_t plain, fin, raw, weak, other, bad_size;
    size_t count;
    void *seen[MAX_SEEN];
    gc_thread_t *thread; /* for the misuse test's calls */
    unsigned long reports_in_walk;
} census_t;

static void count_object(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    census_t *c = ctx;
    if (type == &T_PLAIN) c->plain++;
    else if (type == &T_FIN) c->fin++;
    else if (type == &T_RAW) c->raw++;
    else if (type != NULL && type->name != NULL && strcmp(type->name, "mulch.weak") == 0) c->weak++;
    else c->other++;
    if (gc_type_of(obj) != type || gc_size_of(obj) != size) c->bad_size++;
    if (c->count < MAX_SEEN) c->seen[c->count] = obj;
    c->count++;
}

static int address_order(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* Every visited address distinct. */
static bool all_distinct(census_t *c)
{
    size_t n = c->count < MAX_SEEN ? c->count : MAX_SEEN;
    qsort(c->seen, n, sizeof c->seen[0], address_order);
    for (size_t i = 1; i < n; i++)
        if (c->seen[i] == c->seen[i - 1]) return false;
    return true;
}

static census_t *walk(gc_heap_t *h)
{
    census_t *c = calloc(1, sizeof *c);
    if (!c) T_FAIL("calloc failed");
    size_t n = gc_heap_walk(h, count_object, c);
    if (n != c->count) T_FAIL("gc_heap_walk returned %zu but called back %zu times", n, c->count);
    if (c->bad_size) T_FAIL("%zu objects came with a type or size other than gc_type_of/gc_size_of's", c->bad_size);
    if (!all_distinct(c)) T_FAIL("an object was visited twice");
    return c;
}

/* Rooted objects of three types, small and large, plus garbage: the walk
 * sees all of them until a collection, then only the rooted ones. */
static void walk_round(int generational)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = generational;
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) T_FAIL("gc_heap_create returned NULL");
    gc_thread_t *t = gc_thread_attach(h);
    enum { KEPT = 300, DROPPED = 500 };
    static void *kept[KEPT];
    memset(kept, 0, sizeof kept);
    gc_root_add_range(h, kept, KEPT);
    rng_t rng = test_rng("walk_round", (uint64_t)generational);
    size_t want_plain = 0, want_fin = 0, want_raw = 0;
    for (size_t i = 0; i < KEPT; i++) {
        const gc_type_t *type = i % 3 == 0 ? &T_PLAIN : i % 3 == 1 ? &T_FIN : &T_RAW;
        /* a few large objects (own spans) among small ones */
        size_t words = i % 50 == 0 ? 40000 : rng_below(&rng, 40);
        kept[i] = mk(t, type, i, words);
        want_plain += type == &T_PLAIN;
        want_fin += type == &T_FIN;
        want_raw += type == &T_RAW;
    }
    void *weak_holder = NULL;
    gc_push_root(t, &weak_holder);
    weak_holder = gc_weak_new(t, kept[0]);
    if (!weak_holder) T_FAIL("gc_weak_new returned NULL");
    for (size_t i = 0; i < DROPPED; i++) (void)mk(t, &T_PLAIN, KEPT + i, rng_below(&rng, 8));

    /* before any collection found them, the dropped objects are allocated
     * (unless the allocations collected: then fewer) */
    census_t *c = walk(h);
    if (c->fin != want_fin || c->raw != want_raw)
        T_FAIL("before gc_collect: fin %zu raw %zu, want %zu %zu", c->fin, c->raw, want_fin, want_raw);
    if (c->plain < want_plain || c->plain > want_plain + DROPPED)
        T_FAIL("before gc_collect: plain %zu, want %zu..%zu", c->plain, want_plain, want_plain + DROPPED);
    if (c->weak != 1 || c->other != 0) T_FAIL("before gc_collect: weak %zu other %zu, want 1 and 0", c->weak, c->other);
    free(c);

    gc_collect(t);
    c = walk(h);
    if (c->plain != want_plain || c->fin != want_fin || c->raw != want_raw || c->weak != 1 || c->other != 0)
        T_FAIL("after gc_collect: plain %zu fin %zu raw %zu weak %zu other %zu, want %zu %zu %zu 1 0", c->plain,
               c->fin, c->raw, c->weak, c->other, want_plain, want_fin, want_raw);
    free(c);

    /* the walk leaves the heap sound and usable */
    EXPECT_VERIFY(h);
    for (size_t i = 0; i < KEPT; i++) EXPECT_OBJ(kept[i], i);
    kept[1] = NULL; /* a finalizable object dropped: finalized by the next
                     * collection, freed by the one after */
    gc_collect(t);
    gc_collect(t);
    c = walk(h);
    if (c->fin != want_fin - 1) T_FAIL("after dropping one: fin %zu, want %zu", c->fin, want_fin - 1);
    free(c);

    gc_pop_roots(t, 1);
    gc_root_remove(h, kept);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_walk_counts_objects(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    walk_round(0);
    walk_round(1);
    EXPECT_NO_REPORTS(r0);
}

/* A walk from a thread that is not attached, of an empty heap. */
static void test_walk_empty_heap_unattached(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    census_t *c = walk(h);
    if (c->count != 0) T_FAIL("an empty heap walked %zu objects", c->count);
    free(c);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* From the callback, calls that take the heap's lock or may collect are
 * reported and do nothing (they would deadlock); gc_type_of and
 * gc_size_of work. */
static void misuse_from_callback(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)type;
    (void)size;
    census_t *c = ctx;
    if (c->count++ != 0) return;
    unsigned long r = rec_count();
    if (gc_alloc(c->thread, &T_RAW, 16) != NULL) AFAIL("gc_alloc from a walk callback returned an object");
    gc_collect(c->thread);
    (void)gc_identity_hash(obj);
    c->reports_in_walk = rec_count() - r;
}

static void test_walk_callback_misuse(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *root = mk(t, &T_PLAIN, 1, 2);
    gc_push_root(t, &root);
    census_t *c = calloc(1, sizeof *c);
    if (!c) T_FAIL("calloc failed");
    c->thread = t;
    (void)gc_heap_walk(h, misuse_from_callback, c);
    if (c->reports_in_walk != 3) T_FAIL("%lu reports from the callback's three calls, want 3", c->reports_in_walk);
    char what[256];
    const void *ptr;
    rec_last(what, sizeof what, &ptr);
    if (strstr(what, "gc_identity_hash") == NULL || strstr(what, "heap-walk callback") == NULL)
        T_FAIL("last report \"%s\" does not name gc_identity_hash and the walk callback", what);
    free(c);
    /* the heap is usable afterwards, and nothing was lost */
    gc_collect(t);
    EXPECT_OBJ(root, 1);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_walk_misuse_args(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    unsigned long r0 = rec_count();
    if (gc_heap_walk(NULL, count_object, NULL) != 0) T_FAIL("a walk of no heap visited objects");
    EXPECT_GC_REPORTS(r0);
    unsigned long r1 = rec_count();
    if (gc_heap_walk(h, NULL, NULL) != 0) T_FAIL("a walk without callback visited objects");
    EXPECT_ONE_REPORT(r1, "gc_heap_walk: no callback", NULL);
    gc_heap_destroy(h);
}

/* Another thread allocates and drops objects while this one walks: every
 * walk sees the other thread's rooted objects, each once, and no torn
 * state (types and sizes match gc_type_of/gc_size_of). */
typedef struct mutator_arg {
    gc_heap_t *heap;
    atomic_bool stop;
    atomic_ulong made;
} mutator_arg_t;

static void *mutator(void *argp)
{
    mutator_arg_t *a = argp;
    gc_thread_t *t = gc_thread_attach(a->heap);
    enum { RING = 64 };
    static void *ring[RING];
    memset(ring, 0, sizeof ring);
    for (size_t i = 0; i < RING; i++) gc_push_root(t, &ring[i]);
    for (uint64_t i = 0; !atomic_load(&a->stop); i++) {
        void *o = mk(t, &T_RAW, i % MAX_IDS, i % 16);
        ring[i % RING] = o;
        atomic_fetch_add(&a->made, 1);
    }
    gc_pop_roots(t, RING);
    gc_thread_detach(t);
    return NULL;
}

static void test_walk_while_another_thread_allocates(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    mutator_arg_t arg = { .heap = h };
    atomic_init(&arg.stop, false);
    atomic_init(&arg.made, 0);
    pthread_t th;
    if (pthread_create(&th, NULL, mutator, &arg) != 0) T_FAIL("pthread_create failed");
    while (atomic_load(&arg.made) < 1000) sched_yield();
    int rounds = g_quick ? 20 : 100;
    for (int i = 0; i < rounds; i++) {
        census_t *c = walk(h);
        if (c->other != 0 || c->plain != 0 || c->fin != 0) T_FAIL("walk %d saw objects of types never allocated", i);
        /* the ring's objects at least (and garbage not yet collected) */
        if (c->raw < 64) T_FAIL("walk %d saw %zu of the other thread's objects, want at least its 64 rooted", i, c->raw);
        free(c);
        unsigned long before = atomic_load(&arg.made);
        while (atomic_load(&arg.made) < before + 200) sched_yield();
    }
    atomic_store(&arg.stop, true);
    pthread_join(th, NULL);
    EXPECT_VERIFY(h);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_walk");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_walk_counts_objects),
        T(test_walk_empty_heap_unattached),
        T(test_walk_callback_misuse),
        T(test_walk_misuse_args),
        T(test_walk_while_another_thread_allocates),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
