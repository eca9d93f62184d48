-- test_user.lua — what a new user meets first (issue 19): the README's metrics as library calls,
-- the held-out NLL, non-finite numbers in results, option tables checked for typos, the run's
-- configuration in PNGs, progress of long sampling, the thread setting.
local ff = require "fisherflow"
local T  = require "ff_test"
local tmp = T.tmp

T.test("metrics: ff.metrics.simplex = smoothed KL(target || samples), raw TV, floor", function()
  local res = 8
  local p = ff.data.smiley_masses{ res = res, m = 64 }
  local x = ff.random.dirichlet(ff.rng(3), { 3000, 1, 3 }, 1)
  local m = ff.metrics.simplex(x, p, { bins = res, floor = ff.data.smiley{ n = 3000, seed = 4 } })
  -- independently: counts from the histogram, then the definitions written out
  local h = ff.metrics.simplex_hist(x, { bins = res })
  local n, cells = 3000, res * res
  local kl, tv, missed, outside = 0, 0, 0, 0
  for i = 0, cells - 1 do
    local c, pi = h.data[i] * n, p.data[i]
    tv = tv + math.abs(h.data[i] - pi) / 2
    if pi > 0 then kl = kl + pi * math.log(pi / ((c + 0.5) / (n + cells / 2))) end
    if pi > 0 and c < 0.5 then missed = missed + 1 end
    if pi == 0 and c > 0.5 then outside = outside + 1 end
  end
  T.near(m.kl, kl, 1e-5, "smoothed KL")
  T.near(m.tv, tv, 1e-5, "TV")
  T.eq(m.missed_cells, missed, "missed cells"); T.eq(m.outside_cells, outside, "outside cells")
  T.eq(m.n, 3000, "n"); T.eq(m.off, 0, "off")
  T.ok(m.floor and m.floor.kl < m.kl and m.floor.tv < m.tv, "floor below the uniform model: %s / %s",
       tostring(m.floor and m.floor.kl), tostring(m.kl))
  T.raises(function() ff.metrics.simplex(x, p, { bins = res, floor = ff.data.smiley{ n = 10 } }) end,
           "as many target draws as samples (10 draws, 3000 samples)")
  T.raises(function() ff.metrics.simplex(x, p, { bins = 16 }) end, "masses has 64 cells, bins = 16 needs 256")
  T.raises(function() ff.metrics.kl_hist(x, p) end, "ff.metrics.kl_raw(samples, target) is what it computed")
  -- kl_raw is the unsmoothed KL(samples || target): infinite once a sample sits where p = 0
  local off_support = ff.tensor{ { { 0.98, 0.01, 0.01 } } }
  T.ok(ff.metrics.kl_raw(off_support, p, { bins = res }) == math.huge or p.data[0] > 0, "kl_raw")
end)

T.test("metrics: the held-out NLL cannot beat the truth", function()
  -- truth uniform on the 2-simplex (density 2); the model drops the corner p0 > 0.7 (true mass .09)
  local x = ff.random.dirichlet(ff.rng(5), { 2000, 1, 3 }, 1)
  local lq = ff.zeros(2000)
  local s, finite = 0, 0
  for i = 0, 1999 do
    if x.data[3 * i] > 0.7 then lq.data[i] = -math.huge
    else lq.data[i] = math.log(2 / 0.91); s = s + lq.data[i]; finite = finite + 1 end
  end
  local truth = -math.log(2)
  T.ok(-s / finite < truth - 0.05, "the old mean over finite points beats the truth: %g", -s / finite)
  local r = ff.metrics.nll(lq, { d = 2 })
  T.eq(r.outside, 2000 - finite, "outside count"); T.eq(r.n, 2000, "n")
  T.ok(r.nll > truth, "mixture NLL %g above the truth %g", r.nll, truth)
  local want = -(finite * math.log(0.999 * 2 / 0.91 + 0.002) + (2000 - finite) * math.log(0.002)) / 2000
  T.near(r.nll, want, 1e-4, "mixture NLL by hand")
  T.raises(function() ff.metrics.nll(lq, {}) end, "d must be a positive integer")
  T.raises(function() ff.metrics.nll(lq, { d = 2, epsilon = 0.1 }) end, "unknown option 'epsilon'")
end)

