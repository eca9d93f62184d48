/* options.c — typed key/value option tables for plugins, validated against a plugin's spec
 * (options.h; docs/DESIGN.md, "Plugin ABI", loading step 4). Defaults are parsed from the spec's text when a getter misses. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/options.h"

typedef struct entry {
    char           *key;
    ff_option_type  type;
    int64_t         i;       /* FF_OPT_INT, FF_OPT_BOOL (0/1)                       */
    double          num;     /* FF_OPT_NUMBER; also the length-1 view of NUMBERS     */
    char           *str;     /* FF_OPT_STRING                                       */
    double         *arr;     /* FF_OPT_NUMBERS (n values); NULL for a scalar         */
    int             n;
} entry;

struct ff_options {
    entry               **e;          /* explicitly set values, in insertion order           */
    int                   count, cap;
    entry               **defaults;   /* parsed spec defaults (after validate), lazily filled */
    int                   ndefaults;
    const ff_option_spec *spec;       /* set by validate; borrowed (static in the plugin)    */
    char                  owner[96];  /* "network \"bmlp\"" for messages                     */
};

static const char *type_name(ff_option_type t) {
    switch (t) {
    case FF_OPT_INT:     return "int";
    case FF_OPT_NUMBER:  return "number";
    case FF_OPT_STRING:  return "string";
    case FF_OPT_BOOL:    return "bool";
    case FF_OPT_NUMBERS: return "numbers";
    }
    return "?";
}

static const char *who(const ff_options *o, const char *fn) {
    return (o && o->owner[0]) ? o->owner : fn;
}

static void entry_free(entry *e) {
    if (!e) return;
    free(e->key); free(e->str); free(e->arr); free(e);
}

static entry *entry_new(const char *key, ff_option_type type) {
    entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->key = strdup(key);
    if (!e->key) { free(e); return NULL; }
    e->type = type;
    return e;
}

static entry *entry_dup(const entry *s) {
    entry *e = entry_new(s->key, s->type);
    if (!e) return NULL;
    e->i = s->i; e->num = s->num; e->n = s->n;
    if (s->str && !(e->str = strdup(s->str))) { entry_free(e); return NULL; }
    if (s->arr) {
        e->arr = malloc((size_t)s->n * sizeof(double));
        if (!e->arr) { entry_free(e); return NULL; }
        memcpy(e->arr, s->arr, (size_t)s->n * sizeof(double));
    }
    return e;
}

static int find_index(entry *const *list, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i]->key, key)) return i;
    return -1;
}

ff_status ff_options_new(ff_options **out) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_options_new: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return ff_errorf(FF_ENOMEM, "ff_options_new: out of memory");
    return FF_OK;
}

static void clear_defaults(ff_options *o) {
    for (int i = 0; i < o->ndefaults; i++) entry_free(o->defaults[i]);
    free(o->defaults);
    o->defaults = NULL;
    o->ndefaults = 0;
}

void ff_options_free(ff_options *o) {
    if (!o) return;
    for (int i = 0; i < o->count; i++) entry_free(o->e[i]);
    free(o->e);
    clear_defaults(o);
    free(o);
}

ff_status ff_options_copy(ff_options **out, const ff_options *src) {
    FF_TRY(ff_options_new(out));
    if (!src) return FF_OK;
    ff_options *o = *out;
    if (src->count) {
        o->e = calloc((size_t)src->count, sizeof *o->e);
        if (!o->e) goto oom;
        o->cap = src->count;
        for (int i = 0; i < src->count; i++) {
            if (!(o->e[i] = entry_dup(src->e[i]))) goto oom;
            o->count = i + 1;
        }
    }
    o->spec = src->spec;
    memcpy(o->owner, src->owner, sizeof o->owner);
    return FF_OK;
oom:
    ff_options_free(o);
    *out = NULL;
    return ff_errorf(FF_ENOMEM, "ff_options_copy: out of memory");
}

