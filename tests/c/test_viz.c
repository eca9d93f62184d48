/* test_viz.c — libfisherflow_viz: the simplex grid against a brute-force point-in-triangle search,
 * pixels of written PNGs decoded with libpng, tEXt metadata, ticks, viridis lightness, every bad
 * input (error + no file, no temporary), atomicity under a mid-write failure (RLIMIT_FSIZE), and
 * example pictures in <build>/viz_examples for a human to look at. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fisherflow/fisherflow.h>
#include <fisherflow/viz.h>
#include "ff_test.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {                       /* splitmix64 -> [0, 1) */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}
static void uniform_simplex(double p[3]) {       /* Dirichlet(1,1,1) */
    double s = 0;
    for (int k = 0; k < 3; k++) { p[k] = -log(1 - urand()); s += p[k]; }
    for (int k = 0; k < 3; k++) p[k] /= s;
}
static double gauss(void) { return sqrt(-2 * log(1 - urand())) * cos(2 * M_PI * urand()); }

typedef struct image { int w, h; unsigned char *rgb; } image;

static int read_png(const char *path, image *im) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path)) return 0;
    pi.format = PNG_FORMAT_RGB;
    im->w = (int)pi.width; im->h = (int)pi.height;
    im->rgb = malloc(PNG_IMAGE_SIZE(pi));
    if (!im->rgb || !png_image_finish_read(&pi, NULL, im->rgb, 0, NULL)) { free(im->rgb); png_image_free(&pi); return 0; }
    return 1;
}
static const unsigned char *px(const image *im, int x, int y) { return im->rgb + ((size_t)y * im->w + x) * 3; }
static int same_rgb(const unsigned char *a, const uint8_t *b, int tol) {
    return abs(a[0] - b[0]) <= tol && abs(a[1] - b[1]) <= tol && abs(a[2] - b[2]) <= tol;
}

static char *make_dir(const char *name) {         /* fresh empty directory under the build dir */
    static char buf[4][1024];
    static int k;
    char *d = buf[k++ % 4];
    snprintf(d, 1024, "%s/test_viz_tmp", FF_TEST_BINARY_DIR);
    mkdir(d, 0755);
    snprintf(d, 1024, "%s/test_viz_tmp/%s", FF_TEST_BINARY_DIR, name);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) return d;
    mkdir(d, 0755);
    return d;
}
static int dir_entries(const char *d) {           /* files in d, "." and ".." excluded */
    DIR *dp = opendir(d);
    if (!dp) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(dp));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dp);
    return n;
}

/* Point-in-triangle in the (u, v) = res * (p0, p1) lattice, brute force over every cell. */
static int cell_contains(int res, int i, int j, double u, double v, double eps) {
    double c[3][2];
    if (i + j < res) { double q[3][2] = { { i, j }, { i + 1, j }, { i, j + 1 } }; memcpy(c, q, sizeof c); }
    else {
        int a = res - 1 - i, b = res - 1 - j;
        double q[3][2] = { { a + 1, b }, { a, b + 1 }, { a + 1, b + 1 } };
        memcpy(c, q, sizeof c);
    }
    double d = (c[1][0] - c[0][0]) * (c[2][1] - c[0][1]) - (c[2][0] - c[0][0]) * (c[1][1] - c[0][1]);
    double l1 = ((u - c[0][0]) * (c[2][1] - c[0][1]) - (c[2][0] - c[0][0]) * (v - c[0][1])) / d;
    double l2 = ((c[1][0] - c[0][0]) * (v - c[0][1]) - (u - c[0][0]) * (c[1][1] - c[0][1])) / d;
    return l1 >= -eps && l2 >= -eps && 1 - l1 - l2 >= -eps;
}

/* ---- grid ------------------------------------------------------------------------------- */

FF_TEST(grid_cells_brute_force) {
    int ress[] = { 2, 3, 7, 16 };
    for (int r = 0; r < 4; r++) {
        int res = ress[r];
        ff_tensor_t *g = NULL;
        FF_EXPECT(ff_tensor_new2(&g, res * res, 3) == FF_OK);
        FF_EXPECT(ff_viz_simplex_grid_points(res, g) == FF_OK);
        for (int i = 0; i < res; i++)
            for (int j = 0; j < res; j++) {
                const float *c = g->data + (i * res + j) * 3;
                double p[3] = { c[0], c[1], c[2] };
                FF_EXPECT_NEAR(p[0] + p[1] + p[2], 1.0, 1e-6);
                FF_EXPECT(p[0] > 0 && p[1] > 0 && p[2] > 0, "centre of [%d][%d] outside", i, j);
                FF_EXPECT(cell_contains(res, i, j, res * p[0], res * p[1], 1e-6), "res %d: centre of [%d][%d] not in its cell", res, i, j);
                int32_t ci, cj;
                FF_EXPECT(ff_viz_simplex_cell(res, p, &ci, &cj) == FF_OK);
                FF_EXPECT(ci == i && cj == j, "res %d: centre of [%d][%d] -> [%d][%d]", res, i, j, ci, cj);
            }
        /* random points: the cell returned contains the point, and it is the only one (brute force) */
        for (int t = 0; t < 2000; t++) {
            double p[3];
            uniform_simplex(p);
            int32_t ci, cj;
            FF_EXPECT(ff_viz_simplex_cell(res, p, &ci, &cj) == FF_OK);
            FF_EXPECT(cell_contains(res, ci, cj, res * p[0], res * p[1], 1e-9), "res %d: p (%g,%g,%g) not in [%d][%d]",
                      res, p[0], p[1], p[2], ci, cj);
            int owners = 0;
            for (int i = 0; i < res; i++)
                for (int j = 0; j < res; j++) owners += cell_contains(res, i, j, res * p[0], res * p[1], -1e-9);
            FF_EXPECT(owners <= 1, "%d cells contain the interior of p", owners);
        }
        /* vertices and edge lattice points still land in a valid cell containing them */
        double vx[4][3] = { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 }, { 0.5, 0.5, 0 } };
        for (int t = 0; t < 4; t++) {
            int32_t ci = -1, cj = -1;
            FF_EXPECT(ff_viz_simplex_cell(res, vx[t], &ci, &cj) == FF_OK);
            FF_EXPECT(ci >= 0 && ci < res && cj >= 0 && cj < res);
            FF_EXPECT(cell_contains(res, ci, cj, res * vx[t][0], res * vx[t][1], 1e-9), "vertex %d in [%d][%d]", t, ci, cj);
        }
        ff_tensor_free(g);
    }
}

FF_TEST(histogram_uniform) {
    const int n = 200000, res = 8;
    ff_tensor_t *x = NULL, *g = NULL;
    FF_EXPECT(ff_tensor_new3(&x, n, 1, 3) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&g, res, res) == FF_OK);
    for (int i = 0; i < n; i++) {
        double p[3];
        uniform_simplex(p);
        for (int k = 0; k < 3; k++) x->data[i * 3 + k] = (float)p[k];
    }
    FF_EXPECT(ff_viz_simplex_histogram(g, x) == FF_OK);
    double sum = 0, worst = 0, expect = 2.0, sd = expect / sqrt((double)n / (res * res));
    for (int k = 0; k < res * res; k++) { sum += g->data[k]; worst = ff_nanmax(worst, fabs(g->data[k] - expect)); }
    FF_EXPECT_NEAR(sum / (res * res), 2.0, 1e-5);              /* integrates to 1: mean density 2 */
    FF_EXPECT(worst < 5 * sd, "max |density - 2| = %g > 5 sd (%g)", worst, 5 * sd);
    ff_tensor_free(x); ff_tensor_free(g);
}

