/* planted_bug <mode> — one memory bug inside a pool allocation, for the
 * ctest tests that expect AddressSanitizer or Valgrind memcheck to report
 * it (tests/CMakeLists.txt, "Tool awareness"). Each mode does one thing:
 *   uaf           write 40 bytes into a freed 64-byte cell
 *   overflow      write one past a 20-byte allocation (its 32-byte cell's slack)
 *   next-cell     write 36 bytes past a 64-byte cell, into the free cell after it
 *   huge-overflow write one past a 1 MiB + 8 allocation (a huge object)
 *   huge-uaf      write into a freed huge object (kept in the pool's cache)
 *   double-free   free a cell twice: mulch reports it itself, no tool report
 *   clean         legal use of every entry point: no report at all
 * The process exits 0 unless the tool stops it. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <mulch/pool.h>

/* Hides the allocation's size from the compiler, which would otherwise
 * reject the planted out-of-bounds writes at compile time. */
static volatile unsigned char *launder(void *p) {
    static void *volatile box;
    box = p;
    return box;
}

static void *free_on_other_thread(void *arg) {
    void **job = arg;
    pool_free(job[0], job[1]);
    return NULL;
}

/* Every entry point, used as documented, including the usable bytes. */
static int clean(pool_t *pool) {
    static const size_t sizes[] = { 0, 1, 7, 8, 15, 16, 20, 33, 100, 1000, 5000, 70000, 1 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = pool_alloc(pool, sizes[i]);
        if (p == NULL) return 1;
        memset(p, 1, sizes[i]);
        size_t usable = pool_usable_size(pool, p);
        memset(p, 2, usable);
        p = pool_realloc(pool, p, sizes[i] * 2 + 3);
        if (p == NULL || p[0] != 2) return 2;
        memset(p, 3, sizes[i] * 2 + 3);
        p = pool_realloc(pool, p, sizes[i] / 2 + 1);
        if (p == NULL || p[sizes[i] / 2] != 3) return 3;
        pool_free(pool, p);
    }
    unsigned char *z = pool_calloc(pool, 10, 30);
    unsigned char *a = pool_alloc_aligned(pool, 100, 256);
    if (z == NULL || a == NULL || z[299] != 0 || ((size_t)a & 255) != 0) return 4;
    memset(a, 4, 100);
    pool_free(pool, z);
    void *job[2] = { pool, a };
    pthread_t t;
    if (pthread_create(&t, NULL, free_on_other_thread, job) != 0) return 5;
    pthread_join(t, NULL);
    for (int round = 0; round < 3; round++) { /* reuse of remotely freed cells */
        void *v[64];
        for (int i = 0; i < 64; i++) {
            v[i] = pool_alloc(pool, 100);
            memset(v[i], 5, 100);
        }
        for (int i = 0; i < 64; i++) pool_free(pool, v[i]);
    }
    pool_trim(pool);
    return pool_report_leaks(pool, stdout) == 0 ? 0 : 6;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    pool_t *pool = pool_create(NULL);
    volatile unsigned char *p;
    if (strcmp(mode, "uaf") == 0) {
        p = launder(pool_alloc(pool, 64));
        pool_free(pool, (void *)p);
        p[40] = 1;
    } else if (strcmp(mode, "overflow") == 0) {
        p = launder(pool_alloc(pool, 20));
        p[20] = 1;
    } else if (strcmp(mode, "next-cell") == 0) {
        p = launder(pool_alloc(pool, 64));
        p[100] = 1;
    } else if (strcmp(mode, "huge-overflow") == 0) {
        p = launder(pool_alloc(pool, (1 << 20) + 8));
        p[(1 << 20) + 8] = 1;
    } else if (strcmp(mode, "huge-uaf") == 0) {
        p = launder(pool_alloc(pool, 1 << 20));
        pool_free(pool, (void *)p);
        p[1000] = 1;
    } else if (strcmp(mode, "double-free") == 0) {
        p = launder(pool_alloc(pool, 64));
        pool_free(pool, (void *)p);
        pool_free(pool, (void *)p); /* reported by mulch, ignored */
        pool_destroy(pool);
        return 0;
    } else if (strcmp(mode, "clean") == 0) {
        int status = clean(pool);
        if (status) fprintf(stderr, "planted_bug clean: step %d failed\n", status);
        pool_destroy(pool);
        return status;
    } else {
        fprintf(stderr, "usage: planted_bug uaf|overflow|next-cell|huge-overflow|huge-uaf|double-free|clean\n");
        return 2;
    }
    puts("planted_bug: the bug went unnoticed");
    return 0;
}
