/* flow_config.c — the flow's configuration as JSON (flow.h, "The configuration as JSON"): written
 * from an ff_flow_config and read back into one. The reader is strict: an unknown field or a value of
 * the wrong type or range is refused naming the field, so a typo never silently trains another model.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/flow.h"
#include "io/io_internal.h"
#include "flow_internal.h"

static const char *const slot_names[4] = { "source", "coupler", "network", "decoder" };
static const char *const slot_defaults[4] = { "uniform_sphere", "independent", "bmlp", "argmax" };
static const ff_plugin_kind slot_kinds[4] = { FF_PLUGIN_SOURCE, FF_PLUGIN_COUPLER, FF_PLUGIN_NETWORK,
                                              FF_PLUGIN_DECODER };
static const char *const lr_kinds[4] = { "constant", "cosine", "warmup_linear", "warmup_cosine" };  /* by ff_lr_kind */

static ff_plugin_spec *slot(ff_flow_config *c, int i) {
    ff_plugin_spec *s[4] = { &c->source, &c->coupler, &c->network, &c->decoder };
    return s[i];
}

void ff_flow_config_resolve(ff_flow_config *c) {
    if (!c->geometry) c->geometry = "sphere";
    for (int i = 0; i < 4; i++)
        if (!slot(c, i)->name) slot(c, i)->name = slot_defaults[i];
    if (c->optim.kind == 0) {
        c->optim = ff_optim_adamw_defaults();
        c->optim.weight_decay = 0.0f;
    }
    if (c->lr.base <= 0) c->lr.base = c->optim.lr;
}

/* ---- writing ------------------------------------------------------------------------------------- */

/* The shortest decimal that reads back as the same float: "0.001", not "0.00100000005". */
static void put_float(FILE *o, float v) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    fputs(buf, o);
}

static void put_string(FILE *o, const char *s) {
    fputc('"', o);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(o, "\\%c", *c);
        else if (*c < 0x20) fprintf(o, "\\u%04x", *c);
        else fputc(*c, o);
    }
    fputc('"', o);
}

