/* test_metrics.c — the triangular grid (partition checked by point-in-triangle brute force on random
 * points and, in exact integer barycentrics, on every point of a fine lattice, edges and vertices
 * included), KL/TV against hand-computed values, histograms of decoded tokens. */
#include <stdlib.h>
#include "fisherflow/fisherflow.h"
#include "fisherflow/metrics.h"
#include "ff_test.h"

/* Corners of a cell in (p0, p1) coordinates from its grid entry (i, j), written from metrics.h's
 * description, independently of the cell-index code. */
static void corners(int64_t i, int64_t j, int down, int64_t res, double bc[3][2]) {
    double r = (double)res;
    if (!down) { bc[0][0] = i; bc[0][1] = j; bc[1][0] = i + 1; bc[1][1] = j; bc[2][0] = i; bc[2][1] = j + 1; }
    else {
        double a = (double)(res - 1 - i), b = (double)(res - 1 - j);
        bc[0][0] = a + 1; bc[0][1] = b; bc[1][0] = a; bc[1][1] = b + 1; bc[2][0] = a + 1; bc[2][1] = b + 1;
    }
    for (int k = 0; k < 3; k++) { bc[k][0] /= r; bc[k][1] /= r; }
}

/* Is (b, c) inside the triangle with corners t (in (p0, p1) coordinates), with tolerance? */
static int inside(double b, double c, double t[3][2]) {
    double s = 0;
    int pos = 0, neg = 0;
    for (int k = 0; k < 3; k++) {
        double *p = t[k], *q = t[(k + 1) % 3];
        s = (q[0] - p[0]) * (c - p[1]) - (q[1] - p[1]) * (b - p[0]);
        if (s > 1e-12) pos++;
        if (s < -1e-12) neg++;
    }
    return !(pos && neg);
}

FF_TEST(grid_known_cells) {
    /* res 2: upright (0,0) [0], (0,1) [1], (1,0) [2]; the inverted middle cell is stored at (1,1) [3] */
    FF_EXPECT(ff_simplex_grid_cell(1, 0, 0, 2) == 2);
    FF_EXPECT(ff_simplex_grid_cell(0, 1, 0, 2) == 1);
    FF_EXPECT(ff_simplex_grid_cell(0, 0, 1, 2) == 0);
    FF_EXPECT(ff_simplex_grid_cell(1.0 / 3, 1.0 / 3, 1.0 / 3, 2) == 3);
    FF_EXPECT(ff_simplex_grid_cell(1.0 / 3, 1.0 / 3, 1.0 / 3, 1) == 0);
    FF_EXPECT(ff_simplex_grid_cell(0.5, 0.5, 0, 1000) >= 0);
    FF_EXPECT(ff_simplex_grid_cell(NAN, 0.5, 0.5, 4) == -1);
    FF_EXPECT(ff_simplex_grid_cell(-0.1, 0.6, 0.5, 4) == -1);
    FF_EXPECT(ff_simplex_grid_cell(0.5, 0.5, 0.5, 4) == -1);
    FF_EXPECT(ff_simplex_grid_cell(-1e-7, 0.5, 0.5 + 1e-7, 4) >= 0);   /* float noise is clamped */
    FF_EXPECT(ff_simplex_grid_cell(0.2, 0.3, 0.5, 0) == -1);
    double p[3];
    FF_EXPECT(ff_simplex_grid_centre(4, 2, p) == -1);
    FF_EXPECT(ff_simplex_grid_centre(3, 2, p) == 0);
    FF_EXPECT_NEAR(p[0], 1.0 / 3, 1e-15); FF_EXPECT_NEAR(p[1], 1.0 / 3, 1e-15); FF_EXPECT_NEAR(p[2], 1.0 / 3, 1e-15);
}

