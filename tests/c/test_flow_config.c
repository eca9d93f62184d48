/* test_flow_config.c — the flow configuration as JSON (flow.h): the text of a known configuration
 * written out by hand, config -> JSON -> flow -> JSON is the same text and the same flow (bitwise
 * initial weights), left-out fields take the defaults, and every kind of mistake (unknown field, wrong
 * type, out of range, unknown kind, bad plugin option, malformed JSON) is refused naming the field. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fisherflow/fisherflow.h>
#include "ff_test.h"

static ff_options *net_opts(int64_t hidden, int64_t depth, int64_t emb, double slope) {
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_int(o, "hidden", hidden);
    ff_options_set_int(o, "depth", depth);
    ff_options_set_int(o, "emb", emb);
    if (slope >= 0) ff_options_set_number(o, "slope", slope);
    return o;
}

FF_TEST(known_config_text) {
    /* The default configuration on (Delta^2)^1, written out by hand: every field, defaults resolved. */
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 1, 2, 0, 0 };
    char *j = NULL;
    FF_EXPECT(ff_flow_config_json(&c, &j) == FF_OK, "%s", ff_last_error());
    const char *want =
        "{\"space\":{\"k\":1,\"d\":2,\"cond_classes\":0,\"cond_channels\":0},\"geometry\":\"sphere\","
        "\"source\":{\"name\":\"uniform_sphere\",\"options\":{}},\"coupler\":{\"name\":\"independent\",\"options\":{}},"
        "\"network\":{\"name\":\"bmlp\",\"options\":{}},\"decoder\":{\"name\":\"argmax\",\"options\":{}},"
        "\"optim\":{\"kind\":\"adamw\",\"lr\":0.001,\"weight_decay\":0,\"betas\":[0.9,0.999],\"eps\":1e-08},"
        "\"schedule\":{\"kind\":\"constant\",\"base\":0.001,\"min\":0,\"warmup\":0,\"total\":0},"
        "\"grad_clip\":1,\"ema\":0,\"label_smoothing\":0,\"seed\":0}";
    FF_EXPECT(j && strcmp(j, want) == 0, "\n got  %s\n want %s", j ? j : "(null)", want);
    free(j);
    /* SGD, a schedule, a seed past 2^53 and options of three types */
    c.optim = ff_optim_sgd_defaults();
    c.optim.momentum = 0.5f;
    c.optim.nesterov = 1;
    c.lr = (ff_lr_schedule){ FF_LR_WARMUP_COSINE, 0.1f, 0.0001f, 10, 1000 };
    c.seed = 18446744073709551615ull;
    c.ema_decay = 0.999f;
    ff_options *no = net_opts(8, 2, 4, 0.2);
    c.network.opts = no;
    FF_EXPECT(ff_flow_config_json(&c, &j) == FF_OK, "%s", ff_last_error());
    FF_EXPECT(j && strstr(j, "\"network\":{\"name\":\"bmlp\",\"options\":{\"hidden\":8,\"depth\":2,\"emb\":4,"
                             "\"slope\":0.20000000000000001}}"), "%s", j);
    FF_EXPECT(j && strstr(j, "\"optim\":{\"kind\":\"sgd\",\"lr\":0.01,\"weight_decay\":0,\"momentum\":0.5,"
                             "\"nesterov\":true}"), "%s", j);
    FF_EXPECT(j && strstr(j, "\"schedule\":{\"kind\":\"warmup_cosine\",\"base\":0.1,\"min\":0.0001,\"warmup\":10,"
                             "\"total\":1000}"), "%s", j);
    FF_EXPECT(j && strstr(j, "\"ema\":0.999,") && strstr(j, "\"seed\":18446744073709551615}"), "%s", j);
    free(j);
    ff_options_free(no);
    /* values JSON cannot hold */
    c.optim.lr = NAN;
    FF_EXPECT_ERROR(ff_flow_config_json(&c, &j), FF_EINVAL, "optim.lr is nan");
    FF_EXPECT(j == NULL);
    c.optim.lr = 0.01f;
    c.lr.kind = (ff_lr_kind)9;
    FF_EXPECT_ERROR(ff_flow_config_json(&c, &j), FF_EINVAL, "schedule kind 9");
}

/* config -> JSON -> flow: the flow's JSON is the same text, its resolved config the same values and
 * its initial weights the same bits as a flow from ff_flow_new(config). */
