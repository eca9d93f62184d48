-- plugin.lua — plugin specs for ff.flow (a name + an ff_options table built from a Lua table),
-- look-ups and listings of what the loader finds, and plugins written in Lua (ff.source.lua{...}):
-- sources and decoders are registered with the loader (ff_plugin_register) and reached by the core
-- through the same vtables as C plugins, with FFI callbacks called once per batch.
local core   = require "fisherflow.core"
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = {}

-- Kinds and option types come from the generated cdef (the public headers' enums).
M.kinds = { source = tonumber(C.FF_PLUGIN_SOURCE), coupler = tonumber(C.FF_PLUGIN_COUPLER),
            network = tonumber(C.FF_PLUGIN_NETWORK), decoder = tonumber(C.FF_PLUGIN_DECODER) }
local function kind_name(k) return ffi.string(C.ff_plugin_kind_name(k)) end
local type_names = { [tonumber(C.FF_OPT_INT)] = "int", [tonumber(C.FF_OPT_NUMBER)] = "number",
                     [tonumber(C.FF_OPT_STRING)] = "string", [tonumber(C.FF_OPT_BOOL)] = "bool",
                     [tonumber(C.FF_OPT_NUMBERS)] = "numbers" }

local function kind_of(kind)
  local k = M.kinds[kind]
  if not k then
    raise(("ff.plugin: unknown kind %s (known: source, coupler, network, decoder)"):format(tostring(kind)))
  end
  return k
end

-- A descriptor as a Lua table (strings copied; `ptr` keeps the C descriptor).
local function describe(d, path)
  local opts = {}
  if d.options ~= nil then
    local i = 0
    while d.options[i].name ~= nil do
      local o = d.options[i]
      opts[#opts + 1] = {
        name = ffi.string(o.name), type = type_names[tonumber(o.type)] or "?",
        default = o.default_value ~= nil and ffi.string(o.default_value) or nil,
        help = o.help ~= nil and ffi.string(o.help) or "",
      }
      i = i + 1
    end
  end
  return {
    kind = kind_name(d.kind), name = ffi.string(d.name),
    version = d.version ~= nil and ffi.string(d.version) or "?",
    summary = d.summary ~= nil and ffi.string(d.summary) or "",
    abi = ("%d.%d"):format(d.abi_major, d.abi_minor), options = opts, path = path, ptr = d,
  }
end

-- ff.plugin.find(kind, name) -> descriptor table, or nil and the loader's message.
function M.find(kind, name)
  local k = kind_of(kind)
  if type(name) ~= "string" then raise("ff.plugin.find: name must be a string, got " .. type(name)) end
  local out = ffi.new("const ff_plugin *[1]")
  if C.ff_plugin_find(k, name, out) ~= 0 then return nil, ffi.string(C.ff_last_error()) end
  return describe(out[0])
end

-- ff_options from a Lua table; `desc` (optional) gives each option's declared type.
local function build_options(tbl, desc, owner)
  local out = ffi.new("ff_options *[1]")
  check(C.ff_options_new(out))
  local o = ffi.gc(out[0], C.ff_options_free)
  local declared = {}
  if desc then for _, s in ipairs(desc.options) do declared[s.name] = s.type end end
  local keys = {}
  for k in pairs(tbl) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, key in ipairs(keys) do
    local v = tbl[key]
    if type(key) ~= "string" then raise(("%s: option keys are names, got %s"):format(owner, tostring(key))) end
    local want, ty = declared[key], type(v)
    if ty == "number" then
      if want == "numbers" then check(C.ff_options_set_numbers(o, key, ffi.new("double[1]", v), 1))
      elseif want == "number" or (want == nil and v ~= math.floor(v)) or math.abs(v) >= 2^63 then
        check(C.ff_options_set_number(o, key, v))
      elseif v == math.floor(v) then check(C.ff_options_set_int(o, key, v))
      else check(C.ff_options_set_number(o, key, v)) end    -- the loader names the type mismatch
    elseif ty == "string" then check(C.ff_options_set_string(o, key, v))
    elseif ty == "boolean" then check(C.ff_options_set_bool(o, key, v and 1 or 0))
    elseif ty == "table" then
      local n = #v
      local arr = ffi.new("double[?]", math.max(n, 1))
      for i = 1, n do
        if type(v[i]) ~= "number" then
          raise(("%s: option \"%s\": entry %d is a %s, expected a number"):format(owner, key, i, type(v[i])))
        end
        arr[i - 1] = v[i]
      end
      check(C.ff_options_set_numbers(o, key, arr, n))
    else
      raise(("%s: option \"%s\" is a %s (expected number, string, boolean or array of numbers)"):format(owner, key, ty))
    end
  end
  return o
end
M.build_options = build_options

local Spec = {}
Spec.__index = Spec
Spec.__tostring = function(s) return ("plugin %s \"%s\""):format(s.kind, s.name) end

-- ff.plugin(kind, name [, opts]) -> a spec for ff.flow. Raises at the script's line if the plugin
-- is not found or an option is unknown or of the wrong type (checked now, not at ff.flow).
local function make_spec(kind, name, opts)
  local k = kind_of(kind)
  if type(name) ~= "string" then raise(("ff.plugin: name must be a string, got %s"):format(type(name))) end
  if opts ~= nil and type(opts) ~= "table" then raise(("ff.plugin: options must be a table, got %s"):format(type(opts))) end
  local desc, err = M.find(kind, name)
  if not desc then raise(err) end
  local owner = ("%s \"%s\""):format(kind, name)
  local o = build_options(opts or {}, desc, owner)
  -- validate a copy now so mistakes point at this line; the flow validates its own copy again
  local copy = ffi.new("ff_options *[1]")
  check(C.ff_options_copy(copy, o))
  local st = C.ff_options_validate(copy[0], desc.ptr.options, owner)
  C.ff_options_free(copy[0])
  check(st)
  return setmetatable({ kind = kind, kind_id = k, name = name, opts = o, options = opts or {}, desc = desc }, Spec)
end

-- Every plugin the loader sees: list of descriptor tables, then the refused files as
-- { path =, error = }.
local function list_impl()
  local found, refused = {}, {}
  local cb = ffi.cast("ff_plugin_list_fn", function(_, path, desc, err)
    local p = path ~= nil and ffi.string(path) or "?"
    if desc ~= nil then found[#found + 1] = describe(desc, p)
    else refused[#refused + 1] = { path = p, error = err ~= nil and ffi.string(err) or "?" } end
  end)
  local st = C.ff_plugin_list(cb, nil)
  cb:free()
  check(st)
  table.sort(found, function(a, b)
    if a.kind ~= b.kind then return (M.kinds[a.kind] or 99) < (M.kinds[b.kind] or 99) end
    return a.name < b.name
  end)
  return found, refused
end
jit.off(list_impl)          -- C calls back into Lua here: keep this frame interpreted
function M.list() return list_impl() end

-- `fisherflow plugins`.
function M.report(out)
  out = out or io.stdout
  local found, refused = M.list()
  out:write(("search path: %s\n\n"):format(ffi.string(C.ff_plugin_search_path())))
  out:write(("%-8s %-16s %-5s %-8s %s\n"):format("KIND", "NAME", "ABI", "VERSION", "SUMMARY"))
  for _, d in ipairs(found) do
    out:write(("%-8s %-16s %-5s %-8s %s\n"):format(d.kind, d.name, d.abi, d.version, d.summary))
    for _, o in ipairs(d.options) do
      out:write(("           %-16s %-8s %-10s %s\n"):format(o.name, o.type,
        o.default and ("= " .. o.default) or "", o.help))
    end
  end
  for _, r in ipairs(refused) do
    -- the loader's messages already start with the path; print it once
    local msg = r.error:sub(1, #r.path) == r.path and r.error or (r.path .. ": " .. r.error)
    out:write(("refused  %s\n"):format(msg))
  end
  out:write(("\n%d plugins, %d refused\n"):format(#found, #refused))
end

-- Plugins written in Lua --------------------------------------------------------------------
-- ff.source.lua{ name =, sample = function(self, rng, out) end [, log_prob = function(self, x, out)]
--                [, create = function(self, space) end] }
-- ff.decoder.lua{ name =, decode = function(self, x, rng, out) end, emits_probs = false [, create =] }
-- ff.metric.lua{ name =, compute = function(self, samples, data) return number end }
-- A source or decoder is registered with the loader under its name when made (refused like a C
-- descriptor: name [a-z0-9_]+, a name already registered) and unregistered when Lua collects it;
-- a flow names it like any plugin and the core calls its functions through the vtable: once per
-- batch, with tensors borrowed for the call. Metrics are run by ff.metrics.run (the core has no
-- metric kind).
local required = { source = "sample", decoder = "decode", metric = "compute" }
local optional = { source = { log_prob = true, create = true }, decoder = { create = true } }

-- A Lua function as a vtable entry for C: a Lua error must not unwind through C frames, so it is
-- caught here, becomes FF_EPLUGIN with its message (ff_errorf), and its traceback waits for the
-- check that raises the C error in Lua (core.check appends it).
local function guarded(fn)
  local function handler(e)
    return { msg = type(e) == "string" and e or tostring(e), tb = debug.traceback("", 2) }
  end
  return function(...)
    local ok, err = xpcall(fn, handler, ...)
    if ok then return 0 end
    core.callback_failed(err.msg, err.tb)
    return C.ff_errorf(C.FF_EPLUGIN, "%s", err.msg)
  end
end

-- The vtable of a Lua plugin: each entry an ffi.cast callback of the field's own C type (so no
-- signature is written twice). Returns the vtable cdata and the list of callbacks to free.
-- A callback is a GC root: the callbacks reach t only through the weak `ref`, or t (and its guard,
-- which frees them) could never be collected.
local function lua_vtable(kind, t)
  local ref = setmetatable({ t }, { __mode = "v" })
  local vt = ffi.new(kind == "source" and "ff_source_vtable" or "ff_decoder_vtable")
  local cbs = {}
  local function set(field, fn)
    local ct, g = ffi.typeof(vt[field]), guarded(fn)
    local ok, cb = pcall(ffi.cast, ct, g)
    if not ok then                  -- LuaJIT has a few hundred callback slots: free the dead ones
      collectgarbage(); collectgarbage()
      ok, cb = pcall(ffi.cast, ct, g)
      if not ok then
        for _, c in ipairs(cbs) do c:free() end
        raise(("ff.%s.lua \"%s\": %s (every live Lua plugin holds %d)"):format(kind, t.name, tostring(cb):gsub("^.-: ", ""), #cbs + 1))
      end
    end
    cbs[#cbs + 1] = cb
    vt[field] = cb
  end
  set("create", function(_, sp, state)
    state[0] = nil                                  -- the Lua table is the state (self)
    local p = ref[1]
    if p.create then
      p.create(p, { k = tonumber(sp.k), d = tonumber(sp.d), cond_classes = tonumber(sp.cond_classes),
                    cond_channels = tonumber(sp.cond_channels) })
    end
  end)
  if kind == "source" then
    set("sample", function(_, rng, out) local p = ref[1]; p.sample(p, rng, out[0]) end)
    if t.log_prob then set("log_prob", function(_, x, out) local p = ref[1]; p.log_prob(p, x[0], out[0]) end) end
  else
    set("decode", function(_, x, rng, out) local p = ref[1]; p.decode(p, x[0], rng, out[0]) end)
    vt.emits_probs = t.emits_probs and 1 or 0
  end
  return vt, cbs
end

-- Registers t with the loader; the returned guard unregisters it and frees the callbacks when Lua
-- collects it (the loader keeps its own copy of the descriptor while a flow's instance lives; the
-- flow holds t, so no callback is freed while a flow can still call it).
local function register(kind, t)
  local kind_id = M.kinds[kind]
  local vt, cbs = lua_vtable(kind, t)
  local desc = ffi.new("ff_plugin")
  desc.abi_major, desc.abi_minor = core.constants.FF_PLUGIN_ABI_MAJOR, core.constants.FF_PLUGIN_ABI_MINOR
  desc.kind, desc.vtable_size, desc.vtable = kind_id, ffi.sizeof(vt), vt
  desc.name, desc.version, desc.summary = t.name, "lua", "written in Lua"
  local function free_callbacks() for _, cb in ipairs(cbs) do cb:free() end end
  local st = C.ff_plugin_register(desc)              -- copies desc, vt and the strings
  if st ~= 0 then free_callbacks(); check(st) end
  local name = t.name
  return ffi.gc(ffi.new("char[1]"), function()
    C.ff_plugin_unregister(kind_id, name)
    free_callbacks()
  end)
end

local live = setmetatable({}, { __mode = "v" })     -- "kind/name" -> registered Lua plugin
local function taken(kind, name)
  return C.ff_plugin_find(M.kinds[kind], name, ffi.new("const ff_plugin *[1]")) == 0
end

local function lua_plugin(kind)
  return function(t)
    if type(t) ~= "table" then raise(("ff.%s.lua: expects a table of functions, got %s"):format(kind, type(t))) end
    if type(t.name) ~= "string" then
      raise(("ff.%s.lua: name must be a string, got %s"):format(kind, type(t.name)))
    end
    if kind == "metric" and not t.name:match("^[%w_]+$") then   -- others: the loader's rule
      raise(("ff.metric.lua: name must be a string of [A-Za-z0-9_], got %s"):format(t.name))
    end
    local fn = required[kind]
    if type(t[fn]) ~= "function" then
      raise(("ff.%s.lua \"%s\": needs a function '%s'"):format(kind, t.name, fn))
    end
    for key, v in pairs(t) do   -- plain fields are the plugin's own state; a function must be known
      if type(v) == "function" and key ~= fn and not (optional[kind] or {})[key] then
        local names = { fn }
        for o in pairs(optional[kind] or {}) do names[#names + 1] = o end
        table.sort(names)
        raise(("ff.%s.lua \"%s\": unknown function '%s' (known: %s)"):format(kind, t.name, tostring(key), table.concat(names, ", ")))
      end
    end
    for field in pairs(optional[kind] or {}) do
      if t[field] ~= nil and type(t[field]) ~= "function" then
        raise(("ff.%s.lua \"%s\": %s must be a function, got %s"):format(kind, t.name, field, type(t[field])))
      end
    end
    t.lua = true
    t.kind = kind
    if kind ~= "metric" then
      -- the name must be free: a Lua plugin never silently replaces another plugin of the process
      local key = kind .. "/" .. t.name
      if t.name:match("^[a-z0-9_]+$") and taken(kind, t.name) then
        collectgarbage(); collectgarbage()        -- its holder may be a Lua plugin nobody references
        if taken(kind, t.name) then
          raise(live[key] and ("ff.%s.lua: another Lua %s named \"%s\" is alive (names are unique while registered)"):format(kind, kind, t.name)
                or ("ff.%s.lua: \"%s\" is already the name of a %s plugin on the search path; choose another name"):format(kind, t.name, kind))
        end
      end
      t.registration_ = register(kind, t)
      live[key] = t
    end
    return setmetatable(t, { __tostring = function() return ("lua %s \"%s\""):format(kind, t.name) end })
  end
end
M.lua_source  = lua_plugin("source")
M.lua_decoder = lua_plugin("decoder")
M.lua_metric  = lua_plugin("metric")

M.make_spec = make_spec
M.is_spec = function(x) return getmetatable(x) == Spec end
return M
