-- text.lua — ff.text: character-level text over text8's 27 symbols (space = 0, a..z = 1..26) for
-- experiments/text8.lua: reading and checking text, one-hot batches, a smoothed character n-gram
-- model, and the sample metrics (unigram / bigram Jensen-Shannon divergence, the fraction of words
-- found in a vocabulary). The flow's bits per character come from flow:bits (evaluate.lua).
-- Pure Lua on the public tensor API; tests/lua/test_text.lua checks each
-- against hand computations.
local ffi    = require "ffi"
local core   = require "fisherflow.core"
local tensor = require "fisherflow.tensor"

local raise = core.raise
local M = {}
M.ALPHABET = " abcdefghijklmnopqrstuvwxyz"
M.K = 27
local K = 27
local SPACE, A, Z = 32, 97, 122

local function code_of(b) return b == SPACE and 0 or b - A + 1 end

-- The text's first byte outside the alphabet, as a message naming `what`, or nil.
local function bad_byte(s, what)
  local i = s:find("[^ a-z]")
  if not i then return nil end
  return ("%s: byte offset %d: 0x%02x is not in text8's alphabet (a-z and space)"):format(what, i - 1, s:byte(i))
end

-- ff.text.check(s, what): raises naming `what` and the offset when s has a byte outside a-z / space.
function M.check(s, what)
  if type(s) ~= "string" then raise(("ff.text.check: %s must be a string, got %s"):format(what or "text", type(s))) end
  local err = bad_byte(s, what or "text")
  if err then raise(err) end
  return s
end

-- ff.text.read(path) -> the file's contents, checked against the alphabet.
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then raise("ff.text.read: " .. tostring(err)) end
  local s = f:read("*a"); f:close()
  if #s == 0 then raise("ff.text.read: " .. path .. ": empty file") end
  local e = bad_byte(s, path)
  if e then raise("ff.text.read: " .. e) end
  return s
end

