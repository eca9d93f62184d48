/* geometry.c — the "sphere", "simplex" (Fisher-Rao in simplex coordinates) and "linear" geometries
 * behind ff_geometry (geometry.h). MATH.md §Sphere geometry; the simplex step's boundary rule is in geometry.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/geometry.h"
#include "fisherflow/ops.h"
#include "fisherflow/sphere.h"
#include "base/vectorize.h"

static ff_status same(const char *fn, const char *wa, const ff_tensor_t *a, const char *wb, const ff_tensor_t *b) {
    if (!a || !b) return ff_errorf(FF_EINVAL, "%s: %s is NULL", fn, !a ? wa : wb);
    if (a->ndim < 1 || !ff_tensor_same_shape(a, b)) {
        char sa[64], sb[64];
        return ff_errorf(FF_ESHAPE, "%s: %s [%s] != %s [%s]", fn, wa, ff_shape_str(a, sa, sizeof sa), wb,
                         ff_shape_str(b, sb, sizeof sb));
    }
    if (!ff_tensor_is_contiguous(a) || !ff_tensor_is_contiguous(b))
        return ff_errorf(FF_EINVAL, "%s: %s and %s must be contiguous", fn, wa, wb);
    return FF_OK;
}

static int64_t dim_of(const ff_tensor_t *a) { return a->shape[a->ndim - 1]; }
static int64_t rows_of(const ff_tensor_t *a) { return dim_of(a) ? ff_tensor_numel(a) / dim_of(a) : 0; }

static ff_status check_t(const char *fn, const ff_tensor_t *y0, const ff_tensor_t *t) {
    if (!t) return ff_errorf(FF_EINVAL, "%s: t is NULL", fn);
    if (y0->ndim < 2 || t->ndim != 1 || t->shape[0] != y0->shape[0] || !ff_tensor_is_contiguous(t)) {
        char st[64], sy[64];
        return ff_errorf(FF_ESHAPE, "%s: t [%s] must be [n] for y0 [%s] = [n, .., d+1]", fn,
                         ff_shape_str(t, st, sizeof st), ff_shape_str(y0, sy, sizeof sy));
    }
    for (int64_t i = 0; i < t->shape[0]; i++)
        if (!isfinite(t->data[i])) return ff_errorf(FF_EINVAL, "%s: t[%lld] is not finite", fn, (long long)i);
    return FF_OK;
}

/* ---- simplex-coordinate helpers shared by "simplex" and "linear" ------------------------------- */

/* Clip at 0 (after checking that negatives are only rounding if strict) and renormalise each position. */
static ff_status clip_normalize(const char *fn, ff_tensor_t *out, const ff_tensor_t *p, int strict) {
    FF_TRY(same(fn, "out", out, "p", p));
    int64_t m = dim_of(p), R = rows_of(p);
    for (int64_t r = 0; r < R; r++) {
        const float *pr = p->data + r * m;
        double s = 0;
        for (int64_t i = 0; i < m; i++) {
            double v = pr[i];
            if (!isfinite(v))
                return ff_errorf(FF_ENUMERIC, "%s: position %lld, symbol %lld is not finite", fn, (long long)r,
                                 (long long)i);
            if (strict && v < -1e-6)
                return ff_errorf(FF_EINVAL, "%s: p position %lld, symbol %lld is %g (expected >= 0)", fn,
                                 (long long)r, (long long)i, v);
            if (v > 0) s += v;
        }
        if (!(s > 0))
            return ff_errorf(strict ? FF_EINVAL : FF_ENUMERIC,
                             "%s: position %lld has no positive mass (sum of positive parts %g)", fn, (long long)r, s);
        float *o = out->data + r * m;
        for (int64_t i = 0; i < m; i++) o[i] = pr[i] > 0 ? (float)(pr[i] / s) : 0.0f;
    }
    return FF_OK;
}

static ff_status p_from_simplex(ff_tensor_t *y, const ff_tensor_t *p) {
    return clip_normalize("geometry simplex/linear: from_simplex", y, p, 1);
}
static ff_status p_to_simplex(ff_tensor_t *p, const ff_tensor_t *y) {
    return clip_normalize("geometry simplex/linear: to_simplex", p, y, 1);
}
static ff_status p_retract(ff_tensor_t *y) { return clip_normalize("geometry simplex/linear: retract", y, y, 0); }

