/* backend_mulch.c — the interpreter's memory on mulch's precise collector.
 *
 * One heap, one attached thread (the interpreter is single-threaded). Roots:
 * the global slots as a range (gc_root_add_range), the used part of the
 * value stack through a root callback (it changes size all the time, so a
 * callback that reads `lisp_sp` at collection time is cheaper than
 * registering slots), and C locals through the thread's root stack
 * (LISP_ROOT = gc_push_root, in backend.h). MULCH_GC_* environment variables
 * (stress, compaction, heap size) apply, read by gc_heap_create. A
 * collection callback sums what each collection reports, for (gc-pauses).
 */
#include "lisp.h"

#include <stdlib.h>
#include <string.h>

const char *const lisp_backend_name = "mulch";
gc_thread_t *lisp_gc_thread;
static gc_heap_t *heap;
static value *globals_registered;

/* Filled by note_collection, which runs on the interpreter's thread (the
 * only one attached, so the only one that collects) at the end of each
 * collection: read without a lock. */
static lisp_pause_log_t pause_log;

static void note_collection(const gc_collection_info_t *info, void *ctx)
{
    (void)ctx;
    if (info->minor) pause_log.minor++;
    else pause_log.full++;
    if (info->reason >= 0 && info->reason < 3) pause_log.by_reason[info->reason]++;
    pause_log.pause_ns_total += info->pause_ns;
    if (info->pause_ns >= pause_log.longest_ns) {
        pause_log.longest_ns = info->pause_ns;
        pause_log.longest_collection = info->sequence;
        pause_log.longest_reason = info->reason;
        pause_log.longest_minor = info->minor;
    }
    if (info->markers > pause_log.most_markers) pause_log.most_markers = info->markers;
}

int lisp_backend_pause_log(lisp_pause_log_t *out)
{
    *out = pause_log;
    return 1;
}

int lisp_backend_verify(size_t *problems, size_t *untraced)
{
    *problems = gc_verify(heap);
    *untraced = gc_verify_untraced(heap);
    return 1;
}

static void value_stack_roots(gc_tracer_t *tracer, void *ctx)
{
    (void)ctx;
    gc_trace_range(tracer, lisp_stack, (size_t)(lisp_sp - lisp_stack));
}

void lisp_backend_process_init(void) {}

int lisp_backend_init(value *globals, size_t nglobals)
{
    heap = gc_heap_create(NULL);
    if (heap == NULL) return -1;
    gc_set_collection_callback(heap, note_collection, NULL);
    lisp_gc_thread = gc_thread_attach(heap);
    if (lisp_gc_thread == NULL) {
        gc_heap_destroy(heap);
        return -1;
    }
    gc_root_add_range(heap, globals, nglobals);
    globals_registered = globals;
    gc_root_add_callback(heap, value_stack_roots, NULL);
    return 0;
}

void lisp_backend_shutdown(void)
{
    gc_root_remove_callback(heap, value_stack_roots, NULL);
    gc_root_remove(heap, globals_registered);
    gc_thread_detach(lisp_gc_thread);
    lisp_gc_thread = NULL;
    gc_heap_destroy(heap);   /* releases every port still owned by a GC object */
    heap = NULL;
}

void lisp_backend_collect(void) { gc_collect(lisp_gc_thread); }

void lisp_backend_stats(gc_stats_t *out) { gc_get_stats(heap, out); }

/* gc_heap_walk's callback runs under the heap's lock: it only counts into
 * the caller's array (no allocation, no other mulch call). */
typedef struct census {
    lisp_census_row_t *rows;
    size_t used, max;
} census_t;

static void census_add(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj;
    census_t *c = ctx;
    size_t i = 0;
    while (i < c->used && strcmp(c->rows[i].name, type->name) != 0) i++;
    if (i == c->used) {
        if (c->used == c->max) return;
        c->rows[c->used++] = (lisp_census_row_t){ type->name, 0, 0 };
    }
    c->rows[i].count++;
    c->rows[i].bytes += size;
}

static int census_by_name(const void *a, const void *b)
{
    return strcmp(((const lisp_census_row_t *)a)->name, ((const lisp_census_row_t *)b)->name);
}

size_t lisp_backend_census(lisp_census_row_t *rows, size_t max)
{
    gc_collect(lisp_gc_thread);
    census_t census = { rows, 0, max };
    (void)gc_heap_walk(heap, census_add, &census);
    qsort(rows, census.used, sizeof rows[0], census_by_name);
    return census.used;
}

int lisp_backend_own_rc(void *obj, void *rc_obj) { return gc_own_rc(lisp_gc_thread, obj, rc_obj); }

void *lisp_backend_handle_new(void *obj) { return gc_handle_new(heap, obj); }
void *lisp_backend_handle_get(void *handle) { return gc_handle_get(handle); }
void  lisp_backend_handle_release(void *handle) { rc_release(handle); }

void *lisp_backend_ephemeron_new(value key, value datum)
{
    void *ephemeron = gc_ephemeron_new(lisp_gc_thread, key, datum);
    if (ephemeron == NULL) lisp_out_of_memory();
    return ephemeron;
}

value lisp_backend_ephemeron_key(void *ephemeron) { return gc_ephemeron_key(ephemeron); }
value lisp_backend_ephemeron_datum(void *ephemeron) { return gc_ephemeron_value(ephemeron); }
