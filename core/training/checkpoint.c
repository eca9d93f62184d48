/* checkpoint.c — training checkpoints as safetensors through the flow accessors (checkpoint.h), and
 * ff_flow_load, which rebuilds the flow from the configuration a checkpoint carries. Load validates
 * every entry before writing anything, so a refused file leaves the flow as it was. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/fisherflow.h"
#include "fisherflow/checkpoint.h"
#include "fisherflow/io.h"

#define NAME_MAX_LEN 300

static ff_status check_finite(const char *path, const char *what, const char *name, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return ff_errorf(FF_ENUMERIC, "ff_checkpoint_save %s: %s%s element %lld is %s; refusing to write a "
                             "checkpoint of non-finite values (the previous checkpoint is kept)", path, what, name,
                             (long long)i, isnan(x[i]) ? "NaN" : "Inf");
    return FF_OK;
}

static int version_major(const char *v) { return v ? atoi(v) : -1; }

/* The parts of a flow a checkpoint holds, with the flat blocks they live in (m, v, ema may be NULL:
 * SGD without momentum, no EMA). Shared by save and load so both see the same layout. */
typedef struct flow_state {
    ff_params_t *P;
    ff_optim_t  *O;
    ff_rng_t    *R;
    float       *base, *m, *v, *ema;
    int64_t      numel, *t;
} flow_state;

static ff_status flow_state_of(ff_flow_t *f, const char *fn, const char *path, flow_state *st) {
    ff_ema_t *E = ff_flow_ema(f);
    *st = (flow_state){ ff_flow_params(f), ff_flow_optim(f), ff_flow_rng(f), NULL, NULL, NULL, NULL, 0, NULL };
    if (!st->P || !st->O || !st->R)
        return ff_errorf(FF_EINVAL, "%s %s: the flow has no parameters/optimiser/rng", fn, path);
    st->base = ff_params_data(st->P);
    st->ema = E ? ff_ema_data(E) : NULL;
    return ff_optim_state(st->O, &st->m, &st->v, &st->numel, &st->t);
}

