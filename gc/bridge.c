/* bridge.c — the collector's side of the rc bridge (runtime/bridge.c is
 * the other side; the collector never calls the rc layer directly, it is
 * handed a release function). gc_report_bridge_cycles' search is in
 * bridge_cycles.c.
 *
 * Handle slots are roots the collector rewrites like any other and sets to
 * NULL when the heap is destroyed. Ownership pairs (GC object, rc object)
 * are checked after marking, after finalizable objects were revived: a pair
 * whose GC object is unmarked is moved to rc_to_release, released after
 * the pause by the thread running finalizers — so an owner's finalizer has
 * run (one collection earlier) before its rc objects are released.
 * All lists are under heap->lock.
 *
 * Each pair also keeps its rc object's pool's id (the tag), handed back
 * with the release: a pool destroyed meanwhile freed the object, and the
 * release then lets go of nothing (runtime/bridge.c). After any
 * pool_destroy, the check after marking drops such pairs unreleased, so
 * that they neither pile up under a long-lived owner nor name a cell that
 * a handle may now occupy (gc_report_bridge_cycles would take the owner
 * for the handle's). The bridge cycle search skips them too.
 *
 * Invariant: rc_to_release (and release_tags) has room for its items plus
 * every pair's (capacity >= rc_to_release.count + owned_rcs.count),
 * reserved by gc_owned_add, which is allowed to fail. Moving pairs there after marking,
 * or all of them at heap destroy, then never needs memory: a failure there
 * would lose the reference, or keep a dead owner's address that a new
 * object may take over.
 */
#include "gc_internal.h"
#include "gc_mark.h"
#include "gc_weak.h"

bool gc_handle_slot_add(gc_heap_t *heap, gc_handle_payload_t *payload, void (*free_kept)(void *)) {
    pthread_mutex_lock(&heap->lock);
    heap->handle_free = free_kept;
    payload->slot_index = heap->handle_slots.count;
    bool ok = gc_vector_push(&heap->handle_slots, &payload->obj);
    pthread_mutex_unlock(&heap->lock);
    return ok;
}

/* Guards every payload's `heap` against gc_heap_destroy: a handle's last
 * release on one thread may race the heap's destroy on another, which
 * unmaps the heap (and its lock) once the payloads are detached. Taken
 * before a heap's lock, never under one. */
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;

void gc_bridge_fork_lock(void) {
    pthread_mutex_lock(&handles_lock);
}
void gc_bridge_fork_unlock(void) {
    pthread_mutex_unlock(&handles_lock);
}

/* Swap-remove by the payload's recorded index: a program holding many
 * handles releases them in any order at O(1) each (a scan made releasing
 * n handles oldest first cost O(n^2)). */
void gc_handle_slot_remove(gc_handle_payload_t *payload) {
    pthread_mutex_lock(&handles_lock);
    gc_heap_t *heap = payload->heap;
    if (heap == NULL) {
        pthread_mutex_unlock(&handles_lock);
        return;
    }
    pthread_mutex_lock(&heap->lock);
    gc_vector_t *slots = &heap->handle_slots;
    size_t i = payload->slot_index;
    if (i < slots->count && slots->items[i] == (void *)&payload->obj) {
        gc_handle_payload_t *last = slots->items[--slots->count];
        slots->items[i] = last;
        last->slot_index = i;
    }
    pthread_mutex_unlock(&heap->lock);
    pthread_mutex_unlock(&handles_lock);
}

gc_handle_read_t gc_handle_read_unwaited(const gc_handle_payload_t *payload, void **obj) {
    pthread_mutex_lock(&handles_lock); /* the heap is not unmapped under us */
    gc_heap_t *heap = payload->heap;
    if (heap == NULL) { /* destroyed: the payload was cleared */
        pthread_mutex_unlock(&handles_lock);
        *obj = NULL;
        return GC_HANDLE_READ_OK;
    }
    /* (collections move objects and rewrite the slot under this lock) */
    pthread_mutex_lock(&heap->lock);
    *obj = payload->obj;
    bool stays = *obj == NULL || gc_object_pinned_locked(heap, *obj);
    pthread_mutex_unlock(&heap->lock);
    pthread_mutex_unlock(&handles_lock);
    return stays ? GC_HANDLE_READ_OK : GC_HANDLE_READ_MOVABLE;
}

bool gc_owned_add(gc_heap_t *heap, void *obj, void *rc_obj, uintptr_t tag, void (*release)(void *, uintptr_t)) {
    pthread_mutex_lock(&heap->lock);
    heap->release_rc = release;
    size_t room = heap->rc_to_release.count + heap->owned_rcs.count + 1;
    bool ok = gc_vector_reserve(&heap->rc_to_release, room) && gc_vector_reserve(&heap->release_tags, room)
              && gc_vector_push(&heap->owned_objects, obj);
    if (ok && !gc_vector_push(&heap->owned_rcs, rc_obj)) {
        heap->owned_objects.count--;
        ok = false;
    }
    if (ok && !gc_vector_push(&heap->owned_tags, (void *)tag)) {
        heap->owned_objects.count--;
        heap->owned_rcs.count--;
        ok = false;
    }
    pthread_mutex_unlock(&heap->lock);
    return ok;
}

