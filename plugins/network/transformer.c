/* plugins/network/transformer.c — a bidirectional transformer encoder over the k positions, the
 * kind discrete diffusion / flow models use for text: tensors are [n, k, W] (W = width).
 *
 * Options:
 *   width         int     256     model width W (a multiple of heads)
 *   depth         int     4       number of blocks
 *   heads         int     4       attention heads (head width W / heads)
 *   mlp_ratio     number  4       MLP hidden width = round(mlp_ratio * W) >= 1
 *   dropout       number  0       dropout on each residual branch (attention and MLP) in training
 *   conditioning  string  "adaln" "adaln": adaptive layer norm, DiT-style: every LayerNorm is
 *                                 without affine and followed by h * (1 + scale) + shift, scale and
 *                                 shift Linear(SiLU(temb)) per norm; "add": temb added to the token
 *                                 embedding once, LayerNorms with learned gamma/beta
 *   gelu          string  "tanh"  the MLP's GELU: "tanh" (ff_gelu_tanh, PyTorch's approximate="tanh",
 *                                 no libm calls) or "erf" (ff_gelu, the exact form)
 * Forward: h = Linear(x) + pos (learned [k, W]); temb = Linear(SiLU(Linear(sinusoid(t)))), the
 * sinusoid of 1000 t at W/2 geometric frequencies 10000^(-j/(W/2)) (sin | cos); per block (pre-norm):
 * h += Drop(Wo Attn(Wqkv N1(h))), h += Drop(W2 GELU(W1 N2(h))); out = Linear(Nf(h)) -> [n, k, d+1].
 * Attention is ff_attention (scale 1/sqrt(W/heads), no mask).
 * Conditioning: cond_classes > 0 adds a class embedding [cond_classes, W] to temb (cond: [n] ids);
 * cond_channels > 0 concatenates cond [n, k, cond_channels] to the input coordinates.
 * Parameters (in = d+1 (+ cond_channels), M = MLP width, D = depth):
 *   W*in + W + k*W + 2*(W*W + W) [+ classes*W] + D*(4W^2 + 2*M*W + 5W + M) + (d+1)*W + (d+1)
 *   + adaln: (4D + 2)*(W*W + W)      add: (4D + 2)*W (LayerNorm gamma/beta)
 * Init: PyTorch defaults (Linear U(+-1/sqrt(fan_in)), LayerNorm 1/0, position and class N(0, 1)),
 * except the modulation Linears start at zero (scale = shift = 0: plain LayerNorm at init).
 * When every row has the same t and there is no class label (the sampler), the time embedding and
 * modulations are computed for one row and broadcast over the batch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/plugin.h>

#define TF_MAX_DEPTH 64

typedef struct tf {
    ff_space     space;
    int64_t      W, D, H, M, in;
    float        drop;
    int          adaln, gelu_erf;
    ff_tensor_t *emb_w, *emb_b, *pos;               /* [W, in], [W], [k, W]                  */
    ff_tensor_t *t1_w, *t1_b, *t2_w, *t2_b;         /* [W, W], [W]                           */
    ff_tensor_t *cls;                               /* [cond_classes, W] or NULL             */
    ff_tensor_t *mod_w[4 * TF_MAX_DEPTH + 2], *mod_b[4 * TF_MAX_DEPTH + 2];   /* adaln: [W, W], [W]; add: */
                                                    /* LayerNorm gamma (mod_w) / beta (mod_b) [W] */
    ff_tensor_t *qkv_w[TF_MAX_DEPTH], *qkv_b[TF_MAX_DEPTH];   /* [3W, W], [3W]               */
    ff_tensor_t *o_w[TF_MAX_DEPTH], *o_b[TF_MAX_DEPTH];       /* [W, W], [W]                 */
    ff_tensor_t *f1_w[TF_MAX_DEPTH], *f1_b[TF_MAX_DEPTH];     /* [M, W], [M]                 */
    ff_tensor_t *f2_w[TF_MAX_DEPTH], *f2_b[TF_MAX_DEPTH];     /* [W, M], [W]                 */
    ff_tensor_t *out_w, *out_b;                     /* [d+1, W], [d+1]                       */
} tf;

static ff_status add_p(ff_params_t *p, ff_rng_t *rng, const char *name, int ndim, const int64_t *shape,
                       ff_init_kind kind, double fan_in, ff_tensor_t **out) {
    ff_param_init init = { kind, kind == FF_INIT_UNIFORM ? (float)(1.0 / sqrt(fan_in)) : 1.0f };
    return ff_params_add(p, name, ndim, shape, init, rng, out);
}