ff_status ff_checkpoint_save(ff_flow_t *f, const char *path, const char *run_json) {
    const char *fn = "ff_checkpoint_save";
    if (!f || !path) return ff_errorf(FF_EINVAL, "%s: NULL argument", fn);
    if (ff_flow_grad_count(f) > 0)
        return ff_errorf(FF_EINVAL, "%s %s: the flow holds a gradient of %d micro-batch(es) not yet applied "
                         "(ff_flow_grad without ff_flow_update), which a checkpoint does not keep; save after the "
                         "update", fn, path, ff_flow_grad_count(f));
    flow_state fs;
    FF_TRY(flow_state_of(f, fn, path, &fs));
    if (fs.numel != ff_params_numel(fs.P))
        return ff_errorf(FF_EINVAL, "%s %s: optimiser holds %lld values, parameters %lld", fn, path,
                         (long long)fs.numel, (long long)ff_params_numel(fs.P));
    int count = ff_params_count(fs.P);
    for (int i = 0; i < count; i++) {
        ff_tensor_t *p = ff_params_get(fs.P, i);
        int64_t off = p->data - fs.base, n = ff_tensor_numel(p);
        FF_TRY(check_finite(path, "parameter ", p->name, p->data, n));
        if (fs.m) FF_TRY(check_finite(path, "optimiser m of ", p->name, fs.m + off, n));
        if (fs.v) FF_TRY(check_finite(path, "optimiser v of ", p->name, fs.v + off, n));
        if (fs.ema) FF_TRY(check_finite(path, "EMA of ", p->name, fs.ema + off, n));
    }

    ff_st_writer_t *w = NULL;
    ff_status s;
    char name[NAME_MAX_LEN], buf[64];
    if ((s = ff_st_writer_new(&w)) != FF_OK) return s;
    for (int i = 0; i < count && s == FF_OK; i++) {
        ff_tensor_t *p = ff_params_get(fs.P, i);
        s = ff_st_writer_add_borrowed(w, p->name, FF_DTYPE_F32, p->ndim, p->shape, p->data);
    }
    for (int pass = 0; pass < 3 && s == FF_OK; pass++) {
        float *src = pass == 0 ? fs.m : pass == 1 ? fs.v : fs.ema;
        const char *prefix = pass == 0 ? "optim.m." : pass == 1 ? "optim.v." : "ema.";
        if (!src) continue;
        for (int i = 0; i < count && s == FF_OK; i++) {
            ff_tensor_t *p = ff_params_get(fs.P, i);
            snprintf(name, sizeof name, "%s%s", prefix, p->name);
            s = ff_st_writer_add_borrowed(w, name, FF_DTYPE_F32, p->ndim, p->shape, src + (p->data - fs.base));
        }
    }
    int64_t one = 1, tval = fs.t ? *fs.t : 0, step = ff_flow_steps(f), has_spare = fs.R->has_spare;
    if (s == FF_OK) s = ff_st_writer_add_raw(w, "optim.t", FF_DTYPE_I64, 1, &one, &tval);
    if (s == FF_OK) s = ff_st_writer_add_raw(w, "rng.state", FF_DTYPE_U64, 1, (int64_t[]){ 4 }, fs.R->s);
    if (s == FF_OK) s = ff_st_writer_add_raw(w, "rng.spare_normal", FF_DTYPE_F64, 1, &one, &fs.R->spare_normal);
    if (s == FF_OK) s = ff_st_writer_add_raw(w, "rng.has_spare", FF_DTYPE_I64, 1, &one, &has_spare);
    if (s == FF_OK) s = ff_st_writer_add_raw(w, "step", FF_DTYPE_I64, 1, &one, &step);
    if (s == FF_OK) s = ff_st_writer_meta(w, "format", FF_CHECKPOINT_FORMAT);
    if (s == FF_OK) s = ff_st_writer_meta(w, "fisherflow_version", ff_version());
    if (s == FF_OK) s = ff_st_writer_meta(w, "optim", ff_optim_get_config(fs.O)->kind == FF_OPTIM_SGD ? "sgd" : "adamw");
    snprintf(buf, sizeof buf, "%lld", (long long)step);
    if (s == FF_OK) s = ff_st_writer_meta(w, "step", buf);
    if (s == FF_OK) s = ff_st_writer_meta(w, "config", ff_flow_config_json_of(f));
    if (s == FF_OK && run_json) s = ff_st_writer_meta(w, "run", run_json);
    if (s == FF_OK) s = ff_st_writer_write(w, path);
    ff_st_writer_free(w);
    return s == FF_OK ? FF_OK : ff_error_wrap(s, "%s %s", fn, path);
}

static const char *shape_text(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t u = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && u < size; i++)
        u += (size_t)snprintf(buf + u, size - u, i ? ",%lld" : "%lld", (long long)shape[i]);
    return buf;
}

/* The F32 entry `name` with the shape of p, or an error naming both shapes. */
static ff_status expect_like(const ff_safetensors_t *st, const char *path, const char *name, const ff_tensor_t *p,
                             const void **data) {
    ff_st_info info;
    char a[128], b[128];
    if (ff_safetensors_find(st, name, &info) != FF_OK)
        return ff_errorf(FF_EIO, "checkpoint %s: tensor \"%s\" is missing (the flow expects [%s])", path, name,
                         shape_text(p->ndim, p->shape, a, sizeof a));
    int same = info.ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = info.shape[d] == p->shape[d];
    if (!same)
        return ff_errorf(FF_ESHAPE, "checkpoint %s: tensor \"%s\": the flow expects [%s], the checkpoint has [%s] "
                         "(hint: rebuild the flow from the checkpoint's config)", path, name,
                         shape_text(p->ndim, p->shape, a, sizeof a), shape_text(info.ndim, info.shape, b, sizeof b));
    if (info.dtype != FF_DTYPE_F32)
        return ff_errorf(FF_EIO, "checkpoint %s: tensor \"%s\" is %s, expected F32", path, name, ff_dtype_name(info.dtype));
    size_t bytes;
    return ff_safetensors_get_raw(st, name, FF_DTYPE_F32, data, &bytes);
}

