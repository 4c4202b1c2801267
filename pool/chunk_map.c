/* chunk_map.c — address → chunk, in O(1), for any address.
 *
 * A two-level radix table over the 48-bit address space at MULCH_REGION
 * (4 MiB) granularity: 2^13 top entries, each pointing to a lazily mapped
 * leaf of 2^13 chunk pointers (64 KiB, then 32 KiB of coverage: below).
 * Every region that a chunk covers points to that chunk; a region belongs
 * to at most one chunk because chunks are region-aligned and whole regions
 * long. A huge chunk resized in place (its realloc: chunk_map_resize)
 * keeps this: grown regions are set once its pages are mapped, shrunk
 * ones cleared before its pages go.
 *
 * Beside it, a byte per region says "a blocks chunk starts here": the free
 * fast path confirms its guess of a cell's chunk (the start of the cell's
 * region) with one load from it (chunk_starts_blocks), where the table
 * takes two dependent ones. A byte, not a bit: the test is a compare,
 * without the shifts and bit test a bitmap needs (5 instructions of every
 * free, session 27). 2^26 regions: 64 MiB of address space, reserved
 * (MAP_NORESERVE) by the first pool_create (chunk_map_init), of which only
 * the pages of regions in use are ever written (a page covers 16 GiB of
 * address space); reads of the others find the zero page. Not static
 * storage: a conservative collector in the same process (Boehm's scans
 * every library's data and bss) would scan it as roots at each
 * collection, and size its heap by it (the Lisp example's Boehm build
 * collected 86 times instead of 1458 on closures.scm with the 8 MiB
 * bitmap this map replaced, its peak RSS 2.5 times as high).
 *
 * Each leaf also says, per region, how many of its bytes from the region's
 * start the chunk's own mapping holds (all of them but in a huge chunk's
 * last region): chunk_covering answers "whose bytes hold p" from the leaf
 * alone, never reading a chunk header, so that the malloc drop-in can tell
 * a foreign pointer beside a huge object while another thread unmaps that
 * object. Set before the region's chunk pointer, cleared after it; a
 * reader that finds p covered found the chunk mapped there at that moment,
 * so p was the chunk's (a foreign block there did not exist then).
 *
 * Readers (chunk_of in pool_internal.h) take no lock: a pointer handed to
 * pool_free was allocated after its chunk was inserted (happens-before), and
 * any other address either finds NULL or a chunk whose magic and pool the
 * caller checks. Leaves are never freed, so a racing reader never touches
 * unmapped memory through the map. A stale pointer, freed twice, whose
 * empty chunk another thread is releasing may find the chunk here and
 * read its header afterwards: a released chunk's range stays mapped,
 * read-only and zero (os.c's retired set), so the read finds magic 0 and
 * the call reports (docs/pool.md "Errors and misuse"); unless the set was
 * full and the range really unmapped. Writers serialise on map_lock.
 */
#include <sys/mman.h>

#include "pool_internal.h"

#define LEAF_ENTRIES (1u << CHUNK_MAP_LEVEL_BITS)
#define TOP_ENTRIES  (1u << (CHUNK_MAP_ADDRESS_BITS - MULCH_REGION_SHIFT - CHUNK_MAP_LEVEL_BITS))

_Atomic(chunk_t **) chunk_map_top[TOP_ENTRIES];
chunk_start_byte_t *_Atomic chunk_map_blocks_start;
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;

/* A leaf: LEAF_ENTRIES chunk pointers, then as many coverage counts (the
 * bytes of the region, from its start, that the chunk's mapping holds). */
#define LEAF_BYTES (LEAF_ENTRIES * (sizeof(chunk_t *) + sizeof(uint32_t)))

static _Atomic uint32_t *leaf_covered(chunk_t **leaf, uintptr_t region) {
    return (_Atomic uint32_t *)(void *)(leaf + LEAF_ENTRIES) + (region & (LEAF_ENTRIES - 1));
}

static _Atomic(chunk_t *) *chunk_map_slot(uintptr_t region, bool create) {
    _Atomic(chunk_t **) *top = &chunk_map_top[region >> CHUNK_MAP_LEVEL_BITS];
    chunk_t **leaf = atomic_load_explicit(top, memory_order_relaxed);
    if (leaf == NULL) {
        if (!create) return NULL;
        leaf = os_map(LEAF_BYTES);
        if (leaf == NULL) return NULL;
        atomic_store_explicit(top, leaf, memory_order_release);
    }
    return (_Atomic(chunk_t *) *)&leaf[region & (LEAF_ENTRIES - 1)];
}

chunk_t *chunk_covering(const void *p) {
    uintptr_t a = (uintptr_t)p;
    if (a >> CHUNK_MAP_ADDRESS_BITS) return NULL;
    uintptr_t region = a >> MULCH_REGION_SHIFT;
    chunk_t **leaf = atomic_load_explicit(&chunk_map_top[region >> CHUNK_MAP_LEVEL_BITS], memory_order_acquire);
    if (leaf == NULL) return NULL;
    _Atomic(chunk_t *) *slot = (_Atomic(chunk_t *) *)&leaf[region & (LEAF_ENTRIES - 1)];
    chunk_t *chunk = atomic_load_explicit(slot, memory_order_acquire);
    if (chunk == NULL) return NULL;
    uint32_t covered = atomic_load_explicit(leaf_covered(leaf, region), memory_order_acquire);
    return (a & (MULCH_REGION - 1)) < covered ? chunk : NULL;
}