static double mixture(const double p[3], void *ctx) {
    (void)ctx;
    static const double c[3][3] = { { 0.6, 0.2, 0.2 }, { 0.15, 0.7, 0.15 }, { 0.25, 0.25, 0.5 } };
    static const double w[3] = { 0.45, 0.3, 0.25 }, s2[3] = { 0.006, 0.01, 0.004 };
    double v = 0;
    for (int m = 0; m < 3; m++) {
        double d = 0;
        for (int k = 0; k < 3; k++) d += (p[k] - c[m][k]) * (p[k] - c[m][k]);
        v += w[m] * exp(-d / (2 * s2[m])) / (2 * M_PI * s2[m]);
    }
    return v;
}

FF_TEST(grid_fill) {
    ff_tensor_t *g = NULL, *pts = NULL;
    FF_EXPECT(ff_tensor_new2(&g, 12, 12) == FF_OK);
    FF_EXPECT(ff_tensor_new3(&pts, 144, 1, 3) == FF_OK);
    FF_EXPECT(ff_viz_simplex_grid_fill(g, mixture, NULL) == FF_OK);
    FF_EXPECT(ff_viz_simplex_grid_points(12, pts) == FF_OK);
    for (int k = 0; k < 144; k++) {
        double p[3] = { pts->data[3 * k], pts->data[3 * k + 1], pts->data[3 * k + 2] };
        FF_EXPECT_NEAR(g->data[k], mixture(p, NULL), 1e-4 * (1 + mixture(p, NULL)));
    }
    ff_tensor_free(g); ff_tensor_free(pts);
}

/* ---- mapping ---------------------------------------------------------------------------- */

FF_TEST(mapping_round_trip) {
    ff_tensor_t *d = NULL, *x = NULL;
    FF_EXPECT(ff_tensor_new2(&d, 4, 4) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&x, 5, 3) == FF_OK);
    ff_viz_panel panels[3] = { { .title = "a", .density = d }, { .title = "b", .points = x }, { .density = d } };
    ff_viz_opts opts = { .title = "figure", .width = 1500, .height = 600 };
    for (int k = 0; k < 3; k++) {
        double V[3][2];
        for (int v = 0; v < 3; v++) {
            double p[3] = { v == 0, v == 1, v == 2 };
            FF_EXPECT(ff_viz_simplex_to_pixel(panels, 3, &opts, k, p, V[v]) == FF_OK);
            FF_EXPECT(V[v][0] >= 0 && V[v][0] <= 1500 && V[v][1] >= 0 && V[v][1] <= 600);
        }
        /* equilateral, vertex 0 bottom left, 1 bottom right, 2 on top in the middle */
        double s01 = hypot(V[0][0] - V[1][0], V[0][1] - V[1][1]), s12 = hypot(V[1][0] - V[2][0], V[1][1] - V[2][1]);
        double s20 = hypot(V[2][0] - V[0][0], V[2][1] - V[0][1]);
        FF_EXPECT(s01 > 200, "panel %d: side %g px", k, s01);
        FF_EXPECT_NEAR(s12, s01, 1e-9 * s01);
        FF_EXPECT_NEAR(s20, s01, 1e-9 * s01);
        FF_EXPECT_NEAR(V[0][1], V[1][1], 1e-9);
        FF_EXPECT(V[0][0] < V[1][0] && V[2][1] < V[0][1]);
        FF_EXPECT_NEAR(V[2][0], (V[0][0] + V[1][0]) / 2, 1e-9);
        FF_EXPECT(V[0][0] >= k * 400.0, "panel %d starts at %g", k, V[0][0]);   /* panels are side by side */
        for (int t = 0; t < 500; t++) {
            double p[3], xy[2], q[3];
            uniform_simplex(p);
            FF_EXPECT(ff_viz_simplex_to_pixel(panels, 3, &opts, k, p, xy) == FF_OK);
            FF_EXPECT(ff_viz_pixel_to_simplex(panels, 3, &opts, k, xy, q) == FF_OK);
            for (int c = 0; c < 3; c++) FF_EXPECT_NEAR(q[c], p[c], 1e-12);
            /* affine: the pixel is the barycentric combination of the corners */
            FF_EXPECT_NEAR(xy[0], p[0] * V[0][0] + p[1] * V[1][0] + p[2] * V[2][0], 1e-9);
            FF_EXPECT_NEAR(xy[1], p[0] * V[0][1] + p[1] * V[1][1] + p[2] * V[2][1], 1e-9);
        }
    }
    double p[3] = { 1, 0, 0 }, xy[2];
    FF_EXPECT_ERROR(ff_viz_simplex_to_pixel(panels, 3, &opts, 3, p, xy), FF_EINVAL, "panel 3 outside [0, 3)");
    /* the written image has the requested size, and the automatic size is 440 (+76) x 470 (+34) */
    char path[1200];
    const char *dir = make_dir("sizes");
    snprintf(path, sizeof path, "%s/a.png", dir);
    image im;
    for (int i = 0; i < 5; i++) { x->data[3 * i] = 0.2f; x->data[3 * i + 1] = 0.3f; x->data[3 * i + 2] = 0.5f; }
    FF_EXPECT(ff_viz_simplex(path, panels, 3, &opts) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(read_png(path, &im) && im.w == 1500 && im.h == 600, "%d x %d", im.w, im.h);
    free(im.rgb);
    FF_EXPECT(ff_viz_simplex(path, panels, 3, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(read_png(path, &im) && im.w == 440 * 3 + 2 * 76 && im.h == 470, "%d x %d", im.w, im.h);
    free(im.rgb);
    ff_tensor_free(d); ff_tensor_free(x);
}

/* ---- pixels of rendered pictures ---------------------------------------------------------- */

/* The grid entry of pixel (x, y) if the pixel and a ring of radius r around it are all inside the
 * same cell (well away from cell borders and the triangle's edges); -1 otherwise. */
static int robust_cell(const ff_viz_panel *panels, int np, const ff_viz_opts *o, int k, int res, int x, int y, double r) {
    int found = -1;
    for (int s = 0; s < 9; s++) {
        double a = s * 2 * M_PI / 8, rr = s == 8 ? 0 : r;
        double xy[2] = { x + 0.5 + rr * cos(a), y + 0.5 + rr * sin(a) }, p[3];
        if (ff_viz_pixel_to_simplex(panels, np, o, k, xy, p) != FF_OK) return -1;
        if (p[0] < 0 || p[1] < 0 || p[2] < 0) return -1;
        int32_t ci, cj;
        if (ff_viz_simplex_cell(res, p, &ci, &cj) != FF_OK) return -1;
        int c = ci * res + cj;
        if (found >= 0 && found != c) return -1;
        found = c;
    }
    return found;
}

/* Renders a res x res grid with one hot cell; checks hot pixels exactly over that cell. */
static void check_one_hot(int res, int hi, int hj, const char *name) {
    ff_tensor_t *d = NULL;
    FF_EXPECT(ff_tensor_new2(&d, res, res) == FF_OK);
    d->data[hi * res + hj] = 5.0f;
    /* panel 0: the same grid on a fixed colour range [0, 10], so the hot cell is mid-scale */
    ff_viz_panel panels[2] = { { .title = "vmax 10", .density = d, .vmin = 0, .vmax = 10 }, { .title = "delta", .density = d } };
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.png", make_dir(name), name);
    FF_EXPECT(ff_viz_simplex(path, panels, 2, NULL) == FF_OK, "%s", ff_last_error());
    image im;
    FF_EXPECT(read_png(path, &im));
    uint8_t hot[3], cold[3];
    ff_viz_viridis(1, hot);
    ff_viz_viridis(0, cold);
    long n_hot = 0, n_cold = 0, bad = 0;
    int hot_cell = hi * res + hj;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            int c = robust_cell(panels, 2, NULL, 1, res, x, y, 3.0);
            if (c < 0) continue;
            const unsigned char *q = px(&im, x, y);
            if (c == hot_cell) { n_hot++; bad += !same_rgb(q, hot, 0); }
            else { n_cold++; bad += !same_rgb(q, cold, 0); }
        }
    FF_EXPECT(n_hot > 50 && n_cold > 1000, "%s: %ld hot, %ld cold pixels checked", name, n_hot, n_cold);
    FF_EXPECT(bad == 0, "%s: %ld pixels with the wrong colour", name, bad);
    /* and the hot colour appears nowhere else in panel 1's triangle (not even near borders) */
    long stray = 0;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            double xy[2] = { x + 0.5, y + 0.5 }, p[3];
            ff_viz_pixel_to_simplex(panels, 2, NULL, 1, xy, p);
            if (p[0] < 0 || p[1] < 0 || p[2] < 0) continue;
            int32_t ci, cj;
            ff_viz_simplex_cell(res, p, &ci, &cj);
            int near_hot = 0;
            for (int s = 0; s < 8; s++) {
                double a = s * M_PI / 4, xy2[2] = { x + 0.5 + 2 * cos(a), y + 0.5 + 2 * sin(a) }, p2[3];
                ff_viz_pixel_to_simplex(panels, 2, NULL, 1, xy2, p2);
                ff_viz_simplex_cell(res, p2, &ci, &cj);
                near_hot |= ci * res + cj == hot_cell;
            }
            ff_viz_simplex_cell(res, p, &ci, &cj);
            near_hot |= ci * res + cj == hot_cell;
            if (!near_hot && same_rgb(px(&im, x, y), hot, 40)) stray++;
        }
    FF_EXPECT(stray == 0, "%s: %ld hot-coloured pixels outside the hot cell", name, stray);
    uint8_t mid[3];
    ff_viz_viridis(0.5, mid);
    long n_mid = 0, bad_mid = 0;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            int c = robust_cell(panels, 2, NULL, 0, res, x, y, 3.0);
            if (c < 0) continue;
            n_mid += c == hot_cell;
            bad_mid += !same_rgb(px(&im, x, y), c == hot_cell ? mid : cold, 0);
        }
    FF_EXPECT(n_mid > 50 && bad_mid == 0, "%s panel 0: %ld hot pixels, %ld wrong", name, n_mid, bad_mid);
    free(im.rgb);
    ff_tensor_free(d);
}

