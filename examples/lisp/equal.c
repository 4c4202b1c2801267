/* equal.c — equal?: structural equality of strings, pairs and vectors,
 * which terminates on shared and circular structure (R7RS requires it).
 *
 * Two paths. The fast one is the plain recursion (cars and vector items
 * recursively, cdrs in a loop) under a budget of EQUAL_FAST_BUDGET visited
 * objects: small values, the common case, never leave it. Past the budget
 * (a long or deep value, or one whose sharing makes the plain walk
 * exponential: (cons x x) nested 40 times is 2^40 paths through 41 pairs,
 * or a cycle, where the walk never ends) the comparison starts over on the
 * slow path: the union-find method of Adams and Dybvig ("Efficient
 * nondestructive equality checking for trees and graphs", ICFP 2008).
 * Each pair of pairs or vectors compared is merged into one equivalence
 * class before their parts are compared, and a pair of objects already in
 * one class is not compared again: every object is entered once, so the
 * work is about linear in the number of objects, and a cycle ends where it
 * closes. The assumption that the two are equal is sound: any difference
 * found anywhere makes the whole answer #f. The slow path keeps its work
 * list on the C heap, not the C stack, so depth does not limit it either.
 *
 * Invariants: equal? allocates nothing on the collector's heap, so no
 * collection runs during it and the addresses its table keys on stay
 * valid (the arguments are rooted by the caller anyway). The slow path's
 * malloc'd table and work list are freed on every way out, an error
 * included: the fuzzer's budget (LISP_EVAL_HOOK) raises one from inside,
 * and running out of malloc'd memory is "out of memory"; a lisp_catch
 * frees them and passes the error on.
 */
#include "lisp.h"

#include <stdlib.h>
#include <string.h>

enum {
    EQUAL_FAST_BUDGET = 1000,   /* objects the fast path visits before it gives up */
    EQUAL_TABLE_MIN = 1024,     /* first capacity of the slow path's table (a power of 2) */
};

/* ---- the fast path -------------------------------------------------------- */

/* 1 or 0, or -1 once *budget is spent (the answer is then unknown). The
 * recursion depth is bounded by the budget. */
static int equal_fast(value a, value b, int *budget)
{
    for (;;) {
        if (a == b) return 1;
        if (!lisp_is_object(a) || !lisp_is_object(b) || lisp_kind_of(a) != lisp_kind_of(b)) return 0;
        if (--*budget < 0) return -1;
#ifdef LISP_EVAL_HOOK
        LISP_EVAL_HOOK();
#endif
        switch (lisp_kind_of(a)) {
        case LISP_STRING:
            return lisp_aux(a) == lisp_aux(b)
                   && memcmp(LISP_STRING_OF(a)->text, LISP_STRING_OF(b)->text, lisp_aux(a)) == 0;
        case LISP_VECTOR:
            if (lisp_aux(a) != lisp_aux(b)) return 0;
            for (size_t i = 0; i < lisp_aux(a); i++) {
                int same = equal_fast(LISP_VECTOR_OF(a)->items[i], LISP_VECTOR_OF(b)->items[i], budget);
                if (same != 1) return same;
            }
            return 1;
        case LISP_PAIR: {
            int same = equal_fast(LISP_CAR(a), LISP_CAR(b), budget);
            if (same != 1) return same;
            a = LISP_CDR(a);
            b = LISP_CDR(b);
            break;
        }
        default:
            return 0;
        }
    }
}

/* ---- the slow path: union-find over the objects compared ------------------- */

/* An open-addressing table from object address to a union-find node: the
 * node's parent (its own index at a class's root) and its class's size
 * (at the root; the smaller class goes under the larger). The work list
 * holds the pairs of values still to compare. */
struct equal_node { value object; size_t parent, size; };
struct equal_work { value a, b; };
struct equal_state {
    size_t *slots;              /* node index + 1; 0 = empty */
    size_t capacity;            /* of slots: a power of 2, at most half full */
    struct equal_node *nodes;
    size_t node_count, node_capacity;
    struct equal_work *work;
    size_t work_count, work_capacity;
};

static size_t equal_hash(value v, size_t capacity)
{
    return (size_t)(((uintptr_t)v >> 3) * (uintptr_t)0x9E3779B97F4A7C15u) & (capacity - 1);
}

static void *equal_grow(void *items, size_t *capacity, size_t item_size)
{
    size_t grown = *capacity ? *capacity * 2 : EQUAL_TABLE_MIN;
    void *bigger = realloc(items, grown * item_size);
    if (bigger == NULL) lisp_out_of_memory();
    *capacity = grown;
    return bigger;
}

