/* test_geometry.c — the three geometries: velocity = derivative of the path (central differences),
 * projections idempotent and tangent, one Euler step along the path's initial velocity lands on the
 * endpoint (geodesic exactness), step/retract keep points valid, including at the simplex boundary;
 * the sphere step against a plain per-symbol reference. */
#include <fisherflow/fisherflow.h>
#include <stdlib.h>
#include "ff_test.h"

static const char *const names[] = { "sphere", "simplex", "linear" };
enum { N = 16, K = 2, M = 4 };

static ff_tensor_t *T3(void) {
    ff_tensor_t *t = NULL;
    if (ff_tensor_new3(&t, N, K, M) != FF_OK) abort();
    return t;
}

/* Random data in the geometry's coordinates; boundary = 1 makes half of y1's positions one-hot. */
static void fill(const ff_geometry *g, ff_rng_t *r, ff_tensor_t *y, int boundary) {
    ff_tensor_t *p = T3();
    for (int64_t i = 0; i < N * K; i++) {
        double s = 0;
        for (int j = 0; j < M; j++) s += (p->data[i * M + j] = (float)ff_rng_gamma(r, 1.0));
        for (int j = 0; j < M; j++) p->data[i * M + j] = (float)(p->data[i * M + j] / s);
        if (boundary && i % 2)
            for (int j = 0; j < M; j++) p->data[i * M + j] = j == (int)(i % M) ? 1.0f : 0.0f;
    }
    FF_EXPECT(g->from_simplex(y, p) == FF_OK, "%s: %s", g->name, ff_last_error());
    ff_tensor_free(p);
}

static void check_valid(const ff_geometry *g, const ff_tensor_t *y, const char *what) {
    for (int64_t i = 0; i < N * K; i++) {
        double s = 0, s2 = 0;
        int ok = 1;
        for (int j = 0; j < M; j++) {
            float v = y->data[i * M + j];
            ok &= isfinite(v) && v >= 0;
            s += v;
            s2 += (double)v * v;
        }
        FF_EXPECT(ok, "%s %s: position %lld has a negative or non-finite entry", g->name, what, (long long)i);
        if (!strcmp(g->name, "sphere")) FF_EXPECT_NEAR(sqrt(s2), 1.0, 1e-6);
        else FF_EXPECT_NEAR(s, 1.0, 1e-6);
    }
}

FF_TEST(velocity_is_path_derivative) {
    ff_rng_t r;
    ff_rng_seed(&r, 5);
    for (int gi = 0; gi < 3; gi++) {
        const ff_geometry *g = ff_geometry_find(names[gi]);
        FF_EXPECT(g && !strcmp(g->name, names[gi]));
        for (int boundary = 0; boundary <= 1; boundary++) {
            ff_tensor_t *y0 = T3(), *y1 = T3(), *yt = T3(), *ut = T3(), *yp = T3(), *ym = T3(), *t = NULL, *tp = NULL,
                        *tm = NULL;
            ff_tensor_new1(&t, N); ff_tensor_new1(&tp, N); ff_tensor_new1(&tm, N);
            fill(g, &r, y0, 0);
            fill(g, &r, y1, boundary);
            const float h = 1.0f / 512;   /* exact in binary: t +- h has no rounding */
            for (int i = 0; i < N; i++) {
                t->data[i] = (float)(0.05 + 0.9 * ff_rng_uniform(&r));
                tp->data[i] = t->data[i] + h;
                tm->data[i] = t->data[i] - h;
            }
            FF_EXPECT(g->interpolate(yt, ut, y0, y1, t) == FF_OK, "%s: %s", g->name, ff_last_error());
            FF_EXPECT(g->interpolate(yp, NULL, y0, y1, tp) == FF_OK);
            FF_EXPECT(g->interpolate(ym, NULL, y0, y1, tm) == FF_OK);
            double err = 0, scale = 0;
            for (int64_t i = 0; i < N * K * M; i++) {
                double fd = ((double)yp->data[i] - ym->data[i]) / (2.0 * h);
                err = ff_nanmax(err, fabs(fd - ut->data[i]));
                scale = ff_nanmax(scale, fabs(ut->data[i]));
            }
            printf("  %-7s boundary=%d: max |u_t - central difference| = %.2e (max |u_t| %.2f)\n", g->name, boundary,
                   err, scale);
            FF_EXPECT(err < 2e-4, "%s: u_t is not d/dt y_t (err %.3g)", g->name, err);
            check_valid(g, yt, "y_t");
            /* tangency of the target */
            for (int64_t i = 0; i < N * K; i++) {
                double a = 0;
                for (int j = 0; j < M; j++)
                    a += !strcmp(g->name, "sphere") ? (double)yt->data[i * M + j] * ut->data[i * M + j] : ut->data[i * M + j];
                FF_EXPECT_NEAR(a, 0.0, 2e-6);
            }
            /* endpoints */
            for (int i = 0; i < N; i++) t->data[i] = (float)(i % 2);
            FF_EXPECT(g->interpolate(yt, NULL, y0, y1, t) == FF_OK);
            for (int64_t i = 0; i < N * K * M; i++) {
                float want = (i / (K * M)) % 2 ? y1->data[i] : y0->data[i];
                FF_EXPECT_NEAR(yt->data[i], want, 1e-6);
            }
            ff_tensor_free(y0); ff_tensor_free(y1); ff_tensor_free(yt); ff_tensor_free(ut); ff_tensor_free(yp);
            ff_tensor_free(ym); ff_tensor_free(t); ff_tensor_free(tp); ff_tensor_free(tm);
        }
    }
}

