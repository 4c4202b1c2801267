/* test_rc_bridge.c — black-box tests of the rc/GC bridge (<mulch/rc.h>;
 * docs: shared/API.md "RC" and "Errors and misuse", docs/rc.md):
 *   - gc_handle_new roots its object while its count is above 0;
 *     gc_handle_get after gc_heap_destroy; gc_own_rc keeps the rc object
 *     while the owner is reachable, releases it after the owner is
 *     reclaimed (after its finalizer) or at gc_heap_destroy; misuse of
 *     gc_handle_new and gc_own_rc reported; gc_report_bridge_cycles.
 *
 * Biased counting: an object released last by a thread other than its
 * allocating thread may be destroyed only at the allocating thread's next
 * rc_retain / rc_release (or its exit). Tests that release on another
 * thread make the owner perform one before checking (rc_nudge()). Handles
 * are the exception: counted atomically from the start, their last
 * release on any thread unroots the object at once.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372630c01)
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mulch/rc.h>

#include "rc_test.h"

/* ======================================================================== */
/* The bridge                                                                */

/* GC objects: two reference slots, an id; finalizers record the id and the
 * global sequence number. */
#define GOBJ_MAGIC UINT64_C(0x676f626a2d726321)
typedef struct gobj {
    void *slot[2];
    uint64_t magic;
    uint64_t id;
} gobj_t;

#define GMAX 64
static atomic_uint g_fin[GMAX];
static atomic_ulong g_fin_seq[GMAX];

static void fin_reset(void)
{
    for (size_t i = 0; i < GMAX; i++) {
        atomic_store(&g_fin[i], 0);
        atomic_store(&g_fin_seq[i], 0);
    }
}

static void trace_gobj(void *obj, gc_tracer_t *tracer)
{
    gobj_t *o = obj;
    gc_trace_range(tracer, o->slot, 2);
}

static void fin_gobj(void *obj)
{
    gobj_t *o = obj;
    if (o->magic != GOBJ_MAGIC) AFAIL("finalizer got %p with a damaged magic", obj);
    if (o->id < GMAX) {
        if (atomic_fetch_add(&g_fin[o->id], 1) != 0) AFAIL("object id %" PRIu64 " finalized twice", o->id);
        atomic_store(&g_fin_seq[o->id], atomic_fetch_add(&g_seq, 1) + 1);
    }
}

static const gc_type_t T_G = { "test.rc.gobj", trace_gobj, NULL };
static const gc_type_t T_GFIN = { "test.rc.gobj_fin", trace_gobj, fin_gobj };

static gobj_t *gmk(gc_thread_t *t, const gc_type_t *type, uint64_t id)
{
    gobj_t *o = gc_alloc(t, type, sizeof *o);
    if (o == NULL) {
        print_error("gc_alloc(%s) returned NULL\n", type->name);
        fail();
    }
    o->magic = GOBJ_MAGIC;
    o->id = id;
    return o;
}

#define EXPECT_FIN(id, n) \
    do { \
        unsigned got_ = atomic_load(&g_fin[(id)]), want_ = (unsigned)(n); \
        if (got_ != want_) \
            T_FAIL("GC object id %d finalized %u time(s), expected %u", (int)(id), got_, want_); \
    } while (0)

#define EXPECT_VERIFY(heap) \
    do { \
        unsigned long r_ = rec_count(); \
        size_t v_ = gc_verify(heap); \
        if (v_ != 0) { \
            rec_print_since(r_); \
            T_FAIL("gc_verify found %zu problem(s)", v_); \
        } \
    } while (0)

static void churn(gc_thread_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) (void)gmk(t, &T_G, 63);
}

