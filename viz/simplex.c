/* simplex.c — ternary pictures of the 2-simplex: heat maps on the triangular grid of viz.h, scatters,
 * flow trajectories, side-by-side panels with colour bars (the paper's Figure 2 style). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/metrics.h"
#include "viz_internal.h"

#define SQRT3_2 0.86602540378443864676

/* ---- grid ---------------------------------------------------------------------------------- */

/* The grid is the core's (metrics.h): one convention for metrics' histograms and viz's pictures.
 * cell_of takes a point with non-negative coordinates and a positive sum. */
static void cell_of(int res, const double q[3], int *gi, int *gj) {
    const double s = q[0] + q[1] + q[2];
    int64_t c = ff_simplex_grid_cell(q[0] / s, q[1] / s, q[2] / s, res);
    if (c < 0) c = 0;                     /* unreachable: q / s is on the simplex */
    *gi = (int)(c / res);
    *gj = (int)(c % res);
}

static void cell_centre(int res, int i, int j, double p[3]) {
    ff_simplex_grid_centre((int64_t)i * res + j, res, p);
}

ff_status ff_viz_simplex_cell(int32_t res, const double p[3], int32_t *i, int32_t *j) {
    if (res < 2) return ff_errorf(FF_EINVAL, "ff_viz_simplex_cell: res %d < 2", (int)res);
    if (!p || !i || !j) return ff_errorf(FF_EINVAL, "ff_viz_simplex_cell: p, i or j is NULL");
    double q[3], s = 0;
    for (int k = 0; k < 3; k++) {
        if (!isfinite(p[k])) return ff_errorf(FF_EINVAL, "ff_viz_simplex_cell: p[%d] = %g is not finite", k, p[k]);
        q[k] = p[k] > 0 ? p[k] : 0;
        s += q[k];
    }
    if (!(s > 0)) return ff_errorf(FF_EINVAL, "ff_viz_simplex_cell: p = (%g, %g, %g) has no positive entry", p[0], p[1], p[2]);
    if (!isfinite(s)) return ff_errorf(FF_EINVAL, "ff_viz_simplex_cell: p = (%g, %g, %g): the sum overflows", p[0], p[1], p[2]);
    int gi, gj;
    cell_of(res, q, &gi, &gj);
    *i = gi; *j = gj;
    return FF_OK;
}

ff_status ff_viz_simplex_grid_points(int32_t res, ff_tensor_t *out) {
    char b[64];
    if (res < 2) return ff_errorf(FF_EINVAL, "ff_viz_simplex_grid_points: res %d < 2", (int)res);
    if (!out) return ff_errorf(FF_EINVAL, "ff_viz_simplex_grid_points: out is NULL");
    if (!ff_tensor_is_contiguous(out) || out->ndim < 1 || out->shape[out->ndim - 1] != 3 ||
        ff_tensor_numel(out) != 3 * (int64_t)res * res)
        return ff_errorf(FF_ESHAPE, "ff_viz_simplex_grid_points: out [%s] must be contiguous with %lld elements and "
                         "last dim 3 ([%d,%d,3], [%d,3] or [%d,1,3])", ff_shape_str(out, b, sizeof b),
                         3LL * res * res, res, res, res * res, res * res);
    for (int i = 0; i < res; i++)
        for (int j = 0; j < res; j++) {
            double p[3];
            cell_centre(res, i, j, p);
            for (int k = 0; k < 3; k++) out->data[((int64_t)i * res + j) * 3 + k] = (float)p[k];
        }
    return FF_OK;
}

static ff_status check_grid(const char *fn, const char *what, const ff_tensor_t *g) {
    char b[64];
    if (!g) return ff_errorf(FF_EINVAL, "%s: %s is NULL", fn, what);
    if (g->ndim != 2 || g->shape[0] != g->shape[1])
        return ff_errorf(FF_ESHAPE, "%s: %s [%s] must be a square [res, res] grid", fn, what, ff_shape_str(g, b, sizeof b));
    if (g->shape[0] < 2)
        return ff_errorf(FF_EINVAL, "%s: %s [%s]: res %lld < 2", fn, what, ff_shape_str(g, b, sizeof b), (long long)g->shape[0]);
    if (g->shape[0] > 4096)
        return ff_errorf(FF_EINVAL, "%s: %s: res %lld > 4096", fn, what, (long long)g->shape[0]);
    return FF_OK;
}

