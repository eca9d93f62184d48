-- dist.lua — ff.dist: data parallelism across the ranks of `mpirun -np N fisherflow run ...`
-- (dist.h). Without MPI (a build without it, or a plain `fisherflow run`): rank 0, size 1, the
-- all-reduce is the identity, gather returns its input.
--
-- Under N > 1 ranks, installing this module also makes rank 0 the only one that writes: on the
-- other ranks ff.results, ff.save_tensors, ff.log streams, flow:save (checkpoints), the ff.viz picture writers and
-- the progress bar do nothing (they still check their arguments), so a script that knows nothing of MPI
-- writes each file once. Everything else (training, sampling, metrics) runs on every rank with the
-- same values, so the ranks take the same branches and meet at the same collectives.
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

-- One data-parallel training step: the global batch of `batch` rows is split over the ranks
-- (ff.dist.share); rank r draws its rows with grad(count), called with shard r's stream in place
-- (grad draws rows, then runs ff_flow_grad and returns its status); the gradient block is averaged
-- over the ranks with one MPI_Allreduce (weighted by rows when the shares differ), and every rank
-- runs the same ff_flow_update on the same numbers: the parameters stay bitwise equal. Returns the
-- C status of the first failing call (0 on success); flow.stats then holds the global mean loss.
local nbuf = ffi.new("size_t[1]")
M.reduce_seconds = 0     -- wall time spent in the step's all-reduces (waiting for slower ranks included)
function M.step(flow, batch, grad)
  local size = tonumber(C.ff_dist_size())
  if batch < size then raise(("batch %d is smaller than the %d ranks (each rank needs a row)"):format(batch, size)) end
  local _, count = M.share(batch)
  local st = M.with_shard_stream(flow, tonumber(C.ff_dist_rank()), flow:steps(), grad, count)
  if st ~= 0 then return st end
  local loss = flow.stats.loss
  local g = C.ff_flow_grad_block(flow.ptr, nbuf)
  local n = tonumber(nbuf[0])
  if count * size ~= batch then                  -- uneven shares: rank r's mean weighs count/batch
    local w = count * size / batch
    for i = 0, n - 1 do g[i] = g[i] * w end
  end
  local t0 = util.now()
  check(C.ff_dist_allreduce_mean(g, n))
  local total = M.sum(loss * count)
  M.reduce_seconds = M.reduce_seconds + (util.now() - t0)
  st = C.ff_flow_update(flow.ptr, flow.stats)
  flow.stats.loss = total / batch
  return st
end

-- Rank 0 writes, the others do not (see the top of this file).
local function quiet_stream(path)
  return setmetatable({ path = path, n = 0 }, { __index = {
    write = function(s, record)
      if type(record) ~= "table" then raise("log:write: expects a table, got " .. type(record)) end
      s.n = s.n + 1
    end,
    close = function() end } })
end

