/* bench/gcbench.c — GCBench (John Ellis, Pete Kovac, Hans Boehm), the classic
 * collector benchmark, on mulch's collector, Boehm's, or malloc+free.
 *
 * What it owns: the GCBench workload and its parameters; the memory manager
 * shim, clock, RSS and RESULT line are gc_bench.h's (compile with exactly one
 * of -DBENCH_GC_MULCH, -DBENCH_GC_BOEHM, -DBENCH_GC_MALLOC).
 *
 * The workload, as in the classic C version (Node {left, right, i, j}):
 *  1. stretch the heap with one bottom-up tree of depth kStretchTreeDepth,
 *     dropped at once;
 *  2. build a long-lived tree of depth kLongLivedTreeDepth (top down) and a
 *     long-lived array of kArraySize doubles, half filled with 1.0/i; both
 *     stay live to the end, so every collection has to mark them;
 *  3. for depth = kMinTreeDepth, +2, ... kMaxTreeDepth: build
 *     NumIters(depth) = 2 * TreeSize(kStretchTreeDepth) / TreeSize(depth)
 *     temporary trees top down (allocate a node, then populate its children
 *     recursively) and as many bottom up (children first, then the parent),
 *     dropping each one (malloc: freeing it) before the next;
 *  4. check the long-lived tree and array[1000] == 1.0/1000.
 * Every depth allocates the same number of nodes (~2 stretch trees' worth),
 * so small depths stress allocation rate and large ones tracing of deeper,
 * longer-lived temporaries.
 *
 * The time reported is the whole of 1-4 minus the final check, like the
 * classic "Completed in N msec". Heap creation and teardown are outside it.
 *
 * Usage: gcbench [--verify] [--stretch D] [--long-lived D] [--array N]
 *                [--min D] [--max D]
 *   --verify  also count the nodes of every temporary tree (inside the timed
 *             part) and, under mulch, run gc_verify after every phase; a
 *             wrong count or a heap problem makes the exit status 2.
 *   The others override the standard parameters (18, 16, 500000, 4, 16) for
 *   experiments; the RESULT line records the values used. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif

#include "gc_bench.h"

typedef struct Node {
    struct Node *left;
    struct Node *right;
    int i, j;
} Node;

static void node_trace(void *obj, bench_tracer_t *tracer)
{
    Node *n = obj;
    bench_trace_slot(tracer, (void **)&n->left);
    bench_trace_slot(tracer, (void **)&n->right);
}
static const bench_kind_t node_kind = { "gcbench.Node", node_trace, NULL };

static int kStretchTreeDepth = 18;
static int kLongLivedTreeDepth = 16;
static int kArraySize = 500000;
static int kMinTreeDepth = 4;
static int kMaxTreeDepth = 16;
static int verify;
static unsigned long long failures;

/* Nodes in a complete binary tree of depth i. */
static long TreeSize(int i) { return (1L << (i + 1)) - 1; }

/* Number of iterations to use for a given tree depth. */
static long NumIters(int i) { return 2 * TreeSize(kStretchTreeDepth) / TreeSize(i); }

/* A fresh node with no children (all allocators hand back zeroed memory). */
static inline Node *NewNode(void) { return bench_alloc(&node_kind, sizeof(Node)); }

/* Build the tree top down: children are allocated into an existing parent. */
static void Populate(int depth, Node *me)
{
    if (depth <= 0) return;
    depth--;
    BENCH_ROOT(me);
    Node *l = NewNode();
    BENCH_STORE(me, left, l);
    Node *r = NewNode();
    BENCH_STORE(me, right, r);
    Populate(depth, me->left);
    Populate(depth, me->right);
    BENCH_UNROOT(1);
}

/* Build the tree bottom up: the parent is allocated after its children. */
static Node *MakeTree(int depth)
{
    if (depth <= 0) return NewNode();
    Node *l = MakeTree(depth - 1);
    BENCH_ROOT(l);
    Node *r = MakeTree(depth - 1);
    BENCH_ROOT(r);
    Node *n = NewNode();
    BENCH_INIT(n, left, l); /* no GC point since n's allocation */
    BENCH_INIT(n, right, r);
    BENCH_UNROOT(2);
    return n;
}

static long CountNodes(const Node *n)
{
    return n ? 1 + CountNodes(n->left) + CountNodes(n->right) : 0;
}

/* malloc variant: give the tree back. */
static void FreeTree(Node *n)
{
    if (!n) return;
    FreeTree(n->left);
    FreeTree(n->right);
    bench_free(n);
}

static void Drop(Node **tree, int depth)
{
    if (verify && CountNodes(*tree) != TreeSize(depth)) {
        fprintf(stderr, "gcbench: tree of depth %d has %ld nodes, want %ld\n", depth,
                CountNodes(*tree), TreeSize(depth));
        failures++;
    }
    if (BENCH_EXPLICIT_FREE) FreeTree(*tree);
    *tree = NULL;
}

static void VerifyHeap(const char *after)
{
    if (!verify) return;
    size_t problems = bench_verify_heap();
    if (problems) {
        fprintf(stderr, "gcbench: heap verification after %s: %zu problem(s)\n", after, problems);
        failures++;
    }
}

