/* bridge_cycles.c — gc_report_bridge_cycles' search, world stopped, spans
 * swept, heap->lock held.
 *
 * A cycle through the bridge runs handle → its GC object → (GC
 * references) → an object owning, through gc_own_rc, another handle →
 * ... → the first handle. Only a handle that some GC object owns can be
 * on one (the walk enters a handle through an ownership pair), so those
 * are the candidates: a program's ordinary handles, held by C code, cost
 * a sort and a lookup each, not a marking. The search marks the heap once
 * per candidate, from its GC object alone (handles are not followed: they
 * are not GC references), which gives the direct edges candidate →
 * candidate; the cycles are then the strongly connected components of
 * that graph (Tarjan's algorithm, iterative) with more than one member or
 * an edge to themselves. A walk follows what a collection would: GC
 * references, and the value of an ephemeron once the walk reached both
 * the ephemeron and its key. Time: one marking per candidate (with, in a
 * heap that has ephemerons, a pass over them per marking) plus the edges;
 * memory: a few words per handle and per ownership pair, and the edges.
 * (It marked the heap once per handle and kept an n × n table: a program
 * with 100,000 handles asked for 10 GB, and got "out of memory", and no
 * cycle reported, or took hours.)
 *
 * The report is text in memory (gc_report_text_t), not writes to the
 * caller's stream: a stream whose write function called gc_alloc,
 * gc_collect, rc_release or gc_report_bridge_cycles deadlocked on the
 * stopped world and the heap's lock. runtime/bridge.c writes the text out
 * once the world runs again.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "gc_internal.h"
#include "gc_mark.h"
#include "gc_weak.h"

#define NONE SIZE_MAX

typedef struct {
    const void *rc_obj; /* the handle as an rc object: its slot's address */
    size_t handle;      /* its index in heap->handle_slots */
} handle_key_t;

static int handle_key_compare(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const handle_key_t *)a)->rc_obj, y = (uintptr_t)((const handle_key_t *)b)->rc_obj;
    return (x > y) - (x < y);
}

static size_t handle_lookup(const handle_key_t *keys, size_t n, const void *rc_obj) {
    size_t low = 0, high = n;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if ((uintptr_t)keys[mid].rc_obj < (uintptr_t)rc_obj) low = mid + 1;
        else high = mid;
    }
    return low < n && keys[low].rc_obj == rc_obj ? keys[low].handle : NONE;
}

static void marks_clear(gc_heap_t *heap) {
    for (size_t s = 0; s < heap->spans.count; s++) {
        block_t *b = heap->spans.items[s];
        memset(gc_span_mark_bits(b), 0, gc_span_words(b) * sizeof(uint64_t));
    }
}

/* The search's arrays, one mapping. Candidates are numbered in handle
 * order, so that cycles and their members are reported in that order. */
typedef struct {
    size_t handles, pairs, candidates;
    handle_key_t *keys;       /* [handles], sorted by rc_obj */
    size_t *candidate_of;     /* [handles]: candidate number, or NONE */
    size_t *pair_target;      /* [pairs]: candidate the pair's rc object is, or NONE */
    size_t *handle_of;        /* [candidates]: handle index */
    size_t *edge_start;       /* [candidates + 1]: edges of c are edge_start[c] .. [c + 1] */
    size_t *seen;             /* [candidates]: last source + 1 an edge to it was added for */
    size_t *order, *low;      /* [candidates]: Tarjan's visit number (NONE: unvisited), low link */
    size_t *component;        /* [candidates]: component number */
    size_t *stack;            /* [candidates]: Tarjan's stack of visited nodes */
    size_t *call_node, *call_edge; /* [candidates]: the depth-first walk */
    size_t *members;          /* [candidates]: candidates grouped by component, each group in order */
    size_t *member_start;     /* [candidates + 1]: component k's members are members[member_start[k]...] */
    unsigned char *cyclic;    /* [candidates]: per component */
    void *map;
    size_t bytes;
} search_t;

static bool search_map(search_t *s) {
    size_t n = s->handles, p = s->pairs, m = n < p ? n : p; /* at most that many candidates */
    size_t words = 2 * n + n + p + 12 * (m + 1);
    s->bytes = words * sizeof(size_t) + m + 1;
    s->map = os_map(s->bytes);
    if (s->map == NULL) return false;
    size_t *w = s->map;
    s->keys = (handle_key_t *)w, w += 2 * n;
    s->candidate_of = w, w += n;
    s->pair_target = w, w += p;
    size_t **arrays[] = { &s->handle_of, &s->edge_start, &s->seen, &s->order, &s->low, &s->component,
                          &s->stack, &s->call_node, &s->call_edge, &s->members, &s->member_start };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) *arrays[i] = w, w += m + 1;
    s->cyclic = (unsigned char *)w;
    return true;
}

