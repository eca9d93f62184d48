/* dist.c — the MPI layer of dist.h. Built with FF_HAVE_MPI when CMake found MPI; without it every
 * call is the one-process case. The watchdog is a thread that sleeps until a collective's deadline
 * and, if the collective is still running then, ends the process (_exit: MPI_Abort is not safe from
 * a second thread at MPI_THREAD_FUNNELED), which makes the launcher end the whole job.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/dist.h"

void ff_dist_share(int64_t n, int rank, int size, int64_t *first, int64_t *count) {
    if (size < 1) size = 1;
    if (n < 0) n = 0;
    int64_t base = n / size, extra = n % size;
    int64_t r = rank < 0 ? 0 : rank >= size ? size - 1 : rank;
    *count = base + (r < extra);
    *first = r * base + (r < extra ? r : extra);
}

int ff_dist_launched(void) {
    /* Open MPI's mpirun, PMIx launchers (srun --mpi=pmix, prterun), MPICH/Hydra and PMI-2 */
    static const char *vars[] = { "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE" };
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static double timeout_from_env(void) {
    const char *e = getenv("FF_DIST_TIMEOUT");
    if (!e || !*e) return 600.0;
    char *end;
    double v = strtod(e, &end);
    if (*end || !isfinite(v)) {
        fprintf(stderr, "fisherflow: FF_DIST_TIMEOUT=\"%s\" is not a number of seconds; using 600\n", e);
        return 600.0;
    }
    return v;
}

#ifdef FF_HAVE_MPI
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <mpi.h>

static int g_active, g_rank, g_size = 1;
static double g_timeout = -1;                  /* < 0: not read from the environment yet */

/* watchdog state, under g_mu */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  g_cv = PTHREAD_COND_INITIALIZER;
static pthread_t       g_dog;
static int             g_dog_running, g_dog_stop;
static const char     *g_what;                 /* the collective in progress, NULL when none */
static long long       g_seq;                  /* collectives started so far                 */
static struct timespec g_deadline;

static double timeout_now(void) {
    if (g_timeout < 0) g_timeout = timeout_from_env();
    return g_timeout;
}

static void *watchdog(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_mu);
    while (!g_dog_stop) {
        if (!g_what) { pthread_cond_wait(&g_cv, &g_mu); continue; }
        long long seq = g_seq;
        struct timespec dl = g_deadline;
        int rc = pthread_cond_timedwait(&g_cv, &g_mu, &dl);
        if (rc != 0 && g_what && g_seq == seq && !g_dog_stop) {
            fprintf(stderr,
                    "fisherflow: rank %d of %d: %s (collective #%lld) waited %.0f s for the other ranks: "
                    "a rank is stuck or unreachable; ending the job (timeout: FF_DIST_TIMEOUT)\n",
                    g_rank, g_size, g_what, seq, g_timeout);
            fflush(stderr);
            _exit(124);
        }
    }
    pthread_mutex_unlock(&g_mu);
    return NULL;
}

static void dog_arm(const char *what) {
    double t = timeout_now();
    if (!g_dog_running || t <= 0) return;
    pthread_mutex_lock(&g_mu);
    clock_gettime(CLOCK_REALTIME, &g_deadline);
    double whole = floor(t);
    g_deadline.tv_sec += (time_t)whole;
    g_deadline.tv_nsec += (long)((t - whole) * 1e9);
    if (g_deadline.tv_nsec >= 1000000000L) { g_deadline.tv_sec++; g_deadline.tv_nsec -= 1000000000L; }
    g_what = what;
    g_seq++;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void dog_disarm(void) {
    if (!g_dog_running) return;
    pthread_mutex_lock(&g_mu);
    g_what = NULL;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static ff_status mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
    return ff_errorf(FF_EIO, "%s: rank %d of %d: %s", what, g_rank, g_size, msg);
}

int ff_dist_built(void) { return 1; }
int ff_dist_active(void) { return g_active; }
int ff_dist_rank(void) { return g_active ? g_rank : 0; }
int ff_dist_size(void) { return g_active ? g_size : 1; }

double ff_dist_set_timeout(double seconds) {
    double old = timeout_now();
    g_timeout = seconds;
    return old;
}

ff_status ff_dist_init(int *argc, char ***argv) {
    if (g_active || !ff_dist_launched()) return FF_OK;
    int inited = 0, provided = 0, rc;
    MPI_Initialized(&inited);
    if (!inited && (rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
        return ff_errorf(FF_EIO, "ff_dist_init: MPI_Init_thread failed (error %d)", rc);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &g_rank)) != MPI_SUCCESS) return mpi_fail(rc, "ff_dist_init");
    if ((rc = MPI_Comm_size(MPI_COMM_WORLD, &g_size)) != MPI_SUCCESS) return mpi_fail(rc, "ff_dist_init");
    g_active = 1;
    g_dog_stop = 0;
    if (pthread_create(&g_dog, NULL, watchdog, NULL) == 0) g_dog_running = 1;
    else return ff_errorf(FF_EIO, "ff_dist_init: rank %d: cannot start the watchdog thread", g_rank);
    return FF_OK;
}

