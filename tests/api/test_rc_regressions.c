/* test_rc_regressions.c — rc and bridge misuse and races found by review
 * (session 14), each once a crash, a corruption, a deadlock or a silent
 * wrong answer:
 *   owner_double_release_while_queued   reported, the pool stays sound
 *   heap_destroy_from_owned_rc_destroy  refused like the same call from a finalizer
 *   handle_release_races_heap_destroy   no race (tsan) on the payload's heap
 *   own_rc_of_pending_object            gc_own_rc fails when its retain does
 *   pool_destroy_with_queued_object     pool_destroy merges and destroys what
 *                                       its owner's queue still held
 *   handle_new_is_no_gc_point           no queued destroy runs (and collects)
 *                                       inside gc_handle_new
 *   handle_release_in_walk_callback     reported, no deadlock (the test
 *                                       _exits after 3 s if it hangs)
 *   own_rc_into_destroyed_pool          (session 36) pool_destroy of a pool
 *                                       whose live object a GC object owns:
 *                                       the owner's death released whatever
 *                                       took the freed cell (a new pool's
 *                                       live object, destroyed under its
 *                                       program); the release now checks
 *                                       that the object's pool lives
 *   pool_destroy_is_no_gc_point         (session 36) a first fix, which made
 *                                       the heaps forget those pairs inside
 *                                       pool_destroy, made it a blocking
 *                                       region: another thread's collection
 *                                       freed an unrooted local
 *   stale_pairs_make_no_cycle           (session 36) those pairs, kept until
 *                                       their owner dies, named freed cells
 *                                       that handles from pool_default took
 *                                       over: a bridge cycle was reported
 *                                       that does not exist
 *   pool_destroy_waits_for_owned_release (session 36) a release the collector
 *                                       had begun (the owner died) ran its
 *                                       destroy callback while pool_destroy
 *                                       of the object's pool unmapped it
 * One test alone: test_rc_regressions '<cmocka pattern>'. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372637601)
#include <signal.h>
#include <unistd.h>

#include <mulch/rc.h>

#include "rc_test.h"


/* Bug 1: the owner's double release of an object that another thread's
 * release left queued (true count already 0). rc_release validates the
 * pointer, then drains the merge queue (which destroys the object), then
 * carries on with the freed cell: no report, and an atomic decrement of
 * the freed cell's first word (the pool's free link). API.md: "releasing
 * an rc object whose count is 0 ... is reported ... no memory is
 * corrupted". */
typedef struct {
    void **objs;
    size_t n;
} release_all_t;

static void *release_all(void *arg)
{
    release_all_t *ra = arg;
    for (size_t i = 0; i < ra->n; i++) rc_release(ra->objs[i]);
    return NULL;
}

#define DBL_N 12 /* more than the pool's per-thread cache of recent frees */

static void test_rc_owner_double_release_while_queued(void **state)
{
    (void)state;
    TEST_START();
    for (int round = 0; round < 16; round++) {
        pool_t *pool = pool_create(NULL); /* a new key each round */
        EXPECT_NONNULL(pool);
        void *keep = rc_alloc_in(pool, 32, NULL); /* keeps the span */
        void *objs[DBL_N];
        for (size_t i = 0; i < DBL_N; i++) {
            objs[i] = rc_alloc_in(pool, 32, NULL);
            EXPECT_NONNULL(objs[i]);
        }
        void *victim = objs[0]; /* queued first: merged (destroyed) last */
        /* the owner's only references go to another thread, which drops
         * them: all queued to the owner, destroyed at its next release */
        release_all_t ra = { objs, DBL_N };
        pthread_t th;
        EXPECT_EQ(pthread_create(&th, NULL, release_all, &ra), 0);
        EXPECT_EQ(pthread_join(th, NULL), 0);
        unsigned long r = rec_count();
        (rc_release)(victim); /* misuse: a second release of the only reference */
        EXPECT_ONE_REPORT(r, "rc_release:", victim);
        r = rec_count();
        /* the pool must still be sound: pop every free cell of the class */
        void *cells[64];
        for (size_t i = 0; i < 64; i++) cells[i] = pool_alloc(pool, 32 + 48);
        for (size_t i = 0; i < 64; i++) pool_free(pool, cells[i]);
        (rc_release)(keep);
        EXPECT_NO_REPORTS(r);
        pool_destroy(pool);
    }
    EXPECT_NO_ASYNC_FAILURES();
}

