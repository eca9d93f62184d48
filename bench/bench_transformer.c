/* bench_transformer.c — one ff_flow_step (source draw, x_t/u_t, the transformer network forward and
 * backward, tangent projection, loss, grad clip 1, AdamW) on text-shaped data: k = 256 positions,
 * d+1 = 27 symbols, batch 32, network "transformer" width 256 depth 4 heads 4 mlp_ratio 4, for each
 * conditioning ("add": like-for-like with bench/torch_transformer.py; "adaln": the default). Prints
 * the median step time (wall, and process CPU time: the fairer figure on a shared machine at one
 * thread) and the share of it spent inside cblas_sgemm, measured by wrapping
 * cblas_sgemm in this executable (the library's and the plugin's calls resolve to the wrapper,
 * which times each call and forwards it to OpenBLAS). Prints figures only.
 *   bench_transformer [--steps N=5] [--warm N=2] [--batch 32] [--k 256] [--K 27] [--width 256]
 *                     [--depth 4] [--heads 4] [--cond add,adaln]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fisherflow/fisherflow.h>

#include "sgemm_timer.h"

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run(const char *cond, int steps, int warm, int64_t n, int64_t k, int64_t K, int64_t W, int64_t D,
               int64_t H) {
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "width", W);
    ff_options_set_int(o, "depth", D);
    ff_options_set_int(o, "heads", H);
    ff_options_set_string(o, "conditioning", cond);
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ k, K - 1, 0, 0 };
    c.network.name = "transformer";
    c.network.opts = o;
    c.seed = 1;
    ff_flow_t *f = NULL;
    if (ff_flow_new(&f, &c) != FF_OK) { fprintf(stderr, "ff_flow_new: %s\n", ff_last_error()); ff_options_free(o); return 1; }
    ff_tensor_t *x = NULL;
    ff_tensor_new3(&x, n, k, K);
    ff_rng_t r;
    ff_rng_seed(&r, 7);
    double *ms = malloc(sizeof(double) * (size_t)steps), *cpu = malloc(sizeof(double) * (size_t)steps);
    double tot = 0, gtot = 0;
    long calls = 0;
    ff_step_stats st;
    int bad = 0;
    for (int s = 0; s < warm + steps && !bad; s++) {
        ff_tensor_fill(x, 0.0f);          /* one-hot batch of uniform random symbols */
        for (int64_t i = 0; i < n * k; i++) x->data[i * K + (int64_t)ff_rng_below(&r, (uint64_t)K)] = 1.0f;
        gemm_ms = 0;
        gemm_calls = 0;
        const double c0 = cpu_ms();
        if (ff_flow_step(f, x, NULL, NULL, &st) != FF_OK) { fprintf(stderr, "step: %s\n", ff_last_error()); bad = 1; }
        else if (s >= warm) {
            ms[s - warm] = st.ms; cpu[s - warm] = cpu_ms() - c0;
            tot += st.ms; gtot += gemm_ms; calls = gemm_calls;
        }
    }
    if (!bad) {
        qsort(ms, (size_t)steps, sizeof *ms, cmp_double);
        qsort(cpu, (size_t)steps, sizeof *cpu, cmp_double);
        printf("transformer cond=%-5s params %8lld  step: median %9.1f ms  (min %9.1f, max %9.1f, %d steps)  "
               "CPU %9.1f ms  GEMM share %.1f%% of wall (%ld sgemm calls per step)  loss %.4f\n", cond,
               (long long)ff_params_numel(ff_flow_params(f)), ms[steps / 2], ms[0], ms[steps - 1], steps,
               cpu[steps / 2], 100.0 * gtot / tot, calls, st.loss);
    }
    free(ms);
    free(cpu);
    ff_tensor_free(x);
    ff_flow_free(f);
    ff_options_free(o);
    return bad;
}

int main(int argc, char **argv) {
    int steps = 5, warm = 2;
    int64_t n = 32, k = 256, K = 27, W = 256, D = 4, H = 4;
    const char *conds = "add,adaln";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--warm")) warm = atoi(v);
        else if (!strcmp(a, "--batch")) n = atoll(v);
        else if (!strcmp(a, "--k")) k = atoll(v);
        else if (!strcmp(a, "--K")) K = atoll(v);
        else if (!strcmp(a, "--width")) W = atoll(v);
        else if (!strcmp(a, "--depth")) D = atoll(v);
        else if (!strcmp(a, "--heads")) H = atoll(v);
        else if (!strcmp(a, "--cond")) conds = v;
        else { fprintf(stderr, "bench_transformer: unknown argument %s\n", a); return 2; }
    }
    if (steps < 1 || warm < 0) { fprintf(stderr, "bench_transformer: --steps >= 1, --warm >= 0\n"); return 2; }
    double la[3] = { 0 };
    if (getloadavg(la, 3) < 0) la[0] = la[1] = la[2] = -1;
    printf("bench_transformer: batch %lld, k %lld, d+1 %lld, width %lld, depth %lld, heads %lld, mlp 4x; "
           "OpenBLAS %s, core %s, threads %d; load average %.2f %.2f %.2f\n", (long long)n, (long long)k,
           (long long)K, (long long)W, (long long)D, (long long)H, openblas_get_config(), openblas_get_corename(),
           openblas_get_num_threads(), la[0], la[1], la[2]);
    char buf[64];
    snprintf(buf, sizeof buf, "%s", conds);
    int bad = 0;
    for (char *save = NULL, *c = strtok_r(buf, ",", &save); c; c = strtok_r(NULL, ",", &save))
        bad |= run(c, steps, warm, n, k, K, W, D, H);
    return bad;
}
