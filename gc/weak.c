/* weak.c — weak references and ephemerons: small GC objects whose slots
 * the marker does not trace.
 *
 * A weak reference is one slot, its target. An ephemeron is two, a key and
 * a value: the value is traced only once the key has been found reachable
 * some other way, so that a table from keys to values (a Lua table with
 * weak keys, a JavaScript WeakMap) does not keep a key alive through its own
 * value. Both kinds share the lists (per thread, then heap->weaks), so
 * that detach, fork and destroy hand on and clear them in one go.
 *
 * Invariants, per collection (collect.c calls these in this order):
 *   1. after marking from the roots, gc_ephemerons_converge traces the
 *      value of every live ephemeron whose key is marked, draining after
 *      each, and repeats, in alternating directions, while a pass marks
 *      something new and leaves a key unmarked (a value may hold the key
 *      of another ephemeron listed before it);
 *   2. the weak slots whose target is unmarked are cleared, in live and
 *      dead weak objects alike, before any finalizer runs; an ephemeron
 *      whose key is cleared loses its value in the same step;
 *   3. objects kept for their finalizers may revive ephemerons: converging
 *      again, when there were any, traces their values (their keys were
 *      live, or are NULL now).
 * A collection that could move objects while finalizers are pending moves
 * none when those objects reach an ephemeron (gc_ephemerons_marked): the
 * running finalizer may hold its value, which must stay where it is.
 * Listed objects are live or dead-but-unswept at every collection (each
 * collection forgets the dead ones before the sweep frees them), so their
 * headers may be read. Heaps that never made an ephemeron skip step 1 and
 * 3 and the type test of step 2 (heap->has_ephemerons).
 * gc_heap_destroy clears them all before each finalizer and each rc
 * destroy callback it runs. The getters, called from a trace function of
 * an evacuating collection (misuse) with an object it moved already,
 * report the call instead of reading the old cell. */
#include <stdio.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "gc_weak.h"

static const gc_type_t weak_type = { "mulch.weak", NULL, NULL };
static const gc_type_t ephemeron_type = { "mulch.ephemeron", NULL, NULL };

enum { EPHEMERON_KEY = 0, EPHEMERON_VALUE = 1 };

/* The checks gc_weak_new and gc_ephemeron_new share: a usable record. */
static bool weak_caller_ok(gc_thread_t *t, const char *fn) {
    if (!gc_thread_given(t, fn)) return false;
    /* before anything reads *t: a detached record is unmapped, and
     * another thread's weak list is that thread's to push on */
    if (!gc_thread_check(t, fn)) return false;
    return gc_thread_outside_blocking(t, fn);
}

/* target: NULL, or a live object of t's heap (else reported). */
static bool weak_target_ok(gc_thread_t *t, const void *target, const char *fn, const char *what) {
    uint32_t index;
    if (target == NULL) return true;
    if (gc_object_span(t->heap, target, &index) == NULL) {
        char message[160];
        snprintf(message, sizeof message, "%s: %s is not a GC object of this heap", fn, what);
        mulch_report(message, target);
        return false;
    }
    return gc_object_live(t->heap, target, fn);
}

/* Whether obj's finalizer is pending or running (it is in `pending` until
 * the finalizer returns). Weak references to an object are cleared before
 * its finalizer runs: one made meanwhile (by a finalizer that reaches obj,
 * or obj's own) would miss that, and reads NULL from the start instead.
 * O(1): `pending` may hold every finalizable object of the heap, and a
 * finalizer may make a weak reference to each (pending.c's index). */
static bool finalizer_pending(gc_heap_t *heap, const void *obj) {
    if (obj == NULL || gc_object_type(obj)->finalize == NULL) return false;
    pthread_mutex_lock(&heap->lock);
    bool pending = gc_pending_contains_locked(heap, obj);
    pthread_mutex_unlock(&heap->lock);
    return pending;
}

/* A new listed object of `type` with `count` slots filled from `slots`,
 * which stay alive across its allocation (it may collect). A first slot
 * (target, key) whose finalizer is pending leaves every slot NULL. */
static void **weak_object_new(gc_thread_t *t, const gc_type_t *type, void **slots, size_t count) {
    size_t depth = gc_root_depth(t);
    for (size_t i = 0; i < count; i++) gc_push_root(t, &slots[i]);
    if (gc_root_depth(t) != depth + count) { /* out of memory (reported) */
        gc_pop_roots_to(t, depth);
        return NULL;
    }
    void **object = gc_alloc(t, type, count * sizeof(void *));
    gc_pop_roots_to(t, depth);
    if (object == NULL) return NULL;
    /* (zeroed, and unlisted: no collection looks at it, NULL for good) */
    if (finalizer_pending(t->heap, slots[0])) return object;
    /* (young and just allocated: no barrier, and no GC point since) */
    for (size_t i = 0; i < count; i++) object[i] = slots[i];
    if (!gc_vector_push(&t->weaks, object)) return NULL;
    return object;
}

