-- checkpoint.lua — flow:save(path) / flow:load(path) through checkpoint.h (a safetensors file with
-- parameters, optimiser state, EMA, the training stream and the step count, written atomically),
-- plus ff.checkpoint.meta(path) and ff.checkpoint.flow(path) that rebuilds a flow from the saved
-- configuration and loads it. For loops that resume: flow:save(path, run) stores a small table of
-- the loop's own state (JSON-able: numbers, strings, tables) next to the configuration, and
-- ff.checkpoint.resume / open_log / rng_state / set_rng_state help a script continue bit for bit.
local core = require "fisherflow.core"
local json = require "fisherflow.json"
local util = require "fisherflow.util"
local log  = require "fisherflow.log"
local bit  = require "bit"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}

local lr_kinds = { [tonumber(C.FF_LR_CONSTANT)] = "constant", [tonumber(C.FF_LR_COSINE)] = "cosine",
                   [tonumber(C.FF_LR_WARMUP_LINEAR)] = "warmup_linear", [tonumber(C.FF_LR_WARMUP_COSINE)] = "warmup_cosine" }

-- The flow's settings as plain data (stored in the checkpoint's metadata).
local function config_of(flow)
  local t, cfg = flow.opts, flow.cfg
  local out = {
    space = { k = flow.space.k, d = flow.space.d, cond_classes = flow.space.cond_classes,
              cond_channels = flow.space.cond_channels },
    geometry = flow.geometry, seed = flow.seed,
    grad_clip = cfg.grad_clip, ema = cfg.ema_decay, label_smoothing = cfg.label_smoothing,
    optim = { kind = tonumber(cfg.optim.kind) == tonumber(C.FF_OPTIM_SGD) and "sgd" or "adamw",
              lr = cfg.optim.lr, weight_decay = cfg.optim.weight_decay, momentum = cfg.optim.momentum,
              nesterov = cfg.optim.nesterov ~= 0, betas = { cfg.optim.beta1, cfg.optim.beta2 }, eps = cfg.optim.eps },
    -- the lr schedule (ff.lr.*; constant with base 0 = optim.lr throughout)
    schedule = { kind = lr_kinds[tonumber(cfg.lr.kind)] or tonumber(cfg.lr.kind), base = cfg.lr.base,
                 min = cfg.lr.min, warmup = tonumber(cfg.lr.warmup), total = tonumber(cfg.lr.total) },
  }
  for _, kind in ipairs({ "source", "coupler", "network", "decoder" }) do
    local v = t[kind]
    if type(v) == "string" then out[kind] = { name = v }
    elseif type(v) == "table" and v.lua then out[kind] = { lua = v.name }
    elseif type(v) == "table" then out[kind] = { name = v.name, options = v.options } end
  end
  return out
end
M.config_of = config_of

