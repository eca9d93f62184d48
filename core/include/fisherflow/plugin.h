/* plugin.h — the plugin ABI and loader.
 *
 * A plugin is a shared object exporting one symbol, ff_plugin_entry, that returns a const
 * descriptor. The descriptor carries the ABI version it was built with (major/minor), its kind, the
 * size of its vtable, its name (equal to the file name <kind>_<name>.so), a summary, its option
 * spec and the vtable. A host at minor m loads a plugin built at minor m' <= m with the same major;
 * functions appended after m' read as absent (vtable_size tells).
 *
 * Plugins link libfisherflow and use its public API (tensors, tape ops, errors, rng). Ownership:
 * plugin state is the plugin's (create/destroy); outputs are caller-allocated; descriptor strings
 * are static. Every function returns ff_status and sets the message with ff_errorf on failure.
 *
 * Frequency tags: [once] at setup, [per step, hot] inside training or sampling loops.
 */
#ifndef FISHERFLOW_PLUGIN_H
#define FISHERFLOW_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "tensor.h"
#include "tape.h"
#include "ops.h"
#include "params.h"
#include "rng.h"
#include "options.h"
#include "space.h"

#define FF_PLUGIN_ABI_MAJOR 1   /* bump: any vtable or descriptor change that old hosts cannot read */
#define FF_PLUGIN_ABI_MINOR 2   /* bump: a function appended to the end of a vtable                  */
/* ABI history: 1.0 first release; 1.1 appended ff_coupler_vtable.plan; 1.2 appended
 * ff_network_vtable.forward_reentrant. */

typedef enum ff_plugin_kind {
    FF_PLUGIN_SOURCE = 1, FF_PLUGIN_COUPLER, FF_PLUGIN_NETWORK, FF_PLUGIN_DECODER,
} ff_plugin_kind;

typedef struct ff_plugin {
    uint32_t                abi_major, abi_minor;  /* FF_PLUGIN_ABI_* the plugin was built with     */
    uint32_t                kind;                  /* ff_plugin_kind                                  */
    uint32_t                vtable_size;           /* sizeof(its kind's vtable) at build time         */
    const char             *name;                  /* "exact_ot": [a-z0-9_]+, equals the file's name  */
    const char             *version;               /* "1.0.0"                                         */
    const char             *summary;               /* one line, shown by `fisherflow plugins`         */
    const ff_option_spec   *options;               /* ends with {NULL}                                */
    const void             *vtable;                /* const ff_<kind>_vtable *                        */
} ff_plugin;

/* Source distributions on S^d_+ (sphere coordinates x = sqrt(p)). */
typedef struct ff_source_vtable {
    /* [once] Validate option values (types are already checked) and build state. */
    ff_status (*create)(const ff_options *opts, const ff_space *space, void **state);
    /* [per step, hot] Fill out[n, k, d+1] with independent draws on S^d_+. out caller-owned. */
    ff_status (*sample)(void *state, ff_rng_t *rng, ff_tensor_t *out);
    /* [once per batch] Log-density of x[n, k, d+1] w.r.t. the product of the sphere's surface
     * measures, summed over positions, into out[n]. May be NULL: "source X has no density". */
    ff_status (*log_prob)(void *state, const ff_tensor_t *x, ff_tensor_t *out);
    /* [once] NULL-safe. */
    void      (*destroy)(void *state);
} ff_source_vtable;

typedef struct ff_coupler_vtable {
    ff_status (*create)(const ff_options *opts, const ff_space *space, void **state);
    /* [per step, hot] Re-pair rows of x0 with x1: fills perm[n] so that (x0[perm[i]], x1[i]) is
     * the coupling. x0, x1: [n, k, d+1] on S^d_+, borrowed. perm: caller-owned int32[n]. A plan
     * that is not a permutation (Sinkhorn) is sampled: perm may repeat indices. */
    ff_status (*pair)(void *state, const ff_tensor_t *x0, const ff_tensor_t *x1,
                      ff_rng_t *rng, int32_t *perm);
    void      (*destroy)(void *state);
    /* --- ABI 1.1 --- */
    /* [diagnostics, once per batch] The coupling itself: out[n, n] (caller-owned) receives the
     * mass of the pair (x0[j], x1[i]) at out[i, j]; every row sums to 1/n and every column to 1/n.
     * Optional: absent when vtable_size does not cover it or the pointer is NULL
     * (test with FF_VTABLE_HAS(desc, ff_coupler_vtable, plan)). */
    ff_status (*plan)(void *state, const ff_tensor_t *x0, const ff_tensor_t *x1, ff_tensor_t *out);
} ff_coupler_vtable;

typedef struct ff_network_vtable {
    /* [once] Registers named parameters in params (initialised with rng) and builds state. */
    ff_status (*create)(const ff_options *opts, const ff_space *space, ff_params_t *params,
                        ff_rng_t *rng, void **state);
    /* [per step, hot] The ambient vector field v(x_t, t [, cond]) -> [n, k, d+1], built from tape
     * ops so backward comes free. x_t [n, k, d+1], t [n], cond NULL or as ff_space says.
     * Returns an arena tensor, or NULL with the tape's status set. */
    ff_tensor_t *(*forward)(void *state, ff_tape_t *tp, ff_tensor_t *x_t, ff_tensor_t *t,
                            ff_tensor_t *cond);
    void      (*destroy)(void *state);
    /* --- ABI 1.2 --- */
    /* 1: forward writes nothing in state (all it makes lives on the tape it is given), so the
     * sampler may run it on several tapes at once, one per thread. 0 (or a vtable of ABI < 1.2):
     * one call at a time, on the thread that called ff_flow_sample. */
    int32_t   forward_reentrant;
} ff_network_vtable;

