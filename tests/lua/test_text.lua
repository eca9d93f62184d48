-- test_text.lua — ff.text against hand computations on tiny inputs: alphabet checks, one-hot and
-- back, the Witten-Bell n-gram probabilities of a tiny corpus (worked out by hand below) and their
-- sum over the alphabet, bits per character, n-gram sampling frequencies, unigram / bigram
-- frequencies, Jensen-Shannon divergence, the word-vocabulary fraction and the dequantisation.
local T  = require "ff_test"
local ff = require "fisherflow"
local text = ff.text

local LN2 = math.log(2)

T.test("alphabet: codes, one-hot round trip, bad bytes named with their offset", function()
  T.eq(#text.ALPHABET, 27, "alphabet size")
  local ids = text.codes(" az")
  T.eq(ids[0], 0, "space"); T.eq(ids[1], 1, "a"); T.eq(ids[2], 26, "z")
  local x = text.onehot("the cat sat", { 1, 5 }, 3)
  T.eq(table.concat(x:shape(), ","), "2,3,27", "shape")
  T.eq(x:sum(), 6, "one 1 per position")
  T.eq(x:get(1, 1, 21), 1, "t is code 20 (1-based slot 21)")
  local codes = ff.zeros(2, 3)
  for r = 1, 2 do for j = 1, 3 do
    for c = 1, 27 do if x:get(r, j, c) == 1 then codes:set(r, j, c - 1) end end
  end end
  local s = text.strings(codes)
  T.eq(s[1], "the", "row 1"); T.eq(s[2], "cat", "row 2")
  T.raises(function() text.check("ab\ncd", "f.txt") end, "f.txt: byte offset 2: 0x0a is not in text8's alphabet")
  T.raises(function() text.check("abC", "g") end, "g: byte offset 2: 0x43")
  T.raises(function() text.onehot("abc", { 2 }, 3) end, "window 1 (2..4) is outside the text (1..3)")
  local path = T.tmp("bad.txt")
  local f = io.open(path, "wb"); f:write("hello World"); f:close()
  T.raises(function() text.read(path) end, path .. ": byte offset 6: 0x57")
  T.eq(text.chunks("abcdefg", 3, 10)[2], "def", "chunks in order"); T.eq(#text.chunks("abcdefg", 3, 10), 2, "whole chunks only")
end)

-- Corpus "ab ab" (codes a = 1, b = 2, space = 0). Order 1: counts a 2, b 2, space 1; N = 5, T = 3:
--   P1(c) = (C(c) + 3/27) / 8: P1(a) = P1(b) = 19/72, P1(space) = 10/72, P1(other) = 1/72.
-- Order 2: history a -> {b: 2} (C 2, T 1); history b -> {space: 1} (the final b has no successor);
--   P2(b|a) = (2 + 19/72) / 3 = 163/216, P2(a|a) = (19/72) / 3 = 19/216,
--   P2(space|b) = (1 + 10/72) / 2 = 41/72; an unseen history (z) falls back to P1.
-- Order 3: history "ab" -> {space: 1}: P3(space|ab) = (1 + 41/72) / 2 = 113/144.
T.test("Witten-Bell n-gram probabilities of a tiny corpus by hand", function()
  local m1, m2, m3 = text.ngram("ab ab", 1), text.ngram("ab ab", 2), text.ngram("ab ab", 3)
  T.near(m1:prob("", "a"), 19 / 72, 1e-15, "P1(a)")
  T.near(m1:prob("", " "), 10 / 72, 1e-15, "P1(space)")
  T.near(m1:prob("zz", "q"), 1 / 72, 1e-15, "P1(q), history ignored at order 1")
  T.near(m2:prob("a", "b"), 163 / 216, 1e-15, "P2(b|a)")
  T.near(m2:prob("a", "a"), 19 / 216, 1e-15, "P2(a|a)")
  T.near(m2:prob("b", " "), 41 / 72, 1e-15, "P2(space|b)")
  T.near(m2:prob("z", "a"), 19 / 72, 1e-15, "unseen history -> P1")
  T.near(m2:prob("", "a"), 19 / 72, 1e-15, "empty history -> P1")
  T.near(m3:prob("ab", " "), 113 / 144, 1e-15, "P3(space|ab)")
  T.near(m3:prob("a", "b"), 163 / 216, 1e-15, "a one-character history stops at order 2")
  T.near(m3:prob("xab", " "), 113 / 144, 1e-15, "only the last order-1 characters count")
  T.raises(function() text.ngram("ab", 6) end, "order must be an integer in 1..5")
end)

T.test("n-gram probabilities sum to 1 over the alphabet for every history tried", function()
  local corpus = "the cat sat on the mat and the dog sat on the log "
  for order = 1, 5 do
    local m = text.ngram(corpus, order)
    for _, h in ipairs({ "", "t", "th", "the", "the ", " sat", "zzzz", "qthe", "at o" }) do
      local s = 0
      for c = 1, 27 do s = s + m:prob(h, text.ALPHABET:sub(c, c)) end
      T.near(s, 1, 1e-12, ("order %d history '%s'"):format(order, h))
    end
  end
end)

T.test("bits per character: hand values, chunks restart the history", function()
  local m = text.ngram("ab ab", 2)
  local want = -(math.log(19 / 72) + math.log(163 / 216)) / (2 * LN2)
  T.near((m:bits("ab")), want, 1e-12, "bits('ab')")
  T.near((m:bits("abab", 2)), want, 1e-12, "two chunks of 'ab' score as 'ab' each")
  local stream = -(math.log(19 / 72) + math.log(163 / 216) + math.log(19 / 144) + math.log(163 / 216)) / (4 * LN2)
  local b, n = m:bits("abab")
  T.near(b, stream, 1e-12, "one stream: a after b uses P2(a|b) = (19/72) / 2")
  T.eq(n, 4, "characters counted")
end)

T.test("n-gram samples follow the model (first symbol ~ P1, second ~ P2 given the first)", function()
  local m, rng = text.ngram("ab ab", 2), ff.rng(5)
  local n = 20000
  local s = m:sample(rng, n, 2)
  local a, ab = 0, 0
  for _, w in ipairs(s) do
    if w:sub(1, 1) == "a" then a = a + 1; if w:sub(2, 2) == "b" then ab = ab + 1 end end
  end
  local p = 19 / 72
  T.ok(math.abs(a / n - p) < 4 * math.sqrt(p * (1 - p) / n), "P(first = a) %.4f vs %.4f", a / n, p)
  local q = 163 / 216
  T.ok(math.abs(ab / a - q) < 4 * math.sqrt(q * (1 - q) / a), "P(b | a) %.4f vs %.4f", ab / a, q)
end)

T.test("unigram and bigram frequencies, Jensen-Shannon divergence by hand", function()
  local u = text.unigram({ "ab", "b " })
  T.near(u[2], 1 / 4, 0, "a"); T.near(u[3], 2 / 4, 0, "b"); T.near(u[1], 1 / 4, 0, "space")
  local b = text.bigram({ "ab", "b " })            -- pairs (a,b) and (b,space), none across strings
  T.near(b[1 * 27 + 2 + 1], 1 / 2, 0, "(a, b)"); T.near(b[2 * 27 + 0 + 1], 1 / 2, 0, "(b, space)")
  local s = 0; for i = 1, 27 * 27 do s = s + b[i] end
  T.near(s, 1, 1e-15, "bigram sums to 1")
  T.near(text.jsd(u, u), 0, 0, "identical distributions")
  T.near(text.jsd({ 1, 0 }, { 0, 1 }), 1, 1e-15, "disjoint supports: 1 bit")
  -- p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4): KL(p||m) = log 4/3, KL(q||m) = (1/2) log 4/3
  T.near(text.jsd({ 1, 0 }, { 0.5, 0.5 }), 0.75 * math.log(4 / 3) / LN2, 1e-15, "hand value")
  T.near(text.jsd({ 0.5, 0.5 }, { 1, 0 }), 0.75 * math.log(4 / 3) / LN2, 1e-15, "symmetric")
  T.raises(function() text.jsd({ 1 }, { 0.5, 0.5 }) end, "1 entries against 2")
end)

T.test("word-vocabulary fraction leaves out the cut words at both ends", function()
  local v = text.vocab("the cat sat  on the mat")
  T.ok(v.cat and v.mat and v.on and not v[""], "vocab words")
  local f, found, total = text.word_fraction({ "xx cat dog zzq yy", "ab on cd" }, text.vocab("cat dog on"))
  T.eq(total, 4, "middle words: cat dog zzq, on"); T.eq(found, 3, "found"); T.near(f, 3 / 4, 0, "fraction")
  T.ok(text.word_fraction({ "a b" }, v) ~= text.word_fraction({ "a b" }, v), "no middle words: NaN")
end)

T.test("ff.dequantise on text: points in the right cell, log q by hand (Dirichlet(1)), mean of u", function()
  local x = text.onehot("hello world", { 1 }, 11)
  local lam, n = 0.3, 11
  local p, logq = ff.dequantise(x, lam, ff.rng(9))
  T.near(ff.util.lgamma(27), math.log(403291461126605635584000000), 1e-12, "log 26!")
  T.near(logq[1], n * (math.log(403291461126605635584000000) - 26 * math.log(lam)), 1e-9, "log q")
  local mean = 0
  for j = 1, n do
    local s, best, arg = 0, -1, 0
    for c = 1, 27 do
      local v = p:get(1, j, c); s = s + v
      if v > best then best, arg = v, c end
      if x:get(1, j, c) == 0 then mean = mean + v / lam end
    end
    T.near(s, 1, 1e-6, "sums to 1"); T.eq(x:get(1, j, arg), 1, "argmax is the text's symbol")
    T.ok(best >= 1 - lam - 1e-7, "x_c >= 1 - lam")
  end
  -- one coordinate of Dirichlet(1, ..., 1) on 27 symbols has mean 1/27 (26 * 11 coordinates)
  local big = text.onehot(("ab"):rep(2000), { 1 }, 4000)
  local q = ff.dequantise(big, 0.5, ff.rng(2))
  local off = 0
  for j = 1, 4000 do off = off + q:get(1, j, 27) / 0.5 end       -- 'z' is never the symbol
  T.near(off / 4000, 1 / 27, 4 * math.sqrt((26 / (27 * 27 * 28)) / 4000), "E u_j = 1/27")
end)
