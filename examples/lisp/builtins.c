/* builtins.c — primitives on numbers, lists, equality and control (apply,
 * map, for-each, error, try) and the collector's own (gc, gc-stats,
 * gc-census, gc-pauses, gc-verify).
 *
 * A primitive gets its arguments as args[0..argc) on the value stack:
 * rooted slots. One that allocates reads its arguments from args after the
 * allocation, never from a copy taken before, and keeps intermediate values
 * on the value stack too (list results are built from stacked elements).
 * Arity is checked by the caller (the min/max given at registration).
 */
#include "lisp.h"

#include <inttypes.h>
#include <string.h>

intptr_t lisp_fixnum_arg(value v, const char *who)
{
    if (!lisp_is_fixnum(v)) lisp_type_error(who, "integer", v);
    return lisp_fixnum_value(v);
}

static value checked_fixnum(intptr_t n, const char *who)
{
    if (n > LISP_FIXNUM_MAX || n < LISP_FIXNUM_MIN) lisp_error("%s: integer overflow", who);
    return lisp_fixnum(n);
}

/* ---- numbers ----------------------------------------------------------------- */

/* The fixnum range is checked on the result, not on each partial sum or
 * product: (+ max 1 -5) fits although max + 1 does not. Partial results
 * are intptr_t, twice the fixnum range; overflowing that is an error too. */
static value prim_add(value *args, int argc)
{
    intptr_t sum = 0;
    for (int i = 0; i < argc; i++) {
        if (__builtin_add_overflow(sum, lisp_fixnum_arg(args[i], "+"), &sum)) lisp_error("+: integer overflow");
    }
    return checked_fixnum(sum, "+");
}

static value prim_sub(value *args, int argc)
{
    intptr_t acc = lisp_fixnum_arg(args[0], "-");
    if (argc == 1) return checked_fixnum(-acc, "-");
    for (int i = 1; i < argc; i++) {
        if (__builtin_sub_overflow(acc, lisp_fixnum_arg(args[i], "-"), &acc)) lisp_error("-: integer overflow");
    }
    return checked_fixnum(acc, "-");
}

static value prim_mul(value *args, int argc)
{
    intptr_t acc = 1;
    for (int i = 0; i < argc; i++) {
        if (__builtin_mul_overflow(acc, lisp_fixnum_arg(args[i], "*"), &acc)) lisp_error("*: integer overflow");
    }
    return checked_fixnum(acc, "*");
}

static intptr_t divisor_arg(value v, const char *who)
{
    intptr_t d = lisp_fixnum_arg(v, who);
    if (d == 0) lisp_error("%s: division by zero", who);
    return d;
}

static value prim_quotient(value *args, int argc)
{
    (void)argc;
    intptr_t d = divisor_arg(args[1], "quotient");
    return checked_fixnum(lisp_fixnum_arg(args[0], "quotient") / d, "quotient");
}

static value prim_remainder(value *args, int argc)
{
    (void)argc;
    intptr_t d = divisor_arg(args[1], "remainder");
    return lisp_fixnum(lisp_fixnum_arg(args[0], "remainder") % d);
}

static value prim_modulo(value *args, int argc)
{
    (void)argc;
    intptr_t d = divisor_arg(args[1], "modulo");
    intptr_t m = lisp_fixnum_arg(args[0], "modulo") % d;
    if (m != 0 && ((m < 0) != (d < 0))) m += d;
    return lisp_fixnum(m);
}

enum { CMP_EQ, CMP_LT, CMP_GT, CMP_LE, CMP_GE };
static const char *const compare_names[] = { "=", "<", ">", "<=", ">=" };

static value compare(value *args, int argc, int op)
{
    for (int i = 0; i + 1 < argc; i++) {
        intptr_t a = lisp_fixnum_arg(args[i], compare_names[op]);
        intptr_t b = lisp_fixnum_arg(args[i + 1], compare_names[op]);
        int ok = op == CMP_EQ ? a == b : op == CMP_LT ? a < b : op == CMP_GT ? a > b
               : op == CMP_LE ? a <= b : a >= b;
        if (!ok) {
            /* (the arguments after the answer are checked too) */
            for (int j = i + 2; j < argc; j++) lisp_fixnum_arg(args[j], compare_names[op]);
            return LISP_FALSE;
        }
    }
    if (argc == 1) lisp_fixnum_arg(args[0], compare_names[op]);
    return LISP_TRUE;
}