FF_TEST(grid_partition_brute_force) {
    const int64_t resolutions[] = { 1, 2, 3, 7, 64 };
    ff_rng_t rng;
    ff_rng_seed(&rng, 7);
    for (size_t r = 0; r < sizeof resolutions / sizeof resolutions[0]; r++) {
        int64_t res = resolutions[r], ncell = res * res;
        /* every centre maps back to its own cell, and lies inside its own corners */
        for (int64_t cell = 0; cell < ncell; cell++) {
            double p[3], t[3][2];
            int64_t i, j;
            int down;
            FF_EXPECT(ff_simplex_grid_centre(cell, res, p) == 0);
            FF_EXPECT(ff_simplex_grid_cell(p[0], p[1], p[2], res) == cell, "res %lld cell %lld", (long long)res, (long long)cell);
            FF_EXPECT(ff_simplex_grid_coords(cell, res, &i, &j, &down) == 0);
            FF_EXPECT(i >= 0 && j >= 0 && i < res && j < res && (down ? i + j >= res : i + j < res),
                      "cell %lld -> (%lld, %lld, %d)", (long long)cell, (long long)i, (long long)j, down);
            corners(i, j, down, res, t);
            FF_EXPECT(inside(p[0], p[1], t));
        }
        /* uniform points on the simplex: each lands in a cell whose triangle contains it, and cells
         * receive equal shares (equal areas) */
        int64_t N = 200000, *count = calloc((size_t)ncell, sizeof *count), bad = 0;
        for (int64_t s = 0; s < N; s++) {
            double u = ff_rng_uniform(&rng), v = ff_rng_uniform(&rng);
            if (u + v > 1) { u = 1 - u; v = 1 - v; }
            int64_t cell = ff_simplex_grid_cell(1 - u - v, u, v, res), i, j;
            int down;
            double t[3][2];
            if (cell < 0 || ff_simplex_grid_coords(cell, res, &i, &j, &down) != 0) { bad++; continue; }
            corners(i, j, down, res, t);
            if (!inside(1 - u - v, u, t)) bad++;
            count[cell]++;
        }
        FF_EXPECT(bad == 0, "res %lld: %lld points in the wrong cell", (long long)res, (long long)bad);
        double expect = (double)N / (double)ncell, worst = 0;
        for (int64_t c = 0; c < ncell; c++) {
            double z = fabs((double)count[c] - expect) / sqrt(expect);
            if (z > worst) worst = z;
        }
        FF_EXPECT(worst < 5.5, "res %lld: a cell is %.1f sigma off equal area", (long long)res, worst);
        free(count);
    }
}

/* Corners of cell index `cell` in grid units (u, v) = res (p0, p1), scaled by m: from metrics.h's
 * description (entry i*res + j; inverted when i + j >= res, corners (a+1, b), (a, b+1), (a+1, b+1)
 * for (a, b) = (res-1-i, res-1-j)), in integers. */
static void corners_int(int64_t cell, int64_t res, int64_t m, int64_t c[3][2]) {
    int64_t i = cell / res, j = cell % res;
    if (i + j < res) { c[0][0] = i; c[0][1] = j; c[1][0] = i + 1; c[1][1] = j; c[2][0] = i; c[2][1] = j + 1; }
    else {
        int64_t a = res - 1 - i, b = res - 1 - j;
        c[0][0] = a + 1; c[0][1] = b; c[1][0] = a; c[1][1] = b + 1; c[2][0] = a + 1; c[2][1] = b + 1;
    }
    for (int k = 0; k < 3; k++) { c[k][0] *= m; c[k][1] *= m; }
}

/* Barycentric test in exact integer arithmetic: 2 if (U, V) is strictly inside the triangle, 1 on
 * its boundary, 0 outside. */
static int contains_int(const int64_t c[3][2], int64_t U, int64_t V) {
    int64_t det = (c[1][0] - c[0][0]) * (c[2][1] - c[0][1]) - (c[2][0] - c[0][0]) * (c[1][1] - c[0][1]);
    int64_t l1 = (U - c[0][0]) * (c[2][1] - c[0][1]) - (c[2][0] - c[0][0]) * (V - c[0][1]);
    int64_t l2 = (c[1][0] - c[0][0]) * (V - c[0][1]) - (U - c[0][0]) * (c[1][1] - c[0][1]);
    int64_t l0 = det - l1 - l2;
    if (det < 0) { l0 = -l0; l1 = -l1; l2 = -l2; }
    if (l0 < 0 || l1 < 0 || l2 < 0) return 0;
    return l0 > 0 && l1 > 0 && l2 > 0 ? 2 : 1;
}