static ff_status expect_scalar(const ff_safetensors_t *st, const char *path, const char *name, ff_dtype dt,
                               size_t count, void *out) {
    const void *d;
    size_t bytes;
    if (ff_safetensors_get_raw(st, name, dt, &d, &bytes) != FF_OK)
        return ff_error_wrap(FF_EIO, "checkpoint %s", path);
    if (bytes != count * ff_dtype_size(dt))
        return ff_errorf(FF_EIO, "checkpoint %s: tensor \"%s\" has %zu bytes, expected %zu", path, name, bytes,
                         count * ff_dtype_size(dt));
    memcpy(out, d, bytes);
    return FF_OK;
}

static int has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* The "format" entry must be this library's: another version names itself and what to do. */
static ff_status check_format(const ff_safetensors_t *st, const char *path) {
    static const char prefix[] = "fisherflow-checkpoint/";
    const char *fmt = ff_safetensors_meta(st, "format");
    if (fmt && !strcmp(fmt, FF_CHECKPOINT_FORMAT)) return FF_OK;
    char *end = NULL;
    long v = fmt && has_prefix(fmt, prefix) ? strtol(fmt + strlen(prefix), &end, 10) : 0;
    if (v > 0 && end && !*end) {
        if (v < FF_CHECKPOINT_VERSION)
            return ff_errorf(FF_EIO, "checkpoint %s: format version %ld, this fisherflow reads version %d: it was "
                             "written by an older fisherflow (parameters and settings were renamed since); retrain "
                             "the model, or convert the checkpoint to version %d", path, v, FF_CHECKPOINT_VERSION,
                             FF_CHECKPOINT_VERSION);
        return ff_errorf(FF_EIO, "checkpoint %s: format version %ld, this fisherflow reads version %d: it was written "
                         "by a newer fisherflow (%s); load it with that version", path, v, FF_CHECKPOINT_VERSION,
                         ff_safetensors_meta(st, "fisherflow_version") ? ff_safetensors_meta(st, "fisherflow_version")
                                                                       : "version unknown");
    }
    return ff_errorf(FF_EIO, "checkpoint %s: format \"%s\", expected \"%s\" (not a fisherflow checkpoint?)", path,
                     fmt ? fmt : "(none)", FF_CHECKPOINT_FORMAT);
}

/* Loads the opened checkpoint st (read from path) into f: everything is checked before anything is
 * written, so a refusal leaves f as it was. */
