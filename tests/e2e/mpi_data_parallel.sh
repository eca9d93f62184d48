#!/usr/bin/env bash
# Data-parallel training under `mpirun -np 2` (dist.h, lua/fisherflow/dist.lua):
#  1. a script that knows nothing of MPI trains 50 steps through flow:fit on 2 ranks; afterwards the
#     parameters of the two ranks are bitwise equal (and moved away from their initial values), and
#     only rank 0 wrote the log and the results; the same for a script's own flow:step loop;
#  2. those 2 ranks with global batch 2b (b rows each, independent coupler) follow a 1-process run
#     that draws the same two shards of b rows itself (shard 0 from the flow's stream, shard 1 from
#     the stream dist.lua derives for shard 1 at each step, rows picked like flow:fit picks them),
#     sums both gradients with ff_flow_grad and updates once: the per-step losses agree within the
#     float summation tolerance (MPI sums the two gradients, the 1-process run accumulates one into
#     the other; the rounding differs in the last bits and Adam carries it on): relative 1e-5;
#  3. flow:sample and flow:log_prob split their rows over the ranks: both ranks get the same 301
#     rows, and the log-densities of those rows match a 1-process flow:log_prob of them.
#   tests/e2e/mpi_data_parallel.sh SOURCE_DIR BUILD_DIR   (MPIRUN, OMPI_ALLOW_RUN_AS_ROOT* from ctest)
set -euo pipefail
SRC=${1:?usage: mpi_data_parallel.sh SOURCE_DIR BUILD_DIR}
BUILD=${2:?usage: mpi_data_parallel.sh SOURCE_DIR BUILD_DIR}
FF="$BUILD/fisherflow"
MPIRUN=${MPIRUN:-mpirun}
export OPENBLAS_NUM_THREADS=1 FF_DIST_TIMEOUT=60
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ff_mpi_dp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "mpi_data_parallel: $*"; exit 1; }

cat >"$WORK/train.lua" <<'LUA'
local ff = require "fisherflow"
local arg = ff.args { mode = { "fit", "fit | loop | shards" }, batch = { 64, "global batch" },
                      steps = { 50, "steps" }, out = { "out", "directory" },
                      accumulate = { 1, "micro-batches per step" } }
local data = ff.data.smiley { n = 4096, seed = 1 }
local flow = ff.flow { sphere = { k = 1, d = 2 }, coupler = ff.plugin("coupler", "independent"),
                       network = ff.plugin("network", "bmlp", { hidden = 32, depth = 2 }),
                       optim = ff.optim.adamw { lr = 3e-3 }, seed = 7 }
local init = flow:param(flow:params()[1].name):copy()
local losses = {}
if arg.mode == "fit" then
  local hist = flow:fit(data, { steps = arg.steps, batch = arg.batch, accumulate = arg.accumulate, progress = false, log_every = 1,
                                log = arg.out .. "/log.jsonl" })
  losses = hist.loss
elseif arg.mode == "loop" then
  -- a script's own loop: every rank draws the same global batch, flow:step takes this rank's rows
  local rng = ff.rng(5)
  for s = 1, arg.steps do losses[s] = flow:step(data:batch(arg.batch, rng)).loss end
else
  -- one process, two shards of batch/2 rows: shard 0 from the flow's training stream, shard 1 from
  -- dist.lua's stream for shard 1 at this step; rows picked as flow:fit picks them
  local dist = require "fisherflow.dist"
  local b, N, row = arg.batch / 2, data:size(1), data:numel() / data:size(1)
  local xb = ff.zeros(b, 1, 3)
  local stats = ff.ffi.new("ff_step_stats")
  local function grad()
    local r = ff.C.ff_flow_rng(flow.ptr)
    for i = 0, b - 1 do
      local j = tonumber(ff.C.ff_rng_below(r, N))
      ff.ffi.copy(xb.data + i * row, data.data + j * row, row * 4)
    end
    return ff.C.ff_flow_grad(flow.ptr, xb, nil, nil, stats)
  end
  for s = 1, arg.steps do
    for shard = 0, 1 do ff.check(dist.with_shard_stream(flow, shard, flow:steps(), grad)) end
    ff.check(ff.C.ff_flow_update(flow.ptr, stats))
    losses[s] = stats.loss
  end
