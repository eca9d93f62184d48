/* test_options.c — option tables (options.h): setters, getters, spec defaults, validation messages,
 * type coercions, copies and JSON. */
#include <stdlib.h>
#include "ff_test.h"
#include "fisherflow/fisherflow.h"

static const ff_option_spec spec[] = {
    { "hidden", FF_OPT_INT,     "256",     "width" },
    { "slope",  FF_OPT_NUMBER,  "0.01",    "leaky slope" },
    { "act",    FF_OPT_STRING,  "relu",    "activation" },
    { "bias",   FF_OPT_BOOL,    "true",    "use bias" },
    { "alpha",  FF_OPT_NUMBERS, "1, 1,4",  "concentrations" },
    { "seed",   FF_OPT_INT,     NULL,      "no default" },
    { NULL, 0, NULL, NULL },
};

FF_TEST(set_and_get) {
    ff_options *o = NULL;
    FF_EXPECT(ff_options_new(&o) == FF_OK, "new");
    FF_EXPECT(ff_options_set_int(o, "hidden", 64) == FF_OK, "set");
    FF_EXPECT(ff_options_set_number(o, "slope", 0.2) == FF_OK, "set");
    FF_EXPECT(ff_options_set_string(o, "act", "gelu") == FF_OK, "set");
    FF_EXPECT(ff_options_set_bool(o, "bias", 0) == FF_OK, "set");
    double a[] = { 0.5, 2.0 };
    FF_EXPECT(ff_options_set_numbers(o, "alpha", a, 2) == FF_OK, "set");
    FF_EXPECT(ff_options_set_int(o, "hidden", 128) == FF_OK, "overwrite");
    int64_t i = 0; double x = 0; const char *s = NULL; int b = 1; const double *v = NULL; int n = 0;
    FF_EXPECT(ff_options_get_int(o, "hidden", &i) == FF_OK && i == 128, "hidden %lld", (long long)i);
    FF_EXPECT(ff_options_get_number(o, "slope", &x) == FF_OK && x == 0.2, "slope %g", x);
    FF_EXPECT(ff_options_get_number(o, "hidden", &x) == FF_OK && x == 128.0, "int read as number %g", x);
    FF_EXPECT(ff_options_get_string(o, "act", &s) == FF_OK && !strcmp(s, "gelu"), "act");
    FF_EXPECT(ff_options_get_bool(o, "bias", &b) == FF_OK && b == 0, "bias");
    FF_EXPECT(ff_options_get_numbers(o, "alpha", &v, &n) == FF_OK && n == 2 && v[0] == 0.5 && v[1] == 2.0, "alpha");
    FF_EXPECT(ff_options_get_numbers(o, "slope", &v, &n) == FF_OK && n == 1 && v[0] == 0.2, "number as numbers");
    FF_EXPECT(ff_options_has(o, "act") && !ff_options_has(o, "depth") && !ff_options_has(NULL, "act"), "has");
    FF_EXPECT_ERROR(ff_options_get_int(o, "slope", &i), FF_EINVAL, "option \"slope\" expects int, got number 0.2");
    FF_EXPECT_ERROR(ff_options_get_string(o, "hidden", &s), FF_EINVAL, "\"hidden\" expects string, got int 128");
    FF_EXPECT_ERROR(ff_options_get_int(o, "nothere", &i), FF_EINVAL, "option \"nothere\" is not set");
    FF_EXPECT_ERROR(ff_options_set_int(o, "", 1), FF_EINVAL, "empty option name");
    FF_EXPECT_ERROR(ff_options_set_numbers(o, "alpha", a, 0), FF_EINVAL, "needs at least one value");
    FF_EXPECT_ERROR(ff_options_set_string(o, "act", NULL), FF_EINVAL, "is NULL");
    ff_options_free(o);
    ff_options_free(NULL);
}

