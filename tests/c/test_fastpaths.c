/* test_fastpaths.c — optimised forward paths against their plain reference formulations:
 * bmlp's split blocks (W [h; e] + b = h W_h^T + (e W_e^T + b) with W_h, W_e two parameters and the
 * second product as ff_linear's per-row bias; without classes that product as the rank-1 t (W_e w)^T +
 * (W_e c + b) of the affine time embedding; the one-row embedding when all t are equal)
 * against ff_concat of [h; e] and of [W_h, W_e] + ff_linear, outputs and every gradient (x and all
 * parameters), and the sampler's constant t; ff_linear's bias shapes ([O] and the output's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/fisherflow.h>
#include "ff_test.h"

/* The BMLP of plugins/network/bmlp.c written with concat, from its parameters (defaults: depth 4):
 * each block's Linear on [h; e] with the weight [W_h, W_e] concatenated along its columns. */
static ff_tensor_t *bmlp_reference(ff_tape_t *tp, ff_params_t *P, const ff_space *sp, ff_tensor_t *x,
                                   ff_tensor_t *t, ff_tensor_t *cond) {
    int64_t n = x->shape[0], D = sp->k * (sp->d + 1);
    ff_tensor_t *h = ff_reshape(tp, x, 2, (int64_t[]){ n, D });
    ff_tensor_t *e = ff_linear(tp, ff_reshape(tp, t, 2, (int64_t[]){ n, 1 }), ff_params_find(P, "net.temb.weight"),
                               ff_params_find(P, "net.temb.bias"));
    if (sp->cond_classes > 0) {
        ff_tensor_t *c = ff_embedding(tp, ff_params_find(P, "net.cls"), cond);
        e = ff_concat(tp, e, ff_reshape(tp, c, 2, (int64_t[]){ n, c->shape[c->ndim - 1] }));
    }
    for (int i = 0; i < 4; i++) {
        char wh[32], we[32], bn[32];
        snprintf(wh, sizeof wh, "net.block%d.weight_h", i);
        snprintf(we, sizeof we, "net.block%d.weight_e", i);
        snprintf(bn, sizeof bn, "net.block%d.bias", i);
        ff_tensor_t *w = ff_concat(tp, ff_params_find(P, wh), ff_params_find(P, we));
        ff_tensor_t *y = ff_linear(tp, ff_concat(tp, h, e), w, ff_params_find(P, bn));
        if (i == 3) { h = y; break; }
        y = ff_leaky_relu(tp, y, 0.01f);
        h = i == 0 ? y : ff_add(tp, h, y);
    }
    return ff_reshape(tp, h, 3, (int64_t[]){ n, sp->k, sp->d + 1 });
}

/* The cnn1d of plugins/network/cnn1d.c in its plain form, from its parameters and documented maths
 * (default options but `hidden`, here from the parameter shapes): Fourier features of t from the
 * frequencies W_j = 30 N(0,1) drawn from seed 0, temb = ReLU(Linear); feat = ReLU(conv_in(x)); per
 * layer h = LayerNorm(feat + Dense(temb)), feat = feat + ReLU(conv(h)) with ff_relu and ff_add as
 * two ops; dilations 1,1,4,16,64, kernel 9, padding 4 * dilation; two 1x1 convs. */
