/* plugins/coupler/exact_ot.c — the exact minibatch optimal-transport coupling (MATH.md training step
 * 2): the permutation minimising sum_i C[i, perm[i]], C[i, j] = sum_k theta_k(x1_i, x0_j)^2, solved
 * exactly as a linear assignment by shortest augmenting paths with potentials (Jonker & Volgenant
 * 1987, "A shortest augmenting path algorithm for dense and sparse linear assignment problems":
 * column reduction, reduction transfer, two passes of augmenting row reduction, then one Dijkstra
 * search per row still free), all in double. On low-dimensional continuous costs (the 2-simplex)
 * it starts the searches from the potentials of an epsilon-scaling auction instead (Bertsekas,
 * "The auction algorithm: a distributed relaxation method for the assignment problem", 1988).
 * Options: start = "auto" (default: chosen per batch, see lap_solve) | "columns" | "auction". Cost: O(k n^2 (d+1)) for the cost (one sgemm per position) + O(n^3) worst case for
 * the assignment (far less on random instances). Scratch is kept in the state and reused: no
 * allocation after the first call with a given n. Not thread-safe per instance. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/plugin.h>
#include "ot_cost.h"
#include "two_min.h"

typedef enum eot_start { START_AUTO, START_COLUMNS, START_AUCTION } eot_start;

typedef struct eot_state {
    ff_space space;
    eot_start start;
    ot_cost  cost;
    int64_t  cap;         /* n the arrays below hold */
    double  *v;           /* [n] column potentials                           */
    double  *dist;        /* [n] shortest-path distance to each column       */
    int32_t *pred;        /* [n] row preceding each column on the path       */
    int32_t *rowsol;      /* [n] row -> column                                */
    int32_t *colsol;      /* [n] column -> row, -1 when free                 */
    int32_t *cols;        /* [n] column order: scanned | at minimum | others */
    int32_t *freel;       /* [n] free rows (the auction's ring of bidders)   */
    int      auction_last; /* 1 when the last solve started from auction potentials */
} eot_state;

static void eot_destroy(void *state) {
    eot_state *s = state;
    if (!s) return;
    ot_cost_free(&s->cost);
    free(s->v); free(s->dist); free(s->pred); free(s->rowsol); free(s->colsol); free(s->cols); free(s->freel);
    free(s);
}

static ff_status eot_create(const ff_options *opts, const ff_space *space, void **state) {
    const char *start = "auto";
    if (opts) FF_TRY(ff_options_get_string(opts, "start", &start));   /* NULL: a direct call (bench) */
    eot_start st = !strcmp(start, "auto") ? START_AUTO : !strcmp(start, "columns") ? START_COLUMNS
                 : !strcmp(start, "auction") ? START_AUCTION : (eot_start)-1;
    if ((int)st < 0)
        return ff_errorf(FF_EINVAL, "coupler \"exact_ot\": option start is \"%s\", expected auto | columns | auction", start);
    eot_state *s = calloc(1, sizeof *s);
    if (!s) return ff_errorf(FF_ENOMEM, "coupler \"exact_ot\": out of memory");
    s->space = *space;
    s->start = st;
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
    int32_t *q = realloc(s->freel, (size_t)n * sizeof *q);      if (q) s->freel = q;
    if (!v || !d || !p || !r || !c || !o || !q)
        return ff_errorf(FF_ENOMEM, "coupler \"exact_ot\": cannot allocate scratch for n = %lld", (long long)n);
    s->cap = n;
    return FF_OK;
}

/* The solver runs in phases on the reduced costs C[i][j] - v[j], keeping the invariant of the
 * exact phase: reduced costs C[i][j] - u_i - v[j] >= 0 with u_i = C[i][rowsol[i]] - v[rowsol[i]]
 * for assigned rows (tight), so each search is Dijkstra on non-negative reduced costs.
 * Two ways to start: column reduction (cheap, Jonker & Volgenant), or potentials from an
 * epsilon-scaling auction (below). Column reduction is the faster start for one-hot data (many
 * identical rows, where an auction wages long bidding wars); on low-dimensional continuous costs
 * (the 2-simplex) it leaves most rows contending for a few columns and the augmenting paths then run
 * through most of the matrix (3.8 s at n = 2048, 32 s at 4096), where the auction start takes
 * 0.2 s and 1 s. lap_solve chooses between them after the cheap first phases. */

