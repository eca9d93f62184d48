/* params.h — the named parameter registry of a model.
 *
 * All parameters live in one contiguous float block (and their gradients in a parallel block), so
 * the optimiser, gradient clipping, EMA and checkpoints each loop once over flat memory. A network
 * plugin registers its parameters by name in create(); the registry owns the tensors it returns
 * (never ff_tensor_free them). Tensors keep their address while the block grows: only ->data and
 * ->grad->data are re-pointed.
 */
#ifndef FISHERFLOW_PARAMS_H
#define FISHERFLOW_PARAMS_H

#include "tensor.h"
#include "rng.h"

typedef struct ff_params ff_params_t;

typedef enum ff_init_kind {
    FF_INIT_ZEROS = 0,
    FF_INIT_ONES,
    FF_INIT_UNIFORM,   /* U(-a, a); PyTorch's Linear/Conv default is a = 1/sqrt(fan_in) */
    FF_INIT_NORMAL,    /* N(0, a^2)                                                       */
} ff_init_kind;

typedef struct ff_param_init { ff_init_kind kind; float a; } ff_param_init;

ff_status    ff_params_new   (ff_params_t **out);
void         ff_params_free  (ff_params_t *p);              /* NULL-safe; frees every tensor */
/* Registers prefix + name ("net." + "block0.weight"); full names are unique and shorter than 48
 * characters. rng is used by random inits (required for them, may be NULL otherwise). *out is owned
 * by the registry: FF_TENSOR_PARAM | FF_TENSOR_NEEDS_GRAD, ->grad points into the gradient block
 * (zeroed). FF_EINVAL naming the parameter on a duplicate/long/empty name, a negative size, an
 * unknown init kind or a missing generator; *out is NULL then. */
ff_status    ff_params_add   (ff_params_t *p, const char *name, int ndim, const int64_t *shape,
                              ff_param_init init, ff_rng_t *rng, ff_tensor_t **out);
ff_status    ff_params_set_prefix(ff_params_t *p, const char *prefix);   /* applies to later adds; NULL = "" */
int          ff_params_count (const ff_params_t *p);
ff_tensor_t *ff_params_get   (const ff_params_t *p, int i);   /* i in [0, count); NULL otherwise */
ff_tensor_t *ff_params_find  (const ff_params_t *p, const char *name);   /* NULL if absent      */
int64_t      ff_params_numel (const ff_params_t *p);
float       *ff_params_data  (ff_params_t *p);                /* the flat block, numel floats    */
float       *ff_params_grad  (ff_params_t *p);                /* the flat gradient block         */
void         ff_params_zero_grad(ff_params_t *p);

#endif
