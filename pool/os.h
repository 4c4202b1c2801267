/* os.h — the pool's OS layer (os.c): mappings aligned for chunks, the
 * retired set of released chunk ranges, decommit, mremap resizing and
 * moving (also of metadata: the tracer's mark stack), and the test hooks that make mappings fail. Included by
 * pool_internal.h only, after its attribute macros (MULCH_INTERNAL); the
 * pool sources reach it through that header.
 *
 * Invariants (os.c states them in full): a range os_retire took stays
 * mapped read-only and reading zeros until os_map_aligned reuses it, so a
 * stale reader of a released chunk never faults; os_mapped_bytes counts
 * whole pages mapped through this layer and not yet unmapped or retired. */
#ifndef MULCH_POOL_OS_H
#define MULCH_POOL_OS_H

#ifndef MULCH_POOL_INTERNAL_H
#error "pool/os.h is included through pool/pool_internal.h"
#endif

/* size bytes at a start p where p + skew is a multiple of alignment
 * (a power of two, > skew); NULL when the OS refuses. charged (huge
 * objects): subject to the kernel's overcommit check, as glibc's large
 * mappings are; otherwise MAP_NORESERVE (chunks, committed piecemeal). */
MULCH_INTERNAL void *os_map_aligned(size_t size, size_t alignment, size_t skew, bool charged);
MULCH_INTERNAL void  os_unmap(void *p, size_t size);
/* Releases a chunk's mapping (from os_map_aligned) for good: its pages go
 * back as with munmap, but the range stays mapped read-only and zero, in
 * the retired set that os_map_aligned takes from first, so a stale reader
 * of the chunk reads zeros instead of faulting (os.c). Bytes past the
 * first `readable` (rounded up to a page) fault instead: secure mode's
 * freed huge objects. */
MULCH_INTERNAL void  os_retire(void *p, size_t size, size_t readable);
/* pool_destroy's release of a chunk: kept mapped and zeroed for the next
 * pool's os_map_aligned when it is one region with few resident pages
 * and there is room (os.c, "Kept for reuse"); otherwise os_retire. */
MULCH_INTERNAL void  os_release_chunk(void *p, size_t size);
/* Whether p lies in a retired range now (error reports only: a lock). */
MULCH_INTERNAL bool  os_retired_contains(const void *p);
MULCH_INTERNAL void  os_retired_lock_for_fork(void);
MULCH_INTERNAL void  os_retired_unlock_for_fork(void);
MULCH_INTERNAL void  os_decommit(void *p, size_t size);
MULCH_INTERNAL bool  os_protect_none(void *p, size_t size);
/* mremap (os.c): resizes the mapping at p where it is (false, nothing
 * changed, when the pages after it are taken); moves the pages of a
 * mapping onto one os_map_aligned gave, the source left reading zeros.
 * os_move_force_copy (tests): answer UNSUPPORTED, as without DONTUNMAP. */
MULCH_INTERNAL bool  os_resize_in_place(void *p, size_t size, size_t new_size);
typedef enum os_move { OS_MOVE_DONE, OS_MOVE_UNSUPPORTED /* copy */, OS_MOVE_REFUSED /* OOM */ } os_move_t;
MULCH_INTERNAL os_move_t os_move_pages(void *from, size_t size, void *to);
MULCH_INTERNAL bool os_move_force_copy(bool copy);
MULCH_INTERNAL void *os_map(size_t size);   /* page-aligned metadata */
/* Resizes a mapping os_map gave (mremap, MREMAP_MAYMOVE): its new start,
 * the pages moved, not copied; NULL, p unchanged, when the OS refuses.
 * Growing is a fault-injection point, as a mapping is. */
MULCH_INTERNAL void *os_remap(void *p, size_t size, size_t new_size);
/* Test hook: the nth mapping from now fails (0 = off); returns how many
 * mappings were still to go before the failure (0: it happened, or was off). */
MULCH_INTERNAL uint64_t os_fail_after(uint64_t n);
/* Bytes mapped through the OS layer now (whole pages): for leak checks. */
MULCH_INTERNAL size_t os_mapped_bytes(void);

#endif /* MULCH_POOL_OS_H */
