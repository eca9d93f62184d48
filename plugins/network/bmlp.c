/* plugins/network/bmlp.c — the paper's toy network ("BestMLP", docs/PAPER_PROTOCOLS.md §2): a residual MLP on the
 * flattened sequence with the time embedding concatenated to the input of every block.
 *
 * Options:
 *   hidden  int     512   width of the hidden blocks
 *   depth   int     4     number of Linear blocks (>= 1): in -> hidden, (depth-2) x hidden -> hidden
 *                         with residual connections, hidden -> out; depth 1 is a single in -> out block
 *   emb     int     64    width of the time embedding Linear(1 -> emb) of raw t
 *   slope   number  0.01  LeakyReLU slope, applied after every block but the last
 * Conditioning: space.cond_classes > 0 adds a learned class embedding [cond_classes, emb]
 * (cond: [n] ids) concatenated beside the time embedding; space.cond_channels > 0 concatenates the
 * flattened per-position signal (cond: [n, k, cond_channels]) to the network input.
 * Parameters: temb.weight [emb, 1], temb.bias [emb], cls [cond_classes, emb] (with classes), and per
 * block i: block<i>.weight_h [out_i, in_i] (the block input's columns of the block's Linear),
 * block<i>.weight_e [out_i, E] (the embedding's columns, E = emb, 2*emb with classes), block<i>.bias
 * [out_i]. Count (k*(d+1) = D, no condition): (D+emb)*hidden + hidden + (depth-2)*((hidden+emb)*hidden
 * + hidden) + (hidden+emb)*D + D + 2*emb; = 624,256 + 4,356*K for k = 4, d+1 = K, the defaults.
 * Init: PyTorch's Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, with
 * fan_in = in_i + E for both halves of a block (the fan-in of the concatenated Linear).
 * Cost per sample: about 2 * parameter count flops forward.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <fisherflow/plugin.h>

#define BMLP_MAX_DEPTH 64

typedef struct bmlp {
    ff_space     space;
    int64_t      hidden, depth, emb, in, out;  /* in = k*(d+1) (+ k*cond_channels), out = k*(d+1) */
    float        slope;
    ff_tensor_t *temb_w, *temb_b;              /* [emb, 1], [emb]                              */
    ff_tensor_t *cls;                          /* [cond_classes, emb] or NULL                  */
    ff_tensor_t *wh[BMLP_MAX_DEPTH];           /* block i: [out_i, in_i]                       */
    ff_tensor_t *we[BMLP_MAX_DEPTH];           /* [out_i, emb (+ emb)]                         */
    ff_tensor_t *b[BMLP_MAX_DEPTH];            /* [out_i]                                      */
} bmlp;

static ff_status add_param(ff_params_t *p, ff_rng_t *rng, const char *name, const char *part, int ndim,
                           const int64_t *shape, int64_t fan_in, ff_tensor_t **out) {
    char nm[48];
    ff_param_init init = { FF_INIT_UNIFORM, (float)(1.0 / sqrt((double)fan_in)) };
    snprintf(nm, sizeof nm, "%s.%s", name, part);
    return ff_params_add(p, nm, ndim, shape, init, rng, out);
}

static ff_status get_positive(const ff_options *o, const char *key, int64_t max, int64_t *v) {
    FF_TRY(ff_options_get_int(o, key, v));
    if (*v < 1 || *v > max)
        return ff_errorf(FF_EINVAL, "network \"bmlp\": option \"%s\" must be in [1, %lld], got %lld",
                         key, (long long)max, (long long)*v);
    return FF_OK;
}

