/* ops_attention.c — the transformer's ops: softmax over the last axis (max-subtracted), GELU in
 * its tanh form, batched
 * matmul over leading batch dims (one cblas_sgemm per batch, either operand transposed), and fused
 * multi-head self-attention on a packed q|k|v tensor. The attention reads each head's q, k, v
 * straight out of the packed rows (sgemm with leading dimension 3C) and writes its output and
 * gradients in place, so no head split/merge copies are made; it keeps the attention weights P
 * [n, heads, L, L] for backward.
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include "tape_internal.h"

static inline enum CBLAS_TRANSPOSE tr(int t) { return t ? CblasTrans : CblasNoTrans; }

/* e^x in float, branch-free so that loops over it vectorise (libm's expf is a call per element):
 * x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact product), e^r by a degree-6
 * minimax polynomial (relative error ~1 ulp over the range), 2^n built in the exponent bits.
 * Below -87.3 (where e^x leaves the normal floats) the result is 0; above 88.7 it saturates. */
static inline float exp_fast(float x) {
    const float big = 12582912.0f;                      /* 1.5 * 2^23: adding it rounds to an integer */
    const float xc = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    const float n = (xc * 1.44269504088896341f + big) - big;
    const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.3f ? 0.0f : y * scale;
}

/* y = softmax(x) over n entries; y may alias x. */
FF_CLONES static void softmax_row(float *y, const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    for (int64_t j = 0; j < n; j++) y[j] = exp_fast(x[j] - m);
    const float r = 1.0f / ff_sum8(y, n);
    for (int64_t j = 0; j < n; j++) y[j] *= r;
}

/* d (op)= y * (g - <g, y>) over n entries: the softmax VJP; d may alias g. */
FF_CLONES static void softmax_row_bw(float *d, const float *y, const float *g, int64_t n, float beta) {
    const float s = ff_dot8(g, y, n);
    if (beta == 0.0f) for (int64_t j = 0; j < n; j++) d[j] = y[j] * (g[j] - s);
    else              for (int64_t j = 0; j < n; j++) d[j] += y[j] * (g[j] - s);
}

/* ---- softmax ---------------------------------------------------------------------------------- */

ff_tensor_t *ff_softmax(ff_tape_t *tp, ff_tensor_t *a) {
    char s1[96];
    if (!ff_op_begin(tp, "ff_softmax", 1, a, NULL, NULL)) return NULL;
    if (a->ndim < 1 || a->shape[a->ndim - 1] < 1)
        return ff_op_fail(tp, FF_ESHAPE, "ff_softmax: [%s]: needs a last axis of size >= 1", FF_SHAPE(a, s1));
    const int64_t C = a->shape[a->ndim - 1], R = ff_prod(a->shape, 0, a->ndim - 1);
    const float *x = ff_op_contig(tp, a);
    ff_tensor_t *out = ff_op_out(tp, a->ndim, a->shape);
    if (!x || !out) return NULL;
    for (int64_t r = 0; r < R; r++) softmax_row(out->data + r * C, x + r * C, C);
    ff_node_t *n = ff_node_new(tp, FF_OP_SOFTMAX, out, 1, a, x, NULL, NULL, NULL, NULL);
    if (n) { n->i[0] = R; n->i[1] = C; }
    return out;
}

void ff_bw_softmax(ff_tape_t *tp, ff_node_t *n) {
    float beta;
    float *gx = ff_grad_buf(tp, n->in[0], &beta);
    if (!gx) return;
    const int64_t R = n->i[0], C = n->i[1];
    for (int64_t r = 0; r < R; r++) softmax_row_bw(gx + r * C, n->out->data + r * C, n->g + r * C, C, beta);
}

/* ---- GELU, tanh form ------------------------------------------------------------------------- */

#define GELU_C  0.7978845608028654f      /* sqrt(2 / pi) */
#define GELU_A  0.044715f