ff_status ff_viz_simplex_grid_fill(ff_tensor_t *grid, double (*fn)(const double p[3], void *ctx), void *ctx) {
    FF_TRY(check_grid("ff_viz_simplex_grid_fill", "grid", grid));
    if (!fn) return ff_errorf(FF_EINVAL, "ff_viz_simplex_grid_fill: fn is NULL");
    int res = (int)grid->shape[0];
    for (int i = 0; i < res; i++)
        for (int j = 0; j < res; j++) {
            double p[3];
            cell_centre(res, i, j, p);
            double v = fn(p, ctx);
            if (!isfinite(v))
                return ff_errorf(FF_ENUMERIC, "ff_viz_simplex_grid_fill: fn(%.4f, %.4f, %.4f) = %g at cell [%d][%d] is not finite",
                                 p[0], p[1], p[2], v, i, j);
            grid->data[i * grid->stride[0] + j * grid->stride[1]] = (float)v;
        }
    return FF_OK;
}

/* ---- input checks -------------------------------------------------------------------------- */

/* Points [n, 3] / [n, 1, 3] (lead = 0) or trajectories [T, n, 3] / [T, n, 1, 3] (lead = 1). */
typedef struct pts { const ff_tensor_t *t; int64_t T, n; int64_t sT, sn, sc; } pts;

static double pts_get(const pts *p, int64_t t, int64_t i, int c) {
    return p->t->data[t * p->sT + i * p->sn + c * p->sc];
}

static ff_status check_points(const char *fn, const char *where, const char *what, const ff_tensor_t *t, int lead, pts *out) {
    char b[64];
    int nd = t->ndim - lead;
    int ok = (nd == 2 || (nd == 3 && t->shape[lead + 1] == 1)) && t->shape[t->ndim - 1] == 3;
    if (!ok)
        return ff_errorf(FF_ESHAPE, "%s: %s%s [%s] must be %s", fn, where, what, ff_shape_str(t, b, sizeof b),
                         lead ? "[T, n, 3] or [T, n, 1, 3]" : "[n, 3] or [n, 1, 3]");
    out->t = t;
    out->T = lead ? t->shape[0] : 1;
    out->sT = lead ? t->stride[0] : 0;
    out->n = t->shape[lead];
    out->sn = t->stride[lead];
    out->sc = t->stride[t->ndim - 1];
    if (out->T < 1 || out->n < 1)
        return ff_errorf(FF_EINVAL, "%s: %s%s [%s] is empty", fn, where, what, ff_shape_str(t, b, sizeof b));
    for (int64_t s = 0; s < out->T; s++)
        for (int64_t i = 0; i < out->n; i++) {
            double x[3], sum = 0;
            char idx[48];
            if (lead) snprintf(idx, sizeof idx, "[%lld, %lld]", (long long)s, (long long)i);
            else snprintf(idx, sizeof idx, "[%lld]", (long long)i);
            for (int c = 0; c < 3; c++) {
                x[c] = pts_get(out, s, i, c);
                if (!isfinite(x[c]))
                    return ff_errorf(FF_ENUMERIC, "%s: %s%s%s coordinate %d is %s", fn, where, what, idx, c,
                                     isnan(x[c]) ? "NaN" : "infinite");
                sum += x[c];
            }
            if (x[0] < -1e-3 || x[1] < -1e-3 || x[2] < -1e-3 || fabs(sum - 1) > 1e-3)
                return ff_errorf(FF_EINVAL, "%s: %s%s%s = (%g, %g, %g) is not on the simplex (sum %g); hint: points "
                                 "on the sphere map to the simplex by squaring", fn, where, what, idx, x[0], x[1], x[2], sum);
        }
    return FF_OK;
}

ff_status ff_viz_simplex_histogram(ff_tensor_t *grid, const ff_tensor_t *points) {
    const char *fn = "ff_viz_simplex_histogram";
    pts p;
    FF_TRY(check_grid(fn, "grid", grid));
    if (!points) return ff_errorf(FF_EINVAL, "%s: points is NULL", fn);
    FF_TRY(check_points(fn, "", "points", points, 0, &p));
    int res = (int)grid->shape[0];
    double *count = calloc((size_t)res * res, sizeof *count);
    if (!count) return ff_errorf(FF_ENOMEM, "%s: cannot allocate a %d x %d grid", fn, res, res);
    for (int64_t i = 0; i < p.n; i++) {
        double x[3];
        for (int c = 0; c < 3; c++) { x[c] = pts_get(&p, 0, i, c); x[c] = x[c] > 0 ? x[c] : 0; }
        int gi, gj;
        cell_of(res, x, &gi, &gj);
        count[gi * res + gj] += 1;
    }
    double scale = 2.0 * res * res / (double)p.n;     /* density per unit (p0, p1) area */
    for (int i = 0; i < res; i++)
        for (int j = 0; j < res; j++)
            grid->data[i * grid->stride[0] + j * grid->stride[1]] = (float)(count[i * res + j] * scale);
    free(count);
    return FF_OK;
}