static ff_status load_from(ff_flow_t *f, const ff_safetensors_t *st, const char *path) {
    const char *fn = "ff_checkpoint_load";
    flow_state fs;
    FF_TRY(flow_state_of(f, fn, path, &fs));
    int count = ff_params_count(fs.P);
    ff_status s;
    const void **src = calloc((size_t)(4 * (count ? count : 1)), sizeof *src);   /* param, m, v, ema per entry */
    if (!src) return ff_errorf(FF_ENOMEM, "%s: out of memory", fn);
    char name[NAME_MAX_LEN];
    const char *ver = ff_safetensors_meta(st, "fisherflow_version");
    const char *okind = ff_safetensors_meta(st, "optim");
    const char *want_kind = ff_optim_get_config(fs.O)->kind == FF_OPTIM_SGD ? "sgd" : "adamw";
    uint64_t rs[4];
    double spare;
    int64_t has_spare, tval, step;

    if ((s = check_format(st, path)) != FF_OK) goto done;
    if (version_major(ver) != version_major(ff_version())) {
        s = ff_errorf(FF_EIO, "checkpoint %s: written by fisherflow %s, this is %s (hint: load it with %d.x, or re-train)",
                      path, ver ? ver : "(unknown)", ff_version(), version_major(ver));
        goto done;
    }
    if (!okind || strcmp(okind, want_kind)) {
        s = ff_errorf(FF_EIO, "checkpoint %s: optimiser \"%s\", the flow uses \"%s\"", path, okind ? okind : "(none)", want_kind);
        goto done;
    }
    for (int i = 0; i < count; i++) {
        ff_tensor_t *p = ff_params_get(fs.P, i);
        if ((s = expect_like(st, path, p->name, p, &src[4 * i])) != FF_OK) goto done;
        snprintf(name, sizeof name, "optim.m.%s", p->name);
        if (fs.m && (s = expect_like(st, path, name, p, &src[4 * i + 1])) != FF_OK) goto done;
        snprintf(name, sizeof name, "optim.v.%s", p->name);
        if (fs.v && (s = expect_like(st, path, name, p, &src[4 * i + 2])) != FF_OK) goto done;
        snprintf(name, sizeof name, "ema.%s", p->name);
        if (fs.ema && (s = expect_like(st, path, name, p, &src[4 * i + 3])) != FF_OK) {
            s = ff_error_wrap(s, "the flow has EMA (ema_decay > 0)");
            goto done;
        }
    }
    /* Every entry must be accounted for: an unexpected one means another architecture or EMA setting. */
    for (int i = 0; i < ff_safetensors_count(st); i++) {
        ff_st_info info;
        ff_safetensors_info(st, i, &info);
        const char *n = info.name, *pname = n;
        if (!strcmp(n, "optim.t") || !strcmp(n, "step") || !strcmp(n, "rng.state") || !strcmp(n, "rng.spare_normal") ||
            !strcmp(n, "rng.has_spare"))
            continue;
        if (has_prefix(n, "optim.m.") && fs.m) pname = n + 8;
        else if (has_prefix(n, "optim.v.") && fs.v) pname = n + 8;
        else if (has_prefix(n, "ema.") && fs.ema) pname = n + 4;
        if (!ff_params_find(fs.P, pname)) {
            s = ff_errorf(FF_EIO, "checkpoint %s: unexpected tensor \"%s\" (%s); the flow %s", path, n,
                          ff_dtype_name(info.dtype),
                          has_prefix(n, "ema.") ? "has no EMA (set ema_decay as in the checkpoint's config)"
                                                : "has no such parameter (rebuild it from the checkpoint's config)");
            goto done;
        }
    }
    if ((s = expect_scalar(st, path, "optim.t", FF_DTYPE_I64, 1, &tval)) != FF_OK) goto done;
    if ((s = expect_scalar(st, path, "step", FF_DTYPE_I64, 1, &step)) != FF_OK) goto done;
    if ((s = expect_scalar(st, path, "rng.state", FF_DTYPE_U64, 4, rs)) != FF_OK) goto done;
    if ((s = expect_scalar(st, path, "rng.spare_normal", FF_DTYPE_F64, 1, &spare)) != FF_OK) goto done;
    if ((s = expect_scalar(st, path, "rng.has_spare", FF_DTYPE_I64, 1, &has_spare)) != FF_OK) goto done;
    if (step < 0 || tval < 0 || (has_spare != 0 && has_spare != 1) || (!rs[0] && !rs[1] && !rs[2] && !rs[3])) {
        s = ff_errorf(FF_EIO, "checkpoint %s: invalid counters (step %lld, optim.t %lld, has_spare %lld) or an all-zero "
                      "rng.state", path, (long long)step, (long long)tval, (long long)has_spare);
        goto done;
    }

    /* Everything checked: now commit. */
    for (int i = 0; i < count; i++) {
        ff_tensor_t *p = ff_params_get(fs.P, i);
        size_t bytes = (size_t)ff_tensor_numel(p) * sizeof(float);
        int64_t off = p->data - fs.base;
        if (bytes) {
            memcpy(p->data, src[4 * i], bytes);
            if (fs.m) memcpy(fs.m + off, src[4 * i + 1], bytes);
            if (fs.v) memcpy(fs.v + off, src[4 * i + 2], bytes);
            if (fs.ema) memcpy(fs.ema + off, src[4 * i + 3], bytes);
        }
    }
    if (fs.t) *fs.t = tval;
    memcpy(fs.R->s, rs, sizeof rs);
    fs.R->spare_normal = spare;
    fs.R->has_spare = (int)has_spare;
    ff_flow_set_steps(f, step);
    ff_flow_grad_zero(f);          /* a gradient accumulated for the old parameters means nothing now */
    s = FF_OK;
done:
    free(src);
    return s;
}