/* tanh(u) = 1 - 2 / (1 + e^{2u}): saturates to +-1 without overflow (exp_fast clamps). */
static inline float tanh_fast(float u) { return 1.0f - 2.0f / (1.0f + exp_fast(2.0f * u)); }

FF_CLONES static void gelu_tanh_fw(float *restrict y, const float *restrict x, int64_t N) {
    for (int64_t i = 0; i < N; i++) {
        const float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanh_fast(GELU_C * (v + GELU_A * v * v * v)));
    }
}

/* d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2), t = tanh(c (x + a x^3)) */
FF_CLONES static void gelu_tanh_bw(float *restrict gx, const float *restrict x, const float *restrict g, int64_t N,
                                   float beta) {
    for (int64_t i = 0; i < N; i++) {
        const float v = x[i], t = tanh_fast(GELU_C * (v + GELU_A * v * v * v));
        const float d = g[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * v * v));
        gx[i] = beta == 0.0f ? d : gx[i] + d;
    }
}

ff_tensor_t *ff_gelu_tanh(ff_tape_t *tp, ff_tensor_t *a) {
    if (!ff_op_begin(tp, "ff_gelu_tanh", 1, a, NULL, NULL)) return NULL;
    const int64_t N = ff_tensor_numel(a);
    const float *x = ff_op_contig(tp, a);
    ff_tensor_t *out = ff_op_out(tp, a->ndim, a->shape);
    if (!x || !out) return NULL;
    gelu_tanh_fw(out->data, x, N);
    ff_node_new(tp, FF_OP_GELU_TANH, out, 1, a, x, NULL, NULL, NULL, NULL);
    return out;
}

void ff_bw_gelu_tanh(ff_tape_t *tp, ff_node_t *n) {
    float beta;
    float *gx = ff_grad_buf(tp, n->in[0], &beta);
    if (gx) gelu_tanh_bw(gx, n->x[0], n->g, ff_tensor_numel(n->out), beta);
}

/* ---- batched matmul --------------------------------------------------------------------------- */