T.test("results: NaN, inf and -inf stay apart and read back (here and in Python's json)", function()
  local path = tmp("results_nonfinite.json")
  ff.results(path, { a = 0 / 0, b = math.huge, c = -math.huge, d = { 1, 0 / 0 }, e = 0.5 })
  local f = io.open(path); local text = f:read("*a"); f:close()
  T.ok(text:find('"a": NaN', 1, true) and text:find('"b": Infinity', 1, true) and text:find('"c": -Infinity', 1, true),
       "tokens: %s", text)
  local back = ff.json.decode(text)
  T.ok(back.a ~= back.a, "NaN back"); T.eq(back.b, math.huge, "inf back"); T.eq(back.c, -math.huge, "-inf back")
  T.ok(back.d[2] ~= back.d[2], "NaN in an array"); T.eq(back.e, 0.5, "finite untouched")
  -- the reader the docs name: Python's json module, when the machine has Python
  local py = io.popen("command -v python3 2>/dev/null"):read("*l")
  if py and py ~= "" then
    local p = io.popen(("python3 -c 'import json,math,sys; d=json.load(open(sys.argv[1])); "
      .. "print(math.isnan(d[\"a\"]), d[\"b\"] == float(\"inf\"), d[\"c\"] == float(\"-inf\"))' '%s'"):format(path))
    local out = p:read("*a"); p:close()
    T.eq(out, "True True True\n", "python3 reads them back")
  end
  ff.results(path, { a = 0 / 0 }, { nonfinite = "null" })
  f = io.open(path); text = f:read("*a"); f:close()
  T.ok(text:find('"a": null', 1, true), "null on request: %s", text)
  T.raises(function() ff.results(path, { x = { y = 0 / 0 } }, { nonfinite = "error" }) end, "value.x.y is NaN")
  T.raises(function() ff.results(path, {}, { nonfinte = "null" }) end, "unknown option 'nonfinte'")
  -- the JSONL log writes the same tokens
  local lp = tmp("log_nonfinite.jsonl")
  local s = ff.log.open(lp); s:write{ loss = 0 / 0, g = -math.huge }; s:close()
  local rec = ff.log.read(lp)[1]
  T.ok(rec.loss ~= rec.loss and rec.g == -math.huge, "log records keep NaN and -inf apart")
end)

local runner = T.runner
-- Runs a script (text) through the runner: stdout and stderr together, and the exit status.
local function run_script(name, text, args, env)
  local path = tmp(name)
  local f = assert(io.open(path, "w")); f:write(text); f:close()
  local p = io.popen(("%s'%s' run %s %s 2>&1; echo \"rc=$?\""):format(env or "", runner(), path, args or ""))
  local out = p:read("*a"); p:close()
  return out:gsub("rc=%d+%s*$", ""), tonumber(out:match("rc=(%d+)%s*$"))
end

