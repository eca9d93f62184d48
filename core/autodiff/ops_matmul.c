/* ops_matmul.c — ff_linear and ff_matmul through OpenBLAS cblas_sgemm. Strided 2-D inputs (a
 * transposed view, a column slice) are read by sgemm as they are, with the matching transpose flag
 * and leading dimension; only other layouts are copied. Gradients are contiguous (tape_internal.h,
 * ff_op_begin). Backward is two sgemm calls (+ a column sum).
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>
#include "tape_internal.h"

/* A [rows, cols] matrix as sgemm sees it: op(M) = trans ? P^T : P with P row-major, ld. */
typedef struct matref { const float *p; int64_t ld; int trans; } matref;

static int as_matrix(ff_tape_t *tp, const ff_tensor_t *t, int64_t rows, int64_t cols, matref *m) {
    m->trans = 0;
    m->ld = cols > 1 ? cols : 1;
    if (ff_tensor_is_contiguous(t)) { m->p = t->data; return 1; }
    if (t->ndim == 2) {
        if (t->stride[1] == 1 && t->stride[0] >= cols) { m->p = t->data; m->ld = t->stride[0]; return 1; }
        if (t->stride[0] == 1 && t->stride[1] >= rows) {
            m->p = t->data; m->ld = t->stride[1] > 1 ? t->stride[1] : 1; m->trans = 1; return 1;
        }
    }
    m->p = ff_op_contig(tp, t);
    return m->p != NULL;
}

static inline enum CBLAS_TRANSPOSE tr(int t) { return t ? CblasTrans : CblasNoTrans; }
static inline enum CBLAS_TRANSPOSE ntr(int t) { return t ? CblasNoTrans : CblasTrans; }

/* gb[j] (+)= sum_i g[i, j] over a [rows, cols] matrix: rows streamed in order (cache friendly). */
static void col_sum(const float *restrict g, int64_t rows, int64_t cols, float *restrict gb, float beta) {
    if (beta == 0.0f) memset(gb, 0, (size_t)cols * sizeof(float));
    for (int64_t i = 0; i < rows; i++) {
        const float *restrict r = g + i * cols;
        for (int64_t j = 0; j < cols; j++) gb[j] += r[j];
    }
}

/* node->i: 0 M, 1 K, 2 O|N, 3 ld(x), 4 trans(x), 5 ld(w), 6 trans(w) */
static void save(ff_node_t *n, int64_t M, int64_t K, int64_t O, const matref *x, const matref *w) {
    n->i[0] = M; n->i[1] = K; n->i[2] = O;
    n->i[3] = x->ld; n->i[4] = x->trans; n->i[5] = w->ld; n->i[6] = w->trans;
}

