-- gen_cdef.lua — writes lua/fisherflow/cdef.lua (and a C layout probe) from the public headers.
-- Build step, run by luajit: the headers go through `cc -E` first (see lua/CMakeLists.txt); this
-- keeps the lines that came from fisherflow headers (by the preprocessor's line markers), drops
-- what the FFI cannot parse (static inline bodies, _Static_assert), and collects #define numbers,
-- enum constants and struct fields so that layout.c can print the C compiler's view of each one.
--
-- usage: luajit gen_cdef.lua PREPROCESSED.i OUT_CDEF.lua OUT_LAYOUT.c VERSION INCLUDE_DIR... -- HEADER...

local pre_path, cdef_path, layout_path, version = arg[1], arg[2], arg[3], arg[4]
local keep_dirs, headers, i = {}, {}, 5
while arg[i] and arg[i] ~= "--" do keep_dirs[#keep_dirs + 1] = arg[i]; i = i + 1 end
for j = i + 1, #arg do headers[#headers + 1] = arg[j] end

local function die(msg) io.stderr:write("gen_cdef.lua: ", msg, "\n"); os.exit(1) end
local function slurp(path)
  local f = io.open(path, "rb") or die("cannot read " .. path)
  local s = f:read("*a"); f:close(); return s
end

-- 1. Keep the lines whose line marker names a file under one of keep_dirs.
local function ours(file)
  for _, d in ipairs(keep_dirs) do
    if file:sub(1, #d) == d then return true end
  end
  return false
end
local kept, current = {}, nil
for line in (slurp(pre_path) .. "\n"):gmatch("([^\n]*)\n") do
  local file = line:match('^#%s*%d+%s+"([^"]*)"')
  if file then current = file
  elseif line:match("^#") then -- other directives (#pragma): never for the FFI
  elseif current and ours(current) and line:match("%S") then kept[#kept + 1] = line end
end
local text = table.concat(kept, "\n")

-- 2. Drop definitions the FFI cannot parse: `static ... { body }` and `_Static_assert(...);`.
local function drop_static_bodies(s)
  local out, pos = {}, 1
  while true do
    local a = s:find("%f[%w_]static%f[^%w_]", pos)
    if not a then out[#out + 1] = s:sub(pos); break end
    local semi, brace = s:find(";", a, true), s:find("{", a, true)
    if brace and (not semi or brace < semi) then
      out[#out + 1] = s:sub(pos, a - 1)
      local depth, k = 0, brace
      repeat
        local c = s:sub(k, k)
        if c == "{" then depth = depth + 1 elseif c == "}" then depth = depth - 1 end
        k = k + 1
      until depth == 0 or k > #s
      pos = k
    else
      out[#out + 1] = s:sub(pos, (semi or #s))
      pos = (semi or #s) + 1
    end
  end
  return table.concat(out)
end
text = drop_static_bodies(text)
text = text:gsub("_Static_assert%b();", "")

-- 3. Struct and union bodies: names and fields, for the layout probe.
local function strip_comments(s) return (s:gsub("/%*.-%*/", " "):gsub("//[^\n]*", " ")) end
local function split_top(s, sep)   -- split on sep at paren/bracket/brace depth 0
  local parts, depth, start = {}, 0, 1
  for k = 1, #s do
    local c = s:sub(k, k)
    if c == "(" or c == "[" or c == "{" then depth = depth + 1
    elseif c == ")" or c == "]" or c == "}" then depth = depth - 1
    elseif c == sep and depth == 0 then parts[#parts + 1] = s:sub(start, k - 1); start = k + 1 end
  end
  parts[#parts + 1] = s:sub(start)
  return parts
end
local function field_names(decl)   -- "int64_t shape [4]" -> {"shape"}; "ff_status (*f)(...)" -> {"f"}
  decl = decl:gsub("^%s+", ""):gsub("%s+$", "")
  if decl == "" or decl:find("{", 1, true) then return {} end      -- nested bodies: not probed
  local fp = decl:match("%(%s*%*%s*([%a_][%w_]*)%s*%)")
  if fp then return { fp } end
  local pieces, names = split_top(decl, ","), {}
  for n, piece in ipairs(pieces) do
    piece = piece:gsub("%b[]", ""):gsub(":%s*%d+%s*$", "")        -- array sizes, bit widths
    local name = piece:match("([%a_][%w_]*)%s*$")
    if name and (n > 1 or piece:match("[%w_%*]%s+%**%s*[%a_][%w_]*%s*$") or piece:match("%*%s*[%a_][%w_]*%s*$")) then
      names[#names + 1] = name
    end
  end
  return names
end

local structs = {}   -- { cname = "struct ff_tensor" | "ff_x", fields = {...} }
local clean = strip_comments(text)
do
  local pos = 1
  while true do
    local open = clean:find("{", pos, true)
    if not open then break end
    local kw, tag = clean:sub(1, open - 1):match("%f[%w_](%a+)%s*([%a_]?[%w_]*)%s*$")
    if kw ~= "struct" and kw ~= "union" then    -- "struct ff_tensor {" or "struct {" (tag "")
      kw, tag = clean:sub(1, open - 1):match("%f[%w_](%a+)%s*$"), ""
    end
    if kw == "struct" or kw == "union" then
      local body = clean:match("%b{}", open)
      local typedef = clean:sub(1, open - 1):match("%f[%w_]typedef%s+%a+%s*$")
      local cname = tag ~= "" and (kw .. " " .. tag)
                    or typedef and clean:match("^%s*([%a_][%w_]*)%s*;", open + #body)
      if cname then                               -- anonymous members (no tag, no typedef) skipped
        local fields = {}
        for _, decl in ipairs(split_top(body:sub(2, -2), ";")) do
          for _, n in ipairs(field_names(decl)) do fields[#fields + 1] = n end
        end
        structs[#structs + 1] = { cname = cname, fields = fields }
      end
    end
    pos = open + 1                                -- nested definitions are found too
  end
end

-- 4. Enum constants and numeric #defines.
local enums = {}
for body in clean:gmatch("%f[%w_]enum%s*[%w_]*%s*(%b{})") do
  for _, item in ipairs(split_top(body:sub(2, -2), ",")) do
    local name = item:match("^%s*([%a_][%w_]*)")
    if name then enums[#enums + 1] = name end
  end
end
local defines = {}
for _, h in ipairs(headers) do
  for name, value in slurp(h):gmatch("\n%s*#%s*define%s+(FF_[%w_]+)%s+([%-%dxXa-fA-F%.uUlL]+)%f[%s]") do
    local v = value:gsub("[uUlL]+$", "")
    if tonumber(v) then defines[#defines + 1] = { name = name, value = tonumber(v) } end
  end
  for name, value in slurp(h):gmatch('\n%s*#%s*define%s+(FF_[%w_]+)%s+"([^"\\\n]*)"') do
    defines[#defines + 1] = { name = name, text = value }
  end
end

-- 5. Array fields that share a name with a Lua method (t:shape() vs t.shape[0]) are declared as a
-- one-member struct of the same layout, so both spellings work: t.shape[0] indexes the C array
-- through the struct's metatype and t:shape() calls it. test_cdef.lua proves the layout unchanged.
local method_arrays = { ["struct ff_tensor"] = { shape = true, stride = true } }
local array_types = {}
for cname, fields in pairs(method_arrays) do
  local kw, tag = cname:match("^(%a+) (.*)$")
  text = text:gsub("(" .. kw .. "%s+" .. tag .. "%s*)(%b{})", function(head, body)
    body = body:gsub("([%a_][%w_]*)%s+([%a_][%w_]*)%s*%[%s*(%d+)%s*%]%s*;", function(ty, name, n)
      if not fields[name] then return nil end
      local alias = ("ff_lua_%s_x%s"):format(ty, n)
      array_types[alias] = ("typedef struct %s { %s v[%s]; } %s;"):format(alias, ty, n, alias)
      return ("%s %s;"):format(alias, name)
    end)
    return head .. body
  end)
end
local prelude = {}
for _, decl in pairs(array_types) do prelude[#prelude + 1] = decl end
table.sort(prelude)

-- 6. The FFI must accept the declarations: a header it cannot read fails the build, not a script.
do
  local ok, err = pcall(require("ffi").cdef, table.concat(prelude, "\n") .. "\n" .. text)
  if not ok then die("the FFI refuses the public headers: " .. tostring(err)) end
end

-- 7. Write cdef.lua.
local function lstr(s) return ("%q"):format(s) end
local out = {}
out[#out + 1] = "-- cdef.lua — GENERATED by lua/gen_cdef.lua from the public headers at build time. Do not edit."
out[#out + 1] = "local ffi = require \"ffi\""
out[#out + 1] = "ffi.cdef[==[\n" .. table.concat(prelude, "\n") .. "\n" .. text .. "\n]==]"
out[#out + 1] = "return {"
out[#out + 1] = "  version = " .. lstr(version) .. ","
out[#out + 1] = "  method_arrays = { " ..
  (function()
    local l = {}
    for alias in pairs(array_types) do l[#l + 1] = lstr(alias) end
    table.sort(l); return table.concat(l, ", ")
  end)() .. " },"
out[#out + 1] = "  constants = {"
for _, d in ipairs(defines) do
  out[#out + 1] = ("    %s = %s,"):format(d.name, d.text and lstr(d.text) or ("%.17g"):format(d.value))
end
out[#out + 1] = "  },"
out[#out + 1] = "}"
local f = io.open(cdef_path, "wb") or die("cannot write " .. cdef_path)
f:write(table.concat(out, "\n"), "\n"); f:close()

-- 8. Write layout.c: prints what the C compiler thinks, one fact per line.
local c = {}
c[#c + 1] = "/* layout.c — GENERATED by lua/gen_cdef.lua: the C compiler's sizes, offsets and constants"
c[#c + 1] = " * for every public struct, enum and #define, compared with the FFI's by tests/lua/test_cdef.lua. */"
c[#c + 1] = "#include <stddef.h>\n#include <stdio.h>"
for _, h in ipairs(headers) do c[#c + 1] = ("#include %q"):format(h) end
c[#c + 1] = "int main(void) {"
for _, s in ipairs(structs) do
  c[#c + 1] = ("    printf(\"S\\t%s\\t%%zu\\t%%zu\\n\", sizeof(%s), _Alignof(%s));"):format(s.cname, s.cname, s.cname)
  for _, fname in ipairs(s.fields) do
    c[#c + 1] = ("    printf(\"F\\t%s\\t%s\\t%%zu\\t%%zu\\n\", offsetof(%s, %s), sizeof(((%s *)0)->%s));")
      :format(s.cname, fname, s.cname, fname, s.cname, fname)
  end
end
for _, e in ipairs(enums) do c[#c + 1] = ("    printf(\"E\\t%s\\t%%lld\\n\", (long long)%s);"):format(e, e) end
for _, d in ipairs(defines) do
  if d.text then c[#c + 1] = ("    printf(\"Q\\t%s\\t%%s\\n\", %s);"):format(d.name, d.name)
  else c[#c + 1] = ("    printf(\"D\\t%s\\t%%.17g\\n\", (double)(%s));"):format(d.name, d.name) end
end
c[#c + 1] = "    return 0;\n}"
f = io.open(layout_path, "wb") or die("cannot write " .. layout_path)
f:write(table.concat(c, "\n"), "\n"); f:close()
