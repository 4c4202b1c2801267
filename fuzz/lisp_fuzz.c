/* lisp_fuzz.c — libFuzzer target for the Lisp example (examples/lisp): the
 * input is program text fed to the interpreter as main.c's REPL does, on
 * mulch's backend: lines gathered until lisp_scan_open says their forms are
 * complete, then read and evaluated form by form (an error in evaluating a
 * form goes on with the next one; an error in reading drops the rest of
 * the chunk), each value written back. At each line the incremental scan
 * must agree with a scan of the same text from its start.
 *
 * Each input runs in a fresh interpreter: its own heap, intern table and
 * standard output port, all torn down before the next input, so that an
 * input's result never depends on the ones before it and a leak shows at
 * the end of the input that caused it. What holds no state of an input is
 * made once and reused: the thread with the interpreter's large C stack
 * (main.c), which waits for each input in turn, and the value stack (empty
 * between inputs). Made per input, under AddressSanitizer, they were most
 * of an input's cost: poisoning and unpoisoning the shadow of the 256 MiB
 * thread stack and of the 8 MiB value stack (quarantined when freed) at
 * every input held the target to about 50 executions a second.
 *
 * Limits keep every input fast: at most 4 KiB of text; an evaluation budget
 * (LISP_EVAL_HOOK, called by eval.c at every step and by equal?: 50,000
 * steps and 0.25 s of CPU time, spent as a Lisp error); a heap of at most 32 MiB
 * (MULCH_GC_MAX_HEAP, unless set); the standard output port writes into a
 * 16 KiB buffer (a full one stops the printer, so a huge or shared value
 * prints no further).
 *
 * Sandbox: ports.c is compiled into this file with fopen replaced by
 * fuzz_fopen, so no program opens a real file: an input port reads a fixed
 * text from memory, an output port writes into a memory buffer, a name
 * starting with "no" fails (ENOENT) and one starting with "full" fails as
 * when descriptors run out (EMFILE: the collect-and-retry path).
 *
 * Invariants: a Lisp error is a normal outcome; a crash, a sanitizer report,
 * a leak, a mulch misuse report (the error handler) or a scan that
 * disagrees with itself is a finding. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static FILE *fuzz_fopen(const char *name, const char *mode);
static FILE *lisp_fuzz_stdout;

/* ports.c with its files sandboxed and its standard output redirected. */
#undef stdout
#define fopen fuzz_fopen
#define stdout lisp_fuzz_stdout
#include "../examples/lisp/ports.c"
#undef fopen
#undef stdout

#include "fuzz_support.h"

#include <pthread.h>
#include <stdlib.h>

enum {
    FUZZ_MAX_INPUT = 4096,
    FUZZ_MAX_STEPS = 50000,       /* evaluation steps per input */
    FUZZ_OUTPUT_BYTES = 16384,
    FUZZ_STACK_SLOTS = 1 << 20,   /* as main.c */
};
#define FUZZ_THREAD_STACK ((size_t)256 << 20)   /* as main.c */
#define FUZZ_MAX_SECONDS 0.25   /* of the interpreter thread's CPU time */

/* ---- the sandboxed files ------------------------------------------------- */

static const char fuzz_file_text[] =
    "(a b . c) 42 \"str\\n\" #\\x sym |odd sym| #(1 (2) \"3\")\n"
    "; a comment\n"
    "line two\n"
    "'(quoted (list)) (unclosed\n";

static FILE *fuzz_fopen(const char *name, const char *mode)
{
    if (strncmp(name, "no", 2) == 0) {
        errno = ENOENT;
        return NULL;
    }
    if (strncmp(name, "full", 4) == 0) {
        errno = EMFILE;
        return NULL;
    }
    if (mode[0] == 'w') return fmemopen(NULL, 4096, "w+");   /* freed by fclose */
    return fmemopen((void *)fuzz_file_text, sizeof fuzz_file_text - 1, "r");
}

/* ---- the evaluation budget ------------------------------------------------ */

static unsigned long fuzz_steps;
static double fuzz_deadline;

/* The interpreter thread's CPU time: a budget in wall-clock time would
 * end inputs early on a loaded machine. */
static double fuzz_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* LISP_EVAL_HOOK (see fuzz/CMakeLists.txt): every evaluation step. Once
 * spent, every later step fails at once, so the forms left fail fast. The
 * clock is read every 64th step: reading the thread's CPU time is a system
 * call, and at every 16th it took 7% of the target's time. */
void lisp_fuzz_step(void);
void lisp_fuzz_step(void)
{
    if (++fuzz_steps > FUZZ_MAX_STEPS) lisp_error("fuzz: step budget spent");
    if ((fuzz_steps & 63u) == 0 && fuzz_now() > fuzz_deadline) {
        fuzz_steps = FUZZ_MAX_STEPS;
        lisp_error("fuzz: time budget spent");
    }
}

/* ---- one input ------------------------------------------------------------ */

struct fuzz_run {
    const char *text;
    size_t len;
    int started;
};

/* Every form of the text, as main.c's run_text in REPL mode. */
static void run_text(const char *text, size_t len)
{
    struct lisp_reader reader;
    lisp_reader_init(&reader, text, len);
    reader.line = 1;
    for (;;) {
        struct lisp_catch c;
        volatile int reading = 1;
        if (setjmp(c.jump) != 0) {
            lisp_catch_landed(&c);
            if (reading) return;
            continue;
        }
        lisp_catch_enter(&c);
        value form;
        if (!lisp_read(&reader, &form)) {
            lisp_catch_leave(&c);
            return;
        }
        reading = 0;
        value result = lisp_eval(form, LISP_NIL);
        if (result != LISP_UNSPEC) {
            lisp_print(lisp_fuzz_stdout, result, 1);
            fputc('\n', lisp_fuzz_stdout);
        }
        lisp_catch_leave(&c);
    }
}

