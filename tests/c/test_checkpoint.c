/* test_checkpoint.c — bit-exact resume (train M steps, save, continue, vs. load into a fresh flow
 * built with another seed and continue: identical losses and parameters), refusals naming tensors
 * and shapes, metadata without a flow, crash during save (simulated and by SIGKILL of a child that
 * saves in a loop), a NaN batch that stops training without writing a garbage checkpoint; ff_flow_load
 * (a flow rebuilt from the checkpoint alone continues bit for bit like an uninterrupted run), format
 * versions and stored configurations refused with what to do, and checkpoints vs. an accumulated
 * gradient. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "fisherflow/fisherflow.h"
#include "fisherflow/checkpoint.h"
#include "fisherflow/data.h"
#include "fisherflow/io.h"
#include "ff_test.h"

enum { K_POS = 3, D = 4, N_DATA = 512, BATCH = 64, M = 12 };

static char dir[256];
static const char *path_of(const char *name) {
    static char buf[4][512];
    static int next;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/test_checkpoint_tmp.XXXXXX", FF_TEST_BINARY_DIR);
        if (!mkdtemp(dir)) { snprintf(dir, sizeof dir, "/tmp/test_checkpoint_tmp.XXXXXX"); mkdtemp(dir); }
    }
    char *b = buf[next++ % 4];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static ff_flow_t *make_flow(uint64_t seed, int64_t hidden, float ema, const char *coupler) {
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ K_POS, D, 0, 0 };
    c.seed = seed;
    c.ema_decay = ema;
    c.coupler.name = coupler;
    c.lr = (ff_lr_schedule){ FF_LR_WARMUP_COSINE, 2e-3f, 1e-4f, 5, 40 };   /* lr depends on the step count */
    ff_options *no = NULL;
    ff_options_new(&no);
    ff_options_set_int(no, "hidden", hidden);
    ff_options_set_int(no, "depth", 3);
    ff_options_set_int(no, "emb", 8);
    c.network.opts = no;
    ff_flow_t *f = NULL;
    ff_status s = ff_flow_new(&f, &c);
    FF_EXPECT(s == FF_OK, "ff_flow_new: %s", ff_last_error());
    ff_options_free(no);
    return f;
}

/* The toy task's data: one-hot [N_DATA, K_POS, D+1] from a fixed table. */
static ff_tensor_t *make_data(void) {
    ff_rng_t r;
    ff_rng_seed(&r, 42);
    ff_tensor_t *p = NULL, *x = NULL;
    ff_tensor_new2(&p, K_POS, D + 1);
    ff_tensor_new3(&x, N_DATA, K_POS, D + 1);
    FF_EXPECT(ff_data_toy_categorical(&r, K_POS, D + 1, p) == FF_OK);
    FF_EXPECT(ff_data_sample_categorical(&r, p, N_DATA, x) == FF_OK);
    ff_tensor_free(p);
    return x;
}

/* One step on a minibatch whose rows are drawn from the flow's own (checkpointed) stream. */
static ff_status train_step(ff_flow_t *f, const ff_tensor_t *data, ff_tensor_t *batch, double *loss) {
    ff_rng_t *r = ff_flow_rng(f);
    int64_t row = (D + 1) * K_POS;
    for (int64_t i = 0; i < BATCH; i++) {
        uint64_t j = ff_rng_below(r, N_DATA);
        memcpy(batch->data + i * row, data->data + j * row, (size_t)row * sizeof(float));
    }
    ff_step_stats st;
    ff_status s = ff_flow_step(f, batch, NULL, NULL, &st);
    if (loss) *loss = st.loss;
    return s;
}

static int same_params(ff_flow_t *a, ff_flow_t *b) {
    ff_params_t *pa = ff_flow_params(a), *pb = ff_flow_params(b);
    int64_t n = ff_params_numel(pa);
    return n == ff_params_numel(pb) && !memcmp(ff_params_data(pa), ff_params_data(pb), (size_t)n * sizeof(float));
}

