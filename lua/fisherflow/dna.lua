-- dna.lua — ff.dna: real-DNA data preparation and the promoter metrics (issue 20), in LuaJIT with
-- FFI arrays (k-mer counting and PWM scanning over thousands of 1,024 bp sequences take well under
-- a second each; no C kernel is needed).
--
-- A sequence set is { n =, L =, codes = uint8_t[n * L] } with A, C, G, T = 0, 1, 2, 3, row-major.
-- Made from strings (dna.set), from one-hot or simplex tensors [n, L, 4] (dna.from_probs: argmax
-- per position, the first maximum on ties) or by the Markov baseline (dna.markov_sample); dna.onehot
-- turns a set back into a tensor.
--
-- Preparation (scripts/data_dna.lua calls these): read_fasta, dm3_promoters, parse_tss,
-- human_windows, revcomp, write_fasta, read_jaspar, consensus_counts.
-- Metrics: kmer_spectrum + jsd, gc / cpg_oe + wasserstein1, pwm + motif_profile + l1,
-- markov_fit / markov_sample / markov_bits, classifier (features, mlp_*) + frechet.
local core = require "fisherflow.core"
local tensor = require "fisherflow.tensor"
local ffi, raise = core.ffi, core.raise

local M = {}
local floor, log, sqrt, exp, abs = math.floor, math.log, math.sqrt, math.exp, math.abs
local LN2 = log(2)

-- ---- sequences ------------------------------------------------------------------------------
local code_of = ffi.new("int8_t[256]")
for i = 0, 255 do code_of[i] = -1 end
for i, ch in ipairs { "A", "C", "G", "T" } do
  code_of[ch:byte()] = i - 1; code_of[ch:lower():byte()] = i - 1
end
M.ALPHABET = "ACGT"

local function new_set(n, L)
  return { n = n, L = L, codes = ffi.new("uint8_t[?]", math.max(1, n * L)) }
end
M.new_set = new_set

