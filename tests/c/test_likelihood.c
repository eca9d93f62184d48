/* test_likelihood.c — CNF log-density changes against closed forms: zero field, a rotation (divergence
 * free), the conformal field f(x) = P_x(a) whose flow moves along great circles towards a/|a|
 * (div f = -d <a, x>, delta = d log(sin phi0 / sin phi1)), exact vs Hutchinson, and the model density
 * of that flow integrated over the 2-simplex on a triangle grid (support decided by the closed form),
 * and a plane rotation whose backward paths leave S^2_+ (log p = -inf there), checked against the
 * sampler on the same field; ff_sphere_orthant_log_area for d = 0..200 (recurrence, quadrature, Monte Carlo). */
#include <fisherflow/fisherflow.h>
#include <stdlib.h>
#include "ff_test.h"

typedef struct { double alpha; int64_t m; } conf_ctx;

/* f(x, t) = P_x(a), a = alpha (1,..,1)/sqrt(m) (time independent). */
static ff_tensor_t *conformal(void *ctx, ff_tape_t *tp, ff_tensor_t *y, ff_tensor_t *t) {
    (void)t;
    conf_ctx *c = ctx;
    ff_tensor_t *a = ff_tape_alloc(tp, y->ndim, y->shape);
    if (!a) return NULL;
    for (int64_t i = 0; i < ff_tensor_numel(a); i++) a->data[i] = (float)(c->alpha / sqrt((double)c->m));
    return ff_sphere_project(tp, y, a);
}

static ff_tensor_t *zero_field(void *ctx, ff_tape_t *tp, ff_tensor_t *y, ff_tensor_t *t) {
    (void)ctx; (void)t;
    return ff_mul_scalar(tp, y, 0.0f);
}

/* f(x, t) = (1 + t) a x (cross product with the unit axis a = (1,1,1)/sqrt 3): y @ W, W = [a]x^T. */
static ff_tensor_t *rotation(void *ctx, ff_tape_t *tp, ff_tensor_t *y, ff_tensor_t *t) {
    (void)ctx;
    const double a = 0.57735026918962576;
    ff_tensor_t *W = ff_tape_alloc(tp, 2, (int64_t[]){ 3, 3 });
    if (!W) return NULL;
    const double C[3][3] = { { 0, -a, a }, { a, 0, -a }, { -a, a, 0 } };   /* [a]x */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) W->data[i * 3 + j] = (float)C[j][i];
    ff_tensor_t *w = ff_add_scalar(tp, ff_reshape(tp, t, 3, (int64_t[]){ -1, 1, 1 }), 1.0f);
    return ff_mul(tp, ff_matmul(tp, y, W), w);
}

static ff_tensor_t *wrong_shape(void *ctx, ff_tape_t *tp, ff_tensor_t *y, ff_tensor_t *t) {
    (void)ctx; (void)y;
    return ff_mul_scalar(tp, t, 2.0f);
}

/* Points in S^{m-1}_+ within `maxang` of the centre axis. */
static void centred_points(ff_rng_t *r, float *x, int64_t count, int64_t m, double maxang) {
    double *v = malloc(sizeof(double) * (size_t)m);
    for (int64_t p = 0; p < count; p++) {
        double s = 0, d = 0;
        for (int64_t i = 0; i < m; i++) { v[i] = ff_rng_normal(r); d += v[i]; }
        for (int64_t i = 0; i < m; i++) { v[i] -= d / m; s += v[i] * v[i]; }
        double ang = maxang * ff_rng_uniform(r);
        for (int64_t i = 0; i < m; i++) x[p * m + i] = (float)(cos(ang) / sqrt((double)m) + sin(ang) * v[i] / sqrt(s));
    }
    free(v);
}