static void resume_case(const char *coupler, float ema) {
    ff_tensor_t *data = make_data(), *batch = NULL;
    ff_tensor_new3(&batch, BATCH, K_POS, D + 1);
    double ref[2 * M], cont[2 * M], res[2 * M];
    const char *ck = path_of("resume.safetensors");

    ff_flow_t *a = make_flow(7, 32, ema, coupler);                /* uninterrupted */
    for (int i = 0; i < 2 * M; i++) FF_EXPECT(train_step(a, data, batch, &ref[i]) == FF_OK, "%s", ff_last_error());

    ff_flow_t *b = make_flow(7, 32, ema, coupler);                /* save at M, keep going */
    for (int i = 0; i < M; i++) train_step(b, data, batch, &cont[i]);
    FF_EXPECT(ff_checkpoint_save(b, ck, "{\"seed\": 7, \"coupler\": \"x\"}") == FF_OK, "%s", ff_last_error());
    for (int i = M; i < 2 * M; i++) train_step(b, data, batch, &cont[i]);

    ff_flow_t *c = make_flow(12345, 32, ema, coupler);            /* another seed: all state must come from the file */
    FF_EXPECT(ff_checkpoint_load(c, ck) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_steps(c) == M);
    for (int i = M; i < 2 * M; i++) FF_EXPECT(train_step(c, data, batch, &res[i]) == FF_OK);

    int diff_cont = 0, diff_res = 0, first = -1;
    for (int i = 0; i < 2 * M; i++) diff_cont += memcmp(&ref[i], &cont[i], sizeof(double)) != 0;
    for (int i = M; i < 2 * M; i++)
        if (memcmp(&ref[i], &res[i], sizeof(double))) { diff_res++; if (first < 0) first = i; }
    FF_EXPECT(diff_cont == 0, "%s: saving changed %d losses", coupler, diff_cont);
    FF_EXPECT(diff_res == 0, "%s: resumed run differs in %d of %d losses (first at step %d: %.17g vs %.17g)",
              coupler, diff_res, M, first + 1, ref[first < 0 ? M : first], res[first < 0 ? M : first]);
    FF_EXPECT(same_params(a, c) && same_params(a, b), "%s: final parameters differ", coupler);
    if (ema > 0) {
        int64_t n = ff_params_numel(ff_flow_params(a));
        FF_EXPECT(!memcmp(ff_ema_data(ff_flow_ema(a)), ff_ema_data(ff_flow_ema(c)), (size_t)n * sizeof(float)), "EMA differs");
    }
    FF_EXPECT(ref[2 * M - 1] != ref[M], "losses do not move: the test would not notice anything");
    ff_flow_free(a); ff_flow_free(b); ff_flow_free(c);
    ff_tensor_free(batch); ff_tensor_free(data);
}

FF_TEST(bit_exact_resume_independent) { resume_case("independent", 0.0f); }
FF_TEST(bit_exact_resume_exact_ot_ema) { resume_case("exact_ot", 0.99f); }

