/* Unit tests of marking when the mark stack cannot grow (mark.c: the
 * object stays marked, `overflowed`, and the marked objects are traced
 * again). The reachable set must survive exactly — no live object freed,
 * no garbage kept — with one marker or several, with compaction off or
 * always, and in generational minor collections (old objects pointing to
 * young ones through their cards); gc_verify stays clean. Two kinds of
 * shortage: a single refused mapping (os_fail_after, every build), and a
 * lasting one, every mmap the library makes refused while `mmap_refused`
 * is set (not under ThreadSanitizer, whose start-up maps memory through
 * the interposer before dlsym works). Each collection checks that it met
 * its shortage (a mapping refused, the injected failure used): without
 * one every run passes and tests nothing. A lasting shortage must not make a
 * collection rescan the heap once per object: a list of 300000 objects
 * is collected in well under a few seconds. Range entries (gc_trace_range
 * of a wide object) pending while the stack overflows lose no slot. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "mmap_refuse.h"
#include "unit_errors.h"

static int teardown(void **state) {
    mmap_refused = false;
    os_fail_after(0);
    return teardown_errors(state);
}

/* ---- objects ------------------------------------------------------------- */

typedef struct node {
    void    *next;
    uint64_t id;
} node_t;

/* trace function calls, to count rescans */
static _Atomic size_t node_traces, vec_traces;

static void node_trace(void *obj, gc_tracer_t *tracer) {
    node_traces++;
    gc_trace_slot(tracer, &((node_t *)obj)->next);
}
static const gc_type_t node_type = { "node", node_trace, NULL };

/* A vector: n slots, the last one the next vector of a comb. */
typedef struct vec {
    size_t n;
    void  *slot[];
} vec_t;

/* Slot by slot, as a trace function that does not use gc_trace_range:
 * each leaf is pushed (a range would keep the stack short, and these
 * shortages are met when the stack must grow). */
static void vec_trace(void *obj, gc_tracer_t *tracer) {
    vec_t *v = obj;
    vec_traces++;
    for (size_t i = 0; i < v->n; i++) gc_trace_slot(tracer, &v->slot[i]);
}
static const gc_type_t vec_type = { "vec", vec_trace, NULL };

/* The same vector traced with gc_trace_range: more than GC_RANGE_MIN
 * slots become range entries (mark.c). */
static void range_vec_trace(void *obj, gc_tracer_t *tracer) {
    vec_t *v = obj;
    vec_traces++;
    gc_trace_range(tracer, v->slot, v->n);
}
static const gc_type_t range_vec_type = { "range vec", range_vec_trace, NULL };

static uint64_t next_id;

static node_t *node_new(gc_thread_t *t) {
    node_t *x = gc_alloc(t, &node_type, sizeof *x);
    assert_non_null(x);
    x->id = next_id++;
    return x;
}

/* A list of n nodes built by prepending (each node points to an older one,
 * at a lower address); ids count down along it. *root is a root: read
 * after each allocation, which may move what it points to. */
static void list_build(gc_thread_t *t, void **root, size_t n) {
    for (size_t i = 0; i < n; i++) {
        node_t *x = node_new(t);
        gc_write(t, x, &x->next, *root);
        *root = x;
    }
}

static size_t list_check(const node_t *x) {
    size_t n = 0;
    for (uint64_t last = UINT64_MAX; x; x = x->next, n++) {
        assert_true(x->id < last);
        last = x->id;
    }
    return n;
}

/* A comb of `teeth` vectors of `width` leaves each (more than the stack's
 * first mapping holds) and a link to the previous vector last. */
enum { WIDTH = GC_MARK_STACK_FIRST + 500 };
static void comb_build(gc_thread_t *t, void **root, size_t teeth) {
    for (size_t k = 0; k < teeth; k++) {
        vec_t *v = gc_alloc(t, &vec_type, sizeof *v + (WIDTH + 1) * sizeof(void *));
        assert_non_null(v);
        v->n = WIDTH + 1;
        gc_write(t, v, &v->slot[WIDTH], *root);
        *root = v;
        for (size_t i = 0; i < WIDTH; i++) {
            node_t *leaf = node_new(t);
            v = *root;
            gc_write(t, v, &v->slot[i], leaf);
        }
    }
}