/* Inserts e under its key, replacing an existing value; takes ownership of e. */
static ff_status put(ff_options *o, entry *e, const char *fn) {
    if (!e) return ff_errorf(FF_ENOMEM, "%s: out of memory", fn);
    int at = find_index(o->e, o->count, e->key);
    if (at >= 0) { entry_free(o->e[at]); o->e[at] = e; return FF_OK; }
    if (o->count == o->cap) {
        int cap = o->cap ? 2 * o->cap : 8;
        entry **ne = realloc(o->e, (size_t)cap * sizeof *ne);
        if (!ne) { entry_free(e); return ff_errorf(FF_ENOMEM, "%s: out of memory", fn); }
        o->e = ne; o->cap = cap;
    }
    o->e[o->count++] = e;
    return FF_OK;
}

static ff_status check_key(const ff_options *o, const char *key, const char *fn) {
    if (!o) return ff_errorf(FF_EINVAL, "%s: options table is NULL", fn);
    if (!key || !key[0]) return ff_errorf(FF_EINVAL, "%s: empty option name", fn);
    return FF_OK;
}

ff_status ff_options_set_int(ff_options *o, const char *key, int64_t v) {
    FF_TRY(check_key(o, key, "ff_options_set_int"));
    entry *e = entry_new(key, FF_OPT_INT);
    if (e) { e->i = v; e->num = (double)v; }
    return put(o, e, "ff_options_set_int");
}

ff_status ff_options_set_number(ff_options *o, const char *key, double v) {
    FF_TRY(check_key(o, key, "ff_options_set_number"));
    entry *e = entry_new(key, FF_OPT_NUMBER);
    if (e) e->num = v;
    return put(o, e, "ff_options_set_number");
}

ff_status ff_options_set_string(ff_options *o, const char *key, const char *v) {
    FF_TRY(check_key(o, key, "ff_options_set_string"));
    if (!v) return ff_errorf(FF_EINVAL, "ff_options_set_string: value of \"%s\" is NULL", key);
    entry *e = entry_new(key, FF_OPT_STRING);
    if (e && !(e->str = strdup(v))) { entry_free(e); e = NULL; }
    return put(o, e, "ff_options_set_string");
}

ff_status ff_options_set_bool(ff_options *o, const char *key, int v) {
    FF_TRY(check_key(o, key, "ff_options_set_bool"));
    entry *e = entry_new(key, FF_OPT_BOOL);
    if (e) e->i = v ? 1 : 0;
    return put(o, e, "ff_options_set_bool");
}

ff_status ff_options_set_numbers(ff_options *o, const char *key, const double *v, int n) {
    FF_TRY(check_key(o, key, "ff_options_set_numbers"));
    if (n < 1 || !v)
        return ff_errorf(FF_EINVAL, "ff_options_set_numbers: \"%s\" needs at least one value (got %d)", key, n);
    entry *e = entry_new(key, FF_OPT_NUMBERS);
    if (e) {
        e->arr = malloc((size_t)n * sizeof(double));
        if (!e->arr) { entry_free(e); e = NULL; }
        else { memcpy(e->arr, v, (size_t)n * sizeof(double)); e->n = n; e->num = v[0]; }
    }
    return put(o, e, "ff_options_set_numbers");
}

/* Parses a spec default ("256", "0.01", "true", "1,1,4", any text) into an entry. NULL on a
 * malformed default (a plugin bug, reported by validate). */
static entry *parse_default(const ff_option_spec *s) {
    entry *e = entry_new(s->name, s->type);
    if (!e) return NULL;
    const char *t = s->default_value;
    char *end = NULL;
    errno = 0;
    switch (s->type) {
    case FF_OPT_INT:
        e->i = strtoll(t, &end, 10);
        e->num = (double)e->i;
        if (end == t || *end || errno) goto bad;
        break;
    case FF_OPT_NUMBER:
        e->num = strtod(t, &end);
        if (end == t || *end) goto bad;
        break;
    case FF_OPT_STRING:
        if (!(e->str = strdup(t))) goto bad;
        break;
    case FF_OPT_BOOL:
        if (!strcmp(t, "true") || !strcmp(t, "1")) e->i = 1;
        else if (!strcmp(t, "false") || !strcmp(t, "0")) e->i = 0;
        else goto bad;
        break;
    case FF_OPT_NUMBERS: {
        int n = 1;
        for (const char *c = t; *c; c++) n += *c == ',';
        e->arr = malloc((size_t)n * sizeof(double));
        if (!e->arr) goto bad;
        const char *c = t;
        for (int k = 0; k < n; k++) {
            e->arr[k] = strtod(c, &end);
            if (end == c) goto bad;
            while (*end == ' ') end++;
            if (k < n - 1 && *end != ',') goto bad;
            c = end + 1;
        }
        if (*end) goto bad;
        e->n = n;
        e->num = e->arr[0];
        break;
    }
    default:
        goto bad;
    }
    return e;
bad:
    entry_free(e);
    return NULL;
}

