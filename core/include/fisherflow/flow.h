/* flow.h — a Fisher-Flow model: geometry + source + coupler + network (+ decoder), its parameters,
 * optimiser, EMA and random stream, and the three things done with it: one training step, sampling,
 * and likelihoods.
 *
 * Data goes in by pointer (pull-style): the caller (C or Lua) owns every tensor it passes; the flow
 * never calls back into the caller during a step. A training step is ONE call (ff_flow_step): draw t
 * and x0, re-pair with the coupler, build x_t and u_t, run the network, project, loss, backward,
 * clip, optimiser update, EMA. Plugins are named here and instantiated by the flow through the loader,
 * because a network registers its parameters in the flow's registry.
 */
#ifndef FISHERFLOW_FLOW_H
#define FISHERFLOW_FLOW_H

#include <stdint.h>
#include "error.h"
#include "tensor.h"
#include "rng.h"
#include "params.h"
#include "optim.h"
#include "options.h"
#include "space.h"
#include "plugin.h"

typedef struct ff_flow ff_flow_t;

typedef struct ff_plugin_spec {
    const char       *name;      /* plugin name, e.g. "exact_ot"; NULL = the kind's default */
    const ff_options *opts;      /* borrowed; may be NULL                                    */
} ff_plugin_spec;

typedef struct ff_flow_config {
    ff_space        space;            /* k positions, d+1 symbols, optional condition          */
    const char     *geometry;         /* "sphere" (default) | "simplex" | "linear"             */
    ff_plugin_spec  source;           /* default "uniform_sphere"                              */
    ff_plugin_spec  coupler;          /* default "independent"                                 */
    ff_plugin_spec  network;          /* default "bmlp"                                        */
    ff_plugin_spec  decoder;          /* default "argmax"                                      */
    ff_optim_config optim;            /* kind 0 = AdamW defaults with weight_decay 0           */
    ff_lr_schedule  lr;               /* kind CONSTANT with base 0 = optim.lr throughout       */
    float           grad_clip;        /* max global grad norm; <= 0: no clipping               */
    float           ema_decay;        /* 0: no EMA; otherwise sampling uses the EMA weights,
                                         with optim.h's warm-up (ff_ema_update_at)            */
    float           label_smoothing;  /* epsilon of MATH.md; 0 = none                          */
    uint64_t        seed;             /* init, t, x0, coupling, sampling: one seed, one run    */
} ff_flow_config;

/* Geometry "sphere", default plugins, AdamW (lr 1e-3, weight decay 0), constant lr, grad_clip 1.0
 * (the paper's toy run), no EMA, no label smoothing, seed 0. The caller sets space. */
ff_flow_config ff_flow_default_config(void);

ff_status ff_flow_new (ff_flow_t **out, const ff_flow_config *cfg);
void      ff_flow_free(ff_flow_t *f);                        /* NULL-safe */

typedef struct ff_step_stats {
    double  loss;         /* mean over the batch of the summed squared error            */
    double  grad_norm;    /* global norm before clipping                                */
    double  lr;           /* learning rate used                                         */
    double  ms;           /* wall time of the step                                      */
    int64_t step;         /* steps completed, including this one                        */
} ff_step_stats;

/* One training step on a minibatch. x1 [n, k, d+1]: data on the simplex (one-hot or smoothed
 * probabilities). x0: NULL (draw from the source plugin) or caller-drawn source points in sphere
 * coordinates [n, k, d+1]. cond: NULL or as space says. A non-finite loss or gradient stops with
 * FF_ENUMERIC naming the step, and the parameters are left as they were before the step. */
ff_status ff_flow_step(ff_flow_t *f, const ff_tensor_t *x1, const ff_tensor_t *x0,
                       const ff_tensor_t *cond, ff_step_stats *stats);

/* Loss on a batch without updating anything (validation), same draws as a step would make, taken
 * from a separate validation stream so that evaluating never changes the training sequence. */
ff_status ff_flow_eval_loss(ff_flow_t *f, const ff_tensor_t *x1, const ff_tensor_t *cond, double *loss);

/* The times t [n] drawn by the latest step or eval (borrowed, valid until the next call that changes
 * the batch size); NULL before the first. For tests and diagnostics. */
const ff_tensor_t *ff_flow_last_t(const ff_flow_t *f);

typedef struct ff_sample_opts {
    const char *stepper;      /* "euler" (default: the paper's Riemannian Euler) or a GSL stepper */
    int         steps;        /* default 100                                                      */
    double      eps_abs, eps_rel;  /* > 0: adaptive GSL stepping                                  */
    int         batch;        /* network batch per call; 0 = 4096                                 */
} ff_sample_opts;
ff_sample_opts ff_flow_default_sample_opts(void);

typedef struct ff_sample_stats { int64_t nfe; double ms; } ff_sample_stats;

/* Integrates from source draws at t = 0 to t = 1. out [n, k, d+1] receives points on the simplex
 * (p = x*x for the sphere). x0: NULL (draw) or sphere-coordinate starts. cond: NULL or [n, ...]. */
ff_status ff_flow_sample(ff_flow_t *f, ff_tensor_t *out, const ff_tensor_t *x0,
                         const ff_tensor_t *cond, const ff_sample_opts *o, ff_sample_stats *stats);

/* Decodes simplex points p [n, k, d+1] with the flow's decoder: out [n, k] tokens (or [n,k,d+1]). */
ff_status ff_flow_decode(ff_flow_t *f, const ff_tensor_t *p, ff_tensor_t *out);

/* log-density of simplex points p [n, k, d+1] under the model, w.r.t. the Lebesgue measure on the
 * first d coordinates of each position's simplex, summed over positions: out [n]. */
typedef struct ff_logprob_opts { int steps; const char *estimator; int probes; } ff_logprob_opts;
ff_logprob_opts ff_flow_default_logprob_opts(void);   /* {100, "auto", 1} */
ff_status ff_flow_log_prob(ff_flow_t *f, const ff_tensor_t *p, const ff_tensor_t *cond,
                           const ff_logprob_opts *o, ff_tensor_t *out);

/* Access for checkpoints and scripts (borrowed pointers, valid while f lives). */
const ff_flow_config *ff_flow_config_of(const ff_flow_t *f);
ff_params_t *ff_flow_params(ff_flow_t *f);
ff_optim_t  *ff_flow_optim (ff_flow_t *f);
ff_ema_t    *ff_flow_ema   (ff_flow_t *f);          /* NULL without EMA */
ff_rng_t    *ff_flow_rng   (ff_flow_t *f);          /* the training stream (t, x0, coupling draws) */
ff_rng_t    *ff_flow_sample_rng(ff_flow_t *f);      /* the sampling stream (ranks split it: dist.lua) */
int64_t      ff_flow_steps (const ff_flow_t *f);
void         ff_flow_set_steps(ff_flow_t *f, int64_t steps);   /* for resume */

#endif
