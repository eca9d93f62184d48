/* ode.c — Riemannian Euler and GSL gsl_odeiv2 steppers with a retraction after every accepted step.
 * docs/MATH.md §Sampling; an own evolve loop because the GSL driver has no post-step hook. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include "fisherflow/ode.h"
#include "fisherflow/fisherflow.h"

static const char *const stepper_names[] = { "euler", "rk2", "rk4", "rkf45", "rkck", "rk8pd", "msadams", NULL };

const char *const *ff_ode_steppers(void) { return stepper_names; }

ff_ode_opts ff_ode_default_opts(void) { return (ff_ode_opts){ "euler", 100, 0, 0, 0 }; }

static const gsl_odeiv2_step_type *gsl_type(const char *name) {
    if (!strcmp(name, "rk2")) return gsl_odeiv2_step_rk2;
    if (!strcmp(name, "rk4")) return gsl_odeiv2_step_rk4;
    if (!strcmp(name, "rkf45")) return gsl_odeiv2_step_rkf45;
    if (!strcmp(name, "rkck")) return gsl_odeiv2_step_rkck;
    if (!strcmp(name, "rk8pd")) return gsl_odeiv2_step_rk8pd;
    if (!strcmp(name, "msadams")) return gsl_odeiv2_step_msadams;
    return NULL;
}

/* The field checked: status passed on with context, NaN/Inf -> FF_ENUMERIC. */
static ff_status eval(const char *stepper, ff_field_fn f, void *ctx, const ff_tensor_t *y, double t, ff_tensor_t *v,
                      int64_t *nfe) {
    (*nfe)++;
    ff_status s = f(ctx, y, t, v);
    if (s != FF_OK) return ff_error_wrap(s, "ff_ode_integrate (%s, t = %g): field", stepper, t);
    if (ff_tensor_check_finite(v, "field") == FF_OK) return FF_OK;   /* the vectorised scan */
    int64_t N = ff_tensor_numel(v);
    for (int64_t i = 0; i < N; i++)
        if (!isfinite(v->data[i]))
            return ff_errorf(FF_ENUMERIC, "ff_ode_integrate (%s, t = %g): field value %lld is %s", stepper, t,
                             (long long)i, isnan(v->data[i]) ? "NaN" : "infinite");
    return FF_OK;
}

typedef struct {
    const char  *stepper;
    ff_field_fn  f;
    void        *ctx;
    ff_tensor_t *yf, *vf;   /* float mirrors of the state and the field [shape of y] */
    int64_t      N, nfe;
    ff_status    st;
} rhs_ctx;

static int rhs(double t, const double y[], double dydt[], void *params) {
    rhs_ctx *c = params;
    for (int64_t i = 0; i < c->N; i++) c->yf->data[i] = (float)y[i];
    ff_status s = eval(c->stepper, c->f, c->ctx, c->yf, t, c->vf, &c->nfe);
    if (s != FF_OK) {
        c->st = s;
        return GSL_EBADFUNC;
    }
    for (int64_t i = 0; i < c->N; i++) dydt[i] = c->vf->data[i];
    return GSL_SUCCESS;
}

/* y (double) <- retract(y) through the float mirror; the float tensor `out` is updated too. */
static ff_status retract_d(const ff_geometry *g, double *y, ff_tensor_t *out, int64_t N) {
    for (int64_t i = 0; i < N; i++) out->data[i] = (float)y[i];
    FF_TRY(g->retract(out));
    for (int64_t i = 0; i < N; i++) y[i] = out->data[i];
    return FF_OK;
}

static ff_status run_euler(const ff_geometry *g, ff_field_fn f, void *ctx, ff_tensor_t *y, double t0, double t1,
                           int steps, ff_ode_stats *st) {
    ff_tensor_t *v = NULL;
    FF_TRY(ff_tensor_new(&v, y->ndim, y->shape));
    ff_status s = FF_OK;
    for (int i = 0; i < steps; i++) {
        double ta = t0 + (t1 - t0) * i / steps, tb = t0 + (t1 - t0) * (i + 1) / steps;
        if ((s = eval("euler", f, ctx, y, ta, v, &st->nfe)) != FF_OK) break;
        if ((s = g->step(y, v, tb - ta)) != FF_OK) {
            ff_error_wrap(s, "ff_ode_integrate (euler, t = %g)", ta);
            break;
        }
        st->steps++;
    }
    ff_tensor_free(v);
    return s;
}

static ff_status gsl_fail(const char *stepper, int code, double t, rhs_ctx *c) {
    if (c->st != FF_OK) return c->st;   /* the field failed: its own message, whatever GSL made of it */
    return ff_errorf(FF_ENUMERIC, "ff_ode_integrate (%s, t = %g): GSL error %d: %s", stepper, t, code,
                     gsl_strerror(code));
}

