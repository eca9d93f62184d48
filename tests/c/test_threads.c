/* test_threads.c — the thread setting (threads.h): set and read back through OpenBLAS, parsing of
 * --threads / FISHERFLOW_THREADS values, the start line, a GEMM that gives the same numbers at
 * 1 and 2 threads, and ff_threads_run: every job once, side by side, OpenBLAS at 1 thread inside. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fisherflow/fisherflow.h"
#include "ff_test.h"

FF_TEST(set_and_get) {
    FF_EXPECT(ff_threads_set(2) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_threads_get() == 2, "got %d", ff_threads_get());
    FF_EXPECT(ff_threads_set(1) == FF_OK);
    FF_EXPECT(ff_threads_get() == 1, "got %d", ff_threads_get());
    FF_EXPECT_ERROR(ff_threads_set(0), FF_EINVAL, "0 threads, expected 1..1024");
    FF_EXPECT_ERROR(ff_threads_set(5000), FF_EINVAL, "5000 threads");
}

FF_TEST(parse) {
    int n = 0;
    FF_EXPECT(ff_threads_parse("3", "--threads", &n) == FF_OK && n == 3);
    FF_EXPECT_ERROR(ff_threads_parse("", "--threads", &n), FF_EINVAL, "--threads: '' is not a thread count");
    FF_EXPECT_ERROR(ff_threads_parse("2x", "FISHERFLOW_THREADS", &n), FF_EINVAL, "FISHERFLOW_THREADS: '2x'");
    FF_EXPECT_ERROR(ff_threads_parse("0", "--threads", &n), FF_EINVAL, "'0' is not a thread count");
    FF_EXPECT_ERROR(ff_threads_parse("-1", "--threads", &n), FF_EINVAL, "'-1'");
    FF_EXPECT_ERROR(ff_threads_parse("99999999999999999999", "--threads", &n), FF_EINVAL, "is not a thread count");
}

FF_TEST(describe) {
    ff_threads_set(2);
    char line[256];
    ff_threads_describe(line, sizeof line);
    FF_EXPECT(!strncmp(line, "2 threads, OpenBLAS ", 20), "line: %s", line);
    FF_EXPECT(strcmp(ff_blas_version(), "unknown") != 0 && strchr(ff_blas_version(), '.'), "version %s", ff_blas_version());
    FF_EXPECT(strstr(line, ff_blas_corename()) != NULL, "line %s lacks the core name %s", line, ff_blas_corename());
    ff_threads_set(1);
    ff_threads_describe(line, sizeof line);
    FF_EXPECT(!strncmp(line, "1 thread, ", 10), "line: %s", line);
}

FF_TEST(matmul_same_at_1_and_2_threads) {
    /* a GEMM large enough for OpenBLAS to split it; each output element's sum is the same whatever
     * the split, so the two results agree (to rounding) and with a plain triple loop */
    int64_t n = 256;
    ff_tensor_t *a, *b;
    ff_tape_t *tp;
    ff_tensor_new2(&a, n, n); ff_tensor_new2(&b, n, n);
    ff_tape_new(&tp, 0);
    ff_rng_t r;
    ff_rng_seed(&r, 3);
    ff_rng_fill_normal(&r, a, 0, 1); ff_rng_fill_normal(&r, b, 0, 1);
    ff_threads_set(1);
    ff_tensor_t *c1 = ff_matmul(tp, a, b);
    ff_threads_set(2);
    ff_tensor_t *c2 = ff_matmul(tp, a, b);
    FF_EXPECT(ff_tape_status(tp) == FF_OK && c1 && c2, "%s", ff_last_error());
    if (!c1 || !c2) return;
    double worst = 0;
    for (int64_t i = 0; i < n; i += 37) for (int64_t j = 0; j < n; j += 41) {
        double s = 0;
        for (int64_t k = 0; k < n; k++) s += (double)a->data[i * n + k] * b->data[k * n + j];
        worst = ff_nanmax(worst, fabs(c1->data[i * n + j] - s));
        worst = ff_nanmax(worst, fabs(c2->data[i * n + j] - s));
    }
    FF_EXPECT(worst < 1e-3, "worst |C - brute force| = %g", worst);
    ff_threads_set(1);
    ff_tape_free(tp); ff_tensor_free(a); ff_tensor_free(b);
}

typedef struct run_probe {
    atomic_int ran[8];          /* how often job w ran                               */
    int        blas[8];         /* OpenBLAS's thread count inside job w              */
    pthread_t  who[8];
    atomic_int waiting;         /* jobs that have arrived at the rendezvous          */
    int        met[8];          /* job w saw all n jobs arrive (within 10 s)         */
    int        n;
} run_probe;

static void probe_job(void *arg, int w) {
    run_probe *p = arg;
    atomic_fetch_add(&p->ran[w], 1);
    p->blas[w] = ff_threads_get();
    p->who[w] = pthread_self();
    /* every job waits for all to arrive: jobs run one after another would each give up after 10 s */
    atomic_fetch_add(&p->waiting, 1);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        p->met[w] = atomic_load(&p->waiting) >= p->n;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (!p->met[w] && t.tv_sec - t0.tv_sec < 10);
}

FF_TEST(run_jobs_side_by_side) {
    for (int n = 1; n <= 4; n++) {
        run_probe p;
        memset(&p, 0, sizeof p);
        p.n = n;
        ff_threads_set(3);
        ff_threads_run(n, probe_job, &p);
        FF_EXPECT(ff_threads_get() == 3, "n = %d: OpenBLAS at %d threads after, expected 3 again", n, ff_threads_get());
        for (int w = 0; w < n; w++) {
            FF_EXPECT(atomic_load(&p.ran[w]) == 1, "n = %d: job %d ran %d times", n, w, atomic_load(&p.ran[w]));
            FF_EXPECT(p.blas[w] == (n == 1 ? 3 : 1), "n = %d: job %d saw %d OpenBLAS threads", n, w, p.blas[w]);
            FF_EXPECT(p.met[w], "n = %d: job %d never saw the others running", n, w);
            for (int v = 0; v < w; v++)
                FF_EXPECT(!pthread_equal(p.who[v], p.who[w]), "n = %d: jobs %d and %d on one thread", n, v, w);
        }
        FF_EXPECT(pthread_equal(p.who[0], pthread_self()), "n = %d: job 0 not on the caller", n);
    }
    ff_threads_set(1);
}

FF_MAIN()
