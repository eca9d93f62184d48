# tests/e2e/lib/template_check.sh — sourced by plugin_out_of_tree.sh and lua_install.sh (not a test
# itself). template_check SRC PREFIX TMP [SANFLAGS] builds plugins/template out of tree against the
# fisherflow installed in PREFIX the two documented ways, and has PREFIX/bin/fisherflow, under
# `env -i`, list the plugin and run a script that samples from it:
#   1. find_package(fisherflow) (CMAKE_PREFIX_PATH=PREFIX), installed into TMP/user, found through
#      FISHERFLOW_PLUGIN_PATH;
#   2. pkg-config (PKG_CONFIG_PATH=PREFIX/lib*/pkgconfig, the .pc as installed), installed into
#      PREFIX itself, found with no variable at all.
# Sets TEMPLATE_SO to the plugin built by (1). Needs fail() from the caller.

template_build() {   # template_build SRC PREFIX BUILD_DIR INSTALL_PREFIX SANFLAGS -- extra cmake args
  local src=$1 prefix=$2 bdir=$3 inst=$4 san=$5
  shift 6
  cmake -S "$src/plugins/template" -B "$bdir" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS="$san" -DCMAKE_MODULE_LINKER_FLAGS="$san" "$@" >"$bdir.cfg.log" 2>&1 \
    || { cat "$bdir.cfg.log"; fail "configuring plugins/template against $prefix ($*)"; }
  cmake --build "$bdir" >"$bdir.build.log" 2>&1 || { cat "$bdir.build.log"; fail "building plugins/template ($*)"; }
  if grep -q "warning:" "$bdir.build.log"; then cat "$bdir.build.log"; fail "the template builds with warnings ($*)"; fi
  cmake --install "$bdir" --prefix "$inst" >/dev/null || fail "installing plugins/template into $inst"
}

template_run() {     # template_run PREFIX WORKDIR PLUGIN_DIR [VAR=value ...]: runner lists and uses "my"
  local prefix=$1 work=$2 plugdir=$3
  shift 3
  mkdir -p "$work"
  env -i PATH=/usr/bin:/bin "$@" "$prefix/bin/fisherflow" plugins >"$work/plugins.txt" 2>&1 \
    || { cat "$work/plugins.txt"; fail "fisherflow plugins"; }
  grep -q "^source   my  .*template: sphere points" "$work/plugins.txt" || { cat "$work/plugins.txt"; fail "source my not listed"; }
  grep -q " 0 refused" "$work/plugins.txt" || { cat "$work/plugins.txt"; fail "refused plugins"; }
  cat >"$work/use_my.lua" <<'LUA'
local ff = require "fisherflow"
local arg = ff.args { dir = { "", "where source_my.so must come from" } }
local path
for _, d in ipairs(ff.plugin.list()) do if d.kind == "source" and d.name == "my" then path = d.path end end
assert(path == arg.dir .. "/source_my.so", "source my found at " .. tostring(path))
-- the loader checks the template's option spec
local ok, err = pcall(ff.plugin, "source", "my", { tilt = "steep" })
assert(not ok and tostring(err):find('option "tilt" expects number', 1, true), tostring(err))
-- with every network parameter zero the field is zero, so samples are the source's draws squared
local flow = ff.flow { k = 1, d = 3, seed = 1, source = ff.plugin("source", "my", { tilt = 3 }),
                       network = ff.plugin("network", "bmlp", { hidden = 8, depth = 2, emb = 4 }) }
for _, p in ipairs(flow:params()) do flow:param(p.name):fill(0) end
local p = flow:sample(2000, { steps = 4 })
local m0, m1 = 0, 0
for i = 1, 2000 do m0, m1 = m0 + p:get(i, 1, 1) / 2000, m1 + p:get(i, 1, 2) / 2000 end
-- uniform_sphere would give 1/4 each; tilt 3 moves most of the mass to symbol 0
assert(m0 > 0.6 and m1 < 0.15, ("mean p: symbol 0 %.3f, symbol 1 %.3f"):format(m0, m1))
print(("use_my ok %.3f %.3f"):format(m0, m1))
LUA
  (cd "$work" && env -i PATH=/usr/bin:/bin "$@" "$prefix/bin/fisherflow" run use_my.lua --dir "$plugdir") \
    >"$work/use_my.txt" 2>&1 || { cat "$work/use_my.txt"; fail "a script using source my"; }
  grep -q "^use_my ok" "$work/use_my.txt" || { cat "$work/use_my.txt"; fail "use_my.lua output"; }
}

template_check() {
  local src=$1 prefix=$2 tmp=$3 san=${4:-}
  template_build "$src" "$prefix" "$tmp/tpl_cmake" "$tmp/user" "$san" -- -DCMAKE_PREFIX_PATH="$prefix"
  TEMPLATE_SO=$(find "$tmp/user" -name source_my.so | head -n1)
  [ -n "$TEMPLATE_SO" ] || fail "source_my.so was not installed under $tmp/user"
  template_run "$prefix" "$tmp/run_cmake" "$(dirname "$TEMPLATE_SO")" FISHERFLOW_PLUGIN_PATH="$(dirname "$TEMPLATE_SO")"

  local pc
  pc=$(find "$prefix" -name fisherflow.pc | head -n1)
  [ -n "$pc" ] || fail "no fisherflow.pc under $prefix"
  PKG_CONFIG_PATH=$(dirname "$pc") template_build "$src" "$prefix" "$tmp/tpl_pc" "$prefix" "$san" -- -DFF_USE_PKG_CONFIG=ON
  local plugdir
  plugdir=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=plugindir fisherflow)
  [ -f "$plugdir/source_my.so" ] || fail "pkg-config's plugindir ($plugdir) does not hold the installed source_my.so"
  template_run "$prefix" "$tmp/run_pc" "$(realpath "$plugdir")"
  rm -f "$plugdir/source_my.so"    # leave the prefix as installed
}
