/* test_gc_headerless.c — small objects without a header (typed classes).
 *
 * An object of at most 256 bytes whose type has no finalizer takes a cell
 * of its own size, in generational heaps too (their write barrier marks
 * cards, not header bits): the span it lives in holds one type and one
 * class, and says the type. Checked here through the public contract: live
 * bytes count cells of exactly the class size (and 8 bytes more for
 * finalizable types), gc_type_of
 * and gc_size_of answer for such objects, more (type, class) pairs than
 * the heap has typed classes for fall back to headers, objects of hundreds
 * of types interleaved survive collections and moves, misuse of weak-ref
 * and type queries on them is reported, and a large heap of them is marked
 * by several markers and evacuated intact.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b21)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

typedef struct node {
    void    *next;
    uint64_t id;
} node_t; /* 16 bytes: a 16-byte cell without a header */

static void node_trace(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, &((node_t *)obj)->next);
}
static void node_finalize(void *obj)
{
    (void)obj;
}
static const gc_type_t T_NODE = { "test.node", node_trace, NULL };
static const gc_type_t T_NODE_FIN = { "test.node.fin", node_trace, node_finalize };

static gc_heap_t *heap_with(int generational, int compaction, int markers)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = generational;
    o.compaction = compaction;
    o.markers = markers;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    return h;
}

/* A list of n nodes of `type` (ids first_id.. from the head), pushed onto
 * *head (a root). */
static void list_build(gc_thread_t *t, void **head, const gc_type_t *type, uint64_t first_id, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        node_t *x = gc_alloc(t, type, sizeof *x);
        if (x == NULL) T_FAIL("gc_alloc(%s) returned NULL", type->name);
        x->id = first_id + i;
        gc_write(t, x, &x->next, *head);
        *head = x;
    }
}

/* The list from head holds ids first_id .. first_id + n - 1 of `type`. */
static void list_check(void *head, const gc_type_t *type, uint64_t first_id, size_t n)
{
    node_t *x = head;
    for (size_t i = 0; i < n; i++, x = x->next) {
        if (x == NULL) T_FAIL("list ends after %zu of %zu nodes", i, n);
        if (x->id != first_id + i) T_FAIL("node %zu has id %" PRIu64 ", expected %" PRIu64, i, x->id, first_id + i);
        if (gc_type_of(x) != type) T_FAIL("node %zu: gc_type_of is not %s", i, type->name);
    }
    if (x != NULL) T_FAIL("list longer than %zu nodes", n);
}