end
-- every rank writes its own files with plain io (ff's writers are rank 0's only)
local r = ff.dist.rank()
local f = assert(io.open(("%s/losses.%d"):format(arg.out, r), "w"))
for i, l in ipairs(losses) do f:write(("%d %.17g\n"):format(i, l)) end
f:close()
local p = assert(io.open(("%s/params.%d"):format(arg.out, r), "wb"))
local n = flow:numel()
p:write(ff.ffi.string(ff.C.ff_params_data(ff.C.ff_flow_params(flow.ptr)), n * 4))
p:close()
local w, moved = flow:param(flow:params()[1].name), 0
for i = 0, w:numel() - 1 do if w.data[i] ~= init.data[i] then moved = moved + 1 end end
ff.results(arg.out .. "/results.json", { moved = moved, size = ff.dist.size(), numel = n })
LUA

cat >"$WORK/sample.lua" <<'LUA'
local ff = require "fisherflow"
local out = ...
local flow = ff.flow { sphere = { k = 1, d = 2 }, network = ff.plugin("network", "bmlp", { hidden = 16, depth = 1 }), seed = 3 }
flow:fit(ff.data.smiley { n = 512, seed = 2 }, { steps = 20, batch = 32, progress = false })
local x = flow:sample(301, { steps = 8 })
local lp = flow:log_prob(x, { steps = 8, estimator = "exact" })
local r = ff.dist.rank()
local f = assert(io.open(("%s/sample.%d"):format(out, r), "wb"))
f:write(ff.ffi.string(x.data, x:numel() * 4), ff.ffi.string(lp.data, lp:numel() * 4))
f:close()
ff.save_tensors(out .. "/x.safetensors", { x = x, lp = lp })   -- rank 0 writes these two
flow:save(out .. "/flow.safetensors")
LUA

cat >"$WORK/check_lp.lua" <<'LUA'
-- 1 process: log_prob of the gathered rows must match what the ranks computed on their halves
local ff = require "fisherflow"
local out = ...
local t = ff.load_tensors(out .. "/x.safetensors")
local flow = ff.checkpoint.flow(out .. "/flow.safetensors")   -- the weights the 2 ranks trained
local lp = flow:log_prob(t.x, { steps = 8, estimator = "exact" })
local worst = 0
for i = 0, lp:numel() - 1 do
  local a, b = lp.data[i], t.lp.data[i]
  local d = a == b and 0 or math.abs(a - b) / math.max(1, math.abs(a))   -- equal infinities too
  if not (d <= worst) then worst = d end
end
print(("log_prob: %d rows, worst relative difference %.3g"):format(lp:numel(), worst))
if not (worst <= 1e-5) then error("log_prob split over ranks differs from one process", 0) end
LUA

mkdir -p "$WORK/dp" "$WORK/one" "$WORK/s"
"$MPIRUN" --oversubscribe -np 2 "$FF" run "$WORK/train.lua" --mode fit --out "$WORK/dp" 2>"$WORK/dp.err" \
  || { cat "$WORK/dp.err"; fail "2-rank flow:fit failed"; }
# 1. bitwise equal parameters, which moved; rank 0 alone wrote the log and results
cmp -s "$WORK/dp/params.0" "$WORK/dp/params.1" || fail "parameters of rank 0 and rank 1 differ after 50 steps"
python3 - "$WORK/dp" <<'PY' || fail "results/log of the 2-rank run"
import json, sys
d = sys.argv[1]
r = json.load(open(d + "/results.json"))
assert r["size"] == 2, r
assert r["moved"] > 0, "no parameter moved"
log = [json.loads(l) for l in open(d + "/log.jsonl")]
assert log[0]["config"]["fit"]["ranks"] == 2, log[0]
log = log[1:]
assert [x["step"] for x in log] == list(range(1, 51)), [x["step"] for x in log]
PY
echo "1. after 50 steps the $(stat -c %s "$WORK/dp/params.0")-byte parameter blocks of both ranks are bitwise equal"
mkdir -p "$WORK/loop"
"$MPIRUN" --oversubscribe -np 2 "$FF" run "$WORK/train.lua" --mode loop --out "$WORK/loop" 2>"$WORK/loop.err" \
  || { cat "$WORK/loop.err"; fail "2-rank flow:step loop failed"; }
