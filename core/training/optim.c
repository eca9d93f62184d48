/* optim.c — SGD (momentum, Nesterov, L2 decay) and AdamW over the flat parameter block, global
 * gradient-norm clipping, EMA of weights, LR schedules (optim.h). Update rules follow PyTorch's
 * torch.optim.SGD / torch.optim.AdamW single-tensor implementations step for step.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/optim.h"
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#include "base/vectorize.h"         /* vectorise the update loops */

struct ff_optim {
    ff_params_t    *params;
    ff_optim_config cfg;
    int64_t         numel;
    int64_t         t;        /* steps taken (bias correction)            */
    float          *m, *v;    /* [numel]: AdamW moments / SGD velocity (m) */
};

ff_optim_config ff_optim_adamw_defaults(void) {
    return (ff_optim_config){ .kind = FF_OPTIM_ADAMW, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f,
                              .eps = 1e-8f, .weight_decay = 0.01f };
}

ff_optim_config ff_optim_sgd_defaults(void) {
    return (ff_optim_config){ .kind = FF_OPTIM_SGD, .lr = 1e-2f };
}

ff_status ff_optim_new(ff_optim_t **out, ff_params_t *params, const ff_optim_config *cfg) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_optim_new: out is NULL");
    *out = NULL;
    if (!params || !cfg) return ff_errorf(FF_EINVAL, "ff_optim_new: params or config is NULL");
    if (cfg->kind != FF_OPTIM_SGD && cfg->kind != FF_OPTIM_ADAMW)
        return ff_errorf(FF_EINVAL, "ff_optim_new: unknown optimiser kind %d (FF_OPTIM_SGD or FF_OPTIM_ADAMW)", (int)cfg->kind);
    if (!(cfg->lr >= 0) || !(cfg->weight_decay >= 0))
        return ff_errorf(FF_EINVAL, "ff_optim_new: lr %g and weight_decay %g must be >= 0", (double)cfg->lr, (double)cfg->weight_decay);
    if (cfg->kind == FF_OPTIM_ADAMW &&
        (!(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) || !(cfg->eps >= 0)))
        return ff_errorf(FF_EINVAL, "ff_optim_new: AdamW needs betas in [0, 1) and eps >= 0 (got %g, %g, %g)",
                         (double)cfg->beta1, (double)cfg->beta2, (double)cfg->eps);
    if (cfg->kind == FF_OPTIM_SGD && (!(cfg->momentum >= 0) || (cfg->nesterov && cfg->momentum <= 0)))
        return ff_errorf(FF_EINVAL, "ff_optim_new: SGD momentum %g must be >= 0 (and > 0 with nesterov)", (double)cfg->momentum);
    ff_optim_t *o = calloc(1, sizeof *o);
    if (!o) return ff_errorf(FF_ENOMEM, "ff_optim_new: out of memory");
    o->params = params;
    o->cfg = *cfg;
    o->numel = ff_params_numel(params);
    size_t bytes = (size_t)(o->numel > 0 ? o->numel : 1) * sizeof(float);
    o->m = calloc(1, bytes);
    if (cfg->kind == FF_OPTIM_ADAMW) o->v = calloc(1, bytes);
    if (!o->m || (cfg->kind == FF_OPTIM_ADAMW && !o->v)) {
        ff_optim_free(o);
        return ff_errorf(FF_ENOMEM, "ff_optim_new: cannot allocate state for %lld parameters", (long long)o->numel);
    }
    *out = o;
    return FF_OK;
}

void ff_optim_free(ff_optim_t *o) {
    if (!o) return;
    free(o->m); free(o->v); free(o);
}

