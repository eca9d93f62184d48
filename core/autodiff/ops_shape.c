/* ops_shape.c — concat (last axis), reshape (shares the input's data when it is contiguous),
 * transpose (contiguous result) and embedding lookups.
 */
#include <math.h>
#include <string.h>
#include "tape_internal.h"

/* ---- concat ----------------------------------------------------------------------------------- */

ff_tensor_t *ff_concat(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b) {
    char s1[96], s2[96];
    if (!ff_op_begin(tp, "ff_concat", 2, a, b, NULL)) return NULL;
    int ok = a->ndim == b->ndim && a->ndim >= 1;
    for (int i = 0; ok && i < a->ndim - 1; i++) ok = a->shape[i] == b->shape[i];
    if (!ok)
        return ff_op_fail(tp, FF_ESHAPE, "ff_concat: [%s] and [%s]: all dims but the last must be equal",
                          FF_SHAPE(a, s1), FF_SHAPE(b, s2));
    const int nd = a->ndim;
    const int64_t ca = a->shape[nd - 1], cb = b->shape[nd - 1], rows = ff_prod(a->shape, 0, nd - 1);
    int64_t shape[FF_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[nd - 1] = ca + cb;
    const float *xa = ff_op_contig(tp, a), *xb = ff_op_contig(tp, b);
    ff_tensor_t *out = ff_op_out(tp, nd, shape);
    if (!xa || !xb || !out) return NULL;
    for (int64_t r = 0; r < rows; r++) {
        memcpy(out->data + r * (ca + cb), xa + r * ca, (size_t)ca * sizeof(float));
        memcpy(out->data + r * (ca + cb) + ca, xb + r * cb, (size_t)cb * sizeof(float));
    }
    ff_node_t *n = ff_node_new(tp, FF_OP_CONCAT, out, 2, a, xa, b, xb, NULL, NULL);
    if (n) { n->i[0] = rows; n->i[1] = ca; n->i[2] = cb; }
    return out;
}

void ff_bw_concat(ff_tape_t *tp, ff_node_t *n) {
    const int64_t rows = n->i[0], ca = n->i[1], cb = n->i[2], c = ca + cb;
    for (int k = 0; k < 2; k++) {
        float beta;
        float *gx = ff_grad_buf(tp, n->in[k], &beta);
        if (!gx) continue;
        const int64_t w = k ? cb : ca, off = k ? ca : 0;
        for (int64_t r = 0; r < rows; r++) ff_acc(gx + r * w, n->g + r * c + off, w, beta);
    }
}

/* ---- reshape ---------------------------------------------------------------------------------- */

ff_tensor_t *ff_reshape(ff_tape_t *tp, ff_tensor_t *a, int ndim, const int64_t *shape) {
    char s1[96];
    if (!ff_op_begin(tp, "ff_reshape", 1, a, NULL, NULL)) return NULL;
    if (ndim < 0 || ndim > FF_MAX_DIMS || (ndim > 0 && !shape))
        return ff_op_fail(tp, FF_EINVAL, "ff_reshape: [%s]: ndim %d outside [0, %d] or shape NULL",
                          FF_SHAPE(a, s1), ndim, FF_MAX_DIMS);
    int64_t want[FF_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        want[i] = shape[i];
        if (shape[i] == -1 && infer < 0) { infer = i; continue; }
        if (shape[i] < 0)
            return ff_op_fail(tp, FF_EINVAL, "ff_reshape: [%s]: size %lld at dim %d of the new shape",
                              FF_SHAPE(a, s1), (long long)shape[i], i);
        known *= shape[i];
    }
    const int64_t N = ff_tensor_numel(a);
    if (infer >= 0) {
        if (known == 0 || N % known != 0)
            return ff_op_fail(tp, FF_ESHAPE, "ff_reshape: [%s] (%lld elements): cannot infer dim %d",
                              FF_SHAPE(a, s1), (long long)N, infer);
        want[infer] = N / known;
        known = N;
    }
    if (known != N)
        return ff_op_fail(tp, FF_ESHAPE, "ff_reshape: [%s] has %lld elements, the new shape %lld",
                          FF_SHAPE(a, s1), (long long)N, (long long)known);
    const float *x = ff_op_contig(tp, a);
    ff_tensor_t *out = x ? ff_op_out(tp, 0, NULL) : NULL;   /* header only; data shared below */
    if (!out) return NULL;
    out->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) { out->shape[i] = want[i]; out->stride[i] = s; s *= want[i]; }
    out->data = (float *)x;
    ff_node_new(tp, FF_OP_RESHAPE, out, 1, a, x, NULL, NULL, NULL, NULL);
    return out;
}

void ff_bw_reshape(ff_tape_t *tp, ff_node_t *n) {
    float beta;
    float *gx = ff_grad_buf(tp, n->in[0], &beta);
    if (gx) ff_acc(gx, n->g, ff_tensor_numel(n->out), beta);
}

/* ---- transpose -------------------------------------------------------------------------------- */

/* Copies src (logical shape sh, element strides st) into contiguous dst. */
static void gather4(float *restrict dst, const float *restrict src, const int64_t *sh, const int64_t *st) {
    for (int64_t i0 = 0; i0 < sh[0]; i0++)
    for (int64_t i1 = 0; i1 < sh[1]; i1++)
    for (int64_t i2 = 0; i2 < sh[2]; i2++) {
        const float *s = src + i0 * st[0] + i1 * st[1] + i2 * st[2];
        for (int64_t i3 = 0; i3 < sh[3]; i3++) *dst++ = s[i3 * st[3]];
    }
}

