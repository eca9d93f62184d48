/* test_networks.c — the network plugins bmlp and cnn1d, loaded through the loader: output shapes,
 * parameter counts (docs/PAPER_PROTOCOLS.md §2, §5 formulas), gradients against central finite differences,
 * conditioning, and refused options. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/fisherflow.h>
#include "ff_test.h"

typedef struct net {
    ff_params_t    *params;
    ff_plugin_inst *inst;
    ff_tape_t      *tape;
    ff_space        space;
} net;

/* opts: alternating key, integer value, NULL-terminated (numbers only where noted). */
static ff_status net_new(net *m, const char *name, ff_space sp, ff_options *opts, uint64_t seed) {
    ff_rng_t rng;
    ff_rng_seed(&rng, seed);
    m->space = sp;
    m->inst = NULL;
    m->tape = NULL;
    FF_TRY(ff_params_new(&m->params));
    FF_TRY(ff_params_set_prefix(m->params, "net."));
    FF_TRY(ff_tape_new(&m->tape, 1 << 16));
    return ff_plugin_new(&m->inst, FF_PLUGIN_NETWORK, name, opts, &sp, m->params, &rng);
}

static void net_free(net *m) {
    ff_plugin_free(m->inst);
    ff_params_free(m->params);
    ff_tape_free(m->tape);
}

static ff_tensor_t *net_forward(net *m, ff_tensor_t *x, ff_tensor_t *t, ff_tensor_t *cond) {
    const ff_network_vtable *vt = m->inst->desc->vtable;
    return vt->forward(m->inst->state, m->tape, x, t, cond);
}

/* sum(out * R) in double, forward only (grad off). */
static double probe_loss(net *m, ff_tensor_t *x, ff_tensor_t *t, ff_tensor_t *cond, const ff_tensor_t *R) {
    ff_tape_reset(m->tape);
    ff_tape_set_grad(m->tape, 0);
    ff_tensor_t *y = net_forward(m, x, t, cond);
    ff_tape_set_grad(m->tape, 1);
    if (!y) return NAN;
    double s = 0;
    for (int64_t i = 0; i < ff_tensor_numel(y); i++) s += (double)y->data[i] * R->data[i];
    return s;
}


/* Central difference of sum(out * R) in the entry *v. ReLU kinks (and LayerNorm's curvature at tiny
 * widths) can spoil one step size, so two are tried and the one closer to `an` is returned: a wrong
 * gradient disagrees with both. */
static double central_diff(net *m, ff_tensor_t *x, ff_tensor_t *t, ff_tensor_t *cond, const ff_tensor_t *R,
                           float *v, double an) {
    const double hs[2] = { 1e-3, 3e-4 };
    double best = NAN;
    for (int k = 0; k < 2; k++) {
        float keep = *v;
        *v = keep + (float)hs[k]; double lp = probe_loss(m, x, t, cond, R);
        *v = keep - (float)hs[k]; double lm = probe_loss(m, x, t, cond, R);
        *v = keep;
        double fd = (lp - lm) / (2 * hs[k]);
        if (k == 0 || fabs(fd - an) < fabs(best - an)) best = fd;
    }
    return best;
}

/* Checks the analytic gradient of sum(out * R) w.r.t. the input x and the parameters named in
 * `names` (a few entries of each) against central differences of the float32 forward. */