static void step_adamw(ff_optim_t *o, float lr) {
    const ff_optim_config *c = &o->cfg;
    float *restrict p = ff_params_data(o->params);
    const float *restrict g = ff_params_grad(o->params);
    float *restrict m = o->m, *restrict v = o->v;
    const int64_t n = o->numel;
    o->t++;
    const double bc1 = 1.0 - pow((double)c->beta1, (double)o->t);
    const double bc2 = 1.0 - pow((double)c->beta2, (double)o->t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    /* scalars formed in double and rounded once, as PyTorch does with its Python floats */
    const float decay = (float)(1.0 - (double)lr * c->weight_decay), w1 = (float)(1.0 - (double)c->beta1);
    const float b2 = c->beta2, w2 = (float)(1.0 - (double)c->beta2);
    const float eps = c->eps;
    int64_t i = 0;
#if defined(__SSE2__)
    /* GCC will not vectorise sqrtf under the default -fmath-errno; the same operations, 4 lanes */
    const __m128 vdecay = _mm_set1_ps(decay), vw1 = _mm_set1_ps(w1), vb2 = _mm_set1_ps(b2), vw2 = _mm_set1_ps(w2);
    const __m128 vstep = _mm_set1_ps(step_size), vbc2 = _mm_set1_ps(bc2_sqrt), veps = _mm_set1_ps(eps);
    for (; i + 4 <= n; i += 4) {
        const __m128 gi = _mm_loadu_ps(g + i), m0 = _mm_loadu_ps(m + i);
        const __m128 pi = _mm_mul_ps(_mm_loadu_ps(p + i), vdecay);
        const __m128 mi = _mm_add_ps(m0, _mm_mul_ps(vw1, _mm_sub_ps(gi, m0)));
        const __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), vb2), _mm_mul_ps(_mm_mul_ps(vw2, gi), gi));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        const __m128 den = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vbc2), veps);
        _mm_storeu_ps(p + i, _mm_sub_ps(pi, _mm_mul_ps(vstep, _mm_div_ps(mi, den))));
    }
#endif
    for (; i < n; i++) {
        const float gi = g[i];
        float pi = p[i] * decay;
        const float mi = m[i] + w1 * (gi - m[i]);            /* torch: exp_avg.lerp_(grad, 1 - beta1) */
        const float vi = v[i] * b2 + w2 * gi * gi;
        m[i] = mi; v[i] = vi;
        p[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

static void step_sgd(ff_optim_t *o, float lr) {
    const ff_optim_config *c = &o->cfg;
    float *restrict p = ff_params_data(o->params);
    const float *restrict g = ff_params_grad(o->params);
    float *restrict buf = o->m;
    const int64_t n = o->numel;
    const float wd = c->weight_decay, mu = c->momentum;
    const int first = o->t == 0;
    o->t++;
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        if (mu != 0.0f) {
            const float b = first ? d : mu * buf[i] + d;
            buf[i] = b;
            d = c->nesterov ? d + mu * b : b;
        }
        p[i] -= lr * d;
    }
}

ff_status ff_optim_step(ff_optim_t *o, float lr) {
    if (!o) return ff_errorf(FF_EINVAL, "ff_optim_step: optimiser is NULL");
    if (!(lr >= 0) || !isfinite(lr)) return ff_errorf(FF_EINVAL, "ff_optim_step: lr %g must be finite and >= 0", (double)lr);
    if (ff_params_numel(o->params) != o->numel)
        return ff_errorf(FF_EINVAL, "ff_optim_step: the registry has %lld parameters, the optimiser was built for %lld "
                         "(create the optimiser after every ff_params_add)",
                         (long long)ff_params_numel(o->params), (long long)o->numel);
    if (o->cfg.kind == FF_OPTIM_ADAMW) step_adamw(o, lr); else step_sgd(o, lr);
    return FF_OK;
}

ff_status ff_optim_state(ff_optim_t *o, float **m, float **v, int64_t *numel, int64_t **t) {
    if (!o) return ff_errorf(FF_EINVAL, "ff_optim_state: optimiser is NULL");
    if (m) *m = o->m;
    if (v) *v = o->v;
    if (numel) *numel = o->numel;
    if (t) *t = &o->t;
    return FF_OK;
}

const ff_optim_config *ff_optim_get_config(const ff_optim_t *o) { return o ? &o->cfg : NULL; }

ff_status ff_clip_grad_norm(ff_params_t *p, float max_norm, float *norm_out) {
    if (!p) return ff_errorf(FF_EINVAL, "ff_clip_grad_norm: params is NULL");
    float *g = ff_params_grad(p);
    const int64_t n = ff_params_numel(p);
    double s = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 4096) {          /* float partials per block, double total */
        const int64_t e = i0 + 4096 < n ? i0 + 4096 : n;
        float acc[8] = { 0 }, part = 0;                  /* 8 lanes: vectorisable without fast-math */
        int64_t i = i0;
        for (; i + 8 <= e; i += 8) for (int j = 0; j < 8; j++) acc[j] += g[i + j] * g[i + j];
        for (; i < e; i++) part += g[i] * g[i];
        for (int j = 0; j < 8; j++) part += acc[j];
        s += part;
    }
    const double norm = sqrt(s);
    if (norm_out) *norm_out = (float)norm;
    if (!isfinite(norm)) return ff_errorf(FF_ENUMERIC, "ff_clip_grad_norm: gradient norm is %s", isnan(norm) ? "NaN" : "Inf");
    if (max_norm > 0) {
        const double coef = (double)max_norm / (norm + 1e-6);     /* torch: clamp(coef, max=1) */
        if (coef < 1.0) {
            const float c = (float)coef;
            for (int64_t i = 0; i < n; i++) g[i] *= c;
        }
    }
    return FF_OK;
}

