-- evaluate.lua — the batch loops behind flow:sample, flow:log_prob and flow:density (flow.lua
-- delegates): one C call per batch of rows, so that a call that runs long shows a progress line
-- (progress.lua's rules: a redrawn bar on a terminal, a line every 10 % otherwise; nothing for a
-- call shorter than two seconds). Sampling in batches from Lua draws exactly what one C call
-- would (ff_flow_sample draws its batches in order from the flow's sampling stream). Also the
-- discrete likelihood bound: ff.dequantise and flow:bits.
local core     = require "fisherflow.core"
local tensor   = require "fisherflow.tensor"
local progress = require "fisherflow.progress"
local util     = require "fisherflow.util"
local viz      = require "fisherflow.viz"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}
local PROGRESS_AFTER = 2      -- seconds before a progress line appears (progress = nil)

local options = util.options

local function batch_of(fname, v, default)
  if v == nil or v == 0 then return default end
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
    raise(("%s: batch must be a positive integer, got %s"):format(fname, tostring(v)))
  end
  return v
end

-- A bar over `total` rows: none with progress = false, shown at once with true, after
-- PROGRESS_AFTER seconds with nil.
local function bar_for(fname, mode, total, label)
  if mode == false then return nil end
  if mode ~= nil and mode ~= true then raise(fname .. ": progress must be true, false or nil, got " .. tostring(mode)) end
  return progress.new({ total = total, label = label, after = mode and 0 or PROGRESS_AFTER })
end

local function rows(t, first, count)
  if t == nil then return nil end
  return t:narrow(1, first + 1, first + count)
end

local sample_keys = { stepper = true, steps = true, eps_abs = true, eps_rel = true, batch = true, x0 = true,
                      cond = true, progress = true }

-- flow:sample(n, opts): see flow.lua. c_sample: the jit-off wrapper of ff_flow_sample.
function M.sample(flow, n, opts, c_sample)
  local fname = "flow:sample"
  opts = options(fname, opts, sample_keys)
  if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
    raise(fname .. ": n must be a positive integer, got " .. tostring(n))
  end
  local o = C.ff_flow_default_sample_opts()
  if opts.stepper ~= nil then o.stepper = opts.stepper end
  if opts.steps ~= nil then o.steps = opts.steps end
  if opts.eps_abs ~= nil then o.eps_abs = opts.eps_abs end
  if opts.eps_rel ~= nil then o.eps_rel = opts.eps_rel end
  local B = batch_of(fname, opts.batch, 4096)          -- ff_flow_sample's own default
  o.batch = B
  tensor.expect(fname, "x0", opts.x0, true)
  tensor.expect(fname, "cond", opts.cond, true)
  for _, name in ipairs({ "x0", "cond" }) do
    local t = opts[name]
    if t ~= nil and (t.ndim < 1 or t:size(1) ~= n) then
      raise(("%s: %s has %d rows, n = %d"):format(fname, name, t.ndim < 1 and 0 or t:size(1), n))
    end
  end
  local out = tensor.zeros(n, flow.k, flow.d + 1)
  local st = ffi.new("ff_sample_stats")
  local nfe, ms = 0, 0
  local bar = n > B and bar_for(fname, opts.progress, n, "sample") or nil
  local ok, err = pcall(function()
    for i0 = 0, n - 1, B do
      local b = math.min(B, n - i0)
      check(c_sample(flow.ptr, rows(out, i0, b), rows(opts.x0, i0, b), rows(opts.cond, i0, b), o, st))
      nfe, ms = nfe + tonumber(st.nfe), ms + st.ms
      if bar then bar:update(i0 + b) end
    end
  end)
  if bar then bar:finish() end
  if not ok then error(err, 0) end                    -- the message already names the user's line
  return out, { nfe = nfe, ms = ms }                   -- opts keeps the stepper string alive
end

local log_prob_keys = { steps = true, estimator = true, probes = true, cond = true, batch = true, progress = true }

