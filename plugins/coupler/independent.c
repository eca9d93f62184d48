/* plugins/coupler/independent.c — the "no OT" ablation: keep the pairs as drawn.
 * Options: none. Cost: O(n). */
#include <fisherflow/plugin.h>

static ff_status independent_create(const ff_options *opts, const ff_space *space, void **state) {
    (void)opts; (void)space;
    *state = NULL;                      /* stateless */
    return FF_OK;
}

static ff_status independent_pair(void *state, const ff_tensor_t *x0, const ff_tensor_t *x1,
                                  ff_rng_t *rng, int32_t *perm) {
    (void)state; (void)rng;
    if (!x0 || !x1 || !perm) return ff_errorf(FF_EINVAL, "coupler \"independent\": x0, x1 or perm is NULL");
    if (x0->ndim < 1 || x1->ndim < 1 || x0->shape[0] != x1->shape[0])
        return ff_errorf(FF_ESHAPE, "coupler \"independent\": x0 has %lld rows, x1 has %lld",
                         x0->ndim ? (long long)x0->shape[0] : 0LL, x1->ndim ? (long long)x1->shape[0] : 0LL);
    for (int64_t i = 0; i < x1->shape[0]; i++) perm[i] = (int32_t)i;
    return FF_OK;
}

static ff_status independent_plan(void *state, const ff_tensor_t *x0, const ff_tensor_t *x1, ff_tensor_t *out) {
    (void)state;
    if (!x0 || !x1 || !out) return ff_errorf(FF_EINVAL, "coupler \"independent\": x0, x1 or out is NULL");
    int64_t n = x1->ndim ? x1->shape[0] : 0;
    if (x0->ndim < 1 || x0->shape[0] != n || out->ndim != 2 || out->shape[0] != n || out->shape[1] != n)
        return ff_errorf(FF_ESHAPE, "coupler \"independent\": plan out must be [%lld, %lld] for %lld rows",
                         (long long)n, (long long)n, (long long)n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            out->data[i * out->stride[0] + j * out->stride[1]] = i == j ? (float)(1.0 / (double)n) : 0.0f;
    return FF_OK;
}

static void independent_destroy(void *state) { (void)state; }

static const ff_coupler_vtable vtable = {
    .create = independent_create, .pair = independent_pair, .destroy = independent_destroy,
    .plan = independent_plan,
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_COUPLER, .vtable_size = sizeof vtable,
    .name = "independent", .version = "1.0.0",
    .summary = "identity pairing (no optimal transport)",
    .options = (const ff_option_spec[]){ { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
