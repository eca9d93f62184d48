/* test_plugin.c — the loader (plugin.h, docs/DESIGN.md "Plugin ABI"): every refusal provoked with a fixture .so from
 * tests/fixtures and its message checked; option validation through the loader; ABI-minor
 * compatibility; handle refcounts; listing; and every shipped plugin loaded through ff_plugin_new
 * and run once on small input. FISHERFLOW_PLUGIN_PATH points at the fixture directory. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include "ff_test.h"
#include "fisherflow/fisherflow.h"

#define FIXTURES FF_TEST_BINARY_DIR "/tests/fixtures"
#define BUILT    FF_TEST_BINARY_DIR "/plugins"

static void use_fixtures(void) { setenv("FISHERFLOW_PLUGIN_PATH", FIXTURES, 1); }

static ff_status find(ff_plugin_kind kind, const char *name) {
    const ff_plugin *d = NULL;
    use_fixtures();
    return ff_plugin_find(kind, name, &d);
}

FF_TEST(search_path_order) {
    use_fixtures();
    const char *p = ff_plugin_search_path();
    FF_EXPECT(!strcmp(p, FIXTURES ":" BUILT), "path %s", p);
    setenv("FISHERFLOW_PLUGIN_PATH", "/nonexistent/a::" FIXTURES ":" BUILT, 1);
    p = ff_plugin_search_path();
    FF_EXPECT(!strcmp(p, "/nonexistent/a:" FIXTURES ":" BUILT), "empty entries skipped and duplicates once: %s", p);
    use_fixtures();
}

FF_TEST(refuse_not_found) {
    FF_EXPECT_ERROR(find(FF_PLUGIN_COUPLER, "exact_ot2"), FF_EIO,
                    "coupler \"exact_ot2\" not found; looked in: " FIXTURES ", " BUILT);
    /* the build tree's library searches its own plugins/, never an install prefix (an installed
     * library finds its plugins next to itself: tests/e2e/lua_install.sh) */
    const char *tail = strstr(ff_last_error(), BUILT);
    FF_EXPECT(tail && !strcmp(tail, BUILT), "nothing after the build tree: %s", ff_last_error());
    FF_EXPECT_ERROR(find(FF_PLUGIN_SOURCE, "../plugins/source_uniform_sphere"), FF_EINVAL,
                    "source \"../plugins/source_uniform_sphere\": invalid plugin name (expected [a-z0-9_]+");
    FF_EXPECT_ERROR(find(FF_PLUGIN_SOURCE, ""), FF_EINVAL, "invalid plugin name");
    FF_EXPECT_ERROR(find((ff_plugin_kind)9, "x"), FF_EINVAL, "ff_plugin_find: unknown plugin kind 9");
}

FF_TEST(refuse_dlopen_failure) {
    FF_EXPECT_ERROR(find(FF_PLUGIN_SOURCE, "broken"), FF_EPLUGIN, FIXTURES "/source_broken.so: ");
    FF_EXPECT(strstr(ff_last_error(), "ff_fixture_symbol_nobody_defines"), "dlerror text: %s", ff_last_error());
    FF_EXPECT_ERROR(find(FF_PLUGIN_DECODER, "garbage"), FF_EPLUGIN, FIXTURES "/decoder_garbage.so: ");
    FF_EXPECT(strstr(ff_last_error() + 1, FIXTURES "/decoder_garbage.so") == NULL, "path once: %s", ff_last_error());
    FF_EXPECT(strstr(ff_last_error(), "ELF") || strstr(ff_last_error(), "too short"), "dlerror text: %s", ff_last_error());
    /* a refused file is not cached: asking again gives the same refusal, not a crash */
    FF_EXPECT_ERROR(find(FF_PLUGIN_SOURCE, "broken"), FF_EPLUGIN, "ff_fixture_symbol_nobody_defines");
}

FF_TEST(refuse_no_entry) {
    FF_EXPECT_ERROR(find(FF_PLUGIN_SOURCE, "no_entry"), FF_EPLUGIN,
                    FIXTURES "/source_no_entry.so: not a fisherflow plugin (no ff_plugin_entry)");
    FF_EXPECT_ERROR(find(FF_PLUGIN_DECODER, "null_entry"), FF_EPLUGIN,
                    FIXTURES "/decoder_null_entry.so: ff_plugin_entry returned NULL");
}

FF_TEST(refuse_abi_major) {
    char want[512];
    snprintf(want, sizeof want, FIXTURES "/coupler_bad_abi.so: built for plugin ABI %d.0, this fisherflow speaks "
             "%d.%d (rebuild against fisherflow %d.x headers)", FF_PLUGIN_ABI_MAJOR + 1, FF_PLUGIN_ABI_MAJOR,
             FF_PLUGIN_ABI_MINOR, FF_PLUGIN_ABI_MAJOR);
    FF_EXPECT_ERROR(find(FF_PLUGIN_COUPLER, "bad_abi"), FF_EABI, want);
    /* the same refusal through ff_plugin_new, which must not leak a reference */
    ff_plugin_inst *inst = NULL;
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_COUPLER, "bad_abi", NULL, NULL, NULL, NULL), FF_EABI, want);
    FF_EXPECT(inst == NULL, "no instance on refusal");
}

