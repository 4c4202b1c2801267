/* test_gc_fork.c — fork() while other threads use a GC heap (gc/fork.c).
 *
 * Each child uses the heap it inherited: allocates, collects several
 * times, checks its own objects intact and gc_verify clean, destroys the
 * heap (possible only if the other threads' records are gone), exits 0.
 * A hang — a stop waiting for a thread that is not there, a lock inherited
 * held — becomes a SIGALRM death (alarm), reported with the fork's number;
 * other failures are exit statuses (CHILD_*). Cases:
 *   1. a worker thread allocates and collects; the main thread, attached
 *      too and holding roots, forks;
 *   2. two workers collect in a loop; the main thread, not attached, forks
 *      a seeded number of times at seeded intervals;
 *   3. the parent's heap has run its helper marker threads (markers = 2);
 *      the child's collections start helpers of their own. Skipped under
 *      ThreadSanitizer, whose runtime does not support a child of a
 *      multithreaded process that starts threads;
 *   5. a worker allocates large objects (cleared outside the heap's lock)
 *      while the unattached main thread forks: the child's heap walk and
 *      gc_verify, before any collection, see only whole objects (the
 *      cell's alloc bit was set before its clear and header: a fork
 *      inside that window showed the stale header of reused memory as a
 *      type, in about one child in ten).
 * Seeded (MULCH_TEST_SEED, printed).
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6763666f726b3031)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mulch_test.h"
#include "gc_internal.h"

/* A list node: one slot, an id and a check word derived from it. */
typedef struct node {
    void    *next;
    uint64_t id, check;
} node_t;

static void node_trace(void *obj, gc_tracer_t *tracer) { gc_trace_slot(tracer, &((node_t *)obj)->next); }

static atomic_ulong g_finalized;
static void node_finalize(void *obj) {
    (void)obj;
    atomic_fetch_add(&g_finalized, 1);
}

static const gc_type_t T_NODE = { "fork.node", node_trace, NULL };
static const gc_type_t T_NODE_FIN = { "fork.node_fin", node_trace, node_finalize };

static uint64_t node_check(uint64_t id) { return mix64(id ^ UINT64_C(0x9e3779b97f4a7c15)); }

/* Prepends a node to the list in the rooted slot *head (a GC point). */
static node_t *push_node(gc_thread_t *t, void **head, const gc_type_t *type, uint64_t id) {
    node_t *n = gc_alloc(t, type, sizeof(node_t));
    if (n == NULL) return NULL;
    n->id = id;
    n->check = node_check(id);
    gc_write(t, n, &n->next, *head);
    *head = n;
    return n;
}

/* Nodes of the list at head, or -1 when one is damaged or the ids are not
 * count-1 down to 0. */
static long list_check(void *head, uint64_t count) {
    long seen = 0;
    for (node_t *n = head; n; n = n->next) {
        if (n->check != node_check(n->id) || n->id != count - 1 - (uint64_t)seen) return -1;
        seen++;
    }
    return seen;
}

/* Exit statuses of a child that found a problem. */
enum { CHILD_OK = 0, CHILD_ATTACH = 2, CHILD_ALLOC = 3, CHILD_LIST = 4, CHILD_VERIFY = 5, CHILD_STATE = 6 };

/* A failure is recorded (AFAIL) and the test goes on, so that its workers
 * are stopped and joined: EXPECT_NO_ASYNC_FAILURES reports it at the end. */
static void expect_child(pid_t pid, int fork_number) {
    if (pid < 0) {
        AFAIL("fork %d failed", fork_number);
        return;
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        AFAIL("fork %d: waitpid failed", fork_number);
        return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_OK)
        AFAIL("fork %d: the child %s %d (SIGALRM %d: a hang)", fork_number,
              WIFSIGNALED(status) ? "died of signal" : "exited with",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), SIGALRM);
}