static value prim_num_eq(value *args, int argc) { return compare(args, argc, CMP_EQ); }
static value prim_lt(value *args, int argc) { return compare(args, argc, CMP_LT); }
static value prim_gt(value *args, int argc) { return compare(args, argc, CMP_GT); }
static value prim_le(value *args, int argc) { return compare(args, argc, CMP_LE); }
static value prim_ge(value *args, int argc) { return compare(args, argc, CMP_GE); }

static value prim_abs(value *args, int argc)
{
    (void)argc;
    intptr_t n = lisp_fixnum_arg(args[0], "abs");
    return checked_fixnum(n < 0 ? -n : n, "abs");
}

static value min_max(value *args, int argc, int want_max)
{
    intptr_t best = lisp_fixnum_arg(args[0], want_max ? "max" : "min");
    for (int i = 1; i < argc; i++) {
        intptr_t n = lisp_fixnum_arg(args[i], want_max ? "max" : "min");
        if (want_max ? n > best : n < best) best = n;
    }
    return lisp_fixnum(best);
}
static value prim_min(value *args, int argc) { return min_max(args, argc, 0); }
static value prim_max(value *args, int argc) { return min_max(args, argc, 1); }

static value prim_zero(value *args, int argc) { (void)argc; return lisp_bool(lisp_fixnum_arg(args[0], "zero?") == 0); }
static value prim_even(value *args, int argc) { (void)argc; return lisp_bool(lisp_fixnum_arg(args[0], "even?") % 2 == 0); }
static value prim_odd(value *args, int argc) { (void)argc; return lisp_bool(lisp_fixnum_arg(args[0], "odd?") % 2 != 0); }
static value prim_positive(value *args, int argc) { (void)argc; return lisp_bool(lisp_fixnum_arg(args[0], "positive?") > 0); }
static value prim_negative(value *args, int argc) { (void)argc; return lisp_bool(lisp_fixnum_arg(args[0], "negative?") < 0); }

/* ---- predicates and equality --------------------------------------------------- */

/* (equal? is lisp_equal, equal.c) */

static value prim_eq(value *args, int argc) { (void)argc; return lisp_bool(args[0] == args[1]); }
static value prim_equal(value *args, int argc) { (void)argc; return lisp_bool(lisp_equal(args[0], args[1])); }
static value prim_not(value *args, int argc) { (void)argc; return lisp_bool(args[0] == LISP_FALSE); }
static value prim_null(value *args, int argc) { (void)argc; return lisp_bool(args[0] == LISP_NIL); }
static value prim_pairp(value *args, int argc) { (void)argc; return lisp_bool(lisp_is(args[0], LISP_PAIR)); }
static value prim_listp(value *args, int argc) { (void)argc; return lisp_bool(lisp_list_length(args[0]) >= 0); }
static value prim_numberp(value *args, int argc) { (void)argc; return lisp_bool(lisp_is_fixnum(args[0])); }
static value prim_symbolp(value *args, int argc) { (void)argc; return lisp_bool(lisp_is(args[0], LISP_SYMBOL)); }
static value prim_booleanp(value *args, int argc) { (void)argc; return lisp_bool(args[0] == LISP_TRUE || args[0] == LISP_FALSE); }
static value prim_procedurep(value *args, int argc)
{
    (void)argc;
    return lisp_bool(lisp_is(args[0], LISP_CLOSURE) || lisp_is(args[0], LISP_PRIMITIVE));
}

/* ---- lists ------------------------------------------------------------------------- */

static value pair_arg(value v, const char *who)
{
    if (!lisp_is(v, LISP_PAIR)) lisp_type_error(who, "pair", v);
    return v;
}