static ff_tensor_t *cnn1d_reference(ff_tape_t *tp, ff_params_t *P, const ff_space *sp, ff_tensor_t *x,
                                    ff_tensor_t *t, ff_tensor_t *cond) {
    (void)cond;
    const int64_t n = x->shape[0], H = ff_params_find(P, "net.temb.bias")->shape[0], nf = H / 2;
    static const int dil[5] = { 1, 1, 4, 16, 64 };
    ff_rng_t fr;
    ff_rng_seed(&fr, 0);
    ff_tensor_t *ff = ff_tape_alloc(tp, 2, (int64_t[]){ n, 2 * nf });
    double *w = malloc(sizeof(double) * (size_t)nf);
    for (int64_t j = 0; j < nf; j++) w[j] = (float)(30.0 * ff_rng_normal(&fr));
    for (int64_t i = 0; ff && i < n; i++)
        for (int64_t j = 0; j < nf; j++) {
            ff->data[i * 2 * nf + j] = (float)sin(2.0 * M_PI * w[j] * t->data[i]);
            ff->data[i * 2 * nf + nf + j] = (float)cos(2.0 * M_PI * w[j] * t->data[i]);
        }
    free(w);
    ff_tensor_t *e = ff_relu(tp, ff_linear(tp, ff, ff_params_find(P, "net.temb.weight"), ff_params_find(P, "net.temb.bias")));
    ff_tensor_t *feat = ff_relu(tp, ff_conv1d(tp, ff_reshape(tp, x, 3, (int64_t[]){ n, sp->k, sp->d + 1 }),
                                              ff_params_find(P, "net.conv_in.weight"),
                                              ff_params_find(P, "net.conv_in.bias"), 1, 4));
    for (int i = 0; i < 5; i++) {
        char nm[6][48];
        const char *suffix[6] = { "dense.weight", "dense.bias", "norm.weight", "norm.bias", "conv.weight", "conv.bias" };
        for (int k = 0; k < 6; k++) snprintf(nm[k], sizeof nm[k], "net.layer%d.%s", i, suffix[k]);
        ff_tensor_t *te = ff_reshape(tp, ff_linear(tp, e, ff_params_find(P, nm[0]), ff_params_find(P, nm[1])),
                                     3, (int64_t[]){ n, 1, H });
        ff_tensor_t *h = ff_layer_norm(tp, ff_add(tp, feat, te), ff_params_find(P, nm[2]), ff_params_find(P, nm[3]), 1e-5f);
        h = ff_relu(tp, ff_conv1d(tp, h, ff_params_find(P, nm[4]), ff_params_find(P, nm[5]), dil[i], 4 * dil[i]));
        feat = ff_add(tp, feat, h);
    }
    feat = ff_relu(tp, ff_conv1d(tp, feat, ff_params_find(P, "net.final0.weight"), ff_params_find(P, "net.final0.bias"), 1, 0));
    return ff_conv1d(tp, feat, ff_params_find(P, "net.final1.weight"), ff_params_find(P, "net.final1.bias"), 1, 0);
}

typedef ff_tensor_t *(*reference_fn)(ff_tape_t *, ff_params_t *, const ff_space *, ff_tensor_t *, ff_tensor_t *,
                                     ff_tensor_t *);

typedef struct result { float *y, *gx, *gp; int64_t ny, nx, np; } result;

static void run(reference_fn ref, ff_plugin_inst *inst, ff_params_t *P, ff_tape_t *tp, const ff_space *sp, ff_tensor_t *x,
                ff_tensor_t *t, ff_tensor_t *cond, const ff_tensor_t *R, result *out) {
    ff_tape_reset(tp);
    ff_params_zero_grad(P);
    ff_tensor_t *xl = ff_tape_leaf(tp, x, 1);
    ff_tensor_t *y = ref ? ref(tp, P, sp, xl, t, cond)
                         : ((const ff_network_vtable *)inst->desc->vtable)->forward(inst->state, tp, xl, t, cond);
    ff_tensor_t *loss = ff_sum_all(tp, ff_mul(tp, y, (ff_tensor_t *)R));
    FF_EXPECT(ff_tape_status(tp) == FF_OK, "%s", ff_last_error());
    if (!loss) return;
    FF_EXPECT(ff_tape_backward(tp, loss) == FF_OK, "%s", ff_last_error());
    out->ny = ff_tensor_numel(y);
    out->nx = ff_tensor_numel(x);
    out->np = ff_params_numel(P);
    out->y = malloc(sizeof(float) * (size_t)out->ny);
    out->gx = malloc(sizeof(float) * (size_t)out->nx);
    out->gp = malloc(sizeof(float) * (size_t)out->np);
    for (int64_t i = 0; i < out->ny; i++) out->y[i] = y->data[i];
    for (int64_t i = 0; i < out->nx; i++) out->gx[i] = xl->grad->data[i];
    const float *g = ff_params_grad(P);
    for (int64_t i = 0; i < out->np; i++) out->gp[i] = g[i];
}

/* max |a - b| / (scale + max |b|) over n floats */
static double rel_err(const float *a, const float *b, int64_t n) {
    double mx = 0, md = 0;
    for (int64_t i = 0; i < n; i++) {
        mx = ff_nanmax(mx, fabs((double)b[i]));
        md = ff_nanmax(md, fabs((double)a[i] - b[i]));
    }
    return md / (1e-6 + mx);
}

