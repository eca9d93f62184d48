#!/usr/bin/env bash
# tests/e2e/smiley_short.sh — experiments/smiley.lua end to end with a small budget: the PNG and JSON
# exist (the PNG starts with the PNG signature), the training loss in the JSONL fell, and the JSON
# holds finite kl, tv and nll.   usage: smiley_short.sh [SOURCE_DIR] [BUILD_DIR]
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
build=$(cd "${2:-$src/build}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"

"$build/fisherflow" run experiments/smiley.lua --steps 300 --samples 5000 --test 200 --res 16 \
  --out "$tmp/smiley" > "$tmp/run.log" 2>&1 || { cat "$tmp/run.log"; echo "FAIL: smiley.lua exited non-zero"; exit 1; }

for f in smiley.png smiley.json smiley.jsonl; do
  [ -s "$tmp/$f" ] || { echo "FAIL: $f missing or empty"; exit 1; }
done
[ "$(head -c 8 "$tmp/smiley.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] \
  || { echo "FAIL: smiley.png is not a PNG"; exit 1; }

cat > "$tmp/check.lua" <<'EOF'
local ff = require "fisherflow"
local arg = ff.args { dir = { "", "run directory" } }
local recs = ff.log.read(arg.dir .. "/smiley.jsonl")
local first = table.remove(recs, 1)           -- the run's configuration, then the loss records
assert(first.config and first.config.flow and first.config.flow.seed, "the first record is not the run's configuration")
assert(#recs >= 10, "expected >= 10 loss records, got " .. #recs)
local function mean(a, b) local s = 0; for i = a, b do s = s + recs[i].loss end; return s / (b - a + 1) end
local head, tail = mean(1, 3), mean(#recs - 2, #recs)
assert(tail < 0.5 * head, ("loss did not fall: first records %.4g, last %.4g"):format(head, tail))
local f = assert(io.open(arg.dir .. "/smiley.json", "rb"))
local r = ff.json.decode(f:read("*a")); f:close()
for _, key in ipairs { "kl", "tv", "nll" } do
  local v = r[key]
  assert(type(v) == "number" and v == v and v > -math.huge and v < math.huge,
         key .. " is not a finite number: " .. tostring(v))
end
assert(r.tv >= 0 and r.tv <= 1, "tv outside [0, 1]: " .. r.tv)
assert(r.kl >= 0, "kl negative: " .. r.kl)
print(("ok: loss %.4g -> %.4g, kl %.4g, tv %.4g, nll %.4g"):format(head, tail, r.kl, r.tv, r.nll))
EOF
"$build/fisherflow" run "$tmp/check.lua" --dir "$tmp" || { echo "FAIL: checks on the outputs"; exit 1; }
echo "PASS: smiley_short"
