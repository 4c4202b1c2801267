/* heap.c — heap lifecycle, options (with MULCH_GC_* environment
 * overrides), user data and statistics.
 *
 * A heap takes its spans from its own pool unless options.pool names one.
 * gc_heap_destroy runs every finalizer not yet run — pending ones and those
 * of objects still alive — with the calling thread attached (temporarily if
 * need be), then gives every span back. It refuses (reported, nothing
 * changed) while another thread is attached or from inside a finalizer.
 * A heap is in gc/fork.c's list, whose locks are held across fork, from
 * the end of gc_heap_create until gc_heap_destroy destroys its locks.
 * The heap and its lock holder's tracer (heap->tracer) have a mapping each.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "gc_weak.h"

/* The fields a MULCH_GC_* variable replaced (options_resolve's result):
 * a bad option's report names the variable only when it did. */
enum {
    ENV_SET_HEAP_GROWTH = 1u << 0,
    ENV_SET_COMPACTION = 1u << 1,
    ENV_SET_MARKERS = 1u << 2,
};

/* The environment's values (gc/env.c parses and reports them): each one
 * that is set and well formed replaces its field. Sizes too big for a
 * size_t read as SIZE_MAX and negative ones as 0 ("-1" was once an
 * initial_heap of 16 EiB); counts are clamped to their field ("4294967296"
 * as an int was 0 markers). Returns the ENV_SET_* bits of the fields
 * options_check reports on that a variable replaced. */
static unsigned options_resolve(gc_options_t *o) {
    unsigned replaced = 0;
    o->initial_heap = gc_env_size("MULCH_GC_INITIAL_HEAP", o->initial_heap);
    o->max_heap = gc_env_size("MULCH_GC_MAX_HEAP", o->max_heap);
    const char *growth_name = "MULCH_GC_HEAP_GROWTH";
    double growth;
    if (gc_env_decimal(growth_name, &growth)) {
        /* (replaced below, like the field's own values) */
        if (!(growth > 1.0)) gc_env_report(growth_name, NULL, "is not above 1.0", "2.0 used");
        else if (growth > GC_MAX_HEAP_GROWTH)
            gc_env_report(growth_name, NULL, "is above 1000", "1000 used");
        o->heap_growth = growth;
        replaced |= ENV_SET_HEAP_GROWTH;
    }
    static const char *const compact_words[] = { "never", "auto", "always" };
    static const int compact_values[] = { GC_COMPACT_NEVER, GC_COMPACT_AUTO, GC_COMPACT_ALWAYS };
    /* (-1, no GC_COMPACT_* value: tells "ignored or unset" from a word) */
    int compaction = gc_env_word("MULCH_GC_COMPACT", -1, compact_words, compact_values, 3,
                                 "is not never, auto or always");
    if (compaction != -1) {
        o->compaction = compaction;
        replaced |= ENV_SET_COMPACTION;
    }
    /* (the cap the markers use: a bigger value would be reported as used) */
    size_t markers = gc_env_count("MULCH_GC_MARKERS", SIZE_MAX, GC_MAX_MARKERS);
    if (markers != SIZE_MAX) {
        o->markers = (int)markers;
        replaced |= ENV_SET_MARKERS;
    }
    o->generational = gc_env_flag("MULCH_GC_GENERATIONAL", o->generational);
    if (o->initial_heap == 0) o->initial_heap = (size_t)1 << 20;
    /* A value that is no GC_COMPACT_* (options_check reports it) is
     * NEVER, as documented: kept as given, it moved nothing, but
     * gc_identity_hash, which asks "NEVER?", gave every object a table
     * entry under the heap's lock. */
    if (o->compaction < GC_COMPACT_AUTO || o->compaction > GC_COMPACT_ALWAYS) o->compaction = GC_COMPACT_NEVER;
    /* (NaN too: every comparison with it is false, which would make the
     * generational mode's full collections never come) */
    if (!(o->heap_growth > 1.0)) o->heap_growth = 2.0;
    if (o->heap_growth > GC_MAX_HEAP_GROWTH) o->heap_growth = GC_MAX_HEAP_GROWTH;
    return replaced;
}

/* Option values the program set that the field cannot mean are misuse
 * (API.md: detected misuse is reported); each is reported here, after
 * options_resolve read the environment, and replaced as documented — or
 * the environment replaced it, and then the report names the variable (it
 * said "(nothing moves)" of a heap that MULCH_GC_COMPACT=always made move
 * everything). Only a variable that was taken counts: a malformed one is
 * ignored, and the report said "(MULCH_GC_HEAP_GROWTH used)" of a heap
 * that used 2.0 after MULCH_GC_HEAP_GROWTH=abc. Zero is the default, not
 * misuse, and the environment's values are not the program's: they are
 * only clamped (docs/tuning.md). */
