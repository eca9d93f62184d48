-- fit.lua — flow:fit, the training loop in plain Lua on top of one optimiser step per iteration:
-- option checks, resume, batches from the flow's training stream, log windows, progress,
-- checkpoints and cleanup, each in a function of its own. flow.lua defines Flow:fit and calls
-- fit.run with the few flow internals the loop needs (the step's C status, its stats). Copy this
-- file to write another loop.
local core       = require "fisherflow.core"
local tensor     = require "fisherflow.tensor"
local optim      = require "fisherflow.optim"
local log        = require "fisherflow.log"
local progress   = require "fisherflow.progress"
local util       = require "fisherflow.util"
local checkpoint = require "fisherflow.checkpoint"
local ffi, C, raise = core.ffi, core.C, core.raise

local M = {}

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

local known = {
  steps = true, batch = true, log = true, log_every = true, progress = true, label = true, optim = true,
  lr = true, cond = true, callback = true, checkpoint = true, checkpoint_every = true, resume = true,
}


local function nonneg_int(v) return type(v) == "number" and v >= 0 and v == math.floor(v) end

-- The options, checked: -> { steps, batch, ckpt, every (checkpoint_every), resume }.
local function settings(opts)
  if type(opts) ~= "table" then raise("flow:fit: options must be a table, got " .. type(opts)) end
  util.check_keys(opts, known, "flow:fit", "option")
  local s = { steps = opts.steps, batch = opts.batch or 256, ckpt = opts.checkpoint,
              every = opts.checkpoint_every or 0, resume = opts.resume or false }
  if not nonneg_int(s.steps) then
    raise("flow:fit: steps must be a non-negative integer, got " .. tostring(s.steps))
  end
  if not nonneg_int(s.batch) or s.batch < 1 then
    raise("flow:fit: batch must be a positive integer, got " .. tostring(s.batch))
  end
  if s.ckpt ~= nil and (type(s.ckpt) ~= "string" or s.ckpt == "") then
    raise("flow:fit: checkpoint must be a path (a non-empty string), got " .. (type(s.ckpt) == "string" and '""' or type(s.ckpt)))
  end
  if not nonneg_int(s.every) then
    raise("flow:fit: checkpoint_every must be a non-negative integer (steps; 0: only at the end), got " .. tostring(s.every))
  end
  if type(s.resume) ~= "boolean" then raise("flow:fit: resume must be a boolean, got " .. type(s.resume)) end
  if (s.resume or s.every > 0) and not s.ckpt then
    raise(("flow:fit: %s needs checkpoint = path"):format(s.resume and "resume" or "checkpoint_every"))
  end
  return s
end

-- data (a tensor, or { x =, cond = }) and opts.cond, checked and made contiguous.
local function inputs(data, opts)
  local cond = opts.cond
  if type(data) == "table" and not tensor.is_tensor(data) then cond = data.cond; data = data.x end
  tensor.expect("flow:fit", "data", data)
  tensor.expect("flow:fit", "cond", cond, true)
  if data.ndim < 1 or data:size(1) < 1 then raise("flow:fit: data is empty") end
  if cond and cond:size(1) ~= data:size(1) then
    raise(("flow:fit: cond has %d rows, data %d"):format(cond:size(1), data:size(1)))
  end
  if not data:is_contiguous() then data = data:copy() end
  if cond and not cond:is_contiguous() then cond = cond:copy() end
  return data, cond
end

-- opts.optim / opts.lr: the optimiser is part of the C flow, rebuilt (same seed, same initial
-- weights) while the flow is untouched.
local function set_optim(flow, opts, rebuild)
  if opts.optim == nil and opts.lr == nil then return end
  if flow:steps() > 0 then raise("flow:fit: optim/lr can only change before the first step (set them in ff.flow{})") end
  local o = opts.optim or optim.optim.adamw({ lr = opts.lr })
  if type(o) == "table" and not optim.is_optim(o) then o = optim.optim.adamw(o) end
  rebuild(o)
end

-- With resume, loads the checkpoint if there is one (refusals come before anything is loaded).
-- -> the saved run table ({} if none), and the last good checkpoint { path, step, how } or nil.
local function resume(flow, s)
  if not s.resume then return {}, nil end
  local run = checkpoint.resume_fit(flow, s.ckpt, s.steps)
  local good = run and { path = s.ckpt, step = flow:steps(), how = "the one this run resumed from" } or nil
  if flow:steps() > s.steps then   -- a file-less resume of a flow trained before this call
    raise(("flow:fit: resume: the flow is at step %d, past steps = %d (with resume, steps is the run's total)"):format(
      flow:steps(), s.steps))
  end
  return run or {}, good
end

-- The log stream: opts.log is a stream, or a path (continued after `start` when resuming).
local function open_log(opts, s, start)
  if not opts.log then return nil end
  if type(opts.log) ~= "string" then return opts.log end
  if s.resume then return checkpoint.open_log(opts.log, start) end
  return log.open(opts.log)
end

-- The open log window (sums since the last record); it rides in checkpoints so a resumed run logs
-- the same records as an uninterrupted one.
local function window_of(run, resumed)
  local w = resumed and run.window or {}
  return { loss = w.loss or 0, grad_norm = w.grad_norm or 0, n = w.n or 0 }
end

-- Gathers `n` random rows of data (and cond) into reusable batch tensors (buffers).
local function gather(flow, buffers, data, cond, n)
  local N = data:size(1)
  local row = data:numel() / N
  local xb = buffers.x1
  if not xb or xb:size(1) ~= n then
    local s = data:shape(); s[1] = n
    xb = tensor.zeros(s)
    buffers.x1 = xb
  end
  local cb
  if cond then
    cb = buffers.cond
    if not cb or cb:size(1) ~= n then
      local s = cond:shape(); s[1] = n
      cb = tensor.zeros(s)
      buffers.cond = cb
    end
  end
  local crow = cond and cond:numel() / N
  -- indices come from the flow's training stream, which checkpoints save: a resumed fit draws
  -- the same batches as an uninterrupted one (checkpoint.h's resume protocol)
  local src, dst, r = data.data, xb.data, C.ff_flow_rng(flow.ptr)
  for i = 0, n - 1 do
    local j = tonumber(C.ff_rng_below(r, N))
    ffi.copy(dst + i * row, src + j * row, row * 4)
    if cond then ffi.copy(cb.data + i * crow, cond.data + j * crow, crow * 4) end
  end
  return xb, cb
end
M.gather = gather

-- The message of a failed step: a step refused for NaN/Inf names the last good checkpoint.
local function failure(status, s, good)
  local msg = core.last_error()
  if status ~= C.FF_ENUMERIC then return msg end
  if good then
    return ("%s; last good checkpoint: %s (step %d, %s)"):format(msg, good.path, good.step, good.how)
  elseif s.ckpt then
    return ("%s; no checkpoint written yet in this run (%s: %s)"):format(msg, s.ckpt,
      s.every > 0 and ("every " .. s.every .. " steps, and at the end") or "only at the end")
  end
  return msg .. "; no checkpoint (flow:fit without checkpoint = path)"
end

-- fit.run(flow, data, opts, inner): the loop. inner = { step = function(flow, x1, cond) -> status
-- (the C status of one optimiser step), stats = function(flow) -> the step's stats table,
-- rebuild = function(flow, optim) }, from flow.lua.
function M.run(flow, data, opts, inner)
  opts = opts or {}
  local s = settings(opts)
  local cond
  data, cond = inputs(data, opts)
  set_optim(flow, opts, function(o) inner.rebuild(flow, o) end)
  local run, good = resume(flow, s)
  local start = flow:steps()
  local resumed = s.resume and start > 0
  local todo = s.resume and s.steps - start or s.steps
  local base = s.resume and start or 0       -- log windows and the progress bar count base + i
  local total = base + todo
  local every = opts.log_every or math.max(1, math.floor(total / 200))
  local owns_log = type(opts.log) == "string"
  local stream = open_log(opts, s, start)
  local bar = (opts.progress ~= false) and progress.new({ total = total, label = opts.label or "fit" }) or nil
  local hist = setmetatable({ loss = {}, grad_norm = {}, lr = {}, start = start }, History)
  hist.loss_first = start > 0 and run.loss_first or nil
  local t0 = util.now()
  local t_before = resumed and tonumber(run.seconds) or 0   -- training time behind the checkpoint
  local win = window_of(run, resumed)
  local buffers = flow.buffers

  local function save()
    flow:save(s.ckpt, { loss_first = hist.loss_first, seconds = t_before + util.now() - t0,
                        window = { loss = win.loss, grad_norm = win.grad_norm, n = win.n } })
    good = { path = s.ckpt, step = flow:steps(), how = "written by this run" }
  end
  local function record(i, st)
    if st.step == 1 then hist.loss_first = st.loss end
    hist.loss[i], hist.grad_norm[i], hist.lr[i] = st.loss, st.grad_norm, st.lr
    win.loss, win.grad_norm, win.n = win.loss + st.loss, win.grad_norm + st.grad_norm, win.n + 1
    local g = base + i
    if g % every == 0 or g == total then
      local rec = { step = st.step, loss = win.loss / win.n, grad_norm = win.grad_norm / win.n, lr = st.lr,
                    ms = st.ms, elapsed = t_before + util.now() - t0 }
      if stream then stream:write(rec) end
      if bar then bar:update(g, { loss = rec.loss }) end
      win.loss, win.grad_norm, win.n = 0, 0, 0
    end
  end
  local function loop()
    for i = 1, todo do
      local xb, cb = gather(flow, buffers, data, cond, s.batch)
      local status = inner.step(flow, xb, cb)
      if status ~= 0 then raise(failure(status, s, good)) end
      local st = inner.stats(flow)
      record(i, st)
      if opts.callback then opts.callback(i, st) end  -- before the save: a kill in between re-runs the step
      if s.ckpt and s.every > 0 and st.step % s.every == 0 and i < todo then save() end
    end
    if s.ckpt then save() end
  end
  -- A Lua error that ends the loop keeps its message and position (the user's line). When fit holds
  -- something to release (the log file it opened, the progress bar) the error is caught, the stream
  -- closed (so ff.log.default no longer points at it) and the bar finished, then raised again (its
  -- traceback starts here); otherwise it propagates untouched, with its whole traceback.
  local ok, err = true, nil
  if bar or (stream and owns_log) then ok, err = pcall(loop) else loop() end
  if bar then bar:finish() end
  if stream and owns_log then stream:close() end
  if not ok then error(err, 0) end
  hist.seconds = util.now() - t0
  return hist
end

return M
