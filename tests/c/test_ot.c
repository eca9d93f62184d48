/* test_ot.c — the OT couplers, loaded through the loader. exact_ot against brute force over all
 * permutations (n <= 7) and, at n = 512, against an independently written O(n^3) Hungarian solver
 * (row-by-row, e-maxx formulation) on a cost computed here in double with a different angle formula
 * (theta = 2 asin(|x - y| / 2)). sinkhorn: plan marginals, the monotone approach of <plan, C> to the
 * exact optimum as eps -> 0, and sampled pairs against the plan's conditionals. */
#include <math.h>
#include <stdlib.h>
#include "ff_test.h"
#include "fisherflow/fisherflow.h"
#include "../../plugins/coupler/ot_cost.h"   /* the cost builder itself, for its one-hot path */
#include "../../plugins/coupler/two_min.h"   /* the solver's row scan */

/* --- allocation counting ----------------------------------------------------------------------
 * Outside sanitizer builds this executable interposes malloc/calloc/realloc (the dynamic linker
 * resolves the plugins' calls to them here), so a test can prove that steady-state pair() calls do
 * not allocate. ASan must own malloc, so the sanitizer build leaves the allocator alone and the test
 * below is compiled only without it. */
#if defined(__SANITIZE_ADDRESS__)
#define FF_COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FF_COUNT_ALLOCS 0
#endif
#endif
#ifndef FF_COUNT_ALLOCS
#define FF_COUNT_ALLOCS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static volatile long n_allocs;
static volatile int counting;
void *malloc(size_t n) { if (counting) n_allocs++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { if (counting) n_allocs++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { if (counting) n_allocs++; return __libc_realloc(p, n); }
#endif

/* --- inputs and the reference cost ----------------------------------------------------------- */


static void fill_one_hot(ff_rng_t *r, ff_tensor_t *x) {
    int64_t rows = x->shape[0] * x->shape[1], D = x->shape[2];
    for (int64_t q = 0; q < rows; q++) {
        float *p = x->data + q * D;
        for (int64_t c = 0; c < D; c++) p[c] = 0;
        p[ff_rng_below(r, (uint64_t)D)] = 1;
    }
}

/* C[i][j] = sum_k theta(x1_i, x0_j)^2 with theta = 2 asin(|x - y| / 2) (chord formula). */
static double *ref_cost(const ff_tensor_t *x0, const ff_tensor_t *x1) {
    int64_t n = x0->shape[0], k = x0->shape[1], D = x0->shape[2];
    double *C = malloc((size_t)(n * n) * sizeof *C);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double c = 0;
            for (int64_t p = 0; p < k; p++) {
                const float *a = x1->data + (i * k + p) * D, *b = x0->data + (j * k + p) * D;
                double na = 0, nb = 0, d2 = 0;
                for (int64_t e = 0; e < D; e++) { na += (double)a[e] * a[e]; nb += (double)b[e] * b[e]; }
                na = sqrt(na); nb = sqrt(nb);
                for (int64_t e = 0; e < D; e++) { double t = a[e] / na - b[e] / nb; d2 += t * t; }
                double h = sqrt(d2) / 2;
                double th = 2 * asin(h > 1 ? 1 : h);
                c += th * th;
            }
            C[i * n + j] = c;
        }
    return C;
}

static double perm_cost(const double *C, const int32_t *perm, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += C[i * n + perm[i]];
    return s;
}

static int is_perm(const int32_t *p, int64_t n) {
    char *seen = calloc((size_t)n + 1, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]]) ok = 0;
        else seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

/* --- brute force ----------------------------------------------------------------------------- */

static void brute(const double *C, int n, int *cur, int depth, unsigned used, double acc, double *best) {
    if (acc >= *best) return;
    if (depth == n) { *best = acc; return; }
    for (int j = 0; j < n; j++)
        if (!(used & (1u << j))) {
            cur[depth] = j;
            brute(C, n, cur, depth + 1, used | (1u << j), acc + C[depth * n + j], best);
        }
}

/* --- Hungarian, O(n^3): rows added one at a time, potentials u (rows) and v (columns), a virtual
 * column 0; 1-based as in the classical formulation. Returns the optimal cost; assign[i] = column. */
