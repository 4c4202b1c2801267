/* object.c — the heap object kinds (one gc_type_t each, with its trace
 * function), their constructors, and the symbol intern table.
 *
 * Constructors take the values they store either as plain arguments, which
 * they root themselves across the allocation, or as slots the caller has
 * already rooted (`value *`), read only after the allocation: a slot still
 * holds the current address of its referent after a collection, a copy in
 * a C local would not once objects move.
 *
 * The intern table is a vector (open addressing, power-of-two size, NULL =
 * empty) held in the global root LISP_G_SYMTAB; symbols are never freed.
 */
#include "lisp.h"

#include <string.h>

const char *const lisp_kind_names[LISP_KINDS] = {
    "?", "pair", "symbol", "string", "vector", "procedure", "primitive", "frame", "port", "ephemeron"
};

static void pair_trace(void *obj, gc_tracer_t *tracer)
{
    struct lisp_pair *p = obj;
    gc_trace_slot(tracer, &p->car);
    gc_trace_slot(tracer, &p->cdr);
}

static void symbol_trace(void *obj, gc_tracer_t *tracer)
{
    struct lisp_symbol *s = obj;
    gc_trace_slot(tracer, &s->name);
    gc_trace_slot(tracer, &s->global);
}

static void vector_trace(void *obj, gc_tracer_t *tracer)
{
    struct lisp_vector *v = obj;
    gc_trace_range(tracer, v->items, (size_t)(v->hdr >> 8));
}

static void closure_trace(void *obj, gc_tracer_t *tracer)
{
    struct lisp_closure *c = obj;
    gc_trace_slot(tracer, &c->params);
    gc_trace_slot(tracer, &c->body);
    gc_trace_slot(tracer, &c->env);
    gc_trace_slot(tracer, &c->name);
}

static void frame_trace(void *obj, gc_tracer_t *tracer)
{
    struct lisp_frame *f = obj;
    gc_trace_slot(tracer, &f->parent);
    gc_trace_slot(tracer, &f->names);
    gc_trace_slot(tracer, &f->extras);
    gc_trace_range(tracer, f->values, (size_t)(f->hdr >> 8));
}

/* Strings, primitives (a C function and a C string) and ports (an rc
 * object, which never moves) hold no GC references: no trace function. */
static const gc_type_t pair_type      = { "lisp-pair", pair_trace, NULL };
static const gc_type_t symbol_type    = { "lisp-symbol", symbol_trace, NULL };
static const gc_type_t string_type    = { "lisp-string", NULL, NULL };
static const gc_type_t vector_type    = { "lisp-vector", vector_trace, NULL };
static const gc_type_t closure_type   = { "lisp-closure", closure_trace, NULL };
static const gc_type_t primitive_type = { "lisp-primitive", NULL, NULL };
static const gc_type_t frame_type     = { "lisp-frame", frame_trace, NULL };
const gc_type_t lisp_port_type        = { "lisp-port", NULL, NULL };

value lisp_cons_slots(value *car, value *cdr)
{
    struct lisp_pair *p = lisp_alloc(&pair_type, sizeof *p);
    p->hdr = LISP_HDR(LISP_PAIR, 0);
    lisp_write_init(p, &p->car, *car);
    lisp_write_init(p, &p->cdr, *cdr);
    return p;
}

value lisp_cons(value car, value cdr)
{
    LISP_ROOT(car);
    LISP_ROOT(cdr);
    value p = lisp_cons_slots(&car, &cdr);
    lisp_unroot(2);
    return p;
}

value lisp_make_string_uninit(size_t len)
{
    if (len > ((size_t)1 << 40)) lisp_error("string too long");
    struct lisp_string *s = lisp_alloc(&string_type, sizeof *s + len + 1);
    s->hdr = LISP_HDR(LISP_STRING, len);
    return s;   /* zeroed: already NUL-terminated */
}

/* `text` must not point into a GC object (it could move): see substring. */
value lisp_make_string(const char *text, size_t len)
{
    struct lisp_string *s = lisp_make_string_uninit(len);
    memcpy(s->text, text, len);
    return s;
}

value lisp_make_vector(size_t len, value fill)
{
    if (len > ((size_t)1 << 32)) lisp_error("make-vector: length %zu too large", len);
    LISP_ROOT(fill);
    struct lisp_vector *v = lisp_alloc(&vector_type, sizeof *v + (len ? len : 1) * sizeof(value));
    v->hdr = LISP_HDR(LISP_VECTOR, len);
    for (size_t i = 0; i < len; i++) lisp_write_init(v, &v->items[i], fill);
    lisp_unroot(1);
    return v;
}

value lisp_make_closure(value *params, value *body, value *env)
{
    struct lisp_closure *c = lisp_alloc(&closure_type, sizeof *c);
    intptr_t required = 0;
    value p = *params;
    for (; lisp_is(p, LISP_PAIR); p = LISP_CDR(p)) {
        lisp_mark_bound_locally(LISP_CAR(p));   /* a symbol, or named let's (var init) */
        required++;
    }
    if (p != LISP_NIL && !lisp_is(p, LISP_SYMBOL)) lisp_error("lambda: bad parameter list");
    lisp_mark_bound_locally(p);                 /* the rest parameter */
    /* the count has 16 bits in the header, next to the rest flag */
    if (required > 0xffff) lisp_error("lambda: more than 65535 parameters");
    c->hdr = LISP_HDR(LISP_CLOSURE, (uintptr_t)required | ((uintptr_t)(p != LISP_NIL) << 16));
    lisp_write_init(c, &c->params, *params);
    lisp_write_init(c, &c->body, *body);
    lisp_write_init(c, &c->env, *env);
    c->name = LISP_FALSE;
    return c;
}

