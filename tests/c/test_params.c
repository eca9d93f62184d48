/* test_params.c — the parameter registry: names and prefixes, one contiguous block with a parallel
 * gradient block, stable tensor headers while the block grows, init kinds (moments vs closed form),
 * and every refusal.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "ff_test.h"
#include "fisherflow/fisherflow.h"

FF_TEST(registry_is_one_contiguous_block) {
    ff_params_t *P;
    FF_EXPECT(ff_params_new(&P) == FF_OK, "%s", ff_last_error());
    ff_rng_t r;
    ff_rng_seed(&r, 4);
    ff_tensor_t *w, *b;
    FF_EXPECT(ff_params_set_prefix(P, "net.") == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_params_add(P, "block0.weight", 2, (int64_t[]){ 3, 4 }, (ff_param_init){ FF_INIT_ONES, 0 }, NULL, &w) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_params_add(P, "block0.bias", 1, (int64_t[]){ 3 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &b) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(!strcmp(w->name, "net.block0.weight"), "name %s", w->name);
    FF_EXPECT(ff_params_count(P) == 2 && ff_params_numel(P) == 15, "count %d numel %lld", ff_params_count(P), (long long)ff_params_numel(P));
    FF_EXPECT(ff_params_get(P, 0) == w && ff_params_get(P, 1) == b && ff_params_get(P, 2) == NULL, "get");
    FF_EXPECT(ff_params_find(P, "net.block0.bias") == b && ff_params_find(P, "block0.bias") == NULL, "find");
    FF_EXPECT(w->data == ff_params_data(P) && b->data == ff_params_data(P) + 12, "views into the block");
    FF_EXPECT(w->grad && w->grad->data == ff_params_grad(P) && b->grad->data == ff_params_grad(P) + 12, "parallel grad block");
    FF_EXPECT((w->flags & FF_TENSOR_PARAM) && (w->flags & FF_TENSOR_NEEDS_GRAD), "flags");
    FF_EXPECT(ff_tensor_same_shape(w, w->grad), "grad shape");
    for (int i = 0; i < 12; i++) FF_EXPECT(w->data[i] == 1.0f, "ones");
    /* grow the block far past its first capacity: headers stay, data follows, values survive */
    ff_tensor_t *keep[40];
    for (int i = 0; i < 40; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "big%d", i);
        FF_EXPECT(ff_params_add(P, nm, 2, (int64_t[]){ 30, 33 }, (ff_param_init){ FF_INIT_NORMAL, 0.1f }, &r, &keep[i]) == FF_OK, "%s", ff_last_error());
        keep[i]->data[0] = (float)i;
    }
    FF_EXPECT(w->data == ff_params_data(P) && w->data[11] == 1.0f, "re-pointed after growth");
    for (int i = 0; i < 40; i++) {
        FF_EXPECT(keep[i]->data == ff_params_data(P) + 15 + i * 990, "tensor %d offset", i);
        FF_EXPECT(keep[i]->data[0] == (float)i, "value of tensor %d survived growth", i);
        FF_EXPECT(keep[i]->grad->data == ff_params_grad(P) + 15 + i * 990, "grad %d offset", i);
    }
    float *g = ff_params_grad(P);
    for (int64_t i = 0; i < ff_params_numel(P); i++) g[i] = 1.0f;
    ff_params_zero_grad(P);
    for (int64_t i = 0; i < ff_params_numel(P); i++) if (g[i] != 0.0f) { FF_EXPECT(0, "grad %lld not zeroed", (long long)i); break; }
    ff_params_free(P);
    ff_params_free(NULL);
}

FF_TEST(init_moments) {
    ff_params_t *P;
    ff_params_new(&P);
    ff_rng_t r;
    ff_rng_seed(&r, 11);
    ff_tensor_t *u, *n;
    const int64_t N = 200000;
    ff_params_add(P, "u", 1, (int64_t[]){ N }, (ff_param_init){ FF_INIT_UNIFORM, 0.5f }, &r, &u);
    ff_params_add(P, "n", 1, (int64_t[]){ N }, (ff_param_init){ FF_INIT_NORMAL, 2.0f }, &r, &n);
    double su = 0, su2 = 0, sn = 0, sn2 = 0, lo = 1, hi = -1;
    for (int64_t i = 0; i < N; i++) {
        su += u->data[i]; su2 += u->data[i] * u->data[i];
        sn += n->data[i]; sn2 += n->data[i] * n->data[i];
        lo = fmin(lo, u->data[i]); hi = fmax(hi, u->data[i]);
    }
    FF_EXPECT(lo >= -0.5 && hi <= 0.5, "U(-a, a) range [%g, %g]", lo, hi);
    FF_EXPECT_NEAR(su / N, 0.0, 0.005);
    FF_EXPECT_NEAR(su2 / N, 0.25 / 3.0, 0.002);            /* var of U(-a, a) = a^2 / 3 */
    FF_EXPECT_NEAR(sn / N, 0.0, 0.03);
    FF_EXPECT_NEAR(sn2 / N, 4.0, 0.05);                    /* N(0, a^2) */
    ff_params_free(P);
}

FF_TEST(refusals_name_the_parameter) {
    ff_params_t *P;
    ff_params_new(&P);
    ff_tensor_t *t;
    ff_params_add(P, "w", 1, (int64_t[]){ 2 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &t);
    FF_EXPECT_ERROR(ff_params_add(P, "w", 1, (int64_t[]){ 2 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &t),
                    FF_EINVAL, "ff_params_add: \"w\" is already registered");
    FF_EXPECT(t == NULL, "out cleared on failure");
    FF_EXPECT_ERROR(ff_params_add(P, "v", 2, (int64_t[]){ 2, -3 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &t),
                    FF_EINVAL, "ff_params_add: \"v\": negative size -3 at dim 1");
    FF_EXPECT_ERROR(ff_params_add(P, "v", 1, (int64_t[]){ 2 }, (ff_param_init){ FF_INIT_NORMAL, 1 }, NULL, &t),
                    FF_EINVAL, "ff_params_add: \"v\": a random init needs a generator");
    FF_EXPECT_ERROR(ff_params_add(P, "a_very_long_parameter_name_that_goes_on_and_on_and_on", 1, (int64_t[]){ 2 },
                                  (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &t), FF_EINVAL, "is longer than 47 characters");
    FF_EXPECT_ERROR(ff_params_add(P, "", 1, (int64_t[]){ 2 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &t),
                    FF_EINVAL, "ff_params_add: empty name");
    FF_EXPECT_ERROR(ff_params_add(P, "k", 1, (int64_t[]){ 2 }, (ff_param_init){ (ff_init_kind)9, 0 }, NULL, &t),
                    FF_EINVAL, "unknown init kind 9");
    FF_EXPECT_ERROR(ff_params_add(P, "k", 5, (int64_t[]){ 1, 1, 1, 1, 1 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, NULL, &t),
                    FF_EINVAL, "ndim 5 outside [0, 4]");
    FF_EXPECT(ff_params_count(P) == 1 && ff_params_numel(P) == 2, "nothing registered by refusals");
    ff_params_free(P);
}

FF_MAIN()