ff_status ff_checkpoint_load(ff_flow_t *f, const char *path) {
    if (!f || !path) return ff_errorf(FF_EINVAL, "ff_checkpoint_load: NULL argument");
    ff_safetensors_t *st = NULL;
    FF_TRY(ff_safetensors_read(&st, path));
    ff_status s = load_from(f, st, path);
    ff_safetensors_free(st);
    return s;
}

ff_status ff_flow_load(ff_flow_t **out, const char *path) {
    const char *fn = "ff_flow_load";
    if (!out) return ff_errorf(FF_EINVAL, "%s: out is NULL", fn);
    *out = NULL;
    if (!path) return ff_errorf(FF_EINVAL, "%s: path is NULL", fn);
    ff_safetensors_t *st = NULL;
    FF_TRY(ff_safetensors_read(&st, path));
    ff_flow_t *f = NULL;
    ff_status s = check_format(st, path);
    const char *cfg = ff_safetensors_meta(st, "config");
    if (s == FF_OK && !cfg) s = ff_errorf(FF_EIO, "checkpoint %s: no \"config\" entry in its metadata", path);
    if (s == FF_OK && (s = ff_flow_new_json(&f, cfg)) != FF_OK)
        s = ff_error_wrap(s, "%s: checkpoint %s: its configuration", fn, path);
    if (s == FF_OK) s = load_from(f, st, path);
    ff_safetensors_free(st);
    if (s != FF_OK) { ff_flow_free(f); return s; }
    *out = f;
    return FF_OK;
}

static char *dup_or_null(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

ff_status ff_checkpoint_read_meta(const char *path, char **config_json, char **version, int64_t *step) {
    if (config_json) *config_json = NULL;
    if (version) *version = NULL;
    if (!path) return ff_errorf(FF_EINVAL, "ff_checkpoint_read_meta: path is NULL");
    ff_safetensors_t *st = NULL;
    FF_TRY(ff_safetensors_read(&st, path));
    ff_status s = check_format(st, path);
    if (s != FF_OK) goto done;
    if (step && (s = expect_scalar(st, path, "step", FF_DTYPE_I64, 1, step)) != FF_OK) goto done;
    const char *cfg = ff_safetensors_meta(st, "config"), *ver = ff_safetensors_meta(st, "fisherflow_version");
    char *c = dup_or_null(cfg), *vv = dup_or_null(ver);
    if ((cfg && !c) || (ver && !vv)) {
        free(c); free(vv);
        s = ff_errorf(FF_ENOMEM, "ff_checkpoint_read_meta: out of memory");
        goto done;
    }
    if (config_json) *config_json = c; else free(c);
    if (version) *version = vv; else free(vv);
done:
    ff_safetensors_free(st);
    return s;
}

ff_status ff_checkpoint_read_run(const char *path, char **run_json) {
    if (!run_json) return ff_errorf(FF_EINVAL, "ff_checkpoint_read_run: run_json is NULL");
    *run_json = NULL;
    if (!path) return ff_errorf(FF_EINVAL, "ff_checkpoint_read_run: path is NULL");
    ff_safetensors_t *st = NULL;
    FF_TRY(ff_safetensors_read(&st, path));
    ff_status s = check_format(st, path);
    const char *run = ff_safetensors_meta(st, "run");
    if (s == FF_OK && run && !(*run_json = dup_or_null(run))) s = ff_errorf(FF_ENOMEM, "ff_checkpoint_read_run: out of memory");
    ff_safetensors_free(st);
    return s;
}

void ff_checkpoint_free_string(char *s) { free(s); }
