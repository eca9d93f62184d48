/* metrics.h — the paper's evaluation numbers: per-position histograms of decoded tokens and
 * KL(model || true) averaged over positions (docs/PAPER_PROTOCOLS.md §2), and histograms of 2-simplex points on a
 * triangular grid with KL and total variation against target cell masses (the smiley, §3).
 *
 * The triangular grid is viz.h's (so a mass or density grid from here is a viz density panel as is):
 * split every edge into res parts, giving res*res equal-area cells, each one entry of a [res, res]
 * grid, flat index i*res + j. For p = (p0, p1, p2) let u = res*p0, v = res*p1, w = res*p2 and take
 * their floors (clamped to [0, res-1]); if they sum to res-1 the point is in the upright cell (i, j)
 * = (floor u, floor v), corners (u, v) = (i, j), (i+1, j), (i, j+1); if they sum to res-2 it is in
 * the inverted cell with corners (a+1, b), (a, b+1), (a+1, b+1) for (a, b) = (floor u, floor v),
 * stored at (i, j) = (res-1-a, res-1-b) (so i + j >= res). A lattice point (floors summing higher)
 * goes to an upright cell by lowering the largest floor (w first, then u, then v), as viz does.
 *
 * KL conventions: 0 log 0 = 0; q > 0 where p = 0 makes KL +infinity (counted in `unsupported`, not
 * an error); empty model bins (q = 0) are counted and reported.
 */
#ifndef FISHERFLOW_METRICS_H
#define FISHERFLOW_METRICS_H

#include <stdint.h>
#include "error.h"
#include "tensor.h"

/* ---- the triangular grid ------------------------------------------------------------------- */
static inline int64_t ff_simplex_grid_count(int64_t res) { return res * res; }
/* Cell of a barycentric point, or -1 if it is not on the simplex (non-finite, a component below
 * -1e-5, or a sum outside [0.999, 1.001]); small negatives are clamped and p renormalised. res >= 1. */
int64_t ff_simplex_grid_cell  (double pa, double pb, double pc, int64_t res);
/* Barycentric centroid of a cell (p[3] out). Returns 0, or -1 for a cell outside [0, res*res). */
int     ff_simplex_grid_centre(int64_t cell, int64_t res, double p[3]);
/* Grid entry (i, j) of a cell and whether it is inverted (1) or upright (0); -1 if out of range. */
int     ff_simplex_grid_coords(int64_t cell, int64_t res, int64_t *i, int64_t *j, int *down);

/* Normalised histogram of points [n, 3] or [n, 1, 3] (simplex coordinates) into hist [res*res]
 * (caller-allocated, contiguous). Points off the simplex are skipped and counted in *off (may be
 * NULL); the histogram is over the points kept. FF_EINVAL if none is kept. */
ff_status ff_simplex_hist(const ff_tensor_t *points, int64_t res, ff_tensor_t *hist, int64_t *off);

/* ---- divergences --------------------------------------------------------------------------- */
typedef struct ff_divergence {
    double  kl;            /* KL(q || p) = sum q log(q/p), natural log; +inf if unsupported > 0 */
    double  tv;            /* total variation 1/2 sum |q - p|                                   */
    int64_t empty;         /* bins with q = 0 (contribute 0 to KL)                              */
    int64_t unsupported;   /* bins with q > 0 and p = 0                                         */
} ff_divergence;

/* q (model), p (target): n non-negative numbers each, every one finite, each summing to 1 within
 * 1e-3 (they are renormalised). FF_EINVAL naming the bin otherwise. */
ff_status ff_divergence_compute(const float *q, const float *p, int64_t n, ff_divergence *out);

/* ---- categorical sequences (toy task) ------------------------------------------------------ */
/* Per-position normalised histograms of decoded tokens. tokens: [n, k] integer ids in [0, K)
 * stored as floats, or [n, k, K] one-hot/probability rows (argmax taken). hist [k, K] out,
 * caller-allocated. FF_EINVAL naming the sample and position of an id outside [0, K). */
ff_status ff_categorical_hist(const ff_tensor_t *tokens, int64_t K, ff_tensor_t *hist);
/* KL(model || true) per position (q_hist vs p_true, both [k, K]), averaged over positions into
 * *kl_mean; per_pos: NULL or k entries; *empty_bins: total q = 0 bins over positions (may be NULL). */
ff_status ff_kl_categorical(const ff_tensor_t *q_hist, const ff_tensor_t *p_true, double *kl_mean,
                            ff_divergence *per_pos, int64_t *empty_bins);

#endif
