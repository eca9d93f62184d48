/* two_min.h — private to exact_ot: the two smallest reduced costs of a row, the inner loop of the
 * assignment solver's auction bids and row reduction. Over j of h = row[j] - v[j]: the smallest u1
 * at its first index j1, and the smallest u2 over j != j1 at its first index j2 (-1 when n = 1),
 * exactly what the sequential scan "if (h < u2) { if (h >= u1) {u2 = h} else {u2 = u1; u1 = h} }"
 * finds. Run as 4 interleaved lanes (lane = j mod 4, each such a scan) merged at the end, which gives
 * the same u1, j1, u2, j2 (tests/c/test_ot.c); on CPUs with AVX2 the lanes are one vector. */
#ifndef FF_PLUGINS_TWO_MIN_H
#define FF_PLUGINS_TWO_MIN_H

#include <math.h>
#include <stdint.h>

typedef struct two_min { double u1, u2; int32_t j1, j2; } two_min;

static inline void lane_step(double h, double jd, double *m1, double *m2, double *j1, double *j2) {
    if (h < *m2) {
        if (h >= *m1) { *m2 = h; *j2 = jd; }
        else { *m2 = *m1; *j2 = *j1; *m1 = h; *j1 = jd; }
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FF_DEBUG_ASSERT)
#include <immintrin.h>
#define TWO_MIN_AVX2 1
/* the lanes over j < n4 (a multiple of 4), indices carried as doubles (exact below 2^53) */
__attribute__((target("avx2"))) static void two_min_lanes_avx2(const double *row, const double *v, int64_t n4,
                                                                 double *m1, double *m2, double *j1, double *j2) {
    __m256d a1 = _mm256_loadu_pd(m1), a2 = _mm256_loadu_pd(m2), i1 = _mm256_loadu_pd(j1),
            i2 = _mm256_loadu_pd(j2), jd = _mm256_setr_pd(0, 1, 2, 3), four = _mm256_set1_pd(4);
    for (int64_t j = 0; j < n4; j += 4) {
        __m256d h = _mm256_sub_pd(_mm256_loadu_pd(row + j), _mm256_loadu_pd(v + j));
        __m256d c1 = _mm256_cmp_pd(h, a1, _CMP_LT_OQ), c2 = _mm256_cmp_pd(h, a2, _CMP_LT_OQ);
        __m256d n2 = _mm256_blendv_pd(_mm256_blendv_pd(a2, h, c2), a1, c1);     /* c1 implies c2 */
        __m256d k2 = _mm256_blendv_pd(_mm256_blendv_pd(i2, jd, c2), i1, c1);
        a1 = _mm256_blendv_pd(a1, h, c1);
        i1 = _mm256_blendv_pd(i1, jd, c1);
        a2 = n2; i2 = k2;
        jd = _mm256_add_pd(jd, four);
    }
    _mm256_storeu_pd(m1, a1); _mm256_storeu_pd(m2, a2); _mm256_storeu_pd(j1, i1); _mm256_storeu_pd(j2, i2);
}
#endif

/* vector = 0 forces the scalar lanes (the tests compare both) */
static inline two_min row_two_min_ex(const double *row, const double *v, int64_t n, int vector) {
    double m1[4] = { INFINITY, INFINITY, INFINITY, INFINITY }, m2[4] = { INFINITY, INFINITY, INFINITY, INFINITY };
    double j1[4] = { -1, -1, -1, -1 }, j2[4] = { -1, -1, -1, -1 };
    int64_t j = 0;
#ifdef TWO_MIN_AVX2
    if (vector && __builtin_cpu_supports("avx2")) { j = n & ~(int64_t)3; two_min_lanes_avx2(row, v, j, m1, m2, j1, j2); }
#else
    (void)vector;
#endif
    for (; j < n; j++) lane_step(row[j] - v[j], (double)j, &m1[j & 3], &m2[j & 3], &j1[j & 3], &j2[j & 3]);
    int L = 0;                                   /* the lane of the first smallest */
    for (int l = 1; l < 4; l++)
        if (j1[l] >= 0 && (j1[L] < 0 || m1[l] < m1[L] || (m1[l] == m1[L] && j1[l] < j1[L]))) L = l;
    two_min r = { m1[L], m2[L], (int32_t)j1[L], (int32_t)j2[L] };
    for (int l = 0; l < 4; l++)                  /* the second: lane L's own, or another lane's first */
        if (l != L && j1[l] >= 0 && (m1[l] < r.u2 || (m1[l] == r.u2 && (r.j2 < 0 || j1[l] < r.j2)))) {
            r.u2 = m1[l];
            r.j2 = (int32_t)j1[l];
        }
    return r;
}

static inline two_min row_two_min(const double *row, const double *v, int64_t n) {
    return row_two_min_ex(row, v, n, 1);
}

#endif