/* Bug 2: a handle's last release takes the heap's lock with no
 * gc_outside_tracing check (runtime/bridge.c handle_destroy ->
 * gc/bridge.c gc_handle_slot_remove). From a gc_heap_walk callback (heap
 * lock held) the calling thread waits for its own lock for ever instead of
 * the documented "called from ... heap-walk callback" report. Here the
 * callback releases an ordinary rc object whose destroy drops a handle.
 * The walk runs on a helper thread; the test fails if it has not returned
 * after a few seconds. */
static const gc_type_t T_PLAIN = { "review.plain", NULL, NULL };
static void *g_walk_victim; /* an rc object whose destroy releases a handle */

static void holder_destroy(void *obj)
{
    rc_release(*(void **)obj); /* the handle it holds */
}

static void walk_release(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj, (void)type, (void)size, (void)ctx;
    void *v = g_walk_victim;
    g_walk_victim = NULL;
    if (v) rc_release(v);
}

static void count_objects(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj, (void)type, (void)size, (void)ctx;
}

static void walk_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: gc_heap_walk has not returned after 3 s: the callback's rc_release of "
                              "a handle waits for the heap lock its own thread holds\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
}

static void test_rc_handle_release_in_walk_callback(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *g = gc_alloc(t, &T_PLAIN, 32);
    EXPECT_NONNULL(g);
    gc_handle_t *handle = gc_handle_new(heap, g);
    EXPECT_NONNULL(handle);
    void **holder = rc_alloc(sizeof(void *), holder_destroy);
    EXPECT_NONNULL(holder);
    *holder = handle; /* the holder owns the handle's only reference */
    g_walk_victim = holder;
    signal(SIGALRM, walk_alarm);
    alarm(3);
    unsigned long r = rec_count();
    (void)gc_heap_walk(heap, walk_release, NULL); /* all on this thread: destroys run at once */
    alarm(0);
    /* the handle's unregistering is refused and reported; its slot stays,
     * rooting nothing, so g goes with the next collection */
    EXPECT_ONE_REPORT(r, "gc_handle's last rc_release: called from", handle); /* the handle, not NULL */
    EXPECT_EQ(g_walk_victim, NULL);
    r = rec_count();
    gc_collect(t);
    EXPECT_EQ(gc_verify(heap), 0);
    EXPECT_EQ(gc_verify_untraced(heap), 0);
    size_t left = gc_heap_walk(heap, count_objects, NULL);
    EXPECT_EQ(left, 0);
    EXPECT_NO_REPORTS(r);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_REPORTS(r);
}

/* Bug 3: gc_heap_destroy releases the gc_own_rc references (gc/bridge.c
 * gc_bridge_destroy -> gc_bridge_release_pending) without taking the
 * finalizing role, so destroy_refused does not see a destroy callback that
 * calls gc_heap_destroy on the same heap as "inside a finalizer": the
 * nested call destroys and unmaps the heap, and the outer one goes on with
 * it. The same callback reached through gc_collect is reported and
 * refused ("called inside a finalizer"). */
static gc_heap_t *g_nested_heap;
static void destroy_heap_too(void *obj)
{
    (void)obj;
    gc_heap_destroy(g_nested_heap);
}

static void test_rc_heap_destroy_from_owned_rc_destroy(void **state)
{
    (void)state;
    TEST_START();
    /* through gc_collect: reported, refused */
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    g_nested_heap = heap;
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *owner = gc_alloc(t, &T_PLAIN, 32);
    void *res = rc_alloc(8, destroy_heap_too);
    EXPECT_NONNULL(owner);
    EXPECT_NONNULL(res);
    EXPECT_EQ(gc_own_rc(t, owner, res), 0);
    rc_release(res);
    owner = NULL;
    unsigned long r = rec_count();
    gc_collect(t);
    gc_collect(t);
    EXPECT_ONE_REPORT(r, "gc_heap_destroy: called inside a finalizer", heap);
    gc_thread_detach(t);
    gc_heap_destroy(heap);

    /* through gc_heap_destroy: the same misuse must be refused the same way */
    heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    g_nested_heap = heap;
    t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    owner = gc_alloc(t, &T_PLAIN, 32);
    res = rc_alloc(8, destroy_heap_too);
    EXPECT_NONNULL(owner);
    EXPECT_NONNULL(res);
    EXPECT_EQ(gc_own_rc(t, owner, res), 0);
    rc_release(res);
    r = rec_count();
    gc_heap_destroy(heap); /* attached caller: the destroy detaches it */
    EXPECT_ONE_REPORT(r, "gc_heap_destroy: called inside a finalizer", heap);
}

