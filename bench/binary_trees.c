/* bench/binary_trees.c — the Computer Language Benchmarks Game's
 * binary-trees, single-threaded, on mulch's collector, Boehm's, or
 * malloc+free.
 *
 * What it owns: the binary-trees workload; the memory manager shim, clock,
 * RSS and RESULT line are gc_bench.h's (compile with exactly one of
 * -DBENCH_GC_MULCH, -DBENCH_GC_BOEHM, -DBENCH_GC_MALLOC).
 *
 * The workload (max depth N, default 20; min depth 4; N is raised to 6 if
 * smaller):
 *  1. a stretch tree of depth N+1 is built bottom up, checked, dropped;
 *  2. a long-lived tree of depth N is built and stays live to the end;
 *  3. for d = 4, 6, ... N: 2^(N-d+4) trees of depth d are built bottom up,
 *     each checked (node count) and dropped (malloc: freed) before the next;
 *  4. the long-lived tree is checked.
 * Nodes are {left, right} (16 bytes), leaves have two NULL children. Each
 * depth allocates 2^(N+5) - 2^(N-d+4) nodes (~33.5 M for N = 20), ~300 M in
 * all; the long-lived tree (2^(N+1) - 1 nodes, 32 MiB of payload at N = 20)
 * is what every collection has to mark again.
 *
 * Output: the Benchmarks Game lines ("stretch tree of depth 21\t check:
 * 4194303", ...), then the RESULT line. Every check is compared with the
 * node count it must have; a mismatch is reported on stderr and makes the
 * exit status 2 (ok=0 on the RESULT line). The time is steps 1-4; heap
 * creation and teardown are outside it.
 *
 * Usage: binary_trees [N] [--verify]
 *   --verify  under mulch, gc_verify after every depth (exit 2 on a problem). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif

#include "gc_bench.h"

typedef struct tree_node {
    struct tree_node *left;
    struct tree_node *right;
} tree_node_t;

static void tree_node_trace(void *obj, bench_tracer_t *tracer)
{
    tree_node_t *n = obj;
    bench_trace_slot(tracer, (void **)&n->left);
    bench_trace_slot(tracer, (void **)&n->right);
}
static const bench_kind_t tree_node_kind = { "binary_trees.node", tree_node_trace, NULL };

static int verify;
static unsigned long long failures;

/* A tree of `depth`: children first, then the parent. */
static tree_node_t *bottom_up_tree(unsigned depth)
{
    if (depth == 0) return bench_alloc(&tree_node_kind, sizeof(tree_node_t));
    tree_node_t *l = bottom_up_tree(depth - 1);
    BENCH_ROOT(l);
    tree_node_t *r = bottom_up_tree(depth - 1);
    BENCH_ROOT(r);
    tree_node_t *n = bench_alloc(&tree_node_kind, sizeof(tree_node_t));
    BENCH_INIT(n, left, l); /* no GC point since n's allocation */
    BENCH_INIT(n, right, r);
    BENCH_UNROOT(2);
    return n;
}

/* Nodes in the tree (the current Benchmarks Game check). */
static long item_check(const tree_node_t *n)
{
    return n->left ? 1 + item_check(n->left) + item_check(n->right) : 1;
}

/* malloc variant: give the tree back. */
static void free_tree(tree_node_t *n)
{
    if (n->left) {
        free_tree(n->left);
        free_tree(n->right);
    }
    bench_free(n);
}

static long want_nodes(unsigned depth) { return (1L << (depth + 1)) - 1; }

static void expect(const char *what, unsigned depth, long got, long want)
{
    if (got != want) {
        fprintf(stderr, "binary_trees: %s of depth %u: check %ld, want %ld\n", what, depth, got,
                want);
        failures++;
    }
}

static void verify_heap(unsigned depth)
{
    if (!verify) return;
    size_t problems = bench_verify_heap();
    if (problems) {
        fprintf(stderr, "binary_trees: heap verification after depth %u: %zu problem(s)\n", depth,
                problems);
        failures++;
    }
}

int main(int argc, char **argv)
{
    unsigned n = 20;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--verify")) {
            verify = 1;
        } else {
            char *end;
            long v = strtol(argv[a], &end, 10);
            if (*end || v < 0 || v > 28) {
                fprintf(stderr, "usage: binary_trees [depth 0..28, default 20] [--verify]\n");
                return 64;
            }
            n = (unsigned)v;
        }
    }
    const unsigned min_depth = 4;
    const unsigned max_depth = n < min_depth + 2 ? min_depth + 2 : n;
    const unsigned stretch_depth = max_depth + 1;

    bench_gc_init();
    tree_node_t *long_lived = NULL, *temp = NULL;
    BENCH_ROOT(long_lived);
    BENCH_ROOT(temp);

    double t0 = bench_now();

    temp = bottom_up_tree(stretch_depth);
    long check = item_check(temp);
    printf("stretch tree of depth %u\t check: %ld\n", stretch_depth, check);
    expect("stretch tree", stretch_depth, check, want_nodes(stretch_depth));
    if (BENCH_EXPLICIT_FREE) free_tree(temp);
    temp = NULL;

    long_lived = bottom_up_tree(max_depth);

    for (unsigned d = min_depth; d <= max_depth; d += 2) {
        long iterations = 1L << (max_depth - d + min_depth);
        check = 0;
        for (long i = 1; i <= iterations; i++) {
            temp = bottom_up_tree(d);
            check += item_check(temp);
            if (BENCH_EXPLICIT_FREE) free_tree(temp);
            temp = NULL;
        }
        printf("%ld\t trees of depth %u\t check: %ld\n", iterations, d, check);
        expect("trees", d, check, iterations * want_nodes(d));
        verify_heap(d);
    }

    check = item_check(long_lived);
    printf("long lived tree of depth %u\t check: %ld\n", max_depth, check);
    expect("long lived tree", max_depth, check, want_nodes(max_depth));

    double t1 = bench_now();

    bench_report("binary_trees", t1 - t0, "depth=%u verify=%d ok=%d", max_depth, verify,
                 failures == 0);

    if (BENCH_EXPLICIT_FREE) free_tree(long_lived);
    long_lived = NULL;
    BENCH_UNROOT(2);
    bench_gc_shutdown();
    return failures ? 2 : 0;
}
