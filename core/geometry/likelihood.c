/* likelihood.c — CNF log-density change on (S^d_+)^k: RK4 backwards with the Riemannian divergence
 * tr(P J P) by exact VJPs or Hutchinson probes. MATH.md §Likelihood. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/likelihood.h"
#include "fisherflow/ops.h"

ff_likelihood_opts ff_likelihood_default_opts(void) { return (ff_likelihood_opts){ 100, "auto", 1 }; }

typedef struct {
    ff_tape_field_fn f;
    void            *ctx;
    ff_tape_t       *tp;
    ff_rng_t        *rng;
    ff_tensor_t     *xin, *tin;   /* owned float buffers [shape of x1], [n] */
    int64_t          n, K, m;     /* samples, coordinates per sample, symbols per position */
    int              exact, probes;
    double          *xhat;        /* normalised stage point [n*K] */
    float           *eps;         /* a projected probe [n*K] */
} lk_t;

/* f and div f at the stage point x (double [n*K]) and time t: fout [n*K], div [n]. */
static ff_status eval(lk_t *L, const double *x, double t, double *fout, double *div) {
    const char *fn = "ff_likelihood_delta";
    int64_t n = L->n, K = L->K, m = L->m, N = n * K;
    for (int64_t i = 0; i < N; i++) L->xin->data[i] = (float)x[i];
    for (int64_t i = 0; i < n; i++) L->tin->data[i] = (float)t;
    for (int64_t r = 0; r < N / m; r++) {
        double q = 0;
        for (int64_t i = 0; i < m; i++) q += x[r * m + i] * x[r * m + i];
        q = q > 0 ? 1.0 / sqrt(q) : 0.0;
        for (int64_t i = 0; i < m; i++) L->xhat[r * m + i] = x[r * m + i] * q;
    }
    ff_tape_t *tp = L->tp;
    ff_tape_reset(tp);
    ff_tensor_t *y = ff_tape_leaf(tp, L->xin, 1);
    ff_tensor_t *tt = ff_tape_leaf(tp, L->tin, 0);
    ff_tensor_t *out = y && tt ? L->f(L->ctx, tp, y, tt) : NULL;
    if (!out || ff_tape_status(tp) != FF_OK) {
        ff_status s = ff_tape_status(tp);
        if (s == FF_OK) s = ff_errorf(FF_EINVAL, "%s: the field returned NULL on a healthy tape", fn);
        return ff_error_wrap(s, "%s (t = %g): field", fn, t);
    }
    if (!ff_tensor_same_shape(out, y)) {
        char a[64], b[64];
        return ff_errorf(FF_ESHAPE, "%s: the field returned [%s] for y [%s]", fn, ff_shape_str(out, a, sizeof a),
                         ff_shape_str(y, b, sizeof b));
    }
    for (int64_t i = 0; i < N; i++) {
        float v = out->data[i];
        if (!ff_tensor_is_contiguous(out)) {
            int64_t idx[FF_MAX_DIMS], rem = i;
            for (int d = out->ndim - 1; d >= 0; d--) { idx[d] = rem % out->shape[d]; rem /= out->shape[d]; }
            v = *ff_tensor_at(out, idx);
        }
        if (!isfinite(v))
            return ff_errorf(FF_ENUMERIC, "%s (t = %g): field value %lld is not finite", fn, t, (long long)i);
        fout[i] = v;
    }
    for (int64_t s = 0; s < n; s++) div[s] = 0;
    if (!out->node && out != y) return FF_OK;   /* does not depend on y: zero Jacobian */
    ff_tensor_t *seed = ff_tape_alloc(tp, y->ndim, y->shape);
    if (!seed) return ff_tape_status(tp);
    float *g = y->grad->data;
    if (L->exact) {
        for (int64_t j = 0; j < K; j++) {
            memset(seed->data, 0, sizeof(float) * (size_t)N);
            for (int64_t s = 0; s < n; s++) seed->data[s * K + j] = 1.0f;
            memset(g, 0, sizeof(float) * (size_t)N);
            ff_status st = ff_tape_backward_seed(tp, out, seed);
            if (st != FF_OK) return ff_error_wrap(st, "%s (t = %g): vector-Jacobian product %lld", fn, t, (long long)j);
            /* g[s, :] = row j of J. (J P)_jj = J_jj - x_j sum_{l in j's position} J_jl x_l */
            int64_t b0 = (j / m) * m;
            for (int64_t s = 0; s < n; s++) {
                const float *gr = g + s * K;
                const double *xh = L->xhat + s * K;
                double a = 0;
                for (int64_t l = b0; l < b0 + m; l++) a += gr[l] * xh[l];
                div[s] += gr[j] - xh[j] * a;
            }
        }
    } else {
        for (int p = 0; p < L->probes; p++) {
            for (int64_t r = 0; r < N / m; r++) {   /* eps = P_xhat z, z Rademacher */
                double c = 0;
                float *e = L->eps + r * m;
                const double *xh = L->xhat + r * m;
                for (int64_t i = 0; i < m; i++) {
                    e[i] = (ff_rng_u64(L->rng) >> 63) ? 1.0f : -1.0f;
                    c += e[i] * xh[i];
                }
                for (int64_t i = 0; i < m; i++) e[i] = (float)(e[i] - c * xh[i]);
            }
            memcpy(seed->data, L->eps, sizeof(float) * (size_t)N);
            memset(g, 0, sizeof(float) * (size_t)N);
            ff_status st = ff_tape_backward_seed(tp, out, seed);
            if (st != FF_OK) return ff_error_wrap(st, "%s (t = %g): Hutchinson probe %d", fn, t, p);
            for (int64_t s = 0; s < n; s++) {
                double a = 0;
                for (int64_t l = 0; l < K; l++) a += (double)g[s * K + l] * L->eps[s * K + l];
                div[s] += a / L->probes;
            }
        }
    }
    for (int64_t s = 0; s < n; s++)
        if (!isfinite(div[s]))
            return ff_errorf(FF_ENUMERIC, "%s (t = %g): divergence of sample %lld is not finite", fn, t, (long long)s);
    return FF_OK;
}