/* Linear(in -> out) as <name>.weight [out, in] and <name>.bias [out]; zero init when zero. */
static ff_status add_linear(ff_params_t *p, ff_rng_t *rng, const char *name, int64_t out, int64_t in, int zero,
                            ff_tensor_t **w, ff_tensor_t **b) {
    char nm[64];
    ff_init_kind k = zero ? FF_INIT_ZEROS : FF_INIT_UNIFORM;
    snprintf(nm, sizeof nm, "%s.weight", name);
    FF_TRY(add_p(p, rng, nm, 2, (int64_t[]){ out, in }, k, (double)in, w));
    snprintf(nm, sizeof nm, "%s.bias", name);
    return add_p(p, rng, nm, 1, (int64_t[]){ out }, k, (double)in, b);
}

static ff_status get_int_in(const ff_options *o, const char *key, int64_t lo, int64_t hi, int64_t *v) {
    FF_TRY(ff_options_get_int(o, key, v));
    if (*v < lo || *v > hi)
        return ff_errorf(FF_EINVAL, "network \"transformer\": option \"%s\" must be in [%lld, %lld], got %lld",
                         key, (long long)lo, (long long)hi, (long long)*v);
    return FF_OK;
}

static ff_status create_params(tf *m, ff_params_t *params, ff_rng_t *rng) {
    const ff_space *sp = &m->space;
    const int64_t W = m->W;
    char nm[48];
    FF_TRY(add_linear(params, rng, "embed", W, m->in, 0, &m->emb_w, &m->emb_b));
    FF_TRY(add_p(params, rng, "pos", 2, (int64_t[]){ sp->k, W }, FF_INIT_NORMAL, 1, &m->pos));
    FF_TRY(add_linear(params, rng, "temb0", W, W, 0, &m->t1_w, &m->t1_b));
    FF_TRY(add_linear(params, rng, "temb1", W, W, 0, &m->t2_w, &m->t2_b));
    if (sp->cond_classes > 0)
        FF_TRY(add_p(params, rng, "cls", 2, (int64_t[]){ sp->cond_classes, W }, FF_INIT_NORMAL, 1, &m->cls));
    /* norms: block l uses 2l (attention) and 2l+1 (MLP); the final norm is 2D. adaln: norm j has
     * modulation Linears mod[2j] (scale) and mod[2j+1] (shift); add: gamma mod_w[j], beta mod_b[j]. */
    for (int64_t j = 0; j <= 2 * m->D; j++) {
        if (m->adaln) {
            snprintf(nm, sizeof nm, "norm%lld.scale", (long long)j);
            FF_TRY(add_linear(params, rng, nm, W, W, 1, &m->mod_w[2 * j], &m->mod_b[2 * j]));
            snprintf(nm, sizeof nm, "norm%lld.shift", (long long)j);
            FF_TRY(add_linear(params, rng, nm, W, W, 1, &m->mod_w[2 * j + 1], &m->mod_b[2 * j + 1]));
        } else {
            snprintf(nm, sizeof nm, "norm%lld.weight", (long long)j);
            FF_TRY(add_p(params, rng, nm, 1, (int64_t[]){ W }, FF_INIT_ONES, 1, &m->mod_w[j]));
            snprintf(nm, sizeof nm, "norm%lld.bias", (long long)j);
            FF_TRY(add_p(params, rng, nm, 1, (int64_t[]){ W }, FF_INIT_ZEROS, 1, &m->mod_b[j]));
        }
    }
    for (int64_t l = 0; l < m->D; l++) {
        snprintf(nm, sizeof nm, "block%lld.qkv", (long long)l);
        FF_TRY(add_linear(params, rng, nm, 3 * W, W, 0, &m->qkv_w[l], &m->qkv_b[l]));
        snprintf(nm, sizeof nm, "block%lld.proj", (long long)l);
        FF_TRY(add_linear(params, rng, nm, W, W, 0, &m->o_w[l], &m->o_b[l]));
        snprintf(nm, sizeof nm, "block%lld.mlp0", (long long)l);
        FF_TRY(add_linear(params, rng, nm, m->M, W, 0, &m->f1_w[l], &m->f1_b[l]));
        snprintf(nm, sizeof nm, "block%lld.mlp1", (long long)l);
        FF_TRY(add_linear(params, rng, nm, W, m->M, 0, &m->f2_w[l], &m->f2_b[l]));
    }
    return add_linear(params, rng, "out", sp->d + 1, W, 0, &m->out_w, &m->out_b);
}

