/* flow.c — the Fisher-Flow model object (flow.h): plugins + parameters + optimiser + random streams,
 * one-call training step (MATH.md "Training"), sampling (MATH.md "Sampling"), decoding, likelihood.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fisherflow/flow.h"
#include "fisherflow/geometry.h"
#include "fisherflow/likelihood.h"
#include "fisherflow/ode.h"
#include "fisherflow/sphere.h"
#include "fisherflow/threads.h"
#include "flow_internal.h"

struct ff_flow {
    ff_flow_config     cfg;          /* resolved copy: names owned below, opts = instances' copies */
    char              *names[5];     /* geometry, source, coupler, network, decoder                 */
    const ff_geometry *geom;
    int                is_sphere;    /* geometry coordinates are sphere coordinates                 */
    ff_params_t       *params;
    ff_optim_t        *optim;
    ff_ema_t          *ema;
    ff_tape_t         *tape;
    ff_tape_t        **part_tapes;   /* tapes of the sampler's parts 1.. (ff_threads_run), made on first use */
    int                n_part_tapes;
    ff_plugin_inst    *source, *coupler, *network, *decoder;
    const ff_network_vtable *net;
    ff_rng_t           rng_init, rng_train, rng_sample, rng_eval;
    char              *config_json;  /* ff_flow_config_json of cfg, made once at ff_flow_new          */
    int64_t            steps;
    /* gradient accumulation since the last update (ff_flow_grad / ff_flow_update) */
    int                grad_count;   /* micro-batches summed in the parameters' gradient block     */
    double             grad_ms;      /* their wall time                                            */
    double             couple_ms;    /* the part of grad_ms spent in the coupler's pair()           */
    double             pair_ms;      /* the latest pair() call's wall time                          */
    double             grad_loss;    /* sum of their losses                                        */
    /* step scratch, sized for n rows ([n, k, d+1] unless noted); reallocated only when n changes */
    int64_t            n;
    ff_tensor_t       *p1;           /* smoothed data on the simplex                                */
    ff_tensor_t       *x1s, *x1g;    /* data in sphere / geometry coordinates (same when sphere)     */
    ff_tensor_t       *x0s, *x0p;    /* source draws (sphere), re-paired rows (sphere)               */
    ff_tensor_t       *x0g;          /* re-paired source in geometry coordinates                     */
    ff_tensor_t       *xt, *ut;      /* path point and target velocity (geometry coordinates)        */
    ff_tensor_t       *t;            /* [n]                                                         */
    int32_t           *perm;         /* [n]                                                         */
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

ff_flow_config ff_flow_default_config(void) {
    ff_flow_config c;
    memset(&c, 0, sizeof c);
    c.geometry = "sphere";
    c.optim = ff_optim_adamw_defaults();
    c.optim.weight_decay = 0.0f;
    c.lr.kind = FF_LR_CONSTANT;
    c.grad_clip = 1.0f;
    c.seed = 0;
    return c;
}

ff_sample_opts ff_flow_default_sample_opts(void) {
    ff_sample_opts o = { "euler", 100, 0.0, 0.0, 4096 };
    return o;
}

ff_logprob_opts ff_flow_default_logprob_opts(void) {
    ff_logprob_opts o = { 100, "auto", 1 };
    return o;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void free_scratch(ff_flow_t *f) {
    if (f->x1g == f->x1s) f->x1g = NULL;          /* the sphere geometry shares the buffer */
    ff_tensor_t **ts[] = { &f->p1, &f->x1s, &f->x1g, &f->x0s, &f->x0p, &f->x0g, &f->xt, &f->ut, &f->t };
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
        ff_tensor_free(*ts[i]);
        *ts[i] = NULL;
    }
    free(f->perm);
    f->perm = NULL;
    f->n = 0;
}

static ff_status ensure_scratch(ff_flow_t *f, int64_t n) {
    if (f->n == n) return FF_OK;
    free_scratch(f);
    const ff_space *sp = &f->cfg.space;
    int64_t shape[3] = { n, sp->k, sp->d + 1 };
    ff_status s;
    if ((s = ff_tensor_new(&f->p1, 3, shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&f->x1s, 3, shape)) != FF_OK) goto fail;
    if (f->is_sphere) f->x1g = f->x1s;
    else if ((s = ff_tensor_new(&f->x1g, 3, shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&f->x0s, 3, shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&f->x0p, 3, shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&f->x0g, 3, shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&f->xt, 3, shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&f->ut, 3, shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new1(&f->t, n)) != FF_OK) goto fail;
    f->perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *f->perm);
    if (!f->perm) { s = ff_errorf(FF_ENOMEM, "ff_flow_step: cannot allocate scratch for n=%lld", (long long)n); goto fail; }
    f->n = n;
    return FF_OK;
fail:
    free_scratch(f);
    return s;
}

static ff_status make_plugin(ff_flow_t *f, ff_plugin_inst **out, ff_plugin_kind kind, ff_plugin_spec *spec,
                             char **name_slot) {
    const char *name = spec->name;          /* resolved: the kind's default when the caller gave none */
    *name_slot = dup_str(name);
    if (!*name_slot) return ff_errorf(FF_ENOMEM, "ff_flow_new: out of memory");
    FF_TRY(ff_plugin_new(out, kind, name, spec->opts, &f->cfg.space,
                         kind == FF_PLUGIN_NETWORK ? f->params : NULL,
                         kind == FF_PLUGIN_NETWORK ? &f->rng_init : NULL));
    spec->name = *name_slot;
    spec->opts = (*out)->opts;
    return FF_OK;
}