/* Column reduction: v[j] = min_i C[i][j] (u = 0); a column takes its argmin row if still free; then
 * reduction transfer: a row matched once hands its slack to its column, so its column stays a
 * minimum of the row's reduced costs. Returns the number of free rows, listed in freel. */
static int64_t start_column_reduction(eot_state *s, const double *C, int64_t n, int32_t *freel) {
    double *v = s->v;
    int32_t *rowsol = s->rowsol, *colsol = s->colsol;
    for (int64_t i = 0; i < n; i++) rowsol[i] = -1;
    for (int64_t j = 0; j < n; j++) { v[j] = INFINITY; colsol[j] = -1; }
    int32_t *argmin = s->pred;                   /* pred is free scratch here */
    for (int64_t i = 0; i < n; i++) {
        const double *row = C + i * n;
        for (int64_t j = 0; j < n; j++)
            if (row[j] < v[j]) { v[j] = row[j]; argmin[j] = (int32_t)i; }
    }
    double *matches = s->dist;                   /* how many columns chose row i */
    for (int64_t i = 0; i < n; i++) matches[i] = 0;
    for (int64_t j = n - 1; j >= 0; j--) {
        int32_t i = argmin[j];
        if (matches[i]++ == 0) { rowsol[i] = (int32_t)j; colsol[j] = i; }
    }
    int64_t nfree = 0;
    for (int64_t i = 0; i < n; i++) {
        if (matches[i] == 0) { freel[nfree++] = (int32_t)i; continue; }
        if (matches[i] != 1) continue;
        int32_t j1 = rowsol[i];
        const double *row = C + i * n;
        double m = INFINITY;
        for (int64_t j = 0; j < n; j++)
            if (j != j1 && row[j] - v[j] < m) m = row[j] - v[j];
        v[j1] -= m - (row[j1] - v[j1]);
    }
    return nfree;
}

/* Potentials from an epsilon-scaling auction (Bertsekas 1988, minimising form): a free row takes
 * the column of its smallest reduced cost and lowers that column's v by the gap to its second
 * smallest plus eps. Each phase frees every row and keeps v; eps shrinks by AUCTION_SHRINK per
 * phase from range/8 to AUCTION_EPS_MIN of the cost range. Only v is kept: every row is returned
 * free, and the exact phases below finish from these near-optimal potentials. A phase is bounded
 * (64 n bids), so floating-point ties cannot loop; the exact phases are correct from any v. */
#define AUCTION_SHRINK  6.0
#define AUCTION_EPS_MIN 1e-7
static int64_t start_auction(eot_state *s, const double *C, int64_t n, int32_t *freel) {
    double *v = s->v;
    int32_t *owner = s->colsol, *queue = freel;
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t e = 0; e < n * n; e++) { lo = C[e] < lo ? C[e] : lo; hi = C[e] > hi ? C[e] : hi; }
    for (int64_t j = 0; j < n; j++) v[j] = 0;
    double range = hi - lo, eps_min = AUCTION_EPS_MIN * range;
    for (double eps = range / 8; range > 0; eps /= AUCTION_SHRINK) {
        if (eps < eps_min) eps = eps_min;
        for (int64_t j = 0; j < n; j++) owner[j] = -1;
        for (int64_t i = 0; i < n; i++) queue[i] = (int32_t)i;
        int64_t head = 0, count = n, budget = 64 * n;     /* queue is a ring of the free rows */
        while (count > 0 && budget-- > 0) {
            int32_t i = queue[head];
            head = head + 1 == n ? 0 : head + 1;
            count--;
            two_min t = row_two_min(C + (int64_t)i * n, v, n);
            int64_t j1 = t.j1;
            v[j1] -= (t.u2 - t.u1) + eps;
            int32_t displaced = owner[j1];
            owner[j1] = i;
            if (displaced >= 0) {
                int64_t tail = head + count;
                queue[tail >= n ? tail - n : tail] = displaced;
                count++;
            }
        }
        if (eps <= eps_min) break;
    }
    for (int64_t i = 0; i < n; i++) { s->rowsol[i] = -1; freel[i] = (int32_t)i; }
    for (int64_t j = 0; j < n; j++) s->colsol[j] = -1;
    return n;
}