static value prim_cons(value *args, int argc) { (void)argc; return lisp_cons_slots(&args[0], &args[1]); }
static value prim_car(value *args, int argc) { (void)argc; return LISP_CAR(pair_arg(args[0], "car")); }
static value prim_cdr(value *args, int argc) { (void)argc; return LISP_CDR(pair_arg(args[0], "cdr")); }
static value prim_cadr(value *args, int argc) { (void)argc; return LISP_CAR(pair_arg(LISP_CDR(pair_arg(args[0], "cadr")), "cadr")); }
static value prim_cddr(value *args, int argc) { (void)argc; return LISP_CDR(pair_arg(LISP_CDR(pair_arg(args[0], "cddr")), "cddr")); }
static value prim_caar(value *args, int argc) { (void)argc; return LISP_CAR(pair_arg(LISP_CAR(pair_arg(args[0], "caar")), "caar")); }
static value prim_cdar(value *args, int argc) { (void)argc; return LISP_CDR(pair_arg(LISP_CAR(pair_arg(args[0], "cdar")), "cdar")); }
static value prim_caddr(value *args, int argc)
{
    (void)argc;
    return LISP_CAR(pair_arg(LISP_CDR(pair_arg(LISP_CDR(pair_arg(args[0], "caddr")), "caddr")), "caddr"));
}

static value prim_set_car(value *args, int argc)
{
    (void)argc;
    lisp_write(args[0], &LISP_CAR(pair_arg(args[0], "set-car!")), args[1]);
    return LISP_UNSPEC;
}

static value prim_set_cdr(value *args, int argc)
{
    (void)argc;
    lisp_write(args[0], &LISP_CDR(pair_arg(args[0], "set-cdr!")), args[1]);
    return LISP_UNSPEC;
}

static value prim_list(value *args, int argc) { return lisp_list_from_stack(args, argc, LISP_NIL); }

static intptr_t list_arg_length(value v, const char *who)
{
    intptr_t n = lisp_list_length(v);
    if (n < 0) lisp_type_error(who, "list", v);
    return n;
}

static value prim_length(value *args, int argc) { (void)argc; return lisp_fixnum(list_arg_length(args[0], "length")); }

/* Pushes the elements of a proper list; returns how many. */
int lisp_push_elements(value list, const char *who)
{
    intptr_t n = list_arg_length(list, who);
    if (lisp_stack_end - lisp_sp < n) lisp_stack_overflow();
    for (; list != LISP_NIL; list = LISP_CDR(list)) *lisp_sp++ = LISP_CAR(list);
    return (int)n;
}

static value prim_append(value *args, int argc)
{
    if (argc == 0) return LISP_NIL;
    value *first = lisp_sp;
    for (int i = 0; i + 1 < argc; i++) lisp_push_elements(args[i], "append");
    return lisp_list_from_stack(first, (int)(lisp_sp - first), args[argc - 1]);
}

static value prim_reverse(value *args, int argc)
{
    (void)argc;
    list_arg_length(args[0], "reverse");
    lisp_push(LISP_NIL);      /* the result so far */
    lisp_push(args[0]);       /* the cursor */
    value *acc = lisp_sp - 2, *cursor = lisp_sp - 1;
    for (; *cursor != LISP_NIL; *cursor = LISP_CDR(*cursor)) {
        lisp_push(LISP_CAR(*cursor));
        *acc = lisp_cons_slots(&lisp_sp[-1], acc);
        lisp_sp--;
    }
    return *acc;
}

static intptr_t list_index_arg(value v, const char *who)
{
    intptr_t k = lisp_fixnum_arg(v, who);
    if (k < 0) lisp_error("%s: index %" PRIdPTR " out of range", who, k);
    return k;
}

/* The list after k cdrs. A circular list has every index, but walking
 * 10^12 links would not end in practice: once a half-speed cursor shows
 * the walk is on the cycle, k is reduced modulo the cycle's length. */
static value list_skip(value list, intptr_t k, const char *who)
{
    value slow = list;
    for (intptr_t i = 1; k > 0; i++, k--) {
        list = LISP_CDR(pair_arg(list, who));
        if ((i & 1) == 0) {
            slow = LISP_CDR(slow);
            if (slow == list) {
                intptr_t cycle = 1;
                for (value p = LISP_CDR(list); p != list; p = LISP_CDR(p)) cycle++;
                k = (k - 1) % cycle + 1;   /* (this step's k-- still follows) */
            }
        }
    }
    return list;
}

