/* eval.c — the evaluator: special forms, procedure calls with proper tail
 * calls, lexical environments, and error unwinding.
 *
 * Environments are frames (object.c): `names` is the parameter list of the
 * closure (or the binding list of a let), `values[i]` the value of the i-th
 * name, `extras` an alist of internal defines; the global environment is
 * the `global` field of each symbol. Special forms are recognised by the
 * symbol's form number (so they cannot be shadowed by variables).
 *
 * Rooting: each lisp_eval activation keeps its state in four slots on the
 * value stack, fp[0..3] (the expression, the environment, two scratch
 * values), and call arguments are evaluated onto the value stack above
 * them. The value stack is a root, so nothing here pushes on the mulch
 * root stack: a root costs one store. Every value needed after a call that
 * may allocate (lisp_eval, any constructor) is read again from its slot.
 * Tail positions (if branches, the last expression of a body, cond/and/or/
 * when/unless, closure calls) loop instead of recursing.
 *
 * Errors: lisp_error longjmps to the innermost lisp_catch, which restores
 * the mulch root stack depth, the value stack pointer and the eval depth.
 * Between the error and the restore nothing allocates.
 */
#include "lisp.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for non-tail recursion over lists of tens of thousands; main
 * runs the interpreter on a thread with a large C stack for it. ThreadSanitizer
 * keeps a shadow call stack of about 64K frames and crashes past it. */
#if defined(__SANITIZE_THREAD__)
#define LISP_MAX_EVAL_DEPTH 10000
#else
#define LISP_MAX_EVAL_DEPTH 100000
#endif

value lisp_globals[LISP_G_COUNT];
value *lisp_stack, *lisp_sp, *lisp_stack_end;
struct lisp_catch *lisp_catcher;
int lisp_current_line;
int lisp_eval_depth;

/* ---- errors ---------------------------------------------------------------- */

void lisp_catch_enter(struct lisp_catch *c)
{
    c->outer = lisp_catcher;
    c->root_depth = lisp_root_depth();
    c->sp = lisp_sp;
    c->eval_depth = lisp_eval_depth;
    lisp_catcher = c;
}

void lisp_catch_leave(struct lisp_catch *c) { lisp_catcher = c->outer; }

void lisp_catch_landed(struct lisp_catch *c)
{
    lisp_catcher = c->outer;
    lisp_root_pop_to(c->root_depth);   /* before anything can allocate */
    lisp_sp = c->sp;
    lisp_eval_depth = c->eval_depth;
}

_Noreturn void lisp_error(const char *fmt, ...)
{
    struct lisp_catch *c = lisp_catcher;
    char local[512];
    char *buf = c ? c->message : local;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof local, fmt, ap);
    va_end(ap);
    if (c == NULL) {
        fprintf(stderr, "line %d: error: %s\n", lisp_current_line, buf);
        exit(70);
    }
    c->line = lisp_current_line;
    longjmp(c->jump, 1);
}

_Noreturn void lisp_type_error(const char *who, const char *expected, value got)
{
    char shown[128];
    lisp_error("%s: expected %s, got %s", who, expected, lisp_print_to(shown, sizeof shown, got, 1));
}

/* "<who>unbound variable: <name>", the name as write prints it: a name
 * with a NUL byte (|a\x0;b|, string->symbol) printed raw used to end the
 * message at the NUL. */
static _Noreturn void unbound_variable(const char *who, value sym)
{
    char shown[400];
    lisp_error("%sunbound variable: %s", who, lisp_print_to(shown, sizeof shown, sym, 1));
}

_Noreturn void lisp_out_of_memory(void) { lisp_error("out of memory"); }

void lisp_stack_overflow(void) { lisp_error("value stack overflow (recursion too deep)"); }

/* ---- environments ------------------------------------------------------------ */

/* The slot holding `sym` in frame `f`, or NULL; *owner is the object that
 * contains the slot (for the write barrier). Valid until the next
 * allocation. */