/* ---- EMA -------------------------------------------------------------------------------------- */

struct ff_ema { ff_params_t *params; float decay; int64_t numel; float *w; };

ff_status ff_ema_new(ff_ema_t **out, ff_params_t *p, float decay) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_ema_new: out is NULL");
    *out = NULL;
    if (!p) return ff_errorf(FF_EINVAL, "ff_ema_new: params is NULL");
    if (!(decay >= 0 && decay <= 1)) return ff_errorf(FF_EINVAL, "ff_ema_new: decay %g outside [0, 1]", (double)decay);
    ff_ema_t *e = calloc(1, sizeof *e);
    int64_t n = ff_params_numel(p);
    if (e) e->w = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!e || !e->w) { free(e); return ff_errorf(FF_ENOMEM, "ff_ema_new: cannot allocate %lld floats", (long long)n); }
    e->params = p; e->decay = decay; e->numel = n;
    if (n > 0) memcpy(e->w, ff_params_data(p), (size_t)n * sizeof(float));
    *out = e;
    return FF_OK;
}

void ff_ema_free(ff_ema_t *e) { if (e) { free(e->w); free(e); } }

static void ema_blend(ff_ema_t *e, float decay) {
    const float *restrict p = ff_params_data(e->params);
    float *restrict w = e->w;
    const float a = 1.0f - decay;
    for (int64_t i = 0; i < e->numel; i++) w[i] += a * (p[i] - w[i]);     /* decay*w + (1-decay)*p */
}

void ff_ema_update(ff_ema_t *e) { if (e) ema_blend(e, e->decay); }

void ff_ema_update_at(ff_ema_t *e, int64_t step) {
    if (!e) return;
    double warm = step < 0 ? 0.1 : (1.0 + (double)step) / (10.0 + (double)step);
    ema_blend(e, warm < e->decay ? (float)warm : e->decay);
}

void ff_ema_swap(ff_ema_t *e) {
    if (!e) return;
    float *p = ff_params_data(e->params);
    for (int64_t i = 0; i < e->numel; i++) { float t = p[i]; p[i] = e->w[i]; e->w[i] = t; }
}

float *ff_ema_data(ff_ema_t *e) { return e ? e->w : NULL; }

/* ---- LR schedules ----------------------------------------------------------------------------- */

float ff_lr_at(const ff_lr_schedule *s, int64_t step) {
    if (!s) return 0.0f;
    const double base = s->base, lo = s->min;
    if (step < 0) step = 0;
    const int64_t warm = (s->kind == FF_LR_WARMUP_LINEAR || s->kind == FF_LR_WARMUP_COSINE) && s->warmup > 0 ? s->warmup : 0;
    if (s->kind == FF_LR_CONSTANT) return s->base;
    if (step < warm) return (float)(base * (double)step / (double)warm);
    const int64_t span = s->total - warm;
    double prog = span > 0 ? (double)(step - warm) / (double)span : 1.0;
    if (prog > 1.0) prog = 1.0;
    switch (s->kind) {
    case FF_LR_COSINE:
    case FF_LR_WARMUP_COSINE: return (float)(lo + 0.5 * (base - lo) * (1.0 + cos(M_PI * prog)));
    case FF_LR_WARMUP_LINEAR: return (float)(lo + (base - lo) * (1.0 - prog));
    default:                  return s->base;
    }
}
