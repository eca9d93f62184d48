/* viz.h — PNG pictures: ternary (2-simplex) heat maps, scatters and flow trajectories; line plots
 * (loss curves, KL against K). libfisherflow_viz depends on libfisherflow, cairo and libpng only.
 *
 * Every drawing function renders the whole figure in memory, then writes it atomically: a
 * temporary file in the destination's directory, fsync, rename. On any failure the temporary is
 * removed and an existing destination is left as it was; a truncated PNG never appears. Each PNG
 * carries tEXt chunks: "Software" = "fisherflow <ff_version()>" plus the caller's key/value pairs
 * (ASCII values go to tEXt, values with UTF-8 bytes to iTXt).
 *
 * Structs are plain C (no unions, bitfields or function pointers) so the Lua layer can fill them
 * through the FFI; a zero-filled struct is a valid "all defaults" value everywhere.
 *
 * Simplex grid convention (a density [res, res] on the 2-simplex): the core's triangular grid
 * (metrics.h, ff_simplex_grid_cell / ff_simplex_grid_centre compute it; entry [i][j] is cell
 * i*res + j there). Subdivide every edge into res
 * parts: the triangle splits into res*res small triangles, exactly one per grid entry. For a point
 * p = (p0, p1, p2), let u = res*p0, v = res*p1, i = floor(u), j = floor(v):
 *   - if frac(u) + frac(v) <  1: the upright cell  (i, j), stored at [i][j]             (i + j <  res),
 *     centre p = ((i + 1/3)/res, (j + 1/3)/res, 1 - p0 - p1);
 *   - otherwise:                the inverted cell (i, j), stored at [res-1-i][res-1-j] (index sum >= res),
 *     centre p = ((i + 2/3)/res, (j + 2/3)/res, 1 - p0 - p1).
 * Every entry of the [res, res] grid is a cell; ff_viz_simplex_grid_points gives every centre, so a
 * caller evaluates its density there and passes the grid back. All cells have the same area.
 * Densities are per unit area of the (p0, p1) chart: the uniform density on the simplex is 2.
 *
 * Pixel convention: pixel (x, y) covers [x, x+1) x [y, y+1), its centre is (x+0.5, y+0.5), y grows
 * downwards. Vertex 0 is bottom left, vertex 1 bottom right, vertex 2 on top.
 */
#ifndef FISHERFLOW_VIZ_H
#define FISHERFLOW_VIZ_H

#include <stddef.h>
#include <stdint.h>
#include "fisherflow/error.h"
#include "fisherflow/tensor.h"

/* ---- options common to every figure ------------------------------------------------------- */
typedef struct ff_viz_opts {
    int32_t             width;        /* image size in pixels; 0 = automatic (see each function) */
    int32_t             height;       /* 16..16384 otherwise                                     */
    const char         *title;        /* figure title above everything, or NULL                  */
    int32_t             n_meta;       /* number of caller metadata pairs                         */
    const char *const  *meta_keys;    /* [n_meta] PNG keywords: 1-79 printable Latin-1, no "Software" */
    const char *const  *meta_values;  /* [n_meta] values (UTF-8), e.g. script, args JSON, seed  */
} ff_viz_opts;

/* ---- ternary pictures ---------------------------------------------------------------------- */
typedef enum ff_viz_points_style {
    FF_VIZ_POINTS_SCATTER   = 0,      /* alpha-blended dots                                      */
    FF_VIZ_POINTS_HISTOGRAM = 1,      /* a heat map of counts on the simplex grid (hist_res)     */
} ff_viz_points_style;

