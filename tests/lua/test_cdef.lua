-- test_cdef.lua — the generated cdef against the C compiler: every public struct's size and
-- alignment, every field's offset and size, every enum constant and numeric #define, as printed by
-- the layout probe built from the same headers (lua/gen_cdef.lua writes it, CMake compiles it).
local T  = require "ff_test"
local ff = require "fisherflow"
local ffi = require "ffi"
local cdef = require "fisherflow.cdef"

local function probe()
  local path = T.params.layout
  T.ok(path, "run with layout=<path of ff_cdef_layout>")
  -- LuaJIT's popen:close() returns true whatever the exit status: read it from the shell
  local p = io.popen(("'%s'; echo \"rc=$?\""):format(path))
  local facts, rc = {}, nil
  for line in p:lines() do
    rc = tonumber(line:match("^rc=(%d+)$")) or rc
    if not line:match("^rc=%d+$") then
      local f = {}
      for field in line:gmatch("[^\t]+") do f[#f + 1] = field end
      facts[#facts + 1] = f
    end
  end
  p:close()
  T.eq(rc, 0, path .. " exit status")
  return facts
end

-- Field types the FFI sees differently on purpose (same layout): t.shape / t.stride.
local function ffi_field_size(cname, field)
  local ct = ffi.typeof(cname)
  local off = ffi.offsetof(ct, field)
  -- size of a field: distance to the next field's offset is unreliable; use a typed probe
  local ok, sz = pcall(function()
    local obj = ffi.new(ct)
    return ffi.sizeof(obj[field])
  end)
  return off, ok and sz or nil
end

T.test("every struct has the C size, alignment and field offsets", function()
  local structs, fields, bad = 0, 0, {}
  for _, f in ipairs(probe()) do
    if f[1] == "S" then
      structs = structs + 1
      local ok, ct = pcall(ffi.typeof, f[2])
      if not ok then bad[#bad + 1] = f[2] .. ": not in the cdef"
      else
        if ffi.sizeof(ct) ~= tonumber(f[3]) then
          bad[#bad + 1] = ("%s: sizeof %d in Lua, %s in C"):format(f[2], ffi.sizeof(ct), f[3])
        end
        if ffi.alignof(ct) ~= tonumber(f[4]) then
          bad[#bad + 1] = ("%s: alignof %d in Lua, %s in C"):format(f[2], ffi.alignof(ct), f[4])
        end
      end
    elseif f[1] == "F" then
      fields = fields + 1
      local ok, off, sz = pcall(ffi_field_size, f[2], f[3])
      if not ok or off == nil then bad[#bad + 1] = ("%s.%s: no such field in Lua"):format(f[2], f[3])
      else
        if off ~= tonumber(f[4]) then
          bad[#bad + 1] = ("%s.%s: offset %d in Lua, %s in C"):format(f[2], f[3], off, f[4])
        end
        if sz and sz ~= tonumber(f[5]) then
          bad[#bad + 1] = ("%s.%s: size %d in Lua, %s in C"):format(f[2], f[3], sz, f[5])
        end
      end
    end
  end
  T.ok(#bad == 0, "%d mismatches:\n  %s", #bad, table.concat(bad, "\n  "))
  io.write(("      %d structs, %d fields checked\n"):format(structs, fields))
  T.ok(structs >= 15 and fields >= 80, "too few facts (%d structs, %d fields): is the probe complete?", structs, fields)
end)

T.test("the probe covers the structs scripts rely on", function()
  local seen = {}
  for _, f in ipairs(probe()) do if f[1] == "S" then seen[f[2]] = true end end
  for _, name in ipairs({ "struct ff_tensor", "struct ff_rng", "struct ff_plugin", "struct ff_option_spec",
                          "struct ff_flow_config", "struct ff_step_stats", "struct ff_sample_opts",
                          "struct ff_optim_config", "struct ff_space" }) do
    T.ok(seen[name], "%s is not probed", name)
  end
end)

T.test("enum constants and #defines match", function()
  local n, bad = 0, {}
  for _, f in ipairs(probe()) do
    if f[1] == "E" then
      n = n + 1
      local ok, v = pcall(function() return ff.C[f[2]] end)
      if not ok then bad[#bad + 1] = f[2] .. ": not in the cdef"
      elseif tonumber(v) ~= tonumber(f[3]) then bad[#bad + 1] = ("%s = %s in Lua, %s in C"):format(f[2], tostring(v), f[3]) end
    elseif f[1] == "D" or f[1] == "Q" then
      n = n + 1
      local v = cdef.constants[f[2]]
      local want = f[1] == "D" and tonumber(f[3]) or (f[3] or "")
      if v ~= want then bad[#bad + 1] = ("#define %s = %s in Lua, %s in C"):format(f[2], tostring(v), tostring(f[3])) end
    end
  end
  T.ok(#bad == 0, "%d mismatches:\n  %s", #bad, table.concat(bad, "\n  "))
  T.ok(n >= 20, "only %d constants probed", n)
end)

T.test("tensor shape/stride keep the C layout behind the method syntax", function()
  local t = ff.zeros(2, 3, 4)
  T.eq(t.shape[0], 2, "t.shape[0]"); T.eq(t.shape[2], 4, "t.shape[2]")
  T.eq(t.stride[0], 12, "t.stride[0]"); T.eq(t.stride[2], 1, "t.stride[2]")
  local s = t:shape()
  T.eq(#s, 3, "#t:shape()"); T.eq(s[1], 2, "shape[1]"); T.eq(s[3], 4, "shape[3]")
  T.eq(ffi.offsetof("ff_tensor_t", "shape"), 16, "offset of shape")
  T.eq(ffi.sizeof(t.shape), 8 * ff.constants.FF_MAX_DIMS, "sizeof shape")
  T.raises(function() return t.shape[4] end, "outside [0, 4)")
end)

T.test("the cdef is the one generated from this tree's headers", function()
  T.eq(cdef.version, ff.version, "cdef version vs ff_version()")
end)