/* ---- layout -------------------------------------------------------------------------------- */

static int has_heat(const ff_viz_panel *p) {
    return p->density || (p->points && p->points_style == FF_VIZ_POINTS_HISTOGRAM);
}

static const double PANEL_W = 440, CBAR_W = 76, PANEL_H = 470, TITLE_H = 34;

typedef struct layout {
    int    W, H;
    double u;                   /* scale of fonts and margins */
    double x0, w, y0, h;        /* the panel's box */
    double A[2], B[2], C[2];    /* vertices 0, 1, 2 */
    double cb_x, cb_y, cb_w, cb_h;
} layout;

static ff_status make_layout(const char *fn, const ff_viz_panel *panels, int n, const ff_viz_opts *opts,
                             int which, layout *L) {
    if (!panels || n < 1) return ff_errorf(FF_EINVAL, "%s: %d panels (need panels != NULL and n_panels >= 1)", fn, n);
    if (n > 64) return ff_errorf(FF_EINVAL, "%s: %d panels (at most 64)", fn, n);
    if (which < 0 || which >= n) return ff_errorf(FF_EINVAL, "%s: panel %d outside [0, %d)", fn, which, n);
    int titled = opts && opts->title && opts->title[0];
    double autoW = 0, before = 0;
    for (int k = 0; k < n; k++) {
        double wk = PANEL_W + (has_heat(&panels[k]) ? CBAR_W : 0);
        if (k < which) before += wk;
        autoW += wk;
    }
    double autoH = PANEL_H + (titled ? TITLE_H : 0);
    int W = opts && opts->width ? opts->width : (int)autoW;
    int H = opts && opts->height ? opts->height : (int)autoH;
    FF_TRY(viz_check_opts(fn, opts, W, H));
    L->W = W; L->H = H;
    double u = fmin(W / autoW, H / autoH);
    L->u = u = fmax(0.75, fmin(4, u));        /* text stays >= ~9 px */
    double sx = W / autoW;
    double own = PANEL_W + (has_heat(&panels[which]) ? CBAR_W : 0);
    L->x0 = before * sx; L->w = own * sx;
    L->y0 = titled ? TITLE_H * u : 0; L->h = H - L->y0;
    double cbw = has_heat(&panels[which]) ? CBAR_W * u : 0;
    double top = 30 * u + 24 * u, bottom = 30 * u, side_m = 30 * u;
    double aw = L->w - 2 * side_m - cbw, ah = L->h - top - bottom;
    double s = fmin(aw, ah / SQRT3_2);
    if (s < 8) return ff_errorf(FF_EINVAL, "%s: image %d x %d leaves a %.1f px triangle for panel %d; make it larger",
                                fn, W, H, s, which);
    double cx = L->x0 + side_m + aw / 2, ty = L->y0 + top + (ah - s * SQRT3_2) / 2;
    L->C[0] = cx;         L->C[1] = ty;
    L->A[0] = cx - s / 2; L->A[1] = ty + s * SQRT3_2;
    L->B[0] = cx + s / 2; L->B[1] = ty + s * SQRT3_2;
    L->cb_x = L->x0 + side_m + aw + 10 * u;
    L->cb_w = 14 * u;
    L->cb_y = ty; L->cb_h = s * SQRT3_2;
    return FF_OK;
}

static void to_pixel(const layout *L, const double p[3], double xy[2]) {
    xy[0] = p[0] * L->A[0] + p[1] * L->B[0] + p[2] * L->C[0];
    xy[1] = p[0] * L->A[1] + p[1] * L->B[1] + p[2] * L->C[1];
}

static void to_simplex(const layout *L, double x, double y, double p[3]) {
    /* (x, y) - C = p0 (A - C) + p1 (B - C) */
    double a0 = L->A[0] - L->C[0], a1 = L->A[1] - L->C[1], b0 = L->B[0] - L->C[0], b1 = L->B[1] - L->C[1];
    double dx = x - L->C[0], dy = y - L->C[1], det = a0 * b1 - a1 * b0;
    p[0] = (dx * b1 - dy * b0) / det;
    p[1] = (a0 * dy - a1 * dx) / det;
    p[2] = 1 - p[0] - p[1];
}