static ff_status tf_create(const ff_options *opts, const ff_space *space, ff_params_t *params,
                           ff_rng_t *rng, void **state) {
    ff_status s;
    double ratio, drop;
    const char *cond = NULL, *gelu = NULL;
    *state = NULL;
    if (!space || space->k < 1 || space->d < 1)
        return ff_errorf(FF_EINVAL, "network \"transformer\": space needs k >= 1 and d >= 1, got k=%lld d=%lld",
                         space ? (long long)space->k : 0LL, space ? (long long)space->d : 0LL);
    if (!params || !rng)
        return ff_errorf(FF_EINVAL, "network \"transformer\": params and rng are required");
    if (space->cond_classes > 0 && space->cond_channels > 0)
        return ff_errorf(FF_EINVAL, "network \"transformer\": cond_classes (%lld) and cond_channels (%lld) are "
                         "both set; one cond tensor carries only one of them",
                         (long long)space->cond_classes, (long long)space->cond_channels);
    tf *m = calloc(1, sizeof *m);
    if (!m) return ff_errorf(FF_ENOMEM, "network \"transformer\": out of memory");
    m->space = *space;
    if ((s = get_int_in(opts, "width", 2, 1 << 16, &m->W)) != FF_OK) goto fail;
    if ((s = get_int_in(opts, "depth", 1, TF_MAX_DEPTH, &m->D)) != FF_OK) goto fail;
    if ((s = get_int_in(opts, "heads", 1, m->W, &m->H)) != FF_OK) goto fail;
    if ((s = ff_options_get_number(opts, "mlp_ratio", &ratio)) != FF_OK) goto fail;
    if ((s = ff_options_get_number(opts, "dropout", &drop)) != FF_OK) goto fail;
    if ((s = ff_options_get_string(opts, "conditioning", &cond)) != FF_OK) goto fail;
    if ((s = ff_options_get_string(opts, "gelu", &gelu)) != FF_OK) goto fail;
    if (m->W % m->H != 0) {
        s = ff_errorf(FF_EINVAL, "network \"transformer\": option \"width\" (%lld) must be a multiple of option "
                      "\"heads\" (%lld)", (long long)m->W, (long long)m->H);
        goto fail;
    }
    if (!(ratio > 0 && ratio * (double)m->W >= 0.5 && ratio * (double)m->W <= (double)(1 << 20))) {
        s = ff_errorf(FF_EINVAL, "network \"transformer\": option \"mlp_ratio\" must give an MLP width in "
                      "[1, 1048576], got %g (width %lld)", ratio, (long long)m->W);
        goto fail;
    }
    if (!(drop >= 0 && drop < 1)) {
        s = ff_errorf(FF_EINVAL, "network \"transformer\": option \"dropout\" must be in [0, 1), got %g", drop);
        goto fail;
    }
    if (strcmp(cond, "adaln") && strcmp(cond, "add")) {
        s = ff_errorf(FF_EINVAL, "network \"transformer\": option \"conditioning\" must be \"adaln\" or \"add\", "
                      "got \"%s\"", cond);
        goto fail;
    }
    if (strcmp(gelu, "tanh") && strcmp(gelu, "erf")) {
        s = ff_errorf(FF_EINVAL, "network \"transformer\": option \"gelu\" must be \"tanh\" or \"erf\", got \"%s\"",
                      gelu);
        goto fail;
    }
    m->adaln = strcmp(cond, "adaln") == 0;
    m->gelu_erf = strcmp(gelu, "erf") == 0;
    m->M = (int64_t)llround(ratio * (double)m->W);
    m->drop = (float)drop;
    m->in = space->d + 1 + (space->cond_channels > 0 ? space->cond_channels : 0);
    if ((s = create_params(m, params, rng)) != FF_OK) goto fail;
    *state = m;
    return FF_OK;
fail:
    free(m);
    return s;
}

/* Norm j of h [n, k, W]; mods: for adaln the [nt, 1, W] scale and shift of norm j. */
static ff_tensor_t *norm(tf *m, ff_tape_t *tp, ff_tensor_t *h, int64_t j, ff_tensor_t *const *mods) {
    if (!m->adaln) return ff_layer_norm(tp, h, m->mod_w[j], m->mod_b[j], 1e-5f);
    ff_tensor_t *a = ff_layer_norm(tp, h, NULL, NULL, 1e-6f);
    return ff_add(tp, ff_mul(tp, a, mods[2 * j]), mods[2 * j + 1]);
}

