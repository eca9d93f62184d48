/* test_flow.c — the flow object: one step equals the formula of MATH.md "Training" recomputed by hand,
 * training lowers the loss, determinism, NaN handling, sampling on the simplex with every stepper,
 * a trained toy samples the right vertices, and the log-density of a zero field equals the source's
 * density mapped to the simplex (Dirichlet(1/2) in closed form; Dirichlet(alpha) for the Dirichlet source),
 * and the training times t: uniform on [0, 1) on the 2^-24 grid (Kolmogorov-Smirnov, steered draws);
 * the gradient/update seam: step = grad + update bit for bit, two accumulated micro-batches = one
 * batch of twice the size, refusals keep the accumulation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/fisherflow.h>
#include "ff_test.h"

static ff_options *opts_ints(const char *const *keys, const int64_t *vals) {
    ff_options *o = NULL;
    ff_options_new(&o);
    for (int i = 0; keys[i]; i++) ff_options_set_int(o, keys[i], vals[i]);
    return o;
}

/* A small bmlp flow on (Delta^d)^k. */
static ff_flow_t *small_flow(int64_t k, int64_t d, int64_t hidden, int64_t depth, const char *coupler,
                             const char *geometry, uint64_t seed, ff_options **net_opts_out) {
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ k, d, 0, 0 };
    c.seed = seed;
    c.coupler.name = coupler;
    if (geometry) c.geometry = geometry;
    ff_options *no = opts_ints((const char *[]){ "hidden", "depth", "emb", NULL },
                               (int64_t[]){ hidden, depth, 8 });
    c.network.opts = no;
    ff_flow_t *f = NULL;
    ff_status s = ff_flow_new(&f, &c);
    FF_EXPECT(s == FF_OK, "ff_flow_new: %s", ff_last_error());
    if (net_opts_out) *net_opts_out = no;
    else ff_options_free(no);
    return f;
}

/* n one-hot rows [n, k, d+1]: symbol of row i, position j = pick(i, j). */
static ff_tensor_t *one_hot(int64_t n, int64_t k, int64_t d, int (*pick)(int64_t, int64_t)) {
    ff_tensor_t *x = NULL;
    ff_tensor_new3(&x, n, k, d + 1);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) x->data[(i * k + j) * (d + 1) + pick(i, j)] = 1.0f;
    return x;
}
static int pick_mod(int64_t i, int64_t j) { return (int)((i * 7 + j * 3 + (i * i) % 5) % 3); }
static int pick_v2(int64_t i, int64_t j) { (void)i; (void)j; return 2; }
static int pick_01(int64_t i, int64_t j) { (void)j; return (int)(i % 2); }


/* Rows [i0, i0+b) of a dataset as a batch tensor (copy). */
static void take_rows(ff_tensor_t *dst, const ff_tensor_t *src, int64_t i0) {
    int64_t row = src->shape[1] * src->shape[2], n = src->shape[0];
    for (int64_t i = 0; i < dst->shape[0]; i++)
        memcpy(dst->data + i * row, src->data + ((i0 + i) % n) * row, (size_t)row * sizeof(float));
}

/* ---- one step against the formula -------------------------------------------------------------- */

static double leaky(double a, double s) { return a > 0 ? a : s * a; }

/* Recompute MATH.md's loss in double: x1 = sqrt(p1), slerp x_t, u_t (closed forms with sin), a
 * depth-3 bmlp from the named parameters, tangent projection, squared error, batch mean. */
static double hand_loss(ff_params_t *P, const float *pdata0, const ff_tensor_t *p1, const ff_tensor_t *x0,
                        const ff_tensor_t *t, int64_t k, int64_t d, int64_t H, int64_t E) {
    int64_t n = p1->shape[0], m = d + 1, D = k * m;
    /* parameter values as they were before the step: offsets into the saved flat block */
    float *base = ff_params_data(P);
#define PRM(name) (pdata0 + (ff_params_find(P, name)->data - base))
    const float *tw = PRM("net.temb.weight"), *tb = PRM("net.temb.bias");
    /* block i's Linear over [h; e]: weight_h holds the h columns, weight_e the e columns */
    const float *w0 = PRM("net.block0.weight_h"), *v0 = PRM("net.block0.weight_e"), *b0 = PRM("net.block0.bias");
    const float *w1 = PRM("net.block1.weight_h"), *v1 = PRM("net.block1.weight_e"), *b1 = PRM("net.block1.bias");
    const float *w2 = PRM("net.block2.weight_h"), *v2 = PRM("net.block2.weight_e"), *b2 = PRM("net.block2.bias");
#undef PRM
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        double ti = t->data[i], xt[64], ut[64], in[64 + 64], h0[64], h1[64], v[64], e[16];
        for (int64_t j = 0; j < k; j++) {
            const float *a = x0->data + (i * k + j) * m, *pp = p1->data + (i * k + j) * m;
            double b[16], dot = 0;
            for (int64_t c = 0; c < m; c++) { b[c] = sqrt((double)pp[c]); dot += a[c] * b[c]; }
            double th = acos(fmin(1.0, fmax(-1.0, dot)));
            for (int64_t c = 0; c < m; c++) {
                xt[j * m + c] = (sin((1 - ti) * th) * a[c] + sin(ti * th) * b[c]) / sin(th);
                ut[j * m + c] = th * (cos(ti * th) * b[c] - cos((1 - ti) * th) * a[c]) / sin(th);
            }
        }
        for (int64_t q = 0; q < E; q++) e[q] = tw[q] * ti + tb[q];
        for (int64_t c = 0; c < D; c++) in[c] = xt[c];
        for (int64_t q = 0; q < E; q++) in[D + q] = e[q];
        for (int64_t o = 0; o < H; o++) {
            double s = b0[o];
            for (int64_t c = 0; c < D; c++) s += w0[o * D + c] * in[c];
            for (int64_t q = 0; q < E; q++) s += v0[o * E + q] * in[D + q];
            h0[o] = leaky(s, 0.01);
        }
        for (int64_t q = 0; q < E; q++) h0[H + q] = e[q];
        for (int64_t o = 0; o < H; o++) {
            double s = b1[o];
            for (int64_t c = 0; c < H; c++) s += w1[o * H + c] * h0[c];
            for (int64_t q = 0; q < E; q++) s += v1[o * E + q] * h0[H + q];
            h1[o] = h0[o] + leaky(s, 0.01);
        }
        for (int64_t q = 0; q < E; q++) h1[H + q] = e[q];
        for (int64_t o = 0; o < D; o++) {
            double s = b2[o];
            for (int64_t c = 0; c < H; c++) s += w2[o * H + c] * h1[c];
            for (int64_t q = 0; q < E; q++) s += v2[o * E + q] * h1[H + q];
            v[o] = s;
        }
        for (int64_t j = 0; j < k; j++) {
            double dot = 0;
            for (int64_t c = 0; c < m; c++) dot += xt[j * m + c] * v[j * m + c];
            for (int64_t c = 0; c < m; c++) {
                double r = v[j * m + c] - dot * xt[j * m + c] - ut[j * m + c];
                total += r * r;
            }
        }
    }
    return total / n;
}

