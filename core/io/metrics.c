/* metrics.c — histograms, KL and total variation (metrics.h); the triangular grid on the 2-simplex.
 * KL(model || true) as docs/PAPER_PROTOCOLS.md §2 (src/sfm/distribution.py), with 0 log 0 = 0 made explicit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/metrics.h"

int64_t ff_simplex_grid_cell(double pa, double pb, double pc, int64_t res) {
    if (res < 1 || !isfinite(pa) || !isfinite(pb) || !isfinite(pc)) return -1;
    if (pa < -1e-5 || pb < -1e-5 || pc < -1e-5) return -1;
    double s = pa + pb + pc;
    if (s < 0.999 || s > 1.001) return -1;
    double q[3] = { pa > 0 ? pa / s : 0, pb > 0 ? pb / s : 0, 0 };
    q[2] = 1.0 - q[0] - q[1];
    double u = (double)res * q[0], v = (double)res * q[1], w = (double)res - u - v;
    int64_t f[3] = { (int64_t)floor(u), (int64_t)floor(v), (int64_t)floor(w) };
    for (int k = 0; k < 3; k++) f[k] = f[k] < 0 ? 0 : f[k] > res - 1 ? res - 1 : f[k];
    int64_t sum = f[0] + f[1] + f[2];
    while (sum > res - 1) {               /* a lattice point: give it to an upright cell */
        int m = f[2] >= f[0] && f[2] >= f[1] ? 2 : f[0] >= f[1] ? 0 : 1;
        f[m]--;
        sum--;
    }
    if (sum == res - 1) return f[0] * res + f[1];
    if (f[0] + f[1] > res - 2) f[0] = res - 2 - f[1];
    return (res - 1 - f[0]) * res + (res - 1 - f[1]);
}

int ff_simplex_grid_coords(int64_t cell, int64_t res, int64_t *i, int64_t *j, int *down) {
    if (res < 1 || cell < 0 || cell >= res * res) return -1;
    *i = cell / res;
    *j = cell % res;
    *down = *i + *j >= res;
    return 0;
}

int ff_simplex_grid_centre(int64_t cell, int64_t res, double p[3]) {
    int64_t i, j;
    int down;
    if (ff_simplex_grid_coords(cell, res, &i, &j, &down) != 0) return -1;
    double r = (double)res;
    if (!down) { p[0] = ((double)i + 1.0 / 3.0) / r; p[1] = ((double)j + 1.0 / 3.0) / r; }
    else { p[0] = ((double)(res - 1 - i) + 2.0 / 3.0) / r; p[1] = ((double)(res - 1 - j) + 2.0 / 3.0) / r; }
    p[2] = 1.0 - p[0] - p[1];
    return 0;
}

/* Counts of points [n, 3] or [n, 1, 3] per cell into count [res*res] (calloc'd, caller frees);
 * *kept / *skipped: points on / off the simplex. */
static ff_status simplex_counts(const char *fn, const ff_tensor_t *points, int64_t res, int64_t **count,
                                int64_t *kept, int64_t *skipped) {
    char b1[64];
    int ok2 = points->ndim == 2 && points->shape[1] == 3;
    int ok3 = points->ndim == 3 && points->shape[1] == 1 && points->shape[2] == 3;
    if (!ok2 && !ok3)
        return ff_errorf(FF_ESHAPE, "%s: points [%s], expected [n, 3] or [n, 1, 3]", fn,
                         ff_shape_str(points, b1, sizeof b1));
    int64_t n = points->shape[0];
    int64_t *c = calloc((size_t)(res * res), sizeof *c);
    if (!c) return ff_errorf(FF_ENOMEM, "%s: out of memory", fn);
    int64_t last = points->ndim - 1;
    *kept = *skipped = 0;
    for (int64_t r = 0; r < n; r++) {
        const float *q = points->data + r * points->stride[0];
        double pa = q[0], pb = q[points->stride[last]], pc = q[2 * points->stride[last]];
        int64_t cell = ff_simplex_grid_cell(pa, pb, pc, res);
        if (cell < 0) { (*skipped)++; continue; }
        c[cell]++;
        (*kept)++;
    }
    if (*kept == 0) {
        free(c);
        return ff_errorf(FF_EINVAL, "%s: none of the %lld points is on the simplex", fn, (long long)n);
    }
    *count = c;
    return FF_OK;
}

ff_status ff_simplex_hist(const ff_tensor_t *points, int64_t res, ff_tensor_t *hist, int64_t *off) {
    const char *fn = "ff_simplex_hist";
    char b2[64];
    if (!points || !hist) return ff_errorf(FF_EINVAL, "%s: NULL argument", fn);
    if (res < 1) return ff_errorf(FF_EINVAL, "%s: res %lld < 1", fn, (long long)res);
    if (ff_tensor_numel(hist) != res * res || !ff_tensor_is_contiguous(hist))
        return ff_errorf(FF_ESHAPE, "%s: hist [%s], expected %lld contiguous cells (res %lld)", fn,
                         ff_shape_str(hist, b2, sizeof b2), (long long)(res * res), (long long)res);
    int64_t *count = NULL, kept, skipped;
    ff_status s = simplex_counts(fn, points, res, &count, &kept, &skipped);
    if (off) *off = s == FF_OK ? skipped : 0;
    if (s != FF_OK) return s;
    for (int64_t c = 0; c < res * res; c++) hist->data[c] = (float)((double)count[c] / (double)kept);
    free(count);
    return FF_OK;
}

