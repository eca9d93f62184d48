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
} ot_cost;

static void ot_cost_free(ot_cost *c) {
    free(c->C); free(c->G); free(c->pack);
    c->C = NULL; c->G = NULL; c->pack = NULL; c->cap_nn = c->cap_g = c->cap_pack = 0;
}

static ff_status ot_check_pair(const char *who, const ff_tensor_t *x0, const ff_tensor_t *x1, const ff_space *sp) {
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
    if (k == 0) { for (size_t e = 0; e < nn; e++) c->C[e] = 0.0; return FF_OK; }
    ot_rows_t R1 = ot_rows(c, x1, 0), R0 = ot_rows(c, x0, 1);
    for (int64_t r0 = 0; r0 < n; r0 += B) {
        int64_t rows = n - r0 < B ? n - r0 : B;
        double *Cb = c->C + r0 * n;
        size_t m = (size_t)(rows * n);
        for (int64_t p = 0; p < k; p++) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)D, 1.0f,
                        R1.base + r0 * R1.lda + p * R1.pstride, R1.lda, R0.base + p * R0.pstride, R0.lda,
                        0.0f, c->G, (int)n);
            int bad = 0;
            for (size_t e = 0; e < m; e++) {          /* branch-free body: vectorises */
                float g = c->G[e];
                bad |= !(g == g) | (g - g != 0.0f);   /* NaN, or +-inf (inf - inf is NaN) */
                g = g > 1.0f ? 1.0f : g;
                g = g < -1.0f ? -1.0f : g;
                double t = ot_acos(g);
                Cb[e] = (p ? Cb[e] : 0.0) + t * t;
            }
            if (bad)
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
