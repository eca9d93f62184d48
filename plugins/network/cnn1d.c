/* plugins/network/cnn1d.c — the dilated residual 1-D CNN of Dirichlet FM / Fisher-Flow for DNA
 * (docs/PAPER_PROTOCOLS.md §4-5; DFM's CNNModel), channels last: tensors are [n, L = k, C].
 *
 * Options:
 *   hidden         int      128            channels of every hidden layer
 *   stacks         int      1              each dilation is repeated `stacks` times in a row, so
 *                                          stacks = 4 gives 1x4, 1x4, 4x4, 16x4, 64x4 (20 layers)
 *   dilations      numbers  1,1,4,16,64    the dilation of each residual conv layer of a stack
 *   kernel         int      9              odd kernel width; padding = dilation*(kernel-1)/2 keeps L
 *   fourier_scale  number   30             std of the Gaussian Fourier frequencies of t
 *   fourier_seed   int      0              seed of those fixed frequencies (not trained, not saved:
 *                                          recomputed from the seed, so checkpoints stay portable)
 * Forward (DFM's order): temb = ReLU(Linear([sin 2piWt, cos 2piWt])); feat = ReLU(conv_in(x));
 * per layer i: h = LayerNorm(feat + Dense_i(temb)); feat = feat + ReLU(conv_i(h));
 * out = conv1x1(ReLU(conv1x1(feat))) -> [n, k, d+1].
 * Conditioning: cond_classes > 0 adds a class embedding [cond_classes, hidden] to temb (cond: [n]
 * ids); cond_channels > 0 concatenates cond [n, k, cond_channels] to the input channels.
 * Parameters for d+1 = 4, hidden 128, stacks 4, no condition: 3,325,316 (docs/PAPER_PROTOCOLS.md §5).
 * Init: PyTorch defaults (conv/linear U(-1/sqrt(fan_in), ..), LayerNorm 1/0, embedding N(0,1)).
 * Cost per position and layer: 2 * kernel * hidden^2 flops (im2col + GEMM in ff_conv1d).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <fisherflow/plugin.h>

#define CNN_MAX_LAYERS 256

typedef struct cnn1d {
    ff_space     space;
    int64_t      hidden, stacks, kernel, layers, in_ch;
    int          dil[CNN_MAX_LAYERS];
    float       *freq;                       /* [hidden/2] fixed Fourier frequencies W            */
    int64_t      nfreq;
    ff_tensor_t *in_w, *in_b;                /* [hidden, kernel, in_ch], [hidden]                 */
    ff_tensor_t *temb_w, *temb_b;            /* [hidden, 2*nfreq], [hidden]                       */
    ff_tensor_t *cls;                        /* [cond_classes, hidden] or NULL                    */
    ff_tensor_t *conv_w[CNN_MAX_LAYERS], *conv_b[CNN_MAX_LAYERS];   /* [hidden, kernel, hidden]   */
    ff_tensor_t *dense_w[CNN_MAX_LAYERS], *dense_b[CNN_MAX_LAYERS]; /* [hidden, hidden]           */
    ff_tensor_t *ln_g[CNN_MAX_LAYERS], *ln_b[CNN_MAX_LAYERS];       /* [hidden]                   */
    ff_tensor_t *f1_w, *f1_b, *f2_w, *f2_b;  /* 1x1 convs: [hidden,1,hidden], [d+1,1,hidden]      */
} cnn1d;

static ff_status add_param(ff_params_t *p, ff_rng_t *rng, const char *fmt, int i, int ndim,
                           const int64_t *shape, ff_init_kind kind, double fan_in, ff_tensor_t **out) {
    char nm[48];
    snprintf(nm, sizeof nm, fmt, i);
    ff_param_init init = { kind, kind == FF_INIT_UNIFORM ? (float)(1.0 / sqrt(fan_in)) : 1.0f };
    return ff_params_add(p, nm, ndim, shape, init, rng, out);
}

