-- checkpoint.lua — what flow:save(path) / flow:load(path) do (flow.lua defines them): a thin layer
-- over checkpoint.h (a safetensors file with parameters, optimiser state, EMA, the training stream
-- and the step count, written atomically, with the flow's configuration in the core's schema), plus
-- ff.checkpoint.meta(path) (ff.checkpoint.flow, which rebuilds a flow from the saved configuration
-- and loads it, is flow.lua's M.from_checkpoint). For loops that resume: flow:save(path, run) stores
-- a small table of the loop's own state (JSON-able: numbers, strings, tables) as the checkpoint's
-- "run" entry, and ff.checkpoint.resume / open_log / rng_state / set_rng_state help a script
-- continue bit for bit.
local core = require "fisherflow.core"
local json = require "fisherflow.json"
local util = require "fisherflow.util"
local log  = require "fisherflow.log"
local bit  = require "bit"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}

-- The first setting where two configurations (decoded JSON) differ, as "a.b: x vs y", or nil.
local function config_diff(a, b, prefix)
  local keys, names = {}, {}
  for k in pairs(type(a) == "table" and a or {}) do keys[k] = true end
  for k in pairs(type(b) == "table" and b or {}) do keys[k] = true end
  for k in pairs(keys) do names[#names + 1] = k end
  table.sort(names, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(names) do
    local x, y = a and a[k], b and b[k]
    local path = prefix and (prefix .. "." .. tostring(k)) or tostring(k)
    if type(x) == "table" and type(y) == "table" and not (#x > 0 or #y > 0) then
      local d = config_diff(x, y, path)
      if d then return d end
    else
      local ex, ey = json.encode(x == nil and json.null or x), json.encode(y == nil and json.null or y)
      if ex ~= ey then return ("%s: %s vs %s"):format(path, ex, ey) end
    end
  end
  return nil
end

local function take_string(p)
  if p == nil then return nil end
  local s = ffi.string(p)
  C.ff_checkpoint_free_string(p)
  return s
end

-- A checkpoint's metadata, read once: the configuration's JSON (the core's), the run table ({} if
-- none), the library version that wrote it, and the step.
local function read_meta(path)
  local cj, ver, step, rj = ffi.new("char *[1]"), ffi.new("char *[1]"), ffi.new("int64_t[1]"), ffi.new("char *[1]")
  check(C.ff_checkpoint_read_meta(path, cj, ver, step))
  local config, version = take_string(cj[0]), take_string(ver[0])
  check(C.ff_checkpoint_read_run(path, rj))
  local text = take_string(rj[0])
  local ok, run = pcall(json.decode, text or "null")
  if not ok then raise(("%s: the checkpoint's run entry is not JSON (%s)"):format(path, run)) end
  -- a file written before the run entry held only the run table (the flow's settings beside it)
  if type(run) == "table" and run.space ~= nil and run.geometry ~= nil then run = run.run end
  return { config_json = config, run = type(run) == "table" and run or {}, version = version,
           step = tonumber(step[0]) }
end

-- The resume check and load, with the caller's name in the messages (who) and, for flow:fit, the
-- run's total step count (total): a checkpoint of other settings or past `total` is refused before
-- anything is loaded, so the flow is untouched. The file's metadata is read once.
-- -> the run table and the step, or nil when path does not exist.
local function resume(flow, path, who, total, check_run)
  if type(path) ~= "string" or path == "" then
    raise(who .. ": path must be a non-empty string, got " .. tostring(path))
  end
  local f = io.open(path, "rb")
  if not f then return nil end
  f:close()
  local meta = read_meta(path)
  local d = config_diff(json.decode(meta.config_json), json.decode(flow:config_json()))
  if d then
    raise(("%s: %s was saved by a flow with other settings (%s, saved vs this flow); resume with the same settings, give a run of other settings its own checkpoint path, or flow:load the file to continue from it deliberately"):format(who, path, d))
  end
  if total and meta.step > total then
    raise(("%s: %s is at step %d, past steps = %d (with resume, steps is the run's total)"):format(who, path, meta.step, total))
  end
  if check_run then check_run(meta.run) end
  check(C.ff_checkpoint_load(flow.ptr, path))
  return meta.run, flow:steps()
end
-- flow:fit's: check_run(run) may refuse the saved run table before anything is loaded.
M.resume_fit = function(flow, path, total, check_run) return resume(flow, path, "flow:fit: resume", total, check_run) end

-- ff.checkpoint.resume(flow, path) -> run, step if path exists (loaded into flow), nil otherwise.
-- A checkpoint saved by a flow of other settings (seed, optimiser, lr schedule, plugins and their
-- options...) is refused: resuming it would silently continue another run.
function M.resume(flow, path) return resume(flow, path, "ff.checkpoint.resume") end

-- ff.checkpoint.resume_loop(flow, path, total, stream, script) -> run ({} if none), step (0 if none):
-- ff.checkpoint.resume for a script's own training loop whose data stream `stream` (an ff.rng) is
-- saved in run.draws. Refuses a checkpoint past `total` steps or one without that stream (not
-- written by `script`), and restores the stream.
function M.resume_loop(flow, path, total, stream, script)
  local run, start = M.resume(flow, path)
  run, start = run or {}, start or 0
  if start > total then error(("%s is at step %d, past --steps %d"):format(path, start, total), 0) end
  if start > 0 and not run.draws then
    error(("%s has no %s data-stream state (not written by this script)"):format(path, script), 0)
  end
  if run.draws then M.set_rng_state(stream, run.draws) end
  return run, start
end

-- ff.checkpoint.open_log(path, step) -> an ff.log stream for a run continuing after `step`:
-- step 0 starts a new file; otherwise the records of the existing file with a "step" above `step`
-- (written after the checkpoint, by the run that was killed; they are about to be re-run) are
-- dropped and the stream appends, so the file reads as one uninterrupted run. A last line without
-- its newline that is not whole JSON is a record cut off mid-write (a kill or a full disk): dropped
-- too, so the next record does not run into it.
function M.open_log(path, step)
  if type(path) ~= "string" then raise("ff.checkpoint.open_log: path must be a string, got " .. type(path)) end
  if type(step) ~= "number" or step < 0 then
    raise("ff.checkpoint.open_log: step must be a non-negative number, got " .. tostring(step))
  end
  if step == 0 or not core.writes() then return log.open(path) end
  local f = io.open(path, "rb")
  if f then
    local text = f:read("*a")
    f:close()
    local lines = {}
    for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    local tail = text:match("[^\n]*$")
    if tail:match("%S") and pcall(json.decode, tail) then lines[#lines + 1] = tail end
    local keep = {}
    for _, line in ipairs(lines) do
      local n = tonumber(line:match('"step"%s*:%s*(%d+)'))
      if line:match("%S") and not (n and n > step) then keep[#keep + 1] = line .. "\n" end
    end
    util.write_atomic(path, table.concat(keep))
  end
  return log.open(path, { append = true })
end

-- A random stream's exact state as JSON-able data (for flow:save's run table), and back.
function M.rng_state(r)
  return { s = { bit.tohex(r.s[0], 16), bit.tohex(r.s[1], 16), bit.tohex(r.s[2], 16), bit.tohex(r.s[3], 16) },
           spare_normal = r.spare_normal, has_spare = r.has_spare }
end
function M.set_rng_state(r, st)
  if type(st) ~= "table" or type(st.s) ~= "table" or #st.s ~= 4 then
    raise("ff.checkpoint.set_rng_state: expects the table of ff.checkpoint.rng_state")
  end
  local words, zero = {}, true
  for i = 1, 4 do
    local h = st.s[i]
    if type(h) ~= "string" or not h:match("^%x+$") or #h ~= 16 then
      raise(("ff.checkpoint.set_rng_state: word %d is not 16 hex digits: %s"):format(i, tostring(h)))
    end
    words[i] = bit.bor(bit.lshift(ffi.cast("uint64_t", tonumber(h:sub(1, 8), 16)), 32),
                       ffi.cast("uint64_t", tonumber(h:sub(9), 16)))
    if words[i] ~= 0ULL then zero = false end
  end
  -- the checks of the C checkpoint loader (checkpoint.c): xoshiro256 never leaves the all-zero state
  if zero then raise("ff.checkpoint.set_rng_state: the state words are all zero (not a xoshiro256 state)") end
  local has_spare, spare = st.has_spare or 0, st.spare_normal or 0
  if has_spare ~= 0 and has_spare ~= 1 then
    raise("ff.checkpoint.set_rng_state: has_spare must be 0 or 1, got " .. tostring(has_spare))
  end
  if type(spare) ~= "number" then
    raise("ff.checkpoint.set_rng_state: spare_normal must be a number, got " .. type(spare))
  end
  for i = 1, 4 do r.s[i - 1] = words[i] end
  r.spare_normal, r.has_spare = spare, has_spare
  return r
end

-- flow:save(path [, run]) (flow.lua defines the method): the flow's parameters, optimiser, EMA,
-- stream and step, with its configuration and `run` in the metadata; atomic. Only the process that
-- writes files (core.writes: rank 0 under mpirun) writes; the others check their arguments.
function M.save(flow, path, run)
  if type(path) ~= "string" then raise("flow:save: path must be a string, got " .. type(path)) end
  if run ~= nil and type(run) ~= "table" then raise("flow:save: run must be a table, got " .. type(run)) end
  local text = run and json.encode(run)
  if not core.writes() then return path end
  util.ensure_parent(path)
  check(C.ff_checkpoint_save(flow.ptr, path, text))
  return path
end

-- flow:load(path): -> the run table given to flow:save ({} if none was).
function M.load(flow, path)
  if type(path) ~= "string" then raise("flow:load: path must be a string, got " .. type(path)) end
  local meta = read_meta(path)
  check(C.ff_checkpoint_load(flow.ptr, path))
  return meta.run
end

-- ff.checkpoint.meta(path) -> { config = table (the core's configuration, flow.h), config_json =,
-- run = table ({} if none), version = "0.1.0", step = n }
function M.meta(path)
  if type(path) ~= "string" then raise("ff.checkpoint.meta: path must be a string, got " .. type(path)) end
  local m = read_meta(path)
  m.config = json.decode(m.config_json)
  return m
end

return M
