/* ops_table.h (private) — the X-macro list of every differentiable op (docs/DESIGN.md, "The tape and its arena").
 * Add a row here, a forward + ff_bw_<fn> in ops_*.c, and a row in tests/c/test_grad.c
 * (its _Static_assert on FF_OP_COUNT fails until you do). Columns: ENUM, name, backward suffix.
 */
#ifndef FISHERFLOW_OPS_TABLE_H
#define FISHERFLOW_OPS_TABLE_H

#define FF_OPS(X)                                          \
    X(LINEAR,         "linear",         linear)            \
    X(MATMUL,         "matmul",         matmul)            \
    X(ADD,            "add",            add)               \
    X(SUB,            "sub",            sub)               \
    X(MUL,            "mul",            mul)               \
    X(DIV,            "div",            div)               \
    X(ADD_SCALAR,     "add_scalar",     add_scalar)        \
    X(MUL_SCALAR,     "mul_scalar",     mul_scalar)        \
    X(SQUARE,         "square",         square)            \
    X(SQRT,           "sqrt",           sqrt)              \
    X(EXP,            "exp",            exp)               \
    X(LOG,            "log",            log)               \
    X(SIN,            "sin",            sin)               \
    X(COS,            "cos",            cos)               \
    X(RELU,           "relu",           relu)              \
    X(LEAKY_RELU,     "leaky_relu",     leaky_relu)        \
    X(SILU,           "silu",           silu)              \
    X(GELU,           "gelu",           gelu)              \
    X(TANH,           "tanh",           tanh)              \
    X(SIGMOID,        "sigmoid",        sigmoid)           \
    X(SUM,            "sum",            sum)               \
    X(MEAN,           "mean",           mean)              \
    X(SUM_ALL,        "sum_all",        sum_all)           \
    X(MEAN_ALL,       "mean_all",       mean_all)          \
    X(CONCAT,         "concat",         concat)            \
    X(RESHAPE,        "reshape",        reshape)           \
    X(TRANSPOSE,      "transpose",      transpose)         \
    X(LAYER_NORM,     "layer_norm",     layer_norm)        \
    X(CONV1D,         "conv1d",         conv1d)            \
    X(DROPOUT,        "dropout",        dropout)           \
    X(EMBEDDING,      "embedding",      embedding)         \
    X(SPHERE_PROJECT, "sphere_project", sphere_project)    \
    X(SOFTMAX,        "softmax",        softmax)           \
    X(BMM,            "bmm",            bmm)               \
    X(ATTENTION,      "attention",      attention)         \
    X(GELU_TANH,      "gelu_tanh",      gelu_tanh)         \
    X(ADD_RELU,       "add_relu",       add_relu)

#define FF_OP_ENUM_(E, name, fn) FF_OP_##E,
typedef enum ff_op { FF_OPS(FF_OP_ENUM_) FF_OP_COUNT } ff_op;
#undef FF_OP_ENUM_

#endif