/* ff_simplex_grid_cell on every point of a fine lattice (spacing 1/(res m)) against a direct
 * barycentric computation over all res^2 cells: a point inside one cell gets that cell; a point on a
 * boundary gets one of the cells that contain it; with res and m powers of two (coordinates exact in
 * binary) a boundary point gets the upright cell, and a grid vertex the one metrics.h names (lower
 * the largest floor, w first, then u, then v). Every cell holds (m-1)(m-2)/2 strictly interior
 * lattice points (equal areas), and the cells of interior points cover the grid. */
FF_TEST(grid_cell_lattice_brute_force) {
    const struct { int64_t res, m; int exact; } cases[] = {
        { 1, 8, 1 }, { 2, 8, 1 }, { 4, 8, 1 }, { 16, 4, 1 }, { 3, 6, 0 }, { 5, 6, 0 }, { 7, 5, 0 },
    };
    for (size_t q = 0; q < sizeof cases / sizeof cases[0]; q++) {
        const int64_t res = cases[q].res, m = cases[q].m, L = res * m, ncell = res * res;
        int64_t *interior = calloc((size_t)ncell, sizeof *interior), wrong = 0, points = 0, boundary = 0;
        for (int64_t U = 0; U <= L; U++)
            for (int64_t V = 0; U + V <= L; V++) {
                const double pa = (double)U / L, pb = (double)V / L, pc = (double)(L - U - V) / L;
                const int64_t got = ff_simplex_grid_cell(pa, pb, pc, res);
                int64_t inside = -1, nbound = 0, owner_ok = 0;
                for (int64_t cell = 0; cell < ncell; cell++) {
                    int64_t c[3][2];
                    corners_int(cell, res, m, c);
                    int k = contains_int(c, U, V);
                    if (k == 2) inside = cell;
                    if (k == 1) nbound++;
                    if (k && cell == got) owner_ok = 1;
                }
                points++;
                if (inside >= 0) {
                    interior[inside]++;
                    if (got != inside || nbound) wrong++;
                    continue;
                }
                boundary++;
                if (!owner_ok) { wrong++; continue; }
                if (!cases[q].exact) continue;
                int64_t want;
                if (U % m == 0 && V % m == 0) {            /* a grid vertex: metrics.h's tie rule */
                    int64_t f[3] = { U / m, V / m, (L - U - V) / m };
                    for (int k = 0; k < 3; k++) f[k] = f[k] > res - 1 ? res - 1 : f[k];
                    while (f[0] + f[1] + f[2] > res - 1) {
                        int big = f[2] >= f[0] && f[2] >= f[1] ? 2 : f[0] >= f[1] ? 0 : 1;
                        f[big]--;
                    }
                    want = f[0] * res + f[1];
                } else {                                   /* an edge point: its upright cell */
                    want = -1;
                    for (int64_t cell = 0; cell < ncell; cell++) {
                        int64_t c[3][2];
                        corners_int(cell, res, m, c);
                        if (cell / res + cell % res < res && contains_int(c, U, V)) want = cell;
                    }
                }
                if (got != want) {
                    wrong++;
                    if (wrong < 5) fprintf(stderr, "res %lld: (%lld, %lld)/%lld -> cell %lld, expected %lld\n",
                                           (long long)res, (long long)U, (long long)V, (long long)L, (long long)got,
                                           (long long)want);
                }
            }
        FF_EXPECT(wrong == 0, "res %lld, m %lld: %lld of %lld lattice points in the wrong cell", (long long)res,
                  (long long)m, (long long)wrong, (long long)points);
        FF_EXPECT(points == (L + 1) * (L + 2) / 2 && boundary > 0);
        for (int64_t cell = 0; cell < ncell; cell++)
            FF_EXPECT(interior[cell] == (m - 1) * (m - 2) / 2, "res %lld: cell %lld holds %lld interior points, "
                      "expected %lld", (long long)res, (long long)cell, (long long)interior[cell],
                      (long long)((m - 1) * (m - 2) / 2));
        free(interior);
    }
}

