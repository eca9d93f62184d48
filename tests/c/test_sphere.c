/* test_sphere.c — S^d_+ kernels on a catalogue of adversarial inputs (theta = 0, pi/2, 1e-7;
 * 1e-30 coordinates; d+1 = 2 and 4096; t in {0, 1e-7, 1}) and random batches, against long-double
 * references computed from the definitions (chordal angle, sin form of slerp, Fisher-Rao distance);
 * ff_sphere_normalize against x/|x| in long double; transport's refusal of antipodes. */
#include <fisherflow/fisherflow.h>
#include <float.h>
#include <stdlib.h>
#include "ff_test.h"

typedef long double ld;

static ff_tensor_t *T(int64_t n, int64_t k, int64_t m) {
    ff_tensor_t *t = NULL;
    if (ff_tensor_new3(&t, n, k, m) != FF_OK) abort();
    return t;
}

static int all_finite(const ff_tensor_t *t) {
    for (int64_t i = 0; i < ff_tensor_numel(t); i++)
        if (!isfinite(t->data[i])) return 0;
    return 1;
}

/* Unit vector from doubles (normalised in long double, stored as float). */
static void put_unit(float *dst, const double *src, int64_t m) {
    ld s = 0;
    for (int64_t i = 0; i < m; i++) s += (ld)src[i] * src[i];
    for (int64_t i = 0; i < m; i++) dst[i] = (float)(src[i] / sqrtl(s));
}

static void rand_orthant(ff_rng_t *r, float *dst, int64_t m) {
    double *z = malloc(sizeof(double) * (size_t)m);
    for (int64_t i = 0; i < m; i++) z[i] = fabs(ff_rng_normal(r));
    put_unit(dst, z, m);
    free(z);
}

static ld dotl(const float *a, const float *b, int64_t m) {
    ld s = 0;
    for (int64_t i = 0; i < m; i++) s += (ld)a[i] * b[i];
    return s;
}

/* Angle from the chord, independent of the kernel's atan2: theta = 2 asin(|x - y| / 2) for the
 * normalised float inputs. */
static ld ref_angle(const float *x, const float *y, int64_t m) {
    ld nx = sqrtl(dotl(x, x, m)), ny = sqrtl(dotl(y, y, m)), c = 0;
    for (int64_t i = 0; i < m; i++) {
        ld d = x[i] / nx - y[i] / ny;
        c += d * d;
    }
    return 2 * asinl(sqrtl(c) / 2);
}

/* x_t from the sin form of MATH.md (long double), with the limit (1-t) x0 + t x1 at theta = 0. */
static void ref_slerp(const float *x0, const float *x1, int64_t m, ld t, ld *out) {
    ld th = ref_angle(x0, x1, m), n0 = sqrtl(dotl(x0, x0, m)), n1 = sqrtl(dotl(x1, x1, m));
    ld a = th > 1e-12L ? sinl((1 - t) * th) / sinl(th) : 1 - t, b = th > 1e-12L ? sinl(t * th) / sinl(th) : t;
    for (int64_t i = 0; i < m; i++) out[i] = a * x0[i] / n0 + b * x1[i] / n1;
}

