-- experiments/toy_dfm.lua — the Dirichlet-FM toy of the paper's Fig. 3 (docs/PAPER_PROTOCOLS.md §2): k = 4
-- positions over K symbols, a random true categorical per position (softmax of U[0,1), seeded),
-- one-hot data drawn on the fly. Metric: KL(model || true) of the per-position histogram of
-- argmax-decoded samples (100 Euler steps, batches of 2,048), averaged over positions.
-- Writes <out>.json (K, coupler, geometry, steps, wall times, KL, empty bins) and <out>.jsonl (loss).
--   fisherflow run experiments/toy_dfm.lua --K 20 --steps 2000 --samples 51200
--   fisherflow run experiments/toy_dfm.lua --K 20 --coupler independent     (no-OT ablation)
--   fisherflow run experiments/toy_dfm.lua --K 20 --geometry linear         (linear-FM baseline)
--   fisherflow run experiments/toy_dfm.lua --K 40 --steps 4000 --ema 0.999   (sample with EMA weights)
-- --ema D samples with an exponential moving average of the weights (decay D; 0 = the live weights,
-- the default; 0.999 recommended: K = 40, 12,000 steps, KL 0.0046 against 0.041 live, RESULTS.md);
-- --schedule cosine decays the lr to lr/100 at --steps (default constant). The defaults keep the
-- setting of the first toy rows in docs/RESULTS.md. The .json also holds endpoint diagnostics: the
-- mean of max_c p_c over the sampled simplex points and the fractions above 0.5 and 0.99 (1 = at a
-- vertex), and the entropy of the model histogram against the truth's.
--   fisherflow run experiments/toy_dfm.lua --K 20 --checkpoint-every 500 --resume   (rerun after a crash)
local ff = require "fisherflow"

local arg = ff.args {
  K        = { 20,         "symbols per position" },
  geometry = { "sphere",   "sphere | simplex | linear" },
  coupler  = { "exact_ot", "exact_ot | sinkhorn | independent" },
  source   = { "auto",     "auto (sphere: uniform_sphere; simplex, linear: dirichlet alpha 1) | uniform_sphere | dirichlet" },
  steps    = { 2000,       "training steps (the paper: 500 epochs x 196 = 98,000)" },
  batch    = { 512,        "minibatch size" },
  lr       = { 1e-3,       "AdamW learning rate (weight decay 0, grad clip 1.0)" },
  ema      = { 0, "EMA decay of the weights used for sampling (0: live weights)", type = "number" },
  schedule = { "constant",  "lr schedule: constant | cosine (to lr/100 at --steps)" },
  samples  = { 512000,     "samples for the KL histogram, drawn in batches of 2,048" },
  seed     = { 1,          "seed of the true table, the model and every draw" },
  out      = { "out/toy",  "output prefix (.json, .jsonl; .safetensors with --checkpoint-every)" },
  checkpoint_every = { 0,  "save <out>.safetensors every this many steps and at the end (0: never)" },
  resume   = { false,      "continue from <out>.safetensors if it exists (--steps stays the total)" },
}
ff.seed(arg.seed)
local k, K = 4, arg.K
if arg.schedule ~= "constant" and arg.schedule ~= "cosine" then error("--schedule must be constant or cosine", 0) end
if arg.resume and arg.checkpoint_every <= 0 then   -- as flow:fit's "resume needs checkpoint = path"
  error("--resume needs --checkpoint-every > 0 (without it no checkpoint is ever written to resume from)", 0)
end
local source = arg.source ~= "auto" and arg.source or (arg.geometry == "sphere" and "uniform_sphere" or "dirichlet")

local truth = ff.data.toy_categorical { k = k, K = K, seed = arg.seed }   -- [4, K], rows sum to 1
local draws = ff.rng(arg.seed + 7919)                                    -- the on-the-fly data stream
local flow = ff.flow {
  space    = ff.sphere { k = k, d = K - 1 },
  geometry = arg.geometry,
  source   = ff.plugin("source", source),
  coupler  = ff.plugin("coupler", arg.coupler),
  network  = ff.plugin("network", "bmlp", { hidden = 512, depth = 4, emb = 64 }),
  optim    = ff.optim.adamw { lr = arg.lr, weight_decay = 0 },
  grad_clip = 1.0,
  seed     = arg.seed,
  ema      = arg.ema > 0 and arg.ema or nil,
  schedule = arg.schedule == "cosine" and ff.lr.cosine { base = arg.lr, total = arg.steps, min = arg.lr / 100 } or nil,
}

-- resume: the checkpoint holds the flow and this loop's state (data stream, loss window, first loss)
local ckpt, run, start = arg.out .. ".safetensors", {}, 0
if arg.resume then run, start = ff.checkpoint.resume_loop(flow, ckpt, arg.steps, draws, "toy_dfm") end
local log, bar, t0 = ff.checkpoint.open_log(arg.out .. ".jsonl", start), ff.progress { total = arg.steps, label = "train" },
                     ff.util.now() - (run.seconds or 0)
