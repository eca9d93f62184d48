/* test_sampler.c — ff_flow_sample's threads: a chunk's rows split over OpenBLAS's thread count give
 * the single-thread result (every stepper with bmlp; cnn1d and the transformer with Euler), the
 * thread setting is restored, a part's failure names its rows, a network that is not reentrant
 * stays on the calling thread, and sampling runs the network without dropout. */
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/fisherflow.h>
#include "ff_test.h"


/* n x k x D random points on S^d_+ from their own seed (ff_test_fill_sphere). */
static ff_tensor_t *sphere_points(int64_t n, int64_t k, int64_t D, uint64_t seed) {
    ff_tensor_t *x = NULL;
    ff_rng_t r;
    ff_tensor_new3(&x, n, k, D);
    ff_rng_seed(&r, seed);
    ff_test_fill_sphere(x, &r);
    return x;
}

static double max_abs_diff(const ff_tensor_t *a, const ff_tensor_t *b) {
    double d = 0;
    for (int64_t i = 0; i < ff_tensor_numel(a); i++) d = ff_nanmax(d, fabs(a->data[i] - b->data[i]));
    return d;
}

FF_TEST(rows_split_over_threads_equal_one_thread) {
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 2, 3, 0, 0 };
    c.seed = 5;
    ff_options *no = NULL;
    ff_options_new(&no);
    ff_options_set_int(no, "hidden", 32);
    ff_options_set_int(no, "depth", 3);
    ff_options_set_int(no, "emb", 8);
    c.network.opts = no;
    ff_flow_t *f = NULL;
    FF_EXPECT(ff_flow_new(&f, &c) == FF_OK, "%s", ff_last_error());
    ff_options_free(no);
    if (!f) return;
    ff_tensor_t *x1 = NULL, *x0 = NULL, *ref = NULL, *out = NULL;
    ff_tensor_new3(&x1, 64, 2, 4);
    for (int64_t i = 0; i < 64; i++)
        for (int64_t j = 0; j < 2; j++) x1->data[(i * 2 + j) * 4 + (i + j) % 4] = 1.0f;
    ff_threads_set(1);
    for (int s = 0; s < 15; s++) FF_EXPECT(ff_flow_step(f, x1, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    x0 = sphere_points(37, 2, 4, 9);
    ff_tensor_new3(&ref, 37, 2, 4);
    ff_tensor_new3(&out, 37, 2, 4);
    for (const char *const *st = ff_ode_steppers(); *st; st++) {
        ff_sample_opts so = ff_flow_default_sample_opts();
        so.stepper = *st;
        so.steps = 20;
        /* An adaptive stepper controls the error of the rows it integrates together, so its steps
         * depend on the split (as on the chunk size): differences of the order of eps. */
        int adaptive = strcmp(*st, "msadams") == 0 || strcmp(*st, "rkf45") == 0;
        if (adaptive) so.eps_abs = so.eps_rel = 1e-7;
        ff_threads_set(1);
        FF_EXPECT(ff_flow_sample(f, ref, x0, NULL, &so, NULL) == FF_OK, "%s: %s", *st, ff_last_error());
        for (int th = 2; th <= 3; th++) {
            ff_threads_set(th);
            ff_sample_stats ss = { 0, 0 };
            FF_EXPECT(ff_flow_sample(f, out, x0, NULL, &so, &ss) == FF_OK, "%s: %s", *st, ff_last_error());
            FF_EXPECT(ff_threads_get() == th, "%s: threads %d after sampling, set %d", *st, ff_threads_get(), th);
            double d = max_abs_diff(ref, out), tol = adaptive ? 1e-3 : 1e-5;
            FF_EXPECT(d < tol, "%s, %d threads: differs from 1 thread by %g", *st, th, d);
            if (!adaptive) FF_EXPECT(ss.nfe >= so.steps, "%s: nfe %lld", *st, (long long)ss.nfe);
            /* chunks of 8 rows over the threads: 3 and 2 rows per worker, 5 chunks */
            so.batch = 8;
            FF_EXPECT(ff_flow_sample(f, out, x0, NULL, &so, NULL) == FF_OK, "%s: %s", *st, ff_last_error());
            d = max_abs_diff(ref, out);
            FF_EXPECT(d < tol, "%s, %d threads, chunks of 8: differs from 1 thread by %g", *st, th, d);
            so.batch = 0;
        }
    }
    ff_threads_set(1);
    ff_tensor_free(x1); ff_tensor_free(x0); ff_tensor_free(ref); ff_tensor_free(out);
    ff_flow_free(f);
}

/* The other shipped networks (reentrant too), untrained, Euler: 2 threads = 1 thread. */
FF_TEST(cnn1d_and_transformer_split_equal_one_thread) {
    const char *nets[] = { "cnn1d", "transformer" };
    for (int i = 0; i < 2; i++) {
        ff_flow_config c = ff_flow_default_config();
        c.space = (ff_space){ 8, 3, 0, 0 };
        c.seed = 6;
        c.network.name = nets[i];
        ff_options *no = NULL;
        ff_options_new(&no);
        if (i == 0) { ff_options_set_int(no, "hidden", 16); ff_options_set_int(no, "stacks", 1); }
        else { ff_options_set_int(no, "width", 16); ff_options_set_int(no, "depth", 1); ff_options_set_int(no, "heads", 2); }
        c.network.opts = no;
        ff_flow_t *f = NULL;
        FF_EXPECT(ff_flow_new(&f, &c) == FF_OK, "%s: %s", nets[i], ff_last_error());
        ff_options_free(no);
        if (!f) continue;
        ff_tensor_t *x0 = sphere_points(9, 8, 4, 10 + i), *ref = NULL, *out = NULL;
        ff_tensor_new3(&ref, 9, 8, 4);
        ff_tensor_new3(&out, 9, 8, 4);
        ff_sample_opts so = ff_flow_default_sample_opts();
        so.steps = 10;
        ff_threads_set(1);
        FF_EXPECT(ff_flow_sample(f, ref, x0, NULL, &so, NULL) == FF_OK, "%s: %s", nets[i], ff_last_error());
        ff_threads_set(2);
        FF_EXPECT(ff_flow_sample(f, out, x0, NULL, &so, NULL) == FF_OK, "%s: %s", nets[i], ff_last_error());
        double d = max_abs_diff(ref, out);
        FF_EXPECT(d < 1e-5, "%s: 2 threads differ from 1 thread by %g", nets[i], d);
        ff_threads_set(1);
        ff_tensor_free(x0); ff_tensor_free(ref); ff_tensor_free(out);
        ff_flow_free(f);
    }
}

/* --- a probe network: records the threads and row counts it is called with; its field is NaN on
 * rows whose first coordinate is above 0.999 ------------------------------------------------------ */

static pthread_t main_thread;
static atomic_int calls, calls_off_main;
static atomic_llong rows_max;

static ff_status probe_create(const ff_options *o, const ff_space *sp, ff_params_t *params, ff_rng_t *rng,
                              void **state) {
    (void)o; (void)sp;
    ff_tensor_t *w;                            /* a flow needs one parameter; the field ignores it */
    *state = NULL;
    return ff_params_add(params, "w", 1, (int64_t[]){ 1 }, (ff_param_init){ FF_INIT_ZEROS, 0 }, rng, &w);
}

static ff_tensor_t *probe_forward(void *state, ff_tape_t *tp, ff_tensor_t *x, ff_tensor_t *t, ff_tensor_t *cond) {
    (void)state; (void)t; (void)cond;
    ff_tensor_t *v = ff_tape_alloc(tp, 3, x->shape);
    if (!v) return NULL;
    atomic_fetch_add(&calls, 1);
    if (!pthread_equal(pthread_self(), main_thread)) atomic_fetch_add(&calls_off_main, 1);
    int64_t n = x->shape[0], m = ff_tensor_numel(x) / (n > 0 ? n : 1);
    long long seen = atomic_load(&rows_max);
    while (n > seen && !atomic_compare_exchange_weak(&rows_max, &seen, n)) {}
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x->data + i * m;
        for (int64_t j = 0; j < m; j++)
            v->data[i * m + j] = xi[0] > 0.999f ? NAN : xi[(j + 1) % m] - xi[j];
    }
    return v;
}