/* As main.c's repl(), on the input's lines. */
static void run_repl(const char *text, size_t len)
{
    struct lisp_scan scan;
    lisp_scan_reset(&scan);
    size_t chunk = 0, end = 0;
    while (end < len) {
        const char *newline = memchr(text + end, '\n', len - end);
        end = newline != NULL ? (size_t)(newline - text) + 1 : len;
        int open = lisp_scan_open(&scan, text + chunk, end - chunk);
        struct lisp_scan fresh;
        lisp_scan_reset(&fresh);
        int open_fresh = lisp_scan_open(&fresh, text + chunk, end - chunk);
        FZ_CHECK(NULL, (open > 0) == (open_fresh > 0),
                 "lisp_scan_open: %d going on line by line, %d from the start (chunk at byte %zu, "
                 "line ending at byte %zu)", open, open_fresh, chunk, end);
        if (open > 0) continue;
        run_text(text + chunk, end - chunk);
        chunk = end;
        lisp_scan_reset(&scan);
    }
    if (chunk < len) run_text(text + chunk, len - chunk);
}

/* One input on the interpreter thread: a fresh heap and interpreter on the
 * value stack made by fuzz_thread_main, all torn down at the end. */
static void fuzz_interpreter(struct fuzz_run *run)
{
    fuzz_steps = 0;
    fuzz_deadline = fuzz_now() + FUZZ_MAX_SECONDS;
    lisp_sp = lisp_stack;
    if (lisp_backend_init(lisp_globals, LISP_G_COUNT) != 0) return;
    struct lisp_catch c;
    if (setjmp(c.jump) == 0) {
        lisp_catch_enter(&c);
        lisp_init();
        lisp_catch_leave(&c);
        run->started = 1;
        run_repl(run->text, run->len);
    } else {
        lisp_catch_landed(&c);
        fprintf(stderr, "lisp_fuzz: start-up failed: %s\n", c.message);
    }
    lisp_ports_shutdown();
    lisp_backend_shutdown();
    lisp_sp = lisp_stack;
}

/* ---- the interpreter thread ----------------------------------------------- */

/* LLVMFuzzerTestOneInput hands each input to the interpreter thread through
 * fuzz_pending and waits until the thread clears it. */
static pthread_mutex_t fuzz_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fuzz_wake = PTHREAD_COND_INITIALIZER;
static struct fuzz_run *fuzz_pending;
static pthread_t fuzz_thread;
static int fuzz_thread_started;

static void *fuzz_thread_main(void *arg)
{
    (void)arg;
    lisp_stack = malloc(FUZZ_STACK_SLOTS * sizeof(value));
    lisp_stack_end = lisp_stack != NULL ? lisp_stack + FUZZ_STACK_SLOTS : NULL;
    lisp_sp = lisp_stack;
    pthread_mutex_lock(&fuzz_lock);
    for (;;) {
        while (fuzz_pending == NULL) pthread_cond_wait(&fuzz_wake, &fuzz_lock);
        struct fuzz_run *run = fuzz_pending;
        pthread_mutex_unlock(&fuzz_lock);
        if (lisp_stack != NULL) fuzz_interpreter(run);   /* (else run->started stays 0) */
        pthread_mutex_lock(&fuzz_lock);
        fuzz_pending = NULL;
        pthread_cond_broadcast(&fuzz_wake);
    }
    return NULL;
}

static void fuzz_run_on_thread(struct fuzz_run *run)
{
    if (!fuzz_thread_started) {
        pthread_attr_t attr;
        FZ_CHECK(NULL, pthread_attr_init(&attr) == 0 && pthread_attr_setstacksize(&attr, FUZZ_THREAD_STACK) == 0
                       && pthread_create(&fuzz_thread, &attr, fuzz_thread_main, NULL) == 0,
                 "cannot start the interpreter thread");
        pthread_attr_destroy(&attr);
        fuzz_thread_started = 1;
    }
    pthread_mutex_lock(&fuzz_lock);
    fuzz_pending = run;
    pthread_cond_broadcast(&fuzz_wake);
    while (fuzz_pending != NULL) pthread_cond_wait(&fuzz_wake, &fuzz_lock);
    pthread_mutex_unlock(&fuzz_lock);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("MULCH_GC_MAX_HEAP", "32m", 0);
    fz_install_handler();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT) return -1;   /* not added to the corpus */
    char *text = malloc(size + 1);   /* the reader wants its own copy (NUL bytes kept) */
    FZ_CHECK(NULL, text != NULL, "malloc");
    if (size) memcpy(text, data, size);
    text[size] = '\0';
    lisp_fuzz_stdout = fmemopen(NULL, FUZZ_OUTPUT_BYTES, "w+");
    FZ_CHECK(NULL, lisp_fuzz_stdout != NULL, "fmemopen");
    closed_by_collector = 0;   /* (ports.c) each input counts from 0 */
    size_t reports = fz_report_count();

    struct fuzz_run run = { text, size, 0 };
    fuzz_run_on_thread(&run);

    FZ_CHECK(NULL, run.started, "the interpreter did not start");
    FZ_CHECK(NULL, fz_report_count() == reports, "mulch misuse report: %s", fz_last_what);
    FZ_CHECK(NULL, lisp_catcher == NULL && lisp_eval_depth == 0,
             "interpreter state left behind (catcher %p, eval depth %d)", (void *)lisp_catcher,
             lisp_eval_depth);
    fclose(lisp_fuzz_stdout);
    lisp_fuzz_stdout = NULL;
    free(text);
    return 0;
}