static void one_step_case(double smoothing) {
    const int64_t k = 2, d = 2, H = 6, E = 8, n = 5;
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ k, d, 0, 0 };
    c.seed = 11;
    c.coupler.name = "independent";
    c.label_smoothing = (float)smoothing;
    ff_options *no = opts_ints((const char *[]){ "hidden", "depth", "emb", NULL }, (int64_t[]){ H, 3, E });
    c.network.opts = no;
    ff_flow_t *f = NULL;
    FF_EXPECT(ff_flow_new(&f, &c) == FF_OK, "%s", ff_last_error());
    ff_options_free(no);
    if (!f) return;
    ff_tensor_t *x1 = one_hot(n, k, d, pick_mod), *x0 = NULL, *p1 = NULL;
    ff_tensor_new3(&x0, n, k, d + 1);
    ff_tensor_clone(&p1, x1);
    ff_rng_t r;
    ff_rng_seed(&r, 3);
    ff_test_fill_sphere(x0, &r);
    for (int64_t i = 0; i < ff_tensor_numel(p1); i += d + 1)          /* smoothing by hand */
        for (int64_t c2 = 0; c2 <= d; c2++)
            p1->data[i + c2] = p1->data[i + c2] == 1.0f ? (float)(1 - smoothing) : (float)(smoothing / d);
    ff_params_t *P = ff_flow_params(f);
    int64_t np = ff_params_numel(P);
    float *before = malloc((size_t)np * sizeof *before);
    memcpy(before, ff_params_data(P), (size_t)np * sizeof *before);
    ff_step_stats st;
    FF_EXPECT(ff_flow_step(f, x1, x0, NULL, &st) == FF_OK, "%s", ff_last_error());
    const ff_tensor_t *t = ff_flow_last_t(f);
    FF_EXPECT(t && t->shape[0] == n);
    if (t) {
        double want = hand_loss(P, before, p1, x0, t, k, d, H, E);
        FF_EXPECT_NEAR(st.loss, want, 2e-5 * fabs(want) + 1e-6);
        printf("  smoothing %.2f: step loss %.9g, by hand %.9g\n", smoothing, st.loss, want);
    }
    FF_EXPECT(st.step == 1 && ff_flow_steps(f) == 1);
    FF_EXPECT(memcmp(before, ff_params_data(P), (size_t)np * sizeof *before) != 0, "the step changed nothing");
    FF_EXPECT(st.grad_norm > 0 && isfinite(st.grad_norm));
    FF_EXPECT_NEAR(st.lr, 1e-3, 1e-9);
    free(before);
    ff_tensor_free(x1); ff_tensor_free(x0); ff_tensor_free(p1);
    ff_flow_free(f);
}

FF_TEST(one_step_equals_formula) {
    one_step_case(0.0);
    one_step_case(0.1);
}

/* ---- training --------------------------------------------------------------------------------- */

FF_TEST(loss_falls) {
    /* k=1, d=2: 512 fixed one-hot points (symbols 0,1,2 in a fixed pattern), batch 64, 400 steps. */
    ff_flow_t *f = small_flow(1, 2, 64, 3, "exact_ot", NULL, 5, NULL);
    if (!f) return;
    ff_tensor_t *data = one_hot(512, 1, 2, pick_mod), *b = NULL;
    ff_tensor_new3(&b, 64, 1, 3);
    double first = 0, last = 0;
    ff_step_stats st;
    for (int s = 0; s < 400; s++) {
        take_rows(b, data, (int64_t)s * 64);
        FF_EXPECT(ff_flow_step(f, b, NULL, NULL, &st) == FF_OK, "%s", ff_last_error());
        if (s < 25) first += st.loss / 25;
        if (s >= 375) last += st.loss / 25;
    }
    printf("  mean loss steps 1-25: %.4f, steps 376-400: %.4f (ratio %.3f)\n", first, last, last / first);
    FF_EXPECT(last < 0.6 * first, "loss %.4f -> %.4f did not fall by 40%%", first, last);
    double ev = 0;
    FF_EXPECT(ff_flow_eval_loss(f, b, NULL, &ev) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ev < first, "eval loss %.4f", ev);
    ff_tensor_free(data); ff_tensor_free(b);
    ff_flow_free(f);
}

