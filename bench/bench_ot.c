/* bench_ot.c — exact_ot timing: n = 512 and 2048 pairs, k = 4 positions, d+1 = 100 symbols, x0
 * uniform on the sphere, x1 one-hot. Prints the median CPU ms of the cost build (4 sgemm + acos)
 * and of the assignment solve, timed separately on the plugin's own code (compiled in here), and the
 * median of a whole pair() call through the loader (CPU and wall). Figures only; never pass/fail. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "../plugins/coupler/exact_ot.c"   /* the plugin's static cost build and solver */

/* CPU time of this process: on a shared, loaded machine it tracks the work better than wall time
 * (OPENBLAS_NUM_THREADS=1 keeps it a single thread's time). Wall time is printed for the whole call. */
static double cpu_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(void) {
    const int64_t k = 4, D = 100;
    const int64_t sizes[] = { 512, 2048 };
    const int reps[] = { 11, 5 };
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    printf("bench_ot: exact_ot, k = %lld, d+1 = %lld, x0 uniform sphere, x1 one-hot; OPENBLAS_NUM_THREADS=%s\n",
           (long long)k, (long long)D, threads ? threads : "(unset)");
    ff_rng_t rng;
    ff_rng_seed(&rng, 1);
    ff_plugin_inst *ot = NULL;
    if (ff_plugin_new(&ot, FF_PLUGIN_COUPLER, "exact_ot", NULL, NULL, NULL, NULL) != FF_OK) {
        fprintf(stderr, "bench_ot: %s\n", ff_last_error());
        return 1;
    }
    const ff_coupler_vtable *vt = ot->desc->vtable;
    for (int q = 0; q < 2; q++) {
        int64_t n = sizes[q];
        ff_tensor_t *x0 = NULL, *x1 = NULL;
        ff_tensor_new3(&x0, n, k, D);
        ff_tensor_new3(&x1, n, k, D);
        int32_t *perm = malloc((size_t)n * sizeof *perm);
        double cost_ms[16], solve_ms[16], pair_ms[16], wall_ms[16], total = 0;
        eot_state *s = NULL;
        eot_create(NULL, &(ff_space){ 0 }, (void **)&s);
        for (int r = 0; r < reps[q]; r++) {
            /* fresh inputs each repetition: x0 |z|/||z||, x1 a random vertex per position */
            for (int64_t e = 0; e < n * k; e++) {
                double nrm = 0;
                float *a = x0->data + e * D, *b = x1->data + e * D;
                for (int64_t c = 0; c < D; c++) { a[c] = (float)fabs(ff_rng_normal(&rng)); nrm += (double)a[c] * a[c]; b[c] = 0; }
                for (int64_t c = 0; c < D; c++) a[c] = (float)(a[c] / sqrt(nrm));
                b[ff_rng_below(&rng, (uint64_t)D)] = 1;
            }
            grow(s, n);
            double t0 = cpu_ms();
            ot_cost_build(&s->cost, "bench", x0, x1);
            double t1 = cpu_ms();
            lap_solve(s, s->cost.C, n);
            double t2 = cpu_ms();
            cost_ms[r] = t1 - t0;
            solve_ms[r] = t2 - t1;
            double t3 = cpu_ms(), w3 = now_ms();
            if (vt->pair(ot->state, x0, x1, NULL, perm) != FF_OK) { fprintf(stderr, "%s\n", ff_last_error()); return 1; }
            pair_ms[r] = cpu_ms() - t3;
            wall_ms[r] = now_ms() - w3;
            for (int64_t i = 0; i < n; i++) if (perm[i] != s->rowsol[i]) { total = -1; break; }
        }
        printf("  n = %5lld: cost build %8.2f ms   solve %8.2f ms   pair() via loader %8.2f ms (wall %8.2f ms)"
               "   CPU-time medians of %d%s\n",
               (long long)n, median(cost_ms, reps[q]), median(solve_ms, reps[q]), median(pair_ms, reps[q]),
               median(wall_ms, reps[q]), reps[q], total < 0 ? "  [perm differs from the direct solve: ties]" : "");
        eot_destroy(s);
        free(perm);
        ff_tensor_free(x0); ff_tensor_free(x1);
    }
    ff_plugin_free(ot);

    /* For scale: sinkhorn with its default options on the same kind of batch at n = 512. */
    ff_plugin_inst *sk = NULL;
    if (ff_plugin_new(&sk, FF_PLUGIN_COUPLER, "sinkhorn", NULL, NULL, NULL, NULL) != FF_OK) {
        fprintf(stderr, "bench_ot: %s\n", ff_last_error());
        return 1;
    }
    {
        int64_t n = 512;
        ff_tensor_t *x0 = NULL, *x1 = NULL;
        ff_tensor_new3(&x0, n, k, D);
        ff_tensor_new3(&x1, n, k, D);
        int32_t *perm = malloc((size_t)n * sizeof *perm);
        double ms[5];
        for (int r = 0; r < 5; r++) {
            for (int64_t e = 0; e < n * k; e++) {
                double nrm = 0;
                float *a = x0->data + e * D, *b = x1->data + e * D;
                for (int64_t c = 0; c < D; c++) { a[c] = (float)fabs(ff_rng_normal(&rng)); nrm += (double)a[c] * a[c]; b[c] = 0; }
                for (int64_t c = 0; c < D; c++) a[c] = (float)(a[c] / sqrt(nrm));
                b[ff_rng_below(&rng, (uint64_t)D)] = 1;
            }
            double t0 = cpu_ms();
            if (((const ff_coupler_vtable *)sk->desc->vtable)->pair(sk->state, x0, x1, &rng, perm) != FF_OK) {
                fprintf(stderr, "%s\n", ff_last_error());
                return 1;
            }
            ms[r] = cpu_ms() - t0;
        }
        printf("  sinkhorn (eps 0.05 x mean cost, tolerance 1e-6, at most 1000 sweeps), n = 512: pair() %8.2f ms"
               "   CPU-time median of 5\n", median(ms, 5));
        free(perm);
        ff_tensor_free(x0); ff_tensor_free(x1);
    }
    ff_plugin_free(sk);
    return 0;
}
