-- tensor.lua — ff_tensor_t as a Lua value: methods and operators through ffi.metatype, ownership
-- through ffi.gc (STYLE B4). Dimensions and indices are 1-based here; :ptr() is the raw 0-based
-- float * for fast loops. Fields of the C struct read as in C: t.ndim, t.data, t.shape[0].
-- A Lua tensor is a reference to the struct (ctype `struct ff_tensor &`, made by p[0]), not the
-- pointer: indexing a pointer cdata with a number is pointer arithmetic and never reaches the
-- metatype, so t[i] could not be the row i. The FFI passes a reference where C wants a pointer.
local core = require "fisherflow.core"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}
local methods = {}
M.methods = methods

local tensor_t   = ffi.typeof("ff_tensor_t")
local out_t      = ffi.typeof("ff_tensor_t *[1]")
local ptr_t      = ffi.typeof("ff_tensor_t *")
local dims_t     = ffi.typeof("int64_t[4]")
local MAX_DIMS   = core.constants.FF_MAX_DIMS or 4


local function is_tensor(x) return ffi.istype(tensor_t, x) end
M.is_tensor = is_tensor

-- Argument check: raises "fname: name must be a tensor, got <type>" unless v is one (or nil and
-- optional).
function M.expect(fname, name, v, optional)
  if v == nil and optional then return end
  if not is_tensor(v) then raise(("%s: %s must be a tensor, got %s"):format(fname, name, type(v))) end
end

-- LuaJIT's collector sees a 16-byte cdata, not the megabytes of C storage behind it, so a loop
-- making big temporaries could pile up C memory between Lua collections. Each constructor looks at
-- ff_mem_in_use() (one atomic read) and runs a full collection when C storage has grown by more
-- than max(gc_slack, live) since the last one: C memory stays within ~2x live + gc_slack.
M.gc_slack = 64 * 2^20
local gc_floor = 0
local function pressure()
  local inuse = tonumber(C.ff_mem_in_use())
  if inuse > gc_floor + math.max(M.gc_slack, gc_floor) then
    collectgarbage()
    gc_floor = tonumber(C.ff_mem_in_use())
  end
end

-- Takes ownership of a fresh C tensor p (an ff_tensor_t *, i.e. out[0] of the ff_tensor_t *[1]
-- the C call filled) and returns the reference p[0]: ff_tensor_free runs when Lua collects it.
-- Passing the ff_tensor_t *[1] itself would hand out a pointer (x[1] = pointer arithmetic).
local function own(p)
  if not ffi.istype(ptr_t, p) then
    error("tensor.own: expects the ff_tensor_t * a C call returned, got " .. tostring(ffi.typeof(p)), 2)
  end
  local t = ffi.gc(p[0], C.ff_tensor_free)
  pressure()
  return t
end
M.own = own

-- A borrowed view of memory owned by `owner`; no finalizer.
function M.borrow(p, owner)
  if p == nil then return nil end
  return core.borrow(ffi.cast("ff_tensor_t *", p)[0], owner)
end

-- Shape arguments: ff.zeros(2, 3) or ff.zeros{2, 3}; returns the int64_t[4] and ndim.
local function shape_of(fname, ...)
  local s = ...
  if type(s) ~= "table" then s = { ... } end
  if #s > MAX_DIMS then raise(("%s: %d dims, at most %d"):format(fname, #s, MAX_DIMS)) end
  local dims = dims_t()
  for i = 1, #s do
    local n = s[i]
    if type(n) ~= "number" or n < 0 or n ~= math.floor(n) then
      raise(("%s: size %d must be a non-negative integer, got %s"):format(fname, i, tostring(n)))
    end
    dims[i - 1] = n
  end
  return dims, #s
end

local function new_raw(dims, ndim)
  local out = out_t()
  check(C.ff_tensor_new(out, ndim, dims))
  return own(out[0])
end

function M.zeros(...) return new_raw(shape_of("ff.zeros", ...)) end
function M.empty(...) return new_raw(shape_of("ff.empty", ...)) end
function M.ones(...)
  local t = new_raw(shape_of("ff.ones", ...))
  check(C.ff_tensor_fill(t, 1))
  return t