ff_status ff_simplex_metrics_compute(const ff_tensor_t *points, const ff_tensor_t *masses, int64_t res,
                                     ff_simplex_metrics *out) {
    const char *fn = "ff_simplex_metrics_compute";
    char b2[64];
    if (!points || !masses || !out) return ff_errorf(FF_EINVAL, "%s: NULL argument", fn);
    if (res < 1) return ff_errorf(FF_EINVAL, "%s: res %lld < 1", fn, (long long)res);
    int64_t m = res * res;
    if (ff_tensor_numel(masses) != m || !ff_tensor_is_contiguous(masses))
        return ff_errorf(FF_ESHAPE, "%s: masses [%s], expected %lld contiguous cells (res %lld)", fn,
                         ff_shape_str(masses, b2, sizeof b2), (long long)m, (long long)res);
    double sp = 0;
    for (int64_t i = 0; i < m; i++) {
        float v = masses->data[i];
        if (!isfinite(v) || v < 0)
            return ff_errorf(FF_EINVAL, "%s: target mass of cell %lld is %g", fn, (long long)i, v);
        sp += v;
    }
    if (fabs(sp - 1) > 1e-3) return ff_errorf(FF_EINVAL, "%s: target masses sum to %.6g, expected 1", fn, sp);
    int64_t *count = NULL, n, skipped;
    FF_TRY(simplex_counts(fn, points, res, &count, &n, &skipped));
    ff_simplex_metrics r = { 0, 0, n, skipped, 0, 0 };
    double dn = (double)n, denom = dn + 0.5 * (double)m;
    for (int64_t i = 0; i < m; i++) {
        double p = masses->data[i] / sp, q = (double)count[i] / dn;
        r.tv += fabs(q - p);
        if (p > 0 && count[i] == 0) r.missed++;
        if (p == 0 && count[i] > 0) r.outside++;
        if (p > 0) r.kl += p * log(p / (((double)count[i] + 0.5) / denom));
    }
    r.tv *= 0.5;
    free(count);
    *out = r;
    return FF_OK;
}

double ff_log_uniform_simplex(int64_t k, int64_t d) {
    return (double)k * lgamma((double)d + 1.0);
}

ff_status ff_nll_mixture(const float *log_q, int64_t n, double log_u, double eps, ff_nll_stats *out) {
    const char *fn = "ff_nll_mixture";
    if (!log_q || !out) return ff_errorf(FF_EINVAL, "%s: NULL argument", fn);
    if (n < 1) return ff_errorf(FF_EINVAL, "%s: n = %lld points", fn, (long long)n);
    if (!(eps > 0 && eps < 1)) return ff_errorf(FF_EINVAL, "%s: eps = %g, expected 0 < eps < 1", fn, eps);
    if (!isfinite(log_u)) return ff_errorf(FF_EINVAL, "%s: log_u = %g is not finite", fn, log_u);
    ff_nll_stats r = { 0, n, 0 };
    double a0 = log1p(-eps), b = log(eps) + log_u, sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double lq = log_q[i];
        if (lq != lq || lq == INFINITY)
            return ff_errorf(FF_EINVAL, "%s: log-density of point %lld is %g (expected finite or -inf)", fn,
                             (long long)i, lq);
        double a = a0 + lq, hi = a > b ? a : b;   /* log(e^a + e^b), stable */
        if (lq == -INFINITY) { r.outside++; sum += b; }
        else sum += hi + log1p(exp((a > b ? b : a) - hi));
    }
    r.nll = -sum / (double)n;
    *out = r;
    return FF_OK;
}

ff_status ff_divergence_compute(const float *q, const float *p, int64_t n, ff_divergence *out) {
    if (!q || !p || !out) return ff_errorf(FF_EINVAL, "ff_divergence_compute: NULL argument");
    if (n < 1) return ff_errorf(FF_EINVAL, "ff_divergence_compute: n = %lld bins", (long long)n);
    double sq = 0, sp = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(q[i]) || q[i] < 0)
            return ff_errorf(FF_EINVAL, "ff_divergence_compute: model q[%lld] = %g is not a probability", (long long)i, q[i]);
        if (!isfinite(p[i]) || p[i] < 0)
            return ff_errorf(FF_EINVAL, "ff_divergence_compute: target p[%lld] = %g is not a probability", (long long)i, p[i]);
        sq += q[i];
        sp += p[i];
    }
    if (fabs(sq - 1) > 1e-3 || fabs(sp - 1) > 1e-3)
        return ff_errorf(FF_EINVAL, "ff_divergence_compute: sums %.6g (model) and %.6g (target), expected 1", sq, sp);
    ff_divergence d = { 0 };
    for (int64_t i = 0; i < n; i++) {
        double qi = q[i] / sq, pi = p[i] / sp;
        d.tv += fabs(qi - pi);
        if (qi == 0) { d.empty++; continue; }          /* 0 log 0 = 0 */
        if (pi == 0) { d.unsupported++; continue; }
        d.kl += qi * log(qi / pi);
    }
    d.tv *= 0.5;
    if (d.unsupported) d.kl = INFINITY;
    *out = d;
    return FF_OK;
}

