/* mulch/pool.h — the block pool: a thread-safe, size-classed allocator.
 *
 * Any thread may free memory allocated by any other thread. Allocation and
 * free take no lock on their fast path (per-thread heaps); misuse (double
 * free, foreign or interior pointers, corrupted headers) is reported through
 * the error handler of <mulch/common.h> and otherwise ignored.
 * See docs/pool.md for the guide and docs/architecture.md for the layout. */
#ifndef MULCH_POOL_H
#define MULCH_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <mulch/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pool pool_t;

typedef struct pool_options {
    size_t block_size;  /* bytes per block: a power of two, 16 KiB..4 MiB; 0 = 64 KiB */
    size_t limit;       /* hard cap on bytes reserved from the OS; 0 = none */
    int    track_leaks; /* record allocation sites for pool_report_leaks
                           (also on when MULCH_TRACK_LEAKS=1 in the environment) */
    int    secure;      /* hardened mode: a guard page after each large object,
                           freed large mappings released at once, new cells
                           handed out in random order (also on when
                           MULCH_SECURE=1 in the environment); docs/pool.md */
} pool_options_t;

/* NULL when the options are invalid (reported) or the OS refuses memory. */
MULCH_API pool_t *pool_create(const pool_options_t *opts);
/* Releases everything the pool holds, including memory of exited threads.
 * Must not race other threads' use of this pool. */
MULCH_API void    pool_destroy(pool_t *pool);
/* The process-wide pool, created on first use, never destroyed. */
MULCH_API pool_t *pool_default(void);

/* 16-byte aligned; size 0 gives a unique minimal block. NULL on OOM. */
MULCH_API MULCH_MALLOC MULCH_ALLOC_SIZE(2) MULCH_NODISCARD
void *pool_alloc(pool_t *pool, size_t size);
/* Zeroed; NULL on n*size overflow or OOM. */
MULCH_API MULCH_MALLOC MULCH_ALLOC_SIZE2(2, 3) MULCH_NODISCARD
void *pool_calloc(pool_t *pool, size_t n, size_t size);
/* p NULL: alloc; size 0: frees p, returns NULL; on failure p is untouched
   (a shrink does not fail: at the limit p stays where it is). */
MULCH_API MULCH_ALLOC_SIZE(3) MULCH_NODISCARD
void *pool_realloc(pool_t *pool, void *p, size_t size);
/* align: a power of two, any size. Up to the pool's block size (64 KiB by
   default) a size class whose cells are all aligned serves it when one is
   big enough; otherwise the allocation gets a mapping of its own. */
MULCH_API MULCH_MALLOC MULCH_ALLOC_SIZE(2) MULCH_NODISCARD
void *pool_alloc_aligned(pool_t *pool, size_t size, size_t align);
/* NULL is a no-op. */
MULCH_API void   pool_free(pool_t *pool, void *p);
/* >= the requested size; 0 (and a report) for a pointer the pool does not own. */
MULCH_API size_t pool_usable_size(pool_t *pool, const void *p);

/* Compaction of free space: free blocks are coalesced as they are freed;
 * this returns free spans, cached large mappings and the calling thread's
 * empty spans and free pages to the OS (munmap or madvise) and reports the
 * bytes released: the drop in bytes_reserved (docs/api.md). */
MULCH_API size_t pool_trim(pool_t *pool);

typedef struct pool_stats {
    size_t   bytes_in_use;     /* sum of usable sizes of live allocations */
    size_t   bytes_reserved;   /* bytes currently held from the OS (committed) */
    size_t   peak_reserved;
    uint64_t allocs, frees;    /* cumulative counts */
    size_t   live_allocations;
    double   fragmentation;    /* 1 - in_use / reserved, 0..1 */
    /* Extensions (appended): */
    size_t   bytes_mapped;     /* address space mapped, committed or not */
    size_t   free_block_bytes; /* committed bytes in free blocks (trimmable) */
    size_t   large_objects;    /* live allocations in their own mappings */
} pool_stats_t;

/* Pool-wide calls (stats, trim, leak report) are safe while other threads
   allocate; their figures are exact when the pool is quiescent. */
MULCH_API void pool_get_stats(pool_t *pool, pool_stats_t *out);

/* Writes one line per live allocation (address, size, site), then a per-site
   summary; returns the number of live allocations. out NULL = stderr. */
MULCH_API size_t pool_report_leaks(pool_t *pool, FILE *out);

/* Allocation-site capturing variant; `file` must have static storage (NULL
   is accepted: the leak report shows the site as `<no file>:line`). */
MULCH_API MULCH_MALLOC MULCH_ALLOC_SIZE(2) MULCH_NODISCARD
void *pool_alloc_at(pool_t *pool, size_t size, const char *file, int line);
#define POOL_ALLOC(pool, size) pool_alloc_at((pool), (size), __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif

#endif /* MULCH_POOL_H */