static const ff_option_spec *spec_find(const ff_option_spec *spec, const char *key) {
    for (const ff_option_spec *s = spec; s && s->name; s++)
        if (!strcmp(s->name, key)) return s;
    return NULL;
}

/* "hidden, depth, emb" or "none" */
static void known_list(const ff_option_spec *spec, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (const ff_option_spec *s = spec; s && s->name; s++) {
        int w = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", s->name);
        if (w < 0 || (size_t)w >= size - used) break;
        used += (size_t)w;
    }
    if (!used) snprintf(buf, size, "none");
}

static void value_str(const entry *e, char *buf, size_t size) {
    switch (e->type) {
    case FF_OPT_INT:     snprintf(buf, size, "%lld", (long long)e->i); break;
    case FF_OPT_NUMBER:  snprintf(buf, size, "%g", e->num); break;
    case FF_OPT_STRING:  snprintf(buf, size, "\"%.40s\"", e->str); break;
    case FF_OPT_BOOL:    snprintf(buf, size, "%s", e->i ? "true" : "false"); break;
    case FF_OPT_NUMBERS: snprintf(buf, size, "%d numbers", e->n); break;
    default:             snprintf(buf, size, "?");
    }
}

/* Converts e in place to the spec's type where the conversion loses nothing (an integral number to
 * int, a number or int to numbers, an int to number); returns 0 if it cannot. */
static int coerce(entry *e, ff_option_type want) {
    if (e->type == want) return 1;
    if (want == FF_OPT_NUMBER && e->type == FF_OPT_INT) { e->num = (double)e->i; e->type = want; return 1; }
    if (want == FF_OPT_INT && e->type == FF_OPT_NUMBER) {
        if (!isfinite(e->num) || e->num != floor(e->num) || fabs(e->num) > 9.0e15) return 0;
        e->i = (int64_t)e->num; e->type = want; return 1;
    }
    if (want == FF_OPT_INT && e->type == FF_OPT_NUMBERS && e->n == 1) {
        double v = e->arr[0];
        if (!isfinite(v) || v != floor(v) || fabs(v) > 9.0e15) return 0;
        free(e->arr); e->arr = NULL; e->n = 0;
        e->i = (int64_t)v; e->num = v; e->type = want; return 1;
    }
    if (want == FF_OPT_NUMBER && e->type == FF_OPT_NUMBERS && e->n == 1) {
        e->num = e->arr[0]; free(e->arr); e->arr = NULL; e->n = 0; e->type = want; return 1;
    }
    if (want == FF_OPT_NUMBERS && (e->type == FF_OPT_NUMBER || e->type == FF_OPT_INT)) {
        double v = e->type == FF_OPT_INT ? (double)e->i : e->num;
        double *a = malloc(sizeof(double));
        if (!a) return 0;
        a[0] = v; e->arr = a; e->n = 1; e->num = v; e->type = want; return 1;
    }
    return 0;
}