/* Closed form for the conformal flow: delta and x0 of one position x1. */
static double conformal_exact(const float *x1, int64_t m, double alpha, double *x0) {
    double c = 0, w2 = 0, *e = malloc(sizeof(double) * (size_t)m), ah = 1 / sqrt((double)m);
    for (int64_t i = 0; i < m; i++) c += x1[i] * ah;
    for (int64_t i = 0; i < m; i++) { e[i] = x1[i] - c * ah; w2 += e[i] * e[i]; }
    double phi1 = atan2(sqrt(w2), c), phi0 = 2 * atan(tan(phi1 / 2) * exp(alpha));
    for (int64_t i = 0; i < m; i++) x0[i] = cos(phi0) * ah + sin(phi0) * e[i] / sqrt(w2);
    free(e);
    return (double)(m - 1) * log(sin(phi0) / sin(phi1));
}

static ff_tape_t *new_tape(void) {
    ff_tape_t *tp = NULL;
    if (ff_tape_new(&tp, 1 << 20) != FF_OK) abort();
    return tp;
}

FF_TEST(zero_and_rotation) {
    ff_rng_t r;
    ff_rng_seed(&r, 1);
    const int64_t n = 32, k = 2, m = 3;
    ff_tensor_t *x1 = NULL, *x0 = NULL, *dl = NULL;
    ff_tensor_new3(&x1, n, k, m);
    ff_tensor_new3(&x0, n, k, m);
    ff_tensor_new1(&dl, n);
    centred_points(&r, x1->data, n * k, m, 0.5);
    ff_tape_t *tp = new_tape();
    ff_likelihood_opts o = ff_likelihood_default_opts();
    o.steps = 20;
    FF_EXPECT(ff_likelihood_delta(zero_field, NULL, tp, x1, &o, &r, dl, x0) == FF_OK, "%s", ff_last_error());
    for (int64_t i = 0; i < n; i++) FF_EXPECT(dl->data[i] == 0.0f, "zero field: delta %g", dl->data[i]);
    for (int64_t i = 0; i < n * k * m; i++) FF_EXPECT_NEAR(x0->data[i], x1->data[i], 1e-7);
    /* rotation: divergence free; x0 = x1 rotated back by the angle int_0^1 (1 + t) dt = 1.5 */
    const char *est[] = { "exact", "hutchinson" };
    for (int e = 0; e < 2; e++) {
        o.estimator = est[e];
        FF_EXPECT(ff_likelihood_delta(rotation, NULL, tp, x1, &o, &r, dl, x0) == FF_OK, "%s", ff_last_error());
        double md = 0, mx = 0;
        for (int64_t i = 0; i < n; i++) md = ff_nanmax(md, fabs(dl->data[i]));
        for (int64_t p = 0; p < n * k; p++) {
            const float *x = x1->data + p * m;
            double a = 0.57735026918962576, ang = -1.5, c = cos(ang), s = sin(ang), d = a * (x[0] + x[1] + x[2]);
            double cr[3] = { a * (x[2] - x[1]), a * (x[0] - x[2]), a * (x[1] - x[0]) };
            for (int i = 0; i < 3; i++) mx = ff_nanmax(mx, fabs(x0->data[p * m + i] - (x[i] * c + cr[i] * s + a * d * (1 - c))));
        }
        printf("  rotation (%s): max |delta| %.2e, max |x0 - exact| %.2e\n", est[e], md, mx);
        FF_EXPECT(md < 1e-5, "rotation delta %.3g", md);
        FF_EXPECT(mx < 2e-6, "rotation x0 err %.3g", mx);
    }
    ff_tensor_free(x1); ff_tensor_free(x0); ff_tensor_free(dl);
    ff_tape_free(tp);
}

