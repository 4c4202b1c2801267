/* edge_cases.c — the corners of the C allocation contract, checked while
 * running under LD_PRELOAD=libmulch-malloc.so (it fails if the drop-in is
 * not the malloc in use): free(NULL), malloc(0), realloc with NULL and 0,
 * overflow and OOM (NULL with ENOMEM), alignment validation (EINVAL),
 * usable sizes, errno kept by free, and pointers the drop-in does not own
 * (from the C library's own allocator, or plain mmap), which must not
 * crash it; C23's free_sized and free_aligned_sized are the drop-in's, and
 * so are glibc's own names for its allocator (__libc_malloc and friends,
 * cfree), malloc_trim, mallinfo and mallinfo2. Exit status 0 when
 * everything holds. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

/* Sizes the compiler cannot see, so it neither warns nor folds. */
static volatile size_t huge_size = SIZE_MAX - 4096;
static volatile size_t half_max = SIZE_MAX / 2;

/* For the calls that are deliberately odd (freeing foreign memory, looking
 * at a block realloc may have moved): the compiler must not reason about them. */
static void (*volatile free_opaque)(void *) = free;
static void *(*volatile realloc_opaque)(void *, size_t) = realloc;

static int aligned_to(const void *p, size_t align) { return ((uintptr_t)p & (align - 1)) == 0; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}
static int filled(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7)) return 0;
    return 1;
}

static void check_served_by_drop_in(void) {
    Dl_info info;
    void *fn = dlsym(RTLD_DEFAULT, "malloc");
    CHECK(fn != NULL && dladdr(fn, &info) && info.dli_fname && strstr(info.dli_fname, "mulch-malloc"));
}

/* Looked up, not called by name: the C library this builds against may
 * not declare them (glibc has them from 2.43). */
static void check_sized_frees(void) {
    void *sized_symbol = dlsym(RTLD_DEFAULT, "free_sized");
    void *aligned_symbol = dlsym(RTLD_DEFAULT, "free_aligned_sized");
    Dl_info info;
    CHECK(sized_symbol != NULL && dladdr(sized_symbol, &info) && info.dli_fname &&
          strstr(info.dli_fname, "mulch-malloc"));
    CHECK(aligned_symbol != NULL && dladdr(aligned_symbol, &info) && info.dli_fname &&
          strstr(info.dli_fname, "mulch-malloc"));
    if (sized_symbol == NULL || aligned_symbol == NULL) return;
    /* (ISO C has no cast between object and function pointers) */
    void (*sized)(void *, size_t);
    void (*aligned_sized)(void *, size_t, size_t);
    memcpy(&sized, &sized_symbol, sizeof sized);
    memcpy(&aligned_sized, &aligned_symbol, sizeof aligned_sized);
    sized(NULL, 0);
    aligned_sized(NULL, 64, 0);
    for (int round = 0; round < 1000; round++) {
        size_t n = 1 + (size_t)round * 37 % 5000;
        unsigned char *p = malloc(n);
        CHECK(p != NULL);
        if (p) fill(p, n, (unsigned)round);
        unsigned char *q = aligned_alloc(256, 512);
        CHECK(q != NULL && aligned_to(q, 256));
        if (p) CHECK(filled(p, n, (unsigned)round));
        sized(p, n);
        aligned_sized(q, 256, 512);
    }
    /* the blocks went back: the same sizes come out of the same cells */
    void *a = malloc(48);
    sized(a, 48);
    void *b = malloc(48);
    CHECK(a == b);
    free(b);
}

/* Whether the symbol `name` is defined by the drop-in. */
static int served_by_drop_in(const char *name, void **out) {
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, name);
    *out = sym;
    return sym != NULL && dladdr(sym, &info) && info.dli_fname && strstr(info.dli_fname, "mulch-malloc");
}

/* glibc exports its allocator under second names (__libc_malloc, ...,
 * and cfree for old binaries) that allocator shims and old programs call
 * directly: left to glibc, __libc_free of one of the drop-in's blocks
 * aborts ("free(): invalid pointer"). malloc_trim is what long-running
 * programs (clangd, tmux) call to give idle memory back: glibc's only
 * looks at its own, empty, arenas. Looked up, not called by name: the
 * C library's headers do not declare the __libc_ names. */