-- dna.set({ "ACGT...", ... }) -> set; every string the same length, only ACGT (either case).
function M.set(strings)
  if type(strings) ~= "table" or #strings == 0 then raise("dna.set: a non-empty list of strings is required") end
  local L = #strings[1]
  local s = new_set(#strings, L)
  for i, str in ipairs(strings) do
    if #str ~= L then raise(("dna.set: sequence %d has length %d, expected %d"):format(i, #str, L)) end
    local base = (i - 1) * L
    for j = 1, L do
      local c = code_of[str:byte(j)]
      if c < 0 then raise(("dna.set: sequence %d, position %d: %q is not A, C, G or T"):format(i, j, str:sub(j, j))) end
      s.codes[base + j - 1] = c
    end
  end
  return s
end

-- dna.strings(set) -> list of strings
function M.strings(s)
  local out, buf = {}, ffi.new("uint8_t[?]", s.L)
  local letters = ffi.new("uint8_t[4]", { 65, 67, 71, 84 })
  for i = 0, s.n - 1 do
    for j = 0, s.L - 1 do buf[j] = letters[s.codes[i * s.L + j]] end
    out[i + 1] = ffi.string(buf, s.L)
  end
  return out
end

-- dna.from_probs(t [n, L, 4]) -> set (argmax per position; one-hot data or sampled simplex points)
function M.from_probs(t)
  local sh = t:shape()
  if #sh ~= 3 or sh[3] ~= 4 then raise("dna.from_probs: expected a tensor [n, L, 4], got [" .. table.concat(sh, ", ") .. "]") end
  local n, L = sh[1], sh[2]
  local src = t:copy()                           -- contiguous
  local d, s = src.data, new_set(n, L)
  for r = 0, n * L - 1 do
    local b, best = 0, d[4 * r]
    for c = 1, 3 do if d[4 * r + c] > best then b, best = c, d[4 * r + c] end end
    s.codes[r] = b
  end
  return s
end

-- dna.onehot(set) -> tensor [n, L, 4], the one-hot rows (the data a flow trains on, flow:bits' input)
function M.onehot(s)
  local t = tensor.zeros(s.n, s.L, 4)
  for r = 0, s.n * s.L - 1 do t.data[4 * r + s.codes[r]] = 1 end
  return t
end

-- dna.subset(set, first, count) -> a copy of rows first .. first + count - 1 (1-based)
function M.subset(s, first, count)
  count = math.min(count, s.n - first + 1)
  local out = new_set(count, s.L)
  ffi.copy(out.codes, s.codes + (first - 1) * s.L, count * s.L)
  return out
end

local comp = { A = "T", C = "G", G = "C", T = "A", N = "N" }
-- dna.revcomp("ACGTN") -> "NACGT" (upper-case input)
function M.revcomp(str)
  return (str:reverse():gsub(".", function(ch)
    return comp[ch] or raise(("dna.revcomp: %q is not A, C, G, T or N"):format(ch))
  end))
end

-- ---- files ----------------------------------------------------------------------------------
-- Lines of a text file; a path ending in .gz is read through gzip -dc.
local function lines_of(path)
  if path:match("%.gz$") then
    local f = io.open(path, "rb")
    if not f then raise("dna: cannot open " .. path) end
    f:close()
    local p = io.popen("gzip -dc '" .. path:gsub("'", "'\\''") .. "'", "r")
    local text = p:read("*a")
    local ok = p:close()
    if ok ~= true and ok ~= 0 then raise("dna: gzip -dc failed on " .. path) end
    return text:gmatch("([^\n]*)\n?"), text
  end
  local f, err = io.open(path, "rb")
  if not f then raise("dna: cannot open " .. tostring(err)) end
  local text = f:read("*a"); f:close()
  return text:gmatch("([^\n]*)\n?"), text
end

-- dna.read_fasta(path) -> { { name = header without '>', seq = upper-case string, line = header line }, ... }
-- A raw genome or promoter file, N and lower case allowed (the training files go through
-- ff.data.sequences instead). Sequence before the first header is refused by file and line.
function M.read_fasta(path)
  local recs, cur, parts, lineno = {}, nil, nil, 0
  local function close()
    if cur then cur.seq = table.concat(parts):upper(); recs[#recs + 1] = cur end
  end
  for line in lines_of(path) do
    lineno = lineno + 1
    line = line:gsub("\r$", "")
    if line:sub(1, 1) == ">" then
      close(); cur, parts = { name = line:sub(2), line = lineno }, {}
    elseif line ~= "" then
      if not cur then raise(("dna.read_fasta: %s:%d: sequence before the first '>' header"):format(path, lineno)) end
      if line:find("[^ACGTNacgtnRYKMSWBDHVrykmswbdhv]") then
        raise(("dna.read_fasta: %s:%d: unexpected character %q"):format(path, lineno,
              line:match("[^ACGTNacgtnRYKMSWBDHVrykmswbdhv]")))
      end
      parts[#parts + 1] = line
    end
  end
  close()
  return recs
end

-- dna.write_fasta(path, names, seqs): 80 bases a line, written atomically.
function M.write_fasta(path, names, seqs)
  local out = {}
  for i, s in ipairs(seqs) do
    out[#out + 1] = ">" .. names[i]
    for j = 1, #s, 80 do out[#out + 1] = s:sub(j, j + 79) end
  end
  require("fisherflow.util").write_atomic(path, table.concat(out, "\n") .. "\n")
end

-- ---- data preparation -----------------------------------------------------------------------
-- The dm3 upstream records are given in transcript orientation and end at the TSS, so the
-- TSS-proximal L bases are the last L. The chromosome is the word before ':' after the space
-- ("NM_078863_up_2000_chr2L_16764737_f chr2L:16764737-16766736").
-- dna.dm3_promoters(records, { L = 1024, test = { chrX = true, chrXHet = true }, valid = { chr4 = true } })
--   -> { train = { names, seqs }, valid = ..., test = ..., counts = { records, short, with_n, duplicates, train, valid, test } }
-- Records shorter than L are dropped (counted), so are windows with N; duplicates keep the first.
function M.dm3_promoters(recs, o)
  o = o or {}
  local L = o.L or 1024
  local test = o.test or { chrX = true, chrXHet = true }
  local valid = o.valid or { chr4 = true }
  local out = { train = { names = {}, seqs = {} }, valid = { names = {}, seqs = {} }, test = { names = {}, seqs = {} },
                counts = { records = #recs, short = 0, with_n = 0, duplicates = 0 } }
  local seen = {}
  for _, r in ipairs(recs) do
    local chr = r.name:match("%s(chr[%w_]+):")
    if not chr then raise(("dna.dm3_promoters: header at line %d has no 'chrN:' location: %q"):format(r.line or 0, r.name)) end
    if #r.seq < L then out.counts.short = out.counts.short + 1
    else
      local w = r.seq:sub(-L)
      if w:find("[^ACGT]") then out.counts.with_n = out.counts.with_n + 1
      elseif seen[w] then out.counts.duplicates = out.counts.duplicates + 1
      else
        seen[w] = true
        local split = test[chr] and out.test or valid[chr] and out.valid or out.train
        split.names[#split.names + 1] = r.name:match("^(%S+)") .. " " .. chr
        split.seqs[#split.seqs + 1] = w
      end
    end
  end
  for _, k in ipairs { "train", "valid", "test" } do out.counts[k] = #out[k].seqs end
  return out
end

-- dna.parse_tss(path) -> { { chr =, pos = (0-based), strand = "+"|"-" }, ... } from "chr<TAB>pos<TAB>strand" lines.
function M.parse_tss(path)
  local out, lineno = {}, 0
  for line in lines_of(path) do
    lineno = lineno + 1
    if line ~= "" then
      local chr, pos, strand = line:match("^(%S+)%s+(%d+)%s+([%+%-])%s*$")
      if not chr then raise(("dna.parse_tss: %s:%d: expected 'chrom<TAB>position<TAB>+|-', got %q"):format(path, lineno, line)) end
      out[#out + 1] = { chr = chr, pos = tonumber(pos), strand = strand }
    end
  end
  return out
end

-- dna.human_windows(genome, tss, { L = 1024 }) -> { names, seqs, counts = { tss, outside, with_n, duplicates, kept } }
-- genome: { chrName = upper-case sequence }. The window is the genomic [pos - L/2, pos + L/2)
-- (0-based), reverse-complemented on the minus strand, so the TSS sits at the centre in transcript
-- orientation (index L/2 + 1 on +, L/2 on -, 1-based). TSSs on chromosomes not in `genome` are
-- ignored (not counted); windows past either end, with N, or seen before are dropped.
function M.human_windows(genome, tss, o)
  o = o or {}
  local L = o.L or 1024
  local h = floor(L / 2)
  local out = { names = {}, seqs = {}, counts = { tss = 0, outside = 0, with_n = 0, duplicates = 0 } }
  local seen = {}
  for _, t in ipairs(tss) do
    local g = genome[t.chr]
    if g then
      out.counts.tss = out.counts.tss + 1
      local a = t.pos - h                                   -- 0-based start
      if a < 0 or a + L > #g then out.counts.outside = out.counts.outside + 1
      else
        local w = g:sub(a + 1, a + L)
        if t.strand == "-" then w = M.revcomp(w) end
        if w:find("[^ACGT]") then out.counts.with_n = out.counts.with_n + 1
        elseif seen[w] then out.counts.duplicates = out.counts.duplicates + 1
        else
          seen[w] = true
          out.names[#out.names + 1] = ("%s:%d:%s"):format(t.chr, t.pos, t.strand)
          out.seqs[#out.seqs + 1] = w
        end
      end
    end
  end
  out.counts.kept = #out.seqs
  return out
end

-- dna.read_jaspar(path) -> { { id =, name =, counts = { A = {..}, C = {..}, G = {..}, T = {..} } }, ... }
-- Both JASPAR layouts: "A [ 1 2 3 ]" rows, and four bare rows of numbers in A, C, G, T order.
function M.read_jaspar(path)
  local motifs, cur, lineno = {}, nil, 0
  local order = { "A", "C", "G", "T" }
  local function finish()
    if not cur then return end
    local w = #(cur.counts.A or {})
    for _, b in ipairs(order) do
      if not cur.counts[b] or #cur.counts[b] ~= w or w == 0 then
        raise(("dna.read_jaspar: %s:%d: motif %s needs four rows A, C, G, T of equal, non-zero length"):format(path, cur.line, cur.id))
      end
    end
    motifs[#motifs + 1] = cur
  end
  for line in lines_of(path) do
    lineno = lineno + 1
    line = line:gsub("\r$", "")
    if line:sub(1, 1) == ">" then
      finish()
      local id, name = line:match("^>(%S+)%s*(.*)$")
      cur = { id = id, name = name ~= "" and name or id, counts = {}, line = lineno, rows = 0 }
    elseif line:find("%S") then
      if not cur then raise(("dna.read_jaspar: %s:%d: counts before the first '>' header"):format(path, lineno)) end
      local letter, rest = line:match("^%s*([ACGT])%s*%[(.*)%]%s*$")
      if not letter then
        cur.rows = cur.rows + 1
        letter, rest = order[cur.rows], line
        if not letter then raise(("dna.read_jaspar: %s:%d: a fifth row of counts in motif %s"):format(path, lineno, cur.id)) end
      end
      local row = {}
      for num in rest:gmatch("%S+") do
        local v = tonumber(num)
        if not v or v < 0 then raise(("dna.read_jaspar: %s:%d: %q is not a count"):format(path, lineno, num)) end
        row[#row + 1] = v
      end
      cur.counts[letter] = row
    end
  end
  finish()
  return motifs
end

-- dna.consensus_counts("TCAGTY", n) -> counts from an IUPAC consensus: n per position, split evenly
-- over the letters a code allows (Y = C/T, R = A/G, W = A/T, S = C/G, K = G/T, M = A/C, N = any).
local iupac = { A = "A", C = "C", G = "G", T = "T", Y = "CT", R = "AG", W = "AT", S = "CG", K = "GT", M = "AC", N = "ACGT" }
function M.consensus_counts(cons, n)
  n = n or 20
  local counts = { A = {}, C = {}, G = {}, T = {} }
  for i = 1, #cons do
    local allowed = iupac[cons:sub(i, i)] or raise(("dna.consensus_counts: %q is not an IUPAC code"):format(cons:sub(i, i)))
    for _, b in ipairs { "A", "C", "G", "T" } do
      counts[b][i] = allowed:find(b, 1, true) and n / #allowed or 0
    end
  end
  return counts
end

-- dna.pwm(counts, { pseudo = 1 }) -> { w =, lo = double[4 * w] (log2-odds against 0.25, [pos][base]),
-- min =, max = } with probabilities (count + pseudo/4) / (column total + pseudo).
function M.pwm(counts, o)
  local ps = (o and o.pseudo) or 1
  local w = #counts.A
  local p = { w = w, lo = ffi.new("double[?]", 4 * w), min = 0, max = 0 }
  for i = 1, w do
    local tot = counts.A[i] + counts.C[i] + counts.G[i] + counts.T[i]
    local mn, mx = math.huge, -math.huge
    for b, letter in ipairs { "A", "C", "G", "T" } do
      local v = log((counts[letter][i] + ps / 4) / (tot + ps) / 0.25) / LN2
      p.lo[4 * (i - 1) + b - 1] = v
      mn, mx = math.min(mn, v), math.max(mx, v)
    end
    p.min, p.max = p.min + mn, p.max + mx
  end
  return p
end

-- dna.scan(set, pwm, rel) -> list of { seq = 1-based row, pos = 1-based start, score = } for every
-- window on the given strand whose relative score (score - min) / (max - min) is >= rel.
-- dna.motif_profile(set, pwm, { rel = 0.85, bins = 32 }) -> double[bins] (0-based), hits per sequence
-- whose start falls in each of `bins` equal bins of the L - w + 1 start positions.
local function scan_each(s, p, rel, fn)
  local cut = p.min + rel * (p.max - p.min) - 1e-9
  local w, L, lo, codes = p.w, s.L, p.lo, s.codes
  for i = 0, s.n - 1 do
    local base = i * L
    for j = 0, L - w do
      local sc = 0
      for q = 0, w - 1 do sc = sc + lo[4 * q + codes[base + j + q]] end
      if sc >= cut then fn(i, j, sc) end
    end
  end
end
function M.scan(s, p, rel)
  local hits = {}
  scan_each(s, p, rel or 0.85, function(i, j, sc) hits[#hits + 1] = { seq = i + 1, pos = j + 1, score = sc } end)
  return hits
end
function M.motif_profile(s, p, o)
  o = o or {}
  local bins = o.bins or 32
  local span = s.L - p.w + 1
  local prof = ffi.new("double[?]", bins)
  scan_each(s, p, o.rel or 0.85, function(_, j) local b = floor(j * bins / span); prof[b] = prof[b] + 1 end)
  for b = 0, bins - 1 do prof[b] = prof[b] / s.n end
  return prof
end

-- dna.l1(a, b, n) = sum |a_i - b_i| over n doubles (0-based arrays)
function M.l1(a, b, n)
  local d = 0
  for i = 0, n - 1 do d = d + abs(a[i] - b[i]) end
  return d
end

-- ---- k-mer spectra --------------------------------------------------------------------------
-- dna.kmer_spectrum(set, k) -> double[4^k] frequencies of the overlapping k-mers of every sequence
-- (index = base-4 number, first base most significant), and the number counted.
function M.kmer_spectrum(s, k)
  local m = 4 ^ k
  local f = ffi.new("double[?]", m)
  local mask, total = m - 1, 0
  for i = 0, s.n - 1 do
    local base, idx = i * s.L, 0
    for j = 0, s.L - 1 do
      idx = bit.band(idx * 4 + s.codes[base + j], mask)
      if j >= k - 1 then f[idx] = f[idx] + 1 end
    end
    total = total + math.max(0, s.L - k + 1)
  end
  for i = 0, m - 1 do f[i] = f[i] / total end
  return f, total
end

-- dna.jsd(p, q, m) -> Jensen-Shannon divergence in bits (0 .. 1) of two distributions over m cells.
function M.jsd(p, q, m)
  local d = 0
  for i = 0, m - 1 do
    local a, b = p[i], q[i]
    local mid = 0.5 * (a + b)
    if a > 0 then d = d + 0.5 * a * log(a / mid) end
    if b > 0 then d = d + 0.5 * b * log(b / mid) end
  end
  return d / LN2
end

-- ---- composition ----------------------------------------------------------------------------
-- dna.gc(set) -> list of GC fractions; dna.cpg_oe(set) -> list of CpG observed/expected,
-- #CG * L / (#C * #G) per sequence (0 when the sequence has no C or no G).
function M.gc(s)
  local out = {}
  for i = 0, s.n - 1 do
    local c = 0
    for j = i * s.L, (i + 1) * s.L - 1 do local x = s.codes[j]; if x == 1 or x == 2 then c = c + 1 end end
    out[i + 1] = c / s.L
  end
  return out
end
function M.cpg_oe(s)
  local out = {}
  for i = 0, s.n - 1 do
    local nc, ng, ncg, prev = 0, 0, 0, -1
    for j = i * s.L, (i + 1) * s.L - 1 do
      local x = s.codes[j]
      if x == 1 then nc = nc + 1 elseif x == 2 then ng = ng + 1; if prev == 1 then ncg = ncg + 1 end end
      prev = x
    end
    out[i + 1] = (nc > 0 and ng > 0) and ncg * s.L / (nc * ng) or 0
  end
  return out
end

-- dna.wasserstein1(a, b) -> W1 between the empirical distributions of two lists of numbers
-- (the integral of |F_a - F_b|; the sizes may differ).
function M.wasserstein1(a, b)
  if #a == 0 or #b == 0 then raise("dna.wasserstein1: both samples must be non-empty") end
  local x, y = {}, {}
  for i, v in ipairs(a) do x[i] = v end
  for i, v in ipairs(b) do y[i] = v end
  table.sort(x); table.sort(y)
  local i, j, na, nb, d = 1, 1, #x, #y, 0
  local prev = math.min(x[1], y[1])
  while i <= na or j <= nb do
    local v
    if j > nb or (i <= na and x[i] <= y[j]) then v = x[i] else v = y[j] end
    d = d + abs((i - 1) / na - (j - 1) / nb) * (v - prev)
    prev = v
    while i <= na and x[i] == v do i = i + 1 end
    while j <= nb and y[j] == v do j = j + 1 end
  end
  return d
end

-- ---- order-m Markov chain -------------------------------------------------------------------
-- dna.markov_fit(set, m) -> { m =, trans = double[4^(m+1)] P(next | previous m), start = double[4^m] }
-- from counts + 1 (Laplace); start = the distribution of the first m-mer of a sequence.
function M.markov_fit(s, m)
  local nc = 4 ^ m
  local cnt, st = ffi.new("double[?]", nc * 4), ffi.new("double[?]", nc)
  for i = 0, nc * 4 - 1 do cnt[i] = 1 end
  for i = 0, nc - 1 do st[i] = 1 end
  local mask = nc * 4 - 1
  for i = 0, s.n - 1 do
    local base, idx = i * s.L, 0
    for j = 0, s.L - 1 do
      idx = bit.band(idx * 4 + s.codes[base + j], mask)
      if j == m - 1 then st[idx % nc] = st[idx % nc] + 1 end
      if j >= m then cnt[idx] = cnt[idx] + 1 end
    end
  end
  local stot = 0
  for c = 0, nc - 1 do
    stot = stot + st[c]
    local t = cnt[4 * c] + cnt[4 * c + 1] + cnt[4 * c + 2] + cnt[4 * c + 3]
    for b = 0, 3 do cnt[4 * c + b] = cnt[4 * c + b] / t end
  end
  for c = 0, nc - 1 do st[c] = st[c] / stot end
  return { m = m, trans = cnt, start = st }
end

-- dna.markov_sample(model, n, L, rng) -> set (rng: ff.rng(seed))
function M.markov_sample(mod, n, L, rng)
  local m, nc = mod.m, 4 ^ mod.m
  local s = new_set(n, L)
  for i = 0, n - 1 do
    local u, c, acc = rng:uniform(), 0, mod.start[0]
    while u >= acc and c < nc - 1 do c = c + 1; acc = acc + mod.start[c] end
    for q = 0, m - 1 do s.codes[i * L + q] = floor(c / 4 ^ (m - 1 - q)) % 4 end
    local ctx = c
    for j = m, L - 1 do
      u = rng:uniform()
      local b, a = 0, mod.trans[4 * ctx]
      while u >= a and b < 3 do b = b + 1; a = a + mod.trans[4 * ctx + b] end
      s.codes[i * L + j] = b
      ctx = (ctx * 4 + b) % nc
    end
  end
  return s
end

-- dna.markov_bits(model, set) -> mean -log2 P(sequence) / L: bits per base under the chain.
function M.markov_bits(mod, s)
  local m, nc, tot = mod.m, 4 ^ mod.m, 0
  for i = 0, s.n - 1 do
    local base, ctx = i * s.L, 0
    for q = 0, m - 1 do ctx = ctx * 4 + s.codes[base + q] end
    tot = tot - log(mod.start[ctx])
    for j = m, s.L - 1 do
      local b = s.codes[base + j]
      tot = tot - log(mod.trans[4 * ctx + b])
      ctx = (ctx * 4 + b) % nc
    end
  end
  return tot / (s.n * s.L * LN2)
end

-- ---- classifier embeddings and the Fréchet distance -----------------------------------------
-- dna.features(set, { k = 3, bins = 4 }) -> { n =, dim =, x = double[n * dim] }: per sequence, the
-- k-mer frequencies of each of `bins` equal segments (positional composition), centred at 1/4^k.
function M.features(s, o)
  o = o or {}
  local k, bins = o.k or 3, o.bins or 4
  local m = 4 ^ k
  local dim = m * bins
  local x = ffi.new("double[?]", s.n * dim)
  local seg = s.L / bins
  for i = 0, s.n - 1 do
    local base, idx, row = i * s.L, 0, i * dim
    for j = 0, s.L - 1 do
      idx = (idx * 4 + s.codes[base + j]) % m
      if j >= k - 1 then
        local b = math.min(bins - 1, floor((j - k + 1) / seg))
        x[row + b * m + idx] = x[row + b * m + idx] + 1
      end
    end
    for b = 0, bins - 1 do
      local tot = 0
      for c = 0, m - 1 do tot = tot + x[row + b * m + c] end
      for c = 0, m - 1 do x[row + b * m + c] = (tot > 0 and x[row + b * m + c] / tot or 0) * m - 1 end
    end
  end
  return { n = s.n, dim = dim, x = x }
end

-- A one-hidden-layer network: h = tanh(W1 x + b1) (the embedding), logit = w2 . h + b2.
-- dna.mlp_new(dim, hidden, rng) -> net; dna.mlp_loss(net, X, y, rows, grad) -> mean logistic loss over
-- rows (1-based row numbers; labels y: Lua list of 0/1), accumulating gradients into grad (optional).
function M.mlp_new(dim, hidden, rng)
  local np = hidden * dim + hidden + hidden + 1
  local net = { dim = dim, hidden = hidden, np = np, w = ffi.new("double[?]", np) }
  local sc = 1 / sqrt(dim)
  for i = 0, hidden * dim - 1 do net.w[i] = (2 * rng:uniform() - 1) * sc end
  for i = hidden * dim + hidden, hidden * dim + 2 * hidden - 1 do net.w[i] = (2 * rng:uniform() - 1) / sqrt(hidden) end
  return net
end

local function mlp_forward(net, X, r, h)
  local d, H, w = net.dim, net.hidden, net.w
  local xo = (r - 1) * d
  for u = 0, H - 1 do
    local a, wo = w[H * d + u], u * d
    for j = 0, d - 1 do a = a + w[wo + j] * X.x[xo + j] end
    h[u] = math.tanh(a)
  end
  local z = w[H * d + 2 * H]
  for u = 0, H - 1 do z = z + w[H * d + H + u] * h[u] end
  return z
end

function M.mlp_loss(net, X, y, rows, grad)
  local d, H, w = net.dim, net.hidden, net.w
  local h = ffi.new("double[?]", H)
  local loss = 0
  for _, r in ipairs(rows) do
    local z = mlp_forward(net, X, r, h)
    local t = y[r]
    loss = loss + (z > 0 and (z + log(1 + exp(-z))) or log(1 + exp(z))) - t * z   -- log(1+e^z) - t z
    if grad then
      local dz = (1 / (1 + exp(-z)) - t) / #rows
      grad[H * d + 2 * H] = grad[H * d + 2 * H] + dz
      local xo = (r - 1) * d
      for u = 0, H - 1 do
        grad[H * d + H + u] = grad[H * d + H + u] + dz * h[u]
        local da = dz * w[H * d + H + u] * (1 - h[u] * h[u])
        grad[H * d + u] = grad[H * d + u] + da
        local wo = u * d
        for j = 0, d - 1 do grad[wo + j] = grad[wo + j] + da * X.x[xo + j] end
      end
    end
  end
  return loss / #rows
end

-- dna.mlp_train(net, X, y, { epochs = 20, batch = 64, lr = 1e-2, rng = }) -> final mean loss over
-- all rows. Adam on minibatches drawn without replacement each epoch.
function M.mlp_train(net, X, y, o)
  local epochs, batch, lr, rng = o.epochs or 20, o.batch or 64, o.lr or 1e-2, o.rng
  local np = net.np
  local g, m1, m2 = ffi.new("double[?]", np), ffi.new("double[?]", np), ffi.new("double[?]", np)
  local order, t = {}, 0
  for i = 1, X.n do order[i] = i end
  for _ = 1, epochs do
    for i = X.n, 2, -1 do local j = rng:int(i); order[i], order[j] = order[j], order[i] end
    for first = 1, X.n, batch do
      local rows = {}
      for i = first, math.min(X.n, first + batch - 1) do rows[#rows + 1] = order[i] end
      ffi.fill(g, np * 8)
      M.mlp_loss(net, X, y, rows, g)
      t = t + 1
      local c1, c2 = 1 - 0.9 ^ t, 1 - 0.999 ^ t
      for i = 0, np - 1 do
        m1[i] = 0.9 * m1[i] + 0.1 * g[i]
        m2[i] = 0.999 * m2[i] + 0.001 * g[i] * g[i]
        net.w[i] = net.w[i] - lr * (m1[i] / c1) / (sqrt(m2[i] / c2) + 1e-8)
      end
    end
  end
  local all = {}
  for i = 1, X.n do all[i] = i end
  return M.mlp_loss(net, X, y, all)
end

-- dna.mlp_accuracy(net, X, y) -> fraction of rows with (logit > 0) == y
function M.mlp_accuracy(net, X, y)
  local h, ok = ffi.new("double[?]", net.hidden), 0
  for r = 1, X.n do
    local z = mlp_forward(net, X, r, h)
    if (z > 0 and 1 or 0) == y[r] then ok = ok + 1 end
  end
  return ok / X.n
end

-- dna.embed(net, X) -> { n =, dim = hidden, x = double[n * hidden] } (the hidden activations)
function M.embed(net, X)
  local H = net.hidden
  local e = { n = X.n, dim = H, x = ffi.new("double[?]", X.n * H) }
  local h = ffi.new("double[?]", H)
  for r = 1, X.n do
    mlp_forward(net, X, r, h)
    for u = 0, H - 1 do e.x[(r - 1) * H + u] = h[u] end
  end
  return e
end

-- Symmetric eigen-decomposition by cyclic Jacobi: A (Lua table of rows, 1-based, n x n) ->
-- eigenvalues (list), eigenvectors V (columns, table of rows).
local function jacobi(A)
  local n = #A
  local a, v = {}, {}
  for i = 1, n do
    a[i], v[i] = {}, {}
    for j = 1, n do a[i][j] = A[i][j]; v[i][j] = (i == j) and 1 or 0 end
  end
  for _ = 1, 100 do
    local off = 0
    for i = 1, n do for j = i + 1, n do off = off + a[i][j] * a[i][j] end end
    if off < 1e-30 then break end
    for p = 1, n - 1 do
      for q = p + 1, n do
        if abs(a[p][q]) > 1e-300 then
          local theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
          local t = (theta >= 0 and 1 or -1) / (abs(theta) + sqrt(theta * theta + 1))
          local c = 1 / sqrt(t * t + 1)
          local s = t * c
          for k = 1, n do                                   -- A <- A J (columns p, q)
            local akp, akq = a[k][p], a[k][q]
            a[k][p], a[k][q] = c * akp - s * akq, s * akp + c * akq
          end
          for k = 1, n do                                   -- A <- J^T A (rows p, q)
            local apk, aqk = a[p][k], a[q][k]
            a[p][k], a[q][k] = c * apk - s * aqk, s * apk + c * aqk
          end
          for k = 1, n do
            local vkp, vkq = v[k][p], v[k][q]
            v[k][p], v[k][q] = c * vkp - s * vkq, s * vkp + c * vkq
          end
        end
      end
    end
  end
  local ev = {}
  for i = 1, n do ev[i] = a[i][i] end
  return ev, v
end
M.jacobi = jacobi

-- Square root of a symmetric positive semi-definite matrix (negative eigenvalues from rounding -> 0).
local function sqrtm(A)
  local ev, V = jacobi(A)
  local n, R = #A, {}
  for i = 1, n do
    R[i] = {}
    for j = 1, n do
      local s = 0
      for k = 1, n do s = s + V[i][k] * sqrt(math.max(ev[k], 0)) * V[j][k] end
      R[i][j] = s
    end
  end
  return R
end
local function matmul(A, B)
  local n, R = #A, {}
  for i = 1, n do
    R[i] = {}
    for j = 1, n do local s = 0; for k = 1, n do s = s + A[i][k] * B[k][j] end; R[i][j] = s end
  end
  return R
end

-- dna.moments(E) -> mean (list), covariance (rows; divided by n - 1) of embeddings { n, dim, x }
function M.moments(E)
  local d, n = E.dim, E.n
  if n < 2 then raise("dna.moments: need at least 2 rows, got " .. n) end
  local mu, cov = {}, {}
  for j = 1, d do
    local s = 0
    for r = 0, n - 1 do s = s + E.x[r * d + j - 1] end
    mu[j] = s / n
  end
  for i = 1, d do
    cov[i] = {}
    for j = 1, i do
      local s = 0
      for r = 0, n - 1 do s = s + (E.x[r * d + i - 1] - mu[i]) * (E.x[r * d + j - 1] - mu[j]) end
      cov[i][j] = s / (n - 1); cov[j] = cov[j] or {}; cov[j][i] = cov[i][j]
    end
  end
  return mu, cov
end

-- dna.frechet(mu1, S1, mu2, S2) = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)
function M.frechet(mu1, S1, mu2, S2)
  local d = 0
  for i = 1, #mu1 do d = d + (mu1[i] - mu2[i]) ^ 2 end
  local r1 = sqrtm(S1)
  local C = sqrtm(matmul(matmul(r1, S2), r1))
  for i = 1, #mu1 do d = d + S1[i][i] + S2[i][i] - 2 * C[i][i] end
  return math.max(d, 0)
end

return M
