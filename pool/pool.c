/* pool.c — pool lifecycle and pool-wide operations: create, destroy, the
 * default pool, statistics and trimming.
 *
 * A pool's geometry is fixed at creation: block size, chunk size (at least
 * one 4 MiB region and 16 blocks), the header blocks each chunk reserves for
 * descriptors and GC side metadata, and the classes served from spans
 * (sizes up to small_max; larger requests are huge objects). The struct
 * itself is mapped from the OS like everything else, so the pool never
 * depends on malloc (it can serve as malloc later).
 */
#include <stdlib.h>
#include <time.h>

#include "pool_internal.h"
#include "release.h"

static _Atomic uint64_t next_pool_id = 1;

static uint64_t mix64(uint64_t x) {
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

static uint64_t pool_secret(const pool_t *pool) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t k = mix64((uint64_t)(uintptr_t)pool ^ mix64(pool->id) ^ mix64((uint64_t)ts.tv_nsec)
                       ^ (uint64_t)ts.tv_sec);
    /* never zero; bit 0 set also keeps a free cell's mark from reading as
     * an rc object's live magic (runtime/rc_internal.h rc_live_magic) */
    return k | 1;
}

static bool pool_geometry(pool_t *pool, size_t block_size) {
    if (block_size == 0) block_size = MULCH_DEFAULT_BLOCK;
    if (block_size < MULCH_MIN_BLOCK || block_size > MULCH_MAX_BLOCK || (block_size & (block_size - 1)))
        return false;
    pool->block_size = block_size;
    pool->block_shift = (uint32_t)__builtin_ctzll(block_size);
    pool->chunk_size = block_size * 16 > MULCH_REGION ? block_size * 16 : MULCH_REGION;
    pool->blocks_per_chunk = (uint32_t)(pool->chunk_size >> pool->block_shift);
    /* three bitmaps, one bit per 16-byte granule: mark, start, and one the
     * owner uses as it likes (the collector's age bits) */
    pool->side_per_block = block_size / 128 * 3;
    /* release units (release.c): pages, or a 64th of a block when a block
     * has more than 64 pages, so that a block's units fit one word */
    pool->release_shift = block_size / MULCH_PAGE > 64 ? pool->block_shift - 6 : (uint32_t)__builtin_ctzll(MULCH_PAGE);
    pool->units_shift = pool->block_shift - pool->release_shift;
    size_t header = chunk_header_bytes(pool->blocks_per_chunk, block_size, pool->side_per_block);
    pool->header_blocks = (uint32_t)((header + block_size - 1) >> pool->block_shift);
    uint32_t usable = pool->blocks_per_chunk - pool->header_blocks;
    /* Classes up to two blocks, each span holding at least 8 cells and
     * fitting in one chunk. */
    unsigned top = size_class_of(2 * block_size);
    while (top > 0) {
        size_t cell = size_class_bytes(top);
        uint32_t blocks = cell <= block_size / 8 ? 1 : (uint32_t)((cell * 8 + block_size - 1) / block_size);
        if (blocks <= usable) break;
        top--;
    }
    pool->class_count = top + 1;
    pool->small_max = size_class_bytes(top);
    return true;
}

pool_t *pool_create(const pool_options_t *opts) {
    pool_options_t defaults = { 0 };
    if (opts == NULL) opts = &defaults;
    pool_t probe;
    memset(&probe, 0, sizeof probe);
    if (!pool_geometry(&probe, opts->block_size)) {
        mulch_report("pool_create: block_size must be a power of two from 16 KiB to 4 MiB",
                     (const void *)(uintptr_t)opts->block_size);
        return NULL;
    }
    if (!chunk_map_init()) return NULL; /* the free path's region start map */
    pool_t *pool = os_map(sizeof(pool_t));
    if (pool == NULL) return NULL;
    pool_geometry(pool, opts->block_size);
    pool->id = atomic_fetch_add_explicit(&next_pool_id, 1, memory_order_relaxed);
    pool->key = pool_secret(pool);
    pool->chunk_seal = chunk_blocks_seal(pool->key);
    pool->limit = opts->limit;
    pool->secure = opts->secure || mulch_env_switch("MULCH_SECURE", "pool_create", 0);
    pool->valgrind = tool_vg_running();
    /* Under valgrind the pool tracks sites: tracking takes allocation off
     * the fast path and gives frees a branch where memcheck's requests can
     * sit, so that they cost nothing outside valgrind (pool/tool.h). */
    pool->track_leaks = opts->track_leaks || mulch_env_switch("MULCH_TRACK_LEAKS", "pool_create", 0) || pool->valgrind;
    pool->fast_max = pool->track_leaks ? 0 : pool->small_max;
    atomic_store_explicit(&pool->shuffle_state, mix64(pool->key), memory_order_relaxed);
    if (pthread_mutex_init(&pool->lock, NULL) != 0) {
        os_unmap(pool, sizeof(pool_t));
        return NULL;
    }
    if (!pool_list_add(pool)) {
        pthread_mutex_destroy(&pool->lock);
        os_unmap(pool, sizeof(pool_t));
        return NULL;
    }
    return pool;
}

