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

/* ---- sample quality on the 2-simplex (the numbers README.md reports) ------------------------- */
/* n points (samples) binned on the triangular grid: counts c [res*res]; p: the target's exact cell
 * masses (ff_data_smiley_masses). With m = res*res cells:
 *   tv  = 1/2 sum_i |c_i/n - p_i|                        (raw histogram)
 *   kl  = KL(p || q~) = sum_{p_i > 0} p_i log(p_i / q~_i), q~_i = (c_i + 1/2) / (n + m/2)
 * i.e. the histogram smoothed by adding half a count to every cell, so a cell the samples miss costs
 * a finite amount and the KL is finite for every model. The noise floor is the same two numbers for
 * n draws of the target itself (what a perfect model reaches with n samples): call this on them. */
typedef struct ff_simplex_metrics {
    double  kl;          /* KL(target || smoothed sample histogram), natural log                */
    double  tv;          /* total variation between the raw sample histogram and the target     */
    int64_t n;           /* points binned                                                       */
    int64_t off;         /* points off the simplex, skipped (ff_simplex_grid_cell's rule)       */
    int64_t outside;     /* cells holding samples where the target has no mass                  */
    int64_t missed;      /* cells with target mass and no sample                                */
} ff_simplex_metrics;

/* points [n, 3] or [n, 1, 3]; masses: res*res contiguous non-negative finite values summing to 1
 * within 1e-3 (renormalised). FF_EINVAL naming the cell otherwise, or if no point is on the simplex. */
ff_status ff_simplex_metrics_compute(const ff_tensor_t *points, const ff_tensor_t *masses, int64_t res,
                                     ff_simplex_metrics *out);

/* ---- held-out negative log-likelihood --------------------------------------------------------- */
/* A model's log-density is -inf at points outside its support; averaging -log q over the other
 * points alone rewards a model for giving up on data (it can "beat" the true density). This NLL is
 * that of the mixture (1 - eps) q + eps u, with u the uniform density of the space: a normalised
 * density, so its expected NLL is never below the data's entropy (Gibbs), and a point outside q's
 * support costs -log(eps u) instead of being dropped:
 *   nll = -1/n sum_i log((1 - eps) exp(log_q_i) + eps u).
 * log_u: log of u (ff_log_uniform_simplex). eps in (0, 1). log_q: n values, each finite or -inf
 * (counted in outside); NaN and +inf are refused naming the point. */
typedef struct ff_nll_stats {
    double  nll;         /* the mixture's mean negative log-density                             */
    int64_t n;           /* points                                                              */
    int64_t outside;     /* points where log_q = -inf (outside the model's support)             */
} ff_nll_stats;
ff_status ff_nll_mixture(const float *log_q, int64_t n, double log_u, double eps, ff_nll_stats *out);
/* log of the uniform density on k positions of the d-simplex w.r.t. Lebesgue measure on the first d
 * coordinates of each (the measure ff_flow_log_prob uses): k log d! (log 2 for the 2-simplex). */
double ff_log_uniform_simplex(int64_t k, int64_t d);

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
