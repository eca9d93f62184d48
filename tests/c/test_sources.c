/* test_sources.c — source and decoder plugins, loaded through the loader. Sources: samples lie on
 * S^d_+, moments of p = x*x against the Dirichlet mean/variance in closed form, log-densities
 * against hand-computed constants, normalisation by quadrature on S^1 and the S^2 octant and by
 * Monte Carlo importance weights under uniform_sphere. Decoders: hand-computed outputs and the
 * sample decoder's frequencies against p. */
#include <math.h>
#include <stdlib.h>
#include "ff_test.h"
#include "fisherflow/fisherflow.h"

static ff_plugin_inst *load(ff_plugin_kind kind, const char *name, const double *alpha, int nalpha) {
    ff_options *o = NULL;
    ff_options_new(&o);
    if (alpha) ff_options_set_numbers(o, "alpha", alpha, nalpha);
    ff_plugin_inst *inst = NULL;
    if (ff_plugin_new(&inst, kind, name, o, NULL, NULL, NULL) != FF_OK)
        fprintf(stderr, "cannot load %s: %s\n", name, ff_last_error());
    ff_options_free(o);
    return inst;
}

static ff_status sample(ff_plugin_inst *s, ff_rng_t *r, ff_tensor_t *x) {
    return ((const ff_source_vtable *)s->desc->vtable)->sample(s->state, r, x);
}
static ff_status log_prob(ff_plugin_inst *s, const ff_tensor_t *x, ff_tensor_t *out) {
    return ((const ff_source_vtable *)s->desc->vtable)->log_prob(s->state, x, out);
}
static ff_status decode(ff_plugin_inst *d, const ff_tensor_t *x, ff_rng_t *r, ff_tensor_t *out) {
    return ((const ff_decoder_vtable *)d->desc->vtable)->decode(d->state, x, r, out);
}

static int rows_on_sphere(const ff_tensor_t *x, double tol) {
    int64_t rows = x->shape[0] * x->shape[1], D = x->shape[2];
    for (int64_t q = 0; q < rows; q++) {
        double s = 0;
        for (int64_t c = 0; c < D; c++) {
            float v = x->data[q * D + c];
            if (!(v >= 0) || !isfinite(v)) return 0;
            s += (double)v * v;
        }
        if (fabs(s - 1) > tol) return 0;
    }
    return 1;
}

/* --- uniform_sphere --------------------------------------------------------------------------- */

FF_TEST(uniform_log_prob_constants) {
    ff_plugin_inst *u = load(FF_PLUGIN_SOURCE, "uniform_sphere", NULL, 0);
    if (!u) { FF_EXPECT(0, "load"); return; }
    /* |S^1| / 4 = pi/2, |S^2| / 8 = pi/2, |S^3| / 16 = 2 pi^2 / 16 */
    struct { int D; double area_over; } c[] = { { 2, M_PI / 2 }, { 3, M_PI / 2 }, { 4, M_PI * M_PI / 8 } };
    ff_rng_t rng;
    ff_rng_seed(&rng, 1);
    for (int q = 0; q < 3; q++)
        for (int k = 1; k <= 3; k += 2) {
            ff_tensor_t *x = NULL, *lp = NULL;
            ff_tensor_new3(&x, 4, k, c[q].D);
            ff_tensor_new1(&lp, 4);
            FF_EXPECT(sample(u, &rng, x) == FF_OK && log_prob(u, x, lp) == FF_OK, "%s", ff_last_error());
            for (int i = 0; i < 4; i++) FF_EXPECT_NEAR(lp->data[i], -k * log(c[q].area_over), 1e-5);
            ff_tensor_free(x); ff_tensor_free(lp);
        }
    /* a point with a negative coordinate is outside the support */
    ff_tensor_t *x = NULL, *lp = NULL;
    ff_tensor_new3(&x, 1, 1, 2);
    ff_tensor_new1(&lp, 1);
    x->data[0] = -0.6f; x->data[1] = 0.8f;
    FF_EXPECT(log_prob(u, x, lp) == FF_OK && lp->data[0] == -INFINITY, "outside: %g", lp->data[0]);
    ff_tensor_free(x); ff_tensor_free(lp);
    ff_plugin_free(u);
}

