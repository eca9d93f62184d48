/* tensor.h — float32 n-d arrays. Shapes are outermost-first (PyTorch order): a batch of n
 * sequences of k tokens over d+1 symbols is [n, k, d+1].
 *
 * The struct is public: read fields freely (from C, or from Lua through the FFI); change a tensor
 * through functions. Storage is refcounted, so a view may outlive its base. The creator frees
 * (ff_tensor_new* / ff_tensor_view -> ff_tensor_free, which is NULL-safe). Tensors made by ops on a
 * tape live in the tape's arena (gen != 0) and are never freed by hand.
 */
#ifndef FISHERFLOW_TENSOR_H
#define FISHERFLOW_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

#define FF_MAX_DIMS 4

enum {
    FF_TENSOR_PARAM      = 1u << 0,  /* a parameter (lives in an ff_params_t block)        */
    FF_TENSOR_NEEDS_GRAD = 1u << 1,  /* backward accumulates into ->grad                   */
    FF_TENSOR_ARENA      = 1u << 2,  /* a tape temporary; data in the tape's arena          */
};

struct ff_storage;

typedef struct ff_tensor {
    float             *data;                 /* first element (storage + offset)             */
    int32_t            ndim;
    int64_t            shape [FF_MAX_DIMS];
    int64_t            stride[FF_MAX_DIMS];  /* in elements; contiguous = row-major           */
    uint32_t           flags;                /* FF_TENSOR_*                                   */
    uint32_t           gen;                  /* tape generation for temporaries, 0 otherwise  */
    struct ff_tensor  *grad;                 /* gradient, same shape, contiguous (parameters
                                                and tape leaves; op outputs keep theirs in the
                                                tape's node)                                 */
    struct ff_storage *storage;              /* opaque, refcounted; NULL for borrowed memory  */
    void              *node;                 /* the tape node that produced it, or NULL       */
    char               name[48];             /* "net.block0.weight_h"; "" if unnamed          */
} ff_tensor_t;

/* Constructors: zero-filled, contiguous. ndim in 0..FF_MAX_DIMS, every size >= 0. */
ff_status ff_tensor_new  (ff_tensor_t **out, int ndim, const int64_t *shape);
ff_status ff_tensor_new1 (ff_tensor_t **out, int64_t n0);
ff_status ff_tensor_new2 (ff_tensor_t **out, int64_t n0, int64_t n1);
ff_status ff_tensor_new3 (ff_tensor_t **out, int64_t n0, int64_t n1, int64_t n2);
/* Wraps caller memory (not freed by ff_tensor_free; the caller keeps it alive). */
ff_status ff_tensor_wrap (ff_tensor_t **out, float *data, int ndim, const int64_t *shape);
/* A new contiguous tensor holding a copy of src (src may be strided). */
ff_status ff_tensor_clone(ff_tensor_t **out, const ff_tensor_t *src);
void      ff_tensor_free (ff_tensor_t *t);

/* Views share storage and bump its refcount. reshape needs a contiguous base and the same numel
 * (one size may be -1: inferred). slice keeps [start, stop) of one axis. transpose swaps axes. */
ff_status ff_tensor_view     (ff_tensor_t **out, ff_tensor_t *base, int ndim, const int64_t *shape);
ff_status ff_tensor_slice    (ff_tensor_t **out, ff_tensor_t *base, int axis, int64_t start, int64_t stop);
ff_status ff_tensor_transpose(ff_tensor_t **out, ff_tensor_t *base, int axis0, int axis1);

ff_status ff_tensor_copy (ff_tensor_t *dst, const ff_tensor_t *src);   /* same shape; any strides */
ff_status ff_tensor_fill (ff_tensor_t *t, float value);
int64_t   ff_tensor_numel(const ff_tensor_t *t);
int       ff_tensor_is_contiguous(const ff_tensor_t *t);
int       ff_tensor_same_shape(const ff_tensor_t *a, const ff_tensor_t *b);
/* Element at a multi-index (0-based), respecting strides; for tests and Lua indexing. */
float    *ff_tensor_at   (const ff_tensor_t *t, const int64_t *index);
/* Writes "[2,3,4]" into buf (size >= 64 is always enough); returns buf. For messages. */
const char *ff_shape_str (const ff_tensor_t *t, char *buf, size_t size);
/* Checks that every element is finite; FF_ENUMERIC naming `what` and the first bad index if not. */
ff_status ff_tensor_check_finite(const ff_tensor_t *t, const char *what);

/* Bytes of tensor storage currently allocated by this library (for leak tests). */
int64_t   ff_mem_in_use(void);

#endif
