/* backend.h — the thin layer between the interpreter core and its memory
 * manager: allocation, root push/pop, write barrier, collection, statistics,
 * and the two resource bridges (a GC object owning an rc object; the host
 * holding a GC object). Included by lisp.h only.
 *
 * Two implementations, chosen at compile time (one executable each):
 *   default             mulch's precise collector (backend_mulch.c)
 *   LISP_BACKEND_BOEHM  Boehm's conservative collector, libgc (backend_boehm.c)
 * Object kinds are still described by mulch gc_type_t values under Boehm
 * (only `trace == NULL`, "no references", is used: pointer-free objects get
 * GC_MALLOC_ATOMIC), and rc objects (ports) come from mulch in both builds.
 *
 * The hot operations are inline here: under mulch a root push is one call to
 * gc_push_root (a store and an increment inside the library); under Boehm,
 * which scans the C stack itself, it is nothing at all.
 */
#ifndef LISP_BACKEND_H
#define LISP_BACKEND_H

#include <mulch.h>

#include <string.h>

_Noreturn void lisp_out_of_memory(void);

/* Called once by main, on the main thread, before any other thread starts. */
void lisp_backend_process_init(void);
/* Called once, on the interpreter's thread, before any allocation: roots the value stack (only its used
 * part under mulch) and the global slots. */
int  lisp_backend_init(value *globals, size_t nglobals);
void lisp_backend_shutdown(void);
void lisp_backend_collect(void);
void lisp_backend_stats(gc_stats_t *out);
extern const char *const lisp_backend_name;

/* The live heap by object kind (type name): after a full collection, up
 * to `max` rows, sorted by name; returns how many (mulch: gc_heap_walk;
 * Boehm's heap has no types to count by: 0). */
typedef struct lisp_census_row {
    const char *name;
    size_t      count, bytes;
} lisp_census_row_t;
size_t lisp_backend_census(lisp_census_row_t *rows, size_t max);

/* What the collector told of each collection so far, summed (mulch: a
 * gc_set_collection_callback set before the first allocation). Returns 0
 * when the backend has no per-collection report (Boehm), else 1. */
typedef struct lisp_pause_log {
    uint64_t minor, full;         /* collections of each kind (full: every one outside generational mode) */
    uint64_t by_reason[3];        /* indexed by GC_REASON_*: allocation, (gc), heap limit */
    uint64_t pause_ns_total;
    uint64_t longest_ns;          /* the longest pause, */
    uint64_t longest_collection;  /* its collection's number (1 for the first), */
    int      longest_reason;      /* its GC_REASON_* */
    int      longest_minor;       /* and kind */
    unsigned most_markers;        /* the most threads that marked one collection */
} lisp_pause_log_t;
int lisp_backend_pause_log(lisp_pause_log_t *out);

/* The heap checks (mulch: gc_verify's problems and gc_verify_untraced's
 * words, each also reported through the error handler). Returns 0 when
 * the backend has none (Boehm), else 1. */
int lisp_backend_verify(size_t *problems, size_t *untraced);

/* An ephemeron (mulch: gc_ephemeron_new): `datum` is kept alive only while
 * `key`, a heap object, is reachable some other way; once a collection
 * finds the key dead, key and datum read NULL. A GC point (key and datum
 * are kept across it; the caller reads its other values again). Boehm has
 * no ephemerons: a disappearing link on the key and a strong datum, so
 * there a datum that refers to its key keeps it alive. */
void *lisp_backend_ephemeron_new(value key, value datum);
value lisp_backend_ephemeron_key(void *ephemeron);
value lisp_backend_ephemeron_datum(void *ephemeron);

/* `obj` takes a reference of its own to the rc object `rc_obj`, released
 * once obj is unreachable (mulch: gc_own_rc; Boehm: a finalizer). */
int lisp_backend_own_rc(void *obj, void *rc_obj);
/* A host-held reference that keeps `obj` alive across collections (mulch:
 * gc_handle_new, an rc object). */
void *lisp_backend_handle_new(void *obj);
void *lisp_backend_handle_get(void *handle);
void  lisp_backend_handle_release(void *handle);

#ifndef LISP_BACKEND_BOEHM
/* ---------------------------------------------------------------- mulch -- */
extern gc_thread_t *lisp_gc_thread;

static inline void *lisp_alloc(const gc_type_t *type, size_t size)
{
    void *p = gc_alloc(lisp_gc_thread, type, size);
    if (p == NULL) lisp_out_of_memory();
    return p;
}
#define LISP_ROOT(var) gc_push_root(lisp_gc_thread, &(var))
static inline void lisp_unroot(size_t n) { gc_pop_roots(lisp_gc_thread, n); }
static inline size_t lisp_root_depth(void) { return gc_root_depth(lisp_gc_thread); }
static inline void lisp_root_pop_to(size_t depth) { gc_pop_roots_to(lisp_gc_thread, depth); }
static inline void lisp_write(void *obj, value *slot, value v) { gc_write(lisp_gc_thread, obj, slot, v); }
/* A store into an object allocated after the last allocation (GC point):
 * no barrier, and no dirty card for the next minor collection to scan. */
static inline void lisp_write_init(void *obj, value *slot, value v) { gc_write_init(lisp_gc_thread, obj, slot, v); }

#else
/* ---------------------------------------------------------------- Boehm -- */
#ifndef GC_THREADS
#  define GC_THREADS   /* Debian's libgc is the threaded build */
#endif
#include <gc/gc.h>

static inline void *lisp_alloc(const gc_type_t *type, size_t size)
{
    void *p;
    if (type->trace == NULL) {
        p = GC_MALLOC_ATOMIC(size);   /* not zeroed, never scanned */
        if (p != NULL) memset(p, 0, size);
    } else {
        p = GC_MALLOC(size);          /* zeroed */
    }
    if (p == NULL) lisp_out_of_memory();
    return p;
}
#define LISP_ROOT(var) ((void)&(var))
static inline void lisp_unroot(size_t n) { (void)n; }
static inline size_t lisp_root_depth(void) { return 0; }
static inline void lisp_root_pop_to(size_t depth) { (void)depth; }
static inline void lisp_write(void *obj, value *slot, value v) { (void)obj; *slot = v; }
static inline void lisp_write_init(void *obj, value *slot, value v) { (void)obj; *slot = v; }
#endif

#endif /* LISP_BACKEND_H */