FF_TEST(refuse_wrong_kind) {
    FF_EXPECT_ERROR(find(FF_PLUGIN_COUPLER, "wrong_kind"), FF_EPLUGIN,
                    FIXTURES "/coupler_wrong_kind.so: is a source, asked for a coupler");
}

FF_TEST(refuse_name_mismatch) {
    FF_EXPECT_ERROR(find(FF_PLUGIN_SOURCE, "name_mismatch"), FF_EPLUGIN,
                    FIXTURES "/source_name_mismatch.so: descriptor names itself \"someone_else\", the file says "
                    "\"name_mismatch\"");
}

FF_TEST(refuse_small_vtable) {
    char want[512];
    snprintf(want, sizeof want, FIXTURES "/decoder_small_vtable.so: vtable_size 8 is below the decoder vtable of "
             "ABI 1.0 (%zu bytes)", sizeof(ff_decoder_vtable));
    FF_EXPECT_ERROR(find(FF_PLUGIN_DECODER, "small_vtable"), FF_EPLUGIN, want);
    FF_EXPECT_ERROR(find(FF_PLUGIN_SOURCE, "no_sample"), FF_EPLUGIN,
                    FIXTURES "/source_no_sample.so: vtable lacks the required function \"sample\"");
    FF_EXPECT(ff_plugin_vtable_min_size(FF_PLUGIN_COUPLER) == offsetof(ff_coupler_vtable, plan), "1.0 coupler size");
    FF_EXPECT(ff_plugin_vtable_min_size(FF_PLUGIN_NETWORK) == offsetof(ff_network_vtable, forward_reentrant),
              "1.0 network size");
    FF_EXPECT(ff_plugin_vtable_min_size((ff_plugin_kind)0) == 0, "bad kind");
}

static float sample_value(ff_plugin_inst *inst) {
    ff_tensor_t *x = NULL;
    ff_rng_t rng;
    ff_rng_seed(&rng, 1);
    ff_tensor_new3(&x, 2, 1, 3);
    ff_status s = ((const ff_source_vtable *)inst->desc->vtable)->sample(inst->state, &rng, x);
    float v = s == FF_OK ? x->data[5] : NAN;
    ff_tensor_free(x);
    return v;
}

FF_TEST(options_through_loader) {
    use_fixtures();
    ff_plugin_inst *inst = NULL;
    FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "options", NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    if (inst) FF_EXPECT_NEAR(sample_value(inst), 0.5 * 3 + 100 * 6, 1e-4);   /* spec defaults */
    ff_plugin_free(inst);

    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_number(o, "count", 4.0);        /* as Lua sends it: an integral number */
    ff_options_set_int(o, "scale", 2);
    ff_options_set_bool(o, "flag", 1);
    ff_options_set_number(o, "weights", 1.0);
    inst = NULL;
    FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "options", o, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    if (inst) FF_EXPECT_NEAR(sample_value(inst), 2 * 4 + 1000 + 100, 1e-3);
    /* the instance owns a copy: changing the caller's table afterwards changes nothing */
    ff_options_set_int(o, "count", 100);
    int64_t c = 0;
    FF_EXPECT(inst && ff_options_get_int(inst->opts, "count", &c) == FF_OK && c == 4, "copy kept count %lld", (long long)c);
    ff_plugin_free(inst);
    ff_options_free(o);

    ff_options_new(&o);
    ff_options_set_string(o, "colour", "red");
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "options", o, NULL, NULL, NULL), FF_EINVAL,
                    "source \"options\": unknown option \"colour\" (known: count, scale, mode, flag, weights)");
    ff_options_free(o);
    ff_options_new(&o);
    ff_options_set_string(o, "count", "many");
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "options", o, NULL, NULL, NULL), FF_EINVAL,
                    "source \"options\": option \"count\" expects int, got string \"many\"");
    ff_options_free(o);
    ff_options_new(&o);
    ff_options_set_string(o, "mode", "fail");
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "options", o, NULL, NULL, NULL), FF_EINVAL,
                    "source \"options\": option \"mode\" = \"fail\" refused on purpose");
    ff_options_free(o);
    /* a broken option spec is the plugin's fault: refused at load, before any option is looked at */
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "bad_default", NULL, NULL, NULL, NULL), FF_EPLUGIN,
                    FIXTURES "/source_bad_default.so: source \"bad_default\": option \"count\" has a malformed "
                    "default \"lots\" for type int");
    const ff_plugin *d = NULL;
    FF_EXPECT(ff_plugin_find(FF_PLUGIN_SOURCE, "options", &d) == FF_OK && ff_plugin_refs(d) == 0,
              "refused creates released their reference: %d", d ? ff_plugin_refs(d) : -9);
}