ff_status ff_flow_new(ff_flow_t **out, const ff_flow_config *cfg) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_flow_new: out is NULL");
    *out = NULL;
    if (!cfg) return ff_errorf(FF_EINVAL, "ff_flow_new: cfg is NULL");
    const ff_space *sp = &cfg->space;
    if (sp->k < 1 || sp->d < 1 || sp->cond_classes < 0 || sp->cond_channels < 0)
        return ff_errorf(FF_EINVAL, "ff_flow_new: space needs k >= 1, d >= 1 (2+ symbols), cond_* >= 0; "
                         "got k=%lld d=%lld cond_classes=%lld cond_channels=%lld", (long long)sp->k,
                         (long long)sp->d, (long long)sp->cond_classes, (long long)sp->cond_channels);
    if (sp->cond_classes > 0 && sp->cond_channels > 0)
        return ff_errorf(FF_EINVAL, "ff_flow_new: cond_classes and cond_channels are both set; a flow takes "
                         "one condition tensor");
    if (!(cfg->label_smoothing >= 0 && cfg->label_smoothing < 1))
        return ff_errorf(FF_EINVAL, "ff_flow_new: label_smoothing %g outside [0, 1)", cfg->label_smoothing);
    if (!(cfg->ema_decay >= 0 && cfg->ema_decay < 1))
        return ff_errorf(FF_EINVAL, "ff_flow_new: ema_decay %g outside [0, 1)", cfg->ema_decay);
    if (!isfinite(cfg->grad_clip))
        return ff_errorf(FF_EINVAL, "ff_flow_new: grad_clip %g is not finite", cfg->grad_clip);

    ff_flow_t *f = calloc(1, sizeof *f);
    if (!f) return ff_errorf(FF_ENOMEM, "ff_flow_new: out of memory");
    ff_status s;
    f->cfg = *cfg;
    ff_flow_config_resolve(&f->cfg);
    f->geom = ff_geometry_find(f->cfg.geometry);
    if (!f->geom) { s = ff_error_wrap(FF_EINVAL, "ff_flow_new"); goto fail; }
    f->is_sphere = strcmp(f->geom->name, "sphere") == 0;
    if (!(f->names[0] = dup_str(f->geom->name))) { s = ff_errorf(FF_ENOMEM, "ff_flow_new: out of memory"); goto fail; }
    f->cfg.geometry = f->names[0];

    /* One seed, independent streams: network init, training draws, sampling, validation. */
    ff_rng_t master;
    ff_rng_seed(&master, cfg->seed);
    f->rng_init = ff_rng_split(&master);
    f->rng_train = ff_rng_split(&master);
    f->rng_sample = ff_rng_split(&master);
    f->rng_eval = ff_rng_split(&master);

    if ((s = ff_params_new(&f->params)) != FF_OK) goto fail;
    if ((s = ff_params_set_prefix(f->params, "net.")) != FF_OK) goto fail;
    if ((s = make_plugin(f, &f->source, FF_PLUGIN_SOURCE, &f->cfg.source, &f->names[1])) != FF_OK) goto fail;
    if ((s = make_plugin(f, &f->coupler, FF_PLUGIN_COUPLER, &f->cfg.coupler, &f->names[2])) != FF_OK) goto fail;
    if ((s = make_plugin(f, &f->network, FF_PLUGIN_NETWORK, &f->cfg.network, &f->names[3])) != FF_OK) goto fail;
    if ((s = make_plugin(f, &f->decoder, FF_PLUGIN_DECODER, &f->cfg.decoder, &f->names[4])) != FF_OK) goto fail;
    f->net = f->network->desc->vtable;
    if (ff_params_count(f->params) == 0) {
        s = ff_errorf(FF_EPLUGIN, "ff_flow_new: network \"%s\" registered no parameters", f->names[3]);
        goto fail;
    }
    if ((s = ff_optim_new(&f->optim, f->params, &f->cfg.optim)) != FF_OK) goto fail;
    if (f->cfg.ema_decay > 0 && (s = ff_ema_new(&f->ema, f->params, f->cfg.ema_decay)) != FF_OK) goto fail;
    if ((s = ff_tape_new(&f->tape, (size_t)1 << 20)) != FF_OK) goto fail;
    ff_tape_set_rng(f->tape, &f->rng_train);
    if ((s = ff_flow_config_json(&f->cfg, &f->config_json)) != FF_OK) { s = ff_error_wrap(s, "ff_flow_new"); goto fail; }
    *out = f;
    return FF_OK;
fail:
    ff_flow_free(f);
    return s;
}

void ff_flow_free(ff_flow_t *f) {
    if (!f) return;
    free_scratch(f);
    ff_tape_free(f->tape);
    for (int i = 0; i < f->n_part_tapes; i++) ff_tape_free(f->part_tapes[i]);
    free(f->part_tapes);
    ff_ema_free(f->ema);
    ff_optim_free(f->optim);
    ff_plugin_free(f->decoder);
    ff_plugin_free(f->network);
    ff_plugin_free(f->coupler);
    ff_plugin_free(f->source);
    ff_params_free(f->params);
    for (int i = 0; i < 5; i++) free(f->names[i]);
    free(f->config_json);
    free(f);
}

