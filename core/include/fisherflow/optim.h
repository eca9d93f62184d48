/* optim.h — optimisers over a parameter registry, gradient clipping, EMA, LR schedules.
 * Each loops once over the flat parameter block (params.h).
 */
#ifndef FISHERFLOW_OPTIM_H
#define FISHERFLOW_OPTIM_H

#include "params.h"

typedef enum ff_optim_kind { FF_OPTIM_SGD = 1, FF_OPTIM_ADAMW } ff_optim_kind;

/* Update rules are PyTorch's (torch.optim.SGD with dampening 0, torch.optim.AdamW):
 *   SGD:   d = g + wd p; buf = d (first step) or momentum buf + d; d = nesterov ? d + momentum buf : buf;
 *          p -= lr d
 *   AdamW: p *= 1 - lr wd; m += (1 - b1)(g - m); v = b2 v + (1 - b2) g^2;
 *          p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Scalars are float32 here (PyTorch keeps them in double): 1 - 0.999f differs from 0.001 by 1.3e-5
 * relative, the only difference from PyTorch beyond float rounding. */
typedef struct ff_optim_config {
    ff_optim_kind kind;
    float lr;             /* base learning rate (the schedule scales from it)            */
    float momentum;       /* SGD; 0 = plain SGD                                          */
    int   nesterov;       /* SGD                                                         */
    float beta1, beta2;   /* AdamW                                                       */
    float eps;            /* AdamW                                                       */
    float weight_decay;   /* decoupled for AdamW (p -= lr*wd*p); L2 for SGD              */
} ff_optim_config;

ff_optim_config ff_optim_adamw_defaults(void);   /* lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.01 */
ff_optim_config ff_optim_sgd_defaults(void);     /* lr 1e-2, momentum 0                            */

typedef struct ff_optim ff_optim_t;

/* Create after the last ff_params_add (state is sized then; ff_optim_step refuses a grown registry).
 * FF_EINVAL naming the field on a bad config (lr, wd, momentum < 0; betas outside [0, 1)). */
ff_status ff_optim_new (ff_optim_t **out, ff_params_t *params, const ff_optim_config *cfg);
void      ff_optim_free(ff_optim_t *o);
/* One update with learning rate lr (pass the scheduled value) from the accumulated gradients. */
ff_status ff_optim_step(ff_optim_t *o, float lr);
/* State for checkpoints: buffers of numel floats (m/v for AdamW, velocity in m for SGD; v NULL
 * for SGD), and the step counter t (bias correction). Writable: a resumed run restores them. */
ff_status ff_optim_state(ff_optim_t *o, float **m, float **v, int64_t *numel, int64_t **t);
const ff_optim_config *ff_optim_get_config(const ff_optim_t *o);

/* Global L2 norm of all gradients; if max_norm > 0 and the norm exceeds it, scales gradients by
 * max_norm / (norm + 1e-6) (PyTorch's clip_grad_norm_). norm_out may be NULL. A non-finite norm
 * returns FF_ENUMERIC and leaves gradients unchanged. */
ff_status ff_clip_grad_norm(ff_params_t *p, float max_norm, float *norm_out);

/* Exponential moving average of parameters: ema = decay*ema + (1-decay)*param. */
typedef struct ff_ema ff_ema_t;
ff_status ff_ema_new   (ff_ema_t **out, ff_params_t *p, float decay);  /* starts as a copy; after the last add */
void      ff_ema_free  (ff_ema_t *e);
void      ff_ema_update(ff_ema_t *e);
/* The update after `step` earlier ones, with decay min(decay, (1 + step) / (10 + step)): a fixed
 * 0.999 would still hold 22 % of the initial weights after 1,500 steps; the warm-up forgets them
 * early and reaches 0.999 at step 8,991. A pure function of step, so resumed runs stay bit-exact. */
void      ff_ema_update_at(ff_ema_t *e, int64_t step);
void      ff_ema_swap  (ff_ema_t *e);    /* exchange live and averaged weights (evaluate, swap back) */
float    *ff_ema_data  (ff_ema_t *e);    /* numel floats, for checkpoints */

/* Learning-rate schedules: lr(step) for step = 0, 1, ... With W = warmup (WARMUP_* kinds only) and
 * p = clamp((step - W) / (total - W), 0, 1):
 *   CONSTANT       base
 *   COSINE         min + (base - min) (1 + cos(pi p)) / 2          (W = 0)
 *   WARMUP_LINEAR  base step / W for step < W, then min + (base - min) (1 - p)
 *   WARMUP_COSINE  base step / W for step < W, then the cosine above
 * (min = 0 gives the HuggingFace linear/cosine-with-warmup schedules.) */
typedef enum ff_lr_kind { FF_LR_CONSTANT = 0, FF_LR_COSINE, FF_LR_WARMUP_LINEAR, FF_LR_WARMUP_COSINE } ff_lr_kind;
typedef struct ff_lr_schedule {
    ff_lr_kind kind;
    float      base;      /* peak learning rate                                         */
    float      min;       /* floor of the cosine                                        */
    int64_t    warmup;    /* linear ramp 0 -> base over this many steps (WARMUP_*)       */
    int64_t    total;     /* cosine period / linear decay end                           */
} ff_lr_schedule;
float ff_lr_at(const ff_lr_schedule *s, int64_t step);

#endif
