/* test_grad.c — every differentiable op against an independent double-precision reference: the
 * forward against a naive double loop, the float32 backward (a VJP with a random seed) against
 * central differences of that double reference. One table row (or more) per op; the
 * _Static_assert below fails the build when an op is added without a row. Also: random shapes and
 * broadcasts, strided inputs, gradient accumulation, tape errors, generations, memory stability.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ff_test.h"
#include "fisherflow/fisherflow.h"
#include "autodiff/ops_table.h"

_Static_assert(FF_OP_COUNT == 37, "a new op needs a row in the gradient table of tests/c/test_grad.c");

static const char *const op_names[FF_OP_COUNT] = {
#define NAME_(E, name, fn) name,
    FF_OPS(NAME_)
#undef NAME_
};
#define ff_op_names_for_test(op) op_names[op]

/* ---- double reference tensors ----------------------------------------------------------------- */

typedef struct dt { int nd; int64_t sh[4]; double *v; } dt;

static int64_t dnumel(const dt *t) { int64_t n = 1; for (int i = 0; i < t->nd; i++) n *= t->sh[i]; return n; }
static void dshape(dt *t, int nd, const int64_t *sh) { t->nd = nd; for (int i = 0; i < nd; i++) t->sh[i] = sh[i]; }

enum { V_ANY = 0, V_POS, V_UNIT, V_IDS, V_NEAR0 };

typedef struct gcase {
    int         op;
    const char *label;
    int         nin;
    int         nd[3];
    int64_t     sh[3][4];
    int         grad[3];       /* input needs a gradient                                 */
    int         strided[3];    /* pass a non-contiguous (transposed) view of the input   */
    int         kind[3];       /* value generator V_*                                    */
    float       f;             /* scalar argument (slope, s, eps, p)                     */
    int         ia, ib;        /* integer arguments (axis/keepdim, dilation/padding, ...) */
    int64_t     rsh[4]; int rnd;   /* reshape target                                    */
} gcase;

static double *dropout_mask;   /* recovered from the float forward; the reference reuses it */
/* float32 kernels vs double references: forward relative to the output's scale, gradient relative
 * to 1 + max |gradient| (central differences in double with h = 1e-5 are exact to ~1e-10 here) */
#define FWD_RTOL  2e-6
#define GRAD_RTOL 1e-5
static double corrupt_grad;    /* added to one analytic gradient entry: proves the checker can fail */
static double worst_grad_ratio, worst_fwd_ratio;   /* max error / tolerance over all checked cases */

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* out = op(in) in double; out->v allocated here (caller frees). */
static void ref(const gcase *c, dt *in, dt *out) {
    const dt *a = &in[0], *b = &in[1];
    int64_t N = dnumel(a);
    switch (c->op) {
    case FF_OP_LINEAR: {
        int64_t K = a->sh[a->nd - 1], O = b->sh[0], M = N / (K ? K : 1);
        dshape(out, a->nd, a->sh); out->sh[a->nd - 1] = O;
        out->v = calloc((size_t)(M * O + 1), sizeof(double));
        for (int64_t i = 0; i < M; i++) for (int64_t o = 0; o < O; o++) {
            double s = c->nin == 3 ? in[2].v[o] : 0;
            for (int64_t k = 0; k < K; k++) s += a->v[i * K + k] * b->v[o * K + k];
            out->v[i * O + o] = s;
        }
        return;
    }
    case FF_OP_MATMUL: {
        int64_t K = b->sh[0], Nn = b->sh[1], M = N / (K ? K : 1);
        dshape(out, a->nd, a->sh); out->sh[a->nd - 1] = Nn;
        out->v = calloc((size_t)(M * Nn + 1), sizeof(double));
        for (int64_t i = 0; i < M; i++) for (int64_t j = 0; j < Nn; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += a->v[i * K + k] * b->v[k * Nn + j];
            out->v[i * Nn + j] = s;
        }
        return;
    }
    case FF_OP_ADD: case FF_OP_SUB: case FF_OP_MUL: case FF_OP_DIV: {
        dshape(out, a->nd, a->sh);
        out->v = calloc((size_t)N + 1, sizeof(double));
        int off = a->nd - b->nd;
        for (int64_t i = 0; i < N; i++) {
            int64_t rem = i, bi = 0, bstride = 1;
            for (int d = a->nd - 1; d >= 0; d--) {
                int64_t id = rem % a->sh[d]; rem /= a->sh[d];
                if (d >= off) { int64_t bd = b->sh[d - off]; bi += (bd == 1 ? 0 : id) * bstride; bstride *= bd; }
            }
            double x = a->v[i], w = b->v[bi];
            out->v[i] = c->op == FF_OP_ADD ? x + w : c->op == FF_OP_SUB ? x - w : c->op == FF_OP_MUL ? x * w : x / w;
        }
        return;
    }
    case FF_OP_ADD_RELU: {
        dshape(out, a->nd, a->sh);
        out->v = calloc((size_t)N + 1, sizeof(double));
        for (int64_t i = 0; i < N; i++) out->v[i] = a->v[i] + (b->v[i] > 0 ? b->v[i] : c->f * b->v[i]);
        return;
    }
    case FF_OP_ADD_SCALAR: case FF_OP_MUL_SCALAR: case FF_OP_SQUARE: case FF_OP_SQRT: case FF_OP_EXP:
    case FF_OP_LOG: case FF_OP_SIN: case FF_OP_COS: case FF_OP_RELU: case FF_OP_LEAKY_RELU: case FF_OP_SILU:
    case FF_OP_GELU: case FF_OP_TANH: case FF_OP_SIGMOID: case FF_OP_DROPOUT: {
        dshape(out, a->nd, a->sh);
        out->v = calloc((size_t)N + 1, sizeof(double));
        for (int64_t i = 0; i < N; i++) {
            double x = a->v[i], y = 0, p = c->f;
            switch (c->op) {
            case FF_OP_ADD_SCALAR: y = x + p; break;
            case FF_OP_MUL_SCALAR: y = x * p; break;
            case FF_OP_SQUARE:     y = x * x; break;
            case FF_OP_SQRT:       y = sqrt(x); break;
            case FF_OP_EXP:        y = exp(x); break;
            case FF_OP_LOG:        y = log(x); break;
            case FF_OP_SIN:        y = sin(x); break;
            case FF_OP_COS:        y = cos(x); break;
            case FF_OP_RELU:       y = x > 0 ? x : 0; break;
            case FF_OP_LEAKY_RELU: y = x > 0 ? x : p * x; break;
            case FF_OP_SILU:       y = x * sigm(x); break;
            case FF_OP_GELU:       y = 0.5 * x * (1 + erf(x / sqrt(2.0))); break;
            case FF_OP_TANH:       y = tanh(x); break;
            case FF_OP_SIGMOID:    y = sigm(x); break;
            case FF_OP_DROPOUT:    y = x * dropout_mask[i]; break;
            }
            out->v[i] = y;
        }
        return;
    }
    case FF_OP_SUM: case FF_OP_MEAN: {
        int ax = c->ia < 0 ? c->ia + a->nd : c->ia;
        int64_t outer = 1, n = a->sh[ax], inner = 1;
        for (int i = 0; i < ax; i++) outer *= a->sh[i];
        for (int i = ax + 1; i < a->nd; i++) inner *= a->sh[i];
        out->nd = 0;
        for (int i = 0; i < a->nd; i++) { if (i == ax && !c->ib) continue; out->sh[out->nd++] = i == ax ? 1 : a->sh[i]; }
        if (out->nd == 0) out->sh[out->nd++] = 1;
        out->v = calloc((size_t)(outer * inner) + 1, sizeof(double));
        for (int64_t o = 0; o < outer; o++) for (int64_t j = 0; j < n; j++) for (int64_t i = 0; i < inner; i++)
            out->v[o * inner + i] += a->v[(o * n + j) * inner + i] / (c->op == FF_OP_MEAN ? (double)n : 1.0);
        return;
    }
    case FF_OP_SUM_ALL: case FF_OP_MEAN_ALL: {
        out->nd = 1; out->sh[0] = 1;
        out->v = calloc(1, sizeof(double));
        for (int64_t i = 0; i < N; i++) out->v[0] += a->v[i];
        if (c->op == FF_OP_MEAN_ALL) out->v[0] /= (double)N;
        return;
    }
    case FF_OP_CONCAT: {
        int64_t ca = a->sh[a->nd - 1], cb = b->sh[b->nd - 1], rows = N / (ca ? ca : 1);
        dshape(out, a->nd, a->sh); out->sh[a->nd - 1] = ca + cb;
        out->v = calloc((size_t)(rows * (ca + cb)) + 1, sizeof(double));
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t j = 0; j < ca; j++) out->v[r * (ca + cb) + j] = a->v[r * ca + j];
            for (int64_t j = 0; j < cb; j++) out->v[r * (ca + cb) + ca + j] = b->v[r * cb + j];
        }
        return;
    }
    case FF_OP_RESHAPE: {
        dshape(out, c->rnd, c->rsh);
        int64_t known = 1; int inf = -1;
        for (int i = 0; i < c->rnd; i++) { if (c->rsh[i] == -1) inf = i; else known *= c->rsh[i]; }
        if (inf >= 0) out->sh[inf] = N / known;
        out->v = calloc((size_t)N + 1, sizeof(double));
        memcpy(out->v, a->v, (size_t)N * sizeof(double));
        return;
    }
    case FF_OP_TRANSPOSE: {
        int a0 = c->ia, a1 = c->ib;
        dshape(out, a->nd, a->sh); out->sh[a0] = a->sh[a1]; out->sh[a1] = a->sh[a0];
        out->v = calloc((size_t)N + 1, sizeof(double));
        int64_t idx[4];
        for (int64_t i = 0; i < N; i++) {
            int64_t rem = i;
            for (int d = a->nd - 1; d >= 0; d--) { idx[d] = rem % a->sh[d]; rem /= a->sh[d]; }
            int64_t t = idx[a0]; idx[a0] = idx[a1]; idx[a1] = t;
            int64_t o = 0;
            for (int d = 0; d < a->nd; d++) o = o * out->sh[d] + idx[d];
            out->v[o] = a->v[i];
        }
        return;
    }
    case FF_OP_LAYER_NORM: {
        int64_t C = a->sh[a->nd - 1], R = N / C;
        dshape(out, a->nd, a->sh);
        out->v = calloc((size_t)N + 1, sizeof(double));
        for (int64_t r = 0; r < R; r++) {
            double m = 0, v = 0;
            for (int64_t j = 0; j < C; j++) m += a->v[r * C + j];
            m /= C;
            for (int64_t j = 0; j < C; j++) v += (a->v[r * C + j] - m) * (a->v[r * C + j] - m);
            v /= C;
            for (int64_t j = 0; j < C; j++) {
                double h = (a->v[r * C + j] - m) / sqrt(v + c->f);
                if (c->nd[1]) h *= in[1].v[j];
                if (c->nd[2]) h += in[2].v[j];
                out->v[r * C + j] = h;
            }
        }
        return;
    }
    case FF_OP_CONV1D: {
        int64_t n = a->sh[0], L = a->sh[1], Ci = a->sh[2], Co = b->sh[0], K = b->sh[1];
        int64_t dil = c->ia, pad = c->ib, Lo = L + 2 * pad - dil * (K - 1);
        out->nd = 3; out->sh[0] = n; out->sh[1] = Lo; out->sh[2] = Co;
        out->v = calloc((size_t)(n * Lo * Co) + 1, sizeof(double));
        for (int64_t s = 0; s < n; s++) for (int64_t t = 0; t < Lo; t++) for (int64_t o = 0; o < Co; o++) {
            double acc = c->nd[2] ? in[2].v[o] : 0;
            for (int64_t k = 0; k < K; k++) {
                int64_t src = t - pad + k * dil;
                if (src < 0 || src >= L) continue;
                for (int64_t ci = 0; ci < Ci; ci++) acc += b->v[(o * K + k) * Ci + ci] * a->v[(s * L + src) * Ci + ci];
            }
            out->v[(s * Lo + t) * Co + o] = acc;
        }
        return;
    }
    case FF_OP_EMBEDDING: {
        int64_t E = a->sh[1], M = dnumel(b);
        dshape(out, b->nd, b->sh); out->sh[out->nd++] = E;
        out->v = calloc((size_t)(M * E) + 1, sizeof(double));
        for (int64_t i = 0; i < M; i++) for (int64_t j = 0; j < E; j++) out->v[i * E + j] = a->v[(int64_t)b->v[i] * E + j];
        return;
    }
    case FF_OP_SPHERE_PROJECT: {
        int64_t D = a->sh[a->nd - 1], R = N / D;
        dshape(out, a->nd, a->sh);
        out->v = calloc((size_t)N + 1, sizeof(double));
        for (int64_t r = 0; r < R; r++) {
            double d = 0;
            for (int64_t j = 0; j < D; j++) d += a->v[r * D + j] * b->v[r * D + j];
            for (int64_t j = 0; j < D; j++) out->v[r * D + j] = b->v[r * D + j] - d * a->v[r * D + j];
        }
        return;
    }
    case FF_OP_GELU_TANH: {
        dshape(out, a->nd, a->sh);
        out->v = calloc((size_t)N + 1, sizeof(double));
        for (int64_t i = 0; i < N; i++) {
            double x = a->v[i];
            out->v[i] = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        }
        return;
    }
    case FF_OP_SOFTMAX: {
        int64_t C = a->sh[a->nd - 1], R = N / C;
        dshape(out, a->nd, a->sh);
        out->v = calloc((size_t)N + 1, sizeof(double));
        for (int64_t r = 0; r < R; r++) {
            double m = -INFINITY, z = 0;
            for (int64_t j = 0; j < C; j++) m = fmax(m, a->v[r * C + j]);
            for (int64_t j = 0; j < C; j++) z += exp(a->v[r * C + j] - m);
            for (int64_t j = 0; j < C; j++) out->v[r * C + j] = exp(a->v[r * C + j] - m) / z;
        }
        return;
    }
    case FF_OP_BMM: {       /* ia, ib: a, b stored transposed over their last two axes */
        int nd = a->nd;
        int64_t M = a->sh[nd - (c->ia ? 1 : 2)], K = a->sh[nd - (c->ia ? 2 : 1)], Nn = b->sh[nd - (c->ib ? 2 : 1)];
        int64_t B = 1;
        for (int i = 0; i < nd - 2; i++) B *= a->sh[i];
        dshape(out, nd, a->sh); out->sh[nd - 2] = M; out->sh[nd - 1] = Nn;
        out->v = calloc((size_t)(B * M * Nn) + 1, sizeof(double));
        for (int64_t q = 0; q < B; q++) for (int64_t i = 0; i < M; i++) for (int64_t j = 0; j < Nn; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += a->v[q * M * K + (c->ia ? k * M + i : i * K + k)] * b->v[q * K * Nn + (c->ib ? j * K + k : k * Nn + j)];
            out->v[(q * M + i) * Nn + j] = acc;
        }
        return;
    }
    case FF_OP_ATTENTION: {  /* ia = heads; a = qkv[n, L, 3C] */
        int64_t nb = a->sh[0], L = a->sh[1], C = a->sh[2] / 3, H = c->ia, dh = C / H;
        out->nd = 3; out->sh[0] = nb; out->sh[1] = L; out->sh[2] = C;
        out->v = calloc((size_t)(nb * L * C) + 1, sizeof(double));
        double *p = calloc((size_t)L + 1, sizeof(double));
        for (int64_t s = 0; s < nb; s++) for (int64_t h = 0; h < H; h++) for (int64_t i = 0; i < L; i++) {
            const double *qi = a->v + (s * L + i) * 3 * C + h * dh;
            double m = -INFINITY, z = 0;
            for (int64_t j = 0; j < L; j++) {
                const double *kj = a->v + (s * L + j) * 3 * C + C + h * dh;
                double d = 0;
                for (int64_t e = 0; e < dh; e++) d += qi[e] * kj[e];
                p[j] = d / sqrt((double)dh);
                m = fmax(m, p[j]);
            }
            for (int64_t j = 0; j < L; j++) { p[j] = exp(p[j] - m); z += p[j]; }
            for (int64_t e = 0; e < dh; e++) {
                double acc = 0;
                for (int64_t j = 0; j < L; j++) acc += p[j] / z * a->v[(s * L + j) * 3 * C + 2 * C + h * dh + e];
                out->v[(s * L + i) * C + h * dh + e] = acc;
            }
        }
        free(p);
        return;
    }
    }
}