/* One (x, y) pair in dimension m checked at every t of the catalogue. tol scales the float error. */
static void check_pair(const char *label, const float *xs, const float *ys, int64_t m, double tol) {
    ff_tensor_t *x = T(1, 1, m), *y = T(1, 1, m), *L = T(1, 1, m), *e = T(1, 1, m), *xt = T(1, 1, m),
                *ut = T(1, 1, m), *tr = T(1, 1, m), *Lt = T(1, 1, m), *th = NULL, *thr = NULL, *t = NULL;
    ff_tensor_new2(&th, 1, 1);
    ff_tensor_new2(&thr, 1, 1);
    ff_tensor_new1(&t, 1);
    memcpy(x->data, xs, sizeof(float) * (size_t)m);
    memcpy(y->data, ys, sizeof(float) * (size_t)m);
    ld ang = ref_angle(xs, ys, m);

    FF_EXPECT(ff_sphere_log(L, x, y) == FF_OK, "%s: %s", label, ff_last_error());
    FF_EXPECT(ff_sphere_exp(e, x, L) == FF_OK, "%s: %s", label, ff_last_error());
    FF_EXPECT(ff_sphere_dist(th, x, y) == FF_OK && ff_sphere_dist(thr, y, x) == FF_OK, "%s", label);
    FF_EXPECT(all_finite(L) && all_finite(e) && all_finite(th), "%s: NaN/Inf", label);
    FF_EXPECT_NEAR(th->data[0], (double)ang, tol);
    FF_EXPECT_NEAR(th->data[0], thr->data[0], tol);          /* symmetric */
    FF_EXPECT_NEAR(sqrt((double)dotl(L->data, L->data, m)), (double)ang, tol);  /* |log| = theta */
    FF_EXPECT_NEAR((double)dotl(x->data, L->data, m), 0.0, tol);               /* tangent */
    double err = 0;
    for (int64_t i = 0; i < m; i++) err = ff_nanmax(err, fabs(e->data[i] - ys[i]));
    FF_EXPECT(err <= tol, "%s: exp(log) != id, max err %.3g", label, err);

    /* Fisher-Rao distance on the simplex, from its definition, = 2 theta */
    {
        ld s = 0, px = dotl(xs, xs, m), py = dotl(ys, ys, m);
        for (int64_t i = 0; i < m; i++) s += sqrtl(((ld)xs[i] * xs[i] / px) * ((ld)ys[i] * ys[i] / py));
        if (s > 1) s = 1;
        ld fr = 2 * acosl(s);
        FF_EXPECT_NEAR(2.0 * th->data[0], (double)fr, fmax(2 * tol, 1e-6));
    }

    const double ts[] = { 0.0, 1e-7, 0.3, 0.5, 1.0 - 1e-7, 1.0 };
    ld *ref = malloc(sizeof(ld) * (size_t)m), *rp = malloc(sizeof(ld) * (size_t)m), *rm = malloc(sizeof(ld) * (size_t)m);
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
        t->data[0] = (float)ts[k];
        ld tt = t->data[0];
        FF_EXPECT(ff_sphere_slerp(xt, ut, x, y, t) == FF_OK, "%s t=%g: %s", label, ts[k], ff_last_error());
        FF_EXPECT(all_finite(xt) && all_finite(ut), "%s t=%g: NaN/Inf", label, ts[k]);
        FF_EXPECT_NEAR(sqrt((double)dotl(xt->data, xt->data, m)), 1.0, 1e-6);     /* on the sphere */
        FF_EXPECT_NEAR(sqrt((double)dotl(ut->data, ut->data, m)), (double)ang, tol); /* |u_t| = theta */
        FF_EXPECT_NEAR((double)dotl(xt->data, ut->data, m), 0.0, tol);            /* tangent */
        ref_slerp(xs, ys, m, tt, ref);
        /* central differences in long double of the reference path = the time derivative */
        ld dl = 1e-6L;
        ref_slerp(xs, ys, m, tt + dl, rp);
        ref_slerp(xs, ys, m, tt - dl, rm);
        double ex = 0, eu = 0;
        for (int64_t i = 0; i < m; i++) {
            ex = ff_nanmax(ex, fabs((double)(xt->data[i] - ref[i])));
            eu = ff_nanmax(eu, fabs((double)(ut->data[i] - (rp[i] - rm[i]) / (2 * dl))));
        }
        FF_EXPECT(ex <= tol, "%s t=%g: x_t off the sin-form reference by %.3g", label, ts[k], ex);
        FF_EXPECT(eu <= tol + 1e-6, "%s t=%g: u_t off d/dt x_t (finite differences) by %.3g", label, ts[k], eu);
        /* u_t = transport of log_x0(x1) from x0 to x_t */
        FF_EXPECT(ff_sphere_transport(tr, x, xt, L) == FF_OK, "%s: %s", label, ff_last_error());
        double et = 0;
        for (int64_t i = 0; i < m; i++) et = ff_nanmax(et, fabs(tr->data[i] - ut->data[i]));
        FF_EXPECT(et <= tol, "%s t=%g: u_t != transport(log_x0 x1), err %.3g", label, ts[k], et);
        /* u_t = log_{x_t}(x1) / (1 - t), where (1 - t) theta is not in the float noise */
        if ((1 - tt) * ang > 1e-3L) {
            FF_EXPECT(ff_sphere_log(Lt, xt, y) == FF_OK, "%s", label);
            double el = 0;
            for (int64_t i = 0; i < m; i++) el = ff_nanmax(el, fabs(Lt->data[i] / (1 - (double)tt) - ut->data[i]));
            FF_EXPECT(el <= 10 * tol / (double)(1 - tt), "%s t=%g: u_t != log_xt(x1)/(1-t), err %.3g", label, ts[k],
                      el);
        }
    }
    free(ref); free(rp); free(rm);
    ff_tensor_free(x); ff_tensor_free(y); ff_tensor_free(L); ff_tensor_free(e); ff_tensor_free(xt);
    ff_tensor_free(ut); ff_tensor_free(tr); ff_tensor_free(Lt); ff_tensor_free(th); ff_tensor_free(thr);
    ff_tensor_free(t);
}

