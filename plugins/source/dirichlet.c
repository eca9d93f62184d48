/* plugins/source/dirichlet.c — x = sqrt(p), p ~ Dirichlet(alpha) per position (MATH.md sources).
 * Options: alpha (numbers, default 1: uniform on the simplex; one value for every symbol, or d+1).
 * Cost: sample O(n k (d+1)) gamma draws; log_prob O(n k (d+1)).
 *
 * Density w.r.t. the sphere's surface measure sigma on S^d_+. With p_i = x_i^2 and the chart
 * (x_1..x_d), d sigma = dx_1..dx_d / x_{d+1}, and dp_1..dp_d = 2^d prod_{i<=d} x_i dx_1..dx_d, so
 * dp = 2^d prod_{i<=d+1} x_i d sigma. Hence
 *   log q(x) = lgamma(A) - sum_i lgamma(alpha_i) + sum_i (2 alpha_i - 1) log x_i + d log 2,
 * A = sum_i alpha_i. alpha_i = 1/2 for all i gives the uniform_sphere constant 2^d Gamma((d+1)/2) /
 * pi^{(d+1)/2} = 2^{d+1} / |S^d| exactly (tests/c/test_sources.c checks this and normalisation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/plugin.h>

typedef struct dir_state {
    ff_space space;
    int      nalpha;       /* 1 (shared) or d+1 */
    double  *alpha;        /* [nalpha]          */
    double  *logg;         /* [d+1] scratch, grown on demand */
    int64_t  nlogg;
} dir_state;

static void dir_destroy(void *state) {
    dir_state *s = state;
    if (!s) return;
    free(s->alpha); free(s->logg); free(s);
}

static ff_status dir_create(const ff_options *opts, const ff_space *space, void **state) {
    const double *a;
    int n;
    FF_TRY(ff_options_get_numbers(opts, "alpha", &a, &n));
    for (int i = 0; i < n; i++)
        if (!(a[i] > 0) || !isfinite(a[i]))
            return ff_errorf(FF_EINVAL, "source \"dirichlet\": option \"alpha\" must be finite and > 0 "
                             "(got alpha[%d] = %g)", i, a[i]);
    if (n != 1 && space->d > 0 && n != space->d + 1)
        return ff_errorf(FF_EINVAL, "source \"dirichlet\": option \"alpha\" has %d values; expected 1 or "
                         "d+1 = %lld", n, (long long)space->d + 1);
    dir_state *s = calloc(1, sizeof *s);
    if (!s || !(s->alpha = malloc((size_t)n * sizeof(double)))) {
        free(s);
        return ff_errorf(FF_ENOMEM, "source \"dirichlet\": out of memory");
    }
    memcpy(s->alpha, a, (size_t)n * sizeof(double));
    s->nalpha = n;
    s->space = *space;
    *state = s;
    return FF_OK;
}

static ff_status check_shape(const dir_state *s, const ff_tensor_t *t, int ndim, const char *what) {
    char buf[64];
    if (!t) return ff_errorf(FF_EINVAL, "source \"dirichlet\": %s is NULL", what);
    if (t->ndim != ndim || (ndim == 3 && t->shape[2] < 2))
        return ff_errorf(FF_ESHAPE, "source \"dirichlet\": %s is [%s], expected %s", what,
                         ff_shape_str(t, buf, sizeof buf), ndim == 3 ? "[n, k, d+1] with d+1 >= 2" : "[n]");
    if (ndim == 3 && s->space.k > 0 && (t->shape[1] != s->space.k || t->shape[2] != s->space.d + 1))
        return ff_errorf(FF_ESHAPE, "source \"dirichlet\": %s is [%s], the space has k=%lld, d+1=%lld",
                         what, ff_shape_str(t, buf, sizeof buf), (long long)s->space.k, (long long)s->space.d + 1);
    if (ndim == 3 && s->nalpha != 1 && t->shape[2] != s->nalpha)
        return ff_errorf(FF_ESHAPE, "source \"dirichlet\": %s has d+1 = %lld symbols, option \"alpha\" has %d values",
                         what, (long long)t->shape[2], s->nalpha);
    return FF_OK;
}

