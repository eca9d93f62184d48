/* sgemm_timer.h — for the benchmarks that report how much of their time is spent inside
 * cblas_sgemm: this definition of cblas_sgemm in the executable is the one the library's and the
 * plugins' calls resolve to; it times each call (gemm_ms, gemm_calls: reset them around what is
 * measured) and forwards it to OpenBLAS's. Calls from several threads at once (the sampler's
 * workers) add up: gemm_ms is then the sum of the threads' times. Include it in one file per
 * executable. */
#ifndef FF_BENCH_SGEMM_TIMER_H
#define FF_BENCH_SGEMM_TIMER_H

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE,
                         const blasint, const blasint, const blasint, const float, const float *, const blasint,
                         const float *, const blasint, const float, float *, const blasint);
static sgemm_fn real_sgemm;
static double gemm_ms;
static long gemm_calls;
static pthread_mutex_t gemm_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t real_sgemm_once = PTHREAD_ONCE_INIT;

static void find_real_sgemm(void) {
    real_sgemm = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
    if (!real_sgemm) { fprintf(stderr, "benchmark: cannot find OpenBLAS's cblas_sgemm\n"); exit(1); }
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

void cblas_sgemm(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                 const blasint m, const blasint n, const blasint k, const float alpha, const float *a,
                 const blasint lda, const float *b, const blasint ldb, const float beta, float *c,
                 const blasint ldc) {
    pthread_once(&real_sgemm_once, find_real_sgemm);
    double t0 = now_ms();
    real_sgemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    double dt = now_ms() - t0;
    pthread_mutex_lock(&gemm_lock);
    gemm_ms += dt;
    gemm_calls++;
    pthread_mutex_unlock(&gemm_lock);
}

#endif
