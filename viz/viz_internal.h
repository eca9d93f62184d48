/* viz_internal.h — private helpers shared by the files of libfisherflow_viz (not installed). */
#ifndef FF_VIZ_INTERNAL_H
#define FF_VIZ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <cairo.h>
#include "fisherflow/viz.h"

/* png.c: checks opts (size range, metadata keys/values) before any drawing. w/h: the size the
 * figure will have (after defaults). */
ff_status viz_check_opts(const char *fn, const ff_viz_opts *opts, int w, int h);
ff_status viz_check_path(const char *fn, const char *path);
ff_status viz_check_text(const char *fn, const char *what, const char *s);   /* NULL ok; UTF-8 */
/* Writes an ARGB32 cairo image surface as an 8-bit RGB PNG (composited over white) with metadata,
 * atomically (temp file in the same directory, fsync, rename). */
ff_status viz_write_surface(const char *fn, const char *path, cairo_surface_t *surf, const ff_viz_opts *opts);

/* colormap.c */
int       viz_parse_color(const char *s, double rgb[3]);      /* "#rrggbb" -> 0..1; 0 on error */
void      viz_palette(int i, double rgb[3]);                  /* Okabe-Ito, by series index      */

/* text.c: DejaVu Sans through cairo's toy font API. ax, ay: anchor in [0, 1] (0 = left/top,
 * 0.5 = centre, 1 = right/bottom) of the text's logical box; angle in radians (counter-clockwise
 * as seen on screen for positive values is -angle in cairo). */
void      viz_font(cairo_t *cr, double size, int bold);
double    viz_text_width(cairo_t *cr, const char *s);
void      viz_text(cairo_t *cr, const char *s, double x, double y, double ax, double ay, double angle);



/* Tensor element helpers that respect strides. */
static inline float viz_get2(const ff_tensor_t *t, int64_t i, int64_t j) {
    return t->data[i * t->stride[0] + j * t->stride[1]];
}

#endif
