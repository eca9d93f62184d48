-- flow.lua — ff.flow{...}: a Fisher-Flow model (flow.h) as a Lua object, built from its
-- configuration in the core's JSON schema (ff_flow_new_json: the core checks it). :step is one FFI
-- call; :fit (fit.lua) is written in Lua on top of :grad and :update, so a script that needs another
-- loop copies and edits it. Plugins written in Lua (ff.source.lua{...}) are
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
local json     = require "fisherflow.json"
local dist     = require "fisherflow.dist"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}

-- C calls that may call back into Lua (a Lua plugin's functions, through the vtables). LuaJIT must
-- not make such a call from a compiled trace, so they are made only from these functions, whose
-- JIT compilation is off (a trace reaching one stops there).
local calls_back = {
  new      = function(out, json) return C.ff_flow_new_json(out, json) end,
  step     = function(f, x1, x0, cond, stats) return C.ff_flow_step(f, x1, x0, cond, stats) end,
  grad     = function(f, x1, x0, cond, stats) return C.ff_flow_grad(f, x1, x0, cond, stats) end,
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

-- optim.lua's objects in the configuration's schema (flow.h): the C fields, which the core wrote.
local function optim_config(o)
  local c = o.cfg
  if tonumber(c.kind) == tonumber(C.FF_OPTIM_SGD) then
    return { kind = "sgd", lr = c.lr, weight_decay = c.weight_decay, momentum = c.momentum, nesterov = c.nesterov ~= 0 }
  end
  return { kind = "adamw", lr = c.lr, weight_decay = c.weight_decay, betas = { c.beta1, c.beta2 }, eps = c.eps }
end
local function schedule_config(sc)
  local s = sc.sched
  return { kind = sc.kind, base = s.base, min = s.min, warmup = tonumber(s.warmup), total = tonumber(s.total) }
end
local function slot_config(spec)
  if spec.lua or next(spec.options or {}) == nil then return { name = spec.name } end
  return { name = spec.name, options = spec.options }
end

-- ff.flow's table -> the configuration in the core's schema (flow.h), plugins it must keep alive.
-- Values go to the core as they are: it checks types and ranges and names the field.
local function config_of(t, sp)
  local c = { space = { k = sp.k, d = sp.d, cond_classes = sp.cond_classes, cond_channels = sp.cond_channels },
              geometry = t.geometry, grad_clip = t.grad_clip, ema = t.ema, label_smoothing = t.label_smoothing,
              seed = t.seed or random.default_seed }
  local keep = {}
  for _, kind in ipairs({ "source", "coupler", "network", "decoder" }) do
    local spec = slot(kind, t[kind], keep)
    if spec then c[kind] = slot_config(spec) end
  end
  local o = t.optim
  if o ~= nil then
    if type(o) == "table" and not optim.is_optim(o) then o = optim.optim.adamw(o) end
    if not optim.is_optim(o) then raise("ff.flow: optim must be ff.optim.adamw{...} or ff.optim.sgd{...}") end
    c.optim = optim_config(o)
  end
  local sched = t.schedule or t.lr
  if sched ~= nil then
    if not optim.is_schedule(sched) then raise("ff.flow: schedule must be ff.lr.cosine{...} (or another ff.lr.*)") end
    c.schedule = schedule_config(sched)
  end
  return c, keep
end

-- Builds the C flow from self.config (the core's schema) and reads back what the core resolved.
local function build(self)
  local out = ffi.new("ff_flow_t *[1]")
  check(calls_back.new(out, json.encode(self.config)))
  self.ptr = ffi.gc(out[0], C.ff_flow_free)
  local cfg = C.ff_flow_config_of(self.ptr)
  self.seed, self.geometry = tonumber(cfg.seed), ffi.string(cfg.geometry)
end

local function new_flow(config, keep, space)
  local self = setmetatable({ config = config, keep = keep, space = space, k = space.k, d = space.d,
                              stats = ffi.new("ff_step_stats"), buffers = {} }, Flow)
  build(self)
  return self
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
  local config, keep = config_of(t, sp)
  return new_flow(config, keep, sp)
end

-- The flow's configuration as the core wrote it (flow.h's JSON: every field, defaults resolved).
function Flow:config_json() return ffi.string(C.ff_flow_config_json_of(self.ptr)) end

local expect_tensor = tensor.expect

-- Training. x1 [n, k, d+1] simplex points; x0 optional sphere-coordinate source draws; cond optional.
-- The *_status functions return the C status (fit tells FF_ENUMERIC apart); the methods raise.
local function grad_status(self, x1, x0, cond)
  return calls_back.grad(self.ptr, x1, x0, cond, self.stats)
end
local function update_status(self) return C.ff_flow_update(self.ptr, self.stats) end

local function stats_of(s)
  return { loss = s.loss, grad_norm = s.grad_norm, lr = s.lr, ms = s.ms, couple_ms = s.couple_ms,
           step = tonumber(s.step) }
end

-- flow:step(x1 [, x0, cond]) -> stats: one optimiser step (one FFI call: pair, path, forward,
-- backward, clip, update, EMA). Under mpirun with N > 1 ranks every rank passes the same global
-- batch and computes the gradient of its rows; the ranks average their gradients and make the
-- same update (dist.lua).
function Flow:step(x1, x0, cond)
  expect_tensor("flow:step", "x1", x1)
  expect_tensor("flow:step", "x0", x0, true)
  expect_tensor("flow:step", "cond", cond, true)
  if dist.size() > 1 then
    check(dist.step(self, x1, x0, cond, function(a, b, c) return grad_status(self, a, b, c) end,
                    function() return update_status(self) end))
  else
    check(calls_back.step(self.ptr, x1, x0, cond, self.stats))
  end
  return stats_of(self.stats)
end

-- flow:grad(x1 [, { x0 =, cond = }]) -> this micro-batch's mean loss: adds the gradient of x1 to the
-- flow's accumulated gradient (ff_flow_grad); flow:update() -> stats applies the mean of the
-- micro-batches accumulated since the last update as one optimiser step (ff_flow_update). For a
-- script's own accumulation loop; one process (flow:fit with accumulate = n does this, under mpirun
-- too). A refused micro-batch (non-finite loss) leaves the accumulation as it was.
function Flow:grad(x1, opts)
  expect_tensor("flow:grad", "x1", x1)
  if opts ~= nil and type(opts) ~= "table" then raise("flow:grad: options must be a table, got " .. type(opts)) end
  opts = opts or {}
  util.check_keys(opts, { x0 = true, cond = true }, "flow:grad", "option")
  expect_tensor("flow:grad", "x0", opts.x0, true)
  expect_tensor("flow:grad", "cond", opts.cond, true)
  check(grad_status(self, x1, opts.x0, opts.cond))
  return self.stats.loss
end

function Flow:update()
  if C.ff_flow_grad_count(self.ptr) == 0 then raise("flow:update: no gradient accumulated (call flow:grad first)") end
  check(update_status(self))
  return stats_of(self.stats)
end

-- What fit's loop needs of the flow beyond its methods (fit.lua): the C status of one micro-batch's
-- gradient and of the update (fit tells FF_ENUMERIC apart), the stats, and a rebuild with another
-- optimiser.
local fit_inner = {
  grad = function(self, x1, cond) return grad_status(self, x1, nil, cond) end,
  update = update_status,
  stats = function(self) return stats_of(self.stats) end,
  rebuild = function(self, o) self.config.optim = optim_config(o); build(self) end,
}

function Flow:eval_loss(x1, cond)
  expect_tensor("flow:eval_loss", "x1", x1)
  local out = ffi.new("double[1]")
  check(calls_back.eval(self.ptr, x1, cond, out))
  return out[0]
end

-- flow:fit(data, { steps =, batch = 256, accumulate = 1, log = "out/x.jsonl", log_every = 10,
--                  progress = true, label =, optim =, lr =, cond =, callback = function(i, stats) end,
--                  checkpoint = "out/x.safetensors", checkpoint_every = 0, resume = false,
--                  val = held_out, val_every = log_every, patience = nil })
-- data: [N, k, d+1] simplex points (or { x = tensor, cond = tensor }), checked once. Returns the
-- history: per-step loss, grad_norm and lr lists of the steps this call ran (hist:last("loss", n)),
-- hist.val_loss, hist.start (the flow's step count before them), hist.loss_first (loss of the run's
-- step 1), hist.seconds, hist.stopped (early stop). Without resume, `steps` is the number of steps
-- this call runs; with resume = true (needs checkpoint) it is the run's total and a checkpoint at
-- `checkpoint` is loaded first (refused, before loading, when saved by other settings or past
-- `steps`). Checkpoints at the end and every checkpoint_every steps, atomic; the log continues when
-- resuming. A NaN/Inf step raises the C message and the last good checkpoint; any error closes the
-- log and finishes the bar first. Ctrl-C/SIGTERM stop at the end of the step, save and exit.
-- lua/README.md and fit.lua say each option in full.
function Flow:fit(data, opts)
  return fit.run(self, data, opts, fit_inner)
end

-- flow:sample(n, { stepper = "euler", steps = 100, eps_abs =, eps_rel =, batch = 4096, x0 =, cond =,
--                   progress = nil }) -> simplex points [n, k, d+1], and { nfe =, ms = }.
-- One C call per batch (evaluate.lua); progress: nil shows a line once the call has run 2 s,
-- true at once, false never. Under mpirun with N > 1 ranks the rows are split over the ranks and
-- gathered on every rank (dist.sample); the samples then depend on N.
function Flow:sample(n, opts)
  local function rows(count, o) return evaluate.sample(self, count, o, calls_back.sample) end
  if dist.size() > 1 then
    if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
      raise("flow:sample: n must be a positive integer, got " .. tostring(n))
    end
    return dist.sample(self, n, opts or {}, rows)
  end
  return rows(n, opts)
end

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
-- -inf at points outside the model's support. Rows of p must lie on the simplex (checked once: the
-- core would renormalise a row that sums to 4.4). Evaluated batch rows at a time (Hutchinson probes
-- are drawn per batch); progress as flow:sample. Under mpirun with N > 1 ranks the rows are split
-- over the ranks and gathered on every rank.
function Flow:log_prob(p, opts)
  expect_tensor("flow:log_prob", "p", p)
  check(C.ff_simplex_check(p:is_contiguous() and p or p:copy(), "flow:log_prob: p"))
  local function rows(q, o) return evaluate.log_prob(self, q, o, calls_back.log_prob) end
  if dist.size() > 1 then return dist.log_prob(p, opts or {}, rows) end
  return rows(p, opts)