FF_TEST(catalogue) {
    const int64_t dims[] = { 2, 3, 4096 };
    ff_rng_t r;
    ff_rng_seed(&r, 7);
    for (size_t di = 0; di < 3; di++) {
        int64_t m = dims[di];
        double tol = m > 100 ? 2e-6 : 1e-6;
        float *a = calloc((size_t)m, sizeof(float)), *b = calloc((size_t)m, sizeof(float));
        double *z = calloc((size_t)m, sizeof(double));
        char lab[96];
        /* x = y (theta = 0) */
        rand_orthant(&r, a, m);
        memcpy(b, a, sizeof(float) * (size_t)m);
        snprintf(lab, sizeof lab, "m=%lld x=y", (long long)m);
        check_pair(lab, a, b, m, tol);
        /* orthogonal one-hots (theta = pi/2) */
        memset(a, 0, sizeof(float) * (size_t)m); memset(b, 0, sizeof(float) * (size_t)m);
        a[0] = 1; b[m - 1] = 1;
        snprintf(lab, sizeof lab, "m=%lld orthogonal vertices", (long long)m);
        check_pair(lab, a, b, m, tol);
        /* one-hot vs near-one-hot: p = (1 - 1e-7, 1e-7/(m-1), ...) */
        for (int64_t i = 0; i < m; i++) z[i] = i == 0 ? sqrt(1 - 1e-7) : sqrt(1e-7 / (double)(m - 1));
        put_unit(b, z, m);
        snprintf(lab, sizeof lab, "m=%lld one-hot vs near-one-hot", (long long)m);
        check_pair(lab, a, b, m, tol);
        check_pair(lab, b, a, m, tol);
        /* entries of 1e-30 against a random point and against a vertex */
        for (int64_t i = 0; i < m; i++) z[i] = i == m / 2 ? 1.0 : 1e-30;
        put_unit(a, z, m);
        FF_EXPECT(a[0] == 1e-30f || m == 2 || a[0] > 0, "1e-30 stored");
        rand_orthant(&r, b, m);
        snprintf(lab, sizeof lab, "m=%lld 1e-30 entries vs random", (long long)m);
        check_pair(lab, a, b, m, tol);
        memset(b, 0, sizeof(float) * (size_t)m);
        b[0] = 1;
        snprintf(lab, sizeof lab, "m=%lld 1e-30 entries vs vertex", (long long)m);
        check_pair(lab, a, b, m, tol);
        /* random pairs */
        for (int rep = 0; rep < 5; rep++) {
            rand_orthant(&r, a, m);
            rand_orthant(&r, b, m);
            snprintf(lab, sizeof lab, "m=%lld random %d", (long long)m, rep);
            check_pair(lab, a, b, m, tol);
        }
        free(a); free(b); free(z);
    }
}

FF_TEST(batched_random) {
    const int64_t n = 64, k = 3, m = 5;
    ff_rng_t r;
    ff_rng_seed(&r, 11);
    ff_tensor_t *x = T(n, k, m), *y = T(n, k, m), *xt = T(n, k, m), *ut = T(n, k, m), *th = NULL, *d2 = NULL,
                *t = NULL, *xt1 = T(1, k, m), *ut1 = T(1, k, m), *t1 = NULL;
    ff_tensor_new2(&th, n, k);
    ff_tensor_new1(&d2, n);
    ff_tensor_new1(&t, n);
    ff_tensor_new1(&t1, 1);
    for (int64_t i = 0; i < n * k; i++) {
        rand_orthant(&r, x->data + i * m, m);
        rand_orthant(&r, y->data + i * m, m);
    }
    for (int64_t i = 0; i < n; i++) t->data[i] = (float)ff_rng_uniform(&r);
    FF_EXPECT(ff_sphere_dist(th, x, y) == FF_OK);
    FF_EXPECT(ff_sphere_dist2(d2, x, y) == FF_OK);
    FF_EXPECT(ff_sphere_slerp(xt, ut, x, y, t) == FF_OK);
    for (int64_t i = 0; i < n; i++) {
        ld s = 0;
        for (int64_t j = 0; j < k; j++) {
            ld a = ref_angle(x->data + (i * k + j) * m, y->data + (i * k + j) * m, m);
            FF_EXPECT_NEAR(th->data[i * k + j], (double)a, 1e-6);
            s += a * a;
        }
        FF_EXPECT_NEAR(d2->data[i], (double)s, 1e-5);
    }
    /* t is per sample, shared by positions: sample i of the batch equals a batch of one */
    for (int64_t i = 0; i < n; i += 13) {
        ff_tensor_t *xi = T(1, k, m), *yi = T(1, k, m);
        memcpy(xi->data, x->data + i * k * m, sizeof(float) * (size_t)(k * m));
        memcpy(yi->data, y->data + i * k * m, sizeof(float) * (size_t)(k * m));
        t1->data[0] = t->data[i];
        FF_EXPECT(ff_sphere_slerp(xt1, ut1, xi, yi, t1) == FF_OK);
        for (int64_t j = 0; j < k * m; j++) {
            FF_EXPECT(xt1->data[j] == xt->data[i * k * m + j], "batched x_t differs");
            FF_EXPECT(ut1->data[j] == ut->data[i * k * m + j], "batched u_t differs");
        }
        ff_tensor_free(xi); ff_tensor_free(yi);
    }
    /* in-place aliasing: xt may be x0 */
    ff_tensor_t *c = NULL;
    ff_tensor_clone(&c, x);
    FF_EXPECT(ff_sphere_slerp(c, NULL, c, y, t) == FF_OK);
    for (int64_t i = 0; i < n * k * m; i++) FF_EXPECT(c->data[i] == xt->data[i], "aliased slerp differs at %lld", (long long)i);
    ff_tensor_free(c);
    ff_tensor_free(x); ff_tensor_free(y); ff_tensor_free(xt); ff_tensor_free(ut); ff_tensor_free(th);
    ff_tensor_free(d2); ff_tensor_free(t); ff_tensor_free(xt1); ff_tensor_free(ut1); ff_tensor_free(t1);
}

