/* test_fastpaths.c — optimised forward paths against their plain reference formulations:
 * bmlp's split block weights (W [h; e] = h W_h^T + (e W_e^T + b) through column views of W, and the
 * one-row embedding when all t are equal) against ff_concat + ff_linear on the full W, outputs and
 * every gradient (x and all parameters), and the sampler's constant t; ff_linear's [M, O] bias;
 * a column view of a parameter is refused by every op but as ff_linear's weight. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/fisherflow.h>
#include "ff_test.h"

/* The BMLP of plugins/network/bmlp.c written with concat, from its parameters (defaults: depth 4). */
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
        char wn[32], bn[32];
        snprintf(wn, sizeof wn, "net.block%d.weight", i);
        snprintf(bn, sizeof bn, "net.block%d.bias", i);
        ff_tensor_t *y = ff_linear(tp, ff_concat(tp, h, e), ff_params_find(P, wn), ff_params_find(P, bn));
        if (i == 3) { h = y; break; }
        y = ff_leaky_relu(tp, y, 0.01f);
        h = i == 0 ? y : ff_add(tp, h, y);
    }
    return ff_reshape(tp, h, 3, (int64_t[]){ n, sp->k, sp->d + 1 });
}

typedef struct result { float *y, *gx, *gp; int64_t ny, nx, np; } result;

static void run(int ref, ff_plugin_inst *inst, ff_params_t *P, ff_tape_t *tp, const ff_space *sp, ff_tensor_t *x,
                ff_tensor_t *t, ff_tensor_t *cond, const ff_tensor_t *R, result *out) {
    ff_tape_reset(tp);
    ff_params_zero_grad(P);
    ff_tensor_t *xl = ff_tape_leaf(tp, x, 1);
    ff_tensor_t *y = ref ? bmlp_reference(tp, P, sp, xl, t, cond)
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
        mx = fmax(mx, fabs((double)b[i]));
        md = fmax(md, fabs((double)a[i] - b[i]));
    }
    return md / (1e-6 + mx);
}

static void compare_case(const char *label, int64_t n, ff_space sp, int const_t) {
    ff_params_t *P = NULL;
    ff_plugin_inst *inst = NULL;
    ff_tape_t *tp = NULL;
    ff_rng_t rng;
    ff_rng_seed(&rng, 5);
    FF_EXPECT(ff_params_new(&P) == FF_OK);
    FF_EXPECT(ff_params_set_prefix(P, "net.") == FF_OK);
    FF_EXPECT(ff_tape_new(&tp, 1 << 16) == FF_OK);
    FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_NETWORK, "bmlp", NULL, &sp, P, &rng) == FF_OK, "%s", ff_last_error());
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
    run(0, inst, P, tp, &sp, x, t, cond, R, &a);
    run(1, inst, P, tp, &sp, x, t, cond, R, &b);
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

/* A column view of a parameter as bmlp.c builds one: columns [c0, c0 + nc) of w and of its gradient,
 * both with w's row stride. */
static void param_cols(const ff_tensor_t *w, int64_t c0, int64_t nc, ff_tensor_t *v, ff_tensor_t *gv) {
    *v = *w;
    v->data = w->data + c0;
    v->shape[1] = nc;
    *gv = *w->grad;
    gv->data = w->grad->data + c0;
    gv->shape[1] = nc;
    v->grad = gv;
}

/* Only ff_linear's backward writes a row-strided weight gradient; every other op writes an input's
 * gradient as contiguous floats. So a column view of a parameter is refused (naming the op and the
 * tensor) by any op but as ff_linear's weight, in grad mode or not, and works there. */
