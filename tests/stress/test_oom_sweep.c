/* OOM fault injection over every layer: a workload that uses the whole API
 * (pool alloc/calloc/realloc/aligned/huge/free/trim/stats/leak report; gc
 * heaps, small and large objects, roots of every kind, collections,
 * finalizers, weak references, pins, handles, rc ownership; rc objects,
 * retain/release, weak references) runs once for each n = 1, 2, ... with the
 * nth OS mapping failing (os_fail_after), until a run completes without
 * reaching its nth mapping. Each run is a forked child, so every n starts
 * from the same process state and a crash is caught as a failure of that n.
 *
 * Each failure must surface as NULL / an error return (or, for the gc
 * root calls that return nothing, an "out of memory" report), and the run
 * must go on: contents are verified after every step, gc_verify finds no
 * problem, every finalizer and rc destructor runs exactly once by the end,
 * and once everything is destroyed the bytes mapped through the OS layer
 * are what they were before the run (no leak). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <mulch.h>

#include "pool_internal.h"

/* ---- child-side checks ------------------------------------------------------ */

static uint64_t current_n;
static int problems;
static int oom_reports;

#define CHECK(cond)                                                                             \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "oom sweep n=%llu: %s:%d: check failed: %s\n",                      \
                    (unsigned long long)current_n, __FILE__, __LINE__, #cond);                  \
            problems++;                                                                         \
        }                                                                                       \
    } while (0)

/* Out of memory is allowed to be reported (the gc root calls return
 * nothing); anything else reported is misuse the workload never commits,
 * so it means corrupted state. */
static void on_error(const char *what, const void *ptr, void *ctx) {
    (void)ctx;
    if (strstr(what, "out of memory")) {
        oom_reports++;
        return;
    }
    fprintf(stderr, "oom sweep n=%llu: unexpected report: %s (%p)\n", (unsigned long long)current_n, what, ptr);
    problems++;
}

/* Patterns cover the first 64 KiB: enough to see a block move or get
 * overwritten, and cheap for the multi-MiB blocks. */
#define PATTERN_MAX ((size_t)64 << 10)

static void fill(void *p, size_t n, unsigned seed) {
    unsigned char *b = p;
    if (n > PATTERN_MAX) n = PATTERN_MAX;
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(seed * 31u + i * 7u);
}

static int filled(const void *p, size_t n, unsigned seed) {
    const unsigned char *b = p;
    if (n > PATTERN_MAX) n = PATTERN_MAX;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 31u + i * 7u)) return 0;
    return 1;
}

/* ---- pool -------------------------------------------------------------------- */

enum { POOL_SLOTS = 24 };

static void pool_workload(int track_leaks) {
    pool_options_t opts = { 0 };
    opts.track_leaks = track_leaks;
    pool_t *pool = pool_create(&opts);
    if (pool == NULL) return;

    static const size_t sizes[POOL_SLOTS] = {
        0, 16, 24, 100, 256, 1000, 4000, 8192, 20000, 65536, 100000, 131072,
        140000, 300000, 1u << 20, 2u << 20, 48, 64, 3000, 12000, 200000, 40, 7, 9000,
    };
    void *slot[POOL_SLOTS] = { 0 };
    size_t size[POOL_SLOTS] = { 0 };
    size_t live = 0;
    for (int i = 0; i < POOL_SLOTS; i++) {
        size[i] = sizes[i];
        switch (i % 4) {
        case 0: slot[i] = pool_alloc(pool, size[i]); break;
        case 1: slot[i] = pool_calloc(pool, 1, size[i]); break;
        case 2: slot[i] = pool_alloc_aligned(pool, size[i], (size_t)64 << (i % 12)); break;
        default: slot[i] = POOL_ALLOC(pool, size[i]); break;
        }
        if (slot[i] == NULL) continue;
        live++;
        if (i % 4 == 1) {
            const unsigned char *z = slot[i];
            for (size_t j = 0; j < size[i] && j < PATTERN_MAX; j++)
                if (z[j]) {
                    CHECK(!"pool_calloc memory is zero");
                    break;
                }
        }
        if (i % 4 == 2) CHECK(((uintptr_t)slot[i] & (((size_t)64 << (i % 12)) - 1)) == 0);
        fill(slot[i], size[i], (unsigned)i);
    }
    /* Resize every block: on failure the old block must be intact. */
    for (int i = 0; i < POOL_SLOTS; i++) {
        if (slot[i] == NULL) continue;
        size_t to = size[i] * 2 + 5000;
        void *q = pool_realloc(pool, slot[i], to);
        size_t keep = size[i];
        if (q == NULL) {
            CHECK(filled(slot[i], size[i], (unsigned)i));
            continue;
        }
        CHECK(filled(q, keep, (unsigned)i));
        slot[i] = q;
        size[i] = to;
        fill(q, to, (unsigned)i);
    }
    pool_stats_t st;
    pool_get_stats(pool, &st);
    CHECK(st.live_allocations == live);

    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        CHECK(pool_report_leaks(pool, devnull) == live);
        fclose(devnull);
    }
    for (int i = 0; i < POOL_SLOTS; i += 2) {
        if (slot[i] == NULL) continue;
        CHECK(pool_usable_size(pool, slot[i]) >= size[i]);
        CHECK(filled(slot[i], size[i], (unsigned)i));
        pool_free(pool, slot[i]);
        slot[i] = NULL;
        live--;
    }
    pool_trim(pool);
    /* Churn after the trim: the pool must still work. */
    for (int round = 0; round < 200; round++) {
        void *p = pool_alloc(pool, (size_t)(round % 50) * 40 + 1);
        if (p) {
            fill(p, 1, (unsigned)round);
            pool_free(pool, p);
        }
    }
    for (int i = 1; i < POOL_SLOTS; i += 2) {
        if (slot[i] == NULL) continue;
        CHECK(filled(slot[i], size[i], (unsigned)i));
        pool_free(pool, slot[i]);
        live--;
    }
    pool_get_stats(pool, &st);
    CHECK(st.live_allocations == 0 && st.bytes_in_use == 0);
    pool_trim(pool);
    pool_destroy(pool);
}

