/* bridge.c — rc objects and collected objects holding each other.
 *
 * gc_handle_new: an rc object whose payload is a root slot of the heap
 * (gc/bridge.c traces it and rewrites it when objects move); its destroy
 * callback unregisters the slot (under the bridge's handles lock, so a
 * release racing gc_heap_destroy never locks an unmapped heap). A last
 * release from a trace, root or heap-walk callback cannot take the heap's
 * lock: it is reported, and the slot stays registered, rooting nothing,
 * with its memory kept from the pool until gc_heap_destroy (gc/bridge.c,
 * the payload's `kept`). gc_heap_destroy clears the payload, so a
 * handle outliving its heap answers NULL and its destroy does nothing.
 * gc_handle_get reads the slot without a lock on a thread the collector
 * waits for (attached, outside a blocking region); any other thread may
 * read only what stays put (NULL, a pinned object, a destroyed heap's
 * NULL), under the handles' and the heap's locks, and is reported else.
 * Handles live in the default pool, which outlives every heap.
 *
 * gc_own_rc: retains the rc object for the GC object (failing if its count
 * is 0 already: its cell would soon be another object's) and records the pair;
 * the collector hands the reference back to rc_release_now (its destroys
 * run at once, also inside a destroy callback) after the owner is
 * reclaimed (after its finalizer, outside the pause), or at heap destroy.
 *
 * Cycles through the bridge (a handle rooting an object that owns that
 * handle) keep themselves alive by construction: gc_report_bridge_cycles
 * finds them (docs/rc.md shows how to break one).
 *
 * An owned reference's release checks that the object's pool still
 * lives (rc_release_owned): pool_destroy frees its live rc objects,
 * GC-owned ones included, and the owner's later death would otherwise
 * release whatever took the cell (another pool's live object). The pool
 * is named by its id, which no later pool shares; pool_destroy itself
 * touches no heap.
 *
 * rc_wait_blocked: pool_destroy's wait for another thread's destroy
 * callback (rc.c) is a blocking region of every heap the waiting thread
 * is attached to, as fork's prepare handler is (the same functions): the
 * callback may collect, and its collection would otherwise wait for the
 * waiting thread.
 */
#include "gc_internal.h"
#include "rc_internal.h"

static void handle_destroy(void *obj) {
    gc_handle_payload_t *payload = obj;
    /* (the report names the handle: rc_release was passed it, or the
     * object whose destroy released it) */
    if (!gc_outside_tracing("gc_handle's last rc_release", obj)) {
        /* Reported: this thread may hold the heap's lock (a heap-walk
         * callback, a root callback), which removing the slot takes. The
         * slot stays registered, rooting nothing, and so does its memory
         * (kept from the pool: the heap still reads it) until the heap's
         * destroy lets go of it — or already did (then it is freed now). */
        __atomic_store_n(&payload->obj, NULL, __ATOMIC_RELAXED);
        rc_destroy_keep_memory();
        if (atomic_fetch_or_explicit(&payload->kept, GC_HANDLE_KEPT, memory_order_acq_rel) & GC_HANDLE_DETACHED)
            rc_free_kept(payload);
        return;
    }
    gc_handle_slot_remove(payload);
}

/* Whether the caller may root obj: only a thread attached to heap, outside
 * a blocking region, keeps a collection from moving or freeing obj between
 * the caller's last GC point and the slot's registration (any other thread
 * races it: the handle rooted a stale address), unless obj is pinned.
 * Two loads of this thread's own attachment list: reported when not. */
static bool handle_new_may_root(gc_heap_t *heap, const void *obj) {
    gc_thread_t *self = gc_thread_current(heap);
    /* a pinned object stays alive and in place whichever thread names it
     * (gc_pin: "any thread"); the pin table's lock is taken only here */
    if ((self == NULL || self->blocking_depth != 0) && gc_object_pinned(heap, obj)) return true;
    if (self == NULL) {
        mulch_report("gc_handle_new: calling thread not attached to the heap (a collection may move or free obj; "
                     "only a handle to NULL or to a pinned object may be made from it)",
                     obj);
        return false;
    }
    return gc_thread_outside_blocking(self, "gc_handle_new");
}