static value prim_list_tail(value *args, int argc)
{
    (void)argc;
    return list_skip(args[0], list_index_arg(args[1], "list-tail"), "list-tail");
}

static value prim_list_ref(value *args, int argc)
{
    (void)argc;
    value list = list_skip(args[0], list_index_arg(args[1], "list-ref"), "list-ref");
    return LISP_CAR(pair_arg(list, "list-ref"));
}

/* The next link of a search through `*l`, an error once the list turns out
 * circular (without the item, the search would never end): `*slow` follows
 * at half speed, as in lisp_list_length; `*step` counts links. */
static value next_link(value l, value *slow, intptr_t *step, const char *who)
{
    l = LISP_CDR(l);
    if ((++*step & 1) == 0) {
        *slow = LISP_CDR(*slow);
        if (*slow == l) lisp_error("%s: circular list", who);
    }
    return l;
}

static value member_generic(value *args, int use_equal, const char *who)
{
    value slow = args[1];
    intptr_t step = 0;
    for (value l = args[1]; lisp_is(l, LISP_PAIR); l = next_link(l, &slow, &step, who)) {
        if (use_equal ? lisp_equal(args[0], LISP_CAR(l)) : args[0] == LISP_CAR(l)) return l;
    }
    return LISP_FALSE;
}
static value prim_memq(value *args, int argc) { (void)argc; return member_generic(args, 0, "memq"); }
static value prim_member(value *args, int argc) { (void)argc; return member_generic(args, 1, "member"); }

static value assoc_generic(value *args, int use_equal, const char *who)
{
    value slow = args[1];
    intptr_t step = 0;
    for (value l = args[1]; lisp_is(l, LISP_PAIR); l = next_link(l, &slow, &step, who)) {
        value entry = LISP_CAR(l);
        if (lisp_is(entry, LISP_PAIR)
            && (use_equal ? lisp_equal(args[0], LISP_CAR(entry)) : args[0] == LISP_CAR(entry))) {
            return entry;
        }
    }
    return LISP_FALSE;
}
static value prim_assq(value *args, int argc) { (void)argc; return assoc_generic(args, 0, "assq"); }
static value prim_assoc(value *args, int argc) { (void)argc; return assoc_generic(args, 1, "assoc"); }

/* ---- control --------------------------------------------------------------------------- */

/* A procedure argument that a primitive calls through lisp_apply: checked
 * first, so that the error names the primitive (lisp_apply's would name
 * apply). */
static void procedure_arg(value v, const char *who)
{
    if (!lisp_is(v, LISP_PRIMITIVE) && !lisp_is(v, LISP_CLOSURE)) lisp_type_error(who, "procedure", v);
}

/* What a call to apply does when it is not a call in tail position of
 * lisp_eval (from map, for-each, a primitive): eval.c's call path spreads
 * the arguments itself and loops, so that apply is a tail call. */
value lisp_prim_apply(value *args, int argc)
{
    value *first = lisp_sp;
    for (int i = 1; i + 1 < argc; i++) lisp_push(args[i]);
    lisp_push_elements(args[argc - 1], "apply");
    return lisp_apply(args[0], (int)(lisp_sp - first));
}

/* (map f list) and (for-each f list): the cursor, a second cursor at half
 * its speed, and the results live on the value stack, above the arguments
 * (rooted: a collection may move the pairs). f may mutate the list
 * (set-cdr!): each step checks that the cursor is still a pair, and the
 * slow cursor meets the cursor once f has made the rest circular (the walk
 * never ended before). R7RS makes such mutation an error: a mutation that
 * moves the slow cursor onto the cursor is reported as one too. f is
 * checked first (procedure_arg), even for an empty list. */