FF_TEST(simplex_hist) {
    float pts[5][3] = { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 }, { 0, 0, 1 }, { 0.5f, 0.5f, 0.5f } };
    ff_tensor_t *x, *h;
    ff_tensor_wrap(&x, &pts[0][0], 2, (int64_t[]){ 5, 3 });
    ff_tensor_new1(&h, 4);
    int64_t off = -1;
    FF_EXPECT(ff_simplex_hist(x, 2, h, &off) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(off == 1);
    FF_EXPECT(h->data[0] == 0.5f && h->data[1] == 0.25f && h->data[2] == 0.25f && h->data[3] == 0);
    FF_EXPECT_ERROR(ff_simplex_hist(x, 3, h, &off), FF_ESHAPE, "expected 9 contiguous cells");
    ff_tensor_t *bad;
    ff_tensor_wrap(&bad, &pts[4][0], 2, (int64_t[]){ 1, 3 });
    FF_EXPECT_ERROR(ff_simplex_hist(bad, 2, h, &off), FF_EINVAL, "none of the 1 points");
    ff_tensor_free(bad); ff_tensor_free(x); ff_tensor_free(h);
}

FF_TEST(divergence_hand_computed) {
    ff_divergence d;
    float q[3] = { 0.5f, 0.5f, 0 }, p[3] = { 0.25f, 0.25f, 0.5f };
    FF_EXPECT(ff_divergence_compute(q, p, 3, &d) == FF_OK);
    FF_EXPECT_NEAR(d.kl, log(2.0), 1e-7);            /* 0.5 ln 2 + 0.5 ln 2 + 0 log 0 */
    FF_EXPECT_NEAR(d.tv, 0.5, 1e-7);
    FF_EXPECT(d.empty == 1 && d.unsupported == 0);
    float q2[2] = { 0.5f, 0.5f }, p2[2] = { 1, 0 };
    FF_EXPECT(ff_divergence_compute(q2, p2, 2, &d) == FF_OK);
    FF_EXPECT(isinf(d.kl) && d.unsupported == 1 && d.tv == 0.5);
    float a[2] = { 0.1f, 0.9f }, b[2] = { 0.3f, 0.7f };
    FF_EXPECT(ff_divergence_compute(a, b, 2, &d) == FF_OK);
    FF_EXPECT_NEAR(d.kl, 0.1 * log(0.1 / 0.3) + 0.9 * log(0.9 / 0.7), 1e-6);
    FF_EXPECT(ff_divergence_compute(a, a, 2, &d) == FF_OK && d.kl == 0 && d.tv == 0);
    float neg[2] = { -0.1f, 1.1f }, nan2[2] = { NAN, 1 }, half[2] = { 0.25f, 0.25f };
    FF_EXPECT_ERROR(ff_divergence_compute(neg, b, 2, &d), FF_EINVAL, "model q[0] = -0.1");
    FF_EXPECT_ERROR(ff_divergence_compute(a, nan2, 2, &d), FF_EINVAL, "target p[0] = nan");
    FF_EXPECT_ERROR(ff_divergence_compute(half, b, 2, &d), FF_EINVAL, "sums 0.5 (model)");
}