static void compare_net(const char *net, const ff_options *opts, reference_fn reference, const char *label,
                        int64_t n, ff_space sp, int const_t) {
    ff_params_t *P = NULL;
    ff_plugin_inst *inst = NULL;
    ff_tape_t *tp = NULL;
    ff_rng_t rng;
    ff_rng_seed(&rng, 5);
    FF_EXPECT(ff_params_new(&P) == FF_OK);
    FF_EXPECT(ff_params_set_prefix(P, "net.") == FF_OK);
    FF_EXPECT(ff_tape_new(&tp, 1 << 16) == FF_OK);
    FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_NETWORK, net, opts, &sp, P, &rng) == FF_OK, "%s", ff_last_error());
    if (!inst) goto done;
    ff_tensor_t *x = NULL, *t = NULL, *R = NULL, *cond = NULL;
    FF_EXPECT(ff_tensor_new3(&x, n, sp.k, sp.d + 1) == FF_OK);
    FF_EXPECT(ff_tensor_new1(&t, n) == FF_OK);
    FF_EXPECT(ff_tensor_new3(&R, n, sp.k, sp.d + 1) == FF_OK);
    ff_rng_fill_normal(&rng, x, 0, 0.5);
    ff_rng_fill_normal(&rng, R, 0, 1);
    for (int64_t i = 0; i < n; i++) t->data[i] = const_t ? 0.37f : (float)ff_rng_uniform(&rng);
    if (sp.cond_classes > 0) {
        FF_EXPECT(ff_tensor_new1(&cond, n) == FF_OK);
        for (int64_t i = 0; i < n; i++) cond->data[i] = (float)(i % sp.cond_classes);
    }
    result a = { 0 }, b = { 0 };
    run(NULL, inst, P, tp, &sp, x, t, cond, R, &a);
    run(reference, inst, P, tp, &sp, x, t, cond, R, &b);
    if (a.y && b.y) {
        double ey = rel_err(a.y, b.y, a.ny), ex = rel_err(a.gx, b.gx, a.nx), ep = 0;
        /* per parameter tensor */
        for (int i = 0; i < ff_params_count(P); i++) {
            ff_tensor_t *p = ff_params_get(P, i);
            int64_t off = p->grad->data - ff_params_grad(P), np = ff_tensor_numel(p);
            double e = rel_err(a.gp + off, b.gp + off, np);
            FF_EXPECT(e < 1e-4, "%s: gradient of %s differs: rel %.3g", label, p->name, e);
            ep = fmax(ep, e);
        }
        FF_EXPECT(ey < 1e-5, "%s: output differs: rel %.3g", label, ey);
        FF_EXPECT(ex < 1e-4, "%s: d/dx differs: rel %.3g", label, ex);
        printf("  %s: rel. diff output %.2g, d/dx %.2g, d/dparams %.2g\n", label, ey, ex, ep);
    }
    free(a.y); free(a.gx); free(a.gp); free(b.y); free(b.gx); free(b.gp);
    ff_tensor_free(x); ff_tensor_free(t); ff_tensor_free(R); ff_tensor_free(cond);
done:
    ff_plugin_free(inst);
    ff_params_free(P);
    ff_tape_free(tp);
}

static void compare_case(const char *label, int64_t n, ff_space sp, int const_t) {
    compare_net("bmlp", NULL, bmlp_reference, label, n, sp, const_t);
}

FF_TEST(bmlp_split_weights_equal_concat_reference) {
    compare_case("varying t", 37, (ff_space){ 3, 6, 0, 0 }, 0);
    compare_case("constant t", 37, (ff_space){ 3, 6, 0, 0 }, 1);
    compare_case("one row", 1, (ff_space){ 2, 3, 0, 0 }, 0);
    compare_case("classes, constant t", 23, (ff_space){ 3, 4, 5, 0 }, 1);
    compare_case("classes, varying t", 23, (ff_space){ 3, 4, 5, 0 }, 0);
}

/* The sampler's constant-t fast path against the concat reference. t is built exactly as
 * core/training/flow.c's velocity evaluation builds it (grad mode off, an arena tensor from ff_tape_alloc with
 * every row equal), which is what bmlp's one-row-embedding test must recognise; the reference
 * computes the embedding of every row and concatenates [h; e] per block. (bmlp exposes no counter of
 * which path ran; compare_case above covers both paths in grad mode.) */
