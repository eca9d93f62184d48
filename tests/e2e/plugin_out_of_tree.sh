#!/usr/bin/env bash
# tests/e2e/plugin_out_of_tree.sh SOURCE_DIR BUILD_DIR — the out-of-tree plugin story the way a user
# meets it: `cmake --install BUILD_DIR --prefix` into a temporary directory, then the prefix is moved
# elsewhere (so nothing may depend on where it was installed, nor on the build tree), and nothing is
# patched. plugins/template is built against it with find_package and with pkg-config
# (tests/e2e/lib/template_check.sh), listed and used by the installed runner under `env -i`; a C
# program built against the installed headers loads it through the loader; the dynamic loader's
# trace shows that nothing is read from BUILD_DIR.
set -euo pipefail
src=${1:?usage: plugin_out_of_tree.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: plugin_out_of_tree.sh SOURCE_DIR BUILD_DIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ff_oot.XXXXXX")
tmp=$(realpath "$tmp")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "plugin_out_of_tree: FAIL: $*" >&2; exit 1; }
# shellcheck source=lib/template_check.sh
. "$(dirname "$0")/lib/template_check.sh"

# 1. Install fisherflow into a temporary prefix, then move it: the prefix is chosen after the build.
cmake --install "$build" --prefix "$tmp/staged" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install"; }
mv "$tmp/staged" "$tmp/prefix"
prefix=$tmp/prefix
pc=$(find "$prefix" -name fisherflow.pc | head -n1)
[ -n "$pc" ] || fail "no fisherflow.pc under $prefix"
export PKG_CONFIG_PATH=$(dirname "$pc")
pkg-config --exists fisherflow || fail "pkg-config cannot find fisherflow in $PKG_CONFIG_PATH"
cflags=$(pkg-config --cflags fisherflow)
libdir=$(pkg-config --variable=libdir fisherflow)
[ -f "$libdir/libfisherflow.so" ] || fail "libfisherflow.so not found in the .pc's libdir $libdir"
[ -f "$(pkg-config --variable=includedir fisherflow)/fisherflow/plugin.h" ] || fail "plugin.h not in the .pc's includedir"
unset PKG_CONFIG_PATH

# A sanitizer build installs a sanitized library: everything linked against it needs the runtime too.
san=""
if grep -q '^FF_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  san="-fsanitize=address,undefined -fno-omit-frame-pointer"
fi

# 2. The template, both ways, through the installed runner.
template_check "$src" "$prefix" "$tmp" "$san"
so=$TEMPLATE_SO
plugdir=$(dirname "$so")
# Only the entry point is exported.
if command -v nm >/dev/null; then
  exported=$(nm -D --defined-only "$so" | awk '$2 == "T" { print $3 }' | grep -v '^_' || true)
  [ "$exported" = "ff_plugin_entry" ] || fail "source_my.so exports: $exported"
fi

# 3. Nothing of the build tree is opened: libraries (dynamic loader trace), plugins, Lua files.
env -i PATH=/usr/bin:/bin LD_DEBUG=libs,files "$prefix/bin/fisherflow" plugins >"$tmp/ld.txt" 2>&1 || { cat "$tmp/ld.txt"; fail "fisherflow plugins"; }
inits=$(grep -c "calling init: .*/libfisherflow\.so" "$tmp/ld.txt" || true)
[ "$inits" = 1 ] || { grep "calling init" "$tmp/ld.txt"; fail "libfisherflow initialised $inits times (expected one copy)"; }
grep -Eq "calling init: $prefix/(bin/\.\./)?lib/libfisherflow\.so" "$tmp/ld.txt" || { grep "calling init" "$tmp/ld.txt"; fail "libfisherflow not loaded from $prefix"; }
grep -q "calling init: $prefix/lib/fisherflow/plugins/coupler_exact_ot\.so" "$tmp/ld.txt" || fail "shipped plugins not loaded from $prefix"
if grep -F "$(realpath "$build")" "$tmp/ld.txt"; then fail "the installed runner touched the build tree"; fi
grep -q "^search path: $prefix/lib/fisherflow/plugins$" "$tmp/ld.txt" || { grep '^search path' "$tmp/ld.txt"; fail "search path"; }

# 4. Load it through the loader from a C program built against the installed tree.
cat >"$tmp/load_my.c" <<'C'
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <fisherflow/plugin.h>

static int failures;
#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "load_my: " __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

int main(void) {
    ff_plugin_inst *inst = NULL;
    ff_space sp = { .k = 2, .d = 3 };
    ff_options *o = NULL;
    ff_options_new(&o);
    ff_options_set_number(o, "tilt", 3.0);
    ff_status s = ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "my", o, &sp, NULL, NULL);
    CHECK(s == FF_OK, "ff_plugin_new: %s", ff_last_error());
    if (s != FF_OK) return 1;
    CHECK(!strcmp(inst->desc->name, "my") && inst->desc->abi_major == FF_PLUGIN_ABI_MAJOR, "descriptor");
    const ff_source_vtable *v = inst->desc->vtable;
    CHECK(v->log_prob == NULL, "the template has no density");
    ff_tensor_t *x = NULL;
    ff_tensor_new3(&x, 500, 2, 4);
    ff_rng_t rng;
    ff_rng_seed(&rng, 1);
    CHECK(v->sample(inst->state, &rng, x) == FF_OK, "sample: %s", ff_last_error());
    double mean0 = 0, mean1 = 0;
    for (int r = 0; r < 1000; r++) {
        double n2 = 0;
        for (int c = 0; c < 4; c++) { float e = x->data[r * 4 + c]; CHECK(e >= 0, "negative coordinate"); n2 += (double)e * e; }
        CHECK(fabs(n2 - 1) < 1e-5, "row %d off the sphere (%g)", r, n2);
        mean0 += x->data[r * 4] / 1000.0;
        mean1 += x->data[r * 4 + 1] / 1000.0;
    }
    CHECK(mean0 > mean1 + 0.3, "tilt 3 favours symbol 0: %g vs %g", mean0, mean1);
    ff_tensor_free(x);
    ff_plugin_free(inst);
    /* its option spec is enforced by the loader */
    ff_options_set_string(o, "tilt", "steep");
    s = ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "my", o, &sp, NULL, NULL);
    CHECK(s == FF_EINVAL && strstr(ff_last_error(), "source \"my\": option \"tilt\" expects number, got string"),
          "wrong type: %s", ff_last_error());
    ff_options_free(o);
    ff_options_new(&o);
    ff_options_set_number(o, "slope", 1);
    s = ff_plugin_new(&inst, FF_PLUGIN_SOURCE, "my", o, &sp, NULL, NULL);
    CHECK(s == FF_EINVAL && strstr(ff_last_error(), "unknown option \"slope\" (known: tilt)"), "unknown: %s", ff_last_error());
    ff_options_free(o);
    printf("load_my: %s (%s)\n", failures ? "FAIL" : "ok", ff_plugin_search_path());
    return failures != 0;
}
C
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra $san $cflags "$tmp/load_my.c" -o "$tmp/load_my" -L"$libdir" -lfisherflow -lm \
   -Wl,-rpath,"$libdir" || fail "compiling the loader program against $prefix"
env -i PATH=/usr/bin:/bin FISHERFLOW_PLUGIN_PATH="$plugdir" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" "$tmp/load_my" \
  || fail "loading source_my.so"
echo "plugin_out_of_tree: ok"