static void round_trip(const ff_flow_config *c, const char *what) {
    char *j = NULL;
    ff_flow_t *a = NULL, *b = NULL;
    FF_EXPECT(ff_flow_config_json(c, &j) == FF_OK, "%s: %s", what, ff_last_error());
    FF_EXPECT(ff_flow_new(&a, c) == FF_OK, "%s: %s", what, ff_last_error());
    FF_EXPECT(j && ff_flow_new_json(&b, j) == FF_OK, "%s: %s\n%s", what, ff_last_error(), j ? j : "");
    if (a && b && j) {
        FF_EXPECT(strcmp(ff_flow_config_json_of(a), j) == 0, "%s: flow a\n %s\n %s", what, ff_flow_config_json_of(a), j);
        FF_EXPECT(strcmp(ff_flow_config_json_of(b), j) == 0, "%s: flow b\n %s\n %s", what, ff_flow_config_json_of(b), j);
        const ff_flow_config *ca = ff_flow_config_of(a), *cb = ff_flow_config_of(b);
        FF_EXPECT(memcmp(&ca->space, &cb->space, sizeof ca->space) == 0 && !strcmp(ca->geometry, cb->geometry) &&
                  memcmp(&ca->optim, &cb->optim, sizeof ca->optim) == 0 && memcmp(&ca->lr, &cb->lr, sizeof ca->lr) == 0 &&
                  ca->grad_clip == cb->grad_clip && ca->ema_decay == cb->ema_decay &&
                  ca->label_smoothing == cb->label_smoothing && ca->seed == cb->seed, "%s: configs differ", what);
        ff_params_t *pa = ff_flow_params(a), *pb = ff_flow_params(b);
        FF_EXPECT(ff_params_numel(pa) == ff_params_numel(pb) &&
                  memcmp(ff_params_data(pa), ff_params_data(pb), (size_t)ff_params_numel(pa) * sizeof(float)) == 0,
                  "%s: initial weights differ", what);
    }
    free(j);
    ff_flow_free(a);
    ff_flow_free(b);
}

FF_TEST(round_trips) {
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 2, 3, 0, 0 };
    ff_options *no = net_opts(8, 2, 4, 0.05);
    c.network.opts = no;
    round_trip(&c, "defaults");
    /* everything set away from its default */
    c.space = (ff_space){ 3, 4, 5, 0 };
    c.geometry = "simplex";
    c.seed = 9007199254740993ull;                 /* 2^53 + 1: not a double */
    c.optim = ff_optim_adamw_defaults();
    c.optim.lr = 3.3e-4f;
    c.optim.beta2 = 0.95f;
    c.optim.eps = 1e-7f;
    c.lr = (ff_lr_schedule){ FF_LR_COSINE, 0, 1e-6f, 0, 500 };
    c.grad_clip = 0.3f;
    c.ema_decay = 0.9999f;
    c.label_smoothing = 0.07f;
    ff_options *co = NULL, *so = NULL;
    ff_options_new(&co);
    ff_options_set_number(co, "eps", 0.1);
    ff_options_set_int(co, "iterations", 50);
    c.coupler = (ff_plugin_spec){ "sinkhorn", co };
    ff_options_new(&so);
    ff_options_set_numbers(so, "alpha", (double[]){ 0.5, 1, 2, 3, 1.0 / 3 }, 5);
    c.source = (ff_plugin_spec){ "dirichlet", so };
    c.decoder.name = "sample";
    round_trip(&c, "all set");
    c.optim = ff_optim_sgd_defaults();
    c.optim.momentum = 0.9f;
    c.optim.nesterov = 1;
    c.optim.weight_decay = 1e-4f;
    c.lr = (ff_lr_schedule){ FF_LR_WARMUP_LINEAR, 0.2f, 0, 7, 0 };
    c.space = (ff_space){ 4, 4, 0, 3 };            /* d+1 = 5 Dirichlet alphas still fit */
    round_trip(&c, "sgd");
    ff_options_free(no); ff_options_free(co); ff_options_free(so);
}