gc_handle_t *gc_handle_new(gc_heap_t *heap, void *obj) {
    uint32_t index;
    if (!gc_heap_given(heap, "gc_handle_new")) return NULL;
    if (obj != NULL && !handle_new_may_root(heap, obj)) return NULL;
    if (obj != NULL && gc_object_span(heap, obj, &index) == NULL) {
        mulch_report("gc_handle_new: not a GC object of this heap", obj);
        return NULL;
    }
    if (obj != NULL && !gc_object_live(heap, obj, "gc_handle_new")) return NULL;
    /* From the default pool: a handle may outlive its heap, and with it the
     * heap's own pool. Counted atomically by every thread (shared): its
     * last release, on whichever thread, unroots the object at once. */
    /* Not merging the queue: its destroy callbacks may collect, and obj
     * is not rooted yet (gc_handle_new is no GC point). */
    gc_handle_payload_t *payload = rc_alloc_shared_no_merge(pool_default(), sizeof *payload, handle_destroy,
                                                                     __builtin_return_address(0));
    if (payload == NULL) return NULL;
    payload->obj = obj;
    payload->heap = heap;
    if (!gc_handle_slot_add(heap, payload, rc_free_kept)) {
        payload->heap = NULL;
        rc_release_no_merge(payload); /* (its destroy does nothing now) */
        return NULL;
    }
    return (gc_handle_t *)payload;
}

/* gc_handle_get on a thread a collection does not wait for (not attached
 * to the handle's heap, or inside a blocking region; or the heap was
 * destroyed): the address it read could move or die at once, stale when
 * returned. Allowed for a handle to NULL, of a destroyed heap (NULL), or
 * to a pinned object (it stays in place); otherwise reported, NULL. */
static MULCH_NOINLINE void *handle_get_unwaited(const gc_handle_t *handle, gc_thread_t *self) {
    /* (a trace function, root or heap-walk callback may run with the
     * heap's lock held, which the read below takes) */
    if (!gc_outside_tracing("gc_handle_get", handle)) return NULL;
    void *obj;
    if (gc_handle_read_unwaited((const gc_handle_payload_t *)handle, &obj) == GC_HANDLE_READ_OK) return obj;
    if (self != NULL) {
        (void)gc_thread_outside_blocking(self, "gc_handle_get");
        return NULL;
    }
    mulch_report("gc_handle_get: calling thread not attached to the heap (a collection may move or free the "
                 "object; only a handle to NULL or to a pinned object may be read from it)",
                 handle);
    return NULL;
}

void *gc_handle_get(const gc_handle_t *handle) {
    if (handle == NULL) return NULL;
    /* a released handle is a destroyed rc object (its cell freed): its
     * payload still held the old object, handed out without a report */
    if (!rc_check(handle, "gc_handle_get")) return NULL;
    /* any other rc object (C converts every void * to a gc_handle_t *):
     * its payload's first word was handed out as a GC object */
    if (mulch_unlikely(rc_header_of(handle)->destroy != handle_destroy)) {
        mulch_report("gc_handle_get: not a gc_handle", handle);
        return NULL;
    }
    const gc_handle_payload_t *payload = (const gc_handle_payload_t *)handle;
    /* Only a thread the collector waits for (attached to the heap, outside
     * a blocking region) reads the slot between two of its GC points: no
     * collection moves the object, or destroys the heap, meanwhile. */
    gc_heap_t *heap = __atomic_load_n(&payload->heap, __ATOMIC_RELAXED);
    gc_thread_t *self = heap != NULL ? gc_thread_current(heap) : NULL;
    if (mulch_likely(self != NULL && self->blocking_depth == 0)) return payload->obj;
    return handle_get_unwaited(handle, self);
}

/* gc_own_rc's check of rc_obj beyond rc_check's, which (on rc's fast
 * paths) trusts the magic word in front of any pointer into pool memory:
 * a GC object, or a pointer inside any cell, whose bytes there held the
 * magic was taken for a live rc object, its "count" incremented inside the
 * cell, and the collector's release later destroyed and freed a cell that
 * is no rc object. An rc object's header starts a cell of a pool's own
 * span (or a large object's mapping, which no block describes). Reported
 * as rc_check_slow words it. */