static void check_glibc_entry_points(void) {
    static const char *const names[] = { "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc",
                                         "__libc_memalign", "__libc_valloc", "__libc_pvalloc", "cfree",
                                         "malloc_trim" };
    void *sym[sizeof names / sizeof names[0]];
    int all = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int ours = served_by_drop_in(names[i], &sym[i]);
        if (!ours) fprintf(stderr, "%s is not the drop-in's\n", names[i]);
        CHECK(ours);
        all &= ours;
    }
    if (!all) return;
    void *(*libc_malloc)(size_t);
    void (*libc_free)(void *);
    void *(*libc_calloc)(size_t, size_t);
    void *(*libc_realloc)(void *, size_t);
    void *(*libc_memalign)(size_t, size_t);
    void (*c_free)(void *);
    int (*trim)(size_t);
    memcpy(&libc_malloc, &sym[0], sizeof libc_malloc); /* ISO C has no object-to-function cast */
    memcpy(&libc_free, &sym[1], sizeof libc_free);
    memcpy(&libc_calloc, &sym[2], sizeof libc_calloc);
    memcpy(&libc_realloc, &sym[3], sizeof libc_realloc);
    memcpy(&libc_memalign, &sym[4], sizeof libc_memalign);
    memcpy(&c_free, &sym[7], sizeof c_free);
    memcpy(&trim, &sym[8], sizeof trim);
    /* mixed freely with the standard names, both ways */
    unsigned char *a = malloc(100);
    CHECK(a != NULL);
    libc_free(a);
    unsigned char *b = libc_malloc(100);
    CHECK(b != NULL && malloc_usable_size(b) >= 100);
    if (b) fill(b, 100, 31);
    unsigned char *c = libc_realloc(b, 5000);
    CHECK(c != NULL && filled(c, 100, 31));
    free(c);
    unsigned char *z = libc_calloc(10, 10);
    CHECK(z != NULL && z[0] == 0 && z[99] == 0);
    c_free(z);
    void *m = libc_memalign(256, 10);
    CHECK(m != NULL && aligned_to(m, 256));
    free(m);

    /* 40 MB freed: malloc_trim gives some back and says so */
    enum { N = 20000 };
    static void *held[N];
    for (int i = 0; i < N; i++) {
        held[i] = malloc(2000);
        if (held[i]) memset(held[i], 1, 2000);
    }
    for (int i = 0; i < N; i++) free(held[i]);
    errno = 0;
    CHECK(trim(0) == 1);
    CHECK(errno == 0);
}

/* mallinfo2 and mallinfo describe the drop-in's memory: glibc's describe
 * its own arenas, which it does not use, and say nothing is in use.
 * Looked up: a C library older than 2.33 has no mallinfo2. */
static void check_mallinfo(void) {
    void *sym2 = NULL, *sym = NULL;
    CHECK(served_by_drop_in("mallinfo2", &sym2));
    CHECK(served_by_drop_in("mallinfo", &sym));
    if (sym2 == NULL || sym == NULL) return;
    struct info2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost; };
    struct info { int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost; };
    struct info2 (*info2)(void);
    struct info (*info)(void);
    memcpy(&info2, &sym2, sizeof info2);
    memcpy(&info, &sym, sizeof info);
    struct info2 before = info2();
    enum { N = 1000 };
    static void *small[N];
    for (int i = 0; i < N; i++) small[i] = malloc(1000);
    void *big = malloc(3u << 20);
    CHECK(big != NULL);
    struct info2 after = info2();
    struct info after_int = info();
    /* what programs add up as "in use": the arena's cells and the big mappings */
    CHECK(after.uordblks >= before.uordblks + (size_t)N * 1000);
    CHECK(after.hblks >= before.hblks + 1 && after.hblkhd >= before.hblkhd + (3u << 20));
    CHECK(after.arena >= after.uordblks && after.fordblks == after.arena - after.uordblks);
    CHECK(after_int.hblks == (int)after.hblks && after_int.uordblks > 0);
    for (int i = 0; i < N; i++) free(small[i]);
    free(big);
    struct info2 freed = info2();
    CHECK(freed.hblkhd + (3u << 20) <= after.hblkhd && freed.uordblks + (size_t)N * 1000 <= after.uordblks);

    /* A large object's whole mapping is in hblkhd, as glibc counts its
     * mmapped chunks: its header and its 1 MiB alignment gap are not free
     * bytes of the arena. */
    before = info2();
    void *gapped = NULL;
    CHECK(posix_memalign(&gapped, 1u << 20, 300000) == 0);
    after = info2();
    CHECK(after.hblkhd >= before.hblkhd + (1u << 20) + 300000);
    CHECK(after.arena == before.arena && after.fordblks == before.fordblks);
    free(gapped);
}