FF_TEST(delta_density_upright_cell) { check_one_hot(6, 1, 2, "delta_upright"); }
FF_TEST(delta_density_inverted_cell) { check_one_hot(6, 4, 3, "delta_inverted"); }   /* 4 + 3 >= 6 */
FF_TEST(delta_density_corner_cell) { check_one_hot(5, 0, 0, "delta_corner"); }

FF_TEST(uniform_density_is_flat) {
    const int res = 32;
    ff_tensor_t *d = NULL;
    FF_EXPECT(ff_tensor_new2(&d, res, res) == FF_OK);
    ff_tensor_fill(d, 2.0f);
    ff_viz_panel panel = { .title = "uniform", .density = d };
    char path[1200];
    snprintf(path, sizeof path, "%s/uniform.png", make_dir("uniform"));
    FF_EXPECT(ff_viz_simplex(path, &panel, 1, NULL) == FF_OK, "%s", ff_last_error());
    image im;
    FF_EXPECT(read_png(path, &im));
    long n = 0, differ = 0;
    const unsigned char *first = NULL;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            double xy[2] = { x + 0.5, y + 0.5 }, p[3];
            ff_viz_pixel_to_simplex(&panel, 1, NULL, 0, xy, p);
            double xy0[2], xy1[2], e[3] = { 1, 0, 0 }, f[3] = { 0, 1, 0 };
            ff_viz_simplex_to_pixel(&panel, 1, NULL, 0, e, xy0);
            ff_viz_simplex_to_pixel(&panel, 1, NULL, 0, f, xy1);
            double margin = 3.0 / (xy1[0] - xy0[0]) * 2;     /* ~3 px in barycentric units */
            if (p[0] < margin || p[1] < margin || p[2] < margin) continue;
            const unsigned char *q = px(&im, x, y);
            if (!first) first = q;
            n++;
            differ += q[0] != first[0] || q[1] != first[1] || q[2] != first[2];
        }
    FF_EXPECT(n > 50000, "%ld pixels inside", n);
    FF_EXPECT(differ == 0, "%ld of %ld triangle pixels differ from the first", differ, n);
    /* just outside vertex 0 (below-left) is background, just inside is the heat map colour */
    double e0[3] = { 1, 0, 0 }, v0[2];
    ff_viz_simplex_to_pixel(&panel, 1, NULL, 0, e0, v0);
    const unsigned char *out = px(&im, (int)(v0[0] - 6), (int)(v0[1] + 3));
    const unsigned char *in = px(&im, (int)(v0[0] + 10), (int)(v0[1] - 4));
    FF_EXPECT(out[0] == 255 && out[1] == 255 && out[2] == 255, "outside vertex 0: %d %d %d", out[0], out[1], out[2]);
    FF_EXPECT(first && in[0] == first[0] && in[1] == first[1] && in[2] == first[2], "inside vertex 0: %d %d %d", in[0], in[1], in[2]);
    free(im.rgb);
    ff_tensor_free(d);
}

FF_TEST(histogram_panel_lights_its_cell) {
    /* all points at one cell's centre: the histogram panel lights exactly that cell */
    const int res = 5, n = 100;
    ff_tensor_t *x = NULL, *c = NULL;
    FF_EXPECT(ff_tensor_new2(&x, n, 3) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&c, res * res, 3) == FF_OK);
    ff_viz_simplex_grid_points(res, c);
    int cell = 3 * res + 3;                                   /* inverted cell */
    for (int i = 0; i < n; i++) memcpy(x->data + 3 * i, c->data + 3 * cell, 3 * sizeof(float));
    ff_viz_panel panel = { .title = "hist", .points = x, .points_style = FF_VIZ_POINTS_HISTOGRAM, .hist_res = res };
    char path[1200];
    snprintf(path, sizeof path, "%s/hist.png", make_dir("hist"));
    FF_EXPECT(ff_viz_simplex(path, &panel, 1, NULL) == FF_OK, "%s", ff_last_error());
    image im;
    FF_EXPECT(read_png(path, &im));
    uint8_t hot[3], cold[3];
    ff_viz_viridis(1, hot);
    ff_viz_viridis(0, cold);
    long bad = 0, nh = 0;
    for (int y = 0; y < im.h; y++)
        for (int xx = 0; xx < im.w; xx++) {
            int k = robust_cell(&panel, 1, NULL, 0, res, xx, y, 3.0);
            if (k < 0) continue;
            nh += k == cell;
            bad += !same_rgb(px(&im, xx, y), k == cell ? hot : cold, 0);
        }
    FF_EXPECT(nh > 100 && bad == 0, "%ld hot pixels, %ld wrong", nh, bad);
    free(im.rgb);
    ff_tensor_free(x); ff_tensor_free(c);
}

