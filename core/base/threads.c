/* threads.c — the thread count (threads.h): OpenBLAS's, and jobs side by side (ff_threads_run). */
#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/threads.h"

#define FF_THREADS_MAX 1024

ff_status ff_threads_set(int n) {
    if (n < 1 || n > FF_THREADS_MAX)
        return ff_errorf(FF_EINVAL, "ff_threads_set: %d threads, expected 1..%d", n, FF_THREADS_MAX);
    openblas_set_num_threads(n);
    return FF_OK;
}

int ff_threads_get(void) { return openblas_get_num_threads(); }

const char *ff_blas_corename(void) {
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

const char *ff_blas_version(void) {
    /* openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64" */
    static char version[32];
    const char *cfg = openblas_get_config();
    const char *p = cfg ? strstr(cfg, "OpenBLAS ") : NULL;
    if (!p) return "unknown";
    p += strlen("OpenBLAS ");
    size_t n = strcspn(p, " ");
    if (n == 0 || n >= sizeof version) return "unknown";
    memcpy(version, p, n);
    version[n] = '\0';
    return version;
}

typedef struct job_thread {
    void    (*job)(void *arg, int w);
    void     *arg;
    int       w, started;
    pthread_t th;
} job_thread;

static void *job_main(void *p) {
    job_thread *j = p;
    j->job(j->arg, j->w);
    return NULL;
}

void ff_threads_run(int n, void (*job)(void *arg, int w), void *arg) {
    if (n <= 1) { job(arg, 0); return; }
    job_thread *jt = calloc((size_t)n, sizeof *jt);
    if (!jt) {                                  /* no memory for the bookkeeping: one after another */
        for (int w = 0; w < n; w++) job(arg, w);
        return;
    }
    int threads = ff_threads_get();
    openblas_set_num_threads(1);
    for (int w = 1; w < n; w++) {
        jt[w] = (job_thread){ .job = job, .arg = arg, .w = w };
        jt[w].started = pthread_create(&jt[w].th, NULL, job_main, &jt[w]) == 0;
    }
    job(arg, 0);
    for (int w = 1; w < n; w++)
        if (!jt[w].started) job(arg, w);
    for (int w = 1; w < n; w++)
        if (jt[w].started) pthread_join(jt[w].th, NULL);
    openblas_set_num_threads(threads);
    free(jt);
}

ff_status ff_threads_parse(const char *text, const char *what, int *n) {
    if (!text || !what || !n) return ff_errorf(FF_EINVAL, "ff_threads_parse: NULL argument");
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno || v < 1 || v > FF_THREADS_MAX)
        return ff_errorf(FF_EINVAL, "%s: '%s' is not a thread count (an integer 1..%d)", what, text, FF_THREADS_MAX);
    *n = (int)v;
    return FF_OK;
}

void ff_threads_describe(char *buf, size_t size) {
    int n = ff_threads_get();
    snprintf(buf, size, "%d thread%s, OpenBLAS %s (%s)", n, n == 1 ? "" : "s", ff_blas_version(), ff_blas_corename());
}