FF_TEST(file_layout_and_metadata) {
    ff_flow_t *f = make_flow(3, 16, 0.9f, "independent");
    ff_tensor_t *data = make_data(), *batch = NULL;
    ff_tensor_new3(&batch, BATCH, K_POS, D + 1);
    for (int i = 0; i < 3; i++) train_step(f, data, batch, NULL);
    const char *ck = path_of("layout.safetensors");
    FF_EXPECT(ff_checkpoint_save(f, ck, "{\"k\": 3}") == FF_OK, "%s", ff_last_error());
    ff_safetensors_t *st = NULL;
    FF_EXPECT(ff_safetensors_read(&st, ck) == FF_OK, "%s", ff_last_error());
    ff_params_t *P = ff_flow_params(f);
    int n = ff_params_count(P);
    /* params, m, v, ema per name + optim.t, rng.state, rng.spare_normal, rng.has_spare, step */
    FF_EXPECT(ff_safetensors_count(st) == 4 * n + 5, "%d entries for %d params", ff_safetensors_count(st), n);
    ff_tensor_t *p0 = ff_params_get(P, 0), *back = NULL;
    FF_EXPECT(ff_safetensors_get(st, p0->name, &back) == FF_OK);
    FF_EXPECT(back && ff_tensor_same_shape(back, p0) && !memcmp(back->data, p0->data, (size_t)ff_tensor_numel(p0) * 4));
    ff_tensor_free(back);
    FF_EXPECT(!strcmp(ff_safetensors_meta(st, "format"), FF_CHECKPOINT_FORMAT));
    FF_EXPECT(!strcmp(ff_safetensors_meta(st, "fisherflow_version"), ff_version()));
    FF_EXPECT(!strcmp(ff_safetensors_meta(st, "optim"), "adamw"));
    FF_EXPECT(!strcmp(ff_safetensors_meta(st, "step"), "3"));
    ff_safetensors_free(st);

    char *cfg = NULL, *ver = NULL, *run = NULL;
    int64_t step = -1;
    FF_EXPECT(ff_checkpoint_read_meta(ck, &cfg, &ver, &step) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(cfg && !strcmp(cfg, ff_flow_config_json_of(f)) && ver && !strcmp(ver, ff_version()) && step == 3,
              "config %s", cfg ? cfg : "(none)");
    FF_EXPECT(ff_checkpoint_read_run(ck, &run) == FF_OK && run && !strcmp(run, "{\"k\": 3}"), "%s", ff_last_error());
    ff_checkpoint_free_string(cfg);
    ff_checkpoint_free_string(ver);
    ff_checkpoint_free_string(run);
    FF_EXPECT(ff_checkpoint_save(f, ck, NULL) == FF_OK);
    FF_EXPECT(ff_checkpoint_read_run(ck, &run) == FF_OK && run == NULL);
    FF_EXPECT(ff_checkpoint_read_meta(ck, &cfg, NULL, NULL) == FF_OK && cfg && !strcmp(cfg, ff_flow_config_json_of(f)));
    ff_checkpoint_free_string(cfg);
    /* a plain safetensors file is not a checkpoint */
    ff_tensor_t *x = NULL;
    ff_tensor_new1(&x, 2);
    snprintf(x->name, sizeof x->name, "x");
    const char *plain = path_of("plain.safetensors");
    ff_safetensors_save(plain, &x, 1);
    ff_tensor_free(x);
    FF_EXPECT_ERROR(ff_checkpoint_read_meta(plain, &cfg, NULL, NULL), FF_EIO, "not a fisherflow checkpoint");
    FF_EXPECT_ERROR(ff_checkpoint_read_run(plain, &run), FF_EIO, "not a fisherflow checkpoint");
    FF_EXPECT_ERROR(ff_checkpoint_load(f, plain), FF_EIO, "format \"(none)\"");
    ff_flow_t *g = (ff_flow_t *)f;
    FF_EXPECT_ERROR(ff_flow_load(&g, plain), FF_EIO, "format \"(none)\"");
    FF_EXPECT(g == NULL);
    ff_flow_free(f); ff_tensor_free(batch); ff_tensor_free(data);
}

FF_TEST(refusals_leave_flow_untouched) {
    ff_flow_t *f = make_flow(3, 16, 0.0f, "independent"), *g = make_flow(4, 16, 0.0f, "independent");
    ff_flow_t *wide = make_flow(3, 24, 0.0f, "independent"), *withema = make_flow(3, 16, 0.5f, "independent");
    const char *ck = path_of("refuse.safetensors");
    FF_EXPECT(ff_checkpoint_save(f, ck, NULL) == FF_OK);
    ff_params_t *P = ff_flow_params(wide);
    int64_t n = ff_params_numel(P);
    float *before = malloc((size_t)n * sizeof(float));
    memcpy(before, ff_params_data(P), (size_t)n * sizeof(float));
    ff_status s = ff_checkpoint_load(wide, ck);
    FF_EXPECT(s == FF_ESHAPE, "status %s: %s", ff_status_name(s), ff_last_error());
    FF_EXPECT(strstr(ff_last_error(), "the flow expects [24,") && strstr(ff_last_error(), "the checkpoint has [16,") &&
              strstr(ff_last_error(), "tensor \"net."), "%s", ff_last_error());
    FF_EXPECT(!memcmp(before, ff_params_data(P), (size_t)n * sizeof(float)), "refused load changed the flow");
    FF_EXPECT(ff_flow_steps(wide) == 0);
    free(before);
    FF_EXPECT_ERROR(ff_checkpoint_load(withema, ck), FF_EIO, "\"ema.net.");
    FF_EXPECT(ff_checkpoint_save(withema, ck, NULL) == FF_OK);
    FF_EXPECT_ERROR(ff_checkpoint_load(g, ck), FF_EIO, "unexpected tensor \"ema.net.");
    FF_EXPECT_ERROR(ff_checkpoint_load(g, path_of("absent.safetensors")), FF_EIO, "cannot open");
    ff_flow_free(f); ff_flow_free(g); ff_flow_free(wide); ff_flow_free(withema);
}

static int file_equals(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

FF_TEST(crash_during_save_keeps_previous) {
    ff_flow_t *f = make_flow(5, 16, 0.0f, "independent");
    ff_tensor_t *data = make_data(), *batch = NULL;
    ff_tensor_new3(&batch, BATCH, K_POS, D + 1);
    const char *ck = path_of("crash.safetensors"), *copy = path_of("crash_copy.safetensors");
    FF_EXPECT(ff_checkpoint_save(f, ck, NULL) == FF_OK);
    FF_EXPECT(ff_checkpoint_save(f, copy, NULL) == FF_OK);
    train_step(f, data, batch, NULL);
    ff_io_test_crash_before_rename(1);
    FF_EXPECT_ERROR(ff_checkpoint_save(f, ck, NULL), FF_EIO, "simulated crash");
    ff_io_test_crash_before_rename(0);
    FF_EXPECT(file_equals(ck, copy), "the previous checkpoint changed");
    ff_flow_t *g = make_flow(5, 16, 0.0f, "independent");
    FF_EXPECT(ff_checkpoint_load(g, ck) == FF_OK && ff_flow_steps(g) == 0, "%s", ff_last_error());

    /* A child saving in a loop is SIGKILLed at random moments: the file always loads. */
    ff_rng_t r;
    ff_rng_seed(&r, 1);
    int loaded = 0, kills = 12;
    for (int k = 0; k < kills; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;) {
                train_step(f, data, batch, NULL);
                ff_checkpoint_save(f, ck, NULL);
            }
        }
        struct timespec ts = { 0, (long)(2e6 + 3e7 * ff_rng_uniform(&r)) };
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ff_status s = ff_checkpoint_load(g, ck);
        FF_EXPECT(s == FF_OK, "after SIGKILL %d: %s", k, ff_last_error());
        loaded += s == FF_OK;
    }
    FF_EXPECT(loaded == kills);
    printf("  %d SIGKILLs during saves: checkpoint loaded every time (last step %lld)\n", kills,
           (long long)ff_flow_steps(g));
    ff_flow_free(f); ff_flow_free(g); ff_tensor_free(batch); ff_tensor_free(data);
}

