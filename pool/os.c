/* os.c — the only place that talks to the kernel about memory.
 *
 * Everything the pool holds comes from os_map_aligned (chunks and huge
 * objects, aligned to MULCH_REGION so the chunk map can index them; a
 * huge object aligned beyond that gets a mapping that starts a region
 * before a multiple of its alignment) or
 * os_map (page-granular metadata: thread heaps, leak-site arrays). Chunks
 * and metadata are mapped MAP_NORESERVE (address space, committed page by
 * page as used); huge objects are charged: the kernel's overcommit check
 * refuses a size it would not commit, as it does glibc's mmap. Unused
 * pages are handed back with os_decommit (MADV_DONTNEED: the range stays
 * mapped and reads back as zeros) or os_unmap.
 *
 * os_protect_none makes a range fault on any access (secure mode's guard
 * pages); it stays that way until the range is unmapped.
 *
 * os_fail_after(n) is the fault-injection hook: the nth mapping from then on
 * fails as if the kernel refused it, so tests can walk every OOM path.
 * os_mapped_bytes counts what is mapped through this file (pages), so that
 * those tests can also see a mapping that a failure path forgot to unmap.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pool_internal.h"

static _Atomic uint64_t os_failure_countdown;
static _Atomic size_t os_mapped;

uint64_t os_fail_after(uint64_t n) {
    return atomic_exchange_explicit(&os_failure_countdown, n, memory_order_relaxed);
}

size_t os_mapped_bytes(void) {
    return atomic_load_explicit(&os_mapped, memory_order_relaxed);
}

static size_t page_round(size_t size) {
    return (size + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1);
}

static bool os_injected_failure(void) {
    uint64_t n = atomic_load_explicit(&os_failure_countdown, memory_order_relaxed);
    while (n != 0) {
        if (atomic_compare_exchange_weak_explicit(&os_failure_countdown, &n, n - 1,
                                                  memory_order_relaxed, memory_order_relaxed))
            return n == 1;
    }
    return false;
}

/* charged: without MAP_NORESERVE, so that the kernel's overcommit check
 * applies to the mapping (as to glibc's mmap of a large chunk). */
static void *os_mmap(size_t size, bool charged) {
    if (os_injected_failure()) return NULL;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (charged ? 0 : MAP_NORESERVE);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) return NULL;
    atomic_fetch_add_explicit(&os_mapped, page_round(size), memory_order_relaxed);
    return p;
}

static void os_munmap(void *p, size_t size) {
    munmap(p, size);
    atomic_fetch_sub_explicit(&os_mapped, page_round(size), memory_order_relaxed);
}

void *os_map(size_t size) {
    return os_mmap((size + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1), false);
}

/* skew: a huge object aligned beyond a region starts one region into its
 * mapping (huge.c), so the mapping starts a region before the boundary.
 * charged: the first try (the exact size) goes through the kernel's
 * overcommit check, so that a size the kernel would not commit gives NULL
 * (under the default heuristic a mapping larger than RAM + swap); so does
 * the second try for an alignment up to a region. Beyond that the second
 * try only looks for a place (align bytes of address space, for a moment)
 * and is not charged: the size itself passed the check in the first. */
void *os_map_aligned(size_t size, size_t alignment, size_t skew, bool charged) {
    if (size > SIZE_MAX - alignment) return NULL;
    /* Try the exact size first: the kernel often places consecutive
     * mappings next to each other, and an aligned hit saves two munmaps. */
    unsigned char *p = os_mmap(size, charged);
    if (p == NULL) return NULL;
    if ((((uintptr_t)p + skew) & (alignment - 1)) == 0) return p;
    os_munmap(p, size);
    p = os_mmap(size + alignment, charged && alignment <= MULCH_REGION);
    if (p == NULL) return NULL;
    uintptr_t start = (((uintptr_t)p + skew + alignment - 1) & ~(uintptr_t)(alignment - 1)) - skew;
    size_t before = start - (uintptr_t)p;
    size_t after = alignment - before;
    if (before) os_munmap(p, before);
    if (after) os_munmap((unsigned char *)start + size, after);
    return (void *)start;
}

void os_unmap(void *p, size_t size) {
    if (p == NULL) return;
#if defined(MULCH_ASAN)
    /* the shadow would outlive the mapping and poison whoever maps here next */
    ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
    os_munmap(p, size);
}

bool os_protect_none(void *p, size_t size) {
    return mprotect(p, size, PROT_NONE) == 0;
}

void os_decommit(void *p, size_t size) {
    /* MADV_DONTNEED frees the pages now (RSS drops at once, which is what
     * pool_trim promises) and the range reads back as zeros. */
    (void)madvise(p, size, MADV_DONTNEED);
}