FF_TEST(transport_and_project) {
    const int64_t m = 6;
    ff_rng_t r;
    ff_rng_seed(&r, 3);
    ff_tensor_t *x = T(20, 1, m), *y = T(20, 1, m), *v = T(20, 1, m), *pv = T(20, 1, m), *pv2 = T(20, 1, m),
                *tv = T(20, 1, m), *lxy = T(20, 1, m), *lyx = T(20, 1, m), *tl = T(20, 1, m);
    for (int i = 0; i < 20; i++) {
        rand_orthant(&r, x->data + i * m, m);
        rand_orthant(&r, y->data + i * m, m);
    }
    ff_rng_fill_normal(&r, v, 0, 1);
    FF_EXPECT(ff_sphere_project_into(pv, x, v) == FF_OK);
    FF_EXPECT(ff_sphere_project_into(pv2, x, pv) == FF_OK);   /* idempotent */
    FF_EXPECT(ff_sphere_transport(tv, x, y, pv) == FF_OK);
    FF_EXPECT(ff_sphere_log(lxy, x, y) == FF_OK && ff_sphere_log(lyx, y, x) == FF_OK);
    FF_EXPECT(ff_sphere_transport(tl, x, y, lxy) == FF_OK);
    for (int i = 0; i < 20; i++) {
        const float *xi = x->data + i * m, *yi = y->data + i * m;
        FF_EXPECT_NEAR((double)dotl(xi, pv->data + i * m, m), 0, 1e-6);
        for (int j = 0; j < m; j++) FF_EXPECT_NEAR(pv->data[i * m + j], pv2->data[i * m + j], 1e-6);
        FF_EXPECT_NEAR((double)dotl(yi, tv->data + i * m, m), 0, 1e-6);                      /* tangent at y */
        FF_EXPECT_NEAR(sqrtl(dotl(tv->data + i * m, tv->data + i * m, m)),
                       sqrtl(dotl(pv->data + i * m, pv->data + i * m, m)), 1e-5);          /* isometry */
        for (int j = 0; j < m; j++) FF_EXPECT_NEAR(tl->data[i * m + j], -lyx->data[i * m + j], 1e-6);
    }
    ff_tensor_free(x); ff_tensor_free(y); ff_tensor_free(v); ff_tensor_free(pv); ff_tensor_free(pv2);
    ff_tensor_free(tv); ff_tensor_free(lxy); ff_tensor_free(lyx); ff_tensor_free(tl);
}