FF_TEST(uniform_moments_and_extremes) {
    ff_plugin_inst *u = load(FF_PLUGIN_SOURCE, "uniform_sphere", NULL, 0);
    if (!u) { FF_EXPECT(0, "load"); return; }
    ff_rng_t rng;
    ff_rng_seed(&rng, 2);
    int D = 5, N = 40000;
    ff_tensor_t *x = NULL;
    ff_tensor_new3(&x, N, 1, D);
    FF_EXPECT(sample(u, &rng, x) == FF_OK && rows_on_sphere(x, 1e-5), "on sphere");
    /* p = x*x ~ Dirichlet(1/2, ..., 1/2): E p = 1/D, Var p = (1/2)(D/2 - 1/2) / ((D/2)^2 (D/2 + 1)) */
    double A = D / 2.0, mean_t = 1.0 / D, var_t = 0.5 * (A - 0.5) / (A * A * (A + 1));
    for (int c = 0; c < D; c++) {
        double m = 0, m2 = 0;
        for (int i = 0; i < N; i++) { double p = (double)x->data[i * D + c] * x->data[i * D + c]; m += p; m2 += p * p; }
        m /= N; m2 /= N;
        FF_EXPECT_NEAR(m, mean_t, 5 * sqrt(var_t / N));
        FF_EXPECT_NEAR(m2 - m * m, var_t, 0.05 * var_t);
    }
    ff_tensor_free(x);
    /* d + 1 = 2 and 4096 */
    ff_tensor_t *a = NULL, *b = NULL;
    ff_tensor_new3(&a, 100, 3, 2);
    ff_tensor_new3(&b, 3, 2, 4096);
    FF_EXPECT(sample(u, &rng, a) == FF_OK && rows_on_sphere(a, 1e-5), "d+1 = 2");
    FF_EXPECT(sample(u, &rng, b) == FF_OK && rows_on_sphere(b, 1e-4), "d+1 = 4096");
    ff_tensor_free(a); ff_tensor_free(b);
    ff_plugin_free(u);
}

FF_TEST(same_seed_same_samples) {
    ff_plugin_inst *s = load(FF_PLUGIN_SOURCE, "dirichlet", (double[]){ 0.7 }, 1);
    if (!s) { FF_EXPECT(0, "load"); return; }
    ff_rng_t r1, r2;
    ff_rng_seed(&r1, 99);
    ff_rng_seed(&r2, 99);
    ff_tensor_t *a = NULL, *b = NULL;
    ff_tensor_new3(&a, 10, 2, 4);
    ff_tensor_new3(&b, 10, 2, 4);
    sample(s, &r1, a);
    sample(s, &r2, b);
    FF_EXPECT(!memcmp(a->data, b->data, 80 * sizeof(float)), "bitwise reproducible");
    ff_tensor_free(a); ff_tensor_free(b);
    ff_plugin_free(s);
}

/* --- dirichlet -------------------------------------------------------------------------------- */