/* One report of a bad option: the problem, then what is used instead —
 * `variable` when it replaced the field (`by_env`), else `fallback`. */
static void option_report(const gc_options_t *o, const char *problem, bool by_env, const char *variable,
                          const char *fallback) {
    char what[160];
    if (by_env) snprintf(what, sizeof what, "gc_heap_create: %s (%s used)", problem, variable);
    else snprintf(what, sizeof what, "gc_heap_create: %s (%s)", problem, fallback);
    mulch_report(what, o);
}

static void options_check(const gc_options_t *o, unsigned replaced) {
    double g = o->heap_growth;
    bool growth_env = (replaced & ENV_SET_HEAP_GROWTH) != 0;
    if (g != 0.0 && !(g > 1.0))
        option_report(o, "heap_growth must be above 1.0", growth_env, "MULCH_GC_HEAP_GROWTH", "2.0 used");
    else if (g > GC_MAX_HEAP_GROWTH)
        option_report(o, "heap_growth above 1000", growth_env, "MULCH_GC_HEAP_GROWTH", "1000 used");
    if (o->compaction < GC_COMPACT_AUTO || o->compaction > GC_COMPACT_ALWAYS)
        option_report(o, "compaction is not a GC_COMPACT_* value", (replaced & ENV_SET_COMPACTION) != 0,
                      "MULCH_GC_COMPACT", "nothing moves");
    if (o->markers < 0)
        option_report(o, "markers is negative", (replaced & ENV_SET_MARKERS) != 0, "MULCH_GC_MARKERS",
                      "one per CPU used");
}

/* The tracer of whoever holds a heap's lock has a mapping of its own, not
 * a place on that thread's stack: a collection may start from an
 * embedder's deep stack (gc_alloc in a recursive interpreter), and the
 * tracer, with its span cache and stack reserve, is tens of KiB. Not one
 * mapping with the heap: each of the two stays small enough for the pool's
 * OS layer to keep for the next heap (pool/os.c, "Kept for reuse"). */

/* A max_heap below one span lets no allocation succeed (gc.md): almost
 * surely a unit left off (MULCH_GC_MAX_HEAP=512 for 512m), so it is
 * reported, and kept as given (review session 37: it gave NULL for
 * every allocation and said nothing). */
static void max_heap_check(const gc_options_t *options, const gc_options_t *opts, const pool_t *pool) {
    size_t span = pool->block_size;
    if (options->max_heap == 0 || options->max_heap >= span) return;
    bool by_env = options->max_heap != (opts ? opts->max_heap : 0);
    char what[200];
    snprintf(what, sizeof what,
             "gc_heap_create: %s of %zu bytes is below one span (%zu bytes): every allocation gets NULL (kept)",
             by_env ? "MULCH_GC_MAX_HEAP" : "max_heap", options->max_heap, span);
    mulch_report(what, opts);
}

gc_heap_t *gc_heap_create(const gc_options_t *opts) {
    gc_options_t options = { 0 };
    if (opts) options = *opts;
    unsigned replaced = options_resolve(&options);
    if (opts) options_check(opts, replaced);
    gc_heap_t *heap = os_map(sizeof(gc_heap_t));
    if (heap == NULL) return NULL;
    heap->tracer = os_map(sizeof(gc_tracer_t));
    if (heap->tracer == NULL) {
        os_unmap(heap, sizeof(gc_heap_t));
        return NULL;
    }
    heap->options = options;
    heap->pool = options.pool;
    if (heap->pool == NULL) {
        heap->pool = pool_create(NULL);
        heap->own_pool = true;
        if (heap->pool == NULL) {
            os_unmap(heap->tracer, sizeof(gc_tracer_t));
            os_unmap(heap, sizeof(gc_heap_t));
            return NULL;
        }
    }
    max_heap_check(&options, opts, heap->pool);
    pthread_mutex_init(&heap->lock, NULL);
    pthread_cond_init(&heap->changed, NULL);
    gc_mark_shared_init(heap);
    heap->epoch = 1;
    heap->trigger = options.initial_heap;
    heap->stress_every = gc_env_size("MULCH_GC_STRESS", 0);
    heap->verify_each = gc_env_flag("MULCH_GC_VERIFY", 0) != 0;
    heap->log_collections = gc_env_flag("MULCH_GC_LOG", 0) != 0;
    /* gc_allocation_budget: reuse up to heap_keep x live of a bigger heap */
    heap->heap_keep = 1.5 * options.heap_growth;
    const char *keep_name = "MULCH_GC_HEAP_KEEP";
    double keep;
    if (gc_env_decimal(keep_name, &keep)) {
        if (keep < 0.0) gc_env_report(keep_name, NULL, "is negative", "0 used");
        else if (keep > 64.0) gc_env_report(keep_name, NULL, "is above 64", "64 used");
        heap->heap_keep = keep;
    }
    /* an unbounded budget (a huge value; 0 x inf is NaN) is capped */
    if (!(heap->heap_keep >= 0.0 && heap->heap_keep <= 64.0)) heap->heap_keep = heap->heap_keep > 64.0 ? 64.0 : 0.0;
    heap->generational = options.generational != 0;
    /* AUTO evacuates spans whose live cells fill less than this share. */
    heap->evacuate_below_percent = (unsigned)gc_env_count("MULCH_GC_EVACUATE_BELOW", 80, 100);
    gc_heap_list_add(heap); /* its locks are held across fork from here on */
    return heap;
}

