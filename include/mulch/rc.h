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
 * rc_release, or when it exits (docs/rc.md). pool_destroy frees a pool's
 * live rc objects without running destroy (docs/api.md). NULL on OOM. */
MULCH_API MULCH_MALLOC MULCH_NODISCARD void *rc_alloc(size_t size, void (*destroy)(void *obj));
MULCH_API MULCH_MALLOC MULCH_NODISCARD void *rc_alloc_in(pool_t *pool, size_t size, void (*destroy)(void *obj));
MULCH_API void  *rc_retain(void *obj);    /* returns obj */
MULCH_API void   rc_release(void *obj);
MULCH_API size_t rc_count(const void *obj); /* exact when no retain/release is concurrent */

/* Inline fast paths. The owner thread's retain, and its release that does
 * not drop the last reference, touch only the object's header and this
 * thread's rc record: no call, no atomic instruction. Everything else
 * (other threads, the last release, bad pointers) goes to the functions
 * above, which validate the pointer and report misuse. What the inline
 * path gives up: it reads the 48 bytes before `obj` before validating it,
 * so a wild pointer into unmapped memory faults instead of being reported
 * (a destroyed object's header stays readable, under valgrind too, until
 * its memory is reused: the library reports that).
 * Define MULCH_RC_NO_INLINE before including this header (sanitizer builds
 * do so by themselves), or call (rc_retain)(obj), to always validate first.
 *
 * Not API: the names below ending in '_' mirror the start of the header
 * and of the per-thread record (runtime/rc_internal.h checks the layout). */
#if defined(__GNUC__)
struct mulch_rc_thread_;
struct __attribute__((may_alias)) mulch_rc_header_ {
    long long                reserved_shared_;
    unsigned int             reserved_magic_;
    unsigned int             biased; /* the owner's count */
    struct mulch_rc_thread_ *owner;  /* the allocating thread until merged */
};
#define MULCH_RC_HEADER_SIZE_ 48
MULCH_API extern __thread struct mulch_rc_thread_ *mulch_rc_self_
    __attribute__((tls_model("initial-exec")));
#endif

#if !defined(MULCH_RC_NO_INLINE) && defined(MULCH_NO_INLINE_PATHS_)
#  define MULCH_RC_NO_INLINE 1
#endif

#if !defined(MULCH_RC_NO_INLINE) && !defined(MULCH_BUILDING_RC_)
#  if defined(__cplusplus)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wold-style-cast"
#    pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#  endif
static inline struct mulch_rc_header_ *mulch_rc_header_of_(void *obj) {
    return (struct mulch_rc_header_ *)(void *)((char *)obj - MULCH_RC_HEADER_SIZE_);
}

static inline void *mulch_rc_retain_inline_(void *obj) {
    struct mulch_rc_thread_ *self = mulch_rc_self_;
    if (__builtin_expect(obj != NULL && self != NULL, 1)) {
        struct mulch_rc_header_ *h = mulch_rc_header_of_(obj);
        if (__builtin_expect(__atomic_load_n(&h->owner, __ATOMIC_RELAXED) == self, 1)) {
            unsigned int biased = __atomic_load_n(&h->biased, __ATOMIC_RELAXED);
            /* at its cap the library counts the reference elsewhere */
            if (__builtin_expect(biased != 0xffffffffu, 1)) {
                __atomic_store_n(&h->biased, biased + 1u, __ATOMIC_RELAXED);
                return obj;
            }
        }
    }
    return (rc_retain)(obj);
}

static inline void mulch_rc_release_inline_(void *obj) {
    struct mulch_rc_thread_ *self = mulch_rc_self_;
    if (__builtin_expect(obj != NULL && self != NULL, 1)) {
        struct mulch_rc_header_ *h = mulch_rc_header_of_(obj);
        /* the record's first word is its merge queue: non-empty sends the
         * owner to the slow path, which merges what others queued */
        if (__builtin_expect(__atomic_load_n(&h->owner, __ATOMIC_RELAXED) == self
                                 && __atomic_load_n((void *const *)(void *)self, __ATOMIC_RELAXED) == NULL,
                             1)) {
            unsigned int biased = __atomic_load_n(&h->biased, __ATOMIC_RELAXED);
            if (__builtin_expect(biased > 1u, 1)) {
                __atomic_store_n(&h->biased, biased - 1u, __ATOMIC_RELAXED);
                return;
            }
        }
    }
    (rc_release)(obj);
}
#  if defined(__cplusplus)
#    pragma GCC diagnostic pop
#  endif

#  define rc_retain(obj)  mulch_rc_retain_inline_(obj)
#  define rc_release(obj) mulch_rc_release_inline_(obj)
#endif

typedef struct rc_weak rc_weak_t;
MULCH_API rc_weak_t *rc_weak_new(void *obj);
MULCH_API void      *rc_weak_lock(rc_weak_t *weak); /* retained obj, or NULL once destroyed */
MULCH_API void       rc_weak_free(rc_weak_t *weak);

/* Bridge 1: an rc object that roots `obj` while its count is above 0. */
typedef struct gc_handle gc_handle_t;
MULCH_API gc_handle_t *gc_handle_new(gc_heap_t *heap, void *obj);
/* On an attached thread outside a blocking region (elsewhere: only a handle
 * to NULL or to a pinned object; else reported, NULL); NULL after
 * gc_heap_destroy. */
MULCH_API void        *gc_handle_get(const gc_handle_t *handle);

/* Bridge 2: the GC object `obj` takes a reference of its own to `rc_obj`,
 * released after obj is reclaimed (or the heap destroyed). A GC point.
 * 0 = done, -1 = nothing retained: out of memory (not reported) or misuse
 * (reported: docs/api.md). */
MULCH_API int gc_own_rc(gc_thread_t *thread, void *obj, void *rc_obj);

/* Lists each cycle through the bridge (a handle rooting a GC object that
 * owns, directly or not, that handle); returns their number. */
MULCH_API size_t gc_report_bridge_cycles(gc_heap_t *heap, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* MULCH_RC_H */
