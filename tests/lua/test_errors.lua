-- test_errors.lua — errors arrive where the user can act on them: a C failure raises the C
-- message at the script's line, argument mistakes too, a Lua error inside a Lua plugin propagates
-- with its own line and a traceback through the flow, and the runner prints
-- "fisherflow: script.lua:N: message" with exit status 1.
local T  = require "ff_test"
local ff = require "fisherflow"
local ffi = require "ffi"

local function at_line(err, line)
  return type(err) == "string" and err:find("test_errors.lua:" .. line .. ": ", 1, true) ~= nil
end

T.test("a C error carries the C message and the script's line", function()
  local a = ff.zeros(2, 3)
  local line = T.line() + 1
  local err = T.raises(function() a:view(5) end, "ff_tensor_view: [2,3] has 6 elements, the view asks for 5")
  T.ok(at_line(err, line), "not at line %d: %s", line, err)
  line = T.line() + 1
  err = T.raises(function() a:copy_from(ff.zeros(3)) end, "ff_tensor_copy: dst [2,3] != src [3]")
  T.ok(at_line(err, line), "not at line %d: %s", line, err)
end)

T.test("the line is the user's even through several library layers", function()
  local function user_helper(t)
    local r = t:narrow(1, 2, 9)         -- the error must point here (not a tail call)
    return r
  end
  local line = T.line() - 3
  local err = T.raises(function() user_helper(ff.zeros(4)) end, "ff_tensor_slice: [1, 9) outside axis 0 of [4]")
  T.ok(at_line(err, line), "not at line %d: %s", line, err)
  -- through a flow: ff.flow -> build -> ff_flow_new
  line = T.line() + 1
  err = T.raises(function() ff.flow{ k = 1, d = 2, geometry = "hyperbolic" } end, "hyperbolic")
  T.ok(at_line(err, line), "not at line %d: %s", line, err)
  -- through a metamethod
  line = T.line() + 1
  err = T.raises(function() return ff.zeros(2) + ff.zeros(3) end, "do not broadcast")
  T.ok(at_line(err, line), "not at line %d: %s", line, err)
end)

