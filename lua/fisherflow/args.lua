-- args.lua — typed script arguments: ff.args{ steps = { 20000, "training steps" }, ... } parses
-- `--key value`, `--key=value`, `--flag`, `--no-flag` from the script's command line. The type
-- comes from the default (integer, number, string, boolean) or from `type = ...`; `--help` prints
-- the list and ends the script cleanly (exit status 0).
local core = require "fisherflow.core"

local M = {}

local function infer(name, spec)
  local default, help = spec[1], spec[2]
  local ty = spec.type
  if ty == nil then
    local d = type(default)
    if d == "number" then ty = (default == math.floor(default) and math.abs(default) < 2^53) and "integer" or "number"
    elseif d == "string" then ty = "string"
    elseif d == "boolean" then ty = "boolean"
    else core.raise(("ff.args: argument '%s' needs a default (number, string or boolean) or a type"):format(name)) end
  elseif ty ~= "integer" and ty ~= "number" and ty ~= "string" and ty ~= "boolean" then
    core.raise(("ff.args: argument '%s': type must be integer, number, string or boolean, got '%s'"):format(name, tostring(ty)))
  end
  if help ~= nil and type(help) ~= "string" then
    core.raise(("ff.args: argument '%s': the second entry is its help text, got a %s"):format(name, type(help)))
  end
  return { name = name, type = ty, default = default, help = help or "" }
end

local function convert(a, text)
  if a.type == "string" then return text end
  if a.type == "boolean" then
    local t = text:lower()
    if t == "true" or t == "1" or t == "yes" or t == "on" then return true end
    if t == "false" or t == "0" or t == "no" or t == "off" then return false end
    return nil, "a boolean (true/false)"
  end
  local n = tonumber(text)
  if not n or n ~= n then return nil, a.type == "integer" and "an integer" or "a number" end
  if a.type == "integer" and n ~= math.floor(n) then return nil, "an integer" end
  return n
end

local function sorted_names(specs)
  local names = {}
  for k in pairs(specs) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- The --help text.
function M.help_text(specs, script)
  local lines = { ("usage: fisherflow run %s [--name value ...]"):format(script or "SCRIPT.lua"), "" }
  local width = 0
  local rows = {}
  for _, name in ipairs(sorted_names(specs)) do
    local a = infer(name, specs[name])
    local flag = "--" .. name:gsub("_", "-") .. (a.type == "boolean" and "" or (" <" .. a.type .. ">"))
    width = math.max(width, #flag)
    rows[#rows + 1] = { flag, a }
  end
  for _, r in ipairs(rows) do
    local a = r[2]
    local d = a.default == nil and "" or (" (default: " .. tostring(a.default) .. ")")
    lines[#lines + 1] = ("  %-" .. width .. "s  %s%s"):format(r[1], a.help, d)
  end
  lines[#lines + 1] = ("  %-" .. width .. "s  %s"):format("--help", "show this list and exit")
  return table.concat(lines, "\n") .. "\n"
end

-- ff.args(specs [, argv]) -> table of values. argv defaults to the script's arguments (from the
-- runner). Unknown names, missing values and values of the wrong type raise at the script's line.
function M.parse(specs, argv)
  if type(specs) ~= "table" then core.raise("ff.args: expects a table of { default, \"help\" }, got " .. type(specs)) end
  local script = package.loaded["fisherflow.script"]
  if argv == nil then argv = script and script.args or {} end
  local args, known = {}, {}
  for name, spec in pairs(specs) do
    if type(name) ~= "string" or type(spec) ~= "table" then
      core.raise(("ff.args: entry %s must be name = { default, \"help\" }"):format(tostring(name)))
    end
    known[name] = infer(name, spec)
    args[name] = spec[1]
  end
  local function known_list() return table.concat(sorted_names(specs), ", ") end
  local i = 1
  while i <= #argv do
    local tok = argv[i]
    if tok == "--help" or tok == "-h" then
      io.stdout:write(M.help_text(specs, script and script.path))
      io.stdout:flush()
      error({ fisherflow_exit = 0 }, 0)
    end
    local key, inline = tok:match("^%-%-([^=]+)=(.*)$")
    if not key then key = tok:match("^%-%-(.+)$") end
    if not key then
      core.raise(("ff.args: unexpected argument '%s' (arguments are --name value; known: %s)"):format(tok, known_list()))
    end
    local name = key:gsub("-", "_")
    local a, negated = known[name], false
    if not a and name:sub(1, 3) == "no_" and known[name:sub(4)] and known[name:sub(4)].type == "boolean" then
      a, negated = known[name:sub(4)], true
    end
    if not a then core.raise(("ff.args: unknown argument --%s (known: %s)"):format(key, known_list())) end
    local value
    if a.type == "boolean" and inline == nil then
      local nxt = argv[i + 1]
      local v = nxt and convert(a, nxt)
      if v ~= nil and not (nxt or ""):match("^%-%-") then value = v; i = i + 1 else value = true end
      if negated then value = not value end
    else
      local text = inline
      if text == nil then
        text = argv[i + 1]
        if text == nil then core.raise(("ff.args: --%s needs a value (%s)"):format(key, a.type)) end
        i = i + 1
      end
      local v, expected = convert(a, text)
      if v == nil then core.raise(("ff.args: --%s expects %s, got '%s'"):format(key, expected, text)) end
      value = v
    end
    args[a.name] = value
    i = i + 1
  end
  M.last = {}                          -- the latest resolved arguments (flow:fit logs them)
  for k, v in pairs(args) do M.last[k] = v end
  return setmetatable(args, {
    __index = function(_, k)
      if known[k] then return nil end
      error(("ff.args: '%s' is not a declared argument (known: %s)"):format(tostring(k), known_list()), 2)
    end,
  })
end

return M
