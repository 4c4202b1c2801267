/* test_gc_review_s17.c — review session 17 (collector corner cases):
 * regressions for bugs found there. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7331375f67636363)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mulch_test.h"

/* ---- gc_type_of on a pointer into a cell an object moved out of --------- */

/* 300 bytes: a cell with a header (headerless classes stop at 256 bytes),
 * where the collector leaves the forwarding word of a moved object. */
#define MOVED_WORDS 32
#define HEADERLESS_WORDS 2 /* a small cell: headerless (typed class) */

static struct {
    gc_thread_t *t;
    void *moving;            /* a root: the object that moves */
    void *stale;             /* its address before the nested collection */
    const gc_type_t *type;   /* gc_type_of(stale) after it */
    unsigned long reports;   /* reports gc_type_of made */
    size_t size;             /* gc_size_of(stale) after it */
    unsigned long size_reports; /* reports gc_size_of made */
    char type_text[256], size_text[256]; /* their last reports */
    const void *type_ptr, *size_ptr;
    bool moved;
} g_stale;

/* The finalizer of an object that holds `kept`: while it runs the object is
 * pending, so a collection marks `kept` in place, and the span it shares
 * with `moving` stays while `moving` is copied out of it. */
static void fin_collects(void *obj)
{
    (void)obj;
    g_stale.stale = g_stale.moving;
    gc_collect(g_stale.t);
    g_stale.moved = g_stale.moving != g_stale.stale;
    unsigned long r = rec_count();
    g_stale.type = gc_type_of(g_stale.stale);
    g_stale.reports = rec_count() - r;
    rec_last(g_stale.type_text, sizeof g_stale.type_text, &g_stale.type_ptr);
    r = rec_count();
    g_stale.size = gc_size_of(g_stale.stale);
    g_stale.size_reports = rec_count() - r;
    rec_last(g_stale.size_text, sizeof g_stale.size_text, &g_stale.size_ptr);
}
static const gc_type_t T_FIN_COLLECTS = { "test.fin_collects", trace_tobj, fin_collects };

/* A stale pointer to the cell an object of `words` payload words was
 * moved out of must be reported once by gc_type_of (NULL) and by
 * gc_size_of (0), as the pin and hash calls report a freed cell. */
static void check_moved_out_cell(size_t words)
{
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    memset(&g_stale, 0, sizeof g_stale);
    g_stale.t = t;
    gc_root_add(h, &g_stale.moving);
    void *kept = mk(t, &T_PLAIN, 1, words);
    gc_push_root(t, &kept);
    g_stale.moving = mk(t, &T_PLAIN, 2, words);
    /* a smaller class than the two: its span is kept in place while
     * pending, and must not be theirs */
    void *fin = mk(t, &T_FIN_COLLECTS, 3, 0);
    set_slot(t, fin, 0, kept);
    gc_pop_roots(t, 1);
    fin = kept = NULL;
    gc_collect(t); /* fin is found dead; its finalizer collects again */
    if (!g_stale.moved) T_FAIL("the rooted object did not move in a GC_COMPACT_ALWAYS heap");
    EXPECT_OBJ(g_stale.moving, 2);
    if (g_stale.type != NULL)
        T_FAIL("gc_type_of(stale pointer) gave %p (the copy is at %p), want NULL", (const void *)g_stale.type,
               g_stale.moving);
    if (g_stale.reports != 1) T_FAIL("gc_type_of(stale pointer) made %lu reports, want 1", g_stale.reports);
    /* gc_size_of gave the cell's size, unreported, for the same pointer
     * (session 18) */
    EXPECT_EQ(g_stale.size, 0);
    EXPECT_EQ(g_stale.size_reports, 1);
    EXPECT_EQ(rec_count() - r0, 2);
    static const char type_report[] = "gc_type_of: not a live object (a collection freed it)";
    static const char size_report[] = "gc_size_of: not a live object (a collection freed it)";
    if (strncmp(g_stale.type_text, type_report, sizeof type_report - 1) != 0 || g_stale.type_ptr != g_stale.stale)
        T_FAIL("gc_type_of's report: \"%s\" (%p), want \"%s\" (%p)", g_stale.type_text, g_stale.type_ptr,
               type_report, g_stale.stale);
    if (strncmp(g_stale.size_text, size_report, sizeof size_report - 1) != 0 || g_stale.size_ptr != g_stale.stale)
        T_FAIL("gc_size_of's report: \"%s\" (%p), want \"%s\" (%p)", g_stale.size_text, g_stale.size_ptr,
               size_report, g_stale.stale);
    /* the live object is found as ever */
    unsigned long r1 = rec_count();
    EXPECT_PTR_EQ(gc_type_of(g_stale.moving), &T_PLAIN);
    EXPECT_GE(gc_size_of(g_stale.moving), tobj_size(words));
    EXPECT_NO_REPORTS(r1);
    gc_root_remove(h, &g_stale.moving);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* A headered cell's header holds the forwarding word (the copy's address
 * | 1), which gc_type_of handed out as the object's type, unreported (the
 * caller then read a "type" that was an object); gc_size_of gave the
 * cell's size (session 18). */
