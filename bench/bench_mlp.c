/* bench_mlp.c — one training step (forward + backward + AdamW) of a 4-layer, 512-wide MLP with
 * leaky ReLU and an MSE loss on a batch of 512, against the machine's raw cblas_sgemm on exactly the
 * GEMMs such a step needs, measured in the same run, for 1 and 2 OpenBLAS threads.
 * Prints figures only. Usage: bench_mlp [steps=50] [batch=512] [width=512]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "fisherflow/fisherflow.h"

#define LAYERS 4

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The GEMMs of one step with the same shapes and transposes as ff_linear's forward/backward:
 * per layer y = x w^T, dw = g^T x, and dx = g w (not for the first layer, whose input is data). */
static void raw_gemms(int B, int W, float **x, float *w, float *y, float *g, float *dx, float *dw) {
    for (int l = 0; l < LAYERS; l++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, W, W, 1.0f, x[l], W, w + (size_t)l * W * W, W, 0.0f, y, W);
    for (int l = LAYERS - 1; l >= 0; l--) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, W, W, B, 1.0f, g, W, x[l], W, 1.0f, dw + (size_t)l * W * W, W);
        if (l > 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, W, W, 1.0f, g, W, w + (size_t)l * W * W, W, 0.0f, dx, W);
    }
}