static value *lookup_in_frame(value sym, struct lisp_frame *f, value *owner)
{
    size_t count = lisp_aux(f);
    value names = f->names;
    /* A frame's names are all symbols (a closure's parameters, maybe with
     * a rest symbol at the end; a named let's name) or all (var init)
     * bindings (let, let*, letrec, a named let's loop): one kind test per
     * frame, not per name. */
    if (count != 0 && lisp_is(names, LISP_PAIR) && lisp_is(LISP_CAR(names), LISP_PAIR)) {
        for (size_t i = 0; i < count; i++, names = LISP_CDR(names)) {
            if (LISP_CAR(LISP_CAR(names)) == sym) {
                *owner = f;
                return &f->values[i];
            }
        }
    } else {
        for (size_t i = 0; i < count; i++) {
            value n = names;   /* a rest parameter, unless a pair */
            if (lisp_is(names, LISP_PAIR)) {
                n = LISP_CAR(names);
                names = LISP_CDR(names);
            }
            if (n == sym) {
                *owner = f;
                return &f->values[i];
            }
        }
    }
    for (value e = f->extras; e != LISP_NIL; e = LISP_CDR(e)) {
        if (LISP_CAR(LISP_CAR(e)) == sym) {
            *owner = LISP_CAR(e);
            return &LISP_CDR(LISP_CAR(e));
        }
    }
    return NULL;
}

/* The slot of `sym` in `env`, the global one when no frame binds it. A
 * symbol no frame can bind skips the frames (sort.scm spent a third of its
 * time walking them for globals such as car and null?). */
static value *lookup(value sym, value env, value *owner)
{
    if (!LISP_SYMBOL_OF(sym)->bound_locally) env = LISP_NIL;
    for (; env != LISP_NIL; env = LISP_FRAME_OF(env)->parent) {
        value *slot = lookup_in_frame(sym, LISP_FRAME_OF(env), owner);
        if (slot != NULL) return slot;
    }
    *owner = sym;
    return &LISP_SYMBOL_OF(sym)->global;
}

static value variable_value(value sym, value env)
{
    value owner;
    value v = *lookup(sym, env, &owner);
    if (v == LISP_UNBOUND || v == NULL) {
        unbound_variable("", sym);
    }
    return v;
}

/* (define sym value) in the innermost frame of *env; all three are rooted
 * slots. */
static void define_variable(value *sym, value *val, value *env)
{
    if (*env == LISP_NIL) {
        lisp_write(*sym, &LISP_SYMBOL_OF(*sym)->global, *val);
        return;
    }
    value owner;
    value *slot = lookup_in_frame(*sym, LISP_FRAME_OF(*env), &owner);
    if (slot != NULL) {
        lisp_write(owner, slot, *val);
        return;
    }
    lisp_mark_bound_locally(*sym);
    value binding = lisp_cons_slots(sym, val);
    LISP_ROOT(binding);
    value extras = LISP_FRAME_OF(*env)->extras;   /* read after the allocation */
    LISP_ROOT(extras);
    value cell = lisp_cons_slots(&binding, &extras);
    lisp_write(*env, &LISP_FRAME_OF(*env)->extras, cell);
    lisp_unroot(2);
}

/* ---- calls -------------------------------------------------------------------- */

static _Noreturn void bad_syntax(const char *form) { lisp_error("%s: bad syntax", form); }

/* The car of a form's part, or a syntax error instead of a crash. */
static inline value part(value v, const char *form)
{
    if (!lisp_is(v, LISP_PAIR)) bad_syntax(form);
    return LISP_CAR(v);
}

static inline value rest_of(value v, const char *form)
{
    if (!lisp_is(v, LISP_PAIR)) bad_syntax(form);
    return LISP_CDR(v);
}

/* A lambda's (or define's) parameters: symbols, then NIL or a rest symbol.
 * lisp_make_closure takes pairs too, for named let, whose parameters are
 * its (var init) bindings; those are checked by check_binding. */
/* The variables one frame binds are distinct (R7RS): with one bound twice
 * the lookup finds the first and the second is unreachable. `names` is a
 * list of symbols, or of (var init) bindings when `bindings`; `rest` is a
 * rest parameter or NIL. Short lists (nearly all) are compared pairwise;
 * long ones (a lambda may take 65535 parameters) are sorted. */
static value variable_of(value names, int bindings)
{
    return bindings ? LISP_CAR(LISP_CAR(names)) : LISP_CAR(names);
}

