/* bench/hash_table.c — a chained hash table with a million buckets under
 * insert/delete churn, on mulch's collector, Boehm's, or malloc+free.
 *
 * What it owns: the workload; the memory manager shim, clock, RSS and
 * RESULT line are gc_bench.h's (compile with exactly one of
 * -DBENCH_GC_MULCH, -DBENCH_GC_BOEHM, -DBENCH_GC_MALLOC).
 *
 * Why: an interpreter's symbol table, a cache, a big vector: one object
 * with a million pointer slots, which every collection traces in one go.
 * The trees of GCBench and binary-trees keep a mark stack a few dozen
 * entries deep; this object pushes a million entries at once, which is
 * what sharing work between parallel markers must handle without copying
 * the stack (it took 2.4 s per collection instead of 0.16 s until session
 * 24). Boehm pushes a large object as one range and splits it; mulch does
 * the same for gc_trace_range (session 25), which the table's trace
 * function uses unless --per-slot is given.
 *
 * The workload (2^B buckets, default B = 20; steps S = 8 × 2^B):
 *  1. the bucket array (one object of 2^B pointers) is allocated;
 *  2. 2^B entries {next, key} (16 bytes) are inserted at the heads of
 *     their buckets (key = a splitmix64 stream, bucket = key mod 2^B);
 *  3. S steps: even steps insert a new entry, odd steps delete the head
 *     of the bucket of a random key if it has one (malloc: freed), so the
 *     live set stays near 2^B entries (32 MiB with the array) and the
 *     garbage makes the collectors run;
 *  4. every bucket is walked: the entry count and the sum of the keys
 *     must equal the ones kept along the way.
 * Output: one summary line, then the RESULT line; a mismatch makes the
 * exit status 2 (ok=0).
 *
 * Usage: hash_table [B, 10..24, default 20] [--verify] [--per-slot]
 *   --verify    under mulch, gc_verify at the end (exit 2 on a problem);
 *   --per-slot  the table's trace function reports each bucket with
 *               bench_trace_slot instead of one bench_trace_range (the
 *               way this benchmark traced until session 25). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif

#include "gc_bench.h"

typedef struct entry {
    struct entry *next;
    uint64_t      key;
} entry_t;

typedef struct table {
    size_t   buckets;
    entry_t *slots[];
} table_t;

static void entry_trace(void *obj, bench_tracer_t *tracer)
{
    entry_t *e = obj;
    bench_trace_slot(tracer, (void **)&e->next);
}

/* --per-slot: the bucket array reported slot by slot, as a trace function
 * that does not use bench_trace_range (the docs recommend it for arrays:
 * mulch then marks the array a chunk at a time, as Boehm does by itself). */
static int per_slot;

static void table_trace(void *obj, bench_tracer_t *tracer)
{
    table_t *t = obj;
    if (per_slot) {
        for (size_t i = 0; i < t->buckets; i++) bench_trace_slot(tracer, (void **)&t->slots[i]);
        return;
    }
    bench_trace_range(tracer, (void **)t->slots, t->buckets);
}

static const bench_kind_t entry_kind = { "hash_table.entry", entry_trace, NULL };
static const bench_kind_t table_kind = { "hash_table.table", table_trace, NULL };

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);
static uint64_t next_key(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static size_t   live_entries;
static uint64_t key_sum;

/* tablep: main's rooted local (a stack slot, so the conservative variant
 * finds it too), read again after the allocation, a GC point. */
static void insert(table_t **tablep, uint64_t key)
{
    entry_t *e = bench_alloc(&entry_kind, sizeof(entry_t));
    table_t *table = *tablep;
    size_t b = key & (table->buckets - 1);
    e->key = key;
    BENCH_INIT(e, next, table->slots[b]);
    BENCH_STORE(table, slots[b], e);
    live_entries++;
    key_sum += key;
}

static void delete_head(table_t *table, uint64_t key)
{
    size_t b = key & (table->buckets - 1);
    entry_t *e = table->slots[b];
    if (e == NULL) return;
    entry_t *next = e->next;
    BENCH_STORE(table, slots[b], next);
    live_entries--;
    key_sum -= e->key;
    bench_free(e);
}

int main(int argc, char **argv)
{
    unsigned bits = 20;
    int verify = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--verify")) {
            verify = 1;
        } else if (!strcmp(argv[a], "--per-slot")) {
            per_slot = 1;
        } else {
            char *end;
            long v = strtol(argv[a], &end, 10);
            if (*end || v < 10 || v > 24) {
                fprintf(stderr, "usage: hash_table [bucket bits 10..24, default 20] [--verify] [--per-slot]\n");
                return 64;
            }
            bits = (unsigned)v;
        }
    }
    const size_t buckets = (size_t)1 << bits;
    const size_t steps = 8 * buckets;

    bench_gc_init();
    table_t *table = NULL;
    BENCH_ROOT(table);
    double t0 = bench_now();

    table = bench_alloc(&table_kind, sizeof(table_t) + buckets * sizeof(entry_t *));
    table->buckets = buckets;
    for (size_t i = 0; i < buckets; i++) insert(&table, next_key());
    for (size_t s = 0; s < steps; s++) {
        if (s % 2 == 0) insert(&table, next_key());
        else delete_head(table, next_key());
    }

    size_t counted = 0;
    uint64_t summed = 0;
    for (size_t b = 0; b < buckets; b++)
        for (const entry_t *e = table->slots[b]; e; e = e->next) {
            counted++;
            summed += e->key;
        }
    double t1 = bench_now();

    int ok = counted == live_entries && summed == key_sum;
    if (!ok)
        fprintf(stderr, "hash_table: %zu entries (sum %llx), want %zu (sum %llx)\n", counted,
                (unsigned long long)summed, live_entries, (unsigned long long)key_sum);
    if (verify && bench_verify_heap() != 0) {
        fprintf(stderr, "hash_table: heap verification failed\n");
        ok = 0;
    }
    printf("hash table of %zu buckets, %zu steps: %zu entries\n", buckets, steps, counted);
    bench_report("hash_table", t1 - t0, "buckets=%zu verify=%d ok=%d", buckets, verify, ok);

    if (BENCH_EXPLICIT_FREE) {
        for (size_t b = 0; b < buckets; b++)
            while (table->slots[b]) delete_head(table, b);
        bench_free(table);
    }
    table = NULL;
    BENCH_UNROOT(1);
    bench_gc_shutdown();
    return ok ? 0 : 2;
}