/* ---- argument checks ---------------------------------------------------------------------------- */

static ff_status check_batch(const ff_flow_t *f, const char *fn, const char *what, const ff_tensor_t *x,
                             int64_t n) {
    const ff_space *sp = &f->cfg.space;
    char sb[64];
    if (!x) return ff_errorf(FF_EINVAL, "%s: %s is NULL", fn, what);
    if (x->ndim != 3 || x->shape[1] != sp->k || x->shape[2] != sp->d + 1)
        return ff_errorf(FF_ESHAPE, "%s: %s is [%s], expected [n, %lld, %lld] (n, k, d+1)", fn, what,
                         ff_shape_str(x, sb, sizeof sb), (long long)sp->k, (long long)sp->d + 1);
    if (n >= 0 && x->shape[0] != n)
        return ff_errorf(FF_ESHAPE, "%s: %s has %lld rows, expected %lld", fn, what, (long long)x->shape[0],
                         (long long)n);
    if (!ff_tensor_is_contiguous(x)) return ff_errorf(FF_EINVAL, "%s: %s must be contiguous", fn, what);
    return FF_OK;
}

static ff_status check_cond(const ff_flow_t *f, const char *fn, const ff_tensor_t *cond, int64_t n) {
    const ff_space *sp = &f->cfg.space;
    char sb[64];
    if (sp->cond_classes <= 0 && sp->cond_channels <= 0) {
        if (cond) return ff_errorf(FF_EINVAL, "%s: cond given but the space has no condition", fn);
        return FF_OK;
    }
    if (!cond)
        return ff_errorf(FF_EINVAL, "%s: the space has %s %lld but cond is NULL", fn,
                         sp->cond_classes > 0 ? "cond_classes" : "cond_channels",
                         (long long)(sp->cond_classes > 0 ? sp->cond_classes : sp->cond_channels));
    if (!ff_tensor_is_contiguous(cond)) return ff_errorf(FF_EINVAL, "%s: cond must be contiguous", fn);
    if (sp->cond_classes > 0) {
        if (cond->ndim != 1 || cond->shape[0] != n)
            return ff_errorf(FF_ESHAPE, "%s: cond is [%s], expected [%lld] class ids", fn,
                             ff_shape_str(cond, sb, sizeof sb), (long long)n);
        for (int64_t i = 0; i < n; i++) {
            float c = cond->data[i];
            if (!(c >= 0 && c < (float)sp->cond_classes && c == floorf(c)))
                return ff_errorf(FF_EINVAL, "%s: cond[%lld] = %g is not a class id in [0, %lld)", fn,
                                 (long long)i, c, (long long)sp->cond_classes);
        }
    } else if (cond->ndim != 3 || cond->shape[0] != n || cond->shape[1] != sp->k ||
               cond->shape[2] != sp->cond_channels) {
        return ff_errorf(FF_ESHAPE, "%s: cond is [%s], expected [%lld, %lld, %lld]", fn,
                         ff_shape_str(cond, sb, sizeof sb), (long long)n, (long long)sp->k,
                         (long long)sp->cond_channels);
    }
    if (ff_tensor_check_finite(cond, "cond") != FF_OK) return ff_error_wrap(FF_ENUMERIC, "%s", fn);
    return FF_OK;
}

/* Borrowed header for rows [i0, i0+m) of a contiguous tensor (no refcount: valid while t lives). */
static ff_tensor_t rows_view(const ff_tensor_t *t, int64_t i0, int64_t m) {
    ff_tensor_t v = *t;
    v.data = t->data + i0 * t->stride[0];
    v.shape[0] = m;
    v.storage = NULL;
    v.grad = NULL;
    v.node = NULL;
    v.flags = 0;
    v.gen = 0;
    return v;
}

/* ---- the training step --------------------------------------------------------------------------- */

/* Everything up to the loss, shared by step and eval_loss: draws (t, x0, coupling) from rng, builds
 * x_t and u_t, runs the network on the tape and returns the scalar loss node in *loss. */
