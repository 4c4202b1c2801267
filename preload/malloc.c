/* malloc.c — libmulch-malloc.so: the C allocation functions (malloc, free,
 * calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign,
 * valloc, pvalloc, malloc_usable_size, C23's free_sized and
 * free_aligned_sized, glibc's __libc_* names for them and cfree,
 * malloc_trim, mallinfo and mallinfo2) served by the default pool, for
 * LD_PRELOAD. The pool objects are linked into this library, which exports
 * nothing else (malloc.map), so it is a copy of the pool of its own: a
 * program that also links libmulch has two independent default pools.
 *
 * Invariants:
 *   - Every pointer handed out is either a live allocation of served_pool or
 *     a cell of the bootstrap arena; free/realloc/malloc_usable_size tell
 *     them apart by address (chunk_of, arena bounds) and treat any other
 *     pointer as foreign: memory allocated before this library took over
 *     (the dynamic loader's own allocator), which is never freed here.
 *   - The bootstrap arena serves only calls made by a thread while it is
 *     creating the pool (recursion through the C library) or writing the
 *     reports at exit (so that the report's own FILE is not in it); its
 *     cells are never reused, and free ignores them.
 *   - errno: ENOMEM on every NULL from an allocating call and on
 *     posix_memalign's ENOMEM (as glibc); free keeps it.
 *
 * Environment: MULCH_LEAK_REPORT=1 turns on site tracking in the pool and
 * prints pool_report_leaks to stderr at exit; MULCH_MALLOC_STATS=1 prints
 * one line of pool statistics to stderr at exit. Only the process that
 * loaded the library prints them: a forked child that exits does not (a
 * program it execs loads the library anew and prints its own).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pool_internal.h"

#define MALLOC_API __attribute__((visibility("default")))
#define MALLOC_TLS __attribute__((tls_model("initial-exec")))

/* ---- the pool, created on first use ---------------------------------------- */

static _Atomic(pool_t *) served_pool;
/* This thread's allocations go to the arena (see the top of the file). */
static _Thread_local int use_arena MALLOC_TLS;
static int want_leak_report, want_stats;
/* A private copy of stderr for the reports at exit: many programs (GNU
 * coreutils among them) close stderr before exiting. -1 when not wanted.
 * The program may close that descriptor number and reuse it for a file of
 * its own: report_dev and report_ino tell whether it still is our copy. */
static int report_fd = -1;
static dev_t report_dev;
static ino_t report_ino;
/* The process that loaded the library: only it writes the reports. A
 * child it forked (without exec) that calls exit would otherwise print
 * its copy of the parent's figures and leaks into the same stderr. */
static pid_t report_pid;

static bool is_report_file(int fd) {
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == report_dev && st.st_ino == report_ino;
}


/* Said once: without a pool every malloc fails, and ENOMEM alone does
 * not tell why (the pool's first mapping is 64 MiB of address space: an
 * address-space limit below that refuses it). write(2): no stdio, which
 * would allocate. */
static MULCH_NOINLINE void served_create_failed(void) {
    static atomic_flag said = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&said)) return;
    static const char text[] = "libmulch-malloc: cannot create its pool (out of memory, or of address space under "
                               "ulimit -v): every allocation fails\n";
    ssize_t written = write(2, text, sizeof text - 1);
    (void)written;
}

/* Slow path of served(): the first call creates the default pool; a call
 * made while that is under way (recursion) gets NULL with use_arena set,
 * and the callers send it to the arena. */
static MULCH_NOINLINE pool_t *served_create(void) {
    if (use_arena) return NULL;
    use_arena = 1;
    want_leak_report = mulch_env_switch("MULCH_LEAK_REPORT", "libmulch-malloc", 0);
    want_stats = mulch_env_switch("MULCH_MALLOC_STATS", "libmulch-malloc", 0);
    pool_options_t opts = { 0 };
    opts.track_leaks = want_leak_report;
    pool_default_set_options(&opts);
    pool_t *pool = pool_default();
    use_arena = 0;
    if (pool) atomic_store_explicit(&served_pool, pool, memory_order_release);
    else served_create_failed();
    return pool;
}