void gc_bridge_trace_roots(gc_tracer_t *tracer) {
    gc_heap_t *heap = tracer->heap;
    for (size_t i = 0; i < heap->handle_slots.count; i++) gc_trace_slot(tracer, heap->handle_slots.items[i]);
}

/* Whether a pair's pool is gone: asked only when a pool was destroyed
 * since the last check (check true). */
static bool pair_pool_gone(bool check, const void *tag) {
    return check && !pool_id_alive((uint64_t)(uintptr_t)tag);
}

bool gc_bridge_pair_live(const gc_heap_t *heap, size_t i) {
    return !pair_pool_gone(pool_destroy_count() != heap->owned_pools_destroyed, heap->owned_tags.items[i]);
}

void gc_bridge_after_mark(gc_heap_t *heap) {
    size_t kept = 0;
    uint64_t destroyed = pool_destroy_count();
    bool check = destroyed != heap->owned_pools_destroyed;
    heap->owned_pools_destroyed = destroyed;
    for (size_t i = 0; i < heap->owned_objects.count; i++) {
        void *obj = heap->owned_objects.items[i], *rc_obj = heap->owned_rcs.items[i];
        void *tag = heap->owned_tags.items[i];
        if (pair_pool_gone(check, tag)) continue; /* its pool freed the object: nothing to release */
        void *now = gc_resolve(heap, obj);
        if (now == NULL) {
            /* cannot fail: the room was reserved by gc_owned_add */
            heap->rc_to_release.items[heap->rc_to_release.count++] = rc_obj;
            heap->release_tags.items[heap->release_tags.count++] = tag;
            continue;
        }
        heap->owned_objects.items[kept] = now; /* moved, or not */
        heap->owned_rcs.items[kept] = rc_obj;
        heap->owned_tags.items[kept] = tag;
        kept++;
    }
    heap->owned_objects.count = heap->owned_rcs.count = heap->owned_tags.count = kept;
}

/* Caller holds heap->lock and the finalizing role; releases without it. */
void gc_bridge_release_pending(gc_heap_t *heap) {
    while (heap->rc_to_release.count) {
        void *rc_obj = heap->rc_to_release.items[--heap->rc_to_release.count];
        uintptr_t tag = (uintptr_t)heap->release_tags.items[--heap->release_tags.count];
        /* every object goes at a destroy: weak references that earlier
         * destroy callbacks made are cleared before this one runs (as
         * before each finalizer: gc_run_finalizers) */
        if (heap->destroying) gc_weak_lists_clear_all_locked(heap);
        /* read under the lock: gc_owned_add stores it on other threads */
        void (*release)(void *, uintptr_t) = heap->release_rc;
        pthread_mutex_unlock(&heap->lock);
        release(rc_obj, tag);
        pthread_mutex_lock(&heap->lock);
    }
}

/* Caller holds neither lock. */
static void handles_detach(gc_heap_t *heap) {
    pthread_mutex_lock(&handles_lock);
    pthread_mutex_lock(&heap->lock);
    for (size_t i = 0; i < heap->handle_slots.count; i++) {
        gc_handle_payload_t *payload = heap->handle_slots.items[i];
        payload->obj = NULL;
        /* (atomic: gc_handle_get's fast path reads it without this lock,
         * on a thread attached to the heap, which is then none of this
         * one's: a misused get elsewhere must not be a data race) */
        __atomic_store_n(&payload->heap, NULL, __ATOMIC_RELAXED);
        /* a kept one (its last release was refused) is ours to free */
        if (atomic_fetch_or_explicit(&payload->kept, GC_HANDLE_DETACHED, memory_order_acq_rel) & GC_HANDLE_KEPT)
            heap->handle_free(payload);
    }
    heap->handle_slots.count = 0;
    pthread_mutex_unlock(&heap->lock);
    pthread_mutex_unlock(&handles_lock);
}

void gc_bridge_destroy(gc_heap_t *heap) {
    /* The releases run destroy callbacks under the finalizer rules: they
     * may make handles and owned references on this heap. Repeat until they
     * stop (boundedly, as gc_heap_destroy's finalizer rounds); whatever is
     * left then is dropped, but no handle keeps pointing at the heap. */
    for (int round = 0; round < 64; round++) {
        handles_detach(heap);
        pthread_mutex_lock(&heap->lock);
        bool done = heap->owned_rcs.count == 0 && heap->rc_to_release.count == 0;
        if (!done) {
            /* reserved: cannot fail */
            gc_vector_append(&heap->rc_to_release, &heap->owned_rcs);
            gc_vector_append(&heap->release_tags, &heap->owned_tags);
            heap->owned_objects.count = 0;
            gc_bridge_release_pending(heap);
        }
        pthread_mutex_unlock(&heap->lock);
        if (done) break;
    }
    handles_detach(heap);
    gc_vector_free(&heap->handle_slots);
    gc_vector_free(&heap->owned_objects);
    gc_vector_free(&heap->owned_rcs);
    gc_vector_free(&heap->owned_tags);
    gc_vector_free(&heap->rc_to_release);
    gc_vector_free(&heap->release_tags);
}
