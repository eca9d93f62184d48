-- progress.lua — a progress bar with rate and ETA when stderr is a terminal (redrawn at most ten
-- times a second), plain lines every 10 % otherwise (logs and CI stay readable).
local core = require "fisherflow.core"
local util = require "fisherflow.util"

local M = {}
local Bar = {}
Bar.__index = Bar

local function hms(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  local h, m = math.floor(s / 3600), math.floor(s / 60) % 60
  if h > 0 then return ("%d:%02d:%02d"):format(h, m, s % 60) end
  return ("%d:%02d"):format(m, s % 60)
end

-- ff.progress{ total = N, label = "train", tty = nil (auto) | true | false, out = io.stderr,
--              after = 0, start = 0 }: after = seconds: nothing is shown until the work has run that
-- long (a short call stays silent; flow:sample and flow:log_prob use 2); start = the count already
-- done before this bar (a resumed run): the rate and ETA count only what this bar saw done. Under
-- mpirun only rank 0 draws (core.writes).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then core.raise("ff.progress: expects a table { total =, ... }, got " .. type(opts)) end
  util.check_keys(opts, { total = true, label = true, tty = true, out = true, after = true, start = true }, "ff.progress", "option")
  if opts.after ~= nil and (type(opts.after) ~= "number" or opts.after < 0) then
    core.raise("ff.progress: after must be a number of seconds >= 0, got " .. tostring(opts.after))
  end
  if type(opts.total) ~= "number" or opts.total < 0 then
    core.raise("ff.progress: total must be a non-negative number, got " .. tostring(opts.total))
  end
  local start = opts.start or 0
  if type(start) ~= "number" or start < 0 or start > opts.total then
    core.raise(("ff.progress: start must be a number in [0, total = %s], got %s"):format(tostring(opts.total), tostring(start)))
  end
  local tty = opts.tty
  if tty == nil then tty = util.isatty(2) end
  return setmetatable({
    total = opts.total, start = start, quiet = not core.writes(), label = opts.label or "", tty = tty, out = opts.out or io.stderr,
    t0 = util.now(), last_draw = -1, next_line = math.max(1, math.ceil(opts.total / 10)), done_ = false,
    after = opts.after or 0, shown = false,
  }, Bar)
end

local function extras(info)
  if not info then return "" end
  local keys = {}
  for k in pairs(info) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = info[k]
    parts[#parts + 1] = type(v) == "number" and ("%s %.4g"):format(k, v) or ("%s %s"):format(k, tostring(v))
  end
  return "  " .. table.concat(parts, "  ")
end

function Bar:line(i, info)
  local elapsed = util.now() - self.t0
  local rate = elapsed > 0 and (i - self.start) / elapsed or 0
  local eta = rate > 0 and (self.total - i) / rate or math.huge
  local frac = self.total > 0 and i / self.total or 1
  local prefix = self.label ~= "" and (self.label .. " ") or ""
  if self.tty then
    local width = 24
    local fill = math.floor(frac * width + 0.5)
    return ("\r%s[%s%s] %3d%% %d/%d  %.1f it/s  ETA %s%s\27[K"):format(prefix, ("#"):rep(fill),
      ("."):rep(width - fill), math.floor(frac * 100), i, self.total, rate, hms(eta), extras(info))
  end
  return ("%s%d/%d (%d%%)  %.1f it/s  elapsed %s  ETA %s%s\n"):format(prefix, i, self.total,
    math.floor(frac * 100), rate, hms(elapsed), hms(eta), extras(info))
end

-- Reports that i of total are done; info: a few numbers to show (loss, ...).
function Bar:update(i, info)
  self.last_i, self.last_info = i, info
  if self.quiet then return end
  if not self.shown then
    if util.now() - self.t0 < self.after then return end
    self.shown = true
  end
  if self.tty then
    local now = util.now()
    if now - self.last_draw < 0.1 and i < self.total then return end
    self.last_draw = now
    self.out:write(self:line(i, info))
    self.out:flush()
  elseif i >= self.next_line or i >= self.total then
    self.out:write(self:line(i, info))
    self.out:flush()
    self.next_line = i + math.max(1, math.ceil(self.total / 10))
  end
end

function Bar:finish(info)
  if self.done_ then return end
  self.done_ = true
  if not self.shown or self.quiet then return end   -- never shown (ended before `after`), or another rank's
  if self.tty then
    self.out:write(self:line(self.last_i or self.total, info or self.last_info), "\n")
    self.out:flush()
  end
end

return M