/* y[M,O] = x[M,K] w[O,K]^T + b, b [O] or y's shape */
ff_tensor_t *ff_linear(ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *w, ff_tensor_t *b) {
    char s1[96], s2[96], s3[96], s4[96];
    if (!ff_op_begin(tp, "ff_linear", 2, x, w, b)) return NULL;
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1])
        return ff_op_fail(tp, FF_ESHAPE, "ff_linear: x [%s], w [%s]: expected x[..,%lld] and w[out,in] with in = x's last dim",
                          FF_SHAPE(x, s1), FF_SHAPE(w, s2), (long long)(x->ndim ? x->shape[x->ndim - 1] : 0));
    const int64_t K = w->shape[1], O = w->shape[0], M = ff_prod(x->shape, 0, x->ndim - 1);
    int64_t shape[FF_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = O;
    /* b: [O] broadcast over the rows, or the output's shape [.., O] (one bias row per row of x: a
     * per-row offset such as a split-off part of the product, W [x; e] = W_x x + (W_e e + b)) */
    int full_b = b && b->ndim == x->ndim && b->ndim >= 2;
    for (int i = 0; full_b && i < x->ndim; i++) full_b = b->shape[i] == shape[i];
    if (b && !full_b && (b->ndim != 1 || b->shape[0] != O)) {
        ff_tensor_t y = *x;
        y.shape[x->ndim - 1] = O;
        return ff_op_fail(tp, FF_ESHAPE, "ff_linear: x [%s], w [%s], b [%s]: bias must be [%lld] or the output's "
                          "shape [%s]", FF_SHAPE(x, s1), FF_SHAPE(w, s2), FF_SHAPE(b, s3), (long long)O,
                          FF_SHAPE(&y, s4));
    }
    if (M > INT_MAX || K > INT_MAX || O > INT_MAX)
        return ff_op_fail(tp, FF_EINVAL, "ff_linear: x [%s], w [%s]: a matrix dimension exceeds BLAS's int range",
                          FF_SHAPE(x, s1), FF_SHAPE(w, s2));
    matref mx, mw;
    if (!as_matrix(tp, x, M, K, &mx) || !as_matrix(tp, w, O, K, &mw)) return NULL;
    const float *xb = b ? ff_op_contig(tp, b) : NULL;
    ff_tensor_t *out = ff_op_out(tp, x->ndim, shape);
    if (!out || (b && !xb)) return NULL;
    float *y = out->data;
    float beta = 0.0f;
    if (xb && full_b) { memcpy(y, xb, (size_t)(M * O) * sizeof(float)); beta = 1.0f; }
    else if (xb) { for (int64_t i = 0; i < M; i++) memcpy(y + i * O, xb, (size_t)O * sizeof(float)); beta = 1.0f; }
    if (M > 0 && O > 0 && K > 0)
        cblas_sgemm(CblasRowMajor, tr(mx.trans), ntr(mw.trans), (int)M, (int)O, (int)K, 1.0f,
                    mx.p, (int)mx.ld, mw.p, (int)mw.ld, beta, y, (int)(O > 1 ? O : 1));
    else if (!xb) memset(y, 0, (size_t)(M * O) * sizeof(float));
    ff_node_t *n = ff_node_new(tp, FF_OP_LINEAR, out, b ? 3 : 2, x, mx.p, w, mw.p, b, xb);
    if (n) { save(n, M, K, O, &mx, &mw); n->i[7] = full_b; }
    return out;
}

void ff_bw_linear(ff_tape_t *tp, ff_node_t *n) {
    const int64_t M = n->i[0], K = n->i[1], O = n->i[2];
    const int ldx = (int)n->i[3], tx = (int)n->i[4], ldw = (int)n->i[5], tw = (int)n->i[6];
    const float *g = n->g;
    const int ldg = (int)(O > 1 ? O : 1), ldk = (int)(K > 1 ? K : 1);
    float beta;
    float *gx = ff_grad_buf(tp, n->in[0], &beta);          /* dx[M,K] = g[M,O] w[O,K] */
    if (gx) {
        if (M > 0 && K > 0 && O > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tr(tw), (int)M, (int)K, (int)O, 1.0f,
                        g, ldg, n->x[1], ldw, beta, gx, ldk);
        else if (beta == 0.0f) memset(gx, 0, (size_t)(M * K) * sizeof(float));
    }
    float *gw = ff_grad_buf(tp, n->in[1], &beta);          /* dw[O,K] = g^T[O,M] x[M,K] */
    if (gw) {
        if (M > 0 && K > 0 && O > 0)
            cblas_sgemm(CblasRowMajor, CblasTrans, tr(tx), (int)O, (int)K, (int)M, 1.0f,
                        g, ldg, n->x[0], ldx, beta, gw, ldk);
        else if (beta == 0.0f) memset(gw, 0, (size_t)(O * K) * sizeof(float));
    }
    if (n->nin == 3) {
        float *gb = ff_grad_buf(tp, n->in[2], &beta);
        if (gb && n->i[7]) ff_acc(gb, g, M * O, beta);     /* bias of y's shape: its gradient is g */
        else if (gb) col_sum(g, M, O, gb, beta);
    }
}