/* The child's work on heap h, with t its thread (attached already) and
 * *own a rooted list of `had` nodes of the parent's (or NULL, 0): a new
 * list of n nodes, collections in between, both lists intact, verify
 * clean, then the heap destroyed. Exits. */
static _Noreturn void child_work(gc_heap_t *h, gc_thread_t *t, void **own, uint64_t had, uint64_t n) {
    void *head = NULL;
    gc_push_root(t, &head);
    for (uint64_t i = 0; i < n; i++) {
        if (push_node(t, &head, (i % 7) ? &T_NODE : &T_NODE_FIN, i) == NULL) _exit(CHILD_ALLOC);
        /* garbage too, so that collections free something */
        if (gc_alloc(t, &T_NODE, 48 + (size_t)(i % 200)) == NULL) _exit(CHILD_ALLOC);
        if (i % (n / 4 + 1) == 0) gc_collect(t);
    }
    for (int round = 0; round < 3; round++) {
        gc_collect(t);
        if (list_check(head, n) != (long)n) _exit(CHILD_LIST);
        if (own && list_check(*own, had) != (long)had) _exit(CHILD_LIST);
        if (gc_verify(h) != 0) _exit(CHILD_VERIFY);
    }
    gc_stats_t stats = stats_of(h);
    if (stats.collections == 0) _exit(CHILD_STATE);
    gc_pop_roots(t, 1);
    if (own) gc_pop_roots(t, 1);
    /* the other threads' records are gone: gc_heap_destroy may go ahead */
    if (h->threads != t || t->next != NULL || h->running != 1) _exit(CHILD_STATE);
    gc_heap_destroy(h);
    _exit(CHILD_OK);
}

/* ---- 1. fork by an attached thread while a worker allocates and collects */

static gc_heap_t *g_heap;
static atomic_int g_stop;
/* Workers that are running (attached). A fork must not catch a thread in
 * the thread library's start-up code: under AddressSanitizer (GCC 12's
 * runtime, no fork handler) that code holds allocator locks, and a child
 * that starts a thread of its own (a marker helper) then waits for them
 * for ever. Outside the library's reach: the test waits for its workers. */
static atomic_int g_started;

static void wait_started(int n) {
    while (atomic_load(&g_started) < n) usleep(100);
}

/* A worker's start: attached to g_heap and counted in g_started (a failed
 * attach too, so that wait_started ends); NULL, recorded, when it fails. */
static gc_thread_t *worker_attach(void) {
    gc_thread_t *t = gc_thread_attach(g_heap);
    atomic_fetch_add(&g_started, 1);
    if (t == NULL) AFAIL("gc_thread_attach failed in a worker");
    return t;
}

static void *allocating_worker(void *arg) {
    rng_t rng = { g_seed + (uint64_t)(uintptr_t)arg };
    gc_thread_t *t = worker_attach();
    if (t == NULL) return NULL;
    void *head = NULL;
    gc_push_root(t, &head);
    uint64_t id = 0;
    while (!atomic_load(&g_stop)) {
        if (push_node(t, &head, (id % 5) ? &T_NODE : &T_NODE_FIN, id) == NULL) {
            AFAIL("gc_alloc failed in a worker");
            break;
        }
        id++;
        if (id % 2000 == 0) head = NULL; /* drop the list: garbage */
        if (rng_below(&rng, 500) == 0) gc_collect(t);
        if (rng_below(&rng, 3000) == 0) {
            gc_enter_blocking(t); /* sometimes blocking at the fork */
            usleep(200);
            gc_leave_blocking(t);
        }
    }
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

/* MULCH_GC_MARKERS overrides the program's markers (docs/tuning.md): the
 * tests that need helper markers are skipped when it asks for one. */
static bool markers_env_serial(void) {
    const char *m = getenv("MULCH_GC_MARKERS");
    return m && *m && strtol(m, NULL, 10) == 1;
}

static gc_heap_t *fork_heap_new(int markers) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_heap = 256 * KiB; /* collections often */
    o.markers = markers;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    return h;
}

