-- test_lua_plugins.lua — plugins written in Lua (ff.source.lua, ff.decoder.lua) are reached by the
-- core through the same vtables as C plugins: the flow's step, eval_loss, sample and log_prob call a
-- Lua source's functions (once per batch), decode calls a Lua decoder's, and what the core cannot
-- call is refused, never silently replaced by a default.
local T  = require "ff_test"
local ff = require "fisherflow"

local function small_net() return ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) end
local function data_of(n, seed) return ff.random.dirichlet(ff.rng(seed), { n, 1, 3 }, { 4, 4, 4 }) end
-- log-density of uniform_sphere on S^2_+ (k = 1): |S^2| / 2^3 = pi / 2
local log_uniform = -math.log(math.pi / 2)

-- A Lua source drawing uniform points on S^2_+ (|normal| normalised), counting its calls.
local function counting_source(name, with_log_prob, const)
  local c = { sample = 0, log_prob = 0, rows = 0 }
  local t = {
    name = name,
    sample = function(self, rng, out)
      c.sample = c.sample + 1
      c.rows = c.rows + out:size(1)
      local n = out:numel() / 3
      for i = 0, n - 1 do
        local a, b, d = math.abs(rng:normal()), math.abs(rng:normal()), math.abs(rng:normal())
        local r = math.sqrt(a * a + b * b + d * d)
        out.data[3 * i], out.data[3 * i + 1], out.data[3 * i + 2] = a / r, b / r, d / r
      end
    end,
  }
  if with_log_prob then
    t.log_prob = function(self, x, out) c.log_prob = c.log_prob + 1; out:fill(const) end
  end
  return ff.source.lua(t), c
end

T.test("flow:log_prob uses a Lua source's log_prob, once per batch", function()
  local src, c = counting_source("const_density", true, 1.5)
  local f = ff.flow{ k = 1, d = 2, seed = 4, source = src, network = small_net() }
  local g = ff.flow{ k = 1, d = 2, seed = 4, network = small_net() }
  local p = data_of(16, 1)
  local a = f:log_prob(p, { steps = 8 })
  local b = g:log_prob(p, { steps = 8 })
  T.eq(c.log_prob, 1, "the Lua log_prob was called once for the batch")
  for i = 1, 16 do
    -- same network and seed: only the source's density differs, by a constant
    T.near(a:get(i) - b:get(i), 1.5 - log_uniform, 1e-4, "log_prob row " .. i)
  end
end)

T.test("flow:eval_loss draws x0 from a Lua source", function()
  local src, c = counting_source("counted_eval", true, 0)
  local f = ff.flow{ k = 1, d = 2, seed = 4, source = src, network = small_net() }
  local x1 = data_of(32, 2)
  local l = f:eval_loss(x1)
  T.eq(c.sample, 1, "one draw for the batch"); T.eq(c.rows, 32, "rows drawn")
  T.ok(l == l and l > 0, "loss %s", tostring(l))
  -- a source concentrated at one point gives another loss than the default uniform source
  local point = ff.source.lua{ name = "one_point", sample = function(self, rng, out)
    local n = out:numel() / 3
    for i = 0, n - 1 do out.data[3 * i], out.data[3 * i + 1], out.data[3 * i + 2] = 0, 0, 1 end
  end }
  local h = ff.flow{ k = 1, d = 2, seed = 4, source = point, network = small_net() }
  local g = ff.flow{ k = 1, d = 2, seed = 4, network = small_net() }
  T.ok(math.abs(h:eval_loss(x1) - g:eval_loss(x1)) > 1e-3, "the Lua source's draws are used")
end)

T.test("flow:log_prob refuses a Lua source without log_prob, naming it", function()
  local src = counting_source("no_density", false)
  local f = ff.flow{ k = 1, d = 2, seed = 4, source = src, network = small_net() }
  T.raises(function() f:log_prob(data_of(4, 3), { steps = 4 }) end, 'source "no_density" has no density')
end)

-- A Lua source that ignores the stream and returns fixed points P: the core's results with it must
-- equal those of the default source given x0 = P explicitly.
local function fixed_points(n)
  local p = ff.random.dirichlet(ff.rng(77), { n, 1, 3 }, { 2, 2, 2 })
  local x = ff.zeros(n, 1, 3)
  ff.sphere.from_simplex(x, p)
  return x
end