FF_TEST(bmlp_sampler_constant_t_equals_concat_reference) {
    const ff_space sp = { 4, 19, 0, 0 };
    const int64_t n = 64;
    ff_params_t *P = NULL;
    ff_plugin_inst *inst = NULL;
    ff_tape_t *tp = NULL;
    ff_rng_t rng;
    ff_rng_seed(&rng, 9);
    FF_EXPECT(ff_params_new(&P) == FF_OK);
    FF_EXPECT(ff_params_set_prefix(P, "net.") == FF_OK);
    FF_EXPECT(ff_tape_new(&tp, 1 << 16) == FF_OK);
    FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_NETWORK, "bmlp", NULL, &sp, P, &rng) == FF_OK, "%s", ff_last_error());
    ff_tensor_t *x = NULL;
    FF_EXPECT(ff_tensor_new3(&x, n, sp.k, sp.d + 1) == FF_OK);
    ff_rng_fill_normal(&rng, x, 0, 0.3);
    const ff_network_vtable *vt = inst ? inst->desc->vtable : NULL;
    const float ts[] = { 0.0f, 0.37f, 0.999f };
    for (int c = 0; vt && c < 3; c++) {
        ff_tape_reset(tp);
        ff_tape_set_grad(tp, 0);                                    /* as the sampler */
        ff_tensor_t *tt = ff_tape_alloc(tp, 1, (int64_t[]){ n });
        for (int64_t i = 0; tt && i < n; i++) tt->data[i] = ts[c];
        ff_tensor_t *fast = vt->forward(inst->state, tp, x, tt, NULL);
        ff_tensor_t *ref = bmlp_reference(tp, P, &sp, x, tt, NULL);
        FF_EXPECT(ff_tape_status(tp) == FF_OK && fast && ref, "t = %g: %s", (double)ts[c], ff_last_error());
        if (!fast || !ref) break;
        FF_EXPECT(ff_tensor_same_shape(fast, ref), "output shape");
        FF_EXPECT(fast->node == NULL, "grad mode off records nothing");
        double e = rel_err(fast->data, ref->data, ff_tensor_numel(ref));
        FF_EXPECT(e < 1e-5, "t = %g: constant-t output differs from the concat reference: rel %.3g",
                  (double)ts[c], e);
    }
    ff_tape_set_grad(tp, 1);
    ff_tensor_free(x);
    ff_plugin_free(inst);
    ff_params_free(P);
    ff_tape_free(tp);
}

/* y = x W^T + b by sums in double, for a [rows, K] x and a bias of `brow` floats per row (0: none,
 * O: one [O] row for all, rows*O: one row each). */
static void expect_linear(const ff_tensor_t *y, const float *x, const float *w, const float *b, int per_row,
                          int64_t rows, int64_t K, int64_t O) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t o = 0; o < O; o++) {
            double s = b ? b[(per_row ? i * O : 0) + o] : 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)x[i * K + k] * w[o * K + k];
            FF_EXPECT_NEAR(y->data[i * O + o], s, 1e-5);
        }
}

/* ff_linear's documented bias shapes (ops.h): none, [O] broadcast over the rows, the output's shape
 * (2-D and 3-D x); the bias gradient of sum(2 y) is 2 per entry for the output-shaped bias and
 * 2 * rows for [O]. Every other shape is refused naming the accepted ones. */
