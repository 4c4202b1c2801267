/* test_gc_embed_service.c — a multi-threaded "service" embedding pool, gc
 * and rc together the way docs/embedding.md, gc.md and rc.md describe, with
 * public headers only.
 *
 * One pool holds the heap's spans and the rc "connections". Worker threads
 * attach, allocate sessions (a finalizable GC type with a trace function and
 * a GC data buffer) that own a connection through gc_own_rc, keep recent
 * sessions on a rooted list, publish some of them to a shared table of
 * handles (rc objects rooting GC objects), look sessions up through other
 * threads' handles, hold gc weak references to sessions and rc weak
 * references to connections, and collect now and then. Half of them detach
 * explicitly, the others leave it to the thread-exit hook. Then unattached
 * threads release the table's handles while the main thread collects, and
 * the heap is destroyed: every finalizer has run, every connection was
 * closed after its session's finalizer, and the pool is empty.
 *
 * Invariants checked all along: a session reached through a root, a
 * handle or a weak reference has its magic, its id in its buffer, and an
 * open connection (its owned reference keeps it); a finalizer sees its
 * connection still open; an rc weak lock gives NULL or an open connection.
 * Seeded (MULCH_TEST_SEED); each worker draws from its own stream.
 *
 * Also: gc_own_rc on one thread while another releases dead owners'
 * references (a data race ThreadSanitizer found through the service). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x656d626564737663)
#define MULCH_TEST_GC 1
#include <mulch.h>

#include <stdbool.h>

#include "mulch_test.h"

#define WORKERS     4
#define TABLE_SLOTS 16
#define KEEP_LIST   24
#define WEAKS       32

#define SESSION_MAGIC UINT64_C(0x5e5510a5e5510a55)
#define CONN_MAGIC    UINT64_C(0xc0cc0cc0cc0cc0cc)
#define CONN_DEAD     UINT64_C(0xdeaddeaddeaddead)

struct conn {
    uint64_t   magic;
    uint64_t   id;
    atomic_int open;
};

struct session {
    void        *next; /* slot: the previous session of the worker's list */
    void        *data; /* slot: a buffer whose first word is id */
    struct conn *conn; /* owned through gc_own_rc: not a slot */
    uint64_t     id;
    uint64_t     magic;
    size_t       size; /* the buffer's requested size (gc_size_of may say more) */
};

static gc_heap_t *g_heap;
static pool_t *g_pool;
static pthread_mutex_t g_table_lock = PTHREAD_MUTEX_INITIALIZER;
static gc_handle_t *g_table[TABLE_SLOTS];

static atomic_ulong g_sessions, g_finalized, g_conns, g_closed, g_checks;

static void session_trace(void *obj, gc_tracer_t *tracer)
{
    struct session *s = obj;
    gc_trace_slot(tracer, &s->next);
    gc_trace_slot(tracer, &s->data);
}

static void session_finalize(void *obj)
{
    struct session *s = obj;
    if (s->magic != SESSION_MAGIC) AFAIL("finalizer: session %p has magic %" PRIx64, obj, s->magic);
    /* the owned reference is released only after the finalizer ran */
    else if (s->conn != NULL && (s->conn->magic != CONN_MAGIC || atomic_load(&s->conn->open) != 1))
        AFAIL("finalizer: session %" PRIu64 " has a closed connection", s->id);
    atomic_fetch_add(&g_finalized, 1);
}

static const gc_type_t session_type = { "svc.session", session_trace, session_finalize };
static const gc_type_t buffer_type = { "svc.buffer", NULL, NULL };

static void conn_destroy(void *obj)
{
    struct conn *c = obj;
    if (c->magic != CONN_MAGIC || atomic_exchange(&c->open, 0) != 1) AFAIL("connection %p destroyed twice", obj);
    c->magic = CONN_DEAD;
    atomic_fetch_add(&g_closed, 1);
}

/* The invariants of one session reached some way (raw pointer, no GC
 * point while it is used). */