typedef struct ff_viz_panel {
    const char        *title;         /* drawn above the triangle, or NULL                       */
    const ff_tensor_t *points;        /* [n, 3] or [n, 1, 3] on the simplex, or NULL             */
    const ff_tensor_t *density;       /* [res, res] grid (convention above), res >= 2, or NULL   */
    const ff_tensor_t *trajectories;  /* [T, n, 3] or [T, n, 1, 3] paths, t = 0 first, or NULL   */
    int32_t            points_style;  /* ff_viz_points_style                                     */
    int32_t            hist_res;      /* histogram grid resolution; 0 = 40                       */
    int32_t            log_scale;     /* heat map colours: 0 linear, 1 log10 (values <= 0 -> lowest colour) */
    float              vmin, vmax;    /* colour range; vmin == vmax (e.g. both 0) = automatic:
                                         linear [0 (or the min if negative), max]; log
                                         [smallest positive value, max], at most 6 decades   */
    float              point_alpha;   /* scatter opacity in (0, 1]; 0 = chosen from n            */
    float              point_radius;  /* scatter dot radius in pixels; 0 = automatic             */
    const char        *color;         /* scatter colour "#rrggbb"; NULL = automatic              */
    const char        *labels[3];     /* vertex labels (UTF-8); NULL = e1, e2, e3 (subscripted)  */
} ff_viz_panel;

/* Writes n_panels side-by-side panels into one PNG. A panel shows at most one heat map (density,
 * or points as a histogram) with its colour bar, then points as a scatter, then trajectories
 * (grey polylines, start dots blue, end dots vermillion). Automatic size: 440 px per panel (+76 with a
 * colour bar) x 470 px (+34 with a title); a given width is shared in the same proportions, and
 * text scales with the image. FF_EINVAL/FF_ESHAPE/FF_ENUMERIC name the panel and the
 * offending value (a NaN names its index); FF_EIO names the path. */
ff_status ff_viz_simplex(const char *png_path, const ff_viz_panel *panels, int32_t n_panels,
                         const ff_viz_opts *opts);

/* The barycentric point p of panel `panel` <-> its pixel position xy (same layout as
 * ff_viz_simplex with the same arguments). pixel_to_simplex returns coordinates summing to 1 that
 * are negative outside the triangle. */
ff_status ff_viz_simplex_to_pixel(const ff_viz_panel *panels, int32_t n_panels, const ff_viz_opts *opts,
                                  int32_t panel, const double p[3], double xy[2]);
ff_status ff_viz_pixel_to_simplex(const ff_viz_panel *panels, int32_t n_panels, const ff_viz_opts *opts,
                                  int32_t panel, const double xy[2], double p[3]);

/* Centres of every grid cell: out is caller-allocated, contiguous, 3*res*res floats with last
 * dimension 3 ([res, res, 3], [res*res, 3] or [res*res, 1, 3]); row k = i*res + j is cell [i][j]. */
ff_status ff_viz_simplex_grid_points(int32_t res, ff_tensor_t *out);
/* The grid entry [*i][*j] whose cell contains p: negative coordinates are read as 0 and p is divided
 * by its sum, so any finite p with a positive entry is accepted. FF_EINVAL for res < 2, a NULL
 * argument, a non-finite p, or no positive entry. */
ff_status ff_viz_simplex_cell(int32_t res, const double p[3], int32_t *i, int32_t *j);
/* Fills grid [res, res] with fn(centre of each cell, ctx): a density given as a C function. An fn
 * result that is not finite gives FF_ENUMERIC naming the cell. */
ff_status ff_viz_simplex_grid_fill(ff_tensor_t *grid, double (*fn)(const double p[3], void *ctx), void *ctx);
/* Histogram of points ([n, 3] or [n, 1, 3]) into grid [res, res] as a density (2 res^2 count / n). */
ff_status ff_viz_simplex_histogram(ff_tensor_t *grid, const ff_tensor_t *points);

/* ---- line plots -------------------------------------------------------------------------- */
typedef enum ff_viz_marker {
    FF_VIZ_MARKER_NONE     = 0,
    FF_VIZ_MARKER_CIRCLE   = 1,
    FF_VIZ_MARKER_SQUARE   = 2,
    FF_VIZ_MARKER_TRIANGLE = 3,
    FF_VIZ_MARKER_DIAMOND  = 4,
    FF_VIZ_MARKER_CROSS    = 5,
} ff_viz_marker;