/* c[.., m, n] = op(a)[.., m, k] op(b)[.., k, n], op(t) = t or t^T over the last two axes. */
ff_tensor_t *ff_bmm(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b, int trans_a, int trans_b) {
    char s1[96], s2[96];
    if (!ff_op_begin(tp, "ff_bmm", 2, a, b, NULL)) return NULL;
    int ok = a->ndim >= 2 && a->ndim == b->ndim;
    for (int i = 0; ok && i < a->ndim - 2; i++) ok = a->shape[i] == b->shape[i];
    if (!ok)
        return ff_op_fail(tp, FF_ESHAPE, "ff_bmm: [%s] x [%s]: expected a[..,m,k] and b[..,k,n] with equal "
                          "batch dims", FF_SHAPE(a, s1), FF_SHAPE(b, s2));
    const int nd = a->ndim;
    const int64_t M = a->shape[nd - (trans_a ? 1 : 2)], K = a->shape[nd - (trans_a ? 2 : 1)];
    const int64_t Kb = b->shape[nd - (trans_b ? 1 : 2)], N = b->shape[nd - (trans_b ? 2 : 1)];
    if (K != Kb)
        return ff_op_fail(tp, FF_ESHAPE, "ff_bmm: [%s]%s x [%s]%s: inner dims %lld != %lld", FF_SHAPE(a, s1),
                          trans_a ? "^T" : "", FF_SHAPE(b, s2), trans_b ? "^T" : "", (long long)K, (long long)Kb);
    if (M > INT_MAX || K > INT_MAX || N > INT_MAX)
        return ff_op_fail(tp, FF_EINVAL, "ff_bmm: [%s] x [%s]: a matrix dimension exceeds BLAS's int range",
                          FF_SHAPE(a, s1), FF_SHAPE(b, s2));
    const int64_t B = ff_prod(a->shape, 0, nd - 2);
    int64_t shape[FF_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[nd - 2] = M;
    shape[nd - 1] = N;
    const float *xa = ff_op_contig(tp, a), *xb = ff_op_contig(tp, b);
    ff_tensor_t *out = ff_op_out(tp, nd, shape);
    if (!xa || !xb || !out) return NULL;
    const int lda = (int)(trans_a ? (M > 1 ? M : 1) : (K > 1 ? K : 1));
    const int ldb = (int)(trans_b ? (K > 1 ? K : 1) : (N > 1 ? N : 1));
    for (int64_t q = 0; q < B; q++) {
        float *c = out->data + q * M * N;
        if (M > 0 && N > 0 && K > 0)
            cblas_sgemm(CblasRowMajor, tr(trans_a), tr(trans_b), (int)M, (int)N, (int)K, 1.0f, xa + q * M * K,
                        lda, xb + q * K * N, ldb, 0.0f, c, (int)(N > 1 ? N : 1));
        else memset(c, 0, (size_t)(M * N) * sizeof(float));
    }
    ff_node_t *n = ff_node_new(tp, FF_OP_BMM, out, 2, a, xa, b, xb, NULL, NULL);
    if (n) { n->i[0] = B; n->i[1] = M; n->i[2] = K; n->i[3] = N; n->i[4] = trans_a != 0; n->i[5] = trans_b != 0; }
    return out;
}

void ff_bw_bmm(ff_tape_t *tp, ff_node_t *n) {
    const int64_t B = n->i[0], M = n->i[1], K = n->i[2], N = n->i[3];
    const int ta = (int)n->i[4], tb = (int)n->i[5];
    const int lm = (int)(M > 1 ? M : 1), lk = (int)(K > 1 ? K : 1), ln = (int)(N > 1 ? N : 1);
    const int lda = ta ? lm : lk, ldb = tb ? lk : ln;
    float ba, bb;
    float *ga = ff_grad_buf(tp, n->in[0], &ba), *gb = ff_grad_buf(tp, n->in[1], &bb);
    for (int64_t q = 0; q < B; q++) {
        const float *A = n->x[0] + q * M * K, *Bm = n->x[1] + q * K * N, *G = n->g + q * M * N;
        float *dA = ga ? ga + q * M * K : NULL, *dB = gb ? gb + q * K * N : NULL;
        if (M == 0 || N == 0 || K == 0) {
            if (dA && ba == 0.0f) memset(dA, 0, (size_t)(M * K) * sizeof(float));
            if (dB && bb == 0.0f) memset(dB, 0, (size_t)(K * N) * sizeof(float));
            continue;
        }
        /* dop(a)[M,K] = G op(b)^T; stored transposed when ta: da = op(b) G^T [K,M] */
        if (dA && !ta)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tr(!tb), (int)M, (int)K, (int)N, 1.0f, G, ln, Bm, ldb, ba, dA, lk);
        else if (dA)
            cblas_sgemm(CblasRowMajor, tr(tb), CblasTrans, (int)K, (int)M, (int)N, 1.0f, Bm, ldb, G, ln, ba, dA, lm);
        /* dop(b)[K,N] = op(a)^T G; stored transposed when tb: db = G^T op(a) [N,K] */
        if (dB && !tb)
            cblas_sgemm(CblasRowMajor, tr(!ta), CblasNoTrans, (int)K, (int)N, (int)M, 1.0f, A, lda, G, ln, bb, dB, ln);
        else if (dB)
            cblas_sgemm(CblasRowMajor, CblasTrans, tr(ta), (int)N, (int)K, (int)M, 1.0f, G, ln, A, lda, bb, dB, lk);
    }
}

/* ---- fused multi-head self-attention ---------------------------------------------------------- */

/* qkv[n, L, 3C] = [q | k | v] per row, head h at columns h*dh .. (h+1)*dh of each third, C = heads*dh:
 * out[n, L, C], head h's columns = softmax(q_h k_h^T / sqrt(dh)) v_h. Bidirectional (no mask). */