T.test("fit, step and sample use a Lua source's draws, one call per batch", function()
  local P = fixed_points(16)
  local calls = 0
  local src = ff.source.lua{ name = "fixed16", sample = function(self, rng, out)
    calls = calls + 1
    out:copy_from(P:narrow(1, 1, out:size(1)))
  end }
  local a = ff.flow{ k = 1, d = 2, seed = 5, source = src, network = small_net() }
  local b = ff.flow{ k = 1, d = 2, seed = 5, network = small_net() }
  local x1 = data_of(16, 4)
  for i = 1, 3 do
    local sa, sb = a:step(x1), b:step(x1, P)
    T.eq(sa.loss, sb.loss, "step " .. i .. ": loss with the Lua source = loss with x0 = its draws")
  end
  T.eq(calls, 3, "one draw per step")
  local xa = a:sample(16, { steps = 3 })
  local xb = b:sample(16, { steps = 3, x0 = P })
  T.eq(calls, 4, "one draw for the sample batch")
  T.eq(table.concat(xa:values(), ","), table.concat(xb:values(), ","), "samples start at the Lua draws")
  a:sample(16, { steps = 1, batch = 5 })
  T.eq(calls, 8, "16 rows in batches of 5: four draws")
  -- fit: its loop runs hot enough for the JIT (the C calls that call back stay interpreted)
  calls = 0
  local h = a:fit(data_of(64, 5), { steps = 200, batch = 16, progress = false })
  T.eq(calls, 200, "fit: one draw per step"); T.eq(#h.loss, 200, "steps")
end)

T.test("a Lua decoder's decode is the one the flow uses; emits_probs comes from it", function()
  local calls = 0
  local dec = ff.decoder.lua{ name = "probs_twice", emits_probs = true, decode = function(self, x, rng, out)
    calls = calls + 1
    for i = 0, out:numel() - 1 do out.data[i] = 2 * x.data[i] end     -- x: sphere coordinates
  end }
  local f = ff.flow{ k = 1, d = 2, decoder = dec, network = small_net() }
  local p = data_of(6, 6)
  local y = f:decode(p)
  T.eq(calls, 1, "one call for the batch")
  T.eq(table.concat(y:shape(), ","), "6,1,3", "probabilities [n, k, d+1]")
  for i = 0, 17 do T.near(y.data[i], 2 * math.sqrt(p.data[i]), 1e-6, "value " .. i) end
end)

T.test("an erroring Lua callback gives a Lua error with its message, the flow stays usable", function()
  local P = fixed_points(8)
  local src = ff.source.lua{ name = "bad_density", sample = function(self, rng, out) out:copy_from(P) end,
                             log_prob = function() error("no density today") end }
  local f = ff.flow{ k = 1, d = 2, source = src, network = small_net() }
  T.raises(function() f:log_prob(data_of(4, 7), { steps = 2 }) end,
           'ff_flow_log_prob: source "bad_density": ')
  T.raises(function() f:log_prob(data_of(4, 7), { steps = 2 }) end, "no density today")
  local dec = ff.decoder.lua{ name = "bad_decoder", decode = function() error({ code = 3 }) end }
  local g = ff.flow{ k = 1, d = 2, decoder = dec, network = small_net() }
  T.raises(function() g:decode(data_of(4, 7)) end, "table:")     -- a non-string error, as text
  local made = ff.source.lua{ name = "bad_create", sample = function() end,
                              create = function(self, space) error("needs d = 3, got " .. space.d) end }
  T.raises(function() ff.flow{ k = 1, d = 2, source = made, network = small_net() } end, "needs d = 3, got 2")
  T.eq(f:step(data_of(8, 8)).step, 1, "a step after the failed calls")
end)

T.test("Lua plugin names: checked by the loader, unique while alive, never shadowing a file", function()
  T.raises(function() ff.source.lua{ name = "Corner", sample = function() end } end,
           'ff_plugin_register: source "Corner": invalid plugin name')
  T.raises(function() ff.decoder.lua{ name = "argmax", decode = function() end } end,
           '"argmax" is already the name of a decoder plugin on the search path')
  local keep = ff.source.lua{ name = "twin", sample = function() end }
  T.raises(function() ff.source.lua{ name = "twin", sample = function() end } end,
           'another Lua source named "twin" is alive')
  ff.decoder.lua{ name = "twin", decode = function() end }       -- another kind: its own names
  keep = nil
  -- once the first is collected the name is free again (a loop may rebuild its source)
  for i = 1, 3 do
    local again = ff.source.lua{ name = "twin", sample = function() end }
    T.eq(again.name, "twin", "made again " .. i)
  end
  T.raises(function() ff.flow{ k = 1, d = 2, coupler = ff.source.lua{ name = "src_as_coupler", sample = function() end } } end,
           "is a lua source, not a coupler")
end)

T.test("collected Lua plugins give their callbacks back", function()
  -- LuaJIT has under a thousand callback slots; 1200 plugins of 3 callbacks each need them back
  for i = 1, 1200 do
    ff.source.lua{ name = "many_" .. i, sample = function() end, log_prob = function() end }
  end
  local found = ff.plugin.find("source", "many_1")
  T.ok(found == nil, "the first of them was collected and unregistered")
end)
