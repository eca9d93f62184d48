/* bench_step.c — the paper's toy setting (docs/PAPER_PROTOCOLS.md §2): k = 4 positions, K = d+1 symbols in {20, 160},
 * bmlp hidden 512 depth 4 emb 64, batch 512; median ms per ff_flow_step with exact_ot and with
 * independent coupling, and ms for one 100-step Euler sampling of 2048 samples (rows split over the
 * OpenBLAS thread count, one worker each: ff_flow_sample). Beside each figure,
 * the time spent inside cblas_sgemm (a timing wrapper in this executable, which the library's and
 * the plugin's calls resolve to): what is left is the framework's own work. Prints figures only.
 *   bench_step [--steps N (timed steps, default 20)] [--no-sample] [--K a,b,...] [--coupler a,b]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <fisherflow/fisherflow.h>

#include "sgemm_timer.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One-hot batch from the toy target: per position a softmax of U[0,1) logits (fixed by seed). */
static void toy_batch(ff_tensor_t *x, const double *probs, int64_t K, ff_rng_t *r) {
    ff_tensor_fill(x, 0.0f);
    int64_t n = x->shape[0], k = x->shape[1];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < k; j++) {
            double u = ff_rng_uniform(r), c = 0;
            int64_t s = K - 1;
            for (int64_t q = 0; q < K; q++) { c += probs[j * K + q]; if (u < c) { s = q; break; } }
            x->data[(i * k + j) * K + s] = 1.0f;
        }
}

static int run(int64_t K, const char *coupler, int steps, int do_sample, double *med_out) {
    const int64_t k = 4, n = 512;
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ k, K - 1, 0, 0 };
    c.coupler.name = coupler;
    c.seed = 1;
    ff_flow_t *f = NULL;
    if (ff_flow_new(&f, &c) != FF_OK) { fprintf(stderr, "ff_flow_new: %s\n", ff_last_error()); return 1; }
    double *probs = malloc(sizeof(double) * (size_t)(k * K));
    ff_rng_t r;
    ff_rng_seed(&r, 7);
    for (int64_t j = 0; j < k; j++) {
        double s = 0;
        for (int64_t q = 0; q < K; q++) { probs[j * K + q] = exp(ff_rng_uniform(&r)); s += probs[j * K + q]; }
        for (int64_t q = 0; q < K; q++) probs[j * K + q] /= s;
    }
    ff_tensor_t *x = NULL;
    ff_tensor_new3(&x, n, k, K);
    double *ms = malloc(sizeof(double) * (size_t)steps), *gm = malloc(sizeof(double) * (size_t)steps);
    ff_step_stats st;
    int bad = 0;
    for (int s = 0; s < 3 + steps && !bad; s++) {      /* 3 warm-up steps grow the arena */
        toy_batch(x, probs, K, &r);
        gemm_ms = 0;
        if (ff_flow_step(f, x, NULL, NULL, &st) != FF_OK) { fprintf(stderr, "step: %s\n", ff_last_error()); bad = 1; }
        else if (s >= 3) { ms[s - 3] = st.ms; gm[s - 3] = gemm_ms; }
    }
    if (!bad) {
        qsort(ms, (size_t)steps, sizeof *ms, cmp_double);
        qsort(gm, (size_t)steps, sizeof *gm, cmp_double);
        *med_out = ms[steps / 2];
        printf("K=%-4lld %-12s params %8lld  step: median %8.2f ms  (min %8.2f, max %8.2f, %d steps, loss %.4f); "
               "in sgemm: median %.2f ms\n",
               (long long)K, coupler, (long long)ff_params_numel(ff_flow_params(f)), ms[steps / 2], ms[0],
               ms[steps - 1], steps, st.loss, gm[steps / 2]);
    }
    if (!bad && do_sample) {
        ff_tensor_t *out = NULL;
        ff_tensor_new3(&out, 2048, k, K);
        ff_sample_opts so = ff_flow_default_sample_opts();
        so.steps = 100;
        so.batch = 2048;
        ff_sample_stats ss;
        int threads = ff_threads_get();   /* the sampler's workers: bmlp's forward is reentrant */
        gemm_ms = 0;
        if (ff_flow_sample(f, out, NULL, NULL, &so, &ss) != FF_OK) { fprintf(stderr, "sample: %s\n", ff_last_error()); bad = 1; }
        else printf("K=%-4lld %-12s sample 2048 x 100 Euler steps: %9.1f ms (%lld field evaluations, %.2f ms each; "
                    "in sgemm %.2f ms each per thread, %d threads side by side)\n", (long long)K, coupler, ss.ms,
                    (long long)ss.nfe, ss.ms / (double)ss.nfe, gemm_ms / (double)ss.nfe / threads, threads);
        ff_tensor_free(out);
    }
    free(ms);
    free(gm);
    free(probs);
    ff_tensor_free(x);
    ff_flow_free(f);
    return bad;
}

int main(int argc, char **argv) {
    int steps = 20, do_sample = 1;
    int64_t Ks[8] = { 20, 160 };
    int nK = 2, ot = 1, ind = 1;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--steps") && a + 1 < argc) steps = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--no-sample")) do_sample = 0;
        else if (!strcmp(argv[a], "--K") && a + 1 < argc) {
            nK = 0;
            for (char *p = strtok(argv[++a], ","); p && nK < 8; p = strtok(NULL, ",")) Ks[nK++] = atoll(p);
        } else if (!strcmp(argv[a], "--coupler") && a + 1 < argc) {
            const char *c = argv[++a];
            ot = strstr(c, "exact_ot") != NULL;
            ind = strstr(c, "independent") != NULL;
        } else {
            fprintf(stderr, "usage: %s [--steps N] [--no-sample] [--K 20,160] [--coupler exact_ot,independent]\n", argv[0]);
            return 2;
        }
    }
    if (steps < 1) steps = 1;
    ff_init();
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    double la[3];
    if (getloadavg(la, 3) < 0) la[0] = la[1] = la[2] = -1;
    printf("bench_step: k=4, bmlp hidden 512 depth 4 emb 64, batch 512, AdamW, grad clip 1 (OPENBLAS_NUM_THREADS=%s; "
           "OpenBLAS core %s, %d threads; load %.2f %.2f %.2f)\n", env ? env : "unset", openblas_get_corename(),
           openblas_get_num_threads(), la[0], la[1], la[2]);
    for (int i = 0; i < nK; i++) {
        double m_ot = 0, m_ind = 0;
        if (ot && run(Ks[i], "exact_ot", steps, 0, &m_ot)) return 1;
        if (ind && run(Ks[i], "independent", steps, do_sample, &m_ind)) return 1;
        if (ot && ind) printf("K=%-4lld exact_ot / independent step time: %.2f\n", (long long)Ks[i], m_ot / m_ind);
    }
    return 0;
}
