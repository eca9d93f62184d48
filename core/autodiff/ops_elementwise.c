/* ops_elementwise.c — binary ops with right-aligned broadcasting of b, scalar ops and unary
 * activations, each forward next to its backward. Broadcast dims are collapsed to at most 4 loops
 * whose innermost one is contiguous in a (and in b, or b is constant along it).
 */
#include <math.h>
#include <string.h>
#include "tape_internal.h"

/* ---- broadcasting ----------------------------------------------------------------------------- */

/* a's (contiguous) shape as 4 collapsed dims n[], with b's element strides sb[] (0 = broadcast). */
typedef struct bcast { int64_t n[4], sb[4]; } bcast;

static int bcast_plan(ff_tape_t *tp, const char *fn, const ff_tensor_t *a, const ff_tensor_t *b, bcast *bc) {
    char s1[96], s2[96];
    if (b->ndim > a->ndim) {
        ff_op_fail(tp, FF_ESHAPE, "%s: [%s] and [%s]: b has more dims than a (b broadcasts into a's shape)",
                   fn, FF_SHAPE(a, s1), FF_SHAPE(b, s2));
        return 0;
    }
    int64_t n[FF_MAX_DIMS], sb[FF_MAX_DIMS], stride = 1;
    int off = a->ndim - b->ndim;
    for (int i = a->ndim - 1; i >= 0; i--) {
        int64_t bd = i >= off ? b->shape[i - off] : 1;
        if (bd != a->shape[i] && bd != 1) {
            ff_op_fail(tp, FF_ESHAPE, "%s: [%s] and [%s]: dim %d of b is %lld, expected %lld or 1", fn,
                       FF_SHAPE(a, s1), FF_SHAPE(b, s2), i - off, (long long)bd, (long long)a->shape[i]);
            return 0;
        }
        n[i] = a->shape[i];
        sb[i] = (bd == 1) ? 0 : stride;
        stride *= bd;
    }
    /* Drop size-1 dims, merge neighbours of the same kind (both broadcast, or both full). */
    int64_t cn[FF_MAX_DIMS], cs[FF_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (n[i] == 1) continue;
        if (k > 0 && ((cs[k - 1] == 0 && sb[i] == 0) || (cs[k - 1] != 0 && sb[i] != 0 && cs[k - 1] == sb[i] * n[i]))) {
            cn[k - 1] *= n[i];
            cs[k - 1] = sb[i];
            continue;
        }
        cn[k] = n[i]; cs[k] = sb[i]; k++;
    }
    for (int i = 0; i < 4; i++) { bc->n[i] = 1; bc->sb[i] = 0; }
    for (int i = 0; i < k; i++) { bc->n[4 - k + i] = cn[i]; bc->sb[4 - k + i] = cs[i]; }
    return 1;
}

/* y[i] = EXPR(a[i], b[bidx(i)]) over the plan; "a" is any array laid out like a. */
#define BCAST_LOOP(bc, A, B, Y, EXPR)                                                         \
    do {                                                                                      \
        const int64_t n0_ = (bc)->n[0], n1_ = (bc)->n[1], n2_ = (bc)->n[2], n3_ = (bc)->n[3];\
        const int64_t s0_ = (bc)->sb[0], s1_ = (bc)->sb[1], s2_ = (bc)->sb[2], s3_ = (bc)->sb[3]; \
        int64_t off_ = 0;                                                                     \
        for (int64_t i0 = 0; i0 < n0_; i0++)                                                  \
        for (int64_t i1 = 0; i1 < n1_; i1++)                                                  \
        for (int64_t i2 = 0; i2 < n2_; i2++, off_ += n3_) {                                   \
            const float *restrict pa_ = (A) + off_;                                           \
            const float *restrict pb_ = (B) + i0 * s0_ + i1 * s1_ + i2 * s2_;                 \
            float *restrict py_ = (Y) + off_;                                                 \
            if (s3_) { for (int64_t j = 0; j < n3_; j++) { float x = pa_[j], w = pb_[j]; py_[j] = (EXPR); } } \
            else { const float w = pb_[0]; for (int64_t j = 0; j < n3_; j++) { float x = pa_[j]; py_[j] = (EXPR); } } \
        }                                                                                     \
    } while (0)