static ff_status forward_loss(ff_flow_t *f, const char *fn, const ff_tensor_t *x1, const ff_tensor_t *x0,
                              const ff_tensor_t *cond, ff_rng_t *rng, ff_tensor_t **loss) {
    int64_t n = x1->shape[0];
    ff_status s;
    FF_TRY(ensure_scratch(f, n));
    /* data: optional label smoothing on the simplex, then sphere and geometry coordinates */
    if (f->cfg.label_smoothing > 0) FF_TRY(ff_sphere_smooth_labels(f->p1, x1, f->cfg.label_smoothing));
    else FF_TRY(ff_tensor_copy(f->p1, x1));
    FF_TRY(ff_sphere_from_simplex(f->x1s, f->p1));
    if (!f->is_sphere) FF_TRY(f->geom->from_simplex(f->x1g, f->p1));
    /* source draws (sphere coordinates), times, coupling */
    if (x0) FF_TRY(ff_tensor_copy(f->x0s, x0));
    else {
        const ff_source_vtable *src = f->source->desc->vtable;
        if ((s = src->sample(f->source->state, rng, f->x0s)) != FF_OK)
            return ff_error_wrap(s, "%s: source \"%s\"", fn, f->cfg.source.name);
    }
    /* t ~ U[0, 1) in float: 24 random bits, so rounding can never produce t = 1 */
    for (int64_t i = 0; i < n; i++) f->t->data[i] = (float)(ff_rng_u64(rng) >> 40) * 0x1p-24f;
    const ff_coupler_vtable *cp = f->coupler->desc->vtable;
    double t_pair = now_ms();
    if ((s = cp->pair(f->coupler->state, f->x0s, f->x1s, rng, f->perm)) != FF_OK)
        return ff_error_wrap(s, "%s: coupler \"%s\"", fn, f->cfg.coupler.name);
    f->pair_ms = now_ms() - t_pair;
    int64_t row = f->cfg.space.k * (f->cfg.space.d + 1);
    for (int64_t i = 0; i < n; i++) {
        int32_t j = f->perm[i];
        if (j < 0 || j >= n)
            return ff_errorf(FF_EPLUGIN, "%s: coupler \"%s\" returned perm[%lld] = %d outside [0, %lld)", fn,
                             f->cfg.coupler.name, (long long)i, (int)j, (long long)n);
        memcpy(f->x0p->data + i * row, f->x0s->data + (int64_t)j * row, (size_t)row * sizeof(float));
    }
    if (f->is_sphere) FF_TRY(ff_tensor_copy(f->x0g, f->x0p));
    else {
        FF_TRY(ff_sphere_to_simplex(f->x0g, f->x0p));
        FF_TRY(f->geom->from_simplex(f->x0g, f->x0g));
    }
    FF_TRY(f->geom->interpolate(f->xt, f->ut, f->x0g, f->x1g, f->t));

    /* network, projection, loss = mean over the batch of the summed squared error */
    ff_tape_t *tp = f->tape;
    ff_tensor_t *v = f->net->forward(f->network->state, tp, f->xt, f->t, (ff_tensor_t *)cond);
    ff_tensor_t *pv = f->geom->project(tp, f->xt, v);
    ff_tensor_t *l = ff_mul_scalar(tp, ff_sum_all(tp, ff_square(tp, ff_sub(tp, pv, f->ut))), 1.0f / (float)n);
    if ((s = ff_tape_status(tp)) != FF_OK)
        return ff_error_wrap(s, "%s: network \"%s\"", fn, f->cfg.network.name);
    if (!v || v->ndim != 3 || v->shape[0] != n || v->shape[1] != f->cfg.space.k ||
        v->shape[2] != f->cfg.space.d + 1) {
        char sb[64];
        return ff_errorf(FF_EPLUGIN, "%s: network \"%s\" returned [%s], expected [%lld, %lld, %lld]", fn,
                         f->cfg.network.name, v ? ff_shape_str(v, sb, sizeof sb) : "NULL", (long long)n,
                         (long long)f->cfg.space.k, (long long)f->cfg.space.d + 1);
    }
    *loss = l;
    return FF_OK;
}

static ff_status check_step_inputs(ff_flow_t *f, const char *fn, const ff_tensor_t *x1, const ff_tensor_t *x0,
                                   const ff_tensor_t *cond) {
    FF_TRY(check_batch(f, fn, "x1", x1, -1));
    int64_t n = x1->shape[0];
    if (n < 1) return ff_errorf(FF_EINVAL, "%s: empty batch", fn);
    if (x0) FF_TRY(check_batch(f, fn, "x0", x0, n));
    FF_TRY(check_cond(f, fn, cond, n));
    return FF_OK;
}

/* Discards the accumulated gradient: the block is zeroed, the micro-batch count and its sums reset. */
static void grad_clear(ff_flow_t *f) {
    ff_params_zero_grad(f->params);
    f->grad_count = 0;
    f->grad_ms = 0;
    f->couple_ms = 0;
    f->grad_loss = 0;
}

/* ff_flow_grad under the caller's name fn (ff_flow_step's messages keep naming ff_flow_step). */
static ff_status grad_impl(ff_flow_t *f, const char *fn, const ff_tensor_t *x1, const ff_tensor_t *x0,
                           const ff_tensor_t *cond, ff_step_stats *stats) {
    if (!f) return ff_errorf(FF_EINVAL, "%s: flow is NULL", fn);
    double t0 = now_ms();
    long long stepno = (long long)f->steps + 1;
    ff_status s;
    FF_TRY(check_step_inputs(f, fn, x1, x0, cond));
    if (ff_tensor_check_finite(x1, "x1") != FF_OK ||
        (x0 && ff_tensor_check_finite(x0, "x0") != FF_OK))
        return ff_error_wrap(FF_ENUMERIC, "%s: step %lld (last good parameters kept)", fn, stepno);

    ff_tensor_t *loss = NULL;
    ff_tape_reset(f->tape);
    ff_tape_set_grad(f->tape, 1);
    ff_tape_set_training(f->tape, 1);
    if ((s = forward_loss(f, fn, x1, x0, cond, &f->rng_train, &loss)) != FF_OK) return s;
    double lv = loss->data[0];
    if (!isfinite(lv))
        return ff_errorf(FF_ENUMERIC, "%s: step %lld: loss is %s (last good parameters kept)", fn, stepno,
                         isnan(lv) ? "NaN" : "Inf");
    /* backward adds (+=) into the block: the first micro-batch after an update starts it from zero,
     * later ones add to the earlier ones' sum, so accumulation costs nothing extra */
    if (f->grad_count == 0) ff_params_zero_grad(f->params);
    if ((s = ff_tape_backward(f->tape, loss)) != FF_OK) {
        grad_clear(f);       /* a partial backward leaves no usable sum */
        return ff_error_wrap(s, "%s: step %lld (the accumulated gradient was discarded)", fn, stepno);
    }
    f->grad_count++;
    f->grad_loss += lv;
    double ms = now_ms() - t0;
    f->grad_ms += ms;
    f->couple_ms += f->pair_ms;
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->loss = lv;
        stats->ms = ms;
        stats->couple_ms = f->pair_ms;
        stats->step = f->steps;
    }
    return FF_OK;
}