/* c[M,N] = a[M,K] b[K,N], a's leading dims flattened into M */
ff_tensor_t *ff_matmul(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b) {
    char s1[96], s2[96];
    if (!ff_op_begin(tp, "ff_matmul", 2, a, b, NULL)) return NULL;
    if (a->ndim < 2 || b->ndim != 2)
        return ff_op_fail(tp, FF_ESHAPE, "ff_matmul: [%s] x [%s]: expected a[..,m,k] and b[k,n]",
                          FF_SHAPE(a, s1), FF_SHAPE(b, s2));
    if (a->shape[a->ndim - 1] != b->shape[0])
        return ff_op_fail(tp, FF_ESHAPE, "ff_matmul: [%s] x [%s]: inner dims %lld != %lld",
                          FF_SHAPE(a, s1), FF_SHAPE(b, s2), (long long)a->shape[a->ndim - 1], (long long)b->shape[0]);
    const int64_t K = b->shape[0], N = b->shape[1], M = ff_prod(a->shape, 0, a->ndim - 1);
    if (M > INT_MAX || K > INT_MAX || N > INT_MAX)
        return ff_op_fail(tp, FF_EINVAL, "ff_matmul: [%s] x [%s]: a matrix dimension exceeds BLAS's int range",
                          FF_SHAPE(a, s1), FF_SHAPE(b, s2));
    int64_t shape[FF_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[a->ndim - 1] = N;
    matref ma, mb;
    if (!as_matrix(tp, a, M, K, &ma) || !as_matrix(tp, b, K, N, &mb)) return NULL;
    ff_tensor_t *out = ff_op_out(tp, a->ndim, shape);
    if (!out) return NULL;
    if (M > 0 && N > 0 && K > 0)
        cblas_sgemm(CblasRowMajor, tr(ma.trans), tr(mb.trans), (int)M, (int)N, (int)K, 1.0f,
                    ma.p, (int)ma.ld, mb.p, (int)mb.ld, 0.0f, out->data, (int)(N > 1 ? N : 1));
    else memset(out->data, 0, (size_t)(M * N) * sizeof(float));
    ff_node_t *n = ff_node_new(tp, FF_OP_MATMUL, out, 2, a, ma.p, b, mb.p, NULL, NULL);
    if (n) save(n, M, K, N, &ma, &mb);
    return out;
}

void ff_bw_matmul(ff_tape_t *tp, ff_node_t *n) {
    const int64_t M = n->i[0], K = n->i[1], N = n->i[2];
    const int lda = (int)n->i[3], ta = (int)n->i[4], ldb = (int)n->i[5], tb = (int)n->i[6];
    const int ldg = (int)(N > 1 ? N : 1), ldk = (int)(K > 1 ? K : 1);
    const float *g = n->g;
    float beta;
    float *ga = ff_grad_buf(tp, n->in[0], &beta);          /* da[M,K] = g[M,N] b^T[N,K] */
    if (ga) {
        if (M > 0 && K > 0 && N > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, ntr(tb), (int)M, (int)K, (int)N, 1.0f,
                        g, ldg, n->x[1], ldb, beta, ga, ldk);
        else if (beta == 0.0f) memset(ga, 0, (size_t)(M * K) * sizeof(float));
    }
    float *gb = ff_grad_buf(tp, n->in[1], &beta);          /* db[K,N] = a^T[K,M] g[M,N] */
    if (gb) {
        if (M > 0 && K > 0 && N > 0)
            cblas_sgemm(CblasRowMajor, ntr(ta), CblasNoTrans, (int)K, (int)N, (int)M, 1.0f,
                        n->x[0], lda, g, ldg, beta, gb, ldg);
        else if (beta == 0.0f) memset(gb, 0, (size_t)(K * N) * sizeof(float));
    }
}
