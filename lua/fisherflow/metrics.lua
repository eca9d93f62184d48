-- metrics.lua — evaluation numbers (metrics.h): simplex histograms, KL/TV between histograms,
-- per-position categorical KL; plus metrics written in Lua (ff.metric.lua{...}).
local core   = require "fisherflow.core"
local tensor = require "fisherflow.tensor"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}

local function divergence_table(d)
  return { kl = d.kl, tv = d.tv, empty = tonumber(d.empty), unsupported = tonumber(d.unsupported) }
end

function M.install(ff)
  local metrics = {}
  ff.metrics = metrics
  -- Lua metrics: ff.metrics.run({ m1, m2 }, samples, data) -> { name = value }
  function metrics.run(list, samples, data)
    local out = {}
    for _, m in ipairs(list) do
      if type(m) ~= "table" or not m.lua or m.kind ~= "metric" then
        raise("ff.metrics.run: entries must be ff.metric.lua{...}")
      end
      out[m.name] = m.compute(m, samples, data)
    end
    return out
  end
  if not core.has("ff_simplex_hist") then return end

  -- ff.metrics.simplex_hist(points [n, 3] or [n, 1, 3], { bins = 64 }) -> hist [bins^2] (metrics.h
  -- cell order, sums to 1), points off the simplex.
  function metrics.simplex_hist(points, t)
    local res = (t and (t.bins or t.res)) or 64
    local hist = tensor.zeros(res * res)
    local off = ffi.new("int64_t[1]")
    check(C.ff_simplex_hist(points, res, hist, off))
    return hist, tonumber(off[0])
  end

  -- ff.metrics.divergence(q, p) -> { kl = KL(q || p), tv =, empty =, unsupported = }
  function metrics.divergence(q, p)
    if not tensor.is_tensor(q) or not tensor.is_tensor(p) then raise("ff.metrics.divergence: expects two tensors") end
    if q:numel() ~= p:numel() then
      raise(("ff.metrics.divergence: %d bins vs %d"):format(q:numel(), p:numel()))
    end
    q = q:is_contiguous() and q or q:copy()
    p = p:is_contiguous() and p or p:copy()
    local d = ffi.new("ff_divergence")
    check(C.ff_divergence_compute(q.data, p.data, q:numel(), d))
    return divergence_table(d)
  end

  -- ff.metrics.kl_hist(samples, target, { bins = 64 }) -> KL(samples' histogram || target's), and
  -- the full divergence table. target: points [m, 3]/[m, 1, 3], or cell masses [bins^2].
  function metrics.kl_hist(x, target, t)
    local res = (t and (t.bins or t.res)) or 64
    local q = metrics.simplex_hist(x, { bins = res })
    local p = target
    if target.ndim ~= 1 then p = metrics.simplex_hist(target, { bins = res }) end
    local d = metrics.divergence(q, p)
    return d.kl, d
  end

  -- ff.metrics.categorical_hist(tokens [n, k] ids or [n, k, K] rows, K) -> [k, K]
  function metrics.categorical_hist(tokens, K)
    local k = tokens:size(2)
    local hist = tensor.zeros(k, K)
    check(C.ff_categorical_hist(tokens, K, hist))
    return hist
  end

  -- ff.metrics.kl_categorical(q_hist [k, K], p_true [k, K]) -> mean KL over positions, per-position
  -- divergence tables, empty bins.
  function metrics.kl_categorical(q, p)
    local k = q:size(1)
    local mean = ffi.new("double[1]")
    local per = ffi.new("ff_divergence[?]", k)
    local empty = ffi.new("int64_t[1]")
    check(C.ff_kl_categorical(q, p, mean, per, empty))
    local list = {}
    for i = 0, k - 1 do list[i + 1] = divergence_table(per[i]) end
    return mean[0], list, tonumber(empty[0])
  end
end

return M