FF_TEST(defaults_after_validate) {
    ff_options *o = NULL;
    ff_options_new(&o);
    FF_EXPECT(ff_options_validate(o, spec, "network \"bmlp\"") == FF_OK, "%s", ff_last_error());
    int64_t i = 0; double x = 0; const char *s = NULL; int b = 0; const double *v = NULL; int n = 0;
    FF_EXPECT(ff_options_get_int(o, "hidden", &i) == FF_OK && i == 256, "hidden %lld", (long long)i);
    FF_EXPECT(ff_options_get_number(o, "slope", &x) == FF_OK && x == 0.01, "slope");
    FF_EXPECT(ff_options_get_string(o, "act", &s) == FF_OK && !strcmp(s, "relu"), "act");
    FF_EXPECT(ff_options_get_bool(o, "bias", &b) == FF_OK && b == 1, "bias");
    FF_EXPECT(ff_options_get_numbers(o, "alpha", &v, &n) == FF_OK && n == 3 && v[0] == 1 && v[1] == 1 && v[2] == 4,
              "alpha n=%d", n);
    /* a default read twice is the same (cached) value */
    const double *v2 = NULL;
    FF_EXPECT(ff_options_get_numbers(o, "alpha", &v2, &n) == FF_OK && v2 == v, "cached default");
    FF_EXPECT(!ff_options_has(o, "hidden"), "defaults are not 'set'");
    FF_EXPECT_ERROR(ff_options_get_int(o, "seed", &i), FF_EINVAL,
                    "network \"bmlp\": option \"seed\" is not set and has no default");
    FF_EXPECT_ERROR(ff_options_get_int(o, "depth", &i), FF_EINVAL,
                    "network \"bmlp\": asked for undeclared option \"depth\" (known: hidden, slope, act, bias, alpha, seed)");
    ff_options_free(o);
}

FF_TEST(validate_unknown_key) {
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "hiden", 12);
    FF_EXPECT_ERROR(ff_options_validate(o, spec, "network \"bmlp\""), FF_EINVAL,
                    "network \"bmlp\": unknown option \"hiden\" (known: hidden, slope, act, bias, alpha, seed)");
    ff_options_free(o);
    static const ff_option_spec none[] = { { NULL, 0, NULL, NULL } };
    ff_options_new(&o);
    ff_options_set_number(o, "eps", 0.1);
    FF_EXPECT_ERROR(ff_options_validate(o, none, "coupler \"independent\""), FF_EINVAL,
                    "coupler \"independent\": unknown option \"eps\" (known: none)");
    FF_EXPECT_ERROR(ff_options_validate(o, NULL, "coupler \"x\""), FF_EINVAL, "(known: none)");
    ff_options_free(o);
}

FF_TEST(validate_types_and_coercion) {
    struct { const char *key; int kind; double num; const char *str; const char *msg; } bad[] = {
        { "hidden", 1, 2.5,  NULL,   "option \"hidden\" expects int, got number 2.5" },
        { "hidden", 2, 0,    "wide", "option \"hidden\" expects int, got string \"wide\"" },
        { "slope",  2, 0,    "x",    "option \"slope\" expects number, got string \"x\"" },
        { "bias",   1, 1.0,  NULL,   "option \"bias\" expects bool, got number 1" },
        { "act",    3, 1,    NULL,   "option \"act\" expects string, got bool true" },
        { "alpha",  2, 0,    "1,2",  "option \"alpha\" expects numbers, got string \"1,2\"" },
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        ff_options *o = NULL;
        ff_options_new(&o);
        if (bad[c].kind == 1) ff_options_set_number(o, bad[c].key, bad[c].num);
        if (bad[c].kind == 2) ff_options_set_string(o, bad[c].key, bad[c].str);
        if (bad[c].kind == 3) ff_options_set_bool(o, bad[c].key, 1);
        FF_EXPECT_ERROR(ff_options_validate(o, spec, "network \"bmlp\""), FF_EINVAL, bad[c].msg);
        FF_EXPECT(strstr(ff_last_error(), "network \"bmlp\"") != NULL, "owner named: %s", ff_last_error());
        ff_options_free(o);
    }
    /* Lossless coercions: Lua numbers arrive as doubles. */
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_number(o, "hidden", 64.0);     /* integral number -> int */
    ff_options_set_int(o, "slope", 2);            /* int -> number          */
    ff_options_set_number(o, "alpha", 0.5);       /* number -> numbers      */
    FF_EXPECT(ff_options_validate(o, spec, "network \"bmlp\"") == FF_OK, "%s", ff_last_error());
    int64_t i = 0; double x = 0; const double *v = NULL; int n = 0;
    FF_EXPECT(ff_options_get_int(o, "hidden", &i) == FF_OK && i == 64, "hidden");
    FF_EXPECT(ff_options_get_number(o, "slope", &x) == FF_OK && x == 2.0, "slope");
    FF_EXPECT(ff_options_get_numbers(o, "alpha", &v, &n) == FF_OK && n == 1 && v[0] == 0.5, "alpha");
    ff_options_free(o);
    /* a 1-element array for a scalar option */
    ff_options_new(&o);
    double one[] = { 7 };
    ff_options_set_numbers(o, "hidden", one, 1);
    FF_EXPECT(ff_options_validate(o, spec, "x") == FF_OK && ff_options_get_int(o, "hidden", &i) == FF_OK && i == 7,
              "numbers{7} -> int: %s", ff_last_error());
    ff_options_free(o);
}