_Atomic(pool_destroy_hook_t) mulch_pool_destroy_hook;

void pool_destroy(pool_t *pool) {
    if (pool == NULL) return;
    atomic_store_explicit(&pool->destroying, 1, memory_order_seq_cst);
    pool_destroy_hook_t hook = atomic_load_explicit(&mulch_pool_destroy_hook, memory_order_acquire);
    if (hook) hook(pool);
    pool_list_remove(pool);
    heaps_forget_pool(pool);
    pthread_mutex_lock(&pool->lock);
    if (TOOL_VG(pool->valgrind)) pool_tool_forget_live_locked(pool);
    chunks_unmap_all_locked(pool);
    huge_unmap_all_locked(pool);
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_destroy(&pool->lock);
    pool->id = 0;
    os_unmap(pool, sizeof(pool_t));
}

/* The default pool: created under default_lock by the first call that
 * finds it missing, so a creation the OS refused is tried again by the next
 * call (a pthread_once would have kept the NULL for good). A fork child
 * gets the lock afresh (pool_default_fork_child): a thread of the parent
 * may have held it, creating the pool, and is not in the child. The fork
 * handlers do not take it: a report handler may call pool_default() with a
 * pool's lock held, which the prepare handler takes after. */
static _Atomic(pool_t *) default_pool;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static pool_options_t default_options;

void pool_default_set_options(const pool_options_t *opts) {
    pthread_mutex_lock(&default_lock);
    default_options = *opts;
    pthread_mutex_unlock(&default_lock);
}

static MULCH_NOINLINE pool_t *default_pool_create(void) {
    pthread_mutex_lock(&default_lock);
    pool_t *pool = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (pool == NULL) {
        pool = pool_create(&default_options);
        if (pool) atomic_store_explicit(&default_pool, pool, memory_order_release);
    }
    pthread_mutex_unlock(&default_lock);
    return pool;
}

pool_t *pool_default(void) {
    pool_t *pool = atomic_load_explicit(&default_pool, memory_order_acquire);
    return mulch_likely(pool != NULL) ? pool : default_pool_create();
}

/* The child of a fork: one thread, holding none of the lock. A creation
 * the parent had under way is not finished here (the pool it was making
 * may be on the pool list, unused): the child's next call makes one. */
void pool_default_fork_child(void) {
    pthread_mutex_init(&default_lock, NULL);
}

void heap_counts_sum(const pool_t *pool, const thread_heap_t *heap, uint64_t *allocs, uint64_t *frees,
                     int64_t *bytes) {
    *allocs = *frees = 0;
    *bytes = 0;
    for (unsigned cls = 0; cls < pool->class_count; cls++) {
        /* (see thread_heap_t's counters) */
        uint64_t recycled = recent_recycled_get(heap, cls);
        uint64_t a = atomic_load_explicit(&heap->alloc_count[cls], memory_order_relaxed) + recycled;
        uint64_t f = atomic_load_explicit(&heap->free_count[cls], memory_order_relaxed) + recycled
                     + recent_count_get(heap, cls);
        *allocs += a;
        *frees += f;
        *bytes += (int64_t)(a - f) * (int64_t)size_class_bytes(cls);
    }
}

/* A NULL pool where a call needs one is misuse, reported and refused
 * (docs/api.md "Conventions"); pool_alloc and pool_alloc_at, the fast
 * path, do not check. */
bool pool_given(const pool_t *pool, const char *fn) {
    if (mulch_likely(pool != NULL)) return true;
    char what[96];
    snprintf(what, sizeof what, "%s: pool is NULL", fn);
    mulch_report(what, NULL);
    return false;
}

void pool_get_stats(pool_t *pool, pool_stats_t *out) {
    if (out == NULL) {
        mulch_report("pool_get_stats: out is NULL", pool);
        return;
    }
    memset(out, 0, sizeof *out);
    if (!pool_given(pool, "pool_get_stats")) return;
    pthread_mutex_lock(&pool->lock);
    uint64_t allocs = pool->retired_allocs, frees = pool->retired_frees;
    int64_t in_use = pool->retired_bytes;
    for (thread_heap_t *heap = pool->heaps; heap; heap = heap->pool_next) {
        uint64_t heap_allocs, heap_frees;
        int64_t heap_bytes;
        heap_counts_sum(pool, heap, &heap_allocs, &heap_frees, &heap_bytes);
        allocs += heap_allocs;
        frees += heap_frees;
        in_use += heap_bytes;
    }
    pthread_mutex_unlock(&pool->lock);
    allocs += atomic_load_explicit(&pool->huge_allocs, memory_order_relaxed);
    frees += atomic_load_explicit(&pool->huge_frees, memory_order_relaxed);
    in_use += (int64_t)atomic_load_explicit(&pool->huge_bytes, memory_order_relaxed);
    out->allocs = allocs;
    out->frees = frees;
    out->live_allocations = allocs > frees ? (size_t)(allocs - frees) : 0;
    out->bytes_in_use = in_use > 0 ? (size_t)in_use : 0;
    out->bytes_reserved = atomic_load_explicit(&pool->committed, memory_order_relaxed);
    out->peak_reserved = atomic_load_explicit(&pool->peak_committed, memory_order_relaxed);
    out->bytes_mapped = atomic_load_explicit(&pool->mapped, memory_order_relaxed);
    out->free_block_bytes = atomic_load_explicit(&pool->free_committed, memory_order_relaxed);
    out->large_objects = atomic_load_explicit(&pool->huge_live, memory_order_relaxed);
    double f = out->bytes_reserved ? 1.0 - (double)out->bytes_in_use / (double)out->bytes_reserved : 0.0;
    out->fragmentation = f < 0 ? 0 : f > 1 ? 1 : f;
}

