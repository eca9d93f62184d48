-- util.lua — the few libc calls the Lua layer needs (isatty, monotonic clock, mkdir, rename, lgamma) and
-- atomic file writes (temporary file in the same directory, then rename).
local core = require "fisherflow.core"
local ffi = core.ffi

ffi.cdef [[
int isatty(int fd);
int mkdir(const char *path, unsigned int mode);
int getpid(void);
typedef struct ff_lua_timespec { long tv_sec; long tv_nsec; } ff_lua_timespec;
int clock_gettime(int clk, ff_lua_timespec *ts);
char *strerror(int errnum);
double lgamma(double x);
]]
local libc = ffi.C

local M = {}

function M.pid() return tonumber(libc.getpid()) end
-- log Gamma(x) for x > 0 (libm).
function M.lgamma(x) return libc.lgamma(x) end
function M.isatty(fd) return libc.isatty(fd) == 1 end

local ts = ffi.new("ff_lua_timespec")
function M.now()                     -- seconds, monotonic
  libc.clock_gettime(1, ts)          -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- mkdir -p of the directory holding `path` (nothing for a bare file name).
function M.ensure_parent(path)
  local dir = path:match("^(.*)/[^/]*$")
  if not dir or dir == "" then return end
  local acc = dir:sub(1, 1) == "/" and "" or "."
  for part in dir:gmatch("[^/]+") do
    acc = acc .. "/" .. part
    libc.mkdir(acc, tonumber("755", 8))   -- EEXIST is fine; a real failure shows at open()
  end
end

-- Writes `text` to `path` atomically: readers see the old file or the new one.
function M.write_atomic(path, text)
  M.ensure_parent(path)
  if core.has("ff_io_write_atomic") then
    core.check(core.C.ff_io_write_atomic(path, text, #text))
    return
  end
  local tmp = ("%s.tmp.%d"):format(path, libc.getpid())
  local f, err = io.open(tmp, "wb")
  if not f then core.raise("cannot write " .. path .. ": " .. tostring(err)) end
  f:write(text)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then os.remove(tmp); core.raise("cannot write " .. path .. ": " .. tostring(rerr)) end
end

-- Raises "<what>: unknown <noun> 'key' (known: a, b, c)" for the first key of t not in `known`.
function M.check_keys(t, known, what, noun)
  for k in pairs(t) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      core.raise(("%s: unknown %s '%s' (known: %s)"):format(what, noun, tostring(k), table.concat(names, ", ")))
    end
  end
end

-- The options table of a call: nil -> {}, anything but a table refused, unknown keys refused
-- ("<fname>: unknown option 'k' (known: ...)").
function M.options(fname, t, known)
  if t == nil then return {} end
  if type(t) ~= "table" then core.raise(("%s: options must be a table, got %s"):format(fname, type(t))) end
  M.check_keys(t, known, fname, "option")
  return t
end

return M