FF_TEST(param_column_view_only_as_linear_weight) {
    ff_params_t *P = NULL;
    ff_tape_t *tp = NULL;
    ff_rng_t rng;
    ff_rng_seed(&rng, 17);
    FF_EXPECT(ff_params_new(&P) == FF_OK);
    FF_EXPECT(ff_params_set_prefix(P, "net.") == FF_OK);
    FF_EXPECT(ff_tape_new(&tp, 1 << 16) == FF_OK);
    ff_tensor_t *w = NULL, *x = NULL, *x3 = NULL;
    FF_EXPECT(ff_params_add(P, "w", 2, (int64_t[]){ 3, 5 }, (ff_param_init){ FF_INIT_UNIFORM, 1.0f }, &rng, &w) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&x, 4, 2) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&x3, 3, 2) == FF_OK);
    if (!w || !x || !x3) goto done;
    ff_rng_fill_normal(&rng, x, 0, 1);
    ff_rng_fill_normal(&rng, x3, 0, 1);
    ff_tensor_t v, gv;
    param_cols(w, 1, 2, &v, &gv);                       /* [3, 2], rows 5 floats apart */

    for (int grad = 1; grad >= 0; grad--) {
        ff_tape_set_grad(tp, grad);
        ff_tape_reset(tp);
        FF_EXPECT(ff_add(tp, &v, x3) == NULL, "ff_add took a column view");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_add: input 1 [3,2] \"net.w\" needs a gradient");
        FF_EXPECT(strstr(ff_last_error(), "strides [5,1]") != NULL, "%s", ff_last_error());
        ff_tape_reset(tp);
        FF_EXPECT(ff_mul(tp, x3, &v) == NULL, "ff_mul took a column view");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_mul: input 2 [3,2] \"net.w\" needs a gradient");
        ff_tape_reset(tp);
        FF_EXPECT(ff_matmul(tp, ff_tape_alloc(tp, 2, (int64_t[]){ 2, 3 }), &v) == NULL, "ff_matmul took a column view");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_matmul: input 2 [3,2] \"net.w\" needs a gradient");
        ff_tape_reset(tp);
        FF_EXPECT(ff_linear(tp, &v, w, NULL) == NULL, "ff_linear took a column view as x");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_linear: input 1 [3,2] \"net.w\"");
    }
    ff_tape_set_grad(tp, 1);

    /* as ff_linear's weight: d sum(x v^T) / dv[o, k] = sum_m x[m, k], in w's columns 1..2 only */
    ff_params_zero_grad(P);
    ff_tape_reset(tp);
    ff_tensor_t *y = ff_linear(tp, x, &v, NULL);
    FF_EXPECT(y != NULL, "%s", ff_last_error());
    if (y) {
        for (int m = 0; m < 4; m++)
            for (int o = 0; o < 3; o++)
                FF_EXPECT_NEAR(y->data[m * 3 + o], x->data[m * 2] * w->data[o * 5 + 1] + x->data[m * 2 + 1] * w->data[o * 5 + 2], 1e-5);
        FF_EXPECT(ff_tape_backward(tp, ff_sum_all(tp, y)) == FF_OK, "%s", ff_last_error());
        for (int o = 0; o < 3; o++)
            for (int k = 0; k < 5; k++) {
                double want = 0;
                if (k == 1 || k == 2) for (int m = 0; m < 4; m++) want += x->data[m * 2 + (k - 1)];
                FF_EXPECT_NEAR(w->grad->data[o * 5 + k], want, 1e-5);
            }
    }
done:
    ff_tensor_free(x); ff_tensor_free(x3);
    ff_params_free(P);
    ff_tape_free(tp);
}

/* ff_linear with a per-row [M, O] bias equals the broadcast-free sum x W^T + B; its bias gradient is g. */
FF_TEST(linear_full_bias) {
    ff_tape_t *tp = NULL;
    FF_EXPECT(ff_tape_new(&tp, 1 << 16) == FF_OK);
    ff_rng_t rng;
    ff_rng_seed(&rng, 3);
    ff_tensor_t *x = NULL, *w = NULL, *B = NULL;
    FF_EXPECT(ff_tensor_new2(&x, 5, 3) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&w, 4, 3) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&B, 5, 4) == FF_OK);
    ff_rng_fill_normal(&rng, x, 0, 1);
    ff_rng_fill_normal(&rng, w, 0, 1);
    ff_rng_fill_normal(&rng, B, 0, 1);
    ff_tape_reset(tp);
    ff_tensor_t *Bl = ff_tape_leaf(tp, B, 1);
    ff_tensor_t *y = ff_linear(tp, x, w, Bl);
    FF_EXPECT(y != NULL, "%s", ff_last_error());
    if (y) {
        for (int i = 0; i < 5; i++)
            for (int o = 0; o < 4; o++) {
                double s = B->data[i * 4 + o];
                for (int k = 0; k < 3; k++) s += (double)x->data[i * 3 + k] * w->data[o * 3 + k];
                FF_EXPECT_NEAR(y->data[i * 4 + o], s, 1e-5);
            }
        ff_tensor_t *loss = ff_sum_all(tp, ff_mul_scalar(tp, y, 2.0f));
        FF_EXPECT(ff_tape_backward(tp, loss) == FF_OK, "%s", ff_last_error());
        for (int i = 0; i < 20; i++) FF_EXPECT_NEAR(Bl->grad->data[i], 2.0, 0);
    }
    ff_tensor_t *bad = NULL;
    FF_EXPECT(ff_tensor_new2(&bad, 4, 5) == FF_OK);
    ff_tape_reset(tp);
    FF_EXPECT(ff_linear(tp, x, w, bad) == NULL);
    FF_EXPECT_ERROR(ff_tape_status(tp), FF_ESHAPE, "bias must be");
    ff_tensor_free(bad);
    ff_tensor_free(x); ff_tensor_free(w); ff_tensor_free(B);
    ff_tape_free(tp);
}

FF_MAIN()