static void check_basics(void) {
    free(NULL);
    void *a = malloc(0), *b = malloc(0);
    CHECK(a != NULL && b != NULL && a != b);
    free(a);
    free(b);

    unsigned char *p = realloc(NULL, 100);
    CHECK(p != NULL);
    if (p == NULL) return;
    fill(p, 100, 3);
    size_t steps[] = { 200, 5000, 100000, 1u << 20, 3u << 20, 64, 100 };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        unsigned char *q = realloc_opaque(p, steps[i]);
        CHECK(q != NULL);
        if (q == NULL) break;
        p = q;
        CHECK(filled(p, 64, 3)); /* the smallest size on the way */
        CHECK(malloc_usable_size(p) >= steps[i]);
        CHECK(aligned_to(p, 16));
    }
    errno = 0;
    CHECK(realloc(p, 0) == NULL); /* frees, like glibc */
    CHECK(errno == 0);

    /* Every size class and a few huge sizes: aligned, usable, writable. */
    for (size_t size = 1; size < (1u << 21); size += size / 8 + 1) {
        unsigned char *q = malloc(size);
        CHECK(q != NULL && aligned_to(q, 16) && malloc_usable_size(q) >= size);
        if (q == NULL) continue;
        fill(q, size, (unsigned)size);
        CHECK(filled(q, size, (unsigned)size));
        free(q);
    }
    CHECK(malloc_usable_size(NULL) == 0);
}

static void check_calloc(void) {
    for (int round = 0; round < 3; round++) { /* dirty cells come back zeroed */
        enum { N = 200 };
        unsigned char *dirty[N];
        for (int i = 0; i < N; i++) {
            dirty[i] = malloc(48 + (size_t)i);
            if (dirty[i]) memset(dirty[i], 0xAB, 48 + (size_t)i);
        }
        for (int i = 0; i < N; i++) free(dirty[i]);
        for (int i = 0; i < N; i++) {
            unsigned char *z = calloc(1, 48 + (size_t)i);
            CHECK(z != NULL);
            if (z == NULL) continue;
            for (int j = 0; j < 48 + i; j++)
                if (z[j] != 0) {
                    CHECK(!"calloc memory is zero");
                    break;
                }
            free(z);
        }
    }
    unsigned char *big = calloc(3, 1u << 20);
    CHECK(big != NULL && big[0] == 0 && big[(3u << 20) - 1] == 0);
    free(big);
}

/* A size the kernel would not commit (16 TiB, under the default heuristic
 * overcommit with less than 8 TiB of RAM + swap): NULL and ENOMEM, as
 * glibc's malloc gives, not a pointer that faults once touched. The
 * memory is never touched. */
static void check_uncommittable(void) {
    const size_t request = (size_t)1 << 44;
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    int mode = -1;
    if (f == NULL) return;
    if (fscanf(f, "%d", &mode) != 1) mode = -1;
    fclose(f);
    struct sysinfo si;
    if (mode != 0 || sysinfo(&si) != 0) return;
    if (((unsigned long long)si.totalram + si.totalswap) * si.mem_unit >= request / 2) return;
    errno = 0;
    void *p = malloc(request);
    CHECK(p == NULL);
    CHECK(errno == ENOMEM);
    free(p);
    errno = 0;
    p = calloc(request, 1);
    CHECK(p == NULL);
    CHECK(errno == ENOMEM);
    free(p);
}

