-- test_fit_checkpoint.lua — flow:fit's checkpoint, checkpoint_every and resume options: a run
-- interrupted after a checkpoint and resumed gives the uninterrupted run's losses and log bit for
-- bit and stops at the total step count; the end of fit saves; resume without a file starts fresh;
-- option mistakes name the option; a NaN step names the step and the last good checkpoint.
local T  = require "ff_test"
local ff = require "fisherflow"

local tmp = T.tmpdir                                  -- a fresh empty directory
local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local data = ff.random.dirichlet(ff.rng(5), { 1000, 1, 3 }, { 8, 1, 1 })
local function new_flow(lr, schedule)
  return ff.flow{ k = 1, d = 2, seed = 9, ema = 0.9, schedule = schedule,
                  network = ff.plugin("network", "bmlp", { hidden = 16, depth = 2 }),
                  optim = ff.optim.adamw{ lr = lr or 2e-3, weight_decay = 0 } }
end
-- log records without their timings (elapsed, ms), as comparable strings
local function records(path)
  local out = {}
  for _, r in ipairs(ff.log.read(path)) do
    if r.step then out[#out + 1] = ("%d %.17g %.17g %.17g"):format(r.step, r.loss, r.grad_norm, r.lr) end
  end
  return out
end

T.test("fit resume: continues to the total step count, bit for bit, log continued", function()
  T.ok(ff.checkpoint, "checkpoint functions are not in this build")
  local dir = tmp("resume")
  local ref = new_flow()
  local href = ref:fit(data, { steps = 30, batch = 32, progress = false, log = dir .. "/ref.jsonl", log_every = 5 })
  local ck, lg = dir .. "/ck.safetensors", dir .. "/run.jsonl"
  -- a run that dies at step 17 (checkpoints at 7 and 14; 7 is not a multiple of log_every, so the
  -- resumed log window starts from a partial sum saved with the checkpoint)
  local a = new_flow()
  local err = T.raises(function()
    a:fit(data, { steps = 30, batch = 32, progress = false, log = lg, log_every = 5,
                  checkpoint = ck, checkpoint_every = 7, resume = true,
                  callback = function(i) if i == 17 then error("killed at 17") end end })
  end, "killed at 17")
  T.eq(ff.checkpoint.meta(ck).step, 14, "last checkpoint before the crash")
  T.eq(#ff.log.read(lg), 4, "the configuration and the records of steps 5, 10, 15 written before the crash")
  local before_crash = ff.checkpoint.meta(ck).run.seconds   -- training time of steps 1..14
  -- a new process: same flow config, same call
  local b = new_flow()
  local hb = b:fit(data, { steps = 30, batch = 32, progress = false, log = lg, log_every = 5,
                           checkpoint = ck, checkpoint_every = 7, resume = true })
  T.eq(hb.start, 14, "resumed at the checkpoint's step"); T.eq(#hb.loss, 16, "ran steps 15..30")
  T.eq(b:steps(), 30, "total steps")
  for i = 1, 16 do T.eq(hb.loss[i], href.loss[14 + i], "loss of step " .. (14 + i)) end
  T.eq(hb.loss_first, href.loss[1], "first loss of the run, carried by the checkpoint")
  T.eq(table.concat(records(lg), "\n"), table.concat(records(dir .. "/ref.jsonl"), "\n"), "JSONL records")
  T.eq(ff.checkpoint.meta(ck).step, 30, "saved at the end")
  local wr, wb = ref:param(ref:params()[1].name):values(), b:param(b:params()[1].name):values()
  T.eq(table.concat(wb, ","), table.concat(wr, ","), "final parameters")
  -- resuming a complete run runs nothing; a checkpoint past `steps` is refused
  local behind = ff.checkpoint.meta(ck).run.seconds   -- the run's training time, before c saves again
  local c = new_flow()
  local hc = c:fit(data, { steps = 30, batch = 32, progress = false, checkpoint = ck, resume = true })
  T.eq(#hc.loss, 0, "nothing left to run"); T.eq(c:steps(), 30, "steps of the complete run")
  -- training time: this call's, and the run's with the part behind the checkpoint
  -- (not compared with hb.seconds: that also counts b's final save, which can outlast steps 1..14)
  T.ok(before_crash > 0 and behind > before_crash, "the checkpoint carries the run's training time across the crash")
  T.near(hc.total_seconds, behind + hc.seconds, 1e-9, "total_seconds = the checkpoint's + this call's")
  T.ok(hb.total_seconds > hb.seconds, "a resumed call's total includes the steps before the crash")
  local d = new_flow()
  local w0 = table.concat(d:param(d:params()[1].name):values(), ",")
  T.raises(function()
    d:fit(data, { steps = 20, batch = 32, progress = false, checkpoint = ck, resume = true })
  end, "flow:fit: resume: " .. ck .. " is at step 30, past steps = 20")
  T.eq(d:steps(), 0, "a checkpoint past steps is refused before it is loaded")
  T.eq(table.concat(d:param(d:params()[1].name):values(), ","), w0, "parameters untouched")
end)

T.test("fit checkpoint: saved at the end, and every N flow steps", function()
  local dir = tmp("end")
  local ck = dir .. "/end.safetensors"
  local seen = {}
  local f = new_flow()
  f:fit(data, { steps = 7, batch = 32, progress = false, checkpoint = ck,
                callback = function(i) seen[i] = exists(ck) end })
  T.ok(not seen[7], "checkpoint_every = 0 writes nothing before the end")
  T.eq(ff.checkpoint.meta(ck).step, 7, "end-of-fit checkpoint")
  -- without resume, steps counts this call; checkpoint_every counts the flow's steps (7 + 1..6)
  local at = {}
  f:fit(data, { steps = 6, batch = 32, progress = false, checkpoint = ck, checkpoint_every = 4,
                callback = function(_, s) at[s.step] = ff.checkpoint.meta(ck).step end })
  T.eq(f:steps(), 13, "6 more steps")
  T.eq(at[8], 7, "before step 8's save the file still holds step 7")
  T.eq(at[9], 8, "step 8 (a multiple of 4) was saved")
  T.eq(ff.checkpoint.meta(ck).step, 13, "end-of-fit checkpoint")
end)

T.test("fit resume: no checkpoint file starts fresh", function()
  local dir = tmp("fresh")
  local ck = dir .. "/none.safetensors"
  T.ok(not exists(ck), "no file before")
  local f = new_flow()
  local h = f:fit(data, { steps = 8, batch = 32, progress = false, checkpoint = ck, resume = true,
                          log = dir .. "/fresh.jsonl" })
  T.eq(h.start, 0, "started at 0"); T.eq(#h.loss, 8, "ran the total")
  local ref = new_flow():fit(data, { steps = 8, batch = 32, progress = false })
  for i = 1, 8 do T.eq(h.loss[i], ref.loss[i], "loss " .. i) end
  T.eq(ff.checkpoint.meta(ck).step, 8, "written at the end")
  T.ok(#ff.log.read(dir .. "/fresh.jsonl") > 0, "log written")
end)

T.test("fit: checkpoint option mistakes are named", function()
  local f = new_flow()
  local function fit(o)
    o.steps, o.batch, o.progress = o.steps or 2, 32, false
    return function() f:fit(data, o) end
  end
  T.raises(fit{ checkpoint = 5 }, "flow:fit: checkpoint must be a path (a non-empty string), got number")
  T.raises(fit{ checkpoint = "" }, 'checkpoint must be a path (a non-empty string), got ""')
  T.raises(fit{ checkpoint = "x.safetensors", checkpoint_every = -1 }, "flow:fit: checkpoint_every must be a non-negative integer")
  T.raises(fit{ checkpoint = "x.safetensors", checkpoint_every = 2.5 }, "checkpoint_every must be a non-negative integer (steps; 0: only at the end), got 2.5")
  T.raises(fit{ checkpoint = "x.safetensors", checkpoint_every = "10" }, "checkpoint_every must be a non-negative integer")
  T.raises(fit{ checkpoint = "x.safetensors", resume = "yes" }, "flow:fit: resume must be a boolean, got string")
  T.raises(fit{ resume = true }, "flow:fit: resume needs checkpoint = path")
  T.raises(fit{ checkpoint_every = 10 }, "flow:fit: checkpoint_every needs checkpoint = path")
  T.raises(fit{ checkpoint_evry = 10 }, "flow:fit: unknown option 'checkpoint_evry' (known:")
  local line = T.line() + 1
  local err = T.raises(function() f:fit(data, { steps = 1, resume = 1 }) end, "resume must be a boolean")
  T.ok(err:find(":" .. line .. ":", 1, true), "error not at the caller's line %d: %s", line, err)
  T.eq(f:steps(), 0, "no step taken by a refused call")
end)

T.test("fit: a NaN step names the step and the last good checkpoint", function()
  local dir = tmp("nan")
  local ck = dir .. "/nan.safetensors"
  -- lr 1e30: step 1 succeeds (finite, huge weights), step 2's forward overflows to a non-finite
  -- loss, refused by ff_flow_step's loss/gradient check (not by the input check)
  local f = new_flow(1e30)
  local err = T.raises(function()
    f:fit(data, { steps = 10, batch = 32, progress = false, checkpoint = ck, checkpoint_every = 1 })
  end, "ff_flow_grad: step 2:")
  T.ok(err:find("last good parameters kept", 1, true), "C message kept: %s", err)
  T.ok(err:find("last good checkpoint: " .. ck .. " (step 1, written by this run)", 1, true), "checkpoint named: %s", err)
  T.eq(f:steps(), 1, "the flow kept step 1")
  T.eq(ff.checkpoint.meta(ck).step, 1, "the good checkpoint was not replaced")
  -- resumed from that file and diverging again before the next save
  local g = new_flow(1e30)
  err = T.raises(function()
    g:fit(data, { steps = 10, batch = 32, progress = false, checkpoint = ck, checkpoint_every = 5, resume = true })
  end, "ff_flow_grad: step 2:")
  T.ok(err:find(ck .. " (step 1, the one this run resumed from)", 1, true), "resumed-from named: %s", err)
  -- no checkpoint written yet / no checkpoint option
  err = T.raises(function()
    new_flow(1e30):fit(data, { steps = 10, batch = 32, progress = false, checkpoint = dir .. "/later.safetensors",
                               checkpoint_every = 5 })
  end, "ff_flow_grad: step 2:")
  T.ok(err:find("no checkpoint written yet in this run (" .. dir .. "/later.safetensors: every 5 steps, and at the end)", 1, true),
       "none written: %s", err)
  err = T.raises(function()
    new_flow(1e30):fit(data, { steps = 10, batch = 32, progress = false, checkpoint = dir .. "/end.safetensors" })
  end, "ff_flow_grad: step 2:")
  T.ok(err:find("no checkpoint written yet in this run (" .. dir .. "/end.safetensors: only at the end)", 1, true),
       "checkpoint_every = 0: %s", err)
  T.ok(not exists(dir .. "/later.safetensors"), "nothing written after the failure")
  T.raises(function() new_flow(1e30):fit(data, { steps = 10, batch = 32, progress = false }) end,
           "; no checkpoint (flow:fit without checkpoint = path)")
end)

T.test("checkpoint helpers: run table, rng state, continued log", function()
  local dir = tmp("helpers")
  local f = new_flow()
  f:fit(data, { steps = 3, batch = 32, progress = false })
  local r = ff.rng(123)
  for _ = 1, 5 do r:uniform() end
  r:normal()                                            -- leaves a spare normal cached
  local path = f:save(dir .. "/h.safetensors", { note = "hi", draws = ff.checkpoint.rng_state(r), x = 0.1 })
  local g, run = new_flow():load(path)
  T.eq(g:steps(), 3, "loaded"); T.eq(run.note, "hi", "run table"); T.eq(run.x, 0.1, "numbers exact")
  T.eq(ff.checkpoint.meta(path).run.note, "hi", "meta.run")
  local r2 = ff.checkpoint.set_rng_state(ff.rng(1), run.draws)
  for i = 1, 10 do T.eq(r2:normal(), r:normal(), "normal draw " .. i) end
  for i = 1, 10 do T.eq(r2:uniform(), r:uniform(), "uniform draw " .. i) end
  T.raises(function() ff.checkpoint.set_rng_state(ff.rng(1), { s = { "xyz" } }) end, "set_rng_state")
  -- states the C checkpoint loader refuses are refused here too, and leave the stream as it was
  local zero = ("0"):rep(16)
  local r3 = ff.rng(7)
  local before = ff.checkpoint.rng_state(r3)
  T.raises(function() ff.checkpoint.set_rng_state(r3, { s = { zero, zero, zero, zero } }) end,
           "ff.checkpoint.set_rng_state: the state words are all zero")
  T.raises(function() ff.checkpoint.set_rng_state(r3, { s = run.draws.s, has_spare = 2 }) end,
           "ff.checkpoint.set_rng_state: has_spare must be 0 or 1, got 2")
  T.raises(function() ff.checkpoint.set_rng_state(r3, { s = run.draws.s, has_spare = 1, spare_normal = "x" }) end,
           "ff.checkpoint.set_rng_state: spare_normal must be a number")
  T.eq(table.concat(ff.checkpoint.rng_state(r3).s, ","), table.concat(before.s, ","), "refused state not applied")
  T.eq(select(2, new_flow():load(f:save(dir .. "/plain.safetensors"))).note, nil, "no run table: {}")
  local lg = dir .. "/l.jsonl"
  local s = ff.log.open(lg)
  for i = 1, 6 do s:write{ step = i * 10, loss = i } end
  s:close()
  s = ff.checkpoint.open_log(lg, 30)
  s:write{ step = 40, loss = 40 }
  s:close()
  local steps = {}
  for _, rec in ipairs(ff.log.read(lg)) do steps[#steps + 1] = rec.step .. ":" .. rec.loss end
  T.eq(table.concat(steps, ","), "10:1,20:2,30:3,40:40", "records past the step dropped, then appended")
  ff.checkpoint.open_log(lg, 0):close()
  T.eq(#ff.log.read(lg), 0, "step 0 starts a new file")
end)

T.test("open_log: a last record cut off mid-write is dropped, a whole one without its newline kept", function()
  local lg = tmp("cut") .. "/log.jsonl"
  for _, case in ipairs({
    { '{"elapsed":1.5,"grad_n', "before its step" },          -- ff.log writes keys sorted: step last
    { '{"elapsed":1.5,"grad_norm":2,"loss":3,"st', "inside its step" },
    { '{"elapsed":1.5,"grad_norm":2,"loss":3,"step":6', "before its closing brace" } }) do
    local f = assert(io.open(lg, "wb"))
    f:write('{"loss":1,"step":10}\n{"loss":2,"step":20}\n{"loss":3,"step":30}\n{"loss":4,"step":40}\n', case[1])
    f:close()
    local s = ff.checkpoint.open_log(lg, 20)
    s:write{ step = 30, loss = 30 }
    s:close()
    local steps = {}
    for _, rec in ipairs(ff.log.read(lg)) do steps[#steps + 1] = rec.step .. ":" .. rec.loss end
    T.eq(table.concat(steps, ","), "10:1,20:2,30:30", "record cut " .. case[2])
  end
  local f = assert(io.open(lg, "wb"))
  f:write('{"loss":1,"step":10}\n{"loss":2,"step":20}')      -- not written by ff.log, but whole
  f:close()
  local s = ff.checkpoint.open_log(lg, 20)
  s:write{ step = 30, loss = 3 }
  s:close()
  local steps = {}
  for _, rec in ipairs(ff.log.read(lg)) do steps[#steps + 1] = rec.step .. ":" .. rec.loss end
  T.eq(table.concat(steps, ","), "10:1,20:2,30:3", "a whole last record kept")
end)

T.test("fit resume: a checkpoint of other settings is refused, not continued", function()
  local dir = tmp("other")
  local ck = dir .. "/o.safetensors"
  new_flow():fit(data, { steps = 3, batch = 32, progress = false, checkpoint = ck })
  local f = new_flow(1e-3)                              -- same shapes, another learning rate
  T.raises(function() f:fit(data, { steps = 6, batch = 32, progress = false, checkpoint = ck, resume = true }) end,
           "was saved by a flow with other settings (optim.lr: ")
  T.eq(f:steps(), 0, "untouched")
  local g = new_flow()
  g:fit(data, { steps = 6, batch = 32, progress = false, checkpoint = ck, resume = true })
  T.eq(g:steps(), 6, "same settings resume")
end)

T.test("fit resume: a checkpoint of another lr schedule is refused, naming the field", function()
  local dir = tmp("schedule")
  local ck = dir .. "/s.safetensors"
  local function cosine(total) return ff.lr.cosine{ base = 2e-3, total = total, min = 1e-5 } end
  new_flow(nil, cosine(100)):fit(data, { steps = 4, batch = 32, progress = false, checkpoint = ck })
  local f = new_flow(nil, cosine(20))
  T.raises(function() f:fit(data, { steps = 8, batch = 32, progress = false, checkpoint = ck, resume = true }) end,
           "was saved by a flow with other settings (schedule.total: 100 vs 20")
  T.eq(f:steps(), 0, "untouched")
  T.raises(function() ff.checkpoint.resume(new_flow(), ck) end, "other settings (schedule.")
  T.raises(function() ff.checkpoint.resume(new_flow(nil, ff.lr.warmup_cosine{ base = 2e-3, total = 100, min = 1e-5 }), ck) end,
           'other settings (schedule.kind: "cosine" vs "warmup_cosine"')
  local g = new_flow(nil, cosine(100))
  local h = g:fit(data, { steps = 8, batch = 32, progress = false, checkpoint = ck, resume = true })
  T.eq(h.start, 4, "same schedule resumes"); T.eq(g:steps(), 8, "to the total")
  -- ff.checkpoint.flow rebuilds the schedule: the rebuilt flow continues with the same learning rates
  local ref = new_flow(nil, cosine(100))
  local href = ref:fit(data, { steps = 12, batch = 32, progress = false })
  local r = ff.checkpoint.flow(ck)
  local hr = r:fit(data, { steps = 12, batch = 32, progress = false, checkpoint = ck, resume = true })
  for i = 1, 4 do T.eq(hr.lr[i], href.lr[8 + i], "lr of step " .. (8 + i)) end
  -- a checkpoint whose run entry has the earlier layout (the Lua layer's copy of the settings with
  -- the run table inside) resumes, and its run table is read
  local core, json = require "fisherflow.core", require "fisherflow.json"
  local old = new_flow(nil, cosine(100))
  old:fit(data, { steps = 3, batch = 32, progress = false })
  local earlier = { space = { k = 1, d = 2 }, geometry = "sphere", seed = 9, run = { note = "earlier" } }
  core.check(core.C.ff_checkpoint_save(old.ptr, dir .. "/old.safetensors", json.encode(earlier)))
  local run, step = ff.checkpoint.resume(new_flow(nil, cosine(100)), dir .. "/old.safetensors")
  T.eq(step, 3, "a checkpoint of the earlier run layout resumes"); T.eq(run.note, "earlier", "its run table")
end)

T.test("fit: a Lua error in the loop closes the log and finishes the progress bar first", function()
  local dir = tmp("lua_error")
  if ff.log.default then ff.log.default:close() end
  local progress = require "fisherflow.progress"
  local new, bars = progress.new, {}
  progress.new = function(o)
    o.out = { write = function() end, flush = function() end }
    local b = new(o); bars[#bars + 1] = b; return b
  end
  local lg = dir .. "/e.jsonl"
  local line = T.line() + 4
  local ok, err = pcall(function()
    new_flow():fit(data, { steps = 10, batch = 32, progress = true, log = lg, log_every = 1,
                           checkpoint = dir .. "/e.safetensors", checkpoint_every = 2,
                           callback = function(i) if i == 5 then error("stopped at 5") end end })
  end)
  progress.new = new
  T.ok(not ok, "the callback's error is raised")
  T.ok(err:find(":" .. line .. ": stopped at 5", 1, true), "original message at the user's line %d: %s", line, err)
  T.eq(ff.log.default, nil, "log.default no longer points at fit's stream")
  T.eq(#bars, 1, "one bar"); T.ok(bars[1].done_, "progress bar finished")
  T.eq(#ff.log.read(lg), 6, "the configuration and the records of steps 1..5")
  T.eq(ff.checkpoint.meta(dir .. "/e.safetensors").step, 4, "no save after the error")
  -- an error from a Lua source plugin (raised inside the step) closes the stream too
  local src = ff.source.lua{ name = "boom", sample = function() error("source broke") end }
  local f = ff.flow{ k = 1, d = 2, seed = 9, source = src, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  T.raises(function() f:fit(data, { steps = 3, batch = 8, progress = false, log = dir .. "/s.jsonl" }) end, "source broke")
  T.eq(ff.log.default, nil, "closed after a plugin error")
  -- the checks that refuse a call before any step still point at the caller's line
  line = T.line() + 1
  err = T.raises(function() f:fit(data, { steps = 1, batch = 0 }) end, "flow:fit: batch must be a positive integer")
  T.ok(err:find(":" .. line .. ":", 1, true), "at line %d: %s", line, err)
end)

T.test("runner: T.tmpdir gives a fresh empty directory", function()
  local dir = T.tmpdir("fresh_dir")
  local f = assert(io.open(dir .. "/x", "wb")); f:write("x"); f:close()
  T.eq(T.tmpdir("fresh_dir"), dir, "same path")
  T.ok(io.open(dir .. "/x", "rb") == nil, "emptied")
end)

T.test("toy_dfm: --resume without --checkpoint-every is refused before training", function()
  local root = (package.loaded["fisherflow.script"].path:match("^(.*)/tests/lua/[^/]*$")) or "."
  local ffi = require "ffi"
  pcall(ffi.cdef, "int getpid(void);")
  local rl = io.popen("readlink /proc/" .. ffi.C.getpid() .. "/exe")   -- this runner
  local exe = rl:read("*l"); rl:close()
  local out = T.tmpdir("toy") .. "/toy"
  local p = io.popen(("'%s' run '%s/experiments/toy_dfm.lua' --K 3 --steps 2 --samples 16 --resume --out '%s' 2>&1; echo \"rc=$?\""):format(
    exe, root, out))
  local text = p:read("*a"); p:close()
  T.ok(not text:find("rc=0", 1, true), "refused: %s", text)
  T.ok(text:find("--resume needs --checkpoint-every > 0", 1, true), "message: %s", text)
  T.ok(io.open(out .. ".jsonl", "rb") == nil, "nothing trained or logged")
end)

T.test("accumulate: 2 micro-batches of b equal one batch of 2b through flow:grad/update (float tolerance)", function()
  -- independent coupler, caller-given x0: the only draws are t, one per row in order, so two
  -- micro-batches of b draw the same times as one batch of 2b (test_flow.c's micro_batches_equal_one_batch)
  local function f() return ff.flow{ k = 1, d = 2, seed = 4, coupler = "independent",
                                     network = ff.plugin("network", "bmlp", { hidden = 16, depth = 2 }) } end
  local one, acc = f(), f()
  local x = data:narrow(1, 1, 64):copy()
  local x0 = ff.sphere.from_simplex(ff.random.dirichlet(ff.rng(3), { 64, 1, 3 }, 1))
  local l1 = one:grad(x, { x0 = x0 })
  local la = acc:grad(x:narrow(1, 1, 32):copy(), { x0 = x0:narrow(1, 1, 32):copy() })
  local lb = acc:grad(x:narrow(1, 33, 64):copy(), { x0 = x0:narrow(1, 33, 64):copy() })
  T.near((la + lb) / 2, l1, 1e-6 * l1, "mean micro-batch loss")
  local s1, sa = one:update(), acc:update()
  T.eq(sa.step, 1, "one optimiser step"); T.eq(acc:steps(), 1, "step count")
  T.near(sa.grad_norm, s1.grad_norm, 1e-5 * s1.grad_norm, "gradient norm (relative 1e-5: float summation order)")
  local w1, wa = one:param(one:params()[1].name), acc:param(acc:params()[1].name)
  local worst, moved = 0, 0
  local w0 = f():param(one:params()[1].name)
  for i = 0, w1:numel() - 1 do
    worst = math.max(worst, math.abs(w1.data[i] - wa.data[i]))
    moved = math.max(moved, math.abs(w1.data[i] - w0.data[i]))
  end
  T.ok(moved > 0 and worst <= 1e-3 * moved, "parameters: max diff %g, move %g", worst, moved)
  T.raises(function() acc:update() end, "flow:update: no gradient accumulated")
  T.raises(function() acc:grad(x, { x0 = x0, steps = 1 }) end, "flow:grad: unknown option 'steps'")
end)

T.test("fit accumulate: steps, log, refusal, resume bit for bit", function()
  local dir = tmp("accumulate")
  local ref = new_flow()
  local href = ref:fit(data, { steps = 12, batch = 16, accumulate = 3, progress = false, log = dir .. "/ref.jsonl", log_every = 4 })
  T.eq(ref:steps(), 12, "12 optimiser steps, not 36"); T.eq(#href.loss, 12, "12 losses")
  local recs = ff.log.read(dir .. "/ref.jsonl")
  T.eq(recs[1].config.fit.accumulate, 3, "accumulate in the configuration record")
  T.eq(recs[2].step, 4, "records count optimiser steps"); T.eq(#recs, 4, "config + steps 4, 8, 12")
  -- accumulate = 1 is the plain step, bit for bit
  local p1, p2 = new_flow(), new_flow()
  local h1 = p1:fit(data, { steps = 5, batch = 16, progress = false })
  local h2 = p2:fit(data, { steps = 5, batch = 16, accumulate = 1, progress = false })
  for i = 1, 5 do T.eq(h2.loss[i], h1.loss[i], "accumulate = 1, step " .. i) end
  -- accumulate = 3 differs from 1 (it averages three micro-batches)
  T.ok(href.loss[1] ~= h1.loss[1], "three micro-batches are not one")
  for _, bad in ipairs({ 0, 1.5, "2", -1 }) do
    T.raises(function() new_flow():fit(data, { steps = 1, accumulate = bad, progress = false }) end,
             "flow:fit: accumulate must be a positive integer")
  end
  -- killed after the checkpoint at step 6, resumed: bit for bit
  local ck, lg = dir .. "/a.safetensors", dir .. "/a.jsonl"
  T.raises(function()
    new_flow():fit(data, { steps = 12, batch = 16, accumulate = 3, progress = false, checkpoint = ck, checkpoint_every = 6,
                           resume = true, log = lg, log_every = 4, callback = function(i) if i == 8 then error("killed") end end })
  end, "killed")
  T.eq(ff.checkpoint.meta(ck).step, 6, "checkpoint at 6"); T.eq(ff.checkpoint.meta(ck).run.fit.accumulate, 3, "run entry")
  T.raises(function()
    new_flow():fit(data, { steps = 12, batch = 16, accumulate = 2, progress = false, checkpoint = ck, resume = true })
  end, "was saved by a run with accumulate = 3, this call has accumulate = 2")
  local b = new_flow()
  local hb = b:fit(data, { steps = 12, batch = 16, accumulate = 3, progress = false, checkpoint = ck, checkpoint_every = 6,
                           resume = true, log = lg, log_every = 4 })
  T.eq(hb.start, 6, "resumed at 6")
  for i = 1, 6 do T.eq(hb.loss[i], href.loss[6 + i], "loss of step " .. (6 + i)) end
  T.eq(table.concat(records(lg), "\n"), table.concat(records(dir .. "/ref.jsonl"), "\n"), "log records")
  local wr, wb = ref:param(ref:params()[1].name):values(), b:param(b:params()[1].name):values()
  T.eq(table.concat(wb, ","), table.concat(wr, ","), "final parameters")
end)

T.test("fit: data off the simplex is refused once, naming the 1-based row and column", function()
  local bad = data:narrow(1, 1, 100):copy()
  bad.data[17 * 3 + 1] = -0.5                           -- row 18, column 2
  T.raises(function() new_flow():fit(bad, { steps = 1, progress = false }) end,
           "flow:fit: data: row 18, column 2 is -0.5; rows must lie on the simplex")
  local scaled = data:narrow(1, 1, 100):copy()
  for j = 0, 2 do scaled.data[40 * 3 + j] = scaled.data[40 * 3 + j] * 4.4 end
  T.raises(function() new_flow():fit(scaled, { steps = 1, progress = false }) end, "flow:fit: data: row 41 sums to 4.4")
  T.raises(function() new_flow():log_prob(scaled, { steps = 2 }) end, "flow:log_prob: p: row 41 sums to 4.4")
  T.raises(function() new_flow():fit(data, { steps = 1, progress = false, val = bad }) end, "flow:fit: val: row 18, column 2")
  local k2 = ff.random.dirichlet(ff.rng(2), { 10, 2, 3 }, 1)
  k2.data[(4 * 2 + 1) * 3 + 2] = 1 / 0                  -- row 5, position 2, column 3
  T.raises(function()
    ff.flow{ k = 2, d = 2, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }:fit(k2, { steps = 1, progress = false })
  end, "row 5, position 2, column 3 is inf (not finite)")
end)

T.test("fit: an unwritable checkpoint or log path is refused before step 1, naming it", function()
  local dir = tmp("unwritable")
  local f = assert(io.open(dir .. "/file", "wb")); f:close()
  local g = new_flow()
  T.raises(function() g:fit(data, { steps = 3, progress = false, checkpoint = dir .. "/file/ck.safetensors" }) end,
           "flow:fit: checkpoint " .. dir .. "/file/ck.safetensors cannot be written")
  T.eq(g:steps(), 0, "no step before the refusal")
  T.raises(function() g:fit(data, { steps = 3, progress = false, log = dir .. "/file/x.jsonl" }) end,
           "flow:fit: log " .. dir .. "/file/x.jsonl cannot be written")
  T.raises(function() g:fit(data, { steps = 3, progress = false, checkpoint = dir }) end,
           "flow:fit: checkpoint " .. dir .. " cannot be written")
  T.eq(g:steps(), 0, "still no step")
end)

T.test("fit validation: val loss in the log, the best checkpoint, early stopping; config record", function()
  local dir = tmp("val")
  local ck, lg = dir .. "/v.safetensors", dir .. "/v.jsonl"
  local val = ff.random.dirichlet(ff.rng(6), { 300, 1, 3 }, { 8, 1, 1 })
  local f = new_flow()
  local h = f:fit(data, { steps = 20, batch = 32, progress = false, val = val, val_every = 5, log = lg, log_every = 10,
                          checkpoint = ck })
  local recs = ff.log.read(lg)
  local c = recs[1].config
  T.ok(c and c.flow.seed == 9 and c.flow.network.options.hidden == 16 and c.fit.val_every == 5 and c.fisherflow,
       "configuration record: %s", ff.json.encode(recs[1]))
  local vsteps = {}
  for _, r in ipairs(recs) do if r.val_loss then vsteps[#vsteps + 1] = r.step end end
  T.eq(table.concat(vsteps, ","), "5,10,15,20", "val loss every 5 steps")
  T.eq(#h.val_loss, 4, "history of val losses")
  -- the best checkpoint holds the step with the lowest val loss, and its loss is that val loss
  local best, at = math.huge, 0
  for i, v in ipairs(h.val_loss) do if v < best then best, at = v, 5 * i end end
  local bpath = dir .. "/v.best.safetensors"
  T.eq(ff.checkpoint.meta(bpath).step, at, "best checkpoint's step")
  T.eq(ff.checkpoint.meta(bpath).run.best.loss, best, "best val loss recorded")
  -- early stopping: an lr of 0 never improves after the first validation
  local z = new_flow(0)
  local hz = z:fit(data, { steps = 100, batch = 32, progress = false, val = val, val_every = 2, patience = 3 })
  T.eq(hz.stopped and hz.stopped.reason, "patience", "stopped early")
  T.ok(z:steps() < 100, "before the end: %d", z:steps())
  T.raises(function() new_flow():fit(data, { steps = 1, patience = 2, progress = false }) end, "patience needs val")
end)

T.test("ff.checkpoint.flow: a Lua plugin is not saved: refused by name until passed again", function()
  local dir = tmp("lua_plugin_ckpt")
  local function src() return ff.source.lua{ name = "ckpt_blob", sample = function(_, rng, out)
    local u = ff.random.dirichlet(rng, out:shape(), 1)
    ff.sphere.from_simplex(out, u)
  end } end
  do
    local f = ff.flow{ k = 1, d = 2, seed = 2, source = src(), network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
    f:fit(data, { steps = 2, batch = 16, progress = false, checkpoint = dir .. "/l.safetensors" })
  end
  collectgarbage(); collectgarbage()                    -- the flow and its source are gone: unregistered
  T.raises(function() ff.checkpoint.flow(dir .. "/l.safetensors") end,
           'source "ckpt_blob" is not a plugin of this process (a plugin written in Lua is not saved: pass it as { source = ... })')
  local g = ff.checkpoint.flow(dir .. "/l.safetensors", { source = src() })
  T.eq(g:steps(), 2, "rebuilt with the source passed again")
  T.raises(function() ff.checkpoint.flow(dir .. "/l.safetensors", { sourse = g }) end, "unknown override 'sourse'")
end)

T.test("ff.checkpoint.resume_loop: restores a script's data stream, refuses a foreign or finished checkpoint", function()
  local dir = tmp("resume_loop")
  local ck = dir .. "/loop.safetensors"
  local f, draws = new_flow(), ff.rng(11)
  for _ = 1, 3 do f:step(data:batch(32, draws)) end
  f:save(ck, { draws = ff.checkpoint.rng_state(draws) })
  local want = draws:uniform()                          -- the stream's next draw after the save
  local g, again = new_flow(), ff.rng(11)
  local run, start = ff.checkpoint.resume_loop(g, ck, 10, again, "test")
  T.eq(start, 3, "resumed at the saved step"); T.eq(type(run), "table")
  T.eq(again:uniform(), want, "the data stream continues where it was saved")
  local none, zero = ff.checkpoint.resume_loop(new_flow(), dir .. "/absent.safetensors", 10, ff.rng(1), "test")
  T.eq(zero, 0, "no checkpoint: start at 0"); T.eq(next(none), nil, "no checkpoint: an empty run table")
  T.raises(function() ff.checkpoint.resume_loop(new_flow(), ck, 2, ff.rng(1), "test") end, "is at step 3, past --steps 2")
  f:save(ck)                                            -- a checkpoint without the stream
  T.raises(function() ff.checkpoint.resume_loop(new_flow(), ck, 10, ff.rng(1), "toy") end,
           "has no toy data-stream state (not written by this script)")
end)