FF_TEST(conformal_known_divergence) {
    ff_rng_t r;
    ff_rng_seed(&r, 2);
    ff_tape_t *tp = new_tape();
    const int64_t dims[] = { 3, 4 };
    for (int di = 0; di < 2; di++) {
        const int64_t n = 40, k = 2, m = dims[di];
        conf_ctx c = { 0.8, m };
        ff_tensor_t *x1 = NULL, *x0 = NULL, *dl = NULL;
        ff_tensor_new3(&x1, n, k, m);
        ff_tensor_new3(&x0, n, k, m);
        ff_tensor_new1(&dl, n);
        centred_points(&r, x1->data, n * k, m, 0.6);
        double *ref0 = malloc(sizeof(double) * (size_t)(n * k * m));
        const int steps[] = { 5, 10, 20 };
        double prev = 0;
        for (int si = 0; si < 3; si++) {
            ff_likelihood_opts o = { steps[si], "exact", 1 };
            FF_EXPECT(ff_likelihood_delta(conformal, &c, tp, x1, &o, NULL, dl, x0) == FF_OK, "%s", ff_last_error());
            double ed = 0, ex = 0;
            for (int64_t i = 0; i < n; i++) {
                double want = 0;
                for (int64_t j = 0; j < k; j++)
                    want += conformal_exact(x1->data + (i * k + j) * m, m, c.alpha, ref0 + (i * k + j) * m);
                ed = ff_nanmax(ed, fabs(dl->data[i] - want));
            }
            for (int64_t i = 0; i < n * k * m; i++) ex = ff_nanmax(ex, fabs(x0->data[i] - ref0[i]));
            printf("  conformal d=%lld, RK4 %2d steps: max |delta - exact| %.2e%s, max |x0 - exact| %.2e\n",
                   (long long)(m - 1), steps[si], ed, si ? "" : "", ex);
            if (si) printf("    (order of the delta error: %.2f)\n", log2(prev / ed));
            prev = ed;
            if (si == 2) {
                FF_EXPECT(ed < 5e-6, "d=%lld: delta error %.3g", (long long)(m - 1), ed);
                FF_EXPECT(ex < 5e-7, "x0 error %.3g", ex);
            }
        }
        free(ref0);
        ff_tensor_free(x1); ff_tensor_free(x0); ff_tensor_free(dl);
    }
    ff_tape_free(tp);
}

FF_TEST(exact_vs_hutchinson) {
    ff_rng_t r;
    ff_rng_seed(&r, 3);
    ff_tape_t *tp = new_tape();
    const int64_t n = 400, k = 2, m = 4;
    conf_ctx c = { 0.8, m };
    ff_tensor_t *x1 = NULL, *de = NULL, *dh = NULL;
    ff_tensor_new3(&x1, n, k, m);
    ff_tensor_new1(&de, n);
    ff_tensor_new1(&dh, n);
    centred_points(&r, x1->data, n * k, m, 0.6);
    ff_likelihood_opts o = { 10, "exact", 1 };
    FF_EXPECT(ff_likelihood_delta(conformal, &c, tp, x1, &o, NULL, de, NULL) == FF_OK, "%s", ff_last_error());
    const int probes[] = { 1, 4 };
    double sd_prev = 0;
    for (int pi = 0; pi < 2; pi++) {
        o.estimator = "hutchinson";
        o.probes = probes[pi];
        FF_EXPECT(ff_likelihood_delta(conformal, &c, tp, x1, &o, &r, dh, NULL) == FF_OK, "%s", ff_last_error());
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = dh->data[i] - de->data[i];
            s += d; s2 += d * d;
        }
        double mean = s / n, sd = sqrt(fmax(s2 / n - mean * mean, 0)), se = sd / sqrt((double)n);
        printf("  hutchinson probes=%d: mean(hutch - exact) %.2e, sd %.3f, standard error %.3f\n", probes[pi], mean,
               sd, se);
        FF_EXPECT(fabs(mean) < 4 * se, "Hutchinson biased: mean diff %.3g vs 4 se %.3g", mean, 4 * se);
        FF_EXPECT(sd > 0, "Hutchinson should not be exact for this field");
        if (pi) FF_EXPECT(sd < sd_prev, "more probes should reduce the spread (%.3g >= %.3g)", sd, sd_prev);
        sd_prev = sd;
    }
    /* "auto" picks exact for k (d+1) = 8 <= 64 (bitwise equal to the exact run) */
    o.estimator = "auto";
    FF_EXPECT(ff_likelihood_delta(conformal, &c, tp, x1, &o, NULL, dh, NULL) == FF_OK);
    for (int64_t i = 0; i < n; i++) FF_EXPECT(dh->data[i] == de->data[i], "auto != exact at %lld", (long long)i);
    ff_tensor_free(x1); ff_tensor_free(de); ff_tensor_free(dh);
    ff_tape_free(tp);
}