static void check_grads(net *m, int64_t n, ff_tensor_t *cond, const char *const *names) {
    const ff_space *sp = &m->space;
    ff_rng_t r;
    ff_rng_seed(&r, 77);
    ff_tensor_t *x = NULL, *t = NULL, *R = NULL;
    FF_EXPECT(ff_tensor_new3(&x, n, sp->k, sp->d + 1) == FF_OK);
    FF_EXPECT(ff_tensor_new1(&t, n) == FF_OK);
    FF_EXPECT(ff_tensor_new3(&R, n, sp->k, sp->d + 1) == FF_OK);
    ff_test_fill_sphere(x, &r);
    for (int64_t i = 0; i < n; i++) t->data[i] = (float)ff_rng_uniform(&r);
    ff_rng_fill_normal(&r, R, 0, 1);

    /* analytic */
    ff_tape_reset(m->tape);
    ff_params_zero_grad(m->params);
    ff_tensor_t *xl = ff_tape_leaf(m->tape, x, 1);
    ff_tensor_t *y = net_forward(m, xl, t, cond);
    ff_tensor_t *loss = ff_sum_all(m->tape, ff_mul(m->tape, y, R));
    FF_EXPECT(ff_tape_status(m->tape) == FF_OK, "%s", ff_last_error());
    if (!loss) goto done;
    FF_EXPECT(ff_tape_backward(m->tape, loss) == FF_OK, "%s", ff_last_error());
    int64_t nx = ff_tensor_numel(x);
    float *gx = malloc((size_t)nx * sizeof *gx);
    for (int64_t i = 0; i < nx; i++) gx[i] = xl->grad ? xl->grad->data[i] : NAN;

    int checked = 0;
    double worst = 0;
    for (int64_t i = 0; i < nx; i += (nx / 7 > 0 ? nx / 7 : 1)) {
        double an = gx[i], fd = central_diff(m, x, t, cond, R, &x->data[i], an);
        FF_EXPECT(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(fd), "d/dx[%lld]: fd %.6g vs analytic %.6g", (long long)i, fd, an);
        worst = ff_nanmax(worst, fabs(fd - an));
        checked++;
    }
    free(gx);
    for (int q = 0; names[q]; q++) {
        ff_tensor_t *p = ff_params_find(m->params, names[q]);
        FF_EXPECT(p != NULL, "parameter %s missing", names[q]);
        if (!p) continue;
        int64_t np = ff_tensor_numel(p);
        for (int64_t i = 0; i < np; i += (np / 4 > 0 ? np / 4 : 1)) {
            double an = p->grad->data[i], fd = central_diff(m, x, t, cond, R, &p->data[i], an);
            FF_EXPECT(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(fd), "d/d%s[%lld]: fd %.6g vs analytic %.6g", names[q],
                      (long long)i, fd, an);
            worst = ff_nanmax(worst, fabs(fd - an));
            checked++;
        }
    }
    FF_EXPECT(checked >= 12, "only %d derivatives checked", checked);
    printf("  %d derivatives checked, max |fd - analytic| %.3g\n", checked, worst);
done:
    ff_tensor_free(x); ff_tensor_free(t); ff_tensor_free(R);
}

