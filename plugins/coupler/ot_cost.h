/* ot_cost.h — private to the OT couplers: the minibatch cost C[i, j] = sum over positions of
 * theta_k(x1_i, x0_j)^2, theta = geodesic angle on the sphere (MATH.md, training step 2).
 * Rows index x1, columns index x0. The dot products come from one cblas_sgemm per position
 * (X1_k X0_k^T); the angle is acos of the dot clamped to [-1, 1]. MATH.md warns that acos loses
 * half the digits near theta = 0 (an error of ~3e-4 rad at float precision); inside a cost matrix
 * that only perturbs theta^2 by ~1e-7, which is below the float inputs' own resolution.
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
    float  *G;          /* [n, n] dot products of one position             */
    size_t  cap_nn;     /* capacity of C and G in elements                 */
    float  *pack;       /* [2, n, D] packed rows when a last stride is not 1 */
    size_t  cap_pack;
} ot_cost;

static void ot_cost_free(ot_cost *c) {
    free(c->C); free(c->G); free(c->pack);
    c->C = NULL; c->G = NULL; c->pack = NULL; c->cap_nn = c->cap_pack = 0;
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
    if (x0->shape[0] > INT32_MAX)
        return ff_errorf(FF_EINVAL, "%s: n = %lld does not fit int32 indices", who, (long long)x0->shape[0]);
    return FF_OK;
}

/* Points at position p of x as an [n, D] row-major block (lda = row stride), packing if needed. */
static const float *ot_rows(ot_cost *c, const ff_tensor_t *x, int64_t p, int slot, int *lda) {
    int64_t n = x->shape[0], D = x->shape[2];
    if (x->stride[2] == 1 && x->stride[0] >= D && x->stride[0] <= INT32_MAX) {
        *lda = (int)x->stride[0];
        return x->data + p * x->stride[1];
    }
    float *dst = c->pack + (size_t)slot * (size_t)(n * D);
    for (int64_t i = 0; i < n; i++)
        for (int64_t e = 0; e < D; e++)
            dst[i * D + e] = x->data[i * x->stride[0] + p * x->stride[1] + e * x->stride[2]];
    *lda = (int)D;
    return dst;
}

/* Fills c->C for the pair (x0, x1) (shapes already checked). */
static ff_status ot_cost_build(ot_cost *c, const char *who, const ff_tensor_t *x0, const ff_tensor_t *x1) {
    int64_t n = x0->shape[0], k = x0->shape[1], D = x0->shape[2];
    size_t nn = (size_t)(n * n), np = (size_t)(2 * n * D);
    if (nn > c->cap_nn) {
        double *C = realloc(c->C, nn * sizeof *C);
        if (C) c->C = C;
        float *G = realloc(c->G, nn * sizeof *G);
        if (G) c->G = G;
        if (!C || !G) return ff_errorf(FF_ENOMEM, "%s: cannot allocate the %lld x %lld cost matrix", who,
                                       (long long)n, (long long)n);
        c->cap_nn = nn;
    }
    if ((x0->stride[2] != 1 || x1->stride[2] != 1) && np > c->cap_pack) {
        float *P = realloc(c->pack, np * sizeof *P);
        if (!P) return ff_errorf(FF_ENOMEM, "%s: out of memory", who);
        c->pack = P;
        c->cap_pack = np;
    }
    c->n = n; c->k = k; c->D = D;
    for (size_t e = 0; e < nn; e++) c->C[e] = 0.0;
    for (int64_t p = 0; p < k; p++) {
        int lda0, lda1;
        const float *A = ot_rows(c, x1, p, 0, &lda1);
        const float *B = ot_rows(c, x0, p, 1, &lda0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)D, 1.0f, A, lda1, B, lda0,
                    0.0f, c->G, (int)n);
        for (size_t e = 0; e < nn; e++) {
            double g = c->G[e];
            if (!isfinite(g))
                return ff_errorf(FF_ENUMERIC, "%s: non-finite input (dot product of x1[%lld] and x0[%lld] at "
                                 "position %lld is not finite)", who, (long long)(e / (size_t)n),
                                 (long long)(e % (size_t)n), (long long)p);
            g = g > 1.0 ? 1.0 : g < -1.0 ? -1.0 : g;
            double t = acos(g);
            c->C[e] += t * t;
        }
    }
    return FF_OK;
}

#endif
