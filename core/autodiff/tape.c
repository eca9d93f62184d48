/* tape.c — eager reverse-mode autodiff: a chunked bump arena reused across steps, the sticky
 * error, generation checks, node recording and the reverse pass (tape.h, tape_internal.h).
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tape_internal.h"

/* Under AddressSanitizer a new chunk is poisoned and each allocation unpoisons exactly its bytes, so
 * an op that overruns its buffer in a step's first use of the arena is caught. (Reset does not
 * re-poison: the generation check must still read stale tensor headers.) */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ARENA_ALIGN   64
#define ARENA_MIN     ((size_t)1 << 20)

typedef struct chunk {
    struct chunk *next;
    size_t        cap, used;
    unsigned char pad[ARENA_ALIGN - sizeof(void *) - 2 * sizeof(size_t)];
    unsigned char data[];          /* 64-byte aligned: the chunk itself is                       */
} chunk;

typedef struct arena {
    chunk  *head, *cur;            /* chunks are kept across resets: a step that fits in what an  */
    size_t  capacity;              /* earlier step used allocates nothing                          */
    size_t  used;                  /* bytes handed out since the last rewind                       */
} arena;

struct ff_tape {
    arena      main;               /* data, gradients, nodes, scratch                              */
    arena      hdr[2];             /* tensor headers, alternating per step (see ff_tape_reset)     */
    int        hsel;               /* header pool of the current step                              */
    ff_node_t *last;               /* most recent node; nodes link backwards                       */
    ff_status  status;
    char       msg[1024];          /* the first failure's message                                  */
    uint32_t   gen;                /* unique over all tapes of the process                         */
    uint32_t   pass;               /* backward pass counter (validates node->g)                    */
    int        grad_enabled, training, param_grads;
    ff_rng_t  *rng;
};

const char *const ff_op_names[FF_OP_COUNT] = {
#define NAME_(E, name, fn) name,
    FF_OPS(NAME_)
#undef NAME_
};

static const ff_backward_fn backward_table[FF_OP_COUNT] = {
#define BW_(E, name, fn) ff_bw_##fn,
    FF_OPS(BW_)
#undef BW_
};

static atomic_uint gen_counter = 1;
static uint32_t next_gen(void) {
    uint32_t g = atomic_fetch_add(&gen_counter, 1);
    return g ? g : atomic_fetch_add(&gen_counter, 1);   /* 0 means "not a temporary" */
}

/* ---- arena ------------------------------------------------------------------------------------ */

