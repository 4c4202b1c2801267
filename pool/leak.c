/* leak.c — allocation sites and the leak report.
 *
 * With tracking on, each span gets a side array with one leak_site_t per
 * cell (mapped separately, so tracking costs nothing when off: the fast
 * path never looks at it, tracking pools take the slow path). A site is the
 * file:line of POOL_ALLOC, or the caller's return address, resolved with
 * dladdr when the report is written. Huge objects keep their site in their
 * chunk header.
 *
 * The report walks every span under pool->lock (spans cannot come or go)
 * and lists each cell for which cell_is_allocated holds (a parked cell,
 * release.c, is free and is not read). The cells' second
 * words are read while owner threads may write them: the figures are exact
 * only when the pool is quiescent, as the contract says, and those reads
 * are deliberately not instrumented by ThreadSanitizer.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "pool_internal.h"
#include "release.h"

bool block_sites_attach(pool_t *pool, block_t *b) {
    (void)pool;
    b->sites = os_map((size_t)b->capacity * sizeof(leak_site_t));
    if (b->sites == NULL) return false;
    b->flags |= BLOCK_SITES;
    return true;
}

void block_sites_release(block_t *b) {
    if (b->sites) os_unmap(b->sites, ((size_t)b->capacity * sizeof(leak_site_t) + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1));
    b->sites = NULL;
    b->flags &= (uint8_t)~BLOCK_SITES;
}

typedef struct leak {
    const void *address;
    size_t      size;
    leak_site_t site;
} leak_t;

/* The walk counts every live allocation and its bytes (total,
 * total_bytes) whether or not the list has room for it: the summary stays
 * exact when the list could not grow. Once a growth failed the list stays
 * as it is (truncated), so the listed allocations are the first ones the
 * walk met and the rest is one "not recorded" group, not scattered holes. */
typedef struct leak_list {
    leak_t *items;
    size_t  count, capacity;
    size_t  total;       /* live allocations seen, listed or not */
    size_t  total_bytes; /* their sizes, as the report shows them */
    bool    truncated;
} leak_list_t;

static void leak_list_push(leak_list_t *list, const void *address, size_t size, const leak_site_t *site) {
    list->total++;
    list->total_bytes += size;
    if (list->truncated) return;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 1024;
        leak_t *items = os_map(capacity * sizeof(leak_t));
        if (items == NULL) {
            list->truncated = true;
            return;
        }
        if (list->items) {
            memcpy(items, list->items, list->count * sizeof(leak_t));
            os_unmap(list->items, (list->capacity * sizeof(leak_t) + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1));
        }
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->count].address = address;
    list->items[list->count].size = size;
    list->items[list->count].site = site ? *site : (leak_site_t){ NULL, 0, 0 };
    list->count++;
}

#if defined(__GNUC__) && defined(MULCH_TSAN)
#  define MULCH_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#  define MULCH_NO_TSAN
#endif

/* Reads a cell's second word and its site while the owner may be writing
 * them (see the top of this file). The word is read here, not through
 * cell_word_load: the attributes must cover the access itself (a free or
 * tiny cell's second word is poisoned under ASan, pool/tool.h). */
static MULCH_NO_TSAN MULCH_NO_ASAN bool cell_read_live(const pool_t *pool, const block_t *b, uint32_t c,
                                                       leak_site_t *site) {
    const unsigned char *cell = b->start + (size_t)c * b->cell_size;
    if (cell_is_parked(pool, b, cell)) return false; /* its page is released: no word to read */
    if (((const uintptr_t *)cell)[1] == cell_free_mark(pool, cell)) return false;
    if (b->sites) *site = b->sites[c];
    else *site = (leak_site_t){ NULL, 0, 0 };
    return true;
}

/* Whether a site was recorded: a file site (line > 0; its file may be
 * NULL, pool_alloc_at's caller passed none) or a caller address. */
static bool site_is_set(const leak_site_t *site) {
    return site->where != NULL || site->line > 0;
}

/* Calls fn for every live allocation: small cells (site NULL-filled when
 * untracked, size the requested one when tracked) and huge objects. */
typedef void (*live_fn)(void *ctx, void *address, size_t size, const leak_site_t *site);

static void live_walk_locked(pool_t *pool, live_fn fn, void *ctx) {
    for (chunk_t *chunk = pool->chunks; chunk; chunk = chunk->next) {
        for (uint32_t i = chunk->first_block; i < chunk->block_count; i++) {
            block_t *b = &chunk->blocks[i];
            if (b->kind != BLOCK_SMALL) continue;
            uint32_t bump = atomic_load_explicit(&b->bump, memory_order_relaxed);
            for (uint32_t c = 0; c < bump; c++) {
                leak_site_t site;
                if (!cell_read_live(pool, b, c, &site)) continue;
                size_t size = site_is_set(&site) ? site.size : b->cell_size;
                fn(ctx, b->start + (size_t)c * b->cell_size, size, &site);
            }
        }
    }
    for (chunk_t *chunk = pool->huge; chunk; chunk = chunk->next)
        fn(ctx, (unsigned char *)chunk + chunk->object_offset, chunk->requested,
           pool->track_leaks ? &chunk->site : NULL);
}

static void leak_collect_one(void *list, void *address, size_t size, const leak_site_t *site) {
    leak_list_push(list, address, size, site);
}

static void leaks_collect_locked(pool_t *pool, leak_list_t *list) {
    live_walk_locked(pool, leak_collect_one, list);
}

