/* backend_boehm.c — the interpreter's memory on Boehm's conservative
 * collector (libgc), for comparison with mulch in the same build.
 *
 * Boehm scans the C stack, registers and static data by itself, so root
 * pushes are no-ops (backend.h); the used part of the value stack is pushed
 * at each collection by a push-other-roots hook (like mulch's root
 * callback: scanning all of it would cost Boehm megabytes per collection). A port's rc object is released by a Boehm
 * finalizer on the port wrapper; a host handle is an uncollectable cell.
 * Collections, pauses (from the collection-event callback) and sizes come
 * from libgc's own counters.
 */
#include "lisp.h"

#include <gc/gc_mark.h>
#include <time.h>

const char *const lisp_backend_name = "boehm";

static struct timespec pause_start;
static uint64_t pause_total_ns, pause_max_ns;

static void GC_CALLBACK collection_event(GC_EventType e)
{
    struct timespec now;
    if (e == GC_EVENT_START) {
        clock_gettime(CLOCK_MONOTONIC, &pause_start);
    } else if (e == GC_EVENT_END) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t ns = (uint64_t)(now.tv_sec - pause_start.tv_sec) * 1000000000u
                      + (uint64_t)now.tv_nsec - (uint64_t)pause_start.tv_nsec;
        pause_total_ns += ns;
        if (ns > pause_max_ns) pause_max_ns = ns;
    }
}

void lisp_backend_process_init(void)
{
    GC_INIT();   /* before the interpreter thread exists (GC_pthread_create registers it) */
}

static GC_push_other_roots_proc previous_push_other_roots;

static void GC_CALLBACK push_value_stack(void)
{
    if (lisp_sp > lisp_stack) GC_push_all_eager(lisp_stack, lisp_sp);
    if (previous_push_other_roots != 0) previous_push_other_roots();
}

int lisp_backend_init(value *globals, size_t nglobals)
{
    (void)globals;   /* static data: Boehm scans it anyway */
    (void)nglobals;
    GC_set_on_collection_event(collection_event);
    previous_push_other_roots = GC_get_push_other_roots();
    GC_set_push_other_roots(push_value_stack);
    return 0;
}

void lisp_backend_shutdown(void)
{
    /* Close what is unreachable now; Boehm does not finalize at exit. */
    GC_gcollect();
    GC_invoke_finalizers();
}

void lisp_backend_collect(void)
{
    GC_gcollect();
    GC_invoke_finalizers();
}

size_t lisp_backend_census(lisp_census_row_t *rows, size_t max)
{
    (void)rows;
    (void)max;
    return 0;
}

int lisp_backend_pause_log(lisp_pause_log_t *out)
{
    memset(out, 0, sizeof *out);
    return 0;
}

void lisp_backend_stats(gc_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->collections = GC_get_gc_no();
    out->bytes_allocated = GC_get_total_bytes();
    out->heap_bytes = GC_get_heap_size();
    out->heap_bytes_peak = out->heap_bytes; /* (Boehm keeps no peak: its size now) */
    out->live_bytes = GC_get_memory_use();
    out->pause_ns_total = pause_total_ns;
    out->pause_ns_max = pause_max_ns;
}

static void GC_CALLBACK release_owned_rc(void *obj, void *rc_obj)
{
    (void)obj;
    rc_release(rc_obj);
}

int lisp_backend_own_rc(void *obj, void *rc_obj)
{
    rc_retain(rc_obj);
    GC_register_finalizer_no_order(obj, release_owned_rc, rc_obj, NULL, NULL);
    return 0;
}

void *lisp_backend_handle_new(void *obj)
{
    void **cell = GC_MALLOC_UNCOLLECTABLE(sizeof *cell);
    if (cell != NULL) *cell = obj;
    return cell;
}

void *lisp_backend_handle_get(void *handle) { return *(void **)handle; }
void  lisp_backend_handle_release(void *handle) { GC_FREE(handle); }

/* [0]: the key, hidden from the marker, cleared by Boehm once the key is
 * unreachable (a disappearing link); [1]: the datum, an ordinary field. */
void *lisp_backend_ephemeron_new(value key, value datum)
{
    void **ephemeron = GC_MALLOC(2 * sizeof(void *));
    if (ephemeron == NULL) lisp_out_of_memory();
    ephemeron[0] = (void *)GC_HIDE_POINTER(key);
    ephemeron[1] = datum;
    if (GC_general_register_disappearing_link(&ephemeron[0], key) == GC_NO_MEMORY) lisp_out_of_memory();
    return ephemeron;
}

value lisp_backend_ephemeron_key(void *ephemeron)
{
    void *hidden = ((void **)ephemeron)[0];
    return hidden == NULL ? NULL : (value)GC_REVEAL_POINTER((GC_hidden_pointer)hidden);
}

value lisp_backend_ephemeron_datum(void *ephemeron)
{
    return ((void **)ephemeron)[0] == NULL ? NULL : ((void **)ephemeron)[1];
}