static ff_tensor_t *build(ff_tape_t *tp, ff_tensor_t **in, const gcase *c) {
    switch (c->op) {
    case FF_OP_LINEAR:         return ff_linear(tp, in[0], in[1], c->nin == 3 ? in[2] : NULL);
    case FF_OP_MATMUL:         return ff_matmul(tp, in[0], in[1]);
    case FF_OP_ADD:            return ff_add(tp, in[0], in[1]);
    case FF_OP_SUB:            return ff_sub(tp, in[0], in[1]);
    case FF_OP_MUL:            return ff_mul(tp, in[0], in[1]);
    case FF_OP_DIV:            return ff_div(tp, in[0], in[1]);
    case FF_OP_ADD_SCALAR:     return ff_add_scalar(tp, in[0], c->f);
    case FF_OP_MUL_SCALAR:     return ff_mul_scalar(tp, in[0], c->f);
    case FF_OP_SQUARE:         return ff_square(tp, in[0]);
    case FF_OP_SQRT:           return ff_sqrt(tp, in[0]);
    case FF_OP_EXP:            return ff_exp(tp, in[0]);
    case FF_OP_LOG:            return ff_log(tp, in[0]);
    case FF_OP_SIN:            return ff_sin(tp, in[0]);
    case FF_OP_COS:            return ff_cos(tp, in[0]);
    case FF_OP_RELU:           return ff_relu(tp, in[0]);
    case FF_OP_ADD_RELU:       return c->f != 0 ? ff_add_leaky_relu(tp, in[0], in[1], c->f) : ff_add_relu(tp, in[0], in[1]);
    case FF_OP_LEAKY_RELU:     return ff_leaky_relu(tp, in[0], c->f);
    case FF_OP_SILU:           return ff_silu(tp, in[0]);
    case FF_OP_GELU:           return ff_gelu(tp, in[0]);
    case FF_OP_TANH:           return ff_tanh(tp, in[0]);
    case FF_OP_SIGMOID:        return ff_sigmoid(tp, in[0]);
    case FF_OP_SUM:            return ff_sum(tp, in[0], c->ia, c->ib);
    case FF_OP_MEAN:           return ff_mean(tp, in[0], c->ia, c->ib);
    case FF_OP_SUM_ALL:        return ff_sum_all(tp, in[0]);
    case FF_OP_MEAN_ALL:       return ff_mean_all(tp, in[0]);
    case FF_OP_CONCAT:         return ff_concat(tp, in[0], in[1]);
    case FF_OP_RESHAPE:        return ff_reshape(tp, in[0], c->rnd, c->rsh);
    case FF_OP_TRANSPOSE:      return ff_transpose(tp, in[0], c->ia, c->ib);
    case FF_OP_LAYER_NORM:     return ff_layer_norm(tp, in[0], c->nd[1] ? in[1] : NULL, c->nd[2] ? in[2] : NULL, c->f);
    case FF_OP_CONV1D:         return ff_conv1d(tp, in[0], in[1], c->nd[2] ? in[2] : NULL, c->ia, c->ib);
    case FF_OP_DROPOUT:        return ff_dropout(tp, in[0], c->f);
    case FF_OP_EMBEDDING:      return ff_embedding(tp, in[0], in[1]);
    case FF_OP_SPHERE_PROJECT: return ff_sphere_project(tp, in[0], in[1]);
    case FF_OP_SOFTMAX:        return ff_softmax(tp, in[0]);
    case FF_OP_BMM:            return ff_bmm(tp, in[0], in[1], c->ia, c->ib);
    case FF_OP_ATTENTION:      return ff_attention(tp, in[0], c->ia);
    case FF_OP_GELU_TANH:      return ff_gelu_tanh(tp, in[0]);
    }
    return NULL;
}

/* ---- the checker ------------------------------------------------------------------------------ */

static void gen_values(ff_rng_t *r, double *v, int64_t n, int kind, const gcase *c, int k, const int64_t *sh, int nd) {
    for (int64_t i = 0; i < n; i++) {
        double x = 3.0 * ff_rng_uniform(r) - 1.5;
        if (kind == V_POS) x = 0.5 + 1.5 * ff_rng_uniform(r);
        if (kind == V_ANY && fabs(x) < 0.05) x += x < 0 ? -0.1 : 0.1;     /* away from relu kinks */
        if (kind == V_NEAR0) x = 0.2 * ff_rng_uniform(r) - 0.1;
        if (kind == V_IDS) x = (double)ff_rng_below(r, (uint64_t)c->sh[0][0]);
        v[i] = x;
    }
    if (kind == V_UNIT) {
        int64_t D = sh[nd - 1];
        for (int64_t r0 = 0; r0 < n; r0 += D) {
            double s = 0;
            for (int64_t j = 0; j < D; j++) { v[r0 + j] = fabs(v[r0 + j]); s += v[r0 + j] * v[r0 + j]; }
            for (int64_t j = 0; j < D; j++) v[r0 + j] /= sqrt(s);
        }
    }
    (void)k;
}

static double loss_of(const gcase *c, dt *in, const double *R, int64_t nout) {
    dt out = { 0 };
    ref(c, in, &out);
    double L = 0;
    for (int64_t i = 0; i < nout; i++) L += R[i] * out.v[i];
    free(out.v);
    return L;
}

