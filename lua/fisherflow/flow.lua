-- flow.lua — ff.flow{...}: a Fisher-Flow model (flow.h) as a Lua object. :step is one FFI call;
-- :fit is written in Lua on top of :step (batches drawn here, progress, JSONL log), so a script
-- that needs another loop copies and edits it. Plugins written in Lua (ff.source.lua{...}) are
-- registered with the loader and named in the configuration like C plugins: the core calls them.
local core     = require "fisherflow.core"
local tensor   = require "fisherflow.tensor"
local random   = require "fisherflow.random"
local plugin   = require "fisherflow.plugin"
local optim    = require "fisherflow.optim"
local util     = require "fisherflow.util"
local fit      = require "fisherflow.fit"
local checkpoint = require "fisherflow.checkpoint"
local evaluate = require "fisherflow.evaluate"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}

-- C calls that may call back into Lua (a Lua plugin's functions, through the vtables). LuaJIT must
-- not make such a call from a compiled trace, so they are made only from these functions, whose
-- JIT compilation is off (a trace reaching one stops there).
local calls_back = {
  new      = function(out, cfg) return C.ff_flow_new(out, cfg) end,
  step     = function(f, x1, x0, cond, stats) return C.ff_flow_step(f, x1, x0, cond, stats) end,
  eval     = function(f, x1, cond, out) return C.ff_flow_eval_loss(f, x1, cond, out) end,
  sample   = function(f, out, x0, cond, o, st) return C.ff_flow_sample(f, out, x0, cond, o, st) end,
  decode   = function(f, p, out) return C.ff_flow_decode(f, p, out) end,
  log_prob = function(f, p, cond, o, out) return C.ff_flow_log_prob(f, p, cond, o, out) end,
}
for _, fn in pairs(calls_back) do jit.off(fn) end

local Flow = {}
Flow.__index = Flow
Flow.__tostring = function(f)
  return ("flow S^%d_+ x %d (%s, %d parameters, %d steps)"):format(f.d, f.k, f.geometry,
    f:numel(), f:steps())
end

-- ff.sphere{ k = 1, d = 2 [, cond_classes =, cond_channels =] }: the space a flow models.
local Space = {}
Space.__index = Space
Space.__tostring = function(s) return ("sphere{k=%d, d=%d}"):format(s.k, s.d) end
function M.space(t)
  if type(t) ~= "table" then raise("ff.sphere: expects { k = positions, d = simplex dim }") end
  for key in pairs(t) do
    if key ~= "k" and key ~= "d" and key ~= "cond_classes" and key ~= "cond_channels" then
      raise(("ff.sphere: unknown field '%s' (known: k, d, cond_classes, cond_channels)"):format(tostring(key)))
    end
  end
  local function int(name, v, min)
    if type(v) ~= "number" or v ~= math.floor(v) or v < min then
      raise(("ff.sphere: %s must be an integer >= %d, got %s"):format(name, min, tostring(v)))
    end
    return v
  end
  return setmetatable({ k = int("k", t.k or 1, 1), d = int("d", t.d, 1),
                        cond_classes = int("cond_classes", t.cond_classes or 0, 0),
                        cond_channels = int("cond_channels", t.cond_channels or 0, 0) }, Space)
end

local known_fields = {
  space = true, sphere = true, k = true, d = true, cond_classes = true, cond_channels = true,
  geometry = true, source = true, coupler = true, network = true, decoder = true, optim = true,
  lr = true, schedule = true, seed = true, ema = true, grad_clip = true, label_smoothing = true,
}

-- A plugin slot: an ff.plugin spec, a bare name, a Lua plugin (source/decoder, registered with the
-- loader under its name) or nil (default).
local function slot(kind, v, keep)
  if v == nil then return nil end
  if type(v) == "string" then v = plugin.make_spec(kind, v) end
  if type(v) == "table" and v.lua then
    if v.kind ~= kind then raise(("ff.flow: %s is a lua %s, not a %s"):format(v.name, v.kind, kind)) end
    keep[#keep + 1] = v          -- the flow keeps it (and so its registration and callbacks) alive
    return v
  end
  if not plugin.is_spec(v) then
    raise(("ff.flow: %s must be ff.plugin(\"%s\", name, opts), a name or nil, got %s"):format(kind, kind, type(v)))
  end
  if v.kind ~= kind then raise(("ff.flow: %s slot got %s"):format(kind, tostring(v))) end
  keep[#keep + 1] = v
  return v
end

local function build(self)
  local t = self.opts
  local cfg = C.ff_flow_default_config()
  local sp = self.space
  cfg.space.k, cfg.space.d = sp.k, sp.d
  cfg.space.cond_classes, cfg.space.cond_channels = sp.cond_classes, sp.cond_channels
  if t.geometry ~= nil then
    if type(t.geometry) ~= "string" then raise("ff.flow: geometry must be a string (sphere | simplex | linear)") end
    cfg.geometry = t.geometry
  end
  local keep = {}
  for _, kind in ipairs({ "source", "coupler", "network", "decoder" }) do
    local spec = slot(kind, t[kind], keep)
    if spec then cfg[kind].name = spec.name; cfg[kind].opts = spec.opts end
  end
  local o = self.optim or t.optim
  if o ~= nil then
    if type(o) == "table" and not optim.is_optim(o) then o = optim.optim.adamw(o) end
    if not optim.is_optim(o) then raise("ff.flow: optim must be ff.optim.adamw{...} or ff.optim.sgd{...}") end
    cfg.optim = o.cfg
  end
  local sched = t.schedule or t.lr
  if sched ~= nil then
    if not optim.is_schedule(sched) then raise("ff.flow: schedule must be ff.lr.cosine{...} (or another ff.lr.*)") end
    cfg.lr = sched.sched
  end
  local function num(name, lo, hi)
    local v = t[name]
    if v == nil then return nil end
    if type(v) ~= "number" or v ~= v or v < lo or (hi and v >= hi) then
      raise(("ff.flow: %s must be a number in [%g, %s), got %s"):format(name, lo, hi and tostring(hi) or "inf", tostring(v)))
    end
    return v
  end
  cfg.grad_clip = num("grad_clip", 0) or cfg.grad_clip
  cfg.ema_decay = num("ema", 0, 1) or 0
  cfg.label_smoothing = num("label_smoothing", 0, 1) or 0
  local seed = t.seed or random.default_seed
  if type(seed) ~= "number" or seed < 0 or seed ~= math.floor(seed) then
    raise("ff.flow: seed must be a non-negative integer, got " .. tostring(seed))
  end
  cfg.seed = seed
  local out = ffi.new("ff_flow_t *[1]")
  check(calls_back.new(out, cfg))
  self.ptr = ffi.gc(out[0], C.ff_flow_free)
  self.cfg, self.keep, self.seed = cfg, keep, seed
  self.geometry = t.geometry or "sphere"
end

-- ff.flow{ space = ff.sphere{k=, d=} (or k =, d =), geometry =, source =, coupler =, network =,
--          decoder =, optim = ff.optim.adamw{...}, schedule = ff.lr.cosine{...}, seed =, ema =,
--          grad_clip =, label_smoothing = }
function M.flow(t)
  if type(t) ~= "table" then raise("ff.flow: expects a table of settings, got " .. type(t)) end
  util.check_keys(t, known_fields, "ff.flow", "field")
  local sp = t.space or t.sphere
  if sp == nil then sp = { k = t.k, d = t.d, cond_classes = t.cond_classes, cond_channels = t.cond_channels } end
  if getmetatable(sp) ~= Space then sp = M.space(sp) end
  local self = setmetatable({ opts = t, space = sp, k = sp.k, d = sp.d,
                              stats = ffi.new("ff_step_stats"), buffers = {} }, Flow)
  build(self)
  return self
end

local expect_tensor = tensor.expect

-- One training step (one FFI call: pair, path, forward, backward, clip, update, EMA).
-- x1 [n, k, d+1] simplex points; x0 optional sphere-coordinate source draws; cond optional.
-- step_status returns the C status (fit tells FF_ENUMERIC apart); Flow:step raises on failure.
local function step_status(self, x1, x0, cond)
  return calls_back.step(self.ptr, x1, x0, cond, self.stats)
end

local function stats_of(s)
  return { loss = s.loss, grad_norm = s.grad_norm, lr = s.lr, ms = s.ms, step = tonumber(s.step) }
end

function Flow:step(x1, x0, cond)
  expect_tensor("flow:step", "x1", x1)
  expect_tensor("flow:step", "x0", x0, true)
  expect_tensor("flow:step", "cond", cond, true)
  check(step_status(self, x1, x0, cond))
  return stats_of(self.stats)
end

-- What fit's loop needs of the flow beyond its methods (fit.lua): the C status of one step (fit
-- tells FF_ENUMERIC apart), its stats, and a rebuild with another optimiser.
local fit_inner = {
  step = function(self, x1, cond) return step_status(self, x1, nil, cond) end,
  stats = function(self) return stats_of(self.stats) end,
  rebuild = function(self, o) self.optim = o; build(self) end,
}

function Flow:eval_loss(x1, cond)
  expect_tensor("flow:eval_loss", "x1", x1)
  local out = ffi.new("double[1]")
  check(calls_back.eval(self.ptr, x1, cond, out))
  return out[0]
end

-- flow:fit(data, { steps =, batch = 256, log = "out/x.jsonl", log_every =, progress = true,
--                  optim =, cond =, callback = function(i, stats) end,
--                  checkpoint = "out/x.safetensors", checkpoint_every = 0, resume = false })
-- data: [N, k, d+1] simplex points (or { x = tensor, cond = tensor }). Returns the history:
-- per-step loss, grad_norm and lr lists of the steps this call ran (hist:last("loss", n)), and
-- hist.start (the flow's step count before them), hist.loss_first (loss of the run's step 1, when
-- this call ran it or the resumed checkpoint recorded it), hist.seconds (this call's wall time).
-- Without resume, `steps` is the number of steps this call runs. Checkpoints:
--   checkpoint = path: flow:save(path) at the end of the call, and also after every step whose
--     flow step count (flow:steps()) is a multiple of checkpoint_every (0, the default: only at the
--     end). Saves are atomic; fit's log window and first loss ride along (flow:save's run table).
--   resume = true (needs checkpoint): if path exists, flow:load(path) first. `steps` is then the
--     TOTAL step count of the run: the call runs steps - flow:steps() more (none if the run is
--     complete; an error if the checkpoint is past `steps`), whether or not the file existed; a file
--     saved by a flow of other settings is refused (ff.checkpoint.resume). Both refusals come
--     before the file is loaded: the flow is untouched. The
--     log (a path) then continues the file: records past the checkpoint's step, written by the run
--     that died, are dropped and the rest appended to. Log windows count the flow's steps, so a
--     resumed run logs the same records as an uninterrupted one, bit for bit except timings.
-- A step refused for NaN/Inf (FF_ENUMERIC: loss or gradient not finite) raises the C message (it
-- names the step) followed by the last good checkpoint: the latest one this call wrote, or the one
-- it resumed from, or a note that none was written. The flow keeps its last good parameters.
-- Any error that ends the loop (C status, callback, Lua plugin, save) closes the log fit opened and
-- finishes the bar before it propagates, with its message and position unchanged.
function Flow:fit(data, opts)
  return fit.run(self, data, opts, fit_inner)
end

-- flow:sample(n, { stepper = "euler", steps = 100, eps_abs =, eps_rel =, batch = 4096, x0 =, cond =,
--                   progress = nil }) -> simplex points [n, k, d+1], and { nfe =, ms = }.
-- One C call per batch (evaluate.lua); progress: nil shows a line once the call has run 2 s,
-- true at once, false never.
function Flow:sample(n, opts) return evaluate.sample(self, n, opts, calls_back.sample) end

-- Whether the flow's decoder fills probabilities (the loader reads its descriptor).
local function decoder_emits_probs(self)
  local out = ffi.new("const ff_plugin *[1]")
  check(C.ff_plugin_find(C.FF_PLUGIN_DECODER, C.ff_flow_config_of(self.ptr).decoder.name, out))
  return C.ff_plugin_emits_probs(out[0]) ~= 0
end

-- flow:decode(p): p [n, k, d+1] simplex points -> tokens [n, k] (0-based ids as floats), or
-- probabilities [n, k, d+1] for decoders that emit them.
function Flow:decode(p)
  expect_tensor("flow:decode", "p", p)
  local s = p:shape()
  local out
  if decoder_emits_probs(self) then out = tensor.zeros(s) else out = tensor.zeros(s[1], s[2]) end
  check(calls_back.decode(self.ptr, p, out))
  return out
end

-- flow:log_prob(p, { steps = 100, estimator = "auto", probes = 1, cond =, batch = 512, progress = nil })
-- -> [n] log-densities (w.r.t. Lebesgue measure on the first d coordinates of each position),
-- -inf at points outside the model's support. Evaluated batch rows at a time (Hutchinson probes are
-- drawn per batch); progress as flow:sample.
function Flow:log_prob(p, opts) return evaluate.log_prob(self, p, opts, calls_back.log_prob) end

-- Parameters: list of { name =, shape =, numel = } in registration order.
function Flow:params()
  local reg = C.ff_flow_params(self.ptr)
  local list = {}
  for i = 0, C.ff_params_count(reg) - 1 do
    local t = C.ff_params_get(reg, i)
    list[#list + 1] = { name = ffi.string(t.name), shape = t:shape(), numel = t:numel() }
  end
  return list
end

-- A parameter by name, borrowed from the flow (no finalizer; keeps the flow alive).
function Flow:param(name)
  local t = C.ff_params_find(C.ff_flow_params(self.ptr), name)
  if t == nil then raise(("flow:param: no parameter named '%s'"):format(tostring(name))) end
  return tensor.borrow(t, self)
end

function Flow:numel() return tonumber(C.ff_params_numel(C.ff_flow_params(self.ptr))) end
function Flow:steps() return tonumber(C.ff_flow_steps(self.ptr)) end
-- The flow's training stream, borrowed.
function Flow:rng() return core.borrow(C.ff_flow_rng(self.ptr), self) end

-- Checkpoints (checkpoint.lua): flow:save(path [, run]): run is optional plain data (the calling
-- loop's state: its own random streams, running sums...), stored in the metadata and given back by
-- flow:load(path) -> flow, run ({} if none was saved).
function Flow:save(path, run) return checkpoint.save(self, path, run) end
function Flow:load(path) return self, checkpoint.load(self, path) end

-- flow:density{ resolution = 128, steps =, estimator =, probes =, batch =, progress = } -> [res, res]
-- model density on viz's grid (exp of flow:log_prob at every cell centre); only for k = 1, d = 2.
function Flow:density(t) return evaluate.density(self, t, calls_back.log_prob) end

-- ff.checkpoint.flow(path [, { source = ff.source.lua{...}, ... }]) -> a flow rebuilt from the
-- saved configuration and loaded. Plugins written in Lua are not saved: pass them again.
function M.from_checkpoint(path, overrides)
  local c = checkpoint.meta(path).config
  if type(c) ~= "table" then raise(("ff.checkpoint.flow: %s has no saved configuration"):format(path)) end
  overrides = overrides or {}
  if type(overrides) ~= "table" then raise("ff.checkpoint.flow: overrides must be a table, got " .. type(overrides)) end
  util.check_keys(overrides, { source = true, coupler = true, network = true, decoder = true }, "ff.checkpoint.flow", "override")
  local t = { space = M.space(c.space), geometry = c.geometry, seed = c.seed, grad_clip = c.grad_clip,
              ema = c.ema, label_smoothing = c.label_smoothing }
  local o = c.optim or {}
  if o.kind == "sgd" then
    t.optim = optim.optim.sgd{ lr = o.lr, weight_decay = o.weight_decay, momentum = o.momentum, nesterov = o.nesterov }
  else
    t.optim = optim.optim.adamw{ lr = o.lr, weight_decay = o.weight_decay, betas = o.betas, eps = o.eps }
  end
  local sc = c.schedule
  if type(sc) == "table" and optim.lr[sc.kind] and not (sc.kind == "constant" and sc.base == 0) then
    t.schedule = optim.lr[sc.kind]{ base = sc.base, min = sc.min, warmup = sc.warmup, total = sc.total }
  end
  for _, kind in ipairs({ "source", "coupler", "network", "decoder" }) do
    local p = c[kind]
    if overrides[kind] ~= nil then t[kind] = overrides[kind]
    elseif type(p) == "table" and p.lua then
      raise(("ff.checkpoint.flow: the %s was written in Lua (\"%s\"): pass it as { %s = ... }"):format(kind, p.lua, kind))
    elseif type(p) == "table" and p.name then
      local opts = {}
      for k, v in pairs(p.options or {}) do opts[k] = v end
      t[kind] = plugin.make_spec(kind, p.name, opts)
    end
  end
  return (M.flow(t):load(path))
end

M.Flow = Flow
M.Space = Space
return M