FF_TEST(options_of_shipped_plugins) {
    use_fixtures();
    ff_plugin_inst *inst = NULL;
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_number(o, "epsilon", 0.1);
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_COUPLER, "sinkhorn", o, NULL, NULL, NULL), FF_EINVAL,
                    "coupler \"sinkhorn\": unknown option \"epsilon\" (known: eps, iterations, tolerance)");
    ff_options_free(o);
    ff_options_new(&o);
    ff_options_set_number(o, "iterations", 2.5);
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_COUPLER, "sinkhorn", o, NULL, NULL, NULL), FF_EINVAL,
                    "coupler \"sinkhorn\": option \"iterations\" expects int, got number 2.5");
    ff_options_free(o);
    ff_options_new(&o);
    ff_options_set_number(o, "eps", -1);
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_COUPLER, "sinkhorn", o, NULL, NULL, NULL), FF_EINVAL,
                    "coupler \"sinkhorn\": option \"eps\" must be > 0 (got -1)");
    ff_options_free(o);
    ff_options_new(&o);
    ff_options_set_number(o, "eps", 0.1);
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_COUPLER, "independent", o, NULL, NULL, NULL), FF_EINVAL,
                    "coupler \"independent\": unknown option \"eps\" (known: none)");
    ff_options_free(o);
    ff_options_new(&o);
    double a[] = { 1, -1, 2 };
    ff_options_set_numbers(o, "alpha", a, 3);
    ff_space sp = { .k = 1, .d = 2 };
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "dirichlet", o, &sp, NULL, NULL), FF_EINVAL,
                    "source \"dirichlet\": option \"alpha\" must be finite and > 0 (got alpha[1] = -1)");
    a[1] = 1;
    ff_options_set_numbers(o, "alpha", a, 3);
    sp.d = 3;
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "dirichlet", o, &sp, NULL, NULL), FF_EINVAL,
                    "source \"dirichlet\": option \"alpha\" has 3 values; expected 1 or d+1 = 4");
    ff_options_set_string(o, "alpha", "flat");
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "dirichlet", o, &sp, NULL, NULL), FF_EINVAL,
                    "source \"dirichlet\": option \"alpha\" expects numbers, got string \"flat\"");
    ff_options_free(o);
    sp.k = -1;
    FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "uniform_sphere", NULL, &sp, NULL, NULL), FF_EINVAL,
                    "source \"uniform_sphere\": bad space k=-1");
}