static size_t comb_check(const vec_t *v) {
    size_t objects = 0;
    for (; v; v = v->slot[WIDTH]) {
        assert_int_equal(v->n, WIDTH + 1);
        for (size_t i = 0; i < WIDTH; i++) { /* a leaf, and a young list in minor runs */
            const node_t *leaf = v->slot[i];
            assert_non_null(leaf);
            objects += 1 + list_check(leaf->next);
        }
        objects++;
    }
    return objects;
}

static void count_object(void *obj, const gc_type_t *type, size_t size, void *ctx) {
    (void)obj;
    (void)type;
    (void)size;
    ++*(size_t *)ctx;
}

static size_t heap_objects(gc_heap_t *h) {
    size_t n = 0;
    gc_heap_walk(h, count_object, &n);
    return n;
}

static void minor_collection(gc_heap_t *h, gc_thread_t *t) {
    assert_true(gc_world_stop(t, true));
    gc_collect_locked(h, t, true, GC_REASON_ALLOCATION);
    gc_world_start_heap(h, t);
}

/* ---- the shortages ------------------------------------------------------- */

enum shortage { REFUSE_ALL, FAIL_FIRST, FAIL_SECOND, FAIL_THIRD };

static unsigned long refusals_before;

/* Drops the stack h kept from its last collection (mark.c), so that the
 * next tracer maps its stack under the shortage; the comb test below
 * keeps it, and meets its shortage when that stack must grow. */
static void shortage_begin(gc_heap_t *h, enum shortage s) {
    gc_tracer_spare_free(h);
    refusals_before = mmap_refusals;
    if (s == REFUSE_ALL) mmap_refused = true;
    else os_fail_after((uint64_t)s);
}

/* Ends the shortage; whether the code under it met it (a mapping was
 * refused, or the injected failure was used): a run that passes without
 * one tests nothing of what it claims. */
static bool shortage_end(enum shortage s) {
    mmap_refused = false;
    bool injected_left = os_fail_after(0) != 0;
    return s == REFUSE_ALL ? mmap_refusals > refusals_before : !injected_left;
}

/* One configuration: a list, a comb and garbage; a collection (minor when
 * `minor`) under the shortage, which it must meet; exactly the reachable
 * objects remain. */
