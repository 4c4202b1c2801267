/* backend_boehm.c — the interpreter's memory on Boehm's conservative
 * collector (libgc), for comparison with mulch in the same build.
 *
 * Boehm scans the C stack, registers and static data by itself, so root
 * pushes are no-ops (backend.h); the used part of the value stack is pushed
 * at each collection by a push-other-roots hook (like mulch's root
 * callback: scanning all of it would cost Boehm megabytes per collection).
 * A port's rc object is released by a Boehm finalizer on the port wrapper,
 * or at shutdown for the ports still reachable then (Boehm runs no
 * finalizers at exit; mulch's gc_heap_destroy releases every gc_own_rc
 * pair): each pair is on a list until one of the two releases it. A host
 * handle is an uncollectable cell. libgc's warnings (a heap expansion
 * refused) are not printed: both builds report out of memory alike.
 * Collections, pauses (from the collection-event callback) and sizes come
 * from libgc's own counters.
 */
#include "lisp.h"

#include <gc/gc_mark.h>
#include <stdlib.h>
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
    GC_set_warn_proc(GC_ignore_warn_proc);
    GC_set_on_collection_event(collection_event);
    previous_push_other_roots = GC_get_push_other_roots();
    GC_set_push_other_roots(push_value_stack);
    return 0;
}

/* An rc object a GC object owns (lisp_backend_own_rc), listed until its
 * owner's finalizer or the shutdown releases it. malloc memory: Boehm does
 * not scan it, and the rc pointer is no GC reference. */
typedef struct owned_rc {
    void            *rc_obj;
    struct owned_rc *prev, *next;
} owned_rc_t;
static owned_rc_t *owned_list;

static void owned_release(owned_rc_t *owned)
{
    if (owned->prev) owned->prev->next = owned->next;
    else owned_list = owned->next;
    if (owned->next) owned->next->prev = owned->prev;
    rc_release(owned->rc_obj);
    free(owned);
}

void lisp_backend_shutdown(void)
{
    /* Close what is unreachable now, then what is still reachable: Boehm
     * does not finalize at exit (the owners' finalizers are not run after
     * this; the process ends). */
    GC_gcollect();
    GC_invoke_finalizers();
    while (owned_list != NULL) owned_release(owned_list);
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

int lisp_backend_verify(size_t *problems, size_t *untraced)
{
    *problems = *untraced = 0;
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

static void GC_CALLBACK release_owned_rc(void *obj, void *owned)
{
    (void)obj;
    owned_release(owned);
}

int lisp_backend_own_rc(void *obj, void *rc_obj)
{
    owned_rc_t *owned = malloc(sizeof *owned);
    if (owned == NULL) return -1;
    rc_retain(rc_obj);
    owned->rc_obj = rc_obj;
    owned->prev = NULL;
    owned->next = owned_list;
    if (owned_list) owned_list->prev = owned;
    owned_list = owned;
    GC_register_finalizer_no_order(obj, release_owned_rc, owned, NULL, NULL);
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