typedef struct ff_decoder_vtable {
    ff_status (*create)(const ff_options *opts, const ff_space *space, void **state);
    /* [once per batch] x [n, k, d+1] on S^d_+ -> out: [n, k] token ids (0-based, as float), or
     * [n, k, d+1] probabilities when emits_probs. out caller-owned. */
    ff_status (*decode)(void *state, const ff_tensor_t *x, ff_rng_t *rng, ff_tensor_t *out);
    void      (*destroy)(void *state);
    int32_t   emits_probs;
} ff_decoder_vtable;

#define FF_PLUGIN_EXPORT __attribute__((visibility("default")))
/* True when a plugin's vtable (of C type `type`) carries `member`: the plugin was built with a
 * vtable long enough and set the pointer. Use before calling a function appended after ABI 1.0. */
#define FF_VTABLE_HAS(desc, type, member)                                                    \
    ((desc)->vtable_size >= offsetof(type, member) + sizeof(((type *)0)->member) &&          \
     ((const type *)(desc)->vtable)->member != NULL)
typedef const ff_plugin *(*ff_plugin_entry_fn)(void);

const char *ff_plugin_kind_name(ff_plugin_kind kind);          /* "source", ... ; "?" otherwise */

/* --- Loader --------------------------------------------------------------------------------
 * Search order: in-process registrations (ff_plugin_register below), then <kind>_<name>.so in
 * $FISHERFLOW_PLUGIN_PATH (colon-separated), then the shipped plugins: the build tree's plugins/
 * for the build tree's libfisherflow, else fisherflow/plugins next to the installed libfisherflow
 * (found with dladdr, so any prefix works). Handles are cached and
 * refcounted; a handle is never dlclose'd while an instance from it lives. */
ff_status ff_plugin_find(ff_plugin_kind kind, const char *name, const ff_plugin **out);
/* ff_plugin_find's descriptor stays valid until ff_plugin_unload_unused(), which dlcloses every
 * cached handle that no instance uses and returns how many it closed. */
int       ff_plugin_unload_unused(void);
/* Live instances created from the cached handle that holds desc; -1 if desc is not cached. */
int       ff_plugin_refs(const ff_plugin *desc);
/* Size in bytes of a kind's vtable at ABI 1.0 (the least the loader accepts); 0 for a bad kind. */
size_t    ff_plugin_vtable_min_size(ff_plugin_kind kind);

/* --- In-process plugins ---------------------------------------------------------------------
 * A host (the Lua layer's ff.source.lua{}, a test, an embedding program) may register a descriptor
 * built in memory instead of shipping a file. ff_plugin_find and ff_plugin_new look registrations
 * up by kind + name BEFORE they search files, so a registration shadows a file of the same name.
 * ff_plugin_register applies the checks a plugin file passes (ABI major, kind, name [a-z0-9_]+,
 * vtable_size, required functions, option spec) and refuses a name already registered for its kind.
 * It copies the descriptor, vtable_size bytes of vtable, the strings and the option spec: the
 * caller's memory may go once it returns. The functions the vtable points to must stay callable
 * while instances made from the registration are used; ff_plugin_free calls destroy (so a host
 * whose functions die at unregistration registers destroy = NULL, as the Lua layer does). */
ff_status ff_plugin_register(const ff_plugin *desc);
/* Takes kind/name off the lookup (the name is free again at once); FF_EINVAL if it is not
 * registered. Instances alive keep the loader's copy until the last one is freed. */
ff_status ff_plugin_unregister(ff_plugin_kind kind, const char *name);
/* 1 when desc is a decoder whose decode fills probabilities [n, k, d+1], 0 when it fills token ids
 * [n, k] (or desc is not a decoder). */
int       ff_plugin_emits_probs(const ff_plugin *desc);
/* 1 when desc is a network whose vtable sets forward_reentrant, else 0. */
int       ff_plugin_forward_reentrant(const ff_plugin *desc);

/* An instance: descriptor + validated options + plugin state. */
typedef struct ff_plugin_inst {
    const ff_plugin *desc;
    ff_options      *opts;       /* the instance's own copy, validated */
    void            *state;
    ff_space         space;
    void            *handle;     /* loader bookkeeping */
} ff_plugin_inst;

/* Find, validate opts (may be NULL), and create. params/rng are used by networks only (may be NULL
 * for other kinds). */
ff_status ff_plugin_new (ff_plugin_inst **out, ff_plugin_kind kind, const char *name,
                         const ff_options *opts, const ff_space *space,
                         ff_params_t *params, ff_rng_t *rng);
void      ff_plugin_free(ff_plugin_inst *inst);                /* destroy + release; NULL-safe */

/* Every plugin found on the search path: calls fn once per loadable plugin (refused files are
 * reported through fn with desc NULL and the message in `error`, which already starts with the
 * path; a file shadowed by one of the same name earlier on the path is reported as refused). */
typedef void (*ff_plugin_list_fn)(void *ctx, const char *path, const ff_plugin *desc, const char *error);
ff_status ff_plugin_list(ff_plugin_list_fn fn, void *ctx);
/* The directories searched, colon-separated, in order (for messages and `fisherflow plugins`). */
const char *ff_plugin_search_path(void);

#endif
