/* test_tensor.c — tensors: creation, views, copies, errors; the rng's moments. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <fisherflow/fisherflow.h>
#include "ff_test.h"

FF_TEST(new_and_views) {
    ff_tensor_t *t = NULL, *v = NULL, *s = NULL, *tr = NULL;
    FF_EXPECT(ff_tensor_new3(&t, 2, 3, 4) == FF_OK);
    FF_EXPECT(ff_tensor_numel(t) == 24);
    for (int i = 0; i < 24; i++) t->data[i] = (float)i;
    FF_EXPECT(ff_tensor_view(&v, t, 2, (int64_t[]){ 6, -1 }) == FF_OK);
    FF_EXPECT(v->shape[1] == 4 && v->data[23] == 23.0f);
    FF_EXPECT(ff_tensor_slice(&s, t, 1, 1, 3) == FF_OK);
    FF_EXPECT(*ff_tensor_at(s, (int64_t[]){ 1, 0, 2 }) == 12 + 4 + 2);
    FF_EXPECT(ff_tensor_transpose(&tr, t, 0, 2) == FF_OK);
    FF_EXPECT(*ff_tensor_at(tr, (int64_t[]){ 3, 2, 1 }) == 12 + 8 + 3);
    FF_EXPECT(!ff_tensor_is_contiguous(tr));
    ff_tensor_free(t);                       /* views keep the storage alive */
    FF_EXPECT(v->data[5] == 5.0f);
    ff_tensor_t *c = NULL;
    FF_EXPECT(ff_tensor_clone(&c, tr) == FF_OK);
    FF_EXPECT(c->data[1] == 12.0f);          /* [0,0,1] of the transpose = t[1,0,0] */
    ff_tensor_free(v); ff_tensor_free(s); ff_tensor_free(tr); ff_tensor_free(c);
}

FF_TEST(bad_input) {
    ff_tensor_t *t = NULL, *v = NULL;
    FF_EXPECT_ERROR(ff_tensor_new2(&t, 3, -2), FF_EINVAL, "negative size -2");
    FF_EXPECT(t == NULL);
    FF_EXPECT_ERROR(ff_tensor_new(NULL, 1, (int64_t[]){ 1 }), FF_EINVAL, "out is NULL");
    FF_EXPECT(ff_tensor_new2(&t, 3, 4) == FF_OK);
    FF_EXPECT_ERROR(ff_tensor_view(&v, t, 2, (int64_t[]){ 5, 2 }), FF_ESHAPE, "[3,4] has 12 elements");
    ff_tensor_t *u = NULL;
    FF_EXPECT(ff_tensor_new2(&u, 4, 3) == FF_OK);
    FF_EXPECT_ERROR(ff_tensor_copy(u, t), FF_ESHAPE, "dst [4,3] != src [3,4]");
    t->data[7] = 0.0f / 0.0f;
    FF_EXPECT_ERROR(ff_tensor_check_finite(t, "weights"), FF_ENUMERIC, "weights: element 7 is NaN");
    ff_tensor_free(t); ff_tensor_free(u);
}

/* The vectorised scan of ff_tensor_check_finite: every position of a 37-element tensor (vector
 * bodies and the tail), +inf, -inf, NaN and the largest finite float; a strided view. */
