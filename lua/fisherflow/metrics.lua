-- metrics.lua — evaluation numbers (metrics.h): simplex histograms, KL/TV between histograms,
-- the sample metrics README.md reports (KL, TV, noise floor), the held-out NLL, per-position
-- categorical KL; plus metrics written in Lua (ff.metric.lua{...}).
local core   = require "fisherflow.core"
local tensor = require "fisherflow.tensor"
local util   = require "fisherflow.util"
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

  local function bins_of(fname, t, known)
    t = util.options(fname, t, known)
    local res = t.bins or 64
    if type(res) ~= "number" or res < 1 or res ~= math.floor(res) then
      raise(("%s: bins must be a positive integer, got %s"):format(fname, tostring(res)))
    end
    return res, t
  end

  -- ff.metrics.simplex_hist(points [n, 3] or [n, 1, 3], { bins = 64 }) -> hist [bins^2] (metrics.h
  -- cell order, sums to 1), points off the simplex.
  function metrics.simplex_hist(points, t)
    local res = bins_of("ff.metrics.simplex_hist", t, { bins = true })
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

  -- The sample metrics README.md reports (metrics.h, ff_simplex_metrics_compute), for points against
  -- the target's exact cell masses [bins^2] (ff.data.smiley_masses{ res = bins }):
  --   kl  KL(target || sample histogram smoothed by half a count per cell) -- finite for any model
  --   tv  total variation between the raw sample histogram and the target masses
  -- plus n (points binned), off (points off the simplex), outside_cells (cells with samples where the
  -- target has no mass), missed_cells (cells with target mass and no sample).
  local function simplex_metrics(fname, points, masses, res)
    if not tensor.is_tensor(points) then raise(fname .. ": points must be a tensor [n, 3] or [n, 1, 3]") end
    if not tensor.is_tensor(masses) then raise(fname .. ": masses must be a tensor of bins^2 cell masses") end
    if masses:numel() ~= res * res then
      raise(("%s: masses has %d cells, bins = %d needs %d (ff.data.smiley_masses{ res = %d })")
            :format(fname, masses:numel(), res, res * res, res))
    end
    local m = ffi.new("ff_simplex_metrics")
    check(C.ff_simplex_metrics_compute(points, masses:is_contiguous() and masses or masses:copy(), res, m))
    return { kl = m.kl, tv = m.tv, n = tonumber(m.n), off = tonumber(m.off),
             outside_cells = tonumber(m.outside), missed_cells = tonumber(m.missed) }
  end

  -- ff.metrics.simplex(samples, masses, { bins = 64, floor = target_draws }) -> the table above; with
  -- floor = points drawn from the target itself (as many as samples), also floor = the same table for
  -- them: the noise floor, what a perfect model scores with that many samples.
  function metrics.simplex(points, masses, t)
    local fname = "ff.metrics.simplex"
    local res
    res, t = bins_of(fname, t, { bins = true, floor = true })
    local out = simplex_metrics(fname, points, masses, res)
    if t.floor ~= nil then
      if not tensor.is_tensor(t.floor) then raise(fname .. ": floor must be a tensor of target draws") end
      if t.floor:size(1) ~= points:size(1) then
        raise(("%s: the floor needs as many target draws as samples (%d draws, %d samples): the floor "
               .. "depends on the count"):format(fname, t.floor:size(1), points:size(1)))
      end
      out.floor = simplex_metrics(fname .. " (floor)", t.floor, masses, res)
    end
    return out
  end

  -- ff.metrics.kl_raw(samples, target, { bins = 64 }) -> KL(sample histogram || target), unsmoothed
  -- (+inf as soon as one sample lands in a cell where the target has none), and the full divergence
  -- table. target: points [m, 3]/[m, 1, 3] (binned the same way), or cell masses [bins^2].
  function metrics.kl_raw(x, target, t)
    local res = bins_of("ff.metrics.kl_raw", t, { bins = true })
    local q = metrics.simplex_hist(x, { bins = res })
    local p = target
    if not tensor.is_tensor(p) then raise("ff.metrics.kl_raw: target must be a tensor") end
    if target.ndim ~= 1 then p = metrics.simplex_hist(target, { bins = res }) end
    local d = metrics.divergence(q, p)
    return d.kl, d
  end

  -- kl_hist was KL(samples || target) on raw histograms, not the KL README.md reports: refused with
  -- the two names that say which is which, rather than kept under a name that suggests either.
  function metrics.kl_hist()
    raise("ff.metrics.kl_hist is gone: ff.metrics.kl_raw(samples, target) is what it computed (KL(samples || target), "
          .. "raw histograms, inf where the target has no mass); ff.metrics.simplex(samples, masses).kl is "
          .. "README.md's KL(target || smoothed samples)")
  end

  -- ff.metrics.nll(log_q, { d =, k = 1, eps = 1e-3 }) -> { nll =, n =, outside = }: the held-out
  -- NLL of the mixture (1 - eps) q + eps u (metrics.h, ff_nll_mixture; docs/MATH.md says why), u the
  -- uniform density on k positions of the d-simplex; log_q: flow:log_prob's values ([n] tensor),
  -- -inf at points outside the model's support (counted in outside, costing -log(eps u) each).
  function metrics.nll(lq, t)
    local fname = "ff.metrics.nll"
    if not tensor.is_tensor(lq) or lq.ndim ~= 1 then raise(fname .. ": log_q must be a [n] tensor (flow:log_prob's)") end
    t = util.options(fname, t, { d = true, k = true, eps = true })
    local d, k, eps = t.d, t.k or 1, t.eps or 1e-3
    local function posint(name, v)
      if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
        raise(("%s: %s must be a positive integer, got %s"):format(fname, name, tostring(v)))
      end
    end
    posint("d", d); posint("k", k)
    if type(eps) ~= "number" then raise(fname .. ": eps must be a number in (0, 1), got " .. tostring(eps)) end
    local st = ffi.new("ff_nll_stats")
    lq = lq:is_contiguous() and lq or lq:copy()
    check(C.ff_nll_mixture(lq.data, lq:numel(), C.ff_log_uniform_simplex(k, d), eps, st))
    return { nll = st.nll, n = tonumber(st.n), outside = tonumber(st.outside), eps = eps }
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
