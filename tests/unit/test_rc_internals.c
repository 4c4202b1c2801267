/* Unit tests of the rc header: `shared` (count << 2 | flags) is 64 bits, so
 * references held by threads other than the owner have no practical limit
 * (a 32-bit count was tried and dropped: a retain refused at its cap let
 * the caller's later release free a referenced object); the layout the
 * inline fast paths of <mulch/rc.h> read; a weak reference's control block
 * attached after the object's destroy started. Counts are planted directly,
 * since reaching them honestly takes billions of retains. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rc_internal.h"

#include "unit_errors.h"
#define teardown teardown_errors

static int destroyed;
static void count_destroy(void *obj) {
    (void)obj;
    destroyed++;
}

static void *retain_on_thread(void *obj) {
    return rc_retain(obj);
}

static void *weak_lock_on_thread(void *weak) {
    return rc_weak_lock(weak);
}

static void run_on_thread(void *(*fn)(void *), void *arg) {
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

static void test_shared_count_beyond_32_bits(void **state) {
    (void)state;
    destroyed = 0;
    void *obj = rc_alloc(16, count_destroy);
    assert_non_null(obj);
    rc_header_t *h = rc_header_of(obj);
    rc_weak_t *weak = rc_weak_new(obj);
    assert_non_null(weak);

    /* other threads hold 2^32 references: one more is an ordinary one */
    const int64_t many = (int64_t)1 << 32;
    atomic_store(&h->shared, many * RC_ONE);
    run_on_thread(retain_on_thread, obj);
    assert_int_equal(atomic_load(&h->shared), (many + 1) * RC_ONE);
    void *locked = NULL;
    {
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, weak_lock_on_thread, weak), 0);
        assert_int_equal(pthread_join(th, &locked), 0);
    }
    assert_ptr_equal(locked, obj);
    assert_int_equal(atomic_load(&h->shared), (many + 2) * RC_ONE);
    assert_int_equal(rc_count(obj), (size_t)(many + 3));
    assert_int_equal(reports, 0);

    /* back to the truth (no other thread holds anything), then the last
     * release destroys exactly once */
    atomic_store(&h->shared, 0);
    assert_int_equal(rc_count(obj), 1);
    rc_release(obj);
    assert_int_equal(destroyed, 1);
    assert_null(rc_weak_lock(weak));
    rc_weak_free(weak);
    assert_int_equal(reports, 0);
}

/* The owner's last release clears `owner`, then sets RC_MERGED on `shared`.
 * A release by another thread in between, one too many (misuse: the owner
 * held the last reference), sees no owner, so it does not queue: it leaves
 * the unmerged shared count at -1 (a spinning test lands there about once
 * in a hundred rounds). That state is planted here before the owner's
 * release, which reads it at the same point. The merge kept the negative
 * count: the object was never destroyed and nothing was reported. The
 * extra release must be reported once and the object destroyed once, as
 * when a merge from the queue finds it. */
static void test_extra_release_during_owner_last_release(void **state) {
    (void)state;
    destroyed = 0;
    void *obj = rc_alloc(16, count_destroy);
    assert_non_null(obj);
    rc_header_t *h = rc_header_of(obj);
    atomic_store(&h->shared, -RC_ONE); /* the other thread's extra release */
    rc_release(obj);                    /* the owner's last */
    assert_int_equal(destroyed, 1);
    assert_int_equal(reports, 1);
    assert_string_equal(last_what, "rc_release: object's count is already 0");
    assert_ptr_equal(last_ptr, obj);
}

/* A misused rc_weak_new (the caller holds no reference) racing the
 * object's last release on another thread: it passed its check while the
 * object was live, then attached a control block after the destroy had
 * looked for one (none), so nothing detached it, and every later
 * rc_weak_lock read the freed cell (and counted into it: it answered the
 * object). The interleaving is planted: the destroy callback, which runs
 * after that look, puts the live magic and an unmerged count back for
 * the call (as the racing thread saw them). The attach must be refused and reported. */
static rc_weak_t *late_weak;
static void weak_new_late_destroy(void *obj) {
    rc_header_t *h = rc_header_of(obj);
    uint32_t dying = atomic_exchange(&h->magic, rc_live_magic(h));
    /* and the count as the racing thread saw it: not yet merged to 0
     * (rc_weak_new refuses a merged 0 before it looks at the block) */
    int64_t merged = atomic_exchange(&h->shared, 0);
    late_weak = rc_weak_new(obj);
    atomic_store(&h->shared, merged);
    atomic_store(&h->magic, dying);
}

static void test_weak_new_attaching_after_destroy_started(void **state) {
    (void)state;
    late_weak = NULL;
    void *obj = rc_alloc(16, weak_new_late_destroy);
    assert_non_null(obj);
    rc_release(obj);
    if (late_weak != NULL) {
        void *locked = rc_weak_lock(late_weak); /* the freed object, before the fix */
        assert_null(locked);
        rc_weak_free(late_weak);
    }
    assert_null(late_weak);
    assert_int_equal(reports, 1);
    assert_string_equal(last_what, "rc_weak_new: object already destroyed (use after release)");
    assert_ptr_equal(last_ptr, obj);
}

/* The header layout the inline fast paths of <mulch/rc.h> rely on. */
static void test_header_layout(void **state) {
    (void)state;
    void *obj = rc_alloc(8, NULL);
    assert_non_null(obj);
    rc_header_t *h = rc_header_of(obj);
    struct mulch_rc_header_ *fast = (struct mulch_rc_header_ *)(void *)h;
    assert_ptr_equal((void *)fast->owner, (void *)atomic_load(&h->owner));
    assert_int_equal(fast->biased, 1);
    assert_ptr_equal(fast->owner, mulch_rc_self_);
    assert_int_equal((uintptr_t)obj % 16, 0);
    rc_release(obj);
    assert_int_equal(reports, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shared_count_beyond_32_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_release_during_owner_last_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weak_new_attaching_after_destroy_started, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