ff_status ff_viz_simplex_to_pixel(const ff_viz_panel *panels, int32_t n_panels, const ff_viz_opts *opts,
                                  int32_t panel, const double p[3], double xy[2]) {
    layout L;
    FF_TRY(make_layout("ff_viz_simplex_to_pixel", panels, n_panels, opts, panel, &L));
    if (!p || !xy) return ff_errorf(FF_EINVAL, "ff_viz_simplex_to_pixel: p or xy is NULL");
    to_pixel(&L, p, xy);
    return FF_OK;
}

ff_status ff_viz_pixel_to_simplex(const ff_viz_panel *panels, int32_t n_panels, const ff_viz_opts *opts,
                                  int32_t panel, const double xy[2], double p[3]) {
    layout L;
    FF_TRY(make_layout("ff_viz_pixel_to_simplex", panels, n_panels, opts, panel, &L));
    if (!p || !xy) return ff_errorf(FF_EINVAL, "ff_viz_pixel_to_simplex: p or xy is NULL");
    to_simplex(&L, xy[0], xy[1], p);
    return FF_OK;
}

/* ---- drawing ------------------------------------------------------------------------------- */

typedef struct heat {
    const ff_tensor_t *grid;    /* [res, res] */
    int                res, log;
    double             lo, hi;  /* colour range (log10 values when log) */
} heat;

static double heat_t(const heat *h, double v) {
    if (h->log) {
        if (!(v > 0)) return 0;
        v = log10(v);
    }
    return (v - h->lo) / (h->hi - h->lo);
}

static ff_status prepare_heat(const char *fn, const char *where, const ff_viz_panel *P, const ff_tensor_t *g, heat *h) {
    int res = (int)g->shape[0];
    double mn = INFINITY, mx = -INFINITY, mnpos = INFINITY;
    for (int i = 0; i < res; i++)
        for (int j = 0; j < res; j++) {
            double v = viz_get2(g, i, j);
            if (!isfinite(v))
                return ff_errorf(FF_ENUMERIC, "%s: %sdensity[%d][%d] is %s", fn, where, i, j, isnan(v) ? "NaN" : "infinite");
            if (P->log_scale && v < 0)
                return ff_errorf(FF_EINVAL, "%s: %sdensity[%d][%d] = %g is negative on a log colour scale", fn, where, i, j, v);
            mn = fmin(mn, v); mx = fmax(mx, v);
            if (v > 0) mnpos = fmin(mnpos, v);
        }
    h->grid = g; h->res = res; h->log = P->log_scale != 0;
    if (P->vmin != P->vmax) {
        if (!isfinite(P->vmin) || !isfinite(P->vmax) || P->vmin > P->vmax || (h->log && !(P->vmin > 0)))
            return ff_errorf(FF_EINVAL, "%s: %scolour range vmin %g, vmax %g: need vmin < vmax%s", fn, where,
                             P->vmin, P->vmax, h->log ? " and vmin > 0 on a log scale" : "");
        h->lo = P->vmin; h->hi = P->vmax;
    } else if (h->log) {
        if (!(mx > 0)) return ff_errorf(FF_EINVAL, "%s: %sdensity has no positive value for a log colour scale", fn, where);
        h->hi = mx;
        h->lo = fmax(mnpos, mx * 1e-6);
        if (h->lo >= h->hi) h->lo = h->hi / 10;
    } else {
        h->lo = mn >= 0 ? 0 : mn;
        h->hi = mx;
        if (h->hi <= h->lo) h->hi = h->lo + (h->lo == 0 ? 1 : fabs(h->lo));
    }
    if (h->log) { h->lo = log10(h->lo); h->hi = log10(h->hi); }
    return FF_OK;
}

/* Pixels whose centre lies in the triangle get their cell's colour (no interpolation). */
static void paint_heat(cairo_surface_t *surf, const layout *L, const heat *h) {
    cairo_surface_flush(surf);
    unsigned char *data = cairo_image_surface_get_data(surf);
    int stride = cairo_image_surface_get_stride(surf);
    int x0 = (int)floor(L->A[0]) - 1, x1 = (int)ceil(L->B[0]) + 1;
    int y0 = (int)floor(L->C[1]) - 1, y1 = (int)ceil(L->A[1]) + 1;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > L->W) x1 = L->W;
    if (y1 > L->H) y1 = L->H;
    for (int y = y0; y < y1; y++) {
        uint32_t *row = (uint32_t *)(data + (size_t)y * (size_t)stride);
        for (int x = x0; x < x1; x++) {
            double p[3];
            to_simplex(L, x + 0.5, y + 0.5, p);
            if (p[0] < 0 || p[1] < 0 || p[2] < 0) continue;
            int gi, gj;
            cell_of(h->res, p, &gi, &gj);
            uint8_t c[3];
            ff_viz_viridis(heat_t(h, viz_get2(h->grid, gi, gj)), c);
            row[x] = 0xFF000000u | (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
        }
    }
    cairo_surface_mark_dirty(surf);
}

