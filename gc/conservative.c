/* conservative.c — conservative stack scanning (options.conservative_stack).
 *
 * Every attached thread records, when it stops touching GC pointers (parks
 * at a safepoint, enters a blocking region, starts a collection), the
 * values of its callee-saved registers and the lowest address of its live
 * stack (gc_thread_save_context). The collection then reads every aligned
 * word between that address and the stack's base (found at attach), plus
 * the saved registers: a word that points into an allocated cell of this
 * heap — at its start, its header or anywhere inside (interior pointers)
 * — keeps that object alive and its span in place for this collection.
 * A blocking region goes on running after gc_enter_blocking returns: the
 * library's frames below its caller, where the caller's callee-saved
 * registers were saved, are overwritten by the region's code. They are
 * copied at entry (saved_frames) and the stack is scanned from the
 * caller's frame up.
 * This runs before any precise root is traced, so nothing has moved yet.
 * A word is resolved against this heap's spans only (sorted at the start
 * of the scan), never by reading the chunk it points into: that chunk may
 * be another pool's, unmapped by another thread meanwhile (below).
 *
 * Trade-offs (docs/gc.md): a stale word may keep garbage alive; objects so
 * referenced pin their whole span for one collection; the scan costs time
 * proportional to the stacks' depth. Sanitizers and valgrind see the
 * reads of other frames' dead words as bugs, hence the annotations.
 */
#include <pthread.h>

#include "gc_internal.h"
#include "gc_mark.h"

#if defined(__has_include)
#  if __has_include(<valgrind/memcheck.h>)
#    include <valgrind/memcheck.h>
#    define MULCH_HAVE_MEMCHECK 1
#  endif
#endif

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
#  define MULCH_NO_SANITIZE_STACK_READS __attribute__((no_sanitize("address", "thread")))
#else
#  define MULCH_NO_SANITIZE_STACK_READS
#endif

void gc_thread_init_stack(gc_thread_t *t) {
    pthread_attr_t attr;
    void *low;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &low, &size) == 0) t->stack_base = (unsigned char *)low + size;
        pthread_attr_destroy(&attr);
    }
    /* Without its base the stack cannot be scanned: an object only it
     * refers to would be freed under the thread. Say so, once per attach. */
    if (t->stack_base == NULL)
        mulch_report("gc_thread_attach: the thread's stack bounds are unknown (pthread_getattr_np failed): "
                     "its stack is not scanned; keep its GC pointers in roots",
                     t);
}

/* Copies the words of [low, high) into t->saved_frames; false when they do
 * not fit. Reads other frames' words (see scan_words). */
static MULCH_NOINLINE MULCH_NO_SANITIZE_STACK_READS bool copy_frames(gc_thread_t *t, const unsigned char *low,
                                                                     const unsigned char *high) {
    uintptr_t start = (uintptr_t)low & ~(uintptr_t)(sizeof(void *) - 1);
    size_t words = ((uintptr_t)high - start) / sizeof(void *);
    if ((uintptr_t)high < start || words > GC_SAVED_FRAME_WORDS) return false;
    const volatile uintptr_t *w = (const volatile uintptr_t *)start;
    for (size_t i = 0; i < words; i++) t->saved_frames[i] = w[i];
    t->saved_frame_count = words;
    return true;
}

MULCH_NOINLINE void gc_thread_save_context(gc_thread_t *t, const void *caller_sp) {
#if defined(__x86_64__)
    __asm__ volatile("movq %%rbx, 0(%0)\n\t"
                     "movq %%rbp, 8(%0)\n\t"
                     "movq %%r12, 16(%0)\n\t"
                     "movq %%r13, 24(%0)\n\t"
                     "movq %%r14, 32(%0)\n\t"
                     "movq %%r15, 40(%0)\n\t"
                     :
                     : "r"(t->saved_registers)
                     : "memory");
#elif defined(__aarch64__)
    __asm__ volatile("stp x19, x20, [%0, #0]\n\t"
                     "stp x21, x22, [%0, #16]\n\t"
                     "stp x23, x24, [%0, #32]\n\t"
                     "stp x25, x26, [%0, #48]\n\t"
                     "stp x27, x28, [%0, #64]\n\t"
                     "str x29, [%0, #80]\n\t"
                     :
                     : "r"(t->saved_registers)
                     : "memory");
#else
    /* Elsewhere: force the callee-saved registers onto this frame, which
     * lies below the recorded stack top's caller frames anyway. */
    __builtin_unwind_init();
#endif
    /* Everything of the callers lies above this frame. */
    t->stack_top = (unsigned char *)__builtin_frame_address(0);
    t->saved_frame_count = 0;
    /* A blocking region: the frames up to the caller's are kept as they
     * are now (if they do not fit, they are scanned in place, as before). */
    if (caller_sp != NULL && copy_frames(t, t->stack_top, caller_sp))
        t->stack_top = (unsigned char *)(uintptr_t)caller_sp;
}

/* ---- which of the heap's spans holds a word ------------------------------
 *
 * A stack word is anything: it may point into a chunk of another pool or
 * heap, which another thread may unmap at any moment (pool_destroy,
 * gc_heap_destroy, pool_free of a huge object, pool_trim of a pool two
 * heaps share). The chunk map itself is never unmapped, but a chunk's
 * header is: reading it for a word that merely looks like a pointer
 * crashed a correct program. So a word is resolved against the heap's own
 * spans only — heap->spans, sorted by address at the start of the scan:
 * with the world stopped and heap->lock held they are neither released nor
 * reused, and each holds objects, so its chunk stays mapped. Only their
 * descriptors and bitmaps are read. chunk_of (the map, never a chunk)
 * first turns most non-pointers away in a few loads. */