static void check_session(const void *obj, const char *how)
{
    const struct session *s = obj;
    atomic_fetch_add(&g_checks, 1);
    if (gc_type_of(obj) != &session_type) {
        AFAIL("%s: %p is not a session", how, obj);
        return;
    }
    if (s->magic != SESSION_MAGIC) {
        AFAIL("%s: session %p has magic %" PRIx64, how, obj, s->magic);
        return;
    }
    const unsigned char *buf = s->data;
    if (buf == NULL || gc_type_of(buf) != &buffer_type) {
        AFAIL("%s: session %" PRIu64 " lost its buffer", how, s->id);
        return;
    }
    uint64_t id;
    memcpy(&id, buf, sizeof id);
    if (id != s->id || gc_size_of(buf) < s->size || buf[s->size - 1] != (unsigned char)s->id)
        AFAIL("%s: session %" PRIu64 "'s buffer holds %" PRIu64, how, s->id, id);
    if (s->conn == NULL || s->conn->magic != CONN_MAGIC || atomic_load(&s->conn->open) != 1
        || s->conn->id != s->id)
        AFAIL("%s: session %" PRIu64 "'s connection is not open", how, s->id);
}

static void check_list(const void *head, const char *how)
{
    for (const struct session *s = head; s != NULL; s = s->next) check_session(s, how);
}

struct worker {
    int         index;
    rng_t       rng;
    unsigned    requests;
    rc_weak_t  *weaks[WEAKS]; /* to connections; freed by main after the heap */
    unsigned    nweaks;
};

/* One request: a new session owning a new connection, on the list. */
static void new_session(gc_thread_t *t, struct worker *w, void **head)
{
    void *s = gc_alloc(t, &session_type, sizeof(struct session));
    if (s == NULL) {
        AFAIL("worker %d: gc_alloc of a session failed", w->index);
        return;
    }
    gc_push_root(t, &s);
    uint64_t id = atomic_fetch_add(&g_sessions, 1) + 1;
    ((struct session *)s)->id = id;
    ((struct session *)s)->magic = SESSION_MAGIC;
    /* sizes across the inline classes, the slow path, and now and then a
     * large object */
    size_t size = 16 + (size_t)rng_below(&w->rng, 600);
    if (rng_below(&w->rng, 200) == 0) size = 300 * KiB;
    unsigned char *buf = gc_alloc(t, &buffer_type, size); /* s is rooted */
    if (buf == NULL) {
        AFAIL("worker %d: gc_alloc of %zu bytes failed", w->index, size);
        gc_pop_roots(t, 1);
        return;
    }
    memset(buf, (unsigned char)id, size);
    memcpy(buf, &id, sizeof id);
    ((struct session *)s)->size = size;
    gc_write(t, s, &((struct session *)s)->data, buf);

    struct conn *c = rc_alloc_in(g_pool, sizeof *c, conn_destroy);
    if (c == NULL) {
        AFAIL("worker %d: rc_alloc_in failed", w->index);
        gc_pop_roots(t, 1);
        return;
    }
    atomic_fetch_add(&g_conns, 1);
    c->magic = CONN_MAGIC;
    c->id = id;
    atomic_store(&c->open, 1);
    if (gc_own_rc(t, s, c) != 0) AFAIL("worker %d: gc_own_rc failed", w->index); /* a GC point: s rooted */
    ((struct session *)s)->conn = c;                                               /* s read after it */
    if (w->nweaks < WEAKS && rng_below(&w->rng, 8) == 0) {
        w->weaks[w->nweaks] = rc_weak_new(c);
        if (w->weaks[w->nweaks] == NULL) AFAIL("worker %d: rc_weak_new failed", w->index);
        else w->nweaks++;
    }
    rc_release(c); /* the session's reference is the only one now */

    gc_write(t, s, &((struct session *)s)->next, *head);
    *head = s;
    gc_pop_roots(t, 1);

    /* keep the list short: cut it after KEEP_LIST sessions */
    struct session *p = *head;
    for (int n = 1; p != NULL && n < KEEP_LIST; n++) p = p->next;
    if (p != NULL && p->next != NULL) gc_write(t, p, &p->next, NULL);
}

/* Swaps `h` into a table slot; the caller releases what comes out. The
 * lock is taken inside a blocking region (docs/gc.md: every wait for
 * another mutator). */
static gc_handle_t *table_swap(gc_thread_t *t, unsigned slot, gc_handle_t *h)
{
    if (t) gc_enter_blocking(t);
    pthread_mutex_lock(&g_table_lock);
    gc_handle_t *old = g_table[slot];
    g_table[slot] = h;
    pthread_mutex_unlock(&g_table_lock);
    if (t) gc_leave_blocking(t);
    return old;
}

