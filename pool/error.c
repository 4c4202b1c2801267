/* error.c — the process-wide error handler and the library version.
 *
 * The (fn, ctx) pair is swapped as one unit under handler_lock; reporting
 * copies the pair under the same lock and calls it outside, so a handler
 * may run on any thread while another thread installs a new one. Misuse is
 * rare, so a mutex costs nothing that matters here. The handler runs with
 * cancellation disabled (the caller may hold a lock of mulch's).
 */
#include <stdio.h>

#include "pool_internal.h"

static void default_handler(const char *what, const void *ptr, void *ctx) {
    (void)ctx;
    fprintf(stderr, "mulch: %s (pointer %p)\n", what, ptr);
}

static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static mulch_error_fn handler_fn = default_handler;
static void *handler_ctx;

mulch_error_fn mulch_set_error_handler(mulch_error_fn fn, void *ctx) {
    pthread_mutex_lock(&handler_lock);
    mulch_error_fn previous = handler_fn;
    handler_fn = fn ? fn : default_handler;
    handler_ctx = fn ? ctx : NULL;
    pthread_mutex_unlock(&handler_lock);
    return previous;
}

void mulch_report(const char *what, const void *ptr) {
    pthread_mutex_lock(&handler_lock);
    mulch_error_fn fn = handler_fn;
    void *ctx = handler_ctx;
    pthread_mutex_unlock(&handler_lock);
    /* Reports are often made holding a pool's or a heap's lock, and the
     * default handler's write to stderr is a cancellation point: a thread
     * cancelled there would unwind with that lock held. */
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    fn(what, ptr, ctx);
    pthread_setcancelstate(old, NULL);
}

void mulch_report_lock(void) { pthread_mutex_lock(&handler_lock); }
void mulch_report_unlock(void) { pthread_mutex_unlock(&handler_lock); }

const char *mulch_version(void) {
    return MULCH_VERSION_STRING;
}