FF_TEST(abi_minor_compatibility) {
    use_fixtures();
    ff_plugin_inst *old = NULL, *fut = NULL;
    FF_EXPECT(ff_plugin_new(&old, FF_PLUGIN_COUPLER, "old_minor", NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_plugin_new(&fut, FF_PLUGIN_COUPLER, "future_minor", NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    if (!old || !fut) { ff_plugin_free(old); ff_plugin_free(fut); return; }
    FF_EXPECT(!FF_VTABLE_HAS(old->desc, ff_coupler_vtable, plan), "a 1.0 coupler has no plan");
    FF_EXPECT(!FF_VTABLE_HAS(fut->desc, ff_coupler_vtable, plan), "plan pointer NULL reads as absent");
    ff_tensor_t *x = NULL;
    ff_tensor_new3(&x, 5, 1, 2);
    int32_t perm[5];
    ff_rng_t rng;
    ff_rng_seed(&rng, 3);
    FF_EXPECT(((const ff_coupler_vtable *)old->desc->vtable)->pair(old->state, x, x, &rng, perm) == FF_OK, "pair");
    FF_EXPECT(perm[0] == 4 && perm[4] == 0, "the 1.0 plugin's own pairing ran: %d %d", perm[0], perm[4]);
    FF_EXPECT(((const ff_coupler_vtable *)fut->desc->vtable)->pair(fut->state, x, x, &rng, perm) == FF_OK, "pair");
    FF_EXPECT(perm[0] == 0 && perm[4] == 4, "future plugin pairs");
    ff_tensor_free(x);
    ff_plugin_free(old);   /* destroy is NULL in the 1.0 fixture: the host skips it */
    ff_plugin_free(fut);
}

FF_TEST(refcount_and_unload) {
    use_fixtures();
    ff_plugin_inst *a = NULL, *b = NULL;
    FF_EXPECT(ff_plugin_new(&a, FF_PLUGIN_COUPLER, "exact_ot", NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_plugin_new(&b, FF_PLUGIN_COUPLER, "exact_ot", NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    if (!a || !b) { ff_plugin_free(a); ff_plugin_free(b); return; }
    FF_EXPECT(a->desc == b->desc && a->handle == b->handle, "one cached handle");
    FF_EXPECT(ff_plugin_refs(a->desc) == 2, "refs %d", ff_plugin_refs(a->desc));
    ff_plugin_free(b);
    FF_EXPECT(ff_plugin_refs(a->desc) == 1, "refs %d", ff_plugin_refs(a->desc));
    ff_plugin_unload_unused();               /* must not close the handle a lives in */
    FF_EXPECT(ff_plugin_refs(a->desc) == 1, "still cached: %d", ff_plugin_refs(a->desc));
    ff_tensor_t *x0 = NULL, *x1 = NULL;
    ff_tensor_new3(&x0, 3, 1, 2);
    ff_tensor_new3(&x1, 3, 1, 2);
    float p0[] = { 1, 0, 0, 1, 0.6f, 0.8f }, p1[] = { 0, 1, 0.6f, 0.8f, 1, 0 };
    memcpy(x0->data, p0, sizeof p0);
    memcpy(x1->data, p1, sizeof p1);
    int32_t perm[3];
    FF_EXPECT(((const ff_coupler_vtable *)a->desc->vtable)->pair(a->state, x0, x1, NULL, perm) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(perm[0] == 1 && perm[1] == 2 && perm[2] == 0, "exact pairing %d %d %d", perm[0], perm[1], perm[2]);
    ff_tensor_free(x0);
    ff_tensor_free(x1);
    const ff_plugin *d = a->desc;
    ff_plugin_free(a);
    FF_EXPECT(ff_plugin_refs(d) == 0, "refs 0 after the last free");
    FF_EXPECT(ff_plugin_unload_unused() >= 1, "the unused handle is closed");
    FF_EXPECT(ff_plugin_refs(d) == -1, "no longer cached");
    ff_plugin_inst *c = NULL;                /* and it loads again */
    FF_EXPECT(ff_plugin_new(&c, FF_PLUGIN_COUPLER, "exact_ot", NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    ff_plugin_free(c);
    ff_plugin_free(NULL);
}

static void *thread_body(void *arg) {
    (void)arg;
    for (int i = 0; i < 50; i++) {
        ff_plugin_inst *inst = NULL;
        if (ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "uniform_sphere", NULL, NULL, NULL, NULL) != FF_OK) return (void *)1;
        const ff_plugin *d = NULL;
        if (ff_plugin_find(FF_PLUGIN_DECODER, "argmax", &d) != FF_OK) { ff_plugin_free(inst); return (void *)1; }
        ff_plugin_free(inst);
    }
    return NULL;
}

FF_TEST(threads_share_the_cache) {
    use_fixtures();
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, thread_body, NULL);
    int bad = 0;
    for (int i = 0; i < 4; i++) { void *r; pthread_join(t[i], &r); bad += r != NULL; }
    FF_EXPECT(bad == 0, "%d threads failed", bad);
    const ff_plugin *d = NULL;
    FF_EXPECT(ff_plugin_find(FF_PLUGIN_SOURCE, "uniform_sphere", &d) == FF_OK && ff_plugin_refs(d) == 0,
              "refs back to 0: %d", d ? ff_plugin_refs(d) : -9);
}

typedef struct { int n_ok, n_err, saw_exact_ot, saw_bad_abi, saw_options, saw_garbage, saw_misnamed, saw_shadow;
                 char scratch[64]; const ff_plugin *scratch_desc; } listing;

static void on_plugin(void *ctx, const char *path, const ff_plugin *desc, const char *error) {
    listing *l = ctx;
    if (desc) l->n_ok++; else l->n_err++;
    if (desc && !strcmp(desc->name, "exact_ot") && strstr(path, BUILT "/coupler_exact_ot.so")) l->saw_exact_ot = 1;
    if (!desc && strstr(path, "coupler_bad_abi.so") && strstr(error, "built for plugin ABI")) l->saw_bad_abi = 1;
    if (desc && !strcmp(desc->name, "options") && desc->options && !strcmp(desc->options[0].name, "count")) l->saw_options = 1;
    if (!desc && strstr(path, "decoder_garbage.so") && error[0]) l->saw_garbage = 1;
    if (!desc && strstr(path, "misnamed.so") && strstr(error, "<kind>_<name>.so")) l->saw_misnamed = 1;
    /* the fixture dir's source_options.so comes after the scratch copy on the path */
    if (!desc && !strcmp(path, FIXTURES "/source_options.so") && strstr(error, "shadowed by ") &&
        strstr(error, l->scratch)) l->saw_shadow = 1;
    if (desc && !strcmp(desc->name, "options") && !strstr(path, l->scratch)) l->saw_shadow = -100;
    if (desc && !strcmp(desc->name, "options") && strstr(path, l->scratch)) l->scratch_desc = desc;
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[4096];
    size_t n;
    int ok = a && b;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b) fclose(b);
    return ok;
}

FF_TEST(list_everything_found) {
    /* a scratch dir, first on the path, with a misnamed file and a copy of a fixture that shadows it */
    char dir[] = "/tmp/ff_test_plugin_XXXXXX";
    FF_EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
    char path[512], env[1024];
    snprintf(path, sizeof path, "%s/misnamed.so", dir);
    FILE *f = fopen(path, "w");
    if (f) { fputs("x", f); fclose(f); }
    char copy[512];
    snprintf(copy, sizeof copy, "%s/source_options.so", dir);
    FF_EXPECT(copy_file(FIXTURES "/source_options.so", copy), "copy a fixture");
    snprintf(env, sizeof env, "%s:%s", dir, FIXTURES);
    setenv("FISHERFLOW_PLUGIN_PATH", env, 1);
    listing l = { 0 };
    snprintf(l.scratch, sizeof l.scratch, "%s", dir);
    FF_EXPECT(ff_plugin_list(on_plugin, &l) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(l.saw_exact_ot && l.saw_bad_abi && l.saw_options && l.saw_garbage && l.saw_misnamed && l.saw_shadow == 1,
              "exact_ot %d bad_abi %d options %d garbage %d misnamed %d shadow %d", l.saw_exact_ot, l.saw_bad_abi,
              l.saw_options, l.saw_garbage, l.saw_misnamed, l.saw_shadow);
    FF_EXPECT(l.n_ok >= 8 + 3 && l.n_err >= 10, "ok %d, refused %d", l.n_ok, l.n_err);
    /* ff_plugin_new takes the first on the path too */
    ff_plugin_inst *inst = NULL;
    FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "options", NULL, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(inst && l.scratch_desc && inst->desc == l.scratch_desc, "the scratch copy was loaded");
    ff_plugin_free(inst);
    ff_plugin_unload_unused();               /* the copy is about to be deleted */
    unlink(copy);
    unlink(path);
    rmdir(dir);
    use_fixtures();
    FF_EXPECT_ERROR(ff_plugin_list(NULL, NULL), FF_EINVAL, "ff_plugin_list: fn is NULL");
}

/* --- every shipped plugin, through the loader -------------------------------------------- */

static int on_sphere(const ff_tensor_t *x) {
    int64_t n = x->shape[0] * x->shape[1], D = x->shape[2];
    for (int64_t r = 0; r < n; r++) {
        double s = 0;
        for (int64_t c = 0; c < D; c++) {
            float v = x->data[r * D + c];
            if (!(v >= 0)) return 0;
            s += (double)v * v;
        }
        if (fabs(s - 1) > 1e-5) return 0;
    }
    return 1;
}

FF_TEST(shipped_sources) {
    use_fixtures();
    const char *names[] = { "uniform_sphere", "dirichlet" };
    ff_space sp = { .k = 3, .d = 4 };
    ff_rng_t rng;
    ff_rng_seed(&rng, 11);
    for (int i = 0; i < 2; i++) {
        ff_plugin_inst *inst = NULL;
        FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, names[i], NULL, &sp, NULL, NULL) == FF_OK, "%s", ff_last_error());
        if (!inst) continue;
        FF_EXPECT(!strcmp(inst->desc->name, names[i]) && inst->desc->summary && inst->desc->version, "descriptor");
        const ff_source_vtable *v = inst->desc->vtable;
        ff_tensor_t *x = NULL, *lp = NULL, *bad = NULL;
        ff_tensor_new3(&x, 6, 3, 5);
        ff_tensor_new1(&lp, 6);
        ff_tensor_new3(&bad, 6, 2, 5);
        FF_EXPECT(v->sample(inst->state, &rng, x) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(on_sphere(x), "%s samples lie on S^d_+", names[i]);
        FF_EXPECT(v->log_prob && v->log_prob(inst->state, x, lp) == FF_OK, "%s", ff_last_error());
        for (int r = 0; r < 6; r++) FF_EXPECT(isfinite(lp->data[r]), "%s log_prob[%d] = %g", names[i], r, lp->data[r]);
        FF_EXPECT_ERROR(v->sample(inst->state, &rng, bad), FF_ESHAPE, "the space has k=3, d+1=5");
        x->data[0] = 3;   /* off the sphere */
        FF_EXPECT_ERROR(v->log_prob(inst->state, x, lp), FF_EINVAL, "x[0, 0] is not on the unit sphere");
        x->data[0] = NAN;
        FF_EXPECT_ERROR(v->log_prob(inst->state, x, lp), FF_ENUMERIC, "x[0, 0, 0] is not finite");
        ff_tensor_free(x); ff_tensor_free(lp); ff_tensor_free(bad);
        ff_plugin_free(inst);
    }
}

static int is_permutation(const int32_t *p, int n) {
    int seen[64] = { 0 };
    for (int i = 0; i < n; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]]) return 0;
        seen[p[i]] = 1;
    }
    return 1;
}

FF_TEST(shipped_couplers) {
    use_fixtures();
    const char *names[] = { "independent", "exact_ot", "sinkhorn" };
    ff_space sp = { .k = 2, .d = 3 };
    ff_rng_t rng;
    ff_rng_seed(&rng, 5);
    ff_plugin_inst *src = NULL;
    FF_EXPECT(ff_plugin_new(&src, FF_PLUGIN_SOURCE, "uniform_sphere", NULL, &sp, NULL, NULL) == FF_OK, "%s", ff_last_error());
    if (!src) return;
    ff_tensor_t *x0 = NULL, *x1 = NULL, *plan = NULL, *wrong = NULL;
    ff_tensor_new3(&x0, 8, 2, 4);
    ff_tensor_new3(&x1, 8, 2, 4);
    ff_tensor_new2(&plan, 8, 8);
    ff_tensor_new3(&wrong, 7, 2, 4);
    const ff_source_vtable *sv = src->desc->vtable;
    sv->sample(src->state, &rng, x0);
    sv->sample(src->state, &rng, x1);
    for (int i = 0; i < 3; i++) {
        ff_plugin_inst *inst = NULL;
        FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_COUPLER, names[i], NULL, &sp, NULL, NULL) == FF_OK, "%s", ff_last_error());
        if (!inst) continue;
        const ff_coupler_vtable *v = inst->desc->vtable;
        int32_t perm[8];
        FF_EXPECT(v->pair(inst->state, x0, x1, &rng, perm) == FF_OK, "%s: %s", names[i], ff_last_error());
        if (i < 2) FF_EXPECT(is_permutation(perm, 8), "%s gives a permutation", names[i]);
        for (int r = 0; r < 8; r++) FF_EXPECT(perm[r] >= 0 && perm[r] < 8, "%s perm[%d] = %d", names[i], r, perm[r]);
        if (i == 0) for (int r = 0; r < 8; r++) FF_EXPECT(perm[r] == r, "identity");
        FF_EXPECT(FF_VTABLE_HAS(inst->desc, ff_coupler_vtable, plan), "%s has a plan", names[i]);
        FF_EXPECT(v->plan(inst->state, x0, x1, plan) == FF_OK, "%s", ff_last_error());
        double total = 0;
        for (int e = 0; e < 64; e++) total += plan->data[e];
        FF_EXPECT_NEAR(total, 1.0, 1e-4);
        FF_EXPECT(v->pair(inst->state, x0, wrong, &rng, perm) != FF_OK, "%s refuses mismatched batches", names[i]);
        FF_EXPECT(strstr(ff_last_error(), names[i]), "message names the plugin: %s", ff_last_error());
        ff_plugin_free(inst);
    }
    ff_tensor_free(x0); ff_tensor_free(x1); ff_tensor_free(plan); ff_tensor_free(wrong);
    ff_plugin_free(src);
}

FF_TEST(shipped_decoders) {
    use_fixtures();
    ff_space sp = { .k = 2, .d = 2 };
    ff_rng_t rng;
    ff_rng_seed(&rng, 9);
    ff_tensor_t *x = NULL, *tok = NULL, *p = NULL;
    ff_tensor_new3(&x, 1, 2, 3);
    ff_tensor_new2(&tok, 1, 2);
    ff_tensor_new3(&p, 1, 2, 3);
    float v[] = { 0.6f, 0.0f, 0.8f,  0.0f, 1.0f, 0.0f };
    memcpy(x->data, v, sizeof v);
    const char *names[] = { "argmax", "sample", "probs" };
    for (int i = 0; i < 3; i++) {
        ff_plugin_inst *inst = NULL;
        FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_DECODER, names[i], NULL, &sp, NULL, NULL) == FF_OK, "%s", ff_last_error());
        if (!inst) continue;
        const ff_decoder_vtable *dv = inst->desc->vtable;
        FF_EXPECT(dv->emits_probs == (i == 2), "%s emits_probs %d", names[i], dv->emits_probs);
        ff_tensor_t *out = dv->emits_probs ? p : tok;
        FF_EXPECT(dv->decode(inst->state, x, &rng, out) == FF_OK, "%s", ff_last_error());
        if (i == 0) FF_EXPECT(tok->data[0] == 2 && tok->data[1] == 1, "argmax %g %g", tok->data[0], tok->data[1]);
        if (i == 1) FF_EXPECT((tok->data[0] == 0 || tok->data[0] == 2) && tok->data[1] == 1, "sample %g %g",
                              tok->data[0], tok->data[1]);
        if (i == 2) {
            FF_EXPECT_NEAR(p->data[0], 0.36, 1e-6); FF_EXPECT_NEAR(p->data[1], 0, 0); FF_EXPECT_NEAR(p->data[2], 0.64, 1e-6);
            FF_EXPECT_NEAR(p->data[4], 1, 1e-7);
        }
        FF_EXPECT(dv->decode(inst->state, x, &rng, dv->emits_probs ? tok : p) == FF_ESHAPE, "%s wrong out shape", names[i]);
        ff_plugin_free(inst);
    }
    ff_tensor_free(x); ff_tensor_free(tok); ff_tensor_free(p);
}