FF_TEST(bmlp_param_count_matches_paper) {
    /* docs/PAPER_PROTOCOLS.md §2: 624,256 + 4,356 K for k = 4 positions, d+1 = K symbols, default options. */
    int64_t Ks[] = { 5, 20, 100 };
    for (int i = 0; i < 3; i++) {
        net m;
        ff_space sp = { 4, Ks[i] - 1, 0, 0 };
        FF_EXPECT(net_new(&m, "bmlp", sp, NULL, 1) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(ff_params_numel(m.params) == 624256 + 4356 * Ks[i], "K=%lld: %lld parameters",
                  (long long)Ks[i], (long long)ff_params_numel(m.params));
        if (Ks[i] == 100) FF_EXPECT(ff_params_numel(m.params) == 1059856);
        FF_EXPECT(ff_params_find(m.params, "net.block3.weight_h") != NULL);
        FF_EXPECT(ff_params_find(m.params, "net.temb.weight") != NULL);
        /* PyTorch default init: |w| <= 1/sqrt(fan_in), fan_in of the whole block (h and e columns) */
        const char *half[] = { "net.block1.weight_h", "net.block1.weight_e", "net.block1.bias" };
        const int64_t numel[] = { 512 * 512, 512 * 64, 512 };
        for (int q = 0; q < 3; q++) {
            ff_tensor_t *w = ff_params_find(m.params, half[q]);
            double bound = 1.0 / sqrt(512.0 + 64.0), mx = 0;
            FF_EXPECT(w && ff_tensor_numel(w) == numel[q], "%s", half[q]);
            for (int64_t j = 0; w && j < ff_tensor_numel(w); j++) mx = ff_nanmax(mx, fabs(w->data[j]));
            FF_EXPECT(mx <= bound * (1 + 1e-6) && mx > 0.9 * bound, "%s: max |w| %g, bound %g", half[q], mx, bound);
        }
        net_free(&m);
    }
}

FF_TEST(bmlp_shapes_and_grads) {
    net m;
    ff_space sp = { 2, 2, 0, 0 };
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "hidden", 8);
    ff_options_set_int(o, "depth", 4);
    ff_options_set_int(o, "emb", 4);
    ff_options_set_number(o, "slope", 0.2);
    FF_EXPECT(net_new(&m, "bmlp", sp, o, 3) == FF_OK, "%s", ff_last_error());
    ff_options_free(o);
    /* (6+4)*8+8 + 2*((8+4)*8+8) + (8+4)*6+6 + 4+4 */
    FF_EXPECT(ff_params_numel(m.params) == 88 + 208 + 78 + 8, "%lld", (long long)ff_params_numel(m.params));
    ff_tensor_t *x = NULL, *t = NULL;
    ff_tensor_new3(&x, 3, 2, 3);
    ff_tensor_new1(&t, 3);
    ff_rng_t r;
    ff_rng_seed(&r, 5);
    ff_test_fill_sphere(x, &r);
    ff_tape_reset(m.tape);
    ff_tensor_t *y = net_forward(&m, x, t, NULL);
    FF_EXPECT(y && y->ndim == 3 && y->shape[0] == 3 && y->shape[1] == 2 && y->shape[2] == 3, "%s", ff_last_error());
    /* the time embedding reaches the output */
    t->data[0] = 0.9f;
    ff_tape_reset(m.tape);
    ff_tensor_t *y2 = net_forward(&m, x, t, NULL);
    FF_EXPECT(y2 && y2->data[0] != 0 && y2->data[0] != y2->data[3 * 2]);
    ff_tensor_free(x); ff_tensor_free(t);
    const char *names[] = { "net.block0.weight_h", "net.block0.weight_e", "net.block1.bias", "net.block2.weight_h",
                            "net.block2.weight_e", "net.block3.weight_h", "net.block3.weight_e",
                            "net.temb.weight", "net.temb.bias", NULL };
    check_grads(&m, 4, NULL, names);
    net_free(&m);
}

FF_TEST(bmlp_class_condition) {
    net m;
    ff_space sp = { 1, 2, 3, 0 };
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "hidden", 6);
    ff_options_set_int(o, "depth", 2);
    ff_options_set_int(o, "emb", 3);
    FF_EXPECT(net_new(&m, "bmlp", sp, o, 4) == FF_OK, "%s", ff_last_error());
    ff_options_free(o);
    /* temb 6, cls 9, block0 (3+6)*6+6, block1 (6+6)*3+3 */
    FF_EXPECT(ff_params_numel(m.params) == 6 + 9 + 60 + 39, "%lld", (long long)ff_params_numel(m.params));
    ff_tensor_t *x = NULL, *t = NULL, *c = NULL;
    ff_tensor_new3(&x, 2, 1, 3);
    ff_tensor_new1(&t, 2);
    ff_tensor_new1(&c, 2);
    ff_rng_t r;
    ff_rng_seed(&r, 6);
    ff_test_fill_sphere(x, &r);
    memcpy(x->data + 3, x->data, 3 * sizeof(float));   /* same input, different class */
    c->data[0] = 0; c->data[1] = 2;
    ff_tape_reset(m.tape);
    ff_tensor_t *y = net_forward(&m, x, t, c);
    FF_EXPECT(y && y->shape[0] == 2, "%s", ff_last_error());
    FF_EXPECT(y && y->data[0] != y->data[3], "class has no effect");
    ff_tensor_free(x); ff_tensor_free(t);
    const char *names[] = { "net.cls", "net.block0.weight_h", "net.block0.weight_e", NULL };
    ff_tensor_free(c);
    ff_tensor_new1(&c, 4);
    c->data[0] = 1; c->data[1] = 2; c->data[2] = 0; c->data[3] = 1;
    check_grads(&m, 4, c, names);
    ff_tensor_free(c);
    net_free(&m);
}