static void run(int markers, int compaction, bool minor, enum shortage s) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = markers;
    o.compaction = compaction;
    o.generational = minor;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *roots[4] = { NULL, NULL, NULL, NULL };
    gc_root_add_range(h, roots, 4);
    enum { LIST = 20000, TEETH = 3 };
    list_build(t, &roots[0], LIST);
    comb_build(t, &roots[1], TEETH);
    list_build(t, &roots[3], 5000); /* garbage once unrooted */
    roots[3] = NULL;
    size_t expected = LIST + TEETH * (WIDTH + 1);
    gc_collect(t); /* helpers started, every vector mapped once */
    assert_int_equal(heap_objects(h), expected);
    if (minor) {
        /* old objects (the comb's leaves) now point to young lists, on
         * clean cards but theirs; young garbage too */
        for (size_t i = 0; i < WIDTH; i += 7) {
            list_build(t, &roots[3], 3);
            node_t *leaf = ((vec_t *)roots[1])->slot[i];
            gc_write(t, leaf, &leaf->next, roots[3]);
            roots[3] = NULL;
            expected += 3;
        }
        list_build(t, &roots[2], 10000);
        expected += 10000;
        list_build(t, &roots[3], 5000);
        roots[3] = NULL;
    }
    shortage_begin(h, s);
    if (minor) minor_collection(h, t);
    else gc_collect(t);
    assert_true(shortage_end(s));
    size_t found = list_check(roots[0]) + comb_check(roots[1]) + (minor ? list_check(roots[2]) : 0);
    assert_int_equal(found, expected);
    assert_int_equal(heap_objects(h), expected);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    /* and what the shortage left behind is sound for the next ones */
    if (minor) minor_collection(h, t);
    gc_collect(t);
    assert_int_equal(list_check(roots[0]) + comb_check(roots[1]) + (minor ? list_check(roots[2]) : 0), expected);
    assert_int_equal(heap_objects(h), expected);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    assert_int_equal(reports, 0);
    gc_root_remove(h, roots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* A minor collection here maps one mark stack (a second one, with two
 * markers, only when the work is shared out): it runs under the failures
 * it always reaches (run() checks that each shortage was met). */
static bool minor_reaches(enum shortage s) {
    return s == REFUSE_ALL || s == FAIL_FIRST;
}

static void run_all(enum shortage s) {
    static const int compactions[] = { GC_COMPACT_NEVER, GC_COMPACT_ALWAYS };
    for (int markers = 1; markers <= 2; markers++)
        for (unsigned c = 0; c < 2; c++) {
            run(markers, compactions[c], false, s);
            if (compactions[c] == GC_COMPACT_NEVER && minor_reaches(s)) run(markers, compactions[c], true, s);
        }
}

static void test_overflow_single_failures(void **state) {
    (void)state;
    run_all(FAIL_FIRST);
    run_all(FAIL_SECOND);
    run_all(FAIL_THIRD);
}

static void test_overflow_lasting_shortage(void **state) {
    (void)state;
    if (!MMAP_REFUSABLE) skip();
    run_all(REFUSE_ALL);
}

/* A lasting shortage from the collection's start: not even the stack's
 * first mapping. Rescanning every marked object until no push fails
 * took one pass per list node (each node points to an older one, at a
 * lower address, which the pass has gone by): hours for this list. */
static void test_overflow_long_list_finishes(void **state) {
    (void)state;
    if (!MMAP_REFUSABLE) skip();
    for (int markers = 1; markers <= 2; markers++) {
        gc_options_t o;
        memset(&o, 0, sizeof o);
        o.markers = markers;
        o.compaction = GC_COMPACT_NEVER;
        gc_heap_t *h = gc_heap_create(&o);
        assert_non_null(h);
        gc_thread_t *t = gc_thread_attach(h);
        assert_non_null(t);
        void *root = NULL;
        gc_root_add_range(h, &root, 1);
        enum { N = 300000 };
        list_build(t, &root, N);
        gc_collect(t);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        shortage_begin(h, REFUSE_ALL);
        gc_collect(t);
        assert_true(shortage_end(REFUSE_ALL)); /* the stack's first mapping was refused */
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        print_message("markers %d: a collection of %d objects without a mark stack: %.3f s\n", markers, N,
                      seconds);
        assert_true(seconds < 5.0);
        assert_int_equal(list_check(root), N);
        assert_int_equal(heap_objects(h), N);
        assert_int_equal(gc_verify(h), 0);
        assert_int_equal(gc_verify_untraced(h), 0);
        assert_int_equal(reports, 0);
        gc_root_remove(h, &root);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
}

/* A comb of many teeth: each vector's link to the next is dropped (the
 * stack is full of its leaves), and lies at a lower address. Each rescan
 * went over the whole heap and reached one more tooth: teeth^2 / 2 vector
 * traces, and every leaf traced once per tooth. The rescan now visits the
 * range of spans holding the objects dropped. */
static void test_overflow_comb_rescans_near(void **state) {
    (void)state;
    if (!MMAP_REFUSABLE) skip();
    for (int markers = 1; markers <= 2; markers++) {
        gc_options_t o;
        memset(&o, 0, sizeof o);
        o.markers = markers;
        o.compaction = GC_COMPACT_NEVER;
        gc_heap_t *h = gc_heap_create(&o);
        assert_non_null(h);
        gc_thread_t *t = gc_thread_attach(h);
        assert_non_null(t);
        void *root = NULL;
        gc_root_add_range(h, &root, 1);
        enum { TEETH = 60 };
        comb_build(t, &root, TEETH);
        gc_collect(t);
        node_traces = vec_traces = 0;
        refusals_before = mmap_refusals; /* the spare stack kept: its growth is refused */
        mmap_refused = true;
        gc_collect(t);
        assert_true(shortage_end(REFUSE_ALL));
        size_t objects = (size_t)TEETH * (WIDTH + 1);
        print_message("markers %d: %zu vector traces, %zu node traces for %d vectors, %zu objects\n", markers,
                      (size_t)vec_traces, (size_t)node_traces, TEETH, objects);
        /* (Compacting, the range also reaches the copies' spans at the
         * heap's end, past every vector: the bound holds without it.) */
        /* the stack overflowed: vectors were traced again */
        assert_true(vec_traces > TEETH);
        if (h->options.compaction == GC_COMPACT_NEVER) {
            assert_true(vec_traces <= 8 * TEETH);
            assert_true(node_traces <= 4 * objects);
        }
        assert_int_equal(comb_check(root), objects);
        assert_int_equal(heap_objects(h), objects);
        assert_int_equal(gc_verify(h), 0);
        assert_int_equal(gc_verify_untraced(h), 0);
        assert_int_equal(reports, 0);
        gc_root_remove(h, &root);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
}

/* A vector of FANS slots traced through range entries, each slot a fan:
 * FAN leaves (nodes), the first FAN_EACH of them reported slot by slot,
 * then all of them with one gc_trace_range (reporting a slot twice is
 * harmless). Under a lasting shortage the tracer's reserve is the stack:
 * the slot-by-slot part overflows it while the big vector's range entries
 * are pending, so the fan's range entry cannot be pushed (range_defer:
 * its slots are traced at once, each child dropped for the rescan); no
 * slot may be lost. */
enum { FANS = GC_RANGE_MIN + 65, FAN = GC_RANGE_MIN + 1, FAN_EACH = GC_MARK_RESERVE + 4 };

static void fan_trace(void *obj, gc_tracer_t *tracer) {
    vec_t *v = obj;
    vec_traces++;
    for (size_t i = 0; i < FAN_EACH; i++) gc_trace_slot(tracer, &v->slot[i]);
    gc_trace_range(tracer, v->slot, v->n);
}
static const gc_type_t fan_type = { "fan", fan_trace, NULL };

static void *fans_build(gc_thread_t *t, void **root) {
    vec_t *r = gc_alloc(t, &range_vec_type, sizeof *r + FANS * sizeof(void *));
    assert_non_null(r);
    r->n = FANS;
    *root = r;
    for (size_t k = 0; k < FANS; k++) {
        vec_t *fan = gc_alloc(t, &fan_type, sizeof *fan + FAN * sizeof(void *));
        assert_non_null(fan);
        fan->n = FAN;
        r = *root;
        gc_write(t, r, &r->slot[k], fan);
        for (size_t i = 0; i < FAN; i++) {
            node_t *leaf = node_new(t);
            r = *root;
            fan = r->slot[k];
            gc_write(t, fan, &fan->slot[i], leaf);
        }
    }
    return *root;
}

static size_t fans_check(const vec_t *r) {
    assert_int_equal(r->n, FANS);
    size_t objects = 1;
    for (size_t k = 0; k < FANS; k++) {
        const vec_t *fan = r->slot[k];
        assert_non_null(fan);
        assert_int_equal(fan->n, FAN);
        for (size_t i = 0; i < FAN; i++) assert_non_null(fan->slot[i]);
        objects += 1 + FAN;
    }
    return objects;
}

static void fans_run(int markers, int compaction, enum shortage s) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = markers;
    o.compaction = compaction;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *roots[2] = { NULL, NULL };
    gc_root_add_range(h, roots, 2);
    fans_build(t, &roots[0]);
    list_build(t, &roots[1], 3000);
    roots[1] = NULL; /* garbage */
    gc_collect(t);
    size_t expected = fans_check(roots[0]);
    assert_int_equal(heap_objects(h), expected);
    list_build(t, &roots[1], 3000);
    roots[1] = NULL;
    node_traces = 0;
    shortage_begin(h, s);
    gc_collect(t);
    assert_true(shortage_end(s));
    /* a lasting one overflowed: leaves were traced again (a single
     * failure leaves the reserve for a mapping at the next push) */
    if (s == REFUSE_ALL) assert_true(node_traces > (size_t)FANS * FAN);
    assert_int_equal(fans_check(roots[0]), expected);
    assert_int_equal(heap_objects(h), expected);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    gc_collect(t);
    assert_int_equal(fans_check(roots[0]), expected);
    assert_int_equal(heap_objects(h), expected);
    assert_int_equal(reports, 0);
    gc_root_remove(h, roots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_overflow_range_entries_pending(void **state) {
    (void)state;
    static const int compactions[] = { GC_COMPACT_NEVER, GC_COMPACT_ALWAYS };
    for (int markers = 1; markers <= 2; markers++)
        for (unsigned c = 0; c < 2; c++) {
            if (MMAP_REFUSABLE) fans_run(markers, compactions[c], REFUSE_ALL);
            fans_run(markers, compactions[c], FAIL_FIRST);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_overflow_single_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_lasting_shortage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_long_list_finishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_comb_rescans_near, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_range_entries_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
