-- test_dna.lua — ff.dna: data preparation on small fixtures and every promoter metric against a
-- hand computation on tiny inputs.
local T = require "ff_test"
local ff = require "fisherflow"
local dna = ff.dna

local function write(path, text) local f = assert(io.open(path, "wb")); f:write(text); f:close(); return path end

T.test("set / strings / from_probs round trip, bad symbol named", function()
  local s = dna.set { "ACGT", "ttga" }
  T.eq(s.n, 2); T.eq(s.L, 4)
  local str = dna.strings(s)
  T.eq(str[1], "ACGT"); T.eq(str[2], "TTGA")
  local t = ff.zeros(2, 4, 4)
  for i, row in ipairs { { 0, 1, 2, 3 }, { 3, 3, 2, 0 } } do
    for j, c in ipairs(row) do t:set(i, j, c + 1, 0.7); t:set(i, j, (c + 1) % 4 + 1, 0.3) end
  end
  T.eq(dna.strings(dna.from_probs(t))[2], "TTGA")
  local oh = dna.onehot(s)
  T.eq(table.concat(oh:shape(), ","), "2,4,4", "one-hot shape")
  T.eq(oh:get(2, 3, 3), 1, "G at row 2, position 3"); T.eq(oh:get(2, 3, 1) + oh:get(2, 3, 2) + oh:get(2, 3, 4), 0, "the rest 0")
  T.eq(table.concat(dna.strings(dna.from_probs(oh)), ","), "ACGT,TTGA", "one-hot round trip")
  T.raises(function() dna.set { "ACNT" } end, "sequence 1, position 3")
  T.raises(function() dna.set { "ACGT", "ACG" } end, "sequence 2 has length 3")
end)

T.test("revcomp", function()
  T.eq(dna.revcomp("AACGTN"), "NACGTT")
  T.raises(function() dna.revcomp("AXG") end, '"X"')
end)

