/* plot.c — line plots: loss curves (many points, optional moving average) and KL-against-K style
 * plots with markers, a legend and log axes. Ticks: ticks.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "viz_internal.h"

static const double AUTO_W = 720, AUTO_H = 480;

typedef struct axis {
    int    log;
    double lo, hi;              /* data limits (not log10) */
    double ticks[64];
    int32_t nt;
    double step;                /* major step, for labels */
} axis;

typedef struct plot_layout {
    int    W, H;
    double u;
    double left, top, pw, ph;   /* the plot area */
    axis   x, y;
} plot_layout;

static double ax_t(const axis *a, double v) {
    return a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : (v - a->lo) / (a->hi - a->lo);
}

static void data_to_px(const plot_layout *L, double x, double y, double xy[2]) {
    xy[0] = L->left + ax_t(&L->x, x) * L->pw;
    xy[1] = L->top + (1 - ax_t(&L->y, y)) * L->ph;
}

static double sx(const ff_viz_series *s, int i) { return s->x ? s->x[i] : (double)i; }

static ff_status check_series(const char *fn, const ff_viz_series *series, int n, const ff_viz_axes *ax) {
    if (!series || n < 1) return ff_errorf(FF_EINVAL, "%s: %d series (need series != NULL and n >= 1)", fn, n);
    if (n > 1000) return ff_errorf(FF_EINVAL, "%s: %d series (at most 1000)", fn, n);
    if (ax) {
        FF_TRY(viz_check_text(fn, "axes.xlabel", ax->xlabel));
        FF_TRY(viz_check_text(fn, "axes.ylabel", ax->ylabel));
        if ((ax->log_x != 0 && ax->log_x != 1) || (ax->log_y != 0 && ax->log_y != 1))
            return ff_errorf(FF_EINVAL, "%s: axes log_x %d / log_y %d must be 0 or 1", fn, (int)ax->log_x, (int)ax->log_y);
        if (ax->legend < FF_VIZ_LEGEND_AUTO || ax->legend > FF_VIZ_LEGEND_NONE)
            return ff_errorf(FF_EINVAL, "%s: axes legend %d outside 0..5", fn, (int)ax->legend);
        const double lim[2][2] = { { ax->xmin, ax->xmax }, { ax->ymin, ax->ymax } };
        for (int k = 0; k < 2; k++) {
            if (lim[k][0] == lim[k][1]) continue;
            int lg = k ? ax->log_y : ax->log_x;
            if (!isfinite(lim[k][0]) || !isfinite(lim[k][1]) || lim[k][0] > lim[k][1] || (lg && !(lim[k][0] > 0)))
                return ff_errorf(FF_EINVAL, "%s: axes %cmin %g, %cmax %g: need min < max%s", fn, "xy"[k], lim[k][0],
                                 "xy"[k], lim[k][1], lg ? ", both > 0 on a log axis" : "");
        }
    }
    for (int k = 0; k < n; k++) {
        const ff_viz_series *s = &series[k];
        const char *lab = s->label ? s->label : "";
        char what[48];
        snprintf(what, sizeof what, "series %d label", k);
        FF_TRY(viz_check_text(fn, what, s->label));
        if (s->n < 1 || !s->y)
            return ff_errorf(FF_EINVAL, "%s: series %d (\"%s\") is empty (n %d, y %s)", fn, k, lab, (int)s->n, s->y ? "set" : "NULL");
        if (s->marker < FF_VIZ_MARKER_NONE || s->marker > FF_VIZ_MARKER_CROSS)
            return ff_errorf(FF_EINVAL, "%s: series %d (\"%s\"): marker %d outside 0..5", fn, k, lab, (int)s->marker);
        if (s->line_style < FF_VIZ_LINE_SOLID || s->line_style > FF_VIZ_LINE_NONE)
            return ff_errorf(FF_EINVAL, "%s: series %d (\"%s\"): line_style %d outside 0..2", fn, k, lab, (int)s->line_style);
        if (s->smooth < 0)
            return ff_errorf(FF_EINVAL, "%s: series %d (\"%s\"): smooth %d is negative", fn, k, lab, (int)s->smooth);
        double rgb[3];
        if (s->color && !viz_parse_color(s->color, rgb))
            return ff_errorf(FF_EINVAL, "%s: series %d (\"%s\"): color \"%s\" is not \"#rrggbb\"", fn, k, lab, s->color);
        for (int i = 0; i < s->n; i++) {
            double v[2] = { sx(s, i), s->y[i] };
            for (int c = 0; c < 2; c++) {
                if (!isfinite(v[c]))
                    return ff_errorf(FF_ENUMERIC, "%s: series %d (\"%s\"): %c[%d] is %s", fn, k, lab, "xy"[c], i,
                                     isnan(v[c]) ? "NaN" : "infinite");
                int lg = ax ? (c ? ax->log_y : ax->log_x) : 0;
                if (lg && !(v[c] > 0))
                    return ff_errorf(FF_EINVAL, "%s: series %d (\"%s\"): %c[%d] = %g is not positive on a log %c axis",
                                     fn, k, lab, "xy"[c], i, v[c], "xy"[c]);
            }
        }
    }
    return FF_OK;
}