static ff_status update_impl(ff_flow_t *f, const char *fn, ff_step_stats *stats) {
    if (!f) return ff_errorf(FF_EINVAL, "%s: flow is NULL", fn);
    double t0 = now_ms();
    long long stepno = (long long)f->steps + 1;
    if (f->grad_count < 1)
        return ff_errorf(FF_EINVAL, "%s: step %lld: no gradient accumulated since the last update (call "
                         "ff_flow_grad on at least one batch first)", fn, stepno);
    /* the mean over micro-batches: n equal micro-batches of b give the gradient of one batch of n*b */
    if (f->grad_count > 1) {
        float *g = ff_params_grad(f->params), scale = 1.0f / (float)f->grad_count;
        int64_t numel = ff_params_numel(f->params);
        for (int64_t i = 0; i < numel; i++) g[i] *= scale;
    }
    float norm = 0;
    if (ff_clip_grad_norm(f->params, f->cfg.grad_clip, &norm) != FF_OK) {
        grad_clear(f);
        return ff_errorf(FF_ENUMERIC, "%s: step %lld: gradient is not finite (last good parameters kept; the "
                         "accumulated gradient was discarded)", fn, stepno);
    }
    float lr = ff_lr_at(&f->cfg.lr, f->steps);
    ff_status s;
    if ((s = ff_optim_step(f->optim, lr)) != FF_OK) return ff_error_wrap(s, "%s: step %lld", fn, stepno);
    if (f->ema) ff_ema_update_at(f->ema, f->steps);
    f->steps++;
    if (stats) {
        stats->loss = f->grad_loss / f->grad_count;
        stats->grad_norm = norm;
        stats->lr = lr;
        stats->step = f->steps;
        stats->ms = f->grad_ms + (now_ms() - t0);
        stats->couple_ms = f->couple_ms;
    }
    /* the block keeps the gradient just applied (for diagnostics) until the next ff_flow_grad zeroes
     * it: one pass over it per step, as before the split */
    f->grad_count = 0;
    f->grad_ms = 0;
    f->couple_ms = 0;
    f->grad_loss = 0;
    return FF_OK;
}

ff_status ff_flow_grad(ff_flow_t *f, const ff_tensor_t *x1, const ff_tensor_t *x0, const ff_tensor_t *cond,
                       ff_step_stats *stats) {
    return grad_impl(f, "ff_flow_grad", x1, x0, cond, stats);
}

ff_status ff_flow_update(ff_flow_t *f, ff_step_stats *stats) { return update_impl(f, "ff_flow_update", stats); }

ff_status ff_flow_step(ff_flow_t *f, const ff_tensor_t *x1, const ff_tensor_t *x0, const ff_tensor_t *cond,
                       ff_step_stats *stats) {
    FF_TRY(grad_impl(f, "ff_flow_step", x1, x0, cond, NULL));
    return update_impl(f, "ff_flow_step", stats);
}

float *ff_flow_grad_block(ff_flow_t *f, size_t *n) {
    if (n) *n = f ? (size_t)ff_params_numel(f->params) : 0;
    return f ? ff_params_grad(f->params) : NULL;
}

int  ff_flow_grad_count(const ff_flow_t *f) { return f ? f->grad_count : 0; }
void ff_flow_grad_zero(ff_flow_t *f) { if (f) grad_clear(f); }

ff_status ff_flow_eval_loss(ff_flow_t *f, const ff_tensor_t *x1, const ff_tensor_t *cond, double *loss) {
    const char *fn = "ff_flow_eval_loss";
    if (!f) return ff_errorf(FF_EINVAL, "%s: flow is NULL", fn);
    if (!loss) return ff_errorf(FF_EINVAL, "%s: loss is NULL", fn);
    FF_TRY(check_step_inputs(f, fn, x1, NULL, cond));
    if (ff_tensor_check_finite(x1, "x1") != FF_OK) return ff_error_wrap(FF_ENUMERIC, "%s", fn);
    ff_tensor_t *l = NULL;
    ff_tape_reset(f->tape);
    ff_tape_set_grad(f->tape, 0);
    ff_tape_set_training(f->tape, 0);
    ff_status s = forward_loss(f, fn, x1, NULL, cond, &f->rng_eval, &l);
    ff_tape_set_grad(f->tape, 1);
    ff_tape_set_training(f->tape, 1);
    if (s != FF_OK) return s;
    *loss = l->data[0];
    return FF_OK;
}