/* Runs one case: forward vs reference, VJP vs central differences. Returns 1 if all good. */
static int check_case(const gcase *c, uint64_t seed) {
    ff_rng_t rng;
    ff_rng_seed(&rng, seed);
    dt in[3] = { { 0 } };
    ff_tensor_t *base[3] = { 0 }, *t[3] = { 0 }, *pg[3] = { 0 };
    ff_tape_t *tp = NULL;
    int ok = 1;
    FF_EXPECT(ff_tape_new(&tp, 0) == FF_OK, "%s", ff_last_error());
    ff_rng_t drop_rng;
    ff_rng_seed(&drop_rng, seed ^ 0x5eed);
    ff_tape_set_rng(tp, &drop_rng);
    for (int k = 0; k < c->nin; k++) {
        if (c->nd[k] == 0 && (c->op == FF_OP_LAYER_NORM || c->op == FF_OP_CONV1D || c->op == FF_OP_LINEAR) && k > 0) continue;
        dshape(&in[k], c->nd[k], c->sh[k]);
        int64_t n = dnumel(&in[k]);
        in[k].v = calloc((size_t)n + 1, sizeof(double));
        gen_values(&rng, in[k].v, n, c->kind[k], c, k, c->sh[k], c->nd[k]);
        if (c->strided[k]) {
            /* storage holds the transpose of the logical tensor; the input is a transposed view */
            int64_t sh[4]; memcpy(sh, c->sh[k], sizeof sh);
            int nd = c->nd[k];
            int64_t tmp = sh[nd - 1]; sh[nd - 1] = sh[nd - 2]; sh[nd - 2] = tmp;
            ff_tensor_new(&base[k], nd, sh);
            ff_tensor_transpose(&t[k], base[k], nd - 2, nd - 1);
        } else {
            ff_tensor_new(&base[k], c->nd[k], c->sh[k]);
            t[k] = base[k];
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t idx[4], rem = i;
            for (int d = c->nd[k] - 1; d >= 0; d--) { idx[d] = rem % c->sh[k][d]; rem /= c->sh[k][d]; }
            *ff_tensor_at(t[k], idx) = (float)in[k].v[i];
            in[k].v[i] = (double)(float)in[k].v[i];     /* the reference sees the same float inputs */
        }
        if (c->grad[k]) {
            if (k == 0 && !c->strided[k]) {
                t[k] = ff_tape_leaf(tp, base[k], 1);             /* a leaf: grad starts at 0 */
            } else {                                             /* parameter-like: grad accumulates */
                ff_tensor_new(&pg[k], c->nd[k], c->sh[k]);
                ff_tensor_fill(pg[k], 0.25f);
                t[k]->grad = pg[k];
                t[k]->flags |= FF_TENSOR_NEEDS_GRAD;
            }
        }
    }
    ff_tensor_t *out = build(tp, t, c);
    if (!out) {
        FF_EXPECT(out != NULL, "%s %s: %s", ff_op_names_for_test(c->op), c->label, ff_last_error());
        ok = 0;
        goto done;
    }
    if (c->op == FF_OP_DROPOUT) {
        int64_t n = ff_tensor_numel(out);
        dropout_mask = calloc((size_t)n + 1, sizeof(double));
        for (int64_t i = 0; i < n; i++) dropout_mask[i] = (double)out->data[i] / in[0].v[i];
    }
    /* forward vs the double reference */
    dt r = { 0 };
    ref(c, in, &r);
    int64_t nout = dnumel(&r);
    FF_EXPECT(r.nd == out->ndim, "%s: ndim %d vs reference %d", c->label, out->ndim, r.nd);
    for (int i = 0; i < r.nd && i < out->ndim; i++)
        FF_EXPECT(r.sh[i] == out->shape[i], "%s: dim %d is %lld, reference %lld", c->label, i,
                  (long long)out->shape[i], (long long)r.sh[i]);
    double fmax = 0, scale = 1;
    for (int64_t i = 0; i < nout; i++) {
        fmax = ff_nanmax(fmax, fabs(out->data[i] - r.v[i]));
        scale = scale > fabs(r.v[i]) ? scale : fabs(r.v[i]);
    }
    if (fmax / (FWD_RTOL * scale) > worst_fwd_ratio) worst_fwd_ratio = fmax / (FWD_RTOL * scale);
    if (!(fmax <= FWD_RTOL * scale)) {
        FF_EXPECT(fmax <= FWD_RTOL * scale, "%s %s: forward max |err| %.3g (scale %.3g)", ff_op_names_for_test(c->op), c->label, fmax, scale);
        ok = 0;
    }
    /* VJP with a random seed R: d/dx sum(R * out) */
    double *R = calloc((size_t)nout + 1, sizeof(double));
    ff_tensor_t *vjp;
    ff_tensor_new(&vjp, out->ndim, out->shape);
    for (int64_t i = 0; i < nout; i++) { vjp->data[i] = (float)(2 * ff_rng_uniform(&rng) - 1); R[i] = vjp->data[i]; }
    int any_grad = 0;
    for (int k = 0; k < c->nin; k++) any_grad |= c->grad[k];
    if (any_grad) {
        ff_status s = ff_tape_backward_seed(tp, out, vjp);
        FF_EXPECT(s == FF_OK, "%s: backward: %s", c->label, ff_last_error());
        if (s != FF_OK) ok = 0;
    }
    for (int k = 0; k < c->nin && ok; k++) {
        if (!c->grad[k]) continue;
        int64_t n = dnumel(&in[k]);
        const float *g = t[k]->grad->data;
        const double h = 1e-5;
        double gmax = 0, emax = 0;
        double *fd = calloc((size_t)n + 1, sizeof(double));
        for (int64_t i = 0; i < n; i++) {
            double keep = in[k].v[i];
            in[k].v[i] = keep + h; double Lp = loss_of(c, in, R, nout);
            in[k].v[i] = keep - h; double Lm = loss_of(c, in, R, nout);
            in[k].v[i] = keep;
            fd[i] = (Lp - Lm) / (2 * h);
            gmax = gmax > fabs(fd[i]) ? gmax : fabs(fd[i]);
        }
        for (int64_t i = 0; i < n; i++) {
            double an = g[i] - (pg[k] ? 0.25 : 0.0) + (i == 0 ? corrupt_grad : 0.0);
            double e = fabs(an - fd[i]);
            emax = ff_nanmax(emax, e);
        }
        double tol = GRAD_RTOL * (1.0 + gmax);
        if (corrupt_grad == 0.0 && emax / tol > worst_grad_ratio) worst_grad_ratio = emax / tol;
        if (!(emax <= tol) && corrupt_grad == 0.0) {
            FF_EXPECT(emax <= tol, "%s %s: input %d: max |grad - fd| %.3g > %.3g (max |fd| %.3g)",
                      ff_op_names_for_test(c->op), c->label, k, emax, tol, gmax);
        }
        if (!(emax <= tol)) ok = 0;
        free(fd);
    }
    free(R);
    free(r.v);
    ff_tensor_free(vjp);
done:
    free(dropout_mask); dropout_mask = NULL;
    for (int k = 0; k < 3; k++) {
        free(in[k].v);
        if (t[k] && t[k] != base[k] && !(t[k]->flags & FF_TENSOR_ARENA)) ff_tensor_free(t[k]);
        ff_tensor_free(base[k]);
        ff_tensor_free(pg[k]);
    }
    ff_tape_free(tp);
    return ok;
}

/* ---- the table: at least one row per op ------------------------------------------------------- */

#define SH(...)        { __VA_ARGS__ }