static void test_type_and_size_of_moved_out_cell(void **state)
{
    (void)state;
    check_moved_out_cell(MOVED_WORDS);
}

/* A small object's cell has no header (its span's type serves): both
 * calls gave the span's type and the cell's size, unreported (session
 * 20; a freed cell's alloc or mark bit tells). */
static void test_type_and_size_of_moved_out_headerless_cell(void **state)
{
    (void)state;
    check_moved_out_cell(HEADERLESS_WORDS);
}

/* A trace function may call gc_type_of on the objects its fields point
 * to (<mulch/gc.h>): one that this collection moved already has the
 * forwarding word in its old header, and must still give its type. */
static atomic_ulong g_peek_wrong, g_peek_seen;
static void trace_peek(void *obj, gc_tracer_t *tracer)
{
    tobj_t *o = obj;
    for (size_t k = 0; k < NSLOTS; k++) {
        if (o->slot[k] == NULL) continue;
        atomic_fetch_add(&g_peek_seen, 1);
        if (gc_type_of(o->slot[k]) != &T_PLAIN) atomic_fetch_add(&g_peek_wrong, 1);
        gc_trace_slot(tracer, &o->slot[k]);
    }
}
static const gc_type_t T_PEEK = { "test.peek", trace_peek, NULL };

static void test_type_of_from_trace_after_move(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    enum { PARENTS = 8 };
    void *parents[PARENTS] = { 0 }, *child = NULL;
    gc_push_root(t, &child);
    for (size_t i = 0; i < PARENTS; i++) gc_push_root(t, &parents[i]);
    child = mk(t, &T_PLAIN, 1, MOVED_WORDS);
    for (size_t i = 0; i < PARENTS; i++) {
        parents[i] = mk(t, &T_PEEK, 10 + i, 0);
        set_slot(t, parents[i], 0, child);
    }
    atomic_store(&g_peek_wrong, 0);
    atomic_store(&g_peek_seen, 0);
    gc_collect(t);
    EXPECT_NO_REPORTS(r0);
    EXPECT_GE(atomic_load(&g_peek_seen), PARENTS);
    EXPECT_EQ(atomic_load(&g_peek_wrong), 0);
    for (size_t i = 0; i < PARENTS; i++) EXPECT_PTR_EQ(slot_of(parents[i], 0), child);
    EXPECT_OBJ(child, 1);
    gc_pop_roots(t, PARENTS + 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* ---- weak references a finalizer makes during gc_heap_destroy ----------- */

static struct {
    gc_heap_t *heap;
    void *target;            /* the finalizable object the weak one names */
    void *weak;              /* made by the first finalizer */
    void *seen;              /* what the target's finalizer read through it */
    int target_finalized;
} g_dw;

static void fin_target(void *obj)
{
    g_dw.target_finalized++;
    if (g_dw.weak) g_dw.seen = gc_weak_get(g_dw.weak);
    (void)obj;
}
static const gc_type_t T_TARGET = { "test.weak_target", trace_tobj, fin_target };

static void fin_makes_weak(void *obj)
{
    (void)obj;
    gc_thread_t *t = gc_thread_current(g_dw.heap);
    if (t == NULL) {
        AFAIL("the destroy's finalizer runs on no attached thread");
        return;
    }
    g_dw.weak = gc_weak_new(t, g_dw.target);
    if (g_dw.weak == NULL) AFAIL("gc_weak_new from a finalizer gave NULL");
    /* the target's finalizer is pending: the new weak reference reads NULL
     * from the start (docs/gc.md, Finalizers) */
    else if (gc_weak_get(g_dw.weak) != NULL) AFAIL("a new weak reference to a pending object names it");
}
static const gc_type_t T_MAKES_WEAK = { "test.makes_weak", trace_tobj, fin_makes_weak };

/* gc_heap_destroy "clears every weak reference" before its finalizers run
 * (docs/api.md), as a collection clears those of dead targets before their
 * finalizers: it cleared them once, so a weak reference that one finalizer
 * made to another finalizable object still named it when that object's
 * finalizer ran (and after). */
static void test_destroy_weak_made_by_finalizer(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    memset(&g_dw, 0, sizeof g_dw);
    g_dw.heap = h;
    gc_thread_t *t = gc_thread_attach(h);
    gc_root_add(h, &g_dw.target);
    g_dw.target = mk(t, &T_TARGET, 1, 0);
    /* made last, finalized first (the newest pending object runs first) */
    void *maker = mk(t, &T_MAKES_WEAK, 2, 0);
    (void)maker;
    gc_root_remove(h, &g_dw.target);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(g_dw.target_finalized, 1);
    if (g_dw.weak == NULL) T_FAIL("no weak reference was made (the finalizers ran in another order?)");
    if (g_dw.seen != NULL)
        T_FAIL("the target's finalizer read %p through a weak reference made during gc_heap_destroy, want NULL",
               g_dw.seen);
    EXPECT_NO_REPORTS(r0);
}

/* ---- fork while another thread destroys a heap ---------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;               /* 1: the destroy's finalizer runs; 2: it may return */
    pid_t parent;
    gc_heap_t *heap;
    int child_runs;          /* finalizer runs in the child */
} g_fd = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL, 0 };

