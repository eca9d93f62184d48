/* data.c — synthetic data sets of the paper (data.h): the smiley on the 2-simplex (docs/PAPER_PROTOCOLS.md §3,
 * experiment/simple.py `generate_smiley_face` at 5552ee8) and the toy categorical task (§2). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/data.h"
#include "fisherflow/metrics.h"

#define SQRT3_2 0.86602540378443864676

/* The three components, each uniform on a (radius, angle) rectangle around a centre. */
static const struct comp { double cx, cy, r0, r1, t0, t1; } smiley[3] = {
    { 0.40, 0.45, 0.0, 0.05, 0.0, 2.0 * M_PI },                 /* left eye  */
    { 0.60, 0.45, 0.0, 0.05, 0.0, 2.0 * M_PI },                 /* right eye */
    { 0.50, 0.30, 0.17, 0.23, 1.25 * M_PI, 1.75 * M_PI },       /* mouth     */
};

static void planar_to_bary(double x, double y, double p[3]) {
    p[2] = y / SQRT3_2;
    p[1] = x - 0.5 * p[2];
    p[0] = 1.0 - p[1] - p[2];
}

static ff_status check_out(const char *fn, const ff_tensor_t *t, int ndim, const int64_t *shape) {
    char b[64], w[64];
    int ok = t && t->ndim == ndim && ff_tensor_is_contiguous(t);
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return FF_OK;
    size_t u = 0;
    w[0] = '\0';
    for (int i = 0; i < ndim && u < sizeof w; i++) u += (size_t)snprintf(w + u, sizeof w - u, i ? ",%lld" : "%lld", (long long)shape[i]);
    return ff_errorf(FF_ESHAPE, "%s: out is [%s], expected contiguous [%s]", fn, t ? ff_shape_str(t, b, sizeof b) : "NULL", w);
}

ff_status ff_data_smiley(ff_rng_t *rng, int64_t n, ff_tensor_t *out) {
    if (!rng) return ff_errorf(FF_EINVAL, "ff_data_smiley: rng is NULL");
    if (n < 0) return ff_errorf(FF_EINVAL, "ff_data_smiley: n = %lld < 0", (long long)n);
    FF_TRY(check_out("ff_data_smiley", out, 3, (int64_t[]){ n, 1, 3 }));
    int64_t eye = n / 3;
    for (int64_t i = 0; i < n; i++) {
        const struct comp *c = &smiley[i < eye ? 0 : i < 2 * eye ? 1 : 2];
        double r, a;
        if (c->r0 == 0.0) {            /* eyes: radius ~ U(0, 0.05), angle ~ U(0, 2pi) */
            r = c->r1 * ff_rng_uniform(rng);
            a = c->t1 * ff_rng_uniform(rng);
        } else {                       /* mouth: angle in [1.25pi, 1.75pi], radius 0.2 + U(-0.03, 0.03) */
            a = c->t0 + (c->t1 - c->t0) * ff_rng_uniform(rng);
            r = 0.2 + (0.06 * ff_rng_uniform(rng) - 0.03);
        }
        double p[3];
        planar_to_bary(c->cx + r * cos(a), c->cy + r * sin(a), p);
        for (int k = 0; k < 3; k++) out->data[3 * i + k] = (float)p[k];
    }
    return FF_OK;
}

static int32_t cell_at(const struct comp *c, double r, double ca, double sa, int64_t res) {
    double p[3];
    planar_to_bary(c->cx + r * ca, c->cy + r * sa, p);
    return (int32_t)ff_simplex_grid_cell(p[0], p[1], p[2], res);
}

ff_status ff_data_smiley_masses(int64_t res, int64_t m, ff_tensor_t *masses, double *err_tv) {
    const char *fn = "ff_data_smiley_masses";
    if (res < 1 || res > 4096) return ff_errorf(FF_EINVAL, "%s: res %lld outside [1, 4096]", fn, (long long)res);
    if (m < 16 || m > 16384) return ff_errorf(FF_EINVAL, "%s: m %lld outside [16, 16384]", fn, (long long)m);
    if (!masses || ff_tensor_numel(masses) != res * res || !ff_tensor_is_contiguous(masses)) {
        char b[64];
        return ff_errorf(FF_ESHAPE, "%s: masses [%s], expected %lld contiguous cells", fn,
                         masses ? ff_shape_str(masses, b, sizeof b) : "NULL", (long long)(res * res));
    }
    int64_t ncell = res * res;
    double *acc = calloc((size_t)ncell, sizeof *acc);
    double *cmid = malloc((size_t)m * sizeof *cmid), *smid = malloc((size_t)m * sizeof *smid);
    double *ccor = malloc((size_t)(m + 1) * sizeof *ccor), *scor = malloc((size_t)(m + 1) * sizeof *scor);
    int32_t *row0 = malloc((size_t)(m + 1) * sizeof *row0), *row1 = malloc((size_t)(m + 1) * sizeof *row1);
    ff_status s = FF_OK;
    if (!acc || !cmid || !smid || !ccor || !scor || !row0 || !row1) { s = ff_errorf(FF_ENOMEM, "%s: out of memory", fn); goto done; }
    double straddle = 0, w = 1.0 / 3.0 / ((double)m * (double)m);
    for (int ci = 0; ci < 3; ci++) {
        const struct comp *c = &smiley[ci];
        double dr = (c->r1 - c->r0) / (double)m, dt = (c->t1 - c->t0) / (double)m;
        for (int64_t b = 0; b <= m; b++) {
            ccor[b] = cos(c->t0 + (double)b * dt); scor[b] = sin(c->t0 + (double)b * dt);
            if (b < m) { cmid[b] = cos(c->t0 + ((double)b + 0.5) * dt); smid[b] = sin(c->t0 + ((double)b + 0.5) * dt); }
        }
        for (int64_t b = 0; b <= m; b++) row0[b] = cell_at(c, c->r0, ccor[b], scor[b], res);
        for (int64_t a = 0; a < m; a++) {
            double rmid = c->r0 + ((double)a + 0.5) * dr, rtop = c->r0 + (double)(a + 1) * dr;
            for (int64_t b = 0; b <= m; b++) row1[b] = cell_at(c, rtop, ccor[b], scor[b], res);
            for (int64_t b = 0; b < m; b++) {
                int32_t cell = cell_at(c, rmid, cmid[b], smid[b], res);
                if (cell < 0) { s = ff_errorf(FF_ENUMERIC, "%s: a smiley point fell off the simplex", fn); goto done; }
                acc[cell] += w;
                if (row0[b] != cell || row0[b + 1] != cell || row1[b] != cell || row1[b + 1] != cell) straddle += w;
            }
            int32_t *t = row0; row0 = row1; row1 = t;
        }
    }
    for (int64_t i = 0; i < ncell; i++) masses->data[i] = (float)acc[i];
    if (err_tv) *err_tv = straddle;
done:
    free(acc); free(cmid); free(smid); free(ccor); free(scor); free(row0); free(row1);
    return s;
}

