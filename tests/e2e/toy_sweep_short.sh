#!/usr/bin/env bash
# tests/e2e/toy_sweep_short.sh — experiments/toy_sweep.sh end to end with a tiny budget: 2 K x 2
# couplers with EMA give 4 runs and one sweep.json row each (with its budget), sweep.png is a PNG, a
# second call finds nothing to do, and a run's kept weights evaluate again with more samples without
# training (the re-evaluation recipe in toy_sweep.sh's header).   usage: toy_sweep_short.sh [SRC] [BUILD]
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
build=$(cd "${2:-$src/build}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"
opts=(--bin "$build/fisherflow" --out "$tmp/sweep" --steps 20 --samples 2048 --ema 0.9 --Ks "5 10"
      --couplers "exact_ot independent" --geometries sphere --jobs 2)

experiments/toy_sweep.sh "${opts[@]}" > "$tmp/first.log" 2>&1 || { cat "$tmp/first.log"; echo "FAIL: toy_sweep.sh exited non-zero"; exit 1; }
grep -q "4 runs to do" "$tmp/first.log" || { cat "$tmp/first.log"; echo "FAIL: expected 4 runs"; exit 1; }
[ "$(head -c 8 "$tmp/sweep/sweep.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] \
  || { echo "FAIL: sweep.png missing or not a PNG"; exit 1; }
experiments/toy_sweep.sh "${opts[@]}" > "$tmp/second.log" 2>&1 || { cat "$tmp/second.log"; echo "FAIL: second call"; exit 1; }
grep -q "0 runs to do" "$tmp/second.log" || { cat "$tmp/second.log"; echo "FAIL: the second call did not skip finished runs"; exit 1; }

# Re-evaluate one run from its kept weights with 4,096 samples: no training step may be added.
run=sphere_exact_ot_K10_s20_n2048_ema0.9_seed1
for ext in safetensors jsonl; do cp "$tmp/sweep/$run.$ext" "$tmp/reeval.$ext"; done
"$build/fisherflow" run experiments/toy_dfm.lua --K 10 --coupler exact_ot --steps 20 --ema 0.9 \
  --checkpoint-every 20 --resume --samples 4096 --out "$tmp/reeval" > "$tmp/reeval.log" 2>&1 \
  || { cat "$tmp/reeval.log"; echo "FAIL: re-evaluation exited non-zero"; exit 1; }
cmp -s "$tmp/sweep/$run.jsonl" "$tmp/reeval.jsonl" || { echo "FAIL: re-evaluation trained (loss log changed)"; exit 1; }

cat > "$tmp/check.lua" <<'EOF'
local ff = require "fisherflow"
local arg = ff.args { dir = { "", "sweep directory" }, reeval = { "", "re-evaluation JSON" } }
local function load(path) local f = assert(io.open(path, "rb")); local r = ff.json.decode(f:read("*a")); f:close(); return r end
local rows = load(arg.dir .. "/sweep.json").rows
assert(#rows == 4, "sweep.json: expected 4 rows, got " .. #rows)
local seen = {}
for _, r in ipairs(rows) do
  assert(r.geometry == "sphere" and r.steps == 20 and r.samples == 2048 and r.ema == 0.9,
         ("row %s: budget %s/%s/%s/%s"):format(r.file, r.geometry, r.steps, r.samples, r.ema))
  assert(type(r.kl) == "number" and r.kl >= 0 and r.kl < math.huge, r.file .. ": kl " .. tostring(r.kl))
  assert(r.train_seconds > 0 and r.eval_seconds > 0, r.file .. ": wall times missing")
  seen[r.coupler .. r.K] = true
end
for _, key in ipairs { "exact_ot5", "exact_ot10", "independent5", "independent10" } do assert(seen[key], "no row " .. key) end
local re = load(arg.reeval)
assert(re.samples == 4096 and re.steps == 20 and re.ema == 0.9, "re-evaluation budget: " .. re.samples .. " samples")
assert(re.kl >= 0 and re.kl < math.huge, "re-evaluation kl " .. tostring(re.kl))
print(("ok: 4 rows, re-evaluated KL %.4f on 4,096 samples"):format(re.kl))
EOF
"$build/fisherflow" run "$tmp/check.lua" --dir "$tmp/sweep" --reeval "$tmp/reeval.json" || { echo "FAIL: checks on the outputs"; exit 1; }
echo "PASS: toy_sweep_short"