/* ---- gc ---------------------------------------------------------------------- */

typedef struct node {
    struct node *next;
    void        *payload; /* a large object, or NULL */
    uint64_t     value;
} node_t;

static int finalized;

static void node_trace(void *obj, gc_tracer_t *tracer) {
    node_t *n = obj;
    gc_trace_slot(tracer, (void **)&n->next);
    gc_trace_slot(tracer, &n->payload);
}
static void node_finalize(void *obj) {
    (void)obj;
    finalized++;
}
static const gc_type_t node_type = { "oom.node", node_trace, NULL };
static const gc_type_t final_type = { "oom.final", NULL, node_finalize };
static const gc_type_t blob_type = { "oom.blob", NULL, NULL };

static int rc_destroyed;
static void rc_destroy(void *obj) {
    (void)obj;
    rc_destroyed++;
}

static node_t *global_root;
static void *range_roots[4];

/* gc_push_root returns nothing: the depth says whether it worked. */
static int push_root(gc_thread_t *t, void **slot) {
    size_t depth = gc_root_depth(t);
    gc_push_root(t, slot);
    return gc_root_depth(t) == depth + 1;
}

static int list_ok(const node_t *n, uint64_t first, size_t count) {
    for (size_t i = 0; i < count; i++, n = n->next) {
        if (n == NULL || n->value != first + i) return 0;
        if (n->payload && !filled(n->payload, gc_size_of(n->payload) < 4096 ? gc_size_of(n->payload) : 4096,
                                  (unsigned)n->value))
            return 0;
    }
    return n == NULL;
}