static gc_handle_t *table_get(gc_thread_t *t, unsigned slot)
{
    gc_enter_blocking(t);
    pthread_mutex_lock(&g_table_lock);
    gc_handle_t *h = g_table[slot];
    if (h) rc_retain(h); /* ours now, whatever the table does next */
    pthread_mutex_unlock(&g_table_lock);
    gc_leave_blocking(t);
    return h;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    if (t == NULL) {
        AFAIL("worker %d: gc_thread_attach failed", w->index);
        return NULL;
    }
    void *head = NULL, *weak = NULL;
    gc_push_root(t, &head);
    gc_push_root(t, &weak);
    for (unsigned i = 0; i < w->requests; i++) {
        new_session(t, w, &head);
        unsigned op = (unsigned)rng_below(&w->rng, 100);
        if (op < 10) { /* publish the newest session */
            gc_handle_t *h = gc_handle_new(g_heap, head);
            if (h == NULL) AFAIL("worker %d: gc_handle_new failed", w->index);
            gc_handle_t *old = table_swap(t, (unsigned)rng_below(&w->rng, TABLE_SLOTS), h);
            if (old) rc_release(old);
        } else if (op < 35) { /* serve a request on a published session */
            gc_handle_t *h = table_get(t, (unsigned)rng_below(&w->rng, TABLE_SLOTS));
            if (h) {
                /* (only the session: its owner keeps cutting its list) */
                check_session(gc_handle_get(h), "handle");
                rc_release(h);
            }
        } else if (op < 38) {
            gc_collect(t);
        } else if (op < 45) { /* a weak reference to the newest session */
            void *nw = gc_weak_new(t, head);
            if (nw == NULL) AFAIL("worker %d: gc_weak_new failed", w->index);
            else weak = nw;
        } else if (op < 55 && w->nweaks > 0) {
            struct conn *c = rc_weak_lock(w->weaks[rng_below(&w->rng, w->nweaks)]);
            if (c) {
                if (c->magic != CONN_MAGIC || atomic_load(&c->open) != 1) AFAIL("rc_weak_lock: a closed connection");
                rc_release(c);
            }
        }
        if (weak) {
            void *target = gc_weak_get(weak);
            if (target) check_session(target, "gc weak");
        }
        check_list(head, "root");
    }
    gc_pop_roots(t, 2); /* (the exit hook would drop them too) */
    if (w->index % 2 == 0) gc_thread_detach(t);
    /* odd workers: the thread-exit hook detaches */
    return NULL;
}

/* An unattached monitor: statistics, heap walks, verification and the
 * bridge-cycle report while the workers run (each stops the world). */
static atomic_int g_monitor_stop;

static void walk_session(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)size;
    if (type == &session_type) {
        (*(unsigned long *)ctx)++;
        if (((struct session *)obj)->magic != SESSION_MAGIC && ((struct session *)obj)->magic != 0)
            AFAIL("walk: session %p has magic %" PRIx64, obj, ((struct session *)obj)->magic);
    }
}

