/* plugins/decoder/sample.c — a categorical draw per position from p = x*x / sum(x*x) (MATH.md
 * Sampling). Options: none. Cost: O(n k (d+1)), one uniform per position.
 * out: [n, k] token ids (0-based, stored as float). */
#include <math.h>
#include <fisherflow/plugin.h>

static ff_status sm_create(const ff_options *opts, const ff_space *space, void **state) {
    (void)opts; (void)space;
    *state = NULL;
    return FF_OK;
}

static ff_status sm_decode(void *state, const ff_tensor_t *x, ff_rng_t *rng, ff_tensor_t *out) {
    (void)state;
    char b1[64], b2[64];
    if (!x || !out || !rng) return ff_errorf(FF_EINVAL, "decoder \"sample\": x, out or rng is NULL");
    if (x->ndim != 3 || x->shape[2] < 1 || out->ndim != 2 || out->shape[0] != x->shape[0] ||
        out->shape[1] != x->shape[1])
        return ff_errorf(FF_ESHAPE, "decoder \"sample\": x [%s] and out [%s]: expected [n, k, d+1] and [n, k]",
                         ff_shape_str(x, b1, sizeof b1), ff_shape_str(out, b2, sizeof b2));
    int64_t n = x->shape[0], k = x->shape[1], D = x->shape[2], s2 = x->stride[2];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            const float *xp = x->data + i * x->stride[0] + j * x->stride[1];
            double total = 0;
            for (int64_t c = 0; c < D; c++) {
                double v = xp[c * s2];
                if (!isfinite(v))
                    return ff_errorf(FF_ENUMERIC, "decoder \"sample\": x[%lld, %lld, %lld] is not finite",
                                     (long long)i, (long long)j, (long long)c);
                total += v * v;
            }
            if (!(total > 0))
                return ff_errorf(FF_ENUMERIC, "decoder \"sample\": x[%lld, %lld] is the zero vector (no mass to draw from)",
                                 (long long)i, (long long)j);
            double u = ff_rng_uniform(rng) * total, acc = 0;
            int64_t tok = -1;
            for (int64_t c = 0; c < D; c++) {
                double w = (double)xp[c * s2] * xp[c * s2];
                if (w > 0) tok = c;                  /* last symbol with mass: guards rounding at u ~ total */
                acc += w;
                if (u < acc) break;
            }
            out->data[i * out->stride[0] + j * out->stride[1]] = (float)tok;
        }
    return FF_OK;
}

static void sm_destroy(void *state) { (void)state; }

static const ff_decoder_vtable vtable = {
    .create = sm_create, .decode = sm_decode, .destroy = sm_destroy, .emits_probs = 0,
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_DECODER, .vtable_size = sizeof vtable,
    .name = "sample", .version = "1.0.0",
    .summary = "categorical draw per position from p = x*x (normalised)",
    .options = (const ff_option_spec[]){ { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