/* v - mean(v) over the last axis: the projection onto sum-zero vectors. */
static ff_tensor_t *p_project(ff_tape_t *tp, ff_tensor_t *y, ff_tensor_t *v) {
    (void)y;
    return ff_sub(tp, v, ff_mean(tp, v, -1, 1));
}

/* ---- "sphere" ---------------------------------------------------------------------------------- */

static ff_status s_interpolate(ff_tensor_t *yt, ff_tensor_t *ut, const ff_tensor_t *y0, const ff_tensor_t *y1,
                               const ff_tensor_t *t) {
    return ff_sphere_slerp(yt, ut, y0, y1, t);
}

/* Sums of x*x, x*v, v*v over m floats, in double with 4 partial sums each (a chain GCC vectorises). */
FF_CLONES static void dots3(const float *restrict x, const float *restrict v, int64_t m, double *xx, double *xv,
                            double *vv) {
    double a[4] = { 0 }, b[4] = { 0 }, c[4] = { 0 };
    int64_t i = 0;
    for (; i + 4 <= m; i += 4)
        for (int j = 0; j < 4; j++) {
            double xi = x[i + j], vi = v[i + j];
            a[j] += xi * xi; b[j] += xi * vi; c[j] += vi * vi;
        }
    for (; i < m; i++) { double xi = x[i], vi = v[i]; a[0] += xi * xi; b[0] += xi * vi; c[0] += vi * vi; }
    *xx = (a[0] + a[1]) + (a[2] + a[3]);
    *xv = (b[0] + b[1]) + (b[2] + b[3]);
    *vv = (c[0] + c[1]) + (c[2] + c[3]);
}

/* sum of (v_i - c x_i)^2 (the tangent part's squared norm, formed explicitly: no cancellation) */
FF_CLONES static double tangent_norm2(const float *restrict x, const float *restrict v, int64_t m, double c) {
    double a[4] = { 0 };
    int64_t i = 0;
    for (; i + 4 <= m; i += 4)
        for (int j = 0; j < 4; j++) { double w = v[i + j] - c * x[i + j]; a[j] += w * w; }
    for (; i < m; i++) { double w = v[i] - c * x[i]; a[0] += w * w; }
    return (a[0] + a[1]) + (a[2] + a[3]);
}

/* x_i <- |A x_i + B v_i| (the exp map and the orthant fold) in place; returns the sum of squares */
FF_CLONES static double fold_step(float *restrict x, const float *restrict v, int64_t m, double A, double B) {
    double q[4] = { 0 };
    int64_t i = 0;
    for (; i + 4 <= m; i += 4)
        for (int j = 0; j < 4; j++) {
            double z = fabs(A * x[i + j] + B * v[i + j]);
            x[i + j] = (float)z;
            q[j] += z * z;
        }
    for (; i < m; i++) { double z = fabs(A * x[i] + B * v[i]); x[i] = (float)z; q[0] += z * z; }
    return (q[0] + q[1]) + (q[2] + q[3]);
}

FF_CLONES static void scale_floats(float *restrict x, int64_t m, double s) {
    for (int64_t i = 0; i < m; i++) x[i] = (float)(x[i] * s);
}

/* One Euler step per position: x <- fold(exp_x(h P_x v)) with x first normalised, in double.
 * With xh = x/|x|, c = <xh, v>, w = v - c xh (the tangent part) and a = h|w|:
 * exp = cos(a) xh + h sinc(a) w = A x + B v, A = (cos(a) - h sinc(a) c) / |x|, B = h sinc(a). */
