/* sphere.c — batched kernels of S^d_+ (exp, log, slerp, transport, fold), float storage, double math.
 * MATH.md §Sphere geometry. Angles from atan2; slerp in the exp/log form (no 1/sin theta). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/sphere.h"
#include "base/vectorize.h"         /* per-position loops over d+1 symbols of any length */

/* ---- shape checks ---------------------------------------------------------------------------- */

/* "row R" or "row R, position P" (1-based) of flat position r, for ff_simplex_check's messages. */
static const char *row_at(char *buf, size_t n, int64_t r, int64_t per_row) {
    if (per_row > 1) snprintf(buf, n, "row %lld, position %lld", (long long)(r / per_row + 1), (long long)(r % per_row + 1));
    else snprintf(buf, n, "row %lld", (long long)(r + 1));
    return buf;
}

ff_status ff_simplex_check(const ff_tensor_t *p, const char *what) {
    const char *fn = "ff_simplex_check";
    if (!what) what = "p";
    if (!p) return ff_errorf(FF_EINVAL, "%s: %s is NULL", fn, what);
    if (p->ndim < 2 || p->shape[p->ndim - 1] < 1) {
        char b[64];
        return ff_errorf(FF_ESHAPE, "%s: %s [%s] needs rows and a last axis of d+1 >= 1 symbols", fn, what,
                         ff_shape_str(p, b, sizeof b));
    }
    if (!ff_tensor_is_contiguous(p)) return ff_errorf(FF_EINVAL, "%s: %s must be contiguous", fn, what);
    const int64_t c = p->shape[p->ndim - 1], rows = p->shape[0];
    const int64_t npos = rows > 0 ? ff_tensor_numel(p) / c : 0, per_row = rows > 0 ? npos / rows : 0;
    for (int64_t r = 0; r < npos; r++) {
        const float *v = p->data + r * c;
        double s = 0;
        char at[64];
        for (int64_t j = 0; j < c; j++) {
            if (!isfinite(v[j]))
                return ff_errorf(FF_EINVAL, "%s: %s, column %lld is %g (not finite)", what, row_at(at, sizeof at, r, per_row), (long long)j + 1, (double)v[j]);
            if (v[j] < 0)
                return ff_errorf(FF_EINVAL, "%s: %s, column %lld is %g; rows must lie on the simplex (entries >= 0, "
                                 "summing to 1)", what, row_at(at, sizeof at, r, per_row), (long long)j + 1, (double)v[j]);
            s += v[j];
        }
        if (fabs(s - 1) > FF_SIMPLEX_SUM_TOL)
            return ff_errorf(FF_EINVAL, "%s: %s sums to %.7g, not 1 (tolerance %g); rows must lie on the simplex "
                             "(entries >= 0, summing to 1): divide each row by its sum first", what, row_at(at, sizeof at, r, per_row), s, FF_SIMPLEX_SUM_TOL);
    }
    return FF_OK;
}

static ff_status need_points(const char *fn, const char *what, const ff_tensor_t *a) {
    if (!a) return ff_errorf(FF_EINVAL, "%s: %s is NULL", fn, what);
    if (a->ndim < 1 || a->shape[a->ndim - 1] < 1) {
        char b[64];
        return ff_errorf(FF_ESHAPE, "%s: %s [%s] needs a last axis of d+1 >= 1 symbols", fn, what,
                         ff_shape_str(a, b, sizeof b));
    }
    if (!ff_tensor_is_contiguous(a)) return ff_errorf(FF_EINVAL, "%s: %s must be contiguous", fn, what);
    return FF_OK;
}

static ff_status need_same(const char *fn, const char *wa, const ff_tensor_t *a, const char *wb,
                           const ff_tensor_t *b) {
    FF_TRY(need_points(fn, wa, a));
    FF_TRY(need_points(fn, wb, b));
    if (!ff_tensor_same_shape(a, b)) {
        char sa[64], sb[64];
        return ff_errorf(FF_ESHAPE, "%s: %s [%s] != %s [%s]", fn, wa, ff_shape_str(a, sa, sizeof sa), wb,
                         ff_shape_str(b, sb, sizeof sb));
    }
    return FF_OK;
}

static int64_t dim_of(const ff_tensor_t *a) { return a->shape[a->ndim - 1]; }
static int64_t rows_of(const ff_tensor_t *a) {
    int64_t m = dim_of(a);
    return m ? ff_tensor_numel(a) / m : 0;
}