/* Points every region of [chunk, chunk+size) at value; false (and nothing
 * changed) when a leaf cannot be mapped. Caller holds map_lock. */
static bool chunk_map_set_locked(const chunk_t *chunk, chunk_t *value) {
    uintptr_t first = (uintptr_t)chunk >> MULCH_REGION_SHIFT;
    uintptr_t last = ((uintptr_t)chunk + chunk->size - 1) >> MULCH_REGION_SHIFT;
    for (uintptr_t r = first; r <= last; r++) {
        if (value != NULL && chunk_map_slot(r, true) == NULL) return false;
    }
    uintptr_t end = (uintptr_t)chunk + chunk->size;
    for (uintptr_t r = first; r <= last; r++) {
        _Atomic(chunk_t *) *slot = chunk_map_slot(r, false);
        if (slot == NULL) continue;
        chunk_t **leaf = atomic_load_explicit(&chunk_map_top[r >> CHUNK_MAP_LEVEL_BITS], memory_order_relaxed);
        uintptr_t start = r << MULCH_REGION_SHIFT;
        uint32_t covered = value == NULL ? 0 : (uint32_t)(end - start < MULCH_REGION ? end - start : MULCH_REGION);
        /* covered before the chunk is, uncovered after it is not */
        if (value != NULL) atomic_store_explicit(leaf_covered(leaf, r), covered, memory_order_release);
        atomic_store_explicit(slot, value, memory_order_release);
        if (value == NULL) atomic_store_explicit(leaf_covered(leaf, r), 0, memory_order_release);
    }
    return true;
}

/* Set before the chunk's first cell is handed out (release: a reader that
 * sees the byte set sees the header), cleared before the chunk is
 * released. Caller holds map_lock. */
static void chunk_map_mark_start_locked(const chunk_t *chunk, bool blocks_start) {
    uintptr_t region = (uintptr_t)chunk >> MULCH_REGION_SHIFT;
    chunk_start_byte_t *map = atomic_load_explicit(&chunk_map_blocks_start, memory_order_relaxed);
    atomic_store_explicit(&map[region], blocks_start ? 1 : 0, memory_order_release);
}

static bool chunk_map_set(const chunk_t *chunk, chunk_t *value) {
    pthread_mutex_lock(&map_lock);
    if (value == NULL) chunk_map_mark_start_locked(chunk, false);
    bool ok = chunk_map_set_locked(chunk, value);
    if (ok && value != NULL && chunk->kind == CHUNK_BLOCKS) chunk_map_mark_start_locked(chunk, true);
    pthread_mutex_unlock(&map_lock);
    return ok;
}

bool chunk_map_init(void) {
    if (atomic_load_explicit(&chunk_map_blocks_start, memory_order_acquire) != NULL) return true;
    pthread_mutex_lock(&map_lock);
    if (atomic_load_explicit(&chunk_map_blocks_start, memory_order_relaxed) == NULL) {
        /* Not os_map: neither counted as pool metadata nor ever unmapped
         * (a racing free may read it at any time); its zero pages read as
         * "no chunk here". */
        void *bytes = mmap(NULL, CHUNK_MAP_REGIONS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
        if (bytes != MAP_FAILED) atomic_store_explicit(&chunk_map_blocks_start, bytes, memory_order_release);
    }
    pthread_mutex_unlock(&map_lock);
    return atomic_load_explicit(&chunk_map_blocks_start, memory_order_acquire) != NULL;
}

bool chunk_map_insert(chunk_t *chunk) {
    if (((uintptr_t)chunk + chunk->size - 1) >> CHUNK_MAP_ADDRESS_BITS) return false;
    return chunk_map_set(chunk, chunk);
}

void chunk_map_remove(chunk_t *chunk) {
    (void)chunk_map_set(chunk, NULL);
}

/* Growing: the new regions are set like an insert's (covered, then
 * pointed at; the grown pages are mapped already). Shrinking: the last
 * kept region's coverage drops first, then the regions past it are
 * cleared, all before the caller releases the pages. */
bool chunk_map_resize(chunk_t *chunk, size_t old_size) {
    if (((uintptr_t)chunk + chunk->size - 1) >> CHUNK_MAP_ADDRESS_BITS) return false;
    pthread_mutex_lock(&map_lock);
    bool ok = chunk_map_set_locked(chunk, chunk);
    uintptr_t kept = ((uintptr_t)chunk + chunk->size - 1) >> MULCH_REGION_SHIFT;
    uintptr_t last = ((uintptr_t)chunk + old_size - 1) >> MULCH_REGION_SHIFT;
    for (uintptr_t r = kept + 1; ok && r <= last; r++) {
        _Atomic(chunk_t *) *slot = chunk_map_slot(r, false);
        if (slot == NULL) continue;
        chunk_t **leaf = atomic_load_explicit(&chunk_map_top[r >> CHUNK_MAP_LEVEL_BITS], memory_order_relaxed);
        atomic_store_explicit(slot, NULL, memory_order_release);
        atomic_store_explicit(leaf_covered(leaf, r), 0, memory_order_release);
    }
    pthread_mutex_unlock(&map_lock);
    return ok;
}

void chunk_map_lock(void) { pthread_mutex_lock(&map_lock); }
void chunk_map_unlock(void) { pthread_mutex_unlock(&map_lock); }