FF_TEST(scatter_draws_at_points) {
    /* three opaque red dots: red at their pixels, nothing red far from them */
    ff_tensor_t *x = NULL;
    FF_EXPECT(ff_tensor_new3(&x, 3, 1, 3) == FF_OK);
    float pts[9] = { 0.6f, 0.2f, 0.2f, 0.1f, 0.1f, 0.8f, 0.3f, 0.6f, 0.1f };
    memcpy(x->data, pts, sizeof pts);
    ff_viz_panel panel = { .title = "dots", .points = x, .color = "#ff0000", .point_alpha = 1, .point_radius = 4 };
    char path[1200];
    snprintf(path, sizeof path, "%s/dots.png", make_dir("dots"));
    FF_EXPECT(ff_viz_simplex(path, &panel, 1, NULL) == FF_OK, "%s", ff_last_error());
    image im;
    FF_EXPECT(read_png(path, &im));
    double xy[3][2];
    for (int i = 0; i < 3; i++) {
        double p[3] = { pts[3 * i], pts[3 * i + 1], pts[3 * i + 2] };
        ff_viz_simplex_to_pixel(&panel, 1, NULL, 0, p, xy[i]);
        const unsigned char *q = px(&im, (int)xy[i][0], (int)xy[i][1]);
        FF_EXPECT(q[0] == 255 && q[1] == 0 && q[2] == 0, "dot %d: %d %d %d", i, q[0], q[1], q[2]);
    }
    long stray = 0;
    for (int y = 0; y < im.h; y++)
        for (int xx = 0; xx < im.w; xx++) {
            const unsigned char *q = px(&im, xx, y);
            if (!(q[0] > 200 && q[1] < 80 && q[2] < 80)) continue;
            double dmin = 1e9;
            for (int i = 0; i < 3; i++) dmin = fmin(dmin, hypot(xx + 0.5 - xy[i][0], y + 0.5 - xy[i][1]));
            stray += dmin > 5;
        }
    FF_EXPECT(stray == 0, "%ld red pixels away from the dots", stray);
    free(im.rgb);
    ff_tensor_free(x);
}

FF_TEST(trajectories_mark_ends) {
    /* [T, n, 1, 3] paths: blue start dots at t = 0, vermillion end dots at t = 1, grey in between */
    const int T = 5, n = 2;
    ff_tensor_t *tr = NULL;
    FF_EXPECT(ff_tensor_new(&tr, 4, (int64_t[]){ T, n, 1, 3 }) == FF_OK);
    double a[2][3] = { { 0.7, 0.2, 0.1 }, { 0.1, 0.1, 0.8 } }, b[2][3] = { { 0.2, 0.7, 0.1 }, { 0.45, 0.1, 0.45 } };
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 3; k++) tr->data[(t * n + i) * 3 + k] = (float)(a[i][k] + t / (T - 1.0) * (b[i][k] - a[i][k]));
    ff_viz_panel panel = { .title = "paths", .trajectories = tr };
    char path[1200];
    snprintf(path, sizeof path, "%s/paths.png", make_dir("paths"));
    FF_EXPECT(ff_viz_simplex(path, &panel, 1, NULL) == FF_OK, "%s", ff_last_error());
    image im;
    FF_EXPECT(read_png(path, &im));
    for (int i = 0; i < n; i++) {
        double s[2], e[2], m[2], mid[3];
        for (int k = 0; k < 3; k++) mid[k] = (a[i][k] + b[i][k]) / 2;
        ff_viz_simplex_to_pixel(&panel, 1, NULL, 0, a[i], s);
        ff_viz_simplex_to_pixel(&panel, 1, NULL, 0, b[i], e);
        ff_viz_simplex_to_pixel(&panel, 1, NULL, 0, mid, m);
        const unsigned char *qs = px(&im, (int)s[0], (int)s[1]), *qe = px(&im, (int)e[0], (int)e[1]);
        FF_EXPECT(qs[2] > 150 && qs[0] < 60, "start %d: %d %d %d (want blue)", i, qs[0], qs[1], qs[2]);
        FF_EXPECT(qe[0] > 180 && qe[2] < 60, "end %d: %d %d %d (want vermillion)", i, qe[0], qe[1], qe[2]);
        int grey = 0;                                        /* the polyline passes the midpoint */
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                const unsigned char *q = px(&im, (int)m[0] + dx, (int)m[1] + dy);
                grey |= q[0] < 170 && abs(q[0] - q[1]) < 12 && abs(q[1] - q[2]) < 12;
            }
        FF_EXPECT(grey, "path %d: no grey pixel at its midpoint", i);
    }
    free(im.rgb);
    ff_tensor_free(tr);
}

FF_TEST(strided_density_same_picture) {
    /* a transposed view (strides swapped) of the transposed grid draws the same pixels */
    const int res = 9;
    ff_tensor_t *g = NULL, *gt = NULL, *gtc = NULL, *view = NULL;
    ff_tensor_new2(&g, res, res);
    for (int k = 0; k < res * res; k++) g->data[k] = (float)urand();
    ff_tensor_transpose(&gt, g, 0, 1);
    ff_tensor_clone(&gtc, gt);                               /* contiguous g^T */
    ff_tensor_transpose(&view, gtc, 0, 1);                   /* strided view equal to g */
    FF_EXPECT(!ff_tensor_is_contiguous(view));
    const char *dir = make_dir("strided");
    char p1[1200], p2[1200];
    snprintf(p1, sizeof p1, "%s/a.png", dir);
    snprintf(p2, sizeof p2, "%s/b.png", dir);
    ff_viz_panel a = { .density = g }, b = { .density = view };
    FF_EXPECT(ff_viz_simplex(p1, &a, 1, NULL) == FF_OK && ff_viz_simplex(p2, &b, 1, NULL) == FF_OK, "%s", ff_last_error());
    image ia, ib;
    FF_EXPECT(read_png(p1, &ia) && read_png(p2, &ib));
    FF_EXPECT(ia.w == ib.w && ia.h == ib.h && !memcmp(ia.rgb, ib.rgb, (size_t)ia.w * ia.h * 3));
    free(ia.rgb); free(ib.rgb);
    ff_tensor_free(g); ff_tensor_free(gt); ff_tensor_free(gtc); ff_tensor_free(view);
}

FF_TEST(lines_pixels_on_log_axis) {
    /* y = 10^(x/2) on a log y axis is a straight line: red on the data points and between them */
    double xs[9], ys[9];
    for (int i = 0; i < 9; i++) { xs[i] = i; ys[i] = pow(10, i / 2.0); }
    ff_viz_series s = { .x = xs, .y = ys, .n = 9, .color = "#ff0000" };
    ff_viz_axes ax = { .xlabel = "x", .ylabel = "y", .log_y = 1 };
    char path[1200];
    snprintf(path, sizeof path, "%s/line.png", make_dir("line"));
    FF_EXPECT(ff_viz_lines(path, &s, 1, &ax, NULL) == FF_OK, "%s", ff_last_error());
    image im;
    FF_EXPECT(read_png(path, &im));
    FF_EXPECT(im.w == 720 && im.h == 480, "size %d x %d", im.w, im.h);
    double a[2], b[2];
    FF_EXPECT(ff_viz_lines_to_pixel(&s, 1, &ax, NULL, 0, 1, a) == FF_OK);
    FF_EXPECT(ff_viz_lines_to_pixel(&s, 1, &ax, NULL, 8, 1e4, b) == FF_OK);
    for (int t = 0; t <= 20; t++) {                          /* along the straight segment a -> b */
        double x = a[0] + t / 20.0 * (b[0] - a[0]), y = a[1] + t / 20.0 * (b[1] - a[1]);
        int red = 0;                                         /* a saturated pixel within 1 px */
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                const unsigned char *q = px(&im, (int)x + dx, (int)y + dy);
                red |= q[0] > 200 && q[1] < 60 && q[2] < 60;
            }
        FF_EXPECT(red, "t %d at (%.1f, %.1f): no red pixel", t, x, y);
    }
    long stray = 0;                                          /* no red far from the line */
    double len = hypot(b[0] - a[0], b[1] - a[1]);
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            const unsigned char *q = px(&im, x, y);
            if (!(q[0] > 200 && q[1] < 90 && q[2] < 90)) continue;
            double d = fabs((b[0] - a[0]) * (a[1] - y - 0.5) - (a[0] - x - 0.5) * (b[1] - a[1])) / len;
            stray += d > 3;
        }
    FF_EXPECT(stray == 0, "%ld red pixels off the line", stray);
    free(im.rgb);
}

