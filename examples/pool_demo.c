/* pool_demo.c — a tour of the block pool through its public API.
 *
 * Creates a pool that records allocation sites, fills it with a few thousand
 * objects of mixed sizes (small, medium and a few large ones that get their
 * own mappings), frees almost all of them, shows the statistics before and
 * after pool_trim, and lists the three allocations it "forgot" with
 * pool_report_leaks. Exit status 0 when every figure is as expected.
 *
 *   build/default/examples/pool_demo [seed]
 */
#include <mulch.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_OBJECTS = 4000, N_LEAKS = 3 };

struct object {
    unsigned char *ptr;
    size_t size;
};

/* xorshift64*: deterministic sizes for a given seed. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

/* Mostly small objects, some medium, a few large. */
static size_t pick_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    unsigned kind = (unsigned)(r % 100);
    r >>= 8;
    if (kind < 80)
        return 8 + (size_t)(r % 249);             /* 8 B .. 256 B */
    if (kind < 98)
        return 257 + (size_t)(r % (16 * 1024));   /* ~0.25 .. 16 KiB */
    return 64 * 1024 + (size_t)(r % (192 * 1024)); /* 64 .. 256 KiB */
}

static const char *human(size_t bytes, char buf[static 32])
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, 32, "%zu B", bytes);
    else
        snprintf(buf, 32, "%.1f %s", v, units[u]);
    return buf;
}

static void print_stats(pool_t *pool, const char *title)
{
    pool_stats_t s;
    char a[32], b[32];

    pool_get_stats(pool, &s);
    printf("\n%s\n", title);
    printf("  in use          %12s   in %zu live allocations\n",
           human(s.bytes_in_use, a), s.live_allocations);
    printf("  reserved        %12s   (peak %s)\n",
           human(s.bytes_reserved, a), human(s.peak_reserved, b));
    printf("  fragmentation   %11.1f %%\n", s.fragmentation * 100.0);
    printf("  allocs / frees  %12" PRIu64 " / %" PRIu64 "\n", s.allocs, s.frees);
}

/* The three allocations this demo "forgets", each from its own line so the
 * leak report can name it. */
static void *leak_small(pool_t *pool)  { return POOL_ALLOC(pool, 24); }
static void *leak_medium(pool_t *pool) { return POOL_ALLOC(pool, 200); }
static void *leak_large(pool_t *pool)  { return POOL_ALLOC(pool, 5000); }

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x6d756c6368ULL;
    uint64_t rng = seed ? seed : 1;
    int failures = 0;
    char a[32];

    printf("mulch %s pool demo (seed %" PRIu64 ")\n", mulch_version(), seed);

    pool_options_t opts = { 0 };
    opts.track_leaks = 1;
    pool_t *pool = pool_create(&opts);
    if (pool == NULL) {
        fprintf(stderr, "pool_demo: pool_create failed\n");
        return EXIT_FAILURE;
    }

    /* 1. Allocate: every 8th object through POOL_ALLOC (records file:line),
     *    each filled with a byte derived from its index. */
    static struct object objs[N_OBJECTS];
    void *leaks[N_LEAKS] = { NULL };
    size_t total = 0;
    for (size_t i = 0; i < N_OBJECTS; i++) {
        size_t size = pick_size(&rng);
        unsigned char *p = (i % 8 == 0) ? POOL_ALLOC(pool, size)
                                        : pool_alloc(pool, size);
        if (p == NULL) {
            fprintf(stderr, "pool_demo: allocation %zu (%zu bytes) failed\n", i, size);
            pool_destroy(pool);
            return EXIT_FAILURE;
        }
        memset(p, (int)(i & 0xff), size);
        objs[i] = (struct object){ p, size };
        total += size;
        /* Scatter the leaks among the others. */
        if (i == N_OBJECTS / 4)
            leaks[0] = leak_small(pool);
        else if (i == N_OBJECTS / 2)
            leaks[1] = leak_medium(pool);
        else if (i == 3 * N_OBJECTS / 4)
            leaks[2] = leak_large(pool);
    }
    for (int k = 0; k < N_LEAKS; k++) {
        if (leaks[k] == NULL) {
            fprintf(stderr, "pool_demo: leak allocation %d failed\n", k);
            pool_destroy(pool);
            return EXIT_FAILURE;
        }
    }
    printf("\nallocated %d objects, %s requested\n", N_OBJECTS + N_LEAKS, human(total, a));
    print_stats(pool, "after allocating:");

    /* 2. Check the contents survived their neighbours, then free them all
     *    (the three leaks stay). */
    for (size_t i = 0; i < N_OBJECTS; i++) {
        const unsigned char *p = objs[i].ptr;
        for (size_t j = 0; j < objs[i].size; j++) {
            if (p[j] != (unsigned char)(i & 0xff)) {
                fprintf(stderr, "pool_demo: object %zu corrupted at byte %zu\n", i, j);
                failures++;
                break;
            }
        }
        pool_free(pool, objs[i].ptr);
    }
    print_stats(pool, "after freeing all but 3:");

    /* 3. Give the free space back to the OS. */
    size_t released = pool_trim(pool);
    printf("\npool_trim released %s\n", human(released, a));
    print_stats(pool, "after pool_trim:");

    /* 4. What is still alive, and where it came from. */
    printf("\npool_report_leaks:\n");
    fflush(stdout);
    size_t live = pool_report_leaks(pool, stdout);
    if (live != N_LEAKS) {
        fprintf(stderr, "pool_demo: expected %d leaks, pool_report_leaks found %zu\n",
                N_LEAKS, live);
        failures++;
    }

    for (int k = 0; k < N_LEAKS; k++)
        pool_free(pool, leaks[k]);
    pool_stats_t end;
    pool_get_stats(pool, &end);
    if (end.live_allocations != 0) {
        fprintf(stderr, "pool_demo: %zu allocations still live after freeing the leaks\n",
                end.live_allocations);
        failures++;
    }
    pool_destroy(pool);

    printf("\n%s\n", failures ? "pool_demo: FAILED" : "pool_demo: done");
    return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