ff_status ff_option_spec_check(const ff_option_spec *spec, const char *owner) {
    const char *own = owner && owner[0] ? owner : "ff_option_spec_check";
    for (const ff_option_spec *s = spec; s && s->name; s++) {
        int ok = s->name[0] != '\0';
        for (const char *c = s->name; *c; c++)
            ok &= (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
        if (!ok)
            return ff_errorf(FF_EPLUGIN, "%s: option name \"%s\" is not [a-z0-9_]+", own, s->name);
        for (const ff_option_spec *t = spec; t != s; t++)
            if (!strcmp(t->name, s->name))
                return ff_errorf(FF_EPLUGIN, "%s: option \"%s\" is declared twice", own, s->name);
        if (s->type < FF_OPT_INT || s->type > FF_OPT_NUMBERS)
            return ff_errorf(FF_EPLUGIN, "%s: option \"%s\" declares unknown type %d", own, s->name, (int)s->type);
        if (s->default_value) {
            entry *d = parse_default(s);
            if (!d)
                return ff_errorf(FF_EPLUGIN, "%s: option \"%s\" has a malformed default \"%s\" for type %s",
                                 own, s->name, s->default_value, type_name(s->type));
            entry_free(d);
        }
    }
    return FF_OK;
}

ff_status ff_options_validate(ff_options *o, const ff_option_spec *spec, const char *owner) {
    if (!o) return ff_errorf(FF_EINVAL, "ff_options_validate: options table is NULL");
    const char *own = owner && owner[0] ? owner : "ff_options_validate";
    char known[512], val[64];
    /* A plugin whose own spec is broken is refused before any user value is looked at. */
    FF_TRY(ff_option_spec_check(spec, owner));
    for (int i = 0; i < o->count; i++) {
        entry *e = o->e[i];
        const ff_option_spec *s = spec_find(spec, e->key);
        if (!s) {
            known_list(spec, known, sizeof known);
            return ff_errorf(FF_EINVAL, "%s: unknown option \"%s\" (known: %s)", own, e->key, known);
        }
        if (!coerce(e, s->type)) {
            value_str(e, val, sizeof val);
            return ff_errorf(FF_EINVAL, "%s: option \"%s\" expects %s, got %s %s", own, e->key,
                             type_name(s->type), type_name(e->type), val);
        }
    }
    clear_defaults(o);
    o->spec = spec;
    snprintf(o->owner, sizeof o->owner, "%s", owner ? owner : "");
    return FF_OK;
}

/* The entry for key: the set value, else the spec default (parsed once and kept). */
static ff_status lookup(const ff_options *oc, const char *key, const entry **out, const char *fn) {
    FF_TRY(check_key(oc, key, fn));
    ff_options *o = (ff_options *)oc;   /* the defaults cache is logically const */
    int at = find_index(o->e, o->count, key);
    if (at >= 0) { *out = o->e[at]; return FF_OK; }
    at = find_index(o->defaults, o->ndefaults, key);
    if (at >= 0) { *out = o->defaults[at]; return FF_OK; }
    const ff_option_spec *s = spec_find(o->spec, key);
    if (!s) {
        if (o->spec) {
            char known[512];
            known_list(o->spec, known, sizeof known);
            return ff_errorf(FF_EINVAL, "%s: asked for undeclared option \"%s\" (known: %s)", who(o, fn), key, known);
        }
        return ff_errorf(FF_EINVAL, "%s: option \"%s\" is not set", who(o, fn), key);
    }
    if (!s->default_value)
        return ff_errorf(FF_EINVAL, "%s: option \"%s\" is not set and has no default", who(o, fn), key);
    entry *d = parse_default(s);
    if (!d)
        return ff_errorf(FF_EPLUGIN, "%s: option \"%s\" has a malformed default \"%s\"", who(o, fn), key, s->default_value);
    entry **nd = realloc(o->defaults, (size_t)(o->ndefaults + 1) * sizeof *nd);
    if (!nd) { entry_free(d); return ff_errorf(FF_ENOMEM, "%s: out of memory", fn); }
    o->defaults = nd;
    o->defaults[o->ndefaults++] = d;
    *out = d;
    return FF_OK;
}

static ff_status wrong_type(const ff_options *o, const entry *e, const char *want, const char *fn) {
    char val[64];
    value_str(e, val, sizeof val);
    return ff_errorf(FF_EINVAL, "%s: option \"%s\" expects %s, got %s %s", who(o, fn), e->key, want,
                     type_name(e->type), val);
}

ff_status ff_options_get_int(const ff_options *o, const char *key, int64_t *v) {
    const entry *e;
    FF_TRY(lookup(o, key, &e, "ff_options_get_int"));
    if (e->type == FF_OPT_INT) { *v = e->i; return FF_OK; }
    if (e->type == FF_OPT_NUMBER && isfinite(e->num) && e->num == floor(e->num) && fabs(e->num) <= 9.0e15) {
        *v = (int64_t)e->num;
        return FF_OK;
    }
    return wrong_type(o, e, "int", "ff_options_get_int");
}

ff_status ff_options_get_number(const ff_options *o, const char *key, double *v) {
    const entry *e;
    FF_TRY(lookup(o, key, &e, "ff_options_get_number"));
    if (e->type == FF_OPT_NUMBER) { *v = e->num; return FF_OK; }
    if (e->type == FF_OPT_INT) { *v = (double)e->i; return FF_OK; }
    if (e->type == FF_OPT_NUMBERS && e->n == 1) { *v = e->arr[0]; return FF_OK; }
    return wrong_type(o, e, "number", "ff_options_get_number");
}

ff_status ff_options_get_string(const ff_options *o, const char *key, const char **v) {
    const entry *e;
    FF_TRY(lookup(o, key, &e, "ff_options_get_string"));
    if (e->type == FF_OPT_STRING) { *v = e->str; return FF_OK; }
    return wrong_type(o, e, "string", "ff_options_get_string");
}

ff_status ff_options_get_bool(const ff_options *o, const char *key, int *v) {
    const entry *e;
    FF_TRY(lookup(o, key, &e, "ff_options_get_bool"));
    if (e->type == FF_OPT_BOOL) { *v = (int)e->i; return FF_OK; }
    return wrong_type(o, e, "bool", "ff_options_get_bool");
}

ff_status ff_options_get_numbers(const ff_options *o, const char *key, const double **v, int *n) {
    const entry *e;
    FF_TRY(lookup(o, key, &e, "ff_options_get_numbers"));
    if (e->type == FF_OPT_NUMBERS) { *v = e->arr; *n = e->n; return FF_OK; }
    if (e->type == FF_OPT_NUMBER) { *v = &e->num; *n = 1; return FF_OK; }
    return wrong_type(o, e, "numbers", "ff_options_get_numbers");
}

int ff_options_has(const ff_options *o, const char *key) {
    return o && key && find_index(o->e, o->count, key) >= 0;
}

/* A growable string for to_json. */
typedef struct { char *s; size_t len, cap; int oom; } sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (w < 0) { b->oom = 1; return; }
        if ((size_t)w < b->cap - b->len) { b->len += (size_t)w; return; }
        size_t cap = 2 * b->cap + (size_t)w + 16;
        char *ns = realloc(b->s, cap);
        if (!ns) { b->oom = 1; return; }
        b->s = ns; b->cap = cap;
    }
}