FF_TEST(cnn1d_param_count_matches_paper) {
    /* docs/PAPER_PROTOCOLS.md §5: hidden 128, 4 stacks (20 layers), 4 symbols: 3,325,316 trainable parameters. */
    net m;
    ff_space sp = { 16, 3, 0, 0 };
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "stacks", 4);
    FF_EXPECT(net_new(&m, "cnn1d", sp, o, 1) == FF_OK, "%s", ff_last_error());
    ff_options_free(o);
    FF_EXPECT(ff_params_numel(m.params) == 3325316, "%lld", (long long)ff_params_numel(m.params));
    net_free(&m);
    /* defaults: hidden 128, 1 stack: 4736 + 16512 + 5*(147584 + 16512 + 256) + 16512 + 516 */
    FF_EXPECT(net_new(&m, "cnn1d", sp, NULL, 1) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_params_numel(m.params) == 4736 + 16512 + 5 * 164352 + 16512 + 516, "%lld",
              (long long)ff_params_numel(m.params));
    net_free(&m);
}

/* One forward pass of m on 2 points of (S^3_+)^k at t = 0 and 0.5: the output is [2, k, 4]. */
static void forward_has_shape(net *m, int64_t k) {
    ff_tensor_t *x = NULL, *t = NULL;
    ff_tensor_new3(&x, 2, k, 4);
    ff_tensor_new1(&t, 2);
    ff_rng_t r;
    ff_rng_seed(&r, 9);
    ff_test_fill_sphere(x, &r);
    t->data[1] = 0.5f;
    ff_tape_reset(m->tape);
    ff_tensor_t *y = net_forward(m, x, t, NULL);
    FF_EXPECT(y && y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == k && y->shape[2] == 4, "%s", ff_last_error());
    ff_tensor_free(x); ff_tensor_free(t);
}

FF_TEST(cnn1d_shapes_and_grads) {
    net m;
    ff_space sp = { 7, 3, 0, 0 };
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "hidden", 6);
    ff_options_set_int(o, "kernel", 3);
    ff_options_set_numbers(o, "dilations", (double[]){ 1, 2, 4 }, 3);
    ff_options_set_number(o, "fourier_scale", 1.0);
    FF_EXPECT(net_new(&m, "cnn1d", sp, o, 2) == FF_OK, "%s", ff_last_error());
    ff_options_free(o);
    forward_has_shape(&m, 7);
    const char *names[] = { "net.conv_in.weight", "net.temb.weight", "net.layer0.conv.weight",
                            "net.layer2.dense.weight", "net.layer1.norm.weight", "net.layer2.norm.bias",
                            "net.final0.weight", "net.final1.bias", NULL };
    check_grads(&m, 3, NULL, names);
    net_free(&m);
}

FF_TEST(cnn1d_conditions) {
    /* per-position signal channels */
    net m;
    ff_space sp = { 5, 3, 0, 2 };
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "hidden", 4);
    ff_options_set_int(o, "kernel", 3);
    FF_EXPECT(net_new(&m, "cnn1d", sp, o, 2) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_params_find(m.params, "net.conv_in.weight")->shape[2] == 6);
    ff_tensor_t *c = NULL;
    ff_tensor_new3(&c, 3, 5, 2);
    for (int i = 0; i < 30; i++) c->data[i] = (float)(i % 7) / 7.0f;
    const char *names[] = { "net.conv_in.weight", NULL };
    check_grads(&m, 3, c, names);
    ff_tensor_free(c);
    net_free(&m);
    /* class labels */
    ff_space sc = { 5, 3, 4, 0 };
    FF_EXPECT(net_new(&m, "cnn1d", sc, o, 2) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_params_find(m.params, "net.cls") != NULL);
    ff_tensor_new1(&c, 3);
    c->data[0] = 3; c->data[1] = 0; c->data[2] = 1;
    const char *names2[] = { "net.cls", "net.temb.bias", NULL };
    check_grads(&m, 3, c, names2);
    ff_tensor_free(c);
    net_free(&m);
    /* both at once is refused */
    ff_space sb = { 5, 3, 4, 2 };
    FF_EXPECT_ERROR(net_new(&m, "cnn1d", sb, o, 2), FF_EINVAL, "cond_classes (4) and cond_channels (2)");
    net_free(&m);
    ff_options_free(o);
}