static ff_tensor_t *tf_forward(void *state, ff_tape_t *tp, ff_tensor_t *x_t, ff_tensor_t *t, ff_tensor_t *cond) {
    tf *m = state;
    const ff_space *sp = &m->space;
    const int64_t n = x_t ? x_t->shape[0] : 0, W = m->W, half = W / 2;
    /* t is a constant input (training regresses on x_t; the likelihood differentiates in x only).
     * One row of time features when all rows share t and no class label joins the embedding. */
    ff_tensor_t *tt = ff_reshape(tp, t, 1, (int64_t[]){ n });
    if (!tt) return NULL;
    int one_t = sp->cond_classes <= 0 && n > 0;
    for (int64_t i = 1; one_t && i < n; i++) one_t = tt->data[i] == tt->data[0];
    const int64_t nt = one_t ? 1 : n;
    ff_tensor_t *feat = ff_tape_alloc(tp, 2, (int64_t[]){ nt, W });
    if (!feat) return NULL;
    for (int64_t i = 0; i < nt; i++)
        for (int64_t j = 0; j < half; j++) {
            double a = 1000.0 * (double)tt->data[i] * exp(-log(10000.0) * (double)j / (double)half);
            feat->data[i * W + j] = (float)sin(a);
            feat->data[i * W + half + j] = (float)cos(a);   /* odd W: the last column stays 0 */
        }
    ff_tensor_t *e = ff_linear(tp, ff_silu(tp, ff_linear(tp, feat, m->t1_w, m->t1_b)), m->t2_w, m->t2_b);
    if (sp->cond_classes > 0)
        e = ff_add(tp, e, ff_reshape(tp, ff_embedding(tp, m->cls, cond), 2, (int64_t[]){ n, W }));

    ff_tensor_t *x = ff_reshape(tp, x_t, 3, (int64_t[]){ n, sp->k, sp->d + 1 });
    if (sp->cond_channels > 0)
        x = ff_concat(tp, x, ff_reshape(tp, cond, 3, (int64_t[]){ n, sp->k, sp->cond_channels }));
    ff_tensor_t *h = ff_add(tp, ff_linear(tp, x, m->emb_w, m->emb_b), m->pos);

    ff_tensor_t *mods[4 * TF_MAX_DEPTH + 2] = { 0 };
    if (m->adaln) {
        ff_tensor_t *se = ff_silu(tp, e);
        for (int64_t j = 0; j < 4 * m->D + 2; j++) {
            ff_tensor_t *v = ff_linear(tp, se, m->mod_w[j], m->mod_b[j]);
            if (j % 2 == 0) v = ff_add_scalar(tp, v, 1.0f);                 /* 1 + scale */
            mods[j] = ff_reshape(tp, v, 3, (int64_t[]){ nt, 1, W });
        }
    } else {
        h = ff_add(tp, h, ff_reshape(tp, e, 3, (int64_t[]){ nt, 1, W }));
    }
    for (int64_t l = 0; l < m->D; l++) {
        ff_tensor_t *a = ff_linear(tp, norm(m, tp, h, 2 * l, mods), m->qkv_w[l], m->qkv_b[l]);
        a = ff_linear(tp, ff_attention(tp, a, (int)m->H), m->o_w[l], m->o_b[l]);
        h = ff_add(tp, h, ff_dropout(tp, a, m->drop));
        a = ff_linear(tp, norm(m, tp, h, 2 * l + 1, mods), m->f1_w[l], m->f1_b[l]);
        a = m->gelu_erf ? ff_gelu(tp, a) : ff_gelu_tanh(tp, a);
        a = ff_linear(tp, a, m->f2_w[l], m->f2_b[l]);
        h = ff_add(tp, h, ff_dropout(tp, a, m->drop));
    }
    return ff_linear(tp, norm(m, tp, h, 2 * m->D, mods), m->out_w, m->out_b);
}

static void tf_destroy(void *state) { free(state); }

static const ff_network_vtable vtable = {
    .create = tf_create, .forward = tf_forward, .destroy = tf_destroy, .forward_reentrant = 1,
};

static const ff_option_spec options[] = {
    { "width",        FF_OPT_INT,    "256",   "model width (a multiple of heads)" },
    { "depth",        FF_OPT_INT,    "4",     "number of pre-norm blocks" },
    { "heads",        FF_OPT_INT,    "4",     "attention heads" },
    { "mlp_ratio",    FF_OPT_NUMBER, "4",     "MLP hidden width / width" },
    { "dropout",      FF_OPT_NUMBER, "0",     "dropout on the residual branches (training only)" },
    { "conditioning", FF_OPT_STRING, "adaln", "time conditioning: adaln (DiT scale/shift) or add" },
    { "gelu",         FF_OPT_STRING, "tanh",  "MLP activation: tanh (GELU tanh form) or erf (exact GELU)" },
    { NULL, 0, NULL, NULL },
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_NETWORK, .vtable_size = sizeof vtable,
    .name = "transformer", .version = "1.0.0",
    .summary = "bidirectional transformer encoder over the positions, adaLN time conditioning (text)",
    .options = options,
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
