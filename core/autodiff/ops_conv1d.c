/* ops_conv1d.c — dilated 1-D convolution, channels last, stride 1, zero padding: im2col + one
 * sgemm per chunk of output rows (cache-sized chunks of the im2col buffer); backward via two sgemm calls
 * per chunk and col2im. Matches torch.nn.functional.conv1d on the transposed layout.
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>
#include "tape_internal.h"

/* floats per im2col chunk (1 MiB): the chunk is written by im2col and read right away by the GEMM's
 * packing, so it should stay in L2 (2 MiB per core here); 16 MiB chunks made the forward's packing
 * read from L3/DRAM and cost 26% more CPU per cnn1d forward at hidden 64 (bench_cnn1d). */
#define COLS_CAP ((int64_t)1 << 18)

typedef struct conv_geom { int64_t N, L, Cin, Cout, K, dil, pad, Lout; } conv_geom;

/* cols[r - r0, k*Cin + c] = x[b, t - pad + k*dil, c] (0 outside), row r = b*Lout + t. Segments are
 * Cin floats (256 bytes at hidden 64): copied by an inline vector loop, not a memcpy call each
 * (GCC would turn the loop back into calls without no-tree-loop-distribute-patterns). */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
FF_CLONES static void im2col(const conv_geom *g, const float *restrict x, int64_t r0, int64_t r1, float *restrict cols) {
    const int64_t KC = g->K * g->Cin;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / g->Lout, t = r % g->Lout;
        float *row = cols + (r - r0) * KC;
        for (int64_t k = 0; k < g->K; k++) {
            const int64_t s = t - g->pad + k * g->dil;
            float *restrict d = row + k * g->Cin;
            if (s >= 0 && s < g->L) {
                const float *restrict src = x + (b * g->L + s) * g->Cin;
                for (int64_t c = 0; c < g->Cin; c++) d[c] = src[c];
            } else for (int64_t c = 0; c < g->Cin; c++) d[c] = 0.0f;
        }
    }
}

/* dx[b, s, c] += dcols[r - r0, k*Cin + c] */
static void col2im(const conv_geom *g, const float *restrict dcols, int64_t r0, int64_t r1, float *restrict dx) {
    const int64_t KC = g->K * g->Cin;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t b = r / g->Lout, t = r % g->Lout;
        const float *row = dcols + (r - r0) * KC;
        for (int64_t k = 0; k < g->K; k++) {
            const int64_t s = t - g->pad + k * g->dil;
            if (s < 0 || s >= g->L) continue;
            float *d = dx + (b * g->L + s) * g->Cin;
            const float *src = row + k * g->Cin;
            for (int64_t c = 0; c < g->Cin; c++) d[c] += src[c];
        }
    }
}

static int64_t chunk_rows(const conv_geom *g) {
    const int64_t KC = g->K * g->Cin, rows = g->N * g->Lout;
    int64_t c = KC > 0 ? COLS_CAP / KC : rows;
    if (c < 1) c = 1;
    return c < rows ? c : rows;
}

static int direct(const conv_geom *g) { return g->K == 1 && g->pad == 0; }   /* cols == x */

