/* mulch/common.h — what every mulch module shares: the error handler, the
 * version, and the attribute layer used on allocating prototypes.
 * Included by each module header; include <mulch.h> for everything. */
#ifndef MULCH_COMMON_H
#define MULCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define MULCH_VERSION_MAJOR 0
#define MULCH_VERSION_MINOR 10
#define MULCH_VERSION_PATCH 2
#define MULCH_VERSION_STRING "0.10.2"
/* One number that compares: 0xMMmmpp. */
#define MULCH_VERSION \
    ((MULCH_VERSION_MAJOR << 16) | (MULCH_VERSION_MINOR << 8) | MULCH_VERSION_PATCH)

#if defined(MULCH_STATIC_DEFINE) || !defined(__GNUC__)
#  define MULCH_API
#else
#  define MULCH_API __attribute__((visibility("default")))
#endif

#if defined(__GNUC__)
#  define MULCH_MALLOC           __attribute__((malloc))
#  define MULCH_ALLOC_SIZE(i)    __attribute__((alloc_size(i)))
#  define MULCH_ALLOC_SIZE2(i, j) __attribute__((alloc_size(i, j)))
#  define MULCH_NODISCARD        __attribute__((warn_unused_result))
#else
#  define MULCH_MALLOC
#  define MULCH_ALLOC_SIZE(i)
#  define MULCH_ALLOC_SIZE2(i, j)
#  define MULCH_NODISCARD
#endif

/* Defined when rc.h and gc.h must not use their inline fast paths: in
 * sanitizer builds (the paths read object headers before any check, which
 * those tools would rightly flag on misuse) and with non-GNU compilers. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(__SANITIZE_HWADDRESS__)
#  define MULCH_NO_INLINE_PATHS_ 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer) \
      || __has_feature(hwaddress_sanitizer)
#    define MULCH_NO_INLINE_PATHS_ 1
#  endif
#endif
/* The inline fast paths use GNU C (__thread, __atomic builtins, attributes);
 * other compilers get the library functions. */
#if !defined(__GNUC__) && !defined(MULCH_NO_INLINE_PATHS_)
#  define MULCH_NO_INLINE_PATHS_ 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Called on detected misuse (double free, foreign pointer, corrupted header…).
 * `what` starts with the function's name ("pool_free: double free"); `ptr` is
 * the pointer the caller passed. May run on any thread; must not call mulch. */
typedef void (*mulch_error_fn)(const char *what, const void *ptr, void *ctx);

/* Installs (fn, ctx) as one atomic pair and returns the previous handler.
 * fn NULL restores the default handler (one line on stderr). */
MULCH_API mulch_error_fn mulch_set_error_handler(mulch_error_fn fn, void *ctx);

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
MULCH_API const char *mulch_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MULCH_COMMON_H */