ff_status ff_flow_config_json(const ff_flow_config *cfg, char **json) {
    const char *fn = "ff_flow_config_json";
    if (!json) return ff_errorf(FF_EINVAL, "%s: json is NULL", fn);
    *json = NULL;
    if (!cfg) return ff_errorf(FF_EINVAL, "%s: cfg is NULL", fn);
    ff_flow_config c = *cfg;
    ff_flow_config_resolve(&c);
    if (c.optim.kind != FF_OPTIM_ADAMW && c.optim.kind != FF_OPTIM_SGD)
        return ff_errorf(FF_EINVAL, "%s: optim.kind %d is neither FF_OPTIM_ADAMW nor FF_OPTIM_SGD", fn, (int)c.optim.kind);
    if ((int)c.lr.kind < 0 || (int)c.lr.kind > FF_LR_WARMUP_COSINE)
        return ff_errorf(FF_EINVAL, "%s: schedule kind %d is not an ff_lr_kind", fn, (int)c.lr.kind);
    const struct { const char *name; float v; } floats[] = {
        { "optim.lr", c.optim.lr }, { "optim.weight_decay", c.optim.weight_decay },
        { "optim.momentum", c.optim.momentum }, { "optim.betas[0]", c.optim.beta1 },
        { "optim.betas[1]", c.optim.beta2 }, { "optim.eps", c.optim.eps }, { "schedule.base", c.lr.base },
        { "schedule.min", c.lr.min }, { "grad_clip", c.grad_clip }, { "ema", c.ema_decay },
        { "label_smoothing", c.label_smoothing } };
    for (size_t i = 0; i < sizeof floats / sizeof *floats; i++)
        if (!isfinite(floats[i].v))
            return ff_errorf(FF_EINVAL, "%s: %s is %g (JSON has no NaN or Inf)", fn, floats[i].name, (double)floats[i].v);

    char *text = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&text, &len);
    if (!o) return ff_errorf(FF_ENOMEM, "%s: out of memory", fn);
    int oom = 0;
    fprintf(o, "{\"space\":{\"k\":%lld,\"d\":%lld,\"cond_classes\":%lld,\"cond_channels\":%lld},\"geometry\":",
            (long long)c.space.k, (long long)c.space.d, (long long)c.space.cond_classes,
            (long long)c.space.cond_channels);
    put_string(o, c.geometry);
    for (int i = 0; i < 4; i++) {
        char *oj = ff_options_to_json(slot(&c, i)->opts);
        if (!oj) { oom = 1; break; }
        fprintf(o, ",\"%s\":{\"name\":", slot_names[i]);
        put_string(o, slot(&c, i)->name);
        fprintf(o, ",\"options\":%s}", oj);
        free(oj);
    }
    if (c.optim.kind == FF_OPTIM_ADAMW) {
        fputs(",\"optim\":{\"kind\":\"adamw\",\"lr\":", o); put_float(o, c.optim.lr);
        fputs(",\"weight_decay\":", o); put_float(o, c.optim.weight_decay);
        fputs(",\"betas\":[", o); put_float(o, c.optim.beta1);
        fputs(",", o); put_float(o, c.optim.beta2);
        fputs("],\"eps\":", o); put_float(o, c.optim.eps);
    } else {
        fputs(",\"optim\":{\"kind\":\"sgd\",\"lr\":", o); put_float(o, c.optim.lr);
        fputs(",\"weight_decay\":", o); put_float(o, c.optim.weight_decay);
        fputs(",\"momentum\":", o); put_float(o, c.optim.momentum);
        fprintf(o, ",\"nesterov\":%s", c.optim.nesterov ? "true" : "false");
    }
    fprintf(o, "},\"schedule\":{\"kind\":\"%s\",\"base\":", lr_kinds[c.lr.kind]); put_float(o, c.lr.base);
    fputs(",\"min\":", o); put_float(o, c.lr.min);
    fprintf(o, ",\"warmup\":%lld,\"total\":%lld},\"grad_clip\":", (long long)c.lr.warmup, (long long)c.lr.total);
    put_float(o, c.grad_clip);
    fputs(",\"ema\":", o); put_float(o, c.ema_decay);
    fputs(",\"label_smoothing\":", o); put_float(o, c.label_smoothing);
    fprintf(o, ",\"seed\":%llu}", (unsigned long long)c.seed);
    if (fclose(o) != 0 || oom || !text) {
        free(text);
        return ff_errorf(FF_ENOMEM, "%s: out of memory", fn);
    }
    *json = text;
    return FF_OK;
}

/* ---- reading ------------------------------------------------------------------------------------- */

/* A parsed configuration: cfg borrows its strings from root and its options from opts. */
typedef struct cfg_doc {
    ff_flow_config cfg;
    jval           root;
    ff_options    *opts[4];
} cfg_doc;

static void doc_free(cfg_doc *d) {
    jfree(&d->root);
    for (int i = 0; i < 4; i++) ff_options_free(d->opts[i]);
}

static const char *jtype_name(jtype t) {
    switch (t) {
    case J_NULL: return "null";
    case J_BOOL: return "a boolean";
    case J_NUM:  return "a number";
    case J_STR:  return "a string";
    case J_ARR:  return "an array";
    case J_OBJ:  return "an object";
    }
    return "?";
}

static ff_status bad_type(const char *who, const char *path, const char *want, const jval *v) {
    return ff_errorf(FF_EINVAL, "%s: field \"%s\": expected %s, got %s", who, path, want, jtype_name(v->type));
}

static const jval *member(const jval *obj, const char *key) {
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}

