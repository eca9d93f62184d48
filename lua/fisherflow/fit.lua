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
local dist       = require "fisherflow.dist"
local json       = require "fisherflow.json"
local args       = require "fisherflow.args"
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
  steps = true, batch = true, accumulate = true, log = true, log_every = true, progress = true, label = true,
  optim = true, lr = true, cond = true, callback = true, checkpoint = true, checkpoint_every = true,
  resume = true, val = true, val_every = true, patience = true,
}

M.log_every = 10     -- the default spacing of log records (steps), whatever the run's length

local function nonneg_int(v) return type(v) == "number" and v >= 0 and v == math.floor(v) end

-- The options, checked: -> { steps, batch, accumulate, ckpt, every (checkpoint_every), resume,
-- log_every, val_every, patience }.
local function settings(opts)
  if type(opts) ~= "table" then raise("flow:fit: options must be a table, got " .. type(opts)) end
  util.check_keys(opts, known, "flow:fit", "option")
  local s = { steps = opts.steps, batch = opts.batch or 256, accumulate = opts.accumulate or 1, ckpt = opts.checkpoint,
              every = opts.checkpoint_every or 0, resume = opts.resume or false,
              log_every = opts.log_every or M.log_every, patience = opts.patience }
  if not nonneg_int(s.steps) then
    raise("flow:fit: steps must be a non-negative integer, got " .. tostring(s.steps))
  end
  if not nonneg_int(s.batch) or s.batch < 1 then
    raise("flow:fit: batch must be a positive integer, got " .. tostring(s.batch))
  end
  if s.batch < dist.size() then
    raise(("flow:fit: batch %d is smaller than the %d ranks (each rank needs a row)"):format(s.batch, dist.size()))
  end
  if not nonneg_int(s.accumulate) or s.accumulate < 1 then
    raise("flow:fit: accumulate must be a positive integer (micro-batches of `batch` rows per optimiser step), got " .. tostring(s.accumulate))
  end
  if not nonneg_int(s.log_every) or s.log_every < 1 then
    raise("flow:fit: log_every must be a positive integer (steps), got " .. tostring(s.log_every))
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
  if opts.val == nil then
    for _, k in ipairs({ "val_every", "patience" }) do
      if opts[k] ~= nil then raise(("flow:fit: %s needs val = a held-out data set"):format(k)) end
    end
  end
  s.val_every = opts.val_every or s.log_every
  if not nonneg_int(s.val_every) or s.val_every < 1 then
    raise("flow:fit: val_every must be a positive integer (steps), got " .. tostring(s.val_every))
  end
  if s.patience ~= nil and (not nonneg_int(s.patience) or s.patience < 1) then
    raise("flow:fit: patience must be a positive integer (validations without improvement), got " .. tostring(s.patience))
  end
  return s
end

-- The best checkpoint's path next to the checkpoint: x.safetensors -> x.best.safetensors.
function M.best_path(ckpt)
  local stem = ckpt:match("^(.*)%.safetensors$")
  return stem and (stem .. ".best.safetensors") or (ckpt .. ".best")
end

