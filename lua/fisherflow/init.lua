-- init.lua — require "fisherflow": the module table (no globals are created). See README and
-- experiments/ for what an experiment looks like.
local core     = require "fisherflow.core"
local tensor   = require "fisherflow.tensor"
local random   = require "fisherflow.random"
local plugin   = require "fisherflow.plugin"
local optim    = require "fisherflow.optim"
local flow     = require "fisherflow.flow"
local args     = require "fisherflow.args"
local json     = require "fisherflow.json"
local log      = require "fisherflow.log"
local progress = require "fisherflow.progress"
local util     = require "fisherflow.util"

local ff = {
  version = core.lib_version, C = core.C, ffi = core.ffi, constants = core.constants,
  -- tensors
  tensor = tensor.tensor, zeros = tensor.zeros, ones = tensor.ones, full = tensor.full,
  empty = tensor.empty, is_tensor = tensor.is_tensor,
  randn = random.randn, rand = random.rand, rng = random.rng,
  random = { dirichlet = random.dirichlet, default = function() return random.default end },
  -- models
  flow = flow.flow, optim = optim.optim, lr = optim.lr,
  -- one-hot data -> points in their argmax cells (flow:bits), and the lam:alpha lists scripts take
  dequantise = require("fisherflow.evaluate").dequantise, dequantisations = require("fisherflow.evaluate").dequantisations,
  -- scripts
  args = args.parse, json = json, log = log, util = util,
  progress = progress.new,
  check = core.check,
}

function ff.seed(s) return random.seed(s) end
ff.dna = require "fisherflow.dna"   -- DNA data preparation and promoter metrics (dna.lua)

-- ff.threads([n]) -> { threads =, blas = "0.3.21", core = "Haswell" }: OpenBLAS's thread count (the
-- library's only threads; threads.h), after setting it to n when given. The runner sets it from
-- `fisherflow run --threads N` or FISHERFLOW_THREADS.
function ff.threads(n)
  if n ~= nil then core.check(core.C.ff_threads_set(type(n) == "number" and n or -1)) end
  return { threads = core.C.ff_threads_get(), blas = core.ffi.string(core.C.ff_blas_version()),
           core = core.ffi.string(core.C.ff_blas_corename()) }
end

-- ff.plugin(kind, name, opts) -> spec; ff.plugin.find(kind, name) -> desc | nil, err;
-- ff.plugin.list() -> found, refused; ff.plugins() -> found.
ff.plugin = setmetatable({ find = plugin.find, list = plugin.list, report = plugin.report,
                           build_options = plugin.build_options },
                         { __call = function(_, kind, name, opts) return plugin.make_spec(kind, name, opts) end })
function ff.plugins() return (plugin.list()) end

-- Plugins written in Lua: ff.source.lua{...}, ff.decoder.lua{...}, ff.metric.lua{...}.
ff.source  = { lua = plugin.lua_source }
ff.decoder = { lua = plugin.lua_decoder }
ff.metric  = { lua = plugin.lua_metric }

-- ff.sphere{k=, d=} is the space of a flow; ff.sphere.* are the geometry kernels (sphere.lua).
ff.sphere = setmetatable({}, { __call = function(_, t) return flow.space(t) end })

-- ff.results(path, table [, { nonfinite = "tokens" }]): the run's results as JSON (pretty, keys
-- sorted), written atomically. NaN, inf and -inf are written NaN, Infinity, -Infinity (Python's
-- json reads them back as floats); nonfinite = "null" or "error" as json.encode (json.lua).
function ff.results(path, t, opts)
  if type(path) ~= "string" then core.raise("ff.results: path must be a string, got " .. type(path)) end
  if type(t) ~= "table" then core.raise("ff.results: results must be a table, got " .. type(t)) end
  opts = opts or {}
  if type(opts) ~= "table" then core.raise("ff.results: options must be a table, got " .. type(opts)) end
  util.check_keys(opts, { nonfinite = true }, "ff.results", "option")
  local ok, text = pcall(json.encode, t, { indent = true, nonfinite = opts.nonfinite })
  if not ok then core.raise("ff.results: " .. tostring(text)) end
  if not core.writes() then return path end      -- another rank writes it (core.writes)
  util.write_atomic(path, text .. "\n")
  return path
end

-- Checkpoints (flow:save and flow:load are Flow methods, flow.lua).
local checkpoint = require "fisherflow.checkpoint"
ff.checkpoint = { meta = checkpoint.meta, resume = checkpoint.resume, resume_loop = checkpoint.resume_loop,
                  open_log = checkpoint.open_log,
                  rng_state = checkpoint.rng_state, set_rng_state = checkpoint.set_rng_state,
                  flow = flow.from_checkpoint }

-- Optional pieces: each wraps a part of the C API and extends ff (sphere kernels, viz, data,
-- metrics, data parallelism, text). A piece whose library symbols are missing is left out.
for _, name in ipairs({ "sphere", "viz", "data", "metrics", "dist", "text" }) do
  local ok, mod = pcall(require, "fisherflow." .. name)
  if ok and type(mod) == "table" and mod.install then mod.install(ff)
  elseif not ok and not tostring(mod):find("module 'fisherflow." .. name .. "' not found", 1, true) then
    error(mod, 0)
  end
end

return ff