FF_TEST(maps_retract_smoothing) {
    ff_tensor_t *p = T(1, 2, 3), *x = T(1, 2, 3), *q = T(1, 2, 3), *s = T(1, 2, 3);
    float pv[6] = { 0.5f, 0.25f, 0.25f, 1.0f, 0.0f, 0.0f };
    memcpy(p->data, pv, sizeof pv);
    FF_EXPECT(ff_sphere_from_simplex(x, p) == FF_OK);
    FF_EXPECT_NEAR(x->data[0], sqrt(0.5), 1e-7);
    FF_EXPECT_NEAR(x->data[1], 0.5, 1e-7);
    FF_EXPECT(x->data[3] == 1.0f && x->data[4] == 0.0f);
    FF_EXPECT(ff_sphere_to_simplex(q, x) == FF_OK);
    for (int i = 0; i < 6; i++) FF_EXPECT_NEAR(q->data[i], pv[i], 1e-7);
    /* smoothing: e_0 -> (1-eps, eps/2, eps/2) with d = 2 */
    FF_EXPECT(ff_sphere_smooth_labels(s, p, 0.1) == FF_OK);
    FF_EXPECT_NEAR(s->data[3], 0.9, 1e-7);
    FF_EXPECT_NEAR(s->data[4], 0.05, 1e-7);
    FF_EXPECT_NEAR(s->data[5], 0.05, 1e-7);
    FF_EXPECT_NEAR(s->data[0] + s->data[1] + s->data[2], 1.0, 1e-6);
    FF_EXPECT_ERROR(ff_sphere_smooth_labels(s, p, 1.5), FF_EINVAL, "eps = 1.5");
    /* retract folds and normalises; tiny and huge scales */
    float rv[6] = { -3.0f, 4.0f, 0.0f, 1e-30f, -1e-30f, 0.0f };
    memcpy(x->data, rv, sizeof rv);
    FF_EXPECT(ff_sphere_retract(x) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_NEAR(x->data[0], 0.6, 1e-7);
    FF_EXPECT_NEAR(x->data[1], 0.8, 1e-7);
    FF_EXPECT_NEAR(x->data[3], sqrt(0.5), 1e-7);
    FF_EXPECT_NEAR(x->data[4], sqrt(0.5), 1e-7);
    FF_EXPECT(all_finite(x));
    x->data[3] = x->data[4] = x->data[5] = 0;
    FF_EXPECT_ERROR(ff_sphere_retract(x), FF_ENUMERIC, "position 1 is the zero vector");
    p->data[1] = -0.5f;
    FF_EXPECT_ERROR(ff_sphere_from_simplex(x, p), FF_EINVAL, "symbol 1 is -0.5");
    p->data[1] = NAN;
    FF_EXPECT_ERROR(ff_sphere_from_simplex(x, p), FF_EINVAL, "symbol 1 is nan");
    ff_tensor_free(p); ff_tensor_free(x); ff_tensor_free(q); ff_tensor_free(s);
    /* unnormalised rows of 37 symbols (vector bodies and tails) with zeros and a rounding negative:
     * sqrt(max(p, 0) / sum of the positive parts), computed plainly here */
    ff_tensor_t *pl = T(3, 2, 37), *xl = T(3, 2, 37);
    ff_rng_t r;
    ff_rng_seed(&r, 8);
    for (int i = 0; i < 6 * 37; i++) pl->data[i] = i % 5 == 0 ? 0.0f : (float)(3 * ff_rng_uniform(&r));
    pl->data[40] = -1e-7f;
    FF_EXPECT(ff_sphere_from_simplex(xl, pl) == FF_OK, "%s", ff_last_error());
    for (int row = 0; row < 6; row++) {
        double sum = 0;
        for (int j = 0; j < 37; j++) sum += pl->data[row * 37 + j] > 0 ? pl->data[row * 37 + j] : 0;
        for (int j = 0; j < 37; j++) {
            double v = pl->data[row * 37 + j], want = v > 0 ? sqrt(v / sum) : 0;
            FF_EXPECT(fabs(xl->data[row * 37 + j] - want) <= 1.2e-7 * want, "row %d symbol %d: %.9g vs %.9g", row, j,
                      xl->data[row * 37 + j], want);
        }
    }
    ff_tensor_free(pl); ff_tensor_free(xl);
}

/* Angles of a few float ulps: relative accuracy (acos of a dot product would lose half the digits). */
FF_TEST(tiny_angles) {
    const int64_t m = 3;
    ff_tensor_t *x = T(1, 1, m), *y = T(1, 1, m), *th = NULL, *L = T(1, 1, m);
    ff_tensor_new2(&th, 1, 1);
    for (int ulps = 1; ulps <= 64; ulps *= 4) {
        x->data[0] = 0.6f; x->data[1] = 0.8f; x->data[2] = 0.0f;
        memcpy(y->data, x->data, sizeof(float) * 3);
        y->data[2] = ulps * 1e-7f;
        FF_EXPECT(ff_sphere_dist(th, x, y) == FF_OK && ff_sphere_log(L, x, y) == FF_OK);
        ld a = ref_angle(x->data, y->data, m);
        FF_EXPECT(fabs(th->data[0] - (double)a) <= 1e-6 * (double)a, "theta %.9g vs %.9g (%d)", th->data[0], (double)a, ulps);
        FF_EXPECT(fabs(sqrt((double)dotl(L->data, L->data, m)) - (double)a) <= 1e-6 * (double)a, "|log| (%d)", ulps);
    }
    ff_tensor_free(x); ff_tensor_free(y); ff_tensor_free(th); ff_tensor_free(L);
}

FF_TEST(bad_input) {
    ff_tensor_t *a = T(2, 3, 4), *b = T(2, 3, 5), *o = T(2, 3, 4), *t = NULL, *d = NULL;
    ff_tensor_new1(&t, 3);
    ff_tensor_new1(&d, 2);
    for (int i = 0; i < 24; i++) a->data[i] = 0.5f;   /* every position unit */
    FF_EXPECT_ERROR(ff_sphere_log(o, a, b), FF_ESHAPE, "ff_sphere_log: x [2,3,4] != y [2,3,5]");
    FF_EXPECT_ERROR(ff_sphere_slerp(o, NULL, a, a, t), FF_ESHAPE, "ff_sphere_slerp: t [3] must be [n]");
    ff_tensor_t *c = NULL;
    ff_tensor_clone(&c, a);
    c->data[5] = 2.0f;
    FF_EXPECT_ERROR(ff_sphere_exp(o, c, a), FF_EINVAL, "ff_sphere_exp: x position 1 is not on the unit sphere");
    c->data[5] = NAN;
    FF_EXPECT_ERROR(ff_sphere_dist2(d, c, a), FF_EINVAL, "position 1");
    FF_EXPECT_ERROR(ff_sphere_dist(d, a, a), FF_ESHAPE, "without its last axis");
    ff_tensor_free(a); ff_tensor_free(b); ff_tensor_free(o); ff_tensor_free(t); ff_tensor_free(d); ff_tensor_free(c);
}

/* ---- ff_sphere_normalize: x / ||x|| per position, no fold ------------------------------------------ */

/* Every element of out against x / ||x|| in long double (no overflow or underflow there for any float
 * input): correctly rounded floats are within 2^-24 relative, subnormal results within 2^-150.
 * Returns the largest error in units of that bound. */
static double normalize_err(const float *in, const float *out, int64_t rows, int64_t m) {
    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
        ld s = 0;
        for (int64_t i = 0; i < m; i++) s += (ld)in[r * m + i] * in[r * m + i];
        ld nrm = sqrtl(s);
        for (int64_t i = 0; i < m; i++) {
            ld want = in[r * m + i] / nrm;
            double bound = fmax(0x1p-24 * fabs((double)want), 0x1p-150);
            worst = ff_nanmax(worst, (double)fabsl((ld)out[r * m + i] - want) / bound);
        }
    }
    return worst;
}

