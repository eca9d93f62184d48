-- flow.lua — ff.flow{...}: a Fisher-Flow model (flow.h) as a Lua object. :step is one FFI call;
-- :fit is written in Lua on top of :step (batches drawn here, progress, JSONL log), so a script
-- that needs another loop copies and edits it. Plugins written in Lua (ff.source.lua{...}) are
-- called from here once per batch, never from C.
local core     = require "fisherflow.core"
local tensor   = require "fisherflow.tensor"
local random   = require "fisherflow.random"
local plugin   = require "fisherflow.plugin"
local optim    = require "fisherflow.optim"
local log      = require "fisherflow.log"
local progress = require "fisherflow.progress"
local util     = require "fisherflow.util"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}
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

-- A plugin slot: an ff.plugin spec, a bare name, a Lua plugin (source/decoder) or nil (default).
local function slot(kind, v, keep)
  if v == nil then return nil end
  if type(v) == "string" then v = plugin.make_spec(kind, v) end
  if type(v) == "table" and v.lua then
    if v.kind ~= kind then raise(("ff.flow: %s is a lua %s, not a %s"):format(v.name, v.kind, kind)) end
    return nil, v
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
    local spec, lua = slot(kind, t[kind], keep)
    if spec then cfg[kind].name = spec.name; cfg[kind].opts = spec.opts end
    if lua then self["lua_" .. kind] = lua end
    if kind == "coupler" and lua then raise("ff.flow: couplers cannot be written in Lua") end
    if kind == "network" and lua then raise("ff.flow: networks cannot be written in Lua (they run on the tape in C)") end
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
  check(C.ff_flow_new(out, cfg))
  self.ptr = ffi.gc(out[0], C.ff_flow_free)
  self.cfg, self.keep, self.seed = cfg, keep, seed
  self.geometry = t.geometry or "sphere"
  -- the Lua-side stream for Lua plugins outside training (sampling, decoding), from the seed
  self.lua_rng = random.rng(ffi.cast("uint64_t", seed) * 0x9E3779B97F4A7C15ULL + 2)
end

