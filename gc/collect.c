/* collect.c — one full collection, and running finalizers afterwards.
 *
 * With the world stopped (heap->lock held, every other thread parked or
 * blocking) gc_collect_locked:
 *   1. retires every bin and takes the threads' new finalizable objects and
 *      weak references;
 *   2. sweeps the spans the last collection left unswept, so that every
 *      span has valid alloc bits and clear mark bits, then starts an epoch;
 *   3. marks from the roots, then from the values of ephemerons whose
 *      keys got marked, until that marks nothing new (weak.c);
 *   4. clears weak references whose target is unmarked (and ephemerons
 *      whose key is);
 *   5. moves unmarked finalizable objects to `pending` and marks from them
 *      (they and what they reach survive until their finalizer has run,
 *      and so do the values of the ephemerons they revive), then forgets
 *      the weak references that did not survive;
 *   6. counts live cells per span: empty spans go back to the pool, spans
 *      with room are listed as available (unswept: the thread that takes
 *      one sweeps it), and the next trigger is set from the live bytes
 *      (gc_allocation_budget);
 *   7. once the pause is measured, tells the embedder (events.c: the
 *      collection callback, MULCH_GC_LOG), still with the world stopped.
 * Finalizers run after the world restarts (gc_run_finalizers), one at a
 * time per heap, each object staying in `pending` (a root) while its
 * finalizer runs.
 */
#include <time.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "gc_weak.h"

uint64_t gc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Before finalizable objects are revived: clears every weak reference
 * whose target died, in weak objects that died too (a finalizer may still
 * reach one, read it and keep it: they are revived with the finalizable
 * objects). The heap's lists, and the threads' own: gc_threads_flush
 * leaves a thread's list where it is when the heap's cannot grow (out of
 * memory). */
static void weak_refs_clear_dead(gc_heap_t *heap) {
    gc_weak_list_clear_dead(heap, &heap->weaks);
    for (gc_thread_t *t = heap->threads; t; t = t->next) gc_weak_list_clear_dead(heap, &t->weaks);
}

static void weak_refs_forget_dead(gc_heap_t *heap) {
    gc_weak_list_forget_dead(heap, &heap->weaks);
    for (gc_thread_t *t = heap->threads; t; t = t->next) gc_weak_list_forget_dead(heap, &t->weaks);
}

/* The dead objects of `list` go to pending: true when there was one. */
static bool finalizable_list_move_dead(gc_heap_t *heap, gc_vector_t *list, gc_tracer_t *tracer) {
    size_t kept = 0;
    bool any = false;
    for (size_t i = 0; i < list->count; i++) {
        void *obj = list->items[i], *now = gc_resolve(heap, obj);
        if (now == NULL) {
            any = true;
            if (gc_vector_push(&heap->pending, obj)) continue;
            /* No room in pending: it stays finalizable until the next
             * collection, so this sweep must not free it (marked in
             * place: the list keeps its address). */
            gc_mark_object(tracer, obj);
            now = obj;
        }
        list->items[kept++] = now;
    }
    list->count = kept;
    return any;
}

/* True when any object was kept for its finalizer (it may revive more). */
static bool finalizable_move_dead(gc_heap_t *heap, gc_tracer_t *tracer) {
    size_t first_new = heap->pending.count;
    bool any = finalizable_list_move_dead(heap, &heap->finalizable, tracer);
    for (gc_thread_t *t = heap->threads; t; t = t->next)
        any |= finalizable_list_move_dead(heap, &t->finalizable, tracer);
    /* Traced as slots: the objects (and what they reach) may move. */
    for (size_t i = first_new; i < heap->pending.count; i++) gc_trace_slot(tracer, &heap->pending.items[i]);
    gc_mark_drain(tracer);
    /* indexed where they stay: a collection moves no pending object */
    gc_pending_index_add_from(heap, first_new);
    return any;
}

/* The heap policy. The target is heap_growth x live: a budget of
 * heap_growth x basis - held bytes until the next collection, where basis
 * is the live bytes and held what stays in the heap (the same after a full
 * collection; after a minor one, also the old garbage, which a young
 * budget on top of it would let the heap grow past the target with). But a heap
 * that already reached a bigger size (its high-water mark, heap_bytes at
 * the start of a collection) may grow back into it, up to heap_keep x live
 * (default 1.5 x heap_growth): those pages were committed before, so
 * filling them again costs no more memory than the heap already took, and
 * a program whose live data shrank after a peak (binary-trees after its
 * stretch tree: 138 collections down to 90, 4.37 to 3.51 s, peak RSS 204
 * to 176 MiB) collects less often. The room is measured from heap_bytes now,
 * not from the live bytes, so that a fragmented heap (its sparse spans
 * awaiting evacuation) does not grow past its peak. heap_keep bounds what
 * an early spike can hold on to; MULCH_GC_HEAP_KEEP=1 turns the rule off. */