_Noreturn static void bound_twice(value name, const char *form)
{
    char shown[128];
    lisp_error("%s: %s bound twice", form, lisp_print_to(shown, sizeof shown, name, 1));
}

static int compare_addresses(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

static void check_distinct(value names, value rest, int bindings, const char *form)
{
    enum { PAIRWISE_MAX = 16 };
    size_t n = rest != LISP_NIL;
    for (value v = names; lisp_is(v, LISP_PAIR) && n <= PAIRWISE_MAX; v = LISP_CDR(v)) n++;
    if (n <= PAIRWISE_MAX) {
        for (value v = names; lisp_is(v, LISP_PAIR); v = LISP_CDR(v)) {
            value name = variable_of(v, bindings);
            for (value w = LISP_CDR(v); lisp_is(w, LISP_PAIR); w = LISP_CDR(w))
                if (variable_of(w, bindings) == name) bound_twice(name, form);
            if (name == rest) bound_twice(name, form);
        }
        return;
    }
    n = rest != LISP_NIL;
    for (value v = names; lisp_is(v, LISP_PAIR); v = LISP_CDR(v)) n++;
    uintptr_t *seen = malloc(n * sizeof *seen);
    if (!seen) lisp_error("%s: out of memory checking %zu variables", form, n);
    size_t i = 0;
    for (value v = names; lisp_is(v, LISP_PAIR); v = LISP_CDR(v)) seen[i++] = (uintptr_t)variable_of(v, bindings);
    if (rest != LISP_NIL) seen[i++] = (uintptr_t)rest;
    qsort(seen, n, sizeof *seen, compare_addresses);
    value repeated = NULL;
    for (i = 1; i < n && !repeated; i++)
        if (seen[i] == seen[i - 1]) repeated = (value)seen[i];
    free(seen);
    if (repeated) bound_twice(repeated, form);
}

static void check_parameters(value params, const char *form)
{
    value first = params;
    for (; lisp_is(params, LISP_PAIR); params = LISP_CDR(params))
        if (!lisp_is(LISP_CAR(params), LISP_SYMBOL)) lisp_error("%s: parameter is not a symbol", form);
    if (params != LISP_NIL && !lisp_is(params, LISP_SYMBOL)) lisp_error("%s: bad parameter list", form);
    check_distinct(first, params, 0, form);
}

/* A let binding (var init): returns it; anything else ((var), (var init
 * extra)) is bad syntax. */
static inline value check_binding(value binding, const char *form)
{
    if (!lisp_is(binding, LISP_PAIR) || !lisp_is(LISP_CAR(binding), LISP_SYMBOL)
        || !lisp_is(LISP_CDR(binding), LISP_PAIR) || LISP_CDR(LISP_CDR(binding)) != LISP_NIL)
        bad_syntax(form);
    return binding;
}

/* The last part of a form that takes exactly one more: (quote d),
 * (set! v e), (define v e), if's alternative. An extra part is bad
 * syntax, not ignored. */
static inline value last_part(value v, const char *form)
{
    if (!lisp_is(v, LISP_PAIR) || LISP_CDR(v) != LISP_NIL) bad_syntax(form);
    return LISP_CAR(v);
}

/* Every binding of a let, let*, letrec or named let, before its frame or
 * closure exists: each is a (var init) pair (lookup_in_frame reads a
 * frame of bindings without testing each), and its variable is marked as
 * bound locally (letrec's inits see them all). */
static void check_bindings(value bindings, int distinct, const char *form)
{
    value first = bindings;
    for (; lisp_is(bindings, LISP_PAIR); bindings = LISP_CDR(bindings))
        lisp_mark_bound_locally(check_binding(LISP_CAR(bindings), form));
    if (distinct) check_distinct(first, LISP_NIL, 1, form);
}

/* For an error message: a closure's name as write prints it (printed raw,
 * a NUL byte in it, |g\x0;h|, ended the message there). The text lives in
 * a static buffer until the next call. */
static const char *procedure_name(value proc)
{
    if (lisp_is(proc, LISP_PRIMITIVE)) return ((struct lisp_primitive *)proc)->name;
    value name = LISP_CLOSURE_OF(proc)->name;
    if (!lisp_is(name, LISP_SYMBOL)) return "lambda";
    static char shown[300];
    return lisp_print_to(shown, sizeof shown, name, 1);
}

static void check_primitive_arity(value proc, int argc)
{
    uintptr_t aux = lisp_aux(proc);
    int min = (int)(aux & 0xff), max = (int)(aux >> 8);
    if (argc < min || (max != 255 && argc > max)) {
        lisp_error("%s: wrong number of arguments (%d)", procedure_name(proc), argc);
    }
}

/* A new frame binding the closure in the rooted slot *closure to the argc
 * arguments at argbase on the value stack (the extra arguments of a rest
 * parameter become a list). Pushes on the value stack; the caller pops. */
static value bind_arguments(value *closure, value *argbase, int argc)
{
    uintptr_t aux = lisp_aux(*closure);
    int required = (int)(aux & 0xffff), rest = (int)(aux >> 16);
    if (argc < required || (argc > required && !rest)) {
        lisp_error("%s: expected %s%d argument%s, got %d", procedure_name(*closure),
                   rest ? "at least " : "", required, required == 1 ? "" : "s", argc);
    }
    if (rest) {
        value list = lisp_list_from_stack(argbase + required, argc - required, LISP_NIL);
        lisp_push(list);
    }
    value *rest_slot = lisp_sp - 1;
    lisp_push(LISP_CLOSURE_OF(*closure)->env);
    lisp_push(LISP_CLOSURE_OF(*closure)->params);
    value frame = lisp_make_frame((size_t)(required + rest), &lisp_sp[-2], &lisp_sp[-1]);
    /* (the frame is the last allocation: initializing stores) */
    for (int i = 0; i < required; i++) {
        lisp_write_init(frame, &LISP_FRAME_OF(frame)->values[i], argbase[i]);
    }
    if (rest) lisp_write_init(frame, &LISP_FRAME_OF(frame)->values[required], *rest_slot);
    return frame;
}

/* A pair in argument (or test) position: a call of a global primitive
 * whose arguments are all variables or constants, (car tree) or
 * (- depth 1), runs here without an evaluator activation; anything else
 * goes to lisp_eval. Nothing allocates before the primitive runs (variable
 * lookups do not), so the form needs no rooting; the arguments sit on the
 * value stack as lisp_eval would put them, and errors report the form's
 * line as lisp_eval does. */
static value eval_pair_operand(value x, value env)
{
    value op = LISP_CAR(x);
    if (!lisp_is(op, LISP_SYMBOL) || lisp_aux(op) != LISP_SF_NONE || LISP_SYMBOL_OF(op)->bound_locally)
        return lisp_eval(x, env);
    value proc = LISP_SYMBOL_OF(op)->global;
    if (!lisp_is(proc, LISP_PRIMITIVE) || ((struct lisp_primitive *)proc)->fn == lisp_prim_apply) return lisp_eval(x, env);
    value args = LISP_CDR(x);
    /* (a first pass over the arguments' shapes: one loop that looked them
     * up and gave up at a pair wasted the lookups of every non-leaf call,
     * 0.4 % more instructions on binary_trees and 2 % on strings) */
    for (value a = args; a != LISP_NIL; a = LISP_CDR(a)) {
        if (!lisp_is(a, LISP_PAIR) || lisp_is(LISP_CAR(a), LISP_PAIR)) return lisp_eval(x, env);
    }
    int caller_line = lisp_current_line;
    int line = (int)lisp_aux(x);
    if (line != 0) lisp_current_line = line;
    value *argbase = lisp_sp;
    for (; args != LISP_NIL; args = LISP_CDR(args)) {
        value arg = LISP_CAR(args);
        if (lisp_is(arg, LISP_SYMBOL)) arg = variable_value(arg, env);
        lisp_push(arg);
    }
    int argc = (int)(lisp_sp - argbase);
    check_primitive_arity(proc, argc);
    value result = ((struct lisp_primitive *)proc)->fn(argbase, argc);
    lisp_sp = argbase;
    lisp_current_line = caller_line;
    return result;
}

static inline value eval_operand(value x, value env)
{
    if (lisp_is_object(x)) {
        unsigned kind = lisp_kind_of(x);
        if (kind == LISP_SYMBOL) return variable_value(x, env);
        if (kind == LISP_PAIR) return eval_pair_operand(x, env);
    }
    return x;
}

/* Evaluates the non-empty expression list `body` in `env`. */
static value eval_sequence(value body, value env)
{
    value *fp = lisp_sp;
    lisp_push(body);
    lisp_push(env);
    if (!lisp_is(fp[0], LISP_PAIR)) bad_syntax("body");
    while (LISP_CDR(fp[0]) != LISP_NIL) {
        lisp_eval(LISP_CAR(fp[0]), fp[1]);
        fp[0] = LISP_CDR(fp[0]);
        if (!lisp_is(fp[0], LISP_PAIR)) bad_syntax("body");
    }
    value result = lisp_eval(LISP_CAR(fp[0]), fp[1]);
    lisp_sp = fp;
    return result;
}

value lisp_apply(value proc, int argc)
{
    value *argbase = lisp_sp - argc;
    value result;
    if (lisp_is(proc, LISP_PRIMITIVE)) {
        check_primitive_arity(proc, argc);
        result = ((struct lisp_primitive *)proc)->fn(argbase, argc);
    } else if (lisp_is(proc, LISP_CLOSURE)) {
        lisp_push(proc);
        value *closure = lisp_sp - 1;
        value frame = bind_arguments(closure, argbase, argc);
        result = eval_sequence(LISP_CLOSURE_OF(*closure)->body, frame);
    } else {
        lisp_type_error("apply", "procedure", proc);
    }
    lisp_sp = argbase;
    return result;
}

/* ---- the evaluator ---------------------------------------------------------------- */

#define X   fp[0]   /* the expression being evaluated */
#define ENV fp[1]   /* its environment */
#define T0  fp[2]   /* scratch: a body cursor, a procedure */
#define T1  fp[3]   /* scratch: a frame, an argument cursor */

value lisp_eval(value x, value env)
{
    value *fp = lisp_sp;
    if (lisp_stack_end - fp < 4) lisp_stack_overflow();
    X = x;
    ENV = env;
    T0 = LISP_NIL;
    T1 = LISP_NIL;
    lisp_sp = fp + 4;
    if (++lisp_eval_depth > LISP_MAX_EVAL_DEPTH) lisp_error("recursion too deep");
    /* Restored on return: a nested evaluation (an argument, a test) moves
     * lisp_current_line to the lines of the code it runs, and an error
     * after it in this form (an unbound variable, bad syntax) must report
     * this form's line, not the last line the nested call ran. */
    int caller_line = lisp_current_line;
    value result, owner;
    value *argbase;
    int line;

loop:
#ifdef LISP_EVAL_HOOK
    LISP_EVAL_HOOK();
#endif
    x = X;
    if (!lisp_is_object(x)) {
        result = x;
        goto done;
    }
    if (lisp_kind_of(x) != LISP_PAIR) {
        result = lisp_kind_of(x) == LISP_SYMBOL ? variable_value(x, ENV) : x;
        goto done;
    }
    line = (int)lisp_aux(x);
    if (line != 0) lisp_current_line = line;
    value op = LISP_CAR(x);
    if (lisp_is(op, LISP_SYMBOL) && lisp_aux(op) != LISP_SF_NONE) {
        switch ((enum lisp_special)lisp_aux(op)) {
        case LISP_SF_QUOTE:
            result = last_part(LISP_CDR(x), "quote");
            goto done;
        case LISP_SF_IF: {
            /* the shape first: (if t a b extra) is bad syntax before t runs */
            value branches = rest_of(rest_of(X, "if"), "if");
            if (rest_of(branches, "if") != LISP_NIL) last_part(LISP_CDR(branches), "if");
            value test = eval_operand(LISP_CAR(LISP_CDR(X)), ENV);
            branches = LISP_CDR(LISP_CDR(X));              /* (X may have moved) */
            value alternative = LISP_CDR(branches);          /* () or (else-expr) */
            if (test != LISP_FALSE) {
                X = LISP_CAR(branches);
            } else if (alternative != LISP_NIL) {
                X = LISP_CAR(alternative);
            } else {
                result = LISP_UNSPEC;
                goto done;
            }
            goto loop;
        }
        case LISP_SF_DEFINE: {
            value target = part(LISP_CDR(x), "define");
            if (lisp_is(target, LISP_PAIR)) {             /* (define (name . params) body...) */
                T0 = LISP_CAR(target);
                T1 = LISP_CDR(target);
                check_parameters(T1, "define");
                lisp_push(rest_of(LISP_CDR(x), "define"));
                if (lisp_sp[-1] == LISP_NIL) bad_syntax("define");
                T1 = lisp_make_closure(&T1, &lisp_sp[-1], &ENV);
                lisp_write(T1, &LISP_CLOSURE_OF(T1)->name, T0);
            } else {
                T0 = target;
                T1 = lisp_eval(last_part(rest_of(LISP_CDR(x), "define"), "define"), ENV);
                if (lisp_is(T1, LISP_CLOSURE) && LISP_CLOSURE_OF(T1)->name == LISP_FALSE) {
                    lisp_write(T1, &LISP_CLOSURE_OF(T1)->name, T0);
                }
            }
            if (!lisp_is(T0, LISP_SYMBOL)) bad_syntax("define");
            define_variable(&T0, &T1, &ENV);
            result = LISP_UNSPEC;
            goto done;
        }
        case LISP_SF_SET: {
            T0 = part(LISP_CDR(x), "set!");
            if (!lisp_is(T0, LISP_SYMBOL)) bad_syntax("set!");
            T1 = lisp_eval(last_part(rest_of(LISP_CDR(x), "set!"), "set!"), ENV);
            value *slot = lookup(T0, ENV, &owner);
            if (*slot == LISP_UNBOUND) {
                unbound_variable("set!: ", T0);
            }
            lisp_write(owner, slot, T1);
            result = LISP_UNSPEC;
            goto done;
        }
        case LISP_SF_LAMBDA:
            lisp_push(part(LISP_CDR(x), "lambda"));
            check_parameters(lisp_sp[-1], "lambda");
            lisp_push(LISP_CDR(LISP_CDR(x)));
            if (lisp_sp[-1] == LISP_NIL) bad_syntax("lambda");
            result = lisp_make_closure(&lisp_sp[-2], &lisp_sp[-1], &ENV);
            goto done;
        case LISP_SF_BEGIN:
            T0 = LISP_CDR(x);
            if (T0 == LISP_NIL) {
                result = LISP_UNSPEC;
                goto done;
            }
            goto sequence;
        case LISP_SF_LET: {
            value bindings = part(LISP_CDR(x), "let");
            if (lisp_is(bindings, LISP_SYMBOL)) goto named_let;
            intptr_t n = lisp_list_length(bindings);
            if (n < 0 || rest_of(LISP_CDR(x), "let") == LISP_NIL) bad_syntax("let");
            T0 = bindings;
            check_bindings(bindings, 1, "let");
            T1 = lisp_make_frame((size_t)n, &ENV, &T0);
            for (intptr_t i = 0; T0 != LISP_NIL; i++, T0 = LISP_CDR(T0)) {
                value v = lisp_eval(part(rest_of(LISP_CAR(T0), "let"), "let"), ENV); /* checked: check_bindings */
                lisp_write(T1, &LISP_FRAME_OF(T1)->values[i], v);
            }
            ENV = T1;
            T0 = LISP_CDR(LISP_CDR(X));
            goto sequence;
        }
        case LISP_SF_LETSTAR: {
            value bindings = part(LISP_CDR(x), "let*");
            intptr_t n = lisp_list_length(bindings);
            if (n < 0 || rest_of(LISP_CDR(x), "let*") == LISP_NIL) bad_syntax("let*");
            check_bindings(bindings, 0, "let*");
            /* One frame per binding, each inside the one before (R7RS: nested
             * lets): an init, and a closure an init makes, sees the bindings
             * before it and never a later one; a name bound twice is the
             * later binding in the body. The frame's names are the bindings
             * from this one on: it shows the first only (count 1). */
            T0 = bindings;
            if (n == 0) ENV = lisp_make_frame(0, &ENV, &T0);   /* the body's scope (internal defines) */
            for (; T0 != LISP_NIL; T0 = LISP_CDR(T0)) {
                T1 = lisp_eval(part(rest_of(LISP_CAR(T0), "let*"), "let*"), ENV); /* checked: check_bindings */
                value frame = lisp_make_frame(1, &ENV, &T0);
                lisp_write_init(frame, &LISP_FRAME_OF(frame)->values[0], T1);   /* the last allocation */
                ENV = frame;
            }
            T0 = LISP_CDR(LISP_CDR(X));
            goto sequence;
        }
        case LISP_SF_LETREC: {
            value bindings = part(LISP_CDR(x), "letrec");
            intptr_t n = lisp_list_length(bindings);
            if (n < 0 || rest_of(LISP_CDR(x), "letrec") == LISP_NIL) bad_syntax("letrec");
            T0 = bindings;
            check_bindings(bindings, 1, "letrec");
            T1 = lisp_make_frame((size_t)n, &ENV, &T0);
            for (intptr_t i = 0; i < n; i++) LISP_FRAME_OF(T1)->values[i] = LISP_UNSPEC;
            for (intptr_t i = 0; T0 != LISP_NIL; i++, T0 = LISP_CDR(T0)) {
                value v = lisp_eval(part(rest_of(LISP_CAR(T0), "letrec"), "letrec"), T1); /* checked: check_bindings */
                lisp_write(T1, &LISP_FRAME_OF(T1)->values[i], v);
            }
            ENV = T1;
            T0 = LISP_CDR(LISP_CDR(X));
            goto sequence;
        }
        case LISP_SF_COND:
            for (T0 = LISP_CDR(x); T0 != LISP_NIL; T0 = rest_of(T0, "cond")) {
                value clause = part(T0, "cond");
                value test = part(clause, "cond");
                if (lisp_is(test, LISP_SYMBOL) && lisp_aux(test) == LISP_SF_ELSE) {
                    if (LISP_CDR(T0) != LISP_NIL) lisp_error("cond: else is not the last clause");
                    T0 = LISP_CDR(clause);
                    if (T0 == LISP_NIL) bad_syntax("cond");
                    goto sequence;
                }
                result = lisp_eval(test, ENV);
                if (result != LISP_FALSE) {
                    T0 = LISP_CDR(LISP_CAR(T0));
                    if (T0 == LISP_NIL) goto done;
                    goto sequence;
                }
            }
            result = LISP_UNSPEC;
            goto done;
        case LISP_SF_AND:
        case LISP_SF_OR: {
            int is_and = lisp_aux(op) == LISP_SF_AND;
            T0 = LISP_CDR(x);
            if (T0 == LISP_NIL) {
                result = lisp_bool(is_and);
                goto done;
            }
            while (rest_of(T0, is_and ? "and" : "or") != LISP_NIL) {
                result = lisp_eval(LISP_CAR(T0), ENV);
                if ((result == LISP_FALSE) == is_and) {
                    /* (the parts not evaluated must still form a list) */
                    if (lisp_list_length(T0) < 0) bad_syntax(is_and ? "and" : "or");
                    goto done;
                }
                T0 = LISP_CDR(T0);
            }
            X = LISP_CAR(T0);
            goto loop;
        }
        case LISP_SF_WHEN:
        case LISP_SF_UNLESS: {
            int is_when = lisp_aux(op) == LISP_SF_WHEN;
            value test = lisp_eval(part(LISP_CDR(x), is_when ? "when" : "unless"), ENV);
            T0 = LISP_CDR(LISP_CDR(X));
            if ((test != LISP_FALSE) != is_when || T0 == LISP_NIL) {
                result = LISP_UNSPEC;
                goto done;
            }
            goto sequence;
        }
        case LISP_SF_ELSE:
        case LISP_SF_NONE:
            lisp_error("else: not in a cond clause");
        }
    }

    /* A call: the operator into T0, the arguments onto the value stack. */
    T0 = eval_operand(op, ENV);
    argbase = lisp_sp;
    for (T1 = LISP_CDR(X); lisp_is(T1, LISP_PAIR); T1 = LISP_CDR(T1)) {
        value arg = eval_operand(LISP_CAR(T1), ENV);
        lisp_push(arg);
    }
    if (T1 != LISP_NIL) lisp_error("call: improper argument list");
    goto call;

named_let:   /* (let name ((var init) ...) body...) */
    T0 = LISP_CDR(X);                                   /* (name bindings . body): */
    lisp_mark_bound_locally(LISP_CAR(T0));
    T1 = lisp_make_frame(1, &ENV, &T0);                 /* a frame binding name only */
    lisp_push(part(rest_of(LISP_CDR(X), "let"), "let"));   /* the bindings are the parameters */
    lisp_push(rest_of(LISP_CDR(LISP_CDR(X)), "let"));
    if (lisp_sp[-1] == LISP_NIL || lisp_list_length(lisp_sp[-2]) < 0) bad_syntax("let");
    check_bindings(lisp_sp[-2], 1, "let");
    T0 = lisp_make_closure(&lisp_sp[-2], &lisp_sp[-1], &T1);
    lisp_write(T0, &LISP_CLOSURE_OF(T0)->name, LISP_CAR(LISP_CDR(X)));
    lisp_write(T1, &LISP_FRAME_OF(T1)->values[0], T0);
    lisp_sp = fp + 4;
    argbase = lisp_sp;
    for (T1 = LISP_CAR(LISP_CDR(LISP_CDR(X))); T1 != LISP_NIL; T1 = LISP_CDR(T1)) {
        value arg = lisp_eval(part(rest_of(LISP_CAR(T1), "let"), "let"), ENV); /* checked: check_bindings */
        lisp_push(arg);
    }

call: {
        int argc = (int)(lisp_sp - argbase);
        value proc = T0;
        if (lisp_is(proc, LISP_PRIMITIVE)) {
            check_primitive_arity(proc, argc);
            if (line != 0) lisp_current_line = line;
            if (((struct lisp_primitive *)proc)->fn == lisp_prim_apply) {
                /* (apply f a ... list) calls f in tail position (R7RS):
                 * f into T0, a ... down one slot, the list spread after
                 * them, and round again. Nothing allocates meanwhile, so
                 * the list may sit in a C local. */
                value list = argbase[argc - 1];
                T0 = argbase[0];
                if (!lisp_is(T0, LISP_PRIMITIVE) && !lisp_is(T0, LISP_CLOSURE)) lisp_type_error("apply", "procedure", T0);
                memmove(argbase, argbase + 1, (size_t)(argc - 2) * sizeof(value));
                lisp_sp = argbase + (argc - 2);
                lisp_push_elements(list, "apply");
                goto call;
            }
            result = ((struct lisp_primitive *)proc)->fn(argbase, argc);
            goto done;
        }
        if (!lisp_is(proc, LISP_CLOSURE)) {
            if (line != 0) lisp_current_line = line;
            lisp_type_error("call", "procedure", proc);
        }
        value frame = bind_arguments(&T0, argbase, argc);
        ENV = frame;
        T0 = LISP_CLOSURE_OF(T0)->body;
        lisp_sp = fp + 4;
    }

sequence:   /* T0: a non-empty expression list; the last one is a tail call */
    /* A body comes from user text, so it may end in a non-list tail,
     * (lambda (x) . 5): checked here, where every kind of body passes, at
     * the cost of one tag test per expression. */
    if (!lisp_is(T0, LISP_PAIR)) bad_syntax("body");
    while (LISP_CDR(T0) != LISP_NIL) {
        lisp_eval(LISP_CAR(T0), ENV);
        T0 = LISP_CDR(T0);
        if (!lisp_is(T0, LISP_PAIR)) bad_syntax("body");
    }
    X = LISP_CAR(T0);
    goto loop;

done:
    lisp_sp = fp;
    lisp_eval_depth--;
    lisp_current_line = caller_line;
    return result;
}

void lisp_eval_init(void)
{
    lisp_globals[LISP_G_ARGS] = LISP_NIL;
}

/* The interpreter's whole state on a new heap: symbols, special forms,
 * builtins, ports, ephemerons. It allocates and may raise an error: call
 * it under a catcher (main.c, fuzz/lisp_fuzz.c). */
void lisp_init(void)
{
    lisp_objects_init();
    lisp_eval_init();
    lisp_builtins_init();
    lisp_builtins_data_init();
    lisp_ports_init();
    lisp_ephemerons_init();
}