-- The first setting where two configurations (config_of tables) differ, as "a.b: x vs y", or nil.
-- A saved configuration without a "schedule" (written before schedules were recorded) is compared
-- without it: what schedule that run used is unknown.
local function config_diff(a, b, prefix)
  local keys = {}
  for k in pairs(type(a) == "table" and a or {}) do keys[k] = true end
  for k in pairs(type(b) == "table" and b or {}) do keys[k] = true end
  local names = {}
  for k in pairs(keys) do
    if prefix or (k ~= "run" and (k ~= "schedule" or (type(a) == "table" and a.schedule ~= nil))) then
      names[#names + 1] = k
    end
  end
  table.sort(names, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(names) do
    local x, y = a and a[k], b and b[k]
    local path = prefix and (prefix .. "." .. tostring(k)) or tostring(k)
    if type(x) == "table" and type(y) == "table" and not (#x > 0 or #y > 0) then
      local d = config_diff(x, y, path)
      if d then return d end
    elseif json.encode(x == nil and json.null or x) ~= json.encode(y == nil and json.null or y) then
      return ("%s: %s vs %s"):format(path, json.encode(x == nil and json.null or x), json.encode(y == nil and json.null or y))
    end
  end
  return nil
end

-- A checkpoint's metadata, read once: config (the decoded settings table, or nil when there is none
-- or it is not JSON), its JSON text, the library version that wrote it, and the step.
local function read_config(path)
  local cj, ver, step = ffi.new("char *[1]"), ffi.new("char *[1]"), ffi.new("int64_t[1]")
  check(C.ff_checkpoint_read_meta(path, nil, ver, step))
  -- these settings (and the run table) are stored as the checkpoint's "run" entry; its "config" is
  -- the core's own (checkpoint.h)
  check(C.ff_checkpoint_read_run(path, cj))
  local text = cj[0] ~= nil and ffi.string(cj[0]) or nil
  local version = ver[0] ~= nil and ffi.string(ver[0]) or nil
  C.ff_checkpoint_free_string(cj[0]); C.ff_checkpoint_free_string(ver[0])
  local ok, config = pcall(json.decode, text or "null")
  if not ok or type(config) ~= "table" then config = nil end
  return config, tonumber(step[0]), text, version
end

-- Loads path into flow (its metadata already read as config): -> run table ({} if none).
local function load_with(flow, path, config)
  check(C.ff_checkpoint_load(flow.ptr, path))
  return config and type(config.run) == "table" and config.run or {}
end

-- The resume check and load, with the caller's name in the messages (who) and, for flow:fit, the
-- run's total step count (total): a checkpoint of other settings or past `total` is refused before
-- anything is loaded, so the flow is untouched. The file's metadata is read once.
local function resume(flow, path, who, total)
  if type(path) ~= "string" or path == "" then
    raise(who .. ": path must be a non-empty string, got " .. tostring(path))
  end
  local f = io.open(path, "rb")
  if not f then return nil end
  f:close()
  local saved, step = read_config(path)
  local d = saved and config_diff(saved, json.decode(json.encode(config_of(flow))))
  if d then
    raise(("%s: %s was saved by a flow with other settings (%s, saved vs this flow); resume with the same settings, or flow:load it to continue deliberately"):format(who, path, d))
  end
  if total and step > total then
    raise(("%s: %s is at step %d, past steps = %d (with resume, steps is the run's total)"):format(who, path, step, total))
  end
  return load_with(flow, path, saved), flow:steps()
end
M.resume_fit = function(flow, path, total) return resume(flow, path, "flow:fit: resume", total) end

-- ff.checkpoint.resume(flow, path) -> run, step if path exists (loaded into flow), nil otherwise.
-- A checkpoint saved by a flow of other settings (seed, optimiser, lr schedule, plugins and their
-- options...) is refused: resuming it would silently continue another run.
function M.resume(flow, path) return resume(flow, path, "ff.checkpoint.resume") end

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
  if step == 0 then return log.open(path) end
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

function M.install(ff)
  if not core.has("ff_checkpoint_save") then return end
  local Flow = require("fisherflow.flow").Flow

  -- flow:save(path [, run]): run is optional plain data (the calling loop's state: its own
  -- random streams, running sums...), stored in the metadata and given back by flow:load.
  function Flow:save(path, run)
    if type(path) ~= "string" then raise("flow:save: path must be a string, got " .. type(path)) end
    if run ~= nil and type(run) ~= "table" then raise("flow:save: run must be a table, got " .. type(run)) end
    util.ensure_parent(path)
    local config = config_of(self)
    config.run = run
    check(C.ff_checkpoint_save(self.ptr, path, json.encode(config)))
    return path
  end

  -- flow:load(path) -> flow, run (the table given to flow:save, or {} if none was)
  function Flow:load(path)
    if type(path) ~= "string" then raise("flow:load: path must be a string, got " .. type(path)) end
    check(C.ff_checkpoint_load(self.ptr, path))
    local config = read_config(path)
    return self, config and type(config.run) == "table" and config.run or {}
  end

  ff.checkpoint = {}
  -- ff.checkpoint.meta(path) -> { config = table|nil, version = "0.1.0", step = n }
  function ff.checkpoint.meta(path)
    local c, step, text, version = read_config(path)
    return { config = c, config_json = text, run = c and c.run or nil, version = version, step = step }
  end

  ff.checkpoint.resume, ff.checkpoint.open_log = M.resume, M.open_log
  ff.checkpoint.rng_state, ff.checkpoint.set_rng_state = M.rng_state, M.set_rng_state

  -- ff.checkpoint.flow(path [, { source = ff.source.lua{...}, ... }]) -> a flow rebuilt from the
  -- saved configuration and loaded. Plugins written in Lua are not saved: pass them again.
  function ff.checkpoint.flow(path, overrides)
    local meta = ff.checkpoint.meta(path)
    local c = meta.config
    if type(c) ~= "table" then raise(("ff.checkpoint.flow: %s has no saved configuration"):format(path)) end
    overrides = overrides or {}
    local t = { space = ff.sphere(c.space), geometry = c.geometry, seed = c.seed, grad_clip = c.grad_clip,
                ema = c.ema, label_smoothing = c.label_smoothing }
    local o = c.optim or {}
    if o.kind == "sgd" then
      t.optim = ff.optim.sgd{ lr = o.lr, weight_decay = o.weight_decay, momentum = o.momentum, nesterov = o.nesterov }
    else
      t.optim = ff.optim.adamw{ lr = o.lr, weight_decay = o.weight_decay, betas = o.betas, eps = o.eps }
    end
    local sc = c.schedule
    if type(sc) == "table" and ff.lr[sc.kind] and not (sc.kind == "constant" and sc.base == 0) then
      t.schedule = ff.lr[sc.kind]{ base = sc.base, min = sc.min, warmup = sc.warmup, total = sc.total }
    end
    for _, kind in ipairs({ "source", "coupler", "network", "decoder" }) do
      local p = c[kind]
      if overrides[kind] ~= nil then t[kind] = overrides[kind]
      elseif type(p) == "table" and p.lua then
        raise(("ff.checkpoint.flow: the %s was written in Lua (\"%s\"): pass it as { %s = ... }"):format(kind, p.lua, kind))
      elseif type(p) == "table" and p.name then
        local opts = {}
        for k, v in pairs(p.options or {}) do opts[k] = v end
        t[kind] = ff.plugin(kind, p.name, opts)
      end
    end
    return (ff.flow(t):load(path))
  end
end

return M