/* x as a size_t, SIZE_MAX when it is that much or more: a conversion out of
 * range is undefined (x86-64 made 2^64 a 0, so PTRDIFF_MAX external bytes
 * gave the smallest budget instead of none). x is never NaN or negative. */
static size_t size_of_double(double x) {
    return x >= (double)SIZE_MAX ? SIZE_MAX : (size_t)x;
}

size_t gc_allocation_budget(const gc_heap_t *heap, size_t basis, size_t held) {
    double growth = heap->options.heap_growth; /* in (1, GC_MAX_HEAP_GROWTH]: options_resolve */
    size_t target = size_of_double((double)basis * growth);
    size_t budget = target > held ? target - held : 0;
    if (heap->heap_keep > growth) {
        double cap = (double)basis * heap->heap_keep;
        size_t room = cap < (double)heap->high_water ? (size_t)cap : heap->high_water; /* NaN: high_water */
        size_t now = atomic_load_explicit(&heap->heap_bytes, memory_order_relaxed);
        if (room > now && room - now > budget) budget = room - now;
    }
    return budget > heap->options.initial_heap ? budget : heap->options.initial_heap;
}

/* The span's survivors; *aged: those that stay young after a minor
 * collection (generation.c: marked, age bit clear, until the sweep), 0
 * after a full one. One pass over the bitmaps. */
static size_t span_popcount(const gc_heap_t *heap, const block_t *b, size_t *aged) {
    const uint64_t *mark = gc_span_mark_bits(b), *age = gc_span_age_bits(b);
    size_t live = 0, young = 0;
    if (heap->sweep_ages) {
        for (uint32_t w = 0; w < gc_span_words(b); w++) {
            live += (size_t)bits_count64(mark[w]);
            young += (size_t)bits_count64(mark[w] & ~age[w]);
        }
    } else {
        for (uint32_t w = 0; w < gc_span_words(b); w++) live += (size_t)bits_count64(mark[w]);
    }
    *aged = young;
    return live;
}

static void spans_account(gc_heap_t *heap) {
    for (unsigned cls = 0; cls < GC_ALL_CLASSES; cls++) heap->available[cls] = heap->sparse[cls] = NULL;
    size_t live_bytes = 0, aged_bytes = 0;
    for (size_t s = heap->spans.count; s-- > 0;) {
        block_t *b = heap->spans.items[s];
        size_t aged;
        size_t live = span_popcount(heap, b, &aged);
        if (live == 0) {
            gc_span_release(heap, b);
            continue;
        }
        b->used = (uint32_t)live;
        live_bytes += live * b->cell_size;
        aged_bytes += aged * b->cell_size;
    }
    gc_evacuation_plan(heap);
    for (size_t s = heap->spans.count; s-- > 0;) {
        block_t *b = heap->spans.items[s];
        /* (spans flagged for evacuation go on the sparse list: see
         * gc_span_list_locked) */
        if (b->used < b->capacity && b->size_class != GC_LARGE_CLASS) gc_span_list_locked(heap, b);
    }
    heap->live_bytes = live_bytes;
    heap->aged_bytes = aged_bytes;
    ptrdiff_t external = atomic_load_explicit(&heap->external_bytes, memory_order_relaxed);
    size_t basis = live_bytes + (external > 0 ? (size_t)external : 0);
    heap->trigger = gc_allocation_budget(heap, basis, basis);
    atomic_store_explicit(&heap->allocated_since_gc, 0, memory_order_relaxed);
}

/* Spans the collection emptied (compaction empties many) sit free in the
 * pool. Until the next collection the heap will take back about `trigger`
 * bytes of them: keep that much committed (returning it would only fault
 * it in again) and give the rest back, so that RSS follows the heap down. */
