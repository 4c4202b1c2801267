/* test_gc_verify_references.c — gc_verify runs every allocated object's
 * trace function and reports each slot that holds neither NULL, a tagged
 * immediate nor the start of an allocated object of the heap, naming the
 * object that holds it (docs/api.md, gc_verify).
 *
 * Checked: a trace function forgets a field, whose referent the next
 * collection frees, and the program stores what the field holds into a
 * traced slot: gc_verify reports that slot, naming its object, for
 * objects without a header (a typed span), with one (finalizable) and
 * large ones (a span of their own); a slot holding an
 * interior pointer, a malloc pointer, another heap's object and a pointer
 * to a freed large object is reported once each, with what is wrong; the
 * slots of a wide object (gc_trace_range of more than 512 slots) are each
 * checked; every problem is reported (no cap of 8 as in a collection); a
 * sound heap — cycles, garbage not collected yet, weak references,
 * ephemerons, finalizable objects before and after their finalizers ran
 * (and gc_verify called from a finalizer, with finalizers pending),
 * gc_own_rc pairs, a cycle through the rc bridge, handles, wide and large
 * objects, old garbage in a generational heap — reports nothing, with and
 * without the conservative stack scan. As a test_gc_* file it also runs
 * with compaction always and in generational mode.
 *
 * Deterministic: no randomness (the seed is printed, unused). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7665726966797265)
#define MULCH_TEST_GC 1
#include <stdbool.h>

#include <mulch/gc.h>
#include <mulch/rc.h>

#include "mulch_test.h"
#include "gc_holder_test.h"

static atomic_uint g_finalized;
static gc_heap_t *g_verify_heap;     /* the heap a finalizer verifies, or NULL */
static size_t g_verify_in_finalizer; /* what that gc_verify returned */
static bool g_verified_in_finalizer;

static void holder_finalize(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_finalized, 1);
    /* the first finalizer of a batch: the others are still pending */
    if (g_verify_heap != NULL && !g_verified_in_finalizer) {
        g_verified_in_finalizer = true;
        g_verify_in_finalizer = gc_verify(g_verify_heap);
    }
}

/* A count, then the slots. */
typedef struct wide {
    size_t n;
    void  *slots[];
} wide_t;

static void trace_wide(void *obj, gc_tracer_t *tracer)
{
    wide_t *w = obj;
    gc_trace_range(tracer, w->slots, w->n);
}
static const gc_type_t T_WIDE = { "test.wide", trace_wide, NULL };

#define WIDE_SLOTS 600u                       /* > 512: range entries in a collection */

static gc_heap_t *heap_make(bool conservative)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.conservative_stack = conservative;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    return h;
}

static wide_t *wide_new(gc_thread_t *t, size_t n)
{
    wide_t *w = alloc_or_fail(t, &T_WIDE, sizeof *w + n * sizeof(void *));
    w->n = n;
    return w;
}

/* gc_verify of h: `expected` problems, as many reports since it began, the
 * last one containing `words` and naming `holder` (unless NULL). */
static void expect_problems(gc_heap_t *h, size_t expected, const void *holder, const char *words)
{
    unsigned long r0 = rec_count();
    size_t problems = gc_verify(h);
    unsigned long reports = rec_count() - r0;
    char what[256] = "";
    const void *where = NULL;
    rec_last(what, sizeof what, &where);
    if (problems != expected || reports != expected) {
        rec_print_since(r0);
        T_FAIL("gc_verify: %zu problem(s), %lu report(s); expected %zu", problems, reports, expected);
    }
    if (strncmp(what, "gc_verify: ", 11) != 0 || strstr(what, words) == NULL)
        T_FAIL("last report \"%s\" does not name \"%s\"", what, words);
    if (holder != NULL && where != holder) T_FAIL("last report \"%s\" names %p, the holder is %p", what, where, holder);
}

/* ---- a forgotten field -------------------------------------------------- */

/* The forgetful holder's trace function leaves out `right`: the collection
 * frees its referent while the holder still points to it, silently (a
 * collection never reads the field, and no verifier can: only the trace
 * function names an object's slots). The program goes on using the
 * field, and stores what it read into a traced slot of another object:
 * gc_verify reports that slot at once, naming its object (the next
 * collection would report the value, without the object, capped at 8).
 * The referent's neighbour is pinned, so that its span stays the heap's
 * (compaction would otherwise empty and release it). */