static void test_bridge_handle_roots_object(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);

    gobj_t *a = gmk(t, &T_GFIN, 1);
    gc_handle_t *h = gc_handle_new(heap, a);
    EXPECT_NONNULL(h);
    EXPECT_EQ(rc_count(h), 1);
    EXPECT_PTR_EQ(gc_handle_get(h), a);
    /* a child reachable only through the handle's object */
    gobj_t *child = gmk(t, &T_GFIN, 2);
    a = gc_handle_get(h);
    gc_write(t, a, &a->slot[0], child);
    (void)gmk(t, &T_GFIN, 3); /* garbage */
    for (int round = 0; round < 3; round++) {
        churn(t, 300);
        gc_collect(t);
        gobj_t *now = gc_handle_get(h);
        EXPECT_NONNULL(now);
        EXPECT_EQ(now->magic, GOBJ_MAGIC);
        EXPECT_EQ(now->id, 1);
        EXPECT_NONNULL(now->slot[0]);
        EXPECT_EQ(((gobj_t *)now->slot[0])->id, 2);
        EXPECT_FIN(1, 0);
        EXPECT_FIN(2, 0);
        EXPECT_FIN(3, 1);
        EXPECT_VERIFY(heap);
    }

    /* more references to the handle: it roots while the count is above 0 */
    EXPECT_PTR_EQ(rc_retain(h), h);
    EXPECT_EQ(rc_count(h), 2);
    rc_release(h);
    gc_collect(t);
    EXPECT_FIN(1, 0);
    EXPECT_EQ(((gobj_t *)gc_handle_get(h))->id, 1);

    /* two handles to one object: both must go */
    gc_handle_t *h2 = gc_handle_new(heap, gc_handle_get(h));
    EXPECT_NONNULL(h2);
    EXPECT_PTR_EQ(gc_handle_get(h2), gc_handle_get(h));
    rc_release(h);
    gc_collect(t);
    EXPECT_FIN(1, 0);
    EXPECT_EQ(((gobj_t *)gc_handle_get(h2))->id, 1);
    rc_release(h2); /* the last reference: the object is unreachable now */
    gc_collect(t);
    EXPECT_FIN(1, 1);
    EXPECT_FIN(2, 1);
    EXPECT_VERIFY(heap);

    /* a handle to NULL, and a handle released by another thread */
    gc_handle_t *hn = gc_handle_new(heap, NULL);
    EXPECT_NONNULL(hn);
    EXPECT_NULL(gc_handle_get(hn));
    gc_collect(t);
    rc_release(hn);

    gobj_t *b = gmk(t, &T_GFIN, 4);
    gc_handle_t *hb = gc_handle_new(heap, b);
    EXPECT_NONNULL(hb);
    handoff_t ho = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    ho.obj = hb; /* our reference, handed over */
    pthread_t th;
    gc_enter_blocking(t);
    EXPECT_EQ(pthread_create(&th, NULL, release_transferred, &ho), 0);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    gc_leave_blocking(t);
    /* no rc call here since: a handle is counted atomically from the start
     * (it waited in this thread's queue, its object rooted, until this
     * thread's next rc call: session 36) */
    gc_collect(t);
    EXPECT_FIN(4, 1);

    /* misuse: not a GC object */
    unsigned long r1 = rec_count();
    int local;
    gc_handle_t *bad = gc_handle_new(heap, &local);
    EXPECT_NULL(bad);
    EXPECT_ONE_REPORT(r1, "gc_handle_new:", &local);
    r0 = rec_count();

    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* gc_handle_get after gc_heap_destroy: the handle outlives the heap. */
static int handle_outlives_heap(pool_t *pool)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.pool = pool;
    gc_heap_t *heap = gc_heap_create(&o);
    if (heap == NULL) return 10;
    gc_thread_t *t = gc_thread_attach(heap);
    if (t == NULL) return 11;
    gobj_t *a = gmk(t, &T_GFIN, 5);
    gc_handle_t *h = gc_handle_new(heap, a);
    if (h == NULL) return 12;
    if (gc_handle_get(h) != a) return 13;
    rc_retain(h);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    if (atomic_load(&g_fin[5]) != 1) return 14; /* heap destroy runs every finalizer */
    if (gc_handle_get(h) != NULL) return 15;
    rc_release(h);
    if (gc_handle_get(h) != NULL) return 16;
    rc_release(h);
    return 0;
}