FF_TEST(projection_idempotent_tangent) {
    ff_rng_t r;
    ff_rng_seed(&r, 9);
    ff_tape_t *tp = NULL;
    FF_EXPECT(ff_tape_new(&tp, 1 << 16) == FF_OK);
    for (int gi = 0; gi < 3; gi++) {
        const ff_geometry *g = ff_geometry_find(names[gi]);
        ff_tensor_t *y = T3(), *v = T3();
        fill(g, &r, y, 1);
        ff_rng_fill_normal(&r, v, 0, 3);
        ff_tape_reset(tp);
        ff_tensor_t *yl = ff_tape_leaf(tp, y, 0), *vl = ff_tape_leaf(tp, v, 0);
        ff_tensor_t *p1 = g->project(tp, yl, vl);
        ff_tensor_t *p2 = g->project(tp, yl, p1);
        FF_EXPECT(ff_tape_status(tp) == FF_OK && p1 && p2, "%s: %s", g->name, ff_last_error());
        if (!p1 || !p2) continue;
        for (int64_t i = 0; i < N * K; i++) {
            double a = 0;
            for (int j = 0; j < M; j++) {
                int64_t q = i * M + j;
                FF_EXPECT_NEAR(p1->data[q], p2->data[q], 2e-6);
                a += !strcmp(g->name, "sphere") ? (double)y->data[q] * p1->data[q] : p1->data[q];
            }
            FF_EXPECT_NEAR(a, 0.0, 1e-5);   /* tangent */
        }
        /* the removed part is normal: v - P v = c y (sphere, c = <y, v - Pv>) or c (1,..,1) */
        for (int64_t i = 0; i < N * K; i++) {
            double c = 0;
            for (int j = 0; j < M; j++) {
                int64_t q = i * M + j;
                c += !strcmp(g->name, "sphere") ? (double)y->data[q] * (v->data[q] - p1->data[q])
                                                : (v->data[q] - p1->data[q]) / M;
            }
            for (int j = 0; j < M; j++) {
                int64_t q = i * M + j;
                double nrm = !strcmp(g->name, "sphere") ? y->data[q] : 1.0;
                FF_EXPECT_NEAR(v->data[q] - p1->data[q], c * nrm, 2e-5);
            }
        }
        ff_tensor_free(y); ff_tensor_free(v);
    }
    ff_tape_free(tp);
}

