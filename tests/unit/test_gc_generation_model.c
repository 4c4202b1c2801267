/* Randomized model test of the generational mode: a shadow graph (object
 * ids, per-object slot contents) is kept beside the real one; random stores
 * through gc_write, drops, garbage, weak references and collections are
 * applied to both, and after every collection the real graph reachable from
 * the roots must match the shadow: no reachable object freed, moved wrongly,
 * or finalized. Objects of several sizes: headerless, with a header
 * (finalizable), medium, large (stores anywhere in them: far cards); every
 * third batch of steps runs on a thread attached for it (card caches that
 * come and go). Knobs: MODEL_STEPS, MODEL_SEED, MODEL_BLOCK (the pool's
 * block size), MODEL_CONSERVATIVE. A check that fails on the helper thread
 * ends the process (cmocka cannot unwind it), which still fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "unit_errors.h"

typedef struct node {
    uint64_t id, check, nslots;
    void    *slot[];
} node_t;

static uint64_t mix(uint64_t z) {
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void node_trace(void *obj, gc_tracer_t *tracer) {
    node_t *n = obj;
    gc_trace_range(tracer, n->slot, n->nslots);
}

enum { MAX_IDS = 1u << 20 };
static unsigned char finalized[MAX_IDS];
static void node_finalize(void *obj) {
    node_t *n = obj;
    if (n->id < MAX_IDS) finalized[n->id] = 1;
}
static const gc_type_t node_type = { "node", node_trace, NULL };
static const gc_type_t fin_node_type = { "fin node", node_trace, node_finalize };

/* shadow: per id, its slots' expected ids (0: NULL; UINT32_MAX: a weak ref) */
typedef struct shadow {
    uint32_t *slots;
    uint32_t  nslots;
    uint32_t  weak_target; /* for weak refs kept in slots: see below */
} shadow_t;
static shadow_t *shadow;
static uint32_t next_id;

enum { ROOTS = 64 };
static void *roots[ROOTS];
static uint32_t root_ids[ROOTS];

typedef struct rng {
    uint64_t s;
} rng_t;
static uint64_t rnd(rng_t *r, uint64_t n) {
    r->s = mix(r->s);
    return n ? r->s % n : 0;
}

static const size_t slot_counts[] = { 1, 2, 3, 6, 14, 30, 200, 5000, 40000 };

static node_t *node_new(gc_thread_t *t, rng_t *r) {
    size_t pick = rnd(r, 100);
    size_t nslots = pick < 70 ? slot_counts[rnd(r, 6)] : pick < 95 ? slot_counts[6] : pick < 98 ? slot_counts[7] : slot_counts[8];
    const gc_type_t *type = rnd(r, 8) == 0 ? &fin_node_type : &node_type;
    node_t *n = gc_alloc(t, type, sizeof(node_t) + nslots * sizeof(void *));
    assert_non_null(n);
    uint32_t id = ++next_id;
    assert_true(id < MAX_IDS);
    n->id = id;
    n->check = mix(id);
    n->nslots = nslots;
    shadow[id].nslots = (uint32_t)nslots;
    shadow[id].slots = calloc(nslots, sizeof(uint32_t));
    assert_non_null(shadow[id].slots);
    return n;
}

static unsigned char *visited;
static node_t **stack;
static size_t stack_cap;

static bool object_live(gc_heap_t *h, const void *obj) {
    uint32_t i;
    block_t *b = gc_object_span(h, obj, &i);
    if (b == NULL) return false;
    return gc_span_epoch(b) == h->epoch ? bit_test(gc_span_alloc_bits(b), i) : bit_test(gc_span_mark_bits(b), i);
}

static void expect_node(gc_heap_t *h, node_t *n, uint32_t id, const char *where) {
    if (n == NULL || !object_live(h, n) || n->id != id || n->check != mix(id) || n->nslots != shadow[id].nslots
        || finalized[id]) {
        fprintf(stderr, "%s: expected id %u at %p: live %d id %llu check ok %d finalized %d\n", where, id, (void *)n,
                n ? object_live(h, n) : 0, n ? (unsigned long long)n->id : 0ull, n ? n->check == mix(id) : 0,
                finalized[id]);
        fail();
    }
}

