/* ot_cost.h — private to the OT couplers: the minibatch cost C[i, j] = sum over positions of
 * theta_k(x1_i, x0_j)^2, theta = geodesic angle on the sphere (MATH.md, training step 2).
 * Rows index x1, columns index x0. The dot products come from one cblas_sgemm per position
 * (X1_k X0_k^T); the angle is acos of the dot clamped to [-1, 1]. MATH.md warns that acos of a dot
 * loses half the digits near theta = 0 (~3e-4 rad at float precision); inside a cost matrix that
 * only perturbs theta^2 by ~1e-7, below the float inputs' own resolution. acos itself is the
 * polynomial of Abramowitz & Stegun 4.4.46 (|error| <= 2e-8 rad), which vectorises: libm's acos
 * made up most of the cost build at n = 2048 (bench/bench_ot.c).
 * Scratch grows on demand and is reused, so steady-state calls do not allocate. */
#ifndef FF_PLUGINS_OT_COST_H
#define FF_PLUGINS_OT_COST_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <fisherflow/plugin.h>

typedef struct ot_cost {
    int64_t n, k, D;
    double *C;          /* [n, n] cost, row = x1 index, column = x0 index */
    float  *G;          /* [block, n] dot products of one position          */
    size_t  cap_nn;     /* capacity of C in elements                        */
    size_t  cap_g;      /* capacity of G in elements                        */
    float  *pack;       /* [2, n, k, D] packed inputs when a last stride is not 1 */
    size_t  cap_pack;
    int32_t *hot;       /* [n, k] symbol of each one-hot position of x1                */
    double  *A;         /* [k, D, n] angle^2 of every x0 coordinate (one-hot x1 path)  */
    float   *T;         /* [k, D, n] x0 transposed (one-hot x1 path)                   */
    size_t   cap_hot, cap_A;
    int      onehot;    /* 1 when the last build took the one-hot path                 */
} ot_cost;

static void ot_cost_free(ot_cost *c) {
    free(c->C); free(c->G); free(c->pack); free(c->hot); free(c->A); free(c->T);
    c->C = NULL; c->G = NULL; c->pack = NULL; c->hot = NULL; c->A = NULL; c->T = NULL;
    c->cap_nn = c->cap_g = c->cap_pack = c->cap_hot = c->cap_A = 0;
}

static inline ff_status ot_check_pair(const char *who, const ff_tensor_t *x0, const ff_tensor_t *x1, const ff_space *sp) {
    char b0[64], b1[64];
    if (!x0 || !x1) return ff_errorf(FF_EINVAL, "%s: x0 or x1 is NULL", who);
    if (x0->ndim != 3 || x1->ndim != 3 || x0->shape[0] != x1->shape[0] || x0->shape[1] != x1->shape[1] ||
        x0->shape[2] != x1->shape[2])
        return ff_errorf(FF_ESHAPE, "%s: x0 [%s] and x1 [%s] must both be [n, k, d+1]", who,
                         ff_shape_str(x0, b0, sizeof b0), ff_shape_str(x1, b1, sizeof b1));
    if (sp && sp->k > 0 && (x0->shape[1] != sp->k || x0->shape[2] != sp->d + 1))
        return ff_errorf(FF_ESHAPE, "%s: x0 is [%s], the space has k=%lld, d+1=%lld", who,
                         ff_shape_str(x0, b0, sizeof b0), (long long)sp->k, (long long)sp->d + 1);
    if (x0->shape[2] < 1)
        return ff_errorf(FF_ESHAPE, "%s: x0 [%s] has no symbols", who, ff_shape_str(x0, b0, sizeof b0));
    if (x0->shape[0] > INT32_MAX)
        return ff_errorf(FF_EINVAL, "%s: n = %lld does not fit int32 indices", who, (long long)x0->shape[0]);
    return FF_OK;
}

/* The build's -O2 leaves the loop of ot_add_angles scalar (GCC 12 vectorises at -O2 only loops
 * without an epilogue); -O3 with an AVX2 clone runs it 4 doubles at a time, the clone chosen at load
 * time by CPU feature (the build's -fno-math-errno lets its sqrt vectorise). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FF_DEBUG_ASSERT)
#define OT_KERNEL __attribute__((target_clones("avx2", "default")))
#pragma GCC push_options
#pragma GCC optimize("O3", "no-trapping-math")
#else
#define OT_KERNEL
#endif

/* acos(x) for x in [-1, 1]: sqrt(1 - |x|) * P7(|x|) (A&S 4.4.46), reflected for x < 0. */
static inline double ot_acos(double x) {
    double a = fabs(x);
    double p = -0.0012624911;
    p = p * a + 0.0066700901;
    p = p * a - 0.0170881256;
    p = p * a + 0.0308918810;
    p = p * a - 0.0501743046;
    p = p * a + 0.0889789874;
    p = p * a - 0.2145988016;
    p = p * a + 1.5707963050;
    double r = sqrt(1.0 - a) * p;
    return x < 0 ? M_PI - r : r;
}