/* Data range padded by 4% (in log10 space on log axes), unless the caller fixed it. */
static void axis_range(axis *a, double mn, double mx, double fixlo, double fixhi) {
    if (fixlo != fixhi) { a->lo = fixlo; a->hi = fixhi; return; }
    if (a->log) {
        double l0 = log10(mn), l1 = log10(mx);
        if (l1 - l0 < 1e-9) { l0 -= 0.5; l1 += 0.5; }
        double pad = 0.04 * (l1 - l0);
        a->lo = pow(10, l0 - pad); a->hi = pow(10, l1 + pad);
    } else {
        if (mx - mn < 1e-12 * fmax(1, fabs(mx))) { double d = fmax(fabs(mx) * 0.1, 0.5); mn -= d; mx += d; }
        double pad = 0.04 * (mx - mn);
        a->lo = mn - pad; a->hi = mx + pad;
    }
}

static void axis_ticks(axis *a) {
    if (ff_viz_ticks(a->lo, a->hi, a->log, a->ticks, 64, &a->nt) != FF_OK) a->nt = 0;
    if (a->log) a->step = a->nt >= 2 ? a->ticks[1] / a->ticks[0] : a->hi / a->lo;   /* ratio */
    else a->step = a->nt >= 2 ? a->ticks[1] - a->ticks[0] : a->hi - a->lo;
}

static int has_legend(const ff_viz_series *series, int n, const ff_viz_axes *ax) {
    if (ax && ax->legend == FF_VIZ_LEGEND_NONE) return 0;
    for (int k = 0; k < n; k++) if (series[k].label && series[k].label[0]) return 1;
    return 0;
}