/* ---- metadata --------------------------------------------------------------------------- */

static int read_text(const char *path, char keys[][80], char vals[][512], int max) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) { png_destroy_read_struct(&png, &info, NULL); fclose(f); return -1; }
    png_init_io(png, f);
    png_read_info(png, info);
    png_textp text;
    int n = 0;
    png_get_text(png, info, &text, &n);
    for (int k = 0; k < n && k < max; k++) {
        snprintf(keys[k], 80, "%s", text[k].key);
        snprintf(vals[k], 512, "%s%s", text[k].compression == PNG_ITXT_COMPRESSION_NONE ? "iTXt:" : "", text[k].text);
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return n;
}

FF_TEST(metadata_text_chunks) {
    ff_tensor_t *d = NULL;
    FF_EXPECT(ff_tensor_new2(&d, 4, 4) == FF_OK);
    ff_tensor_fill(d, 1);
    const char *keys[] = { "script", "args", "seed", "note" };
    const char *vals[] = { "experiments/smiley.lua", "{\"ot\":\"exact_ot\",\"steps\":5000}", "1", "Fisher\u2013Rao" };
    ff_viz_opts o = { .n_meta = 4, .meta_keys = keys, .meta_values = vals };
    ff_viz_panel panel = { .density = d };
    char path[1200], path2[1200];
    const char *dir = make_dir("meta");
    snprintf(path, sizeof path, "%s/meta.png", dir);
    snprintf(path2, sizeof path2, "%s/meta_lines.png", dir);
    FF_EXPECT(ff_viz_simplex(path, &panel, 1, &o) == FF_OK, "%s", ff_last_error());
    double y[3] = { 3, 1, 2 };
    ff_viz_series s = { .label = "loss", .y = y, .n = 3 };
    FF_EXPECT(ff_viz_lines(path2, &s, 1, NULL, &o) == FF_OK, "%s", ff_last_error());
    const char *files[2] = { path, path2 };
    for (int f = 0; f < 2; f++) {
        char k[8][80], v[8][512];
        int n = read_text(files[f], k, v, 8);
        FF_EXPECT(n == 5, "%s: %d text chunks", files[f], n);
        char sw[64];
        snprintf(sw, sizeof sw, "fisherflow %s", ff_version());
        FF_EXPECT(n > 0 && !strcmp(k[0], "Software") && !strcmp(v[0], sw), "Software = \"%s\"", n > 0 ? v[0] : "");
        for (int i = 0; i < 3 && i + 1 < n; i++)
            FF_EXPECT(!strcmp(k[i + 1], keys[i]) && !strcmp(v[i + 1], vals[i]), "%s = %s", k[i + 1], v[i + 1]);
        if (n == 5) {
            char want[64];
            snprintf(want, sizeof want, "iTXt:%s", vals[3]);
            FF_EXPECT(!strcmp(k[4], "note") && !strcmp(v[4], want), "UTF-8 value as iTXt: %s = %s", k[4], v[4]);
        }
    }
    FF_EXPECT(dir_entries(dir) == 2, "directory has %d entries (temporaries left?)", dir_entries(dir));
    ff_tensor_free(d);
}

/* ---- bad input -------------------------------------------------------------------------- */