ff_status ff_categorical_hist(const ff_tensor_t *tokens, int64_t K, ff_tensor_t *hist) {
    char b1[64], b2[64];
    if (!tokens || !hist) return ff_errorf(FF_EINVAL, "ff_categorical_hist: NULL argument");
    if (K < 1) return ff_errorf(FF_EINVAL, "ff_categorical_hist: K = %lld", (long long)K);
    int onehot = tokens->ndim == 3;
    if ((tokens->ndim != 2 && !onehot) || (onehot && tokens->shape[2] != K))
        return ff_errorf(FF_ESHAPE, "ff_categorical_hist: tokens [%s], expected [n, k] ids or [n, k, %lld]",
                         ff_shape_str(tokens, b1, sizeof b1), (long long)K);
    int64_t n = tokens->shape[0], k = tokens->shape[1];
    if (n < 1) return ff_errorf(FF_EINVAL, "ff_categorical_hist: no samples");
    if (hist->ndim != 2 || hist->shape[0] != k || hist->shape[1] != K || !ff_tensor_is_contiguous(hist))
        return ff_errorf(FF_ESHAPE, "ff_categorical_hist: hist [%s], expected contiguous [%lld, %lld]",
                         ff_shape_str(hist, b2, sizeof b2), (long long)k, (long long)K);
    int64_t *count = calloc((size_t)(k * K), sizeof *count);
    if (!count) return ff_errorf(FF_ENOMEM, "ff_categorical_hist: out of memory");
    for (int64_t s = 0; s < n; s++) {
        for (int64_t pos = 0; pos < k; pos++) {
            const float *row = tokens->data + s * tokens->stride[0] + pos * tokens->stride[1];
            int64_t id;
            if (onehot) {
                id = 0;
                float best = row[0];
                for (int64_t c = 1; c < K; c++) if (row[c * tokens->stride[2]] > best) { best = row[c * tokens->stride[2]]; id = c; }
                if (!isfinite(best)) {
                    free(count);
                    return ff_errorf(FF_EINVAL, "ff_categorical_hist: sample %lld position %lld is not finite", (long long)s, (long long)pos);
                }
            } else {
                float v = row[0];
                if (!(v >= 0 && v < (float)K) || v != floorf(v)) {
                    free(count);
                    return ff_errorf(FF_EINVAL, "ff_categorical_hist: sample %lld position %lld: token %g outside [0, %lld)",
                                     (long long)s, (long long)pos, v, (long long)K);
                }
                id = (int64_t)v;
            }
            count[pos * K + id]++;
        }
    }
    for (int64_t i = 0; i < k * K; i++) hist->data[i] = (float)((double)count[i] / (double)n);
    free(count);
    return FF_OK;
}

ff_status ff_kl_categorical(const ff_tensor_t *q_hist, const ff_tensor_t *p_true, double *kl_mean,
                            ff_divergence *per_pos, int64_t *empty_bins) {
    char b1[64], b2[64];
    if (!q_hist || !p_true || !kl_mean) return ff_errorf(FF_EINVAL, "ff_kl_categorical: NULL argument");
    if (q_hist->ndim != 2 || !ff_tensor_same_shape(q_hist, p_true) || !ff_tensor_is_contiguous(q_hist) ||
        !ff_tensor_is_contiguous(p_true) || q_hist->shape[0] < 1)
        return ff_errorf(FF_ESHAPE, "ff_kl_categorical: model [%s] and true [%s] must both be contiguous [k, K]",
                         ff_shape_str(q_hist, b1, sizeof b1), ff_shape_str(p_true, b2, sizeof b2));
    int64_t k = q_hist->shape[0], K = q_hist->shape[1], empty = 0;
    double sum = 0;
    for (int64_t pos = 0; pos < k; pos++) {
        ff_divergence d;
        ff_status s = ff_divergence_compute(q_hist->data + pos * K, p_true->data + pos * K, K, &d);
        if (s != FF_OK) return ff_error_wrap(s, "ff_kl_categorical: position %lld", (long long)pos);
        if (per_pos) per_pos[pos] = d;
        sum += d.kl;
        empty += d.empty;
    }
    *kl_mean = sum / (double)k;
    if (empty_bins) *empty_bins = empty;
    return FF_OK;
}
