/* main.c — the mulch-lisp (and mulch-lisp-boehm) executable: script mode,
 * REPL, start-up and shutdown of the interpreter.
 *
 *   mulch-lisp [--stats] file.scm [args...]   run a script; *args* = the args
 *   mulch-lisp [--stats]                      REPL on stdin (prompt on a tty)
 *
 * --stats prints one machine-readable line on stdout at exit (bench/
 * run_lisp_bench.sh reads it): wall and CPU time of the script, peak RSS,
 * and the collector's counters.
 *
 * The interpreter runs on a thread of its own with a large C stack, so that
 * non-tail recursion a hundred thousand calls deep fails with a Scheme
 * error (LISP_MAX_EVAL_DEPTH in eval.c) rather than a crash. Each top-level
 * form runs under a lisp_catch: an error unwinds to it, is reported with
 * its line, and ends a script with status 1 (the REPL goes on).
 */
#include "lisp.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum { LISP_STACK_SLOTS = 1 << 20 };
#define LISP_THREAD_STACK ((size_t)256 << 20)

struct run {
    int argc;
    char **argv;
    int stats;
    int status;
};

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_stats(double seconds)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    gc_stats_t st;
    lisp_backend_stats(&st);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
               + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    fprintf(stdout, "RESULT backend=%s seconds=%.3f cpu_seconds=%.3f peak_rss_kib=%ld collections=%llu "
            "max_pause_ms=%.3f bytes_allocated=%llu\n", lisp_backend_name, seconds, cpu, ru.ru_maxrss,
            (unsigned long long)st.collections, (double)st.pause_ns_max / 1e6,
            (unsigned long long)st.bytes_allocated);
}

/* Evaluates every form of `text`, whose first line is line `first_line`
 * of the input; returns 0, or 1 after an error (reported on stderr as
 * "<name>:<line>: error: ..."). A script stops at its first error. `repl`
 * writes each value, and after an error in evaluating a form goes on with
 * the next form of the text (`(car 1) (display 2)` on one line displays
 * 2); after an error in reading, the reader's position means nothing, and
 * the rest of the text is dropped. */
static int run_text(const char *name, const char *text, size_t len, int first_line, int repl)
{
    struct lisp_reader reader;
    lisp_reader_init(&reader, text, len);
    reader.line = first_line;
    volatile int status = 0;
    for (;;) {
        struct lisp_catch c;
        volatile int reading = 1;
        if (setjmp(c.jump) != 0) {
            lisp_catch_landed(&c);
            fflush(stdout);
            fprintf(stderr, "%s:%d: error: %s\n", name, c.line, c.message);
            if (!repl || reading) return 1;
            status = 1;
            continue;
        }
        lisp_catch_enter(&c);
        value form;
        if (!lisp_read(&reader, &form)) {
            lisp_catch_leave(&c);
            return status;
        }
        reading = 0;
        value result = lisp_eval(form, LISP_NIL);
        if (repl && result != LISP_UNSPEC) {
            lisp_print(stdout, result, 1);
            putchar('\n');
        }
        lisp_catch_leave(&c);
    }
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    size_t cap = 1 << 16, len = 0, got;
    char *text = malloc(cap);
    while (text != NULL && (got = fread(text + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *bigger = realloc(text, cap *= 2);
            if (bigger == NULL) free(text);
            text = bigger;
        }
    }
    fclose(f);
    if (text == NULL) {
        fprintf(stderr, "%s: out of memory\n", path);
        return 1;
    }
    int status = run_text(path, text, len, 1, 0);
    free(text);
    return status;
}

static int repl(void)
{
    int tty = isatty(0);
    char *line = NULL, *chunk = NULL;
    size_t line_cap = 0, chunk_len = 0, chunk_cap = 0;
    int status = 0, lines_read = 0, chunk_line = 1;
    struct lisp_scan scan;
    lisp_scan_reset(&scan);
    for (;;) {
        if (tty) fputs(chunk_len ? "... " : "> ", stdout), fflush(stdout);
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0) break;
        if (chunk_len == 0) chunk_line = lines_read + 1;
        lines_read++;
        if (chunk_len + (size_t)n + 1 > chunk_cap) {   /* doubling: no copy per line */
            size_t cap = chunk_cap ? chunk_cap : 4096;
            while (cap < chunk_len + (size_t)n + 1) cap *= 2;
            char *bigger = realloc(chunk, cap);
            if (bigger == NULL) break;
            chunk = bigger;
            chunk_cap = cap;
        }
        memcpy(chunk + chunk_len, line, (size_t)n + 1);
        chunk_len += (size_t)n;
        if (lisp_scan_open(&scan, chunk, chunk_len) > 0) continue;
        status |= run_text("repl", chunk, chunk_len, chunk_line, 1);
        chunk_len = 0;
        lisp_scan_reset(&scan);
    }
    if (chunk_len) status |= run_text("repl", chunk, chunk_len, chunk_line, 1);
    if (tty) putchar('\n');
    free(line);
    free(chunk);
    return status;
}

/* *args*: the command-line arguments after the script, as strings. */
static void define_args(int argc, char **argv)
{
    value *first = lisp_sp;
    for (int i = 0; i < argc; i++) {
        value s = lisp_make_string(argv[i], strlen(argv[i]));
        lisp_push(s);
    }
    lisp_globals[LISP_G_ARGS] = lisp_list_from_stack(first, argc, LISP_NIL);
    lisp_sp = first;
    value sym = lisp_intern("*args*");
    lisp_write(sym, &LISP_SYMBOL_OF(sym)->global, lisp_globals[LISP_G_ARGS]);
}

static void *interpreter_main(void *arg)
{
    struct run *run = arg;
    run->status = 1;
    lisp_stack = malloc(LISP_STACK_SLOTS * sizeof(value));
    if (lisp_stack == NULL) return NULL;
    lisp_sp = lisp_stack;
    lisp_stack_end = lisp_stack + LISP_STACK_SLOTS;
    if (lisp_backend_init(lisp_globals, LISP_G_COUNT) != 0) {
        fprintf(stderr, "mulch-lisp: cannot create the heap\n");
        free(lisp_stack);
        return NULL;
    }
    struct lisp_catch c;
    if (setjmp(c.jump) == 0) {
        lisp_catch_enter(&c);
        lisp_init();
        define_args(run->argc > 1 ? run->argc - 1 : 0, run->argv + 1);
        lisp_catch_leave(&c);
        double start = seconds_now();
        run->status = run->argc > 0 ? run_file(run->argv[0]) : repl();
        fflush(stdout);
        if (run->stats) print_stats(seconds_now() - start);
    } else {
        lisp_catch_landed(&c);
        fprintf(stderr, "mulch-lisp: start-up failed: %s\n", c.message);
    }
    lisp_ports_shutdown();
    lisp_backend_shutdown();
    free(lisp_stack);
    return NULL;
}

int main(int argc, char **argv)
{
    struct run run = { argc - 1, argv + 1, 0, 1 };
    if (run.argc > 0 && strcmp(run.argv[0], "--stats") == 0) {
        run.stats = 1;
        run.argc--;
        run.argv++;
    }
    lisp_backend_process_init();
    pthread_attr_t attr;
    pthread_t thread;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, LISP_THREAD_STACK) != 0
        || pthread_create(&thread, &attr, interpreter_main, &run) != 0) {
        fprintf(stderr, "mulch-lisp: cannot start the interpreter thread\n");
        return 1;
    }
    pthread_attr_destroy(&attr);
    pthread_join(thread, NULL);
    return run.status;
}