static void draw_colorbar(cairo_t *cr, const layout *L, const heat *h) {
    double u = L->u;
    int rows = (int)ceil(L->cb_h);
    for (int r = 0; r < rows; r++) {
        uint8_t c[3];
        ff_viz_viridis(1 - (r + 0.5) / rows, c);
        cairo_set_source_rgb(cr, c[0] / 255.0, c[1] / 255.0, c[2] / 255.0);
        cairo_rectangle(cr, L->cb_x, L->cb_y + r * L->cb_h / rows, L->cb_w, L->cb_h / rows + 0.6);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_set_line_width(cr, 0.8 * u);
    cairo_rectangle(cr, L->cb_x, L->cb_y, L->cb_w, L->cb_h);
    cairo_stroke(cr);
    double lo = h->log ? pow(10, h->lo) : h->lo, hi = h->log ? pow(10, h->hi) : h->hi;
    double ticks[32];
    int32_t nt = 0;
    if (ff_viz_ticks(lo, hi, h->log, ticks, 32, &nt) != FF_OK) return;
    double step = nt >= 2 ? (h->log ? ticks[1] / ticks[0] : ticks[1] - ticks[0]) : (h->log ? hi / lo : hi - lo);
    if (h->log && step >= 9.99) {                 /* unlabelled minor ticks at 2..9 x each decade */
        for (int d = (int)floor(h->lo); d <= (int)ceil(h->hi); d++)
            for (int m = 2; m <= 9; m++) {
                double t = (log10(m) + d - h->lo) / (h->hi - h->lo);
                if (t < 0 || t > 1) continue;
                double y = L->cb_y + (1 - t) * L->cb_h;
                cairo_move_to(cr, L->cb_x + L->cb_w, y);
                cairo_line_to(cr, L->cb_x + L->cb_w + 2.5 * u, y);
            }
        cairo_stroke(cr);
    }
    viz_font(cr, 11 * u, 0);
    for (int k = 0; k < nt; k++) {
        double t = h->log ? (log10(ticks[k]) - h->lo) / (h->hi - h->lo) : (ticks[k] - h->lo) / (h->hi - h->lo);
        double y = L->cb_y + (1 - t) * L->cb_h;
        cairo_move_to(cr, L->cb_x + L->cb_w, y);
        cairo_line_to(cr, L->cb_x + L->cb_w + 4 * u, y);
        cairo_stroke(cr);
        char lab[48];
        ff_viz_tick_label(ticks[k], step, h->log, lab, sizeof lab);
        viz_text(cr, lab, L->cb_x + L->cb_w + 6 * u, y, 0, 0.5, 0);
    }
}

static void draw_scatter(cairo_t *cr, const layout *L, const ff_viz_panel *P, const pts *p, int over_heat) {
    double rgb[3];
    if (!viz_parse_color(P->color, rgb)) {
        if (over_heat) { rgb[0] = 1.0; rgb[1] = 0.33; rgb[2] = 0.25; }
        else { rgb[0] = 0.05; rgb[1] = 0.20; rgb[2] = 0.50; }
    }
    double n = (double)p->n;
    double alpha = P->point_alpha > 0 ? fmin(P->point_alpha, 1) : fmax(0.04, fmin(0.85, 12 / sqrt(n)));
    double r = P->point_radius > 0 ? P->point_radius : (n <= 2000 ? 2.2 : n <= 20000 ? 1.6 : 1.2) * L->u;
    /* Dots of one colour composited "over" each other leave a transmittance that is the product of
     * (1 - alpha * coverage) per dot, so we splat into a float buffer: 50x faster than one cairo
     * fill per dot for 100k points, and the same picture. */
    cairo_surface_t *surf = cairo_get_target(cr);
    int bx0 = (int)floor(L->A[0] - r - 2), bx1 = (int)ceil(L->B[0] + r + 2);
    int by0 = (int)floor(L->C[1] - r - 2), by1 = (int)ceil(L->A[1] + r + 2);
    bx0 = bx0 < 0 ? 0 : bx0; by0 = by0 < 0 ? 0 : by0;
    bx1 = bx1 > L->W ? L->W : bx1; by1 = by1 > L->H ? L->H : by1;
    int bw = bx1 - bx0, bh = by1 - by0;
    float *T = bw > 0 && bh > 0 ? malloc(sizeof *T * (size_t)bw * (size_t)bh) : NULL;
    if (!T) {                                    /* no memory for the buffer: draw dot by dot */
        cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], alpha);
        for (int64_t i = 0; i < p->n; i++) {
            double q[3] = { pts_get(p, 0, i, 0), pts_get(p, 0, i, 1), pts_get(p, 0, i, 2) }, xy[2];
            to_pixel(L, q, xy);
            cairo_arc(cr, xy[0], xy[1], r, 0, 2 * M_PI);
            cairo_fill(cr);
        }
        return;
    }
    for (size_t k = 0; k < (size_t)bw * (size_t)bh; k++) T[k] = 1;
    for (int64_t i = 0; i < p->n; i++) {
        double q[3] = { pts_get(p, 0, i, 0), pts_get(p, 0, i, 1), pts_get(p, 0, i, 2) }, xy[2];
        to_pixel(L, q, xy);
        int x0 = (int)floor(xy[0] - r - 1), x1 = (int)ceil(xy[0] + r + 1);
        int y0 = (int)floor(xy[1] - r - 1), y1 = (int)ceil(xy[1] + r + 1);
        for (int y = y0 < by0 ? by0 : y0; y < (y1 > by1 ? by1 : y1); y++)
            for (int x = x0 < bx0 ? bx0 : x0; x < (x1 > bx1 ? bx1 : x1); x++) {
                double c = r + 0.5 - hypot(x + 0.5 - xy[0], y + 0.5 - xy[1]);   /* pixel coverage */
                if (c <= 0) continue;
                T[(size_t)(y - by0) * (size_t)bw + (size_t)(x - bx0)] *= (float)(1 - alpha * (c < 1 ? c : 1));
            }
    }
    cairo_surface_flush(surf);
    unsigned char *data = cairo_image_surface_get_data(surf);
    int stride = cairo_image_surface_get_stride(surf);
    double c255[3] = { rgb[0] * 255, rgb[1] * 255, rgb[2] * 255 };
    for (int y = by0; y < by1; y++) {
        uint32_t *row = (uint32_t *)(data + (size_t)y * (size_t)stride);
        for (int x = bx0; x < bx1; x++) {
            double t = T[(size_t)(y - by0) * (size_t)bw + (size_t)(x - bx0)];
            if (t >= 1) continue;
            uint32_t v = row[x];                /* opaque: the background was painted first */
            double ch[3] = { (v >> 16) & 255, (v >> 8) & 255, v & 255 };
            uint32_t out = 0xFF000000u;
            for (int k = 0; k < 3; k++) out |= (uint32_t)lround(ch[k] * t + c255[k] * (1 - t)) << (16 - 8 * k);
            row[x] = out;
        }
    }
    cairo_surface_mark_dirty(surf);
    free(T);
}

