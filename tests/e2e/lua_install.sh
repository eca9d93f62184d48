#!/usr/bin/env bash
# lua_install.sh SRC BUILD — an install works in any prefix chosen at install time, with no
# environment variables: configures a fresh build with the DEFAULT prefix, builds what is installed,
# `cmake --install --prefix` into a temporary directory, DELETES the build tree, then runs a tiny
# script (tensors, plugins, a flow step, JSON results) with `env -i` from an unrelated directory,
# plus `fisherflow plugins` and `--version`; then builds plugins/template out of tree against the
# install (find_package and pkg-config, tests/e2e/lib/template_check.sh) and uses it from the runner.
set -euo pipefail
src=$1
tmp=$(mktemp -d)
tmp=$(realpath "$tmp")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "lua_install: FAIL: $*" >&2; exit 1; }
# shellcheck source=lib/template_check.sh
. "$(dirname "$0")/lib/template_check.sh"

cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DFF_BENCH=OFF >/dev/null
grep -q '^CMAKE_INSTALL_PREFIX:PATH=/usr/local$' "$tmp/build/CMakeCache.txt" || fail "the default prefix is not /usr/local"
plugins=$(cmake --build "$tmp/build" --target help | sed -n 's/^\.\.\. \(\(source\|coupler\|network\|decoder\)_[a-z0-9_]*\).*/\1/p')
cmake --build "$tmp/build" -j2 --target fisherflow fisherflow_viz fisherflow_runner fisherflow_cdef $plugins >/dev/null
cmake --install "$tmp/build" --prefix "$prefix" >/dev/null
rm -rf "$tmp/build"

mkdir -p "$tmp/work"
cat > "$tmp/work/tiny.lua" <<'LUA'
local ff = require "fisherflow"
local arg = ff.args { n = { 3, "rows" }, out = { "tiny.json", "results file" } }
local cfg = package.loaded["fisherflow.config"]
local t = ff.tensor { { 1, 2 }, { 3, 4 } } * 2
assert(t:get(2, 2) == 8, "tensor arithmetic")
local flow = ff.flow { k = 1, d = 2, seed = 1, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
local data = ff.random.dirichlet(ff.rng(1), { 64, 1, 3 }, 1)
local s = flow:step(data:narrow(1, 1, arg.n))
ff.results(arg.out, { loss = s.loss, lib = cfg.lib, lua_dir = cfg.lua_dir, build_tree = cfg.build_tree })
print("tiny ok", s.step)
LUA

cd "$tmp/work"
env -i PATH=/usr/bin:/bin "$prefix/bin/fisherflow" run tiny.lua --n 5 > out.txt
grep -q "^tiny ok	1$" out.txt || { echo "FAIL: unexpected output:"; cat out.txt; exit 1; }
grep -q "\"lua_dir\": \"$prefix/share/fisherflow/lua\"" tiny.json || { echo "FAIL: Lua files not from the prefix:"; cat tiny.json; exit 1; }
grep -q "\"lib\": \"$prefix/lib" tiny.json || { echo "FAIL: library not from the prefix:"; cat tiny.json; exit 1; }
grep -q "\"build_tree\": false" tiny.json || { echo "FAIL: runner thinks it is in a build tree"; exit 1; }

env -i PATH=/usr/bin:/bin "$prefix/bin/fisherflow" plugins > plugins.txt
grep -q "^network  bmlp" plugins.txt || { echo "FAIL: plugins not listed:"; cat plugins.txt; exit 1; }
grep -q " 0 refused" plugins.txt || { echo "FAIL: refused plugins:"; cat plugins.txt; exit 1; }
env -i PATH=/usr/bin:/bin "$prefix/bin/fisherflow" --version | grep -q "^fisherflow [0-9]" || { echo "FAIL: --version"; exit 1; }

# errors still carry the script's line from the installed tree
printf 'local ff = require "fisherflow"\nlocal t = ff.zeros(2)\nlocal v = t:view(3)\n' > bad.lua
if env -i PATH=/usr/bin:/bin "$prefix/bin/fisherflow" run bad.lua 2> err.txt; then echo "FAIL: bad.lua succeeded"; exit 1; fi
# the first line is the runner's start line (version, threads, OpenBLAS), the error follows
head -1 err.txt | grep -q "^fisherflow [0-9].*: [0-9]* threads\?, OpenBLAS " || { echo "FAIL: start line:"; cat err.txt; exit 1; }
sed -n 2p err.txt | grep -q "^fisherflow: bad.lua:3: ff_tensor_view" || { echo "FAIL: error line:"; cat err.txt; exit 1; }

template_check "$src" "$prefix" "$tmp"
echo "lua_install: ok (prefix $prefix)"