/* weight + bias of a conv [cout, kw, cin] (kw = 0: a Linear [cout, cin]) */
static ff_status add_layer(ff_params_t *p, ff_rng_t *rng, const char *name, int i, int64_t cout,
                           int64_t kw, int64_t cin, ff_tensor_t **w, ff_tensor_t **b) {
    char fw[40], fb[40];
    snprintf(fw, sizeof fw, "%s.weight", name);
    snprintf(fb, sizeof fb, "%s.bias", name);
    double fan_in = (double)(kw ? kw : 1) * (double)cin;
    if (kw) FF_TRY(add_param(p, rng, fw, i, 3, (int64_t[]){ cout, kw, cin }, FF_INIT_UNIFORM, fan_in, w));
    else    FF_TRY(add_param(p, rng, fw, i, 2, (int64_t[]){ cout, cin }, FF_INIT_UNIFORM, fan_in, w));
    return add_param(p, rng, fb, i, 1, (int64_t[]){ cout }, FF_INIT_UNIFORM, fan_in, b);
}

static ff_status cnn1d_create(const ff_options *opts, const ff_space *space, ff_params_t *params,
                              ff_rng_t *rng, void **state) {
    ff_status s;
    const double *dils = NULL;
    int ndil = 0;
    double scale;
    int64_t seed;
    *state = NULL;
    if (!space || space->k < 1 || space->d < 1)
        return ff_errorf(FF_EINVAL, "network \"cnn1d\": space needs k >= 1 and d >= 1, got k=%lld d=%lld",
                         space ? (long long)space->k : 0LL, space ? (long long)space->d : 0LL);
    if (!params || !rng)
        return ff_errorf(FF_EINVAL, "network \"cnn1d\": params and rng are required");
    if (space->cond_classes > 0 && space->cond_channels > 0)
        return ff_errorf(FF_EINVAL, "network \"cnn1d\": cond_classes (%lld) and cond_channels (%lld) are "
                         "both set; one cond tensor carries only one of them",
                         (long long)space->cond_classes, (long long)space->cond_channels);
    cnn1d *m = calloc(1, sizeof *m);
    if (!m) return ff_errorf(FF_ENOMEM, "network \"cnn1d\": out of memory");
    m->space = *space;
    if ((s = ff_options_get_int(opts, "hidden", &m->hidden)) != FF_OK) goto fail;
    if ((s = ff_options_get_int(opts, "stacks", &m->stacks)) != FF_OK) goto fail;
    if ((s = ff_options_get_int(opts, "kernel", &m->kernel)) != FF_OK) goto fail;
    if ((s = ff_options_get_numbers(opts, "dilations", &dils, &ndil)) != FF_OK) goto fail;
    if ((s = ff_options_get_number(opts, "fourier_scale", &scale)) != FF_OK) goto fail;
    if ((s = ff_options_get_int(opts, "fourier_seed", &seed)) != FF_OK) goto fail;
    if (m->hidden < 2 || m->hidden > (1 << 16)) {
        s = ff_errorf(FF_EINVAL, "network \"cnn1d\": option \"hidden\" must be in [2, 65536], got %lld",
                      (long long)m->hidden);
        goto fail;
    }
    if (m->kernel < 1 || m->kernel % 2 == 0 || m->kernel > 1025) {
        s = ff_errorf(FF_EINVAL, "network \"cnn1d\": option \"kernel\" must be odd in [1, 1025], got %lld",
                      (long long)m->kernel);
        goto fail;
    }
    if (ndil < 1 || m->stacks < 1 || (int64_t)ndil * m->stacks > CNN_MAX_LAYERS) {
        s = ff_errorf(FF_EINVAL, "network \"cnn1d\": options \"stacks\" (%lld) and \"dilations\" (%d values) "
                      "must give 1..%d layers", (long long)m->stacks, ndil, CNN_MAX_LAYERS);
        goto fail;
    }
    for (int j = 0; j < ndil; j++)
        if (!(dils[j] >= 1 && dils[j] <= 65536 && dils[j] == floor(dils[j]))) {
            s = ff_errorf(FF_EINVAL, "network \"cnn1d\": option \"dilations\": value %d is %g, expected an "
                          "integer in [1, 65536]", j + 1, dils[j]);
            goto fail;
        }
    if (!(scale > 0 && isfinite(scale))) {
        s = ff_errorf(FF_EINVAL, "network \"cnn1d\": option \"fourier_scale\" must be > 0, got %g", scale);
        goto fail;
    }
    m->layers = (int64_t)ndil * m->stacks;
    for (int64_t i = 0; i < m->layers; i++) m->dil[i] = (int)dils[i / m->stacks];  /* DFM's order */
    m->in_ch = space->d + 1 + (space->cond_channels > 0 ? space->cond_channels : 0);

    /* Fixed Gaussian Fourier frequencies W ~ N(0, scale^2), from their own seed. */
    m->nfreq = m->hidden / 2;
    m->freq = malloc((size_t)m->nfreq * sizeof *m->freq);
    if (!m->freq) { s = ff_errorf(FF_ENOMEM, "network \"cnn1d\": out of memory"); goto fail; }
    ff_rng_t fr;
    ff_rng_seed(&fr, (uint64_t)seed);
    for (int64_t j = 0; j < m->nfreq; j++) m->freq[j] = (float)(scale * ff_rng_normal(&fr));

    int64_t H = m->hidden, K = m->kernel;
    if ((s = add_layer(params, rng, "conv_in", 0, H, K, m->in_ch, &m->in_w, &m->in_b)) != FF_OK) goto fail;
    if ((s = add_layer(params, rng, "temb", 0, H, 0, 2 * m->nfreq, &m->temb_w, &m->temb_b)) != FF_OK) goto fail;
    if (space->cond_classes > 0 &&
        (s = add_param(params, rng, "cls", 0, 2, (int64_t[]){ space->cond_classes, H }, FF_INIT_NORMAL, 1,
                       &m->cls)) != FF_OK) goto fail;
    for (int i = 0; i < (int)m->layers; i++) {
        char nm[40];
        snprintf(nm, sizeof nm, "layer%d.conv", i);
        if ((s = add_layer(params, rng, nm, i, H, K, H, &m->conv_w[i], &m->conv_b[i])) != FF_OK) goto fail;
        snprintf(nm, sizeof nm, "layer%d.dense", i);
        if ((s = add_layer(params, rng, nm, i, H, 0, H, &m->dense_w[i], &m->dense_b[i])) != FF_OK) goto fail;
        if ((s = add_param(params, rng, "layer%d.norm.weight", i, 1, (int64_t[]){ H }, FF_INIT_ONES, 1,
                           &m->ln_g[i])) != FF_OK) goto fail;
        if ((s = add_param(params, rng, "layer%d.norm.bias", i, 1, (int64_t[]){ H }, FF_INIT_ZEROS, 1,
                           &m->ln_b[i])) != FF_OK) goto fail;
    }
    if ((s = add_layer(params, rng, "final0", 0, H, 1, H, &m->f1_w, &m->f1_b)) != FF_OK) goto fail;
    if ((s = add_layer(params, rng, "final1", 0, space->d + 1, 1, H, &m->f2_w, &m->f2_b)) != FF_OK) goto fail;
    *state = m;
    return FF_OK;
fail:
    free(m->freq);
    free(m);
    return s;
}