/* ---- per-position helpers (double) ----------------------------------------------------------- */

/* Dot product with 4 independent partial sums: a single accumulator is a serial chain of dependent
 * adds (4 cycles each) that dominated the per-row cost at d+1 = 160; this vectorises and pipelines.
 * The summation order differs from a left-to-right sum only by double rounding (~1e-16 relative). */
static double dot(const double *restrict a, const double *restrict b, int64_t m) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < m; i++) s0 += a[i] * b[i];
    return (s0 + s2) + (s1 + s3);
}

/* Loads a point, checks it is finite with norm within tolerance, renormalises. */
static ff_status load_unit(const char *fn, const char *what, int64_t r, const float *src, double *dst,
                           int64_t m) {
    for (int64_t i = 0; i < m; i++) dst[i] = src[i];
    double nrm = sqrt(dot(dst, dst, m));
    if (!isfinite(nrm) || fabs(nrm - 1.0) > FF_SPHERE_NORM_TOL)
        return ff_errorf(FF_EINVAL,
                         "%s: %s position %lld is not on the unit sphere (norm %.6g); hint: map simplex "
                         "data with ff_sphere_from_simplex",
                         fn, what, (long long)r, nrm);
    const double inv = 1.0 / nrm;   /* one division per position; differs from x / nrm by <= 1 ulp (double) */
    for (int64_t i = 0; i < m; i++) dst[i] *= inv;
    return FF_OK;
}

static ff_status load_vec(const char *fn, const char *what, int64_t r, const float *src, double *dst,
                          int64_t m) {
    for (int64_t i = 0; i < m; i++) {
        dst[i] = src[i];
        if (!isfinite(dst[i]))
            return ff_errorf(FF_EINVAL, "%s: %s position %lld, symbol %lld is not finite", fn, what,
                             (long long)r, (long long)i);
    }
    return FF_OK;
}


/* sin(a)/a with its series below 1e-4 (error < a^6/5040). */
static double sinc(double a) {
    if (fabs(a) < 1e-4) return 1.0 - a * a / 6.0;
    return sin(a) / a;
}

/* log_x(y) into L (x, y unit doubles); returns theta. w = P_x(y - x) avoids the cancellation of
 * y - <x,y> x near theta = 0; theta/|w| is well conditioned since theta = atan2(|w|, c). */
static double log_map(const double *x, const double *y, double *L, int64_t m) {
    double c = dot(x, y, m);
    for (int64_t i = 0; i < m; i++) L[i] = y[i] - x[i];
    double xl = dot(x, L, m);
    for (int64_t i = 0; i < m; i++) L[i] -= xl * x[i];
    double wn = sqrt(dot(L, L, m)), th = atan2(wn, c);
    double f = wn > 0 ? th / wn : 0.0;   /* wn = 0: y = x (or antipodal: no unique geodesic) */
    for (int64_t i = 0; i < m; i++) L[i] *= f;
    return th;
}

/* Scratch of `count` vectors of m doubles: the caller's stack buffer when it fits (the training
 * step calls slerp every step; no malloc there), the heap otherwise. Release with scratch_done. */
#define SCRATCH_STACK 1536
static double *scratch(const char *fn, int64_t m, int count, double *stack) {
    if (m * count <= SCRATCH_STACK) return stack;
    double *p = malloc(sizeof(double) * (size_t)(m * count));
    if (!p) ff_errorf(FF_ENOMEM, "%s: cannot allocate %lld doubles", fn, (long long)(m * count));
    return p;
}
static void scratch_done(double *p, double *stack) { if (p != stack) free(p); }

/* ---- public kernels -------------------------------------------------------------------------- */

/* x_i = sqrt(max(p_i, 0) * inv): one reciprocal per position (within an ulp of sqrt(p_i / s) in
 * double), a loop that vectorises. x may alias p. */
FF_CLONES static void sqrt_scaled(float *x, const float *p, int64_t m, double inv) {
    for (int64_t i = 0; i < m; i++) {
        double v = p[i];
        x[i] = (float)sqrt((v > 0 ? v : 0.0) * inv);
    }
}