ff_status ff_likelihood_delta(ff_tape_field_fn f, void *ctx, ff_tape_t *tp, const ff_tensor_t *x1,
                              const ff_likelihood_opts *o, ff_rng_t *rng, ff_tensor_t *delta, ff_tensor_t *x0_out) {
    const char *fn = "ff_likelihood_delta";
    ff_likelihood_opts def = ff_likelihood_default_opts();
    if (!o) o = &def;
    if (!f || !tp || !x1 || !delta)
        return ff_errorf(FF_EINVAL, "%s: %s is NULL", fn, !f ? "field" : !tp ? "tape" : !x1 ? "x1" : "delta");
    char sa[64], sb[64];
    if (x1->ndim < 2 || x1->ndim > 3 || !ff_tensor_is_contiguous(x1) || x1->shape[x1->ndim - 1] < 1)
        return ff_errorf(FF_ESHAPE, "%s: x1 [%s] must be contiguous [n, k, d+1] or [n, d+1]", fn,
                         ff_shape_str(x1, sa, sizeof sa));
    int64_t n = x1->shape[0], m = x1->shape[x1->ndim - 1], K = n ? ff_tensor_numel(x1) / n : 0, N = n * K;
    if (delta->ndim != 1 || delta->shape[0] != n || !ff_tensor_is_contiguous(delta))
        return ff_errorf(FF_ESHAPE, "%s: delta [%s] must be [n] for x1 [%s]", fn, ff_shape_str(delta, sa, sizeof sa),
                         ff_shape_str(x1, sb, sizeof sb));
    if (x0_out && (!ff_tensor_same_shape(x0_out, x1) || !ff_tensor_is_contiguous(x0_out)))
        return ff_errorf(FF_ESHAPE, "%s: x0_out [%s] != x1 [%s]", fn, ff_shape_str(x0_out, sa, sizeof sa),
                         ff_shape_str(x1, sb, sizeof sb));
    if (o->steps < 1) return ff_errorf(FF_EINVAL, "%s: steps = %d, expected >= 1", fn, o->steps);
    const char *est = o->estimator ? o->estimator : "auto";
    int exact;
    if (!strcmp(est, "exact")) exact = 1;
    else if (!strcmp(est, "hutchinson")) exact = 0;
    else if (!strcmp(est, "auto")) exact = K <= 64;
    else return ff_errorf(FF_EINVAL, "%s: unknown estimator \"%s\" (known: exact, hutchinson, auto)", fn, est);
    if (!exact && o->probes < 1) return ff_errorf(FF_EINVAL, "%s: probes = %d, expected >= 1", fn, o->probes);
    if (!exact && !rng) return ff_errorf(FF_EINVAL, "%s: the Hutchinson estimator needs an rng (got NULL)", fn);
    for (int64_t r = 0; r < N / (m ? m : 1); r++) {
        double q = 0;
        for (int64_t i = 0; i < m; i++) q += (double)x1->data[r * m + i] * x1->data[r * m + i];
        if (!isfinite(q) || fabs(sqrt(q) - 1.0) > FF_SPHERE_NORM_TOL)
            return ff_errorf(FF_EINVAL, "%s: x1 position %lld is not on the unit sphere (norm %g); hint: map simplex "
                             "data with ff_sphere_from_simplex", fn, (long long)r, sqrt(q));
    }

    lk_t L = { f, ctx, tp, rng, NULL, NULL, n, K, m, exact, o->probes, NULL, NULL };
    double *buf = NULL, *dv = NULL;
    ff_status s;
    int training = ff_tape_training(tp);
    ff_tape_set_training(tp, 0);
    ff_tape_set_grad(tp, 1);
    if ((s = ff_tensor_new(&L.xin, x1->ndim, x1->shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new1(&L.tin, n)) != FF_OK) goto fail;
    /* x, stage point, k-sum, k, xhat (doubles N each) + ell, div-sum, div (n each) + eps (floats N) */
    buf = malloc(sizeof(double) * (size_t)(5 * N + 3 * n + 1));
    L.eps = malloc(sizeof(float) * (size_t)(N + 1));
    if (!buf || !L.eps) {
        s = ff_errorf(FF_ENOMEM, "%s: cannot allocate scratch for %lld coordinates", fn, (long long)N);
        goto fail;
    }
    double *x = buf, *xs = buf + N, *ks = buf + 2 * N, *k = buf + 3 * N, *ell = buf + 5 * N;
    double *ds = ell + n;
    dv = ds + n;
    L.xhat = buf + 4 * N;
    for (int64_t i = 0; i < N; i++) x[i] = x1->data[i];
    for (int64_t i = 0; i < n; i++) ell[i] = 0;
    static const double c[4] = { 0.0, 0.5, 0.5, 1.0 }, w[4] = { 1.0, 2.0, 2.0, 1.0 };
    for (int step = 0; step < o->steps; step++) {
        double t = 1.0 - (double)step / o->steps, h = -1.0 / o->steps;   /* backwards in time */
        for (int64_t i = 0; i < N; i++) ks[i] = 0;
        for (int64_t i = 0; i < n; i++) ds[i] = 0;
        for (int st = 0; st < 4; st++) {
            for (int64_t i = 0; i < N; i++) xs[i] = st ? x[i] + c[st] * h * k[i] : x[i];
            if ((s = eval(&L, xs, t + c[st] * h, k, dv)) != FF_OK) goto fail;
            for (int64_t i = 0; i < N; i++) ks[i] += w[st] * k[i];
            for (int64_t i = 0; i < n; i++) ds[i] += w[st] * dv[i];
        }
        for (int64_t i = 0; i < N; i++) x[i] += h / 6.0 * ks[i];
        for (int64_t i = 0; i < n; i++) ell[i] += h / 6.0 * ds[i];
        for (int64_t r = 0; r < N / m; r++) {   /* renormalise, no fold */
            double q = 0;
            for (int64_t i = 0; i < m; i++) q += x[r * m + i] * x[r * m + i];
            if (!(q > 0) || !isfinite(q)) {
                s = ff_errorf(FF_ENUMERIC, "%s: position %lld left the sphere (|x|^2 = %g) at t = %g", fn,
                              (long long)r, q, t + h);
                goto fail;
            }
            q = 1.0 / sqrt(q);
            for (int64_t i = 0; i < m; i++) x[r * m + i] *= q;
        }
    }
    for (int64_t i = 0; i < n; i++) delta->data[i] = (float)ell[i];
    if (x0_out)
        for (int64_t i = 0; i < N; i++) x0_out->data[i] = (float)x[i];
    s = FF_OK;
fail:
    ff_tape_reset(tp);
    ff_tape_set_training(tp, training);
    free(buf);
    free(L.eps);
    ff_tensor_free(L.xin);
    ff_tensor_free(L.tin);
    return s;
}