-- flow:log_prob(p, opts) -> [n]; label names the progress line (flow:density passes "density").
function M.log_prob(flow, p, opts, c_log_prob, label, fname)
  fname = fname or "flow:log_prob"
  opts = options(fname, opts, log_prob_keys)
  tensor.expect(fname, "p", p)
  local o = C.ff_flow_default_logprob_opts()
  if opts.steps ~= nil then o.steps = opts.steps end
  if opts.estimator ~= nil then o.estimator = opts.estimator end
  if opts.probes ~= nil then o.probes = opts.probes end
  local n = p.ndim >= 1 and p:size(1) or 0
  if opts.cond ~= nil and (opts.cond.ndim < 1 or opts.cond:size(1) ~= n) then
    raise(("%s: cond has %d rows, p has %d"):format(fname, opts.cond.ndim < 1 and 0 or opts.cond:size(1), n))
  end
  local B = batch_of(fname, opts.batch, 512)
  local out = tensor.zeros(n)
  if n <= B then                                       -- one call: the C function checks everything
    check(c_log_prob(flow.ptr, p, opts.cond, o, out))
    return out
  end
  local bar = bar_for(fname, opts.progress, n, label or "log_prob")
  local ok, err = pcall(function()
    for i0 = 0, n - 1, B do
      local b = math.min(B, n - i0)
      check(c_log_prob(flow.ptr, rows(p, i0, b), rows(opts.cond, i0, b), o, rows(out, i0, b)))
      if bar then bar:update(i0 + b) end
    end
  end)
  if bar then bar:finish() end
  if not ok then error(err, 0) end
  return out
end