/* Bug 4 (shows under the tsan preset): a handle's last release on a thread
 * that is not attached, racing gc_heap_destroy on another thread. The
 * handle's destroy reads payload->heap without the heap's lock
 * (runtime/bridge.c handle_destroy) while gc_heap_destroy's
 * handles_detach writes it under the lock (gc/bridge.c); if the destroy
 * finishes (os_unmap of the heap) between that read and
 * gc_handle_slot_remove's pthread_mutex_lock(&heap->lock), the releasing
 * thread locks an unmapped mutex. ThreadSanitizer reports the race on
 * every run; plain builds rarely hit the window. */
static _Atomic(void *) g_race_handle;
static atomic_int g_race_go, g_race_ready;
static void *race_release(void *arg)
{
    (void)arg;
    void *hd = atomic_load(&g_race_handle);
    rc_retain(hd); /* a reference of this thread's own: its release can be the last */
    atomic_store(&g_race_ready, 1);
    while (!atomic_load(&g_race_go)) {}
    rc_release(hd);
    return NULL;
}

static void test_rc_handle_release_races_heap_destroy(void **state)
{
    (void)state;
    TEST_START();
    for (int i = 0; i < 50; i++) {
        gc_heap_t *heap = gc_heap_create(NULL);
        EXPECT_NONNULL(heap);
        gc_handle_t *hd = gc_handle_new(heap, NULL);
        EXPECT_NONNULL(hd);
        atomic_store(&g_race_go, 0);
        atomic_store(&g_race_ready, 0);
        atomic_store(&g_race_handle, hd);
        pthread_t th;
        EXPECT_EQ(pthread_create(&th, NULL, race_release, NULL), 0);
        while (!atomic_load(&g_race_ready)) {}
        rc_release(hd); /* ours: the count is merged, the other thread's release is the last */
        atomic_store(&g_race_go, 1);
        gc_heap_destroy(heap); /* no thread is attached: allowed */
        EXPECT_EQ(pthread_join(th, NULL), 0);
    }
}

/* Bug 5: gc_own_rc on an rc object whose count already reached 0 but
 * whose destroy has not run yet (it waits in the destroying thread's
 * pending list: a destroy callback released its last reference).
 * rc_check passes (magic is still RC_LIVE), rc_retain reports "count is
 * 0" and does nothing, but gc_own_rc (runtime/bridge.c) ignores that,
 * records the pair and returns 0. The object is then destroyed; when the
 * GC owner dies the collector releases whatever now occupies the cell —
 * here a new, unrelated rc object C, destroyed while its owner holds it. */
static gc_thread_t *g_own_thread;
static void *g_own_gobj, *g_own_b;
static int g_own_ret = 99;
static void own_b_then_release(void *obj)
{
    (void)obj;
    rc_release(g_own_b); /* B's last reference: B is pending, count 0 */
    g_own_ret = gc_own_rc(g_own_thread, g_own_gobj, g_own_b);
}

static void test_rc_own_rc_of_pending_object(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    shadow_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    g_own_thread = gc_thread_attach(heap);
    EXPECT_NONNULL(g_own_thread);
    g_own_gobj = gc_alloc(g_own_thread, &T_PLAIN, 32);
    EXPECT_NONNULL(g_own_gobj);
    gc_root_add(heap, &g_own_gobj);
    void *a = rc_alloc(16, own_b_then_release);
    g_own_b = mk_rec(NULL, 1);
    unsigned long r = rec_count();
    rc_release(a);
    EXPECT_ONE_REPORT(r, "rc_retain:", g_own_b); /* gc_own_rc's retain: reported... */
    EXPECT_SHADOW_RUNS(1, 1);
    recobj_t *c = mk_rec(NULL, 2); /* typically takes B's cell */
    gc_root_remove(heap, &g_own_gobj);
    g_own_gobj = NULL;
    gc_collect(g_own_thread);
    gc_collect(g_own_thread);
    print_message("  gc_own_rc returned %d\n", g_own_ret);
    EXPECT_SHADOW_RUNS(2, 0); /* C is still referenced by us */
    EXPECT_EQ(rc_count(c), 1);
    EXPECT_NE(g_own_ret, 0); /* gc_own_rc must not report success after its retain failed */
    rc_release(c);
    gc_thread_detach(g_own_thread);
    gc_heap_destroy(heap);
}