static void gc_workload(int *finalizers_made, int *rc_made) {
    gc_options_t opts = { 0 };
    opts.initial_heap = (size_t)1 << 20; /* collect on its own too */
    gc_heap_t *heap = gc_heap_create(&opts);
    if (heap == NULL) return;
    /* A short attachment whose finalizable objects and weak references
     * move to the heap when it detaches (its lists are not empty then). */
    gc_thread_t *brief = gc_thread_attach(heap);
    if (brief) {
        for (int i = 0; i < 3; i++) {
            void *obj = gc_alloc(brief, &final_type, 16);
            if (obj == NULL) continue;
            (*finalizers_made)++;
            (void)gc_weak_new(brief, obj);
        }
        gc_thread_detach(brief);
    }
    gc_thread_t *t = gc_thread_attach(heap);
    if (t == NULL) {
        gc_heap_destroy(heap);
        return;
    }

    /* A rooted list; some nodes carry a large object. */
    node_t *head = NULL;
    size_t length = 0;
    int rooted = push_root(t, (void **)&head);
    for (uint64_t i = 0; rooted && i < 300; i++) {
        node_t *n = gc_alloc(t, &node_type, sizeof(node_t));
        if (n == NULL) continue;
        n->value = 1000000 - length; /* prepended: the list reads upwards from head */
        n->next = head;
        head = n;
        length++;
        if (i % 50 == 0) {
            size_t bytes = i % 100 == 0 ? (size_t)200 << 10 : 20000;
            void *blob = gc_alloc(t, &blob_type, bytes);
            if (blob) {
                fill(blob, bytes < 4096 ? bytes : 4096, (unsigned)n->value);
                gc_write(t, n, &n->payload, blob);
            }
        }
    }
    uint64_t first = length ? head->value : 0;

    /* Global roots: a slot and a range (out of memory is reported). */
    int reports_before = oom_reports;
    gc_root_add(heap, (void **)&global_root);
    int global_ok = oom_reports == reports_before;
    global_root = global_ok ? gc_alloc(t, &node_type, sizeof(node_t)) : NULL;
    if (global_root) global_root->value = 77;
    reports_before = oom_reports;
    gc_root_add_range(heap, range_roots, 4);
    int range_ok = oom_reports == reports_before;
    for (int i = 0; range_ok && i < 4; i++) {
        range_roots[i] = gc_alloc(t, &blob_type, 64);
        if (range_roots[i]) fill(range_roots[i], 64, (unsigned)i + 100);
    }

    /* Finalizable objects and weak references: half stay reachable. */
    enum { FINALS = 40 };
    void *keep[FINALS] = { 0 };
    void *weak[FINALS] = { 0 };
    size_t kept_depth = gc_root_depth(t);
    for (int i = 0; i < FINALS; i++) {
        void *obj = gc_alloc(t, &final_type, 32);
        if (obj == NULL) continue;
        (*finalizers_made)++;
        if (i % 2 == 0) {
            keep[i] = obj;
            if (!push_root(t, &keep[i])) keep[i] = NULL;
        }
        void *w = gc_weak_new(t, obj);
        if (w && push_root(t, &weak[i])) weak[i] = w;
    }
    gc_collect(t);
    CHECK(gc_verify(heap) == 0);
    for (int i = 0; i < FINALS; i++) {
        if (weak[i] == NULL) continue;
        void *target = gc_weak_get(weak[i]);
        if (keep[i]) CHECK(target == keep[i]);
        else if (i % 2 == 1) CHECK(target == NULL); /* never rooted: collected */
    }

    /* Pins, handles and rc ownership. */
    if (length) {
        int reports_before_pin = oom_reports;
        gc_pin(heap, head);
        if (oom_reports == reports_before_pin) gc_unpin(heap, head);
        gc_handle_t *handle = gc_handle_new(heap, head);
        if (handle) {
            CHECK(gc_handle_get(handle) == head);
            rc_release(handle);
        }
        void *rc_obj = rc_alloc(24, rc_destroy);
        if (rc_obj) {
            (*rc_made)++;
            if (gc_own_rc(t, head, rc_obj) != 0) CHECK(rc_count(rc_obj) == 1);
            rc_release(rc_obj); /* the heap's reference, if any, keeps it */
        }
    }

    /* Drop half the list and collect again; what is left must be intact. */
    if (length > 150) {
        node_t *cut = head;
        for (size_t i = 0; i < 149; i++) cut = cut->next;
        cut->next = NULL;
        length = 150;
    }
    gc_collect(t);
    CHECK(gc_verify(heap) == 0);
    CHECK(list_ok(head, first, length));
    if (global_root) CHECK(global_root->value == 77);
    for (int i = 0; range_ok && i < 4; i++)
        if (range_roots[i]) CHECK(filled(range_roots[i], 64, (unsigned)i + 100));

    /* Allocate through a few automatic collections. */
    for (int i = 0; i < 2000; i++) {
        void *blob = gc_alloc(t, &blob_type, (size_t)(i % 7 + 1) * 300);
        if (blob) fill(blob, 16, (unsigned)i);
    }
    CHECK(gc_verify(heap) == 0);
    CHECK(list_ok(head, first, length));

    gc_pop_roots_to(t, kept_depth);
    if (rooted) gc_pop_roots(t, 1);
    if (global_ok) gc_root_remove(heap, (void **)&global_root);
    global_root = NULL;
    for (int i = 0; i < 4; i++) range_roots[i] = NULL;
    gc_collect(t);
    CHECK(gc_verify(heap) == 0);
    gc_thread_detach(t);
    gc_heap_destroy(heap); /* runs the remaining finalizers, releases owned rc objects */
}

/* ---- rc ------------------------------------------------------------------------ */

