/* test_gc_verify_untraced.c — gc_verify_untraced reports each word of an
 * allocated object that holds the start of an allocated object of the
 * heap but that the object's trace function does not name: the forgotten
 * field that gc_verify cannot see (docs/api.md, gc_verify_untraced).
 *
 * Checked: a forgotten field is reported once, naming the holder, both
 * types and the word's offset, for objects without a header (a typed
 * span), with one (finalizable) and large ones (a span of their own),
 * while gc_verify finds nothing; a type without a trace function that
 * stores a reference, and a trace function that traces a copy of a field
 * (which a moving collection would not update), are reported too; the
 * last slot a wide object's gc_trace_range leaves out is reported at its
 * offset; values that are not object starts (NULL, tagged immediates,
 * interior, malloc and other heaps' pointers, freed cells) are not; every
 * problem is counted (no cap); weak references and ephemerons are
 * skipped; it runs while another thread allocates (it stops the world),
 * on a NULL heap (reported, 1) and from a finalizer. Every test that
 * calls EXPECT_VERIFY runs it too, on sound heaps (mulch_test.h). As a
 * test_gc_* file it also runs with compaction always and in generational
 * mode.
 *
 * Deterministic: no randomness (the seed is printed, unused). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x756e747261636564)
#define MULCH_TEST_GC 1
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include <mulch/gc.h>

#include "mulch_test.h"
#include "gc_holder_test.h"

/* Traces what `right` holds through a local copy: the referent is kept
 * alive, but a collection that moves it cannot update the field. */
static void trace_right_copy(void *obj, gc_tracer_t *tracer)
{
    holder_t *h = obj;
    gc_trace_slot(tracer, &h->left);
    void *copy = h->right;
    gc_trace_slot(tracer, &copy);
}

static atomic_uint g_finalized;
static gc_heap_t *g_untraced_heap;   /* the heap a finalizer checks, or NULL */
static size_t g_untraced_in_finalizer = SIZE_MAX;

static void holder_finalize(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_finalized, 1);
    if (g_untraced_heap != NULL && g_untraced_in_finalizer == SIZE_MAX)
        g_untraced_in_finalizer = gc_verify_untraced(g_untraced_heap);
}

static const gc_type_t T_COPY = { "test.copy", trace_right_copy, NULL };
static const gc_type_t T_RAW = { "test.raw", NULL, NULL }; /* a leaf that stores a reference anyway */

/* A count, then the slots; its trace function names the first n - skip. */
typedef struct wide {
    size_t n, skip;
    void  *slots[];
} wide_t;

static void trace_wide(void *obj, gc_tracer_t *tracer)
{
    wide_t *w = obj;
    gc_trace_range(tracer, w->slots, w->n - w->skip);
}
static const gc_type_t T_WIDE = { "test.wide", trace_wide, NULL };

#define WIDE_SLOTS 600u                 /* > 512: range entries in a collection */

static wide_t *wide_new(gc_thread_t *t, size_t n)
{
    wide_t *w = alloc_or_fail(t, &T_WIDE, sizeof *w + n * sizeof(void *));
    w->n = n;
    return w;
}

/* gc_verify_untraced of h: `expected` problems and as many reports, the
 * last one naming `holder` (unless NULL) and containing each of `words`
 * (up to three, NULL ends); gc_verify finds nothing. */
static void expect_untraced(gc_heap_t *h, size_t expected, const void *holder, const char *const *words)
{
    unsigned long r0 = rec_count();
    size_t problems = gc_verify_untraced(h);
    unsigned long reports = rec_count() - r0;
    char what[256] = "";
    const void *where = NULL;
    rec_last(what, sizeof what, &where);
    if (problems != expected || reports != expected) {
        rec_print_since(r0);
        T_FAIL("gc_verify_untraced: %zu problem(s), %lu report(s); expected %zu", problems, reports, expected);
    }
    if (expected > 0) {
        if (strncmp(what, "gc_verify_untraced: an object of type ", 38) != 0)
            T_FAIL("last report \"%s\" is not gc_verify_untraced's", what);
        for (int k = 0; k < 3 && words[k] != NULL; k++)
            if (strstr(what, words[k]) == NULL) T_FAIL("last report \"%s\" does not contain \"%s\"", what, words[k]);
        if (holder != NULL && where != holder)
            T_FAIL("last report \"%s\" names %p, the holder is %p", what, where, holder);
    }
    EXPECT_VERIFY_ONLY(h);
}