static ff_status s_step(ff_tensor_t *y, const ff_tensor_t *v, double h) {
    const char *fn = "geometry sphere: step";
    FF_TRY(same(fn, "y", y, "v", v));
    if (!isfinite(h)) return ff_errorf(FF_EINVAL, "%s: h = %g", fn, h);
    int64_t m = dim_of(y), R = rows_of(y);
    for (int64_t r = 0; r < R; r++) {
        float *x = y->data + r * m;
        const float *vr = v->data + r * m;
        double xx, xv, vv;
        dots3(x, vr, m, &xx, &xv, &vv);
        if (!isfinite(xv + vv))            /* a NaN or inf in v (or x) reaches these sums */
            for (int64_t i = 0; i < m; i++)
                if (!isfinite(vr[i]))
                    return ff_errorf(FF_ENUMERIC, "%s: v position %lld, symbol %lld is not finite", fn, (long long)r,
                                     (long long)i);
        double nx = sqrt(xx);
        if (!(nx > 0) || !isfinite(nx))
            return ff_errorf(FF_ENUMERIC, "%s: y position %lld has norm %g", fn, (long long)r, nx);
        double c = xv / nx, inx = 1.0 / nx;
        double a = fabs(h) * sqrt(tangent_norm2(x, vr, m, c * inx));
        double sc = a < 1e-4 ? h * (1.0 - a * a / 6.0) : h * sin(a) / a;
        double q = fold_step(x, vr, m, (cos(a) - sc * c) * inx, sc);
        if (!(q > 0)) return ff_errorf(FF_ENUMERIC, "%s: position %lld collapsed to 0", fn, (long long)r);
        scale_floats(x, m, 1.0 / sqrt(q));
    }
    return FF_OK;
}

/* ---- "simplex" --------------------------------------------------------------------------------- */

static ff_status x_interpolate(ff_tensor_t *yt, ff_tensor_t *ut, const ff_tensor_t *y0, const ff_tensor_t *y1,
                               const ff_tensor_t *t) {
    const char *fn = "geometry simplex: interpolate";
    FF_TRY(same(fn, "y0", y0, "y1", y1));
    if (yt) FF_TRY(same(fn, "yt", yt, "y0", y0));
    if (ut) FF_TRY(same(fn, "ut", ut, "y0", y0));
    FF_TRY(check_t(fn, y0, t));
    ff_tensor_t *a = NULL, *b = NULL, *xt = NULL, *vx = NULL;
    ff_status s;
    if ((s = ff_tensor_new(&a, y0->ndim, y0->shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&b, y0->ndim, y0->shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&xt, y0->ndim, y0->shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&vx, y0->ndim, y0->shape)) != FF_OK) goto fail;
    if ((s = ff_sphere_from_simplex(a, y0)) != FF_OK) goto fail;
    if ((s = ff_sphere_from_simplex(b, y1)) != FF_OK) goto fail;
    if ((s = ff_sphere_slerp(xt, vx, a, b, t)) != FF_OK) goto fail;
    int64_t N = ff_tensor_numel(y0);
    /* p_t = x_t^2, dp/dt = 2 x_t dx_t/dt */
    for (int64_t i = 0; i < N; i++) {
        double x = xt->data[i];
        if (ut) ut->data[i] = (float)(2.0 * x * vx->data[i]);
        if (yt) yt->data[i] = (float)(x * x);
    }
fail:
    if (s != FF_OK) ff_error_wrap(s, "%s", fn);
    ff_tensor_free(a); ff_tensor_free(b); ff_tensor_free(xt); ff_tensor_free(vx);
    return s;
}

static ff_status x_step(ff_tensor_t *y, const ff_tensor_t *v, double h) {
    const char *fn = "geometry simplex: step";
    FF_TRY(same(fn, "y", y, "v", v));
    if (!isfinite(h)) return ff_errorf(FF_EINVAL, "%s: h = %g", fn, h);
    if (h == 0) return FF_OK;
    int64_t m = dim_of(y), R = rows_of(y);
    double *buf = malloc(sizeof(double) * (size_t)(3 * m));
    if (!buf) return ff_errorf(FF_ENOMEM, "%s: cannot allocate scratch for d+1 = %lld", fn, (long long)m);
    double *x = buf, *w = buf + m, *vc = buf + 2 * m;
    ff_status s = FF_OK;
    for (int64_t r = 0; r < R && s == FF_OK; r++) {
        float *p = y->data + r * m;
        const float *vr = v->data + r * m;
        double sp = 0, mv = 0;
        for (int64_t i = 0; i < m; i++) {
            if (!isfinite(vr[i]) || !isfinite(p[i])) {
                s = ff_errorf(FF_ENUMERIC, "%s: position %lld, symbol %lld: non-finite y or v", fn, (long long)r,
                              (long long)i);
                break;
            }
            if (p[i] > 0) sp += p[i];
            mv += vr[i];
        }
        if (s != FF_OK) break;
        if (!(sp > 0)) {
            s = ff_errorf(FF_ENUMERIC, "%s: position %lld has no positive mass", fn, (long long)r);
            break;
        }
        mv /= (double)m;
        for (int64_t i = 0; i < m; i++) {
            double pi = p[i] > 0 ? p[i] / sp : 0.0;
            x[i] = sqrt(pi);
            vc[i] = vr[i] - mv;   /* sum-zero part of v */
            if (pi >= 1e-8)
                w[i] = vc[i] / (2.0 * x[i]);
            else {
                double target = pi + h * vc[i];
                w[i] = ((target > 0 ? sqrt(target) : 0.0) - x[i]) / h;
            }
        }
        /* xi = P_x(w); exp_x(h xi); fold; square */
        double xw = 0, a2 = 0;
        for (int64_t i = 0; i < m; i++) xw += x[i] * w[i];
        for (int64_t i = 0; i < m; i++) {
            w[i] = h * (w[i] - xw * x[i]);
            a2 += w[i] * w[i];
        }
        double a = sqrt(a2), co = cos(a), sc = a < 1e-4 ? 1.0 - a2 / 6.0 : sin(a) / a, q = 0;
        for (int64_t i = 0; i < m; i++) {
            double z = co * x[i] + sc * w[i];
            x[i] = z * z;
            q += x[i];
        }
        for (int64_t i = 0; i < m; i++) p[i] = (float)(x[i] / q);
    }
    free(buf);
    return s;
}