static void rc_workload(int *rc_made) {
    pool_t *pool = pool_create(NULL);
    enum { OBJECTS = 40 };
    void *objs[OBJECTS] = { 0 };
    rc_weak_t *weaks[OBJECTS] = { 0 };
    for (int i = 0; i < OBJECTS; i++) {
        size_t size = i % 10 == 9 ? (size_t)150 << 10 : (size_t)(i * 24 + 8);
        objs[i] = i % 2 && pool ? rc_alloc_in(pool, size, rc_destroy) : rc_alloc(size, rc_destroy);
        if (objs[i] == NULL) continue;
        (*rc_made)++;
        fill(objs[i], size < 512 ? size : 512, (unsigned)i);
        weaks[i] = rc_weak_new(objs[i]);
        rc_retain(objs[i]);
        rc_release(objs[i]);
        CHECK(rc_count(objs[i]) == 1);
    }
    for (int i = 0; i < OBJECTS; i += 2) {
        if (objs[i] == NULL) continue;
        rc_release(objs[i]);
        if (weaks[i]) CHECK(rc_weak_lock(weaks[i]) == NULL);
        objs[i] = NULL;
    }
    for (int i = 1; i < OBJECTS; i += 2) {
        if (objs[i] == NULL) continue;
        size_t size = i % 10 == 9 ? (size_t)150 << 10 : (size_t)(i * 24 + 8);
        CHECK(filled(objs[i], size < 512 ? size : 512, (unsigned)i));
        if (weaks[i]) {
            void *locked = rc_weak_lock(weaks[i]);
            CHECK(locked == objs[i]);
            if (locked) rc_release(locked);
        }
        rc_release(objs[i]);
    }
    for (int i = 0; i < OBJECTS; i++) rc_weak_free(weaks[i]);
    if (pool) {
        pool_stats_t st;
        pool_get_stats(pool, &st);
        CHECK(st.live_allocations == 0);
        pool_destroy(pool);
    }
}

/* ---- one run ---------------------------------------------------------------- */

static void workload(void) {
    int finalizers_made = 0, rc_made = 0;
    finalized = 0;
    rc_destroyed = 0;
    pool_stats_t before, after;
    pool_get_stats(pool_default(), &before);
    pool_workload(1);
    pool_workload(0);
    gc_workload(&finalizers_made, &rc_made);
    rc_workload(&rc_made);
    CHECK(finalized == finalizers_made);
    CHECK(rc_destroyed == rc_made);
    pool_get_stats(pool_default(), &after);
    CHECK(after.live_allocations == before.live_allocations);
    pool_trim(pool_default()); /* its cache of large mappings is not a leak */
}

enum { CHILD_INJECTED = 0, CHILD_NOT_REACHED = 10, CHILD_PROBLEMS = 1 };

/* A forked child costs about a second under ThreadSanitizer (150 s for the
 * whole sweep), and this test is single-threaded, so there it samples every
 * 16th point; the other builds take every one. */
#if defined(__SANITIZE_THREAD__)
#  define SWEEP_STRIDE 16u
#else
#  define SWEEP_STRIDE 1u
#endif

/* In the child: a warm-up run (lazily created process-wide state: the
 * default pool, chunk map leaves, per-thread records), then the run with
 * the nth mapping failing, whose mappings must all be gone at the end. */
static int child_run(uint64_t n) {
    current_n = n;
    mulch_set_error_handler(on_error, NULL);
    workload();
    size_t baseline = os_mapped_bytes();
    problems = 0;
    os_fail_after(n);
    workload();
    uint64_t left = os_fail_after(0);
    size_t mapped = os_mapped_bytes();
    if (mapped != baseline) {
        fprintf(stderr, "oom sweep n=%llu: %zu bytes mapped after the run, %zu before (leak)\n",
                (unsigned long long)n, mapped, baseline);
        problems++;
    }
    if (problems) return CHILD_PROBLEMS;
    return left ? CHILD_NOT_REACHED : CHILD_INJECTED;
}

static void test_oom_sweep_every_layer(void **state) {
    (void)state;
    uint64_t covered = 0, failed = 0;
    for (uint64_t n = 1; n < 100000; n += SWEEP_STRIDE) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) _exit(child_run(n));
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_NOT_REACHED) break;
        if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_INJECTED) {
            covered++;
            continue;
        }
        failed++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "oom sweep n=%llu: killed by signal %d\n", (unsigned long long)n, WTERMSIG(status));
        else
            fprintf(stderr, "oom sweep n=%llu: exit status %d\n", (unsigned long long)n, WEXITSTATUS(status));
    }
    printf("oom sweep: %llu fault-injection points covered, %llu failed\n", (unsigned long long)covered,
           (unsigned long long)failed);
    assert_true(covered > 0);
    assert_int_equal(failed, 0);
}

/* The workload itself is sound: no injection, no problem, no leak. */
static void test_oom_sweep_workload_clean(void **state) {
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child_run(UINT64_MAX));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), CHILD_NOT_REACHED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_sweep_workload_clean),
        cmocka_unit_test(test_oom_sweep_every_layer),
    };
    return cmocka_run_group_tests_name("oom_sweep", tests, NULL, NULL);
}