FF_TEST(left_out_fields_take_defaults) {
    ff_flow_t *f = NULL;
    FF_EXPECT(ff_flow_new_json(&f, " {\"space\": {\"d\": 2}} \n") == FF_OK, "%s", ff_last_error());
    ff_flow_config c = ff_flow_default_config();
    c.space = (ff_space){ 1, 2, 0, 0 };
    char *j = NULL;
    ff_flow_config_json(&c, &j);
    FF_EXPECT(f && j && strcmp(ff_flow_config_json_of(f), j) == 0, "%s\n%s", f ? ff_flow_config_json_of(f) : "", j);
    free(j);
    ff_flow_free(f);
    /* an optim object starts from its kind's defaults (AdamW's weight decay is 0.01 there); a plugin
     * given by name alone; options without a name go to the default plugin */
    FF_EXPECT(ff_flow_new_json(&f, "{\"space\": {\"k\": 2, \"d\": 3}, \"optim\": {\"lr\": 0.01}, \"coupler\": \"exact_ot\","
                                   " \"network\": {\"options\": {\"hidden\": 8, \"depth\": 2, \"slope\": 1}}}") == FF_OK,
              "%s", ff_last_error());
    if (f) {
        const ff_flow_config *g = ff_flow_config_of(f);
        FF_EXPECT(g->optim.kind == FF_OPTIM_ADAMW && g->optim.lr == 0.01f && g->optim.weight_decay == 0.01f &&
                  g->lr.base == 0.01f, "optim %d lr %g wd %g base %g", (int)g->optim.kind, g->optim.lr,
                  g->optim.weight_decay, g->lr.base);
        FF_EXPECT(!strcmp(g->coupler.name, "exact_ot") && !strcmp(g->network.name, "bmlp"));
        double slope = 0;
        int64_t hidden = 0;
        FF_EXPECT(ff_options_get_number(g->network.opts, "slope", &slope) == FF_OK && slope == 1.0,
                  "a JSON 1 for a number option: %s", ff_last_error());
        FF_EXPECT(ff_options_get_int(g->network.opts, "hidden", &hidden) == FF_OK && hidden == 8, "%s", ff_last_error());
    }
    ff_flow_free(f);
}