static void check_out_of_memory(void) {
    errno = 0;
    CHECK(calloc(half_max, 4) == NULL); /* n * size overflows */
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(malloc(huge_size) == NULL);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(calloc(huge_size, 1) == NULL);
    CHECK(errno == ENOMEM);
    void *p = malloc(10);
    errno = 0;
    CHECK(realloc_opaque(p, huge_size) == NULL); /* p stays valid */
    CHECK(errno == ENOMEM);
    errno = 0;
    void *(*volatile reallocarray_opaque)(void *, size_t, size_t) = reallocarray;
    CHECK(reallocarray_opaque(p, half_max, 3) == NULL);
    CHECK(errno == ENOMEM);
    void *q = reallocarray_opaque(p, 10, 10);
    CHECK(q != NULL);
    free(q);
    void *r = NULL;
    errno = 0;
    CHECK(posix_memalign(&r, 64, huge_size) == ENOMEM && r == NULL);
    CHECK(errno == ENOMEM); /* as glibc's: a program's perror says why */
    check_uncommittable();
}

static void check_alignment(void) {
    void *p = (void *)1;
    CHECK(posix_memalign(&p, 3, 16) == EINVAL && p == (void *)1);
    CHECK(posix_memalign(&p, 4, 16) == EINVAL);   /* not a multiple of sizeof(void *) */
    CHECK(posix_memalign(&p, 0, 16) == EINVAL);
    size_t aligns[] = { 8, 16, 32, 64, 256, 4096, 65536, 1u << 20, 8u << 20 };
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        p = NULL;
        errno = 0;
        CHECK(posix_memalign(&p, aligns[i], 100) == 0 && p != NULL && aligned_to(p, aligns[i]));
        CHECK(errno == 0);
        free(p);
        void *q = aligned_alloc(aligns[i], 3 * aligns[i]);
        CHECK(q != NULL && aligned_to(q, aligns[i]) && malloc_usable_size(q) >= 3 * aligns[i]);
        free(q);
        void *m = memalign(aligns[i], 1);
        CHECK(m != NULL && aligned_to(m, aligns[i]));
        free(m);
    }
    /* through a volatile: clang rejects bad constant alignments at compile
     * time (-Wnon-power-of-two-alignment, from glibc's attributes) */
    volatile size_t align24 = 24, align0 = 0, align48 = 48;
    errno = 0;
    CHECK(aligned_alloc(align24, 48) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(align0, 48) == NULL && errno == EINVAL);
    void *m = memalign(align48, 10); /* rounded up to 64, as glibc does */
    CHECK(m != NULL && aligned_to(m, 64));
    free(m);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(100);
    CHECK(v != NULL && aligned_to(v, page));
    free(v);
    void *pv = pvalloc(100);
    CHECK(pv != NULL && aligned_to(pv, page) && malloc_usable_size(pv) >= page);
    free(pv);
}

static void check_errno_kept(void) {
    void *p = malloc(100), *big = malloc(8u << 20);
    errno = 4242;
    free(p);
    free(big);
    CHECK(errno == 4242);
}

/* Memory the drop-in did not allocate: the C library's own malloc (reached
 * through libc's handle, behind the drop-in's back) and a plain mapping. */
static void check_foreign(void) {
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    void *libc_sym = libc ? dlsym(libc, "malloc") : NULL;
    void *(*libc_malloc)(size_t) = NULL;
    memcpy(&libc_malloc, &libc_sym, sizeof libc_sym); /* ISO C has no object-to-function cast */
    CHECK(libc_sym != NULL && libc_sym != dlsym(RTLD_DEFAULT, "malloc"));
    if (libc_malloc) {
        unsigned char *f = libc_malloc(64);
        CHECK(f != NULL);
        if (f) {
            fill(f, 64, 9);
            CHECK(malloc_usable_size(f) == 0);
            unsigned char *g = realloc_opaque(f, 128); /* moved into the pool, copied */
            CHECK(g != NULL && g != f && filled(g, 64, 9));
            free(g);
            free_opaque(f); /* ignored, no crash */
        }
    }
    if (libc) dlclose(libc);

    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map == MAP_FAILED) return;
    munmap(map + page, page); /* the page after it is unmapped */
    fill(map, page, 5);
    unsigned char *moved = realloc_opaque(map, 4 * page); /* copies only what is mapped */
    CHECK(moved != NULL && filled(moved, page, 5));
    free(moved);
    free_opaque(map);
    free_opaque(map + 16);
    CHECK(malloc_usable_size(map) == 0);
    munmap(map, page);
}

