-- data.lua — data sets (data.h) and files (io.h) as tensors: ff.data.smiley{n=}, the toy
-- categorical task, sequence files as one-hot tensors, safetensors files as tables of tensors.
local core   = require "fisherflow.core"
local tensor = require "fisherflow.tensor"
local random = require "fisherflow.random"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}

local util   = require "fisherflow.util"
local opts_of = util.options

local function rng_of(t, fname)
  if t.rng ~= nil then return t.rng end
  if t.seed ~= nil then
    if type(t.seed) ~= "number" then raise(fname .. ": seed must be a number") end
    return random.rng(t.seed)
  end
  return random.default
end

local function posint(fname, name, v, default)
  if v == nil then v = default end
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
    raise(("%s: %s must be a positive integer, got %s"):format(fname, name, tostring(v)))
  end
  return v
end

function M.install(ff)
  local data = {}
  ff.data = data
  if core.has("ff_data_smiley") then
    -- ff.data.smiley{ n =, seed = } -> [n, 1, 3] points on the 2-simplex (PAPER §3).
    function data.smiley(t)
      t = opts_of("ff.data.smiley", t, { n = true, seed = true, rng = true })
      local n = posint("ff.data.smiley", "n", t.n, 100000)
      local out = tensor.zeros(n, 1, 3)
      check(C.ff_data_smiley(rng_of(t, "ff.data.smiley"), n, out))
      return out
    end
    -- ff.data.smiley_density{ res = 64, m = 256 } -> [res, res] on viz's grid, and the TV error.
    function data.smiley_density(t)
      t = opts_of("ff.data.smiley_density", t, { res = true, m = true })
      local res = posint("ff.data.smiley_density", "res", t.res, 64)
      local flat = tensor.zeros(res * res)
      local err = ffi.new("double[1]")
      check(C.ff_data_smiley_density(res, posint("ff.data.smiley_density", "m", t.m, 256), flat, err))
      local grid = ff.viz and ff.viz.grid_from_cells and ff.viz.grid_from_cells(flat, res) or flat
      return grid, err[0]
    end
    function data.smiley_masses(t)
      t = opts_of("ff.data.smiley_masses", t, { res = true, m = true })
      local res = posint("ff.data.smiley_masses", "res", t.res, 64)
      local flat = tensor.zeros(res * res)
      local err = ffi.new("double[1]")
      check(C.ff_data_smiley_masses(res, posint("ff.data.smiley_masses", "m", t.m, 256), flat, err))
      return flat, err[0]
    end
    -- ff.data.toy_categorical{ k =, K =, seed = } -> probs [k, K]
    function data.toy_categorical(t)
      t = opts_of("ff.data.toy_categorical", t, { k = true, K = true, seed = true, rng = true })
      local k = posint("ff.data.toy_categorical", "k", t.k)
      local K = posint("ff.data.toy_categorical", "K", t.K)
      local out = tensor.zeros(k, K)
      check(C.ff_data_toy_categorical(rng_of(t, "ff.data.toy_categorical"), k, K, out))
      return out
    end
    -- ff.data.sample_categorical(probs [k, K], n [, { seed = }]) -> one-hot [n, k, K]
    function data.sample_categorical(probs, n, t)
      t = opts_of("ff.data.sample_categorical", t, { seed = true, rng = true })
      n = posint("ff.data.sample_categorical", "n", n)
      local s = probs:shape()
      local out = tensor.zeros(n, s[1], s[2])
      check(C.ff_data_sample_categorical(rng_of(t, "ff.data.sample_categorical"), probs, n, out))
      return out
    end
  end
  if core.has("ff_seq_read") then
    -- ff.data.sequences(path, { alphabet = "ACGT", format = "auto"|"fasta"|"lines",
    --                           case = "fold"|"exact", length = 0 }) -> one-hot [n, L, |alphabet|]
    function data.sequences(path, t)
      t = opts_of("ff.data.sequences", t, { alphabet = true, format = true, case = true, length = true })
      if type(path) ~= "string" then raise("ff.data.sequences: path must be a string") end
      if type(t.alphabet) ~= "string" then raise("ff.data.sequences: alphabet (a string of symbols) is required") end
      local o = C.ff_seq_default_opts(t.alphabet)
      local formats = { auto = C.FF_SEQ_AUTO, fasta = C.FF_SEQ_FASTA, lines = C.FF_SEQ_LINES }
      local cases = { fold = C.FF_SEQ_CASE_FOLD, exact = C.FF_SEQ_CASE_EXACT }
      if t.format ~= nil then
        o.format = formats[t.format] or raise("ff.data.sequences: format must be auto, fasta or lines, got " .. tostring(t.format))
      end
      if t.case ~= nil then
        o.case_policy = cases[t.case] or raise("ff.data.sequences: case must be fold or exact, got " .. tostring(t.case))
      end
      if t.length ~= nil then o.length = t.length end
      local out = ffi.new("ff_tensor_t *[1]")
      check(C.ff_seq_read(path, o, out))   -- t keeps the alphabet string alive
      return tensor.own(out[0])
    end
  end
  if core.has("ff_safetensors_read") then
    -- ff.load_tensors(path) -> { name = tensor, ... }, { metadata key = value }
    function ff.load_tensors(path)
      local out = ffi.new("ff_safetensors_t *[1]")
      check(C.ff_safetensors_read(out, path))
      local st = ffi.gc(out[0], C.ff_safetensors_free)
      local tensors, meta = {}, {}
      local info = ffi.new("ff_st_info")
      for i = 0, C.ff_safetensors_count(st) - 1 do
        check(C.ff_safetensors_info(st, i, info))
        local name = ffi.string(info.name)
        local t = ffi.new("ff_tensor_t *[1]")
        check(C.ff_safetensors_get(st, name, t))
        tensors[name] = tensor.own(t[0])
      end
      for i = 0, C.ff_safetensors_meta_count(st) - 1 do
        meta[ffi.string(C.ff_safetensors_meta_key(st, i))] = ffi.string(C.ff_safetensors_meta_value(st, i))
      end
      return tensors, meta
    end
    -- ff.save_tensors(path, { name = tensor, ... } [, { key = "value" }]), written atomically.
    function ff.save_tensors(path, tensors, meta)
      local out = ffi.new("ff_st_writer_t *[1]")
      check(C.ff_st_writer_new(out))
      local w = ffi.gc(out[0], C.ff_st_writer_free)
      local names = {}
      for name in pairs(tensors) do names[#names + 1] = name end
      table.sort(names)
      for _, name in ipairs(names) do check(C.ff_st_writer_add(w, name, tensors[name])) end
      for k, v in pairs(meta or {}) do check(C.ff_st_writer_meta(w, tostring(k), tostring(v))) end
      if core.writes() then check(C.ff_st_writer_write(w, path)) end   -- rank 0 writes (core.writes)
      return path
    end
  end
end

return M