/* The parent of tests 1 and 3: a fresh heap with `markers`, this thread
 * attached with a rooted list of `had` nodes, and (parent_start_worker)
 * an allocating worker. */
typedef struct parent {
    gc_thread_t *t;
    void        *mine;   /* a root: the list */
    uint64_t     had;
    pthread_t    worker;
} parent_t;

static void parent_attach(parent_t *p, int markers, uint64_t had) {
    g_heap = fork_heap_new(markers);
    atomic_store(&g_stop, 0);
    atomic_store(&g_started, 0);
    p->t = gc_thread_attach(g_heap);
    EXPECT_NONNULL(p->t);
    p->mine = NULL;
    p->had = had;
    gc_push_root(p->t, &p->mine);
    for (uint64_t i = 0; i < had; i++) EXPECT_NONNULL(push_node(p->t, &p->mine, &T_NODE, i));
}

static void parent_start_worker(parent_t *p, uintptr_t seed) {
    EXPECT_EQ(pthread_create(&p->worker, NULL, allocating_worker, (void *)seed), 0);
    wait_started(1);
}

/* Fork number f after a pause in a blocking region (the worker runs,
 * collects, maybe stops the world meanwhile); the child runs child(p),
 * which exits; the parent waits for it inside a blocking region. */
static void parent_fork(parent_t *p, int f, useconds_t pause, void (*child)(parent_t *)) {
    gc_enter_blocking(p->t);
    usleep(pause);
    gc_leave_blocking(p->t);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        child(p);
        _exit(CHILD_STATE); /* child() exits */
    }
    gc_enter_blocking(p->t);
    expect_child(pid, f);
    gc_leave_blocking(p->t);
}

/* Stops the worker; the parent's list survived every fork; the heap goes. */
static void parent_finish(parent_t *p) {
    atomic_store(&g_stop, 1);
    gc_enter_blocking(p->t); /* the worker may be collecting until it sees g_stop */
    pthread_join(p->worker, NULL);
    gc_leave_blocking(p->t);
    gc_collect(p->t);
    EXPECT_EQ(list_check(p->mine, p->had), (long)p->had);
    EXPECT_EQ(gc_verify(g_heap), 0);
    EXPECT_EQ(gc_verify_untraced(g_heap), 0);
    gc_pop_roots(p->t, 1);
    gc_thread_detach(p->t);
    gc_heap_destroy(g_heap);
    EXPECT_NO_ASYNC_FAILURES();
}

static _Noreturn void attached_child(parent_t *p) {
    child_work(g_heap, p->t, &p->mine, p->had, scaled(20000, 5000));
}

static void test_gc_fork_attached_parent(void **state) {
    (void)state;
    TEST_START();
    atomic_store(&g_failures, 0); /* (this test's own) */
    parent_t p;
    parent_attach(&p, 1, 500);
    parent_start_worker(&p, 1);
    int forks = (int)scaled(12, 4);
    for (int f = 0; f < forks; f++) {
        parent_fork(&p, f, 3000, attached_child);
        /* the parent goes on as before */
        if (list_check(p.mine, p.had) != (long)p.had) AFAIL("fork %d: the parent's list is damaged", f);
    }
    parent_finish(&p);
}

/* ---- 2. fork by an unattached thread while a worker collects in a loop */