/* ---- "linear" ---------------------------------------------------------------------------------- */

static ff_status l_interpolate(ff_tensor_t *yt, ff_tensor_t *ut, const ff_tensor_t *y0, const ff_tensor_t *y1,
                               const ff_tensor_t *t) {
    const char *fn = "geometry linear: interpolate";
    FF_TRY(same(fn, "y0", y0, "y1", y1));
    if (yt) FF_TRY(same(fn, "yt", yt, "y0", y0));
    if (ut) FF_TRY(same(fn, "ut", ut, "y0", y0));
    FF_TRY(check_t(fn, y0, t));
    int64_t N = ff_tensor_numel(y0), per = y0->shape[0] ? N / y0->shape[0] : 0;
    for (int64_t i = 0; i < N; i++) {
        double tt = t->data[i / per], a = y0->data[i], b = y1->data[i];
        if (yt) yt->data[i] = (float)((1.0 - tt) * a + tt * b);
        if (ut) ut->data[i] = (float)(b - a);
    }
    return FF_OK;
}

static ff_status l_step(ff_tensor_t *y, const ff_tensor_t *v, double h) {
    const char *fn = "geometry linear: step";
    FF_TRY(same(fn, "y", y, "v", v));
    if (!isfinite(h)) return ff_errorf(FF_EINVAL, "%s: h = %g", fn, h);
    int64_t m = dim_of(y), R = rows_of(y);
    for (int64_t r = 0; r < R; r++) {
        float *p = y->data + r * m;
        const float *vr = v->data + r * m;
        double mv = 0;
        for (int64_t i = 0; i < m; i++) mv += vr[i];
        mv /= (double)m;
        if (!isfinite(mv)) return ff_errorf(FF_ENUMERIC, "%s: v position %lld is not finite", fn, (long long)r);
        for (int64_t i = 0; i < m; i++) p[i] = (float)(p[i] + h * (vr[i] - mv));
    }
    return p_retract(y);
}

/* ---- registry ---------------------------------------------------------------------------------- */

static const ff_geometry geometries[] = {
    { "sphere", ff_sphere_from_simplex, ff_sphere_to_simplex, s_interpolate, ff_sphere_project, s_step,
      ff_sphere_retract },
    { "simplex", p_from_simplex, p_to_simplex, x_interpolate, p_project, x_step, p_retract },
    { "linear", p_from_simplex, p_to_simplex, l_interpolate, p_project, l_step, p_retract },
};
static const char *const names[] = { "sphere", "simplex", "linear", NULL };

const char *const *ff_geometry_names(void) { return names; }

const ff_geometry *ff_geometry_find(const char *name) {
    if (name)
        for (size_t i = 0; i < sizeof geometries / sizeof geometries[0]; i++)
            if (!strcmp(geometries[i].name, name)) return &geometries[i];
    ff_errorf(FF_EINVAL, "geometry \"%s\" is unknown (known: sphere, simplex, linear)", name ? name : "(null)");
    return NULL;
}
