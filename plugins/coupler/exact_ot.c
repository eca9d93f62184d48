/* plugins/coupler/exact_ot.c — the exact minibatch optimal-transport coupling (MATH.md training step
 * 2): the permutation minimising sum_i C[i, perm[i]], C[i, j] = sum_k theta_k(x1_i, x0_j)^2, solved
 * exactly as a linear assignment by shortest augmenting paths with potentials (Jonker & Volgenant
 * 1987, "A shortest augmenting path algorithm for dense and sparse linear assignment problems":
 * column reduction, reduction transfer, two passes of augmenting row reduction, then one Dijkstra
 * search per row still free), all in double.
 * Options: none. Cost: O(k n^2 (d+1)) for the cost (one sgemm per position) + O(n^3) worst case for
 * the assignment (far less on random instances). Scratch is kept in the state and reused: no
 * allocation after the first call with a given n. Not thread-safe per instance. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/plugin.h>
#include "ot_cost.h"

typedef struct eot_state {
    ff_space space;
    ot_cost  cost;
    int64_t  cap;         /* n the arrays below hold */
    double  *v;           /* [n] column potentials                           */
    double  *dist;        /* [n] shortest-path distance to each column       */
    int32_t *pred;        /* [n] row preceding each column on the path       */
    int32_t *rowsol;      /* [n] row -> column                                */
    int32_t *colsol;      /* [n] column -> row, -1 when free                 */
    int32_t *cols;        /* [n] column order: scanned | at minimum | others */
} eot_state;

static void eot_destroy(void *state) {
    eot_state *s = state;
    if (!s) return;
    ot_cost_free(&s->cost);
    free(s->v); free(s->dist); free(s->pred); free(s->rowsol); free(s->colsol); free(s->cols);
    free(s);
}

static ff_status eot_create(const ff_options *opts, const ff_space *space, void **state) {
    (void)opts;
    eot_state *s = calloc(1, sizeof *s);
    if (!s) return ff_errorf(FF_ENOMEM, "coupler \"exact_ot\": out of memory");
    s->space = *space;
    *state = s;
    return FF_OK;
}

static ff_status grow(eot_state *s, int64_t n) {
    if (n <= s->cap) return FF_OK;
    double *v = realloc(s->v, (size_t)n * sizeof *v);           if (v) s->v = v;
    double *d = realloc(s->dist, (size_t)n * sizeof *d);        if (d) s->dist = d;
    int32_t *p = realloc(s->pred, (size_t)n * sizeof *p);       if (p) s->pred = p;
    int32_t *r = realloc(s->rowsol, (size_t)n * sizeof *r);     if (r) s->rowsol = r;
    int32_t *c = realloc(s->colsol, (size_t)n * sizeof *c);     if (c) s->colsol = c;
    int32_t *o = realloc(s->cols, (size_t)n * sizeof *o);       if (o) s->cols = o;
    if (!v || !d || !p || !r || !c || !o)
        return ff_errorf(FF_ENOMEM, "coupler \"exact_ot\": cannot allocate scratch for n = %lld", (long long)n);
    s->cap = n;
    return FF_OK;
}

/* Minimum-cost assignment of rows to columns of the n x n matrix C (row-major).
 * Invariant: reduced costs C[i][j] - u_i - v[j] >= 0 with u_i = C[i][rowsol[i]] - v[rowsol[i]]
 * for assigned rows (tight), so each search is Dijkstra on non-negative reduced costs. */
