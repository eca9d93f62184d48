-- sphere.lua — the S^d_+ kernels of sphere.h on ff.sphere (which is also the space constructor
-- ff.sphere{k=, d=}): destination-first like C, or allocating when the destination is omitted:
-- ff.sphere.from_simplex(p) -> x, ff.sphere.from_simplex(x, p) fills x.
local core   = require "fisherflow.core"
local tensor = require "fisherflow.tensor"
local C, check, raise = core.C, core.check, core.raise

local M = {}

local function like(t, fname)
  if not tensor.is_tensor(t) then raise(("ff.sphere.%s: expects tensors, got %s"):format(fname, type(t))) end
  return tensor.zeros(t:shape())
end

-- Kernels with one input: f(out, a) or f(a) -> out.
local function unary(fname, cfn)
  return function(out, a)
    if a == nil then a = out; out = like(a, fname) end
    check(C[cfn](out, a))
    return out
  end
end
-- Kernels with two inputs: f(out, x, y) or f(x, y) -> out (out shaped like x).
local function binary(fname, cfn)
  return function(out, x, y)
    if y == nil then x, y = out, x; out = like(x, fname) end
    check(C[cfn](out, x, y))
    return out
  end
end

function M.install(ff)
  if not core.has("ff_sphere_from_simplex") then return end
  local s = ff.sphere
  s.from_simplex = unary("from_simplex", "ff_sphere_from_simplex")
  s.to_simplex   = unary("to_simplex", "ff_sphere_to_simplex")
  s.project      = binary("project", "ff_sphere_project_into")
  s.exp          = binary("exp", "ff_sphere_exp")
  s.log          = binary("log", "ff_sphere_log")
  -- dist: [.., d+1] -> [..] (the angle per position)
  function s.dist(x, y)
    local shape = x:shape(); shape[#shape] = nil
    local out = tensor.zeros(shape)
    check(C.ff_sphere_dist(out, x, y))
    return out
  end
  function s.dist2(x, y)
    local out = tensor.zeros(x:size(1))
    check(C.ff_sphere_dist2(out, x, y))
    return out
  end
  -- slerp(x0, x1, t) -> xt, ut (t: [n] tensor or a number for every row)
  function s.slerp(x0, x1, t)
    if type(t) == "number" then t = tensor.full({ x0:size(1) }, t) end
    local xt, ut = tensor.zeros(x0:shape()), tensor.zeros(x0:shape())
    check(C.ff_sphere_slerp(xt, ut, x0, x1, t))
    return xt, ut
  end
  function s.transport(x, y, v)
    local out = tensor.zeros(v:shape())
    check(C.ff_sphere_transport(out, x, y, v))
    return out
  end
  function s.retract(x) check(C.ff_sphere_retract(x)); return x end
  function s.smooth_labels(p, eps)
    if type(eps) ~= "number" then raise("ff.sphere.smooth_labels: eps must be a number") end
    local out = tensor.zeros(p:shape())
    check(C.ff_sphere_smooth_labels(out, p, eps))
    return out
  end
end

return M