static ff_status bmlp_create(const ff_options *opts, const ff_space *space, ff_params_t *params,
                             ff_rng_t *rng, void **state) {
    ff_status s;
    double slope;
    *state = NULL;
    if (!space || space->k < 1 || space->d < 1)
        return ff_errorf(FF_EINVAL, "network \"bmlp\": space needs k >= 1 and d >= 1, got k=%lld d=%lld",
                         space ? (long long)space->k : 0LL, space ? (long long)space->d : 0LL);
    if (!params || !rng)
        return ff_errorf(FF_EINVAL, "network \"bmlp\": params and rng are required");
    bmlp *m = calloc(1, sizeof *m);
    if (!m) return ff_errorf(FF_ENOMEM, "network \"bmlp\": out of memory");
    m->space = *space;
    if ((s = get_positive(opts, "hidden", 1 << 20, &m->hidden)) != FF_OK) goto fail;
    if ((s = get_positive(opts, "depth", BMLP_MAX_DEPTH, &m->depth)) != FF_OK) goto fail;
    if ((s = get_positive(opts, "emb", 1 << 20, &m->emb)) != FF_OK) goto fail;
    if ((s = ff_options_get_number(opts, "slope", &slope)) != FF_OK) goto fail;
    if (!isfinite(slope)) {
        s = ff_errorf(FF_EINVAL, "network \"bmlp\": option \"slope\" must be finite, got %g", slope);
        goto fail;
    }
    m->slope = (float)slope;
    m->out = space->k * (space->d + 1);
    m->in = m->out + space->k * (space->cond_channels > 0 ? space->cond_channels : 0);

    if ((s = add_param(params, rng, "temb", "weight", 2, (int64_t[]){ m->emb, 1 }, 1, &m->temb_w)) != FF_OK ||
        (s = add_param(params, rng, "temb", "bias", 1, (int64_t[]){ m->emb }, 1, &m->temb_b)) != FF_OK) goto fail;
    int64_t extra = m->emb;                       /* concatenated to every block's input */
    if (space->cond_classes > 0) {
        ff_param_init init = { FF_INIT_NORMAL, 1.0f };   /* PyTorch's nn.Embedding default */
        if ((s = ff_params_add(params, "cls", 2, (int64_t[]){ space->cond_classes, m->emb }, init,
                               rng, &m->cls)) != FF_OK) goto fail;
        extra += m->emb;
    }
    /* The block's Linear over [h; e] as two parameters, one per column block, so each is a whole
     * parameter with a contiguous gradient (forward: W [h; e] = h W_h^T + e W_e^T). */
    for (int64_t i = 0; i < m->depth; i++) {
        char name[32];
        int64_t in = (i == 0 ? m->in : m->hidden);
        int64_t out = (i == m->depth - 1 ? m->out : m->hidden);
        snprintf(name, sizeof name, "block%lld", (long long)i);
        if ((s = add_param(params, rng, name, "weight_h", 2, (int64_t[]){ out, in }, in + extra, &m->wh[i])) != FF_OK ||
            (s = add_param(params, rng, name, "weight_e", 2, (int64_t[]){ out, extra }, in + extra, &m->we[i])) != FF_OK ||
            (s = add_param(params, rng, name, "bias", 1, (int64_t[]){ out }, in + extra, &m->b[i])) != FF_OK) goto fail;
    }
    *state = m;
    return FF_OK;
fail:
    free(m);
    return s;
}