cmp -s "$WORK/loop/params.0" "$WORK/loop/params.1" || fail "a script's own flow:step loop: the ranks' parameters differ"
cmp -s "$WORK/loop/losses.0" "$WORK/loop/losses.1" || fail "a script's own flow:step loop: the ranks report different losses"
echo "   the same through a script's own flow:step loop"

# 2. the same shards in one process
"$FF" run "$WORK/train.lua" --mode shards --out "$WORK/one" 2>"$WORK/one.err" || { cat "$WORK/one.err"; fail "1-process run failed"; }
python3 - "$WORK/dp/losses.0" "$WORK/dp/losses.1" "$WORK/one/losses.0" <<'PY' || fail "2 ranks do not follow the 1-process run"
import sys
def read(p): return [float(l.split()[1]) for l in open(p)]
a, a1, b = read(sys.argv[1]), read(sys.argv[2]), read(sys.argv[3])
assert a == a1, "the two ranks report different losses"
assert len(a) == len(b) == 50, (len(a), len(b))
worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
print("2. 50 losses, 2 ranks vs 1 process with the same shards: worst relative difference %.3g (first %.6f, last %.6f)" % (worst, a[0], a[-1]))
assert a[0] == b[0] or abs(a[0] - b[0]) / abs(b[0]) < 1e-6, (a[0], b[0])
assert worst < 1e-5, worst
PY

# 2b. accumulation: micro-batch m on rank r draws in shard stream r*A + m, so N ranks x A
# micro-batches of the global batch B follow 1 process x N*A micro-batches of B/N rows
compare() {   # $1 $2: two losses files; the same tolerance as 2.
python3 - "$1" "$2" "$3" <<'PY' || fail "$3"
import sys
def read(p): return [float(l.split()[1]) for l in open(p)]
a, b = read(sys.argv[1]), read(sys.argv[2])
assert len(a) == len(b) == 20, (len(a), len(b))
worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
print("   %s: 20 losses, worst relative difference %.3g" % (sys.argv[3], worst))
assert worst < 1e-5, worst
PY
}
for spec in "1 2" "2 4"; do
  set -- $spec
  mkdir -p "$WORK/acc$1" "$WORK/one$2"
  "$MPIRUN" --oversubscribe -np 2 "$FF" run "$WORK/train.lua" --mode fit --steps 20 --batch 32 --accumulate "$1" \
    --out "$WORK/acc$1" 2>"$WORK/acc.err" || { cat "$WORK/acc.err"; fail "2-rank accumulate $1 failed"; }
  "$FF" run "$WORK/train.lua" --mode fit --steps 20 --batch 16 --accumulate "$2" --out "$WORK/one$2" 2>"$WORK/one.err" \
    || { cat "$WORK/one.err"; fail "1-process accumulate $2 failed"; }
  cmp -s "$WORK/acc$1/params.0" "$WORK/acc$1/params.1" || fail "accumulate $1: the ranks' parameters differ"
  compare "$WORK/acc$1/losses.0" "$WORK/one$2/losses.0" "2 ranks x accumulate $1 (batch 32) vs 1 process x accumulate $2 (batch 16)"
done

# 3. sampling and likelihoods split over the ranks
"$MPIRUN" --oversubscribe -np 2 "$FF" run "$WORK/sample.lua" "$WORK/s" 2>"$WORK/s.err" || { cat "$WORK/s.err"; fail "2-rank sampling failed"; }
cmp -s "$WORK/s/sample.0" "$WORK/s/sample.1" || fail "the ranks hold different gathered samples"
"$FF" run "$WORK/check_lp.lua" "$WORK/s" || fail "log_prob check"
echo "mpi_data_parallel: ok"
