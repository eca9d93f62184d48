/* dist.h — data parallelism across processes (MPI), for `mpirun -np N fisherflow run ...`.
 *
 * libfisherflow is built with MPI when CMake finds it (Open MPI from Debian); ff_dist_built() says
 * so. MPI is initialised only by ff_dist_init() and only when this process was started by an MPI
 * launcher (mpirun/mpiexec, or srun with PMIx): a plain `fisherflow run` pays nothing and needs no
 * MPI set-up. Until then, and in a build without MPI, every call is the one-process case: rank 0,
 * size 1, the all-reduce is the identity, the gather a copy, the barrier returns at once.
 *
 * Every collective is one MPI call on MPI_COMM_WORLD with MPI_ERRORS_RETURN: an MPI error comes back
 * as FF_EIO with MPI's message and the rank. A lost peer is handled by the launcher (Open MPI's
 * mpirun ends the job when a rank dies and names it); a peer that stops answering without dying is
 * caught by a watchdog: a collective that has waited longer than the timeout (ff_dist_set_timeout,
 * or the environment variable FF_DIST_TIMEOUT in seconds; default 600) prints which rank waited on
 * which call and ends this process, and the launcher then ends the job.
 *
 * Calls are made from one thread (the one that called ff_dist_init). Collectives must be called by
 * every rank in the same order.
 */
#ifndef FISHERFLOW_DIST_H
#define FISHERFLOW_DIST_H

#include <stdint.h>
#include "error.h"

int       ff_dist_built(void);       /* 1 when libfisherflow was built with MPI                   */
int       ff_dist_launched(void);    /* 1 when the environment says an MPI launcher started us    */
/* Initialises MPI when built with it and launched by a launcher (otherwise does nothing and
 * returns FF_OK: one process). Idempotent. argc/argv may be NULL. A build without MPI started as
 * one of several ranks (OMPI_COMM_WORLD_SIZE or PMI_SIZE > 1) returns FF_EINVAL saying so: each
 * process would otherwise run the whole job alone. */
ff_status ff_dist_init(int *argc, char ***argv);
/* Finalises MPI if ff_dist_init started it (after a barrier-free MPI_Finalize); idempotent. */
ff_status ff_dist_finalize(void);
/* Ends every rank of the job: prints "fisherflow: rank R: msg" to stderr and calls MPI_Abort with
 * code (exit(code) when MPI is not running). Never returns. */
void      ff_dist_abort(int code, const char *msg) __attribute__((noreturn));

int       ff_dist_active(void);      /* 1 while MPI is initialised by ff_dist_init               */
int       ff_dist_rank(void);        /* 0..size-1; 0 without MPI                                 */
int       ff_dist_size(void);        /* >= 1; 1 without MPI                                      */

/* Seconds a collective may wait for the other ranks before the watchdog ends the job; <= 0 turns
 * the watchdog off. Returns the previous value. */
double    ff_dist_set_timeout(double seconds);

/* x[0..n) <- the mean over ranks of x[0..n), in place: one MPI_Allreduce (sum), then a scale by
 * 1/size. Every rank receives bitwise the same result. */
ff_status ff_dist_allreduce_mean(float *x, int64_t n);
/* The same for doubles, as a sum (losses and counts for logs). */
ff_status ff_dist_allreduce_sum_f64(double *x, int64_t n);
ff_status ff_dist_barrier(void);

/* Gathers rows: rank r contributes rows[r] rows of row_len floats from send; dst receives all of
 * them, rank 0's first, on rank 0 (all = 0) or on every rank (all = 1). dst holds sum(rows) rows
 * where it receives and is not touched elsewhere (may be NULL there). Each rank passes its own count
 * in rows; the counts are exchanged inside. */
ff_status ff_dist_gather_rows(float *dst, const float *send, int64_t rows, int64_t row_len, int all);

/* The rows of a global batch of n that rank `rank` of `size` handles: [*first, *first + *count),
 * the first n % size ranks taking one more (a pure function; no MPI). */
void      ff_dist_share(int64_t n, int rank, int size, int64_t *first, int64_t *count);

#endif
