/* likelihood.h — log-density change of a continuous normalising flow on (S^d_+)^k (MATH.md
 * §Likelihood: the formulas, and why the backward pass does not fold into the orthant).
 *
 * ff_likelihood_delta integrates the state and -div f backwards from data x1 at t = 1 to t = 0 with
 * classical RK4 (`steps` equal steps; the field is evaluated at the raw stage points, projections
 * use the normalised points), div f = tr(P_x J_f P_x) the Riemannian divergence. Each position is
 * renormalised after every step, never folded: x0_out may leave the orthant, which means density 0
 * under an orthant source. Densities on the simplex need ff_sphere_to_simplex_logdet and the
 * source's log-density (sphere.h).
 *
 * Divergence estimators: "exact" = one vector-Jacobian product per ambient coordinate (k (d+1) of
 * them, all n samples at once); "hutchinson" = `probes` Rademacher vectors z projected to the
 * tangent space, E[(P z)^T J (P z)] = tr(P J P); "auto" = exact when k (d+1) <= 64, else hutchinson.
 * Tape side effects: the tape is reset before every field evaluation and on return (hold no
 * temporaries on it across the call), grad mode is switched on and left on, training mode is off during the call
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
#include "sphere.h"

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
 * [n, k, d+1], or [n, d+1] read as k = 1; contiguous) at t = 1. x0_out (optional, x1's shape)
 * receives x0. rng: needed by "hutchinson" (may be NULL for "exact"). o NULL = defaults.
 * FF_EINVAL for a position of x1 whose norm is off 1 by more than FF_SPHERE_NORM_TOL (sphere.h),
 * FF_ENUMERIC naming t for a non-finite field value or divergence. */
ff_status ff_likelihood_delta(ff_tape_field_fn f, void *ctx, ff_tape_t *tp, const ff_tensor_t *x1,
                              const ff_likelihood_opts *o, ff_rng_t *rng, ff_tensor_t *delta, ff_tensor_t *x0_out);

#endif