/* Every key of obj must be in known (NULL-terminated); prefix is the object's path ("optim."). */
static ff_status check_fields(const char *who, const char *prefix, const char *note, const jval *obj,
                              const char *const *known) {
    for (size_t i = 0; i < obj->n; i++) {
        int ok = 0;
        for (int k = 0; known[k] && !ok; k++) ok = !strcmp(obj->keys[i], known[k]);
        if (ok) continue;
        char list[256];
        size_t u = 0;
        list[0] = '\0';
        for (int k = 0; known[k] && u < sizeof list; k++)
            u += (size_t)snprintf(list + u, sizeof list - u, k ? ", %s" : "%s", known[k]);
        return ff_errorf(FF_EINVAL, "%s: unknown field \"%s%.100s\"%s (known: %s)", who, prefix, obj->keys[i], note, list);
    }
    return FF_OK;
}

static ff_status get_object(const char *who, const char *path, const jval *v) {
    return v->type == J_OBJ ? FF_OK : bad_type(who, path, "an object", v);
}

/* A number literal as a double (the literal is RFC 8259 valid: the parser checked it). */
static double num_value(const jval *v) {
    char buf[64];
    size_t n = v->numlen < sizeof buf - 1 ? v->numlen : sizeof buf - 1;
    memcpy(buf, v->num, n);
    buf[n] = '\0';
    return strtod(buf, NULL);
}

static int is_int_literal(const jval *v) {
    for (size_t i = 0; i < v->numlen; i++)
        if (v->num[i] == '.' || v->num[i] == 'e' || v->num[i] == 'E') return 0;
    return 1;
}

/* A finite number that fits a float, in [lo, hi) (hi = INFINITY: no upper bound). */
static ff_status get_float(const char *who, const char *path, const jval *v, double lo, double hi, float *out) {
    if (v->type != J_NUM) return bad_type(who, path, "a number", v);
    double x = num_value(v);
    if (!(fabs(x) <= FLT_MAX))
        return ff_errorf(FF_EINVAL, "%s: field \"%s\": %.*s does not fit a float", who, path, (int)v->numlen, v->num);
    if (!(x >= lo && x < hi)) {
        if (isinf(hi)) return ff_errorf(FF_EINVAL, "%s: field \"%s\" must be >= %g, got %g", who, path, lo, x);
        return ff_errorf(FF_EINVAL, "%s: field \"%s\" must be in [%g, %g), got %g", who, path, lo, hi, x);
    }
    *out = (float)x;
    return FF_OK;
}

static ff_status get_int(const char *who, const char *path, const jval *v, int64_t min, int64_t *out) {
    if (v->type != J_NUM || !is_int_literal(v)) return bad_type(who, path, "an integer", v);
    char buf[32];
    if (v->numlen >= sizeof buf)
        return ff_errorf(FF_EINVAL, "%s: field \"%s\": %.*s does not fit int64", who, path, (int)v->numlen, v->num);
    memcpy(buf, v->num, v->numlen);
    buf[v->numlen] = '\0';
    errno = 0;
    long long x = strtoll(buf, NULL, 10);
    if (errno == ERANGE) return ff_errorf(FF_EINVAL, "%s: field \"%s\": %s does not fit int64", who, path, buf);
    if (x < min) return ff_errorf(FF_EINVAL, "%s: field \"%s\" must be an integer >= %lld, got %lld", who, path,
                                  (long long)min, x);
    *out = x;
    return FF_OK;
}

/* The option types a plugin declares decide how a JSON number is set: 2 is an int for an int option
 * and a number for a number option, as the Lua layer sets them. Unknown options and wrong types are
 * left to the plugin's validation in ff_flow_new, whose messages name the plugin and the option. */