-- ff.flow{ space = ff.sphere{k=, d=} (or k =, d =), geometry =, source =, coupler =, network =,
--          decoder =, optim = ff.optim.adamw{...}, schedule = ff.lr.cosine{...}, seed =, ema =,
--          grad_clip =, label_smoothing = }
function M.flow(t)
  if type(t) ~= "table" then raise("ff.flow: expects a table of settings, got " .. type(t)) end
  for k in pairs(t) do
    if not known_fields[k] then
      local names = {}
      for n in pairs(known_fields) do names[#names + 1] = n end
      table.sort(names)
      raise(("ff.flow: unknown field '%s' (known: %s)"):format(tostring(k), table.concat(names, ", ")))
    end
  end
  local sp = t.space or t.sphere
  if sp == nil then sp = { k = t.k, d = t.d, cond_classes = t.cond_classes, cond_channels = t.cond_channels } end
  if getmetatable(sp) ~= Space then sp = M.space(sp) end
  local self = setmetatable({ opts = t, space = sp, k = sp.k, d = sp.d,
                              stats = ffi.new("ff_step_stats"), buffers = {} }, Flow)
  build(self)
  return self
end

-- A cached [n, k, d+1] tensor for Lua-drawn source points.
local function buffer(self, name, n)
  local b = self.buffers[name]
  if not b or b:size(1) ~= n then
    b = tensor.zeros(n, self.k, self.d + 1)
    self.buffers[name] = b
  end
  return b
end

local function draw_lua_source(self, n, rng)
  local x0 = buffer(self, "x0", n)
  local src = self.lua_source
  src.sample(src, rng, x0)
  return x0
end

local function expect_tensor(fname, name, v, optional)
  if v == nil and optional then return end
  if not tensor.is_tensor(v) then
    raise(("%s: %s must be a tensor, got %s"):format(fname, name, type(v)))
  end
end

-- One training step (one FFI call: pair, path, forward, backward, clip, update, EMA).
-- x1 [n, k, d+1] simplex points; x0 optional sphere-coordinate source draws; cond optional.
-- step_status returns the C status (fit tells FF_ENUMERIC apart); Flow:step raises on failure.
local function step_status(self, x1, x0, cond)
  if x0 == nil and self.lua_source then x0 = draw_lua_source(self, x1:size(1), C.ff_flow_rng(self.ptr)) end
  return C.ff_flow_step(self.ptr, x1, x0, cond, self.stats)
end

-- ff_flow_grad's counterpart of step_status (the gradient only; dist.step all-reduces, then updates).
local function grad_status(self, x1, x0, cond)
  if x0 == nil and self.lua_source then x0 = draw_lua_source(self, x1:size(1), C.ff_flow_rng(self.ptr)) end
  return C.ff_flow_grad(self.ptr, x1, x0, cond, self.stats)
end

M.grad_status = grad_status

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

function Flow:eval_loss(x1, cond)
  expect_tensor("flow:eval_loss", "x1", x1)
  local out = ffi.new("double[1]")
  check(C.ff_flow_eval_loss(self.ptr, x1, cond, out))
  return out[0]
end

-- Gathers `n` random rows of data (and cond) into reusable batch tensors.
local function gather(self, data, cond, n)
  local N = data:size(1)
  local row = data:numel() / N
  local xb = self.buffers.x1
  if not xb or xb:size(1) ~= n then
    local s = data:shape(); s[1] = n
    xb = tensor.zeros(s)
    self.buffers.x1 = xb
  end
  local cb
  if cond then
    cb = self.buffers.cond
    if not cb or cb:size(1) ~= n then
      local s = cond:shape(); s[1] = n
      cb = tensor.zeros(s)
      self.buffers.cond = cb
    end
  end
  local crow = cond and cond:numel() / N
  -- indices come from the flow's training stream, which checkpoints save: a resumed fit draws
  -- the same batches as an uninterrupted one (checkpoint.h's resume protocol)
  local src, dst, r = data.data, xb.data, C.ff_flow_rng(self.ptr)
  for i = 0, n - 1 do
    local j = tonumber(C.ff_rng_below(r, N))
    ffi.copy(dst + i * row, src + j * row, row * 4)
    if cond then ffi.copy(cb.data + i * crow, cond.data + j * crow, crow * 4) end
  end
  return xb, cb
end

local History = {}
History.__index = History
-- Mean of the last n recorded values of a key (n = 1: the last one).
function History:last(key, n)
  local v = self[key]
  if type(v) ~= "table" or #v == 0 then raise(("history has no values for '%s'"):format(tostring(key))) end
  n = math.min(n or 1, #v)
  local s = 0
  for i = #v - n + 1, #v do s = s + v[i] end
  return s / n
end

local fit_options = {
  steps = true, batch = true, log = true, log_every = true, progress = true, label = true, optim = true,
  lr = true, cond = true, callback = true, checkpoint = true, checkpoint_every = true, resume = true,
}

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
  opts = opts or {}
  if type(opts) ~= "table" then raise("flow:fit: options must be a table, got " .. type(opts)) end
  for k in pairs(opts) do
    if not fit_options[k] then
      local names = {}
      for n in pairs(fit_options) do names[#names + 1] = n end
      table.sort(names)
      raise(("flow:fit: unknown option '%s' (known: %s)"):format(tostring(k), table.concat(names, ", ")))
    end
  end
  local cond = opts.cond
  if type(data) == "table" and not tensor.is_tensor(data) then cond = data.cond; data = data.x end
  expect_tensor("flow:fit", "data", data)
  expect_tensor("flow:fit", "cond", cond, true)
  local steps, batch = opts.steps, opts.batch or 256
  if type(steps) ~= "number" or steps < 0 or steps ~= math.floor(steps) then
    raise("flow:fit: steps must be a non-negative integer, got " .. tostring(steps))
  end
  if type(batch) ~= "number" or batch < 1 or batch ~= math.floor(batch) then
    raise("flow:fit: batch must be a positive integer, got " .. tostring(batch))
  end
  local ckpt, ck_every, resume = opts.checkpoint, opts.checkpoint_every or 0, opts.resume or false
  if ckpt ~= nil and (type(ckpt) ~= "string" or ckpt == "") then
    raise("flow:fit: checkpoint must be a path (a non-empty string), got " .. (type(ckpt) == "string" and '""' or type(ckpt)))
  end
  if type(ck_every) ~= "number" or ck_every < 0 or ck_every ~= math.floor(ck_every) then
    raise("flow:fit: checkpoint_every must be a non-negative integer (steps; 0: only at the end), got " .. tostring(ck_every))
  end
  if type(resume) ~= "boolean" then raise("flow:fit: resume must be a boolean, got " .. type(resume)) end
  if (resume or ck_every > 0) and not ckpt then
    raise(("flow:fit: %s needs checkpoint = path"):format(resume and "resume" or "checkpoint_every"))
  end
  if ckpt and not self.save then raise("flow:fit: checkpoints are not in this build (no ff_checkpoint_save)") end
  if data.ndim < 1 or data:size(1) < 1 then raise("flow:fit: data is empty") end
  if cond and cond:size(1) ~= data:size(1) then
    raise(("flow:fit: cond has %d rows, data %d"):format(cond:size(1), data:size(1)))
  end
  if not data:is_contiguous() then data = data:copy() end
  if cond and not cond:is_contiguous() then cond = cond:copy() end
  if opts.optim ~= nil or opts.lr ~= nil then
    -- the optimiser is part of the C flow: rebuild it (same seed, same initial weights) if untouched
    if self:steps() > 0 then raise("flow:fit: optim/lr can only change before the first step (set them in ff.flow{})") end
    local o = opts.optim or optim.optim.adamw({ lr = opts.lr })
    if type(o) == "table" and not optim.is_optim(o) then o = optim.optim.adamw(o) end
    self.optim = o
    build(self)
  end
  -- resume: load the checkpoint if there is one; `steps` becomes the run's total
  local run, good = nil, nil          -- good: the last good checkpoint { path =, step =, how = }
  if resume then
    -- refused before loading (other settings, or past `steps`): the flow stays untouched
    run = require("fisherflow.checkpoint").resume_fit(self, ckpt, steps)
    if run then good = { path = ckpt, step = self:steps(), how = "the one this run resumed from" } end
    if self:steps() > steps then   -- a file-less resume of a flow trained before this call
      raise(("flow:fit: resume: the flow is at step %d, past steps = %d (with resume, steps is the run's total)"):format(
        self:steps(), steps))
    end
  end
  run = run or {}
  local start = self:steps()
  local todo = resume and steps - start or steps
  local base = resume and start or 0  -- log windows and the progress bar count base + i
  local total = base + todo
  local every = opts.log_every or math.max(1, math.floor(total / 200))
  local stream = nil
  if opts.log then
    if type(opts.log) ~= "string" then stream = opts.log
    elseif resume then stream = require("fisherflow.checkpoint").open_log(opts.log, start)
    else stream = log.open(opts.log) end
  end
  local bar = (opts.progress ~= false) and progress.new({ total = total, label = opts.label or "fit" }) or nil
  local hist = setmetatable({ loss = {}, grad_norm = {}, lr = {}, start = start }, History)
  hist.loss_first = start > 0 and run.loss_first or nil
  local t0 = util.now()
  local t_before = tonumber(run.seconds) or 0      -- training time the resumed checkpoint had behind it
  local win = run.window or {}
  local win_loss, win_gn, win_n = win.loss or 0, win.grad_norm or 0, win.n or 0
  if not (resume and start > 0) then win_loss, win_gn, win_n, t_before = 0, 0, 0, 0 end
  local function save()
    self:save(ckpt, { loss_first = hist.loss_first, seconds = t_before + util.now() - t0,
                      window = { loss = win_loss, grad_norm = win_gn, n = win_n } })
    good = { path = ckpt, step = self:steps(), how = "written by this run" }
  end
  -- closes the log stream fit opened (which also stops ff.log.default pointing at it) and
  -- finishes the bar, whichever way the loop ends (a Lua error from a callback, a Lua plugin or a
  -- save included)
  local function finish()
    if bar then bar:finish(); bar = nil end
    if stream and type(opts.log) == "string" then stream:close() end
  end
  local function loop()
    for i = 1, todo do
      local st
      if C.ff_dist_size() > 1 then   -- mpirun: this rank's rows of the global batch (dist.lua)
        st = require("fisherflow.dist").step(self, batch, function(n)
          local xb, cb = gather(self, data, cond, n)
          return grad_status(self, xb, nil, cb)
        end)
      else
        local xb, cb = gather(self, data, cond, batch)
        st = step_status(self, xb, nil, cb)
      end
      if st ~= 0 then
        local msg = ffi.string(C.ff_last_error())
        if st == C.FF_ENUMERIC then
          if good then
            msg = ("%s; last good checkpoint: %s (step %d, %s)"):format(msg, good.path, good.step, good.how)
          elseif ckpt then
            msg = ("%s; no checkpoint written yet in this run (%s: %s)"):format(msg, ckpt,
              ck_every > 0 and ("every " .. ck_every .. " steps, and at the end") or "only at the end")
          else
            msg = msg .. "; no checkpoint (flow:fit without checkpoint = path)"
          end
        end
        raise(msg)
      end
      local s = stats_of(self.stats)
      if s.step == 1 then hist.loss_first = s.loss end
      hist.loss[i], hist.grad_norm[i], hist.lr[i] = s.loss, s.grad_norm, s.lr
      win_loss, win_gn, win_n = win_loss + s.loss, win_gn + s.grad_norm, win_n + 1
      local g = base + i
      if g % every == 0 or g == total then
        local rec = { step = s.step, loss = win_loss / win_n, grad_norm = win_gn / win_n, lr = s.lr,
                      ms = s.ms, elapsed = t_before + util.now() - t0 }
        if stream then stream:write(rec) end
        if bar then bar:update(g, { loss = rec.loss }) end
        win_loss, win_gn, win_n = 0, 0, 0
      end
      if opts.callback then opts.callback(i, s) end  -- before the save: a kill in between re-runs the step
      if ckpt and ck_every > 0 and s.step % ck_every == 0 and i < todo then save() end
    end
    if ckpt then save() end
  end
  -- A Lua error that ends the loop (callback, Lua plugin, a failed save...) keeps its message and
  -- position (computed where it was raised: the user's line). When fit holds something to release
  -- (the log file it opened, the progress bar) the error is caught, the stream closed and the bar
  -- finished, and it is raised again (its traceback then starts here); otherwise it propagates
  -- untouched, with its whole traceback.
  local ok, err = true, nil
  if bar or (stream and type(opts.log) == "string") then ok, err = pcall(loop) else loop() end
  finish()
  if not ok then error(err, 0) end
  hist.seconds = util.now() - t0
  return hist
end

-- flow:sample(n, { stepper = "euler", steps = 100, eps_abs =, eps_rel =, batch =, x0 =, cond = })
-- -> simplex points [n, k, d+1], and { nfe =, ms = }.
function Flow:sample(n, opts)
  opts = opts or {}
  if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
    raise("flow:sample: n must be a positive integer, got " .. tostring(n))
  end
  local o = C.ff_flow_default_sample_opts()
  if opts.stepper ~= nil then o.stepper = opts.stepper end
  if opts.steps ~= nil then o.steps = opts.steps end
  if opts.eps_abs ~= nil then o.eps_abs = opts.eps_abs end
  if opts.eps_rel ~= nil then o.eps_rel = opts.eps_rel end
  if opts.batch ~= nil then o.batch = opts.batch end
  local x0 = opts.x0
  expect_tensor("flow:sample", "x0", x0, true)
  expect_tensor("flow:sample", "cond", opts.cond, true)
  if x0 == nil and self.lua_source then x0 = draw_lua_source(self, n, self.lua_rng) end
  local out = tensor.zeros(n, self.k, self.d + 1)
  local st = ffi.new("ff_sample_stats")
  check(C.ff_flow_sample(self.ptr, out, x0, opts.cond, o, st))   -- opts keeps the stepper string alive
  return out, { nfe = tonumber(st.nfe), ms = st.ms }
end

local function decoder_emits_probs(self)
  local cfg = C.ff_flow_config_of(self.ptr)
  local name = cfg.decoder.name ~= nil and ffi.string(cfg.decoder.name) or "argmax"
  local out = ffi.new("const ff_plugin *[1]")
  check(C.ff_plugin_find(C.FF_PLUGIN_DECODER, name, out))
  local d = out[0]
  if d.vtable_size < ffi.offsetof("ff_decoder_vtable", "emits_probs") + 4 then return false end
  return ffi.cast("const ff_decoder_vtable *", d.vtable).emits_probs ~= 0
end

-- flow:decode(p): p [n, k, d+1] simplex points -> tokens [n, k] (0-based ids as floats), or
-- probabilities [n, k, d+1] for decoders that emit them.
function Flow:decode(p)
  expect_tensor("flow:decode", "p", p)
  local s = p:shape()
  if self.lua_decoder then
    local dec = self.lua_decoder
    local out = dec.emits_probs and tensor.zeros(s) or tensor.zeros(s[1], s[2])
    dec.decode(dec, p, self.lua_rng, out)
    return out
  end
  local out
  if decoder_emits_probs(self) then out = tensor.zeros(s) else out = tensor.zeros(s[1], s[2]) end
  check(C.ff_flow_decode(self.ptr, p, out))
  return out
end

-- flow:log_prob(p, { steps = 100, estimator = "auto", probes = 1, cond = }) -> [n] log-densities.
function Flow:log_prob(p, opts)
  opts = opts or {}
  expect_tensor("flow:log_prob", "p", p)
  local o = C.ff_flow_default_logprob_opts()
  if opts.steps ~= nil then o.steps = opts.steps end
  if opts.estimator ~= nil then o.estimator = opts.estimator end
  if opts.probes ~= nil then o.probes = opts.probes end
  local out = tensor.zeros(p:size(1))
  check(C.ff_flow_log_prob(self.ptr, p, opts.cond, o, out))
  return out
end

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

M.Flow = Flow
M.Space = Space
return M