/* A mapping of someone else's in the same 4 MiB region as a huge object:
 * the drop-in maps each huge object alone at the start of a region, and the
 * rest of that region is not the object's: anyone (the loader, the C
 * library, the program) may map there once it is free. Pointers there
 * are foreign: realloc moves them, free ignores them,
 * malloc_usable_size knows nothing about them. They decide so without
 * reading the huge object's chunk header, which another thread may be
 * unmapping at that moment (freeing the huge object): here the header's
 * page is made inaccessible meanwhile, and reading it would fault.
 * The object is aligned to 8 MiB: its chunk then starts a region before
 * it (the header alone in the first region), and the slack of a fresh
 * mapping aligned above a region is unmapped, so the rest of the object's
 * region is free whatever the kernel's placement (a region-aligned
 * mapping's slack is retired instead, which fills that rest). */
static void check_foreign_beside_huge(void) {
    const size_t region = (size_t)4 << 20;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t huge = 200000; /* past the largest size class: a mapping of its own */
    /* Each try holds a huge object and looks for a free page in the rest
     * of its region (other mappings may fill that region: then the next). */
    unsigned char *held[8] = { NULL };
    unsigned char *map = MAP_FAILED, *h = NULL;
    for (int t = 0; t < 8 && map == MAP_FAILED; t++) {
        void *aligned = NULL;
        CHECK(posix_memalign(&aligned, 2 * region, huge) == 0);
        h = held[t] = aligned;
        if (h == NULL) break;
        uintptr_t base = (uintptr_t)h & ~(uintptr_t)(region - 1);
        for (uintptr_t at = base + region - page; at >= (uintptr_t)h + huge + page && map == MAP_FAILED;
             at -= page) {
            map = mmap((void *)at, page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            if (map != MAP_FAILED && map != (unsigned char *)at) {
                munmap(map, page); /* an old kernel took the address as a hint */
                map = MAP_FAILED;
            }
        }
    }
    CHECK(map != MAP_FAILED);
    if (map != MAP_FAILED) {
        fill(map, page, 11);
        unsigned char *header = h - region; /* the chunk's start */
        CHECK(mprotect(header, page, PROT_NONE) == 0);
        CHECK(malloc_usable_size(map) == 0);
        errno = 0;
        unsigned char *moved = realloc_opaque(map, 2 * page); /* copies the mapped page */
        CHECK(moved != NULL && errno == 0 && filled(moved, page, 11));
        free(moved);
        free_opaque(map); /* ignored */
        CHECK(filled(map, page, 11));
        CHECK(mprotect(header, page, PROT_READ | PROT_WRITE) == 0);
        munmap(map, page);
    }
    for (int t = 0; t < 8; t++) free(held[t]);
}

/* A foreign block followed by a page that is mapped but not readable:
 * realloc copies what it can read and must not touch that page (mincore
 * alone says "mapped", which is not "readable"). */
static void check_foreign_before_unreadable_page(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map == MAP_FAILED) return;
    fill(map, page, 23);
    CHECK(mprotect(map + page, page, PROT_NONE) == 0);
    errno = 0;
    unsigned char *moved = realloc_opaque(map + page / 2, 2 * page); /* would read into the second page */
    CHECK(moved != NULL && errno == 0 && filled(moved, page / 2, 23 + (unsigned)(page / 2) * 7));
    free(moved);
    munmap(map, 2 * page);
}

int main(void) {
    check_served_by_drop_in();
    check_basics();
    check_sized_frees();
    check_glibc_entry_points();
    check_mallinfo();
    check_calloc();
    check_out_of_memory();
    check_alignment();
    check_errno_kept();
    check_foreign();
    check_foreign_beside_huge();
    check_foreign_before_unreadable_page();
    if (failures) fprintf(stderr, "%d checks failed\n", failures);
    else puts("edge cases ok");
    return failures != 0;
}