/* Candidates and, for each ownership pair, the candidate it leads to. */
static void search_candidates(gc_heap_t *heap, search_t *s) {
    for (size_t h = 0; h < s->handles; h++) {
        s->keys[h] = (handle_key_t){ heap->handle_slots.items[h], h };
        s->candidate_of[h] = NONE;
    }
    qsort(s->keys, s->handles, sizeof *s->keys, handle_key_compare);
    for (size_t i = 0; i < s->pairs; i++) {
        /* (a pair into a destroyed pool names a freed cell, which a handle
         * may occupy now: not an edge) */
        size_t h = gc_bridge_pair_live(heap, i) ? handle_lookup(s->keys, s->handles, heap->owned_rcs.items[i]) : NONE;
        s->pair_target[i] = h;
        if (h != NONE) s->candidate_of[h] = 0;
    }
    s->candidates = 0;
    for (size_t h = 0; h < s->handles; h++) {
        if (s->candidate_of[h] == NONE) continue;
        s->handle_of[s->candidates] = h;
        s->candidate_of[h] = s->candidates++;
    }
    for (size_t i = 0; i < s->pairs; i++)
        if (s->pair_target[i] != NONE) s->pair_target[i] = s->candidate_of[s->pair_target[i]];
}

/* Candidate c's edges: the candidates owned by objects its GC object
 * reaches. False when the edge list cannot grow. */
static bool search_edges_from(gc_heap_t *heap, search_t *s, size_t c, gc_vector_t *edges) {
    gc_tracer_t *tracer = gc_heap_tracer_open(heap, "gc_report_bridge_cycles");
    gc_trace_slot(tracer, heap->handle_slots.items[s->handle_of[c]]);
    gc_mark_drain(tracer);
    /* then the values of the ephemerons this walk reached whose keys it
     * reached too, as a collection marks them: a value that owns the
     * handle closes a cycle as surely as a field does (they were not
     * followed, and such a cycle went unreported) */
    gc_ephemerons_converge(tracer);
    gc_tracer_free(tracer);
    bool ok = true;
    for (size_t i = 0; i < s->pairs && ok; i++) {
        size_t target = s->pair_target[i];
        if (target == NONE || s->seen[target] == c + 1 || !gc_is_marked(heap, heap->owned_objects.items[i]))
            continue;
        s->seen[target] = c + 1;
        ok = gc_vector_push(edges, (void *)(uintptr_t)target);
    }
    marks_clear(heap);
    return ok;
}

/* Tarjan's strongly connected components, with an explicit stack of
 * (node, next edge) instead of recursion; returns the number of
 * components. */
static size_t search_components(search_t *s, const gc_vector_t *edges) {
    size_t visits = 0, depth = 0, calls = 0, components = 0;
    for (size_t c = 0; c < s->candidates; c++) s->order[c] = NONE;
    for (size_t root = 0; root < s->candidates; root++) {
        if (s->order[root] != NONE) continue;
        s->order[root] = s->low[root] = visits++;
        s->stack[depth++] = root;
        s->component[root] = NONE; /* NONE while on the stack */
        s->call_node[calls] = root, s->call_edge[calls] = s->edge_start[root], calls++;
        while (calls > 0) {
            size_t v = s->call_node[calls - 1], e = s->call_edge[calls - 1];
            if (e < s->edge_start[v + 1]) {
                s->call_edge[calls - 1]++;
                size_t w = (uintptr_t)edges->items[e];
                if (s->order[w] == NONE) {
                    s->order[w] = s->low[w] = visits++;
                    s->stack[depth++] = w;
                    s->component[w] = NONE;
                    s->call_node[calls] = w, s->call_edge[calls] = s->edge_start[w], calls++;
                } else if (s->component[w] == NONE && s->order[w] < s->low[v]) {
                    s->low[v] = s->order[w];
                }
                continue;
            }
            calls--;
            if (s->low[v] == s->order[v]) {
                size_t w;
                do {
                    w = s->stack[--depth];
                    s->component[w] = components;
                } while (w != v);
                components++;
            }
            if (calls > 0) {
                size_t u = s->call_node[calls - 1];
                if (s->low[v] < s->low[u]) s->low[u] = s->low[v];
            }
        }
    }
    return components;
}

