-- run.lua — the Lua test runner: fisherflow run tests/lua/run.lua test_api.lua [name ...] [key=value]
-- Each test file registers cases with T.test(name, fn); words given on the command line select
-- the cases whose name contains one of them (all if none); key=value pairs land in T.params. Ends with "N passed, M failed".
local T = { cases = {}, params = {} }
package.loaded["ff_test"] = T

function T.test(name, fn) T.cases[#T.cases + 1] = { name = name, fn = fn, file = T.current } end

-- Assertions raise at the test's line (level 2), so a failure names the line that checked.
function T.ok(cond, msg, ...)
  if not cond then error(msg and msg:format(...) or "assertion failed", 2) end
end
function T.eq(a, b, what)
  if a ~= b then error(("%s: expected %s, got %s"):format(what or "eq", tostring(b), tostring(a)), 2) end
end
function T.near(a, b, tol, what)
  if type(a) ~= "number" or not (math.abs(a - b) <= tol) then
    error(("%s: expected %.9g +- %g, got %s"):format(what or "near", b, tol, tostring(a)), 2)
  end
end
-- Calls fn, expects it to raise; returns the message. pattern (plain text) must occur in it.
function T.raises(fn, text)
  local ok, err = pcall(fn)
  if ok then error(("expected an error containing %q, got none"):format(text or ""), 2) end
  local s = type(err) == "string" and err or tostring(err)
  if text and not s:find(text, 1, true) then
    error(("expected an error containing %q, got %q"):format(text, s), 2)
  end
  return err
end
-- A path for a scratch file: inside the directory given as tmp=DIR (ctest gives each suite its own),
-- created on first use.
function T.tmp(name)
  local dir = T.params.tmp or ("/tmp/fisherflow_" .. (T.current or "test"):gsub("%.lua$", ""))
  os.execute("mkdir -p '" .. dir .. "'")
  return dir .. "/" .. name
end
-- A fresh, empty scratch directory (removed and recreated): T.tmp(name) as a directory.
function T.tmpdir(name)
  local dir = T.tmp(name)
  os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "'")
  return dir
end
-- The path of the `fisherflow` runner running the tests (to run scripts in a child process).
local ffi = require "ffi"
ffi.cdef [[ long readlink(const char *path, char *buf, size_t size); ]]
function T.runner()
  local buf = ffi.new("char[4096]")
  return ffi.string(buf, ffi.C.readlink("/proc/self/exe", buf, 4095))
end
-- The line number of the caller (to check where errors point).
function T.line() return debug.getinfo(2, "l").currentline end

local dir = (package.loaded["fisherflow.script"] and package.loaded["fisherflow.script"].path or "run.lua"):match("^(.*)/") or "."
local files, only = {}, {}
for _, a in ipairs({ ... }) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if k then T.params[k] = v
  elseif a:match("%.lua$") then files[#files + 1] = a
  else only[a] = true end
end

for _, f in ipairs(files) do
  T.current = f
  local path = f:find("/") and f or (dir .. "/" .. f)
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  chunk()
end

local passed, failed = 0, 0
for _, c in ipairs(T.cases) do
  local selected = next(only) == nil
  for word in pairs(only) do
    if c.name:find(word, 1, true) then selected = true end
  end
  if selected then
    T.current = c.file
    local ok, err = xpcall(c.fn, function(e)
      return (type(e) == "string" and e or tostring(e)) .. "\n" .. debug.traceback("", 2)
    end)
    if ok then
      passed = passed + 1
      io.write(("ok    %s\n"):format(c.name))
    else
      failed = failed + 1
      io.write(("FAIL  %s: %s\n"):format(c.name, err))
    end
    io.flush()
  end
end
io.write(("%d passed, %d failed\n"):format(passed, failed))
if failed > 0 or passed == 0 then error({ fisherflow_exit = 1 }, 0) end
