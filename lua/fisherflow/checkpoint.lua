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
local function config_diff(a, b, prefix)
  local keys = {}
  for k in pairs(type(a) == "table" and a or {}) do keys[k] = true end
  for k in pairs(type(b) == "table" and b or {}) do keys[k] = true end
  local names = {}
  for k in pairs(keys) do if k ~= "run" or prefix then names[#names + 1] = k end end
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

-- ff.checkpoint.resume(flow, path) -> run, step if path exists (flow:load'ed), nil otherwise.
-- A checkpoint saved by a flow of other settings (seed, optimiser, plugins and their options...) is
-- refused: resuming it would silently continue another run.
function M.resume(flow, path)
  if type(path) ~= "string" or path == "" then
    raise("ff.checkpoint.resume: path must be a non-empty string, got " .. tostring(path))
  end
  local f = io.open(path, "rb")
  if not f then return nil end
  f:close()
  local cj = ffi.new("char *[1]")
  check(C.ff_checkpoint_read_meta(path, cj, nil, nil))
  if cj[0] ~= nil then
    local text = ffi.string(cj[0])
    C.ff_checkpoint_free_string(cj[0])
    local ok, saved = pcall(json.decode, text)
    local d = ok and type(saved) == "table" and config_diff(saved, json.decode(json.encode(config_of(flow))))
    if d then
      raise(("ff.checkpoint.resume: %s was saved by a flow with other settings (%s, saved vs this flow); resume with the same settings, or flow:load it to continue deliberately"):format(path, d))
    end
  end
  local _, run = flow:load(path)
  return run, flow:steps()
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
  for i = 1, 4 do
    local h = st.s[i]
    if type(h) ~= "string" or not h:match("^%x+$") or #h ~= 16 then
      raise(("ff.checkpoint.set_rng_state: word %d is not 16 hex digits: %s"):format(i, tostring(h)))
    end
    r.s[i - 1] = bit.bor(bit.lshift(ffi.cast("uint64_t", tonumber(h:sub(1, 8), 16)), 32),
                         ffi.cast("uint64_t", tonumber(h:sub(9), 16)))
  end
  r.spare_normal, r.has_spare = st.spare_normal or 0, st.has_spare or 0
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
    local run = {}
    local cj = ffi.new("char *[1]")
    if C.ff_checkpoint_read_meta(path, cj, nil, nil) == 0 and cj[0] ~= nil then
      local text = ffi.string(cj[0])
      C.ff_checkpoint_free_string(cj[0])
      local ok, c = pcall(json.decode, text)
      if ok and type(c) == "table" and type(c.run) == "table" then run = c.run end
    end
    return self, run
  end

  ff.checkpoint = {}
  -- ff.checkpoint.meta(path) -> { config = table|nil, version = "0.1.0", step = n }
  function ff.checkpoint.meta(path)
    local cj, ver = ffi.new("char *[1]"), ffi.new("char *[1]")
    local step = ffi.new("int64_t[1]")
    check(C.ff_checkpoint_read_meta(path, cj, ver, step))
    local config = cj[0] ~= nil and ffi.string(cj[0]) or nil
    local version = ver[0] ~= nil and ffi.string(ver[0]) or nil
    C.ff_checkpoint_free_string(cj[0]); C.ff_checkpoint_free_string(ver[0])
    local ok, decoded = pcall(json.decode, config or "null")
    local c = ok and decoded ~= json.null and decoded or nil
    return { config = c, config_json = config, run = type(c) == "table" and c.run or nil,
             version = version, step = tonumber(step[0]) }
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