/* Bug 6: every reference released, then pool_destroy, as docs/rc.md
 * advises ("release every object first if the callbacks matter"): when the
 * last release was another thread's, the object still sits in its owner's
 * merge queue (rc_queue_to_owner pushes the header, which lives in the
 * pool), pool_destroy unmaps it, and the owner's next rc_alloc/rc_release
 * drains the queue (runtime/rc.c rc_queue_drain reads h->link and
 * h->biased, merges, destroys, pool_free) on unmapped memory: SIGSEGV (or
 * a destroy callback on freed memory, or a pool_free into a dead pool). */
static void *release_in_thread(void *arg)
{
    rc_release(arg);
    return NULL;
}

static void test_rc_pool_destroy_with_queued_object(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    shadow_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    recobj_t *o = mk_rec(pool, 3);
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, release_in_thread, o), 0); /* our only reference */
    EXPECT_EQ(pthread_join(th, NULL), 0);
    /* every reference is released; the pool holds nothing the program uses */
    pool_destroy(pool);
    rc_nudge(); /* this thread's next rc_alloc / rc_release: drains its queue */
    EXPECT_SHADOW_RUNS(3, 1);
}

/* gc_handle_new is no GC point, yet it used to merge the caller's queue
 * (through rc_alloc), running destroy callbacks there: one that collects
 * freed the object about to be handed to the handle, still unrooted. */
static gc_thread_t *g_collect_thread;
static int g_collect_destroys;
static void collect_on_destroy(void *obj)
{
    (void)obj;
    g_collect_destroys++;
    gc_collect(g_collect_thread);
}

static void test_rc_handle_new_is_no_gc_point(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    g_collect_thread = gc_thread_attach(heap);
    EXPECT_NONNULL(g_collect_thread);
    g_collect_destroys = 0;
    void *x = rc_alloc(8, collect_on_destroy);
    EXPECT_NONNULL(x);
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, release_in_thread, x), 0); /* queued back to us */
    EXPECT_EQ(pthread_join(th, NULL), 0);
    EXPECT_EQ(g_collect_destroys, 0);
    unsigned long r = rec_count();
    void *obj = gc_alloc(g_collect_thread, &T_PLAIN, 32); /* not rooted: the handle roots it */
    EXPECT_NONNULL(obj);
    gc_handle_t *h = gc_handle_new(heap, obj);
    EXPECT_NONNULL(h);
    obj = NULL;
    rc_release(rc_alloc(1, NULL)); /* merges the queue: the destroy collects */
    EXPECT_EQ(g_collect_destroys, 1);
    EXPECT_EQ(gc_type_of(gc_handle_get(h)), &T_PLAIN);
    gc_collect(g_collect_thread);
    EXPECT_EQ(gc_type_of(gc_handle_get(h)), &T_PLAIN);
    EXPECT_EQ(gc_verify(heap), 0);
    EXPECT_EQ(gc_verify_untraced(heap), 0);
    EXPECT_NO_REPORTS(r);
    rc_release(h);
    gc_thread_detach(g_collect_thread);
    gc_heap_destroy(heap);
}

static int g_new_destroys;
static void count_new_destroy(void *obj)
{
    (void)obj;
    g_new_destroys++;
}