static void pool_trim_if_idle(gc_heap_t *heap) {
    size_t idle = atomic_load_explicit(&heap->pool->free_committed, memory_order_relaxed);
    size_t slack = (size_t)16 << 20;
    size_t keep = heap->trigger > SIZE_MAX - slack ? SIZE_MAX : heap->trigger + slack; /* an unbounded budget */
    if (idle > keep) pool_block_trim(heap->pool, keep);
}

void gc_heap_sweep_all(gc_heap_t *heap) {
    gc_threads_flush(heap);
    for (size_t s = 0; s < heap->spans.count; s++) gc_span_ensure_swept(heap, heap->spans.items[s]);
}

void gc_collect_locked(gc_heap_t *heap, gc_thread_t *self, bool minor_allowed, int reason) {
    /* MULCH_GC_VERIFY: the embedder's mistakes (a store that bypassed
     * gc_write, a root left dangling) show before the collection that
     * would act on them, and the collector's own after it; neither check
     * counts in the pause */
    if (mulch_unlikely(heap->verify_each)) gc_verify_locked(heap);
    uint64_t start = gc_now_ns();
    size_t held = atomic_load_explicit(&heap->heap_bytes, memory_order_relaxed);
    if (held > heap->high_water) heap->high_water = held;
    gc_heap_sweep_all(heap);
    uint64_t swept = gc_now_ns();
    heap->epoch++;
    bool minor = gc_generation_begin(heap, minor_allowed);

    gc_tracer_t *tracer = gc_heap_tracer_open(heap, "gc_collect");
    /* Minor collections never move (old objects are not traced to be fixed). */
    bool evacuate = !minor && gc_evacuation_prepare(heap);
    uint64_t mark_start = gc_now_ns();
    /* A running (or waiting) finalizer holds its object's address and may
     * hold those of everything reachable from it: mark all of that in place
     * before anything may move (gc_evacuation_prepare kept only the pending
     * objects' own spans). */
    if (evacuate && heap->pending.count) {
        gc_trace_range(tracer, heap->pending.items, heap->pending.count);
        gc_mark_drain(tracer);
        /* The values of the ephemerons they reach are reachable from them
         * too once their keys prove live, which only the whole marking
         * tells: then nothing moves this time (evacuation is optional). */
        if (gc_ephemerons_marked(heap)) evacuate = false;
    }
    gc_tracer_set_mode(tracer, evacuate, minor);
    if (heap->options.conservative_stack) {
        /* First, before anything moves: what the stacks hold stays put. */
        if (self) gc_thread_save_context(self, NULL);
        gc_conservative_scan(tracer);
    }
    gc_roots_trace(tracer);
    gc_mark_parallel(tracer, minor ? gc_generation_trace_cards : NULL);
    gc_ephemerons_converge(tracer);
    weak_refs_clear_dead(heap);
    if (finalizable_move_dead(heap, tracer)) gc_ephemerons_converge(tracer); /* what they revived */
    weak_refs_forget_dead(heap);
    uint64_t mark_end = gc_now_ns();
    gc_bridge_after_mark(heap);
    gc_hashes_after_mark(heap);
    gc_evacuation_finish(heap);
    heap->bytes_moved += tracer->bytes_moved;
    size_t moved = tracer->bytes_moved;
    gc_tracer_free(tracer);

    spans_account(heap);
    gc_generation_end(heap, minor);
    pool_trim_if_idle(heap);
    heap->collections++;
    heap->spans_taken_at_gc = heap->spans_taken;
    uint64_t pause = gc_now_ns() - start;
    heap->pause_ns_total += pause;
    if (pause > heap->pause_ns_max) heap->pause_ns_max = pause;
    heap->mark_ns_total += mark_end - mark_start;
    heap->sweep_ns_total += swept - start;
    heap->collections_minor += minor;
    if (heap->collection_fn != NULL || heap->log_collections) {
        gc_collection_info_t info = {
            .sequence = heap->collections,
            .reason = reason,
            .minor = minor,
            .markers = heap->last_markers,
            .pause_ns = pause,
            .sweep_ns = swept - start,
            .mark_ns = mark_end - mark_start,
            .heap_bytes_before = held,
            .heap_bytes_after = atomic_load_explicit(&heap->heap_bytes, memory_order_relaxed),
            .live_bytes = heap->live_bytes,
            .bytes_moved = moved,
            .budget = heap->trigger,
        };
        gc_collection_report(heap, &info);
    }
    if (mulch_unlikely(heap->verify_each)) gc_verify_locked(heap);
}

/* obj's finalizer has run: it leaves `pending`. (Nested collections may
 * have appended any number of objects: the index says where it is.) */
