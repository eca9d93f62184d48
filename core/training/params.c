/* params.c — the named parameter registry: one contiguous float block for values and a parallel
 * one for gradients (params.h). Tensor headers are stable; their data pointers follow the block.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/params.h"

struct ff_params {
    ff_tensor_t **t;          /* [count] registered tensors (own headers, borrowed data)      */
    ff_tensor_t **g;          /* [count] their gradient headers                               */
    int64_t      *off;        /* [count] offset of each tensor in the block                  */
    int           count, cap;
    float        *data, *grad;
    int64_t       numel, block_cap;
    char          prefix[48];
};

ff_status ff_params_new(ff_params_t **out) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_params_new: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? FF_OK : ff_errorf(FF_ENOMEM, "ff_params_new: out of memory");
}

void ff_params_free(ff_params_t *p) {
    if (!p) return;
    for (int i = 0; i < p->count; i++) { ff_tensor_free(p->g[i]); ff_tensor_free(p->t[i]); }
    free(p->t); free(p->g); free(p->off);
    free(p->data); free(p->grad);
    free(p);
}

ff_status ff_params_set_prefix(ff_params_t *p, const char *prefix) {
    if (!p) return ff_errorf(FF_EINVAL, "ff_params_set_prefix: registry is NULL");
    if (!prefix) prefix = "";
    if (strlen(prefix) >= sizeof p->prefix)
        return ff_errorf(FF_EINVAL, "ff_params_set_prefix: \"%s\" is longer than %zu characters", prefix, sizeof p->prefix - 1);
    strcpy(p->prefix, prefix);
    return FF_OK;
}

static void repoint(ff_params_t *p) {
    for (int i = 0; i < p->count; i++) {
        p->t[i]->data = p->data + p->off[i];
        p->g[i]->data = p->grad + p->off[i];
    }
}

static ff_status reserve(ff_params_t *p, int64_t more) {
    if (p->count == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        ff_tensor_t **t = realloc(p->t, (size_t)cap * sizeof *t);
        if (t) p->t = t;
        ff_tensor_t **g = realloc(p->g, (size_t)cap * sizeof *g);
        if (g) p->g = g;
        int64_t *o = realloc(p->off, (size_t)cap * sizeof *o);
        if (o) p->off = o;
        if (!t || !g || !o) return ff_errorf(FF_ENOMEM, "ff_params_add: out of memory");
        p->cap = cap;
    }
    if (p->numel + more > p->block_cap || !p->data) {
        int64_t cap = p->block_cap ? 2 * p->block_cap : 4096;
        while (cap < p->numel + more) cap *= 2;
        float *d = realloc(p->data, (size_t)cap * sizeof(float));
        if (d) p->data = d;
        float *g = realloc(p->grad, (size_t)cap * sizeof(float));
        if (g) p->grad = g;
        if (!d || !g) { repoint(p); return ff_errorf(FF_ENOMEM, "ff_params_add: cannot grow the block to %lld floats", (long long)cap); }
        p->block_cap = cap;
        repoint(p);
    }
    return FF_OK;
}

ff_status ff_params_add(ff_params_t *p, const char *name, int ndim, const int64_t *shape,
                        ff_param_init init, ff_rng_t *rng, ff_tensor_t **out) {
    char full[128];
    if (out) *out = NULL;
    if (!p || !name || !out) return ff_errorf(FF_EINVAL, "ff_params_add: NULL argument (registry, name or out)");
    if (!name[0]) return ff_errorf(FF_EINVAL, "ff_params_add: empty name");
    int len = snprintf(full, sizeof full, "%s%s", p->prefix, name);
    if (len >= (int)sizeof(((ff_tensor_t *)0)->name))
        return ff_errorf(FF_EINVAL, "ff_params_add: name \"%s\" is longer than %zu characters", full,
                         sizeof(((ff_tensor_t *)0)->name) - 1);
    if (ff_params_find(p, full)) return ff_errorf(FF_EINVAL, "ff_params_add: \"%s\" is already registered", full);
    if (ndim < 0 || ndim > FF_MAX_DIMS || (ndim > 0 && !shape))
        return ff_errorf(FF_EINVAL, "ff_params_add: \"%s\": ndim %d outside [0, %d] or shape NULL", full, ndim, FF_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return ff_errorf(FF_EINVAL, "ff_params_add: \"%s\": negative size %lld at dim %d", full, (long long)shape[i], i);
        n *= shape[i];
    }
    if ((init.kind == FF_INIT_UNIFORM || init.kind == FF_INIT_NORMAL) && !rng)
        return ff_errorf(FF_EINVAL, "ff_params_add: \"%s\": a random init needs a generator (rng is NULL)", full);
    if (init.kind < FF_INIT_ZEROS || init.kind > FF_INIT_NORMAL)
        return ff_errorf(FF_EINVAL, "ff_params_add: \"%s\": unknown init kind %d", full, (int)init.kind);
    if (!(isfinite(init.a)) || ((init.kind == FF_INIT_UNIFORM || init.kind == FF_INIT_NORMAL) && init.a < 0))
        return ff_errorf(FF_EINVAL, "ff_params_add: \"%s\": init scale %g must be finite and >= 0", full, (double)init.a);
    FF_TRY(reserve(p, n));
    const int64_t off = p->numel;
    ff_tensor_t *t = NULL, *g = NULL;
    ff_status s = ff_tensor_wrap(&t, p->data + off, ndim, shape);
    if (s == FF_OK) s = ff_tensor_wrap(&g, p->grad + off, ndim, shape);
    if (s != FF_OK) { ff_tensor_free(t); return s; }
    float *d = p->data + off;
    for (int64_t i = 0; i < n; i++) {
        switch (init.kind) {
        case FF_INIT_ZEROS:   d[i] = 0.0f; break;
        case FF_INIT_ONES:    d[i] = 1.0f; break;
        case FF_INIT_UNIFORM: d[i] = (float)((2.0 * ff_rng_uniform(rng) - 1.0) * init.a); break;
        case FF_INIT_NORMAL:  d[i] = (float)(ff_rng_normal(rng) * init.a); break;
        }
    }
    memset(p->grad + off, 0, (size_t)n * sizeof(float));
    strcpy(t->name, full);
    strcpy(g->name, full);
    t->flags = FF_TENSOR_PARAM | FF_TENSOR_NEEDS_GRAD;
    t->grad = g;
    p->t[p->count] = t;
    p->g[p->count] = g;
    p->off[p->count] = off;
    p->count++;
    p->numel += n;
    *out = t;
    return FF_OK;
}

int ff_params_count(const ff_params_t *p) { return p ? p->count : 0; }
ff_tensor_t *ff_params_get(const ff_params_t *p, int i) { return (p && i >= 0 && i < p->count) ? p->t[i] : NULL; }
int64_t ff_params_numel(const ff_params_t *p) { return p ? p->numel : 0; }
float *ff_params_data(ff_params_t *p) { return p ? p->data : NULL; }
float *ff_params_grad(ff_params_t *p) { return p ? p->grad : NULL; }

ff_tensor_t *ff_params_find(const ff_params_t *p, const char *name) {
    if (!p || !name) return NULL;
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->t[i]->name, name)) return p->t[i];
    return NULL;
}

void ff_params_zero_grad(ff_params_t *p) {
    if (p && p->numel > 0) memset(p->grad, 0, (size_t)p->numel * sizeof(float));
}
