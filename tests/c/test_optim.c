/* test_optim.c — optimiser steps against hand-computed numbers (PyTorch's update rules), gradient
 * clipping, EMA, LR schedules against their closed forms, and two small learning problems (XOR and
 * a linear map) with fixed seeds, step counts and stated loss bounds.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ff_test.h"
#include "fisherflow/fisherflow.h"

/* A registry with one [n] parameter holding p, gradient block for the caller to fill. */
static ff_params_t *one_param(int n, const float *p, ff_tensor_t **t) {
    ff_params_t *P;
    ff_params_new(&P);
    ff_params_add(P, "p", 1, (int64_t[]){ n }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, t);
    memcpy(ff_params_data(P), p, (size_t)n * sizeof(float));
    return P;
}

FF_TEST(adamw_two_steps_hand_computed) {
    /* torch.optim.AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01).
     * Step 1 by hand: m_hat = g, v_hat = g^2, so p <- p (1 - lr wd) - lr sign(g):
     *   1 -> 0.999 - 0.1 = 0.899;  -2 -> -1.998 + 0.1 = -1.898;  0.5 (g = 0) -> 0.4995;  0 -> -0.1.
     * Step 2 from the same formula evaluated in double (independent of the float code). */
    const float p0[4] = { 1.0f, -2.0f, 0.5f, 0.0f };
    const float g1[4] = { 0.1f, -0.3f, 0.0f, 2.0f }, g2[4] = { -0.2f, 0.1f, 0.05f, 2.0f };
    const double want1[4] = { 0.89900001, -1.898, 0.4995, -0.0999999995 };
    const double want2[4] = { 0.93471136, -1.85608015, 0.424586839, -0.199899999 };
    ff_tensor_t *t;
    ff_params_t *P = one_param(4, p0, &t);
    ff_optim_config c = ff_optim_adamw_defaults();
    c.lr = 0.1f;
    ff_optim_t *o;
    FF_EXPECT(ff_optim_new(&o, P, &c) == FF_OK, "%s", ff_last_error());
    memcpy(ff_params_grad(P), g1, sizeof g1);
    FF_EXPECT(ff_optim_step(o, c.lr) == FF_OK, "%s", ff_last_error());
    for (int i = 0; i < 4; i++) FF_EXPECT_NEAR(t->data[i], want1[i], 1e-6);
    memcpy(ff_params_grad(P), g2, sizeof g2);
    ff_optim_step(o, c.lr);
    for (int i = 0; i < 4; i++) FF_EXPECT_NEAR(t->data[i], want2[i], 2e-6);
    float *m, *v;
    int64_t n, *steps;
    ff_optim_state(o, &m, &v, &n, &steps);
    FF_EXPECT(n == 4 && *steps == 2, "state numel %lld, t %lld", (long long)n, (long long)*steps);
    FF_EXPECT_NEAR(m[3], 0.38, 1e-6);               /* 0.1*2 = 0.2, then 0.2 + 0.1*(2 - 0.2) */
    /* 0.001*4, then 0.999*0.004 + 0.001*4; the config holds beta2 as float32, so 1 - beta2 is
     * 0.00099998713 rather than 0.001 (PyTorch keeps it in double): a 1.3e-5 relative difference */
    FF_EXPECT_NEAR(v[3], 0.007996, 0.007996 * 2e-5);
    ff_optim_free(o);
    ff_params_free(P);
}