/* The network plugins belong to another engineer; the loader must load them like any other kind. */
FF_TEST(network_plugins_load) {
    use_fixtures();
    const char *names[] = { "bmlp", "cnn1d" };
    for (int i = 0; i < 2; i++) {
        char src[512];
        snprintf(src, sizeof src, FF_TEST_SOURCE_DIR "/plugins/network/%s.c", names[i]);
        if (access(src, R_OK) != 0) continue;    /* not shipped in this tree */
        const ff_plugin *d = NULL;
        FF_EXPECT(ff_plugin_find(FF_PLUGIN_NETWORK, names[i], &d) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(d && d->kind == FF_PLUGIN_NETWORK && !strcmp(d->name, names[i]), "network %s", names[i]);
        ff_plugin_inst *inst = NULL;
        ff_space sp = { .k = 4, .d = 3 };
        FF_EXPECT_ERROR(ff_plugin_new(&inst, FF_PLUGIN_NETWORK, names[i], NULL, &sp, NULL, NULL), FF_EINVAL,
                        "a network needs a parameter registry (params is NULL)");
        ff_params_t *params = NULL;
        ff_rng_t rng;
        ff_rng_seed(&rng, 1);
        FF_EXPECT(ff_params_new(&params) == FF_OK, "params");
        FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_NETWORK, names[i], NULL, &sp, params, &rng) == FF_OK,
                  "%s: %s", names[i], ff_last_error());
        FF_EXPECT(ff_params_count(params) > 0, "%s registered parameters", names[i]);
        ff_plugin_free(inst);
        ff_params_free(params);
    }
}

