/* bench_cnn1d.c — the DNA network (plugins/network/cnn1d.c, kernel 9, dilations 1,1,4,16,64 per
 * stack) at L = 1024, d+1 = 4, batch 64: one training step (forward, MSE against a fixed random
 * target, backward, AdamW lr 1e-3 wd 0.01) and one forward pass without gradients (what a sampler's
 * field evaluation runs), against raw cblas_sgemm on the GEMMs of the step (same shapes and
 * transposes as ff_conv1d/ff_linear, cut in row chunks as ff_conv1d cuts them) timed right after each step, so both
 * see the same load. Each configuration runs in its own process (fork), so its peak RSS is its own.
 * Prints figures only; median over the timed repetitions.
 *   bench_cnn1d [--hidden 64,128] [--layers 5,20] [--batch 64] [--L 1024] [--steps 5] [--warm 1]
 *               [--fwd 5] [--threads N (openblas_set_num_threads; default: OpenBLAS's own)] [--no-raw]
 *               [--raw-cap F (floats of the long operand per raw chunk, default 2^18)]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fisherflow/fisherflow.h>

extern char *openblas_get_corename(void);

static double now_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One GEMM of the step: C[M,N] (+)= op(A) op(B) with ff_conv1d's / ff_linear's transposes. */
typedef struct gemm { int ta, tb; int64_t M, N, K; } gemm;

/* floats of the long operand per raw chunk: ff_conv1d cuts its im2col rows to 2^18 floats (1 MiB) */
static int64_t raw_cap = (int64_t)1 << 18;
#define RAW_BUF ((int64_t)1 << 21)

/* The step's GEMMs: conv_in (fwd, dw), per layer the conv (fwd, dw, dx: rows x 9H x H) and the
 * time Dense (n x H x H, fwd/dw/dx), final0 (1x1, H -> H) and final1 (H -> 4), all three each. */
static int step_gemms(gemm *g, int64_t n, int64_t L, int64_t H, int64_t layers, int64_t kw, int64_t Cin, int64_t Cout) {
    int c = 0;
    const int64_t R = n * L;
    g[c++] = (gemm){ 0, 1, R, H, kw * Cin };            /* conv_in forward            */
    g[c++] = (gemm){ 1, 0, H, kw * Cin, R };            /* conv_in dw                 */
    g[c++] = (gemm){ 0, 1, n, H, H };                   /* temb (2*(H/2) -> H), approx */
    g[c++] = (gemm){ 1, 0, H, H, n };
    for (int64_t i = 0; i < layers; i++) {
        g[c++] = (gemm){ 0, 1, R, H, kw * H };
        g[c++] = (gemm){ 1, 0, H, kw * H, R };
        g[c++] = (gemm){ 0, 0, R, kw * H, H };
        g[c++] = (gemm){ 0, 1, n, H, H };
        g[c++] = (gemm){ 1, 0, H, H, n };
        g[c++] = (gemm){ 0, 0, n, H, H };
    }
    int64_t outs[2] = { H, Cout };
    for (int f = 0; f < 2; f++) {
        g[c++] = (gemm){ 0, 1, R, outs[f], H };
        g[c++] = (gemm){ 1, 0, outs[f], H, R };
        g[c++] = (gemm){ 0, 0, R, H, outs[f] };
    }
    return c;
}

static double gemm_flops(const gemm *g, int c) {
    double f = 0;
    for (int i = 0; i < c; i++) f += 2.0 * (double)g[i].M * (double)g[i].N * (double)g[i].K;
    return f;
}

/* Runs the list with the long dimension (the rows R: M of fwd/dx, K of dw) cut in chunks of
 * raw_cap / (the other dimension of the im2col matrix) rows, as ff_conv1d cuts it. */