void *gc_weak_new(gc_thread_t *t, void *target) {
    if (!weak_caller_ok(t, "gc_weak_new")) return NULL;
    if (!weak_target_ok(t, target, "gc_weak_new", "target")) return NULL;
    return weak_object_new(t, &weak_type, &target, 1);
}

void *gc_ephemeron_new(gc_thread_t *t, void *key, void *value) {
    if (!weak_caller_ok(t, "gc_ephemeron_new")) return NULL;
    if (key == NULL) {
        mulch_report("gc_ephemeron_new: key is NULL", NULL);
        return NULL;
    }
    if (!weak_target_ok(t, key, "gc_ephemeron_new", "key")) return NULL;
    /* a tagged immediate is a value like any other, never followed */
    if (((uintptr_t)value & 7u) == 0 && !weak_target_ok(t, value, "gc_ephemeron_new", "value")) return NULL;
    void *slots[2] = { [EPHEMERON_KEY] = key, [EPHEMERON_VALUE] = value };
    void **ephemeron = weak_object_new(t, &ephemeron_type, slots, 2);
    if (ephemeron != NULL) __atomic_store_n(&t->heap->has_ephemerons, true, __ATOMIC_RELAXED);
    return ephemeron;
}

bool gc_object_is_weak(const void *obj) {
    return gc_object_type(obj) == &weak_type;
}

bool gc_object_is_ephemeron(const void *obj) {
    return gc_object_type(obj) == &ephemeron_type;
}

/* The slots to clear with a weak object's first: an ephemeron's value. */
static size_t weak_slots(const void *obj) {
    return gc_object_type(obj) == &ephemeron_type ? 2 : 1;
}

void gc_weak_list_clear(const gc_vector_t *list) {
    /* atomic: a detach clears its list while other threads run (thread.c) */
    for (size_t i = 0; i < list->count; i++) {
        void **weak = list->items[i];
        size_t slots = weak_slots(weak);
        for (size_t s = 0; s < slots; s++) __atomic_store_n(&weak[s], NULL, __ATOMIC_RELAXED);
    }
}

/* gc_heap_destroy (heap->lock held): every weak reference made so far is
 * cleared, and the lists are emptied, so that clearing again before each
 * finalizer (weak references that finalizers make) costs only the new
 * ones. No collection looks at an unlisted weak reference: its target is
 * NULL for good. */
void gc_weak_lists_clear_all_locked(gc_heap_t *heap) {
    gc_weak_list_clear(&heap->weaks);
    heap->weaks.count = 0;
    for (gc_thread_t *t = heap->threads; t; t = t->next) {
        gc_weak_list_clear(&t->weaks);
        t->weaks.count = 0;
    }
}

/* Step 2 for one list: a dead object is never moved, so its address is
 * its cell. */
void gc_weak_list_clear_dead(gc_heap_t *heap, gc_vector_t *weaks) {
    bool ephemerons = __atomic_load_n(&heap->has_ephemerons, __ATOMIC_RELAXED);
    for (size_t i = 0; i < weaks->count; i++) {
        void **weak = gc_resolve(heap, weaks->items[i]);
        if (weak == NULL) weak = weaks->items[i];
        if (weak[0]) weak[0] = gc_resolve(heap, weak[0]);
        if (ephemerons && weak[EPHEMERON_KEY] == NULL && gc_object_is_ephemeron(weak)) weak[EPHEMERON_VALUE] = NULL;
    }
}

/* After the finalizable objects were revived: forgets the weak objects
 * that stayed dead, and follows those that moved. */
void gc_weak_list_forget_dead(gc_heap_t *heap, gc_vector_t *weaks) {
    size_t kept = 0;
    for (size_t i = 0; i < weaks->count; i++) {
        void **weak = gc_resolve(heap, weaks->items[i]);
        if (weak == NULL) continue; /* the weak reference itself died */
        weaks->items[kept++] = weak;
    }
    weaks->count = kept;
}

/* One pass of step 1 over a list, forwards or backwards: the value of
 * each live ephemeron with a marked key, traced as a slot (it may move)
 * and drained at once, so that a key the value leads to is marked before
 * the pass reaches its ephemeron. *progress: something new was marked;
 * *waiting: a live ephemeron's key was not marked (yet). */
static void ephemeron_list_trace(gc_heap_t *heap, gc_vector_t *weaks, gc_tracer_t *tracer, bool backwards,
                                 bool *progress, bool *waiting) {
    for (size_t n = 0; n < weaks->count; n++) {
        size_t i = backwards ? weaks->count - 1 - n : n;
        void **ephemeron = gc_resolve(heap, weaks->items[i]);
        if (ephemeron == NULL || !gc_object_is_ephemeron(ephemeron)) continue;
        void *key = ephemeron[EPHEMERON_KEY];
        if (key == NULL) continue;
        if (gc_resolve(heap, key) == NULL) {
            *waiting = true;
            continue;
        }
        gc_trace_slot(tracer, &ephemeron[EPHEMERON_VALUE]);
        /* whatever got marked was pushed (or dropped for a rescan) */
        if (tracer->depth != 0 || tracer->overflowed) {
            *progress = true;
            gc_mark_drain(tracer);
        }
    }
}