static void fin_waits_in_parent(void *obj)
{
    (void)obj;
    if (getpid() != g_fd.parent) {
        g_fd.child_runs++;
        return;
    }
    pthread_mutex_lock(&g_fd.mu);
    g_fd.stage = 1;
    pthread_cond_broadcast(&g_fd.cv);
    while (g_fd.stage != 2) pthread_cond_wait(&g_fd.cv, &g_fd.mu);
    pthread_mutex_unlock(&g_fd.mu);
}
static const gc_type_t T_WAITS = { "test.waits_in_parent", trace_tobj, fin_waits_in_parent };

static void *destroyer(void *unused)
{
    (void)unused;
    gc_thread_t *t = gc_thread_attach(g_fd.heap);
    if (t == NULL) {
        AFAIL("attach failed");
        return NULL;
    }
    (void)mk(t, &T_WAITS, 1, 0);
    gc_heap_destroy(g_fd.heap); /* detaches t */
    return NULL;
}

/* A fork while another thread is inside gc_heap_destroy: that thread is
 * gone in the child, whose copy of the heap stayed `destroying` for ever,
 * so the child's own gc_heap_destroy was refused ("called inside a
 * finalizer") and the heap could never be ended there. The child may now
 * destroy it: the interrupted finalizer runs again (as for any finalizer
 * run a fork interrupts), then the memory goes. */
