-- core.lua — loads libfisherflow through the FFI and turns C statuses into Lua errors.
-- The runner (runner/runner.c) says where the library is, in package.loaded["fisherflow.config"];
-- cdef.lua is generated from the public headers at build time (lua/gen_cdef.lua).
local ffi  = require "ffi"
local cdef = require "fisherflow.cdef"

local config = package.loaded["fisherflow.config"]
if type(config) ~= "table" or not config.lib then
  error("fisherflow: no library path; run scripts with the `fisherflow` runner " ..
        "(or set package.loaded[\"fisherflow.config\"] = { lib = \"/abs/path/libfisherflow.so\" })", 2)
end

local C = ffi.load(config.lib)

local M = { ffi = ffi, C = C, config = config, constants = cdef.constants, version = cdef.version }

-- Same major.minor or refuse: a Lua tree from one build against a library from another.
local have = ffi.string(C.ff_version())
local function majmin(v) return v:match("^(%d+)%.(%d+)") end
do
  local a1, a2 = majmin(cdef.version)
  local b1, b2 = majmin(have)
  if a1 ~= b1 or a2 ~= b2 then
    error(("lua/fisherflow %s needs libfisherflow %s.%s, found %s (%s)"):format(
      cdef.version, a1, a2, have, config.lib), 2)
  end
end
M.lib_version = have

-- Errors point at the user's line: the first Lua frame outside lua/fisherflow (and outside C
-- functions such as pcall). This is STYLE B3's "level 2 for argument mistakes, the caller's line for
-- C failures", computed instead of counted, so helpers can call helpers.
local own_prefixes = {}
for _, d in ipairs({ config.lua_dir, config.gen_dir }) do
  if d then own_prefixes[#own_prefixes + 1] = "@" .. d .. "/fisherflow/" end
end
local function ours(source)
  for _, p in ipairs(own_prefixes) do
    if source:sub(1, #p) == p then return true end
  end
  return false
end
function M.user_level()
  local level = 3                                  -- 1 = user_level, 2 = its caller (error raiser)
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return 1 end
    if info.what ~= "C" and not ours(info.source) then return level - 1 end
    level = level + 1
  end
end

-- Raises msg at the user's line.
function M.raise(msg)
  error(msg, M.user_level())
end

-- A Lua plugin's function that failed inside a C call (plugin.lua turns the error into a status
-- and the C message): its traceback waits here for the Lua error that reports the C failure.
local pending
function M.callback_failed(msg, traceback) pending = { msg = msg, traceback = traceback } end

-- The C message of the latest failure, followed by the traceback of the Lua plugin function that
-- caused it, if one did.
function M.last_error()
  local msg, p = ffi.string(C.ff_last_error()), pending
  pending = nil
  if p and msg:find(p.msg, 1, true) then
    msg = msg .. "\nLua plugin " .. p.traceback:gsub("^\n", "")
  end
  return msg
end

-- Turns a C status into a Lua error carrying the C message, at the user's line.
function M.check(status)
  if status ~= 0 then error(M.last_error(), M.user_level()) end
end

-- The same, for functions returning a pointer that is NULL on failure.
function M.check_ptr(p)
  if p == nil then error(M.last_error(), M.user_level()) end
  return p
end

-- libfisherflow_viz, loaded on first use (an experiment without pictures does not need it).
local viz
function M.viz_lib()
  if viz == nil then
    if not config.viz_lib then M.raise("fisherflow: libfisherflow_viz is not available in this build") end
    viz = ffi.load(config.viz_lib)
  end
  return viz
end

-- Borrowed pointers carry no finalizer; this weak-keyed table keeps their owner alive for as long
-- as the borrowed cdata lives (STYLE B4).
local owners = setmetatable({}, { __mode = "k" })
function M.borrow(p, owner)
  if p == nil then return nil end
  owners[p] = owner
  return p
end
function M.owner_of(p) return owners[p] end

-- Whether the library exports a symbol (pieces of the API land at different times).
function M.has(name, lib)
  return (pcall(function() return (lib or C)[name] end))
end

-- Whether this process writes files and draws progress: under `mpirun -np N` only rank 0 does
-- (dist.h); every writer of the Lua layer asks, so a script that knows nothing of MPI writes each
-- file once. The others still check their arguments and compute what the writer computes.
local has_dist = M.has("ff_dist_rank")
function M.writes() return not has_dist or C.ff_dist_rank() == 0 end

return M