static void draw_trajectories(cairo_t *cr, const layout *L, const pts *p) {
    double u = L->u, n = (double)p->n;
    cairo_set_line_width(cr, 0.9 * u);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_source_rgba(cr, 0.2, 0.2, 0.2, fmax(0.08, fmin(0.7, 5 / sqrt(n))));
    for (int64_t i = 0; i < p->n; i++) {
        for (int64_t t = 0; t < p->T; t++) {
            double q[3] = { pts_get(p, t, i, 0), pts_get(p, t, i, 1), pts_get(p, t, i, 2) }, xy[2];
            to_pixel(L, q, xy);
            if (t == 0) cairo_move_to(cr, xy[0], xy[1]); else cairo_line_to(cr, xy[0], xy[1]);
        }
        cairo_stroke(cr);
    }
    double dot = (n <= 500 ? 2.6 : 1.6) * u, a = fmax(0.25, fmin(0.95, 14 / sqrt(n)));
    for (int end = 0; end < 2; end++) {
        double rgb[3];
        viz_palette(end ? 1 : 0, rgb);
        cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], a);
        int64_t t = end ? p->T - 1 : 0;
        for (int64_t i = 0; i < p->n; i++) {
            double q[3] = { pts_get(p, t, i, 0), pts_get(p, t, i, 1), pts_get(p, t, i, 2) }, xy[2];
            to_pixel(L, q, xy);
            cairo_arc(cr, xy[0], xy[1], dot, 0, 2 * M_PI);
            cairo_fill(cr);
        }
    }
    /* key in the empty top-left corner of the panel */
    viz_font(cr, 11 * u, 0);
    for (int end = 0; end < 2; end++) {
        double rgb[3], x = L->x0 + 14 * u, y = L->C[1] + (8 + 16 * end) * u;
        viz_palette(end ? 1 : 0, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_arc(cr, x, y, 3.5 * u, 0, 2 * M_PI);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        viz_text(cr, end ? "end (t = 1)" : "start (t = 0)", x + 8 * u, y, 0, 0.5, 0);
    }
}