/* --- in-process registrations ----------------------------------------------------------------- */

#define REG_MARK 0.57735026f
static int reg_creates, reg_samples;
static ff_status reg_create(const ff_options *o, const ff_space *sp, void **state) {
    (void)o; (void)sp;
    reg_creates++;
    *state = &reg_creates;
    return FF_OK;
}
static ff_status reg_sample(void *state, ff_rng_t *rng, ff_tensor_t *out) {
    (void)rng;
    if (state != &reg_creates) return ff_errorf(FF_EINVAL, "reg_sample: wrong state");
    reg_samples++;
    for (int64_t i = 0; i < ff_tensor_numel(out); i++) out->data[i] = REG_MARK;   /* the centre of S^2_+ */
    return FF_OK;
}
static const ff_source_vtable reg_vt = { reg_create, reg_sample, NULL, NULL };
static ff_status reg_decode(void *state, const ff_tensor_t *x, ff_rng_t *rng, ff_tensor_t *out) {
    (void)state; (void)rng;
    return ff_tensor_copy(out, x);
}

static ff_plugin reg_desc(const char *name) {
    ff_plugin d = { FF_PLUGIN_ABI_MAJOR, FF_PLUGIN_ABI_MINOR, FF_PLUGIN_SOURCE, sizeof(ff_source_vtable),
                    name, "0.1", "registered in the test", NULL, &reg_vt };
    return d;
}