static bool own_rc_starts_cell(const void *rc_obj) {
    const block_t *b = pool_block_of(rc_obj);
    if (b == NULL) return true; /* not in a blocks chunk: rc_check decides */
    if (rc_payload_place(b, rc_obj)) return true;
    mulch_report("gc_own_rc: not an rc object", rc_obj);
    return false;
}

/* The collector lets go of the reference gc_own_rc took, unless the
 * object's pool (named by its id then) was destroyed meanwhile: that freed
 * the object, and its cell may hold another pool's live object now. While
 * its pool lives the object does (the reference counts), and no header is
 * read to find out: the cell's chunk may be another pool's, being
 * destroyed. A pool_destroy of the object's own pool racing this release
 * (the owner died, and the program no longer holds the object) waits
 * for it: the release is registered before it asks, and pool_destroy,
 * once it marked the pool as being destroyed (so that releases registered
 * later find it gone), waits for the registered ones before it frees
 * anything (rc_drains_wait_pool). */
static void rc_release_owned(void *rc_obj, uintptr_t pool_id) {
    rc_owned_release_t release;
    /* in sight of pool_destroy, which waits until the destroy below
     * returned (rc_drains_wait_pool) */
    rc_owned_release_begin(&release, pool_id);
    pthread_cleanup_push(rc_owned_release_end, &release);
    if (pool_id_alive(pool_id)) rc_release_now(rc_obj);
    pthread_cleanup_pop(1);
}

int gc_own_rc(gc_thread_t *thread, void *obj, void *rc_obj) {
    uint32_t index;
    if (!gc_thread_given(thread, "gc_own_rc")) return -1;
    /* before anything reads *thread: a detached record is unmapped, and
     * another thread's safepoint would park its owner's record while the
     * owner runs (as gc_weak_new) */
    if (!gc_thread_check(thread, "gc_own_rc")) return -1;
    if (gc_object_span(thread->heap, obj, &index) == NULL) {
        mulch_report("gc_own_rc: not a GC object of this heap", obj);
        return -1;
    }
    if (!gc_object_live(thread->heap, obj, "gc_own_rc")) return -1;
    if (!gc_thread_outside_blocking(thread, "gc_own_rc")) return -1;
    if (!own_rc_starts_cell(rc_obj) || !rc_check(rc_obj, "gc_own_rc")) return -1;
    /* (a count at 0 already, its destroy pending, must not be recorded:
     * the collector would later release whatever took its cell) */
    if (!rc_retain_checked(rc_obj)) return -1;
    uintptr_t pool_id = (uintptr_t)chunk_of(rc_header_of(rc_obj))->pool->id;
    if (!gc_owned_add(thread->heap, obj, rc_obj, pool_id, rc_release_owned)) {
        rc_release(rc_obj);
        return -1;
    }
    gc_safepoint(thread); /* a GC point, as the contract lists */
    return 0;
}

size_t gc_report_bridge_cycles(gc_heap_t *heap, FILE *out) {
    if (!gc_heap_given(heap, "gc_report_bridge_cycles")) return 0;
    if (out == NULL) out = stderr;
    gc_thread_t *self = gc_thread_current(heap);
    /* (no cancellation while the world is stopped and the heap's lock held,
     * nor before the text's mapping is given back) */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    gc_world_stop_heap(heap, self);
    gc_threads_flush(heap);
    for (size_t s = 0; s < heap->spans.count; s++) gc_span_ensure_swept(heap, heap->spans.items[s]);
    gc_report_text_t text = { 0 };
    size_t cycles = gc_bridge_cycles_locked(heap, &text);
    gc_world_start_heap(heap, self);
    /* Written with the world running and no lock of mulch's held: a
     * stream's write function (fopencookie) may call gc_alloc, gc_collect,
     * rc_release or this function again; with the world stopped it
     * deadlocked. */
    if (text.length) fwrite(text.bytes, 1, text.length, out);
    if (text.failed) fputs("mulch bridge cycles: out of memory for the rest of the report\n", out);
    gc_report_text_free(&text);
    pthread_setcancelstate(cancel_state, NULL);
    return cycles;
}

void rc_wait_blocked(bool blocked) {
    if (blocked) gc_threads_fork_block(GC_CALLER_SP());
    else gc_threads_fork_unblock();
}