static void equal_rehash(struct equal_state *s)
{
    size_t capacity = s->capacity ? s->capacity * 2 : EQUAL_TABLE_MIN;
    size_t *slots = calloc(capacity, sizeof *slots);
    if (slots == NULL) lisp_out_of_memory();
    for (size_t n = 0; n < s->node_count; n++) {
        size_t i = equal_hash(s->nodes[n].object, capacity);
        while (slots[i] != 0) i = (i + 1) & (capacity - 1);
        slots[i] = n + 1;
    }
    free(s->slots);
    s->slots = slots;
    s->capacity = capacity;
}

/* The node of v, made (as a class of its own) if v has none yet. */
static size_t equal_node_of(struct equal_state *s, value v)
{
    if (2 * (s->node_count + 1) > s->capacity) equal_rehash(s);
    size_t i = equal_hash(v, s->capacity);
    for (; s->slots[i] != 0; i = (i + 1) & (s->capacity - 1)) {
        if (s->nodes[s->slots[i] - 1].object == v) return s->slots[i] - 1;
    }
    if (s->node_count == s->node_capacity) s->nodes = equal_grow(s->nodes, &s->node_capacity, sizeof *s->nodes);
    size_t n = s->node_count++;
    s->nodes[n] = (struct equal_node){ v, n, 1 };
    s->slots[i] = n + 1;
    return n;
}

static size_t equal_root(struct equal_state *s, size_t n)
{
    size_t root = n;
    while (s->nodes[root].parent != root) root = s->nodes[root].parent;
    while (s->nodes[n].parent != root) {   /* path compression */
        size_t next = s->nodes[n].parent;
        s->nodes[n].parent = root;
        n = next;
    }
    return root;
}

/* Whether a and b were already assumed equal; if not, they are from now. */
static int equal_assumed(struct equal_state *s, value a, value b)
{
    size_t ra = equal_root(s, equal_node_of(s, a));
    size_t rb = equal_root(s, equal_node_of(s, b));
    if (ra == rb) return 1;
    if (s->nodes[ra].size < s->nodes[rb].size) {
        size_t t = ra;
        ra = rb;
        rb = t;
    }
    s->nodes[rb].parent = ra;
    s->nodes[ra].size += s->nodes[rb].size;
    return 0;
}

static void equal_push(struct equal_state *s, value a, value b)
{
    if (s->work_count == s->work_capacity) s->work = equal_grow(s->work, &s->work_capacity, sizeof *s->work);
    s->work[s->work_count++] = (struct equal_work){ a, b };
}

static int equal_slow_walk(struct equal_state *s, value a, value b)
{
    equal_push(s, a, b);
    while (s->work_count > 0) {
        struct equal_work w = s->work[--s->work_count];
        if (w.a == w.b) continue;
        if (!lisp_is_object(w.a) || !lisp_is_object(w.b) || lisp_kind_of(w.a) != lisp_kind_of(w.b)) return 0;
#ifdef LISP_EVAL_HOOK
        LISP_EVAL_HOOK();
#endif
        switch (lisp_kind_of(w.a)) {
        case LISP_STRING:
            if (lisp_aux(w.a) != lisp_aux(w.b)
                || memcmp(LISP_STRING_OF(w.a)->text, LISP_STRING_OF(w.b)->text, lisp_aux(w.a)) != 0) return 0;
            break;
        case LISP_VECTOR:
            if (lisp_aux(w.a) != lisp_aux(w.b)) return 0;
            if (equal_assumed(s, w.a, w.b)) break;
            for (size_t i = lisp_aux(w.a); i-- > 0;) {   /* item 0 on top: compared first */
                equal_push(s, LISP_VECTOR_OF(w.a)->items[i], LISP_VECTOR_OF(w.b)->items[i]);
            }
            break;
        case LISP_PAIR:
            if (equal_assumed(s, w.a, w.b)) break;
            equal_push(s, LISP_CDR(w.a), LISP_CDR(w.b));
            equal_push(s, LISP_CAR(w.a), LISP_CAR(w.b));   /* the car first, as the fast path */
            break;
        default:
            return 0;
        }
    }
    return 1;
}

static void equal_state_free(struct equal_state *s)
{
    free(s->slots);
    free(s->nodes);
    free(s->work);
}

/* The slow path, with its memory freed however it ends. */
static int equal_slow(value a, value b)
{
    static struct equal_state state;   /* static: the catch path needs it after a longjmp */
    memset(&state, 0, sizeof state);
    struct lisp_catch c;
    if (setjmp(c.jump) != 0) {
        lisp_catch_landed(&c);
        equal_state_free(&state);
        lisp_current_line = c.line;
        lisp_error("%s", c.message);   /* passed on to the caller's catcher */
    }
    lisp_catch_enter(&c);
    int same = equal_slow_walk(&state, a, b);
    lisp_catch_leave(&c);
    equal_state_free(&state);
    return same;
}

int lisp_equal(value a, value b)
{
    int budget = EQUAL_FAST_BUDGET;
    int same = equal_fast(a, b, &budget);
    return same >= 0 ? same : equal_slow(a, b);
}