static uintptr_t span_low(const void *span) { return (uintptr_t)pool_block_memory(span); }

/* Heapsort of the span pointers by address: no allocation (the collector
 * does not call malloc, which the drop-in may route to a pool). */
static void spans_sift_down(void **items, size_t root, size_t count) {
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= count) return;
        if (child + 1 < count && span_low(items[child + 1]) > span_low(items[child])) child++;
        if (span_low(items[root]) >= span_low(items[child])) return;
        void *swap = items[root];
        items[root] = items[child];
        items[child] = swap;
        root = child;
    }
}

static void spans_sort(void **items, size_t count) {
    for (size_t i = count / 2; i-- > 0;) spans_sift_down(items, i, count);
    for (size_t end = count; end-- > 1;) {
        void *swap = items[0];
        items[0] = items[end];
        items[end] = swap;
        spans_sift_down(items, 0, end);
    }
}

/* heap->conservative_spans := heap->spans sorted; false when its memory
 * cannot be had (then span_containing searches heap->spans linearly). */
static bool spans_sorted_prepare(gc_heap_t *heap) {
    gc_vector_t *sorted = &heap->conservative_spans;
    sorted->count = 0;
    if (heap->spans.count == 0) return true;   /* items may be NULL: no memcpy from or to it */
    if (!gc_vector_reserve(sorted, heap->spans.count)) return false;
    memcpy(sorted->items, heap->spans.items, heap->spans.count * sizeof(void *));
    sorted->count = heap->spans.count;
    spans_sort(sorted->items, sorted->count);
    return true;
}

/* The heap's span whose memory holds p, or NULL. sorted: by address, else
 * any order (searched whole: the slow fallback after an OOM). */
static block_t *span_containing(const gc_vector_t *spans, bool sorted, uintptr_t p) {
    if (!sorted) {
        for (size_t i = 0; i < spans->count; i++) {
            block_t *b = spans->items[i];
            if (p - span_low(b) < pool_block_bytes(b)) return b;
        }
        return NULL;
    }
    size_t low = 0, high = spans->count; /* the answer is below high */
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (span_low(spans->items[middle]) <= p) low = middle + 1;
        else high = middle;
    }
    if (low == 0) return NULL;
    block_t *b = spans->items[low - 1];
    return p - span_low(b) < pool_block_bytes(b) ? b : NULL;
}

/* The object whose cell contains address p, or NULL. */
static void *object_containing(const gc_vector_t *spans, bool sorted, uintptr_t p) {
    if (chunk_of((const void *)p) == NULL) return NULL;
    block_t *b = span_containing(spans, sorted, p);
    if (b == NULL || b->cell_size == 0 || p < (uintptr_t)b->start) return NULL;
    size_t offset = (size_t)(p - (uintptr_t)b->start);
    if (offset >= (size_t)b->capacity * b->cell_size) return NULL;
    uint32_t i = cell_divide(b->divisor, offset);
    if (!bit_test(gc_span_alloc_bits(b), i)) return NULL;
    return gc_span_object(b, i);
}

typedef struct {
    gc_tracer_t       *tracer;
    const gc_vector_t *spans;
    bool               sorted;
} scan_t;

static MULCH_NO_SANITIZE_STACK_READS size_t scan_words(const scan_t *scan, const unsigned char *low,
                                                        const unsigned char *high) {
    gc_tracer_t *tracer = scan->tracer;
    size_t found = 0;
    uintptr_t start = ((uintptr_t)low + sizeof(void *) - 1) & ~(uintptr_t)(sizeof(void *) - 1);
    for (const volatile uintptr_t *w = (const volatile uintptr_t *)start; (const unsigned char *)(w + 1) <= high;
         w++) {
        uintptr_t value = *w;
#ifdef MULCH_HAVE_MEMCHECK
        VALGRIND_MAKE_MEM_DEFINED(&value, sizeof value);
#endif
        void *obj = object_containing(scan->spans, scan->sorted, value);
        if (obj == NULL) continue;
        gc_evacuation_keep(tracer->heap, obj);
        gc_mark_object(tracer, obj);
        found++;
    }
    return found;
}

size_t gc_conservative_scan(gc_tracer_t *tracer) {
    gc_heap_t *heap = tracer->heap;
    bool sorted = spans_sorted_prepare(heap);
    /* (a snapshot: spans the scan's marking takes for copies hold no
     * object a stack word can point to yet) */
    scan_t scan = { tracer, sorted ? &heap->conservative_spans : &heap->spans, sorted };
    size_t found = 0;
    for (gc_thread_t *t = heap->threads; t; t = t->next) {
        found += scan_words(&scan, (const unsigned char *)t->saved_registers,
                            (const unsigned char *)(t->saved_registers + GC_SAVED_REGISTERS));
        found += scan_words(&scan, (const unsigned char *)t->saved_frames,
                            (const unsigned char *)(t->saved_frames + t->saved_frame_count));
        if (t->stack_top && t->stack_base && t->stack_top < t->stack_base)
            found += scan_words(&scan, t->stack_top, t->stack_base);
    }
    heap->conservative_spans.count = 0;
    return found;
}