static const ff_network_vtable probe_reentrant_vt = { probe_create, probe_forward, NULL, 1 };
static const ff_network_vtable probe_serial_vt = { probe_create, probe_forward, NULL, 0 };

/* A flow on (Delta^3)^1 with the probe registered as `name`: its vtable vt, vtable_size bytes of it
 * (a plugin built for ABI 1.1 has no forward_reentrant). */
static ff_flow_t *probe_flow(const char *name, const ff_network_vtable *vt, uint32_t abi_minor, uint32_t vtable_size) {
    ff_plugin d = { FF_PLUGIN_ABI_MAJOR, abi_minor, FF_PLUGIN_NETWORK, vtable_size, name, "0.1",
                    "a probe network of test_sampler", NULL, vt };
    FF_EXPECT(ff_plugin_register(&d) == FF_OK, "%s", ff_last_error());
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 1, 3, 0, 0 };
    c.network.name = name;
    ff_flow_t *f = NULL;
    FF_EXPECT(ff_flow_new(&f, &c) == FF_OK, "%s", ff_last_error());
    return f;
}

static void reset_probe(void) {
    main_thread = pthread_self();
    atomic_store(&calls, 0);
    atomic_store(&calls_off_main, 0);
    atomic_store(&rows_max, 0);
}

FF_TEST(part_failure_names_its_rows) {
    ff_flow_t *f = probe_flow("probe_reentrant", &probe_reentrant_vt, FF_PLUGIN_ABI_MINOR, sizeof probe_reentrant_vt);
    if (!f) return;
    ff_tensor_t *x0 = sphere_points(10, 1, 4, 2), *out = NULL;
    ff_tensor_new3(&out, 10, 1, 4);
    for (int j = 0; j < 4; j++) x0->data[7 * 4 + j] = 0.0f;
    x0->data[7 * 4] = 1.0f;                    /* row 7: a vertex, where the probe's field is NaN */
    ff_threads_set(2);
    reset_probe();
    FF_EXPECT_ERROR(ff_flow_sample(f, out, x0, NULL, NULL, NULL), FF_ENUMERIC,
                    "ff_flow_sample: rows 5..9: ff_ode_integrate (euler, t = 0): field value 8 is NaN");
    FF_EXPECT(ff_threads_get() == 2, "threads %d after a failed sample", ff_threads_get());
    FF_EXPECT(atomic_load(&calls_off_main) > 0, "no call came from a second thread");
    FF_EXPECT(atomic_load(&rows_max) == 5, "the largest call had %lld rows, expected 5", (long long)atomic_load(&rows_max));
    /* without the bad row every row reaches the simplex */
    x0->data[7 * 4] = 0.5f; x0->data[7 * 4 + 1] = 0.5f; x0->data[7 * 4 + 2] = 0.5f; x0->data[7 * 4 + 3] = 0.5f;
    FF_EXPECT(ff_flow_sample(f, out, x0, NULL, NULL, NULL) == FF_OK, "%s", ff_last_error());
    for (int64_t i = 0; i < 10; i++) {
        double s = 0;
        for (int j = 0; j < 4; j++) s += out->data[i * 4 + j];
        FF_EXPECT(fabs(s - 1) < 1e-5, "row %lld sums to %g", (long long)i, s);
    }
    ff_threads_set(1);
    ff_tensor_free(x0); ff_tensor_free(out);
    ff_flow_free(f);
    ff_plugin_unregister(FF_PLUGIN_NETWORK, "probe_reentrant");
}

