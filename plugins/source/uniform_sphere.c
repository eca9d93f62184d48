/* plugins/source/uniform_sphere.c — the uniform distribution on S^d_+ (per position): x = |z|/||z||,
 * z ~ N(0, I_{d+1}) (MATH.md, the paper's default source).
 * Options: none. Cost: sample O(n k (d+1)) normals; log_prob O(n k (d+1)) (an on-sphere check).
 * Density w.r.t. the product of the spheres' surface measures: -log(|S^d| / 2^{d+1}) per position,
 * |S^d| = 2 pi^{(d+1)/2} / Gamma((d+1)/2). Points with a negative coordinate lie outside the support
 * (log density -inf); points off the unit sphere (| ||x|| - 1 | > 1e-3) are refused. */
#include <math.h>
#include <stdlib.h>
#include <fisherflow/plugin.h>

/* Normals are drawn a block of whole positions at a time (ff_rng_normals: the sequence of
 * ff_rng_normal, vectorised), into z, at most Z_BLOCK doubles unless one position needs more. */
enum { Z_BLOCK = 65536 };
typedef struct us_state { ff_space space; double *z; int64_t cap; } us_state;

static ff_status us_create(const ff_options *opts, const ff_space *space, void **state) {
    (void)opts;
    us_state *s = calloc(1, sizeof *s);
    if (!s) return ff_errorf(FF_ENOMEM, "source \"uniform_sphere\": out of memory");
    s->space = *space;
    *state = s;
    return FF_OK;
}

static ff_status check_shape(const us_state *s, const ff_tensor_t *t, int ndim, const char *what) {
    char buf[64];
    if (!t) return ff_errorf(FF_EINVAL, "source \"uniform_sphere\": %s is NULL", what);
    if (t->ndim != ndim || (ndim == 3 && t->shape[2] < 2))
        return ff_errorf(FF_ESHAPE, "source \"uniform_sphere\": %s is [%s], expected %s", what,
                         ff_shape_str(t, buf, sizeof buf), ndim == 3 ? "[n, k, d+1] with d+1 >= 2" : "[n]");
    if (ndim == 3 && s->space.k > 0 && (t->shape[1] != s->space.k || t->shape[2] != s->space.d + 1))
        return ff_errorf(FF_ESHAPE, "source \"uniform_sphere\": %s is [%s], the space has k=%lld, d+1=%lld",
                         what, ff_shape_str(t, buf, sizeof buf), (long long)s->space.k, (long long)s->space.d + 1);
    return FF_OK;
}

static ff_status us_sample(void *state, ff_rng_t *rng, ff_tensor_t *out) {
    us_state *s = state;
    FF_TRY(check_shape(s, out, 3, "out"));
    if (!rng) return ff_errorf(FF_EINVAL, "source \"uniform_sphere\": rng is NULL");
    int64_t n = out->shape[0], k = out->shape[1], D = out->shape[2], rows = n * k;
    int64_t per = Z_BLOCK / D > 0 ? Z_BLOCK / D : 1;            /* positions per block */
    if (per * D > s->cap) {
        double *z = realloc(s->z, (size_t)(per * D) * sizeof *z);
        if (!z) return ff_errorf(FF_ENOMEM, "source \"uniform_sphere\": out of memory");
        s->z = z;
        s->cap = per * D;
    }
    for (int64_t r0 = 0; r0 < rows; r0 += per) {
        int64_t nr = rows - r0 < per ? rows - r0 : per;
        ff_rng_normals(rng, s->z, nr * D);
        for (int64_t r = r0; r < r0 + nr; r++) {
            float *x = out->data + (r / k) * out->stride[0] + (r % k) * out->stride[1];
            double *z = s->z + (r - r0) * D, norm2 = 0;
            for (int64_t c = 0; c < D; c++) norm2 += z[c] * z[c];
            while (!(norm2 > 0)) {      /* ||z|| = 0 has probability 0; redraw anyway (after the block) */
                ff_rng_normals(rng, z, D);
                norm2 = 0;
                for (int64_t c = 0; c < D; c++) norm2 += z[c] * z[c];
            }
            double inv = 1.0 / sqrt(norm2);
            for (int64_t c = 0; c < D; c++) x[c * out->stride[2]] = (float)((float)fabs(z[c]) * inv);
        }
    }
    return FF_OK;
}

static ff_status us_log_prob(void *state, const ff_tensor_t *x, ff_tensor_t *out) {
    us_state *s = state;
    FF_TRY(check_shape(s, x, 3, "x"));
    FF_TRY(check_shape(s, out, 1, "out"));
    int64_t n = x->shape[0], k = x->shape[1], D = x->shape[2];
    if (out->shape[0] != n)
        return ff_errorf(FF_ESHAPE, "source \"uniform_sphere\": out has %lld rows, x has %lld",
                         (long long)out->shape[0], (long long)n);
    double log_area = log(2.0) + 0.5 * (double)D * log(M_PI) - lgamma(0.5 * (double)D);  /* log|S^d| */
    double per_pos = -(log_area - (double)D * log(2.0));
    for (int64_t i = 0; i < n; i++) {
        double lp = (double)k * per_pos;
        for (int64_t j = 0; j < k; j++) {
            const float *xp = x->data + i * x->stride[0] + j * x->stride[1];
            double norm2 = 0;
            int outside = 0;
            for (int64_t c = 0; c < D; c++) {
                double v = xp[c * x->stride[2]];
                if (!isfinite(v))
                    return ff_errorf(FF_ENUMERIC, "source \"uniform_sphere\": x[%lld, %lld, %lld] is not finite",
                                     (long long)i, (long long)j, (long long)c);
                norm2 += v * v;
                outside |= v < -1e-6;
            }
            if (fabs(sqrt(norm2) - 1.0) > 1e-3)
                return ff_errorf(FF_EINVAL, "source \"uniform_sphere\": x[%lld, %lld] is not on the unit sphere "
                                 "(norm %.6g); hint: map data with ff_sphere_from_simplex", (long long)i,
                                 (long long)j, sqrt(norm2));
            if (outside) lp = -INFINITY;
        }
        out->data[i * out->stride[0]] = (float)lp;
    }
    return FF_OK;
}

static void us_destroy(void *state) {
    us_state *s = state;
    if (s) free(s->z);
    free(s);
}

static const ff_source_vtable vtable = {
    .create = us_create, .sample = us_sample, .log_prob = us_log_prob, .destroy = us_destroy,
};

static const ff_plugin descriptor = {
    .abi_major = FF_PLUGIN_ABI_MAJOR, .abi_minor = FF_PLUGIN_ABI_MINOR,
    .kind = FF_PLUGIN_SOURCE, .vtable_size = sizeof vtable,
    .name = "uniform_sphere", .version = "1.0.0",
    .summary = "uniform on the positive orthant of the sphere: |z|/||z||, z ~ N(0, I)",
    .options = (const ff_option_spec[]){ { NULL, 0, NULL, NULL } },
    .vtable = &vtable,
};

FF_PLUGIN_EXPORT const ff_plugin *ff_plugin_entry(void) { return &descriptor; }