/* The model density on the 2-simplex (uniform orthant source pushed by the conformal flow):
 * q(p) = exp(-log_area + delta + logdet) where x0 is in the orthant, else 0; it must integrate to 1. */
FF_TEST(density_integrates_to_one) {
    const int R = 160;
    const int64_t n = (int64_t)R * R;   /* every triangle of the grid, by its centroid */
    ff_tensor_t *p = NULL, *x1 = NULL, *x0 = NULL, *dl = NULL, *ld = NULL;
    ff_tensor_new3(&p, n, 1, 3);
    ff_tensor_new3(&x1, n, 1, 3);
    ff_tensor_new3(&x0, n, 1, 3);
    ff_tensor_new1(&dl, n);
    ff_tensor_new1(&ld, n);
    int64_t q = 0;
    for (int i = 0; i < R; i++)
        for (int j = 0; i + j < R; j++) {
            for (int up = 0; up <= (i + j <= R - 2); up++) {
                double a = (i + (up ? 2.0 : 1.0) / 3) / R, b = (j + (up ? 2.0 : 1.0) / 3) / R;
                p->data[q * 3 + 0] = (float)a;
                p->data[q * 3 + 1] = (float)b;
                p->data[q * 3 + 2] = (float)(1 - a - b);
                q++;
            }
        }
    FF_EXPECT(q == n, "grid has %lld triangles, expected %lld", (long long)q, (long long)n);
    FF_EXPECT(ff_sphere_from_simplex(x1, p) == FF_OK);
    ff_tape_t *tp = new_tape();
    conf_ctx c = { 1.0, 3 };
    ff_likelihood_opts o = { 16, "exact", 1 };
    FF_EXPECT(ff_likelihood_delta(conformal, &c, tp, x1, &o, NULL, dl, x0) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_sphere_to_simplex_logdet(x1, ld) == FF_OK, "%s", ff_last_error());
    double la = ff_sphere_orthant_log_area(2), mass = 0, maxerr = 0;
    FF_EXPECT_NEAR(la, log(4 * 3.14159265358979323846 / 8), 1e-12);   /* |S^2| / 8 = pi/2 */
    int64_t inside = 0, disagree = 0;
    for (int64_t s = 0; s < n; s++) {
        const float *z = x0->data + 3 * s;
        double x0r[3], want = conformal_exact(x1->data + 3 * s, 3, c.alpha, x0r);
        /* The support is decided by the closed-form preimage; x0_out must agree (away from the image of
         * the orthant's boundary). The forward field P_x(a) points into S^2_+ on every face, so the
         * sampler never folds: outside the image of the orthant the density is exactly 0. */
        double zmin = fmin(x0r[0], fmin(x0r[1], x0r[2]));
        int out_code = z[0] < 0 || z[1] < 0 || z[2] < 0;
        if (fabs(zmin) > 1e-4 && out_code != (zmin < 0)) disagree++;
        if (zmin < 0) continue;   /* preimage outside the source's support: log-density -inf */
        inside++;
        double dens = exp(-la + dl->data[s] + ld->data[s]);
        mass += dens / (2.0 * R * R);
        maxerr = ff_nanmax(maxerr, fabs(dl->data[s] - want));
    }
    printf("  2-simplex, %d x %d grid (%lld triangles, %lld in the support): integral of the model density %.5f, "
           "max |delta - exact| %.2e, support disagreements %lld\n", R, R, (long long)n, (long long)inside, mass,
           maxerr, (long long)disagree);
    FF_EXPECT(disagree == 0, "%lld points: x0_out and the closed-form preimage disagree on the orthant",
              (long long)disagree);
    FF_EXPECT(inside < n, "the test needs backward paths that leave the orthant");
    FF_EXPECT(fabs(mass - 1) < 5e-3, "density integrates to %.5f", mass);
    FF_EXPECT(maxerr < 1e-4, "delta err %.3g", maxerr);
    ff_tensor_free(p); ff_tensor_free(x1); ff_tensor_free(x0); ff_tensor_free(dl); ff_tensor_free(ld);
    ff_tape_free(tp);
}