static void *collecting_worker(void *arg) {
    (void)arg;
    gc_thread_t *t = worker_attach();
    if (t == NULL) return NULL;
    void *head = NULL;
    gc_push_root(t, &head);
    uint64_t id = 0;
    while (!atomic_load(&g_stop)) {
        for (int i = 0; i < 50; i++, id++)
            if (push_node(t, &head, (id % 3) ? &T_NODE : &T_NODE_FIN, id) == NULL) AFAIL("gc_alloc failed");
        if (id % 1000 < 50) head = NULL;
        gc_collect(t);
    }
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

static void test_gc_fork_while_collecting(void **state) {
    (void)state;
    TEST_START();
    atomic_store(&g_failures, 0); /* (this test's own) */
    rng_t rng = test_rng_named("test_gc_fork_while_collecting");
    g_heap = fork_heap_new(1);
    atomic_store(&g_stop, 0);
    atomic_store(&g_started, 0);
    pthread_t workers[2];
    for (uintptr_t i = 0; i < 2; i++) EXPECT_EQ(pthread_create(&workers[i], NULL, collecting_worker, (void *)i), 0);
    wait_started(2);
    int forks = (int)scaled(30, 8);
    for (int f = 0; f < forks; f++) {
        usleep((useconds_t)(500 + rng_below(&rng, 3000)));
        uint64_t n = 2000 + rng_below(&rng, 4000);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30);
            gc_thread_t *t = gc_thread_attach(g_heap);
            if (t == NULL) _exit(CHILD_ATTACH);
            child_work(g_heap, t, NULL, 0, n);
        }
        expect_child(pid, f);
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(workers[i], NULL);
    EXPECT_EQ(gc_verify(g_heap), 0);
    EXPECT_EQ(gc_verify_untraced(g_heap), 0);
    gc_heap_destroy(g_heap);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ---- 3. parallel marking in the child after the parent's helpers ran */

/* The helpers are gone with the parent's threads; the child's first
 * collection starts its own. */
static _Noreturn void helpers_child(parent_t *p) {
    if (g_heap->mark_shared.helper_count != 0 || g_heap->threads != p->t || p->t->next != NULL) _exit(CHILD_STATE);
    uint64_t generation = g_heap->mark_shared.generation;
    gc_collect(p->t);
    if (g_heap->mark_shared.helper_count == 0 || g_heap->mark_shared.generation == generation) _exit(CHILD_STATE);
    attached_child(p);
}

static void test_gc_fork_parallel_marking(void **state) {
    (void)state;
#if defined(__SANITIZE_THREAD__)
    /* The child starts marker threads: ThreadSanitizer ends such a child
     * of a multithreaded process (die_after_fork), and with that turned
     * off it dies of a new thread given a parent's thread id ("dup thread
     * with used id"). Its runtime does not support this case. */
    skip();
#endif
    if (markers_env_serial()) skip();
    TEST_START();
    atomic_store(&g_failures, 0); /* (this test's own) */
    parent_t p;
    parent_attach(&p, 2, 20000); /* explicit markers > 1: helpers at any heap size */
    gc_collect(p.t);
    if (g_heap->mark_shared.helper_count == 0) T_FAIL("the parent's collection started no helper marker");
    parent_start_worker(&p, 3);
    int forks = (int)scaled(6, 3);
    for (int f = 0; f < forks; f++) parent_fork(&p, f, 5000, helpers_child);
    parent_finish(&p);
}

/* ---- 4. fork as soon as a collection started the helpers
 * The helpers a collection creates may still be in the thread library's
 * start-up code when it returns; a fork then must wait for them (under
 * AddressSanitizer that code holds allocator locks, and the child, whose
 * collection starts helpers of its own, hung for ever on them). Each round
 * a new heap, so new helpers, and a fork at once. */
static void test_gc_fork_just_after_helpers_start(void **state) {
    (void)state;
#if defined(__SANITIZE_THREAD__)
    skip(); /* (the child starts threads: see test_gc_fork_parallel_marking) */
#endif
    if (markers_env_serial()) skip();
    TEST_START();
    atomic_store(&g_failures, 0); /* (this test's own) */
    int rounds = (int)scaled(20, 10);
    for (int r = 0; r < rounds; r++) {
        gc_heap_t *h = fork_heap_new(4);
        gc_thread_t *t = gc_thread_attach(h);
        EXPECT_NONNULL(t);
        void *head = NULL;
        gc_push_root(t, &head);
        for (uint64_t i = 0; i < 100; i++) EXPECT_NONNULL(push_node(t, &head, &T_NODE, i));
        gc_collect(t); /* starts the helpers */
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30);
            gc_collect(t); /* starts the child's */
            if (h->mark_shared.helper_count == 0 || list_check(head, 100) != 100) _exit(CHILD_STATE);
            gc_pop_roots(t, 1);
            gc_heap_destroy(h);
            _exit(CHILD_OK);
        }
        expect_child(pid, r);
        gc_pop_roots(t, 1);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_ASYNC_FAILURES();
}

