/* ff_test.h — the C test harness. FF_TEST(name) defines a test; FF_EXPECT / FF_EXPECT_NEAR report
 * file:line and keep going; FF_MAIN() runs the tests named on the command line (all if none) and
 * ends with "N passed, M failed" (exit status 1 if any failed). Also input helpers the tests share. */
#ifndef FF_TEST_H
#define FF_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <fisherflow/fisherflow.h>

typedef void (*ff_test_fn)(void);
typedef struct { const char *name; ff_test_fn fn; } ff_test_case;
static ff_test_case ff_tests_[256];
static int ff_ntests_, ff_failed_now_;

#define FF_TEST(name)                                                             \
    static void test_##name(void);                                                \
    __attribute__((constructor)) static void reg_##name(void) {                   \
        ff_tests_[ff_ntests_++] = (ff_test_case){ #name, test_##name };           \
    }                                                                             \
    static void test_##name(void)

#define FF_EXPECT(cond, ...) do { if (!(cond)) {                                  \
    fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);              \
    fprintf(stderr, " " __VA_ARGS__); fputc('\n', stderr); ff_failed_now_ = 1; } } while (0)

#define FF_EXPECT_NEAR(a, b, tol) do { double a_ = (a), b_ = (b), t_ = (tol);     \
    if (!(fabs(a_ - b_) <= t_)) {                                                 \
    fprintf(stderr, "%s:%d: FAIL: %s = %.9g, %s = %.9g, |diff| %.3g > %.3g\n",    \
            __FILE__, __LINE__, #a, a_, #b, b_, fabs(a_ - b_), t_);               \
    ff_failed_now_ = 1; } } while (0)

/* Max for error accumulators (worst = ff_nanmax(worst, |got - want|)): a NaN anywhere makes the
 * result NaN, so a later `worst <= tol` fails. fmax (and a ternary on >) drops a NaN operand and lets
 * a NaN result pass. */
static inline double ff_nanmax(double a, double b) { return (a != a || b != b) ? NAN : (a > b ? a : b); }

/* Random points on S^d_+: every row (last axis) |z| / ||z|| for z ~ N(0, I), drawn in order. */
static inline void ff_test_fill_sphere(ff_tensor_t *x, ff_rng_t *r) {
    int64_t m = x->shape[x->ndim - 1], rows = ff_tensor_numel(x) / m;
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        for (int64_t j = 0; j < m; j++) { double z = fabs(ff_rng_normal(r)); x->data[i * m + j] = (float)z; s += z * z; }
        for (int64_t j = 0; j < m; j++) x->data[i * m + j] = (float)(x->data[i * m + j] / sqrt(s));
    }
}

/* Expect status s == code and the last error message to contain substring sub. */
#define FF_EXPECT_ERROR(s, code, sub) do { ff_status s__ = (s);                    \
    FF_EXPECT(s__ == (code), "status %s, expected %s; message: %s",               \
              ff_status_name(s__), ff_status_name(code), ff_last_error());        \
    FF_EXPECT(strstr(ff_last_error(), (sub)) != NULL,                             \
              "message \"%s\" lacks \"%s\"", ff_last_error(), (sub)); } while (0)

#define FF_MAIN()                                                                 \
int main(int argc, char **argv) {                                                 \
    int passed = 0, failed = 0;                                                   \
    for (int i = 0; i < ff_ntests_; i++) {                                        \
        int run = argc < 2;                                                       \
        for (int a = 1; a < argc; a++) if (!strcmp(argv[a], ff_tests_[i].name)) run = 1; \
        if (!run) continue;                                                       \
        ff_failed_now_ = 0; ff_tests_[i].fn();                                    \
        printf("%s %s\n", ff_failed_now_ ? "FAIL" : "ok  ", ff_tests_[i].name);   \
        if (ff_failed_now_) failed++; else passed++;                              \
    }                                                                             \
    printf("%d passed, %d failed\n", passed, failed);                             \
    return failed ? 1 : 0;                                                        \
}
#endif