/* Light ternary grid at 0.25, 0.5, 0.75 under scatters and trajectories. */
static void draw_grid(cairo_t *cr, const layout *L) {
    cairo_set_source_rgba(cr, 0, 0, 0, 0.12);
    cairo_set_line_width(cr, 0.8 * L->u);
    for (int k = 0; k < 3; k++)
        for (int g = 1; g < 4; g++) {
            double a[3] = { 0, 0, 0 }, b[3] = { 0, 0, 0 }, xa[2], xb[2];
            a[k] = b[k] = g / 4.0;
            a[(k + 1) % 3] = 1 - g / 4.0;
            b[(k + 2) % 3] = 1 - g / 4.0;
            to_pixel(L, a, xa); to_pixel(L, b, xb);
            cairo_move_to(cr, xa[0], xa[1]); cairo_line_to(cr, xb[0], xb[1]);
            cairo_stroke(cr);
        }
}

static void draw_frame(cairo_t *cr, const layout *L, const ff_viz_panel *P) {
    double u = L->u;
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 1.5 * u);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER);
    cairo_move_to(cr, L->A[0], L->A[1]);
    cairo_line_to(cr, L->B[0], L->B[1]);
    cairo_line_to(cr, L->C[0], L->C[1]);
    cairo_close_path(cr);
    cairo_stroke(cr);
    static const char *defaults[3] = { "e\u2081", "e\u2082", "e\u2083" };
    viz_font(cr, 14 * u, 0);
    const char *l0 = P->labels[0] ? P->labels[0] : defaults[0];
    const char *l1 = P->labels[1] ? P->labels[1] : defaults[1];
    const char *l2 = P->labels[2] ? P->labels[2] : defaults[2];
    viz_text(cr, l0, L->A[0], L->A[1] + 6 * u, 0.5, 0, 0);
    viz_text(cr, l1, L->B[0], L->B[1] + 6 * u, 0.5, 0, 0);
    viz_text(cr, l2, L->C[0], L->C[1] - 6 * u, 0.5, 1, 0);
    if (P->title && P->title[0]) {
        viz_font(cr, 15 * u, 1);
        double y = fmax(L->y0 + 6 * u, L->C[1] - 30 * u - 22 * u);   /* just above the top vertex label */
        viz_text(cr, P->title, L->x0 + L->w / 2, y, 0.5, 0, 0);
    }
}