static void expect_refused(const char *name, const char *key, int is_num, double v, const char *sub) {
    net m;
    ff_space sp = { 2, 2, 0, 0 };
    ff_options *o = NULL;
    ff_options_new(&o);
    if (is_num) ff_options_set_number(o, key, v);
    else ff_options_set_int(o, key, (int64_t)v);
    FF_EXPECT_ERROR(net_new(&m, name, sp, o, 1), FF_EINVAL, sub);
    FF_EXPECT(m.inst == NULL);
    FF_EXPECT(strstr(ff_last_error(), key) != NULL, "message \"%s\" does not name %s", ff_last_error(), key);
    net_free(&m);
    ff_options_free(o);
}

FF_TEST(bad_options_refused) {
    expect_refused("bmlp", "hiden", 0, 3, "unknown option \"hiden\"");
    expect_refused("bmlp", "hidden", 0, 0, "option \"hidden\" must be in [1,");
    expect_refused("bmlp", "depth", 0, 0, "option \"depth\"");
    expect_refused("bmlp", "depth", 0, 1000, "option \"depth\"");
    expect_refused("bmlp", "emb", 0, -2, "option \"emb\"");
    expect_refused("bmlp", "slope", 1, INFINITY, "option \"slope\" must be finite");
    expect_refused("cnn1d", "kernel", 0, 4, "option \"kernel\" must be odd");
    expect_refused("cnn1d", "hidden", 0, 1, "option \"hidden\"");
    expect_refused("cnn1d", "stacks", 0, 0, "\"stacks\"");
    expect_refused("cnn1d", "fourier_scale", 1, -1, "option \"fourier_scale\" must be > 0");
    expect_refused("cnn1d", "dilations", 1, 0.5, "option \"dilations\": value 1 is 0.5");
    /* a wrong type is caught by the loader, naming the option */
    net m;
    ff_space sp = { 2, 2, 0, 0 };
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_string(o, "depth", "four");
    FF_EXPECT(net_new(&m, "bmlp", sp, o, 1) != FF_OK);
    FF_EXPECT(strstr(ff_last_error(), "depth") != NULL, "%s", ff_last_error());
    net_free(&m);
    ff_options_free(o);
}

/* ---- transformer ------------------------------------------------------------------------------ */

static ff_options *tf_opts(int64_t width, int64_t depth, int64_t heads, double ratio, const char *cond) {
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "width", width);
    ff_options_set_int(o, "depth", depth);
    ff_options_set_int(o, "heads", heads);
    ff_options_set_number(o, "mlp_ratio", ratio);
    if (cond) ff_options_set_string(o, "conditioning", cond);
    return o;
}

/* Every parameter redrawn from U(-a, a): the zero-initialised modulations would otherwise hide the
 * time embedding's gradient path from the check. */
static void perturb_params(net *m, float a, uint64_t seed) {
    ff_rng_t r;
    ff_rng_seed(&r, seed);
    for (int i = 0; i < ff_params_count(m->params); i++) ff_rng_fill_uniform(&r, ff_params_get(m->params, i), -a, a);
}

/* A transformer from opts (freed here) with every parameter perturbed (seed + 1). */
static int tf_new(net *m, ff_space sp, ff_options *o, uint64_t seed) {
    ff_status s = net_new(m, "transformer", sp, o, seed);
    FF_EXPECT(s == FF_OK, "%s", ff_last_error());
    ff_options_free(o);
    if (s == FF_OK) perturb_params(m, 0.5f, seed + 1);
    return s == FF_OK;
}