static void test_bridge_handle_after_heap_destroy_user_pool(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    int rc = handle_outlives_heap(pool);
    if (rc != 0) T_FAIL("handle past its heap (heap on our pool): step %d failed", rc);
    pool_stats_t s = stats_of(pool);
    if (s.live_allocations != 0)
        T_FAIL("%zu cell(s) of the heap's pool still live after gc_heap_destroy and the last "
               "handle release", s.live_allocations);
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* The same with the heap's own pool, in a child process: a crash there must
 * fail this test, not end the whole run. */
static void test_bridge_handle_after_heap_destroy_own_pool(void **state)
{
    (void)state;
    TEST_START();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) T_FAIL("fork failed");
    if (pid == 0) {
        /* cmocka catches these to report a crashed test; here a crash must
         * end the child so that the parent sees it */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        fin_reset();
        unsigned long r0 = rec_count();
        int rc = handle_outlives_heap(NULL);
        if (rc == 0 && rec_count() != r0) rc = 20;
        _exit(rc);
    }
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        T_FAIL("gc_handle_get / rc_release on a handle after gc_heap_destroy (heap with its own "
               "pool) killed the process with signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        T_FAIL("handle past its heap (heap's own pool): step %d failed", WEXITSTATUS(status));
}

static void test_bridge_own_rc(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    destroy_reset();
    shadow_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);

    void *root = NULL;
    gc_root_add(heap, &root);
    root = gmk(t, &T_G, 6);
    recobj_t *r = mk_rec(NULL, 1);
    EXPECT_EQ(gc_own_rc(t, root, r), 0);
    EXPECT_EQ(rc_count(r), 2);
    EXPECT_EQ(gc_own_rc(t, root, r), 0); /* each call adds one reference */
    EXPECT_EQ(rc_count(r), 3);
    rc_release(r); /* ours: the owner keeps it alive */
    EXPECT_EQ(rc_count(r), 2);
    for (int round = 0; round < 3; round++) {
        churn(t, 200);
        gc_collect(t);
        EXPECT_DESTROYS(0);
        EXPECT_EQ(rc_count(r), 2);
        EXPECT_EQ(r->magic, REC_MAGIC);
    }
    /* the owner becomes unreachable: released by the time gc_collect returns */
    root = NULL;
    gc_collect(t);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(1, 1);
    gc_collect(t);
    EXPECT_DESTROYS(1);

    /* an rc object owned by a reachable object is released at heap destroy */
    root = gmk(t, &T_G, 7);
    recobj_t *r2 = mk_rec(NULL, 2);
    EXPECT_EQ(gc_own_rc(t, root, r2), 0);
    rc_release(r2);
    /* and one owned by an unreachable object no collection has seen yet */
    gobj_t *garbage = gmk(t, &T_G, 8);
    recobj_t *r3 = mk_rec(NULL, 3);
    EXPECT_EQ(gc_own_rc(t, garbage, r3), 0);
    rc_release(r3);
    EXPECT_DESTROYS(1);
    EXPECT_VERIFY(heap);

    gc_root_remove(heap, &root);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_DESTROYS(3);
    EXPECT_SHADOW_RUNS(2, 1);
    EXPECT_SHADOW_RUNS(3, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static void test_bridge_own_rc_misuse(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    shadow_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *root = NULL;
    gc_root_add(heap, &root);
    root = gmk(t, &T_G, 18);

    /* the owner is not a GC object: nothing retained */
    unsigned long r1 = rec_count();
    int local;
    recobj_t *r = mk_rec(NULL, 8);
    EXPECT_EQ(gc_own_rc(t, &local, r), -1);
    EXPECT_ONE_REPORT(r1, "gc_own_rc:", &local);
    EXPECT_EQ(rc_count(r), 1);
    rc_release(r);
    EXPECT_DESTROYS(1);

    /* the rc object is already destroyed */
    r1 = rec_count();
    int res = gc_own_rc(t, root, r);
    EXPECT_EQ(res, -1);
    EXPECT_ONE_REPORT(r1, "gc_own_rc:", r);
    EXPECT_DESTROYS(1);

    gc_root_remove(heap, &root);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(8, 1);
    EXPECT_NO_ASYNC_FAILURES();
}

static void test_bridge_own_rc_finalizer_order(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    destroy_reset();
    shadow_reset();
    atomic_store(&g_seq, 0);
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);

    /* collected owner with a finalizer */
    gobj_t *a = gmk(t, &T_GFIN, 9);
    recobj_t *r = mk_rec(NULL, 5);
    EXPECT_EQ(gc_own_rc(t, a, r), 0);
    rc_release(r);
    int collections = 0;
    while (atomic_load(&g_shadow_runs[5]) == 0 && collections < 4) {
        gc_collect(t);
        collections++;
    }
    EXPECT_FIN(9, 1);
    EXPECT_SHADOW_RUNS(5, 1);
    unsigned long fseq = atomic_load(&g_fin_seq[9]), dseq = atomic_load(&g_shadow_seq[5]);
    print_message("  finalizer seq %lu, destroy seq %lu, after %d collection(s)\n", fseq, dseq, collections);
    if (!(fseq != 0 && dseq != 0 && fseq < dseq))
        T_FAIL("the owner's finalizer (seq %lu) must run before the rc object's destroy (seq %lu)",
               fseq, dseq);

    /* reachable owner with a finalizer, at heap destroy */
    void *root = NULL;
    gc_root_add(heap, &root);
    root = gmk(t, &T_GFIN, 10);
    recobj_t *r2 = mk_rec(NULL, 6);
    EXPECT_EQ(gc_own_rc(t, root, r2), 0);
    rc_release(r2);
    gc_collect(t);
    EXPECT_FIN(10, 0);
    EXPECT_SHADOW_RUNS(6, 0);
    gc_root_remove(heap, &root);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_FIN(10, 1);
    EXPECT_SHADOW_RUNS(6, 1);
    fseq = atomic_load(&g_fin_seq[10]);
    dseq = atomic_load(&g_shadow_seq[6]);
    if (!(fseq != 0 && dseq != 0 && fseq < dseq))
        T_FAIL("at gc_heap_destroy: finalizer seq %lu, destroy seq %lu (finalizer must come first)",
               fseq, dseq);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static size_t cycles_to_text(gc_heap_t *heap, char *buf, size_t n)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    size_t c = gc_report_bridge_cycles(heap, f);
    rewind(f);
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
    return c;
}

static void test_bridge_report_cycles(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    destroy_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    gc_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.pool = pool;
    gc_heap_t *heap = gc_heap_create(&opts);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    char text[4096];

    /* nothing bridged */
    size_t c = cycles_to_text(heap, text, sizeof text);
    EXPECT_EQ(c, 0);

    /* bridges without a cycle: handle -> A owns rc R and handle H2 -> B;
     * B owns nothing */
    gobj_t *a = gmk(t, &T_GFIN, 11);
    gc_handle_t *ha = gc_handle_new(heap, a);
    gobj_t *b = gmk(t, &T_GFIN, 12);
    gc_handle_t *hb = gc_handle_new(heap, b);
    recobj_t *r = mk_rec(NULL, 7);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(ha), r), 0);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(ha), hb), 0);
    rc_release(r);
    rc_release(hb);
    c = cycles_to_text(heap, text, sizeof text);
    if (c != 0) T_FAIL("gc_report_bridge_cycles = %zu without a cycle; it wrote: %s", c, text);
    EXPECT_VERIFY(heap);
    rc_release(ha); /* A, then B (owned through A), become garbage */
    gc_collect(t);
    gc_collect(t);
    gc_collect(t);
    EXPECT_FIN(11, 1);
    EXPECT_FIN(12, 1);
    EXPECT_DESTROYS(1);

    /* one handle whose object owns that same handle */
    gobj_t *s = gmk(t, &T_GFIN, 13);
    gc_handle_t *hs = gc_handle_new(heap, s);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(hs), hs), 0);
    EXPECT_EQ(rc_count(hs), 2);
    rc_release(hs); /* ours gone: only the cycle keeps it */
    c = cycles_to_text(heap, text, sizeof text);
    if (c != 1) T_FAIL("gc_report_bridge_cycles = %zu for one self-owning handle; it wrote: %s", c, text);
    if (strstr(text, "cycle") == NULL) T_FAIL("the cycle report does not mention \"cycle\": \"%s\"", text);
    print_message("  report: %s", text);
    gc_collect(t);
    gc_collect(t);
    EXPECT_FIN(13, 0); /* never collected */
    EXPECT_VERIFY(heap);

    /* heap destroy releases what the cycles hold: every cell goes back */
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_FIN(13, 1);
    pool_stats_t ps = stats_of(pool);
    if (ps.live_allocations != 0)
        T_FAIL("%zu cell(s) still live in the heap's pool after gc_heap_destroy (the cycles' "
               "handles should have been released)", ps.live_allocations);
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* The two-handle cycle on its own: exactly one cycle. */
static void test_bridge_report_two_handle_cycle(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    char text[4096];
    gobj_t *x = gmk(t, &T_GFIN, 16);
    gc_handle_t *h1 = gc_handle_new(heap, x);
    gobj_t *y = gmk(t, &T_GFIN, 17);
    gc_handle_t *h2 = gc_handle_new(heap, y);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(h1), h2), 0);
    EXPECT_EQ(gc_own_rc(t, gc_handle_get(h2), h1), 0);
    rc_release(h1);
    rc_release(h2);
    size_t c = cycles_to_text(heap, text, sizeof text);
    if (strstr(text, "cycle") == NULL) T_FAIL("the cycle report does not mention \"cycle\": \"%s\"", text);
    if (c != 1)
        T_FAIL("gc_report_bridge_cycles = %zu for one cycle through two handles "
               "(H1 -> X owns H2 -> Y owns H1), expected 1; it wrote:\n%s", c, text);
    gc_collect(t);
    EXPECT_FIN(16, 0);
    EXPECT_FIN(17, 0);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_FIN(16, 1);
    EXPECT_FIN(17, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* gc_heap_destroy releases the references GC objects own; those destroy
 * callbacks run under the finalizer rules, so they may make handles and
 * owned references on the heap being destroyed. Such a handle, too, must
 * answer NULL once the heap is gone (its release must not touch the heap),
 * and such an owned reference must be released, not dropped. */
static gc_heap_t *g_late_heap;
static gc_thread_t *g_late_thread;
static gc_handle_t *g_late_handle;
static atomic_int g_late_destroys;

static void late_second_destroy(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_late_destroys, 1);
}

