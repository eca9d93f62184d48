-- json.lua — a JSON encoder for results and metrics (keys sorted so files diff well; tensors become
-- nested arrays) and a small decoder for tests. Non-finite numbers are written as the bare tokens
-- NaN, Infinity and -Infinity, as Python's json module writes and reads them (json.load gives back
-- float('nan'), float('inf'), float('-inf')); this decoder reads them too. They are not RFC 8259:
-- for a strict reader pass { nonfinite = "null" } (all three become null, indistinguishable) or
-- { nonfinite = "error" } (refused, naming the key).
local ffi = require "ffi"
local M = {}

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local tokens = { nan = "NaN", inf = "Infinity", ninf = "-Infinity" }

local function encode_number(x, nonfinite, where)
  if x ~= x or x == math.huge or x == -math.huge then
    if nonfinite == "null" then return "null" end
    local which = x ~= x and "nan" or x > 0 and "inf" or "ninf"
    if nonfinite == "error" then
      error(("json.encode: %s is %s (not representable in strict JSON)"):format(where, tokens[which]), 0)
    end
    return tokens[which]
  end
  if x == math.floor(x) and math.abs(x) < 2^53 then return ("%d"):format(x) end
  for _, fmt in ipairs({ "%.15g", "%.16g" }) do       -- the shortest that reads back exactly
    local s = fmt:format(x)
    if tonumber(s) == x then return s end
  end
  return ("%.17g"):format(x)
end

local function is_array(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k ~= math.floor(k) then return false end
    n = math.max(n, k)
  end
  return n == #t, n
end

local function encode(v, indent, depth, seen, nf, where)
  local ty = type(v)
  if v == nil or v == M.null then return "null"
  elseif ty == "boolean" then return tostring(v)
  elseif ty == "number" then return encode_number(v, nf, where)
  elseif ty == "string" then return encode_string(v)
  elseif ty == "cdata" then
    if ffi.istype("ff_tensor_t", v) then return encode(v:totable(), indent, depth, seen, nf, where) end
    local n = tonumber(v)
    if n then return encode_number(n, nf, where) end
    error("json.encode: cannot encode cdata " .. tostring(ffi.typeof(v)), 0)
  elseif ty == "table" then
    if seen[v] then error("json.encode: a table contains itself", 0) end
    seen[v] = true
    local nl, pad, pad_in = "", "", ""
    if indent then
      nl = "\n"; pad = ("  "):rep(depth); pad_in = ("  "):rep(depth + 1)
    end
    local out
    local arr, n = is_array(v)
    if arr and (n > 0 or next(v) == nil and getmetatable(v) ~= M.object_mt) then
      local items = {}
      for i = 1, n do items[i] = encode(v[i], indent, depth + 1, seen, nf, ("%s[%d]"):format(where, i)) end
      local inline = not indent
      if indent then
        inline = true
        for i = 1, n do if type(v[i]) == "table" then inline = false; break end end
      end
      if inline then out = "[" .. table.concat(items, indent and ", " or ",") .. "]"
      else out = "[" .. nl .. pad_in .. table.concat(items, "," .. nl .. pad_in) .. nl .. pad .. "]" end
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" and type(k) ~= "number" then
          error("json.encode: object key of type " .. type(k), 0)
        end
        keys[#keys + 1] = k
      end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      local items = {}
      for i, k in ipairs(keys) do
        items[i] = encode_string(tostring(k)) .. (indent and ": " or ":") ..
                   encode(v[k], indent, depth + 1, seen, nf, where .. "." .. tostring(k))
      end
      if #items == 0 then out = "{}"
      else out = "{" .. nl .. pad_in .. table.concat(items, "," .. nl .. pad_in) .. nl .. pad .. "}" end
    end
    seen[v] = nil
    return out
  end
  error("json.encode: cannot encode a " .. ty, 0)
end

M.null = setmetatable({}, { __tostring = function() return "null" end })
M.object_mt = {}   -- setmetatable({}, json.object_mt) encodes as {} rather than []

-- encode(value [, { indent = true, nonfinite = "tokens" | "null" | "error" }]) -> string
local known_opts = { indent = true, nonfinite = true }
function M.encode(v, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if not known_opts[k] then error(("json.encode: unknown option '%s' (known: indent, nonfinite)"):format(tostring(k)), 2) end
  end
  local nf = opts.nonfinite or "tokens"
  if nf ~= "tokens" and nf ~= "null" and nf ~= "error" then
    error("json.encode: nonfinite must be tokens, null or error, got " .. tostring(nf), 2)
  end
  return encode(v, opts.indent, 0, {}, nf, "value")
end

-- decode(text) -> value; raises "json.decode: <what> at byte N".
function M.decode(s)
  local pos = 1
  local function fail(what) error(("json.decode: %s at byte %d"):format(what, pos), 0) end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = s:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; break end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        local map = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
        if map[e] then out[#out + 1] = map[e]; pos = pos + 2
        elseif e == "u" then
          local hex = s:sub(pos + 2, pos + 5)
          if not hex:match("^%x%x%x%x$") then fail("bad \\u escape") end
          local cp = tonumber(hex, 16)
          if cp < 0x80 then out[#out + 1] = string.char(cp)
          elseif cp < 0x800 then out[#out + 1] = string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
          else out[#out + 1] = string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64) end
          pos = pos + 6
        else fail("bad escape") end
      else
        out[#out + 1] = c; pos = pos + 1
      end
    end
    return table.concat(out)
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local obj = setmetatable({}, M.object_mt)
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return obj end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str(); ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        obj[k] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "}" then return obj end
        if d ~= "," then pos = pos - 1; fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local arr = {}
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return arr end
      while true do
        arr[#arr + 1] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "]" then return arr end
        if d ~= "," then pos = pos - 1; fail("expected ',' or ']'") end
      end
    elseif c == '"' then return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return M.null
    elseif s:sub(pos, pos + 2) == "NaN" then pos = pos + 3; return 0 / 0
    elseif s:sub(pos, pos + 7) == "Infinity" then pos = pos + 8; return math.huge
    elseif s:sub(pos, pos + 8) == "-Infinity" then pos = pos + 9; return -math.huge
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" or num == "-" then fail("unexpected character '" .. c .. "'") end
      pos = pos + #num
      return tonumber(num) or fail("bad number '" .. num .. "'")
    end
  end
  local v = value(); ws()
  if pos <= #s then fail("trailing characters") end
  return v
end

return M