static ff_status make_layout(const char *fn, cairo_t *cr, const ff_viz_series *series, int n, const ff_viz_axes *ax,
                             const ff_viz_opts *opts, plot_layout *L) {
    FF_TRY(check_series(fn, series, n, ax));
    int W = opts && opts->width ? opts->width : (int)AUTO_W;
    int H = opts && opts->height ? opts->height : (int)AUTO_H;
    FF_TRY(viz_check_opts(fn, opts, W, H));
    L->W = W; L->H = H;
    double u = L->u = fmax(0.75, fmin(4, fmin(W / AUTO_W, H / AUTO_H)));   /* text stays >= ~9 px */
    double xmn = INFINITY, xmx = -INFINITY, ymn = INFINITY, ymx = -INFINITY;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < series[k].n; i++) {
            xmn = fmin(xmn, sx(&series[k], i)); xmx = fmax(xmx, sx(&series[k], i));
            ymn = fmin(ymn, series[k].y[i]); ymx = fmax(ymx, series[k].y[i]);
        }
    L->x.log = ax ? ax->log_x : 0;
    L->y.log = ax ? ax->log_y : 0;
    axis_range(&L->x, xmn, xmx, ax ? ax->xmin : 0, ax ? ax->xmax : 0);
    axis_range(&L->y, ymn, ymx, ax ? ax->ymin : 0, ax ? ax->ymax : 0);
    axis_ticks(&L->x);
    axis_ticks(&L->y);
    viz_font(cr, 12 * u, 0);
    double yw = 0, xlast = 0;
    char lab[64];
    for (int k = 0; k < L->y.nt; k++) {
        ff_viz_tick_label(L->y.ticks[k], L->y.step, L->y.log, lab, sizeof lab);
        yw = fmax(yw, viz_text_width(cr, lab));
    }
    if (L->x.nt > 0) {
        ff_viz_tick_label(L->x.ticks[L->x.nt - 1], L->x.step, L->x.log, lab, sizeof lab);
        xlast = viz_text_width(cr, lab);
    }
    int titled = opts && opts->title && opts->title[0];
    L->left = 12 * u + (ax && ax->ylabel && ax->ylabel[0] ? 22 * u : 0) + yw + 8 * u;
    L->top = titled ? 40 * u : 16 * u;
    double right = fmax(22 * u, xlast / 2 + 8 * u);
    double bottom = 12 * u + 18 * u + (ax && ax->xlabel && ax->xlabel[0] ? 24 * u : 0) + 8 * u;
    L->pw = W - L->left - right;
    L->ph = H - L->top - bottom;
    if (L->pw < 16 || L->ph < 16)
        return ff_errorf(FF_EINVAL, "%s: image %d x %d leaves a %.0f x %.0f px plot area; make it larger", fn, W, H, L->pw, L->ph);
    return FF_OK;
}

ff_status ff_viz_lines_to_pixel(const ff_viz_series *series, int32_t n, const ff_viz_axes *axes,
                                const ff_viz_opts *opts, double x, double y, double xy[2]) {
    const char *fn = "ff_viz_lines_to_pixel";
    if (!xy) return ff_errorf(FF_EINVAL, "%s: xy is NULL", fn);
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    cairo_t *cr = cairo_create(surf);
    plot_layout L;
    ff_status s = make_layout(fn, cr, series, n, axes, opts, &L);
    if (s == FF_OK) {
        if ((L.x.log && !(x > 0)) || (L.y.log && !(y > 0)) || !isfinite(x) || !isfinite(y))
            s = ff_errorf(FF_EINVAL, "%s: (%g, %g) cannot be placed on these axes", fn, x, y);
        else data_to_px(&L, x, y, xy);
    }
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return s;
}

static void series_color(const ff_viz_series *s, int k, double rgb[3]) {
    if (!viz_parse_color(s->color, rgb)) viz_palette(k, rgb);
}

static void marker_path(cairo_t *cr, int m, double x, double y, double r) {
    switch (m) {
    case FF_VIZ_MARKER_CIRCLE:   cairo_new_sub_path(cr); cairo_arc(cr, x, y, r, 0, 2 * M_PI); break;
    case FF_VIZ_MARKER_SQUARE:   cairo_rectangle(cr, x - 0.85 * r, y - 0.85 * r, 1.7 * r, 1.7 * r); break;
    case FF_VIZ_MARKER_TRIANGLE:
        cairo_move_to(cr, x, y - 1.2 * r); cairo_line_to(cr, x + 1.05 * r, y + 0.65 * r);
        cairo_line_to(cr, x - 1.05 * r, y + 0.65 * r); cairo_close_path(cr); break;
    case FF_VIZ_MARKER_DIAMOND:
        cairo_move_to(cr, x, y - 1.25 * r); cairo_line_to(cr, x + r, y); cairo_line_to(cr, x, y + 1.25 * r);
        cairo_line_to(cr, x - r, y); cairo_close_path(cr); break;
    case FF_VIZ_MARKER_CROSS:
        cairo_move_to(cr, x - r, y - r); cairo_line_to(cr, x + r, y + r);
        cairo_move_to(cr, x - r, y + r); cairo_line_to(cr, x + r, y - r); break;
    default: break;
    }
}

