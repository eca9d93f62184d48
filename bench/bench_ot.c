/* bench_ot.c — exact_ot timing: one-hot batches (k = 4 positions, d+1 = 100 symbols, n = 512 to
 * 4096) and the smiley flow's batches on the 2-simplex (k = 1, d+1 = 3, n = 2048 and 4096). Prints
 * the median CPU ms of the cost build (k sgemm + acos) and of the assignment solve, timed separately
 * on the plugin's own code (compiled in here) with a chosen start, and of a whole pair() call through
 * the loader (CPU and wall). Figures only; it fails only if two solves of one batch disagree on the
 * optimal cost. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <fisherflow/data.h>
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

/* x0 uniform on the orthant (|z| / ||z||); x1 a random vertex per position (one-hot data) or, on the
 * 2-simplex, the square root of a smiley draw (continuous data). */
static void fill_batch(ff_rng_t *rng, ff_tensor_t *x0, ff_tensor_t *x1, int smiley) {
    int64_t n = x0->shape[0], k = x0->shape[1], D = x0->shape[2];
    for (int64_t e = 0; e < n * k; e++) {
        double nrm = 0;
        float *a = x0->data + e * D, *b = x1->data + e * D;
        for (int64_t c = 0; c < D; c++) { a[c] = (float)fabs(ff_rng_normal(rng)); nrm += (double)a[c] * a[c]; b[c] = 0; }
        for (int64_t c = 0; c < D; c++) a[c] = (float)(a[c] / sqrt(nrm));
        b[ff_rng_below(rng, (uint64_t)D)] = 1;
    }
    if (smiley) {
        ff_data_smiley(rng, n, x1);
        for (int64_t e = 0; e < n * D; e++) x1->data[e] = sqrtf(x1->data[e]);
    }
}

/* One size: cost build and solve timed on the plugin's own code (compiled in here) with the given
 * start, and a whole pair() through the loader (auto start) on the same batch. */
static int bench_case(ff_plugin_inst *ot, ff_rng_t *rng, int64_t n, int64_t k, int64_t D, int smiley,
                      eot_start start, int reps) {
    ff_tensor_t *x0 = NULL, *x1 = NULL;
    ff_tensor_new3(&x0, n, k, D);
    ff_tensor_new3(&x1, n, k, D);
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    double cost_ms[16], solve_ms[16], pair_ms[16], wall_ms[16];
    int differs = 0, auction = 0;
    eot_state *s = NULL;
    eot_create(NULL, &(ff_space){ 0 }, (void **)&s);
    s->start = start;
    const ff_coupler_vtable *vt = ot->desc->vtable;
    for (int r = 0; r < reps; r++) {
        fill_batch(rng, x0, x1, smiley);
        grow(s, n);
        double t0 = cpu_ms();
        ot_cost_build(&s->cost, "bench", x0, x1);
        double t1 = cpu_ms();
        lap_solve(s, s->cost.C, n);
        double t2 = cpu_ms();
        cost_ms[r] = t1 - t0;
        solve_ms[r] = t2 - t1;
        auction += s->auction_last;
        double t3 = cpu_ms(), w3 = now_ms();
        if (vt->pair(ot->state, x0, x1, NULL, perm) != FF_OK) { fprintf(stderr, "%s\n", ff_last_error()); return 1; }
        pair_ms[r] = cpu_ms() - t3;
        wall_ms[r] = now_ms() - w3;
        double c_direct = 0, c_pair = 0;
        for (int64_t i = 0; i < n; i++) {
            c_direct += s->cost.C[i * n + s->rowsol[i]];
            c_pair += s->cost.C[i * n + perm[i]];
        }
        if (fabs(c_direct - c_pair) > 1e-9 * fabs(c_direct)) differs = 1;
    }
    const char *names[] = { "auto", "columns", "auction" };
    printf("  %-9s n = %5lld k = %lld d+1 = %3lld  start %-7s (auction used %d of %d): cost build %8.2f ms"
           "  solve %8.2f ms  |  pair() via loader, auto: %8.2f ms (wall %8.2f ms)%s\n",
           smiley ? "2-simplex" : "one-hot", (long long)n, (long long)k, (long long)D, names[start], auction, reps,
           median(cost_ms, reps), median(solve_ms, reps), median(pair_ms, reps), median(wall_ms, reps),
           differs ? "  [COST DIFFERS between the two solves]" : "");
    eot_destroy(s);
    free(perm);
    ff_tensor_free(x0); ff_tensor_free(x1);
    return differs;
}

int main(void) {
    const int64_t k = 4, D = 100;
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    printf("bench_ot: exact_ot; CPU-time medians (OPENBLAS_NUM_THREADS=%s); x0 uniform on the orthant\n",
           threads ? threads : "(unset)");
    ff_rng_t rng;
    ff_rng_seed(&rng, 1);
    ff_plugin_inst *ot = NULL;
    if (ff_plugin_new(&ot, FF_PLUGIN_COUPLER, "exact_ot", NULL, NULL, NULL, NULL) != FF_OK) {
        fprintf(stderr, "bench_ot: %s\n", ff_last_error());
        return 1;
    }
    int bad = 0;
    bad |= bench_case(ot, &rng, 512, k, D, 0, START_AUTO, 11);
    bad |= bench_case(ot, &rng, 2048, k, D, 0, START_AUTO, 5);
    bad |= bench_case(ot, &rng, 2048, k, D, 0, START_AUCTION, 3);
    bad |= bench_case(ot, &rng, 4096, k, D, 0, START_AUTO, 3);
    bad |= bench_case(ot, &rng, 2048, 1, 3, 1, START_AUTO, 5);      /* the smiley flow's batch */
    bad |= bench_case(ot, &rng, 2048, 1, 3, 1, START_COLUMNS, 1);   /* the solver's start before 1.1 */
    bad |= bench_case(ot, &rng, 4096, 1, 3, 1, START_AUTO, 3);
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
    return bad;
}