/* Walks the real graph from the roots against the shadow. */
static size_t check_graph(gc_heap_t *h) {
    memset(visited, 0, MAX_IDS);
    size_t depth = 0, seen = 0;
    for (unsigned r = 0; r < ROOTS; r++) {
        if (root_ids[r] == 0) {
            assert_null(roots[r]);
            continue;
        }
        expect_node(h, roots[r], root_ids[r], "root");
        if (visited[root_ids[r]]) continue;
        visited[root_ids[r]] = 1;
        stack[depth++] = roots[r];
    }
    while (depth) {
        node_t *n = stack[--depth];
        seen++;
        shadow_t *s = &shadow[n->id];
        for (uint32_t k = 0; k < s->nslots; k++) {
            uint32_t want = s->slots[k];
            if (want == 0) {
                if (n->slot[k] != NULL) {
                    fprintf(stderr, "node %llu slot %u: expected NULL, holds %p\n", (unsigned long long)n->id, k,
                            n->slot[k]);
                    fail();
                }
                continue;
            }
            node_t *c = n->slot[k];
            expect_node(h, c, want, "slot");
            if (visited[want]) continue;
            visited[want] = 1;
            if (depth == stack_cap) {
                stack_cap *= 2;
                stack = realloc(stack, stack_cap * sizeof *stack);
                assert_non_null(stack);
            }
            stack[depth++] = c;
        }
    }
    return seen;
}

/* A random reachable object (a short walk from a root), or NULL. */
static node_t *pick_reachable(rng_t *r, unsigned *root_index) {
    unsigned ri = (unsigned)rnd(r, ROOTS);
    *root_index = ri;
    node_t *n = roots[ri];
    if (n == NULL) return NULL;
    for (unsigned steps = (unsigned)rnd(r, 6); steps; steps--) {
        uint32_t k = (uint32_t)rnd(r, n->nslots < 8 ? n->nslots : 8);
        if (rnd(r, 4) == 0) k = (uint32_t)rnd(r, n->nslots);
        node_t *c = n->slot[k];
        if (c == NULL) break;
        n = c;
    }
    return n;
}

static uint32_t pick_slot(rng_t *r, node_t *n) {
    if (n->nslots > 8 && rnd(r, 2)) return (uint32_t)rnd(r, n->nslots); /* anywhere, e.g. far cards */
    return (uint32_t)rnd(r, n->nslots < 8 ? n->nslots : 8);
}

static void store(gc_thread_t *t, node_t *into, uint32_t k, node_t *value) {
    gc_write(t, into, &into->slot[k], value);
    shadow[into->id].slots[k] = value ? (uint32_t)value->id : 0;
}

static uint64_t collections_of(gc_heap_t *h) {
    gc_stats_t s;
    gc_get_stats(h, &s);
    return s.collections;
}

typedef struct model {
    gc_heap_t *h;
    rng_t      r;
    uint64_t   seen_collections, checks;
} model_t;

enum { BATCH = 500 };

static void model_batch(model_t *m, gc_thread_t *t) {
    gc_heap_t *h = m->h;
    rng_t r = m->r;
    void *hold = NULL;
    gc_push_root(t, &hold);
    for (unsigned step = 0; step < BATCH; step++) {
        uint64_t op = rnd(&r, 100);
        unsigned ri;
        if (op < 30) {
            /* a new object, stored into a root or a reachable object */
            node_t *n = node_new(t, &r);
            hold = n;
            node_t *into = pick_reachable(&r, &ri);
            if (into == NULL || rnd(&r, 8) == 0) {
                roots[ri] = n;
                root_ids[ri] = (uint32_t)n->id;
            } else {
                store(t, into, pick_slot(&r, into), n);
            }
            hold = NULL;
        } else if (op < 55) {
            /* an existing object into another */
            node_t *from = pick_reachable(&r, &ri), *into = pick_reachable(&r, &ri);
            if (from && into) store(t, into, pick_slot(&r, into), from);
        } else if (op < 65) {
            node_t *into = pick_reachable(&r, &ri);
            if (into) store(t, into, pick_slot(&r, into), NULL);
        } else if (op < 68) {
            ri = (unsigned)rnd(&r, ROOTS);
            roots[ri] = NULL;
            root_ids[ri] = 0;
        } else if (op < 98) {
            /* young garbage, some of it pointing to live objects */
            for (unsigned g = (unsigned)rnd(&r, 40); g; g--) {
                size_t nslots = 1 + rnd(&r, 30);
                node_t *junk = gc_alloc(t, &node_type, sizeof(node_t) + nslots * sizeof(void *));
                assert_non_null(junk);
                junk->nslots = nslots;
                node_t *live = pick_reachable(&r, &ri);
                if (live) gc_write(t, junk, &junk->slot[0], live);
            }
        } else if (op < 99) {
            gc_collect(t);
        } else {
            assert_int_equal(gc_verify(h), 0);
            assert_int_equal(gc_verify_untraced(h), 0);
        }
        uint64_t now = collections_of(h);
        if (now != m->seen_collections) {
            m->seen_collections = now;
            check_graph(h);
            m->checks++;
        }
    }
    gc_pop_roots(t, 1);
    m->r = r;
}