static value map_generic(value *args, int collect, const char *who)
{
    procedure_arg(args[0], who);
    list_arg_length(args[1], who);
    value *cursor = lisp_sp;
    lisp_push(args[1]);
    lisp_push(args[1]); /* cursor[1]: the slow cursor */
    for (uintptr_t step = 1; *cursor != LISP_NIL; step++) {
        if (!lisp_is(*cursor, LISP_PAIR)) lisp_error("%s: the list became improper during the call", who);
        lisp_push(LISP_CAR(*cursor));
        value result = lisp_apply(args[0], 1);
        *cursor = LISP_CDR(*cursor);
        if ((step & 1) == 0) {
            if (!lisp_is(cursor[1], LISP_PAIR)) {
                cursor[1] = *cursor; /* f cut the list behind the walk: start over here */
            } else {
                cursor[1] = LISP_CDR(cursor[1]);
                if (cursor[1] == *cursor && lisp_is(*cursor, LISP_PAIR))
                    lisp_error("%s: the list became circular during the call", who);
            }
        }
        if (collect) lisp_push(result);
    }
    if (!collect) return LISP_UNSPEC;
    return lisp_list_from_stack(cursor + 2, (int)(lisp_sp - cursor - 2), LISP_NIL);
}
static value prim_map(value *args, int argc) { (void)argc; return map_generic(args, 1, "map"); }
static value prim_for_each(value *args, int argc) { (void)argc; return map_generic(args, 0, "for-each"); }

/* (error message irritant...): the message displayed, the irritants
 * written, each into the rest of the buffer (lisp_print_to: a NUL byte
 * the message displays is \x0; there; displayed into a C string, "m\x0;n"
 * was cut to "m"). */
static value prim_error(value *args, int argc)
{
    char text[400];
    size_t len = strlen(lisp_print_to(text, sizeof text, args[0], 0));
    for (int i = 1; i < argc && len + 2 < sizeof text; i++) {
        text[len++] = ' ';
        len += strlen(lisp_print_to(text + len, sizeof text - len, args[i], 1));
    }
    lisp_error("%s", text);
}

/* (try thunk handler): the thunk's value, or, when it raises an error, the
 * handler's value on the message "line N: text". The handler is called by
 * the try form: an error in that call (the handler is no procedure, takes
 * no argument, is a primitive that fails) reports the try form's line, not
 * the line of the thunk's error, which the longjmp left current. Both are
 * checked to be procedures first: a thunk that is none was caught as an
 * "apply:" error and a handler that is none went unnoticed until needed. */
static value prim_try(value *args, int argc)
{
    (void)argc;
    procedure_arg(args[0], "try");
    procedure_arg(args[1], "try");
    struct lisp_catch c;
    int line = lisp_current_line;   /* not modified after the setjmp */
    if (setjmp(c.jump) == 0) {
        lisp_catch_enter(&c);
        value result = lisp_apply(args[0], 0);
        lisp_catch_leave(&c);
        return result;
    }
    lisp_catch_landed(&c);   /* roots and value stack as they were at the setjmp */
    lisp_current_line = line;
    char text[600];
    int len = snprintf(text, sizeof text, "line %d: %s", c.line, c.message);
    value message = lisp_make_string(text, (size_t)(len < (int)sizeof text ? len : (int)sizeof text - 1));
    lisp_push(message);
    return lisp_apply(args[1], 1);
}

/* ---- the collector ---------------------------------------------------------------------------- */

static value prim_gc(value *args, int argc)
{
    (void)args;
    (void)argc;
    lisp_backend_collect();
    return LISP_UNSPEC;
}

/* Pushes the pair (name . value) on the value stack, for an alist built
 * from stacked entries; counts above the fixnum range wrap. */
static void push_entry(const char *name, value v)
{
    lisp_push(v);
    lisp_push(lisp_intern(name));   /* (may collect: v is rooted on the stack) */
    value entry = lisp_cons_slots(&lisp_sp[-1], &lisp_sp[-2]);
    lisp_sp -= 2;
    lisp_push(entry);
}

static void push_count_entry(const char *name, uint64_t n)
{
    push_entry(name, lisp_fixnum((intptr_t)(n & (uint64_t)LISP_FIXNUM_MAX)));
}

static void push_symbol_entry(const char *name, const char *symbol)
{
    push_entry(name, lisp_intern(symbol));
}

/* An alist ((collections . n) (bytes-allocated . n) ...), taken before it
 * is built. */