ff_status ff_sphere_from_simplex(ff_tensor_t *x, const ff_tensor_t *p) {
    const char *fn = "ff_sphere_from_simplex";
    FF_TRY(need_same(fn, "x", x, "p", p));
    int64_t m = dim_of(p), R = rows_of(p);
    for (int64_t r = 0; r < R; r++) {
        const float *pr = p->data + r * m;
        double s = 0;
        int bad = 0;
        for (int64_t i = 0; i < m; i++) {           /* branch-free; the error path finds the symbol */
            double v = pr[i];
            bad |= !(v >= -1e-6);
            s += v > 0 ? v : 0.0;
        }
        for (int64_t i = 0; bad && i < m; i++)
            if (!((double)pr[i] >= -1e-6))
                return ff_errorf(FF_EINVAL, "%s: p position %lld, symbol %lld is %g (expected >= 0)", fn,
                                 (long long)r, (long long)i, (double)pr[i]);
        if (!(s > 0) || !isfinite(s))
            return ff_errorf(FF_EINVAL, "%s: p position %lld sums to %g (expected a probability vector)", fn,
                             (long long)r, s);
        float *xr = x->data + r * m;
        sqrt_scaled(xr, pr, m, 1.0 / s);
    }
    return FF_OK;
}

ff_status ff_sphere_to_simplex(ff_tensor_t *p, const ff_tensor_t *x) {
    const char *fn = "ff_sphere_to_simplex";
    FF_TRY(need_same(fn, "p", p, "x", x));
    int64_t m = dim_of(x), R = rows_of(x);
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x->data + r * m;
        double s = 0;
        for (int64_t i = 0; i < m; i++) s += (double)xr[i] * xr[i];
        if (!(s > 0) || !isfinite(s))
            return ff_errorf(FF_EINVAL, "%s: x position %lld has squared norm %g", fn, (long long)r, s);
        float *pr = p->data + r * m;
        for (int64_t i = 0; i < m; i++) pr[i] = (float)((double)xr[i] * xr[i] / s);
    }
    return FF_OK;
}

ff_status ff_sphere_project_into(ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *v) {
    const char *fn = "ff_sphere_project_into";
    FF_TRY(need_same(fn, "x", x, "v", v));
    FF_TRY(need_same(fn, "out", out, "x", x));
    int64_t m = dim_of(x), R = rows_of(x);
    double stack[SCRATCH_STACK], *b = scratch(fn, m, 2, stack);
    if (!b) return FF_ENOMEM;
    ff_status s = FF_OK;
    for (int64_t r = 0; r < R && s == FF_OK; r++) {
        double *xd = b, *vd = b + m;
        if ((s = load_unit(fn, "x", r, x->data + r * m, xd, m)) != FF_OK) break;
        if ((s = load_vec(fn, "v", r, v->data + r * m, vd, m)) != FF_OK) break;
        double c = dot(xd, vd, m);
        for (int64_t i = 0; i < m; i++) out->data[r * m + i] = (float)(vd[i] - c * xd[i]);
    }
    scratch_done(b, stack);
    return s;
}

ff_status ff_sphere_exp(ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *v) {
    const char *fn = "ff_sphere_exp";
    FF_TRY(need_same(fn, "x", x, "v", v));
    FF_TRY(need_same(fn, "out", out, "x", x));
    int64_t m = dim_of(x), R = rows_of(x);
    double stack[SCRATCH_STACK], *b = scratch(fn, m, 2, stack);
    if (!b) return FF_ENOMEM;
    ff_status s = FF_OK;
    for (int64_t r = 0; r < R; r++) {
        double *xd = b, *vd = b + m;
        if ((s = load_unit(fn, "x", r, x->data + r * m, xd, m)) != FF_OK) break;
        if ((s = load_vec(fn, "v", r, v->data + r * m, vd, m)) != FF_OK) break;
        double c = dot(xd, vd, m), a = 0;
        for (int64_t i = 0; i < m; i++) {
            vd[i] -= c * xd[i];
            a += vd[i] * vd[i];
        }
        double nv = sqrt(a), co = cos(nv), si = sinc(nv), q = 0;
        for (int64_t i = 0; i < m; i++) {
            xd[i] = co * xd[i] + si * vd[i];
            q += xd[i] * xd[i];
        }
        q = 1.0 / sqrt(q);   /* exact by construction; this only removes rounding */
        for (int64_t i = 0; i < m; i++) out->data[r * m + i] = (float)(xd[i] * q);
    }
    scratch_done(b, stack);
    return s;
}

