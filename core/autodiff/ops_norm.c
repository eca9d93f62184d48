/* ops_norm.c — per-row ops over the last axis: layer norm (PyTorch semantics: biased variance,
 * eps inside the square root) and the sphere's tangent projection P_x(v) = v - <x,v> x (MATH.md).
 */
#include <math.h>
#include <string.h>
#include "tape_internal.h"

/* ---- layer norm ------------------------------------------------------------------------------- */

/* Rows of y = (x - mean) * rstd * g + b over C channels; a missing gamma / beta is passed as ones /
 * zeros (exact: h * 1 = h, h + 0 = h), so the inner loops have no branch and vectorise. */
FF_CLONES static void ln_fw_rows(float *restrict y, float *restrict mean, float *restrict rstd,
                                 const float *restrict xs, const float *restrict gs, const float *restrict bs,
                                 int64_t R, int64_t C, float eps) {
    for (int64_t r = 0; r < R; r++) {
        const float *restrict xr = xs + r * C;
        float *restrict yr = y + r * C;
        const float m = C > 0 ? ff_sum8(xr, C) / (float)C : 0.0f;
        const float v = C > 0 ? ff_sqdev8(xr, m, C) / (float)C : 0.0f;
        const float rs = 1.0f / sqrtf(v + eps);
        mean[r] = m; rstd[r] = rs;
        for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - m) * rs * gs[j] + bs[j];
    }
}

/* gx (beta_x 0: =, else +=) = rstd * (dh - mean(dh) - h * mean(dh * h)), dh = g * gamma,
 * h = (x - mean) * rstd; gg += sum_r g h, gbeta += sum_r g (each may be NULL). The two row sums
 * with 8 partial sums each (see ff_sum8), gamma as ones when absent. */
FF_CLONES static void ln_bw_rows(float *restrict gx, float bx, float *restrict gg, float *restrict gbeta,
                                 const float *restrict xs, const float *restrict gs, const float *restrict g,
                                 const float *restrict mean, const float *restrict rstd, int64_t R, int64_t C) {
    for (int64_t r = 0; r < R; r++) {
        const float *restrict xr = xs + r * C, *restrict gr = g + r * C;
        const float m = mean[r], rs = rstd[r];
        if (gg && gbeta) for (int64_t j = 0; j < C; j++) { gg[j] += gr[j] * ((xr[j] - m) * rs); gbeta[j] += gr[j]; }
        else if (gg)     for (int64_t j = 0; j < C; j++) gg[j] += gr[j] * ((xr[j] - m) * rs);
        else if (gbeta)  for (int64_t j = 0; j < C; j++) gbeta[j] += gr[j];
        if (!gx) continue;
        float a1[8] = { 0 }, a2[8] = { 0 }, s1 = 0, s2 = 0;
        int64_t j = 0;
        for (; j + 8 <= C; j += 8)
            for (int q = 0; q < 8; q++) {
                const float dh = gr[j + q] * gs[j + q], h = (xr[j + q] - m) * rs;
                a1[q] += dh; a2[q] += dh * h;
            }
        for (; j < C; j++) {
            const float dh = gr[j] * gs[j], h = (xr[j] - m) * rs;
            s1 += dh; s2 += dh * h;
        }
        s1 += ((a1[0] + a1[4]) + (a1[1] + a1[5])) + ((a1[2] + a1[6]) + (a1[3] + a1[7]));
        s2 += ((a2[0] + a2[4]) + (a2[1] + a2[5])) + ((a2[2] + a2[6]) + (a2[3] + a2[7]));
        s1 /= (float)C; s2 /= (float)C;
        float *restrict dr = gx + r * C;
        if (bx == 0.0f) for (j = 0; j < C; j++) dr[j]  = rs * (gr[j] * gs[j] - s1 - (xr[j] - m) * rs * s2);
        else            for (j = 0; j < C; j++) dr[j] += rs * (gr[j] * gs[j] - s1 - (xr[j] - m) * rs * s2);
    }
}

/* gamma / beta, or C ones / zeros from the arena when absent */
static const float *ln_param(ff_tape_t *tp, const ff_tensor_t *p, int64_t C, float fill) {
    if (p) return ff_op_contig(tp, p);
    float *v = ff_arena_floats(tp, C);
    for (int64_t j = 0; v && j < C; j++) v[j] = fill;
    return v;
}

