-- experiments/toy_loss_floor.lua — the irreducible training loss of the toy with INDEPENDENT coupling:
-- 4 x E |u_t - E[u_t | x_t]|^2 (sum over the 4 positions, as the training loss), Monte Carlo over
-- x0 uniform on the orthant, x1 ~ truth, t ~ U[0,1), with the exact posterior mean field of
-- toy_exact_field.lua; also the loss of the zero field (E|u_t|^2) and the floor per t decile.
-- (Exact minibatch OT changes the pairing, so its floor differs; not computed.)
--   fisherflow run experiments/toy_loss_floor.lua --K 100 --n 5000
local ff = require "fisherflow"
local arg = ff.args { K = { 40, "K" }, n = { 20000, "MC draws per position" }, seed = { 1, "seed" } }
local K = arg.K
local truth = ff.data.toy_categorical { k = 4, K = K, seed = arg.seed }
math.randomseed(arg.seed)
local sqrt, acos, sin, cos, log, exp, abs = math.sqrt, math.acos, math.sin, math.cos, math.log, math.exp, math.abs
local function randn() return sqrt(-2 * log(1 - math.random())) * cos(2 * math.pi * math.random()) end
local bins, cnt, tot, totu = {}, {}, 0, 0
for b = 1, 10 do bins[b], cnt[b] = 0, 0 end
local x0, xt, u, w = {}, {}, {}, {}
for pos = 0, 3 do
  local p, cdf = {}, {}
  local acc = 0
  for j = 1, K do p[j] = truth.data[pos * K + j - 1]; acc = acc + p[j]; cdf[j] = acc end
  for n = 1, arg.n do
    local s = 0
    for i = 1, K do x0[i] = abs(randn()); s = s + x0[i] ^ 2 end
    s = sqrt(s); for i = 1, K do x0[i] = x0[i] / s end
    local r, j1 = math.random() * acc, K
    for j = 1, K do if r < cdf[j] then j1 = j; break end end
    local t = math.random()
    local th = acos(x0[j1])
    -- slerp and velocity
    local st = sin(th)
    for i = 1, K do
      local e = (i == j1) and 1 or 0
      xt[i] = (sin((1 - t) * th) * x0[i] + sin(t * th) * e) / st
      u[i] = th * (cos(t * th) * e - cos((1 - t) * th) * x0[i]) / st
    end
    -- posterior mean field at xt
    local m, lw = -1e300, w
    for j = 1, K do
      local c = math.min(1, math.max(-1, xt[j])); local rr = acos(c); local r0 = rr / (1 - t)
      if r0 <= math.pi / 2 then lw[j] = log(p[j]) + (K - 2) * (log(sin(r0)) - log(sin(rr))) else lw[j] = -1e300 end
      if lw[j] > m then m = lw[j] end
    end
    local Z, ac = 0, 0
    for j = 1, K do lw[j] = exp(lw[j] - m); Z = Z + lw[j] end
    local vb = {}
    for j = 1, K do
      local ww = lw[j] / Z; local c = math.min(1, math.max(-1, xt[j])); local rr = acos(c)
      local a = rr > 1e-8 and rr / sin(rr) or 1
      vb[j] = ww * a; ac = ac + ww * a * c
    end
    local err, uu = 0, 0
    for i = 1, K do local ub = (vb[i] - ac * xt[i]) / (1 - t); err = err + (u[i] - ub) ^ 2; uu = uu + u[i] ^ 2 end
    local b = math.floor(t * 10) + 1
    bins[b], cnt[b] = bins[b] + err, cnt[b] + 1
    tot, totu = tot + err, totu + uu
  end
end
local N = 4 * arg.n
local parts = {}
for b = 1, 10 do parts[b] = ("%.1f-%.1f:%.2f"):format((b - 1) / 10, b / 10, 4 * bins[b] / cnt[b]) end
print(("K %d: independent-coupling loss floor %.3f (zero-field loss %.3f); by t: %s"):format(K, 4 * tot / N, 4 * totu / N, table.concat(parts, " ")))
