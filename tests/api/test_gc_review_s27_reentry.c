/* test_gc_review_s27_reentry.c — the collector's one tracer per heap
 * (heap->tracer, gc/mark.c gc_heap_tracer_open) is never opened twice.
 * The collector, gc_verify and gc_report_bridge_cycles each use it with
 * the heap's lock held; a second open while it is in use would reset the
 * mark stack of the operation under way. Every place user code runs
 * while it is open — a trace function, a root callback, an error handler
 * (called for a bad slot) — and a collection callback (the lock still
 * held) calls gc_collect, gc_verify and
 * gc_report_bridge_cycles here: each call is refused with the documented
 * report and the operation under way finishes intact (the list it traces
 * survives whole, gc_verify finds nothing). A finalizer runs with the
 * tracer closed: there the same calls work.
 *
 * Deterministic: no randomness (DEFAULT_SEED is only the harness's). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7332372d72656e74)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include "mulch_test.h"

enum { LIST_LENGTH = 300 };

enum reentry { REENTER_NONE, REENTER_COLLECT, REENTER_VERIFY, REENTER_BRIDGE, REENTER_COUNT };
static const char *const k_reentry_names[] = { "none", "gc_collect", "gc_verify", "gc_report_bridge_cycles" };

static struct {
    gc_heap_t *heap;
    gc_thread_t *t;
    enum reentry armed;      /* the call user code makes, when armed */
    unsigned calls;          /* calls made */
    unsigned verify_results; /* sum of the nested gc_verify results */
    bool in_handler;
    FILE *devnull;
    void **root_slot;        /* what the root callback traces */
} g;

static void reenter(void)
{
    if (g.armed == REENTER_NONE) return;
    g.calls++;
    switch (g.armed) {
    case REENTER_COLLECT: gc_collect(g.t); break;
    case REENTER_VERIFY: g.verify_results += (unsigned)gc_verify(g.heap); break;
    case REENTER_BRIDGE: gc_report_bridge_cycles(g.heap, g.devnull); break;
    default: break;
    }
}

static void trace_reentering(void *obj, gc_tracer_t *tracer)
{
    reenter();
    trace_tobj(obj, tracer);
}
static const gc_type_t T_REENTER = { "test.reenter", trace_reentering, NULL };

static void root_callback(gc_tracer_t *tracer, void *ctx)
{
    (void)ctx;
    reenter();
    if (g.root_slot) gc_trace_slot(tracer, g.root_slot);
}

/* Records like rec_handler; calls back into mulch when armed (not from a
 * report its own call caused). */
static void reentering_handler(const char *what, const void *ptr, void *ctx)
{
    rec_handler(what, ptr, ctx);
    if (g.in_handler) return;
    g.in_handler = true;
    reenter();
    g.in_handler = false;
}

/* A list of LIST_LENGTH objects, ids 1.., its head of type `head_type`. */
static tobj_t *make_list(const gc_type_t *head_type, void **root)
{
    *root = NULL;
    for (uint64_t id = LIST_LENGTH; id >= 1; id--) {
        tobj_t *o = mk(g.t, id == 1 ? head_type : &T_PLAIN, id, 2);
        set_slot(g.t, o, 0, *root);
        *root = o;
    }
    return *root;
}

static void expect_list(void *head)
{
    uint64_t id = 1;
    for (tobj_t *o = head; o; o = o->slot[0], id++) {
        EXPECT_EQ(o->magic, OBJ_MAGIC);
        EXPECT_EQ(o->id, id);
        EXPECT_EQ(o->words[1], payload_word(id, 1));
    }
    EXPECT_EQ(id, LIST_LENGTH + 1u);
}

static const char k_refused[] = "called from a trace function, root callback, heap-walk callback, collection callback or error handler "
                                "during a collection";

/* Runs the outer operation (gc_collect or gc_verify) with each reentry
 * armed in turn; each nested call is refused and reported, and the outer
 * one is unharmed. */
static void run_outer_with_each_reentry(bool outer_verify, void *const *head)
{
    for (int r = REENTER_COLLECT; r < REENTER_COUNT; r++) {
        unsigned long r0 = rec_count();
        g.calls = 0;
        g.verify_results = 0;
        g.armed = (enum reentry)r;
        size_t outer_problems = 0;
        if (outer_verify) outer_problems = gc_verify(g.heap);
        else gc_collect(g.t);
        g.armed = REENTER_NONE;
        unsigned long reports = rec_count() - r0;
        char last[256];
        rec_last(last, sizeof last, NULL);
        print_message("  %s, nested %s: %u call(s), %lu report(s), outer verify %zu\n",
                      outer_verify ? "gc_verify" : "gc_collect", k_reentry_names[r], g.calls, reports,
                      outer_problems);
        EXPECT_GE(g.calls, 1u);
        EXPECT_EQ(reports, (unsigned long)g.calls);
        if (strstr(last, k_refused) == NULL) T_FAIL("last report \"%s\" is not the refusal", last);
        if (strncmp(last, k_reentry_names[r], strlen(k_reentry_names[r])) != 0)
            T_FAIL("last report \"%s\" does not name %s", last, k_reentry_names[r]);
        if (r == REENTER_VERIFY) EXPECT_EQ(g.verify_results, g.calls); /* 1 each: not sound */
        EXPECT_EQ(outer_problems, 0u);
        expect_list(*head); /* (re-read: the collection may move it) */
        EXPECT_VERIFY(g.heap);
    }
}

static void heap_setup(void)
{
    g.heap = heap_new(0, 0, GC_COMPACT_AUTO);
    g.t = gc_thread_attach(g.heap);
    g.devnull = fopen("/dev/null", "w");
    EXPECT_NONNULL(g.devnull);
}