typedef enum ff_viz_line_style {
    FF_VIZ_LINE_SOLID  = 0,
    FF_VIZ_LINE_DASHED = 1,
    FF_VIZ_LINE_NONE   = 2,           /* markers only                                            */
} ff_viz_line_style;

typedef struct ff_viz_series {
    const char   *label;              /* legend entry; NULL or "" = not in the legend            */
    const double *x;                  /* [n] or NULL (= 0, 1, ..., n-1)                          */
    const double *y;                  /* [n], finite                                             */
    int32_t       n;                  /* >= 1                                                    */
    int32_t       marker;             /* ff_viz_marker                                           */
    int32_t       line_style;         /* ff_viz_line_style                                       */
    int32_t       smooth;             /* > 1: also draw a centred moving average of this window,
                                         the raw curve then fades                                */
    const char   *color;              /* "#rrggbb"; NULL = colour-blind-safe palette by index    */
} ff_viz_series;

typedef enum ff_viz_legend {
    FF_VIZ_LEGEND_AUTO        = 0,    /* the corner covering the fewest data points              */
    FF_VIZ_LEGEND_UPPER_RIGHT = 1,
    FF_VIZ_LEGEND_UPPER_LEFT  = 2,
    FF_VIZ_LEGEND_LOWER_LEFT  = 3,
    FF_VIZ_LEGEND_LOWER_RIGHT = 4,
    FF_VIZ_LEGEND_NONE        = 5,
} ff_viz_legend;

typedef struct ff_viz_axes {
    const char *xlabel, *ylabel;      /* or NULL                                                 */
    int32_t     log_x, log_y;         /* 1 = log10 axis (data must be > 0)                       */
    double      xmin, xmax;           /* xmin == xmax = from the data (padded)                   */
    double      ymin, ymax;           /* likewise                                                */
    int32_t     legend;               /* ff_viz_legend                                           */
    int32_t     grid;                 /* 0 = light grid lines at major ticks, 1 = none           */
} ff_viz_axes;

/* Writes n series into one plot (axes may be NULL: linear, no labels). Automatic size 720 x 480.
 * Ticks follow the 1-2-5 rule; log axes put labels on decades (10^k as 10 with a superscript)
 * with unlabelled minor ticks at 2..9. */
ff_status ff_viz_lines(const char *png_path, const ff_viz_series *series, int32_t n,
                       const ff_viz_axes *axes, const ff_viz_opts *opts);
/* Data point (x, y) -> pixel of the plot ff_viz_lines would draw with the same arguments. */
ff_status ff_viz_lines_to_pixel(const ff_viz_series *series, int32_t n, const ff_viz_axes *axes,
                                const ff_viz_opts *opts, double x, double y, double xy[2]);

/* ---- building blocks (exposed for tests and for callers drawing their own legends) --------- */
/* viridis at t in [0, 1] (clamped; NaN -> 0) as 8-bit sRGB. */
void      ff_viz_viridis(double t, uint8_t rgb[3]);
/* Tick positions covering [lo, hi] (lo < hi): 1-2-5 steps, or decades (log; lo > 0) with 1-2-5 or
 * 1..9 mantissas when the range spans under two decades. Writes at most max ticks, sets *n.
 * FF_EINVAL for an empty or non-finite range. */
ff_status ff_viz_ticks(double lo, double hi, int32_t log_scale, double *ticks, int32_t max, int32_t *n);
/* Label of tick v into buf (UTF-8, always terminated). step: the difference between ticks on a
 * linear axis (sets the decimals: 0.2 -> "0.4"), their ratio on a log axis (>= 10: decade ticks,
 * written "10" + superscript exponent; otherwise plain numbers). */
void      ff_viz_tick_label(double v, double step, int32_t log_scale, char *buf, size_t size);

#endif