T.test("read_fasta: multi-line records, case folded, .gz, errors by file and line", function()
  local p = write(T.tmp("a.fa"), ">r1 chr2L:1-8\nacgt\nACGN\n\n>r2 chrX:5-9\nTTTT\n")
  local r = dna.read_fasta(p)
  T.eq(#r, 2); T.eq(r[1].seq, "ACGTACGN"); T.eq(r[2].name, "r2 chrX:5-9"); T.eq(r[2].line, 5)
  os.execute("gzip -kf '" .. p .. "'")
  T.eq(dna.read_fasta(p .. ".gz")[1].seq, "ACGTACGN")
  T.raises(function() dna.read_fasta(write(T.tmp("b.fa"), "ACGT\n")) end, "b.fa:1: sequence before")
  T.raises(function() dna.read_fasta(write(T.tmp("c.fa"), ">x\nAC\nA!G\n")) end, "c.fa:3: unexpected character \"!\"")
end)

T.test("dm3_promoters: last L bases, N dropped, duplicates dropped, split by chromosome", function()
  local recs = {
    { name = "a_up chr2L:1-10", seq = "GGGGGGACGTAA", line = 1 },   -- train: last 6 = "ACGTAA"
    { name = "b_up chrX:1-10",  seq = "CCCCTTTTAA",   line = 3 },   -- test
    { name = "c_up chr4:1-10",  seq = "AAAACCCCGG",   line = 5 },   -- valid
    { name = "d_up chr3R:1-10", seq = "NNNNACGTAA",   line = 7 },   -- N only outside the window: kept? no, duplicate of a
    { name = "e_up chr3R:1-10", seq = "ACGTANCGTA",   line = 9 },   -- N inside the window: dropped
    { name = "f_up chr2R:1-4",  seq = "ACG",          line = 11 },  -- shorter than L
    { name = "g_up chrXHet:1-9", seq = "TTTTTTGGGGGG", line = 13 }, -- test (an arm of X)
  }
  local d = dna.dm3_promoters(recs, { L = 6 })
  T.eq(d.counts.records, 7); T.eq(d.counts.short, 1); T.eq(d.counts.with_n, 1); T.eq(d.counts.duplicates, 1)
  T.eq(d.counts.train, 1); T.eq(d.counts.valid, 1); T.eq(d.counts.test, 2)
  T.eq(d.train.seqs[1], "ACGTAA"); T.eq(d.train.names[1], "a_up chr2L")
  T.eq(d.test.seqs[1], "TTTTAA"); T.eq(d.test.seqs[2], "GGGGGG"); T.eq(d.valid.seqs[1], "CCCCGG")
  T.raises(function() dna.dm3_promoters({ { name = "nochrom", seq = "ACGTACGT", line = 4 } }, { L = 4 }) end,
           "header at line 4 has no 'chrN:' location")
end)

T.test("human_windows: strand-aware, centred, out-of-range / N / duplicates dropped", function()
  --             0123456789
  local genome = { chr20 = "AACCGGTTACGTNAAAACCGGTT" }
  local tss = dna.parse_tss(write(T.tmp("tss.txt"),
    "chr20\t4\t+\nchr20\t4\t-\nchr20\t1\t+\nchr20\t12\t+\nchr1\t5\t+\nchr20\t20\t+\n"))
  T.eq(#tss, 6); T.eq(tss[2].strand, "-")
  local w = dna.human_windows(genome, tss, { L = 4 })
  -- chr20:4 + -> genome[2, 6) = "CCGG"; chr20:4 - -> revcomp("CCGG") = "CCGG": a duplicate;
  -- chr20:1 -> starts at -1: outside; chr20:12 -> [10, 14) = "GTNA": N; chr1 not in the genome;
  -- chr20:20 + -> [18, 22) = "CGGT".
  T.eq(w.counts.tss, 5); T.eq(w.counts.outside, 1); T.eq(w.counts.with_n, 1); T.eq(w.counts.duplicates, 1)
  T.eq(w.counts.kept, 2); T.eq(w.seqs[1], "CCGG"); T.eq(w.seqs[2], "CGGT"); T.eq(w.names[2], "chr20:20:+")
  -- minus strand: [2, 6) of AAAACGTTTT = "AACG", reverse complement "CGTT"
  local w2 = dna.human_windows({ chr20 = "AAAACGTTTT" }, { { chr = "chr20", pos = 4, strand = "-" } }, { L = 4 })
  T.eq(w2.seqs[1], "CGTT")
  T.raises(function() dna.parse_tss(write(T.tmp("bad.txt"), "chr1\t5\t+\nchr1 x +\n")) end, "bad.txt:2: expected")
end)

T.test("read_jaspar: bracket and bare layouts; consensus_counts", function()
  local p = write(T.tmp("m.jaspar"), ">MA1 one\nA  [1 2 ]\nC  [ 0 0]\nG [3 0]\nT [0 2]\n>MA2 two\n4 0\n0 4\n0 0\n0 0\n")
  local m = dna.read_jaspar(p)
  T.eq(#m, 2); T.eq(m[1].name, "one"); T.eq(m[1].counts.G[1], 3); T.eq(m[2].counts.C[2], 4); T.eq(m[2].id, "MA2")
  T.raises(function() dna.read_jaspar(write(T.tmp("m2.jaspar"), ">X\n1 2\n1 2\n1\n1 2\n")) end, "motif X needs four rows")
  local c = dna.consensus_counts("TY", 10)
  T.eq(c.T[1], 10); T.eq(c.A[1], 0); T.eq(c.C[2], 5); T.eq(c.T[2], 5)
end)

T.test("pwm log-odds by hand; a planted motif is found at its position", function()
  local p = dna.pwm({ A = { 3, 0 }, C = { 0, 0 }, G = { 0, 3 }, T = { 0, 0 } }, { pseudo = 1 })
  -- column 1: A (3 + 0.25) / 4 = 0.8125 -> log2(3.25); others 0.0625 -> log2(0.25) = -2
  T.near(p.lo[0], math.log(3.25) / math.log(2), 1e-12, "A at 1"); T.near(p.lo[1], -2, 1e-12, "C at 1")
  T.near(p.max, 2 * math.log(3.25) / math.log(2), 1e-12, "max"); T.near(p.min, -4, 1e-12, "min")
  local tata = dna.pwm(dna.consensus_counts("TATAAA", 20))
  local s = dna.set { "GCGCGCGCGCTATAAAGCGCGC", "GCGCGCGCGCGCGCGCGCGCGC" }
  local hits = dna.scan(s, tata, 0.99)
  T.eq(#hits, 1); T.eq(hits[1].seq, 1); T.eq(hits[1].pos, 11); T.near(hits[1].score, tata.max, 1e-9, "score")
  local prof = dna.motif_profile(s, tata, { rel = 0.99, bins = 17 })   -- 17 start positions, one per bin
  for b = 0, 16 do T.near(prof[b], b == 10 and 0.5 or 0, 0, "bin " .. b) end
  T.near(dna.l1(prof, ff.ffi.new("double[17]"), 17), 0.5, 0, "l1 to an empty profile")
end)

T.test("k-mer spectrum and JSD by hand", function()
  local s = dna.set { "AACG", "AAAA" }
  local f1, n1 = dna.kmer_spectrum(s, 1)
  T.eq(n1, 8); T.near(f1[0], 6 / 8, 0, "A"); T.near(f1[1], 1 / 8, 0, "C"); T.near(f1[2], 1 / 8, 0, "G")
  local f2, n2 = dna.kmer_spectrum(s, 2)
  T.eq(n2, 6); T.near(f2[0], 4 / 6, 1e-15, "AA"); T.near(f2[1], 1 / 6, 1e-15, "AC"); T.near(f2[6], 1 / 6, 1e-15, "CG")
  T.near(dna.jsd(f2, f2, 16), 0, 0, "identical")
  local a, b = ff.ffi.new("double[2]", { 1, 0 }), ff.ffi.new("double[2]", { 0, 1 })
  T.near(dna.jsd(a, b, 2), 1, 1e-15, "disjoint = 1 bit")
  local p, q = ff.ffi.new("double[2]", { 0.5, 0.5 }), ff.ffi.new("double[2]", { 1, 0 })
  -- m = (0.75, 0.25): 0.5 [0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25)] + 0.5 [log2(1/0.75)]
  local want = 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2)) / math.log(2) + 0.5 * math.log(1 / 0.75) / math.log(2)
  T.near(dna.jsd(p, q, 2), want, 1e-14, "by hand")
end)

T.test("GC, CpG o/e and Wasserstein-1 by hand", function()
  local s = dna.set { "ACGTCGAA", "AAAAAAAA", "CCGG" .. "CCGG" }
  local gc, oe = dna.gc(s), dna.cpg_oe(s)
  T.near(gc[1], 4 / 8, 0, "gc 1"); T.near(gc[2], 0, 0, "gc 2"); T.near(gc[3], 1, 0, "gc 3")
  -- seq 1: C 2, G 2, CG 2 -> 2 * 8 / 4 = 4; seq 3: C 4, G 4, CG 2 -> 2 * 8 / 16 = 1
  T.near(oe[1], 4, 1e-15, "oe 1"); T.near(oe[2], 0, 0, "oe 2 (no C/G)"); T.near(oe[3], 1, 1e-15, "oe 3")
  T.near(dna.wasserstein1({ 0, 1 }, { 0, 1 }), 0, 0, "same")
  T.near(dna.wasserstein1({ 0 }, { 3 }), 3, 1e-15, "point masses")
  -- {0, 2} vs {1}: |F_a - F_b| = 1/2 on [0, 1) and 1/2 on [1, 2) -> 1
  T.near(dna.wasserstein1({ 2, 0 }, { 1 }), 1, 1e-15, "unequal sizes")
  -- {0, 1, 2} vs {0, 0, 3}: sorted pairs (0,0) (1,0) (2,3) -> (0 + 1 + 1) / 3
  T.near(dna.wasserstein1({ 0, 1, 2 }, { 0, 3, 0 }), 2 / 3, 1e-15, "equal sizes = mean |sorted diff|")
end)

T.test("Markov chain: fitted counts, bits per base, sampling frequencies", function()
  local s = dna.set { "AAAC", "AAAC" }
  local m1 = dna.markov_fit(s, 1)
  -- transitions after A: AA x4, AC x2 (+1 each): A 5/10, C 3/10, G 1/10, T 1/10; start A: (2+1)/6
  T.near(m1.trans[0], 0.5, 1e-15, "A->A"); T.near(m1.trans[1], 0.3, 1e-15, "A->C")
  T.near(m1.trans[4 * 1 + 0], 0.25, 1e-15, "C unseen -> uniform"); T.near(m1.start[0], 0.5, 1e-15, "start A")
  local bits = -(math.log(0.5) + 2 * math.log(0.5) + math.log(0.3)) / (4 * math.log(2))
  T.near(dna.markov_bits(m1, dna.set { "AAAC" }), bits, 1e-12, "bits per base")
  local m0 = dna.markov_fit(dna.set { "ACGTACGT" }, 2)
  T.near(m0.trans[4 * (0 * 4 + 1) + 2], 3 / 6, 1e-15, "AC->G (2 + 1) / (2 + 4)")
  -- sampling reproduces the chain: a fitted chain on long samples of a known chain
  local known = { m = 1, trans = ff.ffi.new("double[16]", { 0.7, 0.1, 0.1, 0.1, 0.25, 0.25, 0.25, 0.25,
                  0.1, 0.1, 0.1, 0.7, 0.4, 0.2, 0.2, 0.2 }), start = ff.ffi.new("double[4]", { 1, 0, 0, 0 }) }
  local sm = dna.markov_sample(known, 200, 500, ff.rng(3))
  T.eq(sm.codes[0], 0); T.eq(sm.codes[500], 0)
  local refit = dna.markov_fit(sm, 1)
  for i = 0, 15 do T.near(refit.trans[i], known.trans[i], 0.015, "transition " .. i) end
end)

T.test("Frechet distance: closed forms (1-D, diagonal, rotated) and Jacobi", function()
  T.near(dna.frechet({ 1 }, { { 4 } }, { 3 }, { { 9 } }), 4 + 1, 1e-12, "1-D (m1-m2)^2 + (s1-s2)^2")
  T.near(dna.frechet({ 0, 0 }, { { 1, 0 }, { 0, 4 } }, { 0, 0 }, { { 4, 0 }, { 0, 1 } }), 2, 1e-10, "diagonal")
  local S = { { 2, 1 }, { 1, 2 } }
  T.near(dna.frechet({ 1, 2 }, S, { 1, 2 }, S), 0, 1e-10, "identical")
  local ev = dna.jacobi(S)
  table.sort(ev); T.near(ev[1], 1, 1e-12, "eig 1"); T.near(ev[2], 3, 1e-12, "eig 3")
  -- commuting case: S and 4S -> tr(S + 4S - 2 * 2S) = tr(S) = 4
  T.near(dna.frechet({ 0, 0 }, S, { 0, 0 }, { { 8, 4 }, { 4, 8 } }), 4, 1e-10, "S vs 4S")
  local mu, cov = dna.moments { n = 3, dim = 2, x = ff.ffi.new("double[6]", { 0, 1, 2, 1, 4, 4 }) }
  T.near(mu[1], 2, 1e-15, "mean"); T.near(cov[1][1], 4, 1e-15, "var"); T.near(cov[1][2], 3, 1e-15, "cov")
end)

T.test("features by hand; MLP gradient against finite differences; training separates", function()
  local X = dna.features(dna.set { "AAAAAAAC" }, { k = 1, bins = 2 })
  -- bins of 4 positions: first AAAA -> (1, 0, 0, 0) * 4 - 1 = (3, -1, -1, -1); second AAAC -> (3/4, 1/4) * 4 - 1
  T.eq(X.dim, 8); T.near(X.x[0], 3, 0, "f0"); T.near(X.x[4], 2, 0, "f4"); T.near(X.x[5], 0, 0, "f5")
  local rng = ff.rng(5)
  local s = dna.markov_sample({ m = 0, trans = ff.ffi.new("double[4]", { 0.25, 0.25, 0.25, 0.25 }),
                                start = ff.ffi.new("double[1]", { 1 }) }, 40, 64, rng)
  local F = dna.features(s, { k = 2, bins = 2 })
  local y = {}
  for i = 1, 40 do y[i] = i % 2 end
  local net = dna.mlp_new(F.dim, 5, rng)
  local rows = { 1, 2, 3, 4, 5, 6 }
  local g = ff.ffi.new("double[?]", net.np)
  dna.mlp_loss(net, F, y, rows, g)
  for _, i in ipairs { 0, 7, 5 * F.dim - 1, 5 * F.dim + 2, 5 * F.dim + 7, net.np - 1 } do
    local w0, h = net.w[i], 1e-6
    net.w[i] = w0 + h; local lp = dna.mlp_loss(net, F, y, rows)
    net.w[i] = w0 - h; local lm = dna.mlp_loss(net, F, y, rows)
    net.w[i] = w0
    T.near(g[i], (lp - lm) / (2 * h), 1e-7, "dloss/dw" .. i)
  end
  -- separable task: GC-rich vs AT-rich sequences
  local gcs = dna.markov_sample({ m = 0, trans = ff.ffi.new("double[4]", { 0.1, 0.4, 0.4, 0.1 }), start = ff.ffi.new("double[1]", { 1 }) }, 30, 64, rng)
  local ats = dna.markov_sample({ m = 0, trans = ff.ffi.new("double[4]", { 0.4, 0.1, 0.1, 0.4 }), start = ff.ffi.new("double[1]", { 1 }) }, 30, 64, rng)
  local both = dna.new_set(60, 64)
  ff.ffi.copy(both.codes, gcs.codes, 30 * 64); ff.ffi.copy(both.codes + 30 * 64, ats.codes, 30 * 64)
  local Fb, yb = dna.features(both, { k = 1, bins = 1 }), {}
  for i = 1, 60 do yb[i] = i <= 30 and 1 or 0 end
  local nb = dna.mlp_new(Fb.dim, 4, rng)
  dna.mlp_train(nb, Fb, yb, { epochs = 50, batch = 16, lr = 0.05, rng = rng })
  T.eq(dna.mlp_accuracy(nb, Fb, yb), 1)
  T.eq(dna.embed(nb, Fb).dim, 4)
end)
