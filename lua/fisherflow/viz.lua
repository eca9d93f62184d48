-- viz.lua — PNG figures through libfisherflow_viz (viz.h): ff.viz.simplex(path, panels, opts),
-- ff.viz.lines(path, series, axes, opts), and the grid flow:density{} evaluates on.
local core   = require "fisherflow.core"
local tensor = require "fisherflow.tensor"
local json   = require "fisherflow.json"
local util   = require "fisherflow.util"
local random = require "fisherflow.random"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}

local function as_tensor(v, what)
  if v == nil then return nil end
  if tensor.is_tensor(v) then return v end
  if type(v) == "table" then return tensor.tensor(v) end
  raise(("ff.viz: %s must be a tensor or a table, got %s"):format(what, type(v)))
end

-- The keys each table of the viz calls may hold (a typo is refused, not ignored).
local known = {
  opts   = { width = true, height = true, title = true, meta = true, flow = true },
  panel  = { title = true, points = true, density = true, trajectories = true, style = true, hist_res = true,
             log_scale = true, vmin = true, vmax = true, alpha = true, radius = true, color = true, labels = true },
  series = { label = true, x = true, y = true, marker = true, line = true, smooth = true, color = true },
  axes   = { xlabel = true, ylabel = true, log_x = true, log_y = true, xmin = true, xmax = true, ymin = true,
             ymax = true, legend = true, grid = true },
  simplex_density = { target = true, data = true, samples = true, model = true, res = true, steps = true,
                      vmin = true, vmax = true, title = true },
}
local function check_table(t, what, fname, kind)
  if t == nil then return end
  if type(t) ~= "table" then raise(("%s: %s must be a table, got %s"):format(fname, what, type(t))) end
  util.check_keys(t, known[kind], fname .. ": " .. what, "field")
end

