/* mmap_refuse.h — a lasting memory shortage for the unit tests
 * (tests/unit), which link the library statically: while `mmap_refused`
 * is set, every mmap the process makes (the library's included) fails
 * with ENOMEM, and so does every mremap that grows a mapping. os_fail_after refuses one mapping only; this one lasts
 * until the test clears the flag (its teardown must, so that a failed
 * assertion does not leave the next test without memory).
 * `mmap_refusals` counts the mappings refused: a test checks that its
 * scenario met the shortage (a test that passes whether or not mmap is
 * refused does not test the shortage).
 *
 * Not under ThreadSanitizer, whose start-up maps memory through this
 * interposer before dlsym can work: there MMAP_REFUSABLE is 0, no
 * interposer is defined, and the tests that need it skip().
 *
 * Header-only: it defines `mmap` itself, so include it in one translation
 * unit of an executable (each unit test is one). */
#ifndef MULCH_TEST_MMAP_REFUSE_H
#define MULCH_TEST_MMAP_REFUSE_H

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

static _Atomic bool mmap_refused;
#if defined(__GNUC__)
__attribute__((unused)) /* (no interposer under ThreadSanitizer: nothing counts) */
#endif
static _Atomic unsigned long mmap_refusals;

#if defined(__SANITIZE_THREAD__)
#  define MMAP_REFUSABLE 0
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define MMAP_REFUSABLE 0
#  endif
#endif
#ifndef MMAP_REFUSABLE
#  define MMAP_REFUSABLE 1
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    static void *(*real)(void *, size_t, int, int, int, off_t);
    if (mmap_refused) {
        mmap_refusals++;
        errno = ENOMEM;
        return MAP_FAILED;
    }
    if (real == NULL) *(void **)&real = dlsym(RTLD_NEXT, "mmap");
    return real(addr, len, prot, flags, fd, off);
}

#  ifndef MREMAP_FIXED
#    define MREMAP_FIXED 2 /* (sys/mman.h names it with _GNU_SOURCE only) */
#  endif
/* Growing a mapping takes memory too (the tracer's mark stack doubles by
 * mremap): refused alike; shrinking and moving at one size are not. */
void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...) {
    static void *(*real)(void *, size_t, size_t, int, ...);
    void *new_address = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        new_address = va_arg(ap, void *);
        va_end(ap);
    }
    if (mmap_refused && new_size > old_size) {
        mmap_refusals++;
        errno = ENOMEM;
        return MAP_FAILED;
    }
    if (real == NULL) *(void **)&real = dlsym(RTLD_NEXT, "mremap");
    return real(old_address, old_size, new_size, flags, new_address);
}
#endif

#endif /* MULCH_TEST_MMAP_REFUSE_H */
