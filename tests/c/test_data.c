/* test_data.c — smiley generator geometry, its cell masses against a closed-form 1-D integral and
 * against Monte Carlo; toy categorical tables and sampling frequencies. */
#include <stdlib.h>
#include "fisherflow/fisherflow.h"
#include "fisherflow/data.h"
#include "fisherflow/metrics.h"
#include "ff_test.h"

static const double S = 0.86602540378443864676;   /* sqrt(3)/2 */

FF_TEST(smiley_geometry) {
    ff_rng_t rng;
    ff_rng_seed(&rng, 1523);
    int64_t n = 3001;
    ff_tensor_t *x, *y;
    ff_tensor_new3(&x, n, 1, 3);
    ff_tensor_new3(&y, n, 1, 3);
    FF_EXPECT(ff_data_smiley(&rng, n, x) == FF_OK, "%s", ff_last_error());
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *p = x->data + 3 * i;
        if (!(p[0] > 0 && p[1] > 0 && p[2] > 0) || fabs(p[0] + p[1] + p[2] - 1) > 1e-6) { bad++; continue; }
        double px = p[1] + 0.5 * p[2], py = S * p[2];   /* back to the plane */
        if (i < 1000) { if (hypot(px - 0.40, py - 0.45) > 0.05 + 1e-6) bad++; }
        else if (i < 2000) { if (hypot(px - 0.60, py - 0.45) > 0.05 + 1e-6) bad++; }
        else {
            double r = hypot(px - 0.5, py - 0.30), a = atan2(py - 0.30, px - 0.5) + 2 * M_PI;
            if (r < 0.17 - 1e-6 || r > 0.23 + 1e-6 || a < 1.25 * M_PI - 1e-5 || a > 1.75 * M_PI + 1e-5) bad++;
        }
    }
    FF_EXPECT(bad == 0, "%d points outside their component", bad);
    ff_rng_seed(&rng, 1523);
    FF_EXPECT(ff_data_smiley(&rng, n, y) == FF_OK);
    FF_EXPECT(!memcmp(x->data, y->data, (size_t)n * 3 * sizeof(float)), "same seed, different points");
    ff_tensor_t *wrong;
    ff_tensor_new2(&wrong, n, 3);
    FF_EXPECT_ERROR(ff_data_smiley(&rng, n, wrong), FF_ESHAPE, "out is [3001,3], expected contiguous [3001,1,3]");
    FF_EXPECT_ERROR(ff_data_smiley(&rng, -1, x), FF_EINVAL, "n = -1");
    ff_tensor_free(wrong); ff_tensor_free(x); ff_tensor_free(y);
}

/* Fraction of one eye (radius ~ U(0, R), angle ~ U(0, 2pi)) below the line y = cy - c0, by an
 * independent route: the 1-D integral over r of the angle measure, by composite Simpson. */
static double eye_fraction_below(double c0, double R) {
    int N = 200000;
    double h = (R - c0) / N, s = 0;
    for (int i = 0; i <= N; i++) {
        double r = c0 + i * h, f = (M_PI - 2 * asin(fmin(1.0, c0 / r))) / (2 * M_PI);
        s += f * (i == 0 || i == N ? 1 : (i % 2 ? 4 : 2));
    }
    return s * h / 3 / R;
}

FF_TEST(smiley_masses_closed_form) {
    ff_tensor_t *m;
    ff_tensor_new1(&m, 4);
    double err = -1;
    FF_EXPECT(ff_data_smiley_masses(2, 2048, m, &err) == FF_OK, "%s", ff_last_error());
    /* res 2: the top cell is p_C >= 1/2, i.e. y >= sqrt(3)/4; only the eyes reach it */
    double c0 = 0.45 - S / 2, top = 2.0 / 3.0 * (1.0 - eye_fraction_below(c0, 0.05));
    FF_EXPECT(err >= 0 && err < 2e-3, "err_tv %g", err);
    FF_EXPECT_NEAR(m->data[0], top, err + 1e-6);   /* upright cell (0, 0): p0, p1 < 1/2 */
    FF_EXPECT_NEAR(m->data[0] + m->data[1] + m->data[2] + m->data[3], 1.0, 1e-6);
    printf("  res 2 top cell: %.6f, 1-D integral %.6f, err_tv bound %.2e\n", m->data[0], top, err);
    ff_tensor_free(m);
    ff_tensor_t *d;
    ff_tensor_new1(&d, 4);
    FF_EXPECT(ff_data_smiley_density(2, 2048, d, NULL) == FF_OK);
    FF_EXPECT_NEAR(d->data[0], top * 8, 8 * (err + 1e-6));
    FF_EXPECT_ERROR(ff_data_smiley_masses(2, 8, d, NULL), FF_EINVAL, "m 8 outside [16, 16384]");
    FF_EXPECT_ERROR(ff_data_smiley_masses(3, 64, d, NULL), FF_ESHAPE, "expected 9 contiguous cells");
    ff_tensor_free(d);
}