ff_tensor_t *ff_attention(ff_tape_t *tp, ff_tensor_t *qkv, int heads) {
    char s1[96];
    if (!ff_op_begin(tp, "ff_attention", 1, qkv, NULL, NULL)) return NULL;
    if (qkv->ndim != 3 || heads < 1 || qkv->shape[1] < 1 || qkv->shape[2] < 1 ||
        qkv->shape[2] % (3 * (int64_t)heads) != 0)
        return ff_op_fail(tp, FF_ESHAPE, "ff_attention: qkv [%s], heads %d: expected qkv[n, L >= 1, 3*C] with C "
                          "a positive multiple of heads", FF_SHAPE(qkv, s1), heads);
    const int64_t nb = qkv->shape[0], L = qkv->shape[1], C = qkv->shape[2] / 3, H = heads, dh = C / H;
    if (L > INT_MAX || 3 * C > INT_MAX)
        return ff_op_fail(tp, FF_EINVAL, "ff_attention: qkv [%s]: a matrix dimension exceeds BLAS's int range",
                          FF_SHAPE(qkv, s1));
    const float *x = ff_op_contig(tp, qkv);
    ff_tensor_t *out = ff_op_out(tp, 3, (int64_t[]){ nb, L, C });
    /* P is kept for backward only when a node will be recorded; otherwise one L x L scratch */
    const int keep = ff_tape_grad_enabled(tp) && ff_requires_grad(tp, qkv);
    float *P = ff_arena_floats(tp, (keep ? nb * H : 1) * L * L);
    if (!x || !out || !P) return NULL;
    const float scale = 1.0f / sqrtf((float)dh);
    const int ld = (int)(3 * C);
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < H; h++) {
            const float *q = x + b * L * 3 * C + h * dh, *k = q + C, *v = q + 2 * C;
            float *p = P + (keep ? (b * H + h) * L * L : 0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)L, (int)L, (int)dh, scale, q, ld, k, ld,
                        0.0f, p, (int)L);
            for (int64_t i = 0; i < L; i++) softmax_row(p + i * L, p + i * L, L);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)L, (int)dh, (int)L, 1.0f, p, (int)L, v, ld,
                        0.0f, out->data + b * L * C + h * dh, (int)C);
        }
    ff_node_t *n = keep ? ff_node_new(tp, FF_OP_ATTENTION, out, 1, qkv, x, NULL, NULL, NULL, NULL) : NULL;
    if (n) { n->aux[0] = P; n->i[0] = nb; n->i[1] = L; n->i[2] = C; n->i[3] = H; }
    return out;
}

/* Per head, with S = s q k^T, P = softmax(S), O = P v and G = dO:
 * dv = P^T G, dP = G v^T, dS = P * (dP - rowsum(dP * P)), dq = s dS k, dk = s dS^T q. */
void ff_bw_attention(ff_tape_t *tp, ff_node_t *n) {
    float beta;
    float *gx = ff_grad_buf(tp, n->in[0], &beta);
    if (!gx) return;
    const int64_t nb = n->i[0], L = n->i[1], C = n->i[2], H = n->i[3], dh = C / H;
    const float scale = 1.0f / sqrtf((float)dh);
    const int ld = (int)(3 * C), l = (int)L, d = (int)dh;
    float *dP = ff_arena_floats(tp, L * L);
    if (!dP) return;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t off = b * L * 3 * C + h * dh;
            const float *q = n->x[0] + off, *k = q + C, *v = q + 2 * C;
            const float *P = n->aux[0] + (b * H + h) * L * L, *G = n->g + b * L * C + h * dh;
            float *dq = gx + off, *dk = dq + C, *dv = dq + 2 * C;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l, d, l, 1.0f, P, l, G, (int)C, beta, dv, ld);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l, l, d, 1.0f, G, (int)C, v, ld, 0.0f, dP, l);
            for (int64_t i = 0; i < L; i++) softmax_row_bw(dP + i * L, P + i * L, dP + i * L, L, 0.0f);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l, d, l, scale, dP, l, k, ld, beta, dq, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l, d, l, scale, dP, l, q, ld, beta, dk, ld);
        }
}