/* ---- a forgotten field ------------------------------------------------------ */

/* `right` of a forgetful holder, holding a live (rooted) object: one
 * problem, naming the holder, its type, the referent's and offset 8;
 * the same store into a sound holder, and the plain word holding an
 * integer, are not reported. */
static void forgotten_field(enum holder_kind kind)
{
    print_message("  objects %s\n", k_holder_names[kind]);
    gc_heap_t *h = heap_new(0, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    holder_t *forgetful = holder_new(t, kind, true);
    gc_push_root(t, (void **)&forgetful);
    holder_t *sound = holder_new(t, kind, false);
    gc_push_root(t, (void **)&sound);
    void *referent = alloc_or_fail(t, &T_LEAF, 24);
    gc_push_root(t, &referent);
    gc_write(t, forgetful, &forgetful->left, referent);
    gc_write(t, sound, &sound->left, referent);
    gc_write(t, sound, &sound->right, referent);
    forgetful->word = sound->word = 12345;
    EXPECT_VERIFY(h);

    gc_write(t, forgetful, &forgetful->right, referent);
    const char *forget_type = kind == HOLDER_HEADER ? "\"test.forget_fin\"" : "\"test.forget\"";
    const char *const words[] = { forget_type, "holds an object of type \"test.leaf\"", "(offset 8 holds", NULL };
    expect_untraced(h, 1, forgetful, words);
    gc_collect(t); /* (the referent is rooted: it survives, perhaps moved; the field is not updated) */
    forgetful->right = referent;
    expect_untraced(h, 1, forgetful, words);
    forgetful->right = NULL;
    EXPECT_VERIFY(h);

    gc_pop_roots(t, 3);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_forgotten_field_reported(void **state)
{
    (void)state;
    TEST_START();
    for (int kind = 0; kind < HOLDER_KINDS; kind++) forgotten_field((enum holder_kind)kind);
}

/* A type without a trace function that stores a reference, and a trace
 * function that traces a copy of its field: each reported. */
static void test_leaf_and_copy_reported(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    void *referent = alloc_or_fail(t, &T_PAIR, sizeof(holder_t));
    gc_push_root(t, &referent);
    void **raw = alloc_or_fail(t, &T_RAW, 64);
    gc_push_root(t, (void **)&raw);
    holder_t *copy = alloc_or_fail(t, &T_COPY, sizeof *copy);
    gc_push_root(t, (void **)&copy);
    EXPECT_VERIFY(h);

    raw[5] = referent;
    const char *const raw_words[] = { "\"test.raw\" holds an object of type \"test.pair\"", "(offset 40 holds", NULL };
    expect_untraced(h, 1, raw, raw_words);
    raw[5] = NULL;
    gc_write(t, copy, &copy->right, referent);
    const char *const copy_words[] = { "\"test.copy\"", "(offset 8 holds", NULL };
    expect_untraced(h, 1, copy, copy_words);
    copy->right = NULL;
    EXPECT_VERIFY(h);

    gc_pop_roots(t, 3);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* A wide object whose gc_trace_range names every slot: nothing; one that
 * leaves out its last slot: that slot, at its offset. */
static void test_wide_object_last_slot(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    wide_t *w = wide_new(t, WIDE_SLOTS);
    gc_push_root(t, (void **)&w);
    void *leaf = alloc_or_fail(t, &T_LEAF, 32);
    for (size_t i = 0; i < w->n; i++) gc_write(t, w, &w->slots[i], leaf);
    gc_collect(t);
    EXPECT_VERIFY(h);

    w->skip = 1;
    char offset[64];
    snprintf(offset, sizeof offset, "(offset %zu holds", offsetof(wide_t, slots) + (WIDE_SLOTS - 1) * sizeof(void *));
    const char *const words[] = { "\"test.wide\"", offset, NULL };
    expect_untraced(h, 1, w, words);
    w->skip = 0;
    EXPECT_VERIFY(h);

    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* ---- what is not reported, and counting ------------------------------------ */

/* An untraced word holding anything but the start of an allocated object
 * of this heap is not reported: the heuristic looks for references. */
static void test_non_references_not_reported(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    gc_heap_t *other = heap_new(0, 0, 0);
    gc_thread_t *other_thread = gc_thread_attach(other);
    EXPECT_NONNULL(other_thread);
    void *other_object = alloc_or_fail(other_thread, &T_LEAF, 24);
    gc_push_root(other_thread, &other_object);
    holder_t *forgetful = alloc_or_fail(t, &T_FORGET, sizeof *forgetful);
    gc_push_root(t, (void **)&forgetful);
    void *live = alloc_or_fail(t, &T_LEAF, 48);
    gc_push_root(t, &live);
    void *dead = alloc_or_fail(t, &T_LEAF, 48);
    void *dead_large = alloc_or_fail(t, &T_LEAF, LARGE_BYTES);
    void *foreign = malloc(64);
    EXPECT_NONNULL(foreign);
    gc_collect(t); /* frees dead and dead_large */

    void *values[] = {
        NULL, (void *)(uintptr_t)0x2a1, (unsigned char *)live + 8, (unsigned char *)live + 4, foreign,
        other_object, dead, dead_large,
    };
    for (size_t k = 0; k < sizeof values / sizeof values[0]; k++) {
        forgetful->right = values[k];
        unsigned long r0 = rec_count();
        size_t problems = gc_verify_untraced(h);
        if (problems != 0) {
            rec_print_since(r0);
            T_FAIL("value %zu (%p): %zu problem(s), expected none", k, values[k], problems);
        }
        EXPECT_NO_REPORTS(r0);
    }
    forgetful->right = NULL;
    EXPECT_VERIFY(h);

    free(foreign);
    gc_pop_roots(t, 2);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    gc_pop_roots(other_thread, 1);
    gc_thread_detach(other_thread);
    gc_heap_destroy(other);
}

/* Weak references and ephemerons hold their targets in untraced words by
 * design: no report. Twenty forgetful holders are twenty problems, each
 * reported. */
static void test_weak_skipped_every_problem_counted(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    wide_t *all = wide_new(t, 40);
    gc_push_root(t, (void **)&all);
    void *target = alloc_or_fail(t, &T_LEAF, 24);
    gc_write(t, all, &all->slots[0], target);
    for (size_t i = 1; i < 10; i++) {
        void *weak = gc_weak_new(t, all->slots[0]);
        EXPECT_NONNULL(weak);
        gc_write(t, all, &all->slots[i], weak);
        void *value = alloc_or_fail(t, &T_LEAF, 24);
        void *ephemeron = gc_ephemeron_new(t, all->slots[0], value);
        EXPECT_NONNULL(ephemeron);
        gc_write(t, all, &all->slots[10 + i], ephemeron);
    }
    for (size_t i = 20; i < 40; i++) {
        holder_t *forgetful = alloc_or_fail(t, &T_FORGET, sizeof *forgetful);
        gc_write(t, all, &all->slots[i], forgetful);
    }
    gc_collect(t);
    EXPECT_VERIFY(h);

    for (size_t i = 20; i < 40; i++) ((holder_t *)all->slots[i])->right = all->slots[0];
    const char *const words[] = { "\"test.forget\"", "\"test.leaf\"", NULL };
    expect_untraced(h, 20, NULL, words);
    for (size_t i = 20; i < 40; i++) ((holder_t *)all->slots[i])->right = NULL;
    EXPECT_VERIFY(h);

    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* ---- callers ------------------------------------------------------------------ */

typedef struct churn {
    gc_heap_t  *heap;
    atomic_bool stop;
    atomic_uint rounds;
} churn_t;

/* Builds and drops short lists of sound pairs until told to stop. */
static void *churn_main(void *arg)
{
    churn_t *c = arg;
    gc_thread_t *t = gc_thread_attach(c->heap);
    if (t == NULL) {
        AFAIL("gc_thread_attach failed");
        return NULL;
    }
    holder_t *list = NULL;
    gc_push_root(t, (void **)&list);
    while (!atomic_load(&c->stop)) {
        list = NULL;
        for (int i = 0; i < 200; i++) {
            holder_t *p = gc_alloc(t, &T_PAIR, sizeof *p);
            if (p == NULL) {
                AFAIL("gc_alloc failed");
                break;
            }
            gc_write(t, p, &p->left, list);
            list = p;
        }
        atomic_fetch_add(&c->rounds, 1);
    }
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

/* Called from an unattached thread while an attached one allocates: it
 * stops the world, and a sound heap has nothing to report. */
static void test_while_another_thread_allocates(void **state)
{
    (void)state;
    TEST_START();
    churn_t c = { .heap = heap_new(0, 0, 0) };
    pthread_t thread;
    EXPECT_EQ(pthread_create(&thread, NULL, churn_main, &c), 0);
    /* (the other thread attached and allocating before the first call) */
    for (int i = 0; i < 5000 && atomic_load(&c.rounds) == 0; i++) usleep(1000);
    unsigned long r0 = rec_count();
    for (int i = 0; i < 30; i++) {
        EXPECT_EQ(gc_verify_untraced(c.heap), 0);
        usleep(2000);
    }
    atomic_store(&c.stop, true);
    EXPECT_EQ(pthread_join(thread, NULL), 0);
    if (atomic_load(&c.rounds) == 0) T_FAIL("the other thread allocated nothing");
    EXPECT_NO_REPORTS(r0);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_VERIFY(c.heap);
    gc_heap_destroy(c.heap);
}

/* A NULL heap is reported and counts as one problem; from a finalizer
 * (after the pause) it runs, on a sound heap, and finds nothing. */
static void test_null_heap_and_finalizer(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    EXPECT_EQ(gc_verify_untraced(NULL), 1);
    EXPECT_EQ(rec_count() - r0, 1);
    char what[256];
    rec_last(what, sizeof what, NULL);
    if (strcmp(what, "gc_verify_untraced: heap is NULL") != 0) T_FAIL("reported \"%s\"", what);

    gc_heap_t *h = heap_new(0, 0, 0);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    atomic_store(&g_finalized, 0);
    for (int i = 0; i < 4; i++) (void)alloc_or_fail(t, &T_PAIR_FIN, sizeof(holder_t));
    g_untraced_heap = h;
    g_untraced_in_finalizer = SIZE_MAX;
    r0 = rec_count();
    for (int i = 0; i < 10 && atomic_load(&g_finalized) == 0; i++) gc_collect(t);
    g_untraced_heap = NULL;
    EXPECT_NO_REPORTS(r0);
    if (atomic_load(&g_finalized) == 0) T_FAIL("no finalizer ran in 10 collections");
    EXPECT_EQ(g_untraced_in_finalizer, 0);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_verify_untraced");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_forgotten_field_reported),
        T(test_leaf_and_copy_reported),
        T(test_wide_object_last_slot),
        T(test_non_references_not_reported),
        T(test_weak_skipped_every_problem_counted),
        T(test_while_another_thread_allocates),
        T(test_null_heap_and_finalizer),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
