-- random.lua — ff_rng_t as a Lua value (xoshiro256** in C), the default stream behind ff.randn and
-- friends, and ff.seed. An rng is plain FFI memory (no C allocation), so Lua's GC frees it.
local core   = require "fisherflow.core"
local tensor = require "fisherflow.tensor"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}
local rng_t = ffi.typeof("ff_rng_t")
local methods = {}

function methods.uniform(r) return C.ff_rng_uniform(r) end
function methods.normal(r) return C.ff_rng_normal(r) end
function methods.gamma(r, shape)
  if type(shape) ~= "number" or not (shape > 0) then raise("rng:gamma: shape must be > 0, got " .. tostring(shape)) end
  return C.ff_rng_gamma(r, shape)
end
-- Uniform integer in [1, n].
function methods.int(r, n)
  if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then raise("rng:int: n must be an integer >= 1, got " .. tostring(n)) end
  return tonumber(C.ff_rng_below(r, n)) + 1
end
function methods.split(r) return C.ff_rng_split(r) end
function methods.fill_normal(r, t, mean, std)
  check(C.ff_rng_fill_normal(r, t, mean or 0, std or 1))
  return t
end
function methods.fill_uniform(r, t, lo, hi)
  check(C.ff_rng_fill_uniform(r, t, lo or 0, hi or 1))
  return t
end
function methods.seed(r, s)
  C.ff_rng_seed(r, s)
  return r
end

ffi.metatype(rng_t, {
  __index = function(_, k)
    local m = methods[k]
    if m then return m end
    error(("rng has no method '%s'"):format(tostring(k)), 2)
  end,
  __tostring = function() return "ff_rng" end,
})

-- A new stream from a seed.
function M.rng(seed)
  if type(seed) ~= "number" and not ffi.istype("uint64_t", seed) then
    raise("ff.rng: seed must be a number, got " .. type(seed))
  end
  local r = rng_t()
  C.ff_rng_seed(r, seed)
  return r
end

M.default_seed = 1
M.default = M.rng(1)

-- One seed for everything that does not get its own: ff.randn, data sets, flows.
function M.seed(s)
  if type(s) ~= "number" or s < 0 or s ~= math.floor(s) then
    raise("ff.seed: seed must be a non-negative integer, got " .. tostring(s))
  end
  M.default_seed = s
  C.ff_rng_seed(M.default, s)
  return s
end

function M.randn(...) return tensor.randn_with(M.default, ...) end
function M.rand(...) return tensor.rand_with(M.default, ...) end

-- Dirichlet(alpha) draws along the last dim of a new tensor of `shape` (alpha: a table of d+1
-- concentrations, or one number for all), through Gamma draws normalised per position.
function M.dirichlet(rng, shape, alpha)
  local t = tensor.zeros(shape)
  local s = t:shape()
  local d1 = s[#s]
  if type(alpha) == "number" then local a = alpha; alpha = {}; for i = 1, d1 do alpha[i] = a end end
  if type(alpha) ~= "table" or #alpha ~= d1 then
    raise(("ff.random.dirichlet: alpha needs %d entries (the last dim), got %s"):format(
      d1, type(alpha) == "table" and tostring(#alpha) or type(alpha)))
  end
  for i = 1, d1 do
    if type(alpha[i]) ~= "number" or not (alpha[i] > 0) then
      raise(("ff.random.dirichlet: alpha[%d] must be > 0, got %s"):format(i, tostring(alpha[i])))
    end
  end
  local p, n = t.data, t:numel()
  for base = 0, n - 1, d1 do
    local sum = 0
    for i = 0, d1 - 1 do
      local g = C.ff_rng_gamma(rng, alpha[i + 1])
      p[base + i] = g
      sum = sum + g
    end
    for i = 0, d1 - 1 do p[base + i] = p[base + i] / sum end
  end
  return t
end

return M