static void *monitor_main(void *arg)
{
    (void)arg;
    FILE *devnull = fopen("/dev/null", "w");
    unsigned rounds = 0;
    while (!atomic_load(&g_monitor_stop) || rounds < 2) {
        gc_stats_t st;
        gc_get_stats(g_heap, &st);
        unsigned long sessions = 0;
        gc_heap_walk(g_heap, walk_session, &sessions);
        if (gc_verify(g_heap) != 0) AFAIL("gc_verify found problems");
        if (devnull && gc_report_bridge_cycles(g_heap, devnull) != 0) AFAIL("a bridge cycle in the service");
        rounds++;
        struct timespec ts = { 0, 2 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (devnull) fclose(devnull);
    return NULL;
}

/* Unattached threads release the table's handles (rc.md: from any thread,
 * attached or not) while the main thread collects. */
struct releaser {
    gc_handle_t *handles[TABLE_SLOTS];
    unsigned     n;
};

static void *releaser_main(void *arg)
{
    struct releaser *r = arg;
    for (unsigned i = 0; i < r->n; i++) rc_release(r->handles[i]);
    return NULL;
}

static void test_service(void **state)
{
    (void)state;
    TEST_START();
    atomic_store(&g_sessions, 0);
    atomic_store(&g_finalized, 0);
    atomic_store(&g_conns, 0);
    atomic_store(&g_closed, 0);
    atomic_store(&g_checks, 0);
    unsigned long r0 = rec_count();

    pool_options_t popts = { .block_size = 32 * KiB };
    g_pool = pool_create(&popts);
    EXPECT_NONNULL(g_pool);
    gc_options_t gopts = { .initial_heap = 256 * KiB, .pool = g_pool, .markers = 2 };
    g_heap = gc_heap_create(&gopts);
    EXPECT_NONNULL(g_heap);
    gc_thread_t *main_t = gc_thread_attach(g_heap);
    EXPECT_NONNULL(main_t);

    static struct worker workers[WORKERS];
    pthread_t threads[WORKERS];
    unsigned requests = (unsigned)scaled(3000, 600);
    for (int i = 0; i < WORKERS; i++) {
        workers[i] = (struct worker){ .index = i, .rng = test_rng("embed_service", (uint64_t)i), .requests = requests };
        if (pthread_create(&threads[i], NULL, worker_main, &workers[i]) != 0) T_FAIL("pthread_create failed");
    }
    atomic_store(&g_monitor_stop, 0);
    pthread_t monitor;
    if (pthread_create(&monitor, NULL, monitor_main, NULL) != 0) T_FAIL("pthread_create failed");
    /* the main thread collects too, then waits in a blocking region */
    for (int i = 0; i < 4; i++) gc_collect(main_t);
    gc_enter_blocking(main_t);
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
    atomic_store(&g_monitor_stop, 1);
    pthread_join(monitor, NULL);
    gc_leave_blocking(main_t);
    EXPECT_NO_ASYNC_FAILURES();

    /* the published sessions are still alive and intact */
    static struct releaser rel[2];
    memset(rel, 0, sizeof rel);
    unsigned published = 0;
    gc_collect(main_t);
    for (unsigned i = 0; i < TABLE_SLOTS; i++) {
        gc_handle_t *h = table_swap(main_t, i, NULL);
        if (h == NULL) continue;
        check_list(gc_handle_get(h), "handle after the workers");
        rel[published % 2].handles[rel[published % 2].n++] = h;
        published++;
    }
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_GE(published, 1);

    pthread_t releasers[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&releasers[i], NULL, releaser_main, &rel[i]) != 0) T_FAIL("pthread_create failed");
    for (int i = 0; i < 3; i++) gc_collect(main_t);
    gc_enter_blocking(main_t);
    for (int i = 0; i < 2; i++) pthread_join(releasers[i], NULL);
    gc_leave_blocking(main_t);
    gc_collect(main_t);
    gc_collect(main_t); /* finalized sessions: their connections go now */

    /* nothing is reachable any more: every session was finalized and its
     * connection closed by the collector */
    unsigned long sessions = atomic_load(&g_sessions);
    EXPECT_EQ(sessions, (unsigned long)WORKERS * requests);
    EXPECT_EQ(atomic_load(&g_finalized), sessions);
    EXPECT_EQ(atomic_load(&g_closed), atomic_load(&g_conns));
    gc_stats_t st = stats_of(g_heap);
    EXPECT_EQ(st.objects_finalized, sessions);
    EXPECT_VERIFY(g_heap);

    gc_thread_detach(main_t);
    gc_heap_destroy(g_heap);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(atomic_load(&g_finalized), sessions);
    EXPECT_EQ(atomic_load(&g_closed), sessions);
    for (int i = 0; i < WORKERS; i++) {
        for (unsigned k = 0; k < workers[i].nweaks; k++) {
            void *c = rc_weak_lock(workers[i].weaks[k]);
            if (c) T_FAIL("rc_weak_lock of a closed connection gave %p", c);
            rc_weak_free(workers[i].weaks[k]);
        }
    }
    pool_stats_t ps;
    pool_get_stats(g_pool, &ps);
    EXPECT_EQ(ps.live_allocations, 0);
    pool_destroy(g_pool);
    print_message("sessions %lu, published %u, checks %lu\n", sessions, published, atomic_load(&g_checks));
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* gc_own_rc on one thread while another releases owned references           */

static atomic_int g_stop;
static atomic_ulong g_slow_destroyed;

/* A destroy callback that takes its time: the releasing thread is then
 * between two releases (the heap's lock not held) for a while. */
static void slow_destroy(void *obj)
{
    (void)obj;
    struct timespec ts = { 0, 20 * 1000 };
    nanosleep(&ts, NULL);
    atomic_fetch_add(&g_slow_destroyed, 1);
}

static void *own_loop(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    if (t == NULL) {
        AFAIL("gc_thread_attach failed");
        return NULL;
    }
    void *obj = NULL;
    gc_push_root(t, &obj);
    while (!atomic_load(&g_stop)) {
        obj = gc_alloc(t, &buffer_type, 16);
        void *r = rc_alloc(8, NULL);
        if (obj == NULL || r == NULL) {
            AFAIL("allocation failed");
            break;
        }
        if (gc_own_rc(t, obj, r) != 0) AFAIL("gc_own_rc failed");
        rc_release(r);
    }
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

/* The thread releasing the references of dead owners read the heap's
 * release function after it had let go of the heap's lock, while
 * gc_own_rc on another thread stored it under the lock: a data race
 * (ThreadSanitizer: gc_owned_add against gc_bridge_release_pending) in
 * every program that owns rc objects from several threads. */
static void test_own_rc_while_releasing(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_stop, 0);
    atomic_store(&g_slow_destroyed, 0);
    g_heap = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(g_heap);
    EXPECT_NONNULL(t);
    pthread_t th;
    if (pthread_create(&th, NULL, own_loop, NULL) != 0) T_FAIL("pthread_create failed");
    unsigned rounds = (unsigned)scaled(100, 40), made = 0;
    for (unsigned i = 0; i < rounds; i++) {
        for (int k = 0; k < 10; k++) { /* dead owners of this thread's rc objects */
            void *obj = gc_alloc(t, &buffer_type, 16);
            void *r = rc_alloc(8, slow_destroy);
            if (obj == NULL || r == NULL) T_FAIL("allocation failed");
            if (gc_own_rc(t, obj, r) != 0) T_FAIL("gc_own_rc failed");
            rc_release(r);
            made++;
        }
        gc_collect(t); /* releases them, one slow destroy after another */
    }
    atomic_store(&g_stop, 1);
    gc_enter_blocking(t);
    pthread_join(th, NULL);
    gc_leave_blocking(t);
    EXPECT_NO_ASYNC_FAILURES();
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_slow_destroyed), made);
    gc_thread_detach(t);
    gc_heap_destroy(g_heap);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* Shutdown: handles released by unattached threads while the heap goes      */

#define SHUTDOWN_HANDLES 400

static void *release_half(void *arg)
{
    gc_handle_t **handles = arg;
    /* (no gc_handle_get here: it is for attached threads, or after the
     * destroy) */
    for (unsigned i = 0; i < SHUTDOWN_HANDLES / 2; i++) rc_release(handles[i]);
    return NULL;
}

/* rc.md: a handle's last release may race gc_heap_destroy on another
 * thread; a handle that outlives its heap answers NULL. Owned references
 * go at the destroy. */
static void test_shutdown_races_handle_releases(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_closed, 0);
    atomic_store(&g_conns, 0);
    g_heap = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(g_heap);
    EXPECT_NONNULL(t);
    static gc_handle_t *handles[SHUTDOWN_HANDLES];
    for (unsigned i = 0; i < SHUTDOWN_HANDLES; i++) {
        void *obj = gc_alloc(t, &buffer_type, 24);
        EXPECT_NONNULL(obj);
        handles[i] = gc_handle_new(g_heap, obj); /* not a GC point */
        EXPECT_NONNULL(handles[i]);
        struct conn *c = rc_alloc(sizeof *c, conn_destroy);
        EXPECT_NONNULL(c);
        c->magic = CONN_MAGIC;
        atomic_store(&c->open, 1);
        atomic_fetch_add(&g_conns, 1);
        EXPECT_EQ(gc_own_rc(t, gc_handle_get(handles[i]), c), 0);
        rc_release(c);
    }
    gc_thread_detach(t);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, release_half, &handles[i * (SHUTDOWN_HANDLES / 2)]) != 0)
            T_FAIL("pthread_create failed");
    gc_heap_destroy(g_heap); /* from a thread no longer attached */
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(atomic_load(&g_closed), SHUTDOWN_HANDLES);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_embed_service");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_service, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_own_rc_while_releasing, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_shutdown_races_handle_releases, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
