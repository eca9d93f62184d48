/* data.h — the paper's synthetic data sets (docs/PAPER_PROTOCOLS.md §2-§3), drawn from a caller's ff_rng_t so one
 * seed reproduces them.
 *
 * Smiley (§3): points on the 2-simplex over the triangle A=(0,0), B=(1,0), C=(1/2, sqrt(3)/2),
 * returned as barycentric (p_A, p_B, p_C). Eyes: centres (0.40, 0.45) and (0.60, 0.45), radius
 * ~ U(0, 0.05), angle ~ U(0, 2pi). Mouth: centre (0.5, 0.30), radius 0.2 + U(-0.03, 0.03), angle
 * ~ U(1.25pi, 1.75pi) (the reference spaces mouth angles evenly; a random sampler draws them
 * uniformly). n/3 (floor) points in each eye, in that order, the rest in the mouth.
 * Exact target: in polar coordinates around its centre each component is UNIFORM on a rectangle
 * (r, angle), so the mass of a grid cell (metrics.h) is the area fraction of that rectangle mapped
 * into the cell. It is integrated by the midpoint rule on an m x m split of each rectangle; the
 * sub-rectangles whose corners and centre do not all fall in one cell bound the error: the total
 * variation between computed and exact masses is at most their mass (returned as err_tv).
 * Component weights are 1/3 each (the n -> infinity limit of n/3, n/3, n - 2n/3).
 */
#ifndef FISHERFLOW_DATA_H
#define FISHERFLOW_DATA_H

#include <stdint.h>
#include "error.h"
#include "tensor.h"
#include "rng.h"

/* out [n, 1, 3] (caller-allocated, contiguous): smiley points, p_A, p_B, p_C > 0 summing to 1. */
ff_status ff_data_smiley(ff_rng_t *rng, int64_t n, ff_tensor_t *out);
/* masses [res*res] (caller-allocated, any shape, e.g. [res, res]; the grid of metrics.h = viz.h):
 * exact cell masses of the smiley target
 * up to err_tv (may be NULL), by the midpoint rule with m x m sub-rectangles per component (m >= 16;
 * 2048 gives err_tv ~ 1e-3 at res 64 in about a second). */
ff_status ff_data_smiley_masses(int64_t res, int64_t m, ff_tensor_t *masses, double *err_tv);
/* density [res, res]: mass / cell area, a density w.r.t. Lebesgue measure on (p_A, p_B) (the
 * simplex has area 1/2 there, so a uniform density is 2): viz.h's "target" density panel as is. */
ff_status ff_data_smiley_density(int64_t res, int64_t m, ff_tensor_t *density, double *err_tv);

/* Toy (Δ^{K-1})^k task (§2): probs_out [k, K] (caller-allocated, contiguous): per position,
 * softmax over K of U[0, 1) draws (row-major draw order). */
ff_status ff_data_toy_categorical(ff_rng_t *rng, int64_t k, int64_t K, ff_tensor_t *probs_out);
/* out [n, k, K] one-hot (caller-allocated, contiguous): each position drawn independently from its
 * row of probs [k, K] by inverse CDF on one U[0,1) each (rows renormalised; a negative or
 * non-finite entry or a zero row: FF_EINVAL naming it). */
ff_status ff_data_sample_categorical(ff_rng_t *rng, const ff_tensor_t *probs, int64_t n, ff_tensor_t *out);

#endif
