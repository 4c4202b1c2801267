/* events.c — what a heap tells about each collection: the embedder's
 * collection callback (gc_set_collection_callback) and MULCH_GC_LOG's line
 * on stderr, and MULCH_GC_LOG's summary line when the heap is destroyed
 * (its gc_get_stats figures: the collections, pauses, peak size).
 *
 * Both run at the end of gc_collect_locked, on the collecting thread, with
 * the heap's lock held and the world stopped, after the pause was measured
 * (neither counts in it), and with cancellation disabled. The callback
 * runs with the tracing depth raised, as a trace function does: a mulch
 * call from it that could take the heap's lock or collect is reported and
 * refused (gc_outside_tracing), not a deadlock; gc_get_stats of the heap
 * reads it without the lock (mulch_gc_reporting_heap). The log line is one
 * fputs of one buffer, so that lines of two heaps collecting at once do
 * not interleave within a line.
 */
#include <inttypes.h>
#include <stdio.h>

#include "gc_internal.h"

_Thread_local const gc_heap_t *mulch_gc_reporting_heap MULCH_TLS_MODEL;

static const char *reason_name(int reason) {
    switch (reason) {
    case GC_REASON_EXPLICIT: return "gc_collect";
    case GC_REASON_HEAP_LIMIT: return "heap limit";
    default: return "allocation";
    }
}

static double mebibytes(size_t bytes) { return (double)bytes / (1024.0 * 1024.0); }
static double milliseconds(uint64_t ns) { return (double)ns / 1e6; }

static void log_collection(const gc_heap_t *heap, const gc_collection_info_t *info) {
    char line[320];
    snprintf(line, sizeof line,
             "mulch gc %p #%" PRIu64 ": %s (%s), pause %.3f ms (sweep %.3f, mark %.3f; %u marker%s), "
             "heap %.1f -> %.1f MiB, live %.1f MiB, moved %.1f MiB, next after %.1f MiB\n",
             (const void *)heap, info->sequence, info->minor ? "minor" : "full", reason_name(info->reason),
             milliseconds(info->pause_ns), milliseconds(info->sweep_ns), milliseconds(info->mark_ns), info->markers,
             info->markers == 1 ? "" : "s", mebibytes(info->heap_bytes_before), mebibytes(info->heap_bytes_after),
             mebibytes(info->live_bytes), mebibytes(info->bytes_moved), mebibytes(info->budget));
    fputs(line, stderr);
}

void gc_log_heap_summary_locked(gc_heap_t *heap) {
    gc_stats_t s;
    gc_stats_fill_locked(heap, &s);
    char line[320];
    snprintf(line, sizeof line,
             "mulch gc %p destroyed: %" PRIu64 " collection%s (%" PRIu64 " minor), pauses %.3f ms in all "
             "(mark %.3f, sweep %.3f), %.3f ms at most; heap peak %.1f MiB, allocated %.1f MiB, moved %.1f MiB, "
             "%" PRIu64 " finalized\n",
             (const void *)heap, s.collections, s.collections == 1 ? "" : "s", s.collections_minor,
             milliseconds(s.pause_ns_total),
             milliseconds(s.mark_ns_total), milliseconds(s.sweep_ns_total), milliseconds(s.pause_ns_max),
             mebibytes(s.heap_bytes_peak), mebibytes((size_t)s.bytes_allocated), mebibytes((size_t)s.bytes_moved),
             s.objects_finalized);
    int cancel_state; /* (fputs is a cancellation point; gc_heap_destroy is none) */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    fputs(line, stderr);
    pthread_setcancelstate(cancel_state, NULL);
}

void gc_collection_report(gc_heap_t *heap, const gc_collection_info_t *info) {
    /* The line's write and the callback's (fprintf, say) are cancellation
     * points: a thread cancelled there would end holding the heap's lock,
     * the world stopped, and every thread would wait for ever. No mulch
     * call is a cancellation point (docs/gc.md "Cancellation"). */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    if (heap->log_collections) log_collection(heap, info);
    if (heap->collection_fn != NULL) {
        mulch_gc_tracing_depth++;
        mulch_gc_reporting_heap = heap; /* (callbacks never nest: a collection from one is refused) */
        heap->collection_fn(info, heap->collection_ctx);
        mulch_gc_reporting_heap = NULL;
        mulch_gc_tracing_depth--;
    }
    pthread_setcancelstate(cancel_state, NULL);
}

void gc_set_collection_callback(gc_heap_t *heap, gc_collection_fn fn, void *ctx) {
    /* (refused from a callback or a trace function: the lock is held) */
    if (!gc_heap_given(heap, "gc_set_collection_callback")) return;
    pthread_mutex_lock(&heap->lock);
    heap->collection_fn = fn;
    heap->collection_ctx = ctx;
    pthread_mutex_unlock(&heap->lock);
}