local first, window, every = run.loss_first, run.window or 0, math.max(1, math.floor(arg.steps / 100))
for step = start + 1, arg.steps do
  local s = flow:step(ff.data.sample_categorical(truth, arg.batch, { rng = draws }))
  first, window = first or s.loss, window + s.loss
  if step % every == 0 or step == arg.steps then
    local n = (step % every == 0) and every or step % every
    log:write { step = step, loss = window / n, grad_norm = s.grad_norm, elapsed = ff.util.now() - t0 }
    bar:update(step, { loss = window / n }); window = 0
  end
  if arg.checkpoint_every > 0 and (step % arg.checkpoint_every == 0 or step == arg.steps) then
    flow:save(ckpt, { loss_first = first, window = window, draws = ff.checkpoint.rng_state(draws),
                      seconds = ff.util.now() - t0 })
  end
end
bar:finish(); log:close()
local train_seconds, last_loss = ff.util.now() - t0, nil
for line in io.lines(arg.out .. ".jsonl") do last_loss = ff.json.decode(line).loss end

local t1, hist, done = ff.util.now(), ff.zeros(k, K), 0              -- evaluation
local maxp = { 0, 0, 0 }                                             -- sum of max p, count > 0.5, count > 0.99
local ebar = ff.progress { total = arg.samples, label = "sample" }
while done < arg.samples do
  local n = math.min(2048, arg.samples - done)
  local p = flow:sample(n, { steps = 100 })
  local h = ff.metrics.categorical_hist(flow:decode(p), K)
  for i = 0, k * K - 1 do hist.data[i] = hist.data[i] + h.data[i] * n end
  for r = 0, n * k - 1 do                                        -- endpoint sharpness: max_c p_c
    local m = 0
    for c = r * K, r * K + K - 1 do if p.data[c] > m then m = p.data[c] end end
    maxp[1], maxp[2], maxp[3] = maxp[1] + m, maxp[2] + (m > 0.5 and 1 or 0), maxp[3] + (m > 0.99 and 1 or 0)
  end
  done = done + n; ebar:update(done)
end
ebar:finish()
for i = 0, k * K - 1 do hist.data[i] = hist.data[i] / done end
local kl, per_pos, empty = ff.metrics.kl_categorical(hist, truth)
local per = {}
for i, d in ipairs(per_pos) do per[i] = d.kl end
-- Yardsticks at the same sample count: a uniform model, and `samples` draws from the truth itself
-- (the estimator's floor: histogram noise alone, about (K-1)/(2 samples) per position).
local uniform = ff.full({ k, K }, 1 / K)
local kl_uniform = ff.metrics.kl_categorical(uniform, truth)
local ref, rrng = ff.zeros(k, K), ff.rng(arg.seed + 104729)
for first = 1, done, 2048 do
  local n = math.min(2048, done - first + 1)
  local h = ff.metrics.categorical_hist(ff.data.sample_categorical(truth, n, { rng = rrng }), K)
  for i = 0, k * K - 1 do ref.data[i] = ref.data[i] + h.data[i] * n / done end
end
local kl_floor = ff.metrics.kl_categorical(ref, truth)
local H_model, H_true = 0, 0                                        -- mean entropy per position (nats)
for i = 0, k * K - 1 do
  local q, pt = hist.data[i], truth.data[i]
  if q > 0 then H_model = H_model - q * math.log(q) / k end
  H_true = H_true - pt * math.log(pt) / k
end

ff.results(arg.out .. ".json", {
  K = K, k = k, coupler = arg.coupler, geometry = arg.geometry, source = source, steps = arg.steps,
  batch = arg.batch, lr = arg.lr, seed = arg.seed, samples = done, euler_steps = 100,
  kl = kl, kl_per_position = per, empty_bins = empty, kl_uniform_model = kl_uniform,
  kl_true_samples = kl_floor, loss_first = first, loss_last = last_loss,
  train_seconds = train_seconds, eval_seconds = ff.util.now() - t1, parameters = flow:numel(),
  ema = arg.ema, schedule = arg.schedule, entropy_model = H_model, entropy_true = H_true,
  endpoint_max_p_mean = maxp[1] / (done * k), endpoint_frac_max_p_gt_half = maxp[2] / (done * k),
  endpoint_frac_max_p_gt_099 = maxp[3] / (done * k),
})
print(("K %d %s/%s: KL %.5f (%d empty bins; uniform %.5f, true samples %.5f) after %d steps; mean max p %.3f, entropy %.4f (true %.4f); train %.0f s, eval %.0f s"):format(
  K, arg.geometry, arg.coupler, kl, empty, kl_uniform, kl_floor, arg.steps, maxp[1] / (done * k), H_model, H_true,
  train_seconds, ff.util.now() - t1))
