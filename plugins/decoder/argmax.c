/* plugins/decoder/argmax.c — the most likely token per position: argmax_i x_i^2 (p = x*x, MATH.md
 * Sampling). Ties go to the lowest index. Options: none. Cost: O(n k (d+1)).
 * out: [n, k] token ids (0-based, stored as float). */
#include <math.h>
#include <fisherflow/plugin.h>

static ff_status am_create(const ff_options *opts, const ff_space *space, void **state) {
    (void)opts; (void)space;
    *state = NULL;
    return FF_OK;
}

static ff_status am_decode(void *state, const ff_tensor_t *x, ff_rng_t *rng, ff_tensor_t *out) {
    (void)state; (void)rng;
    char b1[64], b2[64];
    if (!x || !out) return ff_errorf(FF_EINVAL, "decoder \"argmax\": x or out is NULL");
    if (x->ndim != 3 || out->ndim != 2 || out->shape[0] != x->shape[0] || out->shape[1] != x->shape[1])
        return ff_errorf(FF_ESHAPE, "decoder \"argmax\": x [%s] and out [%s]: expected [n, k, d+1] and [n, k]",
                         ff_shape_str(x, b1, sizeof b1), ff_shape_str(out, b2, sizeof b2));
    int64_t n = x->shape[0], k = x->shape[1], D = x->shape[2];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            const float *xp = x->data + i * x->stride[0] + j * x->stride[1];
            int64_t best = -1;
            double bv = -1;
            for (int64_t c = 0; c < D; c++) {
                double v = xp[c * x->stride[2]];
                if (!isfinite(v))
                    return ff_errorf(FF_ENUMERIC, "decoder \"argmax\": x[%lld, %lld, %lld] is not finite",
                                     (long long)i, (long long)j, (long long)c);
                if (v * v > bv) { bv = v * v; best = c; }
            }
            if (best < 0)
                return ff_errorf(FF_ESHAPE, "decoder \"argmax\": x has no symbols (d+1 = 0)");
            out->data[i * out->stride[0] + j * out->stride[1]] = (float)best;
        }
    return FF_OK;
}

static void am_destroy(void *state) { (void)state; }

static const ff_decoder_vtable vtable = {
    .create = am_create, .decode = am_decode, .destroy = am_destroy, .emits_probs = 0,
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_DECODER, .vtable_size = sizeof vtable,
    .name = "argmax", .version = "1.0.0",
    .summary = "most likely token per position (argmax of x*x)",
    .options = (const ff_option_spec[]){ { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