/* Output shape/strides over the (contiguous) input for swapping axes a0, a1, padded to 4 dims. */
static void swapped(const ff_tensor_t *t, int a0, int a1, int64_t *sh, int64_t *st) {
    int64_t s[FF_MAX_DIMS], c[FF_MAX_DIMS], acc = 1;
    for (int i = t->ndim - 1; i >= 0; i--) { c[i] = acc; acc *= t->shape[i]; s[i] = t->shape[i]; }
    int64_t x = s[a0]; s[a0] = s[a1]; s[a1] = x;
    x = c[a0]; c[a0] = c[a1]; c[a1] = x;
    const int pad = 4 - t->ndim;
    for (int i = 0; i < 4; i++) { sh[i] = 1; st[i] = 0; }
    for (int i = 0; i < t->ndim; i++) { sh[pad + i] = s[i]; st[pad + i] = c[i]; }
}

ff_tensor_t *ff_transpose(ff_tape_t *tp, ff_tensor_t *a, int axis0, int axis1) {
    char s1[96];
    if (!ff_op_begin(tp, "ff_transpose", 1, a, NULL, NULL)) return NULL;
    int a0 = axis0 < 0 ? axis0 + a->ndim : axis0, a1 = axis1 < 0 ? axis1 + a->ndim : axis1;
    if (a0 < 0 || a1 < 0 || a0 >= a->ndim || a1 >= a->ndim)
        return ff_op_fail(tp, FF_EINVAL, "ff_transpose: [%s]: axes %d, %d out of range for %d dims",
                          FF_SHAPE(a, s1), axis0, axis1, (int)a->ndim);
    int64_t sh[4], st[4], shape[FF_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[a0] = a->shape[a1];
    shape[a1] = a->shape[a0];
    const float *x = ff_op_contig(tp, a);
    ff_tensor_t *out = ff_op_out(tp, a->ndim, shape);
    if (!x || !out) return NULL;
    swapped(a, a0, a1, sh, st);
    gather4(out->data, x, sh, st);
    ff_node_t *n = ff_node_new(tp, FF_OP_TRANSPOSE, out, 1, a, x, NULL, NULL, NULL, NULL);
    if (n) { n->i[0] = a0; n->i[1] = a1; }
    return out;
}

void ff_bw_transpose(ff_tape_t *tp, ff_node_t *n) {
    float beta;
    float *gx = ff_grad_buf(tp, n->in[0], &beta);
    if (!gx) return;
    int64_t sh[4], st[4];
    swapped(n->out, (int)n->i[0], (int)n->i[1], sh, st);   /* transposing back is the same swap */
    const int64_t N = ff_tensor_numel(n->out);
    float *t = beta == 0.0f ? gx : ff_arena_floats(tp, N);
    if (!t) return;
    gather4(t, n->g, sh, st);
    if (t != gx) ff_acc(gx, t, N, 1.0f);
}

/* ---- embedding -------------------------------------------------------------------------------- */

ff_tensor_t *ff_embedding(ff_tape_t *tp, ff_tensor_t *table, const ff_tensor_t *ids) {
    char s1[96], s2[96];
    if (!ff_op_begin(tp, "ff_embedding", 2, table, (ff_tensor_t *)ids, NULL)) return NULL;
    if (table->ndim != 2 || ids->ndim + 1 > FF_MAX_DIMS)
        return ff_op_fail(tp, FF_ESHAPE, "ff_embedding: table [%s], ids [%s]: expected table[V,E] and ids with at most %d dims",
                          FF_SHAPE(table, s1), FF_SHAPE(ids, s2), FF_MAX_DIMS - 1);
    if (ff_requires_grad(tp, ids))
        return ff_op_fail(tp, FF_EINVAL, "ff_embedding: ids [%s] carry a gradient; ids are integer labels",
                          FF_SHAPE(ids, s2));
    const int64_t V = table->shape[0], E = table->shape[1], N = ff_tensor_numel(ids);
    const float *id = ff_op_contig(tp, ids), *tab = ff_op_contig(tp, table);
    if (!id || !tab) return NULL;
    for (int64_t i = 0; i < N; i++)
        if (!(id[i] >= 0.0f && id[i] < (float)V && id[i] == floorf(id[i])))
            return ff_op_fail(tp, FF_EINVAL, "ff_embedding: ids[%lld] = %g is not an integer in [0, %lld) (table [%s])",
                              (long long)i, (double)id[i], (long long)V, FF_SHAPE(table, s1));
    int64_t shape[FF_MAX_DIMS];
    for (int i = 0; i < ids->ndim; i++) shape[i] = ids->shape[i];
    shape[ids->ndim] = E;
    ff_tensor_t *out = ff_op_out(tp, ids->ndim + 1, shape);
    if (!out) return NULL;
    for (int64_t i = 0; i < N; i++) memcpy(out->data + i * E, tab + (int64_t)id[i] * E, (size_t)E * sizeof(float));
    ff_node_t *n = ff_node_new(tp, FF_OP_EMBEDDING, out, 2, table, tab, (ff_tensor_t *)ids, id, NULL, NULL);
    if (n) { n->i[0] = N; n->i[1] = E; n->i[2] = V; }
    return out;
}

void ff_bw_embedding(ff_tape_t *tp, ff_node_t *n) {
    float beta;
    float *gt = ff_grad_buf(tp, n->in[0], &beta);
    if (!gt) return;
    const int64_t N = n->i[0], E = n->i[1], V = n->i[2];
    if (beta == 0.0f) memset(gt, 0, (size_t)(V * E) * sizeof(float));
    for (int64_t i = 0; i < N; i++) {
        float *row = gt + (int64_t)n->x[1][i] * E;
        const float *g = n->g + i * E;
        for (int64_t j = 0; j < E; j++) row[j] += g[j];
    }
}