static const gcase cases[] = {
    /* op, label, nin, nd[], sh[][], grad[], strided[], kind[], f, ia, ib, rsh, rnd */
    { FF_OP_LINEAR, "x[3,4] w[5,4] b[5]", 3, {2, 2, 1}, {SH(3, 4), SH(5, 4), SH(5)}, {1, 1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_LINEAR, "x[2,3,4] w[2,4] b[2]", 3, {3, 2, 1}, {SH(2, 3, 4), SH(2, 4), SH(2)}, {1, 1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_LINEAR, "x[1,1] w[1,1] b[1]", 3, {2, 2, 1}, {SH(1, 1), SH(1, 1), SH(1)}, {1, 1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_LINEAR, "x const, w^T view, no bias", 2, {2, 2}, {SH(4, 3), SH(2, 3)}, {0, 1}, {0, 1}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_LINEAR, "x^T view [5,6] w[3,6] b", 3, {2, 2, 1}, {SH(5, 6), SH(3, 6), SH(3)}, {1, 1, 0}, {1, 0, 0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_LINEAR, "x[2,3,4] strided 3-D", 2, {3, 2}, {SH(2, 3, 4), SH(3, 4)}, {1, 1}, {1, 0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_LINEAR, "x[4] (1-D) w[3,4] b[3]", 3, {1, 2, 1}, {SH(4), SH(3, 4), SH(3)}, {1, 1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MATMUL, "[3,4]x[4,5]", 2, {2, 2}, {SH(3, 4), SH(4, 5)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MATMUL, "[2,3,4]x[4,2]", 2, {3, 2}, {SH(2, 3, 4), SH(4, 2)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MATMUL, "[1,1]x[1,1]", 2, {2, 2}, {SH(1, 1), SH(1, 1)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MATMUL, "a^T view x b^T view", 2, {2, 2}, {SH(3, 4), SH(4, 5)}, {1, 1}, {1, 1}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MATMUL, "[4,1]x[1,3]", 2, {2, 2}, {SH(4, 1), SH(1, 3)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_ADD, "[2,3,4]+[4]", 2, {3, 1}, {SH(2, 3, 4), SH(4)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_ADD, "[2,3,4]+[3,1]", 2, {3, 2}, {SH(2, 3, 4), SH(3, 1)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_ADD, "[2,3] strided + [2,3]", 2, {2, 2}, {SH(2, 3), SH(2, 3)}, {1, 1}, {1, 0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SUB, "[3,1,4]-[1,4]", 2, {3, 2}, {SH(3, 1, 4), SH(1, 4)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SUB, "[2,3]-[1]", 2, {2, 1}, {SH(2, 3), SH(1)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MUL, "[2,3,4]*[2,1,4]", 2, {3, 3}, {SH(2, 3, 4), SH(2, 1, 4)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MUL, "[4,3]*[4,1]", 2, {2, 2}, {SH(4, 3), SH(4, 1)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_DIV, "[2,3,4]/[3,4]", 2, {3, 2}, {SH(2, 3, 4), SH(3, 4)}, {1, 1}, {0}, {V_ANY, V_POS}, 0, 0, 0, {0}, 0 },
    { FF_OP_DIV, "[5]/[1]", 2, {1, 1}, {SH(5), SH(1)}, {1, 1}, {0}, {V_ANY, V_POS}, 0, 0, 0, {0}, 0 },
    { FF_OP_ADD_SCALAR, "[3,4]+0.7", 1, {2}, {SH(3, 4)}, {1}, {0}, {0}, 0.7f, 0, 0, {0}, 0 },
    { FF_OP_MUL_SCALAR, "[2,1,3]*-1.3", 1, {3}, {SH(2, 1, 3)}, {1}, {0}, {0}, -1.3f, 0, 0, {0}, 0 },
    { FF_OP_SQUARE, "[3,4]", 1, {2}, {SH(3, 4)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SQRT, "[3,4] positive", 1, {2}, {SH(3, 4)}, {1}, {0}, {V_POS}, 0, 0, 0, {0}, 0 },
    { FF_OP_EXP, "[1]", 1, {1}, {SH(1)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_EXP, "[2,5] strided", 1, {2}, {SH(2, 5)}, {1}, {1}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_LOG, "[3,4] positive", 1, {2}, {SH(3, 4)}, {1}, {0}, {V_POS}, 0, 0, 0, {0}, 0 },
    { FF_OP_SIN, "[7]", 1, {1}, {SH(7)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_COS, "[7]", 1, {1}, {SH(7)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_RELU, "[4,5]", 1, {2}, {SH(4, 5)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_ADD_RELU, "[2,3,4]+relu([2,3,4])", 2, {3, 3}, {SH(2, 3, 4), SH(2, 3, 4)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_ADD_RELU, "[4,5] strided a, b only", 2, {2, 2}, {SH(4, 5), SH(4, 5)}, {0, 1}, {1, 0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_ADD_RELU, "[2,3,4]+leaky_relu([2,3,4]) slope 0.1", 2, {3, 3}, {SH(2, 3, 4), SH(2, 3, 4)}, {1, 1}, {0}, {0}, 0.1f, 0, 0, {0}, 0 },
    { FF_OP_LEAKY_RELU, "[4,5] slope 0.1", 1, {2}, {SH(4, 5)}, {1}, {0}, {0}, 0.1f, 0, 0, {0}, 0 },
    { FF_OP_SILU, "[3,4]", 1, {2}, {SH(3, 4)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_GELU, "[3,4]", 1, {2}, {SH(3, 4)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_GELU, "[9] near 0", 1, {1}, {SH(9)}, {1}, {0}, {V_NEAR0}, 0, 0, 0, {0}, 0 },
    { FF_OP_TANH, "[3,4]", 1, {2}, {SH(3, 4)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SIGMOID, "[3,4]", 1, {2}, {SH(3, 4)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SUM, "[2,3,4] axis 1", 1, {3}, {SH(2, 3, 4)}, {1}, {0}, {0}, 0, 1, 0, {0}, 0 },
    { FF_OP_SUM, "[2,3,4] axis -1 keepdim", 1, {3}, {SH(2, 3, 4)}, {1}, {0}, {0}, 0, -1, 1, {0}, 0 },
    { FF_OP_SUM, "[5] axis 0", 1, {1}, {SH(5)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SUM, "[3,1] axis 1 strided", 1, {2}, {SH(3, 1)}, {1}, {1}, {0}, 0, 1, 0, {0}, 0 },
    { FF_OP_SUM, "[3,17] axis -1 (vector path)", 1, {2}, {SH(3, 17)}, {1}, {0}, {0}, 0, -1, 0, {0}, 0 },
    { FF_OP_MEAN, "[2,3,4] axis 0", 1, {3}, {SH(2, 3, 4)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MEAN, "[4,3] axis -1 keepdim", 1, {2}, {SH(4, 3)}, {1}, {0}, {0}, 0, -1, 1, {0}, 0 },
    { FF_OP_SUM_ALL, "[2,3]", 1, {2}, {SH(2, 3)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SUM_ALL, "[5,7]", 1, {2}, {SH(5, 7)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MEAN_ALL, "[2,3,2]", 1, {3}, {SH(2, 3, 2)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_MEAN_ALL, "[1]", 1, {1}, {SH(1)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_CONCAT, "[2,3]|[2,2]", 2, {2, 2}, {SH(2, 3), SH(2, 2)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_CONCAT, "[2,1,2]|[2,1,3]", 2, {3, 3}, {SH(2, 1, 2), SH(2, 1, 3)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_CONCAT, "[3,2] strided|[3,1] const", 2, {2, 2}, {SH(3, 2), SH(3, 1)}, {1, 0}, {1, 0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_RESHAPE, "[2,3,4]->[6,-1]", 1, {3}, {SH(2, 3, 4)}, {1}, {0}, {0}, 0, 0, 0, {6, -1}, 2 },
    { FF_OP_RESHAPE, "[4,3] strided->[12]", 1, {2}, {SH(4, 3)}, {1}, {1}, {0}, 0, 0, 0, {12}, 1 },
    { FF_OP_TRANSPOSE, "[2,3,4] (0,2)", 1, {3}, {SH(2, 3, 4)}, {1}, {0}, {0}, 0, 0, 2, {0}, 0 },
    { FF_OP_TRANSPOSE, "[3,5] (0,1)", 1, {2}, {SH(3, 5)}, {1}, {0}, {0}, 0, 0, 1, {0}, 0 },
    { FF_OP_TRANSPOSE, "[2,3,4] strided (1,2)", 1, {3}, {SH(2, 3, 4)}, {1}, {1}, {0}, 0, 1, 2, {0}, 0 },
    { FF_OP_LAYER_NORM, "[3,5] gamma beta", 3, {2, 1, 1}, {SH(3, 5), SH(5), SH(5)}, {1, 1, 1}, {0}, {0}, 1e-5f, 0, 0, {0}, 0 },
    { FF_OP_LAYER_NORM, "[2,2,4] plain", 3, {3, 0, 0}, {SH(2, 2, 4)}, {1, 0, 0}, {0}, {0}, 1e-5f, 0, 0, {0}, 0 },
    { FF_OP_LAYER_NORM, "[4,3] gamma only", 3, {2, 1, 0}, {SH(4, 3), SH(3)}, {1, 1, 0}, {0}, {0}, 1e-3f, 0, 0, {0}, 0 },
    { FF_OP_LAYER_NORM, "[1,7] const gamma, beta", 3, {2, 1, 1}, {SH(1, 7), SH(7), SH(7)}, {1, 0, 1}, {0}, {0}, 1e-5f, 0, 0, {0}, 0 },
    { FF_OP_LAYER_NORM, "[2,19] (vector path)", 3, {2, 1, 1}, {SH(2, 19), SH(19), SH(19)}, {1, 1, 1}, {0}, {0}, 1e-5f, 0, 0, {0}, 0 },
    { FF_OP_CONV1D, "x[2,7,3] w[4,3,3] b d1 p1", 3, {3, 3, 1}, {SH(2, 7, 3), SH(4, 3, 3), SH(4)}, {1, 1, 1}, {0}, {0}, 0, 1, 1, {0}, 0 },
    { FF_OP_CONV1D, "x[2,9,2] w[3,3,2] b d2 p2", 3, {3, 3, 1}, {SH(2, 9, 2), SH(3, 3, 2), SH(3)}, {1, 1, 1}, {0}, {0}, 0, 2, 2, {0}, 0 },
    { FF_OP_CONV1D, "x[1,5,1] w[1,1,1] (direct)", 3, {3, 3, 0}, {SH(1, 5, 1), SH(1, 1, 1)}, {1, 1, 0}, {0}, {0}, 0, 1, 0, {0}, 0 },
    { FF_OP_CONV1D, "x[2,6,3] w[2,2,3] d3 p0", 3, {3, 3, 1}, {SH(2, 6, 3), SH(2, 2, 3), SH(2)}, {1, 1, 1}, {0}, {0}, 0, 3, 0, {0}, 0 },
    { FF_OP_CONV1D, "x[1,4,2] w[3,5,2] K>L p2", 3, {3, 3, 1}, {SH(1, 4, 2), SH(3, 5, 2), SH(3)}, {1, 1, 1}, {0}, {0}, 0, 1, 2, {0}, 0 },
    { FF_OP_CONV1D, "x[3,8,4] const, w, d2 p3", 3, {3, 3, 1}, {SH(3, 8, 4), SH(5, 3, 4), SH(5)}, {0, 1, 1}, {0}, {0}, 0, 2, 3, {0}, 0 },
    { FF_OP_CONV1D, "x[2,5,3] strided, w[2,3,3] d1 p1", 3, {3, 3, 1}, {SH(2, 5, 3), SH(2, 3, 3), SH(2)}, {1, 1, 1}, {1, 0, 0}, {0}, 0, 1, 1, {0}, 0 },
    { FF_OP_DROPOUT, "[4,5] p 0.3", 1, {2}, {SH(4, 5)}, {1}, {0}, {0}, 0.3f, 0, 0, {0}, 0 },
    { FF_OP_EMBEDDING, "table[5,3] ids[2,4]", 2, {2, 2}, {SH(5, 3), SH(2, 4)}, {1, 0}, {0}, {V_ANY, V_IDS}, 0, 0, 0, {0}, 0 },
    { FF_OP_EMBEDDING, "table[3,1] ids[6]", 2, {2, 1}, {SH(3, 1), SH(6)}, {1, 0}, {0}, {V_ANY, V_IDS}, 0, 0, 0, {0}, 0 },
    { FF_OP_SPHERE_PROJECT, "x[4,3] v[4,3]", 2, {2, 2}, {SH(4, 3), SH(4, 3)}, {1, 1}, {0}, {V_UNIT, V_ANY}, 0, 0, 0, {0}, 0 },
    { FF_OP_SPHERE_PROJECT, "x[2,2,5] const, v", 2, {3, 3}, {SH(2, 2, 5), SH(2, 2, 5)}, {0, 1}, {0}, {V_UNIT, V_ANY}, 0, 0, 0, {0}, 0 },
    { FF_OP_SPHERE_PROJECT, "x[3,11] v[3,11] (vector path)", 2, {2, 2}, {SH(3, 11), SH(3, 11)}, {1, 1}, {0}, {V_UNIT, V_ANY}, 0, 0, 0, {0}, 0 },
    { FF_OP_SPHERE_PROJECT, "x[1,2] v[1,2]", 2, {2, 2}, {SH(1, 2), SH(1, 2)}, {1, 1}, {0}, {V_UNIT, V_ANY}, 0, 0, 0, {0}, 0 },
    { FF_OP_SOFTMAX, "[3,5]", 1, {2}, {SH(3, 5)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SOFTMAX, "[2,3,1] (size-1 axis)", 1, {3}, {SH(2, 3, 1)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SOFTMAX, "[2,19] strided (vector path)", 1, {2}, {SH(2, 19)}, {1}, {1}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_SOFTMAX, "[1] ", 1, {1}, {SH(1)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_BMM, "[2,3,4]x[2,4,5]", 2, {3, 3}, {SH(2, 3, 4), SH(2, 4, 5)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_BMM, "[2,3,4]x[2,5,4]^T", 2, {3, 3}, {SH(2, 3, 4), SH(2, 5, 4)}, {1, 1}, {0}, {0}, 0, 0, 1, {0}, 0 },
    { FF_OP_BMM, "[3,4,2]^T x[3,4,5]", 2, {3, 3}, {SH(3, 4, 2), SH(3, 4, 5)}, {1, 1}, {0}, {0}, 0, 1, 0, {0}, 0 },
    { FF_OP_BMM, "[2,4,3]^T x[2,5,4]^T", 2, {3, 3}, {SH(2, 4, 3), SH(2, 5, 4)}, {1, 1}, {0}, {0}, 0, 1, 1, {0}, 0 },
    { FF_OP_BMM, "[2,2,3,1]x[2,2,1,4] 4-D", 2, {4, 4}, {SH(2, 2, 3, 1), SH(2, 2, 1, 4)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_BMM, "[1,1,1]x[1,1,1]", 2, {3, 3}, {SH(1, 1, 1), SH(1, 1, 1)}, {1, 1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_BMM, "[3,5] 2-D, strided a, const b", 2, {2, 2}, {SH(3, 5), SH(5, 2)}, {1, 0}, {1, 0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_ATTENTION, "qkv[2,4,12] 2 heads", 1, {3}, {SH(2, 4, 12)}, {1}, {0}, {0}, 0, 2, 0, {0}, 0 },
    { FF_OP_ATTENTION, "qkv[1,5,18] 3 heads", 1, {3}, {SH(1, 5, 18)}, {1}, {0}, {0}, 0, 3, 0, {0}, 0 },
    { FF_OP_ATTENTION, "qkv[3,1,3] L 1, 1 head", 1, {3}, {SH(3, 1, 3)}, {1}, {0}, {0}, 0, 1, 0, {0}, 0 },
    { FF_OP_ATTENTION, "qkv[2,7,9] 1 head dh 3", 1, {3}, {SH(2, 7, 9)}, {1}, {0}, {0}, 0, 1, 0, {0}, 0 },
    { FF_OP_GELU_TANH, "[3,4]", 1, {2}, {SH(3, 4)}, {1}, {0}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_GELU_TANH, "[9] near 0", 1, {1}, {SH(9)}, {1}, {0}, {V_NEAR0}, 0, 0, 0, {0}, 0 },
    { FF_OP_GELU_TANH, "[2,17] strided (vector path)", 1, {2}, {SH(2, 17)}, {1}, {1}, {0}, 0, 0, 0, {0}, 0 },
    { FF_OP_ATTENTION, "qkv[1,3,24] strided, 4 heads", 1, {3}, {SH(1, 3, 24)}, {1}, {1}, {0}, 0, 4, 0, {0}, 0 },
};

FF_TEST(every_op) {
    int covered[FF_OP_COUNT] = { 0 };
    int n = (int)(sizeof cases / sizeof cases[0]), good = 0;
    for (int i = 0; i < n; i++) {
        covered[cases[i].op] = 1;
        good += check_case(&cases[i], 1000 + (uint64_t)i);
    }
    for (int op = 0; op < FF_OP_COUNT; op++) FF_EXPECT(covered[op], "op %s has no row in the table", op_names[op]);
    printf("  %d/%d cases agree with the double reference (worst forward error %.2f of its tolerance, "
           "worst gradient error %.2f of its tolerance)\n", good, n, worst_fwd_ratio, worst_grad_ratio);
}

/* The checker itself: an analytic gradient off by 1e-4 in one entry must be reported. */
FF_TEST(checker_catches_a_wrong_gradient) {
    int saved = ff_failed_now_;
    corrupt_grad = 1e-4;
    int ok1 = check_case(&cases[0], 1);                  /* linear */
    corrupt_grad = 0;
    int ok2 = check_case(&cases[0], 1);
    ff_failed_now_ = saved;
    FF_EXPECT(!ok1, "a gradient error of 1e-4 went unnoticed");
    FF_EXPECT(ok2, "the same case passes without the corruption");
}

/* Random shapes (sizes 1..4, 1-4 dims) and random broadcast patterns for the binary ops. */
FF_TEST(random_broadcast) {
    ff_rng_t r;
    ff_rng_seed(&r, 77);
    static const int ops[4] = { FF_OP_ADD, FF_OP_SUB, FF_OP_MUL, FF_OP_DIV };
    int good = 0, n = 80;
    for (int it = 0; it < n; it++) {
        gcase c = { 0 };
        c.op = ops[it % 4];
        c.label = "random broadcast";
        c.nin = 2;
        c.nd[0] = 1 + (int)ff_rng_below(&r, 4);
        for (int d = 0; d < c.nd[0]; d++) c.sh[0][d] = 1 + (int64_t)ff_rng_below(&r, 4);
        c.nd[1] = 1 + (int)ff_rng_below(&r, (uint64_t)c.nd[0]);
        for (int d = 0; d < c.nd[1]; d++)
            c.sh[1][d] = ff_rng_below(&r, 3) == 0 ? 1 : c.sh[0][c.nd[0] - c.nd[1] + d];
        c.grad[0] = 1; c.grad[1] = 1;
        c.strided[0] = c.nd[0] >= 2 && ff_rng_below(&r, 3) == 0;
        c.kind[1] = c.op == FF_OP_DIV ? V_POS : V_ANY;
        good += check_case(&c, 5000 + (uint64_t)it);
    }
    FF_EXPECT(good == n, "%d of %d random broadcast cases failed", n - good, n);
}

/* Random (non-square, size-1) linear/matmul shapes, random strided operands. */
FF_TEST(random_matmul) {
    ff_rng_t r;
    ff_rng_seed(&r, 78);
    int good = 0, n = 40;
    for (int it = 0; it < n; it++) {
        gcase c = { 0 };
        int64_t M = 1 + (int64_t)ff_rng_below(&r, 7), K = 1 + (int64_t)ff_rng_below(&r, 7), N = 1 + (int64_t)ff_rng_below(&r, 7);
        c.op = it % 2 ? FF_OP_MATMUL : FF_OP_LINEAR;
        c.label = it % 2 ? "random matmul" : "random linear";
        c.nin = it % 4 == 0 ? 3 : 2;
        c.nd[0] = 2; c.sh[0][0] = M; c.sh[0][1] = K;
        c.nd[1] = 2;
        if (c.op == FF_OP_MATMUL) { c.sh[1][0] = K; c.sh[1][1] = N; c.nin = 2; }
        else { c.sh[1][0] = N; c.sh[1][1] = K; }
        c.nd[2] = 1; c.sh[2][0] = N;
        for (int k = 0; k < 3; k++) c.grad[k] = ff_rng_below(&r, 4) != 0;
        c.grad[0] |= !c.grad[1];
        c.strided[0] = (int)ff_rng_below(&r, 2);
        c.strided[1] = (int)ff_rng_below(&r, 2);
        good += check_case(&c, 9000 + (uint64_t)it);
    }
    FF_EXPECT(good == n, "%d of %d random matmul cases failed", n - good, n);
}

/* Larger GEMM forward against the naive triple loop (no finite differences). */
FF_TEST(matmul_forward_naive) {
    gcase a = { FF_OP_MATMUL, "[37,29]x[29,41]", 2, {2, 2}, {SH(37, 29), SH(29, 41)}, {0, 0}, {0}, {0}, 0, 0, 0, {0}, 0 };
    gcase b = { FF_OP_LINEAR, "[3,11,64]x[48,64]^T+b", 3, {3, 2, 1}, {SH(3, 11, 64), SH(48, 64), SH(48)}, {0}, {0}, {0}, 0, 0, 0, {0}, 0 };
    gcase c = { FF_OP_LINEAR, "w^T view [40,33]", 2, {2, 2}, {SH(20, 33), SH(40, 33)}, {0}, {0, 1}, {0}, 0, 0, 0, {0}, 0 };
    FF_EXPECT(check_case(&a, 1), "matmul");
    FF_EXPECT(check_case(&b, 2), "linear");
    FF_EXPECT(check_case(&c, 3), "linear with a transposed weight view");
}

/* conv1d large enough that im2col runs in many chunks (1 MiB of columns each, 136 rows here; the
 * boundaries fall inside sequences): forward and all three gradients against direct double sums. */
FF_TEST(conv1d_chunked_vs_direct_sums) {
    const int64_t n = 2, L = 1200, Ci = 48, Co = 8, K = 40, dil = 1, pad = 20, Lo = L + 2 * pad - dil * (K - 1);
    ff_rng_t r;
    ff_rng_seed(&r, 21);
    ff_tensor_t *x0, *w, *gw, *b, *gb, *seed;
    ff_tensor_new3(&x0, n, L, Ci); ff_tensor_new3(&w, Co, K, Ci); ff_tensor_new3(&gw, Co, K, Ci);
    ff_tensor_new1(&b, Co); ff_tensor_new1(&gb, Co); ff_tensor_new3(&seed, n, Lo, Co);
    ff_rng_fill_uniform(&r, x0, -1, 1); ff_rng_fill_uniform(&r, w, -0.1f, 0.1f);
    ff_rng_fill_uniform(&r, b, -1, 1); ff_rng_fill_uniform(&r, seed, -1, 1);
    w->grad = gw; w->flags |= FF_TENSOR_NEEDS_GRAD;
    b->grad = gb; b->flags |= FF_TENSOR_NEEDS_GRAD;
    FF_EXPECT(n * Lo * K * Ci > ((int64_t)1 << 18), "the case must need more than one im2col chunk");
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tensor_t *x = ff_tape_leaf(tp, x0, 1);
    ff_tensor_t *y = ff_conv1d(tp, x, w, b, (int)dil, (int)pad);
    FF_EXPECT(y && y->shape[1] == Lo, "%s", ff_last_error());
    FF_EXPECT(ff_tape_backward_seed(tp, y, seed) == FF_OK, "%s", ff_last_error());
    double ey = 0, ex = 0, ew = 0, eb = 0, sy = 0, sx = 0, sw = 0, sb = 0;
    double *dx = calloc((size_t)(n * L * Ci), sizeof(double)), *dw = calloc((size_t)(Co * K * Ci), sizeof(double));
    double db[8] = { 0 };
    for (int64_t s = 0; s < n; s++)
        for (int64_t t = 0; t < Lo; t++)
            for (int64_t o = 0; o < Co; o++) {
                double acc = b->data[o], g = seed->data[(s * Lo + t) * Co + o];
                db[o] += g;
                for (int64_t k = 0; k < K; k++) {
                    int64_t src = t - pad + k * dil;
                    if (src < 0 || src >= L) continue;
                    const float *xr = x0->data + (s * L + src) * Ci, *wr = w->data + (o * K + k) * Ci;
                    for (int64_t c = 0; c < Ci; c++) {
                        acc += (double)wr[c] * xr[c];
                        dx[(s * L + src) * Ci + c] += g * wr[c];
                        dw[(o * K + k) * Ci + c] += g * xr[c];
                    }
                }
                ey = ff_nanmax(ey, fabs(acc - y->data[(s * Lo + t) * Co + o])); sy = ff_nanmax(sy, fabs(acc));
            }
    for (int64_t i = 0; i < n * L * Ci; i++) { ex = ff_nanmax(ex, fabs(dx[i] - x->grad->data[i])); sx = ff_nanmax(sx, fabs(dx[i])); }
    for (int64_t i = 0; i < Co * K * Ci; i++) { ew = ff_nanmax(ew, fabs(dw[i] - gw->data[i])); sw = ff_nanmax(sw, fabs(dw[i])); }
    for (int64_t o = 0; o < Co; o++) { eb = ff_nanmax(eb, fabs(db[o] - gb->data[o])); sb = ff_nanmax(sb, fabs(db[o])); }
    FF_EXPECT(ey <= 1e-5 * sy, "forward max err %.3g (scale %.3g)", ey, sy);
    FF_EXPECT(ex <= 1e-5 * sx, "dx max err %.3g (scale %.3g)", ex, sx);
    FF_EXPECT(ew <= 1e-5 * sw, "dw max err %.3g (scale %.3g)", ew, sw);
    FF_EXPECT(eb <= 1e-5 * sb, "db max err %.3g (scale %.3g)", eb, sb);
    free(dx); free(dw);
    ff_tape_free(tp);
    ff_tensor_free(x0); ff_tensor_free(w); ff_tensor_free(gw); ff_tensor_free(b); ff_tensor_free(gb); ff_tensor_free(seed);
}

/* Column slices go to sgemm with their leading dimension (no copy): results and weight gradients
 * must equal those computed from contiguous clones (whose path the table checks against FD). */
FF_TEST(gemm_with_leading_dimension_views) {
    ff_rng_t r;
    ff_rng_seed(&r, 31);
    ff_tensor_t *xb, *wb, *xs, *ws, *xc, *wc, *gws, *gwc, *seed;
    ff_tensor_new2(&xb, 5, 9); ff_tensor_new2(&wb, 7, 6);
    ff_rng_fill_normal(&r, xb, 0, 1); ff_rng_fill_normal(&r, wb, 0, 1);
    ff_tensor_slice(&xs, xb, 1, 2, 6);              /* [5,4], row stride 9 */
    ff_tensor_slice(&ws, wb, 1, 1, 5);              /* [7,4], row stride 6 */
    ff_tensor_clone(&xc, xs); ff_tensor_clone(&wc, ws);
    ff_tensor_new2(&gws, 7, 4); ff_tensor_new2(&gwc, 7, 4); ff_tensor_new2(&seed, 5, 7);
    ff_rng_fill_normal(&r, seed, 0, 1);
    ws->grad = gws; ws->flags |= FF_TENSOR_NEEDS_GRAD;
    wc->grad = gwc; wc->flags |= FF_TENSOR_NEEDS_GRAD;
    FF_EXPECT(!ff_tensor_is_contiguous(xs) && !ff_tensor_is_contiguous(ws), "slices are strided");
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tensor_t *ys = ff_linear(tp, xs, ws, NULL), *yc = ff_linear(tp, xc, wc, NULL);
    FF_EXPECT(ys && yc, "%s", ff_last_error());
    ff_tape_backward_seed(tp, ys, seed);
    ff_tape_backward_seed(tp, yc, seed);
    for (int i = 0; i < 35; i++) FF_EXPECT_NEAR(ys->data[i], yc->data[i], 1e-6);
    for (int i = 0; i < 28; i++) FF_EXPECT_NEAR(gws->data[i], gwc->data[i], 1e-5);
    /* matmul with a sliced right operand: [5,4] x [4,3] taken from wb's rows 0..3, cols 2..4 */
    ff_tensor_t *bs, *rows, *bc;
    ff_tensor_slice(&rows, wb, 0, 0, 4);
    ff_tensor_slice(&bs, rows, 1, 2, 5);
    ff_tensor_clone(&bc, bs);
    ff_tensor_t *ms = ff_matmul(tp, xs, bs), *mc = ff_matmul(tp, xc, bc);
    FF_EXPECT(ms && mc, "%s", ff_last_error());
    for (int i = 0; i < 15; i++) FF_EXPECT_NEAR(ms->data[i], mc->data[i], 1e-6);
    ff_tape_free(tp);
    ff_tensor_free(bs); ff_tensor_free(rows); ff_tensor_free(bc);
    ff_tensor_free(xs); ff_tensor_free(ws); ff_tensor_free(xc); ff_tensor_free(wc);
    ff_tensor_free(xb); ff_tensor_free(wb); ff_tensor_free(gws); ff_tensor_free(gwc); ff_tensor_free(seed);
}

/* ---- composition, accumulation, modes ---------------------------------------------------------- */

/* loss = mean((W2 leaky(W1 x + b1) + b2 - y)^2) with x a leaf; every grad vs float central
 * differences of the whole chain (float32-appropriate step and tolerance). */
static float mlp_loss(ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *w1, ff_tensor_t *b1, ff_tensor_t *w2,
                      ff_tensor_t *b2, ff_tensor_t *y, ff_tensor_t **loss) {
    ff_tensor_t *h = ff_leaky_relu(tp, ff_linear(tp, x, w1, b1), 0.2f);
    ff_tensor_t *o = ff_linear(tp, ff_concat(tp, h, x), w2, b2);       /* x used twice: fan-out */
    *loss = ff_mean_all(tp, ff_square(tp, ff_sub(tp, o, y)));
    return *loss ? (*loss)->data[0] : NAN;
}

FF_TEST(chain_vs_finite_differences) {
    ff_rng_t r;
    ff_rng_seed(&r, 5);
    ff_params_t *P;
    ff_tensor_t *w1, *b1, *w2, *b2, *x0, *y;
    FF_EXPECT(ff_params_new(&P) == FF_OK, "%s", ff_last_error());
    ff_params_add(P, "w1", 2, (int64_t[]){ 6, 3 }, (ff_param_init){ FF_INIT_UNIFORM, 0.8f }, &r, &w1);
    ff_params_add(P, "b1", 1, (int64_t[]){ 6 }, (ff_param_init){ FF_INIT_UNIFORM, 0.5f }, &r, &b1);
    ff_params_add(P, "w2", 2, (int64_t[]){ 2, 9 }, (ff_param_init){ FF_INIT_NORMAL, 0.5f }, &r, &w2);
    ff_params_add(P, "b2", 1, (int64_t[]){ 2 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, &r, &b2);
    ff_tensor_new2(&x0, 5, 3); ff_tensor_new2(&y, 5, 2);
    ff_rng_fill_normal(&r, x0, 0, 1); ff_rng_fill_normal(&r, y, 0, 1);
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tensor_t *x = ff_tape_leaf(tp, x0, 1), *loss;
    mlp_loss(tp, x, w1, b1, w2, b2, y, &loss);
    FF_EXPECT(ff_tape_backward(tp, loss) == FF_OK, "%s", ff_last_error());
    /* finite differences over the parameters (through the flat block) and the leaf */
    float *p = ff_params_data(P), *g = ff_params_grad(P);
    const float h = 1e-3f;
    double emax = 0;
    int64_t worst = -1;
    ff_tape_t *t2;
    ff_tape_new(&t2, 0);
    ff_tape_set_grad(t2, 0);
    for (int64_t i = 0; i < ff_params_numel(P) + 15; i++) {
        float *v = i < ff_params_numel(P) ? &p[i] : &x0->data[i - ff_params_numel(P)];
        float an = i < ff_params_numel(P) ? g[i] : x->grad->data[i - ff_params_numel(P)];
        float keep = *v, lp, lm;
        ff_tensor_t *l;
        *v = keep + h; ff_tape_reset(t2); lp = mlp_loss(t2, x0, w1, b1, w2, b2, y, &l);
        *v = keep - h; ff_tape_reset(t2); lm = mlp_loss(t2, x0, w1, b1, w2, b2, y, &l);
        *v = keep;
        double fd = ((double)lp - (double)lm) / (2.0 * h), e = fabs(fd - an) / (1.0 + fabs(fd));
        if (e > emax) { emax = e; worst = i; }
    }
    FF_EXPECT(emax < 2e-3, "max relative |grad - fd| = %.3g at %lld", emax, (long long)worst);
    ff_tape_free(t2); ff_tape_free(tp);
    ff_tensor_free(x0); ff_tensor_free(y); ff_params_free(P);
}

FF_TEST(fanout_and_self_products) {
    ff_tensor_t *x0;
    ff_tensor_new1(&x0, 4);
    for (int i = 0; i < 4; i++) x0->data[i] = (float)i - 1.5f;
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tensor_t *x = ff_tape_leaf(tp, x0, 1);
    /* y = x*x + x + x/x + P_x(x); sum(P_x(x)) = (1 - |x|^2) sum(x), so
     * d/dx_i sum(y) = 2 x_i + 1 + 0 + (1 - |x|^2) - 2 x_i sum(x) */
    ff_tensor_t *y = ff_add(tp, ff_add(tp, ff_mul(tp, x, x), x), ff_div(tp, x, x));
    y = ff_add(tp, y, ff_sphere_project(tp, x, x));
    FF_EXPECT(ff_tape_backward(tp, ff_sum_all(tp, y)) == FF_OK, "%s", ff_last_error());
    double s2 = 0, s1 = 0;
    for (int i = 0; i < 4; i++) { s2 += x0->data[i] * x0->data[i]; s1 += x0->data[i]; }
    for (int i = 0; i < 4; i++)
        FF_EXPECT_NEAR(x->grad->data[i], 2.0 * x0->data[i] + 1.0 + (1.0 - s2) - 2.0 * x0->data[i] * s1, 1e-5);
    ff_tape_free(tp);
    ff_tensor_free(x0);
}

/* Two VJPs on one forward: the leaf gradient accumulates, intermediates are fresh each pass. */
FF_TEST(backward_seed_vjp) {
    ff_tensor_t *x0, *s1, *s2;
    ff_tensor_new2(&x0, 2, 3); ff_tensor_new2(&s1, 2, 3); ff_tensor_new2(&s2, 2, 3);
    for (int i = 0; i < 6; i++) { x0->data[i] = 0.3f * (float)i - 0.7f; s1->data[i] = (float)(i % 3) - 1.0f; s2->data[i] = 0.5f; }
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tensor_t *x = ff_tape_leaf(tp, x0, 1);
    ff_tensor_t *y = ff_tanh(tp, ff_mul_scalar(tp, x, 2.0f));   /* dy/dx = 2 (1 - y^2) */
    FF_EXPECT(ff_tape_backward_seed(tp, y, s1) == FF_OK, "%s", ff_last_error());
    for (int i = 0; i < 6; i++)
        FF_EXPECT_NEAR(x->grad->data[i], s1->data[i] * 2.0 * (1.0 - tanh(2.0 * x0->data[i]) * tanh(2.0 * x0->data[i])), 1e-5);
    FF_EXPECT(ff_tape_backward_seed(tp, y, s2) == FF_OK, "%s", ff_last_error());
    for (int i = 0; i < 6; i++) {
        double d = 2.0 * (1.0 - tanh(2.0 * x0->data[i]) * tanh(2.0 * x0->data[i]));
        FF_EXPECT_NEAR(x->grad->data[i], (s1->data[i] + s2->data[i]) * d, 1e-5);
    }
    ff_tensor_t *bad;
    ff_tensor_new2(&bad, 3, 2);
    FF_EXPECT_ERROR(ff_tape_backward_seed(tp, y, bad), FF_ESHAPE, "ff_tape_backward: output [2,3] but seed [3,2]");
    ff_tape_free(tp);
    ff_tensor_free(x0); ff_tensor_free(s1); ff_tensor_free(s2); ff_tensor_free(bad);
}

/* With parameter gradients off, a VJP reaches the leaf and leaves the parameter's grad alone. */
FF_TEST(param_grads_off_for_vjps) {
    ff_tensor_t *w, *g, *x0, *seed;
    ff_tensor_new2(&w, 2, 3); ff_tensor_new2(&g, 2, 3); ff_tensor_new2(&x0, 4, 3); ff_tensor_new2(&seed, 4, 2);
    for (int i = 0; i < 6; i++) w->data[i] = 0.5f * (float)i - 1.0f;
    for (int i = 0; i < 12; i++) x0->data[i] = 0.25f * (float)i;
    for (int i = 0; i < 8; i++) seed->data[i] = (float)(i % 3) - 1.0f;
    w->grad = g; w->flags |= FF_TENSOR_NEEDS_GRAD;
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tape_set_param_grads(tp, 0);
    ff_tensor_t *x = ff_tape_leaf(tp, x0, 1);
    ff_tensor_t *y = ff_linear(tp, x, w, NULL);
    FF_EXPECT(ff_tape_backward_seed(tp, y, seed) == FF_OK, "%s", ff_last_error());
    for (int r = 0; r < 4; r++)                      /* dx = seed w */
        for (int k = 0; k < 3; k++)
            FF_EXPECT_NEAR(x->grad->data[r * 3 + k], seed->data[r * 2] * w->data[k] + seed->data[r * 2 + 1] * w->data[3 + k], 1e-6);
    for (int i = 0; i < 6; i++) FF_EXPECT(g->data[i] == 0.0f, "parameter grad touched");
    /* a chain of parameters only is then a constant: nothing to differentiate */
    ff_tensor_t *c = ff_mul_scalar(tp, w, 2.0f);
    FF_EXPECT(c && c->node == NULL, "no node for a parameter-only op");
    ff_tape_set_param_grads(tp, 1);
    ff_tape_reset(tp);
    x = ff_tape_leaf(tp, x0, 1);
    y = ff_linear(tp, x, w, NULL);
    FF_EXPECT(ff_tape_backward_seed(tp, y, seed) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_NEAR(g->data[0], seed->data[0] * x0->data[0] + seed->data[2] * x0->data[3] + seed->data[4] * x0->data[6] + seed->data[6] * x0->data[9], 1e-6);
    ff_tape_free(tp);
    ff_tensor_free(w); ff_tensor_free(g); ff_tensor_free(x0); ff_tensor_free(seed);
}

FF_TEST(grad_mode_off_records_nothing) {
    ff_tensor_t *w, *g, *x0;
    ff_tensor_new2(&w, 2, 2); ff_tensor_new2(&g, 2, 2); ff_tensor_new2(&x0, 1, 2);
    ff_tensor_fill(w, 1.0f); ff_tensor_fill(x0, 2.0f);
    w->grad = g; w->flags |= FF_TENSOR_NEEDS_GRAD;
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tape_set_grad(tp, 0);
    ff_tensor_t *y = ff_sum_all(tp, ff_linear(tp, x0, w, NULL));
    FF_EXPECT(y && y->data[0] == 8.0f, "forward still computes");
    FF_EXPECT(y && y->node == NULL, "no node recorded");
    FF_EXPECT_ERROR(ff_tape_backward(tp, y), FF_EINVAL, "does not depend on any parameter");
    ff_tape_reset(tp);
    ff_tape_set_grad(tp, 1);
    y = ff_sum_all(tp, ff_linear(tp, x0, w, NULL));
    FF_EXPECT(ff_tape_backward(tp, y) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_NEAR(g->data[0], 2.0, 0);
    ff_tape_free(tp);
    ff_tensor_free(w); ff_tensor_free(g); ff_tensor_free(x0);
}

FF_TEST(dropout_mask_and_modes) {
    ff_tensor_t *x0;
    ff_tensor_new1(&x0, 20000);
    ff_tensor_fill(x0, 1.0f);
    ff_rng_t r;
    ff_rng_seed(&r, 3);
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tape_set_rng(tp, &r);
    ff_tensor_t *y = ff_dropout(tp, x0, 0.25f);
    int64_t zeros = 0, other = 0;
    for (int64_t i = 0; i < 20000; i++) {
        if (y->data[i] == 0.0f) zeros++;
        else if (fabsf(y->data[i] - 1.0f / 0.75f) > 1e-6f) other++;
    }
    FF_EXPECT(fabs((double)zeros / 20000 - 0.25) < 0.015, "dropped fraction %g", (double)zeros / 20000);
    FF_EXPECT(other == 0, "%lld kept values are not scaled by 1/(1-p)", (long long)other);
    ff_tape_set_training(tp, 0);
    FF_EXPECT(ff_dropout(tp, x0, 0.25f) == x0, "identity when not training");
    ff_tape_set_training(tp, 1);
    FF_EXPECT(ff_dropout(tp, x0, 1.0f) == NULL, "p = 1 refused");
    FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_dropout: [20000]: p = 1 outside [0, 1)");
    ff_tape_reset(tp);
    ff_tape_set_rng(tp, NULL);
    FF_EXPECT(ff_dropout(tp, x0, 0.5f) == NULL, "no rng refused");
    FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "needs a generator");
    ff_tape_free(tp);
    ff_tensor_free(x0);
}

/* ---- errors ----------------------------------------------------------------------------------- */

FF_TEST(errors_name_op_and_shapes) {
    ff_tensor_t *a, *b, *c;
    ff_tensor_new2(&a, 512, 3); ff_tensor_new2(&b, 4, 256); ff_tensor_new2(&c, 2, 5);
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    FF_EXPECT(ff_matmul(tp, a, b) == NULL, "mismatch refused");
    FF_EXPECT_ERROR(ff_tape_status(tp), FF_ESHAPE, "ff_matmul: [512,3] x [4,256]: inner dims 3 != 4");
    /* sticky: later ops do nothing, the first message stays */
    FF_EXPECT(ff_add(tp, a, a) == NULL, "sticky");
    FF_EXPECT(ff_relu(tp, NULL) == NULL, "sticky");
    ff_errorf(FF_EIO, "something else happened meanwhile");
    FF_EXPECT_ERROR(ff_tape_status(tp), FF_ESHAPE, "ff_matmul: [512,3] x [4,256]: inner dims 3 != 4");
    struct { const char *what; ff_status code; const char *msg; } cases[] = {
        { "linear",   FF_ESHAPE, "ff_linear: x [512,3], w [2,5]" },
        { "add",      FF_ESHAPE, "ff_add: [512,3] and [2,5]: dim 1 of b is 5, expected 3 or 1" },
        { "null",     FF_EINVAL, "ff_add: input 2 of 2 is NULL" },
        { "concat",   FF_ESHAPE, "ff_concat: [512,3] and [2,5]" },
        { "reshape",  FF_EINVAL, "ff_reshape: [2,5]: size -2 at dim 0" },
        { "reshape2", FF_ESHAPE, "ff_reshape: [2,5] has 10 elements, the new shape 12" },
        { "sum",      FF_EINVAL, "ff_sum: [2,5]: axis 2 out of range" },
        { "alloc",    FF_EINVAL, "ff_tape_alloc: negative size -1 at dim 1" },
        { "conv",     FF_ESHAPE, "ff_conv1d: x [1,2,5], w [3,4,5], dilation 1, padding 0: output length -1 < 1" },
        { "embed",    FF_EINVAL, "ff_embedding: ids[1] = 7 is not an integer in [0, 2)" },
        { "ln",       FF_ESHAPE, "ff_layer_norm: x [512,3], gamma [2,5]: expected [3]" },
        { "sphere",   FF_ESHAPE, "ff_sphere_project: x [512,3], v [2,5]" },
        { "backward", FF_ESHAPE, "ff_tape_backward: loss [2,5] is not a scalar" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ff_tape_reset(tp);
        const char *w = cases[i].what;
        ff_tensor_t *x3, *w3, *ids;
        ff_tensor_new3(&x3, 1, 2, 5); ff_tensor_new3(&w3, 3, 4, 5); ff_tensor_new1(&ids, 2);
        ids->data[1] = 7;
        ff_status s = FF_OK;
        if (!strcmp(w, "linear"))   ff_linear(tp, a, c, NULL);
        if (!strcmp(w, "add"))      ff_add(tp, a, c);
        if (!strcmp(w, "null"))     ff_add(tp, a, NULL);
        if (!strcmp(w, "concat"))   ff_concat(tp, a, c);
        if (!strcmp(w, "reshape"))  ff_reshape(tp, c, 2, (int64_t[]){ -2, 5 });
        if (!strcmp(w, "reshape2")) ff_reshape(tp, c, 2, (int64_t[]){ 3, 4 });
        if (!strcmp(w, "sum"))      ff_sum(tp, c, 2, 0);
        if (!strcmp(w, "alloc"))    ff_tape_alloc(tp, 2, (int64_t[]){ 2, -1 });
        if (!strcmp(w, "conv"))     ff_conv1d(tp, x3, w3, NULL, 1, 0);
        if (!strcmp(w, "embed"))    ff_embedding(tp, c, ids);
        if (!strcmp(w, "ln"))       ff_layer_norm(tp, a, c, NULL, 1e-5f);
        if (!strcmp(w, "sphere"))   ff_sphere_project(tp, a, c);
        if (!strcmp(w, "backward")) s = ff_tape_backward(tp, c);
        (void)s;
        FF_EXPECT_ERROR(ff_tape_status(tp), cases[i].code, cases[i].msg);
        ff_tensor_free(x3); ff_tensor_free(w3); ff_tensor_free(ids);
    }
    ff_tape_reset(tp);
    ff_tensor_t neg = *c;                    /* a hand-made header with a negative size */
    neg.shape[0] = -3;
    FF_EXPECT(ff_relu(tp, &neg) == NULL, "negative size refused");
    FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_relu: input 1 has negative size -3 at dim 0");
    FF_EXPECT(ff_relu(NULL, a) == NULL, "NULL tape");
    FF_EXPECT(strstr(ff_last_error(), "ff_relu: tape is NULL") != NULL, "%s", ff_last_error());
    ff_tape_free(tp);
    ff_tensor_free(a); ff_tensor_free(b); ff_tensor_free(c);
}

FF_TEST(generation_refuses_stale_temporaries) {
    ff_tensor_t *a;
    ff_tensor_new2(&a, 2, 2);
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tensor_t *old = ff_relu(tp, a);
    FF_EXPECT(old != NULL, "%s", ff_last_error());
    ff_tape_reset(tp);
    FF_EXPECT(ff_tape_status(tp) == FF_OK, "reset clears the status");
    FF_EXPECT(ff_add(tp, a, old) == NULL, "stale temporary refused");
    FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_add: input 2 [2,2] is a temporary from an earlier step");
    /* the usual bug: a tensor cached from the previous step, used after the new step has already
     * run the same ops (which would land on the same arena offsets) */
    for (int step = 0; step < 3; step++) {
        ff_tape_reset(tp);
        ff_tensor_t *fresh = ff_relu(tp, a);
        ff_tensor_t *again = ff_exp(tp, fresh);
        FF_EXPECT(fresh && again, "%s", ff_last_error());
        if (step > 0) {
            FF_EXPECT(ff_add(tp, again, old) == NULL, "step %d: cached temporary refused", step);
            FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "is a temporary from an earlier step");
        }
        old = again;
    }
    /* a temporary of another tape is refused too (generations are unique per process) */
    ff_tape_t *t2;
    ff_tape_new(&t2, 0);
    ff_tape_reset(tp);
    ff_tensor_t *mine = ff_relu(tp, a);
    FF_EXPECT(ff_relu(t2, mine) == NULL, "foreign temporary refused");
    ff_tape_free(t2); ff_tape_free(tp);
    ff_tensor_free(a);
}

/* Every backward writes an input's gradient as numel contiguous floats, so an input whose own gradient
 * buffer is strided (a column view or a transpose of a parameter, as a view's header carries) is
 * refused at the op's entry check, naming the op, the input and the strides, whether grad mode is on
 * or off and in every input slot (optional ones too). Strided DATA with no gradient stays accepted. */
FF_TEST(strided_gradient_refused) {
    ff_rng_t r;
    ff_rng_seed(&r, 17);
    ff_params_t *P = NULL;
    ff_tape_t *tp = NULL;
    ff_tensor_t *w = NULL, *x = NULL, *x3 = NULL;
    FF_EXPECT(ff_params_new(&P) == FF_OK && ff_tape_new(&tp, 0) == FF_OK);
    FF_EXPECT(ff_params_set_prefix(P, "net.") == FF_OK);
    FF_EXPECT(ff_params_add(P, "w", 2, (int64_t[]){ 3, 5 }, (ff_param_init){ FF_INIT_UNIFORM, 1.0f }, &r, &w) == FF_OK);
    FF_EXPECT(ff_tensor_new2(&x, 4, 2) == FF_OK && ff_tensor_new2(&x3, 3, 2) == FF_OK);
    if (!w || !x || !x3 || !tp) goto done;
    ff_rng_fill_normal(&r, x, 0, 1);
    ff_rng_fill_normal(&r, x3, 0, 1);
    /* v = w[:, 1:3] with the same columns of w's gradient: [3, 2], rows 5 floats apart */
    ff_tensor_t v = *w, gv = *w->grad;
    v.data = w->data + 1;  v.shape[1] = 2;
    gv.data = w->grad->data + 1; gv.shape[1] = 2;
    v.grad = &gv;
    /* wt = w^T as a view, with the transposed view of the gradient: strides [1, 5] */
    ff_tensor_t wt = *w, gt = *w->grad;
    wt.shape[0] = 5; wt.shape[1] = 3; wt.stride[0] = 1; wt.stride[1] = 5;
    gt.shape[0] = 5; gt.shape[1] = 3; gt.stride[0] = 1; gt.stride[1] = 5;
    wt.grad = &gt;
    for (int grad = 1; grad >= 0; grad--) {
        ff_tape_set_grad(tp, grad);
        ff_tape_reset(tp);
        FF_EXPECT(ff_add(tp, &v, x3) == NULL, "ff_add took a strided gradient");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_add: input 1 [3,2] \"net.w\" needs a gradient, but its "
                        "gradient [3,2] (strides [5,1]) is not contiguous");
        ff_tape_reset(tp);
        FF_EXPECT(ff_mul(tp, x3, &v) == NULL, "ff_mul took a strided gradient");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_mul: input 2 [3,2] \"net.w\"");
        ff_tape_reset(tp);
        FF_EXPECT(ff_linear(tp, x, &v, NULL) == NULL, "ff_linear took a strided weight gradient");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_linear: input 2 [3,2] \"net.w\" needs a gradient");
        ff_tape_reset(tp);
        FF_EXPECT(ff_linear(tp, &v, w, NULL) == NULL, "ff_linear took a strided x gradient");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_linear: input 1 [3,2]");
        ff_tape_reset(tp);
        FF_EXPECT(ff_matmul(tp, x, &wt) == NULL, "ff_matmul took a transposed gradient");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "(strides [1,5])");
        ff_tape_reset(tp);
        FF_EXPECT(ff_layer_norm(tp, x3, NULL, &v, 1e-5f) == NULL, "ff_layer_norm took a strided optional input");
        FF_EXPECT_ERROR(ff_tape_status(tp), FF_EINVAL, "ff_layer_norm: input 3 [3,2]");
    }
    ff_tape_set_grad(tp, 1);
    /* the same views without a gradient are strided data, read as they are */
    v.grad = NULL;
    ff_tape_reset(tp);
    ff_tensor_t *y = ff_linear(tp, x, &v, NULL);
    FF_EXPECT(y != NULL, "%s", ff_last_error());
    for (int m = 0; y && m < 4; m++)
        for (int o = 0; o < 3; o++)
            FF_EXPECT_NEAR(y->data[m * 3 + o], (double)x->data[m * 2] * w->data[o * 5 + 1] +
                           (double)x->data[m * 2 + 1] * w->data[o * 5 + 2], 1e-5);
done:
    ff_tensor_free(x); ff_tensor_free(x3);
    ff_params_free(P);
    ff_tape_free(tp);
}

/* ---- memory ----------------------------------------------------------------------------------- */

FF_TEST(memory_stable_across_steps) {
    ff_rng_t r;
    ff_rng_seed(&r, 9);
    ff_params_t *P;
    ff_params_new(&P);
    ff_tensor_t *w[3], *b[3];
    int64_t dims[4] = { 16, 128, 128, 8 };          /* a step needs several MiB: the arena must grow */
    for (int l = 0; l < 3; l++) {
        char nm[32];
        snprintf(nm, sizeof nm, "l%d.w", l);
        ff_params_add(P, nm, 2, (int64_t[]){ dims[l + 1], dims[l] }, (ff_param_init){ FF_INIT_UNIFORM, 0.2f }, &r, &w[l]);
        snprintf(nm, sizeof nm, "l%d.b", l);
        ff_params_add(P, nm, 1, (int64_t[]){ dims[l + 1] }, (ff_param_init){ FF_INIT_ZEROS, 0 }, &r, &b[l]);
    }
    ff_optim_config cfg = ff_optim_adamw_defaults();
    ff_optim_t *opt;
    ff_optim_new(&opt, P, &cfg);
    ff_tensor_t *x, *y;
    ff_tensor_new2(&x, 512, 16); ff_tensor_new2(&y, 512, 8);
    ff_rng_fill_normal(&r, x, 0, 1); ff_rng_fill_normal(&r, y, 0, 1);
    ff_tape_t *tp;
    ff_tape_new(&tp, 4096);                   /* tiny: the first step must grow it */
    ff_tape_set_rng(tp, &r);
    size_t arena0 = 0;
    int64_t mem0 = 0;
    float first = 0, last = 0;
    for (int step = 0; step < 30; step++) {
        ff_tape_reset(tp);
        ff_params_zero_grad(P);
        ff_tensor_t *h = ff_tape_leaf(tp, x, 0);
        for (int l = 0; l < 3; l++) {
            h = ff_linear(tp, h, w[l], b[l]);
            if (l < 2) h = ff_dropout(tp, ff_gelu(tp, ff_layer_norm(tp, h, NULL, NULL, 1e-5f)), 0.1f);
        }
        ff_tensor_t *loss = ff_mean_all(tp, ff_square(tp, ff_sub(tp, h, y)));
        FF_EXPECT(ff_tape_backward(tp, loss) == FF_OK, "%s", ff_last_error());
        ff_clip_grad_norm(P, 1.0f, NULL);
        ff_optim_step(opt, 1e-2f);
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
        if (step == 1) { arena0 = ff_tape_arena_bytes(tp); mem0 = ff_mem_in_use(); }
        if (step > 1) {
            FF_EXPECT(ff_tape_arena_bytes(tp) == arena0, "step %d: arena %zu != %zu", step, ff_tape_arena_bytes(tp), arena0);
            FF_EXPECT(ff_mem_in_use() == mem0, "step %d: mem %lld != %lld", step, (long long)ff_mem_in_use(), (long long)mem0);
        }
    }
    FF_EXPECT(last < first, "loss went from %g to %g", first, last);
    FF_EXPECT(arena0 > ((size_t)2 << 20), "the arena grew past its first chunk (%zu bytes)", arena0);
    printf("  arena %zu bytes after warm-up; loss %.4f -> %.4f\n", arena0, first, last);
    ff_tape_free(tp); ff_optim_free(opt); ff_params_free(P);
    ff_tensor_free(x); ff_tensor_free(y);
}

/* Random (size-1, non-square) shapes for the transformer ops: softmax, bmm with every transpose
 * pair, and attention with random head counts. */
FF_TEST(random_attention_ops) {
    ff_rng_t r;
    ff_rng_seed(&r, 79);
    int good = 0, n = 36;
    for (int it = 0; it < n; it++) {
        gcase c = { 0 };
        c.nin = 1;
        c.grad[0] = 1;
        if (it % 3 == 0) {
            c.op = FF_OP_SOFTMAX; c.label = "random softmax";
            c.nd[0] = 1 + (int)ff_rng_below(&r, 3);
            for (int d = 0; d < c.nd[0]; d++) c.sh[0][d] = 1 + (int64_t)ff_rng_below(&r, 6);
            c.strided[0] = c.nd[0] >= 2 && ff_rng_below(&r, 2);
        } else if (it % 3 == 1) {
            c.op = FF_OP_BMM; c.label = "random bmm"; c.nin = 2;
            int64_t B = 1 + (int64_t)ff_rng_below(&r, 3), M = 1 + (int64_t)ff_rng_below(&r, 5),
                    K = 1 + (int64_t)ff_rng_below(&r, 5), N = 1 + (int64_t)ff_rng_below(&r, 5);
            c.ia = (int)ff_rng_below(&r, 2); c.ib = (int)ff_rng_below(&r, 2);
            c.nd[0] = c.nd[1] = 3;
            c.sh[0][0] = B; c.sh[0][1] = c.ia ? K : M; c.sh[0][2] = c.ia ? M : K;
            c.sh[1][0] = B; c.sh[1][1] = c.ib ? N : K; c.sh[1][2] = c.ib ? K : N;
            c.grad[0] = ff_rng_below(&r, 4) != 0; c.grad[1] = !c.grad[0] || ff_rng_below(&r, 4) != 0;
        } else {
            c.op = FF_OP_ATTENTION; c.label = "random attention";
            int64_t H = 1 + (int64_t)ff_rng_below(&r, 3), dh = 1 + (int64_t)ff_rng_below(&r, 3);
            c.ia = (int)H;
            c.nd[0] = 3;
            c.sh[0][0] = 1 + (int64_t)ff_rng_below(&r, 2); c.sh[0][1] = 1 + (int64_t)ff_rng_below(&r, 6);
            c.sh[0][2] = 3 * H * dh;
        }
        good += check_case(&c, 12000 + (uint64_t)it);
    }
    FF_EXPECT(good == n, "%d of %d random transformer-op cases failed", n - good, n);
}

/* Softmax of large inputs stays finite (max subtracted): [1000, 0, -1000] -> [1, 0, 0]. */
FF_TEST(softmax_large_inputs) {
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tensor_t *x;
    ff_tensor_new1(&x, 3);
    x->data[0] = 1000; x->data[1] = 0; x->data[2] = -1000;
    ff_tensor_t *y = ff_softmax(tp, x);
    FF_EXPECT(y && y->data[0] == 1.0f && y->data[1] == 0.0f && y->data[2] == 0.0f, "%s", ff_last_error());
    ff_tensor_free(x);
    ff_tape_free(tp);
}

/* The polynomial exp behind softmax and gelu_tanh over a wide range: gelu_tanh on x in [-30, 30]
 * (saturation on both sides) and softmax of a row spread over [-90, 90] against double. */
FF_TEST(gelu_tanh_and_softmax_wide_range) {
    const int64_t n = 6001;
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tensor_t *x;
    ff_tensor_new1(&x, n);
    for (int64_t i = 0; i < n; i++) x->data[i] = -30.0f + 60.0f * (float)i / (float)(n - 1);
    ff_tensor_t *y = ff_gelu_tanh(tp, x), *p = ff_softmax(tp, x);
    double eg = 0, es = 0, z = 0, m = 30.0;
    for (int64_t i = 0; i < n; i++) z += exp((double)x->data[i] - m);
    for (int64_t i = 0; y && p && i < n; i++) {
        double v = x->data[i], ref = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        eg = fmax(eg, fabs(y->data[i] - ref) / fmax(1.0, fabs(ref)));
        es = fmax(es, fabs(p->data[i] - exp(v - m) / z));
    }
    FF_EXPECT(y && p, "%s", ff_last_error());
    FF_EXPECT(eg < 1e-6, "gelu_tanh: max relative error %g", eg);
    FF_EXPECT(es < 1e-8, "softmax: max error %g (largest entry %g)", es, 1 / z);
    ff_tensor_free(x);
    ff_tape_free(tp);
}

/* The fused attention equals the same attention composed from linear-free ops: head split by
 * reshape + transpose, bmm(q, k^T) * s, softmax, bmm(p, v), merge; forward and the VJP in qkv. */
FF_TEST(attention_matches_composition) {
    const int64_t n = 2, L = 6, H = 2, dh = 3, C = H * dh;
    ff_rng_t r;
    ff_rng_seed(&r, 31);
    ff_tensor_t *x, *seed;
    ff_tensor_new3(&x, n, L, 3 * C);
    ff_tensor_new3(&seed, n, L, C);
    ff_rng_fill_uniform(&r, x, -1.5f, 1.5f);
    ff_rng_fill_uniform(&r, seed, -1, 1);
    ff_tape_t *tp;
    ff_tape_new(&tp, 0);
    ff_tensor_t *q1 = ff_tape_leaf(tp, x, 1), *q2 = ff_tape_leaf(tp, x, 1);
    ff_tensor_t *y1 = ff_attention(tp, q1, (int)H);
    /* [n, L, 3, H, dh] -> per part [n*H, L, dh] */
    ff_tensor_t *parts = ff_transpose(tp, ff_reshape(tp, q2, 4, (int64_t[]){ n * L, 3, H, dh }), 0, 2); /* [H,3,nL,dh] */
    parts = ff_transpose(tp, parts, 0, 1);                                                            /* [3,H,nL,dh] */
    ff_tensor_t *heads = ff_reshape(tp, parts, 4, (int64_t[]){ 3 * H, n, L, dh });
    heads = ff_transpose(tp, heads, 0, 1);                                                            /* [n,3H,L,dh] */
    /* split q, k, v along dim 1 by a reshape to [n, 3, H*L*dh] and bmm with selector rows */
    ff_tensor_t *flat = ff_reshape(tp, heads, 3, (int64_t[]){ n, 3, H * L * dh });
    ff_tensor_t *sel[3];
    for (int p = 0; p < 3; p++) {
        ff_tensor_t *e;
        ff_tensor_new3(&e, n, 1, 3);
        for (int i = 0; i < n; i++) e->data[i * 3 + p] = 1.0f;
        sel[p] = ff_reshape(tp, ff_bmm(tp, ff_tape_leaf(tp, e, 0), flat, 0, 0), 3, (int64_t[]){ n * H, L, dh });
        ff_tensor_free(e);
    }
    ff_tensor_t *s = ff_mul_scalar(tp, ff_bmm(tp, sel[0], sel[1], 0, 1), 1.0f / sqrtf((float)dh));
    ff_tensor_t *o = ff_bmm(tp, ff_softmax(tp, s), sel[2], 0, 0);                                    /* [nH,L,dh] */
    o = ff_transpose(tp, ff_reshape(tp, o, 4, (int64_t[]){ n, H, L, dh }), 1, 2);                      /* [n,L,H,dh] */
    ff_tensor_t *y2 = ff_reshape(tp, o, 3, (int64_t[]){ n, L, C });
    FF_EXPECT(ff_tape_status(tp) == FF_OK, "%s", ff_last_error());
    if (y1 && y2) {
        double e = 0;
        for (int64_t i = 0; i < n * L * C; i++) e = fmax(e, fabs(y1->data[i] - y2->data[i]));
        FF_EXPECT(e < 1e-5, "forward differs by %g", e);
        FF_EXPECT(ff_tape_backward_seed(tp, y1, seed) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(ff_tape_backward_seed(tp, y2, seed) == FF_OK, "%s", ff_last_error());
        double g = 0;
        for (int64_t i = 0; i < n * L * 3 * C; i++) g = fmax(g, fabs(q1->grad->data[i] - q2->grad->data[i]));
        FF_EXPECT(g < 1e-5, "gradients differ by %g", g);
    }
    ff_tensor_free(x); ff_tensor_free(seed);
    ff_tape_free(tp);
}

FF_MAIN()
