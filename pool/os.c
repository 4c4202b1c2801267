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
 * mapped and reads back as zeros) or os_unmap (metadata).
 *
 * Chunks are never unmapped: os_retire replaces a chunk's mapping in place
 * with a read-only, zero, MAP_NORESERVE one (its pages are freed as by
 * munmap) and files the range in the retired set. A stale pointer freed
 * while another thread releases its chunk thus reads zeros where the
 * header was (its magic fails: a report, not a fault), and since the
 * kernel never hands the range to anyone else, whatever a stale reader
 * finds there is mulch's. os_map_aligned takes from the set first (first
 * fit at the alignment, splitting the range), so address space does not
 * grow without bound. The set coalesces neighbours and grows when full
 * (into a mapping); only when that mapping fails is a range munmapped
 * after all, and the guarantee lapses for it.
 * A secure pool's huge chunk keeps only its header page readable (the
 * rest PROT_NONE, so that secure mode's use after free still faults: a
 * racing free reads no further than the header's magic), and the first
 * page of every region in it: a chunk header is only ever there (chunks
 * are region-aligned), and the range may hold an older chunk's header, a
 * stale free or realloc of whose object checked it without the pool's
 * lock and is about to read it again under the lock. (It did: the older
 * chunk retired, a new one made over it starting a region or more below,
 * and that one retired, its PROT_NONE body faulted the stale reader;
 * tests/unit/test_pool_review_s29_stale_header.c.) Invariant: every range
 * in the set is mapped zero, PROT_READ at least on the first page of each
 * region it covers and where the retiring caller asked (PROT_NONE
 * elsewhere at most), and belongs to no chunk; os_mapped_bytes does not
 * count it. Live chunks keep their side of it: no chunk's own PROT_NONE
 * page (secure mode's guard) is the first page of a region (huge.c).
 *
 * os_resize_in_place and os_move_pages let a huge object's realloc keep
 * its pages (mremap): the first grows or shrinks a mapping where it is,
 * which only succeeds into address space nobody holds (a retired range is
 * mapped, so a chunk never grows into one); the second moves a mapping's
 * pages onto a destination this file mapped, leaving the source mapped
 * with empty pages that read as zeros (MREMAP_DONTUNMAP, Linux 5.7), so
 * that the caller can retire it like any released chunk. Where the kernel
 * (or valgrind) refuses DONTUNMAP, os_move_pages says so and the caller
 * copies instead.
 *
 * os_remap resizes a metadata mapping (os_map's) where the kernel finds
 * room, moving its pages rather than their bytes: the tracer's mark stack
 * doubles this way, without a copy (but in ThreadSanitizer builds, which
 * do not follow mremap: there it maps, copies and unmaps).
 *
 * os_protect_none makes a range fault on any access (secure mode's guard
 * pages); it stays that way until the range is retired or unmapped.
 *
 * Kept for reuse: creating and destroying a pool (or a collector heap,
 * which owns one) mapped a chunk and metadata and gave them back each
 * time, about 300 us a cycle on a virtual machine, nearly all of it the
 * kernel zapping the touched pages (a TLB shootdown) and faulting fresh
 * ones in again. os_release_chunk (pool_destroy's chunks) and os_unmap of
 * a small metadata mapping now keep a few of them mapped, zeroed by hand
 * (only the resident pages: mincore; the others are given back with
 * MADV_DONTNEED, which costs no shootdown when nothing is present, and
 * covers pages swapped out), for the next os_map_aligned of a chunk or
 * os_map of the same size. Bounds: OS_KEPT_CHUNKS chunks with at most
 * OS_KEPT_CHUNK_RESIDENT resident bytes each (more, and the chunk is
 * retired as before, so pool_destroy still returns a big pool's memory),
 * and OS_KEPT_MAPS metadata mappings of up to OS_KEPT_MAP_MAX bytes. A
 * kept chunk counts as retired for os_retired_contains (a stale free into
 * it is "released") and, like a retired range, reads zeros and is no one
 * else's until reused. Not under valgrind (memcheck's view of the pool's
 * cells would make the zeroing an error): there, every release is as
 * before.
 *
 * os_fail_after(n) is the fault-injection hook: the nth mapping from then on
 * fails as if the kernel refused it, so tests can walk every OOM path.
 * os_mapped_bytes counts what is mapped through this file (pages), so that
 * those tests can also see a mapping that a failure path forgot to unmap.
 */
#include <errno.h>
#include <pthread.h>
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

static void *os_kept_map_take(size_t size, bool *refused);
static bool os_kept_map_put(void *p, size_t size);
static bool os_kept_chunk_contains_locked(uintptr_t a);

void *os_map(size_t size) {
    size = page_round(size);
    bool refused = false;
    void *kept = os_kept_map_take(size, &refused);
    if (kept != NULL || refused) return kept;
    return os_mmap(size, false);
}

/* ---- retired chunk ranges ---------------------------------------------- */

/* Neighbours coalesce, so the set holds a range per gap between live
 * chunks. It starts in static storage (16 KiB: no mapping on the release
 * path of an ordinary program) and moves to a mapping twice its size when
 * full: a program can make as many gaps as it has live chunks (2049 large
 * objects, every other one freed, make 1024), and a range the set cannot
 * hold would be unmapped, so that a stale reader (rc's inline
 * retain/release of a destroyed large object) faults, or reads whatever
 * is mapped there next. Only if that mapping fails does os_retire unmap.
 * The mapping is metadata, not counted in os_mapped (as the static array
 * is not), and never given back; a forked child inherits it with the
 * mappings it describes. */
#define OS_RETIRED_FIRST_CAPACITY 1024u

typedef struct os_range {
    uintptr_t start;
    size_t size;
} os_range_t;

static pthread_mutex_t os_retired_lock = PTHREAD_MUTEX_INITIALIZER;
static os_range_t os_retired_first[OS_RETIRED_FIRST_CAPACITY];
static os_range_t *os_retired = os_retired_first;                 /* os_retired_lock */
static size_t os_retired_capacity = OS_RETIRED_FIRST_CAPACITY;    /* os_retired_lock */
static size_t os_retired_count;                                   /* os_retired_lock */

/* Moves the full set to a mapping twice its size (slow path: only a
 * program with more than 1024 gaps between live chunks comes here). */
static bool os_retired_grow_locked(void) {
    size_t capacity = os_retired_capacity * 2;
    void *bigger = mmap(NULL, capacity * sizeof(os_range_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bigger == MAP_FAILED) return false;
    memcpy(bigger, os_retired, os_retired_count * sizeof(os_range_t));
    if (os_retired != os_retired_first) munmap(os_retired, os_retired_capacity * sizeof(os_range_t));
    os_retired = bigger;
    os_retired_capacity = capacity;
    return true;
}

static bool os_map_read_only_zero(void *p, size_t size) {
    return mmap(p, size, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == p;
}

/* Files [start, start + size) in the set, merged with the ranges it
 * touches; false when the set is full and cannot grow. Caller holds
 * os_retired_lock. */
static bool os_retired_add_locked(uintptr_t start, size_t size) {
    for (size_t i = 0; i < os_retired_count;) {
        os_range_t *r = &os_retired[i];
        if (r->start + r->size == start || start + size == r->start) {
            if (r->start < start) start = r->start;
            size += r->size;
            *r = os_retired[--os_retired_count]; /* look at the moved one too */
            continue;
        }
        i++;
    }
    if (os_retired_count == os_retired_capacity && !os_retired_grow_locked()) return false;
    os_retired[os_retired_count++] = (os_range_t){ start, size };
    return true;
}

/* PROT_NONE over [from, to) except the first page of each region: where
 * a chunk header may be (see the top). A retired range reads that way
 * from the moment it is mapped read-only, so the header pages are never
 * inaccessible in between. One mprotect per region: secure mode's large
 * objects only, and each retired region then costs two kernel mappings
 * (VMAs) instead of one, until the range is reused. */
static void os_protect_none_but_region_starts(unsigned char *from, unsigned char *to) {
    uintptr_t a = (uintptr_t)from, end = (uintptr_t)to;
    while (a < end) {
        if ((a & (MULCH_REGION - 1)) == 0) {
            a += MULCH_PAGE; /* a region's first page: stays readable */
            continue;
        }
        uintptr_t region_end = (a & ~(uintptr_t)(MULCH_REGION - 1)) + MULCH_REGION;
        uintptr_t stop = region_end < end ? region_end : end;
        (void)mprotect((void *)a, stop - a, PROT_NONE);
        a = stop;
    }
}

void os_retire(void *p, size_t size, size_t readable) {
    if (p == NULL) return;
    size = page_round(size);
#if defined(MULCH_ASAN)
    /* the shadow would outlive the chunk and poison whoever maps here next */
    ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
    atomic_fetch_sub_explicit(&os_mapped, size, memory_order_relaxed);
    pthread_mutex_lock(&os_retired_lock);
    /* Replaced, not unmapped: the pages go as with munmap, the address
     * stays readable (zeros) and is no one else's. */
    bool kept = os_map_read_only_zero(p, size) && os_retired_add_locked((uintptr_t)p, size);
    /* after the read-only mapping is in: the header stays readable all
     * along (a failure leaves the body readable, which is only laxer) */
    readable = page_round(readable);
    if (kept && readable < size)
        os_protect_none_but_region_starts((unsigned char *)p + readable, (unsigned char *)p + size);
    pthread_mutex_unlock(&os_retired_lock);
    if (!kept) munmap(p, size); /* set full, no room to grow (or no mapping): a plain unmap after all */
}

/* Where a range r of the set fits size bytes whose start plus skew is a
 * multiple of alignment: the start, or 0 when it does not fit. */
static uintptr_t os_retired_fit(os_range_t r, size_t size, size_t alignment, size_t skew) {
    uintptr_t start = ((r.start + skew + alignment - 1) & ~(uintptr_t)(alignment - 1)) - skew;
    if (start < r.start || start - r.start > r.size || r.size - (start - r.start) < size) return 0;
    return start;
}

/* A retired range of size bytes whose start plus skew is a multiple of
 * alignment, mapped again for writing; NULL when no range fits (then the
 * kernel is asked) or, with *refused set, when the remap failed as a
 * fresh mapping would have (fault injection, the overcommit check).
 * Best fit: the smallest range that fits, lowest address first among
 * equals. First fit in the set's (unordered) array carved chunks and
 * mid-sized objects out of the big ranges that large objects had left, so
 * that the next large object fitted nowhere and was mapped anew: the
 * address space grew by a large object's size every few rounds of
 * test_address_space_bounded (over 256 MiB for a third of its seeds). */
static void *os_retired_take(size_t size, size_t alignment, size_t skew, bool charged, bool *refused) {
    size = page_round(size);
    void *taken = NULL;
    pthread_mutex_lock(&os_retired_lock);
    size_t best = os_retired_count;
    for (size_t i = 0; i < os_retired_count; i++) {
        os_range_t r = os_retired[i];
        if (os_retired_fit(r, size, alignment, skew) == 0) continue;
        if (best == os_retired_count || r.size < os_retired[best].size
            || (r.size == os_retired[best].size && r.start < os_retired[best].start))
            best = i;
    }
    if (best < os_retired_count) {
        os_range_t r = os_retired[best];
        uintptr_t start = os_retired_fit(r, size, alignment, skew);
        /* Writable zero pages over the read-only ones (MAP_FIXED replaces
         * them in one step: the range is never anyone else's). */
        int flags = MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | (charged ? 0 : MAP_NORESERVE);
        if (os_injected_failure()) {
            *refused = true;
        } else if (mmap((void *)start, size, PROT_READ | PROT_WRITE, flags, -1, 0) != (void *)start) {
            /* refused (overcommit): put the read-only zeros back, if the
             * kernel took them away, and keep the range */
            (void)os_map_read_only_zero((void *)start, size);
            *refused = charged;
        } else {
            os_retired[best] = os_retired[--os_retired_count];
            /* the pieces either side stay retired (room: one slot was freed) */
            if (start > r.start) (void)os_retired_add_locked(r.start, start - r.start);
            uintptr_t end = start + size;
            if (end < r.start + r.size && !os_retired_add_locked(end, r.start + r.size - end))
                munmap((void *)end, r.start + r.size - end);
            taken = (void *)start;
        }
    }
    pthread_mutex_unlock(&os_retired_lock);
    if (taken) atomic_fetch_add_explicit(&os_mapped, size, memory_order_relaxed);
    return taken;
}

bool os_retired_contains(const void *p) {
    uintptr_t a = (uintptr_t)p;
    bool found = false;
    pthread_mutex_lock(&os_retired_lock);
    for (size_t i = 0; i < os_retired_count && !found; i++)
        found = a - os_retired[i].start < os_retired[i].size;
    found = found || os_kept_chunk_contains_locked(a);
    pthread_mutex_unlock(&os_retired_lock);
    return found;
}

void os_retired_lock_for_fork(void) { pthread_mutex_lock(&os_retired_lock); }
void os_retired_unlock_for_fork(void) { pthread_mutex_unlock(&os_retired_lock); }

/* ---- released mappings kept for reuse ---------------------------------- */

#define OS_KEPT_CHUNKS         4u
#define OS_KEPT_CHUNK_RESIDENT ((size_t)256 * 1024)
#define OS_KEPT_CHUNK_RUNS     64u  /* resident runs, each a memset and a gap to madvise */
#define OS_KEPT_MAPS           16u
#define OS_KEPT_MAP_MAX        ((size_t)32 * 1024)

/* A set of kept mappings, taken by exact size, newest first. Kept memory
 * is not counted in os_mapped: adding subtracts it, taking adds it back. */
typedef struct os_kept_set {
    os_range_t *items;
    size_t      count, capacity;  /* os_retired_lock */
} os_kept_set_t;

static os_range_t    os_kept_chunk_items[OS_KEPT_CHUNKS];
static os_range_t    os_kept_map_items[OS_KEPT_MAPS];
static os_kept_set_t os_kept_chunks = { os_kept_chunk_items, 0, OS_KEPT_CHUNKS };
static os_kept_set_t os_kept_maps = { os_kept_map_items, 0, OS_KEPT_MAPS };

/* Whether the set has room (a peek before zeroing: os_kept_add checks again). */
static bool os_kept_has_room(const os_kept_set_t *set) {
    pthread_mutex_lock(&os_retired_lock);
    bool room = set->count < set->capacity;
    pthread_mutex_unlock(&os_retired_lock);
    return room;
}

/* Files [p, p + size), zeroed by the caller; false when the set is full. */
static bool os_kept_add(os_kept_set_t *set, void *p, size_t size) {
    pthread_mutex_lock(&os_retired_lock);
    bool room = set->count < set->capacity;
    if (room) set->items[set->count++] = (os_range_t){ (uintptr_t)p, size };
    pthread_mutex_unlock(&os_retired_lock);
    if (room) atomic_fetch_sub_explicit(&os_mapped, size, memory_order_relaxed);
    return room;
}

/* A kept mapping of exactly size bytes; NULL when none is kept, or
 * (*refused) when fault injection says this mapping fails. */
static void *os_kept_take(os_kept_set_t *set, size_t size, bool *refused) {
    void *taken = NULL;
    pthread_mutex_lock(&os_retired_lock);
    for (size_t i = set->count; i-- > 0;) {
        if (set->items[i].size != size) continue;
        if (os_injected_failure()) {
            *refused = true;
            break;
        }
        taken = (void *)set->items[i].start;
        set->items[i] = set->items[--set->count];
        break;
    }
    pthread_mutex_unlock(&os_retired_lock);
    if (taken) atomic_fetch_add_explicit(&os_mapped, size, memory_order_relaxed);
    return taken;
}

/* Zeroes a released chunk in place without giving back its resident pages;
 * false (nothing done that matters) when it holds too many of them. The
 * pages mincore calls absent are either untouched (zero already) or
 * swapped out (stale): MADV_DONTNEED makes both zero, and with no page
 * present it has nothing to shoot down. */
static bool os_zero_in_place(unsigned char *p, size_t size) {
    unsigned char resident[MULCH_REGION / MULCH_PAGE];
    size_t pages = size / MULCH_PAGE;
    /* (one mincore byte per kernel page: only where that is MULCH_PAGE) */
    if (pages > sizeof resident || sysconf(_SC_PAGESIZE) != (long)MULCH_PAGE || mincore(p, size, resident) != 0)
        return false;
    size_t resident_pages = 0, runs = 0;
    for (size_t i = 0; i < pages; i++) {
        resident_pages += resident[i] & 1u;
        runs += (resident[i] & 1u) && (i == 0 || !(resident[i - 1] & 1u));
    }
    if (resident_pages * MULCH_PAGE > OS_KEPT_CHUNK_RESIDENT || runs > OS_KEPT_CHUNK_RUNS) return false;
    for (size_t i = 0; i < pages;) {
        size_t j = i;
        bool present = resident[i] & 1u;
        while (j < pages && (bool)(resident[j] & 1u) == present) j++;
        if (present) memset(p + i * MULCH_PAGE, 0, (j - i) * MULCH_PAGE);
        else if (madvise(p + i * MULCH_PAGE, (j - i) * MULCH_PAGE, MADV_DONTNEED) != 0) return false;
        i = j;
    }
    return true;
}

void os_release_chunk(void *p, size_t size) {
    if (p == NULL) return;
    if (size == MULCH_REGION && !tool_vg_running() && os_kept_has_room(&os_kept_chunks)) {
#if defined(MULCH_ASAN)
        /* the shadow of the pool's cells must not outlive them */
        ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
        if (os_zero_in_place(p, size) && os_kept_add(&os_kept_chunks, p, size)) return;
    }
    os_retire(p, size, size);
}

/* Keeps a small metadata mapping (zeroed) for the next os_map of its size;
 * false when it is too big or there is no room. */
static bool os_kept_map_put(void *p, size_t size) {
    /* (size 0: nothing to keep, and an empty entry would hold a slot for good) */
    if (size == 0 || size > OS_KEPT_MAP_MAX || tool_vg_running() || !os_kept_has_room(&os_kept_maps)) return false;
    /* (pages never touched are faulted in: at most OS_KEPT_MAP_MAX a
     * mapping, once, as they then stay; cheaper than a mincore and a
     * madvise each time, and the next owner uses most of them) */
    memset(p, 0, size);
    return os_kept_add(&os_kept_maps, p, size);
}

static void *os_kept_map_take(size_t size, bool *refused) {
    return size <= OS_KEPT_MAP_MAX ? os_kept_take(&os_kept_maps, size, refused) : NULL;
}

static bool os_kept_chunk_contains_locked(uintptr_t a) {
    for (size_t i = 0; i < os_kept_chunks.count; i++)
        if (a - os_kept_chunks.items[i].start < os_kept_chunks.items[i].size) return true;
    return false;
}

/* Gives back the slack of size bytes at p that os_map_aligned mapped
 * around an aligned mapping. At a region's alignment (every chunk, and
 * huge objects aligned no further) the slack is retired, not unmapped:
 * it lies between the new mapping and its neighbours (the kernel places
 * mappings next to each other, top down), and a hole there kept the
 * retired ranges either side of it from ever coalescing. With holes, a
 * long run of mapping and releasing large objects of mixed sizes left the
 * set in pieces each too small for the next large object, which was then
 * mapped anew (test_address_space_bounded, six objects of at most 53
 * MiB: 460-830 MiB of address space above the start on session 29's
 * host; with the slack retired, at most 357 MiB over 65 seeds). How much
 * it matters depends on the kernel's placement: on session 31's host
 * (Linux 6.18) both ways stay within 391 MiB over 1,000 seeds (median
 * 291). A larger alignment's slack is as big as the alignment
 * (gigabytes, possibly), so it is unmapped as before; smaller alignments
 * are the tests' only. */
static void os_map_slack(void *p, size_t size, size_t alignment) {
    if (size == 0) return;
    if (alignment == MULCH_REGION) os_retire(p, size, size);
    else os_munmap(p, size);
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
    bool refused = false;
    /* (a kept chunk is one region, not charged) */
    void *reused = size == MULCH_REGION && alignment == MULCH_REGION && skew == 0 && !charged
                       ? os_kept_take(&os_kept_chunks, size, &refused)
                       : NULL;
    if (reused != NULL || refused) return reused;
    reused = os_retired_take(size, alignment, skew, charged, &refused);
    if (reused != NULL || refused) return reused;
    /* Try the exact size first: the kernel often places consecutive
     * mappings next to each other, and an aligned hit saves two munmaps. */
    unsigned char *p = os_mmap(size, charged);
    if (p == NULL) return NULL;
    if ((((uintptr_t)p + skew) & (alignment - 1)) == 0) return p;
    os_munmap(p, size);
    p = os_mmap(size + alignment, charged && alignment <= MULCH_REGION);
    if (p == NULL) return NULL;
    uintptr_t start = (((uintptr_t)p + skew + alignment - 1) & ~(uintptr_t)(alignment - 1)) - skew;
    os_map_slack(p, start - (uintptr_t)p, alignment);
    os_map_slack((unsigned char *)start + size, (uintptr_t)p + alignment - start, alignment);
    return (void *)start;
}

void os_unmap(void *p, size_t size) {
    if (p == NULL) return;
#if defined(MULCH_ASAN)
    /* the shadow would outlive the mapping and poison whoever maps here next */
    ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
    if (os_kept_map_put(p, page_round(size))) return;
    os_munmap(p, size);
}

bool os_resize_in_place(void *p, size_t size, size_t new_size) {
    size = page_round(size);
    new_size = page_round(new_size);
    /* growing maps pages: a fault-injection point like any mapping */
    if (new_size > size && os_injected_failure()) return false;
    if (mremap(p, size, new_size, 0) != p) return false;
    if (new_size > size) atomic_fetch_add_explicit(&os_mapped, new_size - size, memory_order_relaxed);
    else atomic_fetch_sub_explicit(&os_mapped, size - new_size, memory_order_relaxed);
    return true;
}

void *os_remap(void *p, size_t size, size_t new_size) {
    size = page_round(size);
    new_size = page_round(new_size);
    if (new_size > size && os_injected_failure()) return NULL;
#if defined(MULCH_TSAN)
    /* ThreadSanitizer does not follow mremap: an address one marker's
     * stack left and another's move reused looked like two threads
     * writing one word (parallel markers growing their stacks during a
     * minor collection's card scan: 2 of 6 runs with 4 markers). Map,
     * copy and unmap instead, which it does follow. */
    unsigned char *copy = os_map(new_size);
    if (copy == NULL) return NULL;
    memcpy(copy, p, size < new_size ? size : new_size); /* (the rest reads zero, as mremap's new pages) */
    os_unmap(p, size);
    return copy;
#else
    void *moved = mremap(p, size, new_size, MREMAP_MAYMOVE);
    if (moved == MAP_FAILED) return NULL;
    if (new_size > size) atomic_fetch_add_explicit(&os_mapped, new_size - size, memory_order_relaxed);
    else atomic_fetch_sub_explicit(&os_mapped, size - new_size, memory_order_relaxed);
    return moved;
#endif
}

#ifndef MREMAP_DONTUNMAP
#  define MREMAP_DONTUNMAP 4 /* linux/mman.h; older C library headers lack it */
#endif

/* Set once the kernel said EINVAL to DONTUNMAP (before Linux 5.7, or
 * valgrind): every later move copies without asking again. */
static atomic_bool os_move_unsupported;

bool os_move_force_copy(bool copy) {
    return atomic_exchange_explicit(&os_move_unsupported, copy, memory_order_relaxed);
}

os_move_t os_move_pages(void *from, size_t size, void *to) {
    if (os_injected_failure()) return OS_MOVE_REFUSED;
    if (atomic_load_explicit(&os_move_unsupported, memory_order_relaxed)) return OS_MOVE_UNSUPPORTED;
    size = page_round(size);
    /* MREMAP_FIXED replaces what was mapped at `to` (pages of the
     * destination, still empty); the source keeps its range. */
    void *moved = mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
    if (moved == to) return OS_MOVE_DONE;
    /* EINVAL: no DONTUNMAP here, for good. Anything else (a source split
     * over mappings the kernel would not merge, the map count limit): the
     * caller copies this once. The source is untouched either way. */
    if (moved == MAP_FAILED && errno == EINVAL)
        atomic_store_explicit(&os_move_unsupported, true, memory_order_relaxed);
    return OS_MOVE_UNSUPPORTED;
}

bool os_protect_none(void *p, size_t size) {
    return mprotect(p, size, PROT_NONE) == 0;
}

void os_decommit(void *p, size_t size) {
    /* MADV_DONTNEED frees the pages now (RSS drops at once, which is what
     * pool_trim promises) and the range reads back as zeros. */
    (void)madvise(p, size, MADV_DONTNEED);
}
