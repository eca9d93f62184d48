/* tensor.c — float32 n-d arrays with refcounted storage and strided views (tensor.h). */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fisherflow/tensor.h"
#include "vectorize.h"

struct ff_storage {
    atomic_int refs;
    size_t     bytes;
    float      data[];
};

static atomic_llong mem_in_use;

int64_t ff_mem_in_use(void) { return (int64_t)atomic_load(&mem_in_use); }

static ff_status check_shape(const char *fn, int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > FF_MAX_DIMS)
        return ff_errorf(FF_EINVAL, "%s: ndim %d outside [0, %d]", fn, ndim, FF_MAX_DIMS);
    if (ndim > 0 && !shape)
        return ff_errorf(FF_EINVAL, "%s: shape is NULL", fn);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return ff_errorf(FF_EINVAL, "%s: negative size %lld at dim %d", fn, (long long)shape[i], i);
        if (shape[i] > 0 && n > INT64_MAX / 8 / shape[i])
            return ff_errorf(FF_EINVAL, "%s: shape too large", fn);
        n *= shape[i];
    }
    *numel = n;
    return FF_OK;
}

static void set_contiguous(ff_tensor_t *t, int ndim, const int64_t *shape) {
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = s;
        s *= shape[i];
    }
    for (int i = ndim; i < FF_MAX_DIMS; i++) { t->shape[i] = 1; t->stride[i] = 1; }
}

ff_status ff_tensor_new(ff_tensor_t **out, int ndim, const int64_t *shape) {
    int64_t numel;
    if (!out) return ff_errorf(FF_EINVAL, "ff_tensor_new: out is NULL");
    *out = NULL;
    FF_TRY(check_shape("ff_tensor_new", ndim, shape, &numel));
    ff_tensor_t *t = calloc(1, sizeof *t);
    size_t bytes = (size_t)numel * sizeof(float);
    struct ff_storage *st = calloc(1, sizeof *st + bytes);
    if (!t || !st) {
        free(t); free(st);
        return ff_errorf(FF_ENOMEM, "ff_tensor_new: cannot allocate %lld floats", (long long)numel);
    }
    atomic_init(&st->refs, 1);
    st->bytes = bytes;
    atomic_fetch_add(&mem_in_use, (long long)bytes);
    t->storage = st;
    t->data = st->data;
    set_contiguous(t, ndim, shape);
    *out = t;
    return FF_OK;
}

ff_status ff_tensor_new1(ff_tensor_t **out, int64_t n0) { return ff_tensor_new(out, 1, (int64_t[]){ n0 }); }
ff_status ff_tensor_new2(ff_tensor_t **out, int64_t n0, int64_t n1) { return ff_tensor_new(out, 2, (int64_t[]){ n0, n1 }); }
ff_status ff_tensor_new3(ff_tensor_t **out, int64_t n0, int64_t n1, int64_t n2) {
    return ff_tensor_new(out, 3, (int64_t[]){ n0, n1, n2 });
}

ff_status ff_tensor_wrap(ff_tensor_t **out, float *data, int ndim, const int64_t *shape) {
    int64_t numel;
    if (!out) return ff_errorf(FF_EINVAL, "ff_tensor_wrap: out is NULL");
    *out = NULL;
    FF_TRY(check_shape("ff_tensor_wrap", ndim, shape, &numel));
    if (!data && numel > 0) return ff_errorf(FF_EINVAL, "ff_tensor_wrap: data is NULL");
    ff_tensor_t *t = calloc(1, sizeof *t);
    if (!t) return ff_errorf(FF_ENOMEM, "ff_tensor_wrap: out of memory");
    t->data = data;
    set_contiguous(t, ndim, shape);
    *out = t;
    return FF_OK;
}

ff_status ff_tensor_clone(ff_tensor_t **out, const ff_tensor_t *src) {
    if (!out || !src) return ff_errorf(FF_EINVAL, "ff_tensor_clone: NULL argument");
    FF_TRY(ff_tensor_new(out, src->ndim, src->shape));
    return ff_tensor_copy(*out, src);
}

