/* bench/bench_alloc.h — the allocator shim of pool_bench.c: b_init, b_alloc,
 * b_free, b_realloc, b_trim and B_NAME for exactly one of BENCH_ALLOC_MULCH,
 * BENCH_ALLOC_GLIBC, BENCH_ALLOC_MIMALLOC, BENCH_ALLOC_JEMALLOC.
 *
 * One allocator per executable: linking libjemalloc or libmimalloc replaces
 * malloc for the whole process, so pool_bench.c is compiled once per
 * allocator. b_init checks at run time that the intended allocator is the one
 * in use and prints one line on stderr; it returns -1 (exit status 4) when not.
 * Included by pool_bench.c only (static definitions). */
#ifndef MULCH_BENCH_ALLOC_H
#define MULCH_BENCH_ALLOC_H

#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if (defined(BENCH_ALLOC_MULCH) + defined(BENCH_ALLOC_GLIBC) + \
     defined(BENCH_ALLOC_MIMALLOC) + defined(BENCH_ALLOC_JEMALLOC)) != 1
#  error "define exactly one of BENCH_ALLOC_MULCH/_GLIBC/_MIMALLOC/_JEMALLOC"
#endif

#if !defined(BENCH_ALLOC_MULCH)
/* Which shared object provides the process's malloc (for the sanity line). */
static const char *bench_malloc_origin(void)
{
    void *(*fn)(size_t) = malloc;
    void *addr;
    Dl_info info;
    memcpy(&addr, &fn, sizeof addr); /* function -> object pointer, no UB cast */
    if (dladdr(addr, &info) && info.dli_fname)
        return info.dli_fname;
    return "?";
}
#endif

#if defined(BENCH_ALLOC_MULCH)
#  include <mulch/pool.h>
/* Variants of mulch itself (another build of the library, or the same one
 * with MULCH_SECURE) report under their own name: BENCH_MULCH_NAME. */
#  ifdef BENCH_MULCH_NAME
#    define B_NAME BENCH_MULCH_NAME
#  else
#    define B_NAME "mulch"
#  endif
static pool_t *b_pool;

static int b_init(void)
{
    b_pool = pool_create(NULL);
    if (!b_pool) {
        fprintf(stderr, "pool_bench: pool_create(NULL) failed\n");
        return -1;
    }
    fprintf(stderr, "pool_bench: allocator=%s version=%s\n", B_NAME, mulch_version());
    return 0;
}
static inline void *b_alloc(size_t n) { return pool_alloc(b_pool, n); }
static inline void  b_free(void *p)   { pool_free(b_pool, p); }
static inline void *b_realloc(void *p, size_t n) { return pool_realloc(b_pool, p, n); }
static inline void  b_trim(void)      { (void)pool_trim(b_pool); }

#elif defined(BENCH_ALLOC_GLIBC)
#  include <gnu/libc-version.h>
#  include <malloc.h>
#  define B_NAME "glibc"

static int b_init(void)
{
    const char *origin = bench_malloc_origin();
    fprintf(stderr, "pool_bench: allocator=glibc version=%s malloc_from=%s\n",
            gnu_get_libc_version(), origin);
    if (!strstr(origin, "libc.so")) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
        fprintf(stderr, "pool_bench: sanitizer build, malloc is intercepted\n");
#else
        fprintf(stderr, "pool_bench: malloc is not glibc's (%s)\n", origin);
        return -1;
#endif
    }
    return 0;
}
static inline void *b_alloc(size_t n) { return malloc(n); }
static inline void  b_free(void *p)   { free(p); }
static inline void *b_realloc(void *p, size_t n) { return realloc(p, n); }
static inline void  b_trim(void)      { (void)malloc_trim(0); }

#elif defined(BENCH_ALLOC_MIMALLOC)
#  include <mimalloc.h>
#  define B_NAME "mimalloc"

static int b_init(void)
{
    int v = mi_version(); /* a real call: the binary must link libmimalloc */
    fprintf(stderr, "pool_bench: allocator=mimalloc version=%d.%d (header %d) "
            "malloc_from=%s\n", v / 100, v % 100, MI_MALLOC_VERSION,
            bench_malloc_origin());
    return 0;
}
static inline void *b_alloc(size_t n) { return mi_malloc(n); }
static inline void  b_free(void *p)   { mi_free(p); }
static inline void *b_realloc(void *p, size_t n) { return mi_realloc(p, n); }
static inline void  b_trim(void)      { mi_collect(true); }

#elif defined(BENCH_ALLOC_JEMALLOC)
#  include <jemalloc/jemalloc.h>
#  define B_NAME "jemalloc"
#  define B_STR_(x) #x
#  define B_STR(x) B_STR_(x)

/* Checks that mallctl answers and that plain malloc is accounted by jemalloc
 * (thread.allocated grows), i.e. libjemalloc really replaced malloc. */
static int b_init(void)
{
    const char *version = NULL;
    size_t len = sizeof(version);
    if (mallctl("version", (void *)&version, &len, NULL, 0) != 0 || !version) {
        fprintf(stderr, "pool_bench: mallctl(\"version\") failed: not jemalloc\n");
        return -1;
    }
    uint64_t *allocated = NULL;
    len = sizeof(allocated);
    if (mallctl("thread.allocatedp", (void *)&allocated, &len, NULL, 0) == 0) {
        /* volatile reads: the compiler may assume malloc writes no memory */
        uint64_t before = *(volatile uint64_t *)allocated;
        void *volatile probe = malloc(4096);
        uint64_t after = *(volatile uint64_t *)allocated;
        free(probe);
        if (after - before < 4096) {
            fprintf(stderr, "pool_bench: malloc does not go through jemalloc "
                    "(thread.allocated %llu -> %llu)\n",
                    (unsigned long long)before, (unsigned long long)after);
            return -1;
        }
    }
    fprintf(stderr, "pool_bench: allocator=jemalloc version=%s malloc_from=%s\n",
            version, bench_malloc_origin());
    return 0;
}
static inline void *b_alloc(size_t n) { return malloc(n); }
static inline void  b_free(void *p)   { free(p); }
static inline void *b_realloc(void *p, size_t n) { return realloc(p, n); }
static inline void  b_trim(void)
{
    (void)mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    (void)mallctl("arena." B_STR(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0);
}
#endif

#endif /* MULCH_BENCH_ALLOC_H */