FF_TEST(linear_bias_shapes) {
    ff_tape_t *tp = NULL;
    FF_EXPECT(ff_tape_new(&tp, 1 << 16) == FF_OK);
    ff_rng_t rng;
    ff_rng_seed(&rng, 3);
    ff_tensor_t *x = NULL, *w = NULL, *B = NULL, *B3 = NULL, *b = NULL;
    FF_EXPECT(ff_tensor_new2(&x, 6, 3) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&w, 4, 3) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&B, 6, 4) == FF_OK);
    FF_EXPECT(ff_tensor_new3(&B3, 2, 3, 4) == FF_OK);
    FF_EXPECT(ff_tensor_new1(&b, 4) == FF_OK);
    if (!tp || !x || !w || !B || !B3 || !b) goto done;
    ff_rng_fill_normal(&rng, x, 0, 1);
    ff_rng_fill_normal(&rng, w, 0, 1);
    ff_rng_fill_normal(&rng, B, 0, 1);
    ff_rng_fill_normal(&rng, B3, 0, 1);
    ff_rng_fill_normal(&rng, b, 0, 1);
    ff_tensor_t x3 = *x;                                    /* the same rows as [2, 3, 3] */
    x3.ndim = 3;
    x3.shape[0] = 2; x3.shape[1] = 3; x3.shape[2] = 3;
    x3.stride[0] = 9; x3.stride[1] = 3; x3.stride[2] = 1;
    struct { const char *label; ff_tensor_t *x, *b; int per_row; double gb; } ok[] = {
        { "no bias",            x,   NULL, 0, 0 },
        { "[O] bias",           x,   b,    0, 2.0 * 6 },
        { "[M, O] bias",        x,   B,    1, 2.0 },
        { "[O] bias, 3-D x",    &x3, b,    0, 2.0 * 6 },
        { "[2, 3, O] bias",     &x3, B3,   1, 2.0 },
    };
    for (size_t c = 0; c < sizeof ok / sizeof ok[0]; c++) {
        ff_tape_reset(tp);
        ff_tensor_t *bl = ok[c].b ? ff_tape_leaf(tp, ok[c].b, 1) : NULL;
        ff_tensor_t *y = ff_linear(tp, ok[c].x, w, bl);
        FF_EXPECT(y != NULL, "%s: %s", ok[c].label, ff_last_error());
        if (!y) continue;
        FF_EXPECT(y->ndim == ok[c].x->ndim && y->shape[y->ndim - 1] == 4, "%s: output ndim %d", ok[c].label, y->ndim);
        expect_linear(y, x->data, w->data, ok[c].b ? ok[c].b->data : NULL, ok[c].per_row, 6, 3, 4);
        if (!bl) continue;
        FF_EXPECT(ff_tape_backward(tp, ff_sum_all(tp, ff_mul_scalar(tp, y, 2.0f))) == FF_OK, "%s: %s",
                  ok[c].label, ff_last_error());
        for (int64_t i = 0; i < ff_tensor_numel(bl); i++) FF_EXPECT_NEAR(bl->grad->data[i], ok[c].gb, 1e-5);
    }
    /* refused: [O+1], [M, O] under a 3-D x, [1, O], [M, O+1], [O, M] */
    struct { ff_tensor_t *x; int ndim; int64_t shape[3]; const char *msg; } bad[] = {
        { x,   1, { 5 },       "ff_linear: x [6,3], w [4,3], b [5]: bias must be [4] or the output's shape [6,4]" },
        { &x3, 2, { 6, 4 },    "b [6,4]: bias must be [4] or the output's shape [2,3,4]" },
        { x,   2, { 1, 4 },    "b [1,4]: bias must be [4] or the output's shape [6,4]" },
        { x,   2, { 6, 5 },    "b [6,5]: bias must be" },
        { x,   2, { 4, 6 },    "b [4,6]: bias must be" },
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        ff_tensor_t *bb = NULL;
        FF_EXPECT(ff_tensor_new(&bb, bad[c].ndim, bad[c].shape) == FF_OK);
        ff_tape_reset(tp);
        FF_EXPECT(ff_linear(tp, bad[c].x, w, bb) == NULL, "case %zu accepted", c);
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_ESHAPE, bad[c].msg);
        ff_tensor_free(bb);
    }
done:
    ff_tensor_free(x); ff_tensor_free(w); ff_tensor_free(B); ff_tensor_free(B3); ff_tensor_free(b);
    ff_tape_free(tp);
}

FF_MAIN()

/* cnn1d with its fused residual (ff_add_relu) and ff_conv1d's chunked im2col against the plain
 * formulation (ff_relu then ff_add): output and every gradient. 5 x 300 rows at hidden 24 (9 x 24
 * im2col columns: 1213 rows a chunk) make the residual convs run two chunks, the boundary inside a
 * sequence. */
FF_TEST(cnn1d_equals_plain_reference) {
    ff_options *o = NULL;
    FF_EXPECT(ff_options_new(&o) == FF_OK);
    FF_EXPECT(ff_options_set_int(o, "hidden", 24) == FF_OK);
    compare_net("cnn1d", o, cnn1d_reference, "cnn1d hidden 24, L 300", 5, (ff_space){ 300, 3, 0, 0 }, 0);
    compare_net("cnn1d", o, cnn1d_reference, "cnn1d hidden 24, L 37, one row", 1, (ff_space){ 37, 3, 0, 0 }, 0);
    ff_options_free(o);
}