/* ---- 5. fork while a worker allocates large objects */

typedef struct large_array {
    size_t n;
    void  *slots[];
} large_array_t;

static void large_array_trace(void *obj, gc_tracer_t *tracer) {
    large_array_t *a = obj;
    gc_trace_range(tracer, a->slots, a->n);
}
static const gc_type_t T_LARGE_ARRAY = { "fork.large_array", large_array_trace, NULL };
static atomic_ulong g_large_made;

static void *large_allocating_worker(void *arg) {
    gc_thread_t *t = worker_attach();
    if (t == NULL) return NULL;
    void *leaf = NULL;
    gc_push_root(t, &leaf);
    leaf = push_node(t, &leaf, &T_NODE, 1);
    (void)arg;
    rng_t rng = test_rng_named("test_gc_fork_during_large_allocations");
    while (!atomic_load(&g_stop)) {
        size_t n = 40000 + rng_below(&rng, 100000); /* 320 KiB - 1.1 MiB */
        large_array_t *a = gc_alloc(t, &T_LARGE_ARRAY, sizeof *a + n * sizeof(void *));
        if (a == NULL) AFAIL("gc_alloc of a large object failed");
        a->n = n;
        /* (young: no barrier needed) every slot, so that reused memory
         * holds pointers where a new cell's header will be */
        for (size_t i = 0; i < n; i++) a->slots[i] = leaf;
        atomic_fetch_add(&g_large_made, 1);
    }
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

static void count_foreign_types(void *obj, const gc_type_t *type, size_t size, void *ctx) {
    (void)obj;
    (void)size;
    if (type != &T_NODE && type != &T_LARGE_ARRAY) ++*(size_t *)ctx;
}

static void test_gc_fork_during_large_allocations(void **state) {
    (void)state;
    TEST_START();
    atomic_store(&g_failures, 0); /* (this test's own) */
    g_heap = gc_heap_create(NULL);
    EXPECT_NONNULL(g_heap);
    atomic_store(&g_stop, 0);
    atomic_store(&g_started, 0);
    atomic_store(&g_large_made, 0);
    pthread_t worker;
    EXPECT_EQ(pthread_create(&worker, NULL, large_allocating_worker, NULL), 0);
    wait_started(1);
    while (atomic_load(&g_large_made) < 20) usleep(1000);
    int forks = (int)scaled(80, 20);
    for (int f = 0; f < forks; f++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30);
            size_t foreign = 0;
            gc_heap_walk(g_heap, count_foreign_types, &foreign);
            if (foreign != 0) _exit(CHILD_STATE);
            if (gc_verify(g_heap) != 0) _exit(CHILD_VERIFY);
            _exit(CHILD_OK);
        }
        expect_child(pid, f);
        usleep(2000);
    }
    atomic_store(&g_stop, 1);
    pthread_join(worker, NULL);
    EXPECT_EQ(gc_verify(g_heap), 0);
    gc_heap_destroy(g_heap);
    EXPECT_NO_ASYNC_FAILURES();
}

int main(void) {
    mt_init("test_gc_fork");
    mt_env_ignore_markers_under_tsan();
    /* (its children's alarm tells a hang from a slow run: a collection at
     * every span request made them slow enough to be taken for hangs) */
    mt_env_ignore("MULCH_GC_STRESS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gc_fork_attached_parent),
        cmocka_unit_test(test_gc_fork_while_collecting),
        cmocka_unit_test(test_gc_fork_parallel_marking),
        cmocka_unit_test(test_gc_fork_just_after_helpers_start),
        cmocka_unit_test(test_gc_fork_during_large_allocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