const ff_tensor_t *ff_flow_last_t(const ff_flow_t *f) { return f && f->n > 0 ? f->t : NULL; }

/* ---- sampling ------------------------------------------------------------------------------------ */

typedef struct field_ctx {
    ff_flow_t   *f;
    ff_tape_t   *tp;         /* this part's tape */
    ff_tensor_t *cond;       /* rows of this part, or NULL */
} field_ctx;

/* The sampler's field: network in no-grad, no-dropout mode, projected to the tangent space at y. */
static ff_status sample_field(void *ctx, const ff_tensor_t *y, double t, ff_tensor_t *v) {
    field_ctx *c = ctx;
    ff_flow_t *f = c->f;
    ff_tape_t *tp = c->tp;
    int64_t n = y->shape[0];
    ff_tape_reset(tp);
    ff_tape_set_grad(tp, 0);
    ff_tape_set_training(tp, 0);
    ff_tensor_t *tt = ff_tape_alloc(tp, 1, (int64_t[]){ n });
    if (tt) for (int64_t i = 0; i < n; i++) tt->data[i] = (float)t;
    ff_tensor_t *yy = (ff_tensor_t *)y;
    ff_tensor_t *out = f->geom->project(tp, yy, f->net->forward(f->network->state, tp, yy, tt, c->cond));
    ff_status s = ff_tape_status(tp);
    if (s != FF_OK) return ff_error_wrap(s, "network \"%s\"", f->cfg.network.name);
    if (!out || !ff_tensor_same_shape(out, v))
        return ff_errorf(FF_EPLUGIN, "network \"%s\": output shape does not match the state", f->cfg.network.name);
    return ff_tensor_copy(v, out);
}

/* How many parts a chunk of b rows splits into: OpenBLAS's thread count when the network's forward
 * is reentrant (it may run on several tapes at once), else 1. Rows are independent in the network,
 * so each part is a row range on its own thread and tape (ff_threads_run): the elementwise work
 * between the GEMMs runs on every core too, where OpenBLAS's own threads leave it to one. */
static int sample_parts(const ff_flow_t *f, int64_t b) {
    int w = ff_threads_get();
    if (w <= 1 || !ff_plugin_forward_reentrant(f->network->desc)) return 1;
    return (int64_t)w > b ? (int)b : w;
}

/* Tapes for parts 1..n-1 (part 0 runs on the flow's own tape). */
static ff_status ensure_part_tapes(ff_flow_t *f, int n, const char *fn) {
    if (n - 1 <= f->n_part_tapes) return FF_OK;
    ff_tape_t **p = realloc(f->part_tapes, (size_t)(n - 1) * sizeof *p);
    if (!p) return ff_errorf(FF_ENOMEM, "%s: tapes for %d sampler parts", fn, n);
    f->part_tapes = p;
    for (; f->n_part_tapes < n - 1; f->n_part_tapes++)
        FF_TRY(ff_tape_new(&f->part_tapes[f->n_part_tapes], (size_t)1 << 20));
    return FF_OK;
}

/* Row r0 of part w when n rows split into n_parts (sizes differ by at most one row). */
static int64_t part_row(int64_t n, int w, int n_parts) { return n * w / n_parts; }

/* A chunk's rows split into parts (sample_parts), each integrated from t = 0 to 1 on its own thread. */
typedef struct sample_part {
    field_ctx    ctx;
    ff_tensor_t  y, cond;        /* rows views of the chunk's state and condition */
    ff_ode_stats os;
    ff_status    s;
    char        *err;            /* the part's message (messages are per thread), or NULL */
} sample_part;

typedef struct sample_job {
    ff_flow_t         *f;
    const ff_ode_opts *oo;
    sample_part       *part;
} sample_job;

static void sample_part_run(void *arg, int w) {
    sample_job *j = arg;
    sample_part *p = &j->part[w];
    p->s = ff_ode_integrate(j->f->geom, sample_field, &p->ctx, &p->y, 0.0, 1.0, j->oo, &p->os);
    p->err = p->s != FF_OK ? strdup(ff_last_error()) : NULL;
}

/* Integrates the b rows of y (cond: their rows or NULL), rows i0.. of the caller's batch, in parts.
 * nfe: the chunk's field evaluations (the largest part's count: parts run side by side). A failure
 * names the failing part's rows. */
