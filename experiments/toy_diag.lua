-- experiments/toy_diag.lua — diagnostics of the toy (toy_dfm.lua's setting: sphere, uniform orthant
-- source, bmlp 512 x 4 emb 64, AdamW weight decay 0, grad clip 1, batch 512, seed 1): trains and, at
-- the steps listed in --evals, samples --samples points (100 Riemannian-Euler steps, argmax) and prints
--   KL(model||true), the reverse KL (model histogram + half a count per bin), the entropy of the model
--   histogram H(q) against the truth's H(p), "slope" = least-squares slope of log q on log p per
--   position (1: right shape; > 1: too peaked, frequent symbols over-represented; 0: ignores p), its
--   correlation, KL(mean p) = KL of the mean sampled simplex point (what a sampling decoder would give
--   in expectation), and the endpoint sharpness: mean of max_c p_c and the fractions above 0.5 / 0.9 /
--   0.99 (1 = at a vertex). With --ema D both the live ("raw") and the EMA weights are evaluated on the
--   same trained model. --extra adds Euler 100 / Euler 1,000 / RK4 100 on --extra-samples points.
--   OPENBLAS_NUM_THREADS=1 fisherflow run experiments/toy_diag.lua --K 100 --steps 4000 --evals 1000,2000,4000
--   OPENBLAS_NUM_THREADS=1 fisherflow run experiments/toy_diag.lua --K 40 --ema 0.999 --extra
-- Results and reading: docs/RESULTS.md, toy section.
local ff = require "fisherflow"
local arg = ff.args {
  K = { 40, "K" }, steps = { 4000, "steps" }, evals = { "1000,2000,4000", "eval steps" },
  samples = { 10240, "samples per eval" }, lr = { 1e-3, "lr" }, ema = { 0, "ema decay (0 none)", type = "number" },
  cosine = { false, "cosine decay to lr_min over steps" }, lr_min = { 1e-5, "min lr" },
  coupler = { "exact_ot", "coupler" }, seed = { 1, "seed" }, extra = { false, "rk4 / euler1000 at the end" },
  batch = { 512, "batch" }, extra_samples = { 4096, "samples for the extra integrator checks" },
}
ff.seed(arg.seed)
local k, K = 4, arg.K
local truth = ff.data.toy_categorical { k = k, K = K, seed = arg.seed }
local draws = ff.rng(arg.seed + 7919)
local cfg = {
  space = ff.sphere { k = k, d = K - 1 }, geometry = "sphere",
  source = ff.plugin("source", "uniform_sphere"), coupler = ff.plugin("coupler", arg.coupler),
  network = ff.plugin("network", "bmlp", { hidden = 512, depth = 4, emb = 64 }),
  optim = ff.optim.adamw { lr = arg.lr, weight_decay = 0 }, grad_clip = 1.0, seed = arg.seed,
}
if arg.ema > 0 then cfg.ema = arg.ema end
if arg.cosine then cfg.schedule = ff.lr.cosine { base = arg.lr, total = arg.steps, min = arg.lr_min } end
local flow = ff.flow(cfg)
local evals = {}
for s in tostring(arg.evals):gmatch("%d+") do evals[tonumber(s)] = true end

local function evaluate(tag, opts)
  local N, done = arg.samples, 0
  local hist, pm = ff.zeros(k, K), ff.zeros(k, K)
  local mx = { 0, 0, 0, 0 } -- sum max, frac>0.5, frac>0.9, frac>0.99
  local tt = ff.util.now()
  while done < N do
    local n = math.min(2048, N - done)
    local p = flow:sample(n, opts)
    local h = ff.metrics.categorical_hist(flow:decode(p), K)
    for i = 0, k * K - 1 do hist.data[i] = hist.data[i] + h.data[i] * n end
    for r = 0, n * k - 1 do
      local m = 0
      local base = r * K
      for c = 0, K - 1 do local v = p.data[base + c]; if v > m then m = v end; pm.data[(r % k) * K + c] = pm.data[(r % k) * K + c] + v end
      mx[1] = mx[1] + m
      if m > 0.5 then mx[2] = mx[2] + 1 end
      if m > 0.9 then mx[3] = mx[3] + 1 end
      if m > 0.99 then mx[4] = mx[4] + 1 end
    end
    done = done + n
  end
  for i = 0, k * K - 1 do hist.data[i] = hist.data[i] / N; pm.data[i] = pm.data[i] / N end
  local kl, _, empty = ff.metrics.kl_categorical(hist, truth)
  local klpm = ff.metrics.kl_categorical(pm, truth)
  -- reverse KL (KT-smoothed), entropies, slope of log q on log p
  local rkl, Hq, Hp, beta, corr = 0, 0, 0, 0, 0
  for pos = 0, k - 1 do
    local sx, sy, sxx, sxy, syy = 0, 0, 0, 0, 0
    for c = 0, K - 1 do
      local i = pos * K + c
      local p, q = truth.data[i], hist.data[i]
      local qs = (q * N + 0.5) / (N + 0.5 * K)
      rkl = rkl + p * math.log(p / qs)
      if q > 0 then Hq = Hq - q * math.log(q) end
      Hp = Hp - p * math.log(p)
      local x, y = math.log(p), math.log(qs)
      sx, sy, sxx, sxy, syy = sx + x, sy + y, sxx + x * x, sxy + x * y, syy + y * y
    end
    local vx, vy, cxy = sxx / K - (sx / K) ^ 2, syy / K - (sy / K) ^ 2, sxy / K - sx * sy / K / K
    beta, corr = beta + cxy / vx, corr + cxy / math.sqrt(vx * vy)
  end
  local R = N * k
  print(("%-14s KL %.4f rev %.4f | H(q) %.4f H(p) %.4f | slope %.2f corr %.2f | KL(mean p) %.4f | max p: mean %.3f >.5 %.3f >.9 %.3f >.99 %.3f | empty %d | %.0fs"):format(
    tag, kl, rkl / k, Hq / k, Hp / k, beta / k, corr / k, klpm, mx[1] / R, mx[2] / R, mx[3] / R, mx[4] / R, empty, ff.util.now() - tt))
  io.stdout:flush()
end

local t0, window, cnt = ff.util.now(), 0, 0
for step = 1, arg.steps do
  local s = flow:step(ff.data.sample_categorical(truth, arg.batch, { rng = draws }))
  window, cnt = window + s.loss, cnt + 1
  if evals[step] then
    print(("step %d loss(avg since last) %.4f lr %.2e train %.0fs"):format(step, window / cnt, s.lr, ff.util.now() - t0))
    window, cnt = 0, 0
    if arg.ema > 0 then
      local C = require("fisherflow.core").C
      local e = C.ff_flow_ema(flow.ptr)
      C.ff_ema_swap(e); evaluate("raw@" .. step, { steps = 100 }); C.ff_ema_swap(e)
      evaluate("ema@" .. step, { steps = 100 })
    else
      evaluate("euler100@" .. step, { steps = 100 })
    end
  end
end
if arg.extra then
  arg.samples = arg.extra_samples
  evaluate("euler100", { steps = 100 })
  evaluate("euler1000", { steps = 1000 })
  evaluate("rk4_100", { stepper = "rk4", steps = 100 })
end