/* Not reentrant: its own flag 0, or a vtable of ABI 1.1 that ends before the flag. */
FF_TEST(serial_network_stays_on_calling_thread) {
    const char *names[2] = { "probe_serial", "probe_abi11" };
    ff_flow_t *fl[2] = {
        probe_flow(names[0], &probe_serial_vt, FF_PLUGIN_ABI_MINOR, sizeof probe_serial_vt),
        probe_flow(names[1], &probe_reentrant_vt, 1, (uint32_t)offsetof(ff_network_vtable, forward_reentrant)),
    };
    ff_tensor_t *out = NULL;
    ff_tensor_new3(&out, 12, 1, 4);
    ff_threads_set(2);
    for (int i = 0; i < 2; i++) {
        if (!fl[i]) continue;
        reset_probe();
        FF_EXPECT(ff_flow_sample(fl[i], out, NULL, NULL, NULL, NULL) == FF_OK, "%s: %s", names[i], ff_last_error());
        FF_EXPECT(atomic_load(&calls) == 100, "%s: %d calls for 100 Euler steps", names[i], atomic_load(&calls));
        FF_EXPECT(atomic_load(&calls_off_main) == 0, "%s: %d calls came from another thread", names[i],
                  atomic_load(&calls_off_main));
        FF_EXPECT(atomic_load(&rows_max) == 12, "%s: calls had %lld rows, expected all 12", names[i],
                  (long long)atomic_load(&rows_max));
        ff_flow_free(fl[i]);
        ff_plugin_unregister(FF_PLUGIN_NETWORK, names[i]);
    }
    ff_threads_set(1);
    ff_tensor_free(out);
}

