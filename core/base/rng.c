/* rng.c — xoshiro256** (Blackman & Vigna) seeded by splitmix64, with normal (polar Box-Muller),
 * gamma (Marsaglia & Tsang 2000) and unbiased bounded integers (Lemire's multiply-shift). */
#include <math.h>
#include <string.h>
#include "fisherflow/rng.h"
#include "vectorize.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void ff_rng_seed(ff_rng_t *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare_normal = 0.0;
}

static inline uint64_t next_u64(ff_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t ff_rng_u64(ff_rng_t *r) { return next_u64(r); }

ff_rng_t ff_rng_split(ff_rng_t *r) {
    ff_rng_t child;
    ff_rng_seed(&child, ff_rng_u64(r));
    return child;
}

double ff_rng_uniform(ff_rng_t *r) { return (double)(ff_rng_u64(r) >> 11) * 0x1.0p-53; }

double ff_rng_normal(ff_rng_t *r) {
    if (r->has_spare) { r->has_spare = 0; return r->spare_normal; }
    double u, v, s;
    do {
        u = 2.0 * ff_rng_uniform(r) - 1.0;
        v = 2.0 * ff_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    r->spare_normal = v * m;
    r->has_spare = 1;
    return u * m;
}

/* log(x) for a positive normal double, branch-free so a loop over it vectorises: x = 2^e f with f
 * in [sqrt(1/2), sqrt(2)), log f = 2 atanh(z) = 2 (z + z^3/3 + ... + z^21/21), z = (f-1)/(f+1),
 * |z| <= 0.1716 (the next term is below 2^-54 of the sum); e ln 2 in two parts. Checked through
 * ff_rng_normals against ff_rng_normal (libm's log) in tests/c/test_tensor.c. */
static inline double log_normal_pos(double x) {
    uint64_t b, eb, fb;
    memcpy(&b, &x, sizeof b);
    eb = 0x4330000000000000ull | (b >> 52);              /* 2^52 + biased exponent, exactly */
    fb = (b & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double ed, f;
    memcpy(&ed, &eb, sizeof ed);
    memcpy(&f, &fb, sizeof f);
    double e = ed - 4503599627370496.0 - 1023.0;          /* 2^52 */
    int hi = f > 1.4142135623730951;
    f = hi ? 0.5 * f : f;
    e = hi ? e + 1.0 : e;
    double z = (f - 1.0) / (f + 1.0), z2 = z * z;
    double p = 1.0 / 21;
    p = p * z2 + 1.0 / 19; p = p * z2 + 1.0 / 17; p = p * z2 + 1.0 / 15; p = p * z2 + 1.0 / 13;
    p = p * z2 + 1.0 / 11; p = p * z2 + 1.0 / 9;  p = p * z2 + 1.0 / 7;  p = p * z2 + 1.0 / 5;
    p = p * z2 + 1.0 / 3;
    return e * 0x1.62e42fefa3800p-1 + (e * 0x1.ef35793c76730p-45 + 2.0 * (z + z * z2 * p));
}

/* m = sqrt(-2 log(s) / s) for n accepted s of the polar method */
FF_CLONES static void polar_scale(double *restrict m, const double *restrict s, int64_t n) {
    for (int64_t q = 0; q < n; q++) m[q] = sqrt(-2.0 * log_normal_pos(s[q]) / s[q]);
}

void ff_rng_normals(ff_rng_t *r, double *out, int64_t n) {
    enum { BLOCK = 256 };
    double U[BLOCK], V[BLOCK], S[BLOCK], M[BLOCK];
    int64_t i = 0;
    if (n > 0 && r->has_spare) { r->has_spare = 0; out[i++] = r->spare_normal; }
    while (i < n) {
        int64_t pairs = (n - i + 1) / 2;
        if (pairs > BLOCK) pairs = BLOCK;
        /* the draws of ff_rng_normal in its order; a rejected pair is overwritten by the next try
         * (no branch to mispredict on the 21% rejections) */
        for (int64_t q = 0; q < pairs;) {
            double u = 2.0 * ((double)(next_u64(r) >> 11) * 0x1.0p-53) - 1.0;
            double v = 2.0 * ((double)(next_u64(r) >> 11) * 0x1.0p-53) - 1.0;
            double s = u * u + v * v;
            U[q] = u; V[q] = v; S[q] = s;
            q += (s < 1.0) & (s != 0.0);
        }
        polar_scale(M, S, pairs);
        for (int64_t q = 0; q < pairs; q++) {
            out[i++] = U[q] * M[q];
            if (i < n) out[i++] = V[q] * M[q];
            else { r->spare_normal = V[q] * M[q]; r->has_spare = 1; }
        }
    }
}

double ff_rng_gamma(ff_rng_t *r, double shape) {
    if (!(shape > 0)) return NAN;
    if (shape < 1.0) {  /* boost: Gamma(a) = Gamma(a+1) * U^(1/a) */
        double u;
        do u = ff_rng_uniform(r); while (u == 0.0);
        return ff_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do { x = ff_rng_normal(r); v = 1.0 + c * x; } while (v <= 0.0);
        v = v * v * v;
        double u = ff_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
        if (u > 0.0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
    }
}

uint64_t ff_rng_below(ff_rng_t *r, uint64_t n) {
    if (n == 0) return 0;
    unsigned __int128 m = (unsigned __int128)ff_rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t threshold = (0 - n) % n;
        while (lo < threshold) {
            m = (unsigned __int128)ff_rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

static ff_status fill(ff_rng_t *r, ff_tensor_t *t, float a, float b, int normal, const char *fn) {
    if (!r || !t) return ff_errorf(FF_EINVAL, "%s: NULL argument", fn);
    int64_t idx[FF_MAX_DIMS] = { 0 }, n = ff_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        float *p = ff_tensor_at(t, idx);
        *p = normal ? (float)(a + b * ff_rng_normal(r)) : (float)(a + (b - a) * ff_rng_uniform(r));
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
    return FF_OK;
}

ff_status ff_rng_fill_uniform(ff_rng_t *r, ff_tensor_t *t, float lo, float hi) {
    return fill(r, t, lo, hi, 0, "ff_rng_fill_uniform");
}
ff_status ff_rng_fill_normal(ff_rng_t *r, ff_tensor_t *t, float mean, float std) {
    return fill(r, t, mean, std, 1, "ff_rng_fill_normal");
}