static void *model_thread(void *arg) {
    model_t *m = arg;
    gc_thread_t *t = gc_thread_attach(m->h);
    assert_non_null(t);
    model_batch(m, t);
    gc_thread_detach(t);
    return NULL;
}

static void run_model(int compaction, int markers, uint64_t seed, unsigned steps) {
    shadow = calloc(MAX_IDS, sizeof *shadow);
    visited = malloc(MAX_IDS);
    stack_cap = 1024;
    stack = malloc(stack_cap * sizeof *stack);
    assert_non_null(shadow);
    assert_non_null(visited);
    assert_non_null(stack);
    memset(finalized, 0, sizeof finalized);
    next_id = 0;
    memset(roots, 0, sizeof roots);
    memset(root_ids, 0, sizeof root_ids);

    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = 1;
    o.initial_heap = 256u << 10;
    o.compaction = compaction;
    o.markers = markers;
    o.conservative_stack = getenv("MODEL_CONSERVATIVE") != NULL;
    pool_t *pool = NULL;
    const char *block = getenv("MODEL_BLOCK");
    if (block) {
        pool_options_t po;
        memset(&po, 0, sizeof po);
        po.block_size = strtoul(block, NULL, 0);
        pool = pool_create(&po);
        assert_non_null(pool);
        o.pool = pool;
    }
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    gc_root_add_range(h, roots, ROOTS);
    model_t m = { h, { seed }, collections_of(h), 0 };
    for (unsigned done = 0; done < steps; done += BATCH) {
        if ((done / BATCH) % 3 == 1) {
            /* a batch on a thread of its own, attached for it: its card
             * caches start empty and go with it */
            pthread_t th;
            gc_enter_blocking(t);
            assert_int_equal(pthread_create(&th, NULL, model_thread, &m), 0);
            pthread_join(th, NULL);
            gc_leave_blocking(t);
        } else {
            model_batch(&m, t);
        }
    }
    check_graph(h);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    assert_int_equal(reports, 0);
    print_message("  compaction %d markers %d: %u objects, %llu collections checked\n", compaction, markers, next_id,
                  (unsigned long long)m.checks);
    gc_root_remove(h, roots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    if (pool) pool_destroy(pool);
    for (uint32_t i = 1; i <= next_id; i++) free(shadow[i].slots);
    free(shadow);
    free(visited);
    free(stack);
}

/* Sanitizer builds run a quarter of the steps, MULCH_TEST_QUICK=1 (the
 * valgrind run) a tenth, as the other tests scale their work
 * (mulch_test.h): under ThreadSanitizer the full 20000 steps of each of
 * the three runs took over a minute of CPU, and on a loaded 2-core
 * machine the test ran into the ctest timeout. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#  define MODEL_SANITIZED 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#    define MODEL_SANITIZED 1
#  endif
#endif
#ifndef MODEL_SANITIZED
#  define MODEL_SANITIZED 0
#endif

static unsigned model_steps(void) {
    const char *s = getenv("MODEL_STEPS");
    if (s) return (unsigned)strtoul(s, NULL, 10);
    const char *quick = getenv("MULCH_TEST_QUICK");
    if (quick && quick[0] != '\0' && quick[0] != '0') return 2000u;
    return MODEL_SANITIZED ? 5000u : 20000u;
}
static uint64_t model_seed(void) {
    const char *s = getenv("MODEL_SEED");
    return s ? strtoull(s, NULL, 0) : 1u;
}

static void test_model_auto(void **state) {
    (void)state;
    run_model(GC_COMPACT_AUTO, 1, model_seed(), model_steps());
}
static void test_model_never(void **state) {
    (void)state;
    run_model(GC_COMPACT_NEVER, 1, model_seed() + 1, model_steps());
}
static void test_model_parallel(void **state) {
    (void)state;
    run_model(GC_COMPACT_AUTO, 2, model_seed() + 2, model_steps());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model_auto, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_model_never, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_model_parallel, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