/* Whether finalizable objects are listed (heap->lock held): the heap's
 * lists, and the threads' own that a flush short of memory left there. */
static bool finalizers_listed_locked(gc_heap_t *heap) {
    bool any = heap->pending.count > 0 || heap->finalizable.count > 0;
    for (gc_thread_t *other = heap->threads; other && !any; other = other->next) any = other->finalizable.count > 0;
    return any;
}

static void run_all_finalizers(gc_heap_t *heap, gc_thread_t *t) {
    /* Finalizers may allocate new finalizable objects: repeat, boundedly. */
    for (int round = 0; round < 64; round++) {
        pthread_mutex_lock(&heap->lock);
        gc_threads_flush(heap);
        /* Merged, not appended: when `pending` cannot grow (out of memory)
         * an append left every object where it was, no round ran one, and
         * their cells were freed with their finalizers unrun. A merge that
         * fails still leaves `pending` to run; the next round's, into an
         * empty `pending`, cannot fail. The flush may also have left a
         * thread's own list with it (the heap's could not grow). */
        gc_vector_merge(&heap->pending, &heap->finalizable);
        for (gc_thread_t *other = heap->threads; other; other = other->next)
            gc_vector_merge(&heap->pending, &other->finalizable);
        /* all of it: a merge that swapped arrays put the new objects
         * first (an object indexed already is skipped) */
        gc_pending_index_add_from(heap, 0);
        bool any = finalizers_listed_locked(heap);
        pthread_mutex_unlock(&heap->lock);
        if (!any) return;
        gc_run_finalizers(t);
    }
}

/* Misuse that gc_heap_destroy must refuse before it changes anything
 * (finalizers run, weak references and handles cleared cannot be undone):
 * another thread still attached, or the call made by a finalizer, whose
 * run goes on with the heap afterwards — including the finalizers and rc
 * destroy callbacks the destroy runs itself. Reports it; otherwise marks
 * the heap as being destroyed. */
static bool destroy_refused(gc_heap_t *heap, gc_thread_t *self) {
    pthread_mutex_lock(&heap->lock);
    bool others = false;
    for (gc_thread_t *t = heap->threads; t && !others; t = t->next) others = t != self;
    /* (destroying: a finalizer or an owned rc object's destroy callback run
     * by the destroy itself, which goes on with the heap afterwards) */
    bool in_finalizer = (heap->finalizing && self != NULL && heap->finalizer_thread == self) || heap->destroying;
    if (!others && !in_finalizer) {
        heap->destroying = true;
        heap->destroyer = pthread_self(); /* (a fork child of another thread forgets the destroy) */
    }
    pthread_mutex_unlock(&heap->lock);
    if (others) mulch_report("gc_heap_destroy: other threads are still attached", heap);
    else if (in_finalizer) mulch_report("gc_heap_destroy: called inside a finalizer", heap);
    return others || in_finalizer;
}

/* A destroy whose thread ended in an rc destroy callback while it had no
 * thread record (none could be had: the exit hook, which forgets such a
 * destroy, knows only attached threads) is forgotten here, so that
 * another gc_heap_destroy may finish it; it was refused for ever as
 * "called inside a finalizer". (The callbacks run with no lock held.) */
static void destroy_thread_ended(void *arg) {
    gc_heap_t *heap = arg;
    pthread_mutex_lock(&heap->lock);
    gc_heap_destroy_forget_locked(heap);
    pthread_mutex_unlock(&heap->lock);
}