ff_status ff_dist_finalize(void) {
    if (!g_active) return FF_OK;
    if (g_dog_running) {
        pthread_mutex_lock(&g_mu);
        g_dog_stop = 1;
        pthread_cond_signal(&g_cv);
        pthread_mutex_unlock(&g_mu);
        pthread_join(g_dog, NULL);
        g_dog_running = 0;
    }
    g_active = 0;
    int rc = MPI_Finalize();
    if (rc != MPI_SUCCESS) return ff_errorf(FF_EIO, "ff_dist_finalize: rank %d: MPI_Finalize failed", g_rank);
    return FF_OK;
}

void ff_dist_abort(int code, const char *msg) {
    if (msg && *msg) {
        if (g_active && g_size > 1) fprintf(stderr, "fisherflow: rank %d of %d: %s\n", g_rank, g_size, msg);
        else fprintf(stderr, "fisherflow: %s\n", msg);
    }
    fflush(stderr);
    if (g_active) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

ff_status ff_dist_allreduce_mean(float *x, int64_t n) {
    if (n < 0 || (n > 0 && !x)) return ff_errorf(FF_EINVAL, "ff_dist_allreduce_mean: bad block (%p, n=%lld)", (void *)x, (long long)n);
    if (!g_active || g_size == 1 || n == 0) return FF_OK;
    /* one call for any block below 2^31 floats (8 GiB); larger ones go in INT_MAX pieces */
    dog_arm("MPI_Allreduce (gradient mean)");
    for (int64_t i = 0; i < n; i += INT_MAX) {
        int c = (int)(n - i < INT_MAX ? n - i : INT_MAX);
        int rc = MPI_Allreduce(MPI_IN_PLACE, x + i, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) { dog_disarm(); return mpi_fail(rc, "ff_dist_allreduce_mean"); }
    }
    dog_disarm();
    float inv = 1.0f / (float)g_size;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
    return FF_OK;
}

ff_status ff_dist_allreduce_sum_f64(double *x, int64_t n) {
    if (n < 0 || n > INT_MAX || (n > 0 && !x))
        return ff_errorf(FF_EINVAL, "ff_dist_allreduce_sum_f64: bad block (%p, n=%lld)", (void *)x, (long long)n);
    if (!g_active || g_size == 1 || n == 0) return FF_OK;
    dog_arm("MPI_Allreduce (sum)");
    int rc = MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    dog_disarm();
    return rc == MPI_SUCCESS ? FF_OK : mpi_fail(rc, "ff_dist_allreduce_sum_f64");
}

ff_status ff_dist_barrier(void) {
    if (!g_active || g_size == 1) return FF_OK;
    dog_arm("MPI_Barrier");
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    dog_disarm();
    return rc == MPI_SUCCESS ? FF_OK : mpi_fail(rc, "ff_dist_barrier");
}

ff_status ff_dist_gather_rows(float *dst, const float *send, int64_t rows, int64_t row_len, int all) {
    const char *fn = "ff_dist_gather_rows";
    if (rows < 0 || row_len < 1 || (rows > 0 && !send))
        return ff_errorf(FF_EINVAL, "%s: bad block (send %p, rows=%lld, row_len=%lld)", fn, (void *)send,
                         (long long)rows, (long long)row_len);
    int receives = all || ff_dist_rank() == 0;
    if (receives && !dst) return ff_errorf(FF_EINVAL, "%s: rank %d receives but dst is NULL", fn, ff_dist_rank());
    if (!g_active || g_size == 1) {
        if (rows > 0 && dst != send) memmove(dst, send, (size_t)(rows * row_len) * sizeof(float));
        return FF_OK;
    }
    if (rows * row_len > INT_MAX)
        return ff_errorf(FF_EINVAL, "%s: rank %d sends %lld floats, more than one MPI call carries (%d)", fn,
                         g_rank, (long long)(rows * row_len), INT_MAX);
    int *counts = calloc((size_t)g_size * 2, sizeof *counts);
    if (!counts) return ff_errorf(FF_ENOMEM, "%s: out of memory", fn);
    int *displs = counts + g_size, mine = (int)(rows * row_len), rc;
    dog_arm("MPI_Allgather (row counts)");
    rc = MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    dog_disarm();
    if (rc != MPI_SUCCESS) { free(counts); return mpi_fail(rc, fn); }
    int64_t total = 0;
    for (int r = 0; r < g_size; r++) { displs[r] = (int)total; total += counts[r]; }
    ff_status s = FF_OK;
    if (total > INT_MAX) {
        s = ff_errorf(FF_EINVAL, "%s: %lld floats in all, more than one MPI call carries (%d)", fn,
                      (long long)total, INT_MAX);
    }   /* every rank computes the same total, so every rank stops here together */
    if (s != FF_OK) { free(counts); return s; }
    dog_arm(all ? "MPI_Allgatherv (rows)" : "MPI_Gatherv (rows to rank 0)");
    if (all) rc = MPI_Allgatherv(send, mine, MPI_FLOAT, dst, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    else rc = MPI_Gatherv(send, mine, MPI_FLOAT, dst, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
    dog_disarm();
    free(counts);
    return rc == MPI_SUCCESS ? FF_OK : mpi_fail(rc, fn);
}

#else  /* built without MPI: one process */

static double g_timeout = -1;

int ff_dist_built(void) { return 0; }
int ff_dist_active(void) { return 0; }
int ff_dist_rank(void) { return 0; }
int ff_dist_size(void) { return 1; }
/* Started as one of several ranks by a launcher, this build could only run the whole job alone in
 * every process (each writing the same files): refuse. */
ff_status ff_dist_init(int *argc, char ***argv) {
    (void)argc; (void)argv;
    static const char *vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE" };
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *e = getenv(vars[i]);
        if (e && atoi(e) > 1)
            return ff_errorf(FF_EINVAL, "ff_dist_init: started as one of %s=%s ranks, but this libfisherflow was "
                             "built without MPI (install libopenmpi-dev and rebuild; see docs/DISTRIBUTED.md)",
                             vars[i], e);
    }
    return FF_OK;
}
ff_status ff_dist_finalize(void) { return FF_OK; }

double ff_dist_set_timeout(double seconds) {
    double old = g_timeout < 0 ? timeout_from_env() : g_timeout;
    g_timeout = seconds;
    return old;
}

void ff_dist_abort(int code, const char *msg) {
    if (msg && *msg) fprintf(stderr, "fisherflow: %s\n", msg);
    exit(code);
}

ff_status ff_dist_allreduce_mean(float *x, int64_t n) {
    if (n < 0 || (n > 0 && !x)) return ff_errorf(FF_EINVAL, "ff_dist_allreduce_mean: bad block (%p, n=%lld)", (void *)x, (long long)n);
    return FF_OK;
}

ff_status ff_dist_allreduce_sum_f64(double *x, int64_t n) {
    if (n < 0 || (n > 0 && !x)) return ff_errorf(FF_EINVAL, "ff_dist_allreduce_sum_f64: bad block (%p, n=%lld)", (void *)x, (long long)n);
    return FF_OK;
}

ff_status ff_dist_barrier(void) { return FF_OK; }

ff_status ff_dist_gather_rows(float *dst, const float *send, int64_t rows, int64_t row_len, int all) {
    (void)all;
    if (rows < 0 || row_len < 1 || (rows > 0 && !send) || !dst)
        return ff_errorf(FF_EINVAL, "ff_dist_gather_rows: bad block (dst %p, send %p, rows=%lld, row_len=%lld)",
                         (void *)dst, (void *)send, (long long)rows, (long long)row_len);
    if (rows > 0 && dst != send) memmove(dst, send, (size_t)(rows * row_len) * sizeof(float));
    return FF_OK;
}

#endif