static void draw_marker(cairo_t *cr, int m, double x, double y, double u, const double rgb[3]) {
    if (m == FF_VIZ_MARKER_NONE) return;
    double r = 4 * u;
    marker_path(cr, m, x, y, r);
    if (m == FF_VIZ_MARKER_CROSS) {
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_line_width(cr, 2 * u);
        cairo_stroke(cr);
        return;
    }
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_set_line_width(cr, 0.8 * u);
    cairo_stroke(cr);
}

static void set_line(cairo_t *cr, int style, double u) {
    double dash[2] = { 6 * u, 4 * u };
    cairo_set_dash(cr, dash, style == FF_VIZ_LINE_DASHED ? 2 : 0, 0);
}

/* Centred moving average of y (in log10 space on a log y axis); out[n]. */
static void smooth_series(const ff_viz_series *s, int logy, double *out) {
    int n = s->n, h = s->smooth / 2;
    double *pre = malloc(sizeof *pre * (size_t)(n + 1));
    if (!pre) { for (int i = 0; i < n; i++) out[i] = s->y[i]; return; }
    pre[0] = 0;
    for (int i = 0; i < n; i++) pre[i + 1] = pre[i] + (logy ? log10(s->y[i]) : s->y[i]);
    for (int i = 0; i < n; i++) {
        int a = i - h < 0 ? 0 : i - h, b = i + h + 1 > n ? n : i + h + 1;
        double m = (pre[b] - pre[a]) / (b - a);
        out[i] = logy ? pow(10, m) : m;
    }
    free(pre);
}

static void polyline(cairo_t *cr, const plot_layout *L, const ff_viz_series *s, const double *y) {
    for (int i = 0; i < s->n; i++) {
        double xy[2];
        data_to_px(L, sx(s, i), y[i], xy);
        if (i == 0) cairo_move_to(cr, xy[0], xy[1]); else cairo_line_to(cr, xy[0], xy[1]);
    }
    cairo_stroke(cr);
}

static void draw_axes(cairo_t *cr, const plot_layout *L, const ff_viz_axes *ax) {
    double u = L->u, x0 = L->left, y0 = L->top, x1 = L->left + L->pw, y1 = L->top + L->ph;
    char lab[64];
    int grid = !(ax && ax->grid);
    cairo_set_line_width(cr, 1 * u);
    for (int pass = 0; pass < 2; pass++) {           /* 0: x axis, 1: y axis */
        const axis *a = pass ? &L->y : &L->x;
        /* minor ticks at 2..9 x decade when majors are consecutive decades */
        if (a->log && a->nt >= 2 && fabs(a->step - 10) < 1e-6) {
            cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            for (int d = (int)floor(log10(a->lo)); d <= (int)ceil(log10(a->hi)); d++)
                for (int m = 2; m <= 9; m++) {
                    double v = m * pow(10, d);
                    if (v < a->lo || v > a->hi) continue;
                    double t = ax_t(a, v);
                    if (pass) { double y = y1 - t * L->ph; cairo_move_to(cr, x0, y); cairo_line_to(cr, x0 - 3 * u, y); }
                    else { double x = x0 + t * L->pw; cairo_move_to(cr, x, y1); cairo_line_to(cr, x, y1 + 3 * u); }
                }
            cairo_stroke(cr);
        }
        viz_font(cr, 12 * u, 0);
        for (int k = 0; k < a->nt; k++) {
            double t = ax_t(a, a->ticks[k]);
            if (t < -1e-9 || t > 1 + 1e-9) continue;
            if (grid) {
                cairo_set_source_rgba(cr, 0, 0, 0, 0.10);
                if (pass) { double y = y1 - t * L->ph; cairo_move_to(cr, x0, y); cairo_line_to(cr, x1, y); }
                else { double x = x0 + t * L->pw; cairo_move_to(cr, x, y0); cairo_line_to(cr, x, y1); }
                cairo_stroke(cr);
            }
            cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
            ff_viz_tick_label(a->ticks[k], a->step, a->log, lab, sizeof lab);
            if (pass) {
                double y = y1 - t * L->ph;
                cairo_move_to(cr, x0, y); cairo_line_to(cr, x0 - 5 * u, y); cairo_stroke(cr);
                viz_text(cr, lab, x0 - 8 * u, y, 1, 0.5, 0);
            } else {
                double x = x0 + t * L->pw;
                cairo_move_to(cr, x, y1); cairo_line_to(cr, x, y1 + 5 * u); cairo_stroke(cr);
                viz_text(cr, lab, x, y1 + 8 * u, 0.5, 0, 0);
            }
        }
    }
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 1.2 * u);
    cairo_rectangle(cr, x0, y0, L->pw, L->ph);
    cairo_stroke(cr);
    viz_font(cr, 13 * u, 0);
    if (ax && ax->xlabel && ax->xlabel[0])
        viz_text(cr, ax->xlabel, x0 + L->pw / 2, L->H - 8 * u, 0.5, 1, 0);
    if (ax && ax->ylabel && ax->ylabel[0])
        viz_text(cr, ax->ylabel, 8 * u, y0 + L->ph / 2, 0.5, 0, M_PI / 2);
}

