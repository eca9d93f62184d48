/* plugins/coupler/sinkhorn.c — entropic minibatch OT (log-domain Sinkhorn, Cuturi 2013; the stable
 * form of Peyre & Cuturi, Computational OT, sec. 4.4) on the cost of exact_ot (squared geodesic
 * distance summed over positions), then pairs drawn from the plan: for every x1 row i, the x0
 * index is drawn from row i of the plan, normalised (so perm may repeat an x0 index).
 * Options: eps (number, default 0.05) — RELATIVE: the regulariser is eps * mean(C) of the batch, so
 *          one value works for any k and d; iterations (int, default 1000) — at most this many
 *          Sinkhorn sweeps; tolerance (number, default 1e-6) — stop when the L1 error of the x1
 *          marginal, sum_i |plan_i. - 1/n|, is below it (the x0 marginal is exact after each sweep).
 *          Reaching `iterations` first is not an error: the plan is used as it is.
 * Cost: O(k n^2 (d+1)) for the cost + O(iterations n^2) exp/log. Scratch reused across calls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/plugin.h>
#include "ot_cost.h"

typedef struct sk_state {
    ff_space space;
    double   eps_rel, tol;
    int64_t  iters;
    ot_cost  cost;
    int64_t  cap;
    double  *f, *g;       /* [n] potentials of x1 rows and x0 columns */
    double  *fn;          /* [n] next f                                */
    double  *cmax, *csum; /* [n] column log-sum-exp accumulators       */
    double   eps;         /* absolute regulariser of the last solve    */
    int64_t  last_iters;  /* sweeps used by the last solve             */
    double   last_err;    /* x1-marginal L1 error of the last solve    */
} sk_state;

static void sk_destroy(void *state) {
    sk_state *s = state;
    if (!s) return;
    ot_cost_free(&s->cost);
    free(s->f); free(s->g); free(s->fn); free(s->cmax); free(s->csum);
    free(s);
}

static ff_status sk_create(const ff_options *opts, const ff_space *space, void **state) {
    double eps, tol;
    int64_t iters;
    FF_TRY(ff_options_get_number(opts, "eps", &eps));
    FF_TRY(ff_options_get_int(opts, "iterations", &iters));
    FF_TRY(ff_options_get_number(opts, "tolerance", &tol));
    if (!(eps > 0) || !isfinite(eps))
        return ff_errorf(FF_EINVAL, "coupler \"sinkhorn\": option \"eps\" must be > 0 (got %g)", eps);
    if (iters < 1)
        return ff_errorf(FF_EINVAL, "coupler \"sinkhorn\": option \"iterations\" must be >= 1 (got %lld)", (long long)iters);
    if (!(tol >= 0) || !isfinite(tol))
        return ff_errorf(FF_EINVAL, "coupler \"sinkhorn\": option \"tolerance\" must be >= 0 (got %g)", tol);
    sk_state *s = calloc(1, sizeof *s);
    if (!s) return ff_errorf(FF_ENOMEM, "coupler \"sinkhorn\": out of memory");
    s->space = *space;
    s->eps_rel = eps; s->tol = tol; s->iters = iters;
    *state = s;
    return FF_OK;
}

static ff_status grow(sk_state *s, int64_t n) {
    if (n <= s->cap) return FF_OK;
    double **arr[] = { &s->f, &s->g, &s->fn, &s->cmax, &s->csum };
    for (size_t a = 0; a < sizeof arr / sizeof arr[0]; a++) {
        double *p = realloc(*arr[a], (size_t)n * sizeof(double));
        if (!p) return ff_errorf(FF_ENOMEM, "coupler \"sinkhorn\": cannot allocate scratch for n = %lld", (long long)n);
        *arr[a] = p;
    }
    s->cap = n;
    return FF_OK;
}

/* f_i <- eps log(1/n) - eps LSE_j((g_j - C_ij)/eps), into out. */
static void update_rows(const double *C, int64_t n, double eps, const double *g, double *out) {
    double la = -log((double)n);
    for (int64_t i = 0; i < n; i++) {
        const double *row = C + i * n;
        double m = -INFINITY;
        for (int64_t j = 0; j < n; j++) { double z = g[j] - row[j]; if (z > m) m = z; }
        double sum = 0;
        for (int64_t j = 0; j < n; j++) sum += exp((g[j] - row[j] - m) / eps);
        out[i] = eps * la - m - eps * log(sum);
    }
}

/* g_j <- eps log(1/n) - eps LSE_i((f_i - C_ij)/eps), scanning C by rows (cache-friendly). */
static void update_cols(sk_state *s, const double *C, int64_t n, double eps) {
    double la = -log((double)n), *m = s->cmax, *sum = s->csum;
    for (int64_t j = 0; j < n; j++) { m[j] = -INFINITY; sum[j] = 0; }
    for (int64_t i = 0; i < n; i++) {
        const double *row = C + i * n;
        for (int64_t j = 0; j < n; j++) { double z = s->f[i] - row[j]; if (z > m[j]) m[j] = z; }
    }
    for (int64_t i = 0; i < n; i++) {
        const double *row = C + i * n;
        for (int64_t j = 0; j < n; j++) sum[j] += exp((s->f[i] - row[j] - m[j]) / eps);
    }
    for (int64_t j = 0; j < n; j++) s->g[j] = eps * la - m[j] - eps * log(sum[j]);
}