FF_TEST(determinism) {
    ff_flow_t *a = small_flow(2, 3, 16, 3, "exact_ot", NULL, 42, NULL);
    ff_flow_t *b = small_flow(2, 3, 16, 3, "exact_ot", NULL, 42, NULL);
    ff_flow_t *c = small_flow(2, 3, 16, 3, "exact_ot", NULL, 43, NULL);
    if (!a || !b || !c) return;
    ff_tensor_t *data = one_hot(64, 2, 3, pick_mod), *x = NULL;
    ff_tensor_new3(&x, 32, 2, 4);
    int same = 1, differs = 0;
    for (int s = 0; s < 20; s++) {
        ff_step_stats sa, sb, sc;
        take_rows(x, data, s * 32);
        FF_EXPECT(ff_flow_step(a, x, NULL, NULL, &sa) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(ff_flow_step(b, x, NULL, NULL, &sb) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(ff_flow_step(c, x, NULL, NULL, &sc) == FF_OK, "%s", ff_last_error());
        if (memcmp(&sa.loss, &sb.loss, sizeof(double)) != 0) same = 0;
        if (sa.loss != sc.loss) differs = 1;
    }
    FF_EXPECT(same, "same seed, different losses");
    FF_EXPECT(differs, "different seeds gave identical losses");
    int64_t np = ff_params_numel(ff_flow_params(a));
    FF_EXPECT(memcmp(ff_params_data(ff_flow_params(a)), ff_params_data(ff_flow_params(b)),
                     (size_t)np * sizeof(float)) == 0, "parameters differ");
    /* sampling is reproducible too */
    ff_tensor_t *sa = NULL, *sb = NULL;
    ff_tensor_new3(&sa, 10, 2, 4);
    ff_tensor_new3(&sb, 10, 2, 4);
    ff_sample_opts so = ff_flow_default_sample_opts();
    so.steps = 10;
    FF_EXPECT(ff_flow_sample(a, sa, NULL, NULL, &so, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_sample(b, sb, NULL, NULL, &so, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(memcmp(sa->data, sb->data, 80 * sizeof(float)) == 0);
    ff_tensor_free(sa); ff_tensor_free(sb);
    ff_tensor_free(data); ff_tensor_free(x);
    ff_flow_free(a); ff_flow_free(b); ff_flow_free(c);
}

FF_TEST(steady_state_memory) {
    /* After the first step with a given n, further steps allocate no tensor storage (scratch and
     * arena reused); a new n reallocates once and returns to the same level. */
    ff_flow_t *f = small_flow(2, 3, 16, 3, "independent", NULL, 6, NULL);
    if (!f) return;
    ff_tensor_t *a = one_hot(32, 2, 3, pick_mod), *b = one_hot(8, 2, 3, pick_mod);
    FF_EXPECT(ff_flow_step(f, a, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_step(f, a, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    int64_t level = ff_mem_in_use();
    for (int s = 0; s < 10; s++) FF_EXPECT(ff_flow_step(f, a, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_mem_in_use() == level, "%lld -> %lld bytes", (long long)level, (long long)ff_mem_in_use());
    FF_EXPECT(ff_flow_step(f, b, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_mem_in_use() < level, "a smaller batch should shrink the scratch");
    FF_EXPECT(ff_flow_step(f, a, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_mem_in_use() == level, "%lld -> %lld bytes", (long long)level, (long long)ff_mem_in_use());
    ff_tensor_free(a); ff_tensor_free(b);
    ff_flow_free(f);
}

FF_TEST(sgd_and_schedule_wiring) {
    /* SGD without momentum, a cosine schedule and no clipping: every step uses lr = ff_lr_at(step)
     * and moves each parameter by exactly -lr * grad (the gradient block holds the last step's). */
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 1, 2, 0, 0 };
    c.seed = 5;
    c.optim = ff_optim_sgd_defaults();
    c.optim.lr = 0.05f;
    c.lr = (ff_lr_schedule){ FF_LR_COSINE, 0, 0.001f, 0, 10 };
    c.grad_clip = 0;
    ff_options *no = opts_ints((const char *[]){ "hidden", "depth", "emb", NULL }, (int64_t[]){ 8, 2, 4 });
    c.network.opts = no;
    ff_flow_t *f = NULL;
    FF_EXPECT(ff_flow_new(&f, &c) == FF_OK, "%s", ff_last_error());
    ff_options_free(no);
    if (!f) return;
    FF_EXPECT(ff_flow_config_of(f)->lr.base == 0.05f, "schedule base %g", ff_flow_config_of(f)->lr.base);
    ff_params_t *P = ff_flow_params(f);
    int64_t np = ff_params_numel(P);
    float *before = malloc((size_t)np * sizeof *before);
    ff_tensor_t *x = one_hot(16, 1, 2, pick_mod);
    for (int s = 0; s < 4; s++) {
        memcpy(before, ff_params_data(P), (size_t)np * sizeof *before);
        ff_step_stats st;
        FF_EXPECT(ff_flow_step(f, x, NULL, NULL, &st) == FF_OK, "%s", ff_last_error());
        float lr = ff_lr_at(&ff_flow_config_of(f)->lr, s);
        FF_EXPECT(st.lr == lr, "step %d: lr %g, schedule %g", s, st.lr, lr);
        double worst = 0;
        const float *g = ff_params_grad(P), *now = ff_params_data(P);
        for (int64_t i = 0; i < np; i++) worst = ff_nanmax(worst, fabs(now[i] - (before[i] - lr * g[i])));
        FF_EXPECT(worst < 1e-7, "step %d: |p - (p0 - lr g)| up to %g", s, worst);
    }
    FF_EXPECT(ff_lr_at(&ff_flow_config_of(f)->lr, 3) < 0.05f);
    free(before);
    ff_tensor_free(x);
    ff_flow_free(f);
}

FF_TEST(nan_is_refused_and_parameters_kept) {
    ff_flow_t *f = small_flow(1, 2, 8, 2, "independent", NULL, 1, NULL);
    if (!f) return;
    ff_tensor_t *x = one_hot(16, 1, 2, pick_mod);
    for (int s = 0; s < 3; s++) FF_EXPECT(ff_flow_step(f, x, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    ff_params_t *P = ff_flow_params(f);
    int64_t np = ff_params_numel(P);
    float *before = malloc((size_t)np * sizeof *before);
    memcpy(before, ff_params_data(P), (size_t)np * sizeof *before);
    x->data[7] = NAN;
    FF_EXPECT_ERROR(ff_flow_step(f, x, NULL, NULL, NULL), FF_ENUMERIC, "step 4");
    FF_EXPECT(strstr(ff_last_error(), "NaN") != NULL, "%s", ff_last_error());
    FF_EXPECT(memcmp(before, ff_params_data(P), (size_t)np * sizeof *before) == 0, "parameters changed");
    FF_EXPECT(ff_flow_steps(f) == 3);
    x->data[7] = 0.0f;
    /* a non-finite parameter makes the loss NaN: refused before any update, parameters as they were */
    ff_tensor_t *w = ff_params_find(P, "net.block0.weight_h");
    w->data[0] = NAN;
    memcpy(before, ff_params_data(P), (size_t)np * sizeof *before);
    FF_EXPECT_ERROR(ff_flow_step(f, x, NULL, NULL, NULL), FF_ENUMERIC, "step 4: loss is NaN (last good parameters kept)");
    FF_EXPECT(memcmp(before, ff_params_data(P), (size_t)np * sizeof *before) == 0, "parameters changed");
    w->data[0] = 0.0f;
    FF_EXPECT(ff_flow_step(f, x, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_steps(f) == 4);
    free(before);
    ff_tensor_free(x);
    ff_flow_free(f);
}

/* ---- the gradient / update seam -------------------------------------------------------------- */

static int same_floats(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof *a) == 0; }

/* A bmlp flow with EMA and a warm-up cosine schedule, so the update's every part is exercised. */
static ff_flow_t *ema_flow(const char *coupler, uint64_t seed) {
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 2, 3, 0, 0 };
    c.seed = seed;
    c.coupler.name = coupler;
    c.ema_decay = 0.9f;
    c.grad_clip = 0.5f;
    c.lr = (ff_lr_schedule){ FF_LR_WARMUP_COSINE, 0.01f, 0.001f, 2, 8 };
    ff_options *no = opts_ints((const char *[]){ "hidden", "depth", "emb", NULL }, (int64_t[]){ 16, 3, 8 });
    c.network.opts = no;
    ff_flow_t *f = NULL;
    FF_EXPECT(ff_flow_new(&f, &c) == FF_OK, "ff_flow_new: %s", ff_last_error());
    ff_options_free(no);
    return f;
}

FF_TEST(step_equals_grad_then_update) {
    /* ff_flow_step on one flow, ff_flow_grad + ff_flow_update on an identically seeded one: the same
     * stats and, bit for bit, the same parameters, optimiser moments and EMA after every step. */
    const char *couplers[] = { "exact_ot", "independent" };
    for (int cp = 0; cp < 2; cp++) {
        ff_flow_t *a = ema_flow(couplers[cp], 21), *b = ema_flow(couplers[cp], 21);
        if (!a || !b) { ff_flow_free(a); ff_flow_free(b); return; }
        ff_tensor_t *data = one_hot(96, 2, 3, pick_mod), *x = NULL;
        ff_tensor_new3(&x, 24, 2, 4);
        int64_t np = ff_params_numel(ff_flow_params(a));
        int same = 1;
        for (int s = 0; s < 8; s++) {
            ff_step_stats sa, sg, sb;
            take_rows(x, data, s * 24);
            FF_EXPECT(ff_flow_step(a, x, NULL, NULL, &sa) == FF_OK, "%s", ff_last_error());
            FF_EXPECT(ff_flow_grad(b, x, NULL, NULL, &sg) == FF_OK, "%s", ff_last_error());
            FF_EXPECT(ff_flow_grad_count(b) == 1 && sg.step == s, "count %d, step %lld", ff_flow_grad_count(b),
                      (long long)sg.step);
            FF_EXPECT(ff_flow_update(b, &sb) == FF_OK, "%s", ff_last_error());
            FF_EXPECT(ff_flow_grad_count(b) == 0);
            same &= sa.loss == sg.loss && sa.loss == sb.loss && sa.grad_norm == sb.grad_norm && sa.lr == sb.lr &&
                    sa.step == sb.step && sb.step == s + 1;
            same &= same_floats(ff_params_data(ff_flow_params(a)), ff_params_data(ff_flow_params(b)), np);
        }
        float *ma, *va, *mb, *vb;
        int64_t na, nb, *ta, *tb;
        ff_optim_state(ff_flow_optim(a), &ma, &va, &na, &ta);
        ff_optim_state(ff_flow_optim(b), &mb, &vb, &nb, &tb);
        FF_EXPECT(same, "%s: step and grad+update diverged", couplers[cp]);
        FF_EXPECT(same_floats(ma, mb, np) && same_floats(va, vb, np) && *ta == *tb, "%s: optimiser state differs",
                  couplers[cp]);
        FF_EXPECT(same_floats(ff_ema_data(ff_flow_ema(a)), ff_ema_data(ff_flow_ema(b)), np), "%s: EMA differs",
                  couplers[cp]);
        ff_tensor_free(data); ff_tensor_free(x);
        ff_flow_free(a); ff_flow_free(b);
    }
}

FF_TEST(coupling_time_is_part_of_the_step) {
    /* couple_ms: the coupler's share of a step's wall time, per micro-batch from ff_flow_grad and
     * summed over the micro-batches by ff_flow_update; always within [0, ms]. */
    ff_flow_t *f = small_flow(1, 2, 16, 1, "exact_ot", NULL, 5, NULL);
    if (!f) return;
    ff_rng_t r;
    ff_rng_seed(&r, 8);
    ff_tensor_t *x = NULL;
    ff_tensor_new3(&x, 512, 1, 3);
    ff_test_fill_sphere(x, &r);                                  /* continuous points, squared onto the simplex */
    for (int64_t e = 0; e < 512 * 3; e++) x->data[e] *= x->data[e];
    ff_step_stats g1, g2, u, st;
    FF_EXPECT(ff_flow_grad(f, x, NULL, NULL, &g1) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_grad(f, x, NULL, NULL, &g2) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_update(f, &u) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(g1.couple_ms > 0 && g1.couple_ms <= g1.ms && g2.couple_ms > 0 && g2.couple_ms <= g2.ms,
              "grad: couple %.3f of %.3f ms, %.3f of %.3f ms", g1.couple_ms, g1.ms, g2.couple_ms, g2.ms);
    FF_EXPECT(u.couple_ms == g1.couple_ms + g2.couple_ms && u.couple_ms <= u.ms,
              "update: couple %.6f ms, grads %.6f + %.6f, step %.3f ms", u.couple_ms, g1.couple_ms, g2.couple_ms, u.ms);
    FF_EXPECT(ff_flow_step(f, x, NULL, NULL, &st) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(st.couple_ms > 0 && st.couple_ms <= st.ms, "step: couple %.3f of %.3f ms", st.couple_ms, st.ms);
    ff_tensor_free(x);
    ff_flow_free(f);
}

FF_TEST(micro_batches_equal_one_batch) {
    /* With the independent coupler (identity pairing, no random draws) and caller-given x0, a batch
     * of 2b draws the same 2b times as two micro-batches of b in a row: the accumulated gradient
     * divided by 2 is the gradient of the 2b batch, up to float summation order, and so is the
     * update it makes. */
    const int64_t b = 16, k = 2, d = 3;
    ff_flow_t *one = ema_flow("independent", 33), *acc = ema_flow("independent", 33);
    if (!one || !acc) { ff_flow_free(one); ff_flow_free(acc); return; }
    ff_tensor_t *x = one_hot(2 * b, k, d, pick_mod), *x0 = NULL, *xa = NULL, *xb = NULL, *x0a = NULL, *x0b = NULL;
    ff_tensor_new3(&x0, 2 * b, k, d + 1);
    ff_rng_t r;
    ff_rng_seed(&r, 8);
    ff_test_fill_sphere(x0, &r);
    ff_tensor_new3(&xa, b, k, d + 1); ff_tensor_new3(&xb, b, k, d + 1);
    ff_tensor_new3(&x0a, b, k, d + 1); ff_tensor_new3(&x0b, b, k, d + 1);
    take_rows(xa, x, 0); take_rows(xb, x, b);
    take_rows(x0a, x0, 0); take_rows(x0b, x0, b);
    size_t n1 = 0, n2 = 0;
    float *g1 = ff_flow_grad_block(one, &n1), *g2 = ff_flow_grad_block(acc, &n2);
    FF_EXPECT(n1 == (size_t)ff_params_numel(ff_flow_params(one)) && n1 == n2 && g1 == ff_params_grad(ff_flow_params(one)));
    ff_step_stats s1, sa, sb, su, s2;
    float t_all[32], t_ab[32];
    FF_EXPECT(ff_flow_grad(one, x, x0, NULL, &s1) == FF_OK, "%s", ff_last_error());
    memcpy(t_all, ff_flow_last_t(one)->data, sizeof t_all);
    FF_EXPECT(ff_flow_grad(acc, xa, x0a, NULL, &sa) == FF_OK, "%s", ff_last_error());
    memcpy(t_ab, ff_flow_last_t(acc)->data, 16 * sizeof(float));
    FF_EXPECT(ff_flow_grad(acc, xb, x0b, NULL, &sb) == FF_OK, "%s", ff_last_error());
    memcpy(t_ab + 16, ff_flow_last_t(acc)->data, 16 * sizeof(float));
    FF_EXPECT(memcmp(t_all, t_ab, sizeof t_all) == 0, "the micro-batches drew other times than the batch");
    FF_EXPECT(ff_flow_grad_count(acc) == 2 && ff_flow_grad_count(one) == 1);
    FF_EXPECT_NEAR((sa.loss + sb.loss) / 2, s1.loss, 1e-6 * s1.loss);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n1; i++) {
        worst = fmax(worst, fabs(g2[i] / 2 - g1[i]));
        scale = fmax(scale, fabs(g1[i]));
    }
    printf("  accumulated/2 vs one batch: max |diff| %.3g (max |g| %.3g)\n", worst, scale);
    FF_EXPECT(scale > 0 && worst <= 1e-5 * scale, "max |diff| %g, max |g| %g", worst, scale);
    FF_EXPECT(ff_flow_update(one, &s2) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_update(acc, &su) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_NEAR(su.grad_norm, s2.grad_norm, 1e-5 * s2.grad_norm);
    FF_EXPECT_NEAR(su.loss, s2.loss, 1e-6 * s2.loss);
    FF_EXPECT(su.step == 1 && s2.step == 1 && su.lr == s2.lr);
    FF_EXPECT(su.ms >= sa.ms + sb.ms, "update ms %g < grad ms %g + %g", su.ms, sa.ms, sb.ms);
    const float *pa = ff_params_data(ff_flow_params(one)), *pb = ff_params_data(ff_flow_params(acc));
    double dp = 0;
    for (size_t i = 0; i < n1; i++) dp = fmax(dp, fabs(pa[i] - pb[i]));
    /* a warm-up schedule's first lr is 0: compare after a second step, with a real move */
    FF_EXPECT(dp == 0, "lr 0 moved the parameters by %g", dp);
    FF_EXPECT(ff_flow_grad(one, x, x0, NULL, NULL) == FF_OK && ff_flow_update(one, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_grad(acc, xa, x0a, NULL, NULL) == FF_OK && ff_flow_grad(acc, xb, x0b, NULL, NULL) == FF_OK &&
              ff_flow_update(acc, NULL) == FF_OK, "%s", ff_last_error());
    double moved = 0;
    dp = 0;
    const float *p0 = ff_ema_data(ff_flow_ema(one));     /* the EMA trails: the step's size, roughly */
    for (size_t i = 0; i < n1; i++) { dp = fmax(dp, fabs(pa[i] - pb[i])); moved = fmax(moved, fabs(pa[i] - p0[i])); }
    printf("  after 2 updates: max |param diff| %.3g (largest move %.3g)\n", dp, moved);
    FF_EXPECT(moved > 0 && dp <= 1e-3 * moved, "param diff %g, move %g", dp, moved);
    ff_tensor_free(x); ff_tensor_free(x0); ff_tensor_free(xa); ff_tensor_free(xb);
    ff_tensor_free(x0a); ff_tensor_free(x0b);
    ff_flow_free(one); ff_flow_free(acc);
}

FF_TEST(grad_update_contract) {
    ff_flow_t *f = small_flow(1, 2, 8, 2, "independent", NULL, 3, NULL);
    if (!f) return;
    ff_tensor_t *x = one_hot(16, 1, 2, pick_mod), *p = NULL, *lp = NULL, *out = NULL;
    ff_params_t *P = ff_flow_params(f);
    int64_t np = ff_params_numel(P);
    float *before = malloc((size_t)np * sizeof *before), *gsum = malloc((size_t)np * sizeof *gsum);
    /* an update needs a gradient */
    FF_EXPECT_ERROR(ff_flow_update(f, NULL), FF_EINVAL, "ff_flow_update: step 1: no gradient accumulated");
    FF_EXPECT(ff_flow_grad(f, x, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_grad(f, x, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_grad_count(f) == 2 && ff_flow_steps(f) == 0);
    memcpy(gsum, ff_flow_grad_block(f, NULL), (size_t)np * sizeof *gsum);
    /* sampling, evaluation and likelihoods between the calls leave the sum alone */
    ff_tensor_new3(&out, 4, 1, 3);
    ff_tensor_new3(&p, 4, 1, 3);
    ff_tensor_new1(&lp, 4);
    ff_tensor_fill(p, 1.0f / 3);
    ff_sample_opts so = ff_flow_default_sample_opts();
    so.steps = 3;
    ff_logprob_opts lo = ff_flow_default_logprob_opts();
    lo.steps = 3;
    double ev;
    FF_EXPECT(ff_flow_sample(f, out, NULL, NULL, &so, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_log_prob(f, p, NULL, &lo, lp) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_eval_loss(f, x, NULL, &ev) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(same_floats(gsum, ff_flow_grad_block(f, NULL), np), "sample/log_prob/eval changed the gradient sum");
    /* a NaN loss is refused with the sum and the count as they were */
    memcpy(before, ff_params_data(P), (size_t)np * sizeof *before);
    x->data[4] = NAN;
    FF_EXPECT_ERROR(ff_flow_grad(f, x, NULL, NULL, NULL), FF_ENUMERIC, "ff_flow_grad: step 1");
    x->data[4] = 0.0f;
    ff_tensor_t *w = ff_params_get(P, 0);
    float keep = w->data[0];
    w->data[0] = NAN;
    FF_EXPECT_ERROR(ff_flow_grad(f, x, NULL, NULL, NULL), FF_ENUMERIC, "ff_flow_grad: step 1: loss is NaN");
    w->data[0] = keep;
    FF_EXPECT(ff_flow_grad_count(f) == 2 && same_floats(gsum, ff_flow_grad_block(f, NULL), np),
              "a refused micro-batch changed the accumulation");
    /* a non-finite gradient (say a bad all-reduce) is refused by the update: parameters kept, sum dropped */
    ff_flow_grad_block(f, NULL)[np / 2] = INFINITY;
    FF_EXPECT_ERROR(ff_flow_update(f, NULL), FF_ENUMERIC, "ff_flow_update: step 1: gradient is not finite");
    FF_EXPECT(same_floats(before, ff_params_data(P), np) && ff_flow_steps(f) == 0, "parameters changed");
    FF_EXPECT(ff_flow_grad_count(f) == 0);
    FF_EXPECT_ERROR(ff_flow_update(f, NULL), FF_EINVAL, "no gradient accumulated");
    /* the next micro-batch starts from zero: its gradient equals a fresh flow's first */
    ff_flow_t *g = small_flow(1, 2, 8, 2, "independent", NULL, 3, NULL);
    ff_tensor_t *x0 = NULL;
    ff_tensor_new3(&x0, 16, 1, 3);
    ff_rng_t r;
    ff_rng_seed(&r, 4);
    ff_test_fill_sphere(x0, &r);
    if (g) {
        /* same parameters, same x0; the times differ unless the streams agree, so copy t's stream */
        *ff_flow_rng(g) = *ff_flow_rng(f);
        FF_EXPECT(ff_flow_grad(f, x, x0, NULL, NULL) == FF_OK && ff_flow_grad(g, x, x0, NULL, NULL) == FF_OK, "%s",
                  ff_last_error());
        FF_EXPECT(same_floats(ff_flow_grad_block(f, NULL), ff_flow_grad_block(g, NULL), np),
                  "the dropped sum leaked into the next accumulation");
        ff_flow_grad_zero(g);
        FF_EXPECT(ff_flow_grad_count(g) == 0 && ff_flow_grad_block(g, NULL)[0] == 0.0f);
        FF_EXPECT_ERROR(ff_flow_update(g, NULL), FF_EINVAL, "no gradient accumulated");
    }
    ff_flow_free(g);
    FF_EXPECT(ff_flow_grad_block(NULL, NULL) == NULL && ff_flow_grad_count(NULL) == 0);
    free(before); free(gsum);
    ff_tensor_free(x); ff_tensor_free(x0); ff_tensor_free(p); ff_tensor_free(lp); ff_tensor_free(out);
    ff_flow_free(f);
}

FF_TEST(bad_arguments) {
    ff_flow_t *f = small_flow(2, 2, 8, 2, "independent", NULL, 1, NULL);
    if (!f) return;
    ff_tensor_t *x = one_hot(4, 1, 2, pick_mod), *cond = NULL;
    FF_EXPECT_ERROR(ff_flow_step(f, x, NULL, NULL, NULL), FF_ESHAPE, "x1 is [4,1,3], expected [n, 2, 3]");
    ff_tensor_free(x);
    x = one_hot(4, 2, 2, pick_mod);
    ff_tensor_new1(&cond, 4);
    FF_EXPECT_ERROR(ff_flow_step(f, x, NULL, cond, NULL), FF_EINVAL, "cond given but the space has no condition");
    ff_tensor_t *x0 = NULL;
    ff_tensor_new3(&x0, 3, 2, 3);
    FF_EXPECT_ERROR(ff_flow_step(f, x, x0, NULL, NULL), FF_ESHAPE, "x0 has 3 rows, expected 4");
    ff_tensor_free(x0);
    x->data[0] = -0.5f; x->data[1] = 1.5f;
    FF_EXPECT(ff_flow_step(f, x, NULL, NULL, NULL) == FF_EINVAL, "negative probabilities accepted");
    FF_EXPECT(ff_flow_steps(f) == 0);
    ff_tensor_free(x); ff_tensor_free(cond);
    ff_flow_free(f);
    /* configuration errors */
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 1, 2, 0, 0 };
    c.geometry = "torus";
    FF_EXPECT(ff_flow_new(&f, &c) == FF_EINVAL && f == NULL);
    FF_EXPECT(strstr(ff_last_error(), "torus") != NULL, "%s", ff_last_error());
    c.geometry = NULL;
    c.network.name = "nonet";
    FF_EXPECT(ff_flow_new(&f, &c) != FF_OK && f == NULL);
    FF_EXPECT(strstr(ff_last_error(), "nonet") != NULL, "%s", ff_last_error());
    c.network.name = NULL;
    c.space.d = 0;
    FF_EXPECT_ERROR(ff_flow_new(&f, &c), FF_EINVAL, "d >= 1");
}

FF_TEST(condition_passes_through) {
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 1, 2, 2, 0 };   /* two classes */
    c.seed = 8;
    ff_options *no = opts_ints((const char *[]){ "hidden", "depth", "emb", NULL }, (int64_t[]){ 32, 3, 8 });
    c.network.opts = no;
    ff_flow_t *f = NULL;
    FF_EXPECT(ff_flow_new(&f, &c) == FF_OK, "%s", ff_last_error());
    ff_options_free(no);
    if (!f) return;
    /* class 0 -> vertex 0, class 1 -> vertex 1 */
    ff_tensor_t *x = one_hot(64, 1, 2, pick_01), *cond = NULL;
    ff_tensor_new1(&cond, 64);
    for (int i = 0; i < 64; i++) cond->data[i] = (float)(i % 2);
    FF_EXPECT_ERROR(ff_flow_step(f, x, NULL, NULL, NULL), FF_EINVAL, "cond_classes 2 but cond is NULL");
    cond->data[5] = 2;
    FF_EXPECT_ERROR(ff_flow_step(f, x, NULL, cond, NULL), FF_EINVAL, "cond[5] = 2 is not a class id");
    cond->data[5] = 1;
    for (int s = 0; s < 300; s++) FF_EXPECT(ff_flow_step(f, x, NULL, cond, NULL) == FF_OK, "%s", ff_last_error());
    ff_tensor_t *out = NULL, *tok = NULL;
    ff_tensor_new3(&out, 64, 1, 3);
    ff_tensor_new2(&tok, 64, 1);
    FF_EXPECT(ff_flow_sample(f, out, NULL, cond, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_decode(f, out, tok) == FF_OK, "%s", ff_last_error());
    int right = 0;
    for (int i = 0; i < 64; i++) right += tok->data[i] == cond->data[i];
    printf("  conditional samples on their class's vertex: %d / 64\n", right);
    FF_EXPECT(right >= 58, "%d / 64", right);
    ff_tensor_free(x); ff_tensor_free(cond); ff_tensor_free(out); ff_tensor_free(tok);
    ff_flow_free(f);
}

/* ---- sampling ---------------------------------------------------------------------------------- */

static void expect_on_simplex(const ff_tensor_t *p, const char *what) {
    int64_t m = p->shape[2], rows = ff_tensor_numel(p) / m;
    double worst = 0, mn = 1;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t c = 0; c < m; c++) { s += p->data[r * m + c]; mn = fmin(mn, p->data[r * m + c]); }
        worst = ff_nanmax(worst, fabs(s - 1));
    }
    FF_EXPECT(worst < 1e-5 && mn >= 0, "%s: max |sum - 1| %g, min %g", what, worst, mn);
}

FF_TEST(sample_on_simplex_every_stepper) {
    const char *geoms[] = { "sphere", "simplex", "linear" };
    for (int g = 0; g < 3; g++) {
        ff_flow_t *f = small_flow(2, 3, 16, 3, "independent", geoms[g], 4, NULL);
        if (!f) continue;
        ff_tensor_t *x = one_hot(32, 2, 3, pick_mod), *out = NULL, *out2 = NULL, *x0 = NULL;
        for (int s = 0; s < 20; s++) FF_EXPECT(ff_flow_step(f, x, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
        ff_tensor_new3(&out, 37, 2, 4);
        ff_tensor_new3(&out2, 37, 2, 4);
        ff_tensor_new3(&x0, 37, 2, 4);
        ff_rng_t r;
        ff_rng_seed(&r, 12);
        ff_test_fill_sphere(x0, &r);
        for (const char *const *st = ff_ode_steppers(); *st; st++) {
            ff_sample_opts so = ff_flow_default_sample_opts();
            so.stepper = *st;
            so.steps = 25;
            if (strcmp(*st, "msadams") == 0) so.eps_abs = so.eps_rel = 1e-5;   /* adaptive only */
            ff_sample_stats ss = { 0, 0 };
            FF_EXPECT(ff_flow_sample(f, out, NULL, NULL, &so, &ss) == FF_OK, "%s %s: %s", geoms[g], *st, ff_last_error());
            char what[64];
            snprintf(what, sizeof what, "%s/%s", geoms[g], *st);
            expect_on_simplex(out, what);
            FF_EXPECT(ss.nfe >= 10, "%s: nfe %lld", what, (long long)ss.nfe);
            /* chunking does not change the result (given starts) */
            so.batch = 8;
            FF_EXPECT(ff_flow_sample(f, out, x0, NULL, &so, &ss) == FF_OK, "%s", ff_last_error());
            so.batch = 0;
            FF_EXPECT(ff_flow_sample(f, out2, x0, NULL, &so, &ss) == FF_OK, "%s", ff_last_error());
            double dmax = 0;
            for (int64_t i = 0; i < ff_tensor_numel(out); i++) dmax = ff_nanmax(dmax, fabs(out->data[i] - out2->data[i]));
            /* Rows are independent, but BLAS may round a row differently inside batches of other
             * sizes (1e-8), and an adaptive stepper controls the error of the whole chunk, so its
             * steps depend on the chunk (differences of the order of eps). The simplex geometry's
             * Euler step switches rule at p_i = 1e-8 (geometry.h), which turns 1e-8 into O(0.1):
             * there only the simplex constraints are checked. */
            double tol = so.eps_abs > 0 ? 1e-3 : 1e-5;
            if (strcmp(geoms[g], "simplex") != 0)
                FF_EXPECT(dmax < tol, "%s: chunked vs whole differ by %g", what, dmax);
            expect_on_simplex(out2, what);
            if (strcmp(*st, "rkf45") == 0) {    /* adaptive */
                so.eps_abs = 1e-5; so.eps_rel = 1e-5;
                FF_EXPECT(ff_flow_sample(f, out, NULL, NULL, &so, &ss) == FF_OK, "%s adaptive: %s", what, ff_last_error());
                expect_on_simplex(out, "adaptive rkf45");
            }
        }
        ff_tensor_free(x); ff_tensor_free(out); ff_tensor_free(out2); ff_tensor_free(x0);
        ff_flow_free(f);
    }
}

static void train_toy(ff_flow_t *f, int (*pick)(int64_t, int64_t), int steps) {
    ff_tensor_t *x = one_hot(128, 1, 2, pick);
    for (int s = 0; s < steps; s++) FF_EXPECT(ff_flow_step(f, x, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    ff_tensor_free(x);
}

FF_TEST(trained_toy_samples_right_vertex) {
    ff_tensor_t *out = NULL, *tok = NULL;
    ff_tensor_new3(&out, 400, 1, 3);
    ff_tensor_new2(&tok, 400, 1);
    /* a single vertex */
    ff_flow_t *f = small_flow(1, 2, 64, 3, "exact_ot", NULL, 21, NULL);
    if (!f) return;
    train_toy(f, pick_v2, 300);
    FF_EXPECT(ff_flow_sample(f, out, NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_decode(f, out, tok) == FF_OK, "%s", ff_last_error());
    int c2 = 0;
    for (int i = 0; i < 400; i++) c2 += tok->data[i] == 2;
    printf("  single vertex: %d / 400 samples decode to it\n", c2);
    FF_EXPECT(c2 >= 380, "%d / 400", c2);
    ff_flow_free(f);
    /* two vertices, equal weights */
    f = small_flow(1, 2, 64, 3, "exact_ot", NULL, 22, NULL);
    if (!f) return;
    train_toy(f, pick_01, 600);
    FF_EXPECT(ff_flow_sample(f, out, NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_decode(f, out, tok) == FF_OK, "%s", ff_last_error());
    int c[3] = { 0, 0, 0 };
    for (int i = 0; i < 400; i++) c[(int)tok->data[i]]++;
    printf("  two-vertex mixture: counts %d / %d / %d\n", c[0], c[1], c[2]);
    FF_EXPECT(c[0] + c[1] >= 360, "%d + %d of 400", c[0], c[1]);
    FF_EXPECT(c[0] >= 120 && c[1] >= 120, "%d vs %d", c[0], c[1]);
    ff_flow_free(f);
    ff_tensor_free(out); ff_tensor_free(tok);
}

FF_TEST(ema_used_for_sampling) {
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 1, 2, 0, 0 };
    c.seed = 3;
    c.ema_decay = 0.9f;
    ff_options *no = opts_ints((const char *[]){ "hidden", "depth", "emb", NULL }, (int64_t[]){ 16, 3, 8 });
    c.network.opts = no;
    ff_flow_t *fe = NULL, *fp = NULL;
    FF_EXPECT(ff_flow_new(&fe, &c) == FF_OK, "%s", ff_last_error());
    c.ema_decay = 0;
    FF_EXPECT(ff_flow_new(&fp, &c) == FF_OK, "%s", ff_last_error());
    ff_options_free(no);
    if (!fe || !fp) return;
    FF_EXPECT(ff_flow_ema(fe) != NULL && ff_flow_ema(fp) == NULL);
    train_toy(fe, pick_mod, 30);
    train_toy(fp, pick_mod, 30);
    ff_params_t *P = ff_flow_params(fe);
    int64_t np = ff_params_numel(P);
    FF_EXPECT(memcmp(ff_params_data(P), ff_params_data(ff_flow_params(fp)), (size_t)np * sizeof(float)) == 0,
              "EMA changed the live training");
    float *live = malloc((size_t)np * sizeof *live);
    memcpy(live, ff_params_data(P), (size_t)np * sizeof *live);
    ff_tensor_t *x0 = NULL, *a = NULL, *b = NULL;
    ff_tensor_new3(&x0, 20, 1, 3);
    ff_tensor_new3(&a, 20, 1, 3);
    ff_tensor_new3(&b, 20, 1, 3);
    ff_rng_t r;
    ff_rng_seed(&r, 1);
    ff_test_fill_sphere(x0, &r);
    FF_EXPECT(ff_flow_sample(fe, a, x0, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_sample(fp, b, x0, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(memcmp(live, ff_params_data(P), (size_t)np * sizeof *live) == 0, "live weights not restored");
    double dmax = 0;
    for (int i = 0; i < 60; i++) dmax = ff_nanmax(dmax, fabs(a->data[i] - b->data[i]));
    FF_EXPECT(dmax > 1e-4, "EMA and live weights sample the same (%g)", dmax);
    /* the EMA sample equals sampling the no-EMA flow after loading the averaged weights into it */
    memcpy(ff_params_data(ff_flow_params(fp)), ff_ema_data(ff_flow_ema(fe)), (size_t)np * sizeof(float));
    FF_EXPECT(ff_flow_sample(fp, b, x0, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(memcmp(a->data, b->data, 60 * sizeof(float)) == 0, "EMA sample is not the averaged weights' sample");
    free(live);
    ff_tensor_free(x0); ff_tensor_free(a); ff_tensor_free(b);
    ff_flow_free(fe); ff_flow_free(fp);
}

static int pick_pos(int64_t i, int64_t j) { return (int)((j + (i % 2) * 2) % 4); }

FF_TEST(cnn1d_flow_learns_sequences) {
    /* The CNN inside a flow: k = 8 positions over 4 symbols, two sequences (0123 0123 and its
     * shift by 2); after training, samples decode to one of the two at most positions. */
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 8, 3, 0, 0 };
    c.seed = 12;
    c.coupler.name = "exact_ot";
    c.network.name = "cnn1d";
    ff_options *no = NULL;
    ff_options_new(&no);
    ff_options_set_int(no, "hidden", 32);
    ff_options_set_int(no, "kernel", 3);
    ff_options_set_numbers(no, "dilations", (double[]){ 1, 2, 4 }, 3);
    ff_options_set_number(no, "fourier_scale", 1.0);
    c.network.opts = no;
    ff_flow_t *f = NULL;
    FF_EXPECT(ff_flow_new(&f, &c) == FF_OK, "%s", ff_last_error());
    ff_options_free(no);
    if (!f) return;
    ff_tensor_t *x = one_hot(64, 8, 3, pick_pos), *out = NULL, *tok = NULL;
    double first = 0, last = 0;
    ff_step_stats st;
    for (int s = 0; s < 300; s++) {
        FF_EXPECT(ff_flow_step(f, x, NULL, NULL, &st) == FF_OK, "%s", ff_last_error());
        if (s < 20) first += st.loss / 20;
        if (s >= 280) last += st.loss / 20;
    }
    ff_tensor_new3(&out, 100, 8, 4);
    ff_tensor_new2(&tok, 100, 8);
    FF_EXPECT(ff_flow_sample(f, out, NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_decode(f, out, tok) == FF_OK, "%s", ff_last_error());
    int good = 0;
    for (int i = 0; i < 100; i++) {
        int a = 0, b = 0;
        for (int j = 0; j < 8; j++) { a += tok->data[i * 8 + j] == (j % 4); b += tok->data[i * 8 + j] == ((j + 2) % 4); }
        good += (a >= 7 || b >= 7);
    }
    printf("  cnn1d flow: loss %.3f -> %.3f; %d / 100 samples match a training sequence at >= 7 of 8 positions\n",
           first, last, good);
    FF_EXPECT(last < 0.6 * first, "loss %.3f -> %.3f", first, last);
    FF_EXPECT(good >= 80, "%d / 100", good);
    ff_tensor_free(x); ff_tensor_free(out); ff_tensor_free(tok);
    ff_flow_free(f);
}

/* ---- likelihood -------------------------------------------------------------------------------- */

FF_TEST(log_prob_of_zero_field_is_source_density) {
    /* With the last layer zeroed the field vanishes, so the model is the uniform orthant source,
     * which is Dirichlet(1/2, ..., 1/2) on each position's simplex: log density
     * lgamma((d+1)/2) - (d+1) lgamma(1/2) - 1/2 sum_i log p_i, summed over positions. */
    const int64_t k = 2, d = 2, n = 6;
    ff_flow_t *f = small_flow(k, d, 8, 3, "independent", NULL, 2, NULL);
    if (!f) return;
    ff_params_t *P = ff_flow_params(f);
    ff_tensor_fill(ff_params_find(P, "net.block2.weight_h"), 0.0f);
    ff_tensor_fill(ff_params_find(P, "net.block2.weight_e"), 0.0f);
    ff_tensor_fill(ff_params_find(P, "net.block2.bias"), 0.0f);
    ff_tensor_t *p = NULL, *lp = NULL;
    ff_tensor_new3(&p, n, k, d + 1);
    ff_tensor_new1(&lp, n);
    ff_rng_t r;
    ff_rng_seed(&r, 17);
    for (int64_t i = 0; i < n * k; i++) {
        double g[3], s = 0;
        for (int c = 0; c < 3; c++) { g[c] = ff_rng_gamma(&r, 2.0); s += g[c]; }
        for (int c = 0; c < 3; c++) p->data[i * 3 + c] = (float)(g[c] / s);
    }
    const char *est[] = { "exact", "hutchinson" };
    for (int e = 0; e < 2; e++) {
        ff_logprob_opts lo = ff_flow_default_logprob_opts();
        lo.steps = 5;
        lo.estimator = est[e];
        FF_EXPECT(ff_flow_log_prob(f, p, NULL, &lo, lp) == FF_OK, "%s: %s", est[e], ff_last_error());
        for (int64_t i = 0; i < n; i++) {
            double want = 0;
            for (int64_t j = 0; j < k; j++) {
                want += lgamma((d + 1) / 2.0) - (d + 1) * lgamma(0.5);
                for (int c = 0; c <= d; c++) want -= 0.5 * log((double)p->data[(i * k + j) * 3 + c]);
            }
            FF_EXPECT_NEAR(lp->data[i], want, 1e-4 * fabs(want) + 1e-4);
        }
    }
    ff_tensor_free(p); ff_tensor_free(lp);
    ff_flow_free(f);
    /* other geometries have no log_prob */
    f = small_flow(1, 2, 8, 2, "independent", "linear", 2, NULL);
    ff_tensor_t *q = one_hot(2, 1, 2, pick_mod), *o = NULL;
    ff_tensor_new1(&o, 2);
    FF_EXPECT_ERROR(ff_flow_log_prob(f, q, NULL, NULL, o), FF_EINVAL, "log_prob needs geometry sphere");
    ff_tensor_free(q); ff_tensor_free(o);
    ff_flow_free(f);
}

FF_TEST(log_prob_trained_moves_toward_data) {
    /* Train on Dirichlet(2, 2, 8) draws (a smooth density, log 2.82 at its mode (1/9, 1/9, 7/9) and
     * -9.7 at (0.8, 0.1, 0.1)); the model's log density must rise above the source's at the mode
     * (0.49 there) and sit far above its value near the empty vertex. */
    ff_flow_t *f = small_flow(1, 2, 64, 3, "exact_ot", NULL, 9, NULL);
    if (!f) return;
    ff_tensor_t *data = NULL, *b = NULL;
    ff_tensor_new3(&data, 4096, 1, 3);
    ff_tensor_new3(&b, 128, 1, 3);
    ff_rng_t r;
    ff_rng_seed(&r, 99);
    const double alpha[3] = { 2, 2, 8 };
    for (int i = 0; i < 4096; i++) {
        double g[3], s = 0;
        for (int c = 0; c < 3; c++) { g[c] = ff_rng_gamma(&r, alpha[c]); s += g[c]; }
        for (int c = 0; c < 3; c++) data->data[i * 3 + c] = (float)(g[c] / s);
    }
    for (int s = 0; s < 600; s++) {
        take_rows(b, data, (int64_t)s * 128);
        FF_EXPECT(ff_flow_step(f, b, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    }
    ff_tensor_t *p = NULL, *lp = NULL;
    ff_tensor_new3(&p, 2, 1, 3);
    ff_tensor_new1(&lp, 2);
    float mode[3] = { 1.0f / 9, 1.0f / 9, 7.0f / 9 }, far[3] = { 0.8f, 0.1f, 0.1f };
    memcpy(p->data, mode, sizeof mode);
    memcpy(p->data + 3, far, sizeof far);
    FF_EXPECT(ff_flow_log_prob(f, p, NULL, NULL, lp) == FF_OK, "%s", ff_last_error());
    double src = lgamma(1.5) - 3 * lgamma(0.5) - 0.5 * (2 * log(1.0 / 9) + log(7.0 / 9));
    printf("  log density at the data mode: %.3f (source %.3f, data 2.824), at (0.8,0.1,0.1): %.3f (data -9.67)\n",
           lp->data[0], src, lp->data[1]);
    FF_EXPECT(lp->data[0] > src + 1.0 && lp->data[0] > lp->data[1] + 3.0, "%g %g", lp->data[0], lp->data[1]);
    ff_tensor_free(p); ff_tensor_free(lp); ff_tensor_free(data); ff_tensor_free(b);
    ff_flow_free(f);
}

/* ---- the distribution of t in training --------------------------------------------------------- */

/* rng.h fixes xoshiro256**, whose next output is rotl(s[1] * 5, 7) * 9: set s[1] so that it is o. */
static uint64_t inverse_odd(uint64_t a) {   /* a^-1 mod 2^64 by Newton: each step doubles the bits */
    uint64_t x = a;                          /* correct to 3 bits for odd a */
    for (int i = 0; i < 6; i++) x *= 2 - a * x;
    return x;
}
static void force_next_u64(ff_rng_t *r, uint64_t o) {
    uint64_t y = o * inverse_odd(9);
    y = (y >> 7) | (y << 57);
    r->s[1] = y * inverse_odd(5);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov-Smirnov statistic of sorted values against U[0, 1). */
static double ks_uniform(const double *t, int64_t N) {
    double D = 0;
    for (int64_t i = 0; i < N; i++) D = fmax(D, fmax((double)(i + 1) / N - t[i], t[i] - (double)i / N));
    return D;
}

FF_TEST(t_uniform_on_24_bit_grid) {
    /* MATH.md: t ~ U[0, 1) per sample, t = u 2^-24 with u the top 24 bits of one draw of the training
     * stream. 16 steps of 4096 samples: every t on the grid {0, .., 2^24 - 1} 2^-24; the KS distance
     * to U[0, 1) below 1.95/sqrt(N) (its 0.1% asymptotic quantile; the grid moves the CDF by at most
     * 2^-24) for all of them and for one batch alone (so t is drawn per sample, not per batch); the
     * lowest of the 24 bits set in half of them (4 standard deviations). */
    const int64_t n = 4096, steps = 16, N = n * steps;
    ff_flow_t *f = small_flow(1, 2, 8, 2, "independent", NULL, 5, NULL);
    if (!f) return;
    ff_tensor_t *x1 = one_hot(n, 1, 2, pick_mod);
    double *t = malloc(sizeof(double) * (size_t)N);
    int64_t off_grid = 0, out_of_range = 0, odd = 0;
    for (int64_t s = 0; s < steps; s++) {
        FF_EXPECT(ff_flow_step(f, x1, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
        const ff_tensor_t *tt = ff_flow_last_t(f);
        FF_EXPECT(tt && tt->ndim == 1 && tt->shape[0] == n, "ff_flow_last_t");
        if (!tt) break;
        for (int64_t i = 0; i < n; i++) {
            double v = tt->data[i], u = ldexp(v, 24);
            t[s * n + i] = v;
            if (!(v >= 0 && v < 1)) out_of_range++;
            if (u != floor(u)) off_grid++;
            else odd += fmod(u, 2.0) == 1.0;
        }
    }
    FF_EXPECT(out_of_range == 0 && off_grid == 0, "%lld outside [0, 1), %lld off the 2^-24 grid",
              (long long)out_of_range, (long long)off_grid);
    FF_EXPECT(fabs(odd - N / 2.0) <= 4 * sqrt(N / 4.0), "lowest bit set in %lld of %lld", (long long)odd, (long long)N);
    double D1;
    qsort(t, (size_t)n, sizeof(double), cmp_double);   /* the first batch alone */
    D1 = ks_uniform(t, n);
    qsort(t, (size_t)N, sizeof(double), cmp_double);
    double D = ks_uniform(t, N);
    printf("  t: KS distance %.5f over %lld draws (bound %.5f), %.5f over one batch of %lld (bound %.5f); "
           "min %.3g, max 1 - %.3g\n", D, (long long)N, 1.95 / sqrt((double)N), D1, (long long)n,
           1.95 / sqrt((double)n), t[0], 1 - t[N - 1]);
    FF_EXPECT(D < 1.95 / sqrt((double)N), "KS %.5f", D);
    FF_EXPECT(D1 < 1.95 / sqrt((double)n), "KS of one batch %.5f", D1);
    free(t);
    ff_tensor_free(x1);

    /* the extremes, by steering the training stream: with the caller's x0 no source draw comes first
     * (MATH.md's order), so t[0] comes from the next output of ff_flow_rng. All ones gives the largest
     * t, 1 - 2^-24 (float rounding of a 24-bit value cannot reach 1); only the top 24 bits count. */
    ff_tensor_t *b = one_hot(4, 1, 2, pick_mod), *x0 = NULL;
    ff_tensor_new3(&x0, 4, 1, 3);
    for (int i = 0; i < 12; i++) x0->data[i] = (float)(1 / sqrt(3.0));
    const struct { uint64_t o; double t; } ex[] = {
        { ~0ull, 1 - 0x1p-24 }, { 0xFFFFFF0000000000ull, 1 - 0x1p-24 }, { 0x000000FFFFFFFFFFull, 0 },
        { 0x0000010000000000ull, 0x1p-24 }, { 0x8000000000000000ull, 0.5 },
    };
    for (size_t e = 0; e < sizeof ex / sizeof ex[0]; e++) {
        ff_rng_t probe = *ff_flow_rng(f);
        force_next_u64(&probe, ex[e].o);
        FF_EXPECT(ff_rng_u64(&probe) == ex[e].o, "steering the stream failed");   /* the helper itself */
        force_next_u64(ff_flow_rng(f), ex[e].o);
        FF_EXPECT(ff_flow_step(f, b, x0, NULL, NULL) == FF_OK, "%s", ff_last_error());
        const ff_tensor_t *tt = ff_flow_last_t(f);
        FF_EXPECT(tt && tt->data[0] == ex[e].t && tt->data[0] < 1.0f, "draw %#llx: t = %.9g, expected %.9g",
                  (unsigned long long)ex[e].o, tt ? tt->data[0] : -1.0, ex[e].t);
    }
    ff_tensor_free(b); ff_tensor_free(x0);
    ff_flow_free(f);
}

/* ---- likelihood with the Dirichlet source ------------------------------------------------------- */

FF_TEST(log_prob_zero_field_dirichlet_source) {
    /* A zero field moves nothing, so ff_flow_log_prob must return the source's density carried to the
     * simplex: log p0(x) + logdet = log Dirichlet(p; alpha) = lgamma(A) - sum lgamma(alpha_i) +
     * sum (alpha_i - 1) log p_i per position (A = sum alpha_i), summed over positions. Scalar and
     * per-symbol alpha (asymmetric, so a permuted or mis-indexed alpha shows), d = 2 and 4, random
     * points and points within 1e-6 of a face; exact and Hutchinson divergence. */
    const struct { int64_t k, d; int na; double a[5]; } cases[] = {
        { 2, 2, 1, { 2.5 } },
        { 2, 2, 3, { 0.3, 1.7, 4.0 } },
        { 1, 4, 5, { 0.5, 1.0, 2.0, 3.0, 0.2 } },
    };
    ff_rng_t r;
    ff_rng_seed(&r, 29);
    double worst = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t k = cases[c].k, d = cases[c].d, m = d + 1, n = 8;
        ff_options *so = NULL;
        ff_options_new(&so);
        ff_options_set_numbers(so, "alpha", cases[c].a, cases[c].na);
        ff_options *no = opts_ints((const char *[]){ "hidden", "depth", "emb", NULL }, (int64_t[]){ 8, 3, 8 });
        ff_flow_config cfg = ff_flow_default_config();
        cfg.space = (ff_space){ k, d, 0, 0 };
        cfg.seed = 3;
        cfg.source = (ff_plugin_spec){ "dirichlet", so };
        cfg.network.opts = no;
        ff_flow_t *f = NULL;
        FF_EXPECT(ff_flow_new(&f, &cfg) == FF_OK, "case %zu: %s", c, ff_last_error());
        ff_options_free(so); ff_options_free(no);
        if (!f) continue;
        ff_params_t *P = ff_flow_params(f);
        ff_tensor_fill(ff_params_find(P, "net.block2.weight_h"), 0.0f);
        ff_tensor_fill(ff_params_find(P, "net.block2.weight_e"), 0.0f);
        ff_tensor_fill(ff_params_find(P, "net.block2.bias"), 0.0f);
        ff_tensor_t *p = NULL, *lp = NULL;
        ff_tensor_new3(&p, n, k, m);
        ff_tensor_new1(&lp, n);
        for (int64_t i = 0; i < n * k; i++) {
            double g[5], s = 0;
            for (int64_t j = 0; j < m; j++) { g[j] = ff_rng_gamma(&r, 1.5); s += g[j]; }
            if (i >= n * k - 2) {   /* near a face: one symbol at 1e-6 (another at 1e-6 too in the last) */
                g[i % m] = 1e-6 * s;
                if (i == n * k - 1) g[(i + 1) % m] = 1e-6 * s;
                s = 0;
                for (int64_t j = 0; j < m; j++) s += g[j];
            }
            for (int64_t j = 0; j < m; j++) p->data[i * m + j] = (float)(g[j] / s);
        }
        const char *est[] = { "exact", "hutchinson" };
        for (int e = 0; e < 2; e++) {
            ff_logprob_opts lo = ff_flow_default_logprob_opts();
            lo.steps = 5;
            lo.estimator = est[e];
            FF_EXPECT(ff_flow_log_prob(f, p, NULL, &lo, lp) == FF_OK, "case %zu %s: %s", c, est[e], ff_last_error());
            for (int64_t i = 0; i < n; i++) {
                double want = 0;
                for (int64_t j = 0; j < k; j++) {
                    const float *q = p->data + (i * k + j) * m;
                    double A = 0, s = 0;
                    for (int64_t l = 0; l < m; l++) s += q[l];
                    for (int64_t l = 0; l < m; l++) {
                        double a = cases[c].a[cases[c].na == 1 ? 0 : l];
                        A += a;
                        want += -lgamma(a) + (a - 1) * log(q[l] / s);
                    }
                    want += lgamma(A);
                }
                double err = fabs(lp->data[i] - want) / (fabs(want) + 1);
                worst = ff_nanmax(worst, err);
                FF_EXPECT(err <= 2e-6, "case %zu %s sample %lld: log p %.9g, Dirichlet %.9g", c, est[e],
                          (long long)i, lp->data[i], want);
            }
        }
        ff_tensor_free(p); ff_tensor_free(lp);
        ff_flow_free(f);
    }
    printf("  zero field, Dirichlet source: largest |log p - log Dir| / (|log Dir| + 1) = %.2g\n", worst);
}

FF_MAIN()