typedef struct { double omega; } rot_ctx;

/* f(x) = omega (-x_1, x_0, 0): a rotation in the (x_0, x_1) plane at constant angular speed, divergence
 * free. x = (r cos phi, r sin phi, x_2): phi grows by omega t. As a tape field (y @ W) and as a sampler
 * field (float in, float out). */
static ff_tensor_t *plane_rotation(void *ctx, ff_tape_t *tp, ff_tensor_t *y, ff_tensor_t *t) {
    (void)t;
    const rot_ctx *c = ctx;
    ff_tensor_t *W = ff_tape_alloc(tp, 2, (int64_t[]){ 3, 3 });
    if (!W) return NULL;
    memset(W->data, 0, sizeof(float) * 9);
    W->data[1 * 3 + 0] = (float)-c->omega;   /* f_0 = -omega y_1 */
    W->data[0 * 3 + 1] = (float)c->omega;    /* f_1 =  omega y_0 */
    return ff_matmul(tp, y, W);
}

static ff_status plane_rotation_v(void *ctx, const ff_tensor_t *y, double t, ff_tensor_t *v) {
    (void)t;
    const rot_ctx *c = ctx;
    for (int64_t r = 0; r < ff_tensor_numel(y) / 3; r++) {
        const float *x = y->data + 3 * r;
        float *o = v->data + 3 * r;
        o[0] = (float)(-c->omega * x[1]);
        o[1] = (float)(c->omega * x[0]);
        o[2] = 0.0f;
    }
    return FF_OK;
}

/* A backward trajectory that crosses the orthant boundary, against the sampler. Backwards from x1 the
 * rotation lowers phi by omega, so x0 has x0_1 = r sin(phi1 - omega) < 0 iff phi1 < omega: the exact
 * model density there is 0 (log -inf), elsewhere it is the source's, -log(pi/2) on S^2_+ (delta = 0).
 * The sampler (Riemannian Euler, fold after every step) agrees: forward, the wedge phi < omega empties
 * (phi only grows, and the field points INTO S^2_+ on the face x_1 = 0, so no fold happens there); the
 * fold acts on the opposite face x_0 = 0, where the forward field points out, and parks the mass that
 * reaches it in a layer of width O(h) (a singular part: it has no density in the h -> 0 limit).
 * A fold in the backward integration would instead send every phi1 < omega to the face x_1 = 0 with a
 * finite density, giving the empty wedge the source's density: total mass 1 + omega / (pi/2). */