static ff_status parse_options(const char *who, int i, const char *name, const jval *v, ff_options **out) {
    char path[48];
    snprintf(path, sizeof path, "%s.options", slot_names[i]);
    if (v->type == J_NULL) return FF_OK;
    FF_TRY(get_object(who, path, v));
    const ff_plugin *desc = NULL;
    if (ff_plugin_find(slot_kinds[i], name, &desc) != FF_OK) return ff_error_wrap(FF_EINVAL, "%s: field \"%s.name\"", who, slot_names[i]);
    FF_TRY(ff_options_new(out));
    for (size_t k = 0; k < v->n; k++) {
        const char *key = v->keys[k];
        const jval *x = &v->items[k];
        ff_option_type want = 0;
        for (const ff_option_spec *sp = desc->options; sp && sp->name; sp++)
            if (!strcmp(sp->name, key)) want = sp->type;
        ff_status s;
        if (x->type == J_BOOL) s = ff_options_set_bool(*out, key, x->boolean);
        else if (x->type == J_STR) s = ff_options_set_string(*out, key, x->str);
        else if (x->type == J_NUM && want == FF_OPT_NUMBERS) {
            double d = num_value(x);
            s = ff_options_set_numbers(*out, key, &d, 1);
        } else if (x->type == J_NUM && (want == FF_OPT_NUMBER || !is_int_literal(x))) {
            s = ff_options_set_number(*out, key, num_value(x));
        } else if (x->type == J_NUM) {
            int64_t iv;
            char ipath[160];
            snprintf(ipath, sizeof ipath, "%s.%.100s", path, key);
            FF_TRY(get_int(who, ipath, x, INT64_MIN, &iv));
            s = ff_options_set_int(*out, key, iv);
        } else if (x->type == J_ARR) {
            double *arr = malloc((x->n ? x->n : 1) * sizeof *arr);
            if (!arr) return ff_errorf(FF_ENOMEM, "%s: out of memory", who);
            for (size_t e = 0; e < x->n; e++) {
                if (x->items[e].type != J_NUM) {
                    free(arr);
                    return ff_errorf(FF_EINVAL, "%s: field \"%s.%.100s\": entry %zu is %s, expected a number", who, path,
                                     key, e, jtype_name(x->items[e].type));
                }
                arr[e] = num_value(&x->items[e]);
            }
            s = ff_options_set_numbers(*out, key, arr, (int)x->n);
            free(arr);
        } else {
            char opath[160];
            snprintf(opath, sizeof opath, "%s.%.100s", path, key);
            return bad_type(who, opath, "a number, string, boolean or array of numbers", x);
        }
        if (s != FF_OK) return ff_error_wrap(s, "%s: field \"%s.%.100s\"", who, path, key);
    }
    return FF_OK;
}

/* A plugin slot: "name", or { "name": "bmlp", "options": { ... } } (either member may be left out). */
static ff_status parse_slot(cfg_doc *d, const char *who, int i, const jval *v) {
    static const char *const known[] = { "name", "options", NULL };
    ff_plugin_spec *spec = slot(&d->cfg, i);
    char path[48];
    snprintf(path, sizeof path, "%s.name", slot_names[i]);
    if (v->type == J_STR) { spec->name = v->str; return FF_OK; }
    if (v->type != J_OBJ) return bad_type(who, slot_names[i], "a plugin name or {\"name\": ..., \"options\": {...}}", v);
    char prefix[48];
    snprintf(prefix, sizeof prefix, "%s.", slot_names[i]);
    FF_TRY(check_fields(who, prefix, "", v, known));
    const jval *name = member(v, "name"), *opts = member(v, "options");
    if (name && name->type != J_STR) return bad_type(who, path, "a string", name);
    spec->name = name ? name->str : slot_defaults[i];
    if (opts) {
        FF_TRY(parse_options(who, i, spec->name, opts, &d->opts[i]));
        spec->opts = d->opts[i];
    }
    return FF_OK;
}