FF_TEST(register_refusals) {
    use_fixtures();
    ff_plugin d = reg_desc("Bad-Name");
    FF_EXPECT_ERROR(ff_plugin_register(&d), FF_EINVAL,
                    "ff_plugin_register: source \"Bad-Name\": invalid plugin name (expected [a-z0-9_]+");
    d = reg_desc(NULL);
    FF_EXPECT_ERROR(ff_plugin_register(&d), FF_EINVAL, "source \"(null)\": invalid plugin name");
    FF_EXPECT_ERROR(ff_plugin_register(NULL), FF_EINVAL, "ff_plugin_register: desc is NULL");
    d = reg_desc("reg_abi");
    d.abi_major = FF_PLUGIN_ABI_MAJOR + 1;
    FF_EXPECT_ERROR(ff_plugin_register(&d), FF_EABI, "ff_plugin_register: source \"reg_abi\": built for plugin ABI 2.");
    d = reg_desc("reg_kind");
    d.kind = 7;
    FF_EXPECT_ERROR(ff_plugin_register(&d), FF_EPLUGIN, "ff_plugin_register: unknown plugin kind 7");
    d = reg_desc("reg_small");
    d.vtable_size = 8;
    FF_EXPECT_ERROR(ff_plugin_register(&d), FF_EPLUGIN, "source \"reg_small\": vtable_size 8 is below the source vtable");
    static const ff_source_vtable no_sample = { reg_create, NULL, NULL, NULL };
    d = reg_desc("reg_missing");
    d.vtable = &no_sample;
    FF_EXPECT_ERROR(ff_plugin_register(&d), FF_EPLUGIN,
                    "ff_plugin_register: source \"reg_missing\": vtable lacks the required function \"sample\"");
    static const ff_option_spec bad_opts[] = { { "Width", FF_OPT_INT, "1", "" }, { NULL, 0, NULL, NULL } };
    d = reg_desc("reg_opts");
    d.options = bad_opts;
    FF_EXPECT_ERROR(ff_plugin_register(&d), FF_EPLUGIN, "option name \"Width\" is not [a-z0-9_]+");
    /* none of the refused ones is findable */
    const ff_plugin *found = NULL;
    FF_EXPECT_ERROR(ff_plugin_find(FF_PLUGIN_SOURCE, "reg_missing", &found), FF_EIO, "source \"reg_missing\" not found");
    /* a clash with a registered name; another kind may use the name */
    d = reg_desc("reg_twice");
    FF_EXPECT(ff_plugin_register(&d) == FF_OK, "%s", ff_last_error());
    FF_EXPECT_ERROR(ff_plugin_register(&d), FF_EINVAL,
                    "ff_plugin_register: source \"reg_twice\": a source of that name is already registered");
    FF_EXPECT(ff_plugin_unregister(FF_PLUGIN_SOURCE, "reg_twice") == FF_OK, "%s", ff_last_error());
    FF_EXPECT_ERROR(ff_plugin_unregister(FF_PLUGIN_SOURCE, "reg_twice"), FF_EINVAL,
                    "ff_plugin_unregister: source \"reg_twice\" is not registered");
    FF_EXPECT_ERROR(ff_plugin_unregister((ff_plugin_kind)0, "x"), FF_EINVAL, "unknown plugin kind 0");
}