FF_TEST(nan_batch_writes_no_garbage) {
    ff_flow_t *f = make_flow(9, 16, 0.9f, "independent");
    ff_tensor_t *data = make_data(), *batch = NULL;
    ff_tensor_new3(&batch, BATCH, K_POS, D + 1);
    for (int i = 0; i < 4; i++) train_step(f, data, batch, NULL);
    const char *ck = path_of("nan.safetensors"), *copy = path_of("nan_copy.safetensors");
    FF_EXPECT(ff_checkpoint_save(f, ck, NULL) == FF_OK);
    FF_EXPECT(ff_checkpoint_save(f, copy, NULL) == FF_OK);
    ff_params_t *P = ff_flow_params(f);
    int64_t n = ff_params_numel(P);
    float *before = malloc((size_t)n * sizeof(float));
    memcpy(before, ff_params_data(P), (size_t)n * sizeof(float));
    batch->data[5] = NAN;
    ff_status s = ff_flow_step(f, batch, NULL, NULL, NULL);
    FF_EXPECT(s == FF_ENUMERIC && strstr(ff_last_error(), "step 5"), "%s: %s", ff_status_name(s), ff_last_error());
    FF_EXPECT(!memcmp(before, ff_params_data(P), (size_t)n * sizeof(float)), "NaN batch changed parameters");
    FF_EXPECT(ff_flow_steps(f) == 4);
    /* A poisoned parameter (as a diverged update would leave) is never written. */
    ff_params_data(P)[n / 2] = NAN;
    s = ff_checkpoint_save(f, ck, NULL);
    FF_EXPECT(s == FF_ENUMERIC && strstr(ff_last_error(), "is NaN") && strstr(ff_last_error(), "parameter net."),
              "%s: %s", ff_status_name(s), ff_last_error());
    FF_EXPECT(file_equals(ck, copy), "a NaN flow overwrote the last good checkpoint");
    ff_params_data(P)[n / 2] = before[n / 2];
    ff_ema_data(ff_flow_ema(f))[0] = INFINITY;
    FF_EXPECT_ERROR(ff_checkpoint_save(f, ck, NULL), FF_ENUMERIC, "EMA of net.");
    FF_EXPECT(file_equals(ck, copy));
    free(before);
    ff_flow_free(f); ff_tensor_free(batch); ff_tensor_free(data);
}