static double hungarian(const double *C, int n, int *assign) {
    double *u = calloc((size_t)n + 1, sizeof *u), *v = calloc((size_t)n + 1, sizeof *v);
    double *minv = malloc(((size_t)n + 1) * sizeof *minv);
    int *p = calloc((size_t)n + 1, sizeof *p), *way = calloc((size_t)n + 1, sizeof *way);
    char *used = malloc((size_t)n + 1);
    for (int i = 1; i <= n; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= n; j++) { minv[j] = INFINITY; used[j] = 0; }
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = INFINITY;
            for (int j = 1; j <= n; j++)
                if (!used[j]) {
                    double cur = C[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                    if (cur < minv[j]) { minv[j] = cur; way[j] = j0; }
                    if (minv[j] < delta) { delta = minv[j]; j1 = j; }
                }
            for (int j = 0; j <= n; j++) {
                if (used[j]) { u[p[j]] += delta; v[j] -= delta; }
                else minv[j] -= delta;
            }
            j0 = j1;
        } while (p[j0] != 0);
        do { int j1 = way[j0]; p[j0] = p[j1]; j0 = j1; } while (j0);
    }
    double total = 0;
    for (int j = 1; j <= n; j++) { assign[p[j] - 1] = j - 1; total += C[(p[j] - 1) * n + (j - 1)]; }
    free(u); free(v); free(minv); free(p); free(way); free(used);
    return total;
}

/* --- plugin access ---------------------------------------------------------------------------- */

static ff_plugin_inst *coupler(const char *name, const ff_options *o) {
    ff_plugin_inst *inst = NULL;
    if (ff_plugin_new(&inst, FF_PLUGIN_COUPLER, name, o, NULL, NULL, NULL) != FF_OK)
        fprintf(stderr, "cannot load coupler %s: %s\n", name, ff_last_error());
    return inst;
}

static ff_status pair(ff_plugin_inst *c, const ff_tensor_t *x0, const ff_tensor_t *x1, ff_rng_t *r, int32_t *perm) {
    return ((const ff_coupler_vtable *)c->desc->vtable)->pair(c->state, x0, x1, r, perm);
}

static ff_status plan(ff_plugin_inst *c, const ff_tensor_t *x0, const ff_tensor_t *x1, ff_tensor_t *P) {
    return ((const ff_coupler_vtable *)c->desc->vtable)->plan(c->state, x0, x1, P);
}

/* --- exact_ot --------------------------------------------------------------------------------- */

FF_TEST(exact_ot_vs_brute_force) {
    ff_plugin_inst *ot = coupler("exact_ot", NULL);
    if (!ot) { FF_EXPECT(0, "load"); return; }
    ff_rng_t rng;
    ff_rng_seed(&rng, 2024);
    int cases = 0;
    for (int n = 1; n <= 7; n++)
        for (int rep = 0; rep < 6; rep++) {
            int k = 1 + rep % 3, D = (int[]){ 2, 3, 5 }[rep % 3];
            ff_tensor_t *x0 = NULL, *x1 = NULL;
            ff_tensor_new3(&x0, n, k, D);
            ff_tensor_new3(&x1, n, k, D);
            ff_test_fill_sphere(x0, &rng);
            if (rep % 2) fill_one_hot(&rng, x1); else ff_test_fill_sphere(x1, &rng);
            if (rep == 5 && n > 2)                          /* duplicated rows: tied optima */
                memcpy(x1->data, x1->data + k * D, (size_t)(k * D) * sizeof(float));
            double *C = ref_cost(x0, x1);
            int32_t perm[7];
            int cur[7];
            double best = INFINITY;
            brute(C, n, cur, 0, 0, 0, &best);
            FF_EXPECT(pair(ot, x0, x1, NULL, perm) == FF_OK, "%s", ff_last_error());
            FF_EXPECT(is_perm(perm, n), "n=%d rep=%d not a permutation", n, rep);
            if (is_perm(perm, n)) {
                double got = perm_cost(C, perm, n);
                FF_EXPECT(fabs(got - best) <= 1e-5 * (1 + best), "n=%d k=%d rep=%d: cost %.9g, optimum %.9g",
                          n, k, rep, got, best);
            }
            cases++;
            free(C);
            ff_tensor_free(x0); ff_tensor_free(x1);
        }
    FF_EXPECT(cases == 42, "cases %d", cases);
    ff_plugin_free(ot);
}

