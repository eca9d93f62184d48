/* tape.h — eager reverse-mode autodiff.
 *
 * Ops (ops.h) compute their result immediately and, when an input needs a gradient, record a node;
 * ff_tape_backward replays the nodes in reverse. Every temporary (outputs, gradients, scratch)
 * lives in the tape's arena until ff_tape_reset(), so a training step does no malloc once the
 * arena has grown to the step's size. Using a temporary after a reset is an error (its `gen` no
 * longer matches), reported as FF_EINVAL by the op that receives it.
 *
 * Errors are sticky: an op that fails records the message, returns NULL, and every later op on the
 * same tape does nothing and returns NULL. Check once with ff_tape_status() at the end of a chain.
 *
 * What takes part in autodiff: parameters (FF_TENSOR_NEEDS_GRAD with ->grad set, as ff_params_add
 * makes them), leaves from ff_tape_leaf(.., 1), and outputs of ops recorded on this tape in this step.
 * Anything else is a constant. Gradients of parameters and leaves accumulate (+=) over backward calls;
 * zero them yourself (ff_params_zero_grad, ff_tensor_fill(leaf->grad, 0)). Op inputs (and a
 * parameter's values) must stay alive and unchanged until the backward pass or the reset. A non-
 * contiguous input is read in place or copied into the arena; an input that needs a gradient must
 * have a ->grad contiguous over its elements (a view of a parameter with the matching view of its
 * gradient is refused, FF_EINVAL: register the part as a parameter of its own). A temporary kept across
 * one ff_tape_reset and passed to an op in the next step is refused (tensor headers alternate
 * between two pools, so its header still carries the old generation); keeping one longer is a bug
 * the check may miss.
 */
#ifndef FISHERFLOW_TAPE_H
#define FISHERFLOW_TAPE_H

#include <stddef.h>
#include "error.h"
#include "tensor.h"
#include "rng.h"

typedef struct ff_tape ff_tape_t;

ff_status    ff_tape_new     (ff_tape_t **out, size_t arena_bytes);  /* arena grows on demand     */
void         ff_tape_reset   (ff_tape_t *tp);   /* frees all temporaries, clears status, gen++     */
void         ff_tape_free    (ff_tape_t *tp);   /* NULL-safe                                       */
ff_status    ff_tape_status  (const ff_tape_t *tp);  /* FF_OK or the first failure's status        */

/* Reverse pass from a scalar (numel 1) loss: gradients accumulate (+=) into ->grad of every
 * parameter and leaf that needs one. Can be called once per reset. */
ff_status    ff_tape_backward(ff_tape_t *tp, ff_tensor_t *loss);   /* FF_EINVAL if nothing needs a grad */
/* Same from any output with an explicit upstream gradient `seed` (same shape): a vector-Jacobian
 * product, used by the divergence estimators of the likelihood. May be called several times on one
 * forward (intermediate gradients restart at zero each call; leaf/parameter gradients accumulate). */
ff_status    ff_tape_backward_seed(ff_tape_t *tp, ff_tensor_t *out, const ff_tensor_t *seed);

/* A leaf on the tape: an arena copy of src. With needs_grad, backward fills leaf->grad. */
ff_tensor_t *ff_tape_leaf    (ff_tape_t *tp, const ff_tensor_t *src, int needs_grad);
/* An uninitialised (zeroed) arena tensor that records nothing, for scratch or constants. */
ff_tensor_t *ff_tape_alloc   (ff_tape_t *tp, int ndim, const int64_t *shape);

/* Mode switches, kept until changed (reset does not change them). */
void         ff_tape_set_grad    (ff_tape_t *tp, int enabled);  /* 0: no nodes recorded (sampling) */
void         ff_tape_set_training(ff_tape_t *tp, int training); /* dropout active only if 1        */
/* 0: parameters (and any non-arena tensor) count as constants, so backward computes gradients for
 * tape leaves only and skips every weight-gradient GEMM: for Jacobian-vector work such as the
 * likelihood's divergence. Default 1. */
void         ff_tape_set_param_grads(ff_tape_t *tp, int enabled);
int          ff_tape_training    (const ff_tape_t *tp);
void         ff_tape_set_rng     (ff_tape_t *tp, ff_rng_t *rng);/* borrowed; used by dropout       */
size_t       ff_tape_arena_bytes (const ff_tape_t *tp);         /* capacity now (for benchmarks)   */

#endif
