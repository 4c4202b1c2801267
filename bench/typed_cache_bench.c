/* typed_cache_bench.c — gc_alloc when (type, size) pairs collide in the
 * thread's typed cache.
 *
 *   build/bench/bench/typed_cache_bench [allocations]   (default 20000000)
 *
 * The cache maps a pair to its headerless class in 64 entries, by a hash
 * of the type's address; each pair has two places (gc/alloc.c). Types are
 * picked so that 1, 2 or 3 of them share one slot for 16-byte objects,
 * after 200 other pairs have been registered and cached (a program with
 * many types). Each row allocates in turn from its types and prints the
 * time per allocation; the ratio column compares each row with the first
 * (one type), measured in the same run. Only the collector itself is
 * measured: there is no peer allocator with a typed cache to compare.
 * Prints a markdown table; exit status 0 unless an allocation fails. */
#define _POSIX_C_SOURCE 200809L
#include <mulch.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { POOL = 4096, OTHERS = 200, MAX_KINDS = 3 };
static gc_type_t types[POOL];

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* ns per allocation, alternating between the n types of `kinds` */
static double run(const gc_type_t *const *kinds, int n, long count)
{
    gc_heap_t *heap = gc_heap_create(NULL);
    gc_thread_t *thread = heap ? gc_thread_attach(heap) : NULL;
    if (thread == NULL) exit(1);
    for (int i = 0; i < OTHERS; i++)
        if (gc_alloc(thread, &types[POOL - 1 - i], 40) == NULL) exit(1);
    double start = now_ns();
    for (long i = 0; i < count; i++)
        if (gc_alloc(thread, kinds[i % n], 16) == NULL) exit(1);
    double ns = (now_ns() - start) / (double)count;
    gc_thread_detach(thread);
    gc_heap_destroy(heap);
    return ns;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 20000000L;
    if (count <= 0) count = 20000000L;
    for (int i = 0; i < POOL; i++) types[i] = (gc_type_t){ "typed_cache_bench", NULL, NULL };
    size_t granule = (16 - 1) >> 3;
    /* colliding: the first types whose slot is types[0]'s; apart: the
     * first types whose slots differ from every one chosen before */
    const gc_type_t *colliding[MAX_KINDS], *apart[MAX_KINDS];
    int c = 0, a = 0;
    size_t slot = mulch_gc_typed_slot_(&types[0], granule);
    for (int i = 0; i < POOL - OTHERS && (c < MAX_KINDS || a < MAX_KINDS); i++) {
        size_t s = mulch_gc_typed_slot_(&types[i], granule);
        if (c < MAX_KINDS && s == slot) colliding[c++] = &types[i];
        int fresh = 1;
        for (int k = 0; k < a; k++) fresh &= mulch_gc_typed_slot_(apart[k], granule) != s;
        if (a < MAX_KINDS && fresh) apart[a++] = &types[i];
    }
    if (c < MAX_KINDS || a < MAX_KINDS) return 1;
    struct { const char *what; const gc_type_t *const *kinds; int n; } rows[] = {
        { "1 type", colliding, 1 },
        { "2 types, different slots", apart, 2 },
        { "3 types, different slots", apart, 3 },
        { "2 types, one slot", colliding, 2 },
        { "3 types, one slot", colliding, 3 },
    };
    int nrows = (int)(sizeof rows / sizeof rows[0]);
    printf("### typed cache: gc_alloc of 16-byte objects, %d other pairs cached, %ld allocations a row\n\n",
           OTHERS, count);
    printf("| types | ns per allocation | ratio to 1 type |\n|---|---:|---:|\n");
    double first = 0;
    for (int r = 0; r < nrows; r++) {
        double ns = run(rows[r].kinds, rows[r].n, count);
        if (r == 0) first = ns;
        printf("| %s | %.2f | %.2fx |\n", rows[r].what, ns, ns / first);
    }
    return 0;
}