/* Passes alternate direction (as Lua's convergeephemerons does): a chain
 * of ephemerons, each value holding the next key, converges in one pass
 * in creation order and in the next in the reverse order, where passes
 * in one direction took one per link. Another pass is needed only when
 * this one marked something and left a key unmarked: a table whose keys
 * all live takes one. */
void gc_ephemerons_converge(gc_tracer_t *tracer) {
    gc_heap_t *heap = tracer->heap;
    if (!__atomic_load_n(&heap->has_ephemerons, __ATOMIC_RELAXED)) return;
    /* (values traced from the list stand for roots: in a minor collection
     * an old ephemeron's young value is found through the list again next
     * time, so no card is kept for it) */
    tracer->old_parent = NULL;
    gc_mark_drain(tracer);
    bool progress, waiting, backwards = false;
    do {
        progress = waiting = false;
        ephemeron_list_trace(heap, &heap->weaks, tracer, backwards, &progress, &waiting);
        for (gc_thread_t *t = heap->threads; t; t = t->next)
            ephemeron_list_trace(heap, &t->weaks, tracer, backwards, &progress, &waiting);
        backwards = !backwards;
    } while (progress && waiting);
}

static bool ephemeron_list_marked(gc_heap_t *heap, const gc_vector_t *weaks) {
    for (size_t i = 0; i < weaks->count; i++)
        if (gc_object_is_ephemeron(weaks->items[i]) && gc_is_marked(heap, weaks->items[i])) return true;
    return false;
}

/* collect.c, before anything may move: whether the objects marked so far
 * (those the pending finalizers reach) reach an ephemeron, whose value
 * the running finalizer may hold and which must then not move. */
bool gc_ephemerons_marked(gc_heap_t *heap) {
    if (!__atomic_load_n(&heap->has_ephemerons, __ATOMIC_RELAXED)) return false;
    if (ephemeron_list_marked(heap, &heap->weaks)) return true;
    for (gc_thread_t *t = heap->threads; t; t = t->next)
        if (ephemeron_list_marked(heap, &t->weaks)) return true;
    return false;
}

/* Whether obj is a cell that the running collection moved an object out
 * of: only while a tracer is open on this thread (a trace function, a
 * root callback or an error handler of that collection calling the
 * getters, which it must not). The cell still holds what the object held
 * when it was copied, which the copy's slots may no longer (an
 * ephemeron's value, rewritten when it is traced): the call is reported,
 * as the calls that take the heap's lock are, and gives NULL. */
static MULCH_NOINLINE bool moved_while_tracing(const void *obj, const char *fn) {
    block_t *b = obj ? pool_block_of(obj) : NULL;
    if (b == NULL || b->kind != BLOCK_EXTERNAL || !pool_block_has_flag(b, BLOCK_EVACUATE)) return false;
    const gc_heap_t *heap = b->external_owner;
    if (!heap->evacuating) return false;
    return gc_forwarded(heap, obj) != NULL && !gc_outside_tracing_slow_at(fn, obj);
}

void *gc_weak_get(const void *weak) {
    if (mulch_unlikely(mulch_gc_tracing_depth > 0) && moved_while_tracing(weak, "gc_weak_get")) return NULL;
    if (weak == NULL || gc_object_type(weak) != &weak_type) {
        mulch_report("gc_weak_get: not a weak reference", weak);
        return NULL;
    }
    /* atomic: a detach that cannot hand its weak list to the heap clears
     * its weak references while other threads run (gc/thread.c) */
    return __atomic_load_n(&((void *const *)weak)[0], __ATOMIC_RELAXED);
}

/* slot of an ephemeron, or a report naming fn and NULL */
static void *ephemeron_slot(const void *ephemeron, size_t slot, const char *fn) {
    if (mulch_unlikely(mulch_gc_tracing_depth > 0) && moved_while_tracing(ephemeron, fn)) return NULL;
    if (ephemeron == NULL || gc_object_type(ephemeron) != &ephemeron_type) {
        char message[96];
        snprintf(message, sizeof message, "%s: not an ephemeron", fn);
        mulch_report(message, ephemeron);
        return NULL;
    }
    return __atomic_load_n(&((void *const *)ephemeron)[slot], __ATOMIC_RELAXED);
}

void *gc_ephemeron_key(const void *ephemeron) {
    return ephemeron_slot(ephemeron, EPHEMERON_KEY, "gc_ephemeron_key");
}

void *gc_ephemeron_value(const void *ephemeron) {
    return ephemeron_slot(ephemeron, EPHEMERON_VALUE, "gc_ephemeron_value");
}