ff_tensor_t *ff_layer_norm(ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *gamma, ff_tensor_t *beta, float eps) {
    char s1[96], s2[96];
    if (!ff_op_begin(tp, "ff_layer_norm", 1, x, gamma, beta)) return NULL;
    if (x->ndim < 1)
        return ff_op_fail(tp, FF_ESHAPE, "ff_layer_norm: x [%s] has no axis to normalise", FF_SHAPE(x, s1));
    const int64_t C = x->shape[x->ndim - 1], R = ff_prod(x->shape, 0, x->ndim - 1);
    ff_tensor_t *gb[2] = { gamma, beta };
    for (int k = 0; k < 2; k++)
        if (gb[k] && (gb[k]->ndim != 1 || gb[k]->shape[0] != C))
            return ff_op_fail(tp, FF_ESHAPE, "ff_layer_norm: x [%s], %s [%s]: expected [%lld]", FF_SHAPE(x, s1),
                              k ? "beta" : "gamma", FF_SHAPE(gb[k], s2), (long long)C);
    if (!(eps >= 0.0f))
        return ff_op_fail(tp, FF_EINVAL, "ff_layer_norm: eps = %g must be >= 0", (double)eps);
    const float *xs = ff_op_contig(tp, x);
    const float *gs = ln_param(tp, gamma, C, 1.0f), *bs = ln_param(tp, beta, C, 0.0f);
    ff_tensor_t *out = ff_op_out(tp, x->ndim, x->shape);
    float *mean = ff_arena_floats(tp, R), *rstd = ff_arena_floats(tp, R);
    if (!xs || !gs || !bs || !out || !mean || !rstd) return NULL;
    ln_fw_rows(out->data, mean, rstd, xs, gs, bs, R, C, eps);
    /* x[1] is gamma's data or the ones (backward multiplies by it either way) */
    ff_node_t *n = ff_node_new(tp, FF_OP_LAYER_NORM, out, 3, x, xs, gamma, gs, beta, bs);
    if (n) { n->aux[0] = mean; n->aux[1] = rstd; n->i[0] = R; n->i[1] = C; }
    return out;
}

void ff_bw_layer_norm(ff_tape_t *tp, ff_node_t *n) {
    const int64_t R = n->i[0], C = n->i[1];
    float bx, bg, bb;
    float *gx = ff_grad_buf(tp, n->in[0], &bx);
    float *gg = n->in[1] ? ff_grad_buf(tp, n->in[1], &bg) : NULL;
    float *gbeta = n->in[2] ? ff_grad_buf(tp, n->in[2], &bb) : NULL;
    if (!gx && !gg && !gbeta) return;
    if (gg && bg == 0.0f) memset(gg, 0, (size_t)C * sizeof(float));
    if (gbeta && bb == 0.0f) memset(gbeta, 0, (size_t)C * sizeof(float));
    ln_bw_rows(gx, bx, gg, gbeta, n->x[0], n->x[1], n->g, n->aux[0], n->aux[1], R, C);
}

/* ---- tangent projection on the sphere --------------------------------------------------------- */

ff_tensor_t *ff_sphere_project(ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *v) {
    char s1[96], s2[96];
    if (!ff_op_begin(tp, "ff_sphere_project", 2, x, v, NULL)) return NULL;
    if (x->ndim < 1 || !ff_tensor_same_shape(x, v))
        return ff_op_fail(tp, FF_ESHAPE, "ff_sphere_project: x [%s], v [%s]: shapes must be equal [.., d+1]",
                          FF_SHAPE(x, s1), FF_SHAPE(v, s2));
    const int64_t D = x->shape[x->ndim - 1], R = ff_prod(x->shape, 0, x->ndim - 1);
    const float *xs = ff_op_contig(tp, x), *vs = ff_op_contig(tp, v);
    ff_tensor_t *out = ff_op_out(tp, x->ndim, x->shape);
    if (!xs || !vs || !out) return NULL;
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xs + r * D, *vr = vs + r * D;
        float *yr = out->data + r * D;
        const float d = ff_dot8(xr, vr, D);
        for (int64_t j = 0; j < D; j++) yr[j] = vr[j] - d * xr[j];
    }
    ff_node_t *n = ff_node_new(tp, FF_OP_SPHERE_PROJECT, out, 2, x, xs, v, vs, NULL, NULL);
    if (n) { n->i[0] = R; n->i[1] = D; }
    return out;
}

/* dv = g - <x,g> x,  dx = -<x,v> g - <x,g> v */
void ff_bw_sphere_project(ff_tape_t *tp, ff_node_t *n) {
    const int64_t R = n->i[0], D = n->i[1];
    const float *xs = n->x[0], *vs = n->x[1], *g = n->g;
    float bx, bv;
    float *gx = ff_grad_buf(tp, n->in[0], &bx);
    float *gv = ff_grad_buf(tp, n->in[1], &bv);
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xs + r * D, *vr = vs + r * D, *gr = g + r * D;
        const float xg = ff_dot8(xr, gr, D), xv = ff_dot8(xr, vr, D);
        /* gx is written before gv: they may share a buffer (x == v) */
        if (gx) {
            float *o = gx + r * D;
            if (bx == 0.0f) for (int64_t j = 0; j < D; j++) o[j]  = -xv * gr[j] - xg * vr[j];
            else            for (int64_t j = 0; j < D; j++) o[j] += -xv * gr[j] - xg * vr[j];
        }
        if (gv) {
            float *o = gv + r * D;
            if (bv == 0.0f) for (int64_t j = 0; j < D; j++) o[j]  = gr[j] - xg * xr[j];
            else            for (int64_t j = 0; j < D; j++) o[j] += gr[j] - xg * xr[j];
        }
    }
}