T.test("a C error inside flow:step names the function and the shapes", function()
  local f = ff.flow{ k = 1, d = 2, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  local line = T.line() + 1
  local err = T.raises(function() f:step(ff.zeros(4, 2, 3)) end, "ff_flow_step")
  T.ok(at_line(err, line), "not at line %d: %s", line, err)
  T.ok(err:find("4,2,3", 1, true), "message names the shape: %s", err)
end)

T.test("wrong argument types are named at the script's line, not as FFI conversion errors", function()
  local t = ff.zeros(2)
  local line = T.line() + 1
  local err = T.raises(function() t:fill("x") end, "tensor:fill: value must be a number, got string")
  T.ok(at_line(err, line), "not at line %d: %s", line, err)
  T.raises(function() t:copy_from(42) end, "tensor:copy_from: expects a tensor or a table, got number")
  T.raises(function() t:view("2") end, "tensor:view: size 1 must be a number, got string")
  T.raises(function() ff.zeros(4):narrow(1, "a", 2) end, "tensor:narrow: first and last must be numbers")
  local f = ff.flow{ k = 1, d = 2, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  T.raises(function() f:step({ 1, 2, 3 }) end, "flow:step: x1 must be a tensor, got table")
  T.raises(function() f:sample(0) end, "flow:sample: n must be a positive integer, got 0")
end)

T.test("plugin option mistakes raise at the ff.plugin line with the loader's message", function()
  local line = T.line() + 1
  local err = T.raises(function() ff.plugin("network", "bmlp", { depht = 2 }) end, 'network "bmlp": unknown option "depht" (known:')
  T.ok(at_line(err, line), "not at line %d: %s", line, err)
end)

T.test("an error in a Lua source propagates with its line and a traceback", function()
  local bad_line
  local src = ff.source.lua{
    name = "broken",
    sample = function(self, rng, out)
      bad_line = T.line() + 1
      error("source draws failed on purpose")
    end,
  }
  local f = ff.flow{ k = 1, d = 2, source = src, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  local data = ff.random.dirichlet(ff.rng(1), { 64, 1, 3 }, 1)
  -- the core calls the source: its error becomes the C status and message (wrapped with the call and
  -- the plugin's name), raised at the script's line, with the plugin's own traceback appended
  local fit_line = T.line() + 1
  local ok, err = pcall(function() f:fit(data, { steps = 3, batch = 16, progress = false }) end)
  T.ok(not ok, "fit should fail")
  T.eq(err:match("^[^\n]-test_errors%.lua:(%d+): ff_flow_grad"), tostring(fit_line), "raised at the fit line")
  T.ok(err:find('ff_flow_grad: source "broken": ', 1, true) and at_line(err, bad_line),
       "the plugin's message with its line %d: %s", bad_line, err)
  T.ok(err:find("source draws failed on purpose", 1, true), "message: %s", err)
  T.ok(err:find("\nLua plugin stack traceback:", 1, true) and err:find("in function 'sample'", 1, true),
       "the plugin's traceback: %s", err)
  -- a runtime error (not error()) too
  local src2 = ff.source.lua{ name = "typo", sample = function(self, rng, out) return out.nothing.here end }
  local f2 = ff.flow{ k = 1, d = 2, source = src2, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  T.raises(function() f2:step(data:narrow(1, 1, 8)) end, "tensor has no method 'nothing'")
  -- the flow is still usable after a Lua error between steps
  local f3 = ff.flow{ k = 1, d = 2, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  T.raises(function() f3:step(ff.zeros(4, 1, 5)) end, "ff_flow_step")
  T.eq(f3:step(data:narrow(1, 1, 8)).step, 1, "step after a failed step")
end)

local runner_path = T.runner

local function run(script_text, args)
  local dir = T.params.tmp or "/tmp/fisherflow_test_errors"
  os.execute("mkdir -p '" .. dir .. "'")
  local path = dir .. "/script.lua"
  local f = assert(io.open(path, "w")); f:write(script_text); f:close()
  -- run from the script's directory: Lua shortens chunk names over 60 characters ("...")
  local p = io.popen(("cd '%s' && '%s' run script.lua %s 2>&1; echo \"rc=$?\""):format(dir, runner_path(), args or ""))
  local out = p:read("*a"); p:close()
  out = out:gsub("^fisherflow [^\n]*: %d+ threads?, OpenBLAS [^\n]*\n", "", 1)   -- the runner's start line
  return out, tonumber(out:match("rc=(%d+)%s*$")), "script.lua"
end

T.test("the runner prints fisherflow: script:line: message and exits 1", function()
  local out, rc, path = run('local ff = require "fisherflow"\nlocal t = ff.zeros(2, 3)\nlocal v = t:view(7)\n')
  T.eq(rc, 1, "exit status")
  local first = out:match("^[^\n]*")
  T.eq(first, ("fisherflow: %s:3: ff_tensor_view: [2,3] has 6 elements, the view asks for 7"):format(path), "first line")
  T.ok(out:find("stack traceback", 1, true), "traceback follows: %s", out)
  out, rc = run('error("plain lua error")\n')
  T.eq(rc, 1, "exit status of a Lua error")
  T.ok(out:find("script.lua:1: plain lua error", 1, true), "message: %s", out)
  out, rc = run('local x = = 1\n')
  T.eq(rc, 1, "syntax error")
  T.ok(out:find("^fisherflow: .*script.lua:1:"), "syntax message: %s", out)
end)

T.test("the runner passes arguments, --help exits 0, bad arguments exit 1", function()
  local script = 'local ff = require "fisherflow"\n' ..
                 'local a = ff.args{ steps = { 10, "training steps" }, name = { "x", "a name" } }\n' ..
                 'print(("steps=%d name=%s"):format(a.steps, a.name))\n'
  local out, rc = run(script, "--steps 42 --name hello")
  T.eq(rc, 0, "exit status"); T.ok(out:find("steps=42 name=hello", 1, true), "output: %s", out)
  out, rc = run(script, "--help")
  T.eq(rc, 0, "--help exit status")
  T.ok(out:find("--steps <integer>", 1, true) and not out:find("steps=", 1, true), "help, then nothing: %s", out)
  out, rc = run(script, "--steps ten")
  T.eq(rc, 1, "bad value exit status")
  T.ok(out:find("script.lua:2: ff.args: --steps expects an integer, got 'ten'", 1, true), "message: %s", out)
end)