FF_TEST(smiley_masses_vs_monte_carlo) {
    int64_t res = 24, ncell = res * res, N = 600000;
    ff_tensor_t *m, *m_coarse, *x, *h;
    ff_tensor_new1(&m, ncell);
    ff_tensor_new1(&m_coarse, ncell);
    double err, err_coarse;
    FF_EXPECT(ff_data_smiley_masses(res, 2048, m, &err) == FF_OK);
    FF_EXPECT(ff_data_smiley_masses(res, 128, m_coarse, &err_coarse) == FF_OK);
    ff_divergence dv;
    FF_EXPECT(ff_divergence_compute(m_coarse->data, m->data, ncell, &dv) == FF_OK);
    FF_EXPECT(dv.tv <= err + err_coarse, "m 128 vs 2048: TV %g > bounds %g + %g", dv.tv, err, err_coarse);
    FF_EXPECT(err < err_coarse, "the bound shrinks with m: %g vs %g", err, err_coarse);
    ff_rng_t rng;
    ff_rng_seed(&rng, 99);
    ff_tensor_new3(&x, N, 1, 3);
    ff_tensor_new1(&h, ncell);
    FF_EXPECT(ff_data_smiley(&rng, N, x) == FF_OK);
    int64_t off;
    FF_EXPECT(ff_simplex_hist(x, res, h, &off) == FF_OK && off == 0);
    /* expected TV of an N-sample histogram: 1/2 sum E|q_i - p_i| ~ 1/2 sum sqrt(2 p_i (1-p_i) / (pi N)) */
    double expect = 0;
    for (int64_t c = 0; c < ncell; c++) expect += 0.5 * sqrt(2 * m->data[c] * (1 - m->data[c]) / (M_PI * N));
    FF_EXPECT(ff_divergence_compute(h->data, m->data, ncell, &dv) == FF_OK);
    printf("  res %lld: TV(MC %lld, masses) = %.4g (sampling noise ~ %.4g, err_tv %.2g), KL = %.4g, %lld unsupported\n",
           (long long)res, (long long)N, dv.tv, expect, err, dv.kl, (long long)dv.unsupported);
    FF_EXPECT(dv.tv < 1.3 * expect + err, "MC histogram too far from the masses");
    FF_EXPECT(dv.unsupported == 0, "samples in cells of zero target mass");
    ff_tensor_free(m); ff_tensor_free(m_coarse); ff_tensor_free(x); ff_tensor_free(h);
}

FF_TEST(toy_categorical_table) {
    ff_rng_t rng, replay;
    ff_rng_seed(&rng, 5);
    replay = rng;
    ff_tensor_t *p;
    ff_tensor_new2(&p, 4, 10);
    FF_EXPECT(ff_data_toy_categorical(&rng, 4, 10, p) == FF_OK, "%s", ff_last_error());
    for (int k = 0; k < 4; k++) {   /* independent recomputation from the same draws */
        double u[10], z = 0;
        for (int c = 0; c < 10; c++) { u[c] = exp(ff_rng_uniform(&replay)); z += u[c]; }
        for (int c = 0; c < 10; c++) FF_EXPECT_NEAR(p->data[k * 10 + c], u[c] / z, 1e-7);
    }
    FF_EXPECT_ERROR(ff_data_toy_categorical(&rng, 4, 1, p), FF_EINVAL, "K = 1");
    FF_EXPECT_ERROR(ff_data_toy_categorical(&rng, 4, 11, p), FF_ESHAPE, "expected contiguous [4,11]");
    ff_tensor_free(p);
}

FF_TEST(sample_categorical_frequencies) {
    ff_rng_t rng;
    ff_rng_seed(&rng, 11);
    const float probs[2][4] = { { 0.1f, 0.0f, 0.6f, 0.3f }, { 0.25f, 0.25f, 0.5f, 0.0f } };
    ff_tensor_t *p, *x;
    ff_tensor_wrap(&p, (float *)&probs[0][0], 2, (int64_t[]){ 2, 4 });
    int64_t n = 200000;
    ff_tensor_new3(&x, n, 2, 4);
    FF_EXPECT(ff_data_sample_categorical(&rng, p, n, x) == FF_OK, "%s", ff_last_error());
    double cnt[2][4] = { { 0 } };
    int notonehot = 0;
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            float s = 0;
            for (int c = 0; c < 4; c++) { float v = x->data[(i * 2 + k) * 4 + c]; s += v; cnt[k][c] += v; if (v != 0 && v != 1) notonehot++; }
            if (s != 1) notonehot++;
        }
    FF_EXPECT(notonehot == 0);
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 4; c++) {
            double f = cnt[k][c] / n, pr = probs[k][c], sd = sqrt(pr * (1 - pr) / n);
            if (pr == 0) FF_EXPECT(cnt[k][c] == 0, "zero-mass class %d drawn", c);
            else FF_EXPECT(fabs(f - pr) < 5 * sd, "pos %d class %d: %g vs %g", k, c, f, pr);
        }
    float badp[2][4] = { { 0.5f, -0.1f, 0.6f, 0 }, { 0, 0, 0, 0 } };
    ff_tensor_t *b;
    ff_tensor_wrap(&b, &badp[0][0], 2, (int64_t[]){ 2, 4 });
    FF_EXPECT_ERROR(ff_data_sample_categorical(&rng, b, n, x), FF_EINVAL, "probs[0, 1] = -0.1");
    badp[0][1] = 0;
    FF_EXPECT_ERROR(ff_data_sample_categorical(&rng, b, n, x), FF_EINVAL, "row 1 of probs sums to 0");
    FF_EXPECT_ERROR(ff_data_sample_categorical(&rng, p, n + 1, x), FF_ESHAPE, "expected contiguous [200001,2,4]");
    ff_tensor_free(b); ff_tensor_free(p); ff_tensor_free(x);
}

FF_MAIN()