end

-- flow:bits(x, { lam = 0.5, alpha = 1, rng =, steps =, estimator =, probes =, cond =, batch =,
-- progress = }) -> bits [n], { finite =, nonfinite = }: per one-hot row of x, an upper bound on
-- -log2 of the probability the flow's argmax decoder emits it, from a dequantised draw and
-- flow:log_prob (evaluate.lua says how; MATH.md §Discrete likelihood bound).
function Flow:bits(x, opts) return evaluate.bits(self, x, opts) end

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
-- configuration the checkpoint stores (the core's, flow.h) and loaded. Plugins written in Lua are
-- not saved: pass them again (a plugin slot given here replaces the saved one).
function M.from_checkpoint(path, overrides)
  local text = checkpoint.meta(path).config_json
  overrides = overrides or {}
  if type(overrides) ~= "table" then raise("ff.checkpoint.flow: overrides must be a table, got " .. type(overrides)) end
  util.check_keys(overrides, { source = true, coupler = true, network = true, decoder = true },
                  "ff.checkpoint.flow", "override")
  local c = json.decode(text)
  local keep = {}
  for _, kind in ipairs({ "source", "coupler", "network", "decoder" }) do
    if overrides[kind] ~= nil then
      c[kind] = slot_config(slot(kind, overrides[kind], keep))
    elseif not plugin.find(kind, c[kind].name) then
      raise(("ff.checkpoint.flow: %s's %s \"%s\" is not a plugin of this process (a plugin written in Lua is not saved: pass it as { %s = ... })"):format(
        path, kind, c[kind].name, kind))
    end
  end
  for _, kind in ipairs({ "source", "coupler", "network", "decoder" }) do
    if c[kind].options and next(c[kind].options) == nil then c[kind].options = nil end
  end
  return (new_flow(c, keep, M.space(c.space)):load(path))
end

M.Flow = Flow
M.Space = Space
return M