static value prim_gc_stats(value *args, int argc)
{
    (void)args;
    (void)argc;
    gc_stats_t st;
    lisp_backend_stats(&st);
    const struct { const char *name; uint64_t n; } fields[] = {
        { "collections", st.collections }, { "bytes-allocated", st.bytes_allocated },
        { "heap-bytes", st.heap_bytes }, { "live-bytes", st.live_bytes },
        { "pause-ns-total", st.pause_ns_total }, { "pause-ns-max", st.pause_ns_max },
        { "bytes-moved", st.bytes_moved }, { "objects-finalized", st.objects_finalized },
        { "heap-bytes-peak", st.heap_bytes_peak }, { "collections-minor", st.collections_minor },
        { "mark-ns-total", st.mark_ns_total }, { "sweep-ns-total", st.sweep_ns_total },
    };
    value *first = lisp_sp;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) push_count_entry(fields[i].name, fields[i].n);
    push_symbol_entry("backend", lisp_backend_name);
    return lisp_list_from_stack(first, (int)(lisp_sp - first), LISP_NIL);
}

static const char *reason_symbol(int reason)
{
    switch (reason) {
    case GC_REASON_EXPLICIT: return "gc";
    case GC_REASON_HEAP_LIMIT: return "heap-limit";
    default: return "allocation";
    }
}

/* (gc-pauses): what the collector reported of each collection, summed
 * (mulch's collection callback): ((minor . n) (full . n) (by-allocation . n)
 * (by-gc . n) (by-heap-limit . n) (pause-ns-total . n) (longest-pause-ns . n)
 * (longest-pause-collection . n) (longest-pause-reason . allocation|gc|heap-limit)
 * (longest-pause-kind . minor|full) (most-markers . n)), reason and kind
 * `none` before the first collection; () on the Boehm
 * backend. Taken before the list is built. */
static value prim_gc_pauses(value *args, int argc)
{
    (void)args;
    (void)argc;
    lisp_pause_log_t log;
    if (!lisp_backend_pause_log(&log)) return LISP_NIL;
    value *first = lisp_sp;
    push_count_entry("minor", log.minor);
    push_count_entry("full", log.full);
    push_count_entry("by-allocation", log.by_reason[GC_REASON_ALLOCATION]);
    push_count_entry("by-gc", log.by_reason[GC_REASON_EXPLICIT]);
    push_count_entry("by-heap-limit", log.by_reason[GC_REASON_HEAP_LIMIT]);
    push_count_entry("pause-ns-total", log.pause_ns_total);
    push_count_entry("longest-pause-ns", log.longest_ns);
    push_count_entry("longest-pause-collection", log.longest_collection);
    int collected = log.longest_collection != 0;
    push_symbol_entry("longest-pause-reason", collected ? reason_symbol(log.longest_reason) : "none");
    push_symbol_entry("longest-pause-kind", !collected ? "none" : log.longest_minor ? "minor" : "full");
    push_count_entry("most-markers", log.most_markers);
    return lisp_list_from_stack(first, (int)(lisp_sp - first), LISP_NIL);
}

/* (gc-verify): ((problems . n) (untraced . n)), what gc_verify and
 * gc_verify_untraced found in the heap (each one also reported on
 * stderr); () on the Boehm backend. An interpreter whose trace functions
 * name every reference field gets zeros. */
static value prim_gc_verify(value *args, int argc)
{
    (void)args;
    (void)argc;
    size_t problems, untraced;
    if (!lisp_backend_verify(&problems, &untraced)) return LISP_NIL;
    value *first = lisp_sp;
    push_count_entry("problems", problems);
    push_count_entry("untraced", untraced);
    return lisp_list_from_stack(first, (int)(lisp_sp - first), LISP_NIL);
}

/* (gc-census): ((kind count bytes) ...) for the live heap, kinds being
 * the type names (lisp-pair, lisp-string...); () on the Boehm backend.
 * bytes are what gc_heap_walk gives, each object's usable size (its cell
 * less its 8-byte header, which objects over 256 bytes have: the intern
 * table, a long vector or string), while gc-stats' live-bytes counts
 * whole cells: the census total is below it by 8 bytes per such object
 * (8 at start: the intern table's vector).
 * The rows are counted first and the list built after the walk: nothing
 * may be allocated while it runs. */
