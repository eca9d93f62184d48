-- test_api.lua — the Lua API: tensors (construction, indexing, arithmetic, conversion, printing),
-- random streams, JSON/results/log, plugin specs, and a flow end to end (fit lowers the loss,
-- samples land where the data is).
local T  = require "ff_test"
local ff = require "fisherflow"
local ffi = require "ffi"

local tmp = T.tmp

T.test("ff.tensor from nested tables: shape, values, 1-based access", function()
  local t = ff.tensor{ { 1, 2, 3 }, { 4, 5, 6 } }
  T.eq(t.ndim, 2, "ndim"); T.eq(t:numel(), 6, "numel")
  local s = t:shape(); T.eq(#s, 2, "#shape"); T.eq(s[1], 2, "rows"); T.eq(s[2], 3, "cols")
  T.eq(t:get(1, 1), 1, "get(1,1)"); T.eq(t:get(2, 3), 6, "get(2,3)"); T.eq(t:get(2, 1), 4, "get(2,1)")
  t:set(2, 3, 60); T.eq(t:get(2, 3), 60, "after set")
  T.eq(t.data[5], 60, "raw 0-based storage"); T.eq(t:ptr()[0], 1, "ptr")
  T.eq(#t, 2, "#t is the first dim")
  local v = ff.tensor{ 7, 8, 9 }
  T.eq(v.ndim, 1, "1-dim"); T.eq(v[3], 9, "v[3]")
  local c = ff.tensor{ { { 1, 2 }, { 3, 4 } }, { { 5, 6 }, { 7, 8 } } }
  T.eq(c:get(2, 1, 2), 6, "3-dim get")
end)

T.test("ragged and non-numeric tables are refused with the position", function()
  T.raises(function() ff.tensor{ { 1, 2 }, { 3 } } end, "ragged table: element [2] has 1 entries, expected 2")
  T.raises(function() ff.tensor{ 1, "x" } end, "element [2] is a string, expected a number")
  T.raises(function() ff.zeros(2, -1) end, "size 2 must be a non-negative integer, got -1")
  T.raises(function() ff.zeros(1, 1, 1, 1, 1) end, "5 dims, at most 4")
end)

T.test("indexing: rows are views sharing storage, assignment fills or copies", function()
  local t = ff.zeros(3, 2)
  local row = t[2]
  T.eq(row.ndim, 1, "row ndim"); T.eq(row:numel(), 2, "row numel")
  row[1] = 5                              -- writes through to t
  T.eq(t:get(2, 1), 5, "view writes through")
  t[3] = { 7, 8 }
  T.eq(t:get(3, 2), 8, "row from table")
  t[1] = 1.5
  T.eq(t:get(1, 1), 1.5, "row fill"); T.eq(t:get(1, 2), 1.5, "row fill 2")
  t[2] = ff.tensor{ 9, 10 }
  T.eq(t[2][2], 10, "row from tensor, chained index")
  T.raises(function() return t[4] end, "index 4 out of range [1, 3]")
  T.raises(function() return t:get(1, 3) end, "index 3 out of range [1, 2] on dim 2")
  T.raises(function() return t:get(1) end, "1 indices for a 2-dim tensor")
  -- a row outlives its parent: storage is refcounted
  local r = ff.tensor{ { 1, 2 }, { 3, 4 } }[2]
  collectgarbage(); collectgarbage()
  T.eq(r[1], 3, "row after the parent was collected")
end)

T.test("arithmetic with tensors and numbers makes new tensors", function()
  local a = ff.tensor{ { 1, 2 }, { 3, 4 } }
  local b = ff.tensor{ { 10, 20 }, { 30, 40 } }
  local s = a + b
  T.eq(s:get(2, 2), 44, "a+b"); T.eq(a:get(2, 2), 4, "a unchanged")
  T.eq((b - a):get(1, 2), 18, "b-a"); T.eq((a * b):get(2, 1), 90, "a*b"); T.eq((b / a):get(1, 1), 10, "b/a")
  T.eq((a + 1):get(1, 1), 2, "a+1"); T.eq((1 + a):get(1, 1), 2, "1+a")
  T.eq((10 - a):get(2, 2), 6, "10-a"); T.eq((a * 2):get(2, 1), 6, "a*2"); T.eq((12 / a):get(2, 2), 3, "12/a")
  T.eq((-a):get(1, 2), -2, "-a")
  local row = ff.tensor{ 100, 200 }                    -- broadcasts over rows
  local br = a + row
  T.eq(br:get(1, 1), 101, "broadcast 1,1"); T.eq(br:get(2, 2), 204, "broadcast 2,2")
  T.raises(function() return a + ff.tensor{ 1, 2, 3 } end, "do not broadcast (dim 2: 2 vs 3)")
  T.raises(function() return a + "x" end, "operands are tensor and string")
  -- strided operands (a transposed view) give the same result as a copy
  local at = a:transpose(1, 2)
  T.eq(at:is_contiguous(), false, "transpose is strided")
  local d = at + b
  T.eq(d:get(1, 2), 23, "strided + contiguous")
end)

T.test("totable, values, copy, view, narrow, reductions", function()
  local a = ff.tensor{ { 1, 2, 3 }, { 4, 5, 6 } }
  local tt = a:totable()
  T.eq(#tt, 2, "rows"); T.eq(tt[2][3], 6, "tt[2][3]")
  T.eq(table.concat(a:transpose():values(), ","), "1,4,2,5,3,6", "values of a transposed view")
  local c = a:copy(); c:set(1, 1, 100)
  T.eq(a:get(1, 1), 1, "copy is deep")
  local v = a:view(3, 2)
  T.eq(v:get(3, 1), 5, "view"); v:set(3, 1, 50); T.eq(a:get(2, 2), 50, "view shares")
  T.raises(function() a:view(4, 2) end, "ff_tensor_view: [2,3] has 6 elements, the view asks for 8")
  local n = a:narrow(2, 2, 3)
  T.eq(table.concat(n:shape(), ","), "2,2", "narrow shape"); T.eq(n:get(2, 2), 6, "narrow value")
  T.eq(a:sum(), 1 + 2 + 3 + 4 + 50 + 6, "sum"); T.eq(a:max(), 50, "max"); T.eq(a:min(), 1, "min")
  T.near(ff.tensor{ 1, 2, 3, 4 }:mean(), 2.5, 0, "mean")
  T.eq(ff.tensor(3.5):totable(), 3.5, "0-dim")
  T.eq(ff.ones(2, 2):sum(), 4, "ones"); T.eq(ff.full({ 3 }, 2):sum(), 6, "full")
end)

T.test("tostring shows the shape and the first values", function()
  T.eq(tostring(ff.tensor{ { 1, 2 }, { 3, 4 } }), "tensor[2,2] {1, 2, 3, 4}", "small")
  local s = tostring(ff.zeros(10, 3))
  T.eq(s, "tensor[10,3] {0, 0, 0, 0, 0, 0, ...}", "large")
end)

T.test("unknown methods name themselves", function()
  local t = ff.zeros(2)
  T.raises(function() return t:shap() end, "tensor has no method 'shap'")
  T.raises(function() t.foo = 1 end, "tensor has no field 'foo'")
end)

T.test("free is idempotent", function()
  local t = ff.zeros(1000)
  local before = tonumber(ff.C.ff_mem_in_use())
  t:free()
  T.eq(tonumber(ff.C.ff_mem_in_use()), before - 4000, "freed now")
  t:free()                                   -- second call: nothing (no finalizer left either)
  T.eq(tonumber(ff.C.ff_mem_in_use()), before - 4000, "second free is a no-op")
end)

T.test("random streams: seeded, reproducible, moments", function()
  ff.seed(7)
  local a = ff.randn(1000)
  ff.seed(7)
  local b = ff.randn(1000)
  T.eq(table.concat(a:values(), ","), table.concat(b:values(), ","), "same seed, same draws")
  local n, sum, sq = 20000, 0, 0
  local x = ff.randn(n)
  for i = 0, n - 1 do sum = sum + x.data[i]; sq = sq + x.data[i] ^ 2 end
  T.near(sum / n, 0, 0.05, "mean"); T.near(sq / n, 1, 0.05, "variance")
  local r = ff.rng(3)
  local k = r:int(6); T.ok(k >= 1 and k <= 6, "int in [1, 6]: %d", k)
  local u = ff.rand(5000); T.ok(u:min() >= 0 and u:max() < 1, "uniform range")
  local d = ff.random.dirichlet(r, { 4000, 3 }, { 8, 1, 1 })
  local m = 0
  for i = 0, 3999 do m = m + d.data[3 * i]; T.near(d.data[3 * i] + d.data[3 * i + 1] + d.data[3 * i + 2], 1, 1e-5, "sums to 1") end
  T.near(m / 4000, 0.8, 0.02, "Dirichlet(8,1,1) mean of p1")
end)

T.test("json encode/decode round trip, results written atomically", function()
  local v = { a = 1, b = { 1.5, 2, 3 }, c = "x\"y\n", d = true, e = { nested = { k = -2e-3 } } }
  local s = ff.json.encode(v)
  T.eq(s, '{"a":1,"b":[1.5,2,3],"c":"x\\"y\\n","d":true,"e":{"nested":{"k":-0.002}}}', "encoding")
  local back = ff.json.decode(s)
  T.eq(back.c, "x\"y\n", "string"); T.eq(back.b[1], 1.5, "array"); T.eq(back.e.nested.k, -2e-3, "nested")
  T.eq(ff.json.encode({ 0 / 0, math.huge, -math.huge }), "[NaN,Infinity,-Infinity]", "non-finite as Python writes them")
  T.eq(ff.json.encode({ 3e-3, 0.1, 1 / 3 }), "[0.003,0.1,0.3333333333333333]", "shortest exact form")
  T.eq(ff.json.decode(ff.json.encode(1 / 3)), 1 / 3, "round trip of 1/3")
  T.eq(ff.json.encode(ff.tensor{ { 1, 2 } }), "[[1,2]]", "tensor as arrays")
  T.raises(function() ff.json.decode("{\"a\":}") end, "json.decode: unexpected character '}' at byte 6")
  local path = tmp("sub/results.json")
  os.remove(path)
  ff.results(path, { loss = 0.25, args = { steps = 3 } })
  local f = io.open(path); local text = f:read("*a"); f:close()
  T.eq(ff.json.decode(text).args.steps, 3, "results content")
  T.ok(text:find("\n  \"loss\": 0.25", 1, true), "pretty printed: %s", text)
end)

T.test("log: JSONL stream, one object per line", function()
  local path = tmp("log.jsonl")
  local l = ff.log.open(path)
  l:write{ step = 1, loss = 0.5 }; l:write{ step = 2, loss = 0.25 }
  l:close()
  local recs = ff.log.read(path)
  T.eq(#recs, 2, "records"); T.eq(recs[2].loss, 0.25, "second loss")
end)

T.test("progress: plain periodic lines when not a terminal", function()
  local out = {}
  local sink = { write = function(_, ...) for _, s in ipairs({ ... }) do out[#out + 1] = s end end, flush = function() end }
  local p = ff.progress{ total = 100, label = "fit", tty = false, out = sink }
  for i = 1, 100 do p:update(i, { loss = 1 / i }) end
  p:finish()
  T.eq(#out, 10, "one line per 10 %")
  T.ok(out[10]:find("^fit 100/100 %(100%%%)"), "last line: %s", out[10])
  T.ok(out[1]:find("it/s", 1, true) and out[1]:find("ETA", 1, true) and out[1]:find("loss", 1, true), "rate/ETA/loss: %s", out[1])
  local tty = {}
  local bar = ff.progress{ total = 10, tty = true, out = { write = function(_, ...) for _, s in ipairs({ ... }) do tty[#tty + 1] = s end end, flush = function() end } }
  bar:update(10); bar:finish()
  T.ok(table.concat(tty):find("\r[########################] 100%", 1, true), "bar: %q", table.concat(tty))
end)

T.test("plugins: find, list, specs with options", function()
  local d, err = ff.plugin.find("coupler", "independent")
  T.ok(d, "independent not found: %s", tostring(err))
  T.eq(d.kind, "coupler", "kind"); T.eq(d.name, "independent", "name"); T.ok(d.abi:match("^1%.%d+$"), "abi %s", d.abi)
  local none, e2 = ff.plugin.find("coupler", "exact_ot2")
  T.eq(none, nil, "missing plugin"); T.ok(e2:find('coupler "exact_ot2" not found; looked in', 1, true), "message: %s", e2)
  T.raises(function() ff.plugin("coupler", "exact_ot2") end, 'coupler "exact_ot2" not found')
  T.raises(function() ff.plugin("couplr", "x") end, "unknown kind couplr")
  local found = ff.plugins()
  local names = {}
  for _, p in ipairs(found) do names[p.kind .. "/" .. p.name] = true end
  for _, n in ipairs({ "source/uniform_sphere", "coupler/exact_ot", "network/bmlp", "decoder/argmax" }) do
    T.ok(names[n], "%s not listed", n)
  end
  local net = ff.plugin.find("network", "bmlp")
  T.ok(#net.options > 0, "bmlp declares options")
  local spec = ff.plugin("network", "bmlp", { hidden = 32, depth = 2 })
  T.eq(spec.name, "bmlp", "spec name"); T.ok(spec.opts ~= nil, "spec options")
  T.eq(tostring(spec), 'plugin network "bmlp"', "spec tostring")
  T.raises(function() ff.plugin("network", "bmlp", { hiden = 3 }) end, 'unknown option "hiden"')
  T.raises(function() ff.plugin("network", "bmlp", { hidden = "wide" }) end, "hidden")
  -- Lua numbers follow the declared option type: 1 for a number option, 2 for a numbers option
  ff.plugin("coupler", "sinkhorn", { eps = 1, iterations = 50 })
  ff.plugin("source", "dirichlet", { alpha = 2 })
  T.raises(function() ff.plugin("coupler", "sinkhorn", { iterations = 2.5 }) end, "iterations")
  T.raises(function() ff.plugin("source", "dirichlet", { alpha = { 1, "x" } }) end, 'option "alpha": entry 2 is a string')
  local f = ff.flow{ k = 1, d = 2, source = ff.plugin("source", "dirichlet", { alpha = { 1, 1, 20 } }),
                     network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }), seed = 2 }
  local x0 = f:sample(400, { steps = 1 })          -- one Euler step of an untrained field: near x0
  local m3 = 0
  for i = 0, 399 do m3 = m3 + x0.data[3 * i + 2] end
  T.ok(m3 / 400 > 0.6, "Dirichlet(1,1,20) source should put mass on symbol 3: %.3f", m3 / 400)
end)

-- A toy target on the 2-simplex: mass near vertex 1 (Dirichlet(8, 1, 1)).
local function corner_data(n, seed)
  local p = ff.random.dirichlet(ff.rng(seed), { n, 1, 3 }, { 8, 1, 1 })
  return p
end

T.test("flow: fit lowers the loss, samples follow the data, params listed", function()
  local data = corner_data(4000, 1)
  local flow = ff.flow{
    space = ff.sphere{ k = 1, d = 2 },
    network = ff.plugin("network", "bmlp", { hidden = 64, depth = 2 }),
    optim = ff.optim.adamw{ lr = 3e-3, weight_decay = 0 },
    seed = 3,
  }
  local s = flow:step(data:narrow(1, 1, 64))
  T.eq(s.step, 1, "one step"); T.ok(s.loss > 0 and s.loss == s.loss, "loss %s", tostring(s.loss))
  local log = tmp("fit.jsonl")
  local hist = flow:fit(data, { steps = 300, batch = 128, log = log, progress = false })
  T.eq(#hist.loss, 300, "per-step history")
  local first, last = 0, hist:last("loss", 50)
  for i = 1, 50 do first = first + hist.loss[i] end
  first = first / 50
  T.ok(last < first, "loss did not fall: first 50 %.4f, last 50 %.4f", first, last)
  local recs = ff.log.read(log)
  T.ok(#recs >= 2 and recs[#recs].step == 301, "jsonl records %d, last step %s", #recs, tostring(recs[#recs] and recs[#recs].step))
  local x, st = flow:sample(2000, { steps = 50 })
  T.eq(table.concat(x:shape(), ","), "2000,1,3", "sample shape"); T.ok(st.nfe > 0, "nfe %d", st.nfe)
  local m1 = 0
  for i = 0, 1999 do
    m1 = m1 + x.data[3 * i]
    T.near(x.data[3 * i] + x.data[3 * i + 1] + x.data[3 * i + 2], 1, 1e-4, "sample on the simplex")
  end
  m1 = m1 / 2000
  T.ok(m1 > 0.55, "samples should concentrate near vertex 1 (data mean 0.8, uniform 0.33): mean p1 %.3f", m1)
  local params = flow:params()
  T.ok(#params > 0 and params[1].name:match("^net%."), "param names: %s", params[1] and params[1].name or "none")
  local total = 0
  for _, p in ipairs(params) do total = total + p.numel end
  T.eq(total, flow:numel(), "numel")
  local w = flow:param(params[1].name)
  T.eq(table.concat(w:shape(), ","), table.concat(params[1].shape, ","), "borrowed param shape")
  T.raises(function() w:free() end, "borrowed")
  local tok = flow:decode(x)
  T.eq(table.concat(tok:shape(), ","), "2000,1", "tokens [n, k]")
  local lp = flow:log_prob(x:narrow(1, 1, 16), { steps = 20 })
  T.eq(lp:numel(), 16, "log_prob [n]")
  for i = 1, 16 do   -- NaN fails both comparisons, +-inf the second
    local v = lp:get(i)
    T.ok(v == v and math.abs(v) < math.huge, "log_prob[%d] = %s is not finite", i, tostring(v))
  end
end)

T.test("flow: one seed, one run", function()
  local data = corner_data(500, 2)
  local function run()
    local f = ff.flow{ k = 1, d = 2, network = ff.plugin("network", "bmlp", { hidden = 16, depth = 1 }), seed = 11 }
    local h = f:fit(data, { steps = 20, batch = 32, progress = false })
    return h.loss[20], f:sample(10, { steps = 5 }):values()
  end
  local l1, s1 = run()
  local l2, s2 = run()
  T.eq(l1, l2, "loss of step 20"); T.eq(table.concat(s1, ","), table.concat(s2, ","), "samples")
end)

T.test("flow: a Lua source is called once per batch and its draws are used", function()
  local calls, rows = 0, 0
  local corner = ff.source.lua{
    name = "corner",
    sample = function(self, rng, out)
      calls = calls + 1
      rows = rows + out:size(1)
      local p = ff.random.dirichlet(rng, out:shape(), { 1, 1, 8 })
      ff.sphere.from_simplex(out, p)
    end,
  }
  local flow = ff.flow{ k = 1, d = 2, source = corner, seed = 1,
                        network = ff.plugin("network", "bmlp", { hidden = 16, depth = 1 }) }
  local data = corner_data(256, 3)
  flow:fit(data, { steps = 5, batch = 64, progress = false })
  T.eq(calls, 5, "one call per step"); T.eq(rows, 320, "batch rows")
  -- sampling with zero integration time is impossible; with an untrained net x stays near x0,
  -- but the check that matters: samples start from the Lua source (no error, right shape).
  local x = flow:sample(100, { steps = 2 })
  T.eq(calls, 6, "sample drew x0 from the Lua source")
  T.eq(x:size(1), 100, "samples")
  T.raises(function() ff.source.lua{ name = "bad" } end, "needs a function 'sample'")
end)

T.test("flow: settings are checked with names", function()
  T.raises(function() ff.flow{ k = 1, d = 2, sead = 3 } end, "unknown field 'sead'")
  T.raises(function() ff.flow{ k = 1, d = 0 } end, "d must be an integer >= 1, got 0")
  T.raises(function() ff.flow{ k = 1, d = 2, network = ff.plugin("coupler", "independent") } end, "network slot got")
  T.raises(function() ff.flow{ k = 1, d = 2, ema = 1.5 } end, 'field "ema" must be in [0, 1), got 1.5')
  local f = ff.flow{ k = 1, d = 2, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  T.raises(function() f:step(ff.zeros(4, 1, 4)) end, "ff_flow_step")
  T.raises(function() f:fit(ff.zeros(4, 1, 3), { steps = -1 }) end, "steps must be a non-negative integer")
end)

T.test("checkpoints: save, rebuild from the saved config, resume bit for bit", function()
  T.ok(ff.checkpoint, "checkpoint functions are not in this build")
  local data = corner_data(1000, 5)
  local net = ff.plugin("network", "bmlp", { hidden = 16, depth = 2 })
  local a = ff.flow{ k = 1, d = 2, seed = 9, network = net, optim = ff.optim.adamw{ lr = 2e-3 }, ema = 0.9 }
  a:fit(data, { steps = 20, batch = 32, progress = false })
  local path = tmp("ckpt/flow.safetensors")
  a:save(path)
  local meta = ff.checkpoint.meta(path)
  T.eq(meta.step, 20, "step in metadata"); T.eq(meta.version, ff.version, "version")
  T.eq(meta.config.network.name, "bmlp", "network in config"); T.eq(meta.config.network.options.hidden, 16, "options")
  local ha = a:fit(data, { steps = 10, batch = 32, progress = false })
  local b = ff.checkpoint.flow(path)
  T.eq(b:steps(), 20, "steps restored")
  local hb = b:fit(data, { steps = 10, batch = 32, progress = false })
  for i = 1, 10 do T.eq(hb.loss[i], ha.loss[i], "resumed loss " .. i) end
  local xa, xb = a:sample(50, { steps = 10 }), b:sample(50, { steps = 10 })
  T.eq(table.concat(xa:values(), ","), table.concat(xb:values(), ","), "samples after resume")
  -- a flow of another shape refuses the file and stays as it was
  local c = ff.flow{ k = 1, d = 2, seed = 9, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 2 }),
                     optim = ff.optim.adamw{ lr = 2e-3 }, ema = 0.9 }
  local w0 = c:param(c:params()[1].name):values()
  T.raises(function() c:load(path) end, "the flow expects")
  T.eq(table.concat(c:param(c:params()[1].name):values(), ","), table.concat(w0, ","), "untouched after refusal")
end)

T.test("data, metrics and viz wrappers", function()
  T.ok(ff.data and ff.data.smiley, "ff.data.smiley is not in this build")
  local x = ff.data.smiley{ n = 2000, seed = 1 }
  T.eq(table.concat(x:shape(), ","), "2000,1,3", "smiley shape")
  for i = 0, 1999 do T.near(x.data[3 * i] + x.data[3 * i + 1] + x.data[3 * i + 2], 1, 1e-5, "on the simplex") end
  local again = ff.data.smiley{ n = 2000, seed = 1 }
  T.eq(table.concat(x:values(), ","), table.concat(again:values(), ","), "seeded")
  T.ok(ff.metrics and ff.metrics.kl_raw, "ff.metrics is not in this build")
  local kl_self = ff.metrics.kl_raw(x, x, { bins = 16 })
  T.near(kl_self, 0, 1e-9, "KL of a histogram with itself")
  local u = ff.random.dirichlet(ff.rng(2), { 2000, 1, 3 }, 1)
  local kl, d = ff.metrics.kl_raw(u, x, { bins = 16 })
  T.ok(kl > 0.05 and d.tv > 0 and d.tv <= 1, "KL(uniform || smiley) = %g, tv %g", kl, d.tv)
  local masses = ff.data.smiley_masses{ res = 16, m = 64 }
  T.near(masses:sum(), 1, 1e-3, "cell masses sum to 1")
  T.ok(ff.viz, "ff.viz is not in this build")
  local dens = ff.data.smiley_density{ res = 16, m = 64 }
  T.eq(table.concat(dens:shape(), ","), "16,16", "density on viz's grid")
  -- the remap from metrics' cell order onto viz's grid keeps every value (a permutation)
  local flat = ff.zeros(256)
  for i = 0, 255 do flat.data[i] = i end
  local grid = ff.viz.grid_from_cells(flat, 16)
  local seen = {}
  for i = 0, 255 do seen[grid.data[i]] = true end
  local count = 0
  for _ in pairs(seen) do count = count + 1 end
  T.eq(count, 256, "grid_from_cells is a permutation")
  local png = tmp("viz/simplex.png")
  os.remove(png)
  ff.viz.simplex(png, { { title = "data", points = x }, { title = "target", density = dens } }, { meta = { seed = 1 } })
  local f = io.open(png, "rb"); T.ok(f, "no PNG written"); local sig = f:read(8); f:close()
  T.eq(sig, "\137PNG\r\n\26\n", "PNG signature")
  local lines = tmp("viz/lines.png")
  ff.viz.lines(lines, { { label = "loss", y = { 3, 2, 1.5, 1.2 } } }, { xlabel = "step", ylabel = "loss" })
  f = io.open(lines, "rb"); T.ok(f, "no line plot written"); f:close()
  T.raises(function() ff.viz.simplex(png, {}) end, "panels must be a non-empty list")
end)

T.test("flow:density is a density on viz's grid", function()
  T.ok(ff.viz, "ff.viz is not in this build")
  local f = ff.flow{ k = 1, d = 2, seed = 1, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  -- with the network's output zeroed the field vanishes and the model is the uniform orthant
  -- source, Dirichlet(1/2, 1/2, 1/2) on the simplex: density (1 / (2 pi)) (p0 p1 p2)^(-1/2)
  for _, name in ipairs{ "net.block0.weight_h", "net.block0.weight_e", "net.block0.bias" } do
    f:param(name):fill(0)
  end
  local res = 12
  local g = f:density{ resolution = res, steps = 10 }
  T.eq(table.concat(g:shape(), ","), "12,12", "grid shape")
  -- cell [i][j] of viz.h's convention: upright (i + j < res) centre ((i + 1/3), (j + 1/3)) / res,
  -- inverted centre ((res - 1 - i + 2/3), (res - 1 - j + 2/3)) / res
  for i = 0, res - 1 do
    for j = 0, res - 1 do
      local a, b
      if i + j < res then a, b = (i + 1 / 3) / res, (j + 1 / 3) / res
      else a, b = (res - 1 - i + 2 / 3) / res, (res - 1 - j + 2 / 3) / res end
      local want = 1 / (2 * math.pi * math.sqrt(a * b * (1 - a - b)))
      T.near(g.data[i * res + j], want, 1e-4 * want, ("density at cell [%d][%d]"):format(i, j))
    end
  end
end)

T.test("ff.dequantise: points in the cell, log q by hand for Dirichlet(2), moments of u", function()
  local x = ff.tensor{ { { 1, 0 }, { 0, 1 } }, { { 0, 1 }, { 0, 1 } } }   -- [2, 2, 2] one-hot
  local lam = 0.4
  local z, logq = ff.dequantise(x, lam, ff.rng(3), 2)
  for i = 1, 2 do
    local want = 0
    for j = 1, 2 do
      local c = x:get(i, j, 1) == 1 and 1 or 2
      T.ok(z:get(i, j, c) >= 1 - lam - 1e-7 and z:get(i, j, c) >= z:get(i, j, 3 - c), "argmax is the data's symbol")
      T.near(z:get(i, j, 1) + z:get(i, j, 2), 1, 1e-6, "on the simplex")
      -- u = (z - (1 - lam) e) / lam ~ Beta(2, 2): density 6 u1 u2, and dz1 = lam du1
      local u1 = (z:get(i, j, 1) - (c == 1 and 1 - lam or 0)) / lam
      want = want + math.log(6 * u1 * (1 - u1)) - math.log(lam)
    end
    T.near(logq[i], want, 1e-5, "log q of row " .. i)
  end
  -- Dirichlet(alpha) on m symbols: E u_j = 1/m, Var u_j = (m - 1) / (m^2 (m alpha + 1))
  local m, n, alpha = 4, 20000, 3
  local big = ff.zeros(n, 1, m)
  for i = 0, n - 1 do big.data[i * m] = 1 end
  local q = ff.dequantise(big, 0.5, ff.rng(4), alpha)
  local s, s2 = 0, 0
  for i = 0, n - 1 do local u = q.data[i * m + 2] / 0.5; s, s2 = s + u, s2 + u * u end
  local mean, var = s / n, s2 / n - (s / n) ^ 2
  local want_var = (m - 1) / (m * m * (m * alpha + 1))
  T.near(mean, 1 / m, 4 * math.sqrt(want_var / n), "E u_j")
  T.near(var, want_var, 0.05 * want_var, "Var u_j")
  T.raises(function() ff.dequantise(x, 0.6, ff.rng(1)) end, "lam must be in (0, 1/2]")
  T.raises(function() ff.dequantise(x, 0.1, ff.rng(1), 0.5) end, "alpha must be a number >= 1")
  T.raises(function() ff.dequantise(ff.tensor{ { { 1, 1 } } }, 0.1, ff.rng(1)) end, "x[1][1] has 2 ones")
  T.raises(function() ff.dequantise(ff.tensor{ { { 0.5, 0.5 } } }, 0.1, ff.rng(1)) end, "rows must be one-hot")
  local qs = ff.dequantisations("0.001:1.5, 0.5:1", "--q")
  T.eq(#qs, 2); T.eq(qs[1].lam, 0.001); T.eq(qs[1].alpha, 1.5); T.eq(qs[2].lam, 0.5); T.eq(qs[2].alpha, 1)
  T.raises(function() ff.dequantisations("0.001:1.5,0.7:2", "--q") end, "--q: '0.7:2' is not lam:alpha")
  T.raises(function() ff.dequantisations("0.01", "--q") end, "--q: '0.01' is not lam:alpha")
  T.raises(function() ff.dequantisations("", "--q") end, "--q: no lam:alpha pair")
end)

T.test("flow:bits is the dequantisation bound: closed form for the uniform model, never below -log2 P", function()
  local f = ff.flow{ k = 1, d = 2, seed = 1, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  -- zero field: the model is the uniform orthant source, Dirichlet(1/2, 1/2, 1/2) on the simplex,
  -- density (1 / (2 pi)) (p0 p1 p2)^(-1/2); each argmax cell has P = 1/3 by symmetry
  for _, name in ipairs{ "net.block0.weight_h", "net.block0.weight_e", "net.block0.bias" } do
    f:param(name):fill(0)
  end
  local n = 600
  local x = ff.zeros(n, 1, 3)
  for i = 0, n - 1 do x.data[3 * i + i % 3] = 1 end
  for _, case in ipairs { { 0.5, 1 }, { 0.2, 3 } } do
    local lam, alpha = case[1], case[2]
    local bits, info = f:bits(x, { lam = lam, alpha = alpha, rng = ff.rng(7), steps = 4 })
    T.eq(info.finite, n, "every row finite")
    local z, logq = ff.dequantise(x, lam, ff.rng(7), alpha)       -- the same draws
    local mean = 0
    for i = 0, n - 1 do
      local a, b, c = z.data[3 * i], z.data[3 * i + 1], z.data[3 * i + 2]
      local want = (logq[i + 1] + math.log(2 * math.pi) + 0.5 * math.log(a * b * c)) / math.log(2)
      T.near(bits.data[i], want, 1e-3 * math.abs(want) + 1e-3, ("row %d, lam %g, alpha %g"):format(i, lam, alpha))
      mean = mean + bits.data[i] / n
    end
    T.ok(mean > math.log(3) / math.log(2), ("the bound %.4f is not below -log2(1/3)"):format(mean))
  end
  T.raises(function() f:bits(x, { lam = 0.5 }) end, "rng is required")
end)

T.test("tensor:batch draws rows with replacement, seeded", function()
  local t = ff.tensor{ { 1, 1 }, { 2, 2 }, { 3, 3 } }
  local b = t:batch(3000, ff.rng(4))
  T.eq(table.concat(b:shape(), ","), "3000,2", "shape")
  local counts = { 0, 0, 0 }
  for i = 0, 2999 do
    local v = b.data[2 * i]
    T.eq(b.data[2 * i + 1], v, "rows copied whole")
    counts[v] = counts[v] + 1
  end
  for k = 1, 3 do T.near(counts[k], 1000, 120, "row " .. k .. " drawn about a third of the time") end
  T.eq(table.concat(t:batch(5, ff.rng(4)):values(), ","), table.concat(b:narrow(1, 1, 5):values(), ","), "same seed")
  T.raises(function() t:batch(0) end, "n must be a positive integer")
end)

T.test("Lua decoders and metrics are called once per batch", function()
  local calls = 0
  local dec = ff.decoder.lua{
    name = "first_symbol_wins",
    decode = function(self, p, rng, out)                 -- out [n, k]: always token 0
      calls = calls + 1
      out:fill(0)
    end,
  }
  local f = ff.flow{ k = 1, d = 2, decoder = dec, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  local p = ff.random.dirichlet(ff.rng(1), { 10, 1, 3 }, 1)
  local tok = f:decode(p)
  T.eq(calls, 1, "one call"); T.eq(table.concat(tok:shape(), ","), "10,1", "tokens"); T.eq(tok:max(), 0, "values")
  local mean_p1 = ff.metric.lua{ name = "mean_p1", compute = function(self, x) local s = 0
    for i = 0, x:size(1) - 1 do s = s + x.data[3 * i] end
    return s / x:size(1) end }
  local r = ff.metrics.run({ mean_p1 }, p)
  local direct = 0
  for i = 0, 9 do direct = direct + p:get(i + 1, 1, 1) end
  T.near(r.mean_p1, direct / 10, 1e-12, "metric value")
  T.raises(function() ff.metric.lua{ name = "m" } end, "needs a function 'compute'")
  T.raises(function() ff.flow{ k = 1, d = 2, source = dec } end, "is a lua decoder, not a source")
end)

T.test("files: sequences as one-hot tensors, safetensors round trip", function()
  T.ok(ff.data and ff.data.sequences and ff.save_tensors, "io wrappers are not in this build")
  local fa = tmp("seqs.fa")
  local f = io.open(fa, "w"); f:write(">one\nACGT\n>two\nTTGA\n"); f:close()
  local x = ff.data.sequences(fa, { alphabet = "ACGT" })
  T.eq(table.concat(x:shape(), ","), "2,4,4", "[n, L, |alphabet|]")
  T.eq(x:get(1, 2, 2), 1, "C is symbol 2"); T.eq(x:get(2, 4, 1), 1, "A is symbol 1"); T.eq(x:sum(), 8, "one-hot")
  f = io.open(fa, "w"); f:write(">one\nACXT\n"); f:close()
  T.raises(function() ff.data.sequences(fa, { alphabet = "ACGT" }) end, "seqs.fa:2:3")
  T.raises(function() ff.data.sequences(fa, { alphabet = "ACGT", format = "fastq" }) end, "format must be auto, fasta or lines")
  local st = tmp("t.safetensors")
  ff.save_tensors(st, { a = ff.tensor{ { 1, 2 }, { 3, 4 } }, b = ff.tensor{ 5 } }, { note = "hi" })
  local back, meta = ff.load_tensors(st)
  T.eq(table.concat(back.a:values(), ","), "1,2,3,4", "a"); T.eq(back.b:get(1), 5, "b"); T.eq(meta.note, "hi", "metadata")
  T.raises(function() ff.load_tensors(tmp("missing.safetensors")) end, "missing.safetensors")
end)

T.test("files: rows of what ff.data.sequences and ff.load_tensors return", function()
  local fa = tmp("rows.fa")
  local f = io.open(fa, "w"); f:write(">one\nACGT\n>two\nTTGA\n"); f:close()
  local x = ff.data.sequences(fa, { alphabet = "ACGT" })
  T.eq(#x, 2, "#x"); T.eq(table.concat(x[1]:shape(), ","), "4,4", "row 1 shape")
  T.eq(table.concat(x[2]:shape(), ","), "4,4", "row 2 shape")
  T.eq(x[2][1][4], 1, "T is symbol 4 at position 1 of record 2"); T.eq(x[2]:sum(), 4, "one-hot row")
  T.raises(function() return x[3] end, "index 3 out of range [1, 2]")
  local st = tmp("rows.safetensors")
  ff.save_tensors(st, { a = ff.tensor{ { 1, 2 }, { 3, 4 } } })
  local back = ff.load_tensors(st)
  T.eq(table.concat(back.a[2]:values(), ","), "3,4", "row 2 of a loaded tensor")
  T.eq(back.a[1][2], 2, "a[1][2]")
end)
