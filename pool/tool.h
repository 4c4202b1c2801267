/* tool.h — makes AddressSanitizer and Valgrind memcheck see pool cells and
 * huge objects as heap blocks, so that use after free and overflows inside
 * the pool are reported by the tool (docs/pool.md, "Hardening, tools and
 * secure mode").
 *
 * AddressSanitizer (compiled in with -fsanitize=address): a free cell, an
 * uncarved cell, a free span and a cached huge mapping are poisoned; an
 * allocated cell has exactly its requested bytes unpoisoned (the slack up to
 * the cell size stays poisoned, at the tool's 8-byte granularity the last
 * granule is partial); pool_usable_size unpoisons the usable bytes, since
 * the caller then owns them. Collector (external) spans are unpoisoned as a
 * whole: the collector has its own object model. The pool's own reads and
 * writes of cell words (free-list links, free marks, the leak scan) go
 * through cell_word_load/cell_word_store, which are not instrumented; the
 * shadow is never toggled around them, so concurrent metadata reads cannot
 * race another thread's poisoning.
 *
 * Valgrind (MULCH_VALGRIND, decided at build time, then active only when
 * the process runs under valgrind: pool->valgrind, which also turns on leak
 * tracking so that the fast paths, which tracking pools skip, need no
 * request and no extra branch; the requests sit in slow paths and in the
 * free path's existing `b->sites` branch): an allocated cell is a
 * VALGRIND_MALLOCLIKE_BLOCK of its usable size, a freed one a FREELIKE
 * block whose first 16 bytes (the pool's link and free mark) are then made
 * addressable again; uncarved cells and free spans are NOACCESS. Memcheck
 * has no uninstrumented accesses, which is why the free cell header stays
 * open: use after free is reported past the first 16 bytes (a write into
 * them is caught by the pool's own free-mark and link checks).
 *
 * Invariant kept by every caller: tool_cell_alloc runs before the pool
 * writes the allocated cell's second word, tool_cell_free before it writes
 * the freed cell's link and mark (memcheck tracks definedness of both).
 */
#ifndef MULCH_POOL_TOOL_H
#define MULCH_POOL_TOOL_H

/* Included by pool_internal.h, after MULCH_INTERNAL and MULCH_COLD. */
#include <stddef.h>
#include <stdint.h>

#include "namespace.h"

#if defined(__SANITIZE_ADDRESS__)
#  define MULCH_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define MULCH_ASAN 1
#  endif
#endif

#if defined(MULCH_ASAN)
#  include <sanitizer/asan_interface.h>
/* GCC and clang never inline these into instrumented callers. */
#  define MULCH_NO_ASAN __attribute__((no_sanitize_address))
#else
#  define MULCH_NO_ASAN
#endif

#if defined(MULCH_VALGRIND) && MULCH_VALGRIND
#  include <valgrind/memcheck.h>
#  define MULCH_TOOL_VALGRIND 1
#endif

/* The pool's accesses to the first two words of a cell whose state it is
 * checking: they may be poisoned (free cells, the slack of a tiny
 * allocation), so under ASan they bypass instrumentation. */
#if defined(MULCH_ASAN)
static inline MULCH_NO_ASAN uintptr_t cell_word_load(const void *cell, unsigned word) {
    return ((const volatile uintptr_t *)cell)[word];
}
static inline MULCH_NO_ASAN void cell_word_store(void *cell, unsigned word, uintptr_t value) {
    ((volatile uintptr_t *)cell)[word] = value;
}
#else
static inline uintptr_t cell_word_load(const void *cell, unsigned word) {
    return ((const uintptr_t *)cell)[word];
}
static inline void cell_word_store(void *cell, unsigned word, uintptr_t value) {
    ((uintptr_t *)cell)[word] = value;
}
#endif

/* 1 when MULCH_VALGRIND is compiled in and the process runs under valgrind
 * (tool.c; MULCH_VALGRIND=0 in the environment says no). */
MULCH_INTERNAL int tool_vg_running(void);

/* Out-of-line Valgrind requests, reached only under valgrind. They are
 * static, not in tool.c: a client request is inline asm whose clobbers GCC
 * knows, and IPA register allocation then lets the fast paths that merely
 * contain a call to them keep values in call-clobbered registers (an
 * external call cost pool_free three extra register saves). */