end
function M.full(shape, value)
  if type(value) ~= "number" then raise("ff.full: value must be a number, got " .. type(value)) end
  local t = new_raw(shape_of("ff.full", shape))
  check(C.ff_tensor_fill(t, value))
  return t
end

-- ff.tensor{{1, 2}, {3, 4}}: shape from the nesting (rectangular), values copied.
function M.tensor(values)
  if type(values) == "number" then
    local t = new_raw(dims_t(), 0)
    t.data[0] = values
    return t
  end
  if is_tensor(values) then return values:copy() end
  if type(values) ~= "table" then raise("ff.tensor: expects a (nested) table of numbers, got " .. type(values)) end
  local shape, v = {}, values
  while type(v) == "table" do
    shape[#shape + 1] = #v
    v = v[1]
  end
  local dims, ndim = shape_of("ff.tensor", shape)
  local t = new_raw(dims, ndim)
  local k = 0
  local function walk(node, depth, where)
    if depth > ndim then
      if type(node) ~= "number" then
        raise(("ff.tensor: element %s is a %s, expected a number"):format(where, type(node)))
      end
      t.data[k] = node
      k = k + 1
      return
    end
    if type(node) ~= "table" or #node ~= shape[depth] then
      raise(("ff.tensor: ragged table: element %s has %s entries, expected %d"):format(
        where, type(node) == "table" and tostring(#node) or "no", shape[depth]))
    end
    for i = 1, shape[depth] do walk(node[i], depth + 1, where .. "[" .. i .. "]") end
  end
  walk(values, 1, "")
  return t
end

-- Element offset of 1-based indices (checked).
local function offset(t, fname, ...)
  local n = select("#", ...)
  if n ~= t.ndim then
    raise(("%s: %d indices for a %d-dim tensor [%s]"):format(fname, n, t.ndim, table.concat(t:shape(), ",")))
  end
  local off = 0
  for d = 1, n do
    local i = select(d, ...)
    local size = tonumber(t.shape.v[d - 1])
    if type(i) ~= "number" or i < 1 or i > size or i ~= math.floor(i) then
      raise(("%s: index %s out of range [1, %d] on dim %d"):format(fname, tostring(i), size, d))
    end
    off = off + (i - 1) * tonumber(t.stride.v[d - 1])
  end
  return off
end

function methods.numel(t) return tonumber(C.ff_tensor_numel(t)) end
function methods.dim(t) return t.ndim end
function methods.size(t, d)
  if type(d) ~= "number" or d < 1 or d > t.ndim then
    raise(("tensor:size: dim %s out of range [1, %d]"):format(tostring(d), t.ndim))
  end
  return tonumber(t.shape.v[d - 1])
end
function methods.ptr(t) return t.data end
function methods.is_contiguous(t) return C.ff_tensor_is_contiguous(t) ~= 0 end
function methods.get(t, ...) return t.data[offset(t, "tensor:get", ...)] end
function methods.set(t, ...)
  local args = { ... }
  local v = table.remove(args)
  if type(v) ~= "number" then raise("tensor:set: the last argument is the value, got " .. type(v)) end
  t.data[offset(t, "tensor:set", unpack(args))] = v
  return t
end

-- Row-major offsets of every element (handles strided views).
local function each_offset(t, fn)
  local n = methods.numel(t)
  if n == 0 then return end
  if C.ff_tensor_is_contiguous(t) ~= 0 then
    for i = 0, n - 1 do fn(i, i) end
    return
  end
  local nd = t.ndim
  local idx, shape, stride = {}, {}, {}
  for d = 1, nd do idx[d] = 0; shape[d] = tonumber(t.shape.v[d - 1]); stride[d] = tonumber(t.stride.v[d - 1]) end
  for i = 0, n - 1 do
    local off = 0
    for d = 1, nd do off = off + idx[d] * stride[d] end
    fn(i, off)
    for d = nd, 1, -1 do
      idx[d] = idx[d] + 1
      if idx[d] < shape[d] then break end
      idx[d] = 0
    end
  end
end

function methods.totable(t)
  if t.ndim == 0 then return t.data[0] end
  local flat = {}
  each_offset(t, function(i, off) flat[i + 1] = t.data[off] end)
  local shape = t:shape()
  local k = 0
  local function build(depth)
    local r = {}
    for i = 1, shape[depth] do
      if depth == #shape then k = k + 1; r[i] = flat[k] else r[i] = build(depth + 1) end
    end
    return r
  end
  return build(1)
end

-- Flat list of values in row-major order.
function methods.values(t)
  local flat = {}
  each_offset(t, function(i, off) flat[i + 1] = t.data[off] end)
  return flat
end

function methods.copy(t)
  local out = out_t()
  check(C.ff_tensor_clone(out, t))
  return own(out[0])
end
methods.clone = methods.copy

function methods.copy_from(t, src)
  if type(src) == "table" then src = M.tensor(src) end
  if not is_tensor(src) then raise("tensor:copy_from: expects a tensor or a table, got " .. type(src)) end
  check(C.ff_tensor_copy(t, src))
  return t
end

function methods.fill(t, v)
  if type(v) ~= "number" then raise("tensor:fill: value must be a number, got " .. type(v)) end
  check(C.ff_tensor_fill(t, v))
  return t
end

-- t:view(2, 3) / t:reshape{2, -1}: shares storage (a new owned header).
function methods.view(t, ...)
  local s = ...
  if type(s) ~= "table" then s = { ... } end
  if #s > MAX_DIMS then raise(("tensor:view: %d dims, at most %d"):format(#s, MAX_DIMS)) end
  local dims = dims_t()
  for i = 1, #s do
    if type(s[i]) ~= "number" then raise(("tensor:view: size %d must be a number, got %s"):format(i, type(s[i]))) end
    dims[i - 1] = s[i]
  end
  local out = out_t()
  check(C.ff_tensor_view(out, t, #s, dims))
  return own(out[0])
end
methods.reshape = methods.view

-- Rows [first, last] (1-based, inclusive) of dim `dim`, sharing storage.
function methods.narrow(t, dim, first, last)
  local out = out_t()
  if type(first) ~= "number" or type(last) ~= "number" then raise("tensor:narrow: first and last must be numbers") end
  if type(dim) ~= "number" or dim < 1 or dim > t.ndim then
    raise(("tensor:narrow: dim %s out of range [1, %d]"):format(tostring(dim), t.ndim))
  end
  check(C.ff_tensor_slice(out, t, dim - 1, first - 1, last))
  return own(out[0])
end

function methods.transpose(t, a, b)
  local out = out_t()
  check(C.ff_tensor_transpose(out, t, (a or 1) - 1, (b or 2) - 1))
  return own(out[0])
end

-- t[i] of an n-dim tensor: the (n-1)-dim sub-tensor i, sharing storage.
local function select_row(t, i)
  local size = tonumber(t.shape.v[0])
  if i < 1 or i > size or i ~= math.floor(i) then
    raise(("tensor: index %s out of range [1, %d]"):format(tostring(i), size))
  end
  local out = out_t()
  check(C.ff_tensor_slice(out, t, 0, i - 1, i))
  local r = own(out[0])
  -- drop the leading size-1 dim of our own fresh header (same storage, same strides)
  for d = 0, t.ndim - 2 do r.shape.v[d] = r.shape.v[d + 1]; r.stride.v[d] = r.stride.v[d + 1] end
  r.shape.v[t.ndim - 1], r.stride.v[t.ndim - 1] = 1, 1
  r.ndim = t.ndim - 1
  return r
end

function methods.sum(t)
  local s = 0
  each_offset(t, function(_, off) s = s + t.data[off] end)
  return s
end
function methods.mean(t)
  local n = methods.numel(t)
  if n == 0 then raise("tensor:mean: empty tensor") end
  return methods.sum(t) / n
end
function methods.max(t)
  if methods.numel(t) == 0 then raise("tensor:max: empty tensor") end
  local m = -math.huge
  each_offset(t, function(_, off) if t.data[off] > m then m = t.data[off] end end)
  return m
end
function methods.min(t)
  if methods.numel(t) == 0 then raise("tensor:min: empty tensor") end
  local m = math.huge
  each_offset(t, function(_, off) if t.data[off] < m then m = t.data[off] end end)
  return m
end

-- n rows drawn uniformly with replacement along dim 1 (a minibatch), into a new tensor. rng: an
-- ff.rng stream (default: the stream ff.seed sets).
function methods.batch(t, n, rng)
  if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
    raise("tensor:batch: n must be a positive integer, got " .. tostring(n))
  end
  if t.ndim < 1 or t:size(1) < 1 then raise("tensor:batch: the tensor has no rows") end
  rng = rng or require("fisherflow.random").default
  local src = C.ff_tensor_is_contiguous(t) ~= 0 and t or methods.copy(t)
  local s = t:shape(); s[1] = n
  local out = M.zeros(s)
  local N, row = t:size(1), methods.numel(t) / t:size(1)
  for i = 0, n - 1 do
    local j = tonumber(C.ff_rng_below(rng, N))
    ffi.copy(out.data + i * row, src.data + j * row, row * 4)
  end
  return out
end

-- Finite check with the C message (names the first bad element).
function methods.check_finite(t, what)
  check(C.ff_tensor_check_finite(t, what or "tensor"))
  return t
end

-- Frees now (idempotent: the finalizer is removed and the object remembered, because the cdata
-- itself cannot be nulled). Using a freed tensor is a use after free, as in C. Borrowed tensors
-- cannot be freed.
local freed = setmetatable({}, { __mode = "k" })
function methods.free(t)
  if freed[t] then return end
  if core.owner_of(t) ~= nil then raise("tensor:free: this tensor is borrowed from another object") end
  freed[t] = true
  C.ff_tensor_free(ffi.gc(t, nil))
end

function methods.label(t) return ffi.string(t.name) end

-- Arithmetic: elementwise with a number or a tensor (b broadcasts: right-aligned, each dim equal
-- or 1), always into a new tensor with a's shape (or b's when a is a number).
local function broadcast_offsets(a, b, opname)
  local an, bn = a.ndim, b.ndim
  if bn > an then
    raise(("tensor %s: [%s] %s [%s]: the right operand has more dims"):format(
      opname, table.concat(a:shape(), ","), opname, table.concat(b:shape(), ",")))
  end
  local bstride = {}
  for d = 1, an do
    local bd = d - (an - bn)
    if bd >= 1 then
      local sa, sb = tonumber(a.shape.v[d - 1]), tonumber(b.shape.v[bd - 1])
      if sb ~= sa and sb ~= 1 then
        raise(("tensor %s: shapes [%s] and [%s] do not broadcast (dim %d: %d vs %d)"):format(
          opname, table.concat(a:shape(), ","), table.concat(b:shape(), ","), d, sa, sb))
      end
      bstride[d] = sb == 1 and 0 or tonumber(b.stride.v[bd - 1])
    else
      bstride[d] = 0
    end
  end
  return bstride
end

local function binary(opname, f)
  return function(a, b)
    local ta, tb = is_tensor(a), is_tensor(b)
    if ta and type(b) == "number" then
      local out = methods.copy(a)
      local n = methods.numel(out)
      local p = out.data
      for i = 0, n - 1 do p[i] = f(p[i], b) end
      return out
    elseif tb and type(a) == "number" then
      local out = methods.copy(b)
      local n = methods.numel(out)
      local p = out.data
      for i = 0, n - 1 do p[i] = f(a, p[i]) end
      return out
    elseif ta and tb then
      local out = methods.copy(a)
      local p, q = out.data, b.data
      if C.ff_tensor_same_shape(a, b) ~= 0 and C.ff_tensor_is_contiguous(b) ~= 0 then
        for i = 0, methods.numel(out) - 1 do p[i] = f(p[i], q[i]) end
        return out
      end
      local bstride = broadcast_offsets(a, b, opname)
      local nd = out.ndim
      local shape, idx = out:shape(), {}
      for d = 1, nd do idx[d] = 0 end
      for i = 0, methods.numel(out) - 1 do
        local off = 0
        for d = 1, nd do off = off + idx[d] * bstride[d] end
        p[i] = f(p[i], q[off])
        for d = nd, 1, -1 do
          idx[d] = idx[d] + 1
          if idx[d] < shape[d] then break end
          idx[d] = 0
        end
      end
      return out
    end
    raise(("tensor %s: operands are %s and %s (expected tensors or numbers)"):format(
      opname, ta and "tensor" or type(a), tb and "tensor" or type(b)))
  end
end

local mt = {
  __add = binary("+", function(x, y) return x + y end),
  __sub = binary("-", function(x, y) return x - y end),
  __mul = binary("*", function(x, y) return x * y end),
  __div = binary("/", function(x, y) return x / y end),
  __unm = function(a) return binary("-", function(x, y) return x - y end)(0, a) end,
  __len = function(t) return t.ndim == 0 and 0 or tonumber(t.shape.v[0]) end,
}

mt.__index = function(t, k)
  local m = methods[k]
  if m then return m end
  if type(k) == "number" then
    if t.ndim == 1 then return t.data[offset(t, "tensor[]", k)] end
    if t.ndim == 0 then raise("tensor: cannot index a 0-dim tensor (use t:get())") end
    return select_row(t, k)
  end
  error(("tensor has no method '%s'"):format(tostring(k)), 2)
end

mt.__newindex = function(t, k, v)
  if type(k) ~= "number" then
    error(("tensor has no field '%s' (fields are read-only from Lua; use methods)"):format(tostring(k)), 2)
  end
  if t.ndim == 1 then
    if type(v) ~= "number" then raise("tensor[i] = v: v must be a number for a 1-dim tensor, got " .. type(v)) end
    t.data[offset(t, "tensor[]", k)] = v
    return
  end
  local row = select_row(t, k)
  if type(v) == "number" then check(C.ff_tensor_fill(row, v))
  elseif type(v) == "table" then methods.copy_from(row, M.tensor(v))
  elseif is_tensor(v) then check(C.ff_tensor_copy(row, v))
  else raise("tensor[i] = v: v must be a number, table or tensor, got " .. type(v)) end
end

mt.__tostring = function(t)
  local n = methods.numel(t)
  local vals, k = {}, 0
  each_offset(t, function(_, off)
    k = k + 1
    if k <= 6 then vals[k] = ("%.4g"):format(t.data[off]) end
  end)
  if n > 6 then vals[#vals + 1] = "..." end
  return ("tensor[%s] {%s}"):format(table.concat(t:shape(), ","), table.concat(vals, ", "))
end

ffi.metatype("ff_tensor_t", mt)

-- t.shape / t.stride are int64_t[4] in C; the cdef declares them as a one-member struct of the same
-- layout (see gen_cdef.lua), so t.shape[0] reads the C array and t:shape() returns {n0, n1, ...}.
local shape_off = ffi.offsetof("ff_tensor_t", "shape")
local stride_off = ffi.offsetof("ff_tensor_t", "stride")
for _, alias in ipairs(require("fisherflow.cdef").method_arrays) do
  ffi.metatype(alias, {
    __index = function(a, i)
      if type(i) ~= "number" or i < 0 or i >= MAX_DIMS then
        raise(("index %s outside [0, %d) of a C dims array (use t:shape() for a 1-based table)"):format(tostring(i), MAX_DIMS))
      end
      return tonumber(a.v[i])
    end,
    __newindex = function(a, i, v) a.v[i] = v end,
    __call = function(a, t)
      if not is_tensor(t) then raise("call it as a method: t:shape() or t:stride()") end
      local off = ffi.cast("char *", a) - ffi.cast("char *", t)
      if off ~= shape_off and off ~= stride_off then raise("t:shape(): called on another tensor's dims") end
      local r = {}
      for d = 1, t.ndim do r[d] = tonumber(a.v[d - 1]) end
      return r
    end,
  })
end

-- Random tensors from an ff_rng_t (rng.lua provides the default stream).
function M.randn_with(rng, ...)
  local t = new_raw(shape_of("ff.randn", ...))
  check(C.ff_rng_fill_normal(rng, t, 0, 1))
  return t
end
function M.rand_with(rng, ...)
  local t = new_raw(shape_of("ff.rand", ...))
  check(C.ff_rng_fill_uniform(rng, t, 0, 1))
  return t
end

M.shape_of = shape_of
return M