static int run(int threads, int steps, int B, int W) {
    openblas_set_num_threads(threads);
    ff_rng_t r;
    ff_rng_seed(&r, 1);
    ff_params_t *P = NULL;
    ff_tensor_t *w[LAYERS], *b[LAYERS], *x = NULL, *y = NULL;
    ff_tape_t *tp = NULL;
    ff_optim_t *opt = NULL;
    ff_status s = ff_params_new(&P);
    for (int l = 0; l < LAYERS && s == FF_OK; l++) {
        char nm[32];
        snprintf(nm, sizeof nm, "l%d.weight", l);
        s = ff_params_add(P, nm, 2, (int64_t[]){ W, W }, (ff_param_init){ FF_INIT_UNIFORM, 1.0f / 22.6f }, &r, &w[l]);
        snprintf(nm, sizeof nm, "l%d.bias", l);
        if (s == FF_OK) s = ff_params_add(P, nm, 1, (int64_t[]){ W }, (ff_param_init){ FF_INIT_UNIFORM, 1.0f / 22.6f }, &r, &b[l]);
    }
    ff_optim_config cfg = ff_optim_adamw_defaults();
    if (s == FF_OK) s = ff_optim_new(&opt, P, &cfg);
    if (s == FF_OK) s = ff_tensor_new2(&x, B, W);
    if (s == FF_OK) s = ff_tensor_new2(&y, B, W);
    if (s == FF_OK) s = ff_tape_new(&tp, 0);
    if (s != FF_OK) { fprintf(stderr, "bench_mlp: %s\n", ff_last_error()); return 1; }
    ff_rng_fill_normal(&r, x, 0, 1);
    ff_rng_fill_normal(&r, y, 0, 1);

    /* raw sgemm buffers (same shapes); one raw pass runs right after each step so both see the
     * same machine load (the ratio is what this benchmark reports) */
    float *xs[LAYERS], *wr = malloc(sizeof(float) * (size_t)LAYERS * W * W), *yr = malloc(sizeof(float) * (size_t)B * W);
    float *gr = malloc(sizeof(float) * (size_t)B * W), *dxr = malloc(sizeof(float) * (size_t)B * W);
    float *dwr = calloc((size_t)LAYERS * W * W, sizeof(float));
    for (int l = 0; l < LAYERS; l++) {
        xs[l] = malloc(sizeof(float) * (size_t)B * W);
        for (size_t i = 0; i < (size_t)B * W; i++) xs[l][i] = (float)(ff_rng_uniform(&r) - 0.5);
    }
    for (size_t i = 0; i < (size_t)LAYERS * W * W; i++) wr[i] = (float)(ff_rng_uniform(&r) - 0.5) * 0.05f;
    for (size_t i = 0; i < (size_t)B * W; i++) gr[i] = (float)(ff_rng_uniform(&r) - 0.5);

    const int warm = 5;
    double *ms = malloc(sizeof(double) * (size_t)steps), *rms = malloc(sizeof(double) * (size_t)steps);
    double *ratio = malloc(sizeof(double) * (size_t)steps);
    float loss = 0;
    size_t arena_after_warm = 0;
    for (int it = 0; it < warm + steps; it++) {
        double t0 = now_ms();
        ff_tape_reset(tp);
        ff_params_zero_grad(P);
        ff_tensor_t *h = x;
        for (int l = 0; l < LAYERS; l++) {
            h = ff_linear(tp, h, w[l], b[l]);
            if (l < LAYERS - 1) h = ff_leaky_relu(tp, h, 0.01f);
        }
        ff_tensor_t *L = ff_mean_all(tp, ff_square(tp, ff_sub(tp, h, y)));
        if (ff_tape_backward(tp, L) != FF_OK || ff_optim_step(opt, cfg.lr) != FF_OK) {
            fprintf(stderr, "bench_mlp: %s\n", ff_last_error());
            return 1;
        }
        loss = L->data[0];
        double t1 = now_ms();
        raw_gemms(B, W, xs, wr, yr, gr, dxr, dwr);
        double t2 = now_ms();
        if (it >= warm) { ms[it - warm] = t1 - t0; rms[it - warm] = t2 - t1; ratio[it - warm] = (t2 - t1) / (t1 - t0); }
        if (it == warm - 1) arena_after_warm = ff_tape_arena_bytes(tp);
    }
    const double step_ms = median(ms, steps), raw_ms = median(rms, steps), med_ratio = median(ratio, steps);

    const double nominal = 2.0 * B * (double)W * W * 3 * LAYERS;        /* 3 GEMMs per layer       */
    const double executed = 2.0 * B * (double)W * W * (3 * LAYERS - 1);  /* no dx for the data input */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("threads %d: step %.2f ms (median of %d), %.1f GFLOP/s nominal (3 GEMMs/layer), %.1f GFLOP/s executed (%d GEMMs)\n",
           threads, step_ms, steps, nominal / step_ms * 1e-6, executed / step_ms * 1e-6, 3 * LAYERS - 1);
    printf("threads %d: raw cblas_sgemm on the same %d GEMMs %.2f ms, %.1f GFLOP/s; ratio raw/step %.3f "
           "(median of per-step ratios; goal >= 0.6)\n",
           threads, 3 * LAYERS - 1, raw_ms, executed / raw_ms * 1e-6, med_ratio);
    printf("threads %d: loss %.4f, arena %.1f MiB (unchanged after warm-up: %s), peak RSS %.1f MiB\n", threads, loss,
           ff_tape_arena_bytes(tp) / 1048576.0, ff_tape_arena_bytes(tp) == arena_after_warm ? "yes" : "NO",
           ru.ru_maxrss / 1024.0);
    for (int l = 0; l < LAYERS; l++) free(xs[l]);
    free(wr); free(yr); free(gr); free(dxr); free(dwr); free(rms); free(ms); free(ratio);
    ff_tape_free(tp); ff_optim_free(opt); ff_params_free(P);
    ff_tensor_free(x); ff_tensor_free(y);
    return 0;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 50, B = argc > 2 ? atoi(argv[2]) : 512, W = argc > 3 ? atoi(argv[3]) : 512;
    if (steps < 1 || B < 1 || W < 1) { fprintf(stderr, "usage: bench_mlp [steps] [batch] [width]\n"); return 2; }
    printf("bench_mlp: %d-layer MLP, width %d, batch %d, leaky ReLU, MSE, AdamW; fisherflow %s\n", LAYERS, W, B, ff_version());
    for (int t = 1; t <= 2; t++)
        if (run(t, steps, B, W)) return 1;
    return 0;
}
