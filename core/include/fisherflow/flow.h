/* flow.h — a Fisher-Flow model: geometry + source + coupler + network (+ decoder), its parameters,
 * optimiser, EMA and random stream, and the three things done with it: one training step, sampling,
 * and likelihoods.
 *
 * Data goes in by pointer (pull-style): the caller (C or Lua) owns every tensor it passes; the flow
 * never calls back into the caller during a step. A training step is ONE call (ff_flow_step): draw t
 * and x0, re-pair with the coupler, build x_t and u_t, run the network, project, loss, backward,
 * clip, optimiser update, EMA; or two (ff_flow_grad, ff_flow_update) for gradient accumulation and
 * data parallelism. Plugins are named here and instantiated by the flow through the loader,
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

/* ---- The configuration as JSON ------------------------------------------------------------------
 * One schema for every place a configuration is written down (checkpoints, the Lua layer, scripts),
 * owned here. ff_flow_config borrows its strings and options; the JSON text is the owning form:
 *   {"space": {"k": 4, "d": 19, "cond_classes": 0, "cond_channels": 0},
 *    "geometry": "sphere",
 *    "source":  {"name": "uniform_sphere", "options": {}},      (likewise coupler, network, decoder;
 *    "network": {"name": "bmlp", "options": {"hidden": 512}},    a bare "name" string also reads)
 *    "optim": {"kind": "adamw", "lr": 0.001, "weight_decay": 0, "betas": [0.9, 0.999], "eps": 1e-08}
 *          or {"kind": "sgd", "lr": 0.01, "weight_decay": 0, "momentum": 0, "nesterov": false},
 *    "schedule": {"kind": "constant" | "cosine" | "warmup_linear" | "warmup_cosine",
 *                 "base": 0.001, "min": 0, "warmup": 0, "total": 0},
 *    "grad_clip": 1, "ema": 0, "label_smoothing": 0, "seed": 0}
 * ("ema" is ema_decay, "schedule" is lr, as the Lua layer names them.) Written: every field, with the
 * defaults filled in as ff_flow_new fills them, floats as the shortest decimal that reads back as the
 * same float, so config -> JSON -> config is exact. Read: "space" with "d" is required; any other
 * field left out takes ff_flow_default_config's value (an "optim" object starts from its kind's
 * defaults, ff_optim_adamw_defaults / ff_optim_sgd_defaults). Refused with FF_EINVAL naming the
 * field: unknown fields ("unknown field "optim.lrr" (known: ...)"), wrong types ("field
 * "space.k": expected an integer, got a string"), ranges (k, d >= 1; cond_* >= 0; ema and
 * label_smoothing in [0, 1); grad_clip, lr, weight_decay, eps, momentum >= 0; betas in [0, 1); seed an
 * integer in [0, 2^64)); malformed JSON with its byte offset. Plugin options take the types the plugin
 * declares (a JSON 2 is an int for an int option, a number for a number option); unknown options
 * are refused by the plugin's validation, naming the plugin and the option. */

/* The JSON of cfg (defaults resolved). *json is malloc'd: free() it (FFI callers:
 * ff_checkpoint_free_string). FF_EINVAL for a value JSON cannot hold (NaN/Inf) or an unknown kind. */
ff_status   ff_flow_config_json(const ff_flow_config *cfg, char **json);
/* A flow built from a configuration in JSON (ff_flow_new's checks apply too). */
ff_status   ff_flow_new_json(ff_flow_t **out, const char *json);
/* The flow's configuration as JSON (borrowed, valid while f lives): ff_flow_config_json of the
 * configuration it was built from, so ff_flow_new_json(text) builds the same flow (same initial
 * weights: the seed is part of it). Checkpoints store this text. */
const char *ff_flow_config_json_of(const ff_flow_t *f);

typedef struct ff_step_stats {
    double  loss;         /* mean over the batch of the summed squared error            */
    double  grad_norm;    /* global norm before clipping                                */
    double  lr;           /* learning rate used                                         */
    double  ms;           /* wall time of the step (see ff_flow_grad / ff_flow_update)  */
    double  couple_ms;    /* the part of ms spent in the coupler's pair() (exact OT can
                             dominate a step at large batches: callers can say so)      */
    int64_t step;         /* steps completed, including this one                        */
} ff_step_stats;