/* The header's count: W*in + W + k*W + 2(W^2 + W) [+ classes*W] + D(4W^2 + 2MW + 5W + M) + (d+1)(W + 1)
 * + (4D + 2)(W^2 + W) for adaln, (4D + 2) W for add. */
static int64_t tf_count(int64_t W, int64_t D, int64_t M, int64_t k, int64_t d1, int64_t in, int64_t classes, int adaln) {
    return W * in + W + k * W + 2 * (W * W + W) + classes * W + D * (4 * W * W + 2 * M * W + 5 * W + M) +
           d1 * (W + 1) + (4 * D + 2) * (adaln ? W * W + W : W);
}

FF_TEST(transformer_param_count) {
    net m;
    ff_space sp = { 256, 26, 0, 0 };
    FF_EXPECT(net_new(&m, "transformer", sp, NULL, 1) == FF_OK, "%s", ff_last_error());
    /* defaults: width 256, depth 4, mlp 1024, adaln */
    FF_EXPECT(ff_params_numel(m.params) == tf_count(256, 4, 1024, 256, 27, 27, 0, 1), "%lld vs %lld",
              (long long)ff_params_numel(m.params), (long long)tf_count(256, 4, 1024, 256, 27, 27, 0, 1));
    /* by parts: embed 7,168 + pos 65,536 + temb 131,584 + 4 blocks x 788,736 + 9 norms x 2 x 65,792
     * + out 6,939 */
    FF_EXPECT(ff_params_numel(m.params) == 7168 + 65536 + 131584 + 4 * 788736 + 18 * 65792 + 6939, "%lld",
              (long long)ff_params_numel(m.params));
    net_free(&m);
    ff_options *o = tf_opts(12, 3, 3, 1.5, "add");
    ff_space sc = { 7, 4, 0, 2 };
    FF_EXPECT(net_new(&m, "transformer", sc, o, 1) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_params_numel(m.params) == tf_count(12, 3, 18, 7, 5, 7, 0, 0), "%lld",
              (long long)ff_params_numel(m.params));
    net_free(&m);
    ff_options_free(o);
    o = tf_opts(8, 2, 2, 2, "adaln");
    ff_space sl = { 5, 3, 6, 0 };
    FF_EXPECT(net_new(&m, "transformer", sl, o, 1) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_params_numel(m.params) == tf_count(8, 2, 16, 5, 4, 4, 6, 1), "%lld",
              (long long)ff_params_numel(m.params));
    net_free(&m);
    ff_options_free(o);
}

FF_TEST(transformer_shapes_and_grads) {
    const char *names[] = { "net.embed.weight", "net.pos", "net.temb0.weight", "net.temb1.bias",
                            "net.norm0.scale.weight", "net.norm3.shift.bias", "net.norm4.scale.bias",
                            "net.block0.qkv.weight", "net.block1.qkv.bias", "net.block0.proj.weight",
                            "net.block1.mlp0.weight", "net.block0.mlp1.bias", "net.out.weight", NULL };
    net m;
    ff_space sp = { 5, 3, 0, 0 };
    tf_new(&m, sp, tf_opts(8, 2, 2, 2, "adaln"), 3);
    forward_has_shape(&m, 5);
    check_grads(&m, 3, NULL, names);
    net_free(&m);
    /* additive conditioning, per-position signal channels, 1 head, odd width */
    const char *names2[] = { "net.embed.weight", "net.temb0.weight", "net.norm0.weight", "net.norm2.bias",
                             "net.block0.qkv.weight", "net.block0.mlp1.weight", NULL };
    ff_space sc = { 4, 2, 0, 2 };
    ff_options *o = tf_opts(5, 1, 1, 1.4, "add");
    ff_options_set_string(o, "gelu", "erf");
    tf_new(&m, sc, o, 5);
    ff_tensor_t *c = NULL;
    ff_tensor_new3(&c, 3, 4, 2);
    for (int i = 0; i < 24; i++) c->data[i] = (float)(i % 5) / 5.0f;
    check_grads(&m, 3, c, names2);
    ff_tensor_free(c);
    net_free(&m);
    /* class labels */
    const char *names3[] = { "net.cls", "net.temb1.weight", "net.norm1.shift.weight", NULL };
    ff_space sl = { 3, 3, 4, 0 };
    tf_new(&m, sl, tf_opts(6, 1, 3, 1, NULL), 7);
    ff_tensor_new1(&c, 3);
    c->data[0] = 3; c->data[1] = 0; c->data[2] = 1;
    check_grads(&m, 3, c, names3);
    ff_tensor_free(c);
    net_free(&m);
}