FF_TEST(register_lookup_order_and_lifetime) {
    use_fixtures();
    const ff_plugin *file = NULL, *got = NULL;
    FF_EXPECT(ff_plugin_find(FF_PLUGIN_SOURCE, "uniform_sphere", &file) == FF_OK, "%s", ff_last_error());
    /* registered from memory the caller frees at once: the loader keeps its own copy */
    char *name = strdup("uniform_sphere");
    ff_plugin *d = malloc(sizeof *d);
    *d = reg_desc(name);
    FF_EXPECT(ff_plugin_register(d) == FF_OK, "%s", ff_last_error());
    memset(name, 'x', strlen(name));
    free(name);
    free(d);
    /* looked up before the files: it shadows source_uniform_sphere.so */
    FF_EXPECT(ff_plugin_find(FF_PLUGIN_SOURCE, "uniform_sphere", &got) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(got != file && !strcmp(got->summary, "registered in the test") && !strcmp(got->name, "uniform_sphere"),
              "the registration comes first: %s", got ? got->summary : "(none)");
    reg_creates = reg_samples = 0;
    ff_space sp = { 1, 2, 0, 0 };
    ff_plugin_inst *inst = NULL;
    FF_EXPECT(ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "uniform_sphere", NULL, &sp, NULL, NULL) == FF_OK, "%s", ff_last_error());
    if (!inst) return;
    FF_EXPECT(reg_creates == 1 && inst->state == &reg_creates, "the registered create ran");
    FF_EXPECT(ff_plugin_refs(inst->desc) == 1, "refs %d", ff_plugin_refs(inst->desc));
    /* unregistered while an instance lives: the name is free again, the instance keeps working */
    FF_EXPECT(ff_plugin_unregister(FF_PLUGIN_SOURCE, "uniform_sphere") == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_plugin_find(FF_PLUGIN_SOURCE, "uniform_sphere", &got) == FF_OK && got == file, "the file again");
    ff_tensor_t *x = NULL;
    ff_tensor_new3(&x, 4, 1, 3);
    FF_EXPECT(((const ff_source_vtable *)inst->desc->vtable)->sample(inst->state, NULL, x) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(reg_samples == 1 && x->data[11] == REG_MARK, "the registered sample ran");
    ff_tensor_free(x);
    ff_plugin_free(inst);            /* frees the loader's copy (the sanitizer build checks) */
    /* a flow names a registered source like any plugin, and calls it once per batch */
    ff_plugin r = reg_desc("reg_flow_src");
    FF_EXPECT(ff_plugin_register(&r) == FF_OK, "%s", ff_last_error());
    ff_flow_config cfg = ff_flow_default_config();
    cfg.space.k = 1; cfg.space.d = 2;
    cfg.source.name = "reg_flow_src";
    ff_flow_t *f = NULL;
    FF_EXPECT(ff_flow_new(&f, &cfg) == FF_OK, "%s", ff_last_error());
    if (f) {
        ff_tensor_t *out = NULL;
        ff_tensor_new3(&out, 6, 1, 3);
        ff_sample_opts so = ff_flow_default_sample_opts();
        so.steps = 1;
        reg_samples = 0;
        FF_EXPECT(ff_flow_sample(f, out, NULL, NULL, &so, NULL) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(reg_samples == 1, "one draw for the batch, got %d", reg_samples);
        double loss = 0;
        FF_EXPECT(ff_flow_eval_loss(f, out, NULL, &loss) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(reg_samples == 2, "eval_loss drew from the registered source: %d", reg_samples);
        ff_tensor_t *lp = NULL;
        ff_tensor_new1(&lp, 6);
        FF_EXPECT_ERROR(ff_flow_log_prob(f, out, NULL, NULL, lp), FF_EINVAL, "source \"reg_flow_src\" has no density");
        ff_tensor_free(lp);
        ff_tensor_free(out);
        ff_flow_free(f);
    }
    FF_EXPECT(ff_plugin_unregister(FF_PLUGIN_SOURCE, "reg_flow_src") == FF_OK, "%s", ff_last_error());
}

FF_TEST(emits_probs_from_the_descriptor) {
    use_fixtures();
    const ff_plugin *argmax = NULL, *src = NULL;
    FF_EXPECT(ff_plugin_find(FF_PLUGIN_DECODER, "argmax", &argmax) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_plugin_find(FF_PLUGIN_SOURCE, "uniform_sphere", &src) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(ff_plugin_emits_probs(argmax) == 0 && ff_plugin_emits_probs(src) == 0 && ff_plugin_emits_probs(NULL) == 0,
              "tokens");
    static const ff_decoder_vtable probs_vt = { reg_create, reg_decode, NULL, 1 };
    ff_plugin d = { FF_PLUGIN_ABI_MAJOR, FF_PLUGIN_ABI_MINOR, FF_PLUGIN_DECODER, sizeof(ff_decoder_vtable),
                    "reg_probs", "0.1", "", NULL, &probs_vt };
    FF_EXPECT(ff_plugin_register(&d) == FF_OK, "%s", ff_last_error());
    const ff_plugin *got = NULL;
    FF_EXPECT(ff_plugin_find(FF_PLUGIN_DECODER, "reg_probs", &got) == FF_OK && ff_plugin_emits_probs(got) == 1, "probs");
    FF_EXPECT(ff_plugin_unregister(FF_PLUGIN_DECODER, "reg_probs") == FF_OK, "%s", ff_last_error());
}

FF_MAIN()