/* Live bytes count whole cells: 16 for a plain node, 24 with a header. */
static void test_headerless_cell_sizes(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const size_t n = 1000;
    for (int generational = 0; generational <= 1; generational++) {
        gc_heap_t *h = heap_with(generational, GC_COMPACT_AUTO, 1);
        gc_thread_t *t = gc_thread_attach(h);
        void *plain = NULL, *finalizable = NULL;
        gc_push_root(t, &plain);
        gc_push_root(t, &finalizable);
        list_build(t, &plain, &T_NODE, 0, n);
        gc_collect(t);
        size_t header = 0;
        EXPECT_EQ(stats_of(h).live_bytes, n * (16 + header));
        EXPECT_EQ(gc_size_of(plain), 16);
        list_build(t, &finalizable, &T_NODE_FIN, 0, n);
        gc_collect(t);
        EXPECT_EQ(stats_of(h).live_bytes, n * (16 + header) + n * 24);
        list_check(plain, &T_NODE, 0, n);
        list_check(finalizable, &T_NODE_FIN, 0, n);
        /* Sizes past the headerless limit keep their header. */
        void *big = gc_alloc(t, &T_RAW, 300);
        EXPECT_NONNULL(big);
        EXPECT_EQ(gc_type_of(big), &T_RAW);
        EXPECT_GE(gc_size_of(big), 300);
        EXPECT_VERIFY(h);
        gc_pop_roots(t, 2);
        gc_collect(t); /* the finalizable ones are revived until their finalizers ran */
        gc_collect(t);
        EXPECT_EQ(stats_of(h).live_bytes, 0);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* Many more (type, size) pairs than typed classes and than the thread's
 * cache has entries, allocated interleaved: each object keeps its type,
 * whether it got a typed class or a header. */
#define MANY_TYPES 300
static gc_type_t many_types[MANY_TYPES];
static char many_names[MANY_TYPES][24];

static void many_types_init(void)
{
    for (int i = 0; i < MANY_TYPES; i++) {
        snprintf(many_names[i], sizeof many_names[i], "test.many.%d", i);
        many_types[i] = (gc_type_t){ many_names[i], node_trace, NULL };
    }
}

static void test_headerless_many_types(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    many_types_init();
    rng_t r = test_rng("many_types", 0);
    gc_heap_t *h = heap_with(0, GC_COMPACT_AUTO, 0);
    gc_thread_t *t = gc_thread_attach(h);
    enum { OBJECTS = 6000 };
    static void *objs[OBJECTS];
    static uint32_t kinds[OBJECTS], sizes[OBJECTS];
    memset(objs, 0, sizeof objs);
    gc_root_add_range(h, objs, OBJECTS);
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < OBJECTS; i++) {
            if (objs[i] != NULL && rng_below(&r, 3) != 0) continue;
            uint32_t kind = (uint32_t)rng_below(&r, MANY_TYPES);
            uint32_t size = 16 + 8 * (uint32_t)rng_below(&r, 4); /* 16..40: 4 classes */
            node_t *x = gc_alloc(t, &many_types[kind], size);
            EXPECT_NONNULL(x);
            x->id = (uint64_t)round * OBJECTS + i;
            /* the previous object (if any) hangs off the new one */
            gc_write(t, x, &x->next, objs[(i + 1) % OBJECTS]);
            objs[i] = x;
            kinds[i] = kind;
            sizes[i] = size;
        }
        gc_collect(t);
        for (size_t i = 0; i < OBJECTS; i++) {
            node_t *x = objs[i];
            if (gc_type_of(x) != &many_types[kinds[i]])
                T_FAIL("round %d object %zu: type %p, expected %s", round, i, (const void *)gc_type_of(x),
                       many_types[kinds[i]].name);
            if (gc_size_of(x) < sizes[i]) T_FAIL("object %zu: gc_size_of %zu < %u", i, gc_size_of(x), sizes[i]);
            if (x->id % OBJECTS != i) T_FAIL("object %zu: id damaged", i);
        }
        EXPECT_VERIFY(h);
    }
    gc_root_remove(h, objs);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* Each typed class needs spans of its own; when max_heap leaves no room
 * for another, objects fall back to a shared class with a header instead
 * of failing while the heap is nearly empty. */
static void test_headerless_max_heap_falls_back(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    many_types_init();
    gc_heap_t *h = heap_new(0, (size_t)2 << 20, GC_COMPACT_AUTO); /* 32 blocks of 64 KiB */
    gc_thread_t *t = gc_thread_attach(h);
    enum { KINDS = 64 };
    static void *objs[KINDS];
    memset(objs, 0, sizeof objs);
    gc_root_add_range(h, objs, KINDS);
    for (int i = 0; i < KINDS; i++) {
        node_t *x = gc_alloc(t, &many_types[i], sizeof *x);
        if (x == NULL) T_FAIL("gc_alloc of type %d of %d returned NULL under a 2 MiB max_heap", i, KINDS);
        x->id = (uint64_t)i;
        objs[i] = x;
    }
    gc_collect(t);
    for (int i = 0; i < KINDS; i++) {
        EXPECT_PTR_EQ(gc_type_of(objs[i]), &many_types[i]);
        EXPECT_EQ(((node_t *)objs[i])->id, (uint64_t)i);
    }
    EXPECT_VERIFY(h);
    gc_root_remove(h, objs);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* A type that gains a finalizer after its objects went headerless: the
 * objects allocated from then on are finalized (the fast path does not
 * trust its cache for that). */
static atomic_int finalized;
static void count_finalize(void *obj)
{
    (void)obj;
    atomic_fetch_add(&finalized, 1);
}

static void test_headerless_type_gains_finalizer(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    static gc_type_t changing = { "test.changing", node_trace, NULL };
    atomic_store(&finalized, 0);
    gc_heap_t *h = heap_with(0, GC_COMPACT_AUTO, 1);
    gc_thread_t *t = gc_thread_attach(h);
    void *head = NULL;
    gc_push_root(t, &head);
    list_build(t, &head, &changing, 0, 100);
    changing.finalize = count_finalize;
    list_build(t, &head, &changing, 100, 10);
    gc_pop_roots(t, 1);
    gc_collect(t);
    gc_collect(t);
    EXPECT_EQ(atomic_load(&finalized), 10);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* gc_alloc's inline fast path (the <mulch/gc.h> macro, outside sanitizer
 * builds) and the library function, interleaved, share the thread's bins:
 * every cell is distinct, zeroed and of the class size, and the heap's
 * allocation count adds up exactly. Sizes cross the granules of one class
 * and the headerless limit. */
static void test_headerless_inline_and_library_interleaved(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (int generational = 0; generational <= 1; generational++) {
        gc_heap_t *h = heap_with(generational, GC_COMPACT_NEVER, 1);
        gc_thread_t *t = gc_thread_attach(h);
        enum { N = 4000 };
        static void *objects[N];
        static size_t sizes[N];
        memset(objects, 0, sizeof objects);
        gc_root_add_range(h, objects, N);
        uint64_t before = stats_of(h).bytes_allocated;
        uint64_t expected = 0;
        rng_t rng = test_rng_named(__func__);
        for (size_t i = 0; i < N; i++) {
            size_t size = 1 + (size_t)rng_below(&rng, 300); /* past 256: headers */
            unsigned char *p = (i % 3 == 0) ? (gc_alloc)(t, &T_RAW, size) : gc_alloc(t, &T_RAW, size);
            if (p == NULL) T_FAIL("gc_alloc(%zu) returned NULL at %zu", size, i);
            for (size_t k = 0; k < size; k++)
                if (p[k] != 0) T_FAIL("object %zu (%zu bytes) not zeroed at byte %zu", i, size, k);
            memset(p, 0xa5, size);
            size_t usable = gc_size_of(p);
            if (usable < size) T_FAIL("object %zu: gc_size_of %zu < %zu", i, usable, size);
            expected += usable + (size > 256 ? 8 : 0);
            sizes[i] = size;

            objects[i] = p;
        }
        EXPECT_EQ(stats_of(h).bytes_allocated - before, expected);
        for (size_t i = 0; i < N; i++) {
            unsigned char *p = objects[i];
            for (size_t k = 0; k < sizes[i]; k++)
                if (p[k] != 0xa5) T_FAIL("object %zu overwritten at byte %zu: cells shared", i, k);
        }
        EXPECT_VERIFY(h);
        gc_root_remove(h, objects);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* Type descriptors at a fixed stride (inside 1 KiB per-class records, as
 * a language runtime may keep them), allocated in turn, with a shared
 * class's bin kept loaded by a finalizable type of the same size: each
 * type keeps its own entry in the thread's typed cache, so its objects
 * stay headerless (live bytes are 16 per object, not 24). */
typedef struct klass {
    gc_type_t type;
    char      rest[1024 - sizeof(gc_type_t)];
} klass_t;

static void test_headerless_strided_types(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    enum { KINDS = 4, ROUNDS = 5000 };
    static klass_t classes[KINDS];
    for (int k = 0; k < KINDS; k++) classes[k].type = (gc_type_t){ "test.strided", node_trace, NULL };
    gc_heap_t *h = heap_with(0, GC_COMPACT_AUTO, 1);
    gc_thread_t *t = gc_thread_attach(h);
    void *lists[KINDS] = { NULL };
    gc_root_add_range(h, lists, KINDS);
    for (int r = 0; r < ROUNDS; r++) {
        if (r % 16 == 0) EXPECT_NONNULL(gc_alloc(t, &T_NODE_FIN, sizeof(node_t)));
        for (int k = 0; k < KINDS; k++) list_build(t, &lists[k], &classes[k].type, (uint64_t)(ROUNDS - 1 - r), 1);
    }
    gc_collect(t);
    gc_collect(t); /* the finalizable ones: revived once, then freed */
    size_t headered = stats_of(h).live_bytes - (size_t)KINDS * ROUNDS * 16;
    /* a few objects before the slow path first fills each entry */
    if (headered > (size_t)KINDS * 64 * 8)
        T_FAIL("%zu bytes of headers on %d objects of strided types", headered, KINDS * ROUNDS);
    for (int k = 0; k < KINDS; k++) list_check(lists[k], &classes[k].type, 0, ROUNDS);
    gc_root_remove(h, lists);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* Types whose (type, size) pairs share a slot of the thread's typed cache
 * (found with <mulch/gc.h>'s slot function), allocated in turn, with 200
 * other pairs registered and cached first: every object stays headerless
 * (exactly 16 live bytes each) and keeps its type, whichever slot of the
 * pair's two its entry sits in as the entries move. Two such pairs both
 * keep an entry (the speed of that is bench territory); three take turns. */
enum { SHARED_MAX = 3, SHARED_POOL = 4096, OTHER_TYPES = 200 };
static gc_type_t shared_pool[SHARED_POOL];

static void test_headerless_shared_cache_slot(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (int i = 0; i < SHARED_POOL; i++) shared_pool[i] = (gc_type_t){ "test.shared", node_trace, NULL };
    const gc_type_t *shared[SHARED_MAX];
    int found = 0;
    size_t slot = mulch_gc_typed_slot_(&shared_pool[0], (sizeof(node_t) - 1) >> 3);
    for (int i = 0; i < SHARED_POOL - OTHER_TYPES && found < SHARED_MAX; i++)
        if (mulch_gc_typed_slot_(&shared_pool[i], (sizeof(node_t) - 1) >> 3) == slot) shared[found++] = &shared_pool[i];
    EXPECT_EQ(found, SHARED_MAX);
    for (int kinds = 1; kinds <= SHARED_MAX; kinds++) {
        gc_heap_t *h = heap_with(0, GC_COMPACT_NEVER, 1);
        gc_thread_t *t = gc_thread_attach(h);
        /* others fill the cache first: some take the shared pairs' slots */
        for (int i = 0; i < OTHER_TYPES; i++)
            EXPECT_NONNULL(gc_alloc(t, &shared_pool[SHARED_POOL - 1 - i], 40));
        gc_collect(t);
        enum { ROUNDS = 3000 };
        void *lists[SHARED_MAX] = { NULL };
        gc_root_add_range(h, lists, SHARED_MAX);
        for (int r = 0; r < ROUNDS; r++)
            for (int k = 0; k < kinds; k++) list_build(t, &lists[k], shared[k], (uint64_t)(ROUNDS - 1 - r), 1);
        gc_collect(t);
        EXPECT_EQ(stats_of(h).live_bytes, (size_t)kinds * ROUNDS * 16);
        for (int k = 0; k < kinds; k++) list_check(lists[k], shared[k], 0, ROUNDS);
        EXPECT_VERIFY(h);
        gc_root_remove(h, lists);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* Queries that need a GC object, given a headerless one of another type or
 * something that is no GC object, report instead of reading a header. */
static void test_headerless_misuse_reported(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_with(0, GC_COMPACT_AUTO, 1);
    gc_thread_t *t = gc_thread_attach(h);
    void *x = gc_alloc(t, &T_NODE, sizeof(node_t));
    EXPECT_NONNULL(x);
    gc_push_root(t, &x);
    unsigned long r0 = rec_count();
    EXPECT_NULL(gc_weak_get(x));
    EXPECT_ONE_REPORT(r0, "gc_weak_get", x);
    static uint64_t not_gc[4];
    r0 = rec_count();
    EXPECT_NULL(gc_type_of(&not_gc[2]));
    EXPECT_ONE_REPORT(r0, "gc_type_of", &not_gc[2]);
    r0 = rec_count();
    EXPECT_NULL(gc_type_of((char *)x + 8)); /* inside a headerless cell */
    EXPECT_ONE_REPORT(r0, "gc_type_of", (char *)x + 8);
    r0 = rec_count();
    void *weak = gc_weak_new(t, x);
    EXPECT_NONNULL(weak);
    EXPECT_PTR_EQ(gc_weak_get(weak), x);
    EXPECT_NO_REPORTS(r0);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* A heap big enough for parallel marking, every span evacuated: headerless
 * objects are claimed and forwarded through their spans' state tables. */
static void test_headerless_parallel_evacuation(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    size_t n = g_quick ? 100000 : 700000; /* 11 MiB of nodes: above the parallel threshold */
    gc_heap_t *h = heap_with(0, GC_COMPACT_ALWAYS, 2);
    gc_thread_t *t = gc_thread_attach(h);
    void *lists[4] = { NULL, NULL, NULL, NULL };
    gc_root_add_range(h, lists, 4);
    for (int k = 0; k < 4; k++) list_build(t, &lists[k], &T_NODE, (uint64_t)k * n, n / 4);
    uintptr_t first = (uintptr_t)lists[0];
    uint64_t moved = stats_of(h).bytes_moved;
    gc_collect(t);
    EXPECT_NE((uintptr_t)lists[0], first);
    EXPECT_GE(stats_of(h).bytes_moved - moved, n * 16);
    for (int k = 0; k < 4; k++) list_check(lists[k], &T_NODE, (uint64_t)k * n, n / 4);
    EXPECT_EQ(stats_of(h).live_bytes, (n / 4) * 4 * 16);
    EXPECT_VERIFY(h);
    gc_root_remove(h, lists);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_headerless");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_headerless_cell_sizes, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_headerless_many_types, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_headerless_max_heap_falls_back, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_headerless_type_gains_finalizer, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_headerless_inline_and_library_interleaved, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_headerless_strided_types, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_headerless_shared_cache_slot, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_headerless_misuse_reported, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_headerless_parallel_evacuation, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