static void TimeConstruction(int depth)
{
    long iters = NumIters(depth);
    Node *temp = NULL;
    BENCH_ROOT(temp);

    printf("Creating %ld trees of depth %d\n", iters, depth);

    double t0 = bench_now();
    for (long i = 0; i < iters; ++i) {
        temp = NewNode();
        Populate(depth, temp);
        Drop(&temp, depth);
    }
    double t1 = bench_now();
    printf("\tTop down construction took %.0f msec\n", (t1 - t0) * 1e3);

    t0 = bench_now();
    for (long i = 0; i < iters; ++i) {
        temp = MakeTree(depth);
        Drop(&temp, depth);
    }
    t1 = bench_now();
    printf("\tBottom up construction took %.0f msec\n", (t1 - t0) * 1e3);

    BENCH_UNROOT(1);
    VerifyHeap("a depth");
}

static int ParseInt(const char *opt, const char *s, int lo, int hi)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *end || v < lo || v > hi) {
        fprintf(stderr, "gcbench: %s wants an integer in [%d, %d]\n", opt, lo, hi);
        exit(64);
    }
    return (int)v;
}

static void ParseArgs(int argc, char **argv)
{
    for (int a = 1; a < argc; a++) {
        const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(o, "--verify")) { verify = 1; continue; }
        if (!strcmp(o, "--stretch")) kStretchTreeDepth = ParseInt(o, v, 1, 26);
        else if (!strcmp(o, "--long-lived")) kLongLivedTreeDepth = ParseInt(o, v, 0, 26);
        else if (!strcmp(o, "--array")) kArraySize = ParseInt(o, v, 1001, 1 << 28);
        else if (!strcmp(o, "--min")) kMinTreeDepth = ParseInt(o, v, 0, 26);
        else if (!strcmp(o, "--max")) kMaxTreeDepth = ParseInt(o, v, 0, 26);
        else {
            fprintf(stderr, "usage: gcbench [--verify] [--stretch D] [--long-lived D] "
                            "[--array N] [--min D] [--max D]\n");
            exit(64);
        }
        a++;
    }
}

int main(int argc, char **argv)
{
    ParseArgs(argc, argv);
    bench_gc_init();

    Node *longLivedTree = NULL, *tempTree = NULL;
    double *array = NULL;
    BENCH_ROOT(longLivedTree);
    BENCH_ROOT(tempTree);
    BENCH_ROOT(array);

    printf("Garbage Collector Test (%s)\n", BENCH_VARIANT);
    printf(" Live storage will peak at %ld bytes.\n\n",
           2 * (long)sizeof(Node) * TreeSize(kLongLivedTreeDepth) +
               (long)sizeof(double) * kArraySize);
    printf(" Stretching memory with a binary tree of depth %d\n", kStretchTreeDepth);

    double tStart = bench_now();

    /* Stretch the memory space quickly. */
    tempTree = MakeTree(kStretchTreeDepth);
    Drop(&tempTree, kStretchTreeDepth);
    VerifyHeap("the stretch tree");

    /* Create a long-lived object. */
    printf(" Creating a long-lived binary tree of depth %d\n", kLongLivedTreeDepth);
    longLivedTree = NewNode();
    Populate(kLongLivedTreeDepth, longLivedTree);

    /* Create a long-lived array, filling half of it. */
    printf(" Creating a long-lived array of %d doubles\n", kArraySize);
    array = bench_alloc_atomic(sizeof(double) * (size_t)kArraySize);
    for (int i = 0; i < kArraySize / 2; ++i) array[i] = 1.0 / i;
    VerifyHeap("the long-lived data");

    for (int d = kMinTreeDepth; d <= kMaxTreeDepth; d += 2) TimeConstruction(d);

    double tFinish = bench_now();

    /* The classic check, which also keeps both long-lived objects alive. */
    if (longLivedTree == NULL || array[1000] != 1.0 / 1000) {
        fprintf(stderr, "gcbench: Failed (long-lived array)\n");
        failures++;
    }
    long n = CountNodes(longLivedTree);
    if (n != TreeSize(kLongLivedTreeDepth)) {
        fprintf(stderr, "gcbench: Failed: long-lived tree has %ld nodes, want %ld\n", n,
                TreeSize(kLongLivedTreeDepth));
        failures++;
    }
    VerifyHeap("the run");

    printf("Completed in %.0f msec\n", (tFinish - tStart) * 1e3);
    bench_report("gcbench", tFinish - tStart,
                 "stretch=%d long_lived=%d array=%d min=%d max=%d verify=%d ok=%d",
                 kStretchTreeDepth, kLongLivedTreeDepth, kArraySize, kMinTreeDepth,
                 kMaxTreeDepth, verify, failures == 0);

    if (BENCH_EXPLICIT_FREE) {
        FreeTree(longLivedTree);
        bench_free(array);
    }
    longLivedTree = NULL;
    array = NULL;
    BENCH_UNROOT(3);
    bench_gc_shutdown();
    return failures ? 2 : 0;
}
