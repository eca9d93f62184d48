-- test_runner.lua — the `fisherflow` executable: --version, --help, unknown commands, `plugins`
-- (kind, name, ABI, version, summary, options), package.path and the library it hands to Lua.
local T  = require "ff_test"
local ff = require "fisherflow"
local runner = T.runner
local function sh(args, env)
  local p = io.popen(("%s'%s' %s 2>&1; echo \"rc=$?\""):format(env or "", runner(), args))
  local out = p:read("*a"); p:close()
  return out:gsub("rc=%d+%s*$", ""), tonumber(out:match("rc=(%d+)%s*$"))
end

T.test("--version names the library, LuaJIT, the plugin ABI and MPI when built with it", function()
  local out, rc = sh("--version")
  T.eq(rc, 0, "exit status")
  local mpi = ff.C.ff_dist_built() ~= 0 and ", MPI" or ""
  T.ok(out:find(("^fisherflow %s %%(LuaJIT [%%d.]+.*plugin ABI %d%%.%d%s%%)"):format(ff.version:gsub("%.", "%%."),
       ff.constants.FF_PLUGIN_ABI_MAJOR, ff.constants.FF_PLUGIN_ABI_MINOR, mpi)), "output: %s", out)
end)

T.test("--help, no arguments and unknown commands", function()
  local out, rc = sh("--help")
  T.eq(rc, 0, "--help status"); T.ok(out:find("usage: fisherflow run SCRIPT.lua", 1, true), "usage: %s", out)
  out, rc = sh("")
  T.eq(rc, 1, "no command status"); T.ok(out:find("usage:", 1, true), "usage on stderr: %s", out)
  out, rc = sh("trian x.lua")
  T.eq(rc, 1, "unknown command"); T.ok(out:find("fisherflow: unknown command 'trian'", 1, true), "message: %s", out)
  out, rc = sh("run")
  T.eq(rc, 1, "run without a script"); T.ok(out:find("run needs a script", 1, true), "message: %s", out)
  out, rc = sh("run /nonexistent/x.lua")
  T.eq(rc, 1, "missing script"); T.ok(out:find("^fisherflow: cannot open /nonexistent/x.lua"), "message: %s", out)
end)

T.test("plugins lists every shipped plugin with its options", function()
  local out, rc = sh("plugins")
  T.eq(rc, 0, "exit status")
  T.ok(out:find("search path: ", 1, true), "search path line: %s", out)
  for _, p in ipairs(ff.plugins()) do
    T.ok(out:find(("\n%-8s %-16s %-5s"):format(p.kind, p.name, p.abi), 1, true), "%s %s missing:\n%s", p.kind, p.name, out)
  end
  T.ok(out:find("\n           hidden%s+int%s+= %d+%s+%S"), "bmlp's hidden option with type, default and help:\n%s", out)
  T.ok(out:find(("\n%d plugins, 0 refused"):format(#ff.plugins()), 1, true), "count line: %s", out)
end)

T.test("plugins names a refused file once, with the loader's reason", function()
  local dir = os.tmpname(); os.remove(dir); assert(os.execute(("mkdir -p '%s'"):format(dir)) == 0)
  local bad = dir .. "/coupler_broken.so"
  local f = assert(io.open(bad, "wb")); f:write("not an ELF file\n"); f:close()
  local out, rc = sh("plugins", ("FISHERFLOW_PLUGIN_PATH='%s' "):format(dir))
  os.remove(bad); os.remove(dir)
  T.eq(rc, 0, "exit status")
  local line = out:match("\nrefused  ([^\n]*)")
  T.ok(line and line:find(bad, 1, true) == 1, "refused line starts with the path: %s", out)
  T.ok(not line:find(bad, #bad + 1, true), "path printed once: %s", line)
  T.ok(out:find(", 1 refused", 1, true), "count line: %s", out)
end)

T.test("the runner hands Lua the library it is linked with, and its Lua directories", function()
  local cfg = package.loaded["fisherflow.config"]
  T.ok(cfg.lib:match("^/") and cfg.lib:find("libfisherflow", 1, true), "absolute library path: %s", cfg.lib)
  T.eq(cfg.build_tree, true, "running from the build tree")
  T.ok(package.path:find(cfg.lua_dir .. "/?.lua", 1, true) == 1, "Lua dir first on package.path: %s", package.path)
  -- one copy of the library: memory counted by C is visible through the FFI
  local before = tonumber(ff.C.ff_mem_in_use())
  local t = ff.zeros(1024)
  T.eq(tonumber(ff.C.ff_mem_in_use()) - before, 4096, "same library instance")
  t:free()
  T.ok(rawget(_G, "ff") == nil and rawget(_G, "fisherflow") == nil, "no globals created")
end)