FF_TEST(rotation_leaves_orthant) {
    const double omega = 0.6, pi = 3.14159265358979323846, la = ff_sphere_orthant_log_area(2);
    rot_ctx c = { omega };
    ff_rng_t r;
    ff_rng_seed(&r, 5);
    const int64_t n = 4000;
    ff_tensor_t *x1 = NULL, *x0 = NULL, *dl = NULL;
    ff_tensor_new3(&x1, n, 1, 3);
    ff_tensor_new3(&x0, n, 1, 3);
    ff_tensor_new1(&dl, n);
    for (int64_t i = 0; i < n; i++) {   /* uniform on S^2_+: |z| / ||z|| */
        double z[3], q = 0;
        for (int j = 0; j < 3; j++) { z[j] = fabs(ff_rng_normal(&r)); q += z[j] * z[j]; }
        for (int j = 0; j < 3; j++) x1->data[3 * i + j] = (float)(z[j] / sqrt(q));
    }
    ff_tape_t *tp = new_tape();
    const char *est[] = { "exact", "hutchinson" };
    for (int e = 0; e < 2; e++) {
        ff_likelihood_opts o = { 20, est[e], 1 };
        FF_EXPECT(ff_likelihood_delta(plane_rotation, &c, tp, x1, &o, &r, dl, x0) == FF_OK, "%s", ff_last_error());
        int64_t outside = 0, wrong = 0;
        double md = 0, mx = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *x = x1->data + 3 * i, *z = x0->data + 3 * i;
            double rr = hypot(x[0], x[1]), phi = atan2(x[1], x[0]);
            double want[3] = { rr * cos(phi - omega), rr * sin(phi - omega), x[2] };
            for (int j = 0; j < 3; j++) mx = ff_nanmax(mx, fabs(z[j] - want[j]));
            md = ff_nanmax(md, fabs(dl->data[i]));
            int out_code = z[0] < 0 || z[1] < 0 || z[2] < 0;
            if (fabs(phi - omega) > 1e-4 && out_code != (phi < omega)) wrong++;
            outside += out_code;
            /* the log-density the flow reports: -inf outside, -log(pi/2) + delta inside */
            double lp = out_code ? -INFINITY : -la + dl->data[i];
            if (!out_code) FF_EXPECT_NEAR(lp, -log(pi / 2), 1e-5);
        }
        printf("  plane rotation (%s): %lld of %lld backward paths leave S^2_+ (expected fraction %.4f, got %.4f), "
               "max |delta| %.1e, max |x0 - exact| %.1e\n", est[e], (long long)outside, (long long)n,
               omega / (pi / 2), (double)outside / n, md, mx);
        FF_EXPECT(wrong == 0, "%lld points left the orthant on the wrong side of phi = omega", (long long)wrong);
        FF_EXPECT(md < 1e-5, "delta %.3g", md);
        FF_EXPECT(mx < 2e-6, "x0 error %.3g", mx);
        double fr = (double)outside / n, se = sqrt(fr * (1 - fr) / n);
        FF_EXPECT(fabs(fr - omega / (pi / 2)) < 4 * se + 1e-9, "outside fraction %.4f", fr);
    }
    /* The sampler on the same field: uniform source, 200 Riemannian-Euler steps (fold after each). */
    const ff_geometry *g = ff_geometry_find("sphere");
    FF_EXPECT(g != NULL, "%s", ff_last_error());
    ff_ode_opts oo = ff_ode_default_opts();
    oo.steps = 200;
    ff_ode_stats st = { 0, 0, 0 };
    ff_tensor_t *y = NULL;
    ff_tensor_new3(&y, n, 1, 3);
    memcpy(y->data, x1->data, sizeof(float) * (size_t)(3 * n));   /* x1 was drawn from the source */
    FF_EXPECT(ff_ode_integrate(g, plane_rotation_v, &c, y, 0.0, 1.0, &oo, &st) == FF_OK, "%s", ff_last_error());
    const double margin = 0.02;   /* >> h omega = 0.003 */
    int64_t wedge = 0, interior = 0, face = 0;
    for (int64_t i = 0; i < n; i++) {
        double phi = atan2(y->data[3 * i + 1], y->data[3 * i]);
        if (phi < omega - margin) wedge++;
        else if (phi > omega + margin && phi < pi / 2 - margin) interior++;
        else if (phi >= pi / 2 - margin) face++;
    }
    double pin = (pi / 2 - omega - 2 * margin) / (pi / 2), fr = (double)interior / n, se = sqrt(pin * (1 - pin) / n);
    printf("  sampler, same field: %lld of %lld samples in the wedge phi < omega (log p = -inf there), interior "
           "fraction %.4f (model density predicts %.4f), %lld parked at the face x_0 = 0\n", (long long)wedge,
           (long long)n, fr, pin, (long long)face);
    FF_EXPECT(wedge == 0, "%lld samples where the likelihood says the density is 0", (long long)wedge);
    FF_EXPECT(fabs(fr - pin) < 4 * se, "interior fraction %.4f vs %.4f", fr, pin);
    ff_tensor_free(x1); ff_tensor_free(x0); ff_tensor_free(dl); ff_tensor_free(y);
    ff_tape_free(tp);
}