static void raw_run(const gemm *g, int c, float *A, float *B, float *C) {
    for (int i = 0; i < c; i++) {
        const gemm *q = &g[i];
        const int dw = q->ta;                   /* dw: C[M,N] += A^T[M,R] B[R,N] */
        const int64_t R = dw ? q->K : q->M, wide = (dw || !q->tb) ? q->N : q->K;
        int64_t rows = raw_cap / wide;
        if (rows < 1) rows = 1;
        for (int64_t r0 = 0; r0 < R; r0 += rows) {
            const int m = (int)(R - r0 < rows ? R - r0 : rows);
            if (dw)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)q->M, (int)q->N, m, 1.0f,
                            A, (int)q->M, B, (int)q->N, 1.0f, C, (int)q->N);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, q->tb ? CblasTrans : CblasNoTrans, m, (int)q->N,
                            (int)q->K, 1.0f, A, (int)q->K, B, q->tb ? (int)q->K : (int)q->N, 0.0f, C, (int)q->N);
        }
    }
}

typedef struct cfg { int64_t H, layers, n, L; int steps, warm, fwd, no_raw; } cfg;

static int run(const cfg *c) {
    const int64_t H = c->H, n = c->n, L = c->L, D = 4, kw = 9;
    ff_rng_t rng;
    ff_rng_seed(&rng, 3);
    ff_params_t *P = NULL;
    ff_options *o = NULL;
    ff_plugin_inst *inst = NULL;
    ff_optim_t *opt = NULL;
    ff_tape_t *tp = NULL;
    ff_tensor_t *x = NULL, *t = NULL, *target = NULL;
    const ff_space sp = { L, D - 1, 0, 0 };
    ff_status s = ff_params_new(&P);
    if (s == FF_OK) s = ff_options_new(&o);
    if (s == FF_OK) s = ff_options_set_int(o, "hidden", H);
    if (s == FF_OK) s = ff_options_set_int(o, "stacks", c->layers / 5);
    if (s == FF_OK) s = ff_plugin_new(&inst, FF_PLUGIN_NETWORK, "cnn1d", o, &sp, P, &rng);
    ff_optim_config oc = ff_optim_adamw_defaults();
    if (s == FF_OK) s = ff_optim_new(&opt, P, &oc);
    if (s == FF_OK) s = ff_tape_new(&tp, 0);
    if (s == FF_OK) s = ff_tensor_new3(&x, n, L, D);
    if (s == FF_OK) s = ff_tensor_new3(&target, n, L, D);
    if (s == FF_OK) s = ff_tensor_new1(&t, n);
    if (s != FF_OK) { fprintf(stderr, "bench_cnn1d: %s\n", ff_last_error()); return 1; }
    ff_rng_fill_normal(&rng, x, 0, 0.5);
    ff_rng_fill_normal(&rng, target, 0, 1);
    for (int64_t i = 0; i < n; i++) t->data[i] = (float)ff_rng_uniform(&rng);
    const ff_network_vtable *vt = inst->desc->vtable;

    gemm g[16 + 6 * 256];
    const int ng = step_gemms(g, n, L, H, c->layers, kw, D, D);
    const double flops = gemm_flops(g, ng);
    const int64_t nbuf = RAW_BUF > raw_cap * 2 + kw * H * H ? RAW_BUF : raw_cap * 2 + kw * H * H;
    float *A = malloc(sizeof(float) * nbuf), *B = malloc(sizeof(float) * nbuf), *C = malloc(sizeof(float) * nbuf);
    if (!A || !B || !C) { fprintf(stderr, "bench_cnn1d: out of memory\n"); return 1; }
    for (int64_t i = 0; i < nbuf; i++) { A[i] = (float)ff_rng_uniform(&rng) - 0.5f; B[i] = A[i] * 0.5f; C[i] = 0; }

    const int N = c->steps;
    double *ms = calloc((size_t)N, sizeof *ms), *cpu = calloc((size_t)N, sizeof *cpu);
    double *raw = calloc((size_t)N, sizeof *raw), *ratio = calloc((size_t)N, sizeof *ratio);
    double *rcpu = calloc((size_t)N, sizeof *rcpu), *cratio = calloc((size_t)N, sizeof *cratio);
    float loss = 0;
    for (int it = 0; it < c->warm + N; it++) {
        double c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID), t0 = now_ms(CLOCK_MONOTONIC);
        ff_tape_reset(tp);
        ff_params_zero_grad(P);
        ff_tensor_t *y = vt->forward(inst->state, tp, x, t, NULL);
        ff_tensor_t *l = ff_mean_all(tp, ff_square(tp, ff_sub(tp, y, target)));
        if (!l || ff_tape_backward(tp, l) != FF_OK || ff_optim_step(opt, oc.lr) != FF_OK) {
            fprintf(stderr, "bench_cnn1d: step: %s\n", ff_last_error());
            return 1;
        }
        loss = l->data[0];
        double t1 = now_ms(CLOCK_MONOTONIC), c1 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
        if (!c->no_raw) raw_run(g, ng, A, B, C);
        double t2 = now_ms(CLOCK_MONOTONIC), c2 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
        if (it >= c->warm) {
            int k = it - c->warm;
            ms[k] = t1 - t0; cpu[k] = c1 - c0; raw[k] = t2 - t1; ratio[k] = (t2 - t1) / (t1 - t0);
            rcpu[k] = c2 - c1; cratio[k] = (c2 - c1) / (c1 - c0);
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double step_ms = median(ms, N), step_cpu = median(cpu, N), raw_ms = median(raw, N), rr = median(ratio, N);
    const double raw_cpu = median(rcpu, N), cr = median(cratio, N);

    /* forward without gradients, as the sampler runs it (grad mode off, t constant per call) */
    const int F = c->fwd;
    double *fms = calloc((size_t)F, sizeof *fms), *fcpu = calloc((size_t)F, sizeof *fcpu);
    for (int it = 0; it < 1 + F; it++) {
        double c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID), t0 = now_ms(CLOCK_MONOTONIC);
        ff_tape_reset(tp);
        ff_tape_set_grad(tp, 0);
        ff_tensor_t *tt = ff_tape_alloc(tp, 1, (int64_t[]){ n });
        for (int64_t i = 0; tt && i < n; i++) tt->data[i] = 0.5f;
        ff_tensor_t *y = tt ? vt->forward(inst->state, tp, x, tt, NULL) : NULL;
        if (!y || ff_tape_status(tp) != FF_OK) { fprintf(stderr, "bench_cnn1d: forward: %s\n", ff_last_error()); return 1; }
        ff_tape_set_grad(tp, 1);
        double t1 = now_ms(CLOCK_MONOTONIC), c1 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
        if (it > 0) { fms[it - 1] = t1 - t0; fcpu[it - 1] = c1 - c0; }
    }
    const double fwd_ms = median(fms, F), fwd_cpu = median(fcpu, F);
    double fwd_flops = 0;                                   /* forward GEMMs: the non-dw, non-dx ones */
    for (int i = 0; i < ng; i++) if (!g[i].ta && g[i].tb) fwd_flops += 2.0 * g[i].M * g[i].N * g[i].K;

    char rawtxt[160];
    if (c->no_raw) snprintf(rawtxt, sizeof rawtxt, "raw sgemm not run (--no-raw)");
    else snprintf(rawtxt, sizeof rawtxt, "raw sgemm %8.1f ms %6.1f GFLOP/s | ratio raw/step %.3f (cpu: %.1f ms, ratio %.3f)",
                  raw_ms, flops / raw_ms * 1e-6, rr, raw_cpu, cr);
    printf("hidden %3lld layers %2lld params %8lld | step %8.1f ms (cpu %8.1f) %6.1f GFLOP/s | %s "
           "| fwd no-grad %7.1f ms (cpu %7.1f) %6.1f GFLOP/s | loss %.4f | arena %.0f MiB, peak RSS %.0f MiB\n",
           (long long)H, (long long)c->layers, (long long)ff_params_numel(P), step_ms, step_cpu, flops / step_ms * 1e-6,
           rawtxt, fwd_ms, fwd_cpu, fwd_flops / fwd_ms * 1e-6, loss, ff_tape_arena_bytes(tp) / 1048576.0, ru.ru_maxrss / 1024.0);
    fflush(stdout);
    free(A); free(B); free(C); free(ms); free(cpu); free(raw); free(ratio); free(rcpu); free(cratio); free(fms); free(fcpu);
    ff_tensor_free(x); ff_tensor_free(t); ff_tensor_free(target);
    ff_tape_free(tp); ff_optim_free(opt); ff_plugin_free(inst); ff_options_free(o); ff_params_free(P);
    return 0;
}

