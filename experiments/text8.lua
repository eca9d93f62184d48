-- experiments/text8.lua — Fisher flow on character-level text: sequences of L = 256 characters of
-- text8 (27 symbols, a-z and space) as points of (S^26_+)^256, the transformer network, sphere
-- geometry, EMA weights for sampling and likelihood. Data: scripts/data_text8 first (it writes
-- train.txt / valid.txt / test.txt, a 90 / 5 / 5 split in order, into --data).
-- Training windows are drawn on the fly at uniform offsets of the training split.
-- Metrics, each also for two reference rows (an order-5 Witten-Bell character model trained on the
-- training split, and held-out text itself, the floor of the sample metrics):
--   bpc      bits per character on --bpc_seqs chunks of the test split. For the flow: an upper bound
--            on -log2 P(text), P the mass of the text's argmax cell (what the argmax decoder
--            emits), from flow:bits: -log P(text) <= E_q[log q(x|text) - log p(x)], p the flow's
--            density (flow:log_prob: RK4 backwards, --lsteps steps, Hutchinson with --probes
--            Rademacher probes), q the dequantisation x = (1 - lam) e_text + lam u, u ~
--            Dirichlet(alpha) per position. One draw of x per chunk; (lam, alpha) is the pair of
--            --bpc_q with the lowest bound on --bpc_seqs chunks of the validation split. A chunk
--            whose backward path leaves the orthant at any position has density 0 (likelihood.h)
--            and an infinite bound, and then so has the mean. For the n-gram: exact, history
--            restarting at every chunk (bpc_chunk) and as one stream.
--   jsd_unigram, jsd_bigram  Jensen-Shannon divergence (bits) of the character and adjacent-pair
--            frequencies of --samples generated sequences against the whole test split.
--   word_fraction  the share of generated words (not the cut first / last of a sequence) found in
--            the training split's vocabulary.
-- Writes <out>.json (metrics, rows, wall times), <out>.jsonl (loss), <out>.txt (samples and real
-- lines), <out>.png (loss curve), <out>_chars.png (character frequencies: held-out, flow, n-gram),
-- <out>.safetensors (checkpoint).
--   scripts/data_text8 && fisherflow run experiments/text8.lua                (about an hour, 2 cores)
--   fisherflow run experiments/text8.lua --steps 20 --samples 8                (smoke run, minutes)
--   fisherflow run experiments/text8.lua --resume                              (rerun after a crash)
local ff = require "fisherflow"

local cache = (os.getenv("XDG_CACHE_HOME") or ((os.getenv("HOME") or ".") .. "/.cache")) .. "/fisherflow/text8"
local arg = ff.args {
  data     = { cache,        "folder with train.txt, valid.txt, test.txt (scripts/data_text8 writes them)" },
  L        = { 256,          "characters per sequence" },
  width    = { 128,          "transformer width" },
  depth    = { 4,            "transformer blocks" },
  heads    = { 4,            "attention heads" },
  steps    = { 6000,         "training steps" },
  batch    = { 16,           "sequences per step" },
  lr       = { 1e-3,         "AdamW learning rate: linear warmup over 200 steps, cosine to lr/100 at --steps" },
  coupler  = { "exact_ot",   "exact_ot | sinkhorn | independent" },
  ema      = { 0.999,        "EMA decay of the weights used for sampling and likelihood (0: none)" },
  samples  = { 64,           "generated sequences for the sample metrics" },
  sample_steps = { 100,      "Riemannian-Euler steps when sampling" },
  bpc_seqs = { 0,            "test (and validation) chunks for the flow's bpc (0: min(--samples, 32))" },
  bpc_q    = { "0.05:2,0.01:2,0.01:4", "dequantisations (lam:alpha pairs) tried on the validation chunks" },
  lsteps   = { 20,           "RK4 steps of the likelihood ODE" },
  probes   = { 1,            "Hutchinson probes per divergence evaluation" },
  order    = { 5,            "order of the reference n-gram model (1..5)" },
  seed     = { 1,            "one seed for init, data windows, training and sampling" },
  out      = { "out/text8",  "output prefix" },
  checkpoint_every = { 500,  "save <out>.safetensors every this many steps and at the end" },
  resume   = { false,        "continue from <out>.safetensors if it exists (--steps stays the total)" },
  reference_only = { false,  "only the n-gram and held-out rows (no flow: no training, sampling or flow bpc)" },
}
ff.seed(arg.seed)
local text, clock, L, K = ff.text, ff.util.now, arg.L, 27
local t_start = clock()
local bpc_q = ff.dequantisations(arg.bpc_q, "--bpc_q")
if arg.resume and arg.checkpoint_every <= 0 then error("--resume needs --checkpoint_every > 0", 0) end