static ff_status integrate_chunk(ff_flow_t *f, const char *fn, int64_t i0, ff_tensor_t *y, ff_tensor_t *cond,
                                 const ff_ode_opts *oo, int64_t *nfe) {
    int64_t b = y->shape[0];
    int n_parts = sample_parts(f, b);
    if (n_parts > 1) FF_TRY(ensure_part_tapes(f, n_parts, fn));
    sample_part *part = calloc((size_t)n_parts, sizeof *part);
    if (!part) return ff_errorf(FF_ENOMEM, "%s: %d sampler parts", fn, n_parts);
    for (int w = 0; w < n_parts; w++) {
        sample_part *p = &part[w];
        int64_t r0 = part_row(b, w, n_parts), r1 = part_row(b, w + 1, n_parts);
        p->y = rows_view(y, r0, r1 - r0);
        p->ctx = (field_ctx){ f, w == 0 ? f->tape : f->part_tapes[w - 1], NULL };
        if (cond) { p->cond = rows_view(cond, r0, r1 - r0); p->ctx.cond = &p->cond; }
    }
    sample_job job = { f, oo, part };
    ff_threads_run(n_parts, sample_part_run, &job);
    ff_status s = FF_OK;
    *nfe = 0;
    for (int w = 0; w < n_parts; w++) {
        sample_part *p = &part[w];
        if (p->os.nfe > *nfe) *nfe = p->os.nfe;
        if (s == FF_OK && p->s != FF_OK) {
            int64_t r0 = i0 + part_row(b, w, n_parts), r1 = i0 + part_row(b, w + 1, n_parts);
            ff_errorf(p->s, "%s", p->err ? p->err : "(no message)");
            s = ff_error_wrap(p->s, "%s: rows %lld..%lld", fn, (long long)r0, (long long)(r1 - 1));
        }
        free(p->err);
    }
    free(part);
    return s;
}

ff_status ff_flow_sample(ff_flow_t *f, ff_tensor_t *out, const ff_tensor_t *x0, const ff_tensor_t *cond,
                         const ff_sample_opts *o, ff_sample_stats *stats) {
    const char *fn = "ff_flow_sample";
    if (!f) return ff_errorf(FF_EINVAL, "%s: flow is NULL", fn);
    FF_TRY(check_batch(f, fn, "out", out, -1));
    int64_t n = out->shape[0];
    if (x0) {
        FF_TRY(check_batch(f, fn, "x0", x0, n));
        if (ff_tensor_check_finite(x0, "x0") != FF_OK) return ff_error_wrap(FF_ENUMERIC, "%s", fn);
    }
    FF_TRY(check_cond(f, fn, cond, n));
    ff_sample_opts so = o ? *o : ff_flow_default_sample_opts();
    if (!so.stepper) so.stepper = "euler";
    if (so.steps < 1) return ff_errorf(FF_EINVAL, "%s: steps must be >= 1, got %d", fn, so.steps);
    int64_t B = so.batch > 0 ? so.batch : 4096;
    if (B > n) B = n;
    double t0 = now_ms();
    ff_sample_stats st = { 0, 0 };
    if (n == 0) { if (stats) *stats = st; return FF_OK; }

    const ff_space *sp = &f->cfg.space;
    ff_tensor_t *y = NULL;
    FF_TRY(ff_tensor_new3(&y, B, sp->k, sp->d + 1));
    ff_ode_opts oo = ff_ode_default_opts();
    oo.stepper = so.stepper;
    oo.steps = so.steps;
    oo.eps_abs = so.eps_abs;
    oo.eps_rel = so.eps_rel;
    const ff_source_vtable *src = f->source->desc->vtable;
    ff_status s = FF_OK;
    if (f->ema) ff_ema_swap(f->ema);
    for (int64_t i0 = 0; i0 < n && s == FF_OK; i0 += B) {
        int64_t b = n - i0 < B ? n - i0 : B;
        ff_tensor_t yv = rows_view(y, 0, b), ov = rows_view(out, i0, b), cv;
        if (cond) cv = rows_view(cond, i0, b);
        if (x0) {
            ff_tensor_t xv = rows_view(x0, i0, b);
            s = ff_tensor_copy(&yv, &xv);
        } else if ((s = src->sample(f->source->state, &f->rng_sample, &yv)) != FF_OK) {
            s = ff_error_wrap(s, "%s: source \"%s\"", fn, f->cfg.source.name);
        }
        if (s == FF_OK && !f->is_sphere) {
            if ((s = ff_sphere_to_simplex(&yv, &yv)) == FF_OK) s = f->geom->from_simplex(&yv, &yv);
        }
        int64_t nfe = 0;
        if (s == FF_OK) s = integrate_chunk(f, fn, i0, &yv, cond ? &cv : NULL, &oo, &nfe);
        st.nfe += nfe;
        if (s == FF_OK) s = f->geom->to_simplex(&ov, &yv);
    }
    if (f->ema) ff_ema_swap(f->ema);
    ff_tape_reset(f->tape);
    ff_tape_set_grad(f->tape, 1);
    ff_tape_set_training(f->tape, 1);
    ff_tensor_free(y);
    st.ms = now_ms() - t0;
    if (stats) *stats = st;
    return s;
}

/* ---- likelihood ---------------------------------------------------------------------------------- */

typedef struct lik_ctx { ff_flow_t *f; ff_tensor_t *cond; } lik_ctx;

static ff_tensor_t *lik_field(void *ctx, ff_tape_t *tp, ff_tensor_t *y, ff_tensor_t *t) {
    lik_ctx *c = ctx;
    ff_flow_t *f = c->f;
    return f->geom->project(tp, y, f->net->forward(f->network->state, tp, y, t, c->cond));
}