FF_TEST(malformed_spec_default) {
    static const ff_option_spec broken[] = { { "n", FF_OPT_INT, "12abc", "" }, { NULL, 0, NULL, NULL } };
    static const ff_option_spec broken2[] = { { "a", FF_OPT_NUMBERS, "1,,2", "" }, { NULL, 0, NULL, NULL } };
    static const ff_option_spec broken3[] = { { "b", FF_OPT_BOOL, "yes", "" }, { NULL, 0, NULL, NULL } };
    ff_options *o = NULL;
    ff_options_new(&o);
    FF_EXPECT_ERROR(ff_options_validate(o, broken, "source \"x\""), FF_EPLUGIN,
                    "source \"x\": option \"n\" has a malformed default \"12abc\" for type int");
    FF_EXPECT_ERROR(ff_options_validate(o, broken2, "source \"x\""), FF_EPLUGIN, "malformed default \"1,,2\"");
    FF_EXPECT_ERROR(ff_options_validate(o, broken3, "source \"x\""), FF_EPLUGIN, "malformed default \"yes\"");
    ff_options_free(o);
}

FF_TEST(spec_check) {
    FF_EXPECT(ff_option_spec_check(spec, "network \"bmlp\"") == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_option_spec_check(NULL, "x") == FF_OK, "no options is fine");
    static const ff_option_spec twice[] = { { "a", FF_OPT_INT, "1", "" }, { "a", FF_OPT_NUMBER, "1", "" }, { NULL, 0, NULL, NULL } };
    static const ff_option_spec badname[] = { { "Hidden-Size", FF_OPT_INT, "1", "" }, { NULL, 0, NULL, NULL } };
    static const ff_option_spec badtype[] = { { "a", (ff_option_type)42, "1", "" }, { NULL, 0, NULL, NULL } };
    FF_EXPECT_ERROR(ff_option_spec_check(twice, "source \"x\""), FF_EPLUGIN, "source \"x\": option \"a\" is declared twice");
    FF_EXPECT_ERROR(ff_option_spec_check(badname, "source \"x\""), FF_EPLUGIN, "option name \"Hidden-Size\" is not [a-z0-9_]+");
    FF_EXPECT_ERROR(ff_option_spec_check(badtype, "source \"x\""), FF_EPLUGIN, "option \"a\" declares unknown type 42");
}

FF_TEST(copy_is_deep) {
    ff_options *o = NULL, *c = NULL;
    ff_options_new(&o);
    double a[] = { 1, 2, 3 };
    ff_options_set_numbers(o, "alpha", a, 3);
    ff_options_set_string(o, "act", "tanh");
    FF_EXPECT(ff_options_validate(o, spec, "network \"bmlp\"") == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_options_copy(&c, o) == FF_OK, "copy");
    ff_options_set_string(o, "act", "relu");
    ff_options_free(o);
    const char *s = NULL; const double *v = NULL; int n = 0; int64_t i = 0;
    FF_EXPECT(ff_options_get_string(c, "act", &s) == FF_OK && !strcmp(s, "tanh"), "copy kept its value");
    FF_EXPECT(ff_options_get_numbers(c, "alpha", &v, &n) == FF_OK && n == 3 && v[2] == 3, "array copied");
    FF_EXPECT(ff_options_get_int(c, "hidden", &i) == FF_OK && i == 256, "copy keeps the spec (defaults)");
    ff_options_free(c);
    FF_EXPECT(ff_options_copy(&c, NULL) == FF_OK && c && !ff_options_has(c, "act"), "copy of NULL is empty");
    ff_options_free(c);
}

FF_TEST(to_json) {
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "hidden", 256);
    ff_options_set_number(o, "slope", 0.25);
    ff_options_set_string(o, "act", "a\"b\\c");
    ff_options_set_bool(o, "bias", 1);
    double a[] = { 1, 0.5 };
    ff_options_set_numbers(o, "alpha", a, 2);
    ff_options_set_number(o, "bad", NAN);
    char *js = ff_options_to_json(o);
    FF_EXPECT(js && !strcmp(js, "{\"hidden\":256,\"slope\":0.25,\"act\":\"a\\\"b\\\\c\",\"bias\":true,"
                                "\"alpha\":[1,0.5],\"bad\":null}"), "json %s", js ? js : "(null)");
    free(js);
    ff_options_free(o);
    js = ff_options_to_json(NULL);
    FF_EXPECT(js && !strcmp(js, "{}"), "empty json %s", js ? js : "(null)");
    free(js);
}

FF_MAIN()
