-- checkpoint.lua — flow:save(path) / flow:load(path) through checkpoint.h (a safetensors file with
-- parameters, optimiser state, EMA, the training stream and the step count, written atomically),
-- plus ff.checkpoint.meta(path) and ff.checkpoint.flow(path) that rebuilds a flow from the saved
-- configuration and loads it.
local core = require "fisherflow.core"
local json = require "fisherflow.json"
local util = require "fisherflow.util"
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

function M.install(ff)
  if not core.has("ff_checkpoint_save") then return end
  local Flow = require("fisherflow.flow").Flow

  function Flow:save(path)
    if type(path) ~= "string" then raise("flow:save: path must be a string, got " .. type(path)) end
    util.ensure_parent(path)
    check(C.ff_checkpoint_save(self.ptr, path, json.encode(config_of(self))))
    return path
  end

  function Flow:load(path)
    if type(path) ~= "string" then raise("flow:load: path must be a string, got " .. type(path)) end
    check(C.ff_checkpoint_load(self.ptr, path))
    return self
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
    return { config = ok and decoded ~= json.null and decoded or nil, config_json = config,
             version = version, step = tonumber(step[0]) }
  end

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
    return ff.flow(t):load(path)
  end
end

return M
