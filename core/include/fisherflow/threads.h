/* threads.h — how many threads libfisherflow computes with: OpenBLAS's count (the GEMMs behind
 * matmul, linear, conv1d and attention). The sampler splits each chunk of rows into that many
 * parts and integrates them side by side with ff_threads_run, OpenBLAS at 1 thread meanwhile, so
 * the two never compete for cores (flow.h, ff_flow_sample). The
 * `fisherflow` runner sets the count from `fisherflow run --threads N` or FISHERFLOW_THREADS and
 * prints ff_threads_describe at start; without either, OpenBLAS's own default stands
 * (OPENBLAS_NUM_THREADS, else one per core). */
#ifndef FISHERFLOW_THREADS_H
#define FISHERFLOW_THREADS_H

#include <stddef.h>
#include "error.h"

/* Sets the thread count: n in [1, 1024]; FF_EINVAL otherwise. */
ff_status   ff_threads_set(int n);
/* The thread count OpenBLAS uses now. */
int         ff_threads_get(void);
/* OpenBLAS's kernel family for this CPU ("Haswell", ...) and its version ("0.3.21"; "unknown" when
 * its configuration string does not say). Static strings. */
const char *ff_blas_corename(void);
const char *ff_blas_version(void);
/* Parses a thread count as given on the command line or in FISHERFLOW_THREADS: a decimal integer in
 * [1, 1024]; FF_EINVAL naming `what` and the text otherwise. */
ff_status   ff_threads_parse(const char *text, const char *what, int *n);
/* Runs job(arg, w) for w = 0..n-1 side by side: job 0 on the calling thread, the others on threads
 * of their own, with OpenBLAS at 1 thread until all are done (then the count is restored): n
 * single-threaded GEMMs at once instead of one n-threaded GEMM after another, and the work between
 * GEMMs on every core. A job whose thread cannot be started runs on the caller after job 0. Jobs
 * report through arg; an error message set in a job stays in that job's thread (error.h), so a job
 * copies what it needs. n <= 1 runs job(arg, 0) alone, leaving OpenBLAS as it is. */
void        ff_threads_run(int n, void (*job)(void *arg, int w), void *arg);
/* One line for the start of a run: "<n> threads, OpenBLAS <version> (<corename>)" into buf. */
void        ff_threads_describe(char *buf, size_t size);

#endif