static void draw_legend(cairo_t *cr, const plot_layout *L, const ff_viz_series *series, int n, const ff_viz_axes *ax) {
    double u = L->u, row = 19 * u, pad = 8 * u, sample = 28 * u, tw = 0;
    int rows = 0;
    viz_font(cr, 12 * u, 0);
    for (int k = 0; k < n; k++)
        if (series[k].label && series[k].label[0]) { rows++; tw = fmax(tw, viz_text_width(cr, series[k].label)); }
    double bw = pad + sample + 6 * u + tw + pad, bh = pad + rows * row + pad - 4 * u, m = 10 * u;
    int where = ax ? ax->legend : FF_VIZ_LEGEND_AUTO;
    if (where == FF_VIZ_LEGEND_AUTO) {                 /* corner covering the fewest data points */
        static const int order[4] = { FF_VIZ_LEGEND_UPPER_RIGHT, FF_VIZ_LEGEND_UPPER_LEFT,
                                      FF_VIZ_LEGEND_LOWER_RIGHT, FF_VIZ_LEGEND_LOWER_LEFT };
        long best = -1;
        for (int c = 0; c < 4; c++) {
            int o = order[c], right = o == FF_VIZ_LEGEND_UPPER_RIGHT || o == FF_VIZ_LEGEND_LOWER_RIGHT;
            int up = o == FF_VIZ_LEGEND_UPPER_RIGHT || o == FF_VIZ_LEGEND_UPPER_LEFT;
            double bx = right ? L->left + L->pw - m - bw : L->left + m, by = up ? L->top + m : L->top + L->ph - m - bh;
            long hits = 0;
            for (int k = 0; k < n; k++)
                for (int i = 0; i < series[k].n; i++) {
                    double xy[2];
                    data_to_px(L, sx(&series[k], i), series[k].y[i], xy);
                    hits += xy[0] >= bx - 4 * u && xy[0] <= bx + bw + 4 * u && xy[1] >= by - 4 * u && xy[1] <= by + bh + 4 * u;
                }
            if (best < 0 || hits < best) { best = hits; where = o; }
        }
    }
    int right = where == FF_VIZ_LEGEND_UPPER_RIGHT || where == FF_VIZ_LEGEND_LOWER_RIGHT;
    int up = where == FF_VIZ_LEGEND_UPPER_RIGHT || where == FF_VIZ_LEGEND_UPPER_LEFT;
    double bx = right ? L->left + L->pw - m - bw : L->left + m, by = up ? L->top + m : L->top + L->ph - m - bh;
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_fill_preserve(cr);
    cairo_set_source_rgba(cr, 0, 0, 0, 0.35);
    cairo_set_line_width(cr, 1 * u);
    cairo_stroke(cr);
    int r = 0;
    for (int k = 0; k < n; k++) {
        const ff_viz_series *s = &series[k];
        if (!s->label || !s->label[0]) continue;
        double rgb[3], y = by + pad + r * row + 6 * u;
        series_color(s, k, rgb);
        if (s->line_style != FF_VIZ_LINE_NONE) {
            set_line(cr, s->line_style, u);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_set_line_width(cr, 2 * u);
            cairo_move_to(cr, bx + pad, y); cairo_line_to(cr, bx + pad + sample, y);
            cairo_stroke(cr);
            set_line(cr, FF_VIZ_LINE_SOLID, u);
        }
        draw_marker(cr, s->marker, bx + pad + sample / 2, y, u, rgb);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        viz_font(cr, 12 * u, 0);
        viz_text(cr, s->label, bx + pad + sample + 6 * u, y, 0, 0.5, 0);
        r++;
    }
}

