-- dist.lua — ff.dist: data parallelism across the ranks of `mpirun -np N fisherflow run ...`
-- (dist.h). Without MPI (a build without it, or a plain `fisherflow run`): rank 0, size 1, the
-- all-reduce is the identity, gather returns its input.
--
-- Under N > 1 ranks only rank 0 writes: each writer of the Lua layer (ff.results, ff.save_tensors,
-- ff.log streams, flow:save, the ff.viz picture writers, the progress bar) asks core.writes() and
-- does nothing elsewhere (after checking its arguments), so a script that knows nothing of MPI
-- writes each file once. Everything else (training, sampling, metrics) runs on every rank with the
-- same values, so the ranks take the same branches and meet at the same collectives. flow:fit,
-- flow:step, flow:sample and flow:log_prob split their rows over the ranks (flow.lua and fit.lua
-- call the functions below).
local core   = require "fisherflow.core"
local tensor = require "fisherflow.tensor"
local util   = require "fisherflow.util"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}

function M.rank() return tonumber(C.ff_dist_rank()) end
function M.size() return tonumber(C.ff_dist_size()) end
function M.built() return C.ff_dist_built() ~= 0 end
function M.active() return C.ff_dist_active() ~= 0 end
function M.is_root() return C.ff_dist_rank() == 0 end

local function contiguous(fname, t)
  if not tensor.is_tensor(t) then raise(("%s: expects a tensor, got %s"):format(fname, type(t))) end
  if not t:is_contiguous() then raise(fname .. ": the tensor must be contiguous (t:copy() first)") end
end

-- ff.dist.allreduce(t): t <- the mean of t over the ranks, in place (one MPI_Allreduce); returns t.
function M.allreduce(t)
  contiguous("ff.dist.allreduce", t)
  check(C.ff_dist_allreduce_mean(t.data, t:numel()))
  return t
end

-- ff.dist.sum(x): a Lua number summed over the ranks (for losses and counts).
local sum_buf = ffi.new("double[1]")
function M.sum(x)
  if type(x) ~= "number" then raise("ff.dist.sum: expects a number, got " .. type(x)) end
  sum_buf[0] = x
  check(C.ff_dist_allreduce_sum_f64(sum_buf, 1))
  return sum_buf[0]
end

function M.barrier() check(C.ff_dist_barrier()) end

-- ff.dist.share(n) -> first, count: this rank's rows of n (1-based first; the first n % size ranks
-- take one more row).
local first_buf, count_buf = ffi.new("int64_t[1]"), ffi.new("int64_t[1]")
function M.share(n, rank, size)
  C.ff_dist_share(n, rank or C.ff_dist_rank(), size or C.ff_dist_size(), first_buf, count_buf)
  return tonumber(first_buf[0]) + 1, tonumber(count_buf[0])
end

-- ff.dist.gather(t [, { all = true }]) -> the rows of t of every rank, rank 0's first: on every
-- rank with all = true (the default: the ranks keep computing the same things), else on rank 0
-- only (nil elsewhere). t [rows, ...]: rows may differ between ranks, the rest of the shape not.
function M.gather(t, opts)
  contiguous("ff.dist.gather", t)
  local all = not (opts and opts.all == false)
  if C.ff_dist_size() == 1 then return t end
  if t.ndim < 1 then raise("ff.dist.gather: expects a tensor with rows (ndim >= 1)") end
  local rows, row_len = t:size(1), 1
  for i = 2, t.ndim do row_len = row_len * t:size(i) end
  local total = M.sum(rows)
  local out
  if all or M.is_root() then
    local s = t:shape(); s[1] = total
    out = tensor.zeros(s)
  end
  check(C.ff_dist_gather_rows(out and out.data or nil, t.data, rows, row_len, all and 1 or 0))
  return out
end

-- A fresh stream for shard `shard` (> 0) of training step `step`: a pure function of the flow's
-- seed, the shard and the step, so a resumed run redraws exactly what an uninterrupted one would.
-- Shard 0 is the flow's own training stream (checkpointed), which is what a one-process run uses.
function M.shard_seed(seed, shard, step)
  local s = ffi.cast("uint64_t", seed) * 0x9E3779B97F4A7C15ULL
  s = s + ffi.cast("uint64_t", shard) * 0xBF58476D1CE4E5B9ULL
  s = s + ffi.cast("uint64_t", step) * 0x94D049BB133111EBULL
  return bit.bxor(s, 0x5DEECE66DULL)
end

-- Runs fn() with the flow's training stream replaced by shard `shard`'s stream at `step` (shard 0:
-- the stream itself), then puts the training stream back. Returns fn's results.
local saved_rng = ffi.new("ff_rng_t")
function M.with_shard_stream(flow, shard, step, fn, ...)
  if shard == 0 then return fn(...) end
  local r = C.ff_flow_rng(flow.ptr)
  ffi.copy(saved_rng, r, ffi.sizeof("ff_rng_t"))
  C.ff_rng_seed(r, M.shard_seed(flow.seed, shard, step))
  local ok, a, b, c = pcall(fn, ...)
  ffi.copy(r, saved_rng, ffi.sizeof("ff_rng_t"))
  if not ok then error(a, 0) end
  return a, b, c
end