/* Augmenting row reduction, two passes (Jonker & Volgenant): a free row takes the column of its
 * smallest reduced cost, lowering that column's v to the second smallest; the row it displaces
 * continues at once when the gap was strict. Bounded by a step budget (floating-point ties).
 * Keeps the invariant; returns the rows still free, listed in freel. */
static int64_t row_reduction(eot_state *s, const double *C, int64_t n, int32_t *freel, int64_t nfree) {
    double *v = s->v;
    int32_t *rowsol = s->rowsol, *colsol = s->colsol;
    int64_t budget = 8 * n;
    for (int pass = 0; pass < 2; pass++) {
        int64_t k = 0, prev = nfree;
        nfree = 0;
        while (k < prev) {
            int32_t i = freel[k++];
            two_min t = row_two_min(C + (int64_t)i * n, v, n);
            double u1 = t.u1, u2 = t.u2;
            int32_t j1 = t.j1, j2 = t.j2;
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
    return nfree;
}

/* One shortest augmenting path (Dijkstra on reduced costs) per row of freel. */
static void augment(eot_state *s, const double *C, int64_t n, const int32_t *freel, int64_t nfree) {
    double *v = s->v, *dist = s->dist;
    int32_t *pred = s->pred, *rowsol = s->rowsol, *colsol = s->colsol, *cols = s->cols;
    for (int64_t q0 = 0; q0 < nfree; q0++) {
        int32_t f = freel[q0];
        const double *row = C + (int64_t)f * n;
        for (int64_t j = 0; j < n; j++) { dist[j] = row[j] - v[j]; pred[j] = f; cols[j] = (int32_t)j; }
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

/* How many distinct rows C has (rows compared by a 64-bit hash of their bits; a collision only
 * changes which start is chosen, never the result). hashes: [n] scratch. */
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}
static int64_t distinct_rows(const double *C, int64_t n, uint64_t *hashes) {
    for (int64_t i = 0; i < n; i++) {
        uint64_t h = 1469598103934665603ull;     /* FNV-1a over the row's 64-bit words */
        const double *row = C + i * n;
        for (int64_t j = 0; j < n; j++) {
            uint64_t w;
            memcpy(&w, &row[j], sizeof w);
            h = (h ^ w) * 1099511628211ull;
        }
        hashes[i] = h;
    }
    qsort(hashes, (size_t)n, sizeof *hashes, cmp_u64);
    int64_t d = n > 0;
    for (int64_t i = 1; i < n; i++) d += hashes[i] != hashes[i - 1];
    return d;
}

/* Minimum-cost assignment of rows to columns of the n x n matrix C (row-major): s->rowsol.
 * Starts by column reduction and row reduction. When a quarter of the rows or more are still free
 * then and the rows are mostly distinct (continuous data on a low-dimensional simplex: measured
 * 1,629 of 2,048 free on the 2-simplex, where the searches would run through most of the matrix),
 * it restarts from auction potentials; one-hot batches (many identical rows, where the auction is
 * the slower start) and batches that row reduction nearly solves (68 of 2,048 free at k = 4,
 * d+1 = 100) go straight to the searches. Option start forces one or the other. */
static void lap_solve(eot_state *s, const double *C, int64_t n) {
    s->auction_last = 0;
    if (n == 1) { s->rowsol[0] = 0; s->colsol[0] = 0; return; }
    int32_t *freel = s->freel;
    int64_t nfree = start_column_reduction(s, C, n, freel);
    nfree = row_reduction(s, C, n, freel, nfree);
    int auction = s->start == START_AUCTION ||
                  (s->start == START_AUTO && 4 * nfree >= n && 2 * distinct_rows(C, n, (uint64_t *)s->dist) >= n);
    if (auction) {
        nfree = start_auction(s, C, n, freel);
        nfree = row_reduction(s, C, n, freel, nfree);
        s->auction_last = 1;
    }
    augment(s, C, n, freel, nfree);
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
    .name = "exact_ot", .version = "1.1.0",
    .summary = "exact minibatch OT on squared geodesic distance (linear assignment, Jonker-Volgenant)",
    .options = (const ff_option_spec[]){
        { "start", FF_OPT_STRING, "auto",
          "how the exact solver starts: auto | columns (column reduction) | auction (epsilon-scaling auction potentials)" },
        { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
