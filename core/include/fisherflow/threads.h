/* threads.h — how many threads libfisherflow computes with. Its only threads are OpenBLAS's (the
 * GEMMs behind matmul, linear, conv1d and attention); the core starts none of its own. The
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
/* One line for the start of a run: "<n> threads, OpenBLAS <version> (<corename>)" into buf. */
void        ff_threads_describe(char *buf, size_t size);

#endif