void ff_tensor_free(ff_tensor_t *t) {
    if (!t) return;
    struct ff_storage *st = t->storage;
    if (st && atomic_fetch_sub(&st->refs, 1) == 1) {
        atomic_fetch_sub(&mem_in_use, (long long)st->bytes);
        free(st);
    }
    free(t);
}

static ff_status new_view(ff_tensor_t **out, ff_tensor_t *base, const char *fn) {
    if (!out || !base) return ff_errorf(FF_EINVAL, "%s: NULL argument", fn);
    *out = NULL;
    ff_tensor_t *t = malloc(sizeof *t);
    if (!t) return ff_errorf(FF_ENOMEM, "%s: out of memory", fn);
    *t = *base;
    t->flags &= ~(uint32_t)(FF_TENSOR_PARAM | FF_TENSOR_NEEDS_GRAD);
    t->grad = NULL;
    t->node = NULL;
    t->name[0] = '\0';
    if (t->storage) atomic_fetch_add(&t->storage->refs, 1);
    *out = t;
    return FF_OK;
}

int ff_tensor_is_contiguous(const ff_tensor_t *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

ff_status ff_tensor_view(ff_tensor_t **out, ff_tensor_t *base, int ndim, const int64_t *shape) {
    char buf[96];
    int64_t want[FF_MAX_DIMS], numel = 1;
    int infer = -1;
    if (!base) return ff_errorf(FF_EINVAL, "ff_tensor_view: base is NULL");
    if (ndim < 0 || ndim > FF_MAX_DIMS || (ndim > 0 && !shape))
        return ff_errorf(FF_EINVAL, "ff_tensor_view: bad ndim %d", ndim);
    for (int i = 0; i < ndim; i++) {
        want[i] = shape[i];
        if (shape[i] == -1 && infer < 0) { infer = i; continue; }
        if (shape[i] < 0) return ff_errorf(FF_EINVAL, "ff_tensor_view: negative size %lld at dim %d", (long long)shape[i], i);
        numel *= shape[i];
    }
    int64_t have = ff_tensor_numel(base);
    if (infer >= 0) {
        if (numel == 0 || have % numel != 0)
            return ff_errorf(FF_ESHAPE, "ff_tensor_view: cannot infer dim %d of a view of [%s]", infer, ff_shape_str(base, buf, sizeof buf));
        want[infer] = have / numel;
        numel = have;
    }
    if (numel != have)
        return ff_errorf(FF_ESHAPE, "ff_tensor_view: [%s] has %lld elements, the view asks for %lld",
                         ff_shape_str(base, buf, sizeof buf), (long long)have, (long long)numel);
    if (!ff_tensor_is_contiguous(base))
        return ff_errorf(FF_EINVAL, "ff_tensor_view: base [%s] is not contiguous (clone it first)", ff_shape_str(base, buf, sizeof buf));
    FF_TRY(new_view(out, base, "ff_tensor_view"));
    set_contiguous(*out, ndim, want);
    return FF_OK;
}

ff_status ff_tensor_slice(ff_tensor_t **out, ff_tensor_t *base, int axis, int64_t start, int64_t stop) {
    char buf[96];
    if (!base) return ff_errorf(FF_EINVAL, "ff_tensor_slice: base is NULL");
    if (axis < 0) axis += base->ndim;
    if (axis < 0 || axis >= base->ndim)
        return ff_errorf(FF_EINVAL, "ff_tensor_slice: axis out of range for [%s]", ff_shape_str(base, buf, sizeof buf));
    if (start < 0 || stop < start || stop > base->shape[axis])
        return ff_errorf(FF_EINVAL, "ff_tensor_slice: [%lld, %lld) outside axis %d of [%s]",
                         (long long)start, (long long)stop, axis, ff_shape_str(base, buf, sizeof buf));
    FF_TRY(new_view(out, base, "ff_tensor_slice"));
    (*out)->data += start * base->stride[axis];
    (*out)->shape[axis] = stop - start;
    return FF_OK;
}

ff_status ff_tensor_transpose(ff_tensor_t **out, ff_tensor_t *base, int a0, int a1) {
    char buf[96];
    if (!base) return ff_errorf(FF_EINVAL, "ff_tensor_transpose: base is NULL");
    if (a0 < 0) a0 += base->ndim;
    if (a1 < 0) a1 += base->ndim;
    if (a0 < 0 || a1 < 0 || a0 >= base->ndim || a1 >= base->ndim)
        return ff_errorf(FF_EINVAL, "ff_tensor_transpose: axes out of range for [%s]", ff_shape_str(base, buf, sizeof buf));
    FF_TRY(new_view(out, base, "ff_tensor_transpose"));
    int64_t s = (*out)->shape[a0]; (*out)->shape[a0] = (*out)->shape[a1]; (*out)->shape[a1] = s;
    s = (*out)->stride[a0]; (*out)->stride[a0] = (*out)->stride[a1]; (*out)->stride[a1] = s;
    return FF_OK;
}

int64_t ff_tensor_numel(const ff_tensor_t *t) {
    if (!t) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int ff_tensor_same_shape(const ff_tensor_t *a, const ff_tensor_t *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++) if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

float *ff_tensor_at(const ff_tensor_t *t, const int64_t *index) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += index[i] * t->stride[i];
    return t->data + off;
}

/* Offset of the i-th element in row-major order of t's shape. */
static int64_t offset_of(const ff_tensor_t *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->stride[d];
        i /= t->shape[d];
    }
    return off;
}

