/* ode.h — integrating a flow's vector field: the paper's Riemannian Euler sampler, and GSL's gsl_odeiv2
 * steppers in ambient coordinates with the geometry's retraction after every accepted step (MATH.md
 * §Sampling; docs/DESIGN.md, "Sampling").
 *
 * The field is a C callback called ONCE per stage for the whole batch (no per-element calls). The
 * state is a float tensor y [n, .., d+1] in the geometry's data coordinates (sphere: x = sqrt(p)),
 * integrated in place from t0 to t1 (t1 < t0 integrates backwards).
 *   "euler":  y <- g->step(y, v(y, t_i), h) with t_i = t0 + i (t1 - t0)/steps (the paper's sampler:
 *             for the sphere, x <- fold(exp_x(h v))). Always fixed-step.
 *   "rk2", "rk4", "rkf45", "rkck", "rk8pd", "msadams": GSL steppers on the whole batch as one double
 *             system. eps_abs == 0: `steps` evenly spaced steps; eps_abs > 0: adaptive with
 *             gsl_odeiv2_control_y_new(eps_abs, eps_rel), initial step h0 (0: (t1 - t0)/steps), our
 *             own gsl_odeiv2_evolve_apply loop so that every accepted step is followed by g->retract.
 *             "msadams" is adaptive only (fixed steps starve its order/step control: refused).
 *             The field sees float32 points (the double state rounded), so accuracy stops near 1e-7.
 *             Measured orders (tests/c/test_ode.c): euler 1, rk2 3 (GSL propagates its 3rd-order
 *             solution), rk4 4, rkf45 5, rkck 5, rk8pd >= 7 (then the float floor).
 * Failures: a field status is passed on (its message prefixed with the stepper and t); a non-finite
 * field value gives FF_ENUMERIC naming t and the element; GSL codes give FF_ENUMERIC with
 * gsl_strerror. Nothing aborts. On failure y holds the last accepted state.
 */
#ifndef FISHERFLOW_ODE_H
#define FISHERFLOW_ODE_H

#include <stdint.h>
#include "error.h"
#include "tensor.h"
#include "geometry.h"

/* v [same shape as y] receives the tangent field at (y, t). y is borrowed read-only for the call. */
typedef ff_status (*ff_field_fn)(void *ctx, const ff_tensor_t *y, double t, ff_tensor_t *v);

typedef struct ff_ode_opts {
    const char *stepper;    /* a name from ff_ode_steppers()                                       */
    int         steps;      /* fixed-step count (>= 1); the adaptive initial step when h0 == 0      */
    double      eps_abs, eps_rel, h0;   /* eps_abs > 0: adaptive GSL stepping                      */
} ff_ode_opts;

ff_ode_opts ff_ode_default_opts(void);   /* {"euler", 100, 0, 0, 0}: the paper's sampler */

typedef struct ff_ode_stats {
    int64_t nfe;        /* field evaluations (each one call for the whole batch) */
    int64_t steps;      /* accepted steps                                         */
    int64_t rejected;   /* rejected trial steps (adaptive only)                   */
} ff_ode_stats;

/* Integrates y (in place) from t0 to t1. o NULL = defaults; stats may be NULL. Unknown stepper:
 * FF_EINVAL listing the known names. A euler run with eps_abs > 0 is refused (it has no error
 * estimate). */
ff_status ff_ode_integrate(const ff_geometry *g, ff_field_fn f, void *ctx, ff_tensor_t *y, double t0, double t1,
                           const ff_ode_opts *o, ff_ode_stats *stats);

/* NULL-terminated list of stepper names. */
const char *const *ff_ode_steppers(void);

#endif