/* The calling thread's spans whose cells all came back (including ones
 * freed by other threads and not yet collected, and the bin heads kept to
 * absorb ping-pong) go back to the pool. Other threads' heaps are theirs to
 * touch: their idle spans return when they allocate, trim, or exit. */
size_t heap_release_empty(pool_t *pool, thread_heap_t *heap) {
    size_t released = 0;
    heap_recent_flush(pool, heap);
    for (unsigned cls = 0; cls < pool->class_count; cls++) {
        /* full spans: remote frees may have reached them. A collect that
         * took a list clears TF_FULL even when it kept no cell (all were
         * parked cells of racing double frees, dropped): such a span leaves
         * the full list too, since no later remote free would flag it */
        for (block_t *f = heap->full[cls], *next; f; f = next) {
            next = f->next;
            if (block_collect(pool, f) != 0
                || !(atomic_load_explicit(&f->thread_free, memory_order_relaxed) & BLOCK_TF_FULL))
                block_unfull(heap, f);
        }
        /* dormant spans: remote frees may have emptied them, or given them
         * committed free cells again */
        for (block_t *d = heap->dormant[cls], *next; d; d = next) {
            next = d->next;
            if (block_collect(pool, d) == 0 && d->used != 0) continue;
            heap_list_to_bin(heap, d);
        }
        block_t *b = heap->bins[cls];
        while (b) {
            block_t *next = b->next;
            block_collect(pool, b);
            if (b->used == 0 && block_retire(pool, heap, b) != RETIRE_KEPT) released++;
            b = next;
        }
    }
    return released;
}

/* Spans of exited threads float in the abandoned lists, where no owner
 * would ever release their free pages: the trimming thread adopts them, as
 * an allocation would, so that its own release covers them. They are
 * marked, to be floated again afterwards (heap_refloat_adopted). */
static void heap_adopt_all_abandoned(pool_t *pool, thread_heap_t *heap) {
    for (unsigned cls = 0; cls < pool->class_count; cls++) {
        block_t *b;
        while ((b = block_adopt_abandoned(pool, heap, cls)) != NULL) {
            b->flags |= BLOCK_TRIM_ADOPTED;
            heap_bin_insert_second(heap, b);
        }
    }
}

/* The spans pool_trim adopted go back to the abandoned lists, as the
 * exiting thread left them: kept in the trimming thread's bins, their free
 * cells would serve only that thread (often a maintenance thread that
 * hardly allocates), and every other thread would take new spans. The
 * empty ones were returned already (heap_release_empty). */
static void heap_refloat_adopted(pool_t *pool, thread_heap_t *heap) {
    for (unsigned cls = 0; cls < pool->class_count; cls++) {
        block_t *lists[3] = { heap->bins[cls], heap->dormant[cls], heap->full[cls] };
        for (unsigned l = 0; l < 3; l++) {
            for (block_t *b = lists[l], *next; b; b = next) {
                next = b->next;
                if (!(b->flags & BLOCK_TRIM_ADOPTED)) continue;
                heap_list_unlink(heap, b); /* a stale TF_FULL is fine: block_float floats past it */
                b->flags &= (uint8_t)~BLOCK_TRIM_ADOPTED;
                block_float(pool, heap, b);
            }
        }
    }
}

/* Gives back: the calling thread's empty spans (after adopting the spans
 * of exited threads), then every page of its spans that only free cells
 * overlap (release.c), then free spans and the huge cache. The adopted
 * spans that still hold cells float again afterwards, for any thread to
 * reuse. Only the owner
 * may touch a span's free list, so other live threads' spans wait for
 * their own trim. Returns what this call gave back to the OS (committed
 * bytes before minus after: exact when the pool is quiescent, never
 * negative). */
size_t pool_trim(pool_t *pool) {
    if (!pool_given(pool, "pool_trim")) return 0;
    size_t before = atomic_load_explicit(&pool->committed, memory_order_relaxed);
    thread_heap_t *heap = mulch_tls.exited ? NULL : heap_current(pool);
    if (heap != NULL) {
        heap_adopt_all_abandoned(pool, heap);
        heap_release_empty(pool, heap);
        heap_release_free_pages(pool, heap);
        heap_refloat_adopted(pool, heap);
    }
    pthread_mutex_lock(&pool->lock);
    span_trim_locked(pool, 0);
    huge_cache_flush_locked(pool);
    size_t after = atomic_load_explicit(&pool->committed, memory_order_relaxed);
    pthread_mutex_unlock(&pool->lock);
    return before > after ? before - after : 0;
}
