/* ops.h — differentiable operations. Each takes the tape first and returns an arena tensor, or
 * NULL once the tape has failed (see tape.h: errors are sticky; check ff_tape_status once).
 * Inputs may be parameters, leaves, other op outputs, or plain constant tensors.
 *
 * Broadcasting (add/sub/mul/div): b is right-aligned against a; each of b's dims equals a's or is
 * 1; the output has a's shape. Axis arguments may be negative (-1 = last).
 * Outputs are contiguous arena tensors; ff_reshape's output shares its (contiguous) input's data and
 * ff_dropout returns its input itself when it is the identity (not training, or p = 0). Messages
 * name the op and the shapes: "ff_matmul: [512,3] x [4,256]: inner dims 3 != 4".
 */
#ifndef FISHERFLOW_OPS_H
#define FISHERFLOW_OPS_H

#include "tape.h"

/* Products. ff_linear: x[..,i] w[o,i] -> y[..,o] = x w^T + b, with b NULL, [o] (added to every row)
 * or of y's shape [..,o] (one bias row per row of x; ndim >= 2); any other b is FF_ESHAPE. */
ff_tensor_t *ff_linear   (ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *w, ff_tensor_t *b);
ff_tensor_t *ff_matmul   (ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b);                 /* a[..,m,k] b[k,n] -> [..,m,n]     */

/* Elementwise binary with broadcasting of b */
ff_tensor_t *ff_add      (ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b);
ff_tensor_t *ff_sub      (ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b);
ff_tensor_t *ff_mul      (ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b);
ff_tensor_t *ff_div      (ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b);
/* a + relu(b), a + leaky_relu(b) for a and b of one shape (no broadcasting): a residual branch in
 * one pass */
ff_tensor_t *ff_add_relu (ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b);
ff_tensor_t *ff_add_leaky_relu(ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b, float slope);

/* Scalar ops: a + s, a * s */
ff_tensor_t *ff_add_scalar(ff_tape_t *tp, ff_tensor_t *a, float s);
ff_tensor_t *ff_mul_scalar(ff_tape_t *tp, ff_tensor_t *a, float s);

/* Elementwise unary */
ff_tensor_t *ff_square   (ff_tape_t *tp, ff_tensor_t *a);
ff_tensor_t *ff_sqrt     (ff_tape_t *tp, ff_tensor_t *a);
ff_tensor_t *ff_exp      (ff_tape_t *tp, ff_tensor_t *a);
ff_tensor_t *ff_log      (ff_tape_t *tp, ff_tensor_t *a);
ff_tensor_t *ff_sin      (ff_tape_t *tp, ff_tensor_t *a);
ff_tensor_t *ff_cos      (ff_tape_t *tp, ff_tensor_t *a);
ff_tensor_t *ff_relu     (ff_tape_t *tp, ff_tensor_t *a);
ff_tensor_t *ff_leaky_relu(ff_tape_t *tp, ff_tensor_t *a, float slope);
ff_tensor_t *ff_silu     (ff_tape_t *tp, ff_tensor_t *a);   /* a * sigmoid(a) ("swish")          */
ff_tensor_t *ff_gelu     (ff_tape_t *tp, ff_tensor_t *a);   /* exact: a * Phi(a) (erf form)      */
ff_tensor_t *ff_tanh     (ff_tape_t *tp, ff_tensor_t *a);
ff_tensor_t *ff_sigmoid  (ff_tape_t *tp, ff_tensor_t *a);

/* Reductions over one axis (keepdim keeps it as size 1; reducing a 1-D tensor gives [1]) and over
 * everything (-> shape [1]). Totals over everything accumulate in double. */
ff_tensor_t *ff_sum      (ff_tape_t *tp, ff_tensor_t *a, int axis, int keepdim);
ff_tensor_t *ff_mean     (ff_tape_t *tp, ff_tensor_t *a, int axis, int keepdim);
ff_tensor_t *ff_sum_all  (ff_tape_t *tp, ff_tensor_t *a);
ff_tensor_t *ff_mean_all (ff_tape_t *tp, ff_tensor_t *a);

/* Shape */
ff_tensor_t *ff_concat   (ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b);  /* along the last axis; leading dims equal */
/* one size may be -1; shares a's data when a is contiguous, else reshapes a contiguous copy */
ff_tensor_t *ff_reshape  (ff_tape_t *tp, ff_tensor_t *a, int ndim, const int64_t *shape);
ff_tensor_t *ff_transpose(ff_tape_t *tp, ff_tensor_t *a, int axis0, int axis1);          /* contiguous result  */

/* Layers */
/* (x - mean) / sqrt(biased var + eps) * gamma + beta over the last axis (torch.nn.LayerNorm);
 * gamma/beta [C] or NULL. */
ff_tensor_t *ff_layer_norm(ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *gamma, ff_tensor_t *beta, float eps);
/* 1-D convolution, channels last: x[n, L, Cin], w[Cout, K, Cin], b[Cout]|NULL ->
 * [n, Lout, Cout] with Lout = L + 2*padding - dilation*(K-1) >= 1; stride 1, zero padding;
 * out[b,t,o] = b[o] + sum_{k,c} w[o,k,c] x[b, t - padding + k*dilation, c]. im2col + GEMM in
 * chunks of at most 16 MiB of columns. */
ff_tensor_t *ff_conv1d   (ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *w, ff_tensor_t *b, int dilation, int padding);
ff_tensor_t *ff_dropout  (ff_tape_t *tp, ff_tensor_t *a, float p);   /* identity unless training; scales by 1/(1-p) */
/* Rows of table[V, E] picked by ids (at most FF_MAX_DIMS-1 dims, integer values stored as float,
 * 0 <= id < V, no gradient): -> ids.shape + [E]. For class-conditioning embeddings. */
ff_tensor_t *ff_embedding(ff_tape_t *tp, ff_tensor_t *table, const ff_tensor_t *ids);

/* Geometry: tangent projection per position, P_x(v) = v - <x, v> x over the last axis of
 * x, v [.., d+1]. Differentiable in both x and v. */
ff_tensor_t *ff_sphere_project(ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *v);

/* Transformer ops (ops_attention.c) */
/* softmax over the last axis (size >= 1), max-subtracted so large inputs do not overflow. */
ff_tensor_t *ff_softmax  (ff_tape_t *tp, ff_tensor_t *a);
/* Batched matmul: a[..,m,k] b[..,k,n] -> [..,m,n], one GEMM per batch entry (leading dims equal,
 * no broadcasting). trans_a: a is stored [..,k,m] and used transposed; trans_b: b stored [..,n,k]. */
ff_tensor_t *ff_bmm      (ff_tape_t *tp, ff_tensor_t *a, ff_tensor_t *b, int trans_a, int trans_b);
/* Bidirectional multi-head self-attention on packed projections: qkv[n, L, 3C] holds q | k | v per
 * row, head h in columns h*C/heads .. (h+1)*C/heads - 1 of each third -> [n, L, C] with head h's
 * columns = softmax(q_h k_h^T / sqrt(C/heads)) v_h. Keeps the weights [n, heads, L, L] for backward
 * (only when it records a node). */
ff_tensor_t *ff_attention(ff_tape_t *tp, ff_tensor_t *qkv, int heads);
/* GELU, tanh form: 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))) (PyTorch's approximate="tanh");
 * within ~1e-3 of ff_gelu's exact form and several times cheaper (no libm calls). */
ff_tensor_t *ff_gelu_tanh(ff_tape_t *tp, ff_tensor_t *a);

#endif
