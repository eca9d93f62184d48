/* tape_internal.h (private) — the tape's node record and the helpers every ops_*.c uses:
 * input checks, arena outputs, node recording, gradient buffers. Not installed.
 */
#ifndef FISHERFLOW_TAPE_INTERNAL_H
#define FISHERFLOW_TAPE_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "fisherflow/tape.h"
#include "fisherflow/ops.h"
#include "ops_table.h"

#define FF_INTERNAL __attribute__((visibility("hidden")))

#include "base/vectorize.h"         /* -O3 and FF_CLONES for every ops_*.c (and tape.c) that includes this */

/* One recorded op. Inputs are kept as tensors (for grad routing and shapes) and as contiguous data
 * (x[i]: the input's own data, or an arena copy when the input was strided). */
typedef struct ff_node {
    struct ff_node *prev;        /* the node recorded before this one             */
    int32_t         op;          /* ff_op                                         */
    int32_t         nin;
    ff_tensor_t    *out;
    float          *g;           /* d loss / d out, contiguous, numel(out)         */
    uint32_t        g_pass;      /* g is valid iff g_pass == tape's backward pass  */
    ff_tensor_t    *in[3];
    const float    *x[3];        /* contiguous data of in[i]                       */
    float          *aux[2];      /* op-specific saved buffers (arena)              */
    float           f[4];        /* op-specific scalars                            */
    int64_t         i[8];        /* op-specific sizes                              */
} ff_node_t;

typedef void (*ff_backward_fn)(ff_tape_t *tp, ff_node_t *n);

#define FF_BW_DECL_(E, name, fn) FF_INTERNAL void ff_bw_##fn(ff_tape_t *tp, ff_node_t *n);
FF_OPS(FF_BW_DECL_)
#undef FF_BW_DECL_

FF_INTERNAL extern const char *const ff_op_names[FF_OP_COUNT];

/* Arena: 64-byte aligned, uninitialised (ff_arena_zalloc zeroes). NULL + sticky FF_ENOMEM. */
FF_INTERNAL void        *ff_arena_alloc (ff_tape_t *tp, size_t bytes);
FF_INTERNAL float       *ff_arena_floats(ff_tape_t *tp, int64_t n);
FF_INTERNAL float       *ff_arena_zfloats(ff_tape_t *tp, int64_t n);

/* Records the first failure (message formatted like ff_errorf) and returns NULL. */
FF_INTERNAL ff_tensor_t *ff_op_fail(ff_tape_t *tp, ff_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Start of every op: 0 if the tape failed already, tp is NULL, one of the first nreq inputs (a, b, c
 * in order) is NULL (fails the tape naming fn and the input; inputs after them are optional, checked
 * when not NULL), an input is a stale temporary (generation check), or an input needs a gradient
 * whose buffer (->grad of a parameter or leaf) is not contiguous over its elements: every backward
 * writes an input's gradient as numel contiguous floats (ff_grad_buf). */
FF_INTERNAL int          ff_op_begin(ff_tape_t *tp, const char *fn, int nreq,
                                     ff_tensor_t *a, ff_tensor_t *b, ff_tensor_t *c);
/* A contiguous arena output header + uninitialised data. */
FF_INTERNAL ff_tensor_t *ff_op_out(ff_tape_t *tp, int ndim, const int64_t *shape);
/* t's data if contiguous, else a contiguous arena copy. */
FF_INTERNAL const float *ff_op_contig(ff_tape_t *tp, const ff_tensor_t *t);
/* Does t take part in autodiff (parameter/leaf with a grad, or a recorded op output)? */
FF_INTERNAL int          ff_requires_grad(const ff_tape_t *tp, const ff_tensor_t *t);
/* Records a node for out if grad mode is on and some input requires grad; else NULL (not an error). */
FF_INTERNAL ff_node_t   *ff_node_new(ff_tape_t *tp, int op, ff_tensor_t *out, int nin,
                                     ff_tensor_t *a, const float *xa, ff_tensor_t *b, const float *xb,
                                     ff_tensor_t *c, const float *xc);

/* During backward: the contiguous gradient buffer of input t (numel(t) floats), or NULL when t needs
 * none. *beta is 0 when the buffer is fresh in this pass (write, do not add) and 1 otherwise. */
FF_INTERNAL float       *ff_grad_buf(ff_tape_t *tp, ff_tensor_t *t, float *beta);

FF_INTERNAL ff_rng_t    *ff_tape_rng(ff_tape_t *tp);
FF_INTERNAL int          ff_tape_grad_enabled(const ff_tape_t *tp);

/* Shapes for messages: "[2,3,4]". */
#define FF_SHAPE(t, buf) ff_shape_str((t), (buf), sizeof (buf))

/* y (op)= x over n floats: y = x when beta == 0, y += x otherwise. */
static inline void ff_acc(float *restrict y, const float *restrict x, int64_t n, float beta) {
    if (beta == 0.0f) for (int64_t i = 0; i < n; i++) y[i] = x[i];
    else              for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* Float reductions with 8 independent partial sums: vectorisable without -ffast-math (a single
 * accumulator is a serial dependency chain), and a little more accurate. */
static inline float ff_sum8(const float *restrict x, int64_t n) {
    float acc[8] = { 0 }, s = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) for (int j = 0; j < 8; j++) acc[j] += x[i + j];
    for (; i < n; i++) s += x[i];
    return s + (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
}
static inline float ff_dot8(const float *restrict x, const float *restrict y, int64_t n) {
    float acc[8] = { 0 }, s = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) for (int j = 0; j < 8; j++) acc[j] += x[i + j] * y[i + j];
    for (; i < n; i++) s += x[i] * y[i];
    return s + (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
}
/* sum of (x - m)^2 */
static inline float ff_sqdev8(const float *restrict x, float m, int64_t n) {
    float acc[8] = { 0 }, s = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) for (int j = 0; j < 8; j++) { float d = x[i + j] - m; acc[j] += d * d; }
    for (; i < n; i++) { float d = x[i] - m; s += d * d; }
    return s + (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
}

static inline int64_t ff_prod(const int64_t *s, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= s[i];
    return p;
}

#endif