FF_TEST(normalize_without_fold) {
    ff_rng_t r;
    ff_rng_seed(&r, 23);
    /* random signed batches, each row scaled by 10^u, u uniform in [-30, 30] */
    const int64_t dims[] = { 2, 3, 7, 4096 };
    for (size_t di = 0; di < 4; di++) {
        int64_t m = dims[di], rows = m > 100 ? 16 : 400;
        ff_tensor_t *x = NULL, *in = NULL;
        ff_tensor_new2(&x, rows, m);
        for (int64_t i = 0; i < rows; i++) {
            double sc = pow(10.0, -30 + 60 * ff_rng_uniform(&r));
            for (int64_t j = 0; j < m; j++) x->data[i * m + j] = (float)(sc * ff_rng_normal(&r));
        }
        ff_tensor_clone(&in, x);
        FF_EXPECT(ff_sphere_normalize(x) == FF_OK, "m=%lld: %s", (long long)m, ff_last_error());
        double e = normalize_err(in->data, x->data, rows, m);
        printf("  normalize random m=%lld: max error %.3f x 2^-24 relative\n", (long long)m, e);
        FF_EXPECT(e <= 1.000001, "m=%lld: error %.6f x the rounding bound", (long long)m, e);
        /* idempotent up to one rounding: normalising a unit float vector moves no entry by more than
         * 2^-23 relative */
        ff_tensor_t *again = NULL;
        ff_tensor_clone(&again, x);
        FF_EXPECT(ff_sphere_normalize(again) == FF_OK);
        for (int64_t i = 0; i < rows * m; i++)
            FF_EXPECT(fabs(again->data[i] - x->data[i]) <= 0x1p-23 * fabs(x->data[i]), "again[%lld]", (long long)i);
        ff_tensor_free(x); ff_tensor_free(in); ff_tensor_free(again);
    }
    /* adversarial rows: tiny, subnormal, huge, mixed scales, signs (kept: no fold), exact zeros */
    const float tm = FLT_TRUE_MIN, fm = FLT_MAX;
    const float adv[][4] = {
        { 1e-30f, 1e-30f, -1e-30f, 1e-30f },   /* -> +-0.5 */
        { 1e-30f, 1.0f, 0.0f, -1e-30f },      /* 1e-30 kept, not flushed to 0 */
        { fm, -fm, fm, 0.0f },                 /* squares overflow float: -> +-1/sqrt 3 */
        { tm, 0.0f, 0.0f, 0.0f },              /* the smallest subnormal alone -> a vertex */
        { tm, -tm, 0.0f, 0.0f },               /* -> (sqrt .5, -sqrt .5) */
        { -3.0f, 4.0f, 0.0f, -0.0f },          /* -> (-0.6, 0.8): retract would give +0.6 */
        { fm, tm, -1.0f, 0.0f },               /* 60+ decades apart: -> (1, 0, -0, 0) */
        { -1.0f, -1.0f, -1.0f, -1.0f },        /* the negative orthant stays there */
    };
    const int64_t R = sizeof adv / sizeof adv[0];
    ff_tensor_t *x = NULL;
    ff_tensor_new2(&x, R, 4);
    memcpy(x->data, adv, sizeof adv);
    FF_EXPECT(ff_sphere_normalize(x) == FF_OK, "%s", ff_last_error());
    double e = normalize_err(&adv[0][0], x->data, R, 4);
    printf("  normalize adversarial rows: max error %.3f x the rounding bound\n", e);
    FF_EXPECT(e <= 1.000001, "adversarial: error %.6f x the rounding bound", e);
    FF_EXPECT(x->data[4] == 1e-30f && x->data[7] == -1e-30f, "%g %g", x->data[4], x->data[7]);
    FF_EXPECT(x->data[12] == 1.0f && x->data[20] == -0.6f && x->data[21] == 0.8f, "%g %g %g", x->data[12],
              x->data[20], x->data[21]);
    for (int i = 28; i < 32; i++) FF_EXPECT(x->data[i] == -0.5f, "negative orthant [%d] = %g", i, x->data[i]);
    FF_EXPECT(all_finite(x));
    /* refusals: a zero position (also -0.0) and non-finite entries, named */
    const float zero[3][4] = { { 0.6f, 0.8f, 0, 0 }, { 0.0f, -0.0f, 0.0f, -0.0f }, { 1, 1, 1, 1 } };
    ff_tensor_t *z = NULL;
    ff_tensor_new2(&z, 3, 4);
    memcpy(z->data, zero, sizeof zero);
    FF_EXPECT_ERROR(ff_sphere_normalize(z), FF_ENUMERIC, "ff_sphere_normalize: position 1 is the zero vector");
    memcpy(z->data, zero, sizeof zero);
    z->data[2 * 4 + 3] = NAN;
    z->data[1 * 4 + 0] = 1.0f;
    FF_EXPECT_ERROR(ff_sphere_normalize(z), FF_ENUMERIC, "ff_sphere_normalize: position 2, symbol 3 is not finite");
    z->data[2 * 4 + 3] = -INFINITY;
    FF_EXPECT_ERROR(ff_sphere_normalize(z), FF_ENUMERIC, "position 2, symbol 3 is not finite");
    FF_EXPECT_ERROR(ff_sphere_normalize(NULL), FF_EINVAL, "ff_sphere_normalize: x is NULL");
    ff_tensor_free(x); ff_tensor_free(z);
}