FF_TEST(bad_input_leaves_nothing) {
    const char *dir = make_dir("bad");
    char path[1200];
    snprintf(path, sizeof path, "%s/out.png", dir);
    ff_tensor_t *x = NULL, *e = NULL, *d = NULL, *d1 = NULL, *ns = NULL, *tr = NULL;
    ff_tensor_new2(&x, 10, 3);
    for (int i = 0; i < 10; i++) { x->data[3 * i] = 0.2f; x->data[3 * i + 1] = 0.3f; x->data[3 * i + 2] = 0.5f; }
    ff_tensor_new2(&e, 0, 3);
    ff_tensor_new2(&d, 8, 8);
    ff_tensor_new2(&d1, 1, 1);
    ff_tensor_new2(&ns, 4, 5);
    ff_tensor_new3(&tr, 4, 10, 3);
    ff_viz_panel ok = { .title = "ok", .points = x };

    FF_EXPECT_ERROR(ff_viz_simplex(NULL, &ok, 1, NULL), FF_EINVAL, "png_path is NULL");
    FF_EXPECT_ERROR(ff_viz_simplex("", &ok, 1, NULL), FF_EINVAL, "png_path is NULL or empty");
    FF_EXPECT_ERROR(ff_viz_simplex(path, &ok, 0, NULL), FF_EINVAL, "0 panels");
    FF_EXPECT_ERROR(ff_viz_simplex(path, NULL, 1, NULL), FF_EINVAL, "panels != NULL");
    ff_viz_panel empty = { .title = "nothing" };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &empty, 1, NULL), FF_EINVAL, "panel 0 (\"nothing\"): has no points, density or trajectories");
    ff_viz_panel pe = { .title = "samples", .points = e };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pe, 1, NULL), FF_EINVAL, "panel 0 (\"samples\"): points [0,3] is empty");
    x->data[5 * 3 + 1] = NAN;
    ff_viz_panel two[2] = { { .title = "target", .density = d }, { .title = "samples", .points = x } };
    FF_EXPECT_ERROR(ff_viz_simplex(path, two, 2, NULL), FF_ENUMERIC, "panel 1 (\"samples\"): points[5] coordinate 1 is NaN");
    x->data[5 * 3 + 1] = 0.9f;
    FF_EXPECT_ERROR(ff_viz_simplex(path, two, 2, NULL), FF_EINVAL, "points[5] = (0.2, 0.9, 0.5) is not on the simplex (sum 1.6)");
    x->data[5 * 3 + 1] = 0.3f;
    ff_viz_panel p1 = { .title = "model", .density = d1 };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &p1, 1, NULL), FF_EINVAL, "panel 0 (\"model\"): density [1,1]: res 1 < 2");
    ff_viz_panel pns = { .title = "model", .density = ns };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pns, 1, NULL), FF_ESHAPE, "density [4,5] must be a square [res, res] grid");
    d->data[2 * 8 + 3] = NAN;
    ff_viz_panel pd = { .title = "model", .density = d };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pd, 1, NULL), FF_ENUMERIC, "panel 0 (\"model\"): density[2][3] is NaN");
    d->data[2 * 8 + 3] = -1;
    pd.log_scale = 1;
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pd, 1, NULL), FF_EINVAL, "density[2][3] = -1 is negative on a log colour scale");
    d->data[2 * 8 + 3] = 0;
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pd, 1, NULL), FF_EINVAL, "density has no positive value");
    pd.log_scale = 0;
    for (int i = 0; i < 40; i++) { tr->data[3 * i] = 0.5f; tr->data[3 * i + 1] = 0.5f; }
    tr->data[(2 * 10 + 7) * 3] = INFINITY;
    ff_viz_panel pt = { .title = "flow", .trajectories = tr };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pt, 1, NULL), FF_ENUMERIC, "panel 0 (\"flow\"): trajectories[2, 7] coordinate 0 is infinite");
    ff_tensor_t *tr1 = NULL;
    ff_tensor_view(&tr1, tr, 2, (int64_t[]){ 40, 3 });
    ff_viz_panel pt1 = { .title = "flow", .trajectories = tr1 };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pt1, 1, NULL), FF_ESHAPE, "trajectories [40,3] must be [T, n, 3] or [T, n, 1, 3]");
    ff_tensor_free(tr1);
    ff_viz_panel pc = { .title = "c", .points = x, .color = "red" };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pc, 1, NULL), FF_EINVAL, "color \"red\" is not \"#rrggbb\"");
    ff_viz_panel ph = { .title = "h", .points = x, .points_style = FF_VIZ_POINTS_HISTOGRAM, .hist_res = 1 };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &ph, 1, NULL), FF_EINVAL, "hist_res 1 outside 2..4096");

    ff_viz_opts tiny = { .width = 1, .height = 1 };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &ok, 1, &tiny), FF_EINVAL, "image size 1 x 1 outside 16..16384");
    ff_viz_opts neg = { .width = -5 };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &ok, 1, &neg), FF_EINVAL, "image size -5 x 470");
    ff_viz_opts small = { .width = 40, .height = 40 };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &ok, 1, &small), FF_EINVAL, "make it larger");
    const char *k1[] = { "Software" }, *k2[] = { "" }, *k3[] = { "seed" }, *v1[] = { "x" }, *vnull[] = { NULL };
    ff_viz_opts m1 = { .n_meta = 1, .meta_keys = k1, .meta_values = v1 };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &ok, 1, &m1), FF_EINVAL, "\"Software\" is reserved");
    ff_viz_opts m2 = { .n_meta = 1, .meta_keys = k2, .meta_values = v1 };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &ok, 1, &m2), FF_EINVAL, "has 0 bytes (PNG keywords need 1-79)");
    ff_viz_opts m3 = { .n_meta = 1, .meta_keys = k3, .meta_values = vnull };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &ok, 1, &m3), FF_EINVAL, "meta_values[0] (key \"seed\") is NULL");

    ff_viz_panel pu = { .title = "bad \xff title", .points = x };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pu, 1, NULL), FF_EINVAL, "panel 0 title is not valid UTF-8 (byte 4)");
    ff_viz_panel pl = { .title = "ok", .points = x, .labels = { NULL, "\xc3" } };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &pl, 1, NULL), FF_EINVAL, "panel 0 labels[1] is not valid UTF-8");
    ff_viz_opts ot = { .title = "\xe2\x82" };
    FF_EXPECT_ERROR(ff_viz_simplex(path, &ok, 1, &ot), FF_EINVAL, "opts.title is not valid UTF-8");
    char nodir[1300];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/out.png", dir);
    FF_EXPECT_ERROR(ff_viz_simplex(nodir, &ok, 1, NULL), FF_EIO, "cannot create a temporary file");
    FF_EXPECT(strstr(ff_last_error(), "No such file or directory") != NULL, "%s", ff_last_error());
    char slash[1300];
    snprintf(slash, sizeof slash, "%s/", dir);
    FF_EXPECT_ERROR(ff_viz_simplex(slash, &ok, 1, NULL), FF_EINVAL, "names a directory");

    /* line plots */
    double xs[20], ys[20];
    for (int i = 0; i < 20; i++) { xs[i] = i + 1; ys[i] = 1.0 / (i + 1); }
    ff_viz_series s = { .label = "loss", .x = xs, .y = ys, .n = 20 };
    FF_EXPECT_ERROR(ff_viz_lines(path, &s, 0, NULL, NULL), FF_EINVAL, "0 series");
    ff_viz_series s0 = { .label = "seed 2", .y = ys, .n = 0 };
    FF_EXPECT_ERROR(ff_viz_lines(path, &s0, 1, NULL, NULL), FF_EINVAL, "series 0 (\"seed 2\") is empty");
    ys[17] = NAN;
    ff_viz_series two_s[2] = { { .label = "a", .y = ys, .n = 10 }, s };
    FF_EXPECT_ERROR(ff_viz_lines(path, two_s, 2, NULL, NULL), FF_ENUMERIC, "series 1 (\"loss\"): y[17] is NaN");
    ys[17] = 0;
    ff_viz_axes logy = { .log_y = 1 };
    FF_EXPECT_ERROR(ff_viz_lines(path, &s, 1, &logy, NULL), FF_EINVAL, "y[17] = 0 is not positive on a log y axis");
    ys[17] = 1;
    ff_viz_axes badlab = { .ylabel = "KL \x80" };
    FF_EXPECT_ERROR(ff_viz_lines(path, &s, 1, &badlab, NULL), FF_EINVAL, "axes.ylabel is not valid UTF-8 (byte 3)");
    ff_viz_axes badlim = { .xmin = 5, .xmax = 1 };
    FF_EXPECT_ERROR(ff_viz_lines(path, &s, 1, &badlim, NULL), FF_EINVAL, "axes xmin 5, xmax 1: need min < max");
    ff_viz_series sm = s;
    sm.marker = 9;
    FF_EXPECT_ERROR(ff_viz_lines(path, &sm, 1, NULL, NULL), FF_EINVAL, "marker 9 outside 0..5");
    FF_EXPECT_ERROR(ff_viz_lines(path, &s, 1, NULL, &tiny), FF_EINVAL, "image size 1 x 1");
    FF_EXPECT_ERROR(ff_viz_lines(nodir, &s, 1, NULL, NULL), FF_EIO, "cannot create a temporary file");

    /* helpers */
    ff_tensor_t *g = NULL;
    ff_tensor_new2(&g, 3, 3);
    FF_EXPECT_ERROR(ff_viz_simplex_grid_points(1, g), FF_EINVAL, "res 1 < 2");
    FF_EXPECT_ERROR(ff_viz_simplex_grid_points(4, g), FF_ESHAPE, "out [3,3] must be contiguous with 48 elements");
    double pn[3] = { NAN, 0, 1 };
    int32_t ci, cj;
    FF_EXPECT_ERROR(ff_viz_simplex_cell(4, pn, &ci, &cj), FF_EINVAL, "p[0] = nan is not finite");
    double pz[3] = { -1, 0, -0.5 }, pbig[3] = { 1e308, 1e308, 1e308 };
    FF_EXPECT_ERROR(ff_viz_simplex_cell(4, pz, &ci, &cj), FF_EINVAL, "has no positive entry");
    FF_EXPECT_ERROR(ff_viz_simplex_cell(4, pbig, &ci, &cj), FF_EINVAL, "the sum overflows");
    /* any positive scale and negative entries read as 0: (3, 2, -1) is (0.6, 0.4, 0), res 5 puts it on
     * the edge u + v = 5 at (3, 2), in the upright cell [2][2] (the lattice point (3, 2, 0) goes to it:
     * the largest floor, u = 3, is lowered) */
    double ps[3] = { 3, 2, -1 };
    FF_EXPECT(ff_viz_simplex_cell(5, ps, &ci, &cj) == FF_OK && ci == 2 && cj == 2, "[%d][%d]", ci, cj);
    double tk[8];
    int32_t nt;
    FF_EXPECT_ERROR(ff_viz_ticks(1, 1, 0, tk, 8, &nt), FF_EINVAL, "range [1, 1] is empty");
    FF_EXPECT_ERROR(ff_viz_ticks(-1, 1, 1, tk, 8, &nt), FF_EINVAL, "must be positive");

    FF_EXPECT(dir_entries(dir) == 0, "%d files left behind in %s", dir_entries(dir), dir);
    ff_tensor_free(x); ff_tensor_free(e); ff_tensor_free(d); ff_tensor_free(d1);
    ff_tensor_free(ns); ff_tensor_free(tr); ff_tensor_free(g);
}

