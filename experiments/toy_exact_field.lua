-- experiments/toy_exact_field.lua — control for the toy: no network. Integrates the EXACT marginal
-- velocity field of independent-coupling Riemannian flow matching (uniform orthant source -> the
-- seeded true categorical, one position at a time) with the same 100-step Riemannian Euler (exp map,
-- orthant fold, renormalise; re-implemented here in Lua), decodes by argmax and prints KL(model||true)
-- averaged over positions, the mean max_c p_c at t = 1, and the posterior effective sample size
-- (1 / sum w_j^2 over vertices) along the first trajectory, i.e. how early the symbol is decided.
-- Posterior of vertex j at x_t: w_j ∝ p_j [r0 <= pi/2] (sin r0 / sin r)^(K-2), r = arccos x_j,
-- r0 = r / (1 - t) (volume element sin^(d-1) r dr of geodesic polar coordinates around e_j, d = K-1);
-- field = sum_j w_j log_{x_t}(e_j) / (1 - t).
--   fisherflow run experiments/toy_exact_field.lua --K 160 --samples 10240
local ff = require "fisherflow"
local arg = ff.args { K = { 40, "K" }, samples = { 10240, "samples per position" }, steps = { 100, "Euler steps" },
                      seed = { 1, "seed" }, positions = { 4, "positions evaluated" } }
local K, N, S = arg.K, arg.samples, arg.steps
local truth = ff.data.toy_categorical { k = 4, K = K, seed = arg.seed }
math.randomseed(arg.seed)
local function randn() return math.sqrt(-2 * math.log(1 - math.random())) * math.cos(2 * math.pi * math.random()) end
local sqrt, acos, sin, cos, log, exp, abs = math.sqrt, math.acos, math.sin, math.cos, math.log, math.exp, math.abs
local klsum, maxsum = 0, 0
local ess_t = {}
for pos = 0, arg.positions - 1 do
  local p, lp = {}, {}
  for j = 1, K do p[j] = truth.data[pos * K + j - 1]; lp[j] = log(p[j]) end
  local hist = {}
  for j = 1, K do hist[j] = 0 end
  local x, v, lw = {}, {}, {}
  for n = 1, N do
    local s = 0
    for j = 1, K do x[j] = abs(randn()); s = s + x[j] * x[j] end
    s = sqrt(s); for j = 1, K do x[j] = x[j] / s end
    for st = 0, S - 1 do
      local t, h = st / S, 1 / S
      local m = -1e300
      for j = 1, K do
        local c = math.min(1, math.max(-1, x[j]))
        local r = acos(c)
        local r0 = r / (1 - t)
        if r0 <= math.pi / 2 and r > 1e-12 then
          lw[j] = lp[j] + (K - 2) * (log(sin(r0)) - log(sin(r)))
        elseif r <= 1e-12 then lw[j] = lp[j] + (K - 2) * (-log(1 - t))
        else lw[j] = -1e300 end
        if lw[j] > m then m = lw[j] end
      end
      if m == -1e300 then  -- no admissible vertex (discretisation): nearest vertex
        local bj = 1; for j = 2, K do if x[j] > x[bj] then bj = j end end
        for j = 1, K do lw[j] = (j == bj) and 0 or -1e300 end; m = 0
      end
      local Z, ac = 0, 0
      for j = 1, K do lw[j] = exp(lw[j] - m); Z = Z + lw[j] end
      local s2 = 0
      for j = 1, K do
        local w = lw[j] / Z
        local c = math.min(1, math.max(-1, x[j])); local r = acos(c)
        local a = r > 1e-8 and r / sin(r) or 1
        v[j] = w * a; ac = ac + w * a * c; s2 = s2 + w * w
      end
      if n == 1 and pos == 0 then ess_t[st] = 1 / s2 end
      -- v = (sum_j w_j a_j e_j - ac x) / (1-t); Euler: exp map, fold, normalise
      local vv = 0
      for j = 1, K do v[j] = (v[j] - ac * x[j]) / (1 - t) * h; vv = vv + v[j] * v[j] end
      local a = sqrt(vv); local co, sc = cos(a), a > 1e-12 and sin(a) / a or 1
      local q = 0
      for j = 1, K do x[j] = abs(co * x[j] + sc * v[j]); q = q + x[j] * x[j] end
      q = sqrt(q); for j = 1, K do x[j] = x[j] / q end
    end
    local bj = 1; for j = 2, K do if x[j] > x[bj] then bj = j end end
    hist[bj] = hist[bj] + 1; maxsum = maxsum + x[bj] * x[bj]
  end
  local kl = 0
  for j = 1, K do local q = hist[j] / N; if q > 0 then kl = kl + q * log(q / p[j]) end end
  klsum = klsum + kl
end
local ess = {}
for _, st in ipairs { 0, 5, 10, 20, 30, 50, 80, 99 } do ess[#ess + 1] = ("t=%.2f:%.1f"):format(st / S, ess_t[st]) end
print(("true field K %d, %d samples x %d positions, %d Euler steps: KL %.5f, mean max p %.4f; posterior ESS of sample 1 %s")
  :format(K, N, arg.positions, S, klsum / arg.positions, maxsum / (N * arg.positions), table.concat(ess, " ")))