static void lap_solve(eot_state *s, const double *C, int64_t n) {
    double *v = s->v, *dist = s->dist;
    int32_t *pred = s->pred, *rowsol = s->rowsol, *colsol = s->colsol, *cols = s->cols;
    for (int64_t i = 0; i < n; i++) rowsol[i] = -1;
    /* Column reduction: v[j] = min_i C[i][j] (u = 0); a column takes its argmin row if still free. */
    if (n == 1) { rowsol[0] = 0; colsol[0] = 0; return; }
    for (int64_t j = 0; j < n; j++) { v[j] = INFINITY; colsol[j] = -1; }
    int32_t *argmin = pred;                      /* pred is free scratch here */
    for (int64_t i = 0; i < n; i++) {
        const double *row = C + i * n;
        for (int64_t j = 0; j < n; j++)
            if (row[j] < v[j]) { v[j] = row[j]; argmin[j] = (int32_t)i; }
    }
    /* matches[i] = how many columns chose row i (kept in dist, unused until the searches). */
    double *matches = dist;
    for (int64_t i = 0; i < n; i++) matches[i] = 0;
    for (int64_t j = n - 1; j >= 0; j--) {
        int32_t i = argmin[j];
        if (matches[i]++ == 0) { rowsol[i] = (int32_t)j; colsol[j] = i; }
    }
    /* Reduction transfer: a row matched once hands its slack to its column, so its column stays a
     * minimum of the row's reduced costs C[i][j] - v[j]. */
    int32_t *freel = s->cols;                    /* cols is scratch until the searches */
    int64_t nfree = 0;
    for (int64_t i = 0; i < n; i++) {
        if (matches[i] == 0) { freel[nfree++] = (int32_t)i; continue; }
        if (matches[i] != 1 || n == 1) continue;
        int32_t j1 = rowsol[i];
        const double *row = C + i * n;
        double m = INFINITY;
        for (int64_t j = 0; j < n; j++)
            if (j != j1 && row[j] - v[j] < m) m = row[j] - v[j];
        v[j1] -= m - (row[j1] - v[j1]);
    }
    /* Augmenting row reduction, two passes (Jonker & Volgenant): a free row takes the column of its
     * smallest reduced cost, lowering that column's v to the second smallest; the row it displaces
     * continues at once when the gap was strict. Bounded by a step budget (floating-point ties). */
    int64_t budget = 8 * n;
    for (int pass = 0; pass < 2 && n > 1; pass++) {
        int64_t k = 0, prev = nfree;
        nfree = 0;
        while (k < prev) {
            int32_t i = freel[k++];
            const double *row = C + (int64_t)i * n;
            double u1 = row[0] - v[0], u2 = INFINITY;
            int32_t j1 = 0, j2 = -1;
            for (int64_t j = 1; j < n; j++) {
                double h = row[j] - v[j];
                if (h < u2) {
                    if (h >= u1) { u2 = h; j2 = (int32_t)j; }
                    else { u2 = u1; j2 = j1; u1 = h; j1 = (int32_t)j; }
                }
            }
            int32_t i0 = colsol[j1];
            int strict = u1 < u2;
            if (strict) v[j1] -= u2 - u1;
            else if (i0 >= 0) { j1 = j2; i0 = colsol[j2]; }
            if (i0 >= 0) rowsol[i0] = -1;
            rowsol[i] = j1;
            colsol[j1] = i;
            if (i0 >= 0) {
                if (strict && --budget > 0) freel[--k] = i0;   /* continue with the displaced row */
                else freel[nfree++] = i0;
            }
        }
    }
    /* One shortest augmenting path per row still free. */
    for (int64_t f = 0; f < n; f++) {
        if (rowsol[f] >= 0) continue;
        const double *row = C + f * n;
        for (int64_t j = 0; j < n; j++) { dist[j] = row[j] - v[j]; pred[j] = (int32_t)f; cols[j] = (int32_t)j; }
        int64_t lo = 0, hi = 0;                  /* cols[0,lo) scanned, [lo,hi) at distance mu */
        int32_t end = -1;
        double mu = 0;
        while (end < 0) {
            if (lo == hi) {                      /* collect the columns at the new minimum */
                mu = dist[cols[hi]];
                for (int64_t q = hi; q < n; q++) {
                    int32_t j = cols[q];
                    if (dist[j] <= mu) {
                        if (dist[j] < mu) { hi = lo; mu = dist[j]; }
                        cols[q] = cols[hi]; cols[hi++] = j;
                    }
                }
                for (int64_t q = lo; q < hi; q++)
                    if (colsol[cols[q]] < 0) { end = cols[q]; break; }
                if (end >= 0) break;
            }
            int32_t j1 = cols[lo++], i = colsol[j1];
            const double *ri = C + (int64_t)i * n;
            double h = ri[j1] - v[j1] - mu;      /* u_i - mu */
            for (int64_t q = hi; q < n; q++) {
                int32_t j = cols[q];
                double red = ri[j] - v[j] - h;
                if (red < dist[j]) {
                    dist[j] = red;
                    pred[j] = i;
                    if (red == mu) {
                        if (colsol[j] < 0) { end = j; break; }
                        cols[q] = cols[hi]; cols[hi++] = j;
                    }
                }
            }
        }
        for (int64_t q = 0; q < lo; q++) {       /* scanned columns: keep reduced costs >= 0 */
            int32_t j = cols[q];
            v[j] += dist[j] - mu;
        }
        for (int32_t j = end;;) {                /* flip the path back to f */
            int32_t i = pred[j];
            colsol[j] = i;
            int32_t next = rowsol[i];
            rowsol[i] = j;
            j = next;
            if (i == f) break;
        }
    }
}

static ff_status solve(eot_state *s, const ff_tensor_t *x0, const ff_tensor_t *x1) {
    FF_TRY(ot_check_pair("coupler \"exact_ot\"", x0, x1, &s->space));
    int64_t n = x0->shape[0];
    if (n == 0) return FF_OK;
    FF_TRY(grow(s, n));
    FF_TRY(ot_cost_build(&s->cost, "coupler \"exact_ot\"", x0, x1));
    lap_solve(s, s->cost.C, n);
    return FF_OK;
}

static ff_status eot_pair(void *state, const ff_tensor_t *x0, const ff_tensor_t *x1, ff_rng_t *rng, int32_t *perm) {
    (void)rng;
    eot_state *s = state;
    if (!perm) return ff_errorf(FF_EINVAL, "coupler \"exact_ot\": perm is NULL");
    FF_TRY(solve(s, x0, x1));
    for (int64_t i = 0; i < x1->shape[0]; i++) perm[i] = s->rowsol[i];
    return FF_OK;
}

static ff_status eot_plan(void *state, const ff_tensor_t *x0, const ff_tensor_t *x1, ff_tensor_t *out) {
    eot_state *s = state;
    char buf[64];
    FF_TRY(ot_check_pair("coupler \"exact_ot\"", x0, x1, &s->space));
    int64_t n = x0->shape[0];
    if (!out || out->ndim != 2 || out->shape[0] != n || out->shape[1] != n)
        return ff_errorf(FF_ESHAPE, "coupler \"exact_ot\": plan out is [%s], expected [%lld, %lld]",
                         out ? ff_shape_str(out, buf, sizeof buf) : "NULL", (long long)n, (long long)n);
    FF_TRY(solve(s, x0, x1));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            out->data[i * out->stride[0] + j * out->stride[1]] = s->rowsol[i] == j ? (float)(1.0 / (double)n) : 0.0f;
    return FF_OK;
}

static const ff_coupler_vtable vtable = {
    .create = eot_create, .pair = eot_pair, .destroy = eot_destroy, .plan = eot_plan,
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_COUPLER, .vtable_size = sizeof vtable,
    .name = "exact_ot", .version = "1.0.0",
    .summary = "exact minibatch OT on squared geodesic distance (linear assignment, Jonker-Volgenant)",
    .options = (const ff_option_spec[]){ { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