static ff_status parse_optim(cfg_doc *d, const char *who, const jval *v) {
    static const char *const adamw[] = { "kind", "lr", "weight_decay", "betas", "eps", NULL };
    static const char *const sgd[] = { "kind", "lr", "weight_decay", "momentum", "nesterov", NULL };
    FF_TRY(get_object(who, "optim", v));
    const jval *kind = member(v, "kind"), *x;
    int is_sgd = 0;
    if (kind) {
        if (kind->type != J_STR) return bad_type(who, "optim.kind", "a string", kind);
        if (!strcmp(kind->str, "sgd")) is_sgd = 1;
        else if (strcmp(kind->str, "adamw"))
            return ff_errorf(FF_EINVAL, "%s: field \"optim.kind\": \"%.100s\" is not an optimiser (known: adamw, sgd)",
                             who, kind->str);
    }
    FF_TRY(check_fields(who, "optim.", is_sgd ? " for sgd" : " for adamw", v, is_sgd ? sgd : adamw));
    ff_optim_config *o = &d->cfg.optim;
    *o = is_sgd ? ff_optim_sgd_defaults() : ff_optim_adamw_defaults();
    if ((x = member(v, "lr"))) FF_TRY(get_float(who, "optim.lr", x, 0, INFINITY, &o->lr));
    if ((x = member(v, "weight_decay"))) FF_TRY(get_float(who, "optim.weight_decay", x, 0, INFINITY, &o->weight_decay));
    if ((x = member(v, "eps"))) FF_TRY(get_float(who, "optim.eps", x, 0, INFINITY, &o->eps));
    if ((x = member(v, "momentum"))) FF_TRY(get_float(who, "optim.momentum", x, 0, INFINITY, &o->momentum));
    if ((x = member(v, "nesterov"))) {
        if (x->type != J_BOOL) return bad_type(who, "optim.nesterov", "a boolean", x);
        o->nesterov = x->boolean;
    }
    if ((x = member(v, "betas"))) {
        if (x->type != J_ARR || x->n != 2) return bad_type(who, "optim.betas", "an array of 2 numbers [b1, b2]", x);
        FF_TRY(get_float(who, "optim.betas[0]", &x->items[0], 0, 1, &o->beta1));
        FF_TRY(get_float(who, "optim.betas[1]", &x->items[1], 0, 1, &o->beta2));
    }
    return FF_OK;
}

static ff_status parse_schedule(cfg_doc *d, const char *who, const jval *v) {
    static const char *const known[] = { "kind", "base", "min", "warmup", "total", NULL };
    FF_TRY(get_object(who, "schedule", v));
    FF_TRY(check_fields(who, "schedule.", "", v, known));
    ff_lr_schedule *s = &d->cfg.lr;
    const jval *x;
    if ((x = member(v, "kind"))) {
        if (x->type != J_STR) return bad_type(who, "schedule.kind", "a string", x);
        int k = -1;
        for (int i = 0; i < 4; i++) if (!strcmp(x->str, lr_kinds[i])) k = i;
        if (k < 0)
            return ff_errorf(FF_EINVAL, "%s: field \"schedule.kind\": \"%.100s\" is not a schedule (known: constant, "
                             "cosine, warmup_linear, warmup_cosine)", who, x->str);
        s->kind = (ff_lr_kind)k;
    }
    if ((x = member(v, "base"))) FF_TRY(get_float(who, "schedule.base", x, 0, INFINITY, &s->base));
    if ((x = member(v, "min"))) FF_TRY(get_float(who, "schedule.min", x, 0, INFINITY, &s->min));
    if ((x = member(v, "warmup"))) FF_TRY(get_int(who, "schedule.warmup", x, 0, &s->warmup));
    if ((x = member(v, "total"))) FF_TRY(get_int(who, "schedule.total", x, 0, &s->total));
    return FF_OK;
}