static ff_status solve(sk_state *s, const ff_tensor_t *x0, const ff_tensor_t *x1) {
    FF_TRY(ot_check_pair("coupler \"sinkhorn\"", x0, x1, &s->space));
    int64_t n = x0->shape[0];
    if (n == 0) return FF_OK;
    FF_TRY(grow(s, n));
    FF_TRY(ot_cost_build(&s->cost, "coupler \"sinkhorn\"", x0, x1));
    const double *C = s->cost.C;
    double mean = 0;
    for (int64_t e = 0; e < n * n; e++) mean += C[e];
    mean /= (double)(n * n);
    double eps = s->eps_rel * (mean > 0 ? mean : 1.0);
    s->eps = eps;
    for (int64_t j = 0; j < n; j++) s->g[j] = 0;
    update_rows(C, n, eps, s->g, s->f);
    update_cols(s, C, n, eps);
    int64_t it = 1;
    double err = INFINITY;
    for (; it < s->iters; it++) {
        /* The row sums of the current plan are (1/n) exp((f_i - fn_i)/eps): measure, then update. */
        update_rows(C, n, eps, s->g, s->fn);
        err = 0;
        for (int64_t i = 0; i < n; i++) err += fabs(exp((s->f[i] - s->fn[i]) / eps) - 1.0) / (double)n;
        if (!isfinite(err))
            return ff_errorf(FF_ENUMERIC, "coupler \"sinkhorn\": the iteration diverged at sweep %lld (eps = %g)",
                             (long long)it, eps);
        if (err <= s->tol) break;
        memcpy(s->f, s->fn, (size_t)n * sizeof(double));
        update_cols(s, C, n, eps);
    }
    s->last_iters = it;
    s->last_err = err;
    return FF_OK;
}

static ff_status sk_pair(void *state, const ff_tensor_t *x0, const ff_tensor_t *x1, ff_rng_t *rng, int32_t *perm) {
    sk_state *s = state;
    if (!perm || !rng) return ff_errorf(FF_EINVAL, "coupler \"sinkhorn\": perm or rng is NULL");
    FF_TRY(solve(s, x0, x1));
    int64_t n = x0->shape[0];
    double *w = s->fn;                          /* scratch: the unnormalised row of the plan */
    for (int64_t i = 0; i < n; i++) {
        const double *row = s->cost.C + i * n;
        double m = -INFINITY, total = 0;
        for (int64_t j = 0; j < n; j++) { double z = s->g[j] - row[j]; if (z > m) m = z; }
        for (int64_t j = 0; j < n; j++) { w[j] = exp((s->g[j] - row[j] - m) / s->eps); total += w[j]; }
        double u = ff_rng_uniform(rng) * total, acc = 0;
        int32_t pick = -1;
        for (int64_t j = 0; j < n; j++) {
            if (w[j] > 0) pick = (int32_t)j;
            acc += w[j];
            if (u < acc) break;
        }
        perm[i] = pick;                          /* w at the row maximum is 1, so pick >= 0 */
    }
    return FF_OK;
}

static ff_status sk_plan(void *state, const ff_tensor_t *x0, const ff_tensor_t *x1, ff_tensor_t *out) {
    sk_state *s = state;
    char buf[64];
    FF_TRY(ot_check_pair("coupler \"sinkhorn\"", x0, x1, &s->space));
    int64_t n = x0->shape[0];
    if (!out || out->ndim != 2 || out->shape[0] != n || out->shape[1] != n)
        return ff_errorf(FF_ESHAPE, "coupler \"sinkhorn\": plan out is [%s], expected [%lld, %lld]",
                         out ? ff_shape_str(out, buf, sizeof buf) : "NULL", (long long)n, (long long)n);
    FF_TRY(solve(s, x0, x1));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            out->data[i * out->stride[0] + j * out->stride[1]] =
                (float)exp((s->f[i] + s->g[j] - s->cost.C[i * n + j]) / s->eps);
    return FF_OK;
}

static const ff_coupler_vtable vtable = {
    .create = sk_create, .pair = sk_pair, .destroy = sk_destroy, .plan = sk_plan,
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_COUPLER, .vtable_size = sizeof vtable,
    .name = "sinkhorn", .version = "1.0.0",
    .summary = "entropic minibatch OT (log-domain Sinkhorn, eps relative to the mean cost); pairs drawn from the plan",
    .options = (const ff_option_spec[]){
        { "eps",        FF_OPT_NUMBER, "0.05", "entropic regulariser, relative to the batch's mean cost" },
        { "iterations", FF_OPT_INT,    "1000", "maximum Sinkhorn sweeps" },
        { "tolerance",  FF_OPT_NUMBER, "1e-6", "stop when the L1 marginal error is below this" },
        { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