ff_status ff_viz_simplex(const char *png_path, const ff_viz_panel *panels, int32_t n_panels, const ff_viz_opts *opts) {
    const char *fn = "ff_viz_simplex";
    layout L0;
    FF_TRY(viz_check_path(fn, png_path));
    FF_TRY(make_layout(fn, panels, n_panels, opts, 0, &L0));
    /* Check every panel before drawing anything. */
    ff_tensor_t **hist = calloc((size_t)n_panels, sizeof *hist);
    heat *heats = calloc((size_t)n_panels, sizeof *heats);
    pts *points = calloc((size_t)n_panels, sizeof *points), *trajs = calloc((size_t)n_panels, sizeof *trajs);
    cairo_surface_t *surf = NULL;
    cairo_t *cr = NULL;
    ff_status s = FF_OK;
    if (!hist || !heats || !points || !trajs) { s = ff_errorf(FF_ENOMEM, "%s: out of memory", fn); goto done; }
    for (int k = 0; k < n_panels; k++) {
        const ff_viz_panel *P = &panels[k];
        char where[160];
        snprintf(where, sizeof where, "panel %d (\"%.60s\"): ", k, P->title ? P->title : "");
        static const char *texts[4] = { "title", "labels[0]", "labels[1]", "labels[2]" };
        const char *vals[4] = { P->title, P->labels[0], P->labels[1], P->labels[2] };
        for (int t = 0; t < 4; t++) {
            char what[64];
            snprintf(what, sizeof what, "panel %d %s", k, texts[t]);
            if ((s = viz_check_text(fn, what, vals[t])) != FF_OK) goto done;
        }
        if (!P->points && !P->density && !P->trajectories) {
            s = ff_errorf(FF_EINVAL, "%s: %shas no points, density or trajectories", fn, where);
            goto done;
        }
        if (P->points_style != FF_VIZ_POINTS_SCATTER && P->points_style != FF_VIZ_POINTS_HISTOGRAM) {
            s = ff_errorf(FF_EINVAL, "%s: %spoints_style %d (0 scatter, 1 histogram)", fn, where, (int)P->points_style);
            goto done;
        }
        if (P->density && P->points && P->points_style == FF_VIZ_POINTS_HISTOGRAM) {
            s = ff_errorf(FF_EINVAL, "%s: %sboth density and a points histogram: one heat map per panel", fn, where);
            goto done;
        }
        if (P->point_alpha < 0 || P->point_alpha > 1 || !(P->point_radius >= 0 && P->point_radius < 100)) {
            s = ff_errorf(FF_EINVAL, "%s: %spoint_alpha %g (need 0..1) or point_radius %g (need 0..100)", fn, where,
                          P->point_alpha, P->point_radius);
            goto done;
        }
        double rgb[3];
        if (P->color && !viz_parse_color(P->color, rgb)) {
            s = ff_errorf(FF_EINVAL, "%s: %scolor \"%s\" is not \"#rrggbb\"", fn, where, P->color);
            goto done;
        }
        if (P->points && (s = check_points(fn, where, "points", P->points, 0, &points[k])) != FF_OK) goto done;
        if (P->trajectories && (s = check_points(fn, where, "trajectories", P->trajectories, 1, &trajs[k])) != FF_OK) goto done;
        const ff_tensor_t *g = P->density;
        char dwhat[200];
        snprintf(dwhat, sizeof dwhat, "%sdensity", where);
        if (g && (s = check_grid(fn, dwhat, g)) != FF_OK) goto done;
        if (P->points && P->points_style == FF_VIZ_POINTS_HISTOGRAM) {
            int res = P->hist_res ? P->hist_res : 40;
            if (res < 2 || res > 4096) { s = ff_errorf(FF_EINVAL, "%s: %shist_res %d outside 2..4096", fn, where, res); goto done; }
            if ((s = ff_tensor_new2(&hist[k], res, res)) != FF_OK) goto done;
            if ((s = ff_viz_simplex_histogram(hist[k], P->points)) != FF_OK) goto done;
            g = hist[k];
        }
        if (g && (s = prepare_heat(fn, where, P, g, &heats[k])) != FF_OK) goto done;
    }
    surf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, L0.W, L0.H);
    cr = cairo_create(surf);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        s = ff_errorf(FF_ENOMEM, "%s: cannot create a %d x %d image: %s", fn, L0.W, L0.H, cairo_status_to_string(cairo_status(cr)));
        goto done;
    }
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    for (int k = 0; k < n_panels; k++) {
        const ff_viz_panel *P = &panels[k];
        layout L;
        make_layout(fn, panels, n_panels, opts, k, &L);
        int heat_drawn = heats[k].grid != NULL;
        if (heat_drawn) {
            paint_heat(surf, &L, &heats[k]);
            draw_colorbar(cr, &L, &heats[k]);
        } else draw_grid(cr, &L);
        if (P->points && P->points_style == FF_VIZ_POINTS_SCATTER) draw_scatter(cr, &L, P, &points[k], heat_drawn);
        if (P->trajectories) draw_trajectories(cr, &L, &trajs[k]);
        draw_frame(cr, &L, P);
    }
    if (opts && opts->title && opts->title[0]) {
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        viz_font(cr, 17 * L0.u, 1);
        viz_text(cr, opts->title, L0.W / 2.0, 8 * L0.u, 0.5, 0, 0);
    }
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        s = ff_errorf(FF_EIO, "%s: drawing %s failed: %s", fn, png_path, cairo_status_to_string(cairo_status(cr)));
        goto done;
    }
    s = viz_write_surface(fn, png_path, surf, opts);
done:
    if (cr) cairo_destroy(cr);
    if (surf) cairo_surface_destroy(surf);
    if (hist) for (int k = 0; k < n_panels; k++) ff_tensor_free(hist[k]);
    free(hist); free(heats); free(points); free(trajs);
    return s;
}