ff_status ff_sphere_log(ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *y) {
    const char *fn = "ff_sphere_log";
    FF_TRY(need_same(fn, "x", x, "y", y));
    FF_TRY(need_same(fn, "out", out, "x", x));
    int64_t m = dim_of(x), R = rows_of(x);
    double stack[SCRATCH_STACK], *b = scratch(fn, m, 3, stack);
    if (!b) return FF_ENOMEM;
    ff_status s = FF_OK;
    for (int64_t r = 0; r < R; r++) {
        double *xd = b, *yd = b + m, *L = b + 2 * m;
        if ((s = load_unit(fn, "x", r, x->data + r * m, xd, m)) != FF_OK) break;
        if ((s = load_unit(fn, "y", r, y->data + r * m, yd, m)) != FF_OK) break;
        log_map(xd, yd, L, m);
        for (int64_t i = 0; i < m; i++) out->data[r * m + i] = (float)L[i];
    }
    scratch_done(b, stack);
    return s;
}

/* theta per position into th[R] (double). */
static ff_status angles(const char *fn, const ff_tensor_t *x, const ff_tensor_t *y, double *th) {
    int64_t m = dim_of(x), R = rows_of(x);
    double stack[SCRATCH_STACK], *b = scratch(fn, m, 3, stack);
    if (!b) return FF_ENOMEM;
    ff_status s = FF_OK;
    for (int64_t r = 0; r < R; r++) {
        double *xd = b, *yd = b + m, *L = b + 2 * m;
        if ((s = load_unit(fn, "x", r, x->data + r * m, xd, m)) != FF_OK) break;
        if ((s = load_unit(fn, "y", r, y->data + r * m, yd, m)) != FF_OK) break;
        th[r] = log_map(xd, yd, L, m);
    }
    scratch_done(b, stack);
    return s;
}

ff_status ff_sphere_dist(ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *y) {
    const char *fn = "ff_sphere_dist";
    FF_TRY(need_same(fn, "x", x, "y", y));
    if (!out) return ff_errorf(FF_EINVAL, "%s: out is NULL", fn);
    int ok = out->ndim == x->ndim - 1 && ff_tensor_is_contiguous(out);
    for (int i = 0; ok && i < out->ndim; i++) ok = out->shape[i] == x->shape[i];
    if (!ok) {
        char so[64], sx[64];
        return ff_errorf(FF_ESHAPE, "%s: out [%s] must be x [%s] without its last axis (contiguous)", fn,
                         ff_shape_str(out, so, sizeof so), ff_shape_str(x, sx, sizeof sx));
    }
    int64_t R = rows_of(x);
    double *th = malloc(sizeof(double) * (size_t)(R ? R : 1));
    if (!th) return ff_errorf(FF_ENOMEM, "%s: cannot allocate %lld angles", fn, (long long)R);
    ff_status s = angles(fn, x, y, th);
    if (s == FF_OK)
        for (int64_t r = 0; r < R; r++) out->data[r] = (float)th[r];
    free(th);
    return s;
}

ff_status ff_sphere_dist2(ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *y) {
    const char *fn = "ff_sphere_dist2";
    FF_TRY(need_same(fn, "x", x, "y", y));
    if (!out) return ff_errorf(FF_EINVAL, "%s: out is NULL", fn);
    if (x->ndim < 2 || out->ndim != 1 || out->shape[0] != x->shape[0]) {
        char so[64], sx[64];
        return ff_errorf(FF_ESHAPE, "%s: out [%s] must be [n] for x [%s] = [n, .., d+1]", fn,
                         ff_shape_str(out, so, sizeof so), ff_shape_str(x, sx, sizeof sx));
    }
    int64_t R = rows_of(x), n = x->shape[0], per = n ? R / n : 0;
    double *th = malloc(sizeof(double) * (size_t)(R ? R : 1));
    if (!th) return ff_errorf(FF_ENOMEM, "%s: cannot allocate %lld angles", fn, (long long)R);
    ff_status s = angles(fn, x, y, th);
    if (s == FF_OK)
        for (int64_t i = 0; i < n; i++) {
            double acc = 0;
            for (int64_t j = 0; j < per; j++) acc += th[i * per + j] * th[i * per + j];
            out->data[i] = (float)acc;
        }
    free(th);
    return s;
}

