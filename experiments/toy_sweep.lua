-- experiments/toy_sweep.lua — collects the runs of experiments/toy_sweep.sh (the paper's Fig. 3,
-- docs/PAPER_PROTOCOLS.md §2): every toy_dfm JSON in --dir becomes a row of <dir>/sweep.json (K, geometry,
-- coupler, KL, empty bins, steps, samples, EMA decay, wall times) and a point of <dir>/sweep.png (KL against
-- K, log y, one series per geometry/coupler/budget, the paper's preliminary numbers, the uniform model
-- and the noise floor dashed).
--   fisherflow run experiments/toy_sweep.lua --dir out/toy_sweep      (toy_sweep.sh calls this)
local ff = require "fisherflow"

local arg = ff.args {
  dir = { "out/toy_sweep", "directory holding the toy_dfm.lua results (*.json)" },
}

-- docs/PAPER_PROTOCOLS.md §2: preliminary numbers from the official repository's plotting notebook (d751755).
local Ks = { 5, 10, 20, 40, 60, 80, 100, 120, 140, 160 }
local reference = {
  { label = "Dirichlet FM (paper repo, prelim.)",
    y = { 0.04784, 0.1304, 0.02398, 0.05646, 0.07041, 0.09034, 0.1034, 0.1152, 0.12, 0.1235 } },
  { label = "Fisher-Flow (paper repo, prelim.)",
    y = { 0.001, 0.0025, 0.004, 0.02, 0.026, 0.025, 0.05, 0.08, 0.14, 0.235 } },
}

local rows, groups, order = {}, {}, {}
local ls = io.popen('ls "' .. arg.dir .. '"')
for file in ls:lines() do
  if file:match("%.json$") and file ~= "sweep.json" then
    local f = assert(io.open(arg.dir .. "/" .. file, "rb"))
    local r = ff.json.decode(f:read("*a")); f:close()
    if type(r) == "table" and r.K and r.kl then
      rows[#rows + 1] = { K = r.K, geometry = r.geometry, coupler = r.coupler, source = r.source,
        kl = r.kl, empty_bins = r.empty_bins, steps = r.steps, batch = r.batch, samples = r.samples,
        ema = r.ema or 0, seed = r.seed, train_seconds = r.train_seconds, eval_seconds = r.eval_seconds, file = file,
        kl_uniform_model = r.kl_uniform_model, kl_true_samples = r.kl_true_samples }
    end
  end
end
ls:close()
if #rows == 0 then error("toy_sweep.lua: no toy_dfm results in " .. arg.dir, 0) end
table.sort(rows, function(a, b)
  if a.geometry ~= b.geometry then return a.geometry > b.geometry end   -- sphere before linear
  if a.coupler ~= b.coupler then return a.coupler < b.coupler end
  if a.steps ~= b.steps then return a.steps < b.steps end
  if a.ema ~= b.ema then return a.ema < b.ema end
  return a.K < b.K
end)

for _, r in ipairs(rows) do                                    -- one series per method and budget
  local key = ("%s + %s, %d steps, %dk samples"):format(r.geometry, r.coupler, r.steps, r.samples / 1000)
  if r.ema > 0 then key = key .. (", EMA %g"):format(r.ema) end
  if not groups[key] then groups[key] = { label = key, x = {}, y = {}, marker = "circle" }; order[#order + 1] = key end
  local g = groups[key]
  g.x[#g.x + 1], g.y[#g.y + 1] = r.K, math.max(r.kl, 1e-6)
end
local series = {}
for _, key in ipairs(order) do series[#series + 1] = groups[key] end
local uniform, seen = { label = "uniform model (yardstick, seed 1 tables)", x = {}, y = {}, line = "dashed" }, {}
for _, r in ipairs(rows) do                                   -- KL of a model that ignores the data
  if r.kl_uniform_model and r.seed == 1 and not seen[r.K] then seen[r.K] = r.kl_uniform_model end
end
for _, K in ipairs(Ks) do
  if seen[K] then uniform.x[#uniform.x + 1], uniform.y[#uniform.y + 1] = K, seen[K] end
end
if #uniform.x > 0 then series[#series + 1] = uniform end
-- The estimator's own floor (KL of draws from the true table, about (K-1)/(2 samples)), per K from
-- the run with the most samples, so a method at the floor is told apart from one above it.
local floor, best, counts = { x = {}, y = {}, line = "dashed", marker = "triangle" }, {}, {}
for _, r in ipairs(rows) do
  if r.kl_true_samples and r.seed == 1 and (not best[r.K] or r.samples > best[r.K].samples) then best[r.K] = r end
end
for _, K in ipairs(Ks) do
  if best[K] then
    floor.x[#floor.x + 1], floor.y[#floor.y + 1] = K, math.max(best[K].kl_true_samples, 1e-6)
    counts[best[K].samples] = true
  end
end
local n_counts = {}
for n in pairs(counts) do n_counts[#n_counts + 1] = n end
floor.label = #n_counts == 1 and ("noise floor: %dk draws from the true table"):format(n_counts[1] / 1000)
              or "noise floor: draws from the true table (largest sample count per K)"
if #floor.x > 0 then series[#series + 1] = floor end
for _, ref in ipairs(reference) do
  series[#series + 1] = { label = ref.label, x = Ks, y = ref.y, line = "dashed", marker = "cross" }
end

ff.viz.lines(arg.dir .. "/sweep.png", series,
  { xlabel = "K (symbols per position, 4 positions)", ylabel = "KL(model || true)", log_y = true,
    legend = "lower_right" },
  { title = "Toy (Δ^K)^4 task: KL of argmax-decoded samples, 100 Euler steps" })
ff.results(arg.dir .. "/sweep.json", { rows = rows, reference = { K = Ks, series = reference } })
for _, r in ipairs(rows) do
  print(("%-7s %-12s K %3d  KL %.5f  empty %3d  steps %6d  ema %-5g  samples %7d  train %6.0f s  eval %6.0f s"):format(
    r.geometry, r.coupler, r.K, r.kl, r.empty_bins, r.steps, r.ema, r.samples, r.train_seconds, r.eval_seconds))
end