-- Between the micro-batches' ff_flow_grad calls and ff_flow_update of one data-parallel step: this
-- rank's gradient block (the sum of its micro-batches, each the mean over `rows` rows of the
-- global micro-batch of `batch` rows) becomes the mean over the ranks with one MPI_Allreduce,
-- weighted by rows when the shares differ, so every rank then runs the same ff_flow_update on the
-- same numbers and the parameters stay bitwise equal. loss_sum: this rank's sum over its
-- micro-batches of loss * rows. -> the global mean loss of the step (micro-batches * batch rows).
local nbuf = ffi.new("size_t[1]")
M.reduce_seconds = 0     -- wall time spent in the step's all-reduces (waiting for slower ranks included)
function M.reduce(flow, rows, batch, loss_sum)
  local size = tonumber(C.ff_dist_size())
  local g = C.ff_flow_grad_block(flow.ptr, nbuf)
  local n = tonumber(nbuf[0])
  if rows * size ~= batch then                   -- uneven shares: rank r's mean weighs rows/batch
    local w = rows * size / batch
    for i = 0, n - 1 do g[i] = g[i] * w end
  end
  local t0 = util.now()
  check(C.ff_dist_allreduce_mean(g, n))
  local total = M.sum(loss_sum)
  M.reduce_seconds = M.reduce_seconds + (util.now() - t0)
  return total / (batch * C.ff_flow_grad_count(flow.ptr))
end

-- The rows [first, first + count) of t (nil stays nil), contiguous.
local function rows_of(t, first, count)
  if t == nil then return nil end
  local v = t:narrow(1, first, first + count - 1)
  return v:is_contiguous() and v or v:copy()
end

-- flow:step(x1, x0, cond) from a script's own loop under N > 1 ranks (flow.lua calls this): every
-- rank holds the same global batch (drawn from the same streams) and takes its rows of it; grad(x1,
-- x0, cond) -> C status of ff_flow_grad, update() -> C status of ff_flow_update.
function M.step(flow, x1, x0, cond, grad, update)
  local n = x1:size(1)
  if n < M.size() then raise(("flow:step: batch %d is smaller than the %d ranks (each rank needs a row)"):format(n, M.size())) end
  for name, t in pairs({ x0 = x0 or false, cond = cond or false }) do
    if t and t:size(1) ~= n then raise(("flow:step: %s has %d rows, x1 %d"):format(name, t:size(1), n)) end
  end
  local first, count = M.share(n)
  local st = grad(rows_of(x1, first, count), rows_of(x0, first, count), rows_of(cond, first, count))
  if st ~= 0 then C.ff_flow_grad_zero(flow.ptr); return st end
  local loss = M.reduce(flow, count, n, flow.stats.loss * count)
  st = update()
  flow.stats.loss = loss
  return st
end

-- Sampling and likelihoods under N > 1 ranks (flow.lua calls these) split their rows over the
-- ranks and gather them on every rank (so the script's next lines see the same tensor everywhere).
-- Rank r samples its rows with a stream derived from the flow's sampling stream and r; then every
-- rank advances that stream by one draw, so the ranks stay in step. Samples therefore depend on the
-- number of ranks (not on timing). sample(count, opts) / log_prob(p, opts): the one-process calls.
local saved = ffi.new("ff_rng_t")
function M.sample(flow, n, opts, sample)
  local first, count = M.share(n)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  for _, name in ipairs({ "x0", "cond" }) do
    if o[name] ~= nil and o[name]:size(1) ~= n then
      raise(("flow:sample: %s has %d rows, n is %d"):format(name, o[name]:size(1), n))
    end
  end
  o.x0, o.cond = rows_of(o.x0, first, count), rows_of(o.cond, first, count)
  local r = C.ff_flow_sample_rng(flow.ptr)
  ffi.copy(saved, r, ffi.sizeof("ff_rng_t"))
  C.ff_rng_seed(r, bit.bxor(saved.s[0], ffi.cast("uint64_t", C.ff_dist_rank() + 1) * 0xD1B54A32D192ED03ULL))
  local ok, x, st = true, nil, { nfe = 0, ms = 0 }
  if count > 0 then ok, x, st = pcall(sample, count, o) end
  ffi.copy(r, saved, ffi.sizeof("ff_rng_t"))
  C.ff_rng_split(r)                              -- one draw, the same on every rank
  if not ok then error(x, 0) end
  x = x or tensor.zeros(0, flow.k, flow.d + 1)
  return M.gather(x), st
end

function M.log_prob(p, opts, log_prob)
  local n = p:size(1)
  if opts.cond ~= nil and opts.cond:size(1) ~= n then
    raise(("flow:log_prob: cond has %d rows, p %d"):format(opts.cond:size(1), n))
  end
  local first, count = M.share(n)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.cond = rows_of(o.cond, first, count)
  local lp = count > 0 and log_prob(rows_of(p, first, count), o) or tensor.zeros(0)
  return M.gather(lp)
end

-- ff.dist: the calls a script may make. Writers ask core.writes() (rank 0 writes); flow:fit,
-- flow:step, flow:sample and flow:log_prob split their work over the ranks themselves.
function M.install(ff)
  if not core.has("ff_dist_rank") then return end
  ff.dist = { rank = M.rank, size = M.size, built = M.built, active = M.active, is_root = M.is_root,
              allreduce = M.allreduce, sum = M.sum, barrier = M.barrier, share = M.share,
              gather = M.gather }
end

return M