FF_TEST(sgd_momentum_and_nesterov_hand_computed) {
    /* torch.optim.SGD(lr=0.5, momentum=0.9, weight_decay=0.1[, nesterov=True]), grads (0.5, -1), (0.25, 0.5).
     * Plain momentum, step 1: d = g + 0.1 p = (0.6, -1.2), buf = d, p = (1, -2) - 0.5 d = (0.7, -1.4).
     * Step 2: d = (0.32, 0.36), buf = 0.9 buf + d = (0.86, -0.72), p = (0.27, -1.04).
     * Nesterov uses d + 0.9 buf: step 1 p = (1, -2) - 0.5 (1.14, -2.28) = (0.43, -0.86). */
    const float p0[2] = { 1.0f, -2.0f }, g1[2] = { 0.5f, -1.0f }, g2[2] = { 0.25f, 0.5f };
    const double want[2][2][2] = { { { 0.7, -1.4 }, { 0.27, -1.04 } }, { { 0.43, -0.86 }, { -0.09135, -0.7673 } } };
    for (int nest = 0; nest < 2; nest++) {
        ff_tensor_t *t;
        ff_params_t *P = one_param(2, p0, &t);
        ff_optim_config c = ff_optim_sgd_defaults();
        c.lr = 0.5f; c.momentum = 0.9f; c.weight_decay = 0.1f; c.nesterov = nest;
        ff_optim_t *o;
        FF_EXPECT(ff_optim_new(&o, P, &c) == FF_OK, "%s", ff_last_error());
        memcpy(ff_params_grad(P), g1, sizeof g1);
        ff_optim_step(o, 0.5f);
        for (int i = 0; i < 2; i++) FF_EXPECT_NEAR(t->data[i], want[nest][0][i], 1e-6);
        memcpy(ff_params_grad(P), g2, sizeof g2);
        ff_optim_step(o, 0.5f);
        for (int i = 0; i < 2; i++) FF_EXPECT_NEAR(t->data[i], want[nest][1][i], 1e-6);
        ff_optim_free(o);
        ff_params_free(P);
    }
}