#if defined(MULCH_TOOL_VALGRIND)
static MULCH_COLD __attribute__((unused)) void tool_vg_alloc(void *p, size_t usable) {
    VALGRIND_MALLOCLIKE_BLOCK(p, usable, 0, 0);
}
static MULCH_COLD __attribute__((unused)) void tool_vg_free(void *p) {
    VALGRIND_FREELIKE_BLOCK(p, 0);
    VALGRIND_MAKE_MEM_UNDEFINED(p, 2 * sizeof(uintptr_t));
}
static MULCH_COLD __attribute__((unused)) void tool_vg_noaccess(void *p, size_t n) {
    VALGRIND_MAKE_MEM_NOACCESS(p, n);
}
static MULCH_COLD __attribute__((unused)) void tool_vg_undefined(void *p, size_t n) {
    VALGRIND_MAKE_MEM_UNDEFINED(p, n);
}
static MULCH_COLD __attribute__((unused)) void tool_vg_defined(void *p, size_t n) {
    VALGRIND_MAKE_MEM_DEFINED(p, n);
}
/* A live block shrinks (or grows) where it is: memcheck's block follows. */
static MULCH_COLD __attribute__((unused)) void tool_vg_resize(void *p, size_t old_usable, size_t usable) {
    VALGRIND_RESIZEINPLACE_BLOCK(p, old_usable, usable, 0);
}
#else
static inline void tool_vg_alloc(void *p, size_t usable) { (void)p; (void)usable; }
static inline void tool_vg_free(void *p) { (void)p; }
static inline void tool_vg_noaccess(void *p, size_t n) { (void)p; (void)n; }
static inline void tool_vg_undefined(void *p, size_t n) { (void)p; (void)n; }
static inline void tool_vg_defined(void *p, size_t n) { (void)p; (void)n; }
static inline void tool_vg_resize(void *p, size_t old_usable, size_t usable) { (void)p; (void)old_usable; (void)usable; }
#endif

/* `active` is pool->valgrind; a compile-time 0 without MULCH_VALGRIND. */
#if defined(MULCH_TOOL_VALGRIND)
#  define TOOL_VG(active) (__builtin_expect(!!(active), 0))
#else
#  define TOOL_VG(active) 0
#endif

/* A cell (or huge object) is handed out: `requested` bytes become usable. */
static inline void tool_cell_alloc(int vg, void *p, size_t requested, size_t usable) {
#if defined(MULCH_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(p, requested);
    ASAN_POISON_MEMORY_REGION((char *)p + requested, usable - requested);
#else
    (void)requested;
#endif
    if (TOOL_VG(vg)) tool_vg_alloc(p, usable);
    (void)p; (void)usable; (void)vg;
}

/* A cell is freed (the pool has checked it was allocated). */
static inline void tool_cell_free(int vg, void *p, size_t usable) {
#if defined(MULCH_ASAN)
    ASAN_POISON_MEMORY_REGION(p, usable);
#endif
    if (TOOL_VG(vg)) tool_vg_free(p);
    (void)p; (void)usable; (void)vg;
}

/* Fresh cells are carved: their header words become the pool's (memcheck
 * only; under ASan the span is poisoned already). */
static inline void tool_cell_carve(int vg, void *p) {
    if (TOOL_VG(vg)) tool_vg_undefined(p, 2 * sizeof(uintptr_t));
    (void)p; (void)vg;
}

/* Memory nobody may touch until the pool hands it out again: a new small
 * span, a released span, a cached huge mapping. */
static inline void tool_hide(int vg, void *p, size_t n) {
#if defined(MULCH_ASAN)
    ASAN_POISON_MEMORY_REGION(p, n);
#endif
    if (TOOL_VG(vg)) tool_vg_noaccess(p, n);
    (void)p; (void)n; (void)vg;
}

/* Memory handed to another owner as a whole (a collector span), or about
 * to be unmapped (the shadow must not outlive the mapping). */
static inline void tool_expose(int vg, void *p, size_t n) {
#if defined(MULCH_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
    if (TOOL_VG(vg)) tool_vg_undefined(p, n);
    (void)p; (void)n; (void)vg;
}

/* A live allocation now has `requested` bytes (realloc in place; ASan only:
 * memcheck knows live cells by their usable size). */
static inline void tool_cell_resize(void *p, size_t requested, size_t usable) {
#if defined(MULCH_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(p, requested);
    ASAN_POISON_MEMORY_REGION((char *)p + requested, usable - requested);
#endif
    (void)p; (void)requested; (void)usable;
}

/* Bytes of the allocation at p that the program may read: the requested
 * size under ASan (the first poisoned byte), else all `usable` bytes. */
static inline size_t tool_accessible(const void *p, size_t usable) {
#if defined(MULCH_ASAN)
    const char *poisoned = __asan_region_is_poisoned((void *)(uintptr_t)p, usable);
    return poisoned ? (size_t)(poisoned - (const char *)p) : usable;
#else
    (void)p;
    return usable;
#endif
}

#endif /* MULCH_POOL_TOOL_H */