ff_status ff_viz_lines(const char *png_path, const ff_viz_series *series, int32_t n, const ff_viz_axes *axes,
                       const ff_viz_opts *opts) {
    const char *fn = "ff_viz_lines";
    FF_TRY(viz_check_path(fn, png_path));
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    cairo_t *cr = cairo_create(surf);
    plot_layout L;
    double *sm = NULL;
    ff_status s = make_layout(fn, cr, series, n, axes, opts, &L);
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    cr = NULL;
    surf = NULL;
    if (s != FF_OK) return s;
    surf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, L.W, L.H);
    cr = cairo_create(surf);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        s = ff_errorf(FF_ENOMEM, "%s: cannot create a %d x %d image", fn, L.W, L.H);
        goto done;
    }
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    draw_axes(cr, &L, axes);

    double u = L.u;
    cairo_save(cr);
    cairo_rectangle(cr, L.left, L.top, L.pw, L.ph);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    for (int k = 0; k < n; k++) {
        const ff_viz_series *sr = &series[k];
        double rgb[3];
        series_color(sr, k, rgb);
        if (sr->line_style != FF_VIZ_LINE_NONE) {
            set_line(cr, sr->line_style, u);
            int smooth = sr->smooth > 1 && sr->n > 2;
            cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], smooth ? 0.25 : 1);
            cairo_set_line_width(cr, (smooth ? 1.0 : 1.8) * u);
            polyline(cr, &L, sr, sr->y);
            if (smooth) {
                sm = malloc(sizeof *sm * (size_t)sr->n);
                if (!sm) { s = ff_errorf(FF_ENOMEM, "%s: cannot allocate %d doubles", fn, (int)sr->n); cairo_restore(cr); goto done; }
                smooth_series(sr, L.y.log, sm);
                cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
                cairo_set_line_width(cr, 2 * u);
                polyline(cr, &L, sr, sm);
                free(sm);
                sm = NULL;
            }
            set_line(cr, FF_VIZ_LINE_SOLID, u);
        }
        if (sr->marker != FF_VIZ_MARKER_NONE)
            for (int i = 0; i < sr->n; i++) {
                double xy[2];
                data_to_px(&L, sx(sr, i), sr->y[i], xy);
                draw_marker(cr, sr->marker, xy[0], xy[1], u, rgb);
            }
    }
    cairo_restore(cr);
    if (has_legend(series, n, axes)) draw_legend(cr, &L, series, n, axes);
    if (opts && opts->title && opts->title[0]) {
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        viz_font(cr, 16 * u, 1);
        viz_text(cr, opts->title, L.left + L.pw / 2, 10 * u, 0.5, 0, 0);
    }
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        s = ff_errorf(FF_EIO, "%s: drawing %s failed: %s", fn, png_path, cairo_status_to_string(cairo_status(cr)));
        goto done;
    }
    s = viz_write_surface(fn, png_path, surf, opts);
done:
    free(sm);
    if (cr) cairo_destroy(cr);
    if (surf) cairo_surface_destroy(surf);
    return s;
}