void gc_heap_destroy_forget_locked(gc_heap_t *heap) {
    if (heap->destroying && !heap->destroy_final && pthread_equal(heap->destroyer, pthread_self()))
        heap->destroying = false;
}

void gc_heap_destroy(gc_heap_t *heap) {
    if (heap == NULL) return;
    /* From a trace function, root callback, heap-walk callback or error
     * handler during a collection, heap->lock may be held by this very
     * thread: destroy_refused would deadlock on it. */
    if (!gc_outside_tracing("gc_heap_destroy", heap)) return;
    gc_thread_t *t = gc_thread_current(heap);
    if (destroy_refused(heap, t)) return;
    /* (the caller's blocking regions end here: the finalizers below run on
     * its thread and may allocate, and the destroy detaches it anyway) */
    if (t != NULL) gc_thread_leave_blocking_all(t);
    else t = gc_thread_attach(heap); /* detached again below */
    if (t) {
        /* weak references see their targets go before finalizers run
         * (and those that finalizers and rc destroy callbacks make, before
         * the next one: gc_run_finalizers, gc_bridge_release_pending) */
        pthread_mutex_lock(&heap->lock);
        gc_weak_lists_clear_all_locked(heap);
        pthread_mutex_unlock(&heap->lock);
        /* The rc destroy callbacks the bridge runs may allocate
         * finalizable objects (finalizer rules), whose finalizers would
         * otherwise never run; those finalizers may in turn make owned rc
         * references. Alternate until neither has work, boundedly. (A
         * second gc_bridge_destroy starts from the emptied lists.) */
        for (int round = 0; round < 64; round++) {
            run_all_finalizers(heap, t);
            gc_bridge_destroy(heap);
            /* (its callbacks run outside a finalizer run: one may have
             * detached this thread, whose record is then gone) */
            if (gc_thread_current(heap) != t) break;
            pthread_mutex_lock(&heap->lock);
            gc_threads_flush(heap);
            bool more = finalizers_listed_locked(heap);
            pthread_mutex_unlock(&heap->lock);
            if (!more) break;
        }
    } else {
        /* Finalizers run on an attached thread (they may allocate): none
         * could be had, and their objects go with the spans. Said, as
         * gc_thread_detach says it when it loses a thread's list. */
        pthread_mutex_lock(&heap->lock);
        bool lost = finalizers_listed_locked(heap);
        pthread_mutex_unlock(&heap->lock);
        if (lost) mulch_report("gc_heap_destroy: out of memory: finalizers not yet run are lost", heap);
        pthread_cleanup_push(destroy_thread_ended, heap);
        gc_bridge_destroy(heap);
        pthread_cleanup_pop(0);
    }
    gc_thread_destroy_current(heap);
    pthread_mutex_lock(&heap->lock);
    if (heap->threads) {
        /* a thread attached while the finalizers ran (a race with the
         * destroy, which destroy_refused cannot see coming): too late to
         * undo, but the spans it may use are not freed under it; a later
         * gc_heap_destroy finishes the job */
        heap->destroying = false;
        pthread_mutex_unlock(&heap->lock);
        mulch_report("gc_heap_destroy: other threads are still attached", heap);
        return;
    }
    heap->destroy_final = true; /* no way back: a fork child keeps it destroying */
    if (heap->log_collections) gc_log_heap_summary_locked(heap);
    while (heap->spans.count) gc_span_release(heap, heap->spans.items[heap->spans.count - 1]);
    pthread_mutex_unlock(&heap->lock);
    gc_thread_cache_release(heap); /* (the records the detaches above kept) */
    gc_vector_free(&heap->spans);
    gc_vector_free(&heap->conservative_spans);
    gc_vector_free(&heap->root_slots);
    gc_vector_free(&heap->finalizable);
    gc_vector_free(&heap->pending);
    gc_pending_index_free(heap);
    gc_vector_free(&heap->weaks);
    if (heap->root_ranges) os_unmap(heap->root_ranges, heap->root_range_capacity * sizeof(gc_root_range_t));
    if (heap->root_callbacks)
        os_unmap(heap->root_callbacks, heap->root_callback_capacity * sizeof(gc_root_callback_t));
    if (heap->pins) os_unmap(heap->pins, heap->pin_capacity * sizeof(gc_pin_entry_t));
    gc_hashes_destroy(heap);
    gc_heap_list_remove(heap); /* before its locks go */
    gc_mark_shared_destroy(heap);
    gc_tracer_spare_free(heap);
    gc_evacuation_spare_free(heap);
    pthread_cond_destroy(&heap->changed);
    pthread_mutex_destroy(&heap->lock);
    if (heap->own_pool) pool_destroy(heap->pool);
    os_unmap(heap->tracer, sizeof(gc_tracer_t));
    os_unmap(heap, sizeof(gc_heap_t));
}