static void forgotten_field(enum holder_kind kind)
{
    print_message("  objects %s\n", k_holder_names[kind]);
    gc_heap_t *h = heap_make(false);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    holder_t *forgetful = holder_new(t, kind, true);
    gc_push_root(t, (void **)&forgetful);
    holder_t *user = holder_new(t, kind, false);
    gc_push_root(t, (void **)&user);
    void *kept = alloc_or_fail(t, &T_LEAF, 24);
    gc_write(t, forgetful, &forgetful->left, kept);
    void *doomed = alloc_or_fail(t, &T_LEAF, 24);
    void *neighbour = alloc_or_fail(t, &T_LEAF, 24);
    gc_push_root(t, &neighbour);
    gc_pin(h, neighbour);
    gc_write(t, forgetful, &forgetful->right, doomed);
    EXPECT_VERIFY_ONLY(h); /* doomed is still allocated (gc_verify_untraced
                             * would report `right`: test_gc_verify_untraced) */

    unsigned long r0 = rec_count();
    gc_collect(t);    /* frees doomed: nobody traces `right` */
    EXPECT_NO_REPORTS(r0);
    EXPECT_PTR_EQ(forgetful->right, doomed);
    gc_write(t, user, &user->right, forgetful->right); /* the program uses the field */
    expect_problems(h, 1, user, "dead GC object");
    EXPECT_EQ(gc_type_of(forgetful->left), &T_LEAF); /* the traced field is fine */

    user->right = forgetful->right = NULL;
    EXPECT_VERIFY(h);
    gc_unpin(h, neighbour);
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

/* ---- bad values, one at a time ------------------------------------------- */

typedef struct bad_values {
    gc_heap_t   *other_heap;
    gc_thread_t *other_thread;
    void        *other_object;  /* rooted in other_heap */
    void        *foreign;       /* malloc */
    void        *freed_large;   /* a large object the heap freed */
} bad_values_t;

static void bad_values_open(bad_values_t *bv, gc_thread_t *t)
{
    bv->other_heap = heap_make(false);
    bv->other_thread = gc_thread_attach(bv->other_heap);
    EXPECT_NONNULL(bv->other_thread);
    bv->other_object = alloc_or_fail(bv->other_thread, &T_LEAF, 24);
    gc_push_root(bv->other_thread, &bv->other_object);
    bv->foreign = malloc(64);
    EXPECT_NONNULL(bv->foreign);
    bv->freed_large = alloc_or_fail(t, &T_LEAF, LARGE_BYTES); /* (no root: the heap is precise) */
    gc_collect(t);
}

static void bad_values_close(bad_values_t *bv)
{
    free(bv->foreign);
    gc_pop_roots(bv->other_thread, 1);
    gc_thread_detach(bv->other_thread);
    gc_heap_destroy(bv->other_heap);
}

/* Each bad value in turn, planted into `slot` of `holder` (no collection
 * sees it), is one problem reported naming the holder. */
static void expect_each_bad_value(gc_heap_t *h, const bad_values_t *bv, void *holder, void **slot, void *live)
{
    struct {
        void       *value;
        const char *words;
    } cases[] = {
        { (unsigned char *)live + 8, "into the middle of a GC object" },
        { bv->foreign, "outside every GC heap" },
        { bv->other_object, "another GC heap" },
        { bv->freed_large, "outside every GC heap" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        void *saved = *slot;
        *slot = cases[c].value;
        expect_problems(h, 1, holder, cases[c].words);
        *slot = saved;
    }
    EXPECT_VERIFY(h);
}

static void test_bad_values_reported(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_make(false);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    holder_t *pair = alloc_or_fail(t, &T_PAIR, sizeof *pair);
    gc_push_root(t, (void **)&pair);
    void *leaf = alloc_or_fail(t, &T_LEAF, 32);
    gc_write(t, pair, &pair->left, leaf);
    /* a slot far into a wide object: gc_verify traces every slot at once */
    wide_t *w = wide_new(t, WIDE_SLOTS);
    gc_push_root(t, (void **)&w);
    for (size_t i = 0; i < w->n; i++) gc_write(t, w, &w->slots[i], leaf);
    /* (after the allocations: the freed large object's blocks stay free) */
    bad_values_t bv;
    bad_values_open(&bv, t);
    EXPECT_VERIFY(h);

    expect_each_bad_value(h, &bv, pair, &pair->right, pair->left);
    expect_each_bad_value(h, &bv, w, &w->slots[WIDE_SLOTS - 3], w->slots[0]);

    gc_pop_roots(t, 2);
    bad_values_close(&bv);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* ---- no cap on reports ---------------------------------------------------- */

/* A collection reports at most 8 bad slots; gc_verify reports and counts
 * each one: 20 holders with a foreign slot, and 30 slots of a wide
 * object. */
static void test_every_problem_reported(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_make(false);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    void *foreign = malloc(64);
    EXPECT_NONNULL(foreign);
    wide_t *holders = wide_new(t, 20);
    gc_push_root(t, (void **)&holders);
    for (size_t i = 0; i < holders->n; i++) {
        holder_t *p = alloc_or_fail(t, &T_PAIR, sizeof *p);
        gc_write(t, holders, &holders->slots[i], p);
    }
    wide_t *w = wide_new(t, WIDE_SLOTS);
    gc_push_root(t, (void **)&w);
    gc_collect(t);
    EXPECT_VERIFY(h);

    for (size_t i = 0; i < holders->n; i++) ((holder_t *)holders->slots[i])->right = foreign;
    for (size_t i = 0; i < 30; i++) w->slots[i * 19] = foreign;
    expect_problems(h, 20 + 30, NULL, "outside every GC heap");
    for (size_t i = 0; i < holders->n; i++) ((holder_t *)holders->slots[i])->right = NULL;
    for (size_t i = 0; i < 30; i++) w->slots[i * 19] = NULL;
    EXPECT_VERIFY(h);

    gc_pop_roots(t, 2);
    free(foreign);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* ---- a sound heap reports nothing ----------------------------------------- */

/* Everything gc_verify must not mistake for a bad slot, checked before and
 * after collections (full, and in a generational heap minor ones too). */
static void sound_heap(bool conservative)
{
    print_message("  conservative stack: %d\n", conservative);
    gc_heap_t *h = heap_make(conservative);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    atomic_store(&g_finalized, 0);

    /* a rooted cycle, and a garbage one */
    holder_t *a = alloc_or_fail(t, &T_PAIR, sizeof *a);
    gc_push_root(t, (void **)&a);
    holder_t *b = alloc_or_fail(t, &T_PAIR, sizeof *b);
    gc_write(t, a, &a->left, b);
    gc_write(t, b, &b->left, a);
    gc_write(t, b, &b->right, (void *)(uintptr_t)0x2a1); /* a tagged immediate */
    for (int i = 0; i < 3; i++) {
        holder_t *c = alloc_or_fail(t, &T_PAIR, sizeof *c), *d = alloc_or_fail(t, &T_PAIR, sizeof *d);
        gc_write(t, c, &c->left, d);
        gc_write(t, d, &d->left, c);
        gc_write(t, d, &d->right, a);
    }
    /* a wide object and a large one, both reaching the cycle */
    wide_t *w = wide_new(t, WIDE_SLOTS);
    gc_write(t, a, &a->right, w);
    holder_t *large = alloc_or_fail(t, &T_PAIR, LARGE_BYTES);
    gc_write(t, w, &w->slots[0], large);
    gc_write(t, large, &large->left, a);
    for (size_t i = 1; i < w->n; i++) {
        holder_t *p = alloc_or_fail(t, &T_PAIR, sizeof *p);
        gc_write(t, w, &w->slots[i], p);
        gc_write(t, p, &p->left, i % 2 ? (void *)w : (void *)b);
    }
    /* weak references and ephemerons: to live objects and to garbage */
    wide_t *refs = wide_new(t, 8);
    gc_push_root(t, (void **)&refs);
    for (size_t i = 0; i < 4; i++) {
        void *garbage = alloc_or_fail(t, &T_PAIR, sizeof(holder_t));
        void *weaks = gc_weak_new(t, i % 2 ? garbage : (void *)b);
        EXPECT_NONNULL(weaks);
        gc_write(t, refs, &refs->slots[i], weaks);
        void *key = i % 2 ? garbage : (void *)a, *value = alloc_or_fail(t, &T_PAIR, sizeof(holder_t));
        void *ephemeron = gc_ephemeron_new(t, key, value);
        EXPECT_NONNULL(ephemeron);
        gc_write(t, refs, &refs->slots[4 + i], ephemeron);
    }
    /* finalizable objects: live, and dead (each pointing into the heap) */
    holder_t *fin_live = alloc_or_fail(t, &T_PAIR_FIN, sizeof *fin_live);
    gc_write(t, b, &b->right, fin_live);
    gc_write(t, fin_live, &fin_live->left, w);
    for (int i = 0; i < 4; i++) {
        holder_t *f = alloc_or_fail(t, &T_PAIR_FIN, sizeof *f), *g = alloc_or_fail(t, &T_PAIR, sizeof *g);
        gc_write(t, f, &f->left, g);
        gc_write(t, f, &f->right, a);
        gc_write(t, g, &g->left, f);
    }
    /* gc_own_rc: a plain rc object, and a handle to its own owner (a
     * cycle through the rc bridge, which only gc_heap_destroy ends) */
    void *rc = rc_alloc(16, NULL);
    EXPECT_NONNULL(rc);
    EXPECT_EQ(gc_own_rc(t, b, rc), 0);
    rc_release(rc);
    holder_t *owner = alloc_or_fail(t, &T_PAIR, sizeof *owner);
    gc_write(t, owner, &owner->left, a);
    gc_handle_t *self = gc_handle_new(h, owner);
    EXPECT_NONNULL(self);
    EXPECT_EQ(gc_own_rc(t, owner, self), 0);
    rc_release(self);
    owner = NULL;
    gc_handle_t *handle = gc_handle_new(h, w);
    EXPECT_NONNULL(handle);

    unsigned long r0 = rec_count();
    EXPECT_VERIFY(h);
    g_verify_heap = h;
    g_verified_in_finalizer = false;
    gc_collect(t);           /* finalizes the dead ones: one of them verifies */
    g_verify_heap = NULL;
    /* (a stale stack word may keep one: the conservative scan) */
    if (!conservative) EXPECT_EQ(atomic_load(&g_finalized), 4);
    EXPECT_EQ(g_verified_in_finalizer, atomic_load(&g_finalized) > 0);
    EXPECT_EQ(g_verify_in_finalizer, 0);
    EXPECT_VERIFY(h);        /* the finalized objects are still allocated */

    /* old garbage: an old object given a young one, then dropped; minor
     * collections (generational mode) trace it from its card */
    holder_t *old = alloc_or_fail(t, &T_PAIR, sizeof *old);
    gc_push_root(t, (void **)&old);
    gc_collect(t);
    holder_t *young = alloc_or_fail(t, &T_PAIR, sizeof *young);
    gc_write(t, old, &old->left, young);
    gc_write(t, young, &young->left, a);
    young = NULL;
    gc_pop_roots(t, 1);
    old = NULL;
    uint64_t before = stats_of(h).collections;
    for (int i = 0; i < 200000 && stats_of(h).collections < before + 3; i++) {
        holder_t *p = alloc_or_fail(t, &T_PAIR, sizeof *p);
        gc_write(t, p, &p->left, a);
        if (i % 5000 == 0) EXPECT_VERIFY(h);
    }
    EXPECT_VERIFY(h);
    gc_collect(t);
    EXPECT_VERIFY(h);
    EXPECT_NO_REPORTS(r0);

    rc_release(handle);
    gc_pop_roots(t, 2);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_sound_heap_reports_nothing(void **state)
{
    (void)state;
    TEST_START();
    sound_heap(false);
    sound_heap(true);
}

int main(void)
{
    mt_init("test_gc_verify_references");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_forgotten_field_reported),
        T(test_bad_values_reported),
        T(test_every_problem_reported),
        T(test_sound_heap_reports_nothing),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