/* ---- atomicity ---------------------------------------------------------------------------- */

static long read_all(const char *path, unsigned char **buf) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)n + 1);
    if (fread(*buf, 1, (size_t)n, f) != (size_t)n) n = -1;
    fclose(f);
    return n;
}

FF_TEST(existing_file_survives_failed_write) {
    const char *dir = make_dir("atomic");
    char path[1200];
    snprintf(path, sizeof path, "%s/fig.png", dir);
    double y[3] = { 1, 2, 3 };
    ff_viz_series s = { .y = y, .n = 3 };
    FF_EXPECT(ff_viz_lines(path, &s, 1, NULL, NULL) == FF_OK, "%s", ff_last_error());
    unsigned char *before = NULL, *after = NULL;
    long nb = read_all(path, &before);
    FF_EXPECT(nb > 1000, "first file %ld bytes", nb);

    /* a noisy density compresses badly, so the new PNG is far larger than the 4 KiB limit below:
     * write() fails with EFBIG after the temporary file was created and partly written */
    ff_tensor_t *d = NULL;
    ff_tensor_new2(&d, 200, 200);
    for (int i = 0; i < 200 * 200; i++) d->data[i] = (float)urand();
    ff_viz_panel panel = { .density = d };
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    FF_EXPECT(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    ff_status st = ff_viz_simplex(path, &panel, 1, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    FF_EXPECT(st == FF_EIO, "status %s: %s", ff_status_name(st), ff_last_error());
    FF_EXPECT(strstr(ff_last_error(), "writing") && strstr(ff_last_error(), "File too large"), "%s", ff_last_error());
    long na = read_all(path, &after);
    FF_EXPECT(na == nb && memcmp(before, after, (size_t)nb) == 0, "destination changed: %ld -> %ld bytes", nb, na);
    FF_EXPECT(dir_entries(dir) == 1, "%d entries: temporary left behind", dir_entries(dir));

    /* rename onto a non-empty directory fails after the whole file was written */
    char sub[1300], inner[1400];
    snprintf(sub, sizeof sub, "%s/taken.png", dir);
    mkdir(sub, 0755);
    snprintf(inner, sizeof inner, "%s/keep", sub);
    FILE *f = fopen(inner, "w");
    if (f) { fputs("x", f); fclose(f); }
    FF_EXPECT_ERROR(ff_viz_lines(sub, &s, 1, NULL, NULL), FF_EIO, "cannot rename the temporary to");
    FF_EXPECT(dir_entries(dir) == 2 && dir_entries(sub) == 1, "entries: %d in dir, %d in sub", dir_entries(dir), dir_entries(sub));

    /* and the same call succeeds once the limit is gone, replacing the file */
    FF_EXPECT(ff_viz_simplex(path, &panel, 1, NULL) == FF_OK, "%s", ff_last_error());
    free(after);
    after = NULL;
    FF_EXPECT(read_all(path, &after) > 8192);
    free(before); free(after);
    ff_tensor_free(d);
}

/* ---- building blocks ---------------------------------------------------------------------- */

FF_TEST(ticks_and_labels) {
    double t[64];
    int32_t n;
    FF_EXPECT(ff_viz_ticks(0, 1, 0, t, 64, &n) == FF_OK && n == 6 && t[0] == 0 && fabs(t[5] - 1) < 1e-12, "n %d", n);
    FF_EXPECT(ff_viz_ticks(0, 17, 0, t, 64, &n) == FF_OK && n == 4 && t[3] == 15, "n %d", n);
    FF_EXPECT(ff_viz_ticks(-3.2, 7.9, 0, t, 64, &n) == FF_OK && n == 5 && t[0] == -2 && t[4] == 6, "n %d t0 %g", n, t[0]);
    FF_EXPECT(ff_viz_ticks(0, 20000, 0, t, 64, &n) == FF_OK && n == 5 && t[1] == 5000, "n %d", n);
    FF_EXPECT(ff_viz_ticks(1e-3, 10, 1, t, 64, &n) == FF_OK && n == 5 && fabs(t[0] - 1e-3) < 1e-15 && fabs(t[4] - 10) < 1e-12, "n %d", n);
    FF_EXPECT(ff_viz_ticks(1e-12, 1e3, 1, t, 64, &n) == FF_OK && n >= 4 && n <= 9, "n %d", n);   /* decades thinned */
    FF_EXPECT(ff_viz_ticks(0.3, 0.8, 1, t, 64, &n) == FF_OK && n == 6 && fabs(t[0] - 0.3) < 1e-12, "n %d", n);
    FF_EXPECT(ff_viz_ticks(0.15, 3, 1, t, 64, &n) == FF_OK && n == 4 && fabs(t[1] - 0.5) < 1e-12, "n %d", n);  /* 0.2 0.5 1 2 */
    FF_EXPECT(ff_viz_ticks(3, 120, 1, t, 64, &n) == FF_OK && n == 2 && t[0] == 10 && t[1] == 100, "n %d", n);
    char b[64];
    struct { double v, step; int log; const char *want; } lab[] = {
        { 0.4, 0.2, 0, "0.4" }, { 0, 0.2, 0, "0.0" }, { -1e-17, 0.2, 0, "0.0" }, { 15000, 5000, 0, "15000" },
        { 0.25, 0.05, 0, "0.25" }, { 7.5, 2.5, 0, "7.5" }, { 2e6, 1e6, 0, "2e+06" },
        { 1e-3, 10, 1, "10\u207b\u00b3" }, { 1, 10, 1, "10\u2070" }, { 1e12, 100, 1, "10\u00b9\u00b2" },
        { 0.5, 2.5, 1, "0.5" }, { 1, 2, 1, "1" }, { 200, 2, 1, "200" },
    };
    for (size_t k = 0; k < sizeof lab / sizeof lab[0]; k++) {
        ff_viz_tick_label(lab[k].v, lab[k].step, lab[k].log, b, sizeof b);
        FF_EXPECT(!strcmp(b, lab[k].want), "label(%g, step %g, log %d) = \"%s\", want \"%s\"", lab[k].v, lab[k].step,
                  lab[k].log, b, lab[k].want);
    }
    for (int lo = 0; lo < 50; lo++) {                        /* every step is 1, 2 or 5 x 10^k */
        double a = urand() * 100 - 50, b = a + pow(10, urand() * 8 - 4);
        FF_EXPECT(ff_viz_ticks(a, b, 0, t, 64, &n) == FF_OK && n >= 3 && n <= 8, "[%g, %g]: %d ticks", a, b, n);
        if (n < 2) continue;
        double st = t[1] - t[0], m = st / pow(10, floor(log10(st) + 1e-9));
        FF_EXPECT(fabs(m - 1) < 1e-6 || fabs(m - 2) < 1e-6 || fabs(m - 5) < 1e-6, "step %g", st);
        FF_EXPECT(t[0] >= a && t[n - 1] <= b);
    }
}

FF_TEST(viridis_published_and_lightness_monotone) {
    uint8_t c[3];
    ff_viz_viridis(0, c);
    FF_EXPECT(c[0] == 0x44 && c[1] == 0x01 && c[2] == 0x54);
    ff_viz_viridis(1, c);
    FF_EXPECT(c[0] == 0xFD && c[1] == 0xE7 && c[2] == 0x25);
    ff_viz_viridis(0.5, c);
    FF_EXPECT(c[0] == 0x21 && c[1] == 0x90 && c[2] == 0x8C);
    ff_viz_viridis(NAN, c);
    FF_EXPECT(c[0] == 0x44);
    /* CIELAB L* (D65) strictly increases: the property that makes viridis read as "more" */
    double prev = -1;
    for (int k = 0; k <= 64; k++) {
        ff_viz_viridis(k / 64.0, c);
        double lin[3];
        for (int i = 0; i < 3; i++) { double v = c[i] / 255.0; lin[i] = v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4); }
        double Y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
        double L = Y > 216.0 / 24389 ? 116 * cbrt(Y) - 16 : Y * 24389.0 / 27;
        FF_EXPECT(L > prev, "L* not increasing at %d: %g <= %g", k, L, prev);
        prev = L;
    }
}

/* ---- example pictures (look at them) ------------------------------------------------------- */

static void slerp_path(const double p0[3], const double p1[3], double t, double out[3]) {
    double a[3], b[3], dot = 0;
    for (int k = 0; k < 3; k++) { a[k] = sqrt(p0[k]); b[k] = sqrt(p1[k]); dot += a[k] * b[k]; }
    double th = acos(fmin(1, dot)), s = sin(th);
    for (int k = 0; k < 3; k++) {
        double x = s < 1e-9 ? a[k] : (sin((1 - t) * th) * a[k] + sin(t * th) * b[k]) / s;
        out[k] = x * x;
    }
}

static void sample_mixture(double p[3]) {     /* the mixture of grid_fill, by rejection */
    for (;;) {
        uniform_simplex(p);
        if (urand() * 40 < mixture(p, NULL)) return;
    }
}

FF_TEST(examples) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/viz_examples", FF_TEST_BINARY_DIR);
    mkdir(dir, 0755);
    const char *keys[] = { "script", "args", "seed" };
    const char *vals[] = { "tests/c/test_viz.c", "{\"example\":true}", "1" };
    ff_viz_opts o = { .title = "Mixture on the 2-simplex", .n_meta = 3, .meta_keys = keys, .meta_values = vals };

    const int res = 128, n = 20000;
    ff_tensor_t *target = NULL, *x = NULL, *model = NULL, *traj = NULL, *few = NULL;
    ff_tensor_new2(&target, res, res);
    ff_viz_simplex_grid_fill(target, mixture, NULL);
    ff_tensor_new2(&x, n, 3);
    for (int i = 0; i < n; i++) { double p[3]; sample_mixture(p); for (int k = 0; k < 3; k++) x->data[3 * i + k] = (float)p[k]; }
    ff_tensor_new2(&model, 64, 64);
    ff_viz_simplex_histogram(model, x);
    ff_viz_panel three[3] = {
        { .title = "target", .density = target, .labels = { "A", "B", "C" } },
        { .title = "samples (20k)", .points = x, .labels = { "A", "B", "C" } },
        { .title = "histogram, log scale", .points = x, .points_style = FF_VIZ_POINTS_HISTOGRAM, .hist_res = 48,
          .log_scale = 1, .labels = { "A", "B", "C" } },
    };
    snprintf(path, sizeof path, "%s/simplex_panels.png", dir);
    FF_EXPECT(ff_viz_simplex(path, three, 3, &o) == FF_OK, "%s", ff_last_error());

    /* trajectories: geodesics on the sphere from uniform source points to mixture samples */
    const int T = 40, m = 150;
    ff_tensor_new3(&traj, T, m, 3);
    for (int i = 0; i < m; i++) {
        double p0[3], p1[3];
        uniform_simplex(p0);
        sample_mixture(p1);
        for (int t = 0; t < T; t++) {
            double q[3];
            slerp_path(p0, p1, t / (T - 1.0), q);
            for (int k = 0; k < 3; k++) traj->data[(t * m + i) * 3 + k] = (float)q[k];
        }
    }
    ff_tensor_new2(&few, 500, 3);
    memcpy(few->data, x->data, 500 * 3 * sizeof(float));
    ff_viz_panel flow[2] = { { .title = "flow trajectories", .trajectories = traj },
                             { .title = "model density + 500 samples", .density = model, .points = few } };
    ff_viz_opts o2 = { .title = "Fisher flow (example data)" };
    snprintf(path, sizeof path, "%s/simplex_trajectories.png", dir);
    FF_EXPECT(ff_viz_simplex(path, flow, 2, &o2) == FF_OK, "%s", ff_last_error());

    /* loss curve: 20000 noisy steps, smoothed */
    const int S = 20000;
    double *steps = malloc(sizeof *steps * S), *loss = malloc(sizeof *loss * S);
    for (int i = 0; i < S; i++) {
        steps[i] = i + 1;
        loss[i] = (0.35 + 2.5 * exp(-i / 1500.0)) * exp(0.15 * gauss());
    }
    ff_viz_series ls = { .label = "train loss", .x = steps, .y = loss, .n = S, .smooth = 201 };
    ff_viz_axes la = { .xlabel = "step", .ylabel = "loss", .log_y = 1 };
    ff_viz_opts o3 = { .title = "Training loss (example data)" };
    snprintf(path, sizeof path, "%s/loss.png", dir);
    FF_EXPECT(ff_viz_lines(path, &ls, 1, &la, &o3) == FF_OK, "%s", ff_last_error());

    /* KL against K, several runs (Figure 3 style), log y */
    double K[10] = { 5, 10, 20, 40, 60, 80, 100, 120, 140, 160 }, kl[4][10];
    const char *names[4] = { "Fisher-Flow (OT)", "Fisher-Flow (no OT)", "Dirichlet FM", "Linear FM" };
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 10; i++) kl[r][i] = 2e-3 * pow(1.6, r) * pow(K[i] / 5, 0.4 + 0.35 * r) * exp(0.1 * gauss());
    ff_viz_series ks[4];
    for (int r = 0; r < 4; r++)
        ks[r] = (ff_viz_series){ .label = names[r], .x = K, .y = kl[r], .n = 10, .marker = r + 1,
                                 .line_style = r == 3 ? FF_VIZ_LINE_DASHED : FF_VIZ_LINE_SOLID };
    ff_viz_axes ka = { .xlabel = "K (categories per position)", .ylabel = "KL(model \u2016 true)", .log_y = 1 };
    ff_viz_opts o4 = { .title = "Toy (\u0394\u1d37)\u2074: KL against K (example data)" };
    snprintf(path, sizeof path, "%s/kl_vs_k.png", dir);
    FF_EXPECT(ff_viz_lines(path, ks, 4, &ka, &o4) == FF_OK, "%s", ff_last_error());
    printf("example pictures in %s\n", dir);
    free(steps); free(loss);
    ff_tensor_free(target); ff_tensor_free(x); ff_tensor_free(model); ff_tensor_free(traj); ff_tensor_free(few);
}

FF_MAIN()