/* The pool to allocate from; NULL: use the arena if use_arena, else OOM. */
static inline pool_t *served(void) {
    pool_t *pool = atomic_load_explicit(&served_pool, memory_order_acquire);
    if (mulch_unlikely(pool == NULL)) return served_create();
    return mulch_likely(!use_arena) ? pool : NULL;
}

/* ---- bootstrap arena -------------------------------------------------------- */

/* Each cell: a 16-byte header holding the requested size, then the data. */
#define ARENA_BYTES ((size_t)256 << 10)
static _Alignas(4096) unsigned char arena[ARENA_BYTES];
static _Atomic size_t arena_used;

static bool in_arena(const void *p) {
    return (const unsigned char *)p >= arena && (const unsigned char *)p < arena + ARENA_BYTES;
}

static void *arena_alloc(size_t size, size_t align) {
    if (align < MULCH_ALIGN) align = MULCH_ALIGN;
    if (size > ARENA_BYTES || align > 4096) return NULL;
    size_t old = atomic_load_explicit(&arena_used, memory_order_relaxed);
    for (;;) {
        size_t start = (old + MULCH_ALIGN + align - 1) & ~(align - 1);
        size_t end = (start + size + MULCH_ALIGN - 1) & ~(size_t)(MULCH_ALIGN - 1);
        if (end > ARENA_BYTES) return NULL;
        if (atomic_compare_exchange_weak_explicit(&arena_used, &old, end, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            memcpy(arena + start - MULCH_ALIGN, &size, sizeof size);
            return arena + start;
        }
    }
}

static size_t arena_size_of(const void *p) {
    size_t size;
    memcpy(&size, (const unsigned char *)p - MULCH_ALIGN, sizeof size);
    return size;
}

/* No pool: the arena when use_arena, else the OS refused to create it. */
static MULCH_NOINLINE void *alloc_without_pool(size_t size, size_t align) {
    void *p = use_arena ? arena_alloc(size, align) : NULL;
    if (p == NULL) errno = ENOMEM;
    return p;
}

/* ---- ownership ---------------------------------------------------------- */

/* The chunk map answers per 4 MiB region, and a huge object's mapping
 * starts a region but need not fill it: the rest of that region may hold
 * anyone's memory (the arena itself, the loader's, a plain mmap), which
 * the map still attributes to the huge chunk. Only its own bytes are ours.
 * No chunk header is read before the map has vouched that p lies in the
 * chunk's own bytes: another thread may be unmapping that huge object
 * (freeing it) while a foreign pointer beside it is freed here. A blocks
 * chunk fills its regions, and its byte in the region start map says so
 * (the byte pool_free tests next); anything else asks chunk_covering. */
static inline bool pool_owns(pool_t *pool, const void *p) {
    if (mulch_likely(chunk_starts_blocks(p)))
        return ((chunk_t *)((uintptr_t)p & ~(uintptr_t)(MULCH_REGION - 1)))->pool == pool;
    chunk_t *chunk = chunk_covering(p);
    return chunk != NULL && chunk->pool == pool;
}

/* Bytes mapped from p, up to max: stops at the first unmapped page. Not
 * the same as readable (a PROT_NONE page is mapped): foreign_copy's
 * fallback when the kernel refuses process_vm_readv. */
static size_t foreign_mapped(const void *p, size_t max) {
    uintptr_t page = (uintptr_t)p & ~(MULCH_PAGE - 1);
    uintptr_t end = (uintptr_t)p + max;
    if (end < (uintptr_t)p) end = UINTPTR_MAX;
    unsigned char resident;
    while (page < end) {
        if (mincore((void *)page, MULCH_PAGE, &resident) != 0) break;
        page += MULCH_PAGE;
    }
    size_t readable = page > (uintptr_t)p ? page - (uintptr_t)p : 0;
    return readable < max ? readable : max;
}

/* ---- the C allocation functions ------------------------------------------- */

static inline void *nomem(void *p) {
    if (mulch_unlikely(p == NULL)) errno = ENOMEM;
    return p;
}

MALLOC_API void *malloc(size_t size) {
    pool_t *pool = served();
    if (mulch_unlikely(pool == NULL)) return alloc_without_pool(size, MULCH_ALIGN);
    return nomem(pool_alloc_from(pool, size, __builtin_return_address(0)));
}

MALLOC_API void free(void *p) {
    if (p == NULL) return;
    pool_t *pool = atomic_load_explicit(&served_pool, memory_order_acquire);
    if (mulch_unlikely(pool == NULL || !pool_owns(pool, p))) return; /* arena or foreign */
    int saved = errno;
    pool_free(pool, p);
    errno = saved;
}

/* C23's sized frees. A program built against a C library that has them
 * (glibc 2.43 on) calls them for memory this library handed out, so they
 * must be ours: the C library's would take our blocks for its own. The
 * size is a promise the caller made; free needs no hint, so it is not
 * checked (a wrong size is undefined behaviour, as in C23). */
MALLOC_API void free_sized(void *p, size_t size) {
    (void)size;
    free(p);
}

MALLOC_API void free_aligned_sized(void *p, size_t align, size_t size) {
    (void)align;
    (void)size;
    free(p);
}

MALLOC_API void *calloc(size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    pool_t *pool = served();
    if (mulch_unlikely(pool == NULL)) return alloc_without_pool(n * size, MULCH_ALIGN); /* arena is zero */
    return nomem(pool_calloc_from(pool, n, size, __builtin_return_address(0)));
}

/* Copies up to n bytes of a foreign block whose size nobody knows into
 * dst, stopping at the first page it cannot read: the kernel reads them
 * (process_vm_readv on ourselves, one iovec per page, since a transfer
 * never splits an iovec), so an unreadable page fails the call instead of
 * faulting us. Where the kernel refuses the call (seccomp, old kernels),
 * the pages are only known to be mapped (foreign_mapped). */
#define FOREIGN_IOV_PAGES 64
static void foreign_copy(unsigned char *dst, const unsigned char *src, size_t n) {
    size_t done = 0;
    int saved = errno;
    while (done < n) {
        struct iovec remote[FOREIGN_IOV_PAGES];
        size_t want = 0;
        int count = 0;
        while (count < FOREIGN_IOV_PAGES && done + want < n) {
            uintptr_t at = (uintptr_t)src + done + want;
            size_t len = MULCH_PAGE - (at & (MULCH_PAGE - 1));
            if (len > n - done - want) len = n - done - want;
            remote[count].iov_base = (void *)at;
            remote[count].iov_len = len;
            count++;
            want += len;
        }
        struct iovec local = { dst + done, want };
        ssize_t got = process_vm_readv(getpid(), &local, 1, remote, (unsigned long)count, 0);
        if (got < 0 && (errno == ENOSYS || errno == EPERM)) {
            size_t mapped = foreign_mapped(src + done, n - done);
            memcpy(dst + done, src + done, mapped);
            break;
        }
        if (got <= 0) break;
        done += (size_t)got;
        if ((size_t)got < want) break; /* the next page is not readable */
    }
    errno = saved;
}

/* A pool block realloc'd by a thread whose allocations go to the arena
 * (writing the reports at exit): moved into the arena, and freed. A bad
 * pointer (freed already...) is reported once, as pool_realloc does, and
 * gives NULL. */
static MULCH_NOINLINE void *realloc_into_arena(pool_t *owner, void *p, size_t size) {
    int saved = errno;
    size_t old = pool_usable_size(owner, p); /* 0: reported */
    errno = saved;
    if (old == 0) return NULL;
    void *q = NULL;
    if (size != 0) {
        q = alloc_without_pool(size, MULCH_ALIGN);
        if (q == NULL) return NULL; /* errno ENOMEM; p stays */
        memcpy(q, p, old < size ? old : size);
    }
    pool_free(owner, p);
    errno = saved;
    return q;
}

/* realloc of a pointer this pool did not hand out (arena or foreign):
 * move it into the pool; the old block stays where it is. A pool block
 * reaches here too when this thread uses the arena (pool NULL). */
static MULCH_NOINLINE void *realloc_unowned(pool_t *pool, void *p, size_t size, const void *caller) {
    pool_t *owner = atomic_load_explicit(&served_pool, memory_order_acquire);
    if (pool == NULL && owner != NULL && pool_owns(owner, p)) return realloc_into_arena(owner, p, size);
    if (size == 0) return NULL; /* like realloc(p, 0) of an owned block: "freed" */
    void *q = pool ? pool_alloc_from(pool, size, caller) : alloc_without_pool(size, MULCH_ALIGN);
    if (q == NULL) return nomem(NULL);
    if (in_arena(p)) {
        size_t old = arena_size_of(p);
        memcpy(q, p, old < size ? old : size);
    } else {
        foreign_copy(q, p, size);
    }
    return q;
}

/* realloc with its leak site: the caller of realloc or reallocarray. */
static inline void *realloc_from(void *p, size_t size, const void *caller) {
    pool_t *pool = served();
    if (p == NULL) {
        if (mulch_unlikely(pool == NULL)) return alloc_without_pool(size, MULCH_ALIGN);
        return nomem(pool_alloc_from(pool, size, caller));
    }
    if (mulch_unlikely(pool == NULL || !pool_owns(pool, p))) return realloc_unowned(pool, p, size, caller);
    if (size == 0) { /* glibc's choice: free and return NULL */
        int saved = errno;
        pool_free(pool, p);
        errno = saved;
        return NULL;
    }
    return nomem(pool_realloc_from(pool, p, size, caller));
}

MALLOC_API void *realloc(void *p, size_t size) {
    return realloc_from(p, size, __builtin_return_address(0));
}

MALLOC_API void *reallocarray(void *p, size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc_from(p, n * size, __builtin_return_address(0));
}

static void *aligned(size_t align, size_t size, const void *caller) {
    pool_t *pool = served();
    if (mulch_unlikely(pool == NULL)) return alloc_without_pool(size, align);
    return nomem(pool_alloc_aligned_from(pool, size, align, caller));
}

static bool power_of_two(size_t x) {
    return x != 0 && (x & (x - 1)) == 0;
}

/* As glibc's: errno is ENOMEM after an ENOMEM failure (programs that
 * perror it say why), kept otherwise. */
MALLOC_API int posix_memalign(void **out, size_t align, size_t size) {
    if (!power_of_two(align) || align % sizeof(void *) != 0) return EINVAL;
    int saved = errno;
    void *p = aligned(align, size, __builtin_return_address(0));
    if (p == NULL) return ENOMEM; /* errno ENOMEM (aligned) */
    errno = saved;
    *out = p;
    return 0;
}

MALLOC_API void *aligned_alloc(size_t align, size_t size) {
    if (!power_of_two(align)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(align, size, __builtin_return_address(0));
}

/* Like glibc: an alignment that is not a power of two is rounded up to one. */
MALLOC_API void *memalign(size_t align, size_t size) {
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t rounded = MULCH_ALIGN;
    while (rounded < align) rounded <<= 1;
    return aligned(rounded, size, __builtin_return_address(0));
}

MALLOC_API void *valloc(size_t size) {
    return aligned((size_t)sysconf(_SC_PAGESIZE), size, __builtin_return_address(0));
}

MALLOC_API void *pvalloc(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
    return aligned(page, rounded, __builtin_return_address(0));
}

MALLOC_API size_t malloc_usable_size(void *p) {
    if (p == NULL) return 0;
    if (in_arena(p)) return arena_size_of(p);
    pool_t *pool = atomic_load_explicit(&served_pool, memory_order_acquire);
    if (pool == NULL || !pool_owns(pool, p)) return 0;
    return pool_usable_size(pool, p);
}

/* ---- glibc's other entry points ---------------------------------------------- */

/* glibc also exports its allocator as __libc_malloc and friends (and cfree
 * for binaries older than glibc 2.26), which allocator shims and some
 * programs call by those names. Left to glibc they would mix two
 * allocators: __libc_free of one of our blocks aborts inside glibc
 * ("free(): invalid pointer"), and __libc_malloc's blocks are foreign to
 * our free (leaked). Aliases, so that leak sites stay the real callers
 * (GCC would have them repeat the C library's attributes on malloc). */
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wmissing-attributes"
#endif
MALLOC_API void *__libc_malloc(size_t size) __attribute__((alias("malloc")));
MALLOC_API void __libc_free(void *p) __attribute__((alias("free")));
MALLOC_API void cfree(void *p) __attribute__((alias("free")));
MALLOC_API void *__libc_calloc(size_t n, size_t size) __attribute__((alias("calloc")));
MALLOC_API void *__libc_realloc(void *p, size_t size) __attribute__((alias("realloc")));
MALLOC_API void *__libc_memalign(size_t align, size_t size) __attribute__((alias("memalign")));
MALLOC_API void *__libc_valloc(size_t size) __attribute__((alias("valloc")));
MALLOC_API void *__libc_pvalloc(size_t size) __attribute__((alias("pvalloc")));
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

/* Long-running programs (clangd, tmux) call malloc_trim to give idle memory
 * back; glibc's looks only at its own arenas, empty under the drop-in, and
 * gives back nothing. pool_trim does it (pad is not honoured: the pool
 * keeps no top-of-heap slack). 1 when memory was released, as glibc. */
MALLOC_API int malloc_trim(size_t pad) {
    (void)pad;
    pool_t *pool = atomic_load_explicit(&served_pool, memory_order_acquire);
    if (pool == NULL || use_arena) return 0;
    int saved = errno;
    size_t released = pool_trim(pool);
    errno = saved;
    return released > 0;
}

/* mallinfo2 and mallinfo, which programs (LLVM's tools, systemd) read to
 * log their memory use: glibc's describe its own arenas, unused under the
 * drop-in, and said nothing was in use. In glibc's terms: the large
 * objects are the mmapped chunks (hblks; hblkhd their mappings' bytes,
 * header and alignment gap included, as glibc counts its mmapped chunks),
 * everything else the pool holds is the arena (cached large mappings
 * among its free bytes), and the idle blocks are what a trim would
 * release (keepcost). Free-chunk counts have no equivalent: 0. The structs are
 * glibc's layouts, declared here: <malloc.h> has mallinfo2 only from glibc
 * 2.33 on. */
struct mulch_mallinfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct mulch_mallinfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

static struct mulch_mallinfo2 pool_mallinfo(void) {
    struct mulch_mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    pool_t *pool = atomic_load_explicit(&served_pool, memory_order_acquire);
    if (pool == NULL) return mi;
    pool_stats_t st;
    pool_get_stats(pool, &st);
    /* the live large objects: their usable bytes and their mappings' */
    size_t huge = 0, huge_mapped = 0;
    pthread_mutex_lock(&pool->lock);
    for (const chunk_t *c = pool->huge; c; c = c->next) {
        huge += c->object_size;
        huge_mapped += c->size;
    }
    pthread_mutex_unlock(&pool->lock);
    mi.hblks = st.large_objects;
    mi.hblkhd = huge_mapped;
    mi.arena = st.bytes_reserved > huge_mapped ? st.bytes_reserved - huge_mapped : 0;
    mi.uordblks = st.bytes_in_use > huge ? st.bytes_in_use - huge : 0;
    if (mi.uordblks > mi.arena) mi.uordblks = mi.arena; /* figures of a busy pool drift */
    mi.fordblks = mi.arena - mi.uordblks;
    mi.keepcost = st.free_block_bytes;
    return mi;
}

MALLOC_API struct mulch_mallinfo2 mallinfo2(void) {
    return pool_mallinfo();
}

/* The int fields wrap as glibc's do. */
MALLOC_API struct mulch_mallinfo mallinfo(void) {
    struct mulch_mallinfo2 wide = pool_mallinfo();
    struct mulch_mallinfo mi;
    mi.arena = (int)wide.arena;
    mi.ordblks = (int)wide.ordblks;
    mi.smblks = (int)wide.smblks;
    mi.hblks = (int)wide.hblks;
    mi.hblkhd = (int)wide.hblkhd;
    mi.usmblks = (int)wide.usmblks;
    mi.fsmblks = (int)wide.fsmblks;
    mi.uordblks = (int)wide.uordblks;
    mi.fordblks = (int)wide.fordblks;
    mi.keepcost = (int)wide.keepcost;
    return mi;
}

/* ---- process lifetime: fork and exit --------------------------------------- */

/* fork: the pool layer holds every pool's locks across it (pool/fork.c),
 * served_pool's included. */

/* The private copy of stderr, on a high number (100 and up) that programs
 * picking their own small descriptor numbers leave alone; under a
 * descriptor limit at or below 100 that number is refused (EINVAL), so the
 * upper half of what the limit allows instead. -1 if none. */
static int report_fd_open(void) {
    int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
    struct rlimit lim;
    if (fd < 0 && errno == EINVAL && getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        lim.rlim_cur > 3)
        fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, (int)(lim.rlim_cur / 2 > 3 ? lim.rlim_cur / 2 : 3));
    return fd;
}

/* After libc, before the program's constructors: the pool exists before
 * anything forks. The copy of stderr is taken even when the OS refused the
 * pool here (served_create read the environment all the same): a later
 * allocation creates it, and the reports at exit need that copy. */
__attribute__((constructor)) static void mulch_malloc_init(void) {
    (void)served();
    if (want_stats || want_leak_report) report_fd = report_fd_open();
    report_pid = getpid();
    struct stat st;
    if (report_fd >= 0 && fstat(report_fd, &st) == 0) {
        report_dev = st.st_dev;
        report_ino = st.st_ino;
    } else if (report_fd >= 0) {
        close(report_fd);
        report_fd = -1;
    }
}

/* Runs after the program's atexit handlers and destructors. */
__attribute__((destructor)) static void mulch_malloc_fini(void) {
    pool_t *pool = atomic_load_explicit(&served_pool, memory_order_acquire);
    if (pool == NULL || report_fd < 0 || getpid() != report_pid) return;
    /* Our copy, else stderr if it still is the same file; never a file the
     * program put on our descriptor's number (left open: it is not ours). */
    int fd = is_report_file(report_fd) ? report_fd
             : is_report_file(STDERR_FILENO) ? fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0)
             : -1;
    if (fd < 0) return;
    use_arena = 1; /* the FILE and its buffer stay out of the report */
    FILE *out = fdopen(fd, "w");
    if (out == NULL) {
        if (fd != report_fd) close(fd);
        use_arena = 0;
        return;
    }
    if (want_stats) {
        pool_stats_t st;
        pool_get_stats(pool, &st);
        fprintf(out,
                "mulch-malloc: allocs %llu frees %llu live %zu in_use %zu reserved %zu peak_reserved %zu\n",
                (unsigned long long)st.allocs, (unsigned long long)st.frees, st.live_allocations,
                st.bytes_in_use, st.bytes_reserved, st.peak_reserved);
    }
    if (want_leak_report) pool_report_leaks(pool, out);
    fclose(out);
    use_arena = 0;
}