/* Two transformer flows that differ only in dropout have the same initial weights (dropout draws
 * nothing at creation), so with dropout off while sampling they sample the same points. */
FF_TEST(sampling_runs_without_dropout) {
    ff_flow_t *fl[2] = { NULL, NULL };
    const double drop[2] = { 0.0, 0.5 };
    for (int i = 0; i < 2; i++) {
        ff_flow_config c = ff_flow_default_config();
        c.space = (ff_space){ 3, 3, 0, 0 };
        c.seed = 4;
        c.network.name = "transformer";
        ff_options *no = NULL;
        ff_options_new(&no);
        ff_options_set_int(no, "width", 16);
        ff_options_set_int(no, "depth", 1);
        ff_options_set_int(no, "heads", 2);
        ff_options_set_number(no, "dropout", drop[i]);
        c.network.opts = no;
        FF_EXPECT(ff_flow_new(&fl[i], &c) == FF_OK, "%s", ff_last_error());
        ff_options_free(no);
    }
    if (!fl[0] || !fl[1]) { ff_flow_free(fl[0]); ff_flow_free(fl[1]); return; }
    ff_tensor_t *x0 = sphere_points(6, 3, 4, 3), *a = NULL, *b = NULL;
    ff_tensor_new3(&a, 6, 3, 4);
    ff_tensor_new3(&b, 6, 3, 4);
    ff_sample_opts so = ff_flow_default_sample_opts();
    so.steps = 10;
    for (int th = 1; th <= 2; th++) {
        ff_threads_set(th);
        FF_EXPECT(ff_flow_sample(fl[0], a, x0, NULL, &so, NULL) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(ff_flow_sample(fl[1], b, x0, NULL, &so, NULL) == FF_OK, "%s", ff_last_error());
        FF_EXPECT(memcmp(a->data, b->data, (size_t)ff_tensor_numel(a) * sizeof(float)) == 0,
                  "%d thread(s): dropout 0.5 samples differ from dropout 0 by %g", th, max_abs_diff(a, b));
    }
    ff_threads_set(1);
    ff_tensor_free(x0); ff_tensor_free(a); ff_tensor_free(b);
    ff_flow_free(fl[0]); ff_flow_free(fl[1]);
}

FF_MAIN()