/* A batch whose rows share t takes the one-row time embedding; its rows equal those of a batch
 * with distinct times (full path) at the rows with the same t. */
FF_TEST(transformer_shared_t_matches_full_path) {
    net m;
    ff_space sp = { 6, 3, 0, 0 };
    tf_new(&m, sp, tf_opts(8, 2, 2, 2, "adaln"), 3);
    ff_tensor_t *x = NULL, *t = NULL;
    ff_tensor_new3(&x, 3, 6, 4);
    ff_tensor_new1(&t, 3);
    ff_rng_t r;
    ff_rng_seed(&r, 10);
    ff_test_fill_sphere(x, &r);
    float same[3] = { 0.3f, 0.3f, 0.3f }, mixed[3] = { 0.3f, 0.8f, 0.3f }, *a = malloc(72 * sizeof *a);
    ff_tape_set_grad(m.tape, 0);
    memcpy(t->data, same, sizeof same);
    ff_tape_reset(m.tape);
    ff_tensor_t *y = net_forward(&m, x, t, NULL);
    FF_EXPECT(y != NULL, "%s", ff_last_error());
    if (y) memcpy(a, y->data, 72 * sizeof *a);
    memcpy(t->data, mixed, sizeof mixed);
    ff_tape_reset(m.tape);
    y = net_forward(&m, x, t, NULL);
    FF_EXPECT(y != NULL, "%s", ff_last_error());
    double e = 0, d1 = 0;
    for (int i = 0; y && i < 24; i++) { e = fmax(e, fabs(a[i] - y->data[i])); e = fmax(e, fabs(a[48 + i] - y->data[48 + i])); }
    for (int i = 24; y && i < 48; i++) d1 = fmax(d1, fabs(a[i] - y->data[i]));
    FF_EXPECT(e < 1e-5, "rows with the same t differ by %g", e);
    FF_EXPECT(d1 > 1e-3, "the row with another t should differ (%g)", d1);
    ff_tape_set_grad(m.tape, 1);
    free(a);
    ff_tensor_free(x); ff_tensor_free(t);
    net_free(&m);
}

FF_TEST(transformer_bad_options_refused) {
    expect_refused("transformer", "heads", 0, 3, "must be a multiple of option \"heads\"");
    expect_refused("transformer", "depth", 0, 0, "option \"depth\" must be in [1, 64]");
    expect_refused("transformer", "dropout", 1, 1.0, "option \"dropout\" must be in [0, 1)");
    expect_refused("transformer", "mlp_ratio", 1, -1, "option \"mlp_ratio\"");
    net m;
    ff_space sp = { 2, 2, 0, 0 };
    ff_options *o = tf_opts(8, 1, 2, 2, "film");
    FF_EXPECT_ERROR(net_new(&m, "transformer", sp, o, 1), FF_EINVAL, "\"conditioning\" must be \"adaln\" or \"add\", got \"film\"");
    net_free(&m);
    ff_options_free(o);
    o = tf_opts(8, 1, 2, 2, NULL);
    ff_options_set_string(o, "gelu", "relu");
    FF_EXPECT_ERROR(net_new(&m, "transformer", sp, o, 1), FF_EINVAL, "\"gelu\" must be \"tanh\" or \"erf\", got \"relu\"");
    net_free(&m);
    ff_options_free(o);
    ff_space sb = { 5, 3, 4, 2 };
    FF_EXPECT_ERROR(net_new(&m, "transformer", sb, NULL, 2), FF_EINVAL, "cond_classes (4) and cond_channels (2)");
    net_free(&m);
}

FF_MAIN()