static void heap_teardown(void)
{
    gc_heap_destroy(g.heap);
    fclose(g.devnull);
    memset(&g, 0, sizeof g);
}

static void test_reentry_from_trace_function(void **state)
{
    (void)state;
    TEST_START();
    heap_setup();
    void *head = NULL;
    gc_push_root(g.t, &head);
    make_list(&T_REENTER, &head);
    run_outer_with_each_reentry(false, &head);
    run_outer_with_each_reentry(true, &head);
    gc_pop_roots(g.t, 1);
    heap_teardown();
}

static void test_reentry_from_root_callback(void **state)
{
    (void)state;
    TEST_START();
    heap_setup();
    void *head = NULL;
    gc_push_root(g.t, &head);
    make_list(&T_PLAIN, &head);
    g.root_slot = &head;
    gc_root_add_callback(g.heap, root_callback, NULL);
    run_outer_with_each_reentry(false, &head);
    run_outer_with_each_reentry(true, &head);
    gc_root_remove_callback(g.heap, root_callback, NULL);
    gc_pop_roots(g.t, 1);
    heap_teardown();
}

/* A collection callback (gc_set_collection_callback) runs at the end of
 * the collection, the heap's lock held and the world stopped: the same
 * calls are refused there, and the list survives (session 33). */
static void collection_reentering(const gc_collection_info_t *info, void *ctx)
{
    (void)info;
    (void)ctx;
    reenter();
}

static void test_reentry_from_collection_callback(void **state)
{
    (void)state;
    TEST_START();
    heap_setup();
    void *head = NULL;
    gc_push_root(g.t, &head);
    make_list(&T_PLAIN, &head);
    gc_set_collection_callback(g.heap, collection_reentering, NULL);
    run_outer_with_each_reentry(false, &head); /* (gc_verify is no collection: no callback) */
    gc_set_collection_callback(g.heap, NULL, NULL);
    gc_pop_roots(g.t, 1);
    heap_teardown();
}

/* A slot holding a malloc'd pointer makes gc_collect report "slot holds a
 * pointer that is not a GC object of this heap" and gc_verify "an
 * object's slot holds a pointer ...": the handler runs with the tracer
 * open and calls back. The outer operation then makes its own report
 * too, so the counts are checked loosely here. */
static void test_reentry_from_error_handler(void **state)
{
    (void)state;
    TEST_START();
    heap_setup();
    mulch_set_error_handler(reentering_handler, &g_ctx_token);
    void *head = NULL;
    gc_push_root(g.t, &head);
    make_list(&T_PLAIN, &head);
    void *foreign = malloc(64);
    EXPECT_NONNULL(foreign);
    ((tobj_t *)head)->slot[1] = foreign;
    for (int outer_verify = 0; outer_verify < 2; outer_verify++) {
        for (int r = REENTER_COLLECT; r < REENTER_COUNT; r++) {
            unsigned long r0 = rec_count();
            g.calls = 0;
            g.armed = (enum reentry)r;
            size_t problems = 0;
            if (outer_verify) problems = gc_verify(g.heap);
            else gc_collect(g.t);
            g.armed = REENTER_NONE;
            print_message("  %s, nested %s from the handler: %u call(s), %lu report(s)\n",
                          outer_verify ? "gc_verify" : "gc_collect", k_reentry_names[r], g.calls,
                          rec_count() - r0);
            EXPECT_GE(g.calls, 1u);
            EXPECT_EQ(rec_count() - r0, 2u * g.calls); /* the problem, then the refusal */
            if (outer_verify) EXPECT_EQ(problems, 1u); /* the foreign slot, nothing else */
            expect_list(head);
        }
    }
    ((tobj_t *)head)->slot[1] = NULL;
    free(foreign);
    mulch_set_error_handler(rec_handler, &g_ctx_token); /* teardown_rec checks it */
    EXPECT_VERIFY(g.heap);
    gc_pop_roots(g.t, 1);
    heap_teardown();
}

/* Finalizers run with the tracer closed (after the collection, outside
 * the heap's lock): the same calls work there, without reports. */
static unsigned g_finalizer_verify;
static void finalize_reentering(void *obj)
{
    (void)obj;
    gc_collect(g.t);
    g_finalizer_verify += (unsigned)gc_verify(g.heap);
    gc_report_bridge_cycles(g.heap, g.devnull);
    g.calls++;
}
static const gc_type_t T_FIN_REENTER = { "test.fin-reenter", trace_tobj, finalize_reentering };

static void test_reentry_from_finalizer_works(void **state)
{
    (void)state;
    TEST_START();
    heap_setup();
    unsigned long r0 = rec_count();
    void *head = NULL;
    gc_push_root(g.t, &head);
    make_list(&T_PLAIN, &head);
    for (uint64_t i = 0; i < 4; i++) mk(g.t, &T_FIN_REENTER, 1000 + i, 0);
    for (int i = 0; i < 3 && g.calls < 4; i++) gc_collect(g.t);
    print_message("  %u finalizer(s) called gc_collect, gc_verify (%u problems) and gc_report_bridge_cycles\n",
                  g.calls, g_finalizer_verify);
    EXPECT_EQ(g.calls, 4u);
    EXPECT_EQ(g_finalizer_verify, 0u);
    expect_list(head);
    EXPECT_NO_REPORTS(r0);
    gc_pop_roots(g.t, 1);
    heap_teardown();
}

int main(void)
{
    mt_init("test_gc_review_s27_reentry");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_reentry_from_trace_function),
        T(test_reentry_from_root_callback),
        T(test_reentry_from_error_handler),
        T(test_reentry_from_collection_callback),
        T(test_reentry_from_finalizer_works),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