/* Sampling from given source points uses only the (EMA) weights: a loaded flow samples exactly as
 * the one that was saved. */
FF_TEST(sampling_after_load) {
    ff_flow_t *a = make_flow(21, 16, 0.9f, "independent"), *c = make_flow(22, 16, 0.9f, "independent");
    ff_tensor_t *data = make_data(), *batch = NULL, *x0 = NULL, *pa = NULL, *pc = NULL;
    ff_tensor_new3(&batch, BATCH, K_POS, D + 1);
    for (int i = 0; i < 5; i++) train_step(a, data, batch, NULL);
    const char *ck = path_of("sample.safetensors");
    FF_EXPECT(ff_checkpoint_save(a, ck, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_checkpoint_load(c, ck) == FF_OK, "%s", ff_last_error());
    int64_t n = 32;
    ff_tensor_new3(&x0, n, K_POS, D + 1);
    ff_tensor_new3(&pa, n, K_POS, D + 1);
    ff_tensor_new3(&pc, n, K_POS, D + 1);
    ff_rng_t r;
    ff_rng_seed(&r, 3);
    for (int64_t i = 0; i < n * K_POS; i++) {          /* |z| / ||z|| per position: on S^d_+ */
        double z[D + 1], s = 0;
        for (int j = 0; j <= D; j++) { z[j] = fabs(ff_rng_normal(&r)); s += z[j] * z[j]; }
        for (int j = 0; j <= D; j++) x0->data[i * (D + 1) + j] = (float)(z[j] / sqrt(s));
    }
    ff_sample_opts o = ff_flow_default_sample_opts();
    o.steps = 20;
    FF_EXPECT(ff_flow_sample(a, pa, x0, NULL, &o, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_sample(c, pc, x0, NULL, &o, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(!memcmp(pa->data, pc->data, (size_t)ff_tensor_numel(pa) * sizeof(float)), "samples differ after load");
    ff_flow_free(a); ff_flow_free(c);
    ff_tensor_free(data); ff_tensor_free(batch); ff_tensor_free(x0); ff_tensor_free(pa); ff_tensor_free(pc);
}

/* ---- ff_flow_load: a flow from a checkpoint alone ------------------------------------------------ */

static int same_state(ff_flow_t *a, ff_flow_t *b) {
    float *ma, *va, *mb, *vb;
    int64_t na, nb, *ta, *tb;
    ff_optim_state(ff_flow_optim(a), &ma, &va, &na, &ta);
    ff_optim_state(ff_flow_optim(b), &mb, &vb, &nb, &tb);
    int same = same_params(a, b) && na == nb && !memcmp(ma, mb, (size_t)na * sizeof(float)) &&
               (!va) == (!vb) && (!va || !memcmp(va, vb, (size_t)na * sizeof(float))) && *ta == *tb &&
               ff_flow_steps(a) == ff_flow_steps(b) && !memcmp(ff_flow_rng(a), ff_flow_rng(b), sizeof(ff_rng_t)) &&
               (!ff_flow_ema(a)) == (!ff_flow_ema(b));
    if (same && ff_flow_ema(a))
        same = !memcmp(ff_ema_data(ff_flow_ema(a)), ff_ema_data(ff_flow_ema(b)), (size_t)na * sizeof(float));
    return same;
}

static void flow_load_case(const char *coupler, float ema, int sgd) {
    ff_tensor_t *data = make_data(), *batch = NULL;
    ff_tensor_new3(&batch, BATCH, K_POS, D + 1);
    const char *ck = path_of("flow_load.safetensors");
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ K_POS, D, 0, 0 };
    c.seed = 77;
    c.ema_decay = ema;
    c.coupler.name = coupler;
    c.label_smoothing = 0.05f;
    if (sgd) { c.optim = ff_optim_sgd_defaults(); c.optim.momentum = 0.9f; c.optim.nesterov = 1; }
    c.lr = (ff_lr_schedule){ FF_LR_WARMUP_LINEAR, 3e-3f, 1e-4f, 4, 30 };
    ff_options *no = NULL;
    ff_options_new(&no);
    ff_options_set_int(no, "hidden", 24);
    ff_options_set_int(no, "depth", 3);
    ff_options_set_int(no, "emb", 8);
    ff_options_set_number(no, "slope", 0.1);
    c.network.opts = no;
    ff_flow_t *u = NULL, *a = NULL, *b = NULL;
    FF_EXPECT(ff_flow_new(&u, &c) == FF_OK && ff_flow_new(&a, &c) == FF_OK, "%s", ff_last_error());
    ff_options_free(no);
    double ref[2 * M], res[2 * M];
    for (int i = 0; i < 2 * M; i++) FF_EXPECT(train_step(u, data, batch, &ref[i]) == FF_OK, "%s", ff_last_error());
    for (int i = 0; i < M; i++) train_step(a, data, batch, NULL);
    FF_EXPECT(ff_checkpoint_save(a, ck, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_load(&b, ck) == FF_OK, "%s", ff_last_error());
    if (b) {
        FF_EXPECT(same_state(a, b), "%s: the loaded flow differs from the saved one", coupler);
        FF_EXPECT(!strcmp(ff_flow_config_json_of(a), ff_flow_config_json_of(b)), "config\n %s\n %s",
                  ff_flow_config_json_of(a), ff_flow_config_json_of(b));
        for (int i = M; i < 2 * M; i++) FF_EXPECT(train_step(b, data, batch, &res[i]) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(!memcmp(ref + M, res + M, M * sizeof(double)), "%s: losses after ff_flow_load differ", coupler);
        FF_EXPECT(same_state(u, b), "%s: continuing from ff_flow_load differs from the uninterrupted run", coupler);
        FF_EXPECT(ref[2 * M - 1] != ref[M], "losses do not move");
    }
    ff_flow_free(u); ff_flow_free(a); ff_flow_free(b);
    ff_tensor_free(batch); ff_tensor_free(data);
}

FF_TEST(flow_load_continues_bit_exact) {
    flow_load_case("independent", 0.0f, 0);
    flow_load_case("exact_ot", 0.95f, 1);
}

/* A copy of checkpoint src with one metadata entry replaced (value NULL: removed). */
static void rewrite_meta(const char *src, const char *dst, const char *key, const char *value) {
    ff_safetensors_t *st = NULL;
    FF_EXPECT(ff_safetensors_read(&st, src) == FF_OK, "%s", ff_last_error());
    if (!st) return;
    ff_st_writer_t *w = NULL;
    ff_st_writer_new(&w);
    for (int i = 0; i < ff_safetensors_count(st); i++) {
        ff_st_info info;
        const void *d;
        size_t bytes;
        ff_safetensors_info(st, i, &info);
        ff_safetensors_get_raw(st, info.name, info.dtype, &d, &bytes);
        ff_st_writer_add_raw(w, info.name, info.dtype, info.ndim, info.shape, d);
    }
    for (int i = 0; i < ff_safetensors_meta_count(st); i++)
        if (strcmp(ff_safetensors_meta_key(st, i), key))
            ff_st_writer_meta(w, ff_safetensors_meta_key(st, i), ff_safetensors_meta_value(st, i));
    if (value) ff_st_writer_meta(w, key, value);
    FF_EXPECT(ff_st_writer_write(w, dst) == FF_OK, "%s", ff_last_error());
    ff_st_writer_free(w);
    ff_safetensors_free(st);
}

FF_TEST(format_versions_and_bad_configs) {
    ff_flow_t *f = make_flow(3, 16, 0.0f, "independent"), *g = NULL;
    const char *ck = path_of("v2.safetensors"), *old = path_of("v1.safetensors");
    FF_EXPECT(ff_checkpoint_save(f, ck, NULL) == FF_OK, "%s", ff_last_error());
    /* an older format: every reader names both versions and says what to do */
    rewrite_meta(ck, old, "format", "fisherflow-checkpoint/1");
    char *text = NULL;
    const char *want = "format version 1, this fisherflow reads version 2: it was written by an older fisherflow";
    FF_EXPECT_ERROR(ff_checkpoint_load(f, old), FF_EIO, want);
    FF_EXPECT(strstr(ff_last_error(), "retrain the model, or convert the checkpoint to version 2") &&
              strstr(ff_last_error(), old), "%s", ff_last_error());
    FF_EXPECT_ERROR(ff_flow_load(&g, old), FF_EIO, want);
    FF_EXPECT_ERROR(ff_checkpoint_read_meta(old, &text, NULL, NULL), FF_EIO, want);
    FF_EXPECT_ERROR(ff_checkpoint_read_run(old, &text), FF_EIO, want);
    FF_EXPECT(g == NULL && text == NULL);
    rewrite_meta(ck, old, "format", "fisherflow-checkpoint/3");
    FF_EXPECT_ERROR(ff_flow_load(&g, old), FF_EIO, "format version 3, this fisherflow reads version 2: it was written by a newer fisherflow");
    rewrite_meta(ck, old, "format", "fisherflow-checkpoint/2x");
    FF_EXPECT_ERROR(ff_flow_load(&g, old), FF_EIO, "format \"fisherflow-checkpoint/2x\", expected \"fisherflow-checkpoint/2\"");
    /* the configuration: missing, or refused naming the field and the file */
    rewrite_meta(ck, old, "config", NULL);
    FF_EXPECT_ERROR(ff_flow_load(&g, old), FF_EIO, "no \"config\" entry");
    FF_EXPECT(ff_checkpoint_load(f, old) == FF_OK, "the tensors alone still load into a built flow: %s", ff_last_error());
    rewrite_meta(ck, old, "config", "{\"space\": {\"k\": 3, \"d\": 4}, \"optim\": {\"lrr\": 1}}");
    FF_EXPECT_ERROR(ff_flow_load(&g, old), FF_EINVAL, "unknown field \"optim.lrr\"");
    FF_EXPECT(strstr(ff_last_error(), "ff_flow_load: checkpoint ") && strstr(ff_last_error(), old), "%s", ff_last_error());
    /* a configuration whose network differs from the stored tensors */
    rewrite_meta(ck, old, "config", "{\"space\": {\"k\": 3, \"d\": 4}, \"network\": {\"options\": {\"hidden\": 12, \"depth\": 3, \"emb\": 8}}}");
    FF_EXPECT_ERROR(ff_flow_load(&g, old), FF_ESHAPE, "the flow expects [12,");
    FF_EXPECT(g == NULL);
    ff_flow_free(f);
}

FF_TEST(accumulated_gradient_and_checkpoints) {
    /* A checkpoint keeps no half-accumulated gradient: saving one is refused; a load drops it. */
    ff_flow_t *f = make_flow(5, 16, 0.0f, "independent");
    ff_tensor_t *data = make_data(), *batch = NULL;
    ff_tensor_new3(&batch, BATCH, K_POS, D + 1);
    const char *ck = path_of("accum.safetensors");
    FF_EXPECT(ff_checkpoint_save(f, ck, NULL) == FF_OK, "%s", ff_last_error());
    memcpy(batch->data, data->data, (size_t)ff_tensor_numel(batch) * sizeof(float));
    FF_EXPECT(ff_flow_grad(f, batch, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_ERROR(ff_checkpoint_save(f, ck, NULL), FF_EINVAL, "holds a gradient of 1 micro-batch(es) not yet applied");
    FF_EXPECT(ff_checkpoint_load(f, ck) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_flow_grad_count(f) == 0);
    FF_EXPECT_ERROR(ff_flow_update(f, NULL), FF_EINVAL, "no gradient accumulated");
    FF_EXPECT(ff_flow_grad(f, batch, NULL, NULL, NULL) == FF_OK && ff_flow_update(f, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_checkpoint_save(f, ck, NULL) == FF_OK, "%s", ff_last_error());
    ff_flow_free(f); ff_tensor_free(batch); ff_tensor_free(data);
}

FF_MAIN()