local function load(name)
  local path = arg.data .. "/" .. name .. ".txt"
  local f = io.open(path, "rb")
  if not f then error(("%s not found: run scripts/data_text8 [path/to/text8] first (or pass --data)"):format(path), 0) end
  f:close()
  local s = text.read(path)
  if #s < L then error(("%s: %d characters, fewer than one sequence of --L %d"):format(path, #s, L), 0) end
  return s
end
local train, valid, test = load("train"), load("valid"), load("test")
local source = "?"
do
  local f = io.open(arg.data .. "/source.json", "rb")
  if f then source = ff.json.decode(f:read("*a")).kind or "?"; f:close() end
end

-- The flow: training, samples, bits per character (skipped with --reference_only).
local nb = arg.bpc_seqs > 0 and arg.bpc_seqs or math.min(arg.samples, 32)
local function spread(s, n)                   -- n chunks of L characters evenly spaced over s
  local step = math.max(L, math.floor((#s - L) / math.max(n - 1, 1)))
  return text.chunks(s, L, n, step)
end
local function flow_run()
  local flow = ff.flow {
    space    = ff.sphere { k = L, d = K - 1 },
    geometry = "sphere",
    coupler  = ff.plugin("coupler", arg.coupler),
    network  = ff.plugin("network", "transformer", { width = arg.width, depth = arg.depth, heads = arg.heads }),
    optim    = ff.optim.adamw { lr = arg.lr, weight_decay = 0 },
    schedule = ff.lr.warmup_cosine { base = arg.lr, warmup = math.min(200, math.floor(arg.steps / 10)),
                                     total = arg.steps, min = arg.lr / 100 },
    grad_clip = 1.0,
    ema      = arg.ema > 0 and arg.ema or nil,
    seed     = arg.seed,
  }

  -- Training: one-hot windows at uniform offsets, drawn from their own stream (saved with the
  -- checkpoint, so a resumed run continues bit for bit, as toy_dfm.lua does).
  local draws = ff.rng(arg.seed + 7919)
  local ckpt, run, start = arg.out .. ".safetensors", {}, 0
  if arg.resume then run, start = ff.checkpoint.resume_loop(flow, ckpt, arg.steps, draws, "text8") end
  if start > 0 then print(("resumed from %s at step %d of %d"):format(ckpt, start, arg.steps)) end
  local log, bar = ff.checkpoint.open_log(arg.out .. ".jsonl", start), ff.progress { total = arg.steps, label = "train" }
  local t0 = clock() - (run.seconds or 0)
  local first, window, every = run.loss_first, run.window or 0, math.max(1, math.floor(arg.steps / 200))
  local starts = {}
  for step = start + 1, arg.steps do
    for i = 1, arg.batch do starts[i] = draws:int(#train - L + 1) end
    local s = flow:step(text.onehot(train, starts, L))
    first, window = first or s.loss, window + s.loss
    if step % every == 0 or step == arg.steps then
      local n = (step % every == 0) and every or step % every
      log:write { step = step, loss = window / n, grad_norm = s.grad_norm, lr = s.lr, elapsed = clock() - t0 }
      bar:update(step, { loss = window / n }); window = 0
    end
    if step % arg.checkpoint_every == 0 or step == arg.steps then
      flow:save(ckpt, { loss_first = first, window = window, draws = ff.checkpoint.rng_state(draws), seconds = clock() - t0 })
    end
  end
  bar:finish(); log:close()
  local train_seconds = clock() - t0
  local curve_x, curve_y = {}, {}
  for line in io.lines(arg.out .. ".jsonl") do
    local r = ff.json.decode(line); curve_x[#curve_x + 1] = r.step; curve_y[#curve_y + 1] = r.loss
  end

  -- Samples (EMA weights when --ema > 0), argmax-decoded.
  local t1 = clock()
  local samples, sbar = {}, ff.progress { total = arg.samples, label = "sample" }
  while #samples < arg.samples do
    local n = math.min(16, arg.samples - #samples)
    for _, s in ipairs(text.strings(flow:decode(flow:sample(n, { steps = arg.sample_steps })))) do samples[#samples + 1] = s end
    sbar:update(#samples)
  end
  sbar:finish()
  local sample_seconds = clock() - t1

  -- The flow's bits per character: evenly spaced chunks of a split, dequantised, one draw each.
  local qrng = ff.rng(arg.seed + 31337)
  local function flow_bpc(chunks, q)
    local idx = {}
    for j = 1, #chunks do idx[j] = (j - 1) * L + 1 end
    local b, info = flow:bits(text.onehot(table.concat(chunks), idx, L), { lam = q.lam, alpha = q.alpha, rng = qrng,
                              steps = arg.lsteps, estimator = "hutchinson", probes = arg.probes, batch = 8 })
    local sum, sq, n = 0, 0, #chunks
    for r = 0, n - 1 do local v = b.data[r] / L; sum, sq = sum + v, sq + v * v end
    local mean = info.finite == n and sum / n or math.huge
    local se = info.finite == n and n > 1 and math.sqrt(math.max(sq / n - mean * mean, 0) / (n - 1)) or 0 / 0
    return { bpc = mean, se = se, finite = info.finite, nonfinite = info.nonfinite, lam = q.lam, alpha = q.alpha }
  end
  local t2 = clock()
  local vchunks, tchunks = spread(valid, nb), spread(test, nb)
  local lam_rows, best = {}, nil
  for _, q in ipairs(bpc_q) do
    local r = flow_bpc(vchunks, q)
    lam_rows[#lam_rows + 1] = r
    print(("validation: lam %g alpha %g  bpc bound %.4f +- %.4f  (%d finite, %d not)"):format(q.lam, q.alpha, r.bpc, r.se,
      r.finite, r.nonfinite))
    if not best or r.bpc < best.bpc then best = r end
  end
  local fbpc = flow_bpc(tchunks, best)
  local bpc_seconds = clock() - t2
  return { samples = samples, bpc = fbpc, lam_rows = lam_rows, chunks = #tchunks, tchunks = tchunks, x = curve_x, y = curve_y,
           first = first, parameters = flow:numel(), train_seconds = train_seconds, sample_seconds = sample_seconds,
           bpc_seconds = bpc_seconds, start = start, resumed_seconds = run.seconds or 0 }
end
local F = not arg.reference_only and flow_run() or nil

-- Reference rows and metrics. The n-gram's bpc: on the flow's test chunks (the same characters,
-- history restarting at every chunk), on the whole test split in chunks of L, and as one stream.
local t3 = clock()
local tchunks = F and F.tchunks or spread(test, nb)
local ngram = text.ngram(train, arg.order)
local ng_chunk, ng_all = ngram:bits(table.concat(tchunks), L), ngram:bits(test, L)
local ng_stream = ngram:bits(test)
local ng_samples = ngram:sample(ff.rng(arg.seed + 4242), arg.samples, L)
local real = spread(valid, arg.samples)            -- the floor: held-out text, as many sequences
local vocab = text.vocab(train)
local uni_ref, bi_ref = text.unigram({ test }), text.bigram({ test })
local function sample_metrics(strings)
  local frac, found, total = text.word_fraction(strings, vocab)
  return { jsd_unigram = text.jsd(text.unigram(strings), uni_ref), jsd_bigram = text.jsd(text.bigram(strings), bi_ref),
           word_fraction = frac, words = total, words_found = found, sequences = #strings }
end
local rows = { ngram = sample_metrics(ng_samples), heldout = sample_metrics(real) }
rows.ngram.bpc, rows.ngram.bpc_test_chunked, rows.ngram.bpc_test_stream = ng_chunk, ng_all, ng_stream
if F then
  rows.flow = sample_metrics(F.samples)
  local b = F.bpc
  rows.flow.bpc, rows.flow.bpc_se, rows.flow.bpc_lam, rows.flow.bpc_alpha, rows.flow.bpc_finite, rows.flow.bpc_nonfinite =
    b.bpc, b.se, b.lam, b.alpha, b.finite, b.nonfinite
end
local ref_seconds = clock() - t3

-- Outputs.
local groups = { { "ngram", ng_samples }, { "real", real } }
if F then table.insert(groups, 1, { "flow", F.samples }) end
local f = assert(io.open(arg.out .. ".txt", "wb"))
f:write(("# %s%d order-%d n-gram samples, then %d held-out (validation) chunks\n"):format(
  F and ("%d Fisher-flow samples (%d training steps), then "):format(#F.samples, arg.steps) or "", #ng_samples, arg.order, #real))
for _, group in ipairs(groups) do
  for _, s in ipairs(group[2]) do f:write(group[1], "\t", s, "\n") end
end
f:close()
if F then
  ff.viz.lines(arg.out .. ".png", { { label = "training loss", x = F.x, y = F.y, smooth = 10 } },
               { xlabel = "step", ylabel = "flow-matching loss (sum over positions)", log_y = true })
end
-- Character frequencies as bar outlines (ff.viz draws line plots): one bar per series and symbol.
local function bars(freq, offset, width)
  local x, y = {}, {}
  for c = 1, K do
    local a, b = c - 1 + offset, c - 1 + offset + width
    for _, p in ipairs({ { a, 0 }, { a, freq[c] }, { b, freq[c] }, { b, 0 } }) do x[#x + 1], y[#y + 1] = p[1], p[2] end
  end
  return x, y
end
local freqs = { { "held-out text (test split)", uni_ref }, { ("order-%d n-gram samples"):format(arg.order), text.unigram(ng_samples) } }
if F then table.insert(freqs, 2, { "Fisher flow samples", text.unigram(F.samples) }) end
local series, w = {}, 0.84 / #freqs
for i, s in ipairs(freqs) do
  local x, y = bars(s[2], -0.42 + (i - 1) * w, w)
  series[i] = { label = s[1], x = x, y = y }
end
ff.viz.lines(arg.out .. "_chars.png", series, { xlabel = "symbol (0 = space, 1..26 = a..z)", ylabel = "frequency",
                                                 ymin = 0, legend = "upper_right" })
local null = ff.json.null
ff.results(arg.out .. ".json", {
  args = arg, data_kind = source, train_chars = #train, valid_chars = #valid, test_chars = #test,
  rows = rows, bpc_chunks = #tchunks, lsteps = arg.lsteps, probes = arg.probes,
  parameters = F and F.parameters or null, loss_first = F and F.first or null, loss_last = F and F.y[#F.y] or null,
  bpc_lam_validation = F and F.lam_rows or null, train_seconds = F and F.train_seconds or null,
  seconds_per_step = F and arg.steps > F.start and (F.train_seconds - F.resumed_seconds) / (arg.steps - F.start) or null,
  sample_seconds = F and F.sample_seconds or null, bpc_seconds = F and F.bpc_seconds or null,
  reference_seconds = ref_seconds, wall_seconds = clock() - t_start,
})
print(("text8 (%s): n-gram bpc %.3f on the %d test chunks (%.3f on all test chunks, %.3f as one stream)"):format(
  source, ng_chunk, #tchunks, ng_all, ng_stream))
if F then
  local b = F.bpc
  print(("  flow bpc <= %.3f +- %.3f (lam %g, alpha %g, %d of %d chunks finite)%s"):format(b.bpc, b.se, b.lam, b.alpha,
    b.finite, #tchunks, b.nonfinite > 0 and "; a chunk with density 0 has an infinite bound" or ""))
end
for _, name in ipairs({ "flow", "ngram", "heldout" }) do
  local r = rows[name]
  if r then
    print(("  %-8s jsd unigram %.4f  bigram %.4f  words in vocab %.3f (%d)"):format(name, r.jsd_unigram, r.jsd_bigram, r.word_fraction, r.words))
  end
end
print(("train %.0f s (%d steps), sample %.0f s, bpc %.0f s, references %.0f s, total %.0f s"):format(
  F and F.train_seconds or 0, F and arg.steps or 0, F and F.sample_seconds or 0, F and F.bpc_seconds or 0,
  ref_seconds, clock() - t_start))
