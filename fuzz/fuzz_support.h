/* fuzz_support.h — what the libFuzzer targets under fuzz/ share: a reader
 * that turns the input bytes into bounded choices, the failure macro, an
 * error-handler recorder that checks misuse reports, and a helper thread
 * that runs queued jobs (remote frees / releases) concurrently with the
 * main thread.
 *
 * Invariants: the reader never reads past the input and answers 0 once it is
 * exhausted, so every input (even empty) is a valid program; a failed check
 * prints the target's context and aborts, which libFuzzer records as a crash
 * with the input that caused it. Everything here is static and belongs to
 * the including target (one target per executable). */
#ifndef MULCH_FUZZ_SUPPORT_H
#define MULCH_FUZZ_SUPPORT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mulch/common.h>

/* Model checks that only compare bytes are left out of the coverage
 * instrumentation: their comparisons guide nothing and, traced, they
 * dominated the run time. noinline: inlined into an instrumented caller,
 * the body would be instrumented after all. */
#if defined(__clang__)
#  define FZ_NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else
#  define FZ_NO_COVERAGE
#endif

/* ------------------------------------------------------------------------ */
/* Input reader                                                              */

typedef struct fz_input {
    const uint8_t *data;
    size_t size, pos;
    size_t step;            /* operations decoded so far, for messages */
} fz_input_t;

static inline int fz_more(const fz_input_t *in) { return in->pos < in->size; }