/* Uniform source alone: exp(-log_area + logdet) is the Dirichlet(1/2, 1/2, 1/2) density. */
FF_TEST(logdet_is_dirichlet_half) {
    ff_tensor_t *p = NULL, *x = NULL, *ld = NULL;
    ff_tensor_new3(&p, 3, 2, 3);
    ff_tensor_new3(&x, 3, 2, 3);
    ff_tensor_new1(&ld, 3);
    const float pv[18] = { 0.2f, 0.3f, 0.5f, 0.6f, 0.3f, 0.1f, 1.0f / 3, 1.0f / 3, 1.0f / 3,
                           0.05f, 0.05f, 0.9f, 0.7f, 0.2f, 0.1f, 0.25f, 0.25f, 0.5f };
    memcpy(p->data, pv, sizeof pv);
    FF_EXPECT(ff_sphere_from_simplex(x, p) == FF_OK);
    FF_EXPECT(ff_sphere_to_simplex_logdet(x, ld) == FF_OK);
    for (int s = 0; s < 3; s++) {
        double want = 0;
        for (int j = 0; j < 2; j++) {
            const float *q = p->data + (s * 2 + j) * 3;   /* log Dir(1/2) = lgamma(3/2) - 3 lgamma(1/2) - sum log(p)/2 */
            want += lgamma(1.5) - 3 * lgamma(0.5) - 0.5 * (log(q[0]) + log(q[1]) + log(q[2]));
        }
        FF_EXPECT_NEAR(-2 * ff_sphere_orthant_log_area(2) + ld->data[s], want, 1e-5);
    }
    ff_tensor_free(p); ff_tensor_free(x); ff_tensor_free(ld);
}

FF_TEST(errors) {
    ff_tape_t *tp = new_tape();
    ff_tensor_t *x1 = NULL, *dl = NULL, *bad = NULL;
    ff_tensor_new3(&x1, 2, 1, 3);
    ff_tensor_new1(&dl, 2);
    ff_tensor_new1(&bad, 3);
    for (int i = 0; i < 6; i++) x1->data[i] = (float)(1 / sqrt(3.0));
    ff_likelihood_opts o = ff_likelihood_default_opts();
    o.steps = 2;
    FF_EXPECT_ERROR(ff_likelihood_delta(wrong_shape, NULL, tp, x1, &o, NULL, dl, NULL), FF_ESHAPE,
                    "the field returned [2] for y [2,1,3]");
    FF_EXPECT_ERROR(ff_likelihood_delta(zero_field, NULL, tp, x1, &o, NULL, bad, NULL), FF_ESHAPE,
                    "delta [3] must be [n] for x1 [2,1,3]");
    o.estimator = "hutchinson";
    FF_EXPECT_ERROR(ff_likelihood_delta(zero_field, NULL, tp, x1, &o, NULL, dl, NULL), FF_EINVAL, "needs an rng");
    o.estimator = "sketch";
    FF_EXPECT_ERROR(ff_likelihood_delta(zero_field, NULL, tp, x1, &o, NULL, dl, NULL), FF_EINVAL,
                    "unknown estimator \"sketch\" (known: exact, hutchinson, auto)");
    x1->data[0] = 3;
    o.estimator = "exact";
    FF_EXPECT_ERROR(ff_likelihood_delta(zero_field, NULL, tp, x1, &o, NULL, dl, NULL), FF_EINVAL,
                    "x1 position 0 is not on the unit sphere");
    ff_tensor_free(x1); ff_tensor_free(dl); ff_tensor_free(bad);
    ff_tape_free(tp);
}

