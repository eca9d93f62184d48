/* my_source.c — a template source plugin, built out of tree (see README.md): "my" draws points of
 * S^d_+ tilted towards symbol 0: x = normalise(|z| + tilt * e_0), z ~ N(0, I_{d+1}) per position.
 * Options: tilt (number >= 0, default 1; 0 gives the uniform_sphere source). Cost: O(n k (d+1)).
 * It has no closed-form density, so log_prob is NULL (the host reports "source my has no density"). */
#include <math.h>
#include <stdlib.h>
#include <fisherflow/plugin.h>

typedef struct my_state { double tilt; } my_state;

static ff_status my_create(const ff_options *opts, const ff_space *space, void **state) {
    (void)space;
    double tilt;
    FF_TRY(ff_options_get_number(opts, "tilt", &tilt));   /* the loader already checked the type */
    if (!(tilt >= 0) || !isfinite(tilt))
        return ff_errorf(FF_EINVAL, "source \"my\": option \"tilt\" must be finite and >= 0 (got %g)", tilt);
    my_state *s = malloc(sizeof *s);
    if (!s) return ff_errorf(FF_ENOMEM, "source \"my\": out of memory");
    s->tilt = tilt;
    *state = s;                      /* the plugin owns its state; destroy frees it */
    return FF_OK;
}

static ff_status my_sample(void *state, ff_rng_t *rng, ff_tensor_t *out) {
    const my_state *s = state;
    char buf[64];
    if (!out || out->ndim != 3 || out->shape[2] < 2)
        return ff_errorf(FF_ESHAPE, "source \"my\": out is [%s], expected [n, k, d+1] with d+1 >= 2",
                         out ? ff_shape_str(out, buf, sizeof buf) : "NULL");
    for (int64_t i = 0; i < out->shape[0]; i++)
        for (int64_t j = 0; j < out->shape[1]; j++) {
            float *x = out->data + i * out->stride[0] + j * out->stride[1];
            double norm2 = 0;
            for (int64_t c = 0; c < out->shape[2]; c++) {
                double v = fabs(ff_rng_normal(rng)) + (c == 0 ? s->tilt : 0.0);
                x[c * out->stride[2]] = (float)v;
                norm2 += v * v;
            }
            double inv = norm2 > 0 ? 1.0 / sqrt(norm2) : 0.0;
            for (int64_t c = 0; c < out->shape[2]; c++) x[c * out->stride[2]] = (float)(x[c * out->stride[2]] * inv);
        }
    return FF_OK;
}

static void my_destroy(void *state) { free(state); }

static const ff_source_vtable vtable = {
    .create = my_create, .sample = my_sample, .log_prob = NULL, .destroy = my_destroy,
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_SOURCE, .vtable_size = sizeof vtable,
    .name = "my", .version = "0.1.0",
    .summary = "template: sphere points tilted towards symbol 0",
    .options = (const ff_option_spec[]){
        { "tilt", FF_OPT_NUMBER, "1", "added to |z_0| before normalising (0: uniform)" },
        { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