static ff_status run_gsl(const ff_geometry *g, ff_field_fn f, void *ctx, ff_tensor_t *y, double t0, double t1,
                         const ff_ode_opts *o, ff_ode_stats *st) {
    const gsl_odeiv2_step_type *T = gsl_type(o->stepper);
    int64_t N = ff_tensor_numel(y);
    int adaptive = o->eps_abs > 0;
    rhs_ctx c = { o->stepper, f, ctx, NULL, NULL, N, 0, FF_OK };
    double *yd = NULL;
    gsl_odeiv2_driver *d = NULL;
    ff_status s;
    if ((s = ff_tensor_new(&c.yf, y->ndim, y->shape)) != FF_OK) goto fail;
    if ((s = ff_tensor_new(&c.vf, y->ndim, y->shape)) != FF_OK) goto fail;
    yd = malloc(sizeof(double) * (size_t)(N ? N : 1));
    if (!yd) {
        s = ff_errorf(FF_ENOMEM, "ff_ode_integrate: cannot allocate a state of %lld doubles", (long long)N);
        goto fail;
    }
    for (int64_t i = 0; i < N; i++) yd[i] = y->data[i];

    gsl_odeiv2_system sys = { rhs, NULL, (size_t)N, &c };
    double span = t1 - t0, h = o->h0 != 0 ? copysign(fabs(o->h0), span) : span / o->steps;
    /* The driver owns step, control and evolve and links them (msadams needs that); we never call
     * gsl_odeiv2_driver_apply, only evolve_apply with our retraction after each accepted step. */
    d = gsl_odeiv2_driver_alloc_y_new(&sys, T, h, adaptive ? o->eps_abs : 1e-6, adaptive ? o->eps_rel : 0);
    if (!d) {
        s = ff_errorf(FF_ENUMERIC, "ff_ode_integrate (%s): GSL could not allocate the driver (dimension %lld, h %g)",
                      o->stepper, (long long)N, h);
        goto fail;
    }
    double t = t0;
    if (!adaptive) {
        for (int i = 0; i < o->steps; i++) {
            double ta = t0 + span * i / o->steps, tb = t0 + span * (i + 1) / o->steps;
            t = ta;
            int code = gsl_odeiv2_evolve_apply_fixed_step(d->e, NULL, d->s, &sys, &t, tb - ta, yd);
            if (code != GSL_SUCCESS) {
                s = gsl_fail(o->stepper, code, ta, &c);
                goto fail;
            }
            if ((s = retract_d(g, yd, y, N)) != FF_OK) goto fail;
            st->steps++;
        }
    } else {
        long guard = 0;
        while (span > 0 ? t < t1 : t > t1) {
            unsigned long failed0 = d->e->failed_steps;
            int code = gsl_odeiv2_evolve_apply(d->e, d->c, d->s, &sys, &t, t1, &h, yd);
            st->rejected += (int64_t)(d->e->failed_steps - failed0);
            if (code != GSL_SUCCESS) {
                s = gsl_fail(o->stepper, code, t, &c);
                goto fail;
            }
            if ((s = retract_d(g, yd, y, N)) != FF_OK) goto fail;
            st->steps++;
            if (++guard > 10000000L) {
                s = ff_errorf(FF_ENUMERIC, "ff_ode_integrate (%s): more than 1e7 steps at t = %g (h = %g)",
                              o->stepper, t, h);
                goto fail;
            }
        }
    }
    for (int64_t i = 0; i < N; i++) y->data[i] = (float)yd[i];
fail:
    st->nfe += c.nfe;
    if (d) gsl_odeiv2_driver_free(d);
    free(yd);
    ff_tensor_free(c.yf);
    ff_tensor_free(c.vf);
    return s;
}

ff_status ff_ode_integrate(const ff_geometry *g, ff_field_fn f, void *ctx, ff_tensor_t *y, double t0, double t1,
                           const ff_ode_opts *o, ff_ode_stats *stats) {
    const char *fn = "ff_ode_integrate";
    ff_ode_opts def = ff_ode_default_opts();
    if (!o) o = &def;
    ff_ode_stats local = { 0, 0, 0 };
    ff_ode_stats *st = stats ? stats : &local;
    *st = local;
    if (!g || !f || !y) return ff_errorf(FF_EINVAL, "%s: %s is NULL", fn, !g ? "geometry" : !f ? "field" : "y");
    if (y->ndim < 1 || !ff_tensor_is_contiguous(y)) return ff_errorf(FF_EINVAL, "%s: y must be contiguous", fn);
    if (!isfinite(t0) || !isfinite(t1)) return ff_errorf(FF_EINVAL, "%s: t0 = %g, t1 = %g", fn, t0, t1);
    const char *name = o->stepper ? o->stepper : "euler";
    int known = 0;
    for (int i = 0; stepper_names[i]; i++) known |= !strcmp(stepper_names[i], name);
    if (!known)
        return ff_errorf(FF_EINVAL, "%s: unknown stepper \"%s\" (known: euler, rk2, rk4, rkf45, rkck, rk8pd, msadams)",
                         fn, name);
    if (o->steps < 1 && !(o->eps_abs > 0 && o->h0 != 0))
        return ff_errorf(FF_EINVAL, "%s: steps = %d, expected >= 1", fn, o->steps);
    if (o->eps_abs < 0 || o->eps_rel < 0 || !isfinite(o->h0))
        return ff_errorf(FF_EINVAL, "%s: eps_abs = %g, eps_rel = %g, h0 = %g (expected eps >= 0, finite h0)", fn,
                         o->eps_abs, o->eps_rel, o->h0);
    if (t1 == t0) return FF_OK;
    if (!strcmp(name, "euler")) {
        if (o->eps_abs > 0)
            return ff_errorf(FF_EINVAL, "%s: stepper \"euler\" is fixed-step; eps_abs = %g needs a GSL stepper "
                             "(rkf45, rkck, rk8pd, ...)", fn, o->eps_abs);
        return run_euler(g, f, ctx, y, t0, t1, o->steps, st);
    }
    if (!strcmp(name, "msadams") && !(o->eps_abs > 0))
        return ff_errorf(FF_EINVAL, "%s: stepper \"msadams\" is adaptive only (its order and step control need "
                         "GSL's error control; fixed steps fail): set eps_abs > 0", fn);
    ff_init();   /* GSL must not abort: error handler off */
    ff_ode_opts oo = *o;
    oo.stepper = name;
    if (oo.steps < 1) oo.steps = 1;
    return run_gsl(g, f, ctx, y, t0, t1, &oo, st);
}