static void test_rc_own_rc_into_destroyed_pool(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r = rec_count();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    void *owned = rc_alloc_in(pool, 32, NULL);
    void *dying = rc_alloc_in(pool, 32, NULL); /* its owner is garbage before the pool goes */
    void *owner = gc_alloc(t, &T_PLAIN, 16), *dying_owner = NULL;
    EXPECT_NONNULL(owned);
    EXPECT_NONNULL(dying);
    EXPECT_NONNULL(owner);
    gc_push_root(t, &owner);
    EXPECT_EQ(gc_own_rc(t, owner, owned), 0);
    dying_owner = gc_alloc(t, &T_PLAIN, 16);
    EXPECT_NONNULL(dying_owner);
    EXPECT_EQ(gc_own_rc(t, dying_owner, dying), 0);
    dying_owner = NULL;
    rc_release(owned); /* the GC objects hold the only references */
    rc_release(dying);
    pool_destroy(pool); /* frees both alive, without a destroy (documented) */
    /* a new pool's live objects, one of them (most likely) in the freed cell */
    pool_t *second = pool_create(NULL);
    EXPECT_NONNULL(second);
    enum { COUNT = 64 };
    void *fresh[COUNT];
    g_new_destroys = 0;
    for (int i = 0; i < COUNT; i++) {
        fresh[i] = rc_alloc_in(second, 32, count_new_destroy);
        EXPECT_NONNULL(fresh[i]);
    }
    gc_pop_roots(t, 1);
    owner = NULL;
    for (int i = 0; i < 3; i++) gc_collect(t); /* both owners die */
    if (g_new_destroys != 0) T_FAIL("the owners' deaths destroyed %d live object(s) of another pool", g_new_destroys);
    EXPECT_NO_REPORTS(r);
    for (int i = 0; i < COUNT; i++) rc_release(fresh[i]);
    EXPECT_EQ(g_new_destroys, COUNT);
    pool_destroy(second);
    EXPECT_EQ(gc_verify(heap), 0);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_REPORTS(r);
}

static gc_heap_t *g_busy_heap;
static atomic_int g_busy_stop;
static void *collect_in_a_loop(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_busy_heap);
    if (t == NULL) AFAIL("gc_thread_attach failed");
    while (t && !atomic_load(&g_busy_stop)) gc_collect(t);
    if (t) gc_thread_detach(t);
    return NULL;
}

static void test_rc_pool_destroy_is_no_gc_point(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r = rec_count();
    g_busy_heap = gc_heap_create(NULL);
    EXPECT_NONNULL(g_busy_heap);
    gc_thread_t *t = gc_thread_attach(g_busy_heap);
    EXPECT_NONNULL(t);
    atomic_store(&g_busy_stop, 0);
    pthread_t collector;
    EXPECT_EQ(pthread_create(&collector, NULL, collect_in_a_loop, NULL), 0);
    size_t iterations = scaled(3000, 300), stale = 0;
    for (size_t i = 0; i < iterations && stale == 0; i++) {
        pool_t *pool = pool_create(NULL);
        EXPECT_NONNULL(pool);
        rc_release(rc_alloc_in(pool, 16, NULL)); /* the pool held an rc object */
        uint64_t *o = gc_alloc(t, &T_PLAIN, 64);  /* unrooted: no GC point until it is used */
        EXPECT_NONNULL(o);
        o[0] = UINT64_C(0x5151);
        pool_destroy(pool);
        if (gc_type_of(o) != &T_PLAIN || o[0] != UINT64_C(0x5151)) stale++;
        gc_safepoint(t);
    }
    atomic_store(&g_busy_stop, 1);
    gc_enter_blocking(t);
    EXPECT_EQ(pthread_join(collector, NULL), 0);
    gc_leave_blocking(t);
    if (stale) T_FAIL("an unrooted object died across pool_destroy (a GC point it is not)");
    gc_thread_detach(t);
    gc_heap_destroy(g_busy_heap);
    EXPECT_NO_REPORTS(r);
    EXPECT_NO_ASYNC_FAILURES();
}