ff_status ff_tensor_copy(ff_tensor_t *dst, const ff_tensor_t *src) {
    char b1[96], b2[96];
    if (!dst || !src) return ff_errorf(FF_EINVAL, "ff_tensor_copy: NULL argument");
    if (!ff_tensor_same_shape(dst, src))
        return ff_errorf(FF_ESHAPE, "ff_tensor_copy: dst [%s] != src [%s]",
                         ff_shape_str(dst, b1, sizeof b1), ff_shape_str(src, b2, sizeof b2));
    int64_t n = ff_tensor_numel(src);
    if (ff_tensor_is_contiguous(dst) && ff_tensor_is_contiguous(src)) {
        if (n > 0 && dst->data != src->data) memmove(dst->data, src->data, (size_t)n * sizeof(float));
        return FF_OK;
    }
    for (int64_t i = 0; i < n; i++) dst->data[offset_of(dst, i)] = src->data[offset_of(src, i)];
    return FF_OK;
}

ff_status ff_tensor_fill(ff_tensor_t *t, float value) {
    if (!t) return ff_errorf(FF_EINVAL, "ff_tensor_fill: tensor is NULL");
    int64_t n = ff_tensor_numel(t);
    if (ff_tensor_is_contiguous(t)) for (int64_t i = 0; i < n; i++) t->data[i] = value;
    else for (int64_t i = 0; i < n; i++) t->data[offset_of(t, i)] = value;
    return FF_OK;
}

const char *ff_shape_str(const ff_tensor_t *t, char *buf, size_t size) {
    size_t used = 0;
    if (!buf || size == 0) return "";
    buf[0] = '\0';
    if (!t) { snprintf(buf, size, "NULL"); return buf; }
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    return buf;
}

/* 1 when some x[i] is NaN or +-inf (exponent bits all set): integer tests that vectorise. */
FF_CLONES static int any_nonfinite(const float *restrict x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad != 0;
}

ff_status ff_tensor_check_finite(const ff_tensor_t *t, const char *what) {
    if (!t) return ff_errorf(FF_EINVAL, "ff_tensor_check_finite: %s is NULL", what);
    int64_t n = ff_tensor_numel(t);
    if (ff_tensor_is_contiguous(t) && !any_nonfinite(t->data, n)) return FF_OK;
    for (int64_t i = 0; i < n; i++) {        /* strided, or finding the element to name */
        float v = t->data[offset_of(t, i)];
        if (!isfinite(v))
            return ff_errorf(FF_ENUMERIC, "%s: element %lld is %s", what, (long long)i, isnan(v) ? "NaN" : "Inf");
    }
    return FF_OK;
}
