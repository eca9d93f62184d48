/* ops_reduce.c — sums and means over one axis or over everything. The tensor is viewed as
 * [outer, n, inner] around the reduced axis; totals over everything accumulate in double.
 */
#include <string.h>
#include "tape_internal.h"

/* node->i: 0 outer, 1 n, 2 inner; f[0] the scale (1 or 1/n) */
static ff_tensor_t *reduce_axis(ff_tape_t *tp, int op, const char *fn, ff_tensor_t *a, int axis, int keepdim) {
    char b[96];
    if (!ff_op_begin(tp, fn, 1, a, NULL, NULL)) return NULL;
    int ax = axis < 0 ? axis + a->ndim : axis;
    if (ax < 0 || ax >= a->ndim)
        return ff_op_fail(tp, FF_EINVAL, "%s: [%s]: axis %d out of range for %d dims", fn, FF_SHAPE(a, b), axis, (int)a->ndim);
    const int64_t outer = ff_prod(a->shape, 0, ax), n = a->shape[ax], inner = ff_prod(a->shape, ax + 1, a->ndim);
    int64_t shape[FF_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i == ax && !keepdim) continue;
        shape[nd++] = i == ax ? 1 : a->shape[i];
    }
    if (nd == 0) shape[nd++] = 1;         /* reducing a 1-D tensor gives [1] */
    const float *x = ff_op_contig(tp, a);
    ff_tensor_t *out = ff_op_out(tp, nd, shape);
    if (!x || !out) return NULL;
    const float scale = (op == FF_OP_MEAN && n > 0) ? 1.0f / (float)n : 1.0f;
    float *y = out->data;
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * n * inner;
        float *yo = y + o * inner;
        if (inner == 1) {
            yo[0] = ff_sum8(xo, n) * scale;
        } else {
            memset(yo, 0, (size_t)inner * sizeof(float));
            for (int64_t j = 0; j < n; j++) {
                const float *r = xo + j * inner;
                for (int64_t i = 0; i < inner; i++) yo[i] += r[i];
            }
            if (scale != 1.0f) for (int64_t i = 0; i < inner; i++) yo[i] *= scale;
        }
    }
    ff_node_t *nd_ = ff_node_new(tp, op, out, 1, a, x, NULL, NULL, NULL, NULL);
    if (nd_) { nd_->i[0] = outer; nd_->i[1] = n; nd_->i[2] = inner; nd_->f[0] = scale; }
    return out;
}

static void bw_reduce_axis(ff_tape_t *tp, ff_node_t *nd) {
    float beta;
    float *gx = ff_grad_buf(tp, nd->in[0], &beta);
    if (!gx) return;
    const int64_t outer = nd->i[0], n = nd->i[1], inner = nd->i[2];
    const float scale = nd->f[0], *g = nd->g;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < n; j++) {
            float *r = gx + (o * n + j) * inner;
            const float *go = g + o * inner;
            if (beta == 0.0f) for (int64_t i = 0; i < inner; i++) r[i]  = scale * go[i];
            else              for (int64_t i = 0; i < inner; i++) r[i] += scale * go[i];
        }
}

ff_tensor_t *ff_sum (ff_tape_t *tp, ff_tensor_t *a, int axis, int keepdim) { return reduce_axis(tp, FF_OP_SUM,  "ff_sum",  a, axis, keepdim); }
ff_tensor_t *ff_mean(ff_tape_t *tp, ff_tensor_t *a, int axis, int keepdim) { return reduce_axis(tp, FF_OP_MEAN, "ff_mean", a, axis, keepdim); }
void ff_bw_sum (ff_tape_t *tp, ff_node_t *n) { bw_reduce_axis(tp, n); }
void ff_bw_mean(ff_tape_t *tp, ff_node_t *n) { bw_reduce_axis(tp, n); }

static ff_tensor_t *reduce_all(ff_tape_t *tp, int op, const char *fn, ff_tensor_t *a) {
    if (!ff_op_begin(tp, fn, 1, a, NULL, NULL)) return NULL;
    const int64_t N = ff_tensor_numel(a);
    const float *x = ff_op_contig(tp, a);
    ff_tensor_t *out = ff_op_out(tp, 1, (int64_t[]){ 1 });
    if (!x || !out) return NULL;
    /* float partial sums per block of 4096 keep the loop fast; blocks add up in double */
    double s = 0;
    for (int64_t i0 = 0; i0 < N; i0 += 4096) {
        const int64_t e = i0 + 4096 < N ? i0 + 4096 : N;
        s += ff_sum8(x + i0, e - i0);
    }
    const float scale = (op == FF_OP_MEAN_ALL && N > 0) ? 1.0f / (float)N : 1.0f;
    out->data[0] = (float)(op == FF_OP_MEAN_ALL && N > 0 ? s / (double)N : s);
    ff_node_t *n = ff_node_new(tp, op, out, 1, a, x, NULL, NULL, NULL, NULL);
    if (n) n->f[0] = scale;
    return out;
}

static void bw_reduce_all(ff_tape_t *tp, ff_node_t *n) {
    float beta;
    float *gx = ff_grad_buf(tp, n->in[0], &beta);
    if (!gx) return;
    const float v = n->g[0] * n->f[0];
    const int64_t N = ff_tensor_numel(n->in[0]);
    if (beta == 0.0f) for (int64_t i = 0; i < N; i++) gx[i] = v;
    else              for (int64_t i = 0; i < N; i++) gx[i] += v;
}

ff_tensor_t *ff_sum_all (ff_tape_t *tp, ff_tensor_t *a) { return reduce_all(tp, FF_OP_SUM_ALL,  "ff_sum_all",  a); }
ff_tensor_t *ff_mean_all(ff_tape_t *tp, ff_tensor_t *a) { return reduce_all(tp, FF_OP_MEAN_ALL, "ff_mean_all", a); }
void ff_bw_sum_all (ff_tape_t *tp, ff_node_t *n) { bw_reduce_all(tp, n); }
void ff_bw_mean_all(ff_tape_t *tp, ff_node_t *n) { bw_reduce_all(tp, n); }