/* Groups the candidates by component (each group in candidate order) and
 * tells which components are cycles: more than one member, or an edge
 * from the member to itself. */
static void search_group(search_t *s, const gc_vector_t *edges, size_t components) {
    size_t *count = s->member_start; /* counted in place, then turned into starts */
    for (size_t k = 0; k <= components; k++) count[k] = 0, s->cyclic[k] = 0;
    for (size_t c = 0; c < s->candidates; c++) count[s->component[c] + 1]++;
    for (size_t k = 0; k < components; k++) count[k + 1] += count[k];
    for (size_t k = 0; k < components; k++) s->seen[k] = count[k]; /* fill positions */
    for (size_t c = 0; c < s->candidates; c++) s->members[s->seen[s->component[c]]++] = c;
    for (size_t c = 0; c < s->candidates; c++) {
        size_t k = s->component[c];
        if (s->member_start[k + 1] - s->member_start[k] > 1) s->cyclic[k] = 1;
        for (size_t e = s->edge_start[c]; e < s->edge_start[c + 1]; e++)
            if ((uintptr_t)edges->items[e] == c) s->cyclic[k] = 1;
    }
}

/* Appends printf-style text; on a mapping that cannot grow, marks the
 * text failed and drops the rest. */
static void text_printf(gc_report_text_t *text, const char *format, ...) {
    for (int attempt = 0; attempt < 2 && !text->failed; attempt++) {
        size_t room = text->capacity - text->length;
        va_list args;
        va_start(args, format);
        int n = vsnprintf(room ? text->bytes + text->length : NULL, room, format, args);
        va_end(args);
        if (n < 0) break;
        if ((size_t)n < room) {
            text->length += (size_t)n;
            return;
        }
        size_t capacity = text->capacity ? text->capacity : 4096;
        while (capacity - text->length <= (size_t)n) capacity *= 2;
        char *bytes = text->bytes ? os_remap(text->bytes, text->capacity, capacity) : os_map(capacity);
        if (bytes == NULL) break;
        text->bytes = bytes;
        text->capacity = capacity;
    }
    text->failed = true; /* (the rest is dropped: the writer says so) */
}

void gc_report_text_free(gc_report_text_t *text) {
    if (text->bytes) os_unmap(text->bytes, text->capacity);
    *text = (gc_report_text_t){ 0 };
}

static size_t search_report(gc_heap_t *heap, search_t *s, gc_report_text_t *out) {
    size_t cycles = 0;
    for (size_t c = 0; c < s->candidates; c++) {
        size_t k = s->component[c];
        if (!s->cyclic[k] || s->members[s->member_start[k]] != c) continue; /* reported at its first member */
        cycles++;
        text_printf(out, "mulch bridge cycle %zu: never collected; handles (each roots a GC object that owns, "
                         "through gc_own_rc, the next):",
                    cycles);
        for (size_t i = s->member_start[k]; i < s->member_start[k + 1]; i++) {
            gc_handle_payload_t *payload = heap->handle_slots.items[s->handle_of[s->members[i]]];
            const gc_type_t *type = payload->obj ? gc_object_type(payload->obj) : NULL;
            text_printf(out, " %p -> %p (%s)", (void *)payload, payload->obj, type ? type->name : "?");
        }
        text_printf(out, "\n");
    }
    return cycles;
}

size_t gc_bridge_cycles_locked(gc_heap_t *heap, gc_report_text_t *out) {
    search_t s = { .handles = heap->handle_slots.count, .pairs = heap->owned_rcs.count };
    if (s.handles == 0 || s.pairs == 0) return 0;
    if (!search_map(&s)) {
        text_printf(out, "mulch bridge cycles: out of memory for %zu handles\n", s.handles);
        return 0;
    }
    search_candidates(heap, &s);
    gc_vector_t edges = { 0 };
    bool ok = true;
    gc_marks_forget(heap); /* generational mode's sticky marks would stop the walks */
    for (size_t c = 0; c < s.candidates; c++) s.seen[c] = 0;
    for (size_t c = 0; c < s.candidates && ok; c++) {
        s.edge_start[c] = edges.count;
        ok = search_edges_from(heap, &s, c, &edges);
    }
    s.edge_start[s.candidates] = edges.count;
    size_t cycles = 0;
    if (ok) {
        search_group(&s, &edges, search_components(&s, &edges));
        cycles = search_report(heap, &s, out);
    } else {
        text_printf(out, "mulch bridge cycles: out of memory for the edges between %zu handles\n", s.candidates);
    }
    gc_vector_free(&edges);
    os_unmap(s.map, s.bytes);
    return cycles;
}
