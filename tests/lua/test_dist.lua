-- test_dist.lua — ff.dist in one process (what every run without mpirun sees, with or without MPI
-- in the build): rank 0, size 1, the all-reduce leaves values as they are, gather returns its input,
-- share covers all rows; bad arguments raise at the caller's line. The same calls across 2 ranks run
-- in tests/e2e/mpi_data_parallel.sh.
local T  = require "ff_test"
local ff = require "fisherflow"

T.test("one process: rank 0 of 1", function()
  T.eq(ff.dist.rank(), 0, "rank"); T.eq(ff.dist.size(), 1, "size")
  T.eq(ff.dist.is_root(), true, "is_root"); T.eq(ff.dist.active(), false, "active")
  T.eq(ff.dist.built(), ff.C.ff_dist_built() ~= 0, "built")
end)

T.test("allreduce, sum, barrier and gather are identities", function()
  local t = ff.tensor({ { 1.5, -2 }, { 0, 3.25 } })
  T.eq(ff.dist.allreduce(t), t, "returns its tensor")
  T.eq(t:get(1, 1), 1.5, "[1,1]"); T.eq(t:get(1, 2), -2, "[1,2]"); T.eq(t:get(2, 2), 3.25, "[2,2]")
  T.eq(ff.dist.sum(0.125), 0.125, "sum")
  ff.dist.barrier()
  T.eq(ff.dist.gather(t), t, "gather")
  local first, count = ff.dist.share(10)
  T.eq(first, 1, "first"); T.eq(count, 10, "count")
  first, count = ff.dist.share(10, 2, 3)         -- rank 2 of 3: rows 8..10
  T.eq(first, 8, "first of rank 2 of 3"); T.eq(count, 3, "count of rank 2 of 3")
end)

T.test("bad arguments name the call", function()
  T.raises(function() ff.dist.allreduce({ 1, 2 }) end, "ff.dist.allreduce: expects a tensor")
  T.raises(function() ff.dist.allreduce(ff.zeros(3, 4):transpose(1, 2)) end, "must be contiguous")
  T.raises(function() ff.dist.sum("1") end, "ff.dist.sum: expects a number")
  T.raises(function() ff.dist.gather(7) end, "ff.dist.gather: expects a tensor")
end)

T.test("flow:step and flow:fit are the one-process step", function()
  local data = ff.data.smiley { n = 256, seed = 1 }
  local function make() return ff.flow { sphere = { k = 1, d = 2 }, seed = 4,
    network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) } end
  local a, b = make(), make()
  a:fit(data, { steps = 3, batch = 16, progress = false })
  for _ = 1, 3 do
    local x = ff.zeros(16, 1, 3)
    local r = b:rng()
    for i = 0, 15 do
      local j = tonumber(ff.C.ff_rng_below(r, 256))
      ff.ffi.copy(x.data + i * 3, data.data + j * 3, 12)
    end
    b:step(x)
  end
  local pa, pb = a:param(a:params()[1].name), b:param(b:params()[1].name)
  for i = 0, pa:numel() - 1 do
    if pa.data[i] ~= pb.data[i] then T.ok(false, "parameter " .. i .. " differs") end
  end
end)