/* Training is two calls with a seam between them, ff_flow_grad (gradient of a batch, accumulated)
 * and ff_flow_update (optimiser step from the accumulated gradient), so that
 *   - gradient accumulation: several micro-batches are summed before one update, for a batch larger
 *     than memory allows in one pass;
 *   - data parallelism: each process computes its shard's gradient, the flat gradient block
 *     (ff_flow_grad_block) is all-reduced between the two calls, and every process then applies the
 *     same update to the same parameters.
 * ff_flow_step is the two in one call, with the same numbers bit for bit. Sampling, evaluation and
 * likelihoods never touch the gradient block, so they may run between the two calls. */

/* One training step on a minibatch: ff_flow_grad then ff_flow_update (micro-batches already
 * accumulated by ff_flow_grad are part of it). x1 [n, k, d+1]: data on the simplex (one-hot or
 * smoothed probabilities). x0: NULL (draw from the source plugin) or caller-drawn source points in
 * sphere coordinates [n, k, d+1]. cond: NULL or as space says. A non-finite loss or gradient stops with
 * FF_ENUMERIC naming the step, and the parameters are left as they were before the step. stats: all
 * fields (ms = the whole step). */
ff_status ff_flow_step(ff_flow_t *f, const ff_tensor_t *x1, const ff_tensor_t *x0,
                       const ff_tensor_t *cond, ff_step_stats *stats);

/* The gradient of one (micro-)batch: draws t, x0 and the coupling from the training stream, runs the
 * network and ADDS the gradient of this batch's mean loss to the flow's gradient block (it does not
 * zero it), and counts one more micro-batch (ff_flow_grad_count). Arguments as ff_flow_step.
 * stats (may be NULL): loss of this batch, ms of this call, step = steps completed so far; grad_norm
 * and lr 0. A non-finite input or loss is refused (FF_ENUMERIC naming the step) with the accumulated
 * gradient and count as they were before the call (the random draws are consumed). A network whose
 * backward pass fails leaves no usable sum: the accumulation is discarded (as ff_flow_grad_zero). */
ff_status ff_flow_grad(ff_flow_t *f, const ff_tensor_t *x1, const ff_tensor_t *x0,
                       const ff_tensor_t *cond, ff_step_stats *stats);

/* One optimiser step from the accumulated gradient: divides the block by the number of accumulated
 * micro-batches (n equal micro-batches of b give the gradient of one batch of n*b), clips it by global
 * norm (grad_clip), applies the lr schedule, the optimiser and the EMA, counts the step, and resets
 * the count to 0. The block then holds the gradient just applied (averaged and clipped), for
 * diagnostics, until the next ff_flow_grad, which starts a new sum from zero. stats (may be NULL): grad_norm (before clipping), lr, step (including this
 * one), loss (mean of the micro-batches' losses), ms (the ff_flow_grad calls since the last update
 * plus this call). FF_EINVAL without any accumulated gradient. A non-finite gradient is refused
 * (FF_ENUMERIC naming the step): parameters, optimiser and EMA unchanged, the accumulation discarded.
 * Data-parallel callers that all-reduce the block with a SUM over R processes divide it by R too:
 * the update divides by the local count only. */
ff_status ff_flow_update(ff_flow_t *f, ff_step_stats *stats);

/* The flat gradient block of all parameters (borrowed, *n floats, contiguous, in registration order
 * like ff_params_data; the same memory as ff_params_grad): while ff_flow_grad_count > 0 it holds the
 * sum of the micro-batch gradients since the last update. Valid while f lives. For an all-reduce between ff_flow_grad and ff_flow_update. n may be NULL. */
float *ff_flow_grad_block(ff_flow_t *f, size_t *n);
int    ff_flow_grad_count(const ff_flow_t *f);   /* micro-batches accumulated since the last update */
void   ff_flow_grad_zero (ff_flow_t *f);         /* discards them: block zeroed, count 0            */

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
 * (p = x*x for the sphere). x0: NULL (draw) or sphere-coordinate starts. cond: NULL or [n, ...].
 * The network runs without gradients and without dropout. With T = ff_threads_get() > 1 and a
 * network whose forward is reentrant (plugin.h), each chunk's rows split into T parts integrated
 * side by side, one thread each (threads.h): rows are independent, so fixed-step steppers give the
 * single-thread result up to BLAS rounding; an adaptive stepper's error control then covers each
 * part's rows, as it covers each chunk's. stats->nfe counts a chunk's evaluations once. */
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