/* log(|S^d| / 2^{d+1}) for d = 0..200 against the recurrence |S^d| = 2 pi |S^{d-2}| / (d - 1) from
 * |S^0| = 2, |S^1| = 2 pi, summed in long double (no Gamma function); the lgamma closed form in long
 * double; and for d = 1, 3 two numerical integrals that use neither: the orthant's area by the midpoint
 * rule in hyperspherical angles (area element prod_j sin^j(phi_j), every angle in [0, pi/2]), and by
 * Monte Carlo through |S^d_+| = (d+1) vol{u in [0,1]^{d+1} : |u| < 1}. */
FF_TEST(orthant_log_area_every_d) {
    const long double pi = 3.141592653589793238462643383279503L;
    long double rec[201];
    rec[0] = 0;                        /* log(2 / 2) */
    rec[1] = logl(pi / 2);             /* log(2 pi / 4) */
    for (int d = 2; d <= 200; d++) rec[d] = rec[d - 2] + logl(2 * pi / (d - 1)) - 2 * logl(2);
    double worst = 0;
    for (int d = 0; d <= 200; d++) {
        long double m = d + 1, lg = logl(2) + m / 2 * logl(pi) - lgammal(m / 2) - m * logl(2);
        double got = ff_sphere_orthant_log_area(d);
        double tol = 1e-14 * fmax(1.0, fabs((double)rec[d]));
        FF_EXPECT(fabs(got - (double)rec[d]) <= tol, "d=%d: %.17g vs recurrence %.17g", d, got, (double)rec[d]);
        FF_EXPECT(fabs(got - (double)lg) <= tol, "d=%d: %.17g vs lgammal %.17g", d, got, (double)lg);
        worst = ff_nanmax(worst, fabs(got - (double)rec[d]) / fmax(1.0, fabs((double)rec[d])));
    }
    printf("  d = 0..200: largest relative error against the recurrence %.2g (log area at d=200: %.6f)\n", worst,
           ff_sphere_orthant_log_area(200));
    ff_rng_t r;
    ff_rng_seed(&r, 41);
    const double hp = 1.57079632679489661923;   /* pi / 2 */
    const int dd[2] = { 1, 3 };
    for (int q = 0; q < 2; q++) {
        int d = dd[q];
        double got = exp(ff_sphere_orthant_log_area(d));
        /* midpoint rule, 2000 nodes per angle: prod_{j=0}^{d-1} int_0^{pi/2} sin^j */
        double quad = 1;
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int i = 0; i < 2000; i++) s += pow(sin((i + 0.5) * hp / 2000), j);
            quad *= s * hp / 2000;
        }
        FF_EXPECT(fabs(got - quad) <= 1e-6 * quad, "d=%d: area %.12g vs midpoint rule %.12g", d, got, quad);
        /* Monte Carlo: the fraction of the unit cube inside the ball */
        const long N = 2000000;
        long in = 0;
        for (long i = 0; i < N; i++) {
            double s = 0;
            for (int j = 0; j <= d; j++) { double u = ff_rng_uniform(&r); s += u * u; }
            in += s < 1;
        }
        double frac = (double)in / N, mc = (d + 1) * frac, se = (d + 1) * sqrt(frac * (1 - frac) / N);
        printf("  d=%d: area %.9f, midpoint rule %.9f, Monte Carlo %.5f +- %.5f\n", d, got, quad, mc, se);
        FF_EXPECT(fabs(got - mc) <= 4 * se, "d=%d: area %.6g vs Monte Carlo %.6g +- %.2g", d, got, mc, se);
    }
}

FF_MAIN()
