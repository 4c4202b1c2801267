/* threads.c — a multithreaded malloc workload with cross-thread frees,
 * reallocs and content checks, and fork() while the other threads allocate
 * (the child allocates too: it must not inherit a pool lock held by a thread
 * that does not exist in it). Runs under LD_PRELOAD=libmulch-malloc.so
 * through run_compare.sh, which also runs it without the drop-in and
 * compares the output. Seeded: MULCH_TEST_SEED, printed on failure. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { THREADS = 4, ITERATIONS = 200000, SLOTS = 512, FORKS = 20 };

static uint64_t seed = 0x6d756c6368;
static _Atomic int corrupted;

/* Handed between threads: freed by whoever takes it. */
static pthread_mutex_t mailbox_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *mailbox[64];
static size_t mailbox_sizes[64];
static int mailbox_count;

static uint64_t next_random(uint64_t *s) {
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static size_t random_size(uint64_t *rng) {
    uint64_t r = next_random(rng);
    switch (r % 16) {
    case 0: return (size_t)(r >> 8) % 300000;     /* sometimes huge */
    case 1: case 2: return (size_t)(r >> 8) % 8192;
    default: return (size_t)(r >> 8) % 256;
    }
}

/* The first and last bytes carry the size: enough to catch overlap. */
static void stamp(unsigned char *p, size_t size) {
    if (size == 0) return;
    p[size - 1] = (unsigned char)(size >> 3);
    p[0] = (unsigned char)size;
    if (size > 16) memset(p + 1, (int)(size & 0x7f), size < 64 ? size - 2 : 62);
}
static int stamped(const unsigned char *p, size_t size) {
    if (size == 0) return 1;
    if (p[0] != (unsigned char)size || (size > 1 && p[size - 1] != (unsigned char)(size >> 3))) return 0;
    for (size_t i = 1; size > 16 && i < (size < 64 ? size - 1 : 63); i++)
        if (p[i] != (unsigned char)(size & 0x7f)) return 0;
    return 1;
}

static void release(unsigned char *p, size_t size) {
    if (p && !stamped(p, size)) corrupted = 1;
    free(p);
}

static void *worker(void *arg) {
    uint64_t rng = seed ^ (uint64_t)(uintptr_t)arg * 7919;
    unsigned char *slot[SLOTS] = { 0 };
    size_t size[SLOTS] = { 0 };
    for (int it = 0; it < ITERATIONS; it++) {
        unsigned i = (unsigned)(next_random(&rng) % SLOTS);
        uint64_t action = next_random(&rng) % 8;
        if (slot[i] && action == 0) { /* realloc keeps the prefix */
            size_t n = random_size(&rng);
            unsigned char *q = realloc(slot[i], n);
            if (q == NULL && n != 0) { corrupted = 1; continue; }
            size_t keep = n < size[i] ? n : size[i];
            if (keep && q[0] != (unsigned char)size[i]) corrupted = 1;
            slot[i] = q;
            size[i] = n;
            if (q) stamp(q, n);
            continue;
        }
        if (slot[i] && action == 1) { /* hand it to another thread */
            pthread_mutex_lock(&mailbox_lock);
            if (mailbox_count < 64) {
                mailbox[mailbox_count] = slot[i];
                mailbox_sizes[mailbox_count++] = size[i];
                slot[i] = NULL;
            }
            pthread_mutex_unlock(&mailbox_lock);
        }
        if (action == 2) { /* free one handed over by another thread */
            pthread_mutex_lock(&mailbox_lock);
            unsigned char *p = mailbox_count ? mailbox[--mailbox_count] : NULL;
            size_t n = p ? mailbox_sizes[mailbox_count] : 0;
            pthread_mutex_unlock(&mailbox_lock);
            release(p, n);
        }
        release(slot[i], size[i]);
        size[i] = random_size(&rng);
        slot[i] = (action & 1) ? calloc(1, size[i]) : malloc(size[i]);
        if (slot[i] == NULL) { corrupted = 1; continue; }
        if (action & 1)
            for (size_t j = 0; j < size[i] && j < 64; j++)
                if (slot[i][j] != 0) corrupted = 1;
        stamp(slot[i], size[i]);
    }
    for (int i = 0; i < SLOTS; i++) release(slot[i], size[i]);
    return NULL;
}

/* Forks while the workers run; each child allocates, checks and exits. */
static int fork_while_allocating(void) {
    int failed = 0;
    for (int f = 0; f < FORKS; f++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20); /* a deadlocked child dies instead of hanging the test */
            uint64_t rng = seed + (uint64_t)f;
            int bad = 0;
            for (int i = 0; i < 2000; i++) {
                size_t n = random_size(&rng);
                unsigned char *p = malloc(n);
                if (p == NULL) { bad = 1; break; }
                stamp(p, n);
                bad |= !stamped(p, n);
                free(p);
            }
            _exit(bad);
        }
        if (pid < 0) return 1;
        int status = 0;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child %d failed (status 0x%x)\n", f, status);
            failed = 1;
        }
        usleep(2000);
    }
    return failed;
}

int main(void) {
    const char *env = getenv("MULCH_TEST_SEED");
    if (env) seed = strtoull(env, NULL, 0);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(i + 1)) != 0) return 2;
    int fork_failed = fork_while_allocating();
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    while (mailbox_count) {
        mailbox_count--;
        release(mailbox[mailbox_count], mailbox_sizes[mailbox_count]);
    }
    if (corrupted || fork_failed) {
        fprintf(stderr, "threads: %s (seed 0x%" PRIx64 ")\n", corrupted ? "corruption" : "fork child failed", seed);
        return 1;
    }
    puts("threads ok");
    return 0;
}