/* ---- ff_sphere_transport at and near antipodes ----------------------------------------------------- */

FF_TEST(transport_antipodes) {
    /* refused: exact antipodes (in S^1 and S^2, at position 1 of a batch) and 1 + <x,y> ~ 5e-15 */
    ff_tensor_t *x = NULL, *y = NULL, *v = NULL, *o = NULL;
    ff_tensor_new2(&x, 2, 3); ff_tensor_new2(&y, 2, 3); ff_tensor_new2(&v, 2, 3); ff_tensor_new2(&o, 2, 3);
    const float xs[6] = { 1, 0, 0, 0.6f, 0.8f, 0 }, ys[6] = { 0, 1, 0, -0.6f, -0.8f, 0 },
                vs[6] = { 0, 1, 0, 0, 0, 1 };
    memcpy(x->data, xs, sizeof xs); memcpy(y->data, ys, sizeof ys); memcpy(v->data, vs, sizeof vs);
    FF_EXPECT_ERROR(ff_sphere_transport(o, x, y, v), FF_ENUMERIC,
                    "ff_sphere_transport: position 1: x and y are antipodal");
    ff_tensor_t *x2 = NULL, *y2 = NULL, *v2 = NULL, *o2 = NULL;
    ff_tensor_new2(&x2, 1, 2); ff_tensor_new2(&y2, 1, 2); ff_tensor_new2(&v2, 1, 2); ff_tensor_new2(&o2, 1, 2);
    x2->data[0] = 1; x2->data[1] = 0;
    v2->data[0] = 0; v2->data[1] = 1;
    y2->data[0] = -1; y2->data[1] = 0;
    FF_EXPECT_ERROR(ff_sphere_transport(o2, x2, y2, v2), FF_ENUMERIC,
                    "position 0: x and y are antipodal (1 + <x,y> = 0)");
    y2->data[1] = 1e-7f;   /* 1 + <x,y> = 5e-15 after renormalisation: below the 1e-12 threshold */
    FF_EXPECT_ERROR(ff_sphere_transport(o2, x2, y2, v2), FF_ENUMERIC,
                    "ff_sphere_transport: position 0: x and y are antipodal");
    /* accepted just above the threshold: on S^1 the transport of the geodesic's unit velocity (0, 1) at
     * x = (1, 0) to y = (cos th, sin th) is the velocity there, (-sin th, cos th), th from atan2 in long
     * double. 1 + <x,y> is computed with cancellation, so the error grows like 1e-16 / (1 + <x,y>). */
    const float eps[] = { 1e-2f, 1e-3f, 1e-4f, 1e-5f };
    for (int i = 0; i < 4; i++) {
        y2->data[0] = -1; y2->data[1] = eps[i];
        FF_EXPECT(ff_sphere_transport(o2, x2, y2, v2) == FF_OK, "eps %g: %s", eps[i], ff_last_error());
        ld th = atan2l(y2->data[1], y2->data[0]), den = 1 + cosl(th);
        double err = ff_nanmax(fabs((double)(o2->data[0] + sinl(th))), fabs((double)(o2->data[1] - cosl(th))));
        printf("  transport near the antipode, 1 + <x,y> = %.2g: max error %.2g\n", (double)den, err);
        FF_EXPECT(all_finite(o2) && err <= 1e-7 + 1e-15 / (double)den, "1 + <x,y> = %.3g: error %.3g",
                  (double)den, err);
    }
    ff_tensor_free(x); ff_tensor_free(y); ff_tensor_free(v); ff_tensor_free(o);
    ff_tensor_free(x2); ff_tensor_free(y2); ff_tensor_free(v2); ff_tensor_free(o2);
}