-- ff.text.codes(s) -> uint8_t[#s] of symbol codes (0-based array; s must be checked).
function M.codes(s)
  local n = #s
  local ids = ffi.new("uint8_t[?]", math.max(n, 1))
  local b = ffi.cast("const uint8_t *", s)
  for i = 0, n - 1 do ids[i] = code_of(b[i]) end
  return ids
end

-- ff.text.onehot(s, starts, L) -> tensor [#starts, L, 27]: the L characters of s from each
-- 1-based position in `starts`, one-hot (points of the simplex's vertices).
function M.onehot(s, starts, L)
  local n = #starts
  local x = tensor.zeros(n, L, K)
  local b, d = ffi.cast("const uint8_t *", s), x.data
  for r = 1, n do
    local first = starts[r]
    if first < 1 or first + L - 1 > #s then
      raise(("ff.text.onehot: window %d (%d..%d) is outside the text (1..%d)"):format(r, first, first + L - 1, #s))
    end
    local base = (r - 1) * L * K
    for j = 0, L - 1 do d[base + j * K + code_of(b[first - 1 + j])] = 1 end
  end
  return x
end

-- ff.text.strings(ids) -> list of strings from symbol codes [n, L] (a tensor, e.g. flow:decode).
function M.strings(ids)
  if ids.ndim ~= 2 then raise("ff.text.strings: expects codes [n, L], got " .. ids.ndim .. " dims") end
  local n, L = ids:size(1), ids:size(2)
  local c = ids:is_contiguous() and ids or ids:copy()
  local out, buf = {}, {}
  for r = 0, n - 1 do
    for j = 0, L - 1 do
      local v = c.data[r * L + j]
      if v ~= math.floor(v) or v < 0 or v >= K then raise(("ff.text.strings: code %s at [%d, %d] is not in 0..26"):format(v, r + 1, j + 1)) end
      buf[j + 1] = M.ALPHABET:sub(v + 1, v + 1)
    end
    out[r + 1] = table.concat(buf, "", 1, L)
  end
  return out
end

-- ff.text.chunks(s, L, n [, step]) -> up to n strings of L characters of s, taken in order from
-- the start at every `step` characters (default L: consecutive, non-overlapping).
function M.chunks(s, L, n, step)
  step = step or L
  local out, first = {}, 1
  while #out < n and first + L - 1 <= #s do
    out[#out + 1] = s:sub(first, first + L - 1)
    first = first + step
  end
  return out
end

---------------------------------------------------------------------------------------------------
-- Order-N character model with interpolated Witten-Bell smoothing. Counts are dense int32 arrays
-- per order n (index: the n-gram's base-27 number), so N <= 5 (27^5 = 14.3M entries).
--   P_0(c) = 1/27;  P_n(c | h) = (C(h c) + T(h) P_{n-1}(c | h')) / (C(h) + T(h))  when C(h) > 0,
--   else P_{n-1}(c | h'); h' is h without its first character, C(h) the count of h followed by
--   any symbol, T(h) the number of distinct symbols seen after h. A history shorter than n - 1
--   characters (the start of a text) uses the highest order it has.
local NGram = {}
NGram.__index = NGram

-- ff.text.ngram(s, order) -> model trained on the string s (counted as one stream).
function M.ngram(s, order)
  order = order or 5
  if type(order) ~= "number" or order < 1 or order > 5 or order ~= math.floor(order) then
    raise("ff.text.ngram: order must be an integer in 1..5, got " .. tostring(order))
  end
  M.check(s, "ff.text.ngram: training text")
  local ids, n = M.codes(s), #s
  local m = setmetatable({ order = order, cnt = {}, tot = {}, typ = {}, chars = n }, NGram)
  for o = 1, order do
    local size = K ^ o
    local cnt = ffi.new("int32_t[?]", size)
    local code, mod = 0, K ^ (o - 1)
    for i = 0, n - 1 do
      code = (code % mod) * K + ids[i]
      if i >= o - 1 then cnt[code] = cnt[code] + 1 end
    end
    local hs = K ^ (o - 1)
    local tot, typ = ffi.new("int32_t[?]", hs), ffi.new("int32_t[?]", hs)
    for h = 0, hs - 1 do
      local t, ty = 0, 0
      for c = 0, K - 1 do
        local v = cnt[h * K + c]
        t = t + v; if v > 0 then ty = ty + 1 end
      end
      tot[h], typ[h] = t, ty
    end
    m.cnt[o], m.tot[o], m.typ[o] = cnt, tot, typ
  end
  return m
end

-- m:probs(hist, len, out) -> out[0..26] = P(c | the last min(len, order-1) codes of hist[0..len-1]).
function NGram:probs(hist, len, out)
  for c = 0, K - 1 do out[c] = 1 / K end
  for o = 1, self.order do
    if len < o - 1 then break end
    local h = 0
    for j = len - (o - 1), len - 1 do h = h * K + hist[j] end
    local C, T = self.tot[o][h], self.typ[o][h]
    if C > 0 then
      local cnt = self.cnt[o]
      for c = 0, K - 1 do out[c] = (cnt[h * K + c] + T * out[c]) / (C + T) end
    end
  end
  return out
end

-- m:prob(context, c) -> P(c | context), both strings (context may be shorter than order - 1).
function NGram:prob(context, c)
  M.check(context .. c, "ngram:prob: text")
  local out = ffi.new("double[?]", K)
  self:probs(M.codes(context), #context, out)
  return out[code_of(c:byte(1))]
end

-- m:bits(s [, chunk]) -> bits per character of the text s: -mean log2 P(c_i | history). With
-- `chunk`, the history restarts every `chunk` characters (each chunk scored on its own, as the
-- flow scores each sequence); without, s is one stream. Also returns the number of characters.
function NGram:bits(s, chunk)
  M.check(s, "ngram:bits: text")
  local ids, n = M.codes(s), #s
  chunk = chunk or n
  local out, total = ffi.new("double[?]", K), 0
  for first = 0, n - 1, chunk do
    local len = math.min(chunk, n - first)
    for j = 0, len - 1 do
      self:probs(ids + first, j, out)
      total = total - math.log(out[ids[first + j]])
    end
  end
  return total / (n * math.log(2)), n
end

-- m:sample(rng, n, L) -> n strings of L characters, each drawn from an empty history.
function NGram:sample(rng, n, L)
  local res, hist, out, buf = {}, ffi.new("uint8_t[?]", L), ffi.new("double[?]", K), {}
  for r = 1, n do
    for j = 0, L - 1 do
      self:probs(hist, j, out)
      local u, c, acc = rng:uniform(), K - 1, 0
      for k = 0, K - 1 do
        acc = acc + out[k]
        if u < acc then c = k; break end
      end
      hist[j] = c
      buf[j + 1] = M.ALPHABET:sub(c + 1, c + 1)
    end
    res[r] = table.concat(buf, "", 1, L)
  end
  return res
end

---------------------------------------------------------------------------------------------------
-- Sample metrics.

-- ff.text.unigram(strings) -> 27 frequencies (1-based table, sums to 1).
function M.unigram(strings)
  local f, n = {}, 0
  for c = 1, K do f[c] = 0 end
  for _, s in ipairs(strings) do
    M.check(s, "ff.text.unigram: string " .. _)
    for i = 1, #s do local c = code_of(s:byte(i)) + 1; f[c] = f[c] + 1 end
    n = n + #s
  end
  if n == 0 then raise("ff.text.unigram: no characters") end
  for c = 1, K do f[c] = f[c] / n end
  return f
end

-- ff.text.bigram(strings) -> 729 frequencies of adjacent pairs inside each string (index
-- 27 a + b + 1 for the pair (a, b) of codes), sums to 1.
function M.bigram(strings)
  local f, n = {}, 0
  for c = 1, K * K do f[c] = 0 end
  for _, s in ipairs(strings) do
    M.check(s, "ff.text.bigram: string " .. _)
    for i = 2, #s do
      local c = code_of(s:byte(i - 1)) * K + code_of(s:byte(i)) + 1
      f[c] = f[c] + 1
    end
    n = n + math.max(#s - 1, 0)
  end
  if n == 0 then raise("ff.text.bigram: no pairs") end
  for c = 1, K * K do f[c] = f[c] / n end
  return f
end

-- ff.text.jsd(p, q) -> Jensen-Shannon divergence in bits (0 .. 1) of two distributions (tables
-- of equal length, each summing to 1): (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2.
function M.jsd(p, q)
  if #p ~= #q then raise(("ff.text.jsd: %d entries against %d"):format(#p, #q)) end
  local s = 0
  for i = 1, #p do
    local a, b = p[i], q[i]
    if a < 0 or b < 0 then raise(("ff.text.jsd: negative entry at %d (%g, %g)"):format(i, a, b)) end
    local m = (a + b) / 2
    if a > 0 then s = s + a * math.log(a / m) end
    if b > 0 then s = s + b * math.log(b / m) end
  end
  return s / (2 * math.log(2))
end

-- ff.text.vocab(s) -> set of the words of s (maximal runs of a-z).
function M.vocab(s)
  local v = {}
  for w in s:gmatch("[a-z]+") do v[w] = true end
  return v
end

-- ff.text.word_fraction(strings, vocab) -> fraction of words found in vocab, found, total. The
-- first and last word of each string are left out: a window cut from running text (a sample or a
-- held-out chunk) may cut them, so only words with a space on both sides count.
function M.word_fraction(strings, vocab)
  local found, total = 0, 0
  for _, s in ipairs(strings) do
    local words = {}
    for w in s:gmatch("[a-z]+") do words[#words + 1] = w end
    for i = 2, #words - 1 do
      total = total + 1
      if vocab[words[i]] then found = found + 1 end
    end
  end
  return total > 0 and found / total or 0 / 0, found, total
end

function M.install(ff) ff.text = M end

return M