static int parse_list(char *s, int64_t *v, int max) {
    int k = 0;
    for (char *p = strtok(s, ","); p && k < max; p = strtok(NULL, ",")) v[k++] = atoll(p);
    return k;
}

int main(int argc, char **argv) {
    int64_t Hs[8] = { 64, 128 }, Ls[8] = { 5, 20 };
    int nH = 2, nL = 2, threads = 0;
    cfg c = { 0, 0, 64, 1024, 5, 1, 5, 0 };
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--hidden") && a + 1 < argc) nH = parse_list(argv[++a], Hs, 8);
        else if (!strcmp(argv[a], "--layers") && a + 1 < argc) nL = parse_list(argv[++a], Ls, 8);
        else if (!strcmp(argv[a], "--batch") && a + 1 < argc) c.n = atoll(argv[++a]);
        else if (!strcmp(argv[a], "--L") && a + 1 < argc) c.L = atoll(argv[++a]);
        else if (!strcmp(argv[a], "--steps") && a + 1 < argc) c.steps = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--warm") && a + 1 < argc) c.warm = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--fwd") && a + 1 < argc) c.fwd = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc) threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--no-raw")) c.no_raw = 1;
        else if (!strcmp(argv[a], "--raw-cap") && a + 1 < argc) raw_cap = atoll(argv[++a]);           /* for profiling the step alone */
        else {
            fprintf(stderr, "usage: %s [--hidden 64,128] [--layers 5,20] [--batch 64] [--L 1024] [--steps 5] "
                            "[--warm 1] [--fwd 5] [--threads N] [--no-raw] [--raw-cap F]\n", argv[0]);
            return 2;
        }
    }
    for (int i = 0; i < nL; i++)
        if (Ls[i] < 5 || Ls[i] % 5) { fprintf(stderr, "bench_cnn1d: --layers must be multiples of 5\n"); return 2; }
    if (raw_cap < 1 || c.steps < 1 || c.fwd < 1 || c.warm < 0 || c.n < 1 || c.L < 1) { fprintf(stderr, "bench_cnn1d: bad sizes\n"); return 2; }
    ff_init();
    double la[3] = { 0 };
    if (getloadavg(la, 3) < 0) la[0] = -1;
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    printf("bench_cnn1d: cnn1d kernel 9, L %lld, d+1 4, batch %lld; OpenBLAS core %s, threads %d (OPENBLAS_NUM_THREADS=%s); "
           "load %.2f; fisherflow %s\n", (long long)c.L, (long long)c.n, openblas_get_corename(),
           threads ? threads : openblas_get_num_threads(), env ? env : "unset", la[0], ff_version());
    fflush(stdout);
    for (int i = 0; i < nH; i++)
        for (int j = 0; j < nL; j++) {
            c.H = Hs[i];
            c.layers = Ls[j];
            pid_t pid = fork();
            if (pid < 0) { perror("fork"); return 1; }
            if (pid == 0) {
                if (threads > 0) openblas_set_num_threads(threads);
                _exit(run(&c));
            }
            int st = 0;
            if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 1;
        }
    return 0;
}
