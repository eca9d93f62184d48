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