-- ff.dequantise(x, lam, rng [, alpha]) -> points z [n, k, m], log q (a list of n numbers). x: one-hot rows
-- [n, k, m] (the discrete data c); per position z = (1 - lam) e_c + lam u, u ~ Dirichlet(alpha, ...,
-- alpha), so z stays in c's argmax cell for lam <= 1/2. log q(z | c) is the density of z w.r.t.
-- Lebesgue measure on the first m - 1 coordinates of each position (flow:log_prob's measure):
-- log Dir(u; alpha) - (m - 1) log lam per position, summed over the row. alpha = 1 (the default)
-- spreads u uniformly, up to the cell's faces; a larger alpha keeps z away from them.
function M.dequantise(x, lam, rng, alpha)
  local fname = "ff.dequantise"
  alpha = alpha or 1
  tensor.expect(fname, "x", x)
  if type(lam) ~= "number" or not (lam > 0 and lam <= 0.5) then raise(fname .. ": lam must be in (0, 1/2], got " .. tostring(lam)) end
  if type(alpha) ~= "number" or not (alpha >= 1 and alpha < math.huge) then
    raise(fname .. ": alpha must be a number >= 1, got " .. tostring(alpha))
  end
  if x.ndim ~= 3 then raise(("%s: x must be one-hot [n, k, m], got %d dims"):format(fname, x.ndim)) end
  local n, k, m = x:size(1), x:size(2), x:size(3)
  local src = x:is_contiguous() and x or x:copy()
  local out, logq = tensor.zeros(n, k, m), {}
  local s, d = src.data, out.data
  local g = ffi.new("double[?]", m)
  local const = util.lgamma(m * alpha) - m * util.lgamma(alpha) - (m - 1) * math.log(lam)
  for i = 0, n - 1 do
    local row = 0
    for j = 0, k - 1 do
      local base, ones, sum = (i * k + j) * m, 0, 0
      for c = 0, m - 1 do
        local v = s[base + c]
        if v == 1 then ones = ones + 1 elseif v ~= 0 then
          raise(("%s: x[%d][%d][%d] = %g: rows must be one-hot"):format(fname, i + 1, j + 1, c + 1, v))
        end
        -- Gamma(1) is Exp(1); 1 - uniform is in (0, 1], so the draw is finite
        g[c] = alpha == 1 and -math.log(1 - rng:uniform()) or rng:gamma(alpha)
        sum = sum + g[c]
      end
      if ones ~= 1 then raise(("%s: x[%d][%d] has %d ones: rows must be one-hot"):format(fname, i + 1, j + 1, ones)) end
      local lu = 0
      for c = 0, m - 1 do
        local u = g[c] / sum
        d[base + c] = (1 - lam) * s[base + c] + lam * u
        if alpha ~= 1 then lu = lu + math.log(u) end
      end
      row = row + const + (alpha - 1) * lu
    end
    logq[i + 1] = row
  end
  return out, logq
end

-- ff.dequantisations("0.001:1.5,0.01:2", what) -> { { lam =, alpha = }, ... }: a command-line list
-- of lam:alpha pairs for ff.dequantise; errors name `what` (the option) and the bad entry.
function M.dequantisations(text, what)
  what = what or "ff.dequantisations"
  if type(text) ~= "string" then raise(("%s: expected lam:alpha pairs, got %s"):format(what, type(text))) end
  local list = {}
  for item in text:gmatch("[^,]+") do
    local lam, alpha = item:match("^%s*([^:]+):([^:]+)%s*$")
    lam, alpha = tonumber(lam), tonumber(alpha)
    if not lam or not alpha or not (lam > 0 and lam <= 0.5) or not (alpha >= 1 and alpha < math.huge) then
      raise(("%s: '%s' is not lam:alpha with 0 < lam <= 0.5 and alpha >= 1"):format(what, item))
    end
    list[#list + 1] = { lam = lam, alpha = alpha }
  end
  if #list == 0 then raise(("%s: no lam:alpha pair in '%s'"):format(what, text)) end
  return list
end

-- flow:bits(x, opts) -> bits [n], { finite =, nonfinite = }: an upper bound on -log2 P(c) for each
-- one-hot row c of x, P(c) the mass the flow puts in c's argmax cell (what the argmax decoder
-- emits). Jensen: -log P(c) <= E_q[log q(z|c) - log p(z)], z from ff.dequantise; one draw of z per
-- row, so each value is an unbiased estimate of the bound (with Hutchinson's trace, of its own too).
-- A row whose backward path leaves the orthant has p(z) = 0 and an infinite bound.
-- opts: lam (0.5), alpha (1), rng (required: the dequantisation stream), and flow:log_prob's steps,
-- estimator, probes, cond, batch, progress.
function M.bits(flow, x, opts)
  local fname = "flow:bits"
  opts = options(fname, opts, { lam = true, alpha = true, rng = true, steps = true, estimator = true, probes = true,
                                cond = true, batch = true, progress = true })
  if opts.rng == nil then raise(fname .. ": rng is required (the dequantisation draws)") end
  local z, logq = M.dequantise(x, opts.lam or 0.5, opts.rng, opts.alpha)
  local lp = flow:log_prob(z, { steps = opts.steps, estimator = opts.estimator, probes = opts.probes, cond = opts.cond,
                                batch = opts.batch, progress = opts.progress })
  local n = z:size(1)
  local bits, finite = tensor.zeros(n), 0
  for i = 0, n - 1 do
    local v = (logq[i + 1] - lp.data[i]) / math.log(2)
    if v == v and v < math.huge then finite = finite + 1 else v = math.huge end
    bits.data[i] = v
  end
  return bits, { finite = finite, nonfinite = n - finite }
end

-- flow:density{...}: exp of log_prob at the centres of viz's [res, res] grid.
function M.density(flow, t, c_log_prob)
  local fname = "flow:density"
  t = options(fname, t, { resolution = true, res = true, steps = true, estimator = true, probes = true,
                          batch = true, progress = true })
  if flow.k ~= 1 or flow.d ~= 2 then raise(fname .. ": needs a flow on S^2_+ with k = 1") end
  local res = t.resolution or t.res or 128
  if type(res) ~= "number" or res < 1 or res ~= math.floor(res) then
    raise(fname .. ": resolution must be a positive integer, got " .. tostring(res))
  end
  local pts = viz.grid_points(res)
  local lp = M.log_prob(flow, pts, { steps = t.steps, estimator = t.estimator, probes = t.probes, batch = t.batch,
                                     progress = t.progress }, c_log_prob, "density", fname)
  local grid = tensor.zeros(res, res)
  for i = 0, res * res - 1 do grid.data[i] = math.exp(lp.data[i]) end
  return grid
end

return M