value lisp_make_frame(size_t count, value *parent, value *names)
{
    struct lisp_frame *f = lisp_alloc(&frame_type, sizeof *f + (count ? count : 1) * sizeof(value));
    f->hdr = LISP_HDR(LISP_FRAME, count);
    lisp_write_init(f, &f->parent, *parent);
    lisp_write_init(f, &f->names, *names);
    f->extras = LISP_NIL;
    return f;   /* values are NULL until the caller fills them */
}

value lisp_list_from_stack(value *first, int n, value tail)
{
    LISP_ROOT(tail);
    for (int i = n - 1; i >= 0; i--) tail = lisp_cons_slots(&first[i], &tail);
    lisp_unroot(1);
    return tail;
}

/* set-cdr! can make a list circular, so a plain walk could loop forever:
 * a second cursor moves at half speed (Floyd) and meets the first one
 * only on a cycle, which is then not a proper list either. */
intptr_t lisp_list_length(value list)
{
    intptr_t n = 0;
    value slow = list;
    while (lisp_is(list, LISP_PAIR)) {
        list = LISP_CDR(list);
        n++;
        if ((n & 1) == 0) {
            slow = LISP_CDR(slow);
            if (slow == list) return -1;
        }
    }
    return list == LISP_NIL ? n : -1;
}

/* ---- symbols -------------------------------------------------------------- */

static size_t symtab_count;

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603u;   /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static size_t symtab_slot(value table, const char *name, size_t len)
{
    size_t mask = lisp_aux(table) - 1;
    for (size_t i = name_hash(name, len) & mask;; i = (i + 1) & mask) {
        value sym = LISP_VECTOR_OF(table)->items[i];
        if (sym == NULL) return i;
        struct lisp_string *s = LISP_STRING_OF(LISP_SYMBOL_OF(sym)->name);
        if (lisp_aux(s) == len && memcmp(s->text, name, len) == 0) return i;
    }
}

static void symtab_grow(void)
{
    size_t old_size = lisp_aux(lisp_globals[LISP_G_SYMTAB]);
    value bigger = lisp_make_vector(old_size * 2, NULL);
    value old = lisp_globals[LISP_G_SYMTAB];   /* read after the allocation */
    for (size_t i = 0; i < old_size; i++) {
        value sym = LISP_VECTOR_OF(old)->items[i];
        if (sym == NULL) continue;
        struct lisp_string *s = LISP_STRING_OF(LISP_SYMBOL_OF(sym)->name);
        size_t slot = symtab_slot(bigger, s->text, lisp_aux(s));
        lisp_write(bigger, &LISP_VECTOR_OF(bigger)->items[slot], sym);
    }
    lisp_globals[LISP_G_SYMTAB] = bigger;
}

/* `name` must not point into a GC object. */
value lisp_intern_len(const char *name, size_t len)
{
    value table = lisp_globals[LISP_G_SYMTAB];
    size_t slot = symtab_slot(table, name, len);
    value found = LISP_VECTOR_OF(table)->items[slot];
    if (found != NULL) return found;
    if (2 * (symtab_count + 1) > lisp_aux(table)) {
        symtab_grow();
        return lisp_intern_len(name, len);
    }
    value str = lisp_make_string(name, len);
    LISP_ROOT(str);
    struct lisp_symbol *sym = lisp_alloc(&symbol_type, sizeof *sym);
    sym->hdr = LISP_HDR(LISP_SYMBOL, LISP_SF_NONE);
    lisp_write(sym, &sym->name, str);
    sym->global = LISP_UNBOUND;
    sym->bound_locally = 0;
    lisp_unroot(1);
    table = lisp_globals[LISP_G_SYMTAB];   /* no growth since the lookup: same slot */
    lisp_write(table, &LISP_VECTOR_OF(table)->items[slot], sym);
    symtab_count++;
    return sym;
}

value lisp_intern(const char *name) { return lisp_intern_len(name, strlen(name)); }

void lisp_define_primitive(const char *name, lisp_prim_fn fn, int min, int max)
{
    value sym = lisp_intern(name);
    LISP_ROOT(sym);
    struct lisp_primitive *p = lisp_alloc(&primitive_type, sizeof *p);
    p->hdr = LISP_HDR(LISP_PRIMITIVE, (uintptr_t)min | ((uintptr_t)(max < 0 ? 255 : max) << 8));
    p->fn = fn;
    p->name = name;
    lisp_write(sym, &LISP_SYMBOL_OF(sym)->global, p);
    lisp_unroot(1);
}

void lisp_objects_init(void)
{
    static const struct { const char *name; enum lisp_special form; } specials[] = {
        { "quote", LISP_SF_QUOTE }, { "if", LISP_SF_IF }, { "define", LISP_SF_DEFINE },
        { "set!", LISP_SF_SET }, { "lambda", LISP_SF_LAMBDA }, { "begin", LISP_SF_BEGIN },
        { "let", LISP_SF_LET }, { "let*", LISP_SF_LETSTAR }, { "letrec", LISP_SF_LETREC },
        { "cond", LISP_SF_COND }, { "and", LISP_SF_AND }, { "or", LISP_SF_OR },
        { "when", LISP_SF_WHEN }, { "unless", LISP_SF_UNLESS }, { "else", LISP_SF_ELSE },
    };
    symtab_count = 0;   /* a new heap (fuzz/lisp_fuzz.c makes one per input): a new table */
    lisp_globals[LISP_G_SYMTAB] = lisp_make_vector(256, NULL);
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
        value sym = lisp_intern(specials[i].name);
        LISP_SYMBOL_OF(sym)->hdr = LISP_HDR(LISP_SYMBOL, specials[i].form);
    }
}
