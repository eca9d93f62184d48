/* likelihood.h — log-densities of a continuous normalising flow on (S^d_+)^k (MATH.md §Likelihood).
 *
 * A flow's field f(x, t) is tangent at every x. Its density obeys d/dt log p_t(x_t) = -div f(x_t, t),
 * with the Riemannian divergence div f = tr(P_x J_f P_x) (J_f the ambient Jacobian, P_x the tangent
 * projection per position). ff_likelihood_delta integrates the state and the divergence BACKWARDS
 * from data x1 at t = 1 to t = 0 with classical RK4 (`steps` equal steps; the field is evaluated
 * at the raw RK4 stage points, the projections use the normalised points) and renormalises each
 * position after every step. There is deliberately NO orthant fold (x <- |x|) here, although the
 * sampler folds after every step: a point x1 whose backward trajectory leaves S^d_+ lies outside
 * the image of the source's support, so under an orthant source its density is exactly 0 (log -inf),
 * and x0_out (outside the orthant) lets the caller see that. Why the sampler does not contradict it:
 * a backward path leaves through a face x_i = 0 where the FORWARD field points into the orthant
 * (f_i > 0), and the sampler never folds there; it folds only where the forward field points out,
 * which parks the mass reaching that face in a layer of width O(h) (a singular part with no density
 * as h -> 0). A fold in the backward pass is a local isometry (no log-det term) but not a global
 * inverse: where the backward field points out it maps a whole layer onto a thinner one, so
 * p0(x0) exp(-int div) would count source mass several times (tests/c/test_likelihood.c: the
 * plane rotation; measured: the 2-simplex integral of such a "density" is 4.6 for the conformal
 * test field and 5.4 for a smiley model whose unfolded density integrates to 1.000).
 *
 * Divergence estimators: "exact" = one vector-Jacobian product per ambient coordinate (k (d+1) of
 * them, each seeded with the same one-hot for every sample, all n at once); "hutchinson" =
 * `probes` Rademacher vectors z projected to the tangent space, E[(P z)^T J (P z)] = tr(P J P);
 * "auto" = exact when k (d+1) <= 64, else hutchinson.
 * Tape side effects: the tape is reset before every field evaluation (hold no temporaries on it
 * across the call), grad mode is switched on and left on, training mode is off during the call
 * and restored after, and the reverse passes ACCUMULATE into the gradients of any parameter the
 * field uses: zero them before the next training step.
 */
#ifndef FISHERFLOW_LIKELIHOOD_H
#define FISHERFLOW_LIKELIHOOD_H

#include <stdint.h>
#include "error.h"
#include "tensor.h"
#include "tape.h"
#include "rng.h"

/* A differentiable tangent field built from tape ops: y a leaf [n, k, d+1] (needs grad), t [n]
 * (an arena constant). Returns an arena tensor of y's shape, or NULL with the tape failed. */
typedef ff_tensor_t *(*ff_tape_field_fn)(void *ctx, ff_tape_t *tp, ff_tensor_t *y, ff_tensor_t *t);

typedef struct ff_likelihood_opts {
    int         steps;       /* RK4 steps over [0, 1], >= 1                      */
    const char *estimator;   /* "exact" | "hutchinson" | "auto"                  */
    int         probes;      /* Rademacher probes per field evaluation, >= 1     */
} ff_likelihood_opts;

ff_likelihood_opts ff_likelihood_default_opts(void);   /* {100, "auto", 1} */

/* delta[n] = log p1(x1) - log p0(x0) = -int_0^1 div f(x_t, t) dt for data x1 (sphere coordinates
 * [n, k, d+1], or [n, d+1] read as k = 1) at t = 1. x0_out (optional, x1's shape) receives x0.
 * rng: needed by "hutchinson" (may be NULL for "exact"). o NULL = defaults. */
ff_status ff_likelihood_delta(ff_tape_field_fn f, void *ctx, ff_tape_t *tp, const ff_tensor_t *x1,
                              const ff_likelihood_opts *o, ff_rng_t *rng, ff_tensor_t *delta, ff_tensor_t *x0_out);

/* out[n] per sample: log of the factor turning a density on S^d_+ (surface measure) into one on the
 * simplex (Lebesgue measure on the first d coordinates of p = x*x), summed over positions:
 * sum_pos ( -d log 2 - sum_i log x_i ). +inf where some x_i = 0 (the simplex density is infinite
 * there whenever the sphere density is positive). x [n, .., d+1] with |x| = 1 per position. */
ff_status ff_sphere_to_simplex_logdet(const ff_tensor_t *x, ff_tensor_t *out);

/* log(|S^d| / 2^{d+1}): the log-area of the orthant S^d_+ (its negative is the per-position
 * log-density of the uniform source). d >= 0. */
double    ff_sphere_orthant_log_area(int64_t d);

#endif