/* acos(clamp(g, -1, 1))^2 */
static inline double ot_angle2(float g) {
    g = g > 1.0f ? 1.0f : g;
    g = g < -1.0f ? -1.0f : g;
    double t = ot_acos(g);
    return t * t;
}

/* NaN, or +-inf (inf - inf is NaN) */
static inline int ot_bad(float g) { return !(g == g) | (g - g != 0.0f); }

/* C[e] = acos(clamp(G[e]))^2 (first position) or C[e] += that, for e < m; returns 1 when some G[e] is
 * NaN or +-inf (C is then partly written: the caller reports the error). Branch-free: vectorises. */
OT_KERNEL static int ot_add_angles(double *restrict C, const float *restrict G, size_t m, int first) {
    int bad = 0;
    if (first)
        for (size_t e = 0; e < m; e++) { bad |= ot_bad(G[e]); C[e] = ot_angle2(G[e]); }
    else
        for (size_t e = 0; e < m; e++) { bad |= ot_bad(G[e]); C[e] += ot_angle2(G[e]); }
    return bad;
}
/* C[e] = a[e] (first) or C[e] += a[e], e < m */
OT_KERNEL static void ot_add_row(double *restrict C, const double *restrict a, size_t m, int first) {
    if (first) memcpy(C, a, m * sizeof *C);
    else for (size_t e = 0; e < m; e++) C[e] += a[e];
}
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FF_DEBUG_ASSERT)
#pragma GCC pop_options
#endif

/* A view of x as rows: position p of row i starts at base + i * lda + p * pstride, unit stride
 * inside. Strided tensors are packed once per call into slot (0 or 1) of c->pack. */
typedef struct ot_rows_t { const float *base; int64_t pstride; int lda; } ot_rows_t;

static int ot_needs_pack(const ff_tensor_t *x) {
    return !(x->stride[2] == 1 && x->stride[0] >= x->shape[2] && x->stride[0] <= INT32_MAX);
}

static ot_rows_t ot_rows(ot_cost *c, const ff_tensor_t *x, int slot) {
    int64_t n = x->shape[0], k = x->shape[1], D = x->shape[2];
    if (!ot_needs_pack(x))
        return (ot_rows_t){ x->data, x->stride[1], (int)x->stride[0] };
    float *dst = c->pack + (size_t)slot * (size_t)(n * k * D);
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < k; p++)
            for (int64_t e = 0; e < D; e++)
                dst[(i * k + p) * D + e] = x->data[i * x->stride[0] + p * x->stride[1] + e * x->stride[2]];
    return (ot_rows_t){ dst, D, (int)(k * D) };
}

/* Rows of x1 per block: the block's dot products (block x n floats) stay in cache while all k
 * positions accumulate into it, so C is written once instead of k times. */
static int64_t ot_block_rows(int64_t n) {
    int64_t b = 65536 / (n > 0 ? n : 1);
    return b < 8 ? 8 : b > 256 ? 256 : b;
}

/* 1 when every position of every row of R (n x k x D) holds exactly one 1 and D-1 zeros (the data
 * batch of a flow trained on one-hot tokens, mapped to the sphere: sqrt keeps 0 and 1); then
 * hot[i*k + p] is that 1's symbol. Stops at the first row that is not one-hot. */
static int ot_find_onehot(ot_rows_t R, int64_t n, int64_t k, int64_t D, int32_t *hot) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < k; p++) {
            const float *r = R.base + i * R.lda + p * R.pstride;
            int64_t ones = 0, zeros = 0, at = 0;
            for (int64_t e = 0; e < D; e++) {
                if (r[e] == 1.0f) { ones++; at = e; }
                else zeros += r[e] == 0.0f;
            }
            if (ones != 1 || zeros != D - 1) return 0;
            hot[i * k + p] = (int32_t)at;
        }
    return 1;
}

/* One-hot x1: the dot product of x1_i and x0_j at position p is x0_j[p, hot(i, p)] exactly (a sum
 * of one product by 1 and zeros), so the angle^2 of every x0 coordinate is computed once (k D n
 * acos instead of k n^2, and no GEMM) and C[i, :] = sum over p of the row A[p, hot(i, p), :]: the
 * same doubles as the dense path below, in O(n k D + n^2 k). */