ff_status ff_flow_log_prob(ff_flow_t *f, const ff_tensor_t *p, const ff_tensor_t *cond, const ff_logprob_opts *o,
                           ff_tensor_t *out) {
    const char *fn = "ff_flow_log_prob";
    if (!f) return ff_errorf(FF_EINVAL, "%s: flow is NULL", fn);
    if (!f->is_sphere)
        return ff_errorf(FF_EINVAL, "%s: log_prob needs geometry sphere (this flow uses \"%s\")", fn,
                         f->geom->name);
    FF_TRY(check_batch(f, fn, "p", p, -1));
    int64_t n = p->shape[0];
    FF_TRY(check_cond(f, fn, cond, n));
    if (!out || out->ndim != 1 || out->shape[0] != n || !ff_tensor_is_contiguous(out))
        return ff_errorf(FF_ESHAPE, "%s: out must be a contiguous [%lld]", fn, (long long)n);
    const ff_source_vtable *src = f->source->desc->vtable;
    if (!src->log_prob)
        return ff_errorf(FF_EINVAL, "%s: source \"%s\" has no density", fn, f->cfg.source.name);
    ff_logprob_opts lo = o ? *o : ff_flow_default_logprob_opts();
    ff_likelihood_opts li = ff_likelihood_default_opts();
    li.steps = lo.steps;
    if (lo.estimator) li.estimator = lo.estimator;
    li.probes = lo.probes;

    ff_tensor_t *x1 = NULL, *x0 = NULL, *delta = NULL, *lp0 = NULL, *ld = NULL;
    ff_status s;
    if ((s = ff_tensor_new(&x1, 3, p->shape)) != FF_OK) goto done;
    if ((s = ff_tensor_new(&x0, 3, p->shape)) != FF_OK) goto done;
    if ((s = ff_tensor_new1(&delta, n)) != FF_OK) goto done;
    if ((s = ff_tensor_new1(&lp0, n)) != FF_OK) goto done;
    if ((s = ff_tensor_new1(&ld, n)) != FF_OK) goto done;
    if ((s = ff_sphere_from_simplex(x1, p)) != FF_OK) goto done;
    if ((s = ff_sphere_to_simplex_logdet(x1, ld)) != FF_OK) goto done;
    lik_ctx ctx = { f, (ff_tensor_t *)cond };
    if (f->ema) ff_ema_swap(f->ema);
    /* the divergence needs input gradients only: parameters as constants, so the weight-gradient
     * GEMMs are skipped and the gradient block (an accumulation in progress) is left alone */
    ff_tape_set_param_grads(f->tape, 0);
    s = ff_likelihood_delta(lik_field, &ctx, f->tape, x1, &li, &f->rng_eval, delta, x0);
    ff_tape_set_param_grads(f->tape, 1);
    if (f->ema) ff_ema_swap(f->ema);
    ff_tape_reset(f->tape);
    if (s != FF_OK) { s = ff_error_wrap(s, "%s", fn); goto done; }
    if ((s = src->log_prob(f->source->state, x0, lp0)) != FF_OK) {
        s = ff_error_wrap(s, "%s: source \"%s\"", fn, f->cfg.source.name);
        goto done;
    }
    /* log p_simplex(p) = log p0(x0) + delta + log|d x / d p| */
    for (int64_t i = 0; i < n; i++) out->data[i] = (float)((double)lp0->data[i] + delta->data[i] + ld->data[i]);
done:
    ff_tensor_free(x1); ff_tensor_free(x0); ff_tensor_free(delta); ff_tensor_free(lp0); ff_tensor_free(ld);
    return s;
}

/* ---- decoding ------------------------------------------------------------------------------------ */

ff_status ff_flow_decode(ff_flow_t *f, const ff_tensor_t *p, ff_tensor_t *out) {
    const char *fn = "ff_flow_decode";
    if (!f) return ff_errorf(FF_EINVAL, "%s: flow is NULL", fn);
    FF_TRY(check_batch(f, fn, "p", p, -1));
    if (!out) return ff_errorf(FF_EINVAL, "%s: out is NULL", fn);
    ff_tensor_t *x = NULL;
    FF_TRY(ff_tensor_new(&x, 3, p->shape));
    ff_status s = ff_sphere_from_simplex(x, p);
    if (s == FF_OK) {
        const ff_decoder_vtable *dv = f->decoder->desc->vtable;
        s = dv->decode(f->decoder->state, x, &f->rng_sample, out);
        if (s != FF_OK) s = ff_error_wrap(s, "%s: decoder \"%s\"", fn, f->cfg.decoder.name);
    }
    ff_tensor_free(x);
    return s;
}

/* ---- accessors ----------------------------------------------------------------------------------- */

const ff_flow_config *ff_flow_config_of(const ff_flow_t *f) { return f ? &f->cfg : NULL; }
const char *ff_flow_config_json_of(const ff_flow_t *f) { return f ? f->config_json : NULL; }
ff_params_t *ff_flow_params(ff_flow_t *f) { return f ? f->params : NULL; }
ff_optim_t  *ff_flow_optim(ff_flow_t *f) { return f ? f->optim : NULL; }
ff_ema_t    *ff_flow_ema(ff_flow_t *f) { return f ? f->ema : NULL; }
ff_rng_t    *ff_flow_rng(ff_flow_t *f) { return f ? &f->rng_train : NULL; }
ff_rng_t    *ff_flow_sample_rng(ff_flow_t *f) { return f ? &f->rng_sample : NULL; }
int64_t      ff_flow_steps(const ff_flow_t *f) { return f ? f->steps : 0; }
void         ff_flow_set_steps(ff_flow_t *f, int64_t steps) { if (f) f->steps = steps; }