static inline uint8_t fz_u8(fz_input_t *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static inline uint16_t fz_u16(fz_input_t *in)
{
    uint16_t lo = fz_u8(in);
    return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

/* A value in [0, n), n > 0, from one byte (two when n > 256). */
static inline size_t fz_below(fz_input_t *in, size_t n)
{
    return n <= 256 ? fz_u8(in) % n : fz_u16(in) % n;
}

/* ------------------------------------------------------------------------ */
/* Failure                                                                   */

__attribute__((noreturn, format(printf, 2, 3)))
static void fz_fail_at(const fz_input_t *in, const char *fmt, ...)
{
    va_list ap;
    if (in)
        fprintf(stderr, "\nFUZZ CHECK FAILED (step %zu, input byte %zu): ", in->step, in->pos);
    else
        fprintf(stderr, "\nFUZZ CHECK FAILED (on the helper thread or in a callback): ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

/* FZ_CHECK(in, cond, fmt, ...): a model check; the message says what differs. */
#define FZ_CHECK(in, cond, ...) \
    do { if (!(cond)) fz_fail_at((in), __VA_ARGS__); } while (0)

/* ------------------------------------------------------------------------ */
/* Error-handler recorder                                                    */

/* Every report counts; the last `what` and `ptr` are kept so a check can say
 * which report it expected. Reports may come from the helper thread too, so
 * the count is atomic; the text is only read after the main thread's own
 * misuse call returned (no report is expected from the helper). A report
 * runs on the thread that made the bad call, so a per-thread count lets a
 * callback check its own misuse while the other thread makes its own. */
static atomic_size_t fz_reports;
static _Thread_local size_t fz_thread_reports;
static char fz_last_what[160];
static const void *fz_last_ptr;

static void fz_on_report(const char *what, const void *ptr, void *ctx)
{
    (void)ctx;
    snprintf(fz_last_what, sizeof fz_last_what, "%s", what ? what : "(null)");
    fz_last_ptr = ptr;
    fz_thread_reports++;
    atomic_fetch_add(&fz_reports, 1);
}

static inline void fz_install_handler(void)
{
    mulch_set_error_handler(fz_on_report, NULL);
}

static inline size_t fz_report_count(void) { return atomic_load(&fz_reports); }
static inline size_t fz_thread_report_count(void) { return fz_thread_reports; }

/* Checks that exactly `expected` reports arrived since `before` and, when
 * prefix is not NULL, that the last one's `what` starts with it. */
static inline void fz_expect_reports(const fz_input_t *in, size_t before, size_t expected,
                                     const char *prefix, const char *call)
{
    size_t got = fz_report_count() - before;
    FZ_CHECK(in, got == expected, "%s: expected %zu report(s), got %zu (last: \"%s\")",
             call, expected, got, fz_last_what);
    if (expected > 0 && prefix != NULL)
        FZ_CHECK(in, strncmp(fz_last_what, prefix, strlen(prefix)) == 0,
                 "%s: report \"%s\" does not start with \"%s\"", call, fz_last_what, prefix);
}

/* ------------------------------------------------------------------------ */
/* Helper thread                                                             */

/* A single-producer queue of jobs run in order by one helper thread. The
 * main thread posts jobs and may keep working; fz_worker_sync waits until the
 * queue is empty, which is the only point where the main thread may assume
 * the jobs' effects (stats are exact only when the pool is quiescent). */
#define FZ_WORKER_QUEUE 64

typedef void (*fz_job_fn)(void *arg, void *ctx);

typedef struct fz_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    fz_job_fn fn;
    void *ctx;
    void *jobs[FZ_WORKER_QUEUE];
    size_t head, tail;      /* jobs[head..tail) pending, indices mod size */
    int busy, stop, started;
} fz_worker_t;

static void *fz_worker_main(void *arg)
{
    fz_worker_t *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->head == w->tail && !w->stop) pthread_cond_wait(&w->wake, &w->lock);
        if (w->head == w->tail) break;
        void *job = w->jobs[w->head % FZ_WORKER_QUEUE];
        w->head++;
        w->busy = 1;
        pthread_mutex_unlock(&w->lock);
        w->fn(job, w->ctx);
        pthread_mutex_lock(&w->lock);
        w->busy = 0;
        if (w->head == w->tail) pthread_cond_broadcast(&w->idle);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Starts the thread on first use, so inputs without remote jobs pay nothing. */
static inline void fz_worker_post(fz_worker_t *w, fz_job_fn fn, void *ctx, void *job)
{
    if (!w->started) {
        memset(w, 0, sizeof *w);
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        pthread_cond_init(&w->idle, NULL);
        w->fn = fn;
        w->ctx = ctx;
        if (pthread_create(&w->thread, NULL, fz_worker_main, w) != 0) {
            fprintf(stderr, "fuzz: pthread_create failed\n");
            abort();
        }
        w->started = 1;
    }
    pthread_mutex_lock(&w->lock);
    while (w->tail - w->head == FZ_WORKER_QUEUE) pthread_cond_wait(&w->idle, &w->lock);
    w->jobs[w->tail % FZ_WORKER_QUEUE] = job;
    w->tail++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

static inline void fz_worker_sync(fz_worker_t *w)
{
    if (!w->started) return;
    pthread_mutex_lock(&w->lock);
    while (w->head != w->tail || w->busy) pthread_cond_wait(&w->idle, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

/* Drains the queue and joins the thread (its exit runs mulch's thread-exit
 * paths: the helper's per-thread heap is handed back). */
static inline void fz_worker_stop(fz_worker_t *w)
{
    if (!w->started) return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->idle);
    w->started = 0;
}

/* A byte pattern derived from (id, offset): a cell that holds another
 * cell's bytes, or shifted bytes, fails the check. Byte i is byte i % 8 of
 * word i / 8, so ranges are filled and checked a word at a time. */
FZ_NO_COVERAGE static inline uint64_t fz_pattern_word(uint64_t id, size_t word)
{
    uint64_t x = (id + 1) * UINT64_C(0x9e3779b97f4a7c15) + (uint64_t)word * UINT64_C(0xbf58476d1ce4e5b9);
    return x ^ (x >> 29);
}

FZ_NO_COVERAGE static inline uint8_t fz_pattern_byte(uint64_t id, size_t i)
{
    return (uint8_t)(fz_pattern_word(id, i >> 3) >> ((i & 7u) * 8u));
}

/* Fills p[from, to) with the pattern of id. */
FZ_NO_COVERAGE static inline void fz_pattern_fill(uint8_t *p, uint64_t id, size_t from, size_t to)
{
    size_t i = from;
    for (; i < to && (i & 7u); i++) p[i] = fz_pattern_byte(id, i);
    for (; i + 8 <= to; i += 8) {
        uint64_t w = fz_pattern_word(id, i >> 3);
        for (unsigned k = 0; k < 8; k++) p[i + k] = (uint8_t)(w >> (8u * k));
    }
    for (; i < to; i++) p[i] = fz_pattern_byte(id, i);
}

/* Offset of the first byte of p[from, to) that breaks the pattern, or SIZE_MAX. */
FZ_NO_COVERAGE static inline size_t fz_pattern_check(const uint8_t *p, uint64_t id, size_t from,
                                                     size_t to)
{
    size_t i = from;
    for (; i < to && (i & 7u); i++) if (p[i] != fz_pattern_byte(id, i)) return i;
    for (; i + 8 <= to; i += 8) {
        uint64_t w = fz_pattern_word(id, i >> 3), got = 0;
        for (unsigned k = 0; k < 8; k++) got |= (uint64_t)p[i + k] << (8u * k);
        if (got != w) break;
    }
    for (; i < to; i++) if (p[i] != fz_pattern_byte(id, i)) return i;
    return SIZE_MAX;
}

/* Offset of the first non-zero byte of p[0, n), or SIZE_MAX. */
FZ_NO_COVERAGE static inline size_t fz_first_nonzero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) if (b[i] != 0) return i;
    return SIZE_MAX;
}

#endif /* MULCH_FUZZ_SUPPORT_H */
