/* plugins/decoder/probs.c — the simplex point itself: out = x*x / sum(x*x) per position (MATH.md,
 * the inverse sphere map, renormalised against rounding). Options: none. Cost: O(n k (d+1)).
 * emits_probs = 1: out is [n, k, d+1]. */
#include <math.h>
#include <fisherflow/plugin.h>

static ff_status pr_create(const ff_options *opts, const ff_space *space, void **state) {
    (void)opts; (void)space;
    *state = NULL;
    return FF_OK;
}

static ff_status pr_decode(void *state, const ff_tensor_t *x, ff_rng_t *rng, ff_tensor_t *out) {
    (void)state; (void)rng;
    char b1[64], b2[64];
    if (!x || !out) return ff_errorf(FF_EINVAL, "decoder \"probs\": x or out is NULL");
    if (x->ndim != 3 || out->ndim != 3 || out->shape[0] != x->shape[0] || out->shape[1] != x->shape[1] ||
        out->shape[2] != x->shape[2])
        return ff_errorf(FF_ESHAPE, "decoder \"probs\": x [%s] and out [%s]: expected both [n, k, d+1]",
                         ff_shape_str(x, b1, sizeof b1), ff_shape_str(out, b2, sizeof b2));
    int64_t n = x->shape[0], k = x->shape[1], D = x->shape[2];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            const float *xp = x->data + i * x->stride[0] + j * x->stride[1];
            float *op = out->data + i * out->stride[0] + j * out->stride[1];
            double total = 0;
            for (int64_t c = 0; c < D; c++) {
                double v = xp[c * x->stride[2]];
                if (!isfinite(v))
                    return ff_errorf(FF_ENUMERIC, "decoder \"probs\": x[%lld, %lld, %lld] is not finite",
                                     (long long)i, (long long)j, (long long)c);
                total += v * v;
            }
            if (!(total > 0))
                return ff_errorf(FF_ENUMERIC, "decoder \"probs\": x[%lld, %lld] is the zero vector",
                                 (long long)i, (long long)j);
            for (int64_t c = 0; c < D; c++) {
                double v = xp[c * x->stride[2]];
                op[c * out->stride[2]] = (float)(v * v / total);
            }
        }
    return FF_OK;
}

static void pr_destroy(void *state) { (void)state; }

static const ff_decoder_vtable vtable = {
    .create = pr_create, .decode = pr_decode, .destroy = pr_destroy, .emits_probs = 1,
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_DECODER, .vtable_size = sizeof vtable,
    .name = "probs", .version = "1.0.0",
    .summary = "probabilities per position: p = x*x (normalised)",
    .options = (const ff_option_spec[]){ { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
