/* geometry.h — the three geometries a flow can use, behind one vtable, selected by name.
 *
 *   "sphere"  (Fisher flow, MATH.md): data coordinates y = x = sqrt(p) on S^d_+; geodesics are great
 *             circles (ff_sphere_slerp); tangent projection v - <x,v> x; Euler step = fold(exp_x(h v));
 *             retract = per-position |y| / ||y||.
 *   "simplex" (Fisher-Rao geometry written in simplex coordinates): y = p. The path is the Fisher-Rao
 *             geodesic p_t = x_t*x_t with x_t the slerp of sqrt(p0), sqrt(p1); its velocity is the chain
 *             rule u_t = 2 x_t * dx_t/dt. Tangent projection: v - mean(v) (sum-zero vectors, the
 *             Euclidean-orthogonal projection onto the simplex's tangent space). Euler step: follows
 *             the Fisher-Rao geodesic through the sphere, p <- fold(exp_x(h xi))^2 with x = sqrt(p) and
 *             xi = P_x(v / (2x)). Boundary choice: for a symbol with p_i < 1e-8 the velocity v/(2x)
 *             is unbounded (a Fisher-Rao geodesic cannot enter the boundary at finite speed), so that
 *             component uses the finite secant xi_i = (sqrt(max(p_i + h v_i, 0)) - x_i) / h, which moves
 *             mass into (or out of) the symbol exactly as p + h v would to first order.
 *             Retract: clip at 0 and renormalise the sum.
 *   "linear"  (the "linear flow matching" baseline): y = p; straight lines p_t = (1-t) p0 + t p1,
 *             u_t = p1 - p0; projection v - mean(v); step p <- retract(p + h v); retract: clip at 0,
 *             renormalise.
 * Sources always deliver sphere coordinates x; a flow converts with to_simplex then from_simplex.
 * All tensors are [n, .., d+1] (contiguous), t is [n]; the functions follow sphere.h's conventions
 * (outputs caller-owned, double math inside, errors name the geometry and the function).
 */
#ifndef FISHERFLOW_GEOMETRY_H
#define FISHERFLOW_GEOMETRY_H

#include "error.h"
#include "tensor.h"
#include "tape.h"

typedef struct ff_geometry {
    const char *name;                  /* "sphere" | "simplex" | "linear" */
    /* data coordinates: sphere works on x = sqrt(p); simplex and linear on p itself.
     * y, p [.., d+1]; may alias. */
    ff_status (*from_simplex)(ff_tensor_t *y, const ff_tensor_t *p);
    ff_status (*to_simplex)(ff_tensor_t *p, const ff_tensor_t *y);
    /* Conditional path and its velocity (the flow-matching target): yt, ut [n, .., d+1] from y0, y1
     * [n, .., d+1] and t [n]. Either output may be NULL. */
    ff_status (*interpolate)(ff_tensor_t *yt, ff_tensor_t *ut, const ff_tensor_t *y0, const ff_tensor_t *y1,
                             const ff_tensor_t *t);
    /* Differentiable projection of a network output v onto the tangent space at y (a tape op:
     * returns an arena tensor, or NULL once the tape has failed). */
    ff_tensor_t *(*project)(ff_tape_t *tp, ff_tensor_t *y, ff_tensor_t *v);
    /* One Euler step on the manifold, in place: y <- step(y, h*v). v need not be exactly tangent
     * (it is projected first). h may be negative. */
    ff_status (*step)(ff_tensor_t *y, const ff_tensor_t *v, double h);
    /* In place: back onto the manifold after an ambient step (sphere: |y|/||y|| per position;
     * simplex/linear: clip >= 0, renormalise the sum). A position with nothing left: FF_ENUMERIC. */
    ff_status (*retract)(ff_tensor_t *y);
} ff_geometry;

/* The geometry called `name`; NULL (with an error message listing the known names) if unknown. */
const ff_geometry *ff_geometry_find(const char *name);
/* NULL-terminated list of the known names, for help texts. */
const char *const *ff_geometry_names(void);

#endif
