#!/usr/bin/env bash
# tests/e2e/promoter_smoke.sh — experiments/promoter.lua end to end, the smoke run (--steps 20
# --samples 16; hidden 16, batch 16 and 20 Euler steps keep it short on CI) on a fixture made here
# (random sequences of 1,024 bp in the layout scripts/data writes, and a motif file), so it needs no
# download: all output files exist, the FASTA holds 16
# generated sequences of 1,024 bp, every metric of every row is a finite number, and a missing data
# folder is refused with a message naming the file and scripts/data.
#   usage: promoter_smoke.sh [SOURCE_DIR] [BUILD_DIR]
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
build=$(cd "${2:-$src/build}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"

mkdir -p "$tmp/data"
fixture() {   # fixture FILE N SEED: N random 1,024 bp records, GC 0.4, a TATAAA near the end of every other one
  awk -v n="$2" -v seed="$3" 'BEGIN { srand(seed); split("A C G T", b, " ");
    for (i = 1; i <= n; i++) { s = "";
      for (j = 1; j <= 1024; j++) { u = rand(); s = s (u < 0.3 ? "A" : u < 0.5 ? "C" : u < 0.7 ? "G" : "T") }
      if (i % 2) s = substr(s, 1, 990) "TATAAA" substr(s, 997)
      printf(">fixture_%d chr%d\n", i, i % 3); for (j = 1; j <= 1024; j += 80) print substr(s, j, 80) } }' > "$1"
}
fixture "$tmp/data/dm3_train.fa" 64 1
fixture "$tmp/data/dm3_valid.fa" 8 2
fixture "$tmp/data/dm3_test.fa" 16 3
fixture "$tmp/data/human.fa" 16 4
cat > "$tmp/data/motifs.jaspar" <<'M'
>TATA fixture TATAAA
A [ 0 20 0 20 20 20 ]
C [ 0 0 0 0 0 0 ]
G [ 0 0 0 0 0 0 ]
T [ 20 0 20 0 0 0 ]
>Inr fixture TCAGTY
A [ 0 0 20 0 0 0 ]
C [ 0 20 0 0 0 10 ]
G [ 0 0 0 20 0 0 ]
T [ 20 0 0 0 20 10 ]
M

"$build/fisherflow" run experiments/promoter.lua --data "$tmp/data" --steps 20 --samples 16 --nll 4 --hidden 16 --batch 16 --euler 20 \
  --out "$tmp/smoke" > "$tmp/run.log" 2>&1 || { cat "$tmp/run.log"; echo "FAIL: promoter.lua exited non-zero"; exit 1; }
for f in smoke.fa smoke.json smoke.jsonl smoke.png smoke-gc.png smoke-cpg.png smoke-motif.png smoke-loss.png smoke.safetensors; do
  [ -s "$tmp/$f" ] || { cat "$tmp/run.log"; echo "FAIL: $f missing or empty"; exit 1; }
done
for f in smoke.png smoke-gc.png smoke-cpg.png smoke-motif.png smoke-loss.png; do
  [ "$(head -c 8 "$tmp/$f" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || { echo "FAIL: $f is not a PNG"; exit 1; }
done

cat > "$tmp/check.lua" <<'EOF2'
local ff = require "fisherflow"
local arg = ff.args { dir = { "", "run directory" } }
local recs = ff.dna.read_fasta(arg.dir .. "/smoke.fa")
assert(#recs == 16, "expected 16 generated sequences, got " .. #recs)
for i, r in ipairs(recs) do assert(#r.seq == 1024 and not r.seq:find("[^ACGT]"), "generated sequence " .. i .. " is not 1,024 bp of ACGT") end
local f = assert(io.open(arg.dir .. "/smoke.json", "rb"))
local res = ff.json.decode(f:read("*a")); f:close()
local function finite(v, what) assert(type(v) == "number" and v == v and v > -math.huge and v < math.huge, what .. " is not finite: " .. tostring(v)) end
for _, row in ipairs { "model", "markov", "floor" } do
  local r = assert(res.rows[row], "row " .. row .. " missing")
  for _, t in ipairs { r, r.human } do
    for k = 1, 6 do finite(t["jsd_k" .. k], row .. " jsd_k" .. k); assert(t["jsd_k" .. k] >= 0 and t["jsd_k" .. k] <= 1) end
    for _, key in ipairs { "gc_w1", "cpg_w1", "frechet" } do finite(t[key], row .. " " .. key) end
    finite(t.motif_l1.TATA, row .. " motif_l1.TATA"); finite(t.motif_l1.Inr, row .. " motif_l1.Inr")
  end
end
local nll = assert(res.rows.model.nll, "model nll info missing")
assert(nll.sequences == 4 and nll.finite >= 0 and nll.finite <= 4 and nll.estimator == "hutchinson", "model nll info: " .. ff.json.encode(nll))
assert(type(nll.validation) == "table" and #nll.validation == 3, "three dequantisations tried on the validation split")
local chosen = false
for _, v in ipairs(nll.validation) do chosen = chosen or (v.lam == nll.lam and v.alpha == nll.alpha) end
assert(chosen, "the test bound uses one of the tried dequantisations: " .. ff.json.encode(nll))
if nll.finite == 4 then
  finite(res.rows.model.nll_bits, "model nll_bits")
  assert(res.rows.model.nll_bits > 0, "a bound on -log2 P is positive")
else assert(res.rows.model.nll_bits == nil, "nll_bits only when every bound is finite") end
finite(res.rows.markov.nll_bits, "markov nll_bits")
assert(res.rows.model.steps == 20, "model trained " .. tostring(res.rows.model.steps) .. " steps, expected 20")
print(("ok: model JSD k=6 %.4f, markov %.4f, floor %.4f; model NLL %s bits/base (%d of 4 finite)"):format(
  res.rows.model.jsd_k6, res.rows.markov.jsd_k6, res.rows.floor.jsd_k6, tostring(res.rows.model.nll_bits), nll.finite))
EOF2
"$build/fisherflow" run "$tmp/check.lua" --dir "$tmp" || { echo "FAIL: checks on the outputs"; exit 1; }

if "$build/fisherflow" run experiments/promoter.lua --data "$tmp/none" --no-model > "$tmp/err.log" 2>&1; then
  echo "FAIL: a missing data folder was accepted"; exit 1
fi
grep -q "$tmp/none/dm3_train.fa not found: run scripts/data first" "$tmp/err.log" \
  || { cat "$tmp/err.log"; echo "FAIL: the missing-data message does not name the file and scripts/data"; exit 1; }
echo "PASS: promoter_smoke"
