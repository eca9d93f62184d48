-- bench_dist.lua — one configuration of bench_dist.sh: data-parallel training steps through
-- flow:fit (each rank batch/size rows; the gradient all-reduced between ff_flow_grad and
-- ff_flow_update) and the time spent in the all-reduce (dist.lua's reduce_seconds: the
-- MPI_Allreduce of the gradient block plus the one of the loss, waiting for the slower rank included).
-- Prints one line on rank 0.
--   fisherflow run bench/bench_dist.lua --model toy|cnn1d --batch B --steps S
local ff = require "fisherflow"
local dist = require "fisherflow.dist"
local arg = ff.args { model = { "toy", "toy | cnn1d" }, batch = { 256, "global batch" },
                      steps = { 30, "timed steps" }, warmup = { 3, "untimed steps first" },
                      L = { 1024, "cnn1d sequence length" } }
local flow, data
if arg.model == "toy" then           -- the (Delta^20)^4 toy of the paper's Fig. 3, its network
  local truth = ff.data.toy_categorical { k = 4, K = 20, seed = 1 }
  data = ff.data.sample_categorical(truth, 8192, { rng = ff.rng(2) })
  flow = ff.flow { sphere = { k = 4, d = 19 }, coupler = ff.plugin("coupler", "independent"),
                   network = ff.plugin("network", "bmlp", { hidden = 512, depth = 4, emb = 64 }), seed = 1 }
else                                 -- DNA-like: L positions of 4 symbols, the default cnn1d
  local g = ff.rng(3)
  data = ff.zeros(64, arg.L, 4)
  for i = 0, 64 * arg.L - 1 do data.data[i * 4 + tonumber(ff.C.ff_rng_below(g, 4))] = 1 end
  flow = ff.flow { sphere = { k = arg.L, d = 3 }, coupler = ff.plugin("coupler", "independent"),
                   network = ff.plugin("network", "cnn1d", {}), seed = 1 }
end
flow:fit(data, { steps = arg.warmup, batch = arg.batch, progress = false })
dist.reduce_seconds = 0
local t0 = ff.util.now()
flow:fit(data, { steps = arg.steps, batch = arg.batch, progress = false })
local wall = ff.util.now() - t0
local reduce = dist.reduce_seconds
local bytes = flow:numel() * 4
-- the all-reduce alone (ranks lined up by a barrier first): the communication cost without waiting
local blk = ff.zeros(flow:numel())
ff.dist.barrier()
local t1 = ff.util.now()
for _ = 1, 10 do ff.dist.allreduce(blk) end
local alone = (ff.util.now() - t1) / 10
if ff.dist.rank() == 0 then
  print(("%-6s np=%d threads=%s batch=%4d  %7.3f steps/s  %8.1f samples/s  step %8.2f ms  allreduce %6.2f ms (%4.1f%%; alone %.2f ms)  %d params (%.2f MB reduced/step)")
    :format(arg.model, ff.dist.size(), os.getenv("OPENBLAS_NUM_THREADS") or "?", arg.batch, arg.steps / wall,
            arg.steps * arg.batch / wall, 1e3 * wall / arg.steps, 1e3 * reduce / arg.steps,
            100 * reduce / wall, 1e3 * alone, flow:numel(), bytes / 1e6))
end