static void tool_forget_one(void *ctx, void *address, size_t size, const leak_site_t *site) {
    (void)ctx, (void)size, (void)site;
    tool_vg_free(address);
}

/* pool_destroy under valgrind: memcheck must forget the pool's live cells,
 * or a later mapping at the same address makes its blocks "overlap". */
void pool_tool_forget_live_locked(pool_t *pool) {
    live_walk_locked(pool, tool_forget_one, NULL);
}

typedef struct {
    void (*fn)(void *ctx, void *cell, size_t size);
    void *ctx;
} cells_walk_t;

static void cells_walk_one(void *ctx, void *address, size_t size, const leak_site_t *site) {
    (void)site;
    cells_walk_t *walk = ctx;
    walk->fn(walk->ctx, address, size);
}

void pool_live_cells_walk(pool_t *pool, void (*fn)(void *ctx, void *cell, size_t size), void *ctx) {
    cells_walk_t walk = { fn, ctx };
    pthread_mutex_lock(&pool->lock);
    live_walk_locked(pool, cells_walk_one, &walk);
    pthread_mutex_unlock(&pool->lock);
}

/* The file of a file site, as the report prints it. */
static const char *site_file(const leak_site_t *site) {
    return site->where != NULL ? (const char *)site->where : "<no file>";
}

/* Sites in report order: file sites (line > 0) by the text of their file
 * name, then line (two translation units may hold the same name at two
 * addresses: one site), then address sites by address. */
static int site_order(const leak_site_t *x, const leak_site_t *y) {
    bool xf = x->line > 0, yf = y->line > 0;
    if (xf != yf) return xf ? -1 : 1;
    if (xf) {
        int c = strcmp(site_file(x), site_file(y));
        if (c != 0) return c;
        if (x->line != y->line) return x->line < y->line ? -1 : 1;
        return 0;
    }
    if (x->where != y->where) return (uintptr_t)x->where < (uintptr_t)y->where ? -1 : 1;
    return 0;
}

static int site_compare(const void *a, const void *b) {
    const leak_t *x = a, *y = b;
    int c = site_order(&x->site, &y->site);
    if (c != 0) return c;
    return (uintptr_t)x->address < (uintptr_t)y->address ? -1 : (x->address != y->address);
}

/* tracked: the pool records sites. Then a cell without one was freed (the
 * free clears its site) and dropped when the pool found it written after
 * that free (alloc.c): it stays counted in use, and is listed. */
static void site_format(const leak_site_t *site, bool tracked, char *out, size_t n) {
    if (site->line > 0) {
        snprintf(out, n, "%s:%u", site_file(site), site->line);
    } else if (site->where == NULL) {
        snprintf(out, n, tracked ? "unknown site (a freed cell written after its free or freed twice, "
                                   "dropped by the pool)"
                                 : "unknown site (leak tracking off)");
    } else {
        Dl_info info;
        if (dladdr(site->where, &info) && info.dli_sname) {
            snprintf(out, n, "%s+0x%lx (%s)", info.dli_sname,
                     (unsigned long)((uintptr_t)site->where - (uintptr_t)info.dli_saddr),
                     info.dli_fname ? info.dli_fname : "?");
        } else if (dladdr(site->where, &info) && info.dli_fname) {
            snprintf(out, n, "%s+0x%lx", info.dli_fname,
                     (unsigned long)((uintptr_t)site->where - (uintptr_t)info.dli_fbase));
        } else {
            snprintf(out, n, "%p", site->where);
        }
    }
}

size_t pool_report_leaks(pool_t *pool, FILE *out) {
    if (!pool_given(pool, "pool_report_leaks")) return 0;
    if (out == NULL) out = stderr;
    leak_list_t list = { 0 };
    pthread_mutex_lock(&pool->lock);
    leaks_collect_locked(pool, &list);
    pthread_mutex_unlock(&pool->lock);

    if (list.count) qsort(list.items, list.count, sizeof(leak_t), site_compare);
    char where[512];
    for (size_t i = 0; i < list.count; i++) {
        site_format(&list.items[i].site, pool->track_leaks != 0, where, sizeof where);
        fprintf(out, "mulch leak: %p size %zu allocated at %s\n", list.items[i].address,
                list.items[i].size, where);
    }
    if (list.total) {
        /* the summary counts every live allocation, listed or not */
        fprintf(out, "mulch leak summary: %zu allocation%s\n", list.total, list.total == 1 ? "" : "s");
        size_t listed_bytes = 0;
        for (size_t i = 0; i < list.count;) {
            size_t j = i, bytes = 0;
            while (j < list.count && site_order(&list.items[j].site, &list.items[i].site) == 0)
                bytes += list.items[j++].size;
            site_format(&list.items[i].site, pool->track_leaks != 0, where, sizeof where);
            fprintf(out, "  %zu allocation%s, %zu bytes at %s\n", j - i, j - i == 1 ? "" : "s", bytes, where);
            listed_bytes += bytes;
            i = j;
        }
        size_t unlisted = list.total - list.count;
        if (unlisted)
            fprintf(out, "  %zu allocation%s, %zu bytes at sites not recorded (out of memory)\n", unlisted,
                    unlisted == 1 ? "" : "s", list.total_bytes - listed_bytes);
    }
    if (list.truncated)
        fprintf(out, "mulch leak report truncated: out of memory after %zu of %zu allocations\n", list.count,
                list.total);
    size_t count = list.total;
    if (list.items) os_unmap(list.items, (list.capacity * sizeof(leak_t) + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1));
    return count;
}