/* gb (+)= sum over broadcast positions of t (laid out like a), times scale. */
static void bcast_reduce(const bcast *bc, const float *restrict t, float *restrict gb, int64_t nb, float beta, float scale) {
    if (beta == 0.0f) memset(gb, 0, (size_t)nb * sizeof(float));
    int64_t off = 0;
    for (int64_t i0 = 0; i0 < bc->n[0]; i0++)
    for (int64_t i1 = 0; i1 < bc->n[1]; i1++)
    for (int64_t i2 = 0; i2 < bc->n[2]; i2++, off += bc->n[3]) {
        const float *pt = t + off;
        float *pg = gb + i0 * bc->sb[0] + i1 * bc->sb[1] + i2 * bc->sb[2];
        if (bc->sb[3]) for (int64_t j = 0; j < bc->n[3]; j++) pg[j] += scale * pt[j];
        else { float s = 0; for (int64_t j = 0; j < bc->n[3]; j++) s += pt[j]; pg[0] += scale * s; }
    }
}

static void plan_save(ff_node_t *n, const bcast *bc) {
    for (int i = 0; i < 4; i++) { n->i[i] = bc->n[i]; n->i[4 + i] = bc->sb[i]; }
}
static void plan_load(const ff_node_t *n, bcast *bc) {
    for (int i = 0; i < 4; i++) { bc->n[i] = n->i[i]; bc->sb[i] = n->i[4 + i]; }
}

static ff_tensor_t *binary(ff_tape_t *tp, int op, const char *fn, ff_tensor_t *a, ff_tensor_t *b) {
    bcast bc;
    if (!ff_op_begin(tp, fn, 2, a, b, NULL) || !bcast_plan(tp, fn, a, b, &bc)) return NULL;
    const float *xa = ff_op_contig(tp, a), *xb = ff_op_contig(tp, b);
    ff_tensor_t *out = ff_op_out(tp, a->ndim, a->shape);
    if (!xa || !xb || !out) return NULL;
    float *y = out->data;
    switch (op) {
    case FF_OP_ADD: BCAST_LOOP(&bc, xa, xb, y, x + w); break;
    case FF_OP_SUB: BCAST_LOOP(&bc, xa, xb, y, x - w); break;
    case FF_OP_MUL: BCAST_LOOP(&bc, xa, xb, y, x * w); break;
    default:        BCAST_LOOP(&bc, xa, xb, y, x / w); break;
    }
    ff_node_t *n = ff_node_new(tp, op, out, 2, a, xa, b, xb, NULL, NULL);
    if (n) plan_save(n, &bc);
    return out;
}

ff_tensor_t *ff_add(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b) { return binary(tp, FF_OP_ADD, "ff_add", a, b); }
ff_tensor_t *ff_sub(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b) { return binary(tp, FF_OP_SUB, "ff_sub", a, b); }
ff_tensor_t *ff_mul(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b) { return binary(tp, FF_OP_MUL, "ff_mul", a, b); }
ff_tensor_t *ff_div(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b) { return binary(tp, FF_OP_DIV, "ff_div", a, b); }

/* Shared backward: ga = g * da, gb = reduce(g * db). */
static void bw_binary(ff_tape_t *tp, ff_node_t *n, int op) {
    bcast bc;
    plan_load(n, &bc);
    const int64_t N = ff_tensor_numel(n->out), NB = ff_tensor_numel(n->in[1]);
    const float *g = n->g, *xa = n->x[0], *xb = n->x[1], *y = n->out->data;
    float beta;
    float *ga = ff_grad_buf(tp, n->in[0], &beta);
    if (ga) {
        if (op == FF_OP_ADD || op == FF_OP_SUB) ff_acc(ga, g, N, beta);
        else {
            float *t = beta == 0.0f ? ga : ff_arena_floats(tp, N);
            if (!t) return;
            if (op == FF_OP_MUL) BCAST_LOOP(&bc, g, xb, t, x * w);
            else                 BCAST_LOOP(&bc, g, xb, t, x / w);
            if (t != ga) ff_acc(ga, t, N, 1.0f);
        }
    }
    float *gb = ff_grad_buf(tp, n->in[1], &beta);
    if (!gb) return;
    const float *t = g;
    float scale = op == FF_OP_SUB ? -1.0f : 1.0f;
    if (op == FF_OP_MUL || op == FF_OP_DIV) {
        float *tt = ff_arena_floats(tp, N);
        if (!tt) return;
        if (op == FF_OP_MUL) for (int64_t i = 0; i < N; i++) tt[i] = g[i] * xa[i];
        else                 BCAST_LOOP(&bc, y, xb, tt, x / w);          /* y / b ... */
        if (op == FF_OP_DIV) { for (int64_t i = 0; i < N; i++) tt[i] *= g[i]; scale = -1.0f; }  /* -g y / b */
        t = tt;
    }
    if (NB == N) {
        if (beta == 0.0f) for (int64_t i = 0; i < N; i++) gb[i] = scale * t[i];
        else              for (int64_t i = 0; i < N; i++) gb[i] += scale * t[i];
    } else bcast_reduce(&bc, t, gb, NB, beta, scale);
}