static ff_status ot_cost_onehot(ot_cost *c, const char *who, ot_rows_t R0, int64_t n, int64_t k, int64_t D) {
    size_t kdn = (size_t)(k * D * n);
    for (int64_t j = 0; j < n; j++)
        for (int64_t p = 0; p < k; p++) {
            const float *r = R0.base + j * R0.lda + p * R0.pstride;
            for (int64_t e = 0; e < D; e++) c->T[(size_t)(p * D + e) * (size_t)n + (size_t)j] = r[e];
        }
    if (ot_add_angles(c->A, c->T, kdn, 1))
        for (size_t q = 0; q < kdn; q++)
            if (!isfinite(c->T[q]))
                return ff_errorf(FF_ENUMERIC, "%s: non-finite input (x0[%lld] at position %lld, symbol %lld is not "
                                 "finite)", who, (long long)(q % (size_t)n), (long long)(q / (size_t)n / (size_t)D),
                                 (long long)(q / (size_t)n % (size_t)D));
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < k; p++)
            ot_add_row(c->C + (size_t)i * (size_t)n, c->A + (size_t)(p * D + c->hot[i * k + p]) * (size_t)n,
                       (size_t)n, p == 0);
    return FF_OK;
}

/* Fills c->C for the pair (x0, x1) (shapes already checked). */
static ff_status ot_cost_build(ot_cost *c, const char *who, const ff_tensor_t *x0, const ff_tensor_t *x1) {
    int64_t n = x0->shape[0], k = x0->shape[1], D = x0->shape[2], B = ot_block_rows(n);
    size_t nn = (size_t)(n * n), nb = (size_t)(B * n), np = (size_t)(2 * n * k * D);
    if (nn > c->cap_nn) {
        double *C = realloc(c->C, nn * sizeof *C);
        if (!C) return ff_errorf(FF_ENOMEM, "%s: cannot allocate the %lld x %lld cost matrix", who,
                                 (long long)n, (long long)n);
        c->C = C;
        c->cap_nn = nn;
    }
    if (nb > c->cap_g) {
        float *G = realloc(c->G, nb * sizeof *G);
        if (!G) return ff_errorf(FF_ENOMEM, "%s: out of memory", who);
        c->G = G;
        c->cap_g = nb;
    }
    int strided = ot_needs_pack(x0) || ot_needs_pack(x1);
    if (strided && np > c->cap_pack) {
        float *P = realloc(c->pack, np * sizeof *P);
        if (!P) return ff_errorf(FF_ENOMEM, "%s: out of memory", who);
        c->pack = P;
        c->cap_pack = np;
    }
    c->n = n; c->k = k; c->D = D;
    c->onehot = 0;
    if (k == 0) { for (size_t e = 0; e < nn; e++) c->C[e] = 0.0; return FF_OK; }
    ot_rows_t R1 = ot_rows(c, x1, 0), R0 = ot_rows(c, x0, 1);
    size_t nk = (size_t)(n * k), kdn = (size_t)(k * D * n);
    if (nk > c->cap_hot) {
        int32_t *h = realloc(c->hot, nk * sizeof *h);
        if (!h) return ff_errorf(FF_ENOMEM, "%s: out of memory", who);
        c->hot = h;
        c->cap_hot = nk;
    }
    if (ot_find_onehot(R1, n, k, D, c->hot)) {
        if (kdn > c->cap_A) {
            double *A = realloc(c->A, kdn * sizeof *A);
            if (A) c->A = A;
            float *T = A ? realloc(c->T, kdn * sizeof *T) : NULL;
            if (!A || !T) return ff_errorf(FF_ENOMEM, "%s: out of memory", who);
            c->T = T;
            c->cap_A = kdn;
        }
        c->onehot = 1;
        return ot_cost_onehot(c, who, R0, n, k, D);
    }
    for (int64_t r0 = 0; r0 < n; r0 += B) {
        int64_t rows = n - r0 < B ? n - r0 : B;
        double *Cb = c->C + r0 * n;
        size_t m = (size_t)(rows * n);
        for (int64_t p = 0; p < k; p++) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)D, 1.0f,
                        R1.base + r0 * R1.lda + p * R1.pstride, R1.lda, R0.base + p * R0.pstride, R0.lda,
                        0.0f, c->G, (int)n);
            if (ot_add_angles(Cb, c->G, m, p == 0))
                for (size_t e = 0; e < m; e++)
                    if (!isfinite(c->G[e]))
                        return ff_errorf(FF_ENUMERIC, "%s: non-finite input (dot product of x1[%lld] and x0[%lld] "
                                         "at position %lld is not finite)", who, (long long)(r0 + (int64_t)(e / (size_t)n)),
                                         (long long)(e % (size_t)n), (long long)p);
        }
    }
    return FF_OK;
}

#endif
