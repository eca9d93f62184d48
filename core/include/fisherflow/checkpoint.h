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
 * and "__metadata__": format "fisherflow-checkpoint/2", fisherflow_version, optim ("adamw"|"sgd"),
 * step (decimal), config (the flow's configuration, ff_flow_config_json_of: the schema of flow.h)
 * and, when the caller gives one, run (the caller's own JSON: a training loop's state, stored
 * verbatim). From the config alone, ff_flow_load rebuilds the flow: a C program needs nothing else.
 *
 * Format versions: 2 stores the configuration in the core's schema, and networks' parameters under
 * the names they have since (bmlp's first layer is two parameters); a version-1 file, written by an
 * older fisherflow, is refused naming both versions: retrain the model, or convert the file.
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

#define FF_CHECKPOINT_VERSION 2
#define FF_CHECKPOINT_FORMAT "fisherflow-checkpoint/2"

/* Writes path atomically, with the flow's configuration. run_json: NULL or the caller's own state
 * (stored verbatim as "run", must be valid UTF-8). FF_ENUMERIC naming the tensor and element if any
 * saved value is NaN/Inf. FF_EINVAL while micro-batches are accumulated but not applied
 * (ff_flow_grad_count > 0): the checkpoint would silently drop them. */
ff_status ff_checkpoint_save(ff_flow_t *f, const char *path, const char *run_json);

/* A flow rebuilt from a checkpoint alone: built from its stored configuration (ff_flow_new_json),
 * then ff_checkpoint_load (parameters, optimiser state, EMA, training stream, step count), so that
 * training continues bit for bit as the run that saved it would have. Plugins are found by name
 * through the loader, as ff_flow_new finds them. Refusals as ff_checkpoint_load's, and the
 * configuration's errors naming the field; *out is NULL then. */
ff_status ff_flow_load(ff_flow_t **out, const char *path);

/* Restores parameters, optimiser state, EMA, training RNG and step count into a flow built by the
 * caller, and discards any gradient it had accumulated. Refuses (FF_EIO/FF_ESHAPE, flow untouched) a
 * file of another format or major version, a missing or unexpected tensor, a shape mismatch
 * ("tensor \"net.w\": the flow expects [3,4], the checkpoint has [4,3]"), or an optimiser/EMA kind
 * that differs from the flow's. The flow's other settings are the caller's: compare
 * ff_flow_config_json_of with the stored config to tell a resume from a deliberate change. */
ff_status ff_checkpoint_load(ff_flow_t *f, const char *path);

/* Reads a checkpoint's metadata without a flow. *config_json: malloc'd copy of the flow's
 * configuration (the "config" entry); *version: malloc'd fisherflow version string; *step: steps
 * completed. Any out-pointer may be NULL. Free the strings with ff_checkpoint_free_string (or free).
 * A file of another format version is refused as ff_checkpoint_load refuses it. */
ff_status ff_checkpoint_read_meta(const char *path, char **config_json, char **version, int64_t *step);
/* *run_json: malloc'd copy of the caller's "run" entry given to ff_checkpoint_save, or NULL if none. */
ff_status ff_checkpoint_read_run(const char *path, char **run_json);
void      ff_checkpoint_free_string(char *s);

#endif
