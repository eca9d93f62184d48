-- test_viz.lua — ff.viz.simplex_density, the one-call picture of DESIGN.md's example: which panels
-- it draws, that its histogram panels are densities (they integrate to 1 and put a point mass in
-- its cell), the shared colour scale, and the refusals.
local T  = require "ff_test"
local ff = require "fisherflow"

local tmp = T.tmp
local function png_signature(path)
  local f = io.open(path, "rb"); if not f then return nil end
  local sig = f:read(8); f:close(); return sig
end
local function integral(grid, res) return grid:sum() / (2 * res * res) end   -- cell area 1/(2 res^2)

T.test("histogram panels are densities: a point mass fills its cell, smiley data integrate to 1", function()
  local res = 8
  local centres = ff.viz.grid_points(res)                     -- [res^2, 1, 3], viz's cell centres
  local cell = 13
  local pts = ff.zeros(50, 1, 3)
  for i = 0, 49 do for j = 0, 2 do pts.data[3 * i + j] = centres.data[3 * cell + j] end end
  local path = tmp("point_mass.png"); os.remove(path)
  local out, panels = ff.viz.simplex_density(path, { data = pts, res = res })
  T.eq(out, path, "returns the path")
  T.eq(png_signature(path), "\137PNG\r\n\26\n", "PNG written")
  T.eq(#panels, 1, "one panel")
  local g = panels[1].density
  T.eq(table.concat(g:shape(), ","), "8,8", "grid shape")
  for i = 0, res * res - 1 do
    T.near(g.data[i], i == cell and 2 * res * res or 0, 1e-3, "cell " .. i)
  end
  local x = ff.data.smiley{ n = 5000, seed = 3 }
  local _, p2 = ff.viz.simplex_density(tmp("smiley_hist.png"), { samples = x, res = 24 })
  T.near(integral(p2[1].density, 24), 1, 1e-4, "histogram density integrates to 1")
end)

T.test("target, data, samples and model panels in that order, on one colour scale", function()
  local res = 12
  local x = ff.data.smiley{ n = 2000, seed = 1 }
  local flow = ff.flow{ sphere = { k = 1, d = 2 }, seed = 2,
                        network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  local path = tmp("four.png"); os.remove(path)
  local _, panels = ff.viz.simplex_density(path, {
    target = function(a, b, c) return 2 end, data = x, samples = x, model = flow, res = res, steps = 8,
    title = "four panels" })
  T.eq(png_signature(path), "\137PNG\r\n\26\n", "PNG written")
  T.eq(#panels, 4, "four panels")
  T.ok(panels[1].title:find("target", 1, true) and panels[2].title:find("data", 1, true) and
       panels[3].title:find("samples", 1, true) and panels[4].title:find("model", 1, true), "order")
  for i = 0, res * res - 1 do T.eq(panels[1].density.data[i], 2, "uniform target") end
  for _, p in ipairs(panels) do T.eq(p.vmin, 0, "vmin"); T.near(p.vmax, 2, 1e-6, "vmax from the first panel") end
  local direct = flow:density{ res = res, steps = 8 }
  for i = 0, res * res - 1 do T.eq(panels[4].density.data[i], direct.data[i], "model panel = flow:density, cell " .. i) end
  local _, fixed = ff.viz.simplex_density(tmp("fixed.png"), { data = x, res = res, vmin = 1, vmax = 30 })
  T.eq(fixed[1].vmin, 1, "given vmin"); T.eq(fixed[1].vmax, 30, "given vmax")
end)

T.test("defaults: res from the target tensor, 25 likelihood steps, off-simplex points counted", function()
  local target = ff.data.smiley_density { res = 10, m = 16 }
  local flow = ff.flow{ sphere = { k = 1, d = 2 }, seed = 3,
                        network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  local _, panels = ff.viz.simplex_density(T.tmp("defaults.png"), { target = target, model = flow })
  T.eq(table.concat(panels[2].density:shape(), ","), "10,10", "res taken from the target")
  local direct = flow:density{ res = 10, steps = 25 }
  for i = 0, 99 do T.eq(panels[2].density.data[i], direct.data[i], "model panel with 25 steps, cell " .. i) end
  local pts = ff.data.smiley{ n = 40, seed = 2 }
  pts.data[0], pts.data[1], pts.data[2] = 0.9, 0.9, -0.8           -- sums to 1 but leaves the simplex
  local _, p2 = ff.viz.simplex_density(T.tmp("off.png"), { samples = pts, res = 8 })
  T.ok(p2[1].title:find("1 off the simplex", 1, true), "title counts the dropped point: %s", p2[1].title)
  T.near(p2[1].density:sum() / (2 * 8 * 8), 1, 1e-4, "density over the points kept")
end)

T.test("refusals name the field", function()
  local x = ff.data.smiley{ n = 100, seed = 1 }
  local path = tmp("refused.png")
  T.raises(function() ff.viz.simplex_density(path, {}) end, "nothing to draw")
  T.raises(function() ff.viz.simplex_density(path, { sample = x }) end, "unknown field 'sample'")
  T.raises(function() ff.viz.simplex_density(path, { data = x, res = 0 }) end, "res must be a positive integer")
  T.raises(function() ff.viz.simplex_density(path, { data = { 1, 2 } }) end, "data must be a tensor")
  T.raises(function() ff.viz.simplex_density(path, { model = 3 }) end, "model must be a flow")
  T.raises(function() ff.viz.simplex_density(path, { target = ff.zeros(6, 6), res = 8 }) end,
           "target is [6, 6], expected [8, 8]")
  T.raises(function() ff.viz.simplex_density(path, { target = function() return "x" end, res = 4 }) end,
           "target returned string")
  local k2 = ff.flow{ sphere = { k = 2, d = 2 }, network = ff.plugin("network", "bmlp", { hidden = 8, depth = 1 }) }
  T.raises(function() ff.viz.simplex_density(path, { model = k2, res = 4 }) end, "k = 1")
end)