void ff_bw_add(ff_tape_t *tp, ff_node_t *n) { bw_binary(tp, n, FF_OP_ADD); }
void ff_bw_sub(ff_tape_t *tp, ff_node_t *n) { bw_binary(tp, n, FF_OP_SUB); }
void ff_bw_mul(ff_tape_t *tp, ff_node_t *n) { bw_binary(tp, n, FF_OP_MUL); }
void ff_bw_div(ff_tape_t *tp, ff_node_t *n) { bw_binary(tp, n, FF_OP_DIV); }

/* ---- a + relu(b), a + leaky_relu(b) ----------------------------------------------------------- */

/* y = a + b (p + (1 - p) [b > 0]): p = 0 is ReLU. Select-free (as ff_leaky_relu) so it vectorises. */
static ff_tensor_t *add_leaky(ff_tape_t *tp, const char *fn, ff_tensor_t *a, ff_tensor_t *b, float p) {
    char s1[96], s2[96];
    if (!ff_op_begin(tp, fn, 2, a, b, NULL)) return NULL;
    if (!ff_tensor_same_shape(a, b))
        return ff_op_fail(tp, FF_ESHAPE, "%s: [%s] and [%s]: shapes must be equal", fn, FF_SHAPE(a, s1),
                          FF_SHAPE(b, s2));
    const float *restrict xa = ff_op_contig(tp, a), *restrict xb = ff_op_contig(tp, b);
    ff_tensor_t *out = ff_op_out(tp, a->ndim, a->shape);
    if (!xa || !xb || !out) return NULL;
    const int64_t N = ff_tensor_numel(a);
    float *restrict y = out->data;
    for (int64_t i = 0; i < N; i++) y[i] = xa[i] + xb[i] * (p + (1.0f - p) * (float)(xb[i] > 0.0f));
    ff_node_t *n = ff_node_new(tp, FF_OP_ADD_RELU, out, 2, a, xa, b, xb, NULL, NULL);
    if (n) n->f[0] = p;
    return out;
}

ff_tensor_t *ff_add_relu(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b) {
    return add_leaky(tp, "ff_add_relu", a, b, 0.0f);
}
ff_tensor_t *ff_add_leaky_relu(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b, float slope) {
    return add_leaky(tp, "ff_add_leaky_relu", a, b, slope);
}

/* ga = g, gb = g (p + (1 - p) [b > 0]) */
void ff_bw_add_relu(ff_tape_t *tp, ff_node_t *n) {
    const int64_t N = ff_tensor_numel(n->out);
    const float *restrict g = n->g, *restrict xb = n->x[1], p = n->f[0];
    float beta;
    float *ga = ff_grad_buf(tp, n->in[0], &beta);
    if (ga) ff_acc(ga, g, N, beta);
    float *restrict gb = ff_grad_buf(tp, n->in[1], &beta);
    if (!gb) return;
    if (beta == 0.0f) for (int64_t i = 0; i < N; i++) gb[i]  = g[i] * (p + (1.0f - p) * (float)(xb[i] > 0.0f));
    else              for (int64_t i = 0; i < N; i++) gb[i] += g[i] * (p + (1.0f - p) * (float)(xb[i] > 0.0f));
}