static void finalized_locked(gc_heap_t *heap, void *obj) {
    gc_pending_remove(heap, obj);
    heap->finalizing_object = NULL;
    heap->objects_finalized++;
}

void gc_finalizer_thread_exiting_locked(gc_heap_t *heap, gc_thread_t *t) {
    if (!heap->finalizing || heap->finalizer_thread != t) return;
    /* Its thread ended inside a finalizer or an rc destroy callback (a
     * cancellation point there, or pthread_exit): that finalizer does not
     * run again, and the role passes on, as at its normal end. */
    if (heap->finalizing_object != NULL) finalized_locked(heap, heap->finalizing_object);
    heap->finalizing = false;
    heap->finalizer_thread = NULL;
    pthread_cond_broadcast(&heap->changed);
}

void gc_run_finalizers(gc_thread_t *t) {
    gc_heap_t *heap = t->heap;
    pthread_mutex_lock(&heap->lock);
    if (heap->finalizing || (heap->pending.count == 0 && heap->rc_to_release.count == 0)) {
        pthread_mutex_unlock(&heap->lock);
        return;
    }
    heap->finalizing = true;
    heap->finalizer_thread = t;
    while (heap->pending.count) {
        /* Run the newest; it stays in `pending` (a root) until done. */
        size_t i = heap->pending.count - 1;
        void *obj = heap->pending.items[i];
        heap->finalizing_object = obj;
        /* every object goes at a destroy: the weak references that earlier
         * finalizers made are cleared before this one runs */
        if (heap->destroying) gc_weak_lists_clear_all_locked(heap);
        pthread_mutex_unlock(&heap->lock);
        gc_header_type(obj)->finalize(obj); /* finalizable objects have a header */
        pthread_mutex_lock(&heap->lock);
        finalized_locked(heap, obj);
    }
    if (heap->destroying) gc_weak_lists_clear_all_locked(heap); /* (before rc destroy callbacks too) */
    gc_bridge_release_pending(heap);
    heap->finalizing = false;
    heap->finalizer_thread = NULL;
    pthread_cond_broadcast(&heap->changed);
    pthread_mutex_unlock(&heap->lock);
}

/* gc_collect's promise: every finalizer its collection made pending has
 * run. When another thread is running finalizers, and took some of them
 * (`made`), wait for it — as a blocking thread, so that collections can
 * go on meanwhile. With none made, no wait: a finalizer that waits for
 * this gc_collect would otherwise never end, nor would it. A finalizer's
 * own nested gc_collect returns at once (finalizers never nest). */
static void gc_finish_finalizers(gc_thread_t *t, bool made) {
    gc_heap_t *heap = t->heap;
    gc_run_finalizers(t);
    if (!made) return;
    pthread_mutex_lock(&heap->lock);
    while (heap->finalizing && heap->finalizer_thread != t) {
        if (heap->options.conservative_stack) gc_thread_save_context(t, NULL);
        t->state = GC_BLOCKING;
        heap->running--;
        pthread_cond_broadcast(&heap->changed);
        gc_cond_wait(&heap->changed, &heap->lock);
        while (heap->collecting) gc_cond_wait(&heap->changed, &heap->lock);
        t->state = GC_RUNNING;
        heap->running++;
        if (!heap->finalizing && heap->pending.count) {
            pthread_mutex_unlock(&heap->lock);
            gc_run_finalizers(t);
            pthread_mutex_lock(&heap->lock);
        }
    }
    pthread_mutex_unlock(&heap->lock);
}

void gc_collect(gc_thread_t *t) {
    if (!gc_thread_check(t, "gc_collect")) return;
    /* gc_world_stop counts the caller out of heap->running, which a
     * blocking thread is not in: the count would go wrong (a hang, or a
     * collection while another thread runs). */
    if (!gc_thread_outside_blocking(t, "gc_collect")) return;
    gc_world_stop(t, false);
    /* (with the world stopped only the collection adds to these; the
     * finalizing thread takes from them under the lock) */
    gc_heap_t *heap = t->heap;
    size_t pending = heap->pending.count, releases = heap->rc_to_release.count;
    gc_collect_locked(heap, t, false, GC_REASON_EXPLICIT);
    bool made = heap->pending.count > pending || heap->rc_to_release.count > releases;
    gc_world_start_heap(heap, t);
    gc_finish_finalizers(t, made);
}