-- An output path that cannot be written is refused when fit starts, not by the save at the end:
-- the directory is made (as the save would) and a probe file created and removed in it.
local function check_writable(what, path)
  if not core.writes() then return end
  util.ensure_parent(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  local probe = ("%s/.ff-write-probe.%d"):format(dir, util.pid())
  local f, err = io.open(probe, "wb")
  if not f then
    raise(("flow:fit: %s %s cannot be written (%s); choose a writable path"):format(what, path, tostring(err):gsub("^[^:]*: ", "")))
  end
  f:close()
  os.remove(probe)
  local d = io.open(path, "rb")
  if d then
    local _, rerr = d:read(1)
    d:close()
    if rerr then raise(("flow:fit: %s %s cannot be written (%s)"):format(what, path, rerr)) end
  end
end

-- data (a tensor, or { x =, cond = }) and cond, checked once and made contiguous: rows on the
-- simplex (ff_simplex_check: entries >= 0 summing to 1 within FF_SIMPLEX_SUM_TOL), refused naming
-- the 1-based row and column. what: "data" or "val".
local function inputs(data, cond, what)
  if type(data) == "table" and not tensor.is_tensor(data) then cond = data.cond; data = data.x end
  tensor.expect("flow:fit", what, data)
  tensor.expect("flow:fit", what == "data" and "cond" or what .. ".cond", cond, true)
  if data.ndim < 1 or data:size(1) < 1 then raise(("flow:fit: %s is empty"):format(what)) end
  if cond and cond:size(1) ~= data:size(1) then
    raise(("flow:fit: %s has %d rows, %s %d"):format(what == "data" and "cond" or what .. ".cond", cond:size(1), what, data:size(1)))
  end
  if not data:is_contiguous() then data = data:copy() end
  if cond and not cond:is_contiguous() then cond = cond:copy() end
  core.check(C.ff_simplex_check(data, "flow:fit: " .. what))
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
  local run = checkpoint.resume_fit(flow, s.ckpt, s.steps, function(saved)
    for _, k in ipairs({ "batch", "accumulate" }) do   -- the same draws as the run that saved
      local v = saved.fit and saved.fit[k]
      if v ~= nil and v ~= s[k] then
        raise(("flow:fit: resume: %s was saved by a run with %s = %s, this call has %s = %s (resume with the same %s, or flow:load it to continue deliberately)"):format(
          s.ckpt, k, tostring(v), k, tostring(s[k]), k))
      end
    end
  end)
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

-- One optimiser step of `s.accumulate` micro-batches of `s.batch` rows (global over the ranks:
-- each rank takes its share, dist.share). Micro-batch m on rank r draws its rows, t and x0 in shard
-- stream r*A + m of this step (dist.with_shard_stream; shard 0 is the flow's own training stream),
-- so N ranks x A micro-batches draw exactly what 1 process x N*A micro-batches draws, and one
-- micro-batch in one process is the plain step. Under N > 1 ranks the gradient blocks are averaged
-- between the micro-batches and the update (dist.reduce). -> the C status (0: done).
local function train_step(flow, inner, s, data, cond)
  local A, rank, size = s.accumulate, dist.rank(), dist.size()
  local _, rows = dist.share(s.batch)
  local step, loss_sum = flow:steps(), 0
  local function micro()
    local xb, cb = gather(flow, flow.buffers, data, cond, rows)
    return inner.grad(flow, xb, cb)
  end
  for m = 0, A - 1 do
    local status = dist.with_shard_stream(flow, rank * A + m, step, micro)
    if status ~= 0 then C.ff_flow_grad_zero(flow.ptr); return status end
    loss_sum = loss_sum + flow.stats.loss * rows
  end
  local loss = size > 1 and dist.reduce(flow, rows, s.batch, loss_sum) or nil
  local status = inner.update(flow)
  if status == 0 and loss then flow.stats.loss = loss end
  return status
end

-- The mean loss of the held-out set (ff_flow_eval_loss, from the flow's validation stream, which
-- never changes the training draws), in chunks of at most 4096 rows weighted by their rows.
local function val_loss(flow, val, vcond)
  local n, sum = val:size(1), 0
  for first = 1, n, 4096 do
    local last = math.min(n, first + 4095)
    local x = val:narrow(1, first, last)
    local c = vcond and vcond:narrow(1, first, last)
    sum = sum + flow:eval_loss(x:is_contiguous() and x or x:copy(), c and (c:is_contiguous() and c or c:copy())) * (last - first + 1)
  end
  return sum / n
end

-- The git commit of the source tree the Lua layer runs from, when it is a git checkout.
local commit_cache
local function git_commit()
  if commit_cache == nil then
    commit_cache = false
    local root = (core.config.lua_dir or ""):match("^(.*)/lua$")
    if root and io.open(root .. "/.git", "rb") then
      local p = io.popen(("git -C '%s' rev-parse HEAD 2>/dev/null"):format(root:gsub("'", "'\\''")))
      if p then
        local line = p:read("*l"); p:close()
        if line and line:match("^%x+$") then commit_cache = line end
      end
    end
  end
  return commit_cache or nil
end

-- The first record of a new log: the run's whole configuration.
local function config_record(flow, s, data, val)
  local script = package.loaded["fisherflow.script"]
  return { config = {
    fisherflow = core.lib_version, commit = git_commit(), script = script and script.path or nil,
    args = args.resolved, flow = json.decode(flow:config_json()),
    fit = { steps = s.steps, batch = s.batch, accumulate = s.accumulate, log_every = s.log_every,
            checkpoint = s.ckpt, checkpoint_every = s.every, resume = s.resume, ranks = dist.size(),
            data_rows = data:size(1), val_rows = val and val:size(1) or nil,
            val_every = val and s.val_every or nil, patience = s.patience },
  } }
end

local signal_names = { [2] = "SIGINT", [15] = "SIGTERM" }

-- The signal that stops the loop after this step (0: none). Under N > 1 ranks they agree (one
-- all-reduce of a number per step): a rank that got SIGTERM or SIGINT stops them all at the same
-- step, SIGTERM winning, else every rank would wait for the others in the next step's collective.
local function stop_signal()
  local sig = C.ff_interrupt_pending()
  if dist.size() == 1 then return sig end
  local code = dist.sum(sig == 15 and 1000 or (sig ~= 0 and 1 or 0))
  return code >= 1000 and 15 or (code > 0 and 2 or 0)
end

-- fit.run(flow, data, opts, inner): the loop. inner = { grad = function(flow, x1, cond) -> status
-- (ff_flow_grad of one micro-batch), update = function(flow) -> status (ff_flow_update),
-- stats = function(flow) -> the step's stats table, rebuild = function(flow, optim) }, from flow.lua.
function M.run(flow, data, opts, inner)
  opts = opts or {}
  local s = settings(opts)
  local cond, val, vcond
  data, cond = inputs(data, opts.cond, "data")
  if opts.val ~= nil then val, vcond = inputs(opts.val, nil, "val") end
  set_optim(flow, opts, function(o) inner.rebuild(flow, o) end)
  -- every output path is checked before anything is loaded or trained
  if s.ckpt then
    check_writable("checkpoint", s.ckpt)
    if val then check_writable("best checkpoint", M.best_path(s.ckpt)) end
  end
  if type(opts.log) == "string" then check_writable("log", opts.log) end
  local run, good = resume(flow, s)
  local start = flow:steps()
  local resumed = s.resume and start > 0
  local todo = s.resume and s.steps - start or s.steps
  local base = s.resume and start or 0       -- log windows and the progress bar count base + i
  local total = base + todo
  local every = s.log_every
  local owns_log = type(opts.log) == "string"
  local stream = open_log(opts, s, start)
  if stream and not resumed then stream:write(config_record(flow, s, data, val)) end
  local bar = (opts.progress ~= false) and progress.new({ total = total, start = base, label = opts.label or "fit" }) or nil
  local hist = setmetatable({ loss = {}, grad_norm = {}, lr = {}, start = start, val_loss = {} }, History)
  hist.loss_first = start > 0 and run.loss_first or nil
  local t0 = util.now()
  local t_before = resumed and tonumber(run.seconds) or 0   -- training time behind the checkpoint
  local win = window_of(run, resumed)
  local best = resumed and run.best or {}     -- { loss =, step =, bad = validations without improvement }
  local best_path = s.ckpt and val and M.best_path(s.ckpt)

  local function run_state()
    return { loss_first = hist.loss_first, seconds = t_before + util.now() - t0,
             window = { loss = win.loss, grad_norm = win.grad_norm, n = win.n },
             best = (best.loss and { loss = best.loss, step = best.step, bad = best.bad }) or nil,
             fit = { steps = s.steps, batch = s.batch, accumulate = s.accumulate, log = owns_log and opts.log or nil,
                     log_every = s.log_every, checkpoint_every = s.every, val_every = val and s.val_every or nil,
                     patience = s.patience } }
  end
  local function save()
    flow:save(s.ckpt, run_state())
    good = { path = s.ckpt, step = flow:steps(), how = "written by this run" }
  end
  -- validation at step g: -> the record's fields, and whether patience ran out
  local function validate(g)
    local v = val_loss(flow, val, vcond)
    hist.val_loss[#hist.val_loss + 1] = v
    local improved = best.loss == nil or v < best.loss
    if improved then
      best.loss, best.step, best.bad = v, g, 0
      if best_path then flow:save(best_path, run_state()) end
    else
      best.bad = (best.bad or 0) + 1
    end
    return { val_loss = v, val_best = best.loss, val_best_step = best.step },
           s.patience ~= nil and best.bad >= s.patience
  end
  local function record(i, st)
    if st.step == 1 then hist.loss_first = st.loss end
    hist.loss[i], hist.grad_norm[i], hist.lr[i] = st.loss, st.grad_norm, st.lr
    win.loss, win.grad_norm, win.n = win.loss + st.loss, win.grad_norm + st.grad_norm, win.n + 1
    local g = base + i
    local vrec, stop
    if val and (g % s.val_every == 0 or g == total) then vrec, stop = validate(g) end
    if g % every == 0 or g == total then
      local rec = { step = st.step, loss = win.loss / win.n, grad_norm = win.grad_norm / win.n, lr = st.lr,
                    ms = st.ms, elapsed = t_before + util.now() - t0 }
      for k, v in pairs(vrec or {}) do rec[k] = v end
      if stream then stream:write(rec) end
      if bar then bar:update(g, { loss = rec.loss, val = vrec and vrec.val_loss or nil }) end
      win.loss, win.grad_norm, win.n = 0, 0, 0
    elseif vrec and stream then
      vrec.step = st.step
      stream:write(vrec)
    end
    return stop
  end
  -- Said once, at the third step of the call (the first ones warm caches): exact OT's assignment grows
  -- as n^2 to n^3, so at a large batch it can take most of a step; the user is told, not left waiting.
  local function coupling_notice(i, st)
    if i ~= math.min(3, todo) or not st.couple_ms or st.ms <= 0 or st.couple_ms < 0.5 * st.ms then return end
    if not core.writes() then return end
    local name = flow.config and flow.config.coupler and flow.config.coupler.name or "the coupler"
    io.stderr:write(("flow:fit: coupler %s takes %.0f%% of each step (%.3f of %.3f s at batch %d); a smaller batch, "
      .. "or coupler sinkhorn or independent, trains faster\n"):format(name, 100 * st.couple_ms / st.ms,
      st.couple_ms / 1000, st.ms / 1000, s.batch))
  end
  local stopped                             -- nil, or { signal = n } / { patience = true }, and the step
  local function loop()
    for i = 1, todo do
      local status = train_step(flow, inner, s, data, cond)
      if status ~= 0 then raise(failure(status, s, good)) end
      local st = inner.stats(flow)
      coupling_notice(i, st)
      local early = record(i, st)
      if opts.callback then opts.callback(i, st) end  -- before the save: a kill in between re-runs the step
      if s.ckpt and s.every > 0 and st.step % s.every == 0 and i < todo then save() end
      local sig = stop_signal()         -- after the periodic save: under mpirun a collective
      if sig ~= 0 then stopped = { signal = sig }; break end
      if early then stopped = { patience = true }; break end
    end
    if s.ckpt then save() end
  end
  -- A Lua error that ends the loop keeps its message and position (the user's line). The loop runs
  -- protected: the signal watch is undone, the stream closed (so ff.log.default no longer points at
  -- it) and the bar finished whichever way it ends, then the error is raised again.
  core.check(C.ff_interrupt_watch(1))
  local ok, err = pcall(loop)
  C.ff_interrupt_watch(0)
  if bar then bar:finish() end
  if stream and owns_log then stream:close() end
  if not ok then error(err, 0) end
  hist.seconds = util.now() - t0
  hist.total_seconds = t_before + hist.seconds   -- with the training time behind a resumed checkpoint
  if stopped and stopped.patience then
    hist.stopped = { reason = "patience", step = flow:steps() }
    if core.writes() then
      io.stderr:write(("flow:fit: early stop at step %d: no better validation loss in %d validations (best %.6g at step %d%s)\n"):format(
        flow:steps(), s.patience, best.loss, best.step, best_path and (", saved in " .. best_path) or ""))
    end
  elseif stopped and stopped.signal then
    -- a clean stop: checkpoint saved, log closed; say where and how to go on, then end the process
    local name = signal_names[stopped.signal] or ("signal " .. stopped.signal)
    local how
    if not s.ckpt then
      how = "no checkpoint path was given (checkpoint = path), so this training is not saved"
    elseif s.resume then
      how = ("checkpoint %s (step %d); run the same command again to continue to step %d"):format(s.ckpt, flow:steps(), total)
    else
      how = ("checkpoint %s (step %d); to continue, run it again with resume = true (--resume) and steps = %d (the run's total)"):format(
        s.ckpt, flow:steps(), total)
    end
    if core.writes() then
      io.stderr:write(("fisherflow: stopped by %s at step %d of %d; %s\n"):format(name, flow:steps(), total, how))
      io.stderr:flush()
    end
    os.exit(128 + stopped.signal, true)
  end
  return hist
end

return M