/* ---- unary ------------------------------------------------------------------------------------ */

typedef void (*unary_fw)(const float *restrict x, float *restrict y, int64_t n, float p);

static ff_tensor_t *unary(ff_tape_t *tp, int op, const char *fn, ff_tensor_t *a, float p, unary_fw fw) {
    if (!ff_op_begin(tp, fn, 1, a, NULL, NULL)) return NULL;
    const float *x = ff_op_contig(tp, a);
    ff_tensor_t *out = ff_op_out(tp, a->ndim, a->shape);
    if (!x || !out) return NULL;
    fw(x, out->data, ff_tensor_numel(a), p);
    ff_node_t *n = ff_node_new(tp, op, out, 1, a, x, NULL, NULL, NULL, NULL);
    if (n) n->f[0] = p;
    return out;
}

/* FWD(x, p) -> y; DER(x, y, p) -> dy/dx. */
#define UNARY_OP(name, OP, FWD, DER)                                                          \
    static void fw_##name(const float *restrict xs, float *restrict ys, int64_t N, float p) { \
        (void)p;                                                                              \
        for (int64_t i = 0; i < N; i++) { const float x = xs[i]; ys[i] = (FWD); }             \
    }                                                                                         \
    void ff_bw_##name(ff_tape_t *tp, ff_node_t *n) {                                          \
        float beta, p = n->f[0];                                                              \
        float *restrict gx = ff_grad_buf(tp, n->in[0], &beta);                                \
        if (!gx) return;                                                                      \
        const float *restrict xs = n->x[0], *restrict ys = n->out->data, *restrict g = n->g;  \
        const int64_t N = ff_tensor_numel(n->out);                                            \
        (void)p; (void)xs; (void)ys;                                                          \
        if (beta == 0.0f) for (int64_t i = 0; i < N; i++) { const float x = xs[i], y = ys[i]; (void)x; (void)y; gx[i]  = g[i] * (DER); } \
        else              for (int64_t i = 0; i < N; i++) { const float x = xs[i], y = ys[i]; (void)x; (void)y; gx[i] += g[i] * (DER); } \
    }

static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }
#define INV_SQRT2   0.70710678118654752f
#define INV_SQRT2PI 0.39894228040143268f

UNARY_OP(add_scalar, FF_OP_ADD_SCALAR, x + p,                    1.0f)
UNARY_OP(mul_scalar, FF_OP_MUL_SCALAR, x * p,                    p)
UNARY_OP(square,     FF_OP_SQUARE,     x * x,                    2.0f * x)
UNARY_OP(sqrt,       FF_OP_SQRT,       sqrtf(x),                 0.5f / y)
UNARY_OP(exp,        FF_OP_EXP,        expf(x),                  y)
UNARY_OP(log,        FF_OP_LOG,        logf(x),                  1.0f / x)
UNARY_OP(sin,        FF_OP_SIN,        sinf(x),                  cosf(x))
UNARY_OP(cos,        FF_OP_COS,        cosf(x),                  -sinf(x))
/* relu/leaky in select-free form so GCC vectorises them (it does not if-convert FP ternaries) */
UNARY_OP(relu,       FF_OP_RELU,       x * (float)(x > 0.0f),    (float)(x > 0.0f))
UNARY_OP(leaky_relu, FF_OP_LEAKY_RELU, x * (p + (1.0f - p) * (float)(x > 0.0f)), p + (1.0f - p) * (float)(x > 0.0f))
UNARY_OP(silu,       FF_OP_SILU,       x * sigm(x),              sigm(x) * (1.0f + x * (1.0f - sigm(x))))
UNARY_OP(gelu,       FF_OP_GELU,       0.5f * x * (1.0f + erff(x * INV_SQRT2)),
                                       0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT2PI * expf(-0.5f * x * x))
UNARY_OP(tanh,       FF_OP_TANH,       tanhf(x),                 1.0f - y * y)
UNARY_OP(sigmoid,    FF_OP_SIGMOID,    sigm(x),                  y * (1.0f - y))