static ff_status dir_sample(void *state, ff_rng_t *rng, ff_tensor_t *out) {
    dir_state *s = state;
    FF_TRY(check_shape(s, out, 3, "out"));
    if (!rng) return ff_errorf(FF_EINVAL, "source \"dirichlet\": rng is NULL");
    int64_t n = out->shape[0], k = out->shape[1], D = out->shape[2];
    if (s->nlogg < D) {
        double *g = realloc(s->logg, (size_t)D * sizeof(double));
        if (!g) return ff_errorf(FF_ENOMEM, "source \"dirichlet\": out of memory");
        s->logg = g;
        s->nlogg = D;
    }
    double *lg = s->logg;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            /* log-gammas: for alpha < 1, G(alpha) = G(alpha+1) U^(1/alpha) in logs, so tiny alphas
             * cannot underflow every component to 0. p = softmax(log g). */
            double mx = -INFINITY;
            for (int64_t c = 0; c < D; c++) {
                double a = s->alpha[s->nalpha == 1 ? 0 : c];
                double v;
                if (a < 1.0) {
                    double u;
                    do u = ff_rng_uniform(rng); while (u == 0.0);
                    v = log(ff_rng_gamma(rng, a + 1.0)) + log(u) / a;
                } else {
                    v = log(ff_rng_gamma(rng, a));
                }
                lg[c] = v;
                if (v > mx) mx = v;
            }
            double sum = 0;
            for (int64_t c = 0; c < D; c++) { lg[c] = exp(lg[c] - mx); sum += lg[c]; }
            float *x = out->data + i * out->stride[0] + j * out->stride[1];
            for (int64_t c = 0; c < D; c++) x[c * out->stride[2]] = (float)sqrt(lg[c] / sum);
        }
    return FF_OK;
}

static ff_status dir_log_prob(void *state, const ff_tensor_t *x, ff_tensor_t *out) {
    dir_state *s = state;
    FF_TRY(check_shape(s, x, 3, "x"));
    FF_TRY(check_shape(s, out, 1, "out"));
    int64_t n = x->shape[0], k = x->shape[1], D = x->shape[2];
    if (out->shape[0] != n)
        return ff_errorf(FF_ESHAPE, "source \"dirichlet\": out has %lld rows, x has %lld",
                         (long long)out->shape[0], (long long)n);
    double A = 0, lgsum = 0;
    for (int64_t c = 0; c < D; c++) {
        double a = s->alpha[s->nalpha == 1 ? 0 : c];
        A += a;
        lgsum += lgamma(a);
    }
    double per_pos = lgamma(A) - lgsum + (double)(D - 1) * log(2.0);
    for (int64_t i = 0; i < n; i++) {
        double lp = (double)k * per_pos;
        for (int64_t j = 0; j < k; j++) {
            const float *xp = x->data + i * x->stride[0] + j * x->stride[1];
            double norm2 = 0;
            for (int64_t c = 0; c < D; c++) {
                double v = xp[c * x->stride[2]];
                if (!isfinite(v))
                    return ff_errorf(FF_ENUMERIC, "source \"dirichlet\": x[%lld, %lld, %lld] is not finite",
                                     (long long)i, (long long)j, (long long)c);
                norm2 += v * v;
            }
            if (fabs(sqrt(norm2) - 1.0) > 1e-3)
                return ff_errorf(FF_EINVAL, "source \"dirichlet\": x[%lld, %lld] is not on the unit sphere "
                                 "(norm %.6g); hint: map data with ff_sphere_from_simplex", (long long)i,
                                 (long long)j, sqrt(norm2));
            double pos = 0;
            int zero = 0, blowup = 0;   /* density 0 (outside, or x_i = 0 with alpha_i > 1/2); infinite */
            for (int64_t c = 0; c < D; c++) {
                double v = xp[c * x->stride[2]];
                double e = 2.0 * s->alpha[s->nalpha == 1 ? 0 : c] - 1.0;
                if (v < -1e-6) { zero = 1; break; }                /* outside S^d_+ */
                if (e == 0.0) continue;                            /* x^0 = 1, also at x = 0 */
                if (v > 0) pos += e * log(v);
                else if (e > 0) zero = 1;
                else blowup = 1;
            }
            /* A zero factor wins over an infinite one (the measure-zero corner is given density 0). */
            if (zero) lp = -INFINITY;
            else if (lp != -INFINITY) lp = blowup ? INFINITY : lp + pos;
        }
        out->data[i * out->stride[0]] = (float)lp;
    }
    return FF_OK;
}

static const ff_source_vtable vtable = {
    .create = dir_create, .sample = dir_sample, .log_prob = dir_log_prob, .destroy = dir_destroy,
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_SOURCE, .vtable_size = sizeof vtable,
    .name = "dirichlet", .version = "1.0.0",
    .summary = "sqrt of Dirichlet(alpha) draws on the simplex (alpha = 1: uniform simplex)",
    .options = (const ff_option_spec[]){
        { "alpha", FF_OPT_NUMBERS, "1", "concentration: one value for all symbols, or d+1 values" },
        { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