static void late_first_destroy(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_late_destroys, 1);
    gobj_t *o = gmk(g_late_thread, &T_G, 40);
    g_late_handle = gc_handle_new(g_late_heap, o);
    void *second = rc_alloc(16, late_second_destroy);
    if (g_late_handle == NULL || second == NULL) AFAIL("out of memory in a destroy callback");
    if (gc_own_rc(g_late_thread, gc_handle_get(g_late_handle), second) != 0) AFAIL("gc_own_rc failed");
    rc_release(second);
}

static void test_bridge_heap_destroy_callbacks_use_heap(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_late_destroys, 0);
    g_late_handle = NULL;
    g_late_heap = gc_heap_create(NULL);
    EXPECT_NONNULL(g_late_heap);
    g_late_thread = gc_thread_attach(g_late_heap);
    EXPECT_NONNULL(g_late_thread);
    gobj_t *owner = gmk(g_late_thread, &T_G, 41);
    void *first = rc_alloc(16, late_first_destroy);
    EXPECT_NONNULL(first);
    EXPECT_EQ(gc_own_rc(g_late_thread, owner, first), 0);
    rc_release(first); /* the owner's reference is the last one */
    gc_push_root(g_late_thread, (void **)&owner);
    gc_heap_destroy(g_late_heap); /* releases `first`: its destroy uses the heap */
    EXPECT_NONNULL(g_late_handle);
    EXPECT_EQ(atomic_load(&g_late_destroys), 2); /* the late owned reference too */
    EXPECT_NULL(gc_handle_get(g_late_handle));
    rc_release(g_late_handle); /* must not touch the destroyed heap */
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* Handles released in a random order (the heap keeps each handle's slot
 * by index, swapping the last one into a released place): every handle
 * still held roots its object through collections, every released one
 * stops rooting its own. Ids 0..GMAX-1 carry finalizers. */