static ff_tensor_t *cnn1d_forward(void *state, ff_tape_t *tp, ff_tensor_t *x_t, ff_tensor_t *t,
                                  ff_tensor_t *cond) {
    cnn1d *m = state;
    const ff_space *sp = &m->space;
    int64_t n = x_t ? x_t->shape[0] : 0, H = m->hidden, half = (m->kernel - 1) / 2;

    /* Fourier features of t, a constant input: t needs no gradient (training regresses on x_t;
     * the likelihood differentiates in x only). */
    ff_tensor_t *tt = ff_reshape(tp, t, 1, (int64_t[]){ n });
    ff_tensor_t *ff = ff_tape_alloc(tp, 2, (int64_t[]){ n, 2 * m->nfreq });
    if (!tt || !ff) return NULL;
    for (int64_t i = 0; i < n; i++) {
        double ti = tt->data[i];
        float *row = ff->data + i * 2 * m->nfreq;
        for (int64_t j = 0; j < m->nfreq; j++) {
            double a = 2.0 * M_PI * (double)m->freq[j] * ti;
            row[j] = (float)sin(a);
            row[m->nfreq + j] = (float)cos(a);
        }
    }
    ff_tensor_t *e = ff_relu(tp, ff_linear(tp, ff, m->temb_w, m->temb_b));     /* [n, H] */
    if (sp->cond_classes > 0)
        e = ff_add(tp, e, ff_reshape(tp, ff_embedding(tp, m->cls, cond), 2, (int64_t[]){ n, H }));

    ff_tensor_t *x = ff_reshape(tp, x_t, 3, (int64_t[]){ n, sp->k, sp->d + 1 });
    if (sp->cond_channels > 0)
        x = ff_concat(tp, x, ff_reshape(tp, cond, 3, (int64_t[]){ n, sp->k, sp->cond_channels }));
    ff_tensor_t *feat = ff_relu(tp, ff_conv1d(tp, x, m->in_w, m->in_b, 1, (int)half));
    for (int64_t i = 0; i < m->layers; i++) {
        ff_tensor_t *te = ff_reshape(tp, ff_linear(tp, e, m->dense_w[i], m->dense_b[i]),
                                     3, (int64_t[]){ n, 1, H });
        ff_tensor_t *h = ff_layer_norm(tp, ff_add(tp, feat, te), m->ln_g[i], m->ln_b[i], 1e-5f);
        h = ff_conv1d(tp, h, m->conv_w[i], m->conv_b[i], m->dil[i], (int)(half * m->dil[i]));
        feat = ff_add_relu(tp, feat, h);                                   /* feat + ReLU(h) */
    }
    feat = ff_relu(tp, ff_conv1d(tp, feat, m->f1_w, m->f1_b, 1, 0));
    return ff_conv1d(tp, feat, m->f2_w, m->f2_b, 1, 0);
}

