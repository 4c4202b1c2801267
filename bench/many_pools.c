/* many_pools.c — one thread allocating from many pools at once (a pool per
 * connection or per request, a service's pattern), against mimalloc's
 * first-class heaps (mi_heap_new / mi_heap_malloc) when it is installed.
 *
 *   build/bench/bench/many_pools [operations]   (default 2000000 a row)
 *
 * Each row: create N pools (heaps), allocate one object in each, then
 * `operations` times pick a pool at random (a fixed LCG), allocate 16–
 * 256 bytes from it, write the object and free it; then destroy them all.
 * Reported per row: ns per alloc+free among N pools, µs to create+first
 * use and to destroy a pool. The ratio column compares mulch with mimalloc
 * measured in the same run. Before session 37 a thread found its heap for
 * a pool by walking a list of all the pools it had used: 355 ns an
 * operation among 100 pools, 147 µs among 5,000 (it is a table now).
 * Absolute times are not comparable across runs on a shared machine. */
#define _POSIX_C_SOURCE 200809L
#include <mulch.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(BENCH_MANY_POOLS_MIMALLOC)
#  include <mimalloc.h>
#endif

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

typedef struct row {
    double op_ns, create_us, destroy_us;
} row_t;

static uint32_t lcg(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

static row_t run_mulch(size_t pools, long operations)
{
    pool_t **p = calloc(pools, sizeof *p);
    if (p == NULL) exit(1);
    double t0 = now_ns();
    for (size_t i = 0; i < pools; i++) {
        p[i] = pool_create(NULL);
        if (p[i] == NULL) exit(1);
        pool_free(p[i], pool_alloc(p[i], 32));
    }
    double t1 = now_ns();
    uint32_t state = 1;
    for (long k = 0; k < operations; k++) {
        uint32_t r = lcg(&state);
        pool_t *pool = p[r % pools];
        size_t size = 16 + (r >> 20) % 241;
        unsigned char *obj = pool_alloc(pool, size);
        if (obj == NULL) exit(1);
        obj[0] = obj[size - 1] = (unsigned char)k;
        pool_free(pool, obj);
    }
    double t2 = now_ns();
    for (size_t i = 0; i < pools; i++) pool_destroy(p[i]);
    double t3 = now_ns();
    free(p);
    return (row_t){ (t2 - t1) / (double)operations, (t1 - t0) / 1e3 / (double)pools, (t3 - t2) / 1e3 / (double)pools };
}

#if defined(BENCH_MANY_POOLS_MIMALLOC)
static row_t run_mimalloc(size_t pools, long operations)
{
    mi_heap_t **h = calloc(pools, sizeof *h);
    if (h == NULL) exit(1);
    double t0 = now_ns();
    for (size_t i = 0; i < pools; i++) {
        h[i] = mi_heap_new();
        if (h[i] == NULL) exit(1);
        mi_free(mi_heap_malloc(h[i], 32));
    }
    double t1 = now_ns();
    uint32_t state = 1;
    for (long k = 0; k < operations; k++) {
        uint32_t r = lcg(&state);
        mi_heap_t *heap = h[r % pools];
        size_t size = 16 + (r >> 20) % 241;
        unsigned char *obj = mi_heap_malloc(heap, size);
        if (obj == NULL) exit(1);
        obj[0] = obj[size - 1] = (unsigned char)k;
        mi_free(obj);
    }
    double t2 = now_ns();
    for (size_t i = 0; i < pools; i++) mi_heap_destroy(h[i]);
    double t3 = now_ns();
    free(h);
    return (row_t){ (t2 - t1) / (double)operations, (t1 - t0) / 1e3 / (double)pools, (t3 - t2) / 1e3 / (double)pools };
}
#endif

int main(int argc, char **argv)
{
    long operations = argc > 1 ? atol(argv[1]) : 2000000;
    if (operations <= 0) operations = 2000000;
    static const size_t counts[] = { 1, 10, 100, 1000, 5000 };
    printf("| pools | mulch ns/op | mimalloc ns/op | mulch/mimalloc | mulch create µs | mulch destroy µs |\n");
    printf("|---:|---:|---:|---:|---:|---:|\n");
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        row_t m = run_mulch(counts[c], operations);
#if defined(BENCH_MANY_POOLS_MIMALLOC)
        row_t mi = run_mimalloc(counts[c], operations);
        printf("| %zu | %.1f | %.1f | %.2fx | %.2f | %.2f |\n", counts[c], m.op_ns, mi.op_ns, m.op_ns / mi.op_ns,
               m.create_us, m.destroy_us);
        fprintf(stderr, "RESULT bench=many_pools pools=%zu mulch_ns=%.1f mimalloc_ns=%.1f create_us=%.2f destroy_us=%.2f\n",
                counts[c], m.op_ns, mi.op_ns, m.create_us, m.destroy_us);
#else
        printf("| %zu | %.1f | n/a | n/a | %.2f | %.2f |\n", counts[c], m.op_ns, m.create_us, m.destroy_us);
        fprintf(stderr, "RESULT bench=many_pools pools=%zu mulch_ns=%.1f create_us=%.2f destroy_us=%.2f\n", counts[c],
                m.op_ns, m.create_us, m.destroy_us);
#endif
    }
    return 0;
}