ff_status ff_sphere_slerp(ff_tensor_t *xt, ff_tensor_t *ut, const ff_tensor_t *x0, const ff_tensor_t *x1,
                          const ff_tensor_t *t) {
    const char *fn = "ff_sphere_slerp";
    FF_TRY(need_same(fn, "x0", x0, "x1", x1));
    if (xt) FF_TRY(need_same(fn, "xt", xt, "x0", x0));
    if (ut) FF_TRY(need_same(fn, "ut", ut, "x0", x0));
    if (!t) return ff_errorf(FF_EINVAL, "%s: t is NULL", fn);
    if (x0->ndim < 2 || t->ndim != 1 || t->shape[0] != x0->shape[0] || !ff_tensor_is_contiguous(t)) {
        char st[64], sx[64];
        return ff_errorf(FF_ESHAPE, "%s: t [%s] must be [n] for x0 [%s] = [n, .., d+1]", fn,
                         ff_shape_str(t, st, sizeof st), ff_shape_str(x0, sx, sizeof sx));
    }
    int64_t m = dim_of(x0), R = rows_of(x0), n = x0->shape[0], per = n ? R / n : 0;
    double stack[SCRATCH_STACK], *b = scratch(fn, m, 3, stack);
    if (!b) return FF_ENOMEM;
    ff_status s = FF_OK;
    for (int64_t r = 0; r < R; r++) {
        double tt = t->data[r / per];
        if (!isfinite(tt)) {
            s = ff_errorf(FF_EINVAL, "%s: t[%lld] is not finite", fn, (long long)(r / per));
            break;
        }
        double *a = b, *c = b + m, *L = b + 2 * m;
        if ((s = load_unit(fn, "x0", r, x0->data + r * m, a, m)) != FF_OK) break;
        if ((s = load_unit(fn, "x1", r, x1->data + r * m, c, m)) != FF_OK) break;
        double th = log_map(a, c, L, m);
        double co = cos(tt * th), sc = tt * sinc(tt * th);   /* sin(t th)/th */
        if (xt) {
            for (int64_t i = 0; i < m; i++) c[i] = co * a[i] + sc * L[i];
            double q = 1.0 / sqrt(dot(c, c, m));
            for (int64_t i = 0; i < m; i++) xt->data[r * m + i] = (float)(c[i] * q);
        }
        if (ut)
            for (int64_t i = 0; i < m; i++) ut->data[r * m + i] = (float)(co * L[i] - th * th * sc * a[i]);
    }
    scratch_done(b, stack);
    return s;
}

ff_status ff_sphere_transport(ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *y,
                              const ff_tensor_t *v) {
    const char *fn = "ff_sphere_transport";
    FF_TRY(need_same(fn, "x", x, "y", y));
    FF_TRY(need_same(fn, "v", v, "x", x));
    FF_TRY(need_same(fn, "out", out, "x", x));
    int64_t m = dim_of(x), R = rows_of(x);
    double stack[SCRATCH_STACK], *b = scratch(fn, m, 3, stack);
    if (!b) return FF_ENOMEM;
    ff_status s = FF_OK;
    for (int64_t r = 0; r < R; r++) {
        double *xd = b, *yd = b + m, *vd = b + 2 * m;
        if ((s = load_unit(fn, "x", r, x->data + r * m, xd, m)) != FF_OK) break;
        if ((s = load_unit(fn, "y", r, y->data + r * m, yd, m)) != FF_OK) break;
        if ((s = load_vec(fn, "v", r, v->data + r * m, vd, m)) != FF_OK) break;
        double den = 1.0 + dot(xd, yd, m);
        if (den < 1e-12) {
            s = ff_errorf(FF_ENUMERIC, "%s: position %lld: x and y are antipodal (1 + <x,y> = %g)", fn,
                          (long long)r, den);
            break;
        }
        double f = dot(yd, vd, m) / den;
        for (int64_t i = 0; i < m; i++) out->data[r * m + i] = (float)(vd[i] - f * (xd[i] + yd[i]));
    }
    scratch_done(b, stack);
    return s;
}