static value prim_gc_census(value *args, int argc)
{
    (void)args;
    (void)argc;
    lisp_census_row_t rows[32];
    size_t n = lisp_backend_census(rows, sizeof rows / sizeof rows[0]);
    value *first = lisp_sp;
    for (size_t i = 0; i < n; i++) {
        lisp_push(lisp_intern(rows[i].name));
        lisp_push(lisp_fixnum((intptr_t)(rows[i].count & (uint64_t)LISP_FIXNUM_MAX)));
        lisp_push(lisp_fixnum((intptr_t)(rows[i].bytes & (uint64_t)LISP_FIXNUM_MAX)));
        value row = lisp_list_from_stack(&lisp_sp[-3], 3, LISP_NIL);
        lisp_sp -= 3;
        lisp_push(row);
    }
    return lisp_list_from_stack(first, (int)(lisp_sp - first), LISP_NIL);
}

void lisp_builtins_init(void)
{
    static const struct { const char *name; lisp_prim_fn fn; int min, max; } table[] = {
        { "+", prim_add, 0, -1 }, { "-", prim_sub, 1, -1 }, { "*", prim_mul, 0, -1 },
        { "quotient", prim_quotient, 2, 2 }, { "remainder", prim_remainder, 2, 2 },
        { "modulo", prim_modulo, 2, 2 }, { "=", prim_num_eq, 1, -1 }, { "<", prim_lt, 1, -1 },
        { ">", prim_gt, 1, -1 }, { "<=", prim_le, 1, -1 }, { ">=", prim_ge, 1, -1 },
        { "abs", prim_abs, 1, 1 }, { "min", prim_min, 1, -1 }, { "max", prim_max, 1, -1 },
        { "zero?", prim_zero, 1, 1 }, { "even?", prim_even, 1, 1 }, { "odd?", prim_odd, 1, 1 },
        { "positive?", prim_positive, 1, 1 }, { "negative?", prim_negative, 1, 1 },
        { "eq?", prim_eq, 2, 2 }, { "eqv?", prim_eq, 2, 2 }, { "equal?", prim_equal, 2, 2 },
        { "not", prim_not, 1, 1 }, { "null?", prim_null, 1, 1 }, { "pair?", prim_pairp, 1, 1 },
        { "list?", prim_listp, 1, 1 }, { "number?", prim_numberp, 1, 1 },
        { "integer?", prim_numberp, 1, 1 }, { "symbol?", prim_symbolp, 1, 1 },
        { "boolean?", prim_booleanp, 1, 1 }, { "procedure?", prim_procedurep, 1, 1 },
        { "cons", prim_cons, 2, 2 }, { "car", prim_car, 1, 1 }, { "cdr", prim_cdr, 1, 1 },
        { "cadr", prim_cadr, 1, 1 }, { "cddr", prim_cddr, 1, 1 }, { "caar", prim_caar, 1, 1 },
        { "cdar", prim_cdar, 1, 1 }, { "caddr", prim_caddr, 1, 1 },
        { "set-car!", prim_set_car, 2, 2 }, { "set-cdr!", prim_set_cdr, 2, 2 },
        { "list", prim_list, 0, -1 }, { "length", prim_length, 1, 1 },
        { "append", prim_append, 0, -1 }, { "reverse", prim_reverse, 1, 1 },
        { "list-tail", prim_list_tail, 2, 2 }, { "list-ref", prim_list_ref, 2, 2 },
        { "memq", prim_memq, 2, 2 }, { "memv", prim_memq, 2, 2 }, { "member", prim_member, 2, 2 },
        { "assq", prim_assq, 2, 2 }, { "assv", prim_assq, 2, 2 }, { "assoc", prim_assoc, 2, 2 },
        { "apply", lisp_prim_apply, 2, -1 }, { "map", prim_map, 2, 2 }, { "for-each", prim_for_each, 2, 2 },
        { "error", prim_error, 1, -1 }, { "try", prim_try, 2, 2 },
        { "gc", prim_gc, 0, 0 }, { "gc-stats", prim_gc_stats, 0, 0 }, { "gc-census", prim_gc_census, 0, 0 },
        { "gc-verify", prim_gc_verify, 0, 0 },
        { "gc-pauses", prim_gc_pauses, 0, 0 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        lisp_define_primitive(table[i].name, table[i].fn, table[i].min, table[i].max);
    }
}
