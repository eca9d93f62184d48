/* sphere.h — batched geometry kernels of the positive orthant S^d_+ of the unit sphere (MATH.md
 * §"The sphere map", §"Sphere geometry"). No tape: these are plain kernels, destination first.
 *
 * Every tensor is [.., d+1]: the last axis holds the d+1 symbols of one position, every leading
 * axis is a batch (typically [n, k, d+1]). Tensors must be contiguous; outputs are caller-owned and
 * may alias an input of the same shape (each position is read completely before it is written).
 * Storage is float32; every kernel computes in double. Angles use atan2(|w|, <x,y>) and the
 * sinc / theta-over-sin forms, so theta = 0, theta = pi/2 (orthogonal one-hots), exact zeros and
 * 1e-30 coordinates give finite, accurate results. Points are renormalised in double before use;
 * a point whose norm is off by more than FF_SPHERE_NORM_TOL is refused (FF_EINVAL, naming the
 * function, the flat position index and the norm), as is a non-finite value.
 * Shape errors (FF_ESHAPE) name the function and both shapes.
 */
#ifndef FISHERFLOW_SPHERE_H
#define FISHERFLOW_SPHERE_H

#include "error.h"
#include "tensor.h"

#define FF_SPHERE_NORM_TOL 1e-3   /* accepted | |x| - 1 | of a point on the sphere (float data) */

#define FF_SIMPLEX_SUM_TOL 1e-3   /* accepted | sum p - 1 | of a point on the simplex (float data) */

/* Checks that every position of p [N, ..., d+1] lies on the simplex: every entry finite and >= 0,
 * each position summing to 1 within FF_SIMPLEX_SUM_TOL. One pass, no allocation. Refused with
 * FF_EINVAL naming `what`, the 1-based row (first axis), position (the axes between, flattened;
 * named when there is more than one) and column (symbol) and the value or sum. For data handed to
 * training and likelihoods, which would otherwise renormalise a row silently. */
ff_status ff_simplex_check(const ff_tensor_t *p, const char *what);

/* x = sqrt(p / sum p) per position. p >= 0 (entries down to -1e-6 are read as 0), sum p > 0. */
ff_status ff_sphere_from_simplex(ff_tensor_t *x, const ff_tensor_t *p);
/* p = x*x / |x|^2 per position (sums to 1 exactly up to rounding). x need not be unit. */
ff_status ff_sphere_to_simplex  (ff_tensor_t *p, const ff_tensor_t *x);
/* out = v - <x, v> x per position (x unit). The differentiable version is the tape op in ops.h. */
ff_status ff_sphere_project_into(ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *v);
/* out = exp_x(v) = cos|v| x + sinc|v| v, v tangent at x (its normal part is removed first). */
ff_status ff_sphere_exp  (ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *v);
/* out = log_x(y) = theta w/|w|, w = P_x(y - x), theta = atan2(|w|, <x,y>); 0 when y = x. */
ff_status ff_sphere_log  (ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *y);
/* out [..] (x's shape without the last axis): the angle theta in [0, pi] per position. */
ff_status ff_sphere_dist (ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *y);
/* out [n]: the squared product distance, sum over every axis but the first of theta^2
 * (x, y [n, .., d+1]). The OT cost of MATH.md. */
ff_status ff_sphere_dist2(ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *y);
/* The geodesic interpolant and its velocity (the flow-matching target), t [n] per sample shared
 * by every position: xt = cos(t th) x0 + t sinc(t th) L, ut = cos(t th) L - t th^2 sinc(t th) x0,
 * L = log_x0(x1) (no division by sin th; ut -> x1 - x0 as th -> 0, |ut| = th). Either of xt, ut
 * may be NULL. x0, x1 [n, .., d+1]; t any value (extrapolates outside [0, 1]). */
ff_status ff_sphere_slerp(ff_tensor_t *xt, ff_tensor_t *ut, const ff_tensor_t *x0,
                          const ff_tensor_t *x1, const ff_tensor_t *t);
/* Parallel transport of v (tangent at x) to y along the geodesic:
 * out = v - <y, v>/(1 + <x, y>) (x + y). Antipodal x, y (1 + <x,y> < 1e-12): FF_ENUMERIC. */
ff_status ff_sphere_transport(ff_tensor_t *out, const ff_tensor_t *x, const ff_tensor_t *y,
                              const ff_tensor_t *v);
/* In place, per position: x <- |x| / ||x|| (the orthant fold; any nonzero ambient point is
 * accepted). A zero or non-finite position: FF_ENUMERIC naming it. */
ff_status ff_sphere_retract(ff_tensor_t *x);
/* In place, per position: x <- x / ||x|| without the fold (for integrators that must not fold). */
ff_status ff_sphere_normalize(ff_tensor_t *x);
/* Label smoothing in simplex coordinates: out = (1 - eps) p + eps/d (1 - p), which maps a one-hot
 * e_j to (1 - eps) e_j + eps/d on the other d symbols and keeps sum 1 for any simplex point.
 * eps in [0, 1], d + 1 >= 2. */
ff_status ff_sphere_smooth_labels(ff_tensor_t *out, const ff_tensor_t *p, double eps);

/* Change of measure to the simplex. out [n] per sample: the log of the factor turning a density on
 * S^d_+ (surface measure) into one on the simplex (Lebesgue measure on the first d coordinates of
 * p = x*x), summed over positions: sum_pos ( -d log 2 - sum_i log |x_i| ). +inf where some x_i = 0
 * (the simplex density is infinite there whenever the sphere density is positive). x [n, .., d+1]. */
ff_status ff_sphere_to_simplex_logdet(const ff_tensor_t *x, ff_tensor_t *out);
/* log(|S^d| / 2^{d+1}): the log-area of the orthant S^d_+ (its negative is the per-position
 * log-density of the uniform source). d >= 0. */
double    ff_sphere_orthant_log_area(int64_t d);

#endif
