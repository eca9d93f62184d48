-- log.lua — JSONL metric streams: one JSON object per line, flushed per write, so a run that dies
-- still leaves its curve. ff.log.open(path) gives a stream; ff.log.write{...} writes to the default
-- one (opened with ff.log.open, or FISHERFLOW_LOG's path, or nowhere).
local core = require "fisherflow.core"
local json = require "fisherflow.json"
local util = require "fisherflow.util"

local M = {}
local Stream = {}
Stream.__index = Stream

function M.open(path, opts)
  if type(path) ~= "string" then core.raise("ff.log.open: path must be a string, got " .. type(path)) end
  if opts ~= nil then
    if type(opts) ~= "table" then core.raise("ff.log.open: options must be a table, got " .. type(opts)) end
    util.check_keys(opts, { append = true }, "ff.log.open", "option")
  end
  if not core.writes() then                  -- another rank writes the file (core.writes)
    return setmetatable({ path = path, n = 0, quiet = true }, Stream)
  end
  util.ensure_parent(path)
  local f, err = io.open(path, (opts and opts.append) and "ab" or "wb")
  if not f then core.raise("ff.log.open: cannot open " .. path .. ": " .. tostring(err)) end
  local s = setmetatable({ path = path, file = f, n = 0 }, Stream)
  if not M.default then M.default = s end
  return s
end

function Stream:write(record)
  if type(record) ~= "table" then core.raise("log:write: expects a table, got " .. type(record)) end
  if self.quiet then self.n = self.n + 1; return end
  if not self.file then core.raise("log:write: " .. self.path .. " is closed") end
  self.file:write(json.encode(record), "\n")
  self.file:flush()
  self.n = self.n + 1
end

function Stream:close()
  if self.file then self.file:close(); self.file = nil end
  if M.default == self then M.default = nil end
end

-- ff.log.write{step = 10, loss = 0.3}: to the default stream (no-op without one).
function M.write(record)
  if not M.default then
    local env = os.getenv("FISHERFLOW_LOG")
    if not env or env == "" or not core.writes() then return end
    M.open(env)
  end
  M.default:write(record)
end

-- Reads a JSONL file back (tests, plotting): a list of tables.
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then core.raise("ff.log.read: cannot open " .. path .. ": " .. tostring(err)) end
  local out = {}
  for line in f:lines() do
    if line:match("%S") then out[#out + 1] = json.decode(line) end
  end
  f:close()
  return out
end

return M