static MULCH_COLD void report_misuse(const char *fn, const char *problem, const void *subject) {
    char what[256]; /* (the longest problem, gc_outside_tracing's, is 168 bytes) */
    snprintf(what, sizeof what, "%s: %s", fn, problem);
    mulch_report(what, subject);
}

/* One report: an error handler that calls mulch again from it would
 * otherwise be sent the same report for ever. */
bool gc_outside_tracing_slow_at(const char *fn, const void *subject) {
    static _Thread_local bool reporting MULCH_TLS_MODEL;
    if (!reporting) {
        reporting = true;
        report_misuse(fn,
                      "called from a trace function, root callback, heap-walk callback, collection callback or "
                      "error handler during a collection (only gc_trace_slot and gc_trace_range may be)",
                      subject);
        reporting = false;
    }
    return false;
}

bool gc_heap_given(const gc_heap_t *heap, const char *fn) {
    if (mulch_unlikely(heap == NULL)) {
        report_misuse(fn, "heap is NULL", NULL);
        return false;
    }
    return gc_outside_tracing(fn, heap);
}

bool gc_thread_given(const gc_thread_t *t, const char *fn) {
    if (mulch_unlikely(t == NULL)) {
        report_misuse(fn, "thread is NULL", NULL);
        return false;
    }
    return gc_outside_tracing(fn, t);
}

bool gc_thread_outside_blocking(const gc_thread_t *t, const char *fn) {
    if (mulch_likely(t->blocking_depth == 0)) return true;
    report_misuse(fn, "called inside a blocking region", t);
    return false;
}

void gc_report_not_live(const void *obj, const char *fn) {
    report_misuse(fn, "not a live object (a collection freed it)", obj);
}

bool gc_object_live(gc_heap_t *heap, const void *obj, const char *fn) {
    pthread_mutex_lock(&heap->lock);
    bool live = gc_object_allocated_locked(heap, obj);
    pthread_mutex_unlock(&heap->lock);
    if (!live) gc_report_not_live(obj, fn);
    return live;
}

void gc_heap_set_userdata(gc_heap_t *heap, void *data) {
    if (!gc_heap_given(heap, "gc_heap_set_userdata")) return;
    heap->userdata = data;
}

void *gc_heap_get_userdata(gc_heap_t *heap) {
    if (!gc_heap_given(heap, "gc_heap_get_userdata")) return NULL;
    return heap->userdata;
}

void gc_get_stats(gc_heap_t *heap, gc_stats_t *out) {
    if (out == NULL) {
        mulch_report("gc_get_stats: out is NULL", heap);
        return;
    }
    memset(out, 0, sizeof *out);
    /* The heap's own collection callback, whose thread holds the lock,
     * the world stopped: read as is (its figures are what the callback is
     * for). From a trace function, another callback or an error handler
     * during a collection the lock would never come: gc_heap_given
     * refuses. */
    bool held_here = heap != NULL && heap == mulch_gc_reporting_heap;
    if (!held_here && !gc_heap_given(heap, "gc_get_stats")) return;
    if (!held_here) pthread_mutex_lock(&heap->lock);
    gc_stats_fill_locked(heap, out);
    if (!held_here) pthread_mutex_unlock(&heap->lock);
}

void gc_stats_fill_locked(gc_heap_t *heap, gc_stats_t *out) {
    uint64_t allocated = heap->detached_bytes_allocated;
    for (gc_thread_t *t = heap->threads; t; t = t->next)
        allocated += atomic_load_explicit(&t->bytes_allocated, memory_order_relaxed);
    out->collections = heap->collections;
    out->bytes_allocated = allocated;
    out->heap_bytes = atomic_load_explicit(&heap->heap_bytes, memory_order_relaxed);
    out->live_bytes = heap->live_bytes;
    out->pause_ns_total = heap->pause_ns_total;
    out->pause_ns_max = heap->pause_ns_max;
    out->bytes_moved = heap->bytes_moved;
    out->objects_finalized = heap->objects_finalized;
    out->heap_bytes_peak = heap->heap_bytes_peak; /* (heap_bytes grows only where the peak is raised) */
    out->collections_minor = heap->collections_minor;
    out->mark_ns_total = heap->mark_ns_total;
    out->sweep_ns_total = heap->sweep_ns_total;
}
