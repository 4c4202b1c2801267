/* rc_thread.c — the thread records of rc objects: making a thread's
 * record (rc_thread_self_slow), its exit hook's key, the records' free
 * list and holds, and the records lock held across fork.
 *
 * Thread records are reused: an exited thread's record goes back on a
 * free list when nothing can name it any more (rc_internal.h, `holds`), so
 * a program that starts a thread per task does not leak a page per thread.
 * Records are never unmapped, and new ones go in front of rc_records_all,
 * so a walk from a head read under the lock is safe without it.
 * mulch_rc_records_lock is held across fork (a thread starting or exiting
 * meanwhile would leave it locked in the child, whose first thread to use
 * rc would wait for ever); it is innermost: nothing else is taken under it.
 * So are the weak references' stripes (weak.c), for the same reason.
 * What a thread's exit does with its objects (rc_thread_exit) is rc.c's.
 */
#include "rc_internal.h"

static pthread_key_t rc_exit_key;
static pthread_once_t rc_exit_once = PTHREAD_ONCE_INIT;
static bool rc_exit_key_ok;

pthread_mutex_t mulch_rc_records_lock = PTHREAD_MUTEX_INITIALIZER;
static rc_thread_t *rc_records_free; /* exited threads' records, reusable */
rc_thread_t *rc_records_all;  /* every record (rc_pool_destroying, rc_pool_live_unown) */

/* The weak references' stripes too (weak.c): neither nests with
 * anything, so their order does not matter. The drain lock (rc.c) is
 * taken first: a drain's merge may take the records lock, never under it,
 * but pool_destroy reads the records' list before it takes the drain lock,
 * and the two never nest the other way. */
static void records_lock_take(void) {
    pthread_mutex_lock(&mulch_rc_drain_lock);
    pthread_mutex_lock(&mulch_rc_records_lock);
    rc_weak_stripes_take();
}
static void records_lock_give(void) {
    rc_weak_stripes_give();
    pthread_mutex_unlock(&mulch_rc_records_lock);
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}
static void records_lock_give_child(void) {
    rc_drains_fork_child();
    records_lock_give();
}

/* At load time, as the pool's and the collector's (pool/fork.c,
 * gc/fork.c). No order with theirs matters: the locks never nest. */
__attribute__((constructor)) static void rc_fork_handlers_register(void) {
    (void)pthread_atfork(records_lock_take, records_lock_give, records_lock_give_child);
}

/* Set while a pool's lock is held (rc_pool_live_unown, rc_unown.c): the records that
 * go free then wait here, linked through next_free, for the caller to put
 * on the free list after the lock (fork takes the records lock and the
 * pools' locks in no fixed order: they must not nest). */
_Thread_local rc_thread_t **rc_records_put_later MULCH_TLS_MODEL;

void rc_records_free_push(rc_thread_t *rec) {
    pthread_mutex_lock(&mulch_rc_records_lock);
    rec->next_free = rc_records_free;
    rc_records_free = rec;
    pthread_mutex_unlock(&mulch_rc_records_lock);
}

/* Drops n holds on rec; the last one puts it on the free list. */
void rc_record_put(rc_thread_t *rec, size_t n) {
    if (atomic_fetch_sub_explicit(&rec->holds, n, memory_order_acq_rel) != n) return;
    if (rc_records_put_later) {
        rec->next_free = *rc_records_put_later;
        *rc_records_put_later = rec;
        return;
    }
    rc_records_free_push(rec);
}

/* The exit hook's value on a thread without a record (it never allocated
 * an rc object) once it ran a destroy callback: its exit must still run the
 * destroys queued behind a callback it ended in. */
char rc_exit_no_record;
_Thread_local bool rc_exit_hooked MULCH_TLS_MODEL;

static void rc_exit_key_create(void) {
    rc_exit_key_ok = pthread_key_create(&rc_exit_key, rc_thread_exit) == 0;
}

rc_thread_t *rc_thread_self_slow(void) {
    pthread_once(&rc_exit_once, rc_exit_key_create);
    pthread_mutex_lock(&mulch_rc_records_lock);
    rc_thread_t *self = rc_records_free;
    if (self) rc_records_free = self->next_free;
    pthread_mutex_unlock(&mulch_rc_records_lock);
    if (self == NULL) {
        self = os_map(sizeof(rc_thread_t)); /* zeroed */
        if (self == NULL) return NULL;
        pthread_mutex_lock(&mulch_rc_records_lock);
        self->next_all = rc_records_all;
        rc_records_all = self;
        pthread_mutex_unlock(&mulch_rc_records_lock);
        /* from the first record on, pool_destroy lets go of queued objects */
        atomic_store_explicit(&mulch_pool_destroy_hook, rc_pool_destroying, memory_order_release);
    }
    /* a reused record: its queue is empty (holds reached 0) */
    atomic_store_explicit(&self->dead, 0, memory_order_relaxed);
    self->live = 0;
    atomic_store_explicit(&self->holds, 1, memory_order_relaxed);
    atomic_store_explicit(&self->merged_by_others, 0, memory_order_relaxed);
    self->next_free = NULL;
    if (rc_exit_key_ok) pthread_setspecific(rc_exit_key, self);
    rc_self = self;
    return self;
}

/* A thread without a record is about to run destroy callbacks: give it
 * the exit hook, which runs what is pending if it ends inside one. */
MULCH_NOINLINE void rc_exit_hook_without_record(void) {
    rc_exit_hooked = true;
    pthread_once(&rc_exit_once, rc_exit_key_create);
    if (rc_exit_key_ok && pthread_getspecific(rc_exit_key) == NULL)
        (void)pthread_setspecific(rc_exit_key, &rc_exit_no_record);
}

/* rc_record_unown for n objects of rec's running thread, done by another
 * one (only the owner changes its `live`): counted in merged_by_others,
 * which its exit subtracts. The owner may be exiting meanwhile: once its
 * exit closed the count, this drops n holds as any merge after the exit. */
void rc_record_unown_for_running(rc_thread_t *rec, size_t n) {
    size_t by_others = atomic_load_explicit(&rec->merged_by_others, memory_order_acquire);
    do {
        if (by_others == RC_MERGED_CLOSED) {
            rc_record_put(rec, n);
            return;
        }
    } while (!atomic_compare_exchange_weak_explicit(&rec->merged_by_others, &by_others, by_others + n,
                                                    memory_order_acq_rel, memory_order_acquire));
}