local function rank0_only(ff)
  local log = require "fisherflow.log"
  function log.open(path)
    if type(path) ~= "string" then raise("ff.log.open: path must be a string, got " .. type(path)) end
    return quiet_stream(path)
  end
  function log.write() end
  ff.log = log
  local ckpt = package.loaded["fisherflow.checkpoint"]
  if ckpt then
    function ckpt.open_log(path) return quiet_stream(path) end
    if ff.checkpoint then ff.checkpoint.open_log = ckpt.open_log end
  end
  local Flow = require("fisherflow.flow").Flow
  if Flow.save then
    function Flow:save(path, run)
      if type(path) ~= "string" then raise("flow:save: path must be a string, got " .. type(path)) end
      if run ~= nil and type(run) ~= "table" then raise("flow:save: run must be a table, got " .. type(run)) end
      return path
    end
  end
  function ff.results(path, t)
    if type(path) ~= "string" then raise("ff.results: path must be a string, got " .. type(path)) end
    if type(t) ~= "table" then raise("ff.results: results must be a table, got " .. type(t)) end
    return path
  end
  if ff.save_tensors then
    function ff.save_tensors(path, tensors)
      if type(path) ~= "string" then raise("ff.save_tensors: path must be a string, got " .. type(path)) end
      if type(tensors) ~= "table" then raise("ff.save_tensors: tensors must be a table, got " .. type(tensors)) end
      return path
    end
  end
  local progress = require "fisherflow.progress"
  local new = progress.new
  function progress.new(opts)
    local bar = new(opts)
    bar.update, bar.finish, bar.line = function() end, function() end, function() end
    return bar
  end
  ff.progress = progress.new
  if ff.viz then
    -- the two writers; what computes on the way (flow:density's log_prob, a collective) still runs
    for _, name in ipairs({ "simplex", "lines" }) do
      local fn = ff.viz[name]
      ff.viz[name] = function(path, ...)
        if type(path) ~= "string" then return fn(path, ...) end   -- let the writer raise
        return path
      end
    end
  end
end

-- Sampling and likelihoods split their rows over the ranks and gather them on every rank (so the
-- script's next lines see the same tensor everywhere). Rank r samples its rows with a stream
-- derived from the flow's sampling stream and r; then every rank advances that stream by one draw,
-- so the ranks stay in step. Samples therefore depend on the number of ranks (not on timing).
local function rows_of(t, first, count)
  if t == nil then return nil end
  local v = t:narrow(1, first, first + count - 1)
  return v:is_contiguous() and v or v:copy()
end

-- flow:step(x1, x0, cond) from a script's own loop: every rank holds the same global batch (drawn
-- from the same streams), takes its rows of it and makes the data-parallel step (M.step).
local function split_step(Flow)
  local step, grad_status = Flow.step, require("fisherflow.flow").grad_status
  function Flow:step(x1, x0, cond)
    if not tensor.is_tensor(x1) or x1.ndim < 1 then return step(self, x1, x0, cond) end
    local n = x1:size(1)
    for _, t in ipairs({ x0 or false, cond or false }) do
      if t and (not tensor.is_tensor(t) or t.ndim < 1 or t:size(1) ~= n) then return step(self, x1, x0, cond) end
    end
    local first = M.share(n)
    check(M.step(self, n, function(count)
      return grad_status(self, rows_of(x1, first, count), rows_of(x0, first, count), rows_of(cond, first, count))
    end))
    local s = self.stats
    return { loss = s.loss, grad_norm = s.grad_norm, lr = s.lr, ms = s.ms, step = tonumber(s.step) }
  end
end

local function split_sampling(Flow)
  local sample, log_prob = Flow.sample, Flow.log_prob
  local saved = ffi.new("ff_rng_t")
  function Flow:sample(n, opts)
    if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then return sample(self, n, opts) end
    opts = opts or {}
    local first, count = M.share(n)
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    if o.x0 == nil and self.lua_source then       -- every rank draws all n (same stream), keeps its rows
      o.x0 = tensor.zeros(n, self.k, self.d + 1)
      self.lua_source.sample(self.lua_source, self.lua_rng, o.x0)
    end
    if o.x0 ~= nil and (not tensor.is_tensor(o.x0) or o.x0:size(1) ~= n) then return sample(self, n, opts) end
    if o.cond ~= nil and (not tensor.is_tensor(o.cond) or o.cond:size(1) ~= n) then return sample(self, n, opts) end
    o.x0, o.cond = rows_of(o.x0, first, count), rows_of(o.cond, first, count)
    local r = C.ff_flow_sample_rng(self.ptr)
    ffi.copy(saved, r, ffi.sizeof("ff_rng_t"))
    C.ff_rng_seed(r, bit.bxor(saved.s[0], ffi.cast("uint64_t", C.ff_dist_rank() + 1) * 0xD1B54A32D192ED03ULL))
    local ok, x, st = true, nil, { nfe = 0, ms = 0 }
    if count > 0 then ok, x, st = pcall(sample, self, count, o) end
    ffi.copy(r, saved, ffi.sizeof("ff_rng_t"))
    C.ff_rng_split(r)                              -- one draw, the same on every rank
    if not ok then error(x, 0) end
    x = x or tensor.zeros(0, self.k, self.d + 1)
    return M.gather(x), st
  end
  function Flow:log_prob(p, opts)
    if not tensor.is_tensor(p) or p.ndim ~= 3 then return log_prob(self, p, opts) end
    opts = opts or {}
    local n = p:size(1)
    if opts.cond ~= nil and (not tensor.is_tensor(opts.cond) or opts.cond:size(1) ~= n) then
      return log_prob(self, p, opts)
    end
    local first, count = M.share(n)
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.cond = rows_of(o.cond, first, count)
    local lp = count > 0 and log_prob(self, rows_of(p, first, count), o) or tensor.zeros(0)
    return M.gather(lp)
  end
end

function M.install(ff)
  if not core.has("ff_dist_rank") then return end
  ff.dist = { rank = M.rank, size = M.size, built = M.built, active = M.active, is_root = M.is_root,
              allreduce = M.allreduce, sum = M.sum, barrier = M.barrier, share = M.share,
              gather = M.gather }
  if M.size() > 1 then
    split_step(require("fisherflow.flow").Flow)
    split_sampling(require("fisherflow.flow").Flow)
  end
  if M.size() > 1 and not M.is_root() then rank0_only(ff) end
end

return M