static chunk *chunk_new(size_t cap) {
    cap = (cap + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    chunk *c = aligned_alloc(ARENA_ALIGN, sizeof(chunk) + cap);
    if (!c) return NULL;
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    POISON(c->data, cap);
    return c;
}

static void *arena_alloc(ff_tape_t *tp, arena *a, size_t want_bytes) {
    if (tp->status != FF_OK) return NULL;
    size_t bytes = (want_bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (bytes == 0) bytes = ARENA_ALIGN;
    a->used += bytes;
    for (;;) {
        chunk *c = a->cur;
        if (c->cap - c->used >= bytes) {
            void *p = c->data + c->used;
            c->used += bytes;
            UNPOISON(p, want_bytes);
            return p;
        }
        if (!c->next) break;
        a->cur = c->next;
        a->cur->used = 0;
    }
    size_t want = a->capacity > bytes ? a->capacity : bytes;     /* geometric growth */
    chunk *c = chunk_new(want);
    if (!c) {
        ff_op_fail(tp, FF_ENOMEM, "ff_tape: cannot grow the arena by %zu bytes (capacity %zu)", want, a->capacity);
        return NULL;
    }
    a->cur->next = c;
    a->cur = c;
    a->capacity += c->cap;
    c->used = bytes;
    UNPOISON(c->data, want_bytes);
    return c->data;
}

static ff_status arena_init(arena *a, size_t cap) {
    a->head = a->cur = chunk_new(cap);
    a->capacity = a->head ? a->head->cap : 0;
    a->used = 0;
    return a->head ? FF_OK : FF_ENOMEM;
}

static void arena_release(arena *a) {
    for (chunk *c = a->head, *n; c; c = n) { n = c->next; free(c); }
    a->head = a->cur = NULL;
}

static void arena_rewind(arena *a) {
    a->cur = a->head;
    a->head->used = 0;
    a->used = 0;
}

void *ff_arena_alloc(ff_tape_t *tp, size_t bytes) { return arena_alloc(tp, &tp->main, bytes); }

float *ff_arena_floats(ff_tape_t *tp, int64_t n) {
    return ff_arena_alloc(tp, (size_t)(n > 0 ? n : 1) * sizeof(float));
}

float *ff_arena_zfloats(ff_tape_t *tp, int64_t n) {
    float *p = ff_arena_floats(tp, n);
    if (p && n > 0) memset(p, 0, (size_t)n * sizeof(float));
    return p;
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

#define HDR_MIN ((size_t)64 << 10)

ff_status ff_tape_new(ff_tape_t **out, size_t arena_bytes) {
    if (!out) return ff_errorf(FF_EINVAL, "ff_tape_new: out is NULL");
    *out = NULL;
    ff_tape_t *tp = calloc(1, sizeof *tp);
    if (!tp || arena_init(&tp->main, arena_bytes > ARENA_MIN ? arena_bytes : ARENA_MIN) != FF_OK ||
        arena_init(&tp->hdr[0], HDR_MIN) != FF_OK || arena_init(&tp->hdr[1], HDR_MIN) != FF_OK) {
        ff_tape_free(tp);
        return ff_errorf(FF_ENOMEM, "ff_tape_new: cannot allocate an arena of %zu bytes", arena_bytes);
    }
    tp->gen = next_gen();
    tp->grad_enabled = 1;
    tp->training = 1;
    tp->param_grads = 1;
    *out = tp;
    return FF_OK;
}

/* Tensor headers alternate between two pools, so a temporary kept across one reset still has its
 * own header (with the old generation) instead of one reused by the new step, and is refused. The
 * pool of the step before last is rewound, or rebuilt as one chunk when its steps outgrew it (only
 * while usage grows, so steady training allocates nothing). */
void ff_tape_reset(ff_tape_t *tp) {
    if (!tp) return;
    arena_rewind(&tp->main);
    tp->hsel ^= 1;
    arena *h = &tp->hdr[tp->hsel];
    const size_t peak = tp->hdr[0].used > tp->hdr[1].used ? tp->hdr[0].used : tp->hdr[1].used;
    const size_t want = peak + peak / 4 + 4096;
    if (h->head->next || h->head->cap < want) {
        chunk *c = chunk_new(want > h->capacity ? want : h->capacity);
        if (c) {
            arena_release(h);
            h->head = h->cur = c;
            h->capacity = c->cap;
        }
    }
    arena_rewind(h);
    tp->last = NULL;
    tp->status = FF_OK;
    tp->msg[0] = '\0';
    tp->gen = next_gen();
}

void ff_tape_free(ff_tape_t *tp) {
    if (!tp) return;
    arena_release(&tp->main);
    arena_release(&tp->hdr[0]);
    arena_release(&tp->hdr[1]);
    free(tp);
}

ff_status ff_tape_status(const ff_tape_t *tp) {
    if (!tp) return ff_errorf(FF_EINVAL, "ff_tape_status: tape is NULL");
    if (tp->status != FF_OK) ff_errorf(tp->status, "%s", tp->msg);   /* re-publish the first message */
    return tp->status;
}

void   ff_tape_set_grad(ff_tape_t *tp, int enabled)      { if (tp) tp->grad_enabled = enabled != 0; }
void   ff_tape_set_training(ff_tape_t *tp, int training) { if (tp) tp->training = training != 0; }
void   ff_tape_set_param_grads(ff_tape_t *tp, int enabled) { if (tp) tp->param_grads = enabled != 0; }
int    ff_tape_training(const ff_tape_t *tp)             { return tp ? tp->training : 0; }
void   ff_tape_set_rng(ff_tape_t *tp, ff_rng_t *rng)     { if (tp) tp->rng = rng; }
size_t ff_tape_arena_bytes(const ff_tape_t *tp) {
    return tp ? tp->main.capacity + tp->hdr[0].capacity + tp->hdr[1].capacity : 0;
}
ff_rng_t *ff_tape_rng(ff_tape_t *tp)                     { return tp->rng; }
int    ff_tape_grad_enabled(const ff_tape_t *tp)         { return tp->grad_enabled; }

/* ---- op helpers ------------------------------------------------------------------------------- */

ff_tensor_t *ff_op_fail(ff_tape_t *tp, ff_status s, const char *fmt, ...) {
    va_list ap;
    if (tp && tp->status != FF_OK) return NULL;        /* keep the first failure */
    char buf[1024];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ff_errorf(s, "%s", buf);
    if (tp) {
        tp->status = s;
        memcpy(tp->msg, buf, sizeof tp->msg);
    }
    return NULL;
}

/* Is t's gradient the node buffer of an op recorded in this step (n->g: contiguous, numel(t))? */
static int grad_is_node(const ff_tape_t *tp, const ff_tensor_t *t) {
    return t->node && (t->flags & FF_TENSOR_ARENA) && t->gen == tp->gen;
}

static int check_input(ff_tape_t *tp, const char *fn, int idx, int nin, ff_tensor_t *t) {
    char b[96];
    if (!t) {
        ff_op_fail(tp, FF_EINVAL, "%s: input %d of %d is NULL", fn, idx + 1, nin);
        return 0;
    }
    if ((t->flags & FF_TENSOR_ARENA) && t->gen != tp->gen) {
        ff_op_fail(tp, FF_EINVAL, "%s: input %d [%s] is a temporary from an earlier step (generation %u, "
                   "tape at %u): temporaries die at ff_tape_reset", fn, idx + 1, FF_SHAPE(t, b),
                   t->gen, tp->gen);
        return 0;
    }
    if (t->ndim < 0 || t->ndim > FF_MAX_DIMS) {
        ff_op_fail(tp, FF_EINVAL, "%s: input %d has ndim %d", fn, idx + 1, (int)t->ndim);
        return 0;
    }
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0) {
            ff_op_fail(tp, FF_EINVAL, "%s: input %d has negative size %lld at dim %d", fn, idx + 1,
                       (long long)t->shape[i], i);
            return 0;
        }
    if (ff_tensor_numel(t) > 0 && !t->data) {
        ff_op_fail(tp, FF_EINVAL, "%s: input %d [%s] has no data", fn, idx + 1, FF_SHAPE(t, b));
        return 0;
    }
    /* Backward writes an input's gradient through the bare pointer of ff_grad_buf, as numel(t)
     * contiguous floats. A strided gradient (e.g. a column view of a parameter) would be written with
     * the wrong stride, silently: refuse it here, whether or not this step records a node. */
    if (!grad_is_node(tp, t) && (t->flags & FF_TENSOR_NEEDS_GRAD) && t->grad && t->grad->data &&
        !(ff_tensor_is_contiguous(t->grad) && ff_tensor_numel(t->grad) == ff_tensor_numel(t))) {
        char gs[96], st[96];
        int len = 0;
        st[0] = '\0';
        for (int i = 0; i < t->grad->ndim && len < (int)sizeof st - 24; i++)
            len += snprintf(st + len, sizeof st - (size_t)len, "%s%lld", i ? "," : "",
                            (long long)t->grad->stride[i]);
        ff_op_fail(tp, FF_EINVAL, "%s: input %d [%s]%s%s%s needs a gradient, but its gradient [%s] (strides [%s]) "
                   "is not contiguous over the input's elements, e.g. a view of a parameter: backward writes "
                   "an input's gradient as contiguous floats; make the part a parameter of its own", fn, idx + 1,
                   FF_SHAPE(t, b), t->name[0] ? " \"" : "", t->name, t->name[0] ? "\"" : "",
                   FF_SHAPE(t->grad, gs), st);
        return 0;
    }
    return 1;
}

int ff_op_begin(ff_tape_t *tp, const char *fn, int nreq, ff_tensor_t *a, ff_tensor_t *b, ff_tensor_t *c) {
    if (!tp) { ff_errorf(FF_EINVAL, "%s: tape is NULL", fn); return 0; }
    if (tp->status != FF_OK) return 0;
    ff_tensor_t *in[3] = { a, b, c };
    for (int i = 0; i < 3; i++)
        if ((i < nreq || in[i]) && !check_input(tp, fn, i, nreq, in[i])) return 0;
    return 1;
}

static ff_tensor_t *arena_tensor(ff_tape_t *tp, int ndim, const int64_t *shape, float *data) {
    ff_tensor_t *t = arena_alloc(tp, &tp->hdr[tp->hsel], sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) { t->shape[i] = shape[i]; t->stride[i] = s; s *= shape[i]; }
    for (int i = ndim; i < FF_MAX_DIMS; i++) { t->shape[i] = 1; t->stride[i] = 1; }
    t->flags = FF_TENSOR_ARENA;
    t->gen = tp->gen;
    t->data = data;
    return t;
}

ff_tensor_t *ff_op_out(ff_tape_t *tp, int ndim, const int64_t *shape) {
    ff_tensor_t *t = arena_tensor(tp, ndim, shape, NULL);
    if (!t) return NULL;
    t->data = ff_arena_floats(tp, ff_prod(shape, 0, ndim));
    return t->data ? t : NULL;
}

const float *ff_op_contig(ff_tape_t *tp, const ff_tensor_t *t) {
    if (ff_tensor_is_contiguous(t)) return t->data;
    ff_tensor_t *c = ff_op_out(tp, t->ndim, t->shape);
    if (!c) return NULL;
    ff_tensor_copy(c, t);
    return c->data;
}

int ff_requires_grad(const ff_tape_t *tp, const ff_tensor_t *t) {
    if (!t) return 0;
    if (t->node && (t->flags & FF_TENSOR_ARENA) && t->gen == tp->gen) return 1;
    if (!(t->flags & FF_TENSOR_ARENA) && !tp->param_grads) return 0;    /* parameters as constants */
    return (t->flags & FF_TENSOR_NEEDS_GRAD) && t->grad && t->grad->data;
}

ff_node_t *ff_node_new(ff_tape_t *tp, int op, ff_tensor_t *out, int nin,
                       ff_tensor_t *a, const float *xa, ff_tensor_t *b, const float *xb,
                       ff_tensor_t *c, const float *xc) {
    if (!tp->grad_enabled || tp->status != FF_OK) return NULL;
    ff_tensor_t *in[3] = { a, b, c };
    int any = 0;
    for (int i = 0; i < nin; i++) any |= ff_requires_grad(tp, in[i]);
    if (!any) return NULL;
    ff_node_t *n = ff_arena_alloc(tp, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->op = op;
    n->nin = nin;
    n->out = out;
    n->in[0] = a; n->in[1] = b; n->in[2] = c;
    n->x[0] = xa; n->x[1] = xb; n->x[2] = xc;
    n->prev = tp->last;
    tp->last = n;
    out->node = n;
    return n;
}

float *ff_grad_buf(ff_tape_t *tp, ff_tensor_t *t, float *beta) {
    if (!t || !ff_requires_grad(tp, t)) return NULL;
    ff_node_t *n = t->node;
    if (n && (t->flags & FF_TENSOR_ARENA) && t->gen == tp->gen) {
        if (n->g_pass == tp->pass) { *beta = 1.0f; return n->g; }
        if (!n->g) {
            n->g = ff_arena_floats(tp, ff_tensor_numel(t));
            if (!n->g) return NULL;
        }
        n->g_pass = tp->pass;
        *beta = 0.0f;
        return n->g;
    }
    *beta = 1.0f;
    return t->grad->data;
}

/* ---- leaves ----------------------------------------------------------------------------------- */

ff_tensor_t *ff_tape_leaf(ff_tape_t *tp, const ff_tensor_t *src, int needs_grad) {
    if (!ff_op_begin(tp, "ff_tape_leaf", 1, (ff_tensor_t *)src, NULL, NULL)) return NULL;
    ff_tensor_t *t = ff_op_out(tp, src->ndim, src->shape);
    if (!t) return NULL;
    ff_tensor_copy(t, src);
    if (needs_grad) {
        ff_tensor_t *g = arena_tensor(tp, src->ndim, src->shape, NULL);
        if (!g || !(g->data = ff_arena_zfloats(tp, ff_tensor_numel(src)))) return NULL;
        t->grad = g;
        t->flags |= FF_TENSOR_NEEDS_GRAD;
    }
    return t;
}

ff_tensor_t *ff_tape_alloc(ff_tape_t *tp, int ndim, const int64_t *shape) {
    if (!tp) { ff_errorf(FF_EINVAL, "ff_tape_alloc: tape is NULL"); return NULL; }
    if (tp->status != FF_OK) return NULL;
    if (ndim < 0 || ndim > FF_MAX_DIMS || (ndim > 0 && !shape))
        return ff_op_fail(tp, FF_EINVAL, "ff_tape_alloc: ndim %d outside [0, %d] or shape NULL", ndim, FF_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return ff_op_fail(tp, FF_EINVAL, "ff_tape_alloc: negative size %lld at dim %d", (long long)shape[i], i);
    ff_tensor_t *t = ff_op_out(tp, ndim, shape);
    if (t) memset(t->data, 0, (size_t)ff_tensor_numel(t) * sizeof(float));
    return t;
}

/* ---- reverse pass ----------------------------------------------------------------------------- */

ff_status ff_tape_backward_seed(ff_tape_t *tp, ff_tensor_t *out, const ff_tensor_t *seed) {
    char b1[96], b2[96];
    if (!tp) return ff_errorf(FF_EINVAL, "ff_tape_backward: tape is NULL");
    if (!ff_op_begin(tp, "ff_tape_backward", 2, out, (ff_tensor_t *)seed, NULL)) return ff_tape_status(tp);
    if (!ff_tensor_same_shape(out, seed))
        return ff_op_fail(tp, FF_ESHAPE, "ff_tape_backward: output [%s] but seed [%s]",
                          FF_SHAPE(out, b1), FF_SHAPE(seed, b2)), tp->status;
    if (!ff_requires_grad(tp, out))
        return ff_op_fail(tp, FF_EINVAL, "ff_tape_backward: output [%s] does not depend on any parameter or "
                          "leaf that needs a gradient (or grad mode was off)", FF_SHAPE(out, b1)), tp->status;
    tp->pass++;
    if (tp->pass == 0) tp->pass = 1;       /* 0 marks "never valid" in fresh nodes */
    float beta;
    const float *s = ff_op_contig(tp, seed);
    float *g = s ? ff_grad_buf(tp, out, &beta) : NULL;
    if (!g) return tp->status != FF_OK ? tp->status
                                       : (ff_op_fail(tp, FF_ENOMEM, "ff_tape_backward: no buffer"), tp->status);
    ff_acc(g, s, ff_tensor_numel(out), beta);
    for (ff_node_t *n = out->node; n; n = n->prev) {
        if (n->g_pass != tp->pass) continue;        /* no gradient reached this node */
        backward_table[n->op](tp, n);
        if (tp->status != FF_OK) {                  /* name the op whose backward failed */
            char m[sizeof tp->msg + 64];
            snprintf(m, sizeof m, "ff_tape_backward: backward of %s: %s", ff_op_names[n->op], tp->msg);
            memcpy(tp->msg, m, sizeof tp->msg - 1);
            tp->msg[sizeof tp->msg - 1] = '\0';
            break;
        }
    }
    return ff_tape_status(tp);
}

ff_status ff_tape_backward(ff_tape_t *tp, ff_tensor_t *loss) {
    char b[96];
    if (!tp) return ff_errorf(FF_EINVAL, "ff_tape_backward: tape is NULL");
    if (!ff_op_begin(tp, "ff_tape_backward", 1, loss, NULL, NULL)) return ff_tape_status(tp);
    if (ff_tensor_numel(loss) != 1)
        return ff_op_fail(tp, FF_ESHAPE, "ff_tape_backward: loss [%s] is not a scalar (use ff_tape_backward_seed)",
                          FF_SHAPE(loss, b)), tp->status;
    float one = 1.0f;
    ff_tensor_t seed = *loss;
    seed.data = &one;
    seed.flags = 0;
    seed.node = NULL;
    seed.grad = NULL;
    for (int i = 0; i < seed.ndim; i++) seed.stride[i] = 1;
    return ff_tape_backward_seed(tp, loss, &seed);
}