static ff_tensor_t *bmlp_forward(void *state, ff_tape_t *tp, ff_tensor_t *x_t, ff_tensor_t *t,
                                 ff_tensor_t *cond) {
    bmlp *m = state;
    const ff_space *sp = &m->space;
    int64_t n = x_t ? x_t->shape[0] : 0;
    /* Shape errors surface through the ops' messages (reshape / concat / linear). A reshape checks
     * the element count only; the host (ff_flow_*) checks [n, k, d+1] before calling. */
    ff_tensor_t *x = ff_reshape(tp, ff_reshape(tp, x_t, 3, (int64_t[]){ n, sp->k, sp->d + 1 }),
                                2, (int64_t[]){ n, m->out });
    if (sp->cond_channels > 0) {
        ff_tensor_t *c = ff_reshape(tp, cond, 3, (int64_t[]){ n, sp->k, sp->cond_channels });
        x = ff_concat(tp, x, ff_reshape(tp, c, 2, (int64_t[]){ n, sp->k * sp->cond_channels }));
    }
    /* Block i computes W_i [h; e] + b_i as h W_h^T + (e W_e^T + b_i), ff_linear taking the
     * per-row bias [n, out_i]: no concatenated copy of h per block. When every row has the same t and
     * no class embedding (the sampler), e is one row and e W_e^T + b_i one bias vector, computed once
     * per block and broadcast; gradients are exact in both forms (the broadcast sums over rows). */
    int one_t = sp->cond_classes <= 0 && n > 0 && t && t->ndim == 1 && t->shape[0] == n && t->data &&
                ff_tensor_is_contiguous(t) && !t->node && !(t->flags & FF_TENSOR_NEEDS_GRAD);
    for (int64_t i = 1; one_t && i < n; i++) one_t = t->data[i] == t->data[0];
    /* Without classes e = t w + c (w, c: temb's weight and bias) is affine in the scalar t, so
     * e W_e^T + b = t (W_e w)^T + (W_e c + b): two vectors per block, then an outer product with t,
     * instead of an [n, emb] x [emb, out] product per block and two more in backward (15% of a
     * K = 20 training step's flops). Same function and gradients, up to float rounding. */
    int rank1 = !one_t && sp->cond_classes <= 0;
    ff_tensor_t *e = NULL, *tcol = NULL, *temb_b_row = NULL;
    if (one_t) {          /* t is a constant here: no gradient to route. Its value as a [1, 1]
                           * arena tensor (the state stays untouched: forward is reentrant). */
        ff_tensor_t *t1 = ff_tape_alloc(tp, 2, (int64_t[]){ 1, 1 });
        if (t1) t1->data[0] = t->data[0];
        e = ff_linear(tp, t1, m->temb_w, m->temb_b);
    } else if (rank1) {
        tcol = ff_reshape(tp, t, 2, (int64_t[]){ n, 1 });
        temb_b_row = ff_reshape(tp, m->temb_b, 2, (int64_t[]){ 1, m->emb });
    } else {
        e = ff_linear(tp, ff_reshape(tp, t, 2, (int64_t[]){ n, 1 }), m->temb_w, m->temb_b);
    }
    if (sp->cond_classes > 0)
        e = ff_concat(tp, e, ff_reshape(tp, ff_embedding(tp, m->cls, cond), 2, (int64_t[]){ n, m->emb }));

    ff_tensor_t *h = x;
    for (int64_t i = 0; i < m->depth; i++) {
        int64_t out_i = m->b[i]->shape[0];
        ff_tensor_t *z;
        if (rank1) {
            ff_tensor_t *u = ff_matmul(tp, m->we[i], m->temb_w);                       /* [out, 1] */
            ff_tensor_t *v = ff_reshape(tp, ff_linear(tp, temb_b_row, m->we[i], m->b[i]), 1,
                                        (int64_t[]){ out_i });                          /* [out]    */
            z = ff_linear(tp, tcol, u, v);                                              /* [n, out] */
        } else {
            z = ff_linear(tp, e, m->we[i], m->b[i]);
            if (one_t) z = ff_reshape(tp, z, 1, (int64_t[]){ out_i });
        }
        ff_tensor_t *y = ff_linear(tp, h, m->wh[i], z);
        if (i == m->depth - 1) { h = y; break; }
        /* residual on the hidden -> hidden blocks, h + LeakyReLU(y) in one pass */
        h = (i == 0) ? ff_leaky_relu(tp, y, m->slope) : ff_add_leaky_relu(tp, h, y, m->slope);
    }
    return ff_reshape(tp, h, 3, (int64_t[]){ n, sp->k, sp->d + 1 });
}

static void bmlp_destroy(void *state) { free(state); }

static const ff_network_vtable vtable = {
    .create = bmlp_create, .forward = bmlp_forward, .destroy = bmlp_destroy, .forward_reentrant = 1,
};

static const ff_option_spec options[] = {
    { "hidden", FF_OPT_INT,    "512",  "width of the hidden blocks" },
    { "depth",  FF_OPT_INT,    "4",    "number of Linear blocks (>= 1)" },
    { "emb",    FF_OPT_INT,    "64",   "time embedding width (Linear(1 -> emb) of raw t)" },
    { "slope",  FF_OPT_NUMBER, "0.01", "LeakyReLU negative slope" },
    { NULL, 0, NULL, NULL },
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_NETWORK, .vtable_size = sizeof vtable,
    .name = "bmlp", .version = "1.0.0",
    .summary = "residual time-conditioned MLP of the paper's toy experiment (BestMLP)",
    .options = options,
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