static ff_status parse_config(cfg_doc *d, const char *json, const char *who) {
    static const char *const top[] = { "space", "geometry", "source", "coupler", "network", "decoder", "optim",
                                       "schedule", "grad_clip", "ema", "label_smoothing", "seed", NULL };
    static const char *const space_known[] = { "k", "d", "cond_classes", "cond_channels", NULL };
    memset(d, 0, sizeof *d);
    d->cfg = ff_flow_default_config();
    if (!json) return ff_errorf(FF_EINVAL, "%s: json is NULL", who);
    jparser p = { json, strlen(json), 0, 0, who, 0 };
    jskip_ws(&p);
    if (p.i == p.n) return ff_errorf(FF_EINVAL, "%s: the configuration is empty (expected a JSON object)", who);
    FF_TRY(jparse_value(&p, &d->root));
    jskip_ws(&p);
    if (p.i != p.n) return jerr(&p, p.i, "text after the configuration's closing '}'");
    const jval *r = &d->root, *x;
    if (r->type != J_OBJ) return ff_errorf(FF_EINVAL, "%s: the configuration must be a JSON object, got %s", who,
                                           jtype_name(r->type));
    FF_TRY(check_fields(who, "", "", r, top));

    const jval *sp = member(r, "space");
    if (!sp) return ff_errorf(FF_EINVAL, "%s: field \"space\" is missing ({\"k\": positions, \"d\": simplex dim})", who);
    FF_TRY(get_object(who, "space", sp));
    FF_TRY(check_fields(who, "space.", "", sp, space_known));
    ff_space *s = &d->cfg.space;
    s->k = 1;
    if (!(x = member(sp, "d"))) return ff_errorf(FF_EINVAL, "%s: field \"space.d\" is missing (simplex dimension: d+1 symbols)", who);
    FF_TRY(get_int(who, "space.d", x, 1, &s->d));
    if ((x = member(sp, "k"))) FF_TRY(get_int(who, "space.k", x, 1, &s->k));
    if ((x = member(sp, "cond_classes"))) FF_TRY(get_int(who, "space.cond_classes", x, 0, &s->cond_classes));
    if ((x = member(sp, "cond_channels"))) FF_TRY(get_int(who, "space.cond_channels", x, 0, &s->cond_channels));

    if ((x = member(r, "geometry"))) {
        if (x->type != J_STR) return bad_type(who, "geometry", "a string (sphere | simplex | linear)", x);
        d->cfg.geometry = x->str;
    }
    for (int i = 0; i < 4; i++)
        if ((x = member(r, slot_names[i]))) FF_TRY(parse_slot(d, who, i, x));
    if ((x = member(r, "optim"))) FF_TRY(parse_optim(d, who, x));
    if ((x = member(r, "schedule"))) FF_TRY(parse_schedule(d, who, x));
    if ((x = member(r, "grad_clip"))) FF_TRY(get_float(who, "grad_clip", x, 0, INFINITY, &d->cfg.grad_clip));
    if ((x = member(r, "ema"))) FF_TRY(get_float(who, "ema", x, 0, 1, &d->cfg.ema_decay));
    if ((x = member(r, "label_smoothing"))) FF_TRY(get_float(who, "label_smoothing", x, 0, 1, &d->cfg.label_smoothing));
    if ((x = member(r, "seed")) && !json_uint(x, &d->cfg.seed))
        return x->type == J_NUM ? ff_errorf(FF_EINVAL, "%s: field \"seed\" must be an integer in [0, 2^64), got %.*s",
                                            who, (int)x->numlen, x->num)
                                : bad_type(who, "seed", "an integer", x);
    return FF_OK;
}

ff_status ff_flow_new_json(ff_flow_t **out, const char *json) {
    const char *fn = "ff_flow_new_json";
    if (!out) return ff_errorf(FF_EINVAL, "%s: out is NULL", fn);
    *out = NULL;
    cfg_doc d;
    ff_status s = parse_config(&d, json, fn);
    if (s == FF_OK && (s = ff_flow_new(out, &d.cfg)) != FF_OK) s = ff_error_wrap(s, "%s", fn);
    doc_free(&d);
    return s;
}
