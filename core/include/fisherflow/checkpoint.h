/* checkpoint.h — save and restore everything a training run needs to continue bit for bit.
 *
 * A checkpoint is a safetensors file (io.h) that other tools can read:
 *   <param name>          F32  one entry per registered parameter, e.g. "net.block0.weight"
 *   optim.m.<name>        F32  AdamW first moment / SGD velocity (same shape as the parameter)
 *   optim.v.<name>        F32  AdamW second moment (absent for SGD)
 *   optim.t               I64  [1] optimiser step counter (bias correction)
 *   ema.<name>            F32  EMA weights (only when the flow has EMA)
 *   rng.state             U64  [4] the training stream's xoshiro256** words (ff_flow_rng)
 *   rng.spare_normal      F64  [1] and rng.has_spare I64 [1]: the cached Box-Muller value
 *   step                  I64  [1] training steps completed (ff_flow_steps)
 * and "__metadata__": format "fisherflow-checkpoint/1", fisherflow_version, optim ("adamw"|"sgd"),
 * step (decimal), and config (the run's configuration JSON, given by the caller) when provided.
 *
 * Saving is atomic (io.h): a run killed at any moment leaves the previous checkpoint intact, and a
 * flow holding a non-finite value is refused (nothing is written), so a diverged run never replaces
 * its last good checkpoint. Loading validates the whole file against the flow before changing
 * anything; on failure the flow is untouched. Resume protocol for bit-exact continuation: build the
 * flow from the same config, ff_checkpoint_load, and draw minibatch indices from ff_flow_rng(flow)
 * (which is saved) rather than from a separate unsaved stream.
 */
#ifndef FISHERFLOW_CHECKPOINT_H
#define FISHERFLOW_CHECKPOINT_H

#include <stdint.h>
#include "error.h"
#include "flow.h"

#define FF_CHECKPOINT_FORMAT "fisherflow-checkpoint/1"

/* Writes path atomically. config_json: NULL or the run's configuration (stored verbatim, must be
 * valid UTF-8). FF_ENUMERIC naming the tensor and element if any saved value is NaN/Inf. */
ff_status ff_checkpoint_save(ff_flow_t *f, const char *path, const char *config_json);

/* Restores parameters, optimiser state, EMA, training RNG and step count. Refuses (FF_EIO/FF_ESHAPE,
 * flow untouched) a file of another format or major version, a missing or unexpected tensor, a
 * shape mismatch ("tensor \"net.w\": the flow expects [3,4], the checkpoint has [4,3]"), or an
 * optimiser/EMA kind that differs from the flow's. */
ff_status ff_checkpoint_load(ff_flow_t *f, const char *path);

/* Reads a checkpoint's metadata without a flow (to rebuild the flow from its config first).
 * *config_json: malloc'd copy of the "config" entry, or NULL if none was saved; *version: malloc'd
 * fisherflow version string; *step: steps completed. Any out-pointer may be NULL. Free the strings
 * with ff_checkpoint_free_string (or free). */
ff_status ff_checkpoint_read_meta(const char *path, char **config_json, char **version, int64_t *step);
void      ff_checkpoint_free_string(char *s);

#endif
