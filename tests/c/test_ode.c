/* test_ode.c — every stepper on a rotation of S^2 about the orthant's centre axis with a time-varying
 * speed (closed form by Rodrigues' formula; the points stay inside S^2_+): endpoint error, measured
 * order of accuracy, norm after retraction, adaptive tolerance, backwards integration, NaN fields. */
#include <fisherflow/fisherflow.h>
#include <stdlib.h>
#include "ff_test.h"

enum { N = 6, K = 2, M = 3 };
static const double AX[3] = { 0.57735026918962576, 0.57735026918962576, 0.57735026918962576 };

/* angular speed w(t) = 1 + t; angle(t0 -> t1) = (t1 - t0) + (t1^2 - t0^2)/2 */
typedef struct { int nan_after; double nan_t; int64_t calls; } field_ctx;

static ff_status rotation(void *ctx, const ff_tensor_t *y, double t, ff_tensor_t *v) {
    field_ctx *c = ctx;
    c->calls++;
    double w = 1.0 + t;
    for (int64_t r = 0; r < ff_tensor_numel(y) / 3; r++) {
        const float *x = y->data + 3 * r;
        float *o = v->data + 3 * r;
        o[0] = (float)(w * (AX[1] * x[2] - AX[2] * x[1]));
        o[1] = (float)(w * (AX[2] * x[0] - AX[0] * x[2]));
        o[2] = (float)(w * (AX[0] * x[1] - AX[1] * x[0]));
    }
    if (c->nan_after && t > c->nan_t) v->data[ff_tensor_numel(v) - 1] = NAN;
    return FF_OK;
}

static ff_status failing(void *ctx, const ff_tensor_t *y, double t, ff_tensor_t *v) {
    (void)ctx; (void)y; (void)v;
    return ff_errorf(FF_EPLUGIN, "network \"toy\": refused at t = %g", t);
}

static void rodrigues(const double *x, double ang, double *out) {
    double c = cos(ang), s = sin(ang), d = AX[0] * x[0] + AX[1] * x[1] + AX[2] * x[2];
    double cr[3] = { AX[1] * x[2] - AX[2] * x[1], AX[2] * x[0] - AX[0] * x[2], AX[0] * x[1] - AX[1] * x[0] };
    for (int i = 0; i < 3; i++) out[i] = x[i] * c + cr[i] * s + AX[i] * d * (1 - c);
}

/* Starting points within 25 degrees of the axis: the whole orbit stays in the open orthant. */
static void starts(ff_tensor_t *y, uint64_t seed) {
    ff_rng_t r;
    ff_rng_seed(&r, seed);
    double e1[3] = { 0.70710678118654752, -0.70710678118654752, 0 }, e2[3];
    e2[0] = AX[1] * e1[2] - AX[2] * e1[1]; e2[1] = AX[2] * e1[0] - AX[0] * e1[2]; e2[2] = AX[0] * e1[1] - AX[1] * e1[0];
    for (int64_t p = 0; p < N * K; p++) {
        double a = 0.436 * ff_rng_uniform(&r), phi = 6.283185307179586 * ff_rng_uniform(&r);
        for (int i = 0; i < 3; i++)
            y->data[3 * p + i] = (float)(cos(a) * AX[i] + sin(a) * (cos(phi) * e1[i] + sin(phi) * e2[i]));
    }
}

/* Max endpoint error of one run; also checks |x| = 1 and x >= 0. */
static double run(const char *stepper, int steps, double eps_abs, double t0, double t1, ff_ode_stats *st) {
    const ff_geometry *g = ff_geometry_find("sphere");
    ff_tensor_t *y = NULL;
    ff_tensor_new3(&y, N, K, M);
    starts(y, 1);
    double x0[N * K * M];
    for (int i = 0; i < N * K * M; i++) x0[i] = y->data[i];
    field_ctx c = { 0, 0, 0 };
    ff_ode_opts o = ff_ode_default_opts();
    o.stepper = stepper;
    o.steps = steps;
    o.eps_abs = eps_abs;
    ff_status s = ff_ode_integrate(g, rotation, &c, y, t0, t1, &o, st);
    FF_EXPECT(s == FF_OK, "%s: %s", stepper, ff_last_error());
    FF_EXPECT(st->nfe == c.calls, "%s: nfe %lld but %lld calls", stepper, (long long)st->nfe, (long long)c.calls);
    double ang = (t1 - t0) + (t1 * t1 - t0 * t0) / 2, err = 0;
    for (int p = 0; p < N * K; p++) {
        double want[3], nn = 0;
        rodrigues(x0 + 3 * p, ang, want);
        for (int i = 0; i < 3; i++) {
            err = ff_nanmax(err, fabs(y->data[3 * p + i] - want[i]));
            nn += (double)y->data[3 * p + i] * y->data[3 * p + i];
            FF_EXPECT(y->data[3 * p + i] >= 0, "%s left the orthant", stepper);
        }
        FF_EXPECT_NEAR(sqrt(nn), 1.0, 2e-7);
    }
    ff_tensor_free(y);
    return err;
}

typedef struct { const char *name; int n0; int levels; double min_order; } order_case;