static ff_status normalize_rows(const char *fn, ff_tensor_t *x, int fold) {
    FF_TRY(need_points(fn, "x", x));
    int64_t m = dim_of(x), R = rows_of(x);
    for (int64_t r = 0; r < R; r++) {
        float *xr = x->data + r * m;
        double mx = 0;   /* scale by the largest entry first: no underflow for 1e-30 entries */
        for (int64_t i = 0; i < m; i++) {
            double a = fabs((double)xr[i]);
            if (!(a <= 3.5e38))
                return ff_errorf(FF_ENUMERIC, "%s: position %lld, symbol %lld is not finite (%g)", fn,
                                 (long long)r, (long long)i, (double)xr[i]);
            if (a > mx) mx = a;
        }
        if (mx == 0)
            return ff_errorf(FF_ENUMERIC, "%s: position %lld is the zero vector (no direction to keep)", fn,
                             (long long)r);
        double q = 0;
        for (int64_t i = 0; i < m; i++) {
            double a = xr[i] / mx;
            q += a * a;
        }
        q = 1.0 / (sqrt(q) * mx);
        for (int64_t i = 0; i < m; i++) xr[i] = (float)((fold ? fabs((double)xr[i]) : (double)xr[i]) * q);
    }
    return FF_OK;
}

ff_status ff_sphere_retract(ff_tensor_t *x) { return normalize_rows("ff_sphere_retract", x, 1); }
ff_status ff_sphere_normalize(ff_tensor_t *x) { return normalize_rows("ff_sphere_normalize", x, 0); }

ff_status ff_sphere_smooth_labels(ff_tensor_t *out, const ff_tensor_t *p, double eps) {
    const char *fn = "ff_sphere_smooth_labels";
    FF_TRY(need_same(fn, "out", out, "p", p));
    int64_t m = dim_of(p), R = rows_of(p);
    if (m < 2) return ff_errorf(FF_ESHAPE, "%s: needs d+1 >= 2 symbols, got %lld", fn, (long long)m);
    if (!(eps >= 0 && eps <= 1)) return ff_errorf(FF_EINVAL, "%s: eps = %g, expected 0 <= eps <= 1", fn, eps);
    double e = eps / (double)(m - 1);
    for (int64_t i = 0; i < R * m; i++) {
        double v = p->data[i];
        if (!isfinite(v)) return ff_errorf(FF_EINVAL, "%s: p element %lld is not finite", fn, (long long)i);
        out->data[i] = (float)((1.0 - eps) * v + e * (1.0 - v));
    }
    return FF_OK;
}

/* ---- change of measure to the simplex (MATH.md §Likelihood) ------------------------------------ */

double ff_sphere_orthant_log_area(int64_t d) {
    double m = (double)(d + 1);   /* |S^d| = 2 pi^{m/2} / Gamma(m/2) */
    return log(2.0) + 0.5 * m * log(3.14159265358979323846) - lgamma(0.5 * m) - m * log(2.0);
}

ff_status ff_sphere_to_simplex_logdet(const ff_tensor_t *x, ff_tensor_t *out) {
    const char *fn = "ff_sphere_to_simplex_logdet";
    if (!x || !out) return ff_errorf(FF_EINVAL, "%s: %s is NULL", fn, !x ? "x" : "out");
    if (x->ndim < 2 || out->ndim != 1 || out->shape[0] != x->shape[0] || !ff_tensor_is_contiguous(x) ||
        !ff_tensor_is_contiguous(out)) {
        char sx[64], so[64];
        return ff_errorf(FF_ESHAPE, "%s: out [%s] must be [n] for x [%s] = [n, .., d+1] (contiguous)", fn,
                         ff_shape_str(out, so, sizeof so), ff_shape_str(x, sx, sizeof sx));
    }
    int64_t m = x->shape[x->ndim - 1], n = x->shape[0], per = n ? ff_tensor_numel(x) / (n * m) : 0;
    for (int64_t s = 0; s < n; s++) {
        double acc = 0;
        for (int64_t p = 0; p < per; p++) {
            const float *xr = x->data + (s * per + p) * m;
            double q = 0, lg = 0;
            for (int64_t i = 0; i < m; i++) q += (double)xr[i] * xr[i];
            if (!isfinite(q) || fabs(sqrt(q) - 1.0) > FF_SPHERE_NORM_TOL)
                return ff_errorf(FF_EINVAL, "%s: sample %lld, position %lld is not on the unit sphere (norm %g)", fn,
                                 (long long)s, (long long)p, sqrt(q));
            for (int64_t i = 0; i < m; i++) lg += log(fabs((double)xr[i]) / sqrt(q));
            acc += -(double)(m - 1) * log(2.0) - lg;
        }
        out->data[s] = (float)acc;
    }
    return FF_OK;
}