FF_TEST(simplex_check) {
    /* Rows normalised in double pass; one corrupted entry (negative, NaN, a scaled position, a sum
     * just outside the tolerance) is named at its 1-based row, position and column, computed here
     * from the flat index independently of the kernel. */
    const int64_t n = 37, k = 3, m = 5;
    ff_tensor_t *p = T(n, k, m);
    ff_rng_t r;
    ff_rng_seed(&r, 12);
    for (int64_t q = 0; q < n * k; q++) {
        double w[5], s = 0;
        for (int j = 0; j < m; j++) { w[j] = ff_rng_uniform(&r) + 0.01; s += w[j]; }
        for (int j = 0; j < m; j++) p->data[q * m + j] = (float)(w[j] / s);
    }
    FF_EXPECT(ff_simplex_check(p, "data") == FF_OK, "%s", ff_last_error());
    char want[160];
    for (int trial = 0; trial < 20; trial++) {
        int64_t flat = (int64_t)ff_rng_below(&r, (uint64_t)(n * k * m));
        int64_t row = flat / (k * m) + 1, pos = flat / m % k + 1, col = flat % m + 1;
        float keep = p->data[flat];
        p->data[flat] = trial % 2 ? -0.25f : NAN;
        snprintf(want, sizeof want, "data: row %lld, position %lld, column %lld is %s", (long long)row,
                 (long long)pos, (long long)col, trial % 2 ? "-0.25" : "nan");
        FF_EXPECT_ERROR(ff_simplex_check(p, "data"), FF_EINVAL, want);
        p->data[flat] = keep;
    }
    /* a position scaled by 4.4, and the tolerance's edge (sum 1 + 0.9e-3 passes, 1 + 1.1e-3 not) */
    float *q = p->data + (5 * k + 1) * m;
    float save[5];
    for (int j = 0; j < m; j++) { save[j] = q[j]; q[j] *= 4.4f; }
    FF_EXPECT_ERROR(ff_simplex_check(p, "data"), FF_EINVAL, "data: row 6, position 2 sums to 4.4");
    for (int j = 0; j < m; j++) q[j] = save[j];
    q[0] += 0.9e-3f;
    FF_EXPECT(ff_simplex_check(p, "data") == FF_OK, "%s", ff_last_error());
    q[0] += 0.2e-3f;
    FF_EXPECT_ERROR(ff_simplex_check(p, "data"), FF_EINVAL, "data: row 6, position 2 sums to 1.0011");
    q[0] = save[0];
    /* k = 1: no position in the message; a 1-d tensor has no rows */
    ff_tensor_t *one = T(4, 1, 3), *flat1 = NULL;
    for (int i = 0; i < 12; i++) one->data[i] = 1.0f / 3;
    one->data[2 * 3 + 1] = -1;
    FF_EXPECT_ERROR(ff_simplex_check(one, "x"), FF_EINVAL, "x: row 3, column 2 is -1");
    ff_tensor_new1(&flat1, 3);
    FF_EXPECT_ERROR(ff_simplex_check(flat1, "x"), FF_ESHAPE, "needs rows");
    ff_tensor_free(p); ff_tensor_free(one); ff_tensor_free(flat1);
}

FF_MAIN()