static void large_case(ff_plugin_inst *ot, ff_rng_t *rng, int n, int k, int D, int one_hot) {
    ff_tensor_t *x0 = NULL, *x1 = NULL;
    ff_tensor_new3(&x0, n, k, D);
    ff_tensor_new3(&x1, n, k, D);
    ff_test_fill_sphere(x0, rng);
    if (one_hot) fill_one_hot(rng, x1); else ff_test_fill_sphere(x1, rng);
    double *C = ref_cost(x0, x1);
    int *ref = malloc((size_t)n * sizeof *ref);
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    double opt = hungarian(C, n, ref);
    int32_t *rp = malloc((size_t)n * sizeof *rp);
    for (int i = 0; i < n; i++) rp[i] = ref[i];
    FF_EXPECT(is_perm(rp, n) && fabs(perm_cost(C, rp, n) - opt) < 1e-9 * opt, "the reference solver is consistent");
    FF_EXPECT(pair(ot, x0, x1, NULL, perm) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(is_perm(perm, n), "n=%d: not a permutation", n);
    if (is_perm(perm, n)) {
        double got = perm_cost(C, perm, n);
        printf("  n=%d k=%d D=%d one_hot=%d: exact_ot %.10g, Hungarian %.10g\n", n, k, D, one_hot, got, opt);
        FF_EXPECT(fabs(got - opt) <= 1e-6 * opt, "n=%d k=%d D=%d one_hot=%d: cost %.10g, Hungarian %.10g (rel %.2g)",
                  n, k, D, one_hot, got, opt, fabs(got - opt) / opt);
        /* the identity pairing is far worse: the comparison has teeth */
        int32_t *id = malloc((size_t)n * sizeof *id);
        for (int i = 0; i < n; i++) id[i] = i;
        FF_EXPECT(perm_cost(C, id, n) > opt * 1.05, "identity %.6g vs optimum %.6g", perm_cost(C, id, n), opt);
        free(id);
    }
    free(C); free(ref); free(perm); free(rp);
    ff_tensor_free(x0); ff_tensor_free(x1);
}

FF_TEST(exact_ot_vs_hungarian_512) {
    ff_plugin_inst *ot = coupler("exact_ot", NULL);
    if (!ot) { FF_EXPECT(0, "load"); return; }
    ff_rng_t rng;
    ff_rng_seed(&rng, 77);
    large_case(ot, &rng, 512, 4, 20, 0);    /* both sides spread over the sphere            */
    large_case(ot, &rng, 512, 4, 20, 1);    /* one-hot data: many tied rows                 */
    large_case(ot, &rng, 300, 2, 3, 0);     /* a different n on the same instance (regrow)  */
    large_case(ot, &rng, 512, 1, 100, 1);   /* back to 512                                   */
    ff_plugin_free(ot);
}

/* The solver's two starts (column reduction, auction potentials) and the automatic choice between
 * them, on the continuous 2-simplex batches where the choice matters (the auction start is taken
 * there) and on one-hot data (the column start is taken); each against the Hungarian optimum. */
FF_TEST(exact_ot_starts_vs_hungarian) {
    const char *starts[] = { "auto", "columns", "auction" };
    for (int q = 0; q < 3; q++) {
        ff_options *o = NULL;
        ff_options_new(&o);
        ff_options_set_string(o, "start", starts[q]);
        ff_plugin_inst *ot = coupler("exact_ot", o);
        ff_options_free(o);
        if (!ot) { FF_EXPECT(0, "load start=%s", starts[q]); continue; }
        ff_rng_t rng;
        ff_rng_seed(&rng, 91 + q);
        printf("  start=%s\n", starts[q]);
        large_case(ot, &rng, 512, 1, 3, 0);     /* the 2-simplex: low-dimensional continuous costs */
        large_case(ot, &rng, 384, 1, 20, 1);    /* one-hot with 20 symbols: 20 distinct rows       */
        large_case(ot, &rng, 256, 3, 4, 0);
        ff_plugin_free(ot);
    }
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_string(o, "start", "hungarian");
    ff_plugin_inst *bad = NULL;
    FF_EXPECT_ERROR(ff_plugin_new(&bad, FF_PLUGIN_COUPLER, "exact_ot", o, NULL, NULL, NULL), FF_EINVAL,
                    "coupler \"exact_ot\": option start is \"hungarian\", expected auto | columns | auction");
    ff_options_free(o);
}

FF_TEST(exact_ot_strided_and_bad_input) {
    ff_plugin_inst *ot = coupler("exact_ot", NULL);
    if (!ot) { FF_EXPECT(0, "load"); return; }
    ff_rng_t rng;
    ff_rng_seed(&rng, 5);
    int n = 6, k = 2, D = 3;
    ff_tensor_t *x0 = NULL, *x1 = NULL, *b0 = NULL, *b1 = NULL, *v0 = NULL, *v1 = NULL;
    ff_tensor_new3(&x0, n, k, D);
    ff_tensor_new3(&x1, n, k, D);
    ff_test_fill_sphere(x0, &rng);
    ff_test_fill_sphere(x1, &rng);
    /* the same data as [n, D, k] bases viewed through a transpose: last stride k, not 1 */
    ff_tensor_new3(&b0, n, D, k);
    ff_tensor_new3(&b1, n, D, k);
    ff_tensor_transpose(&v0, b0, 1, 2);
    ff_tensor_transpose(&v1, b1, 1, 2);
    ff_tensor_copy(v0, x0);
    ff_tensor_copy(v1, x1);
    FF_EXPECT(v0->stride[2] == k, "strided view");
    int32_t p1[6], p2[6];
    FF_EXPECT(pair(ot, x0, x1, NULL, p1) == FF_OK && pair(ot, v0, v1, NULL, p2) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(!memcmp(p1, p2, sizeof p1), "strided input gives the same pairing");
    x0->data[4] = NAN;
    FF_EXPECT_ERROR(pair(ot, x0, x1, NULL, p1), FF_ENUMERIC, "coupler \"exact_ot\": non-finite input");
    ff_tensor_t *small = NULL;
    ff_tensor_new3(&small, n, k, D + 1);
    FF_EXPECT_ERROR(pair(ot, small, x1, NULL, p1), FF_ESHAPE, "coupler \"exact_ot\": x0 [6,2,4] and x1 [6,2,3]");
    ff_tensor_t *empty0 = NULL, *empty1 = NULL;
    ff_tensor_new3(&empty0, 0, k, D);
    ff_tensor_new3(&empty1, 0, k, D);
    FF_EXPECT(pair(ot, empty0, empty1, NULL, p1) == FF_OK, "n = 0 is a no-op");
    ff_tensor_free(x0); ff_tensor_free(x1); ff_tensor_free(b0); ff_tensor_free(b1);
    ff_tensor_free(v0); ff_tensor_free(v1); ff_tensor_free(small); ff_tensor_free(empty0); ff_tensor_free(empty1);
    ff_plugin_free(ot);
}

#if FF_COUNT_ALLOCS
FF_TEST(no_allocation_after_the_first_call) {
    const char *names[] = { "exact_ot", "sinkhorn" };
    ff_rng_t rng;
    ff_rng_seed(&rng, 4);
    ff_tensor_t *x0 = NULL, *x1 = NULL, *big0 = NULL, *big1 = NULL;
    ff_tensor_new3(&x0, 96, 3, 10);
    ff_tensor_new3(&x1, 96, 3, 10);
    ff_tensor_new3(&big0, 128, 3, 10);
    ff_tensor_new3(&big1, 128, 3, 10);
    ff_test_fill_sphere(big0, &rng);
    ff_test_fill_sphere(big1, &rng);
    int32_t perm[128];
    for (int q = 0; q < 2; q++) {
        ff_plugin_inst *c = coupler(names[q], NULL);
        if (!c) { FF_EXPECT(0, "load"); continue; }
        ff_test_fill_sphere(x0, &rng);
        ff_test_fill_sphere(x1, &rng);
        FF_EXPECT(pair(c, x0, x1, &rng, perm) == FF_OK, "%s", ff_last_error());   /* first call: allocates */
        n_allocs = 0;
        counting = 1;
        for (int r = 0; r < 3; r++) {
            ff_test_fill_sphere(x0, &rng);
            pair(c, x0, x1, &rng, perm);
        }
        counting = 0;
        FF_EXPECT(n_allocs == 0, "%s: %ld allocations in 3 calls with the same n", names[q], n_allocs);
        /* a larger n grows the scratch once; the counter must see that (the check has teeth) */
        n_allocs = 0;
        counting = 1;
        pair(c, big0, big1, &rng, perm);
        counting = 0;
        FF_EXPECT(n_allocs > 0, "%s: growing to n = 128 allocated nothing?", names[q]);
        n_allocs = 0;
        counting = 1;
        pair(c, big0, big1, &rng, perm);
        pair(c, x0, x1, &rng, perm);                 /* smaller n reuses the larger scratch */
        counting = 0;
        FF_EXPECT(n_allocs == 0, "%s: %ld allocations after growing", names[q], n_allocs);
        ff_plugin_free(c);
    }
    ff_tensor_free(x0); ff_tensor_free(x1); ff_tensor_free(big0); ff_tensor_free(big1);
}
#endif

/* --- the solver's row scan (two_min.h) ---------------------------------------------------------- */

/* The 4-lane scan (AVX2 where the CPU has it, and the scalar lanes) against the plain sequential
 * scan, on rows with many ties (costs from 5 values) and without, every n from 1 to 41: the same
 * u1, j1, u2, j2, bit for bit. */
FF_TEST(two_min_equals_sequential_scan) {
    ff_rng_t r;
    ff_rng_seed(&r, 41);
    double row[41], v[41];
    for (int rep = 0; rep < 60; rep++)
        for (int n = 1; n <= 41; n++) {
            for (int j = 0; j < n; j++) {
                row[j] = rep % 2 ? (double)ff_rng_below(&r, 5) : ff_rng_uniform(&r);
                v[j] = rep % 4 < 2 ? 0.0 : (double)ff_rng_below(&r, 3) * 0.5;
            }
            double u1 = row[0] - v[0], u2 = INFINITY;
            int32_t j1 = 0, j2 = -1;
            for (int j = 1; j < n; j++) {
                double h = row[j] - v[j];
                if (h < u2) {
                    if (h >= u1) { u2 = h; j2 = j; }
                    else { u2 = u1; j2 = j1; u1 = h; j1 = j; }
                }
            }
            for (int vec = 0; vec < 2; vec++) {
                two_min t = row_two_min_ex(row, v, n, vec);
                FF_EXPECT(t.u1 == u1 && t.j1 == j1 && t.u2 == u2 && t.j2 == j2,
                          "rep %d n %d vector %d: (%g @%d, %g @%d), sequential (%g @%d, %g @%d)", rep, n, vec,
                          t.u1, t.j1, t.u2, t.j2, u1, j1, u2, j2);
            }
        }
}

/* --- the cost builder (ot_cost.h) -------------------------------------------------------------- */

/* One-hot x1 takes a gather path (no GEMM, k D n acos); it must give the same doubles as the dense
 * GEMM path and agree with the chord-formula reference. The dense path is forced by breaking row 0
 * of x1 (a 1e-30 in a zero slot): every other row's costs must be bit for bit those of the one-hot
 * path. A NaN in x0 is named by row, position and symbol. */
FF_TEST(ot_cost_onehot_path_matches_dense) {
    ff_rng_t rng;
    ff_rng_seed(&rng, 31);
    const int shapes[][3] = { { 64, 4, 20 }, { 33, 1, 3 }, { 17, 3, 7 } };
    for (int q = 0; q < 3; q++) {
        int n = shapes[q][0], k = shapes[q][1], D = shapes[q][2];
        ff_tensor_t *x0 = NULL, *x1 = NULL;
        ff_tensor_new3(&x0, n, k, D);
        ff_tensor_new3(&x1, n, k, D);
        ff_test_fill_sphere(x0, &rng);
        fill_one_hot(&rng, x1);
        ot_cost c = { 0 }, d = { 0 };
        FF_EXPECT(ot_cost_build(&c, "test", x0, x1) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(c.onehot == 1, "n=%d k=%d D=%d: one-hot x1 took the dense path", n, k, D);
        double *ref = ref_cost(x0, x1), worst = 0;
        for (int e = 0; e < n * n; e++) worst = ff_nanmax(worst, fabs(c.C[e] - ref[e]));
        FF_EXPECT(worst < 1e-5, "n=%d k=%d D=%d: one-hot cost vs reference: max |diff| %.3g", n, k, D, worst);
        float *slot = x1->data + (x1->data[0] == 0.0f ? 0 : 1);
        *slot = 1e-30f;                                   /* row 0 is no longer one-hot */
        FF_EXPECT(ot_cost_build(&d, "test", x0, x1) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(d.onehot == 0, "n=%d: a broken row must take the dense path", n);
        int differ = 0;
        for (int e = n; e < n * n; e++) differ += c.C[e] != d.C[e];
        FF_EXPECT(differ == 0, "n=%d k=%d D=%d: %d of %d costs differ between the paths", n, k, D, differ, n * n - n);
        *slot = 0.0f;
        x0->data[(2 * k + (k - 1)) * D + D - 1] = NAN;   /* row 2, last position, last symbol */
        char want[128];
        snprintf(want, sizeof want, "test: non-finite input (x0[2] at position %d, symbol %d", k - 1, D - 1);
        FF_EXPECT_ERROR(ot_cost_build(&c, "test", x0, x1), FF_ENUMERIC, want);
        free(ref);
        ot_cost_free(&c);
        ot_cost_free(&d);
        ff_tensor_free(x0); ff_tensor_free(x1);
    }
}

#if FF_COUNT_ALLOCS
FF_TEST(ot_cost_onehot_no_allocation_after_the_first_call) {
    ff_rng_t rng;
    ff_rng_seed(&rng, 32);
    ff_tensor_t *x0 = NULL, *x1 = NULL;
    ff_tensor_new3(&x0, 50, 2, 9);
    ff_tensor_new3(&x1, 50, 2, 9);
    ff_test_fill_sphere(x0, &rng);
    fill_one_hot(&rng, x1);
    ot_cost c = { 0 };
    FF_EXPECT(ot_cost_build(&c, "test", x0, x1) == FF_OK && c.onehot, "%s", ff_last_error());
    n_allocs = 0;
    counting = 1;
    for (int r = 0; r < 3; r++) { fill_one_hot(&rng, x1); ot_cost_build(&c, "test", x0, x1); }
    counting = 0;
    FF_EXPECT(n_allocs == 0, "%ld allocations in 3 one-hot builds with the same n", n_allocs);
    ot_cost_free(&c);
    ff_tensor_free(x0); ff_tensor_free(x1);
}
#endif

/* --- sinkhorn --------------------------------------------------------------------------------- */

static ff_plugin_inst *sinkhorn(double eps, int64_t iters, double tol) {
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_number(o, "eps", eps);
    ff_options_set_int(o, "iterations", iters);
    ff_options_set_number(o, "tolerance", tol);
    ff_plugin_inst *c = coupler("sinkhorn", o);
    ff_options_free(o);
    return c;
}

FF_TEST(sinkhorn_marginals_and_eps_limit) {
    ff_rng_t rng;
    ff_rng_seed(&rng, 31);
    int n = 24, k = 2, D = 4;
    ff_tensor_t *x0 = NULL, *x1 = NULL, *P = NULL;
    ff_tensor_new3(&x0, n, k, D);
    ff_tensor_new3(&x1, n, k, D);
    ff_tensor_new2(&P, n, n);
    ff_test_fill_sphere(x0, &rng);
    ff_test_fill_sphere(x1, &rng);
    double *C = ref_cost(x0, x1);
    int assign[24];
    double opt = hungarian(C, n, assign) / n;         /* per-pair optimum = <plan, C> of the OT plan */
    double mean = 0;
    for (int e = 0; e < n * n; e++) mean += C[e];
    mean /= n * n;                                    /* <plan, C> of the independent coupling       */
    double eps[] = { 1.0, 0.3, 0.1, 0.03, 0.01, 0.003 }, prev = INFINITY, tol = 1e-7;
    for (int q = 0; q < 6; q++) {
        ff_plugin_inst *sk = sinkhorn(eps[q], 200000, tol);
        if (!sk) { FF_EXPECT(0, "load"); break; }
        FF_EXPECT(plan(sk, x0, x1, P) == FF_OK, "%s", ff_last_error());
        double row_err = 0, col_err = 0, cost = 0;
        for (int i = 0; i < n; i++) {
            double r = 0, c = 0;
            for (int j = 0; j < n; j++) { r += P->data[i * n + j]; c += P->data[j * n + i]; cost += P->data[i * n + j] * C[i * n + j]; }
            row_err += fabs(r - 1.0 / n);
            col_err += fabs(c - 1.0 / n);
        }
        /* the smallest eps may stop at the iteration cap before reaching tol (Sinkhorn slows as
         * eps -> 0); every other eps converges to tol (plus float rounding of the plan) */
        FF_EXPECT(row_err <= (q == 5 ? 2e-5 : tol + 1e-6), "eps %g: x1 marginal L1 error %.3g", eps[q], row_err);
        FF_EXPECT(col_err <= 1e-5, "eps %g: x0 marginal L1 error %.3g", eps[q], col_err);
        /* <P_eps, C> is nondecreasing in eps and bounded by the OT optimum below and the
         * independent coupling above */
        FF_EXPECT(cost >= opt - 1e-5 && cost <= mean + 1e-5, "eps %g: cost %.6g outside [%.6g, %.6g]", eps[q], cost, opt, mean);
        FF_EXPECT(cost <= prev + 1e-6, "eps %g: cost %.8g rose above %.8g at the larger eps", eps[q], cost, prev);
        if (q == 0) FF_EXPECT(cost > opt + 0.3 * (mean - opt), "eps 1 is far from OT: %.6g vs opt %.6g", cost, opt);
        if (q == 5) FF_EXPECT(cost - opt < 0.02 * (mean - opt), "eps 0.003 is close to OT: %.6g vs opt %.6g (indep %.6g)",
                              cost, opt, mean);
        printf("  sinkhorn eps %-6g <P,C> %.6f  (OT %.6f, independent %.6f)  row err %.2g col err %.2g\n",
               eps[q], cost, opt, mean, row_err, col_err);
        prev = cost;
        ff_plugin_free(sk);
    }
    free(C);
    ff_tensor_free(x0); ff_tensor_free(x1); ff_tensor_free(P);
}

FF_TEST(sinkhorn_pairs_follow_the_plan) {
    ff_rng_t rng;
    ff_rng_seed(&rng, 8);
    int n = 10, k = 1, D = 3, R = 4000;
    ff_tensor_t *x0 = NULL, *x1 = NULL, *P = NULL;
    ff_tensor_new3(&x0, n, k, D);
    ff_tensor_new3(&x1, n, k, D);
    ff_tensor_new2(&P, n, n);
    ff_test_fill_sphere(x0, &rng);
    ff_test_fill_sphere(x1, &rng);
    ff_plugin_inst *sk = sinkhorn(0.2, 10000, 1e-9);
    if (!sk) { FF_EXPECT(0, "load"); return; }
    FF_EXPECT(plan(sk, x0, x1, P) == FF_OK, "%s", ff_last_error());
    int counts[10][10] = { { 0 } };
    int32_t perm[10];
    for (int r = 0; r < R; r++) {
        FF_EXPECT(pair(sk, x0, x1, &rng, perm) == FF_OK, "%s", ff_last_error());
        for (int i = 0; i < n; i++) counts[i][perm[i]]++;
    }
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double p = n * P->data[i * n + j];        /* P(x0 = j | x1 = i) */
            double z = fabs(counts[i][j] - R * p) / sqrt(R * p * (1 - p) + 1e-12);
            if (z > worst) worst = z;
        }
    printf("  largest z-score of sampled pair counts vs plan: %.2f\n", worst);
    FF_EXPECT(worst < 4.5, "largest z-score of pair counts vs the plan: %.2f", worst);
    /* tiny eps: the sampled pairs are the exact OT permutation */
    ff_plugin_free(sk);
    sk = sinkhorn(1e-4, 200000, 1e-10);
    ff_plugin_inst *ot = coupler("exact_ot", NULL);
    int32_t exact[10];
    FF_EXPECT(sk && ot && pair(ot, x0, x1, NULL, exact) == FF_OK && pair(sk, x0, x1, &rng, perm) == FF_OK,
              "%s", ff_last_error());
    FF_EXPECT(!memcmp(exact, perm, sizeof perm), "sinkhorn at eps 1e-4 samples the exact plan");
    ff_plugin_free(sk);
    ff_plugin_free(ot);
    ff_tensor_free(x0); ff_tensor_free(x1); ff_tensor_free(P);
}

FF_MAIN()