FF_TEST(mistakes_name_the_field) {
    static const struct { const char *json, *msg; } cases[] = {
        { "{\"space\": {\"d\": 2}, \"sede\": 1}", "unknown field \"sede\" (known: space, geometry, source" },
        { "{\"space\": {\"d\": 2, \"K\": 3}}", "unknown field \"space.K\" (known: k, d, cond_classes, cond_channels)" },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"lrr\": 1}}", "unknown field \"optim.lrr\" for adamw (known: kind, lr," },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"momentum\": 0.9}}", "unknown field \"optim.momentum\" for adamw" },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"kind\": \"sgd\", \"betas\": [0.9, 0.9]}}", "unknown field \"optim.betas\" for sgd" },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"kind\": \"adam\"}}", "field \"optim.kind\": \"adam\" is not an optimiser (known: adamw, sgd)" },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"lr\": \"fast\"}}", "field \"optim.lr\": expected a number, got a string" },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"lr\": -1}}", "field \"optim.lr\" must be >= 0, got -1" },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"betas\": [0.9]}}", "field \"optim.betas\": expected an array of 2 numbers" },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"betas\": [0.9, 1]}}", "field \"optim.betas[1]\" must be in [0, 1), got 1" },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"kind\": \"sgd\", \"nesterov\": 1}}", "field \"optim.nesterov\": expected a boolean, got a number" },
        { "{\"space\": {\"d\": 2}, \"optim\": {\"lr\": 1e39}}", "field \"optim.lr\": 1e39 does not fit a float" },
        { "{\"space\": {\"d\": 2}, \"schedule\": {\"kind\": \"linear\"}}", "field \"schedule.kind\": \"linear\" is not a schedule" },
        { "{\"space\": {\"d\": 2}, \"schedule\": {\"total\": 10.5}}", "field \"schedule.total\": expected an integer, got a number" },
        { "{\"space\": {\"d\": 2}, \"schedule\": {\"warmup\": -1}}", "field \"schedule.warmup\" must be an integer >= 0, got -1" },
        { "{\"space\": {\"d\": 2}, \"schedule\": {\"step\": 1}}", "unknown field \"schedule.step\"" },
        { "{\"space\": {\"k\": \"4\", \"d\": 2}}", "field \"space.k\": expected an integer, got a string" },
        { "{\"space\": {\"k\": 1.5, \"d\": 2}}", "field \"space.k\": expected an integer, got a number" },
        { "{\"space\": {\"k\": 0, \"d\": 2}}", "field \"space.k\" must be an integer >= 1, got 0" },
        { "{\"space\": {\"k\": 99999999999999999999, \"d\": 2}}", "field \"space.k\": 99999999999999999999 does not fit int64" },
        { "{\"space\": {\"k\": 2}}", "field \"space.d\" is missing" },
        { "{\"space\": {\"d\": 2, \"cond_classes\": -2}}", "field \"space.cond_classes\" must be an integer >= 0, got -2" },
        { "{\"space\": [2]}", "field \"space\": expected an object, got an array" },
        { "{\"seed\": 1}", "field \"space\" is missing" },
        { "{\"space\": {\"d\": 2}, \"seed\": -1}", "field \"seed\" must be an integer in [0, 2^64), got -1" },
        { "{\"space\": {\"d\": 2}, \"seed\": 1.5}", "field \"seed\" must be an integer in [0, 2^64), got 1.5" },
        { "{\"space\": {\"d\": 2}, \"seed\": 18446744073709551616}", "field \"seed\" must be an integer in [0, 2^64)" },
        { "{\"space\": {\"d\": 2}, \"seed\": \"7\"}", "field \"seed\": expected an integer, got a string" },
        { "{\"space\": {\"d\": 2}, \"ema\": 1}", "field \"ema\" must be in [0, 1), got 1" },
        { "{\"space\": {\"d\": 2}, \"label_smoothing\": -0.1}", "field \"label_smoothing\" must be in [0, 1), got -0.1" },
        { "{\"space\": {\"d\": 2}, \"grad_clip\": -1}", "field \"grad_clip\" must be >= 0, got -1" },
        { "{\"space\": {\"d\": 2}, \"grad_clip\": null}", "field \"grad_clip\": expected a number, got null" },
        { "{\"space\": {\"d\": 2}, \"geometry\": 1}", "field \"geometry\": expected a string" },
        { "{\"space\": {\"d\": 2}, \"geometry\": \"torus\"}", "geometry \"torus\" is unknown" },
        { "{\"space\": {\"d\": 2}, \"network\": 5}", "field \"network\": expected a plugin name or {\"name\"" },
        { "{\"space\": {\"d\": 2}, \"network\": {\"nam\": \"bmlp\"}}", "unknown field \"network.nam\" (known: name, options)" },
        { "{\"space\": {\"d\": 2}, \"network\": {\"name\": 3}}", "field \"network.name\": expected a string, got a number" },
        { "{\"space\": {\"d\": 2}, \"network\": {\"name\": \"nonet\", \"options\": {}}}", "field \"network.name\"" },
        { "{\"space\": {\"d\": 2}, \"network\": {\"options\": {\"hiden\": 8}}}", "unknown option \"hiden\"" },
        { "{\"space\": {\"d\": 2}, \"network\": {\"options\": {\"hidden\": \"wide\"}}}", "\"hidden\"" },
        { "{\"space\": {\"d\": 2}, \"network\": {\"options\": {\"hidden\": {}}}}", "field \"network.options.hidden\": expected a number, string, boolean or array of numbers, got an object" },
        { "{\"space\": {\"d\": 2}, \"source\": {\"name\": \"dirichlet\", \"options\": {\"alpha\": [1, \"x\"]}}}", "field \"source.options.alpha\": entry 1 is a string, expected a number" },
        { "{\"space\": {\"d\": 2}, \"network\": {\"options\": []}}", "field \"network.options\": expected an object, got an array" },
        { "{\"space\": {\"d\": 2}}}", "byte 19: text after the configuration" },
        { "{\"space\": {\"d\": 2},}", "byte 19: expected a string key" },
        { "{\"space\": {\"d\": 2}, \"space\": {\"d\": 3}}", "duplicate key \"space\"" },
        { "[1, 2]", "the configuration must be a JSON object, got an array" },
        { " \n", "the configuration is empty" },
        { "{\"space\": ", "byte 10: expected a value" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ff_flow_t *f = (ff_flow_t *)&cases;      /* must come back NULL */
        ff_status s = ff_flow_new_json(&f, cases[i].json);
        FF_EXPECT(s != FF_OK && f == NULL, "case %zu accepted: %s", i, cases[i].json);
        FF_EXPECT(strstr(ff_last_error(), "ff_flow_new_json") && strstr(ff_last_error(), cases[i].msg),
                  "case %zu: %s\n  message: %s\n  lacks:   %s", i, cases[i].json, ff_last_error(), cases[i].msg);
    }
    ff_flow_t *f = NULL;
    FF_EXPECT_ERROR(ff_flow_new_json(&f, NULL), FF_EINVAL, "json is NULL");
    FF_EXPECT_ERROR(ff_flow_new_json(NULL, "{}"), FF_EINVAL, "out is NULL");
    FF_EXPECT(ff_flow_config_json_of(NULL) == NULL);
}

FF_MAIN()