static void test_fork_during_destroy(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    g_fd.parent = getpid();
    g_fd.stage = 0;
    g_fd.child_runs = 0;
    g_fd.heap = heap_new(0, 0, GC_COMPACT_AUTO);
    pthread_t th;
    if (pthread_create(&th, NULL, destroyer, NULL) != 0) T_FAIL("pthread_create failed");
    pthread_mutex_lock(&g_fd.mu);
    while (g_fd.stage != 1) pthread_cond_wait(&g_fd.cv, &g_fd.mu);
    pthread_mutex_unlock(&g_fd.mu);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        unsigned long before = rec_count();
        gc_heap_destroy(g_fd.heap);
        _exit(rec_count() == before && g_fd.child_runs == 1 ? 0 : 10 + (int)(rec_count() - before));
    }
    int status = 0;
    pid_t got = pid > 0 ? waitpid(pid, &status, 0) : -1;
    pthread_mutex_lock(&g_fd.mu);
    g_fd.stage = 2;
    pthread_cond_broadcast(&g_fd.cv);
    pthread_mutex_unlock(&g_fd.mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    if (pthread_timedjoin_np(th, NULL, &until) != 0) T_FAIL("the parent's gc_heap_destroy did not finish");
    if (pid <= 0 || got != pid) T_FAIL("fork/waitpid failed");
    if (WIFSIGNALED(status)) T_FAIL("the child died of signal %d", WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        T_FAIL("the child's gc_heap_destroy failed (status %d: 10 + its reports, else the finalizer did not run "
               "once)", WEXITSTATUS(status));
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ---- gc_thread_detach from an rc destroy callback of gc_heap_destroy ----- */

static struct {
    gc_heap_t *heap;
    unsigned long reports;   /* made by the callback's detach */
    bool still_attached;     /* after it */
    int calls;
} g_dd;

static void rc_destroy_detaches(void *obj)
{
    (void)obj;
    g_dd.calls++;
    gc_thread_t *t = gc_thread_current(g_dd.heap);
    if (t == NULL) {
        AFAIL("the rc destroy callback runs on no attached thread");
        return;
    }
    unsigned long r = rec_count();
    gc_thread_detach(t);
    g_dd.reports = rec_count() - r;
    g_dd.still_attached = gc_thread_current(g_dd.heap) == t;
}

/* rc destroy callbacks that gc_heap_destroy runs (owned references,
 * released after the finalizers) run under the finalizer rules, and the
 * destroy goes on with the calling thread's record afterwards; a
 * gc_thread_detach there must be refused as in a finalizer. It was not:
 * the callback freed the record the destroy was using (and the rounds for
 * finalizers that later callbacks make ended). */
static void test_detach_in_destroy_rc_callback_refused(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    memset(&g_dd, 0, sizeof g_dd);
    g_dd.heap = h;
    gc_thread_t *t = gc_thread_attach(h);
    void *owner = mk(t, &T_PLAIN, 1, 0);
    gc_push_root(t, &owner);
    void *rc = rc_alloc(16, rc_destroy_detaches);
    EXPECT_NONNULL(rc);
    EXPECT_EQ(gc_own_rc(t, owner, rc), 0);
    rc_release(rc); /* the owner's reference is the last */
    gc_pop_roots(t, 1);
    gc_heap_destroy(h); /* from the attached thread: it detaches it */
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(g_dd.calls, 1);
    if (g_dd.reports != 1 || !g_dd.still_attached)
        T_FAIL("gc_thread_detach in the destroy's rc callback: %lu reports, %s", g_dd.reports,
               g_dd.still_attached ? "still attached" : "detached");
    EXPECT_ONE_REPORT(r0, "gc_thread_detach: called inside a finalizer", t);
    EXPECT_NULL(gc_thread_current(h) ? (void *)1 : NULL); /* the destroy detached it */
}

int main(void)
{
    mt_init("test_gc_review_s17");
    mt_env_ignore("MULCH_GC_COMPACT");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_type_and_size_of_moved_out_cell),
        T(test_type_and_size_of_moved_out_headerless_cell),
        T(test_type_of_from_trace_after_move),
        T(test_destroy_weak_made_by_finalizer),
        T(test_fork_during_destroy),
        T(test_detach_in_destroy_rc_callback_refused),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