FF_TEST(simplex_metrics_hand_computed) {
    /* res 2 (cells 0..3 as in grid_known_cells): two points in cell 0, one in 1, one in the middle cell
     * 3, one off the simplex. Target masses { .5, .25, .25, 0 }: n = 4, m = 4, q = { .5, .25, 0, .25 },
     * smoothed q~ = (c + 1/2) / (4 + 2) = { 2.5, 1.5, .5, 1.5 } / 6. */
    float pts[6][3] = { { 0, 0, 1 }, { 0.1f, 0.1f, 0.8f }, { 0, 1, 0 }, { 1.0f / 3, 1.0f / 3, 1.0f / 3 },
                        { 0.5f, 0.5f, 0.5f } };
    float mass[4] = { 0.5f, 0.25f, 0.25f, 0 };
    ff_tensor_t *x, *p;
    ff_tensor_wrap(&x, &pts[0][0], 2, (int64_t[]){ 5, 3 });
    ff_tensor_wrap(&p, mass, 1, (int64_t[]){ 4 });
    ff_simplex_metrics m;
    FF_EXPECT(ff_simplex_metrics_compute(x, p, 2, &m) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_NEAR(m.tv, 0.25, 1e-12);                     /* 1/2 (0 + 0 + .25 + .25) */
    FF_EXPECT_NEAR(m.kl, 0.5 * log(0.5 / (2.5 / 6)) + 0.25 * log(0.25 / (1.5 / 6)) + 0.25 * log(0.25 / (0.5 / 6)), 1e-7);
    FF_EXPECT(m.n == 4 && m.off == 1 && m.missed == 1 && m.outside == 1,
              "n %lld off %lld missed %lld outside %lld", (long long)m.n, (long long)m.off,
              (long long)m.missed, (long long)m.outside);
    /* the raw KL(p || q) would be infinite here (q = 0 in cell 2); the smoothed one is finite */
    FF_EXPECT(isfinite(m.kl));
    float bad_mass[4] = { 0.5f, 0.25f, 0.25f, 0.25f }, neg_mass[4] = { 0.5f, 0.5f, 0.25f, -0.25f };
    ff_tensor_t *bm, *nm, *off;
    ff_tensor_wrap(&bm, bad_mass, 1, (int64_t[]){ 4 });
    ff_tensor_wrap(&nm, neg_mass, 1, (int64_t[]){ 4 });
    FF_EXPECT_ERROR(ff_simplex_metrics_compute(x, bm, 2, &m), FF_EINVAL, "sum to 1.25");
    FF_EXPECT_ERROR(ff_simplex_metrics_compute(x, nm, 2, &m), FF_EINVAL, "cell 3 is -0.25");
    FF_EXPECT_ERROR(ff_simplex_metrics_compute(x, p, 3, &m), FF_ESHAPE, "expected 9 contiguous cells");
    ff_tensor_wrap(&off, &pts[4][0], 2, (int64_t[]){ 1, 3 });
    FF_EXPECT_ERROR(ff_simplex_metrics_compute(off, p, 2, &m), FF_EINVAL, "none of the 1 points");
    ff_tensor_free(x); ff_tensor_free(p); ff_tensor_free(bm); ff_tensor_free(nm); ff_tensor_free(off);
}

FF_TEST(nll_mixture_hand_computed) {
    FF_EXPECT_NEAR(ff_log_uniform_simplex(1, 2), log(2.0), 1e-12);
    FF_EXPECT_NEAR(ff_log_uniform_simplex(3, 3), 3 * log(6.0), 1e-12);
    /* eps = .1, u = 2: densities .9 * 4 + .2, .2 (outside), .9 * 1 + .2 */
    float lq[3] = { (float)log(4.0), -INFINITY, 0 };
    ff_nll_stats st;
    FF_EXPECT(ff_nll_mixture(lq, 3, log(2.0), 0.1, &st) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_NEAR(st.nll, -(log(3.8) + log(0.2) + log(1.1)) / 3, 1e-6);
    FF_EXPECT(st.n == 3 && st.outside == 1);
    /* q = u everywhere: the mixture is u, NLL -log u */
    float flat[2] = { (float)log(2.0), (float)log(2.0) };
    FF_EXPECT(ff_nll_mixture(flat, 2, log(2.0), 1e-3, &st) == FF_OK);
    FF_EXPECT_NEAR(st.nll, -log(2.0), 1e-6);
    float nan1[2] = { 0, NAN }, inf1[1] = { INFINITY };
    FF_EXPECT_ERROR(ff_nll_mixture(nan1, 2, 0, 0.1, &st), FF_EINVAL, "point 1 is nan");
    FF_EXPECT_ERROR(ff_nll_mixture(inf1, 1, 0, 0.1, &st), FF_EINVAL, "point 0 is inf");
    FF_EXPECT_ERROR(ff_nll_mixture(lq, 3, 0, 0, &st), FF_EINVAL, "0 < eps < 1");
}

FF_TEST(nll_cannot_beat_the_truth) {
    /* Truth: uniform on the 2-simplex (density 2). A model that drops the corner p0 > 0.7 (true mass
     * .3^2 = .09) and spreads its mass over the rest: density 2 / .91 there, 0 in the corner. On
     * 100 held-out points, 9 in the corner (their exact share), the mean over finite points is
     * -log(2 / .91) < -log 2, the truth's NLL: the model "beats" the truth. The mixture NLL with the
     * default eps 1e-3 counts the 9 points at -log(2e-3) and lands above the truth. */
    float lq[100];
    double finite = 0;
    for (int i = 0; i < 100; i++) {
        lq[i] = i < 9 ? -INFINITY : (float)log(2.0 / 0.91);
        if (i >= 9) finite += lq[i];
    }
    double truth = -log(2.0), old = -finite / 91;
    FF_EXPECT(old < truth - 0.09, "old %.4f vs truth %.4f", old, truth);
    ff_nll_stats st;
    FF_EXPECT(ff_nll_mixture(lq, 100, log(2.0), 1e-3, &st) == FF_OK);
    FF_EXPECT(st.outside == 9);
    double want = -(91 * log(0.999 * 2 / 0.91 + 0.002) + 9 * log(0.002)) / 100;
    FF_EXPECT_NEAR(st.nll, want, 1e-5);
    FF_EXPECT(st.nll > truth, "mixture nll %.4f vs truth %.4f", st.nll, truth);
}

FF_TEST(categorical_hist_and_kl) {
    /* 4 samples, k = 2 positions, K = 3 */
    float ids[4][2] = { { 0, 2 }, { 0, 1 }, { 1, 2 }, { 0, 2 } };
    ff_tensor_t *t, *h, *oh, *h2, *p;
    ff_tensor_wrap(&t, &ids[0][0], 2, (int64_t[]){ 4, 2 });
    ff_tensor_new2(&h, 2, 3);
    FF_EXPECT(ff_categorical_hist(t, 3, h) == FF_OK, "%s", ff_last_error());
    const float want[6] = { 0.75f, 0.25f, 0, 0, 0.25f, 0.75f };
    for (int i = 0; i < 6; i++) FF_EXPECT(h->data[i] == want[i], "hist[%d] = %g", i, h->data[i]);
    ff_tensor_new3(&oh, 4, 2, 3);   /* same as one-hot rows */
    for (int s = 0; s < 4; s++) for (int k = 0; k < 2; k++) oh->data[(s * 2 + k) * 3 + (int)ids[s][k]] = 1;
    ff_tensor_new2(&h2, 2, 3);
    FF_EXPECT(ff_categorical_hist(oh, 3, h2) == FF_OK);
    for (int i = 0; i < 6; i++) FF_EXPECT(h2->data[i] == want[i]);
    ids[2][1] = 3;
    FF_EXPECT_ERROR(ff_categorical_hist(t, 3, h), FF_EINVAL, "sample 2 position 1: token 3 outside [0, 3)");
    ids[2][1] = 0.5f;
    FF_EXPECT_ERROR(ff_categorical_hist(t, 3, h), FF_EINVAL, "token 0.5");

    ff_tensor_new2(&p, 2, 3);
    const float pt[6] = { 0.5f, 0.25f, 0.25f, 0.2f, 0.3f, 0.5f };
    for (int i = 0; i < 6; i++) p->data[i] = pt[i];
    double kl;
    int64_t empty;
    ff_divergence per[2];
    FF_EXPECT(ff_kl_categorical(h2, p, &kl, per, &empty) == FF_OK, "%s", ff_last_error());
    double k0 = 0.75 * log(0.75 / 0.5) + 0.25 * log(0.25 / 0.25);
    double k1 = 0.25 * log(0.25 / 0.3) + 0.75 * log(0.75 / 0.5);
    FF_EXPECT_NEAR(per[0].kl, k0, 1e-6);
    FF_EXPECT_NEAR(per[1].kl, k1, 1e-6);
    FF_EXPECT_NEAR(kl, 0.5 * (k0 + k1), 1e-6);
    FF_EXPECT(empty == 2);
    ff_tensor_t *bad;
    ff_tensor_new2(&bad, 3, 3);
    FF_EXPECT_ERROR(ff_kl_categorical(h2, bad, &kl, NULL, NULL), FF_ESHAPE, "model [2,3] and true [3,3]");
    p->data[3] = -1;
    FF_EXPECT_ERROR(ff_kl_categorical(h2, p, &kl, NULL, NULL), FF_EINVAL, "position 1");
    ff_tensor_free(bad); ff_tensor_free(t); ff_tensor_free(h); ff_tensor_free(oh); ff_tensor_free(h2); ff_tensor_free(p);
}

FF_MAIN()