FF_TEST(step_follows_geodesic) {
    ff_rng_t r;
    ff_rng_seed(&r, 13);
    for (int gi = 0; gi < 3; gi++) {
        const ff_geometry *g = ff_geometry_find(names[gi]);
        ff_tensor_t *y0 = T3(), *y1 = T3(), *u0 = T3(), *t = NULL;
        ff_tensor_new1(&t, N);   /* t = 0 */
        fill(g, &r, y0, 0);
        fill(g, &r, y1, 0);
        FF_EXPECT(g->interpolate(NULL, u0, y0, y1, t) == FF_OK);
        /* one step of size 1 along the initial velocity of the path lands on y1 (the path is the
         * geometry's geodesic); two steps of 1/2 along the path's velocities also do */
        FF_EXPECT(g->step(y0, u0, 1.0) == FF_OK, "%s: %s", g->name, ff_last_error());
        double err = 0;
        for (int64_t i = 0; i < N * K * M; i++) err = ff_nanmax(err, fabs(y0->data[i] - y1->data[i]));
        printf("  %-7s exp(y0, u0) vs y1: max err %.2e\n", g->name, err);
        FF_EXPECT(err < 2e-6, "%s: step(y0, u0, 1) != y1, err %.3g", g->name, err);
        ff_tensor_free(y0); ff_tensor_free(y1); ff_tensor_free(u0); ff_tensor_free(t);
    }
}

FF_TEST(step_retract_keep_valid) {
    ff_rng_t r;
    ff_rng_seed(&r, 17);
    for (int gi = 0; gi < 3; gi++) {
        const ff_geometry *g = ff_geometry_find(names[gi]);
        ff_tensor_t *y = T3(), *v = T3();
        fill(g, &r, y, 1);   /* half the positions are vertices */
        for (int rep = 0; rep < 20; rep++) {
            ff_rng_fill_normal(&r, v, 0, 5);   /* large, not tangent */
            double h = rep % 2 ? 0.3 : -0.05;
            FF_EXPECT(g->step(y, v, h) == FF_OK, "%s: %s", g->name, ff_last_error());
            check_valid(g, y, "after step");
            for (int64_t i = 0; i < N * K * M; i++) v->data[i] = y->data[i] + (float)(0.1 * ff_rng_normal(&r));
            FF_EXPECT(g->retract(v) == FF_OK, "%s: %s", g->name, ff_last_error());
            check_valid(g, v, "after retract");
        }
        /* round trip through the simplex */
        ff_tensor_t *p = T3(), *y2 = T3();
        FF_EXPECT(g->to_simplex(p, y) == FF_OK && g->from_simplex(y2, p) == FF_OK);
        for (int64_t i = 0; i < N * K * M; i++) FF_EXPECT_NEAR(y2->data[i], y->data[i], 1e-6);
        ff_tensor_free(p); ff_tensor_free(y2);
        ff_tensor_free(y); ff_tensor_free(v);
    }
}

/* The sphere step written plainly (per symbol: normalise, project, exp map by cos/sin, fold,
 * renormalise) against the vectorised one, on m that is and is not a multiple of 4, non-tangent v,
 * both signs of h and a step so small the series branch of sin(a)/a is taken; NaN in v is named. */
static void sphere_step_plain(float *x, const float *v, int64_t m, double h) {
    double nx = 0, c = 0, ww = 0, q = 0, xh[64], w[64], z[64];
    for (int64_t i = 0; i < m; i++) nx += (double)x[i] * x[i];
    nx = sqrt(nx);
    for (int64_t i = 0; i < m; i++) { xh[i] = x[i] / nx; c += xh[i] * v[i]; }
    for (int64_t i = 0; i < m; i++) { w[i] = v[i] - c * xh[i]; ww += w[i] * w[i]; }
    double a = fabs(h) * sqrt(ww);
    for (int64_t i = 0; i < m; i++) {
        z[i] = fabs(cos(a) * xh[i] + (a > 0 ? h * sin(a) / a : h) * w[i]);
        q += z[i] * z[i];
    }
    for (int64_t i = 0; i < m; i++) x[i] = (float)(z[i] / sqrt(q));
}