static void test_rc_stale_pairs_make_no_cycle(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r = rec_count();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *owner = gc_alloc(t, &T_PLAIN, 16);
    EXPECT_NONNULL(owner);
    gc_push_root(t, &owner);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    enum { OWNED = 8, HANDLES = 100000 }; /* (more than pool_default has room for: it takes a new chunk, most likely the destroyed pool's) */
    void *owned[OWNED];
    for (int i = 0; i < OWNED; i++) {
        owned[i] = rc_alloc_in(pool, 8 + 8 * (size_t)i, NULL);
        EXPECT_NONNULL(owned[i]);
        EXPECT_EQ(gc_own_rc(t, owner, owned[i]), 0);
        rc_release(owned[i]); /* the owner holds the only reference */
    }
    pool_destroy(pool); /* frees them alive; the owner lives on */
    /* handles to the owner from pool_default, whose next chunk may be the
     * destroyed pool's: some land in the freed owned cells */
    gc_handle_t **handles = calloc(HANDLES, sizeof *handles);
    EXPECT_NONNULL(handles);
    for (int i = 0; i < HANDLES; i++) {
        handles[i] = gc_handle_new(heap, owner);
        EXPECT_NONNULL(handles[i]);
    }
    char text[256] = "";
    FILE *out = fmemopen(text, sizeof text - 1, "w");
    EXPECT_NONNULL(out);
    size_t cycles = gc_report_bridge_cycles(heap, out);
    fclose(out);
    if (cycles != 0) T_FAIL("%zu bridge cycle(s) reported, none exists: %s", cycles, text);
    for (int i = 0; i < HANDLES; i++) rc_release(handles[i]);
    free(handles);
    gc_pop_roots(t, 1);
    gc_collect(t); /* the owner dies: nothing to release */
    EXPECT_EQ(gc_verify(heap), 0);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_REPORTS(r);
}

static pool_t *g_owned_pool;
static atomic_int g_owned_step;
static atomic_bool g_owned_pool_gone;

/* The owned object's destroy callback, run by the collector's release on
 * the owner's thread: the main thread destroys its pool meanwhile. */
static void owned_slow_destroy(void *obj)
{
    atomic_store(&g_owned_step, 1);
    usleep(50 * 1000); /* (the main thread is in pool_destroy, most likely) */
    if (atomic_load(&g_owned_pool_gone)) AFAIL("pool_destroy returned while the release's callback ran");
    memset(obj, 0xab, 64); /* its cell is still the pool's */
}

static void *collect_an_owner(void *arg)
{
    (void)arg;
    gc_heap_t *heap = gc_heap_create(NULL);
    gc_thread_t *t = heap ? gc_thread_attach(heap) : NULL;
    if (t == NULL) {
        AFAIL("heap or attach failed");
        atomic_store(&g_owned_step, 1);
        return NULL;
    }
    void *owner = gc_alloc(t, &T_PLAIN, 32);
    void *owned = rc_alloc_in(g_owned_pool, 64, owned_slow_destroy);
    if (!owner || !owned || gc_own_rc(t, owner, owned) != 0) AFAIL("gc_own_rc failed");
    rc_release(owned); /* only the owner holds it now */
    owner = NULL;
    gc_collect(t); /* the owner dies: the release runs the callback here */
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    return NULL;
}

static void test_rc_pool_destroy_waits_for_owned_release(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r = rec_count();
    atomic_store(&g_owned_step, 0);
    atomic_store(&g_owned_pool_gone, false);
    g_owned_pool = pool_create(NULL);
    EXPECT_NONNULL(g_owned_pool);
    pthread_t collector;
    EXPECT_EQ(pthread_create(&collector, NULL, collect_an_owner, NULL), 0);
    for (int i = 0; i < 30000 && atomic_load(&g_owned_step) == 0; i++) usleep(1000);
    EXPECT_EQ(atomic_load(&g_owned_step), 1);
    pool_destroy(g_owned_pool);
    atomic_store(&g_owned_pool_gone, true);
    EXPECT_EQ(pthread_join(collector, NULL), 0);
    EXPECT_NO_REPORTS(r);
    EXPECT_NO_ASYNC_FAILURES();
}

int main(int argc, char **argv)
{
    mt_init("test_rc_regressions");
    if (argc > 1) cmocka_set_test_filter(argv[1]); /* one test: its name */
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_owner_double_release_while_queued),
        T(test_rc_heap_destroy_from_owned_rc_destroy),
        T(test_rc_handle_release_races_heap_destroy),
        T(test_rc_own_rc_of_pending_object),
        T(test_rc_pool_destroy_with_queued_object),
        T(test_rc_handle_new_is_no_gc_point),
        T(test_rc_own_rc_into_destroyed_pool),
        T(test_rc_pool_destroy_is_no_gc_point),
        T(test_rc_stale_pairs_make_no_cycle),
        T(test_rc_pool_destroy_waits_for_owned_release),
        T(test_rc_handle_release_in_walk_callback), /* last: it _exits on the hang */
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