static void test_bridge_handles_released_in_any_order(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    rng_t rng = test_rng_named("handles_released_in_any_order");
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    enum { N = GMAX };
    gc_handle_t *h[N];
    _Bool held[N];
    for (size_t i = 0; i < N; i++) {
        h[i] = gc_handle_new(heap, gmk(t, &T_GFIN, i));
        EXPECT_NONNULL(h[i]);
        held[i] = 1;
    }
    size_t order[N];
    for (size_t i = 0; i < N; i++) order[i] = i;
    for (size_t i = N; i-- > 1;) {
        size_t j = (size_t)rng_below(&rng, i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (size_t k = 0; k < N; k++) {
        size_t victim = order[k];
        rc_release(h[victim]);
        held[victim] = 0;
        if (k % 8 != 7 && k != N - 1) continue;
        churn(t, 200);
        gc_collect(t);
        EXPECT_VERIFY(heap);
        for (size_t i = 0; i < N; i++) {
            if (held[i]) {
                gobj_t *o = gc_handle_get(h[i]);
                EXPECT_NONNULL(o);
                EXPECT_EQ(o->magic, GOBJ_MAGIC);
                EXPECT_EQ(o->id, i);
                EXPECT_FIN(i, 0);
            } else {
                EXPECT_FIN(i, 1);
            }
        }
    }
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_bridge");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_bridge_handle_roots_object),
        T(test_bridge_handle_after_heap_destroy_user_pool),
        T(test_bridge_handle_after_heap_destroy_own_pool),
        T(test_bridge_own_rc),
        T(test_bridge_own_rc_misuse),
        T(test_bridge_own_rc_finalizer_order),
        T(test_bridge_report_cycles),
        T(test_bridge_report_two_handle_cycle),
        T(test_bridge_heap_destroy_callbacks_use_heap),
        T(test_bridge_handles_released_in_any_order),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