FF_TEST(optim_refuses_bad_config) {
    ff_tensor_t *t;
    const float p0[1] = { 0 };
    ff_params_t *P = one_param(1, p0, &t);
    ff_optim_t *o = NULL;
    ff_optim_config c = ff_optim_adamw_defaults();
    c.beta1 = 1.0f;
    FF_EXPECT_ERROR(ff_optim_new(&o, P, &c), FF_EINVAL, "ff_optim_new: AdamW needs betas in [0, 1)");
    c = ff_optim_sgd_defaults();
    c.nesterov = 1;
    FF_EXPECT_ERROR(ff_optim_new(&o, P, &c), FF_EINVAL, "with nesterov");
    c.kind = 7;
    FF_EXPECT_ERROR(ff_optim_new(&o, P, &c), FF_EINVAL, "unknown optimiser kind 7");
    c = ff_optim_sgd_defaults();
    FF_EXPECT(ff_optim_new(&o, P, &c) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_ERROR(ff_optim_step(o, -1.0f), FF_EINVAL, "ff_optim_step: lr -1");
    ff_tensor_t *t2;
    ff_params_add(P, "late", 1, (int64_t[]){ 3 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &t2);
    FF_EXPECT_ERROR(ff_optim_step(o, 0.1f), FF_EINVAL, "the registry has 4 parameters, the optimiser was built for 1");
    ff_optim_free(o);
    ff_params_free(P);
}

FF_TEST(clip_grad_norm_matches_hand_computation) {
    const float p0[3] = { 0, 0, 0 };
    ff_tensor_t *t;
    ff_params_t *P = one_param(3, p0, &t);
    float *g = ff_params_grad(P), norm = 0;
    g[0] = 3; g[1] = 4; g[2] = 0;                       /* norm 5 */
    FF_EXPECT(ff_clip_grad_norm(P, 10.0f, &norm) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_NEAR(norm, 5.0, 1e-6);
    FF_EXPECT(g[0] == 3 && g[1] == 4, "below max_norm: untouched");
    FF_EXPECT(ff_clip_grad_norm(P, 1.0f, &norm) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_NEAR(g[0], 3.0 / (5.0 + 1e-6), 1e-7);    /* torch: g * max_norm / (norm + 1e-6) */
    FF_EXPECT_NEAR(g[1], 4.0 / (5.0 + 1e-6), 1e-7);
    FF_EXPECT(ff_clip_grad_norm(P, 0.0f, &norm) == FF_OK && fabs(norm - 1.0) < 1e-6, "max_norm 0 only measures: %g", norm);
    g[2] = NAN;
    FF_EXPECT_ERROR(ff_clip_grad_norm(P, 1.0f, &norm), FF_ENUMERIC, "ff_clip_grad_norm: gradient norm is NaN");
    FF_EXPECT_NEAR(g[0], 3.0 / (5.0 + 1e-6), 1e-7);
    ff_params_free(P);
}

/* A long gradient (vector path, several 4096 blocks) against a double sum. */
FF_TEST(clip_grad_norm_long) {
    ff_params_t *P;
    ff_params_new(&P);
    ff_tensor_t *t;
    ff_params_add(P, "w", 1, (int64_t[]){ 10007 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &t);
    float *g = ff_params_grad(P), norm;
    double s = 0;
    for (int i = 0; i < 10007; i++) { g[i] = (float)sin(0.37 * i); s += (double)g[i] * g[i]; }
    FF_EXPECT(ff_clip_grad_norm(P, 2.0f, &norm) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_NEAR(norm, sqrt(s), 1e-5 * sqrt(s));
    double s2 = 0;
    for (int i = 0; i < 10007; i++) s2 += (double)g[i] * g[i];
    FF_EXPECT_NEAR(sqrt(s2), 2.0 * sqrt(s) / (sqrt(s) + 1e-6), 1e-5);
    ff_params_free(P);
}

FF_TEST(ema_update_and_swap) {
    const float p0[2] = { 1.0f, -1.0f };
    ff_tensor_t *t;
    ff_params_t *P = one_param(2, p0, &t);
    ff_ema_t *e;
    FF_EXPECT(ff_ema_new(&e, P, 0.9f) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_ema_data(e)[0] == 1.0f && ff_ema_data(e)[1] == -1.0f, "starts as a copy");
    t->data[0] = 2.0f; t->data[1] = 0.0f;
    ff_ema_update(e);                                   /* 0.9 * 1 + 0.1 * 2 = 1.1; 0.9 * -1 + 0 = -0.9 */
    FF_EXPECT_NEAR(ff_ema_data(e)[0], 1.1, 1e-6);
    FF_EXPECT_NEAR(ff_ema_data(e)[1], -0.9, 1e-6);
    ff_ema_update(e);                                   /* 0.9 * 1.1 + 0.2 = 1.19 */
    FF_EXPECT_NEAR(ff_ema_data(e)[0], 1.19, 1e-6);
    ff_ema_swap(e);
    FF_EXPECT_NEAR(t->data[0], 1.19, 1e-6);
    FF_EXPECT_NEAR(ff_ema_data(e)[0], 2.0, 0);
    ff_ema_swap(e);
    FF_EXPECT_NEAR(t->data[0], 2.0, 0);
    ff_ema_free(e);
    FF_EXPECT_ERROR(ff_ema_new(&e, P, 1.5f), FF_EINVAL, "ff_ema_new: decay 1.5 outside [0, 1]");
    ff_params_free(P);
}

/* The warm-up: with the parameter moving every step, the EMA follows the recursion
 * w <- d_t w + (1 - d_t) p_t, d_t = min(decay, (1 + t) / (10 + t)), recomputed here in double. */
FF_TEST(ema_warmup_matches_recursion) {
    const float p0[1] = { 0.0f };
    ff_tensor_t *t;
    ff_params_t *P = one_param(1, p0, &t);
    ff_ema_t *e;
    FF_EXPECT(ff_ema_new(&e, P, 0.999f) == FF_OK, "%s", ff_last_error());
    double w = 0;
    for (int64_t step = 0; step < 20000; step++) {
        double p = 1.0 + 0.5 * sin(0.01 * (double)step);
        t->data[0] = (float)p;
        double d = (1.0 + (double)step) / (10.0 + (double)step);
        if (d > (double)0.999f) d = (double)0.999f;
        w = d * w + (1 - d) * (double)t->data[0];
        ff_ema_update_at(e, step);
        if (step == 0) FF_EXPECT_NEAR(ff_ema_data(e)[0], 0.9 * 1.0, 1e-6);   /* d_0 = 0.1 */
        if (step % 1000 == 999) FF_EXPECT_NEAR(ff_ema_data(e)[0], w, 2e-5);
    }
    /* past step 8,991 the nominal decay holds: one more update is ff_ema_update's */
    float before = ff_ema_data(e)[0];
    t->data[0] = 3.0f;
    ff_ema_update_at(e, 20000);
    FF_EXPECT_NEAR(ff_ema_data(e)[0], before + (1.0f - 0.999f) * (3.0f - before), 1e-6);
    ff_ema_free(e);
    ff_params_free(P);
}

FF_TEST(lr_schedules_closed_form) {
    ff_lr_schedule c = { FF_LR_CONSTANT, 0.1f, 0.0f, 0, 100 };
    FF_EXPECT_NEAR(ff_lr_at(&c, 0), 0.1, 1e-7);
    FF_EXPECT_NEAR(ff_lr_at(&c, 1000), 0.1, 1e-7);
    ff_lr_schedule cs = { FF_LR_COSINE, 1.0f, 0.1f, 0, 100 };
    FF_EXPECT_NEAR(ff_lr_at(&cs, 0), 1.0, 1e-6);
    FF_EXPECT_NEAR(ff_lr_at(&cs, 50), 0.55, 1e-6);                    /* min + (base-min)/2 */
    FF_EXPECT_NEAR(ff_lr_at(&cs, 25), 0.1 + 0.45 * (1 + cos(M_PI / 4)), 1e-6);
    FF_EXPECT_NEAR(ff_lr_at(&cs, 100), 0.1, 1e-6);
    FF_EXPECT_NEAR(ff_lr_at(&cs, 500), 0.1, 1e-6);                    /* stays at the floor */
    ff_lr_schedule wl = { FF_LR_WARMUP_LINEAR, 1.0f, 0.0f, 10, 110 };
    FF_EXPECT_NEAR(ff_lr_at(&wl, 0), 0.0, 1e-7);
    FF_EXPECT_NEAR(ff_lr_at(&wl, 5), 0.5, 1e-7);
    FF_EXPECT_NEAR(ff_lr_at(&wl, 10), 1.0, 1e-7);
    FF_EXPECT_NEAR(ff_lr_at(&wl, 60), 0.5, 1e-7);
    FF_EXPECT_NEAR(ff_lr_at(&wl, 110), 0.0, 1e-7);
    ff_lr_schedule wc = { FF_LR_WARMUP_COSINE, 2.0f, 0.0f, 4, 104 };
    FF_EXPECT_NEAR(ff_lr_at(&wc, 1), 0.5, 1e-7);
    FF_EXPECT_NEAR(ff_lr_at(&wc, 4), 2.0, 1e-6);
    FF_EXPECT_NEAR(ff_lr_at(&wc, 54), 1.0, 1e-6);
    FF_EXPECT_NEAR(ff_lr_at(&wc, 79), 1.0 * (1 + cos(0.75 * M_PI)), 1e-6);
    FF_EXPECT_NEAR(ff_lr_at(&wc, 104), 0.0, 1e-6);
}

/* ---- learning ------------------------------------------------------------------------------- */

/* XOR with a 2-16-1 tanh MLP, full batch of 4, AdamW lr 0.05 (wd 0), seed 1, 400 steps:
 * the MSE must fall below 1e-3 and every output must round to its label. */
FF_TEST(mlp_learns_xor) {
    ff_rng_t r;
    ff_rng_seed(&r, 1);
    ff_params_t *P;
    ff_params_new(&P);
    ff_tensor_t *w1, *b1, *w2, *b2, *x, *y;
    ff_params_set_prefix(P, "xor.");
    ff_params_add(P, "w1", 2, (int64_t[]){ 16, 2 }, (ff_param_init){ FF_INIT_UNIFORM, 1.0f }, &r, &w1);
    ff_params_add(P, "b1", 1, (int64_t[]){ 16 }, (ff_param_init){ FF_INIT_UNIFORM, 0.5f }, &r, &b1);
    ff_params_add(P, "w2", 2, (int64_t[]){ 1, 16 }, (ff_param_init){ FF_INIT_UNIFORM, 0.25f }, &r, &w2);
    ff_params_add(P, "b2", 1, (int64_t[]){ 1 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, &r, &b2);
    ff_tensor_new2(&x, 4, 2); ff_tensor_new2(&y, 4, 1);
    const float xs[8] = { 0, 0, 0, 1, 1, 0, 1, 1 }, ys[4] = { 0, 1, 1, 0 };
    memcpy(x->data, xs, sizeof xs); memcpy(y->data, ys, sizeof ys);
    ff_optim_config c = ff_optim_adamw_defaults();
    c.lr = 0.05f; c.weight_decay = 0.0f;
    ff_optim_t *o;
    ff_optim_new(&o, P, &c);
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    float loss = 1;
    ff_tensor_t *out = NULL;
    for (int step = 0; step < 400; step++) {
        ff_tape_reset(tp);
        ff_params_zero_grad(P);
        out = ff_linear(tp, ff_tanh(tp, ff_linear(tp, x, w1, b1)), w2, b2);
        ff_tensor_t *l = ff_mean_all(tp, ff_square(tp, ff_sub(tp, out, y)));
        FF_EXPECT(ff_tape_backward(tp, l) == FF_OK, "%s", ff_last_error());
        loss = l->data[0];
        ff_optim_step(o, c.lr);
    }
    FF_EXPECT(loss < 1e-3f, "XOR loss after 400 steps: %g (bound 1e-3)", loss);
    for (int i = 0; i < 4; i++) FF_EXPECT(fabsf(out->data[i] - ys[i]) < 0.5f, "sample %d: %g vs %g", i, out->data[i], ys[i]);
    printf("  XOR: MSE %.3g after 400 AdamW steps (bound 1e-3)\n", loss);
    FF_EXPECT(ff_params_find(P, "xor.w1") == w1, "prefixed names");
    ff_tape_free(tp); ff_optim_free(o); ff_params_free(P);
    ff_tensor_free(x); ff_tensor_free(y);
}

/* y = A x + c (A [3,5], c [3]) from 64 noise-free samples with SGD + Nesterov momentum, 300 steps:
 * the MSE must fall below 1e-6 and the weights must match A, c within 1e-3. */
FF_TEST(linear_map_recovered) {
    ff_rng_t r;
    ff_rng_seed(&r, 2);
    ff_tensor_t *A, *cvec, *x, *y;
    ff_tensor_new2(&A, 3, 5); ff_tensor_new1(&cvec, 3); ff_tensor_new2(&x, 64, 5); ff_tensor_new2(&y, 64, 3);
    ff_rng_fill_normal(&r, A, 0, 1); ff_rng_fill_normal(&r, cvec, 0, 1); ff_rng_fill_normal(&r, x, 0, 1);
    for (int n = 0; n < 64; n++)
        for (int i = 0; i < 3; i++) {
            double s = cvec->data[i];
            for (int j = 0; j < 5; j++) s += A->data[i * 5 + j] * x->data[n * 5 + j];
            y->data[n * 3 + i] = (float)s;
        }
    ff_params_t *P;
    ff_params_new(&P);
    ff_tensor_t *w, *b;
    ff_params_add(P, "w", 2, (int64_t[]){ 3, 5 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &w);
    ff_params_add(P, "b", 1, (int64_t[]){ 3 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &b);
    ff_optim_config c = ff_optim_sgd_defaults();
    c.lr = 0.1f; c.momentum = 0.9f; c.nesterov = 1;
    ff_optim_t *o;
    ff_optim_new(&o, P, &c);
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    float loss = 1;
    for (int step = 0; step < 300; step++) {
        ff_tape_reset(tp);
        ff_params_zero_grad(P);
        ff_tensor_t *l = ff_mean_all(tp, ff_square(tp, ff_sub(tp, ff_linear(tp, x, w, b), y)));
        ff_tape_backward(tp, l);
        loss = l->data[0];
        ff_optim_step(o, c.lr);
    }
    FF_EXPECT(loss < 1e-6f, "linear map loss after 300 steps: %g (bound 1e-6)", loss);
    double e = 0;
    for (int i = 0; i < 15; i++) e = ff_nanmax(e, fabs(w->data[i] - A->data[i]));
    for (int i = 0; i < 3; i++) e = ff_nanmax(e, fabs(b->data[i] - cvec->data[i]));
    FF_EXPECT(e < 1e-3, "max |w - A|, |b - c| = %g", e);
    printf("  linear map: MSE %.3g, max weight error %.3g after 300 SGD steps\n", loss, e);
    ff_tape_free(tp); ff_optim_free(o); ff_params_free(P);
    ff_tensor_free(A); ff_tensor_free(cvec); ff_tensor_free(x); ff_tensor_free(y);
}

FF_MAIN()