ff_status ff_data_smiley_density(int64_t res, int64_t m, ff_tensor_t *density, double *err_tv) {
    FF_TRY(ff_data_smiley_masses(res, m, density, err_tv));
    double scale = 2.0 * (double)res * (double)res;   /* cell area is 1 / (2 res^2) in (p_A, p_B) */
    for (int64_t i = 0; i < res * res; i++) density->data[i] = (float)(density->data[i] * scale);
    return FF_OK;
}

ff_status ff_data_toy_categorical(ff_rng_t *rng, int64_t k, int64_t K, ff_tensor_t *probs_out) {
    if (!rng) return ff_errorf(FF_EINVAL, "ff_data_toy_categorical: rng is NULL");
    if (k < 1 || K < 2) return ff_errorf(FF_EINVAL, "ff_data_toy_categorical: k = %lld, K = %lld (need k >= 1, K >= 2)",
                                         (long long)k, (long long)K);
    FF_TRY(check_out("ff_data_toy_categorical", probs_out, 2, (int64_t[]){ k, K }));
    double *u = malloc((size_t)K * sizeof *u);
    if (!u) return ff_errorf(FF_ENOMEM, "ff_data_toy_categorical: out of memory");
    for (int64_t pos = 0; pos < k; pos++) {
        double mx = 0, z = 0;
        for (int64_t c = 0; c < K; c++) { u[c] = ff_rng_uniform(rng); if (u[c] > mx) mx = u[c]; }
        for (int64_t c = 0; c < K; c++) { u[c] = exp(u[c] - mx); z += u[c]; }
        for (int64_t c = 0; c < K; c++) probs_out->data[pos * K + c] = (float)(u[c] / z);
    }
    free(u);
    return FF_OK;
}

ff_status ff_data_sample_categorical(ff_rng_t *rng, const ff_tensor_t *probs, int64_t n, ff_tensor_t *out) {
    const char *fn = "ff_data_sample_categorical";
    char b[64];
    if (!rng || !probs) return ff_errorf(FF_EINVAL, "%s: NULL argument", fn);
    if (probs->ndim != 2 || !ff_tensor_is_contiguous(probs) || probs->shape[0] < 1 || probs->shape[1] < 1)
        return ff_errorf(FF_ESHAPE, "%s: probs [%s], expected contiguous [k, K]", fn, ff_shape_str(probs, b, sizeof b));
    if (n < 0) return ff_errorf(FF_EINVAL, "%s: n = %lld < 0", fn, (long long)n);
    int64_t k = probs->shape[0], K = probs->shape[1];
    FF_TRY(check_out(fn, out, 3, (int64_t[]){ n, k, K }));
    double *cdf = malloc((size_t)(k * K) * sizeof *cdf);
    int64_t *last = malloc((size_t)k * sizeof *last);   /* last class with positive mass, per row */
    if (!cdf || !last) { free(cdf); free(last); return ff_errorf(FF_ENOMEM, "%s: out of memory", fn); }
    for (int64_t pos = 0; pos < k; pos++) {
        double acc = 0;
        for (int64_t c = 0; c < K; c++) {
            float v = probs->data[pos * K + c];
            if (!isfinite(v) || v < 0) {
                free(cdf); free(last);
                return ff_errorf(FF_EINVAL, "%s: probs[%lld, %lld] = %g is not a probability", fn, (long long)pos, (long long)c, v);
            }
            acc += v;
            cdf[pos * K + c] = acc;
            if (v > 0) last[pos] = c;
        }
        if (!(acc > 0)) { free(cdf); free(last); return ff_errorf(FF_EINVAL, "%s: row %lld of probs sums to 0", fn, (long long)pos); }
        for (int64_t c = 0; c < K; c++) cdf[pos * K + c] /= acc;
    }
    memset(out->data, 0, (size_t)ff_tensor_numel(out) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        for (int64_t pos = 0; pos < k; pos++) {
            double u = ff_rng_uniform(rng);
            const double *row = cdf + pos * K;
            int64_t c = 0;
            while (c < last[pos] && !(u < row[c])) c++;   /* first c with u < cdf[c]; zero-mass classes never hit */
            out->data[(i * k + pos) * K + c] = 1.0f;
        }
    }
    free(cdf); free(last);
    return FF_OK;
}