ff_tensor_t *ff_add_scalar(ff_tape_t *tp, ff_tensor_t *a, float s) { return unary(tp, FF_OP_ADD_SCALAR, "ff_add_scalar", a, s, fw_add_scalar); }
ff_tensor_t *ff_mul_scalar(ff_tape_t *tp, ff_tensor_t *a, float s) { return unary(tp, FF_OP_MUL_SCALAR, "ff_mul_scalar", a, s, fw_mul_scalar); }
ff_tensor_t *ff_square (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_SQUARE,  "ff_square",  a, 0, fw_square); }
ff_tensor_t *ff_sqrt   (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_SQRT,    "ff_sqrt",    a, 0, fw_sqrt); }
ff_tensor_t *ff_exp    (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_EXP,     "ff_exp",     a, 0, fw_exp); }
ff_tensor_t *ff_log    (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_LOG,     "ff_log",     a, 0, fw_log); }
ff_tensor_t *ff_sin    (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_SIN,     "ff_sin",     a, 0, fw_sin); }
ff_tensor_t *ff_cos    (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_COS,     "ff_cos",     a, 0, fw_cos); }
ff_tensor_t *ff_relu   (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_RELU,    "ff_relu",    a, 0, fw_relu); }
ff_tensor_t *ff_leaky_relu(ff_tape_t *tp, ff_tensor_t *a, float slope) {
    return unary(tp, FF_OP_LEAKY_RELU, "ff_leaky_relu", a, slope, fw_leaky_relu);
}
ff_tensor_t *ff_silu   (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_SILU,    "ff_silu",    a, 0, fw_silu); }
ff_tensor_t *ff_gelu   (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_GELU,    "ff_gelu",    a, 0, fw_gelu); }
ff_tensor_t *ff_tanh   (ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_TANH,    "ff_tanh",    a, 0, fw_tanh); }
ff_tensor_t *ff_sigmoid(ff_tape_t *tp, ff_tensor_t *a) { return unary(tp, FF_OP_SIGMOID, "ff_sigmoid", a, 0, fw_sigmoid); }

/* ---- dropout ---------------------------------------------------------------------------------- */

ff_tensor_t *ff_dropout(ff_tape_t *tp, ff_tensor_t *a, float p) {
    char b[96];
    if (!ff_op_begin(tp, "ff_dropout", 1, a, NULL, NULL)) return NULL;
    if (!(p >= 0.0f && p < 1.0f))
        return ff_op_fail(tp, FF_EINVAL, "ff_dropout: [%s]: p = %g outside [0, 1)", FF_SHAPE(a, b), (double)p);
    if (!ff_tape_training(tp) || p == 0.0f) return a;     /* identity: no copy, no node */
    ff_rng_t *rng = ff_tape_rng(tp);
    if (!rng)
        return ff_op_fail(tp, FF_EINVAL, "ff_dropout: [%s]: training mode needs a generator (ff_tape_set_rng)",
                          FF_SHAPE(a, b));
    const int64_t N = ff_tensor_numel(a);
    const float *x = ff_op_contig(tp, a);
    ff_tensor_t *out = ff_op_out(tp, a->ndim, a->shape);
    float *mask = ff_arena_floats(tp, N);
    if (!x || !out || !mask) return NULL;
    const float keep = 1.0f / (1.0f - p);
    /* 53-bit uniforms compared against p: one draw per element, 4 from one 64-bit word would bias */
    for (int64_t i = 0; i < N; i++) mask[i] = ff_rng_uniform(rng) < (double)p ? 0.0f : keep;
    for (int64_t i = 0; i < N; i++) out->data[i] = x[i] * mask[i];
    ff_node_t *n = ff_node_new(tp, FF_OP_DROPOUT, out, 1, a, x, NULL, NULL, NULL, NULL);
    if (n) n->aux[0] = mask;
    return out;
}

void ff_bw_dropout(ff_tape_t *tp, ff_node_t *n) {
    float beta;
    float *gx = ff_grad_buf(tp, n->in[0], &beta);
    if (!gx) return;
    const float *m = n->aux[0], *g = n->g;
    const int64_t N = ff_tensor_numel(n->out);
    if (beta == 0.0f) for (int64_t i = 0; i < N; i++) gx[i]  = g[i] * m[i];
    else              for (int64_t i = 0; i < N; i++) gx[i] += g[i] * m[i];
}