FF_TEST(orders_of_accuracy) {
    /* step counts chosen so that every error stays well above the float32 floor (~1e-7) */
    const order_case cases[] = {
        { "euler", 16, 4, 0.9 }, { "rk2", 8, 4, 1.8 },   { "rk4", 2, 3, 3.6 },
        { "rkf45", 2, 3, 3.6 },  { "rkck", 2, 2, 3.6 },  { "rk8pd", 1, 2, 6.0 },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const order_case *c = &cases[k];
        double prev = 0, last_order = 0;
        printf("  %-6s", c->name);
        for (int l = 0; l < c->levels; l++) {
            ff_ode_stats st;
            int steps = c->n0 << l;
            double e = run(c->name, steps, 0, 0.0, 1.0, &st);
            FF_EXPECT(st.steps == steps, "%s: %lld steps, asked %d", c->name, (long long)st.steps, steps);
            if (l) {
                last_order = log2(prev / e);
                printf("  n=%-3d err %.2e (order %.2f, nfe %lld)", steps, e, last_order, (long long)st.nfe);
            } else
                printf("  n=%-3d err %.2e (nfe %lld)", steps, e, (long long)st.nfe);
            prev = e;
        }
        printf("\n");
        FF_EXPECT(last_order >= c->min_order, "%s: measured order %.2f < %.1f", c->name, last_order, c->min_order);
    }
}

FF_TEST(msadams) {
    ff_ode_stats st;
    double e = run("msadams", 10, 1e-7, 0.0, 1.0, &st);
    printf("  msadams adaptive eps_abs 1e-7: err %.2e, steps %lld, nfe %lld\n", e, (long long)st.steps, (long long)st.nfe);
    FF_EXPECT(e < 1e-5, "msadams err %.3g", e);
    double e1 = run("msadams", 10, 1e-5, 0.0, 1.0, &st);
    printf("  msadams adaptive eps_abs 1e-5: err %.2e, steps %lld, nfe %lld\n", e1, (long long)st.steps, (long long)st.nfe);
    FF_EXPECT(e1 < 1e-4, "msadams err %.3g", e1);
}

FF_TEST(adaptive_meets_tolerance) {
    const char *ad[] = { "rkf45", "rkck", "rk8pd" };
    for (int k = 0; k < 3; k++)
        for (double tol = 1e-4; tol >= 1e-6; tol /= 10) {
            ff_ode_stats st;
            double e = run(ad[k], 10, tol, 0.0, 1.0, &st);
            printf("  %-6s eps_abs %.0e: err %.2e, steps %lld, rejected %lld, nfe %lld\n", ad[k], tol, e,
                   (long long)st.steps, (long long)st.rejected, (long long)st.nfe);
            /* the control bounds the local error per step; the global error over ~steps steps */
            FF_EXPECT(e <= 10 * tol, "%s: err %.3g above 10 x tolerance %.0e", ad[k], e, tol);
        }
}

FF_TEST(backwards) {
    const char *all[] = { "euler", "rk4", "rkf45" };
    for (int k = 0; k < 3; k++) {
        ff_ode_stats st;
        double e = run(all[k], 200, k == 2 ? 1e-7 : 0, 1.0, 0.25, &st);
        printf("  %-6s from t=1 to t=0.25: err %.2e\n", all[k], e);
        FF_EXPECT(e < (k == 0 ? 1e-2 : 1e-5), "%s backwards err %.3g", all[k], e);
    }
}

FF_TEST(nan_field_and_errors) {
    const ff_geometry *g = ff_geometry_find("sphere");
    ff_tensor_t *y = NULL;
    ff_tensor_new3(&y, N, K, M);
    const char *all[] = { "euler", "rk2", "rk4", "rkf45", "rkck", "rk8pd", "msadams" };
    for (int k = 0; k < 7; k++)
        for (int adaptive = k == 6; adaptive <= (k ? 1 : 0); adaptive++) {
            starts(y, 2);
            field_ctx c = { 1, 0.5, 0 };
            ff_ode_opts o = ff_ode_default_opts();
            o.stepper = all[k];
            o.steps = 20;
            o.eps_abs = adaptive ? 1e-6 : 0;
            FF_EXPECT_ERROR(ff_ode_integrate(g, rotation, &c, y, 0, 1, &o, NULL), FF_ENUMERIC, "is NaN");
            FF_EXPECT(strstr(ff_last_error(), all[k]) != NULL, "%s", ff_last_error());
            for (int i = 0; i < N * K * M; i++) FF_EXPECT(isfinite(y->data[i]), "%s left NaN in y", all[k]);
            o.eps_abs = k == 6 ? 1e-6 : 0;
            FF_EXPECT_ERROR(ff_ode_integrate(g, failing, NULL, y, 0, 1, &o, NULL), FF_EPLUGIN,
                            "field: network \"toy\": refused");
        }
    ff_ode_opts o = ff_ode_default_opts();
    o.stepper = "rk5";
    FF_EXPECT_ERROR(ff_ode_integrate(g, rotation, NULL, y, 0, 1, &o, NULL), FF_EINVAL,
                    "unknown stepper \"rk5\" (known: euler, rk2, rk4, rkf45, rkck, rk8pd, msadams)");
    o.stepper = "euler";
    o.eps_abs = 1e-5;
    FF_EXPECT_ERROR(ff_ode_integrate(g, rotation, NULL, y, 0, 1, &o, NULL), FF_EINVAL, "fixed-step");
    o.stepper = "msadams";
    o.eps_abs = 0;
    FF_EXPECT_ERROR(ff_ode_integrate(g, rotation, NULL, y, 0, 1, &o, NULL), FF_EINVAL, "adaptive only");
    o.stepper = "euler";
    o.steps = 0;
    FF_EXPECT_ERROR(ff_ode_integrate(g, rotation, NULL, y, 0, 1, &o, NULL), FF_EINVAL, "steps = 0");
    const char *const *nm = ff_ode_steppers();
    int c = 0;
    while (nm[c]) c++;
    FF_EXPECT(c == 7);
    ff_tensor_free(y);
}

FF_MAIN()