-- ff_viz_opts from { width =, height =, title =, meta = { key = value } }; keep holds the strings.
local function viz_opts(t, keep)
  local o = ffi.new("ff_viz_opts")
  if t == nil then return o end
  o.width, o.height = t.width or 0, t.height or 0
  if t.title then keep[#keep + 1] = t.title; o.title = t.title end
  if t.meta then
    local keys = {}
    for k in pairs(t.meta) do keys[#keys + 1] = k end
    table.sort(keys)
    local ks, vs = ffi.new("const char *[?]", #keys + 1), ffi.new("const char *[?]", #keys + 1)
    for i, k in ipairs(keys) do
      local v = t.meta[k]
      if type(v) ~= "string" then v = json.encode(v) end
      keep[#keep + 1] = k; keep[#keep + 1] = v
      ks[i - 1], vs[i - 1] = k, v
    end
    keep[#keep + 1] = ks; keep[#keep + 1] = vs
    o.n_meta, o.meta_keys, o.meta_values = #keys, ks, vs
  end
  return o
end

-- Metadata every picture gets (besides Software = "fisherflow <version>", which viz writes):
--   script     the script's path          args       its command line as typed
--   arguments  JSON of every ff.args value, defaults included (the latest ff.args call)
--   seed       ff.seed's seed (the default stream's, and the default of every flow)
--   commit     the source tree's commit the runner was built from, when known
--   flow       the flow's configuration JSON (ff_flow_config_json_of), when opts.flow is given
-- The caller's own opts.meta entries come last and win.
local function default_meta(t)
  t = t or {}
  local meta = {}
  local script = package.loaded["fisherflow.script"]
  if script then
    meta.script = script.path
    meta.args = table.concat(script.args, " ")
  end
  local args = package.loaded["fisherflow.args"]
  if args and args.resolved then meta.arguments = json.encode(args.resolved) end
  meta.seed = tostring(random.default_seed)
  if core.config.commit then meta.commit = core.config.commit end
  if t.flow ~= nil then
    if type(t.flow) ~= "table" or t.flow.ptr == nil then raise("ff.viz: flow must be a flow (ff.flow{...}), got " .. type(t.flow)) end
    meta.flow = ffi.string(C.ff_flow_config_json_of(t.flow.ptr))
  end
  for k, v in pairs(t.meta or {}) do meta[k] = v end
  local copy = {}
  for k, v in pairs(t) do copy[k] = v end
  copy.meta, copy.flow = meta, nil
  return copy
end

-- Centres of viz's [res, res] grid as points [res*res, 1, 3] (flow:density evaluates there).
function M.grid_points(res)
  local pts = tensor.zeros(res * res, 1, 3)
  check(core.viz_lib().ff_viz_simplex_grid_points(res, pts))
  return pts
end

function M.install(ff)
  if not core.config.viz_lib then return end
  local V = core.viz_lib()
  local viz = {}
  ff.viz = viz

  -- Values in metrics.h cell order ([res*res]) -> viz's [res, res] grid (both split each edge into
  -- res parts; the cell of each viz centre is looked up in metrics' numbering).
  function viz.grid_from_cells(flat, res)
    if not core.has("ff_simplex_grid_cell") then raise("ff.viz.grid_from_cells: metrics are not in this build") end
    local pts = tensor.zeros(res * res, 3)
    check(V.ff_viz_simplex_grid_points(res, pts))
    local grid = tensor.zeros(res, res)
    local src = flat:is_contiguous() and flat or flat:copy()
    for r = 0, res * res - 1 do
      local cell = C.ff_simplex_grid_cell(pts.data[3 * r], pts.data[3 * r + 1], pts.data[3 * r + 2], res)
      if cell < 0 then raise("ff.viz.grid_from_cells: a grid centre is off the simplex (res " .. res .. ")") end
      grid.data[r] = src.data[cell]
    end
    return grid
  end

  viz.grid_points = M.grid_points

  -- ff.viz.simplex(path, { { title =, points =, density =, trajectories =, style = "scatter" |
  --   "histogram", hist_res =, log_scale =, vmin =, vmax =, alpha =, radius =, color =,
  --   labels = { "A", "B", "C" } }, ... }, { width =, height =, title =, meta = {} })
  function viz.simplex(path, panels, opts)
    if type(path) ~= "string" then raise("ff.viz.simplex: path must be a string") end
    if type(panels) ~= "table" or #panels == 0 then raise("ff.viz.simplex: panels must be a non-empty list") end
    check_table(opts, "options", "ff.viz.simplex", "opts")
    for i, p in ipairs(panels) do check_table(p, "panel " .. i, "ff.viz.simplex", "panel") end
    local keep = {}
    local arr = ffi.new("ff_viz_panel[?]", #panels)
    for i, p in ipairs(panels) do
      local c = arr[i - 1]
      if p.title then keep[#keep + 1] = p.title; c.title = p.title end
      local pts, dens, traj = as_tensor(p.points, "points"), as_tensor(p.density, "density"),
                              as_tensor(p.trajectories, "trajectories")
      if dens and dens.ndim == 1 then
        local res = math.floor(math.sqrt(dens:numel()) + 0.5)
        dens = viz.grid_from_cells(dens, res)
      end
      keep[#keep + 1] = pts; keep[#keep + 1] = dens; keep[#keep + 1] = traj
      c.points, c.density, c.trajectories = pts, dens, traj
      if p.style == "histogram" then c.points_style = V.FF_VIZ_POINTS_HISTOGRAM
      elseif p.style ~= nil and p.style ~= "scatter" then
        raise(("ff.viz.simplex: panel %d: style must be scatter or histogram, got %s"):format(i, tostring(p.style)))
      end
      c.hist_res = p.hist_res or 0
      c.log_scale = p.log_scale and 1 or 0
      c.vmin, c.vmax = p.vmin or 0, p.vmax or 0
      c.point_alpha, c.point_radius = p.alpha or 0, p.radius or 0
      if p.color then keep[#keep + 1] = p.color; c.color = p.color end
      if p.labels then
        for j = 1, 3 do
          if p.labels[j] then keep[#keep + 1] = p.labels[j]; c.labels[j - 1] = p.labels[j] end
        end
      end
    end
    util.ensure_parent(path)
    local o = viz_opts(default_meta(opts), keep)
    if not core.writes() then return path end   -- another rank writes it (core.writes)
    check(V.ff_viz_simplex(path, arr, #panels, o))
    return path
  end

  local markers = { none = 0, circle = 1, square = 2, triangle = 3, diamond = 4, cross = 5 }
  local lines = { solid = 0, dashed = 1, none = 2 }
  local legends = { auto = 0, upper_right = 1, upper_left = 2, lower_left = 3, lower_right = 4, none = 5 }

  -- ff.viz.lines(path, { { label =, x = {..} | tensor | nil, y = {..} | tensor, marker =, line =,
  --   smooth =, color = }, ... }, { xlabel =, ylabel =, log_x =, log_y =, xmin =, xmax =, ymin =,
  --   ymax =, legend = "auto", grid = true }, opts)
  function viz.lines(path, series, axes, opts)
    if type(series) ~= "table" or #series == 0 then raise("ff.viz.lines: series must be a non-empty list") end
    for i, s in ipairs(series) do check_table(s, "series " .. i, "ff.viz.lines", "series") end
    check_table(axes, "axes", "ff.viz.lines", "axes")
    check_table(opts, "options", "ff.viz.lines", "opts")
    local keep = {}
    local arr = ffi.new("ff_viz_series[?]", #series)
    local function doubles(v, what, i)
      if tensor.is_tensor(v) then v = v:values() end
      if type(v) ~= "table" then raise(("ff.viz.lines: series %d: %s must be a table or tensor"):format(i, what)) end
      local a = ffi.new("double[?]", math.max(#v, 1))
      for j = 1, #v do a[j - 1] = v[j] end
      keep[#keep + 1] = a
      return a, #v
    end
    for i, s in ipairs(series) do
      local c = arr[i - 1]
      local y, n = doubles(s.y, "y", i)
      c.y, c.n = y, n
      if s.x ~= nil then
        local x, nx = doubles(s.x, "x", i)
        if nx ~= n then raise(("ff.viz.lines: series %d: %d x values, %d y values"):format(i, nx, n)) end
        c.x = x
      end
      if s.label then keep[#keep + 1] = s.label; c.label = s.label end
      if s.color then keep[#keep + 1] = s.color; c.color = s.color end
      c.marker = markers[s.marker or "none"] or raise("ff.viz.lines: unknown marker " .. tostring(s.marker))
      c.line_style = lines[s.line or "solid"] or raise("ff.viz.lines: unknown line " .. tostring(s.line))
      c.smooth = s.smooth or 0
    end
    local ax = ffi.new("ff_viz_axes")
    axes = axes or {}
    if axes.xlabel then keep[#keep + 1] = axes.xlabel; ax.xlabel = axes.xlabel end
    if axes.ylabel then keep[#keep + 1] = axes.ylabel; ax.ylabel = axes.ylabel end
    ax.log_x, ax.log_y = axes.log_x and 1 or 0, axes.log_y and 1 or 0
    ax.xmin, ax.xmax, ax.ymin, ax.ymax = axes.xmin or 0, axes.xmax or 0, axes.ymin or 0, axes.ymax or 0
    ax.legend = legends[axes.legend or "auto"] or raise("ff.viz.lines: unknown legend " .. tostring(axes.legend))
    ax.grid = axes.grid == false and 1 or 0
    util.ensure_parent(path)
    local o = viz_opts(default_meta(opts), keep)
    if not core.writes() then return path end   -- another rank writes it (core.writes)
    check(V.ff_viz_lines(path, arr, #series, ax, o))
    return path
  end

  -- ff.viz.simplex_density(path, { target =, data =, samples =, model =, res =, steps = 25,
  --   vmin =, vmax =, title = }, opts) -> path, panels (each { title =, density = [res, res],
  --   vmin =, vmax = }, as drawn). One PNG, one panel per item given, in the order
  -- target | data | samples | model:
  --   target  a [res, res] density on viz's grid (ff.data.smiley_density{}), or function(a, b, c)
  --           returning the density at the simplex point (a, b, c);
  --   res     grid resolution: the target tensor's if one is given, else 96;
  --   data, samples  points [n, 1, 3] (or [n, 3]), drawn as densities of their res x res histogram
  --           (points off the simplex are not drawn; the panel title counts them);
  --   model   a flow on S^2_+ (k = 1): its own density through flow:log_prob (`steps` RK4 steps).
  -- All panels share one linear colour scale (vmin = 0, vmax = the 99.5th percentile of the first
  -- panel's values, so one hot cell does not wash out the rest) unless vmin/vmax are given.
  -- Densities are w.r.t. Lebesgue measure on (p_A, p_B): the uniform density is 2.
  function viz.simplex_density(path, t, opts)
    local fn = "ff.viz.simplex_density"
    if type(path) ~= "string" then raise(fn .. ": path must be a string, got " .. type(path)) end
    if type(t) ~= "table" then raise(fn .. ": expects a table { target =, data =, samples =, model = }") end
    util.check_keys(t, known.simplex_density, fn, "field")
    check_table(opts, "options", fn, "opts")
    local res = t.res or (tensor.is_tensor(t.target) and t.target:size(1)) or 96
    if type(res) ~= "number" or res < 1 or res ~= math.floor(res) then
      raise(fn .. ": res must be a positive integer, got " .. tostring(res))
    end
    -- -> density grid on viz's grid, and how many points lay off the simplex (not drawn)
    local function hist_density(points, what)
      if not tensor.is_tensor(points) then raise(("%s: %s must be a tensor of points, got %s"):format(fn, what, type(points))) end
      local ok, h, off = pcall(ff.metrics.simplex_hist, points, { bins = res })
      if not ok then raise(("%s: %s: %s"):format(fn, what, (tostring(h):gsub("^[^:]*:%d+: ", "")))) end
      for i = 0, res * res - 1 do h.data[i] = h.data[i] * 2 * res * res end   -- mass -> density
      return viz.grid_from_cells(h, res), off
    end
    local function hist_title(label, points, off)
      return off > 0 and ("%s (%d, %d off the simplex not drawn)"):format(label, points:size(1), off)
                     or ("%s (%d)"):format(label, points:size(1))
    end
    local panels = {}
    if t.target ~= nil then
      local grid = t.target
      if type(grid) == "function" then
        local pts = viz.grid_points(res)
        grid = tensor.zeros(res, res)
        for i = 0, res * res - 1 do
          local v = t.target(pts.data[3 * i], pts.data[3 * i + 1], pts.data[3 * i + 2])
          if type(v) ~= "number" then raise(("%s: target returned %s, expected a number"):format(fn, type(v))) end
          grid.data[i] = v
        end
      elseif not tensor.is_tensor(grid) then
        raise(fn .. ": target must be a [res, res] density tensor or a function(a, b, c), got " .. type(grid))
      elseif grid.ndim ~= 2 or grid:size(1) ~= res or grid:size(2) ~= res then
        raise(("%s: target is [%s], expected [%d, %d] (res = %d; ff.data.smiley_density{ res = %d })")
              :format(fn, table.concat(grid:shape(), ", "), res, res, res, res))
      end
      panels[#panels + 1] = { title = "target density", density = grid }
    end
    if t.data ~= nil then
      local g, off = hist_density(t.data, "data")
      panels[#panels + 1] = { title = hist_title("data", t.data, off), density = g }
    end
    if t.samples ~= nil then
      local g, off = hist_density(t.samples, "samples")
      panels[#panels + 1] = { title = hist_title("samples", t.samples, off), density = g }
    end
    if t.model ~= nil then
      if type(t.model) ~= "table" or type(t.model.density) ~= "function" then
        raise(fn .. ": model must be a flow (ff.flow{...}), got " .. type(t.model))
      end
      panels[#panels + 1] = { title = "model density (log_prob)", density = t.model:density { res = res, steps = t.steps or 25 } }
    end
    if #panels == 0 then raise(fn .. ": nothing to draw (give target, data, samples or model)") end
    local vmin, vmax = t.vmin or 0, t.vmax
    if not vmax then
      local first, vals = panels[1].density, {}
      for i = 0, first:numel() - 1 do
        local v = first.data[i]
        if v == v and v < math.huge then vals[#vals + 1] = v end
      end
      table.sort(vals)
      vmax = vals[math.max(1, math.ceil(#vals * 0.995))] or 0
      if not (vmax > vmin) then vmax = 0 end   -- a flat or empty first panel: let viz scale each panel
    end
    for _, pnl in ipairs(panels) do pnl.vmin, pnl.vmax = vmin, vmax end
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    if t.title and o.title == nil then o.title = t.title end
    if t.model ~= nil and o.flow == nil then o.flow = t.model end
    opts = o
    return viz.simplex(path, panels, opts), panels
  end

end

return M
