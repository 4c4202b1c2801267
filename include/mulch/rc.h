/* mulch/rc.h — atomically reference-counted objects for deterministic
 * lifetimes, weak rc references, and the bridge to the collector.
 *
 * Counting is biased: the thread that allocated an object counts its own
 * retains and releases without atomic instructions; other threads use an
 * atomic count, and the two are merged when the owner lets go. Every
 * operation is safe from any thread. docs/rc.md is the guide. */
#ifndef MULCH_RC_H
#define MULCH_RC_H

#include <stddef.h>
#include <stdio.h>

#include <mulch/common.h>
#include <mulch/pool.h>
#include <mulch/gc.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Count 1, zeroed payload, 16-byte aligned; destroy (may be NULL) runs
 * exactly once, before the memory returns to the pool: on the thread that
 * drops the last reference, except when that thread is not the allocating
 * thread and the allocating thread still counted references then — the
 * object is then destroyed at the allocating thread's next rc_alloc or
 * rc_release, or when it exits (docs/rc.md). NULL on OOM. */
MULCH_API MULCH_MALLOC MULCH_NODISCARD void *rc_alloc(size_t size, void (*destroy)(void *obj));
MULCH_API MULCH_MALLOC MULCH_NODISCARD void *rc_alloc_in(pool_t *pool, size_t size, void (*destroy)(void *obj));
MULCH_API void  *rc_retain(void *obj);    /* returns obj */
MULCH_API void   rc_release(void *obj);
MULCH_API size_t rc_count(const void *obj); /* exact when no retain/release is concurrent */

typedef struct rc_weak rc_weak_t;
MULCH_API rc_weak_t *rc_weak_new(void *obj);
MULCH_API void      *rc_weak_lock(rc_weak_t *weak); /* retained obj, or NULL once destroyed */
MULCH_API void       rc_weak_free(rc_weak_t *weak);

/* Bridge 1: an rc object that roots `obj` while its count is above 0. */
typedef struct gc_handle gc_handle_t;
MULCH_API gc_handle_t *gc_handle_new(gc_heap_t *heap, void *obj);
MULCH_API void        *gc_handle_get(const gc_handle_t *handle); /* NULL after gc_heap_destroy */

/* Bridge 2: the GC object `obj` takes a reference of its own to `rc_obj`,
 * released after obj is reclaimed (or the heap destroyed). 0 = done, -1 =
 * out of memory (nothing retained). */
MULCH_API int gc_own_rc(gc_thread_t *thread, void *obj, void *rc_obj);

/* Lists each cycle through the bridge (a handle rooting a GC object that
 * owns, directly or not, that handle); returns their number. */
MULCH_API size_t gc_report_bridge_cycles(gc_heap_t *heap, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* MULCH_RC_H */