local function small_flow(seed)
  return ff.flow{ k = 1, d = 2, seed = seed or 1, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
end

T.test("options: every options table refuses a misspelt key, naming it", function()
  local f = small_flow()
  local x = ff.data.smiley{ n = 20, seed = 1 }
  local cases = {
    { function() f:sample(10, { step = 10 }) end, "flow:sample: unknown option 'step'" },
    { function() f:log_prob(x, { step = 5 }) end, "flow:log_prob: unknown option 'step'" },
    { function() f:density{ resolutoin = 4 } end, "flow:density: unknown option 'resolutoin'" },
    { function() ff.data.smiley{ N = 10 } end, "ff.data.smiley: unknown option 'N'" },
    { function() ff.data.smiley{ n = 10, sed = 3 } end, "ff.data.smiley: unknown option 'sed'" },
    { function() ff.data.smiley_density{ re = 8 } end, "ff.data.smiley_density: unknown option 're'" },
    { function() ff.data.smiley_masses{ res = 8, M = 3 } end, "ff.data.smiley_masses: unknown option 'M'" },
    { function() ff.data.toy_categorical{ k = 2, K = 3, sede = 1 } end, "ff.data.toy_categorical: unknown option 'sede'" },
    { function() ff.data.sample_categorical(ff.data.toy_categorical{ k = 2, K = 3 }, 5, { see = 1 }) end,
      "ff.data.sample_categorical: unknown option 'see'" },
    { function() ff.data.sequences("x.txt", { alphabet = "AC", fromat = "lines" }) end, "ff.data.sequences: unknown option 'fromat'" },
    { function() ff.metrics.simplex_hist(x, { bin = 8 }) end, "ff.metrics.simplex_hist: unknown option 'bin'" },
    { function() ff.metrics.simplex(x, ff.data.smiley_masses{ res = 4, m = 16 }, { bins = 4, flor = x }) end,
      "ff.metrics.simplex: unknown option 'flor'" },
    { function() ff.metrics.kl_raw(x, x, { res = 4 }) end, "ff.metrics.kl_raw: unknown option 'res'" },
    { function() ff.viz.simplex(tmp("o.png"), { { points = x, titel = "a" } }) end, "ff.viz.simplex: panel 1: unknown field 'titel'" },
    { function() ff.viz.simplex(tmp("o.png"), { { points = x } }, { widht = 10 }) end, "ff.viz.simplex: options: unknown field 'widht'" },
    { function() ff.viz.lines(tmp("o.png"), { { y = { 1, 2 }, lable = "a" } }) end, "ff.viz.lines: series 1: unknown field 'lable'" },
    { function() ff.viz.lines(tmp("o.png"), { { y = { 1, 2 } } }, { logy = true }) end, "ff.viz.lines: axes: unknown field 'logy'" },
    { function() ff.viz.lines(tmp("o.png"), { { y = { 1, 2 } } }, {}, { titel = "x" }) end, "ff.viz.lines: options: unknown field 'titel'" },
    { function() ff.viz.simplex_density(tmp("o.png"), { samples = x }, { hieght = 3 }) end,
      "ff.viz.simplex_density: options: unknown field 'hieght'" },
    { function() ff.progress{ total = 3, lable = "x" } end, "ff.progress: unknown option 'lable'" },
    { function() ff.log.open(tmp("l.jsonl"), { apend = true }) end, "ff.log.open: unknown option 'apend'" },
    { function() ff.json.encode({}, { indnet = true }) end, "json.encode: unknown option 'indnet'" },
    { function() ff.args({ steps = { 3, "steps", typ = "number" } }, {}) end, "argument 'steps': unknown entry 'typ'" },
    { function() ff.checkpoint.flow(tmp("none.safetensors"), { sorce = 1 }) end, "" },
    { function() ff.source.lua{ name = "typo_src", sample = function() end, log_porb = function() end } end,
      "ff.source.lua \"typo_src\": unknown function 'log_porb' (known: create, log_prob, sample)" },
  }
  for i, c in ipairs(cases) do
    local err = T.raises(c[1], c[2])
    T.ok(tostring(err):find("test_user.lua:%d+:"), "case %d: the error points at the caller: %s", i, tostring(err))
  end
  -- plain fields on a Lua plugin are its own state, not options
  local src = ff.source.lua{ name = "stateful_src", alpha = 0.5, sample = function(self, rng, out) end }
  T.eq(src.alpha, 0.5, "plugin state kept")
end)

T.test("options: ff.checkpoint.flow refuses an unknown override", function()
  local f = small_flow()
  local path = tmp("ckpt_keys.safetensors")
  f:save(path)
  T.raises(function() ff.checkpoint.flow(path, { sorce = "uniform_sphere" }) end, "ff.checkpoint.flow: unknown override 'sorce'")
end)

T.test("progress: sampling in batches from Lua draws what one C call draws", function()
  local a, b = small_flow(7), small_flow(7)
  local x = a:sample(300, { batch = 64, steps = 5, progress = false })
  local o = ff.C.ff_flow_default_sample_opts()
  o.batch, o.steps = 64, 5
  local y = ff.zeros(300, 1, 3)
  ff.check(ff.C.ff_flow_sample(b.ptr, y, nil, nil, o, nil))
  for i = 0, 899 do T.eq(x.data[i], y.data[i], "sample value " .. i) end
  -- log_prob in batches of 100 against one call over all 300 rows (exact estimator: no draws)
  local l1 = a:log_prob(x, { steps = 4, batch = 100, progress = false, estimator = "exact" })
  local l2 = a:log_prob(x, { steps = 4, batch = 300, estimator = "exact" })
  for i = 0, 299 do
    local u, v = l1.data[i], l2.data[i]
    if v == -math.huge then T.eq(u, v, "log_prob " .. i .. " outside the support")
    else T.near(u, v, 1e-4 * math.max(1, math.abs(v)), "log_prob " .. i) end
  end
  T.raises(function() a:sample(10, { batch = 0.5 }) end, "batch must be a positive integer")
  T.raises(function() a:sample(10, { x0 = ff.zeros(3, 1, 3) }) end, "x0 has 3 rows, n = 10")
end)

T.test("progress: long sampling and density evaluation show a line (not a terminal: every 10 %)", function()
  local script = [[
local ff = require "fisherflow"
local f = ff.flow{ k = 1, d = 2, seed = 1, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
local quiet = ...
local p = true
if quiet == "quiet" then p = nil end
f:sample(200, { batch = 20, steps = 2, progress = p })
f:density{ res = 8, steps = 2, batch = 16, progress = p }
f:log_prob(ff.data.smiley{ n = 40 }, { steps = 2, batch = 10, progress = p })
print("done")
]]
  local out, rc = run_script("progress_script.lua", script)
  T.eq(rc, 0, "status: " .. out)
  T.ok(out:find("sample 200/200 (100%)", 1, true), "sample line: %s", out)
  T.ok(out:find("sample 20/200 (10%)", 1, true), "a line every 10 %%: %s", out)
  T.ok(out:find("density 64/64 (100%)", 1, true), "density line: %s", out)
  T.ok(out:find("log_prob 40/40 (100%)", 1, true), "log_prob line: %s", out)
  -- progress = nil: calls shorter than two seconds stay silent
  out, rc = run_script("progress_script.lua", script, "quiet")
  T.eq(rc, 0, "status: " .. out)
  T.ok(not out:find("sample", 1, true) and not out:find("density", 1, true), "short calls are silent: %s", out)
end)

-- The text chunks of a PNG file: { key = value } (tEXt, and uncompressed iTXt).
local function png_text(path)
  local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close()
  T.eq(s:sub(1, 8), "\137PNG\r\n\26\n", "PNG signature")
  local out, pos = {}, 9
  while pos + 8 <= #s do
    local a, b, c, d = s:byte(pos, pos + 3)
    local len = ((a * 256 + b) * 256 + c) * 256 + d
    local kind, data = s:sub(pos + 4, pos + 7), s:sub(pos + 8, pos + 7 + len)
    if kind == "tEXt" then
      local k, v = data:match("^([^%z]+)%z(.*)$"); out[k] = v
    elseif kind == "iTXt" then
      local k, flag, rest = data:match("^([^%z]+)%z(.).(.*)$")
      T.eq(flag, "\0", "iTXt uncompressed")
      out[k] = rest:match("^[^%z]*%z[^%z]*%z(.*)$")
    end
    pos = pos + 12 + len
  end
  return out
end

T.test("viz: every PNG carries the run's whole configuration in its text chunks", function()
  local png = tmp("meta/config.png")
  local script = ([[
local ff = require "fisherflow"
local arg = ff.args { seed = { 7, "seed" }, steps = { 3, "steps" }, name = { "ünï", "a UTF-8 default" } }
ff.seed(arg.seed)
local f = ff.flow{ k = 1, d = 2, seed = arg.seed, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
ff.viz.simplex(%q, { { points = f:sample(50, { steps = 2 }) } }, { flow = f, meta = { note = "mine" } })
ff.viz.simplex_density(%q, { model = f, res = 6, steps = 2 })
]]):format(png, png .. ".2.png")
  local out, rc = run_script("meta_script.lua", script, "--steps 5")
  T.eq(rc, 0, "status: " .. out)
  for _, path in ipairs({ png, png .. ".2.png" }) do
    local t = png_text(path)
    T.eq(t.Software, "fisherflow " .. ff.version, "version")
    T.ok(t.script and t.script:find("meta_script.lua", 1, true), "script: %s", tostring(t.script))
    T.eq(t.args, "--steps 5", "the command line as typed")
    local a = ff.json.decode(t.arguments or "null")
    T.eq(a.steps, 5, "resolved steps"); T.eq(a.seed, 7, "the default seed is there"); T.eq(a.name, "ünï", "UTF-8 value")
    T.eq(t.seed, "7", "ff.seed's seed")
    local cfg = ff.json.decode(t.flow or "null")
    T.eq(cfg.seed, 7, "the flow's configuration"); T.eq(cfg.network.name, "bmlp", "flow network")
    if ff.C and package.loaded["fisherflow.config"].commit then
      T.eq(t.commit, package.loaded["fisherflow.config"].commit, "commit")
    end
  end
  T.eq(png_text(png).note, "mine", "the caller's own entries")
end)

T.test("threads: --threads and FISHERFLOW_THREADS set OpenBLAS's threads, printed at start", function()
  local script = 'local ff = require "fisherflow"; print("threads=" .. ff.threads().threads)\n'
  local out, rc = run_script("threads_script.lua", script, "", "FISHERFLOW_THREADS=2 ")
  T.eq(rc, 0, "status: " .. out)
  T.ok(out:find("threads=2", 1, true), "env: %s", out)
  local first = out:match("^[^\n]*")
  T.ok(first:find("^fisherflow " .. ff.version:gsub("%.", "%%.")) and first:find(": 2 threads, OpenBLAS [%d.]+ %(%w+%)$"),
       "start line: %s", first)
  local path = tmp("threads_script.lua")
  local p = io.popen(("FISHERFLOW_THREADS=2 '%s' run --threads 1 '%s' 2>&1"):format(runner(), path))
  out = p:read("*a"); p:close()
  T.ok(out:find("threads=1", 1, true) and out:find(": 1 thread, OpenBLAS", 1, true), "--threads wins: %s", out)
  p = io.popen(("'%s' run --threads=3 '%s' 2>&1"):format(runner(), path))
  out = p:read("*a"); p:close()
  T.ok(out:find("threads=3", 1, true), "--threads=3: %s", out)
  p = io.popen(("'%s' run --threads zero '%s' 2>&1; echo rc=$?"):format(runner(), path))
  out = p:read("*a"); p:close()
  T.ok(out:find("--threads: 'zero' is not a thread count", 1, true) and out:find("rc=1", 1, true), "bad value: %s", out)
  T.eq(ff.threads(1).threads, 1, "ff.threads(n) sets")
  local info = ff.threads()
  T.ok(type(info.blas) == "string" and type(info.core) == "string", "blas version and core name")
end)

T.test("fit says once when the coupler dominates the step", function()
  -- exact OT at batch 2048 on the 2-simplex against a tiny network: the assignment is most of the
  -- step; with the independent coupler it is not, and nothing is said.
  local script = [[
local ff = require "fisherflow"
local data = ff.data.smiley { n = 4096, seed = 1 }
local flow = ff.flow{ k = 1, d = 2, seed = 1, coupler = ff.plugin("coupler", COUPLER),
                      network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
flow:fit(data, { steps = 4, batch = 2048, progress = false })
]]
  local out, rc = run_script("notice_ot.lua", script:gsub("COUPLER", '"exact_ot"'))
  T.eq(rc, 0, "exact_ot run: " .. out)
  local n = select(2, out:gsub("flow:fit: coupler exact_ot takes %d+%% of each step", ""))
  T.eq(n, 1, "one notice naming exact_ot and its share: " .. out)
  T.ok(out:find("at batch 2048", 1, true), "the notice names the batch: %s", out)
  out, rc = run_script("notice_indep.lua", script:gsub("COUPLER", '"independent"'))
  T.eq(rc, 0, "independent run: " .. out)
  T.ok(not out:find("takes %d+%% of each step"), "no notice with the independent coupler: %s", out)
end)