static void sb_number(sbuf *b, double v) {
    if (isfinite(v)) sb_add(b, "%.17g", v);
    else sb_add(b, "null");
}

static void sb_string(sbuf *b, const char *s) {
    sb_add(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') sb_add(b, "\\%c", *c);
        else if (*c < 0x20) sb_add(b, "\\u%04x", *c);
        else sb_add(b, "%c", *c);
    }
    sb_add(b, "\"");
}

char *ff_options_to_json(const ff_options *o) {
    sbuf b = { malloc(64), 0, 64, 0 };
    if (!b.s) return NULL;
    b.s[0] = '\0';
    sb_add(&b, "{");
    for (int i = 0; o && i < o->count; i++) {
        const entry *e = o->e[i];
        if (i) sb_add(&b, ",");
        sb_string(&b, e->key);
        sb_add(&b, ":");
        switch (e->type) {
        case FF_OPT_INT:    sb_add(&b, "%lld", (long long)e->i); break;
        case FF_OPT_NUMBER: sb_number(&b, e->num); break;
        case FF_OPT_STRING: sb_string(&b, e->str); break;
        case FF_OPT_BOOL:   sb_add(&b, "%s", e->i ? "true" : "false"); break;
        case FF_OPT_NUMBERS:
            sb_add(&b, "[");
            for (int k = 0; k < e->n; k++) { if (k) sb_add(&b, ","); sb_number(&b, e->arr[k]); }
            sb_add(&b, "]");
            break;
        }
    }
    sb_add(&b, "}");
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}