FF_TEST(check_finite_every_position) {
    ff_tensor_t *t = NULL, *tr = NULL;
    FF_EXPECT(ff_tensor_new1(&t, 37) == FF_OK);
    const float bad[3] = { INFINITY, -INFINITY, NAN };
    const char *names[3] = { "Inf", "Inf", "NaN" };
    for (int q = 0; q < 3; q++)
        for (int i = 0; i < 37; i++) {
            ff_tensor_fill(t, 1.0f);
            t->data[i] = bad[q];
            char want[64];
            snprintf(want, sizeof want, "x: element %d is %s", i, names[q]);
            FF_EXPECT_ERROR(ff_tensor_check_finite(t, "x"), FF_ENUMERIC, want);
        }
    ff_tensor_fill(t, FLT_MAX);
    t->data[36] = -FLT_MAX;
    FF_EXPECT(ff_tensor_check_finite(t, "x") == FF_OK, "FLT_MAX is finite");
    ff_tensor_free(t);
    FF_EXPECT(ff_tensor_new2(&t, 3, 5) == FF_OK);
    ff_tensor_fill(t, 0.5f);
    t->data[1 * 5 + 2] = NAN;                        /* [1][2]; in the transpose [5, 3] element 2*3+1 */
    FF_EXPECT(ff_tensor_transpose(&tr, t, 0, 1) == FF_OK);
    FF_EXPECT_ERROR(ff_tensor_check_finite(tr, "xt"), FF_ENUMERIC, "xt: element 7 is NaN");
    ff_tensor_free(tr); ff_tensor_free(t);
}

FF_TEST(memory_accounting) {
    int64_t before = ff_mem_in_use();
    ff_tensor_t *t = NULL;
    FF_EXPECT(ff_tensor_new2(&t, 10, 10) == FF_OK);
    FF_EXPECT(ff_mem_in_use() - before == 400);
    ff_tensor_free(t);
    FF_EXPECT(ff_mem_in_use() == before);
}

FF_TEST(rng_moments) {
    ff_rng_t r;
    ff_rng_seed(&r, 42);
    double s1 = 0, s2 = 0, g = 0, g2 = 0;
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        double z = ff_rng_normal(&r);
        s1 += z; s2 += z * z;
        double x = ff_rng_gamma(&r, 0.5);
        g += x; g2 += x * x;
    }
    FF_EXPECT_NEAR(s1 / N, 0.0, 0.01);
    FF_EXPECT_NEAR(s2 / N, 1.0, 0.01);
    FF_EXPECT_NEAR(g / N, 0.5, 0.01);                 /* Gamma(a): mean a, variance a */
    FF_EXPECT_NEAR(g2 / N - (g / N) * (g / N), 0.5, 0.02);
    int counts[7] = { 0 };
    for (int i = 0; i < 70000; i++) counts[ff_rng_below(&r, 7)]++;
    for (int i = 0; i < 7; i++) FF_EXPECT_NEAR(counts[i], 10000, 400);
    ff_rng_t a, b;
    ff_rng_seed(&a, 7); ff_rng_seed(&b, 7);
    FF_EXPECT(ff_rng_u64(&a) == ff_rng_u64(&b));
}

/* ff_rng_normals against n calls of ff_rng_normal on a twin generator: the same values (its log is
 * its own, so to ~1e-15 relative, not bit for bit), the same state after (the next u64 and spare
 * agree), for lengths that end on a spare and that start from one. */
FF_TEST(rng_normals_match_scalar_draws) {
    const int64_t lens[] = { 0, 1, 2, 7, 255, 256, 513, 4099 };
    double out[4099], worst = 0;
    ff_rng_t a, b;
    ff_rng_seed(&a, 11); ff_rng_seed(&b, 11);
    for (int q = 0; q < 8; q++) {
        int64_t n = lens[q];
        ff_rng_normals(&a, out, n);
        for (int64_t i = 0; i < n; i++) {
            double z = ff_rng_normal(&b);
            worst = ff_nanmax(worst, fabs(out[i] - z) / fmax(fabs(z), 1e-300));
        }
        FF_EXPECT(a.has_spare == b.has_spare && (!a.has_spare || fabs(a.spare_normal - b.spare_normal) <=
                  1e-14 * fabs(b.spare_normal)), "n=%lld: spare state differs", (long long)n);
        FF_EXPECT(!memcmp(a.s, b.s, sizeof a.s), "n=%lld: generator state differs", (long long)n);
    }
    FF_EXPECT(worst < 1e-14, "max relative difference %.3g", worst);
    printf("  max relative difference to ff_rng_normal: %.2g\n", worst);
}

FF_MAIN()