FF_TEST(dirichlet_moments) {
    struct { int D; int na; double a[4]; } cases[] = {
        { 3, 1, { 1 } },                    /* uniform on the simplex     */
        { 4, 1, { 0.1 } },                  /* mass near the vertices      */
        { 3, 1, { 5 } },                    /* concentrated at the centre  */
        { 4, 4, { 0.7, 1.5, 3, 0.3 } },     /* per-symbol                  */
    };
    ff_rng_t rng;
    ff_rng_seed(&rng, 3);
    int N = 40000;
    for (int q = 0; q < 4; q++) {
        ff_plugin_inst *s = load(FF_PLUGIN_SOURCE, "dirichlet", cases[q].a, cases[q].na);
        if (!s) { FF_EXPECT(0, "load"); continue; }
        int D = cases[q].D;
        ff_tensor_t *x = NULL;
        ff_tensor_new3(&x, N / 2, 2, D);
        FF_EXPECT(sample(s, &rng, x) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(rows_on_sphere(x, 1e-5), "case %d on S^d_+", q);
        double A = 0;
        for (int c = 0; c < D; c++) A += cases[q].a[cases[q].na == 1 ? 0 : c];
        for (int c = 0; c < D; c++) {
            double ac = cases[q].a[cases[q].na == 1 ? 0 : c];
            double mean_t = ac / A, var_t = ac * (A - ac) / (A * A * (A + 1));
            double m = 0, m2 = 0;
            for (int i = 0; i < N; i++) { double p = (double)x->data[i * D + c] * x->data[i * D + c]; m += p; m2 += p * p; }
            m /= N; m2 /= N;
            FF_EXPECT(fabs(m - mean_t) < 5 * sqrt(var_t / N), "case %d symbol %d: mean %.5f, Dirichlet %.5f", q, c, m, mean_t);
            FF_EXPECT(fabs((m2 - m * m) / var_t - 1) < 0.06, "case %d symbol %d: var %.6f, Dirichlet %.6f", q, c, m2 - m * m, var_t);
        }
        ff_tensor_free(x);
        ff_plugin_free(s);
    }
}

FF_TEST(dirichlet_half_is_uniform_sphere) {
    ff_plugin_inst *u = load(FF_PLUGIN_SOURCE, "uniform_sphere", NULL, 0);
    ff_plugin_inst *h = load(FF_PLUGIN_SOURCE, "dirichlet", (double[]){ 0.5 }, 1);
    if (!u || !h) { FF_EXPECT(0, "load"); ff_plugin_free(u); ff_plugin_free(h); return; }
    ff_rng_t rng;
    ff_rng_seed(&rng, 4);
    for (int D = 2; D <= 64; D *= 2) {
        ff_tensor_t *x = NULL, *l1 = NULL, *l2 = NULL;
        ff_tensor_new3(&x, 50, 3, D);
        ff_tensor_new1(&l1, 50);
        ff_tensor_new1(&l2, 50);
        sample(u, &rng, x);
        FF_EXPECT(log_prob(u, x, l1) == FF_OK && log_prob(h, x, l2) == FF_OK, "%s", ff_last_error());
        for (int i = 0; i < 50; i++) FF_EXPECT_NEAR(l1->data[i], l2->data[i], 1e-4 * (1 + fabs(l1->data[i])));
        ff_tensor_free(x); ff_tensor_free(l1); ff_tensor_free(l2);
    }
    ff_plugin_free(u); ff_plugin_free(h);
}

/* Integral of exp(log_prob) over S^1_+ (x = (cos t, sin t), d sigma = dt) and over the S^2 octant
 * (x = (sin f cos g, sin f sin g, cos f), d sigma = sin f df dg) by the midpoint rule. */
FF_TEST(dirichlet_normalised_by_quadrature) {
    struct { int D; int na; double a[3]; } cases[] = {
        { 2, 1, { 1 } }, { 2, 2, { 2, 3.5 } }, { 2, 1, { 0.8 } },
        { 3, 1, { 1 } }, { 3, 3, { 1.5, 2, 4 } }, { 3, 1, { 3 } },
    };
    for (int q = 0; q < 6; q++) {
        ff_plugin_inst *s = load(FF_PLUGIN_SOURCE, "dirichlet", cases[q].a, cases[q].na);
        if (!s) { FF_EXPECT(0, "load"); continue; }
        int D = cases[q].D, M = D == 2 ? 20000 : 600;
        int64_t N = D == 2 ? M : (int64_t)M * M;
        ff_tensor_t *x = NULL, *lp = NULL;
        ff_tensor_new3(&x, N, 1, D);
        ff_tensor_new1(&lp, N);
        double h = (M_PI / 2) / M, total = 0;
        for (int64_t i = 0; i < N; i++) {
            if (D == 2) {
                double t = (i + 0.5) * h;
                x->data[2 * i] = (float)cos(t); x->data[2 * i + 1] = (float)sin(t);
            } else {
                double f = (i / M + 0.5) * h, g = (i % M + 0.5) * h;
                x->data[3 * i] = (float)(sin(f) * cos(g)); x->data[3 * i + 1] = (float)(sin(f) * sin(g));
                x->data[3 * i + 2] = (float)cos(f);
            }
        }
        FF_EXPECT(log_prob(s, x, lp) == FF_OK, "%s", ff_last_error());
        for (int64_t i = 0; i < N; i++) {
            double w = D == 2 ? h : h * h * sin((i / M + 0.5) * h);
            total += exp(lp->data[i]) * w;
        }
        FF_EXPECT(fabs(total - 1) < 1e-3, "case %d (D=%d): integral %.6f", q, D, total);
        printf("  quadrature case %d (D=%d): integral of the density = %.6f\n", q, D, total);
        ff_tensor_free(x); ff_tensor_free(lp);
        ff_plugin_free(s);
    }
}

/* E_{x ~ uniform_sphere}[ exp(log q_dirichlet(x) - log q_uniform(x)) ] = 1 for every alpha, d, k. */
FF_TEST(dirichlet_normalised_by_importance_weights) {
    ff_plugin_inst *u = load(FF_PLUGIN_SOURCE, "uniform_sphere", NULL, 0);
    if (!u) { FF_EXPECT(0, "load"); return; }
    struct { int D, k, na; double a[5]; } cases[] = {
        { 3, 1, 1, { 1 } }, { 5, 1, 1, { 2 } }, { 4, 2, 4, { 0.6, 1, 1.5, 2 } }, { 2, 3, 1, { 1.3 } },
        { 5, 1, 5, { 0.5, 0.5, 1, 1, 0.75 } },
    };
    ff_rng_t rng;
    ff_rng_seed(&rng, 5);
    int N = 200000;
    for (int q = 0; q < 5; q++) {
        ff_plugin_inst *s = load(FF_PLUGIN_SOURCE, "dirichlet", cases[q].a, cases[q].na);
        if (!s) { FF_EXPECT(0, "load"); continue; }
        ff_tensor_t *x = NULL, *lu = NULL, *ld = NULL;
        ff_tensor_new3(&x, N, cases[q].k, cases[q].D);
        ff_tensor_new1(&lu, N);
        ff_tensor_new1(&ld, N);
        sample(u, &rng, x);
        FF_EXPECT(log_prob(u, x, lu) == FF_OK && log_prob(s, x, ld) == FF_OK, "%s", ff_last_error());
        double m = 0, m2 = 0;
        for (int i = 0; i < N; i++) { double w = exp((double)ld->data[i] - lu->data[i]); m += w; m2 += w * w; }
        m /= N; m2 /= N;
        double se = sqrt((m2 - m * m) / N);
        FF_EXPECT(fabs(m - 1) < 5 * se + 1e-4, "case %d: E[w] = %.5f +- %.5f", q, m, se);
        printf("  importance weights case %d (D=%d k=%d): E[w] = %.5f +- %.5f\n", q, cases[q].D, cases[q].k, m, se);
        ff_tensor_free(x); ff_tensor_free(lu); ff_tensor_free(ld);
        ff_plugin_free(s);
    }
    ff_plugin_free(u);
}

FF_TEST(dirichlet_tiny_alpha_and_boundary) {
    ff_plugin_inst *s = load(FF_PLUGIN_SOURCE, "dirichlet", (double[]){ 0.01 }, 1);
    if (!s) { FF_EXPECT(0, "load"); return; }
    ff_rng_t rng;
    ff_rng_seed(&rng, 6);
    ff_tensor_t *x = NULL, *lp = NULL;
    ff_tensor_new3(&x, 2000, 1, 8);
    ff_tensor_new1(&lp, 2000);
    FF_EXPECT(sample(s, &rng, x) == FF_OK && rows_on_sphere(x, 1e-5), "no NaN or empty rows at alpha 0.01");
    ff_tensor_free(x); ff_tensor_free(lp);
    ff_plugin_free(s);
    /* density at a vertex: 0 when alpha > 1/2 (log -inf), infinite when alpha < 1/2 */
    s = load(FF_PLUGIN_SOURCE, "dirichlet", (double[]){ 2, 2, 0.25 }, 3);
    ff_tensor_new3(&x, 2, 1, 3);
    ff_tensor_new1(&lp, 2);
    float v[] = { 1, 0, 0,  0, 0, 1 };
    memcpy(x->data, v, sizeof v);
    FF_EXPECT(s && log_prob(s, x, lp) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(lp->data[0] == -INFINITY && lp->data[1] == -INFINITY, "zero factor wins: %g %g", lp->data[0], lp->data[1]);
    ff_plugin_free(s);
    s = load(FF_PLUGIN_SOURCE, "dirichlet", (double[]){ 0.5, 0.5, 0.25 }, 3);
    FF_EXPECT(s && log_prob(s, x, lp) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(lp->data[0] == INFINITY && isfinite(lp->data[1]),
              "alpha 1/4 at 0 is infinite, alpha 1/2 at 0 finite: %g %g", lp->data[0], lp->data[1]);
    ff_tensor_t *bad = NULL;
    ff_tensor_new3(&bad, 2, 1, 4);
    FF_EXPECT_ERROR(sample(s, &rng, bad), FF_ESHAPE, "source \"dirichlet\": out has d+1 = 4 symbols, option \"alpha\" has 3 values");
    ff_tensor_free(bad); ff_tensor_free(x); ff_tensor_free(lp);
    ff_plugin_free(s);
}

/* --- decoders --------------------------------------------------------------------------------- */

FF_TEST(decoders_by_hand) {
    ff_plugin_inst *am = load(FF_PLUGIN_DECODER, "argmax", NULL, 0), *pr = load(FF_PLUGIN_DECODER, "probs", NULL, 0);
    ff_plugin_inst *sm = load(FF_PLUGIN_DECODER, "sample", NULL, 0);
    if (!am || !pr || !sm) { FF_EXPECT(0, "load"); goto done; }
    ff_tensor_t *x = NULL, *tok = NULL, *p = NULL;
    ff_tensor_new3(&x, 2, 2, 4);
    ff_tensor_new2(&tok, 2, 2);
    ff_tensor_new3(&p, 2, 2, 4);
    /* rows: a clear winner; a tie (lowest index wins); a negative entry (x*x counts); not normalised */
    float v[] = { 0.1f, 0.7f, 0.5f, 0.5f,    0.6f, 0.0f, 0.6f, 0.529150262f,
                  -0.9f, 0.3f, 0.3f, 0.1f,   2.0f, 0.0f, 0.0f, 2.0f };
    memcpy(x->data, v, sizeof v);
    ff_rng_t rng;
    ff_rng_seed(&rng, 7);
    FF_EXPECT(decode(am, x, &rng, tok) == FF_OK, "%s", ff_last_error());
    float want[] = { 1, 0, 0, 0 };
    for (int i = 0; i < 4; i++) FF_EXPECT(tok->data[i] == want[i], "argmax[%d] = %g, want %g", i, tok->data[i], want[i]);
    FF_EXPECT(decode(pr, x, &rng, p) == FF_OK, "%s", ff_last_error());
    for (int r = 0; r < 4; r++) {
        double s = 0;
        for (int c = 0; c < 4; c++) s += (double)v[r * 4 + c] * v[r * 4 + c];
        for (int c = 0; c < 4; c++) FF_EXPECT_NEAR(p->data[r * 4 + c], (double)v[r * 4 + c] * v[r * 4 + c] / s, 1e-6);
    }
    FF_EXPECT_NEAR(p->data[12], 0.5, 1e-7);
    FF_EXPECT_NEAR(p->data[15], 0.5, 1e-7);
    /* bad rows */
    x->data[5] = NAN;
    FF_EXPECT_ERROR(decode(am, x, &rng, tok), FF_ENUMERIC, "decoder \"argmax\": x[0, 1, 1] is not finite");
    FF_EXPECT_ERROR(decode(sm, x, &rng, tok), FF_ENUMERIC, "decoder \"sample\": x[0, 1, 1] is not finite");
    FF_EXPECT_ERROR(decode(pr, x, &rng, p), FF_ENUMERIC, "decoder \"probs\": x[0, 1, 1] is not finite");
    memset(x->data, 0, 16 * sizeof(float));
    x->data[0] = 1; x->data[4] = 1; x->data[8] = 1;           /* row (1, 1) is the zero vector */
    FF_EXPECT_ERROR(decode(sm, x, &rng, tok), FF_ENUMERIC, "decoder \"sample\": x[1, 1] is the zero vector");
    FF_EXPECT_ERROR(decode(pr, x, &rng, p), FF_ENUMERIC, "decoder \"probs\": x[1, 1] is the zero vector");
    FF_EXPECT_ERROR(decode(am, x, &rng, p), FF_ESHAPE, "decoder \"argmax\": x [2,2,4] and out [2,2,4]");
    ff_tensor_free(x); ff_tensor_free(tok); ff_tensor_free(p);
done:
    ff_plugin_free(am); ff_plugin_free(pr); ff_plugin_free(sm);
}

FF_TEST(sample_decoder_frequencies) {
    ff_plugin_inst *sm = load(FF_PLUGIN_DECODER, "sample", NULL, 0);
    if (!sm) { FF_EXPECT(0, "load"); return; }
    double p[5] = { 0.1, 0.0, 0.2, 0.3, 0.4 };
    int N = 50000, k = 4;
    ff_tensor_t *x = NULL, *tok = NULL;
    ff_tensor_new3(&x, N, k, 5);
    ff_tensor_new2(&tok, N, k);
    for (int r = 0; r < N * k; r++)
        for (int c = 0; c < 5; c++) x->data[r * 5 + c] = (float)sqrt(p[c]);
    ff_rng_t rng;
    ff_rng_seed(&rng, 12);
    FF_EXPECT(decode(sm, x, &rng, tok) == FF_OK, "%s", ff_last_error());
    int counts[5] = { 0 };
    for (int r = 0; r < N * k; r++) {
        int t = (int)tok->data[r];
        if (t >= 0 && t < 5) counts[t]++;
    }
    double chi2 = 0;
    for (int c = 0; c < 5; c++) {
        double e = p[c] * N * k;
        if (e > 0) chi2 += (counts[c] - e) * (counts[c] - e) / e;
        else FF_EXPECT(counts[c] == 0, "a symbol of probability 0 was drawn %d times", counts[c]);
    }
    /* 3 degrees of freedom: P(chi2 > 16.27) = 0.001 */
    FF_EXPECT(chi2 < 16.27, "chi2 %.2f, counts %d %d %d %d %d", chi2, counts[0], counts[1], counts[2], counts[3], counts[4]);
    printf("  sample decoder: chi2 = %.2f (3 dof) over %d draws\n", chi2, N * k);
    ff_tensor_free(x); ff_tensor_free(tok);
    ff_plugin_free(sm);
}

FF_MAIN()
