-- experiments/promoter.lua — Fisher-Flow on real promoter DNA (the paper's promoter design task,
-- Davis et al. 2024 §4, on data these machines can have): D. melanogaster dm3 promoters, 1,024 bp
-- ending at the TSS (k = 1024 positions, 4 symbols), from scripts/data. Model: cnn1d on the sphere,
-- EMA weights for sampling, checkpoints with --resume. Evaluation (no Sei here), every row
-- compared with the held-out chrX promoters, and again with human TSS-centred windows:
--   jsd_k1 .. jsd_k6  Jensen-Shannon divergence (bits) of the k-mer spectra (composition only)
--   gc_w1, cpg_w1     Wasserstein-1 of per-sequence GC fraction and CpG observed/expected
--   motif_l1.<name>   L1 distance of the PWM-hit profile along the sequence (hits per sequence in
--                     64 bins of 16 bp; relative score >= 0.9, forward strand): position structure
--   frechet           Fréchet distance of the hidden-layer embeddings of a small classifier trained
--                     here to tell real training promoters from order-1 Markov samples
--   nll_bits          test NLL in bits per base. The flow's is an upper bound on -log2 P(sequence),
--                     P the mass of the sequence's argmax cell (what the argmax decoder emits):
--                     flow:bits, a dequantised draw z = (1 - lam) onehot + lam u, u ~ Dirichlet(alpha)
--                     per position, and -log q(z) + log p(z) from the likelihood path (RK4,
--                     --nll_steps steps; Hutchinson, --probes probes); (lam, alpha) is the pair of
--                     --nll_q with the lowest bound on --nll_valid chr4 sequences. The Markov row's is
--                     its exact log-probability. Both are bits per base of a discrete model.
-- Rows: model (the flow), floor (--samples training sequences in place of generated ones),
-- markov (order --markov chain fitted on train and sampled), and with --model false only the
-- reference rows. Writes <out>.fa (generated), <out>.json (every metric, row and timing), <out>.jsonl
-- (loss), <out>.safetensors (checkpoint), <out>.png (6-mer spectrum scatter), <out>-gc.png,
-- <out>-cpg.png, <out>-motif.png (TATA profile) and <out>-loss.png.
--   fisherflow run experiments/promoter.lua                                  (the default: ~1 h, 2 cores)
--   fisherflow run experiments/promoter.lua --steps 20 --samples 16          (smoke run)
--   fisherflow run experiments/promoter.lua --geometry linear --out out/promoter_linear   (linear FM)
--   fisherflow run experiments/promoter.lua --hidden 256 --stacks 4 --batch 128 --steps 22000  (the paper's size)
local ff = require "fisherflow"
local dna = ff.dna

local home = os.getenv("FISHERFLOW_DATA") or ((os.getenv("XDG_CACHE_HOME") or ((os.getenv("HOME") or ".") .. "/.cache")) .. "/fisherflow/dna")
local arg = ff.args {
  data     = { home,       "folder written by scripts/data (dm3_{train,valid,test}.fa, human.fa, motifs.jaspar)" },
  model    = { true,       "train and evaluate the flow (--no-model: only the floor and Markov rows)" },
  geometry = { "sphere",   "sphere | linear (linear flow matching on the simplex, the paper's simplest flow baseline)" },
  coupler  = { "independent", "independent (the paper's promoter setting) | exact_ot" },
  hidden   = { 64,         "cnn1d channels (the paper's promoter model: 256)" },
  stacks   = { 1,          "cnn1d stacks of 5 dilated layers (the paper: 4)" },
  steps    = { 5000,       "training steps (with --resume: the run's total)" },
  batch    = { 64,         "minibatch size" },
  lr       = { 1e-3,       "AdamW learning rate (weight decay 0, grad clip 1; cosine to lr/10)" },
  ema      = { 0.999,      "EMA decay of the sampling weights (0: live weights)" },
  samples  = { 512,        "generated sequences (and the size of every reference row)" },
  euler    = { 100,        "Euler steps of the sampler" },
  nll      = { 256,        "held-out sequences for the test NLL (0: skip)" },
  nll_steps = { 20,        "RK4 steps of the likelihood path" },
  probes   = { 1,          "Hutchinson probes per field evaluation" },
  nll_q    = { "0.001:1.5,0.001:2,0.01:2", "dequantisation (lam:alpha pairs) tried for the NLL bound on the validation split" },
  nll_valid = { 16,        "validation (chr4) sequences that choose the dequantisation" },
  markov   = { 5,          "order of the Markov-chain baseline" },
  seed     = { 1,          "seed of the model, the data order and every draw" },
  out      = { "out/promoter", "output prefix" },
  checkpoint_every = { 250, "save <out>.safetensors every this many steps (and at the end)" },
  resume   = { false,      "continue from <out>.safetensors if it exists (--steps stays the total)" },
}
if arg.geometry ~= "sphere" and arg.geometry ~= "linear" then error("--geometry must be sphere or linear, got " .. arg.geometry, 0) end
if arg.coupler ~= "independent" and arg.coupler ~= "exact_ot" then error("--coupler must be independent or exact_ot, got " .. arg.coupler, 0) end
local nll_q = ff.dequantisations(arg.nll_q, "--nll_q")
ff.seed(arg.seed)
local t_start = ff.util.now()

local function need(name)
  local path = arg.data .. "/" .. name
  local f = io.open(path, "rb")
  if not f then error(("%s not found: run scripts/data first (or pass --data DIR)"):format(path), 0) end
  f:close()
  return path
end
local function load_set(name) local r = dna.read_fasta(need(name)); local s = {}; for i, x in ipairs(r) do s[i] = x.seq end; return dna.set(s) end
local train_set, valid_set, test_set, human_set = load_set("dm3_train.fa"), load_set("dm3_valid.fa"),
                                                  load_set("dm3_test.fa"), load_set("human.fa")
local L = train_set.L
for name, s in pairs { valid = valid_set, test = test_set, human = human_set } do
  if s.L ~= L then error(("%s sequences have length %d, training ones %d"):format(name, s.L, L), 0) end
end
local motifs = {}
for _, m in ipairs(dna.read_jaspar(need("motifs.jaspar"))) do motifs[#motifs + 1] = { name = m.id, pwm = dna.pwm(m.counts) } end
print(("data %s: train %d, validation %d, test %d, human %d sequences of %d bp; motifs %d")
      :format(arg.data, train_set.n, valid_set.n, test_set.n, human_set.n, L, #motifs))

-- ---- the embedding classifier: real training promoters (label 1) vs order-1 Markov samples ----
local rng = ff.rng(arg.seed + 17)
local function pick_rows(s, n, r)                  -- n distinct rows of s, random order
  local idx = {}
  for i = 1, s.n do idx[i] = i end
  for i = s.n, 2, -1 do local j = r:int(i); idx[i], idx[j] = idx[j], idx[i] end
  local out = dna.new_set(math.min(n, s.n), s.L)
  for i = 1, out.n do ff.ffi.copy(out.codes + (i - 1) * L, s.codes + (idx[i] - 1) * L, L) end
  return out
end
local t_cls = ff.util.now()
local mk1 = dna.markov_fit(train_set, 1)
local function labelled(real, n, r)
  local both = dna.new_set(2 * n, L)
  ff.ffi.copy(both.codes, pick_rows(real, n, r).codes, n * L)
  ff.ffi.copy(both.codes + n * L, dna.markov_sample(mk1, n, L, r).codes, n * L)
  local y = {}
  for i = 1, 2 * n do y[i] = i <= n and 1 or 0 end
  return dna.features(both), y
end
local ncls = math.min(2000, train_set.n)
local Xc, yc = labelled(train_set, ncls, rng)
local net = dna.mlp_new(Xc.dim, 32, rng)
local cls_loss = dna.mlp_train(net, Xc, yc, { epochs = 10, batch = 64, lr = 3e-3, rng = rng })
local Xv, yv = labelled(valid_set, valid_set.n, rng)
local cls = { train_loss = cls_loss, train_acc = dna.mlp_accuracy(net, Xc, yc), valid_acc = dna.mlp_accuracy(net, Xv, yv),
              n_train = 2 * ncls, features = "3-mer frequencies in 4 segments", hidden = 32, seconds = ff.util.now() - t_cls }
print(("classifier (real vs order-1 Markov): train accuracy %.3f, validation (chr4) %.3f"):format(cls.train_acc, cls.valid_acc))

-- ---- metrics of a set of sequences against a reference ----
local BINS, REL = 64, 0.9   -- 16 bp bins; 0.9 of the score range: the TATA peak at -30 stands 5x over the background
local function summary(ref)
  local s = { set = ref, spectra = {}, gc = dna.gc(ref), cpg = dna.cpg_oe(ref), profiles = {} }
  for k = 1, 6 do s.spectra[k] = dna.kmer_spectrum(ref, k) end
  for _, m in ipairs(motifs) do s.profiles[m.name] = dna.motif_profile(ref, m.pwm, { bins = BINS, rel = REL }) end
  s.mu, s.cov = dna.moments(dna.embed(net, dna.features(ref)))
  return s
end
local function metrics(gen, ref)
  local g = summary(gen)
  local r = { n = gen.n, gc_w1 = dna.wasserstein1(g.gc, ref.gc), cpg_w1 = dna.wasserstein1(g.cpg, ref.cpg), motif_l1 = {} }
  for k = 1, 6 do r["jsd_k" .. k] = dna.jsd(g.spectra[k], ref.spectra[k], 4 ^ k) end
  for _, m in ipairs(motifs) do r.motif_l1[m.name] = dna.l1(g.profiles[m.name], ref.profiles[m.name], BINS) end
  r.frechet = dna.frechet(g.mu, g.cov, ref.mu, ref.cov)
  return r, g
end
local test_sum, human_sum = summary(test_set), summary(human_set)
local rows, summaries = {}, {}
local function add_row(name, gen, extra)
  local r, g = metrics(gen, test_sum)
  r.human = (metrics(gen, human_sum))
  for k, v in pairs(extra or {}) do r[k] = v end
  rows[name], summaries[name] = r, g
  print(("%-7s JSD k=6 %.4f, GC W1 %.4f, CpG o/e W1 %.4f, TATA L1 %.3f, Frechet %.3f"):format(
    name, r.jsd_k6, r.gc_w1, r.cpg_w1, r.motif_l1.TATA or 0 / 0, r.frechet))
end
local nll_set = dna.subset(test_set, 1, math.min(arg.nll, test_set.n))
local t_ref = ff.util.now()
add_row("floor", pick_rows(train_set, arg.samples, ff.rng(arg.seed + 31)))
local mk = dna.markov_fit(train_set, arg.markov)
add_row("markov", dna.markov_sample(mk, arg.samples, L, ff.rng(arg.seed + 37)),
        { order = arg.markov, nll_bits = arg.nll > 0 and dna.markov_bits(mk, nll_set) or nil })
-- the human floor: half of the human windows against the other half (no human training split)
local hh = pick_rows(human_set, human_set.n, ff.rng(arg.seed + 41))
local half = math.floor(hh.n / 2)
rows.floor.human = (metrics(dna.subset(hh, 1, half), summary(dna.subset(hh, half + 1, hh.n - half))))
local ref_seconds = ff.util.now() - t_ref

-- ---- the flow ----
local result = { args = arg, data = { train = train_set.n, valid = valid_set.n, test = test_set.n, human = human_set.n, length = L },
                 classifier = cls, rows = rows, reference_seconds = ref_seconds,
                 motifs = "TATA (JASPAR MA0108.2 TBP), Inr (consensus TCAGTY), GAGA (JASPAR Trl); relative score >= 0.9, forward strand, 64 bins of 16 bp" }
local loss_curve
if arg.model then
  local x = ff.data.sequences(need("dm3_train.fa"), { alphabet = "ACGT" })   -- one-hot [n, L, 4]
  local flow = ff.flow {
    space    = ff.sphere { k = L, d = 3 },
    geometry = arg.geometry,
    source   = ff.plugin("source", arg.geometry == "sphere" and "uniform_sphere" or "dirichlet"),
    coupler  = ff.plugin("coupler", arg.coupler),
    network  = ff.plugin("network", "cnn1d", { hidden = arg.hidden, stacks = arg.stacks }),
    optim    = ff.optim.adamw { lr = arg.lr, weight_decay = 0 },
    schedule = ff.lr.cosine { base = arg.lr, total = math.max(arg.steps, 1), min = arg.lr / 10 },
    grad_clip = 1.0, seed = arg.seed, ema = arg.ema > 0 and arg.ema or nil,
  }
  print(("flow: cnn1d hidden %d, stacks %d (%d layers), %d parameters; %s, %s"):format(
    arg.hidden, arg.stacks, 5 * arg.stacks, flow:numel(), arg.geometry, arg.coupler))
  local hist = flow:fit(x, { steps = arg.steps, batch = arg.batch, log = arg.out .. ".jsonl", progress = true,
                             checkpoint = arg.out .. ".safetensors", checkpoint_every = arg.checkpoint_every,
                             resume = arg.resume, label = "train" })
  local train_seconds = hist.total_seconds                 -- a resumed run's training time included
  x = nil; collectgarbage()
  local t1, parts, done = ff.util.now(), {}, 0
  local bar = ff.progress { total = arg.samples, label = "sample" }
  local gen = dna.new_set(arg.samples, L)
  while done < arg.samples do
    local n = math.min(64, arg.samples - done)
    local p = flow:sample(n, { steps = arg.euler })
    ff.ffi.copy(gen.codes + done * L, dna.from_probs(p).codes, n * L)
    done = done + n; bar:update(done)
  end
  bar:finish()
  local sample_seconds = ff.util.now() - t1
  local names = {}
  for i = 1, gen.n do names[i] = ("generated_%d"):format(i) end
  dna.write_fasta(arg.out .. ".fa", names, dna.strings(gen))
  local nll, nll_info, t2 = nil, nil, ff.util.now()
  if arg.nll > 0 then
    -- bits per base, an upper bound (flow:bits): the dequantisation with the lowest bound on a few
    -- validation sequences, then the test sequences, one dequantised draw each
    local qrng = ff.rng(arg.seed + 43)
    local function bound(set, q)
      local b, info = flow:bits(dna.onehot(set), { lam = q.lam, alpha = q.alpha, rng = qrng,
                                steps = arg.nll_steps, estimator = "hutchinson", probes = arg.probes, batch = 32 })
      local sum = 0
      for i = 0, set.n - 1 do sum = sum + b.data[i] end
      return { lam = q.lam, alpha = q.alpha, bits = info.finite == set.n and sum / (set.n * L) or math.huge,
               finite = info.finite, sequences = set.n }
    end
    local vset, tried, best = dna.subset(valid_set, 1, math.min(arg.nll_valid, valid_set.n)), {}, nil
    for _, q in ipairs(nll_q) do
      local r = bound(vset, q)
      tried[#tried + 1] = r
      print(("nll: validation, lam %g alpha %g: %.3f bits per base (%d of %d sequences finite)"):format(
        q.lam, q.alpha, r.bits, r.finite, r.sequences))
      if not best or r.bits < best.bits then best = r end
    end
    local r = bound(nll_set, best)
    nll = r.bits < math.huge and r.bits or nil
    nll_info = { sequences = nll_set.n, finite = r.finite, estimator = "hutchinson", probes = arg.probes,
                 rk4_steps = arg.nll_steps, lam = best.lam, alpha = best.alpha, validation = tried,
                 bound = "upper bound on -log2 P(argmax cell) per base: E_q[log q - log p], q = (1 - lam) onehot + lam Dirichlet(alpha)" }
  end
  local steps_done = flow:steps()
  add_row("model", gen, { nll_bits = nll, nll = nll_info, parameters = flow:numel(), steps = steps_done,
                          train_seconds = train_seconds, sample_seconds = sample_seconds,
                          nll_seconds = ff.util.now() - t2, seconds_per_step = #hist.loss > 0 and hist.seconds / #hist.loss or nil,
                          geometry = arg.geometry, coupler = arg.coupler, hidden = arg.hidden, stacks = arg.stacks })
  loss_curve = {}
  for _, rec in ipairs(ff.log.read(arg.out .. ".jsonl")) do if rec.loss then loss_curve[#loss_curve + 1] = { rec.step, rec.loss } end end
end
result.seconds = ff.util.now() - t_start
ff.results(arg.out .. ".json", result)

-- ---- pictures ----
local order = { "model", "markov", "floor" }
local colors = { model = "#d55e00", markov = "#0072b2", floor = "#009e73", test = "#000000" }
local scatter = {}
for _, name in ipairs(order) do
  if summaries[name] then
    local xs, ys = {}, {}
    for i = 0, 4 ^ 6 - 1 do                          -- log axes: k-mers absent from either side are left out
      local a, b = test_sum.spectra[6][i], summaries[name].spectra[6][i]
      if a > 0 and b > 0 then xs[#xs + 1] = a * 4096; ys[#ys + 1] = b * 4096 end
    end
    scatter[#scatter + 1] = { label = name, x = xs, y = ys, marker = "circle", line = "none", color = colors[name] }
  end
end
ff.viz.lines(arg.out .. ".png", scatter, { xlabel = "6-mer frequency x 4096, chrX promoters", ylabel = "6-mer frequency x 4096, generated",
                                           log_x = true, log_y = true }, { title = "6-mer spectrum: generated vs held-out real" })
local function hist_series(values_of, lo, hi, nb)
  local series = {}
  local function one(label, v)
    local h, xs = {}, {}
    for b = 1, nb do h[b] = 0; xs[b] = lo + (b - 0.5) * (hi - lo) / nb end
    for _, x in ipairs(v) do local b = math.min(nb, math.max(1, math.floor((x - lo) / (hi - lo) * nb) + 1)); h[b] = h[b] + 1 / #v end
    series[#series + 1] = { label = label, x = xs, y = h, color = colors[label] }
  end
  one("test", values_of(test_sum))
  for _, name in ipairs(order) do if summaries[name] then one(name, values_of(summaries[name])) end end
  return series
end
ff.viz.lines(arg.out .. "-gc.png", hist_series(function(s) return s.gc end, 0.2, 0.7, 40),
             { xlabel = "GC fraction", ylabel = "fraction of sequences" }, { title = "GC content" })
ff.viz.lines(arg.out .. "-cpg.png", hist_series(function(s) return s.cpg end, 0, 1.6, 40),
             { xlabel = "CpG observed / expected", ylabel = "fraction of sequences" }, { title = "CpG o/e" })
local prof = {}
for _, name in ipairs { "test", "model", "markov", "floor" } do
  local s = name == "test" and test_sum or summaries[name]
  if s and s.profiles.TATA then
    local xs, ys, span = {}, {}, L - motifs[1].pwm.w + 1
    for b = 0, BINS - 1 do xs[b + 1] = (b + 0.5) * span / BINS - L; ys[b + 1] = s.profiles.TATA[b] end
    prof[#prof + 1] = { label = name, x = xs, y = ys, color = colors[name], marker = "circle" }
  end
end
ff.viz.lines(arg.out .. "-motif.png", prof, { xlabel = "motif start relative to the TSS (bp)", ylabel = "TATA hits per sequence per bin" },
             { title = "TATA-box occurrence along the promoter" })
if loss_curve and #loss_curve > 0 then
  local xs, ys = {}, {}
  for i, p in ipairs(loss_curve) do xs[i], ys[i] = p[1], p[2] end
  ff.viz.lines(arg.out .. "-loss.png", { { label = "loss", x = xs, y = ys } }, { xlabel = "step", ylabel = "flow-matching loss", log_y = true },
               { title = "training loss" })
end
print(("wrote %s.json and pictures in %.0f s"):format(arg.out, result.seconds))