FF_TEST(sphere_step_equals_plain_reference) {
    const ff_geometry *g = ff_geometry_find("sphere");
    ff_rng_t r;
    ff_rng_seed(&r, 23);
    const int64_t ms[] = { 3, 4, 7, 20, 61 };
    const double hs[] = { 0.01, -0.2, 1e-7, 0.5 };
    for (int q = 0; q < 5; q++)
        for (int hq = 0; hq < 4; hq++) {
            int64_t m = ms[q];
            ff_tensor_t *y = NULL, *v = NULL, *ref = NULL;
            ff_tensor_new3(&y, 5, 3, m);
            ff_tensor_new3(&v, 5, 3, m);
            ff_tensor_new3(&ref, 5, 3, m);
            for (int64_t i = 0; i < 15 * m; i++) {
                y->data[i] = (float)fabs(ff_rng_normal(&r));
                v->data[i] = (float)(3 * ff_rng_normal(&r));
            }
            ff_tensor_copy(ref, y);
            for (int64_t row = 0; row < 15; row++) sphere_step_plain(ref->data + row * m, v->data + row * m, m, hs[hq]);
            FF_EXPECT(g->step(y, v, hs[hq]) == FF_OK, "%s", ff_last_error());
            double err = 0;
            for (int64_t i = 0; i < 15 * m; i++) err = ff_nanmax(err, fabs(y->data[i] - ref->data[i]));
            FF_EXPECT(err < 1e-6, "m=%lld h=%g: step vs plain reference, max err %.3g", (long long)m, hs[hq], err);
            if (hq == 0 && q == 4) {
                v->data[2 * m + 5] = NAN;   /* row 2 = position 2 of sample 0 */
                FF_EXPECT_ERROR(g->step(y, v, 0.1), FF_ENUMERIC,
                                "geometry sphere: step: v position 2, symbol 5 is not finite");
            }
            ff_tensor_free(y); ff_tensor_free(v); ff_tensor_free(ref);
        }
}

/* The simplex step at a vertex: mass flows into empty symbols as p + h v would (first order). */
FF_TEST(simplex_step_at_boundary) {
    const ff_geometry *g = ff_geometry_find("simplex");
    ff_tensor_t *y = NULL, *v = NULL;
    ff_tensor_new3(&y, 1, 1, 3);
    ff_tensor_new3(&v, 1, 1, 3);
    const double hs[] = { 1e-2, 1e-3, 1e-4 };
    for (int k = 0; k < 3; k++) {
        y->data[0] = 1; y->data[1] = 0; y->data[2] = 0;
        v->data[0] = -1.5f; v->data[1] = 1.0f; v->data[2] = 0.5f;
        FF_EXPECT(g->step(y, v, hs[k]) == FF_OK, "%s", ff_last_error());
        double e1 = fabs(y->data[1] - hs[k] * 1.0) / hs[k], e2 = fabs(y->data[2] - hs[k] * 0.5) / hs[k];
        printf("  vertex step h=%g: p = (%.7f, %.7f, %.7f), relative error of the inflow %.2e %.2e\n", hs[k],
               y->data[0], y->data[1], y->data[2], e1, e2);
        FF_EXPECT(e1 < 3 * hs[k] + 1e-3 && e2 < 3 * hs[k] + 1e-3, "inflow off first order");
    }
    ff_tensor_free(y); ff_tensor_free(v);
}

FF_TEST(find_and_errors) {
    FF_EXPECT(ff_geometry_find("hyperbolic") == NULL);
    FF_EXPECT(strstr(ff_last_error(), "geometry \"hyperbolic\" is unknown (known: sphere, simplex, linear)"),
              "%s", ff_last_error());
    const char *const *nm = ff_geometry_names();
    int c = 0;
    while (nm[c]) FF_EXPECT(ff_geometry_find(nm[c++]) != NULL);
    FF_EXPECT(c == 3);
    const ff_geometry *g = ff_geometry_find("linear");
    ff_tensor_t *y = T3(), *v = NULL;
    ff_tensor_new3(&v, N, K, M + 1);
    FF_EXPECT_ERROR(g->step(y, v, 0.1), FF_ESHAPE, "geometry linear: step: y [16,2,4] != v [16,2,5]");
    ff_tensor_free(y); ff_tensor_free(v);
}

FF_MAIN()
