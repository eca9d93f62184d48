-- optim.lua — optimiser and learning-rate schedule settings for ff.flow:
-- ff.optim.adamw{ lr =, weight_decay =, betas = {b1, b2}, eps = }, ff.optim.sgd{ lr =, momentum =,
-- nesterov =, weight_decay = }, ff.lr.cosine{ min =, warmup =, total = } and friends.
local core = require "fisherflow.core"
local ffi, C, raise = core.ffi, core.C, core.raise

local M = { optim = {}, lr = {} }

local function check_keys(fname, t, allowed)
  if t == nil then return {} end
  if type(t) ~= "table" then raise(("%s: expects a table, got %s"):format(fname, type(t))) end
  for k, v in pairs(t) do
    local want = allowed[k]
    if not want then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      raise(("%s: unknown field '%s' (known: %s)"):format(fname, tostring(k), table.concat(names, ", ")))
    end
    if want == "number" and (type(v) ~= "number" or v ~= v or v < 0) then
      raise(("%s: %s must be a non-negative number, got %s"):format(fname, k, tostring(v)))
    end
  end
  return t
end

local Optim = {}
Optim.__index = Optim
Optim.__tostring = function(o) return ("optim %s (lr %g)"):format(o.kind, o.cfg.lr) end

function M.optim.adamw(t)
  t = check_keys("ff.optim.adamw", t, { lr = "number", weight_decay = "number", betas = "table", eps = "number" })
  local cfg = C.ff_optim_adamw_defaults()
  if t.lr then cfg.lr = t.lr end
  if t.weight_decay then cfg.weight_decay = t.weight_decay end
  if t.eps then cfg.eps = t.eps end
  if t.betas then
    local b = t.betas
    if type(b[1]) ~= "number" or type(b[2]) ~= "number" or b[1] < 0 or b[1] >= 1 or b[2] < 0 or b[2] >= 1 then
      raise("ff.optim.adamw: betas must be {b1, b2} in [0, 1)")
    end
    cfg.beta1, cfg.beta2 = b[1], b[2]
  end
  return setmetatable({ kind = "adamw", cfg = cfg }, Optim)
end

function M.optim.sgd(t)
  t = check_keys("ff.optim.sgd", t, { lr = "number", momentum = "number", nesterov = "boolean", weight_decay = "number" })
  local cfg = C.ff_optim_sgd_defaults()
  if t.lr then cfg.lr = t.lr end
  if t.momentum then cfg.momentum = t.momentum end
  if t.weight_decay then cfg.weight_decay = t.weight_decay end
  if t.nesterov ~= nil then cfg.nesterov = t.nesterov and 1 or 0 end
  return setmetatable({ kind = "sgd", cfg = cfg }, Optim)
end

M.is_optim = function(x) return getmetatable(x) == Optim end

local Sched = {}
Sched.__index = Sched
local function schedule(kind_name, kind_const)
  return function(t)
    t = check_keys("ff.lr." .. kind_name, t, { base = "number", min = "number", warmup = "number", total = "number" })
    local s = ffi.new("ff_lr_schedule")
    s.kind = kind_const
    s.base = t.base or 0
    s.min = t.min or 0
    s.warmup = t.warmup or 0
    s.total = t.total or 0
    if kind_const ~= C.FF_LR_CONSTANT and s.total <= 0 and kind_name ~= "warmup_linear" then
      raise(("ff.lr.%s: total (steps) must be > 0"):format(kind_name))
    end
    return setmetatable({ kind = kind_name, sched = s }, Sched)
  end
end
M.lr.constant      = schedule("constant", C.FF_LR_CONSTANT)
M.lr.cosine        = schedule("cosine", C.FF_LR_COSINE)
M.lr.warmup_linear = schedule("warmup_linear", C.FF_LR_WARMUP_LINEAR)
M.lr.warmup_cosine = schedule("warmup_cosine", C.FF_LR_WARMUP_COSINE)
M.is_schedule = function(x) return getmetatable(x) == Sched end

return M