ff_tensor_t *ff_conv1d(ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *w, ff_tensor_t *b, int dilation, int padding) {
    char s1[96], s2[96], s3[96];
    if (!ff_op_begin(tp, "ff_conv1d", 2, x, w, b)) return NULL;
    if (x->ndim != 3 || w->ndim != 3 || x->shape[2] != w->shape[2])
        return ff_op_fail(tp, FF_ESHAPE, "ff_conv1d: x [%s], w [%s]: expected x[n,L,Cin] and w[Cout,K,Cin] with equal Cin",
                          FF_SHAPE(x, s1), FF_SHAPE(w, s2));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return ff_op_fail(tp, FF_ESHAPE, "ff_conv1d: w [%s], b [%s]: bias must be [%lld]",
                          FF_SHAPE(w, s2), FF_SHAPE(b, s3), (long long)w->shape[0]);
    if (dilation < 1 || padding < 0)
        return ff_op_fail(tp, FF_EINVAL, "ff_conv1d: dilation %d must be >= 1 and padding %d >= 0", dilation, padding);
    conv_geom g = { x->shape[0], x->shape[1], x->shape[2], w->shape[0], w->shape[1], dilation, padding, 0 };
    g.Lout = g.L + 2 * g.pad - g.dil * (g.K - 1);
    if (g.K < 1 || g.Lout < 1)
        return ff_op_fail(tp, FF_ESHAPE, "ff_conv1d: x [%s], w [%s], dilation %d, padding %d: output length %lld < 1",
                          FF_SHAPE(x, s1), FF_SHAPE(w, s2), dilation, padding, (long long)g.Lout);
    const int64_t KC = g.K * g.Cin, rows = g.N * g.Lout, chunk = chunk_rows(&g);
    if (KC > INT_MAX || g.Cout > INT_MAX || chunk > INT_MAX)
        return ff_op_fail(tp, FF_EINVAL, "ff_conv1d: x [%s], w [%s]: a matrix dimension exceeds BLAS's int range",
                          FF_SHAPE(x, s1), FF_SHAPE(w, s2));
    const float *xs = ff_op_contig(tp, x), *ws = ff_op_contig(tp, w), *bs = b ? ff_op_contig(tp, b) : NULL;
    ff_tensor_t *out = ff_op_out(tp, 3, (int64_t[]){ g.N, g.Lout, g.Cout });
    float *cols = direct(&g) ? NULL : ff_arena_floats(tp, chunk * KC);
    if (!xs || !ws || (b && !bs) || !out || (!direct(&g) && !cols)) return NULL;
    float *y = out->data;
    if (KC == 0 || g.Cout == 0) {
        if (bs) for (int64_t r = 0; r < rows; r++) memcpy(y + r * g.Cout, bs, (size_t)g.Cout * sizeof(float));
        else memset(y, 0, (size_t)(rows * g.Cout) * sizeof(float));
    }
    for (int64_t r0 = 0; r0 < rows && KC > 0 && g.Cout > 0; r0 += chunk) {
        const int64_t r1 = r0 + chunk < rows ? r0 + chunk : rows;
        float *yc = y + r0 * g.Cout;
        const float *c = cols;
        if (direct(&g)) c = xs + r0 * KC; else im2col(&g, xs, r0, r1, cols);
        if (bs) for (int64_t r = r0; r < r1; r++) memcpy(y + r * g.Cout, bs, (size_t)g.Cout * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)g.Cout, (int)KC, 1.0f,
                    c, (int)KC, ws, (int)KC, bs ? 1.0f : 0.0f, yc, (int)g.Cout);
    }
    ff_node_t *n = ff_node_new(tp, FF_OP_CONV1D, out, 3, x, xs, w, ws, b, bs);
    if (n) {
        n->i[0] = g.N; n->i[1] = g.L; n->i[2] = g.Cin; n->i[3] = g.Cout;
        n->i[4] = g.K; n->i[5] = g.dil; n->i[6] = g.pad; n->i[7] = g.Lout;
    }
    return out;
}

void ff_bw_conv1d(ff_tape_t *tp, ff_node_t *n) {
    const conv_geom g = { n->i[0], n->i[1], n->i[2], n->i[3], n->i[4], n->i[5], n->i[6], n->i[7] };
    const int64_t KC = g.K * g.Cin, rows = g.N * g.Lout, chunk = chunk_rows(&g);
    const float *xs = n->x[0], *ws = n->x[1], *gy = n->g;
    float bx, bw, bb;
    float *gx = ff_grad_buf(tp, n->in[0], &bx);
    float *gw = ff_grad_buf(tp, n->in[1], &bw);
    float *gb = n->in[2] ? ff_grad_buf(tp, n->in[2], &bb) : NULL;
    if (gb && bb == 0.0f) memset(gb, 0, (size_t)g.Cout * sizeof(float));
    if (gx && bx == 0.0f) memset(gx, 0, (size_t)(g.N * g.L * g.Cin) * sizeof(float));
    if (gw && bw == 0.0f) memset(gw, 0, (size_t)(g.Cout * KC) * sizeof(float));
    const int gemm = KC > 0 && g.Cout > 0;
    float *cols = (gemm && gw && !direct(&g)) ? ff_arena_floats(tp, chunk * KC) : NULL;
    float *dcols = (gemm && gx && !direct(&g)) ? ff_arena_floats(tp, chunk * KC) : NULL;
    if (gemm && ((gw && !direct(&g) && !cols) || (gx && !direct(&g) && !dcols))) return;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {     /* per chunk, while gy's rows are in cache */
        const int64_t r1 = r0 + chunk < rows ? r0 + chunk : rows, m = r1 - r0;
        const float *gyc = gy + r0 * g.Cout;
        if (gb) for (int64_t r = 0; r < m; r++) for (int64_t o = 0; o < g.Cout; o++) gb[o] += gyc[r * g.Cout + o];
        if (!gemm) continue;
        if (gw) {                              /* dw[Cout, KC] += gy^T[Cout, m] cols[m, KC] */
            const float *c = cols;
            if (direct(&g)) c = xs + r0 * KC; else im2col(&g, xs, r0, r1, cols);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.Cout, (int)KC, (int)m, 1.0f,
                        gyc, (int)g.Cout, c, (int)KC, 1.0f, gw, (int)KC);
        }
        if (gx) {                              /* dcols[m, KC] = gy[m, Cout] w[Cout, KC] */
            float *d = direct(&g) ? gx + r0 * KC : dcols;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)KC, (int)g.Cout, 1.0f,
                        gyc, (int)g.Cout, ws, (int)KC, direct(&g) ? 1.0f : 0.0f, d, (int)KC);
            if (!direct(&g)) col2im(&g, dcols, r0, r1, gx);
        }
    }
}