static void cnn1d_destroy(void *state) {
    cnn1d *m = state;
    if (!m) return;
    free(m->freq);
    free(m);
}

static const ff_network_vtable vtable = {
    .create = cnn1d_create, .forward = cnn1d_forward, .destroy = cnn1d_destroy, .forward_reentrant = 1,
};

static const ff_option_spec options[] = {
    { "hidden",        FF_OPT_INT,     "128",         "channels of the hidden layers" },
    { "stacks",        FF_OPT_INT,     "1",           "repeats of each dilation (5*stacks residual layers)" },
    { "dilations",     FF_OPT_NUMBERS, "1,1,4,16,64", "dilation of each residual conv of a stack" },
    { "kernel",        FF_OPT_INT,     "9",           "odd conv kernel width" },
    { "fourier_scale", FF_OPT_NUMBER,  "30",          "std of the Gaussian Fourier time frequencies" },
    { "fourier_seed",  FF_OPT_INT,     "0",           "seed of the fixed Fourier frequencies" },
    { NULL, 0, NULL, NULL },
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_NETWORK, .vtable_size = sizeof vtable,
    .name = "cnn1d", .version = "1.0.0",
    .summary = "dilated residual 1-D CNN with Fourier time embedding (Dirichlet FM / DNA)",
    .options = options,
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
