#!/usr/bin/env bash
# tests/e2e/text8_smoke.sh — scripts/data_text8 and experiments/text8.lua end to end on a tiny
# fixture (tests/fixtures/text8_tiny.txt, written for the tests, not text8):
#   data_text8 refuses a byte outside the alphabet, a file shorter than the checked prefix, a file of
#   the right size and alphabet whose SHA-256 is not text8's, a missing file and a zip; where the
#   ../shared prefix exists (development machines, CI) it prepares it and the three splits
#   concatenate back to the prefix's SHA-256;
#   text8.lua trains a tiny transformer for 60 steps; the same run killed after its first checkpoint
#   and rerun with --resume logs the same losses bit for bit; it writes the samples, JSON (metrics in
#   range), JSONL and PNGs.
#   usage: text8_smoke.sh [SOURCE_DIR] [BUILD_DIR]
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
build=$(cd "${2:-$src/build}" && pwd)
tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
cd "$src"
fail() { echo "FAIL: $*"; exit 1; }
expect_error() {   # expect_error TEXT cmd...: the command fails and its stderr contains TEXT
  local want=$1; shift
  if "$@" > "$tmp/out.log" 2> "$tmp/err.log"; then fail "$* succeeded, expected an error containing '$want'"; fi
  grep -qF -- "$want" "$tmp/err.log" || { cat "$tmp/err.log"; fail "$*: error does not contain '$want'"; }
}

# --- scripts/data_text8: refusals -----------------------------------------------------------------
printf 'abc\ndef' > "$tmp/newline.txt"
expect_error "characters outside a-z and space (first at byte offset 3, 0x0a)" scripts/data_text8 "$tmp/newline.txt" --cache "$tmp/c"
expect_error "fewer than the 12549837" scripts/data_text8 tests/fixtures/text8_tiny.txt --cache "$tmp/c"
head -c 12549837 /dev/zero | tr '\0' a > "$tmp/aaaa.txt"
expect_error "expected 41e50c6af8fea8a544864ab290f2d07349c212ac0187b41e21a4249a2aa0103d (not text8)" scripts/data_text8 "$tmp/aaaa.txt" --cache "$tmp/c"
expect_error "no such file" scripts/data_text8 "$tmp/none.txt" --cache "$tmp/c"
: > "$tmp/text8.zip"
expect_error "is a zip archive; unzip it" scripts/data_text8 "$tmp/text8.zip" --cache "$tmp/c"
[ ! -e "$tmp/c/train.txt" ] || fail "a refused input left train.txt behind"
rm -f "$tmp/aaaa.txt"

# --- the real prefix, where this machine has it ----------------------------------------------------
prefix=""
for p in "$src/../shared/data/text8_prefix.txt.xz" "$(dirname "$(git -C "$src" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || echo /nonexistent/x)")/../shared/data/text8_prefix.txt.xz"; do
  [ -f "$p" ] && prefix=$p && break
done
if [ -n "$prefix" ]; then
  scripts/data_text8 --cache "$tmp/real" > "$tmp/real.log" 2>&1 || { cat "$tmp/real.log"; fail "data_text8 on the prefix"; }
  grep -qF "using the fallback prefix" "$tmp/real.log" || fail "data_text8 does not say it used the prefix"
  [ "$(stat -c %s "$tmp/real/train.txt")" -eq 11294853 ] || fail "train split size"
  [ "$(cat "$tmp/real/train.txt" "$tmp/real/valid.txt" "$tmp/real/test.txt" | sha256sum | cut -d' ' -f1)" = \
    41e50c6af8fea8a544864ab290f2d07349c212ac0187b41e21a4249a2aa0103d ] || fail "splits do not concatenate to the prefix"
  rm -rf "$tmp/real"
  echo "ok: data_text8 prepared $prefix"
else
  echo "note: no ../shared/data/text8_prefix.txt.xz on this machine; the prefix preparation was not exercised"
fi

# --- experiments/text8.lua on the fixture ----------------------------------------------------------
fx=tests/fixtures/text8_tiny.txt
n=$(stat -c %s "$fx"); ntr=$((n * 90 / 100)); nva=$((n * 5 / 100))
mkdir -p "$tmp/data"
head -c "$ntr" "$fx" > "$tmp/data/train.txt"
head -c $((ntr + nva)) "$fx" | tail -c "$nva" > "$tmp/data/valid.txt"
tail -c +$((ntr + nva + 1)) "$fx" > "$tmp/data/test.txt"
small=(--data "$tmp/data" --L 32 --width 32 --depth 1 --heads 2 --batch 4 --samples 4 --bpc_seqs 4
       --lsteps 4 --bpc_q 0.5:1,0.2:3 --sample_steps 20 --checkpoint_every 10 --out "$tmp/t8")
# an uninterrupted run, and the same run killed (SIGKILL) after its first checkpoint and rerun
"$build/fisherflow" run experiments/text8.lua "${small[@]}" --steps 300 --out "$tmp/ref" > "$tmp/ref.log" 2>&1 \
  || { cat "$tmp/ref.log"; fail "text8.lua (60 steps) exited non-zero"; }
"$build/fisherflow" run experiments/text8.lua "${small[@]}" --steps 300 --resume > "$tmp/run1.log" 2>&1 &
pid=$!
for _ in $(seq 1 6000); do [ -e "$tmp/t8.safetensors" ] && break; sleep 0.01; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
[ -e "$tmp/t8.safetensors" ] || fail "no checkpoint was written"
"$build/fisherflow" run experiments/text8.lua "${small[@]}" --steps 300 --resume > "$tmp/run2.log" 2>&1 \
  || { cat "$tmp/run2.log"; fail "text8.lua --resume (rerun) exited non-zero"; }
grep -qE "^resumed from .*t8.safetensors at step [0-9]+ of 300" "$tmp/run2.log" || fail "the rerun did not resume from the checkpoint"
for f in t8.json t8.jsonl t8.txt t8.png t8_chars.png t8.safetensors; do [ -s "$tmp/$f" ] || fail "$f missing or empty"; done
for f in t8.png t8_chars.png; do
  [ "$(head -c 8 "$tmp/$f" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$f is not a PNG"
done
[ "$(grep -c $'^flow\t' "$tmp/t8.txt")" -eq 4 ] && [ "$(grep -c $'^ngram\t' "$tmp/t8.txt")" -eq 4 ] \
  && [ "$(grep -c $'^real\t' "$tmp/t8.txt")" -eq 4 ] || fail "t8.txt does not hold 4 flow, 4 n-gram and 4 real lines"
grep -qE $'^flow\t[ a-z]{32}$' "$tmp/t8.txt" || fail "flow samples are not 32 characters of the alphabet"
grep -q "^text8 (?)" "$tmp/run2.log" || fail "the run did not print its summary"

python3 - "$tmp" <<'PY'
import json, math, sys
d = sys.argv[1]
r = json.load(open(d + "/t8.json"))
log = [json.loads(l) for l in open(d + "/t8.jsonl")]
ref = [json.loads(l) for l in open(d + "/ref.jsonl")]
steps = [x["step"] for x in log]
assert steps == [x["step"] for x in ref] and steps[-1] == 300, f"log steps {steps}"
for a, b in zip(log, ref):   # the resumed run continues the data stream and training bit for bit
    assert a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"], f"step {a['step']}: {a} vs {b}"
rows = r["rows"]
for name in ("flow", "ngram", "heldout"):
    row = rows[name]
    for k in ("jsd_unigram", "jsd_bigram", "word_fraction"):
        v = row[k]
        assert isinstance(v, (int, float)) and 0 <= v <= 1, f"{name}.{k} = {v}"
ng = rows["ngram"]["bpc"]
assert 0 < ng < math.log2(27), f"n-gram bpc {ng}"
assert rows["flow"]["bpc_finite"] + rows["flow"]["bpc_nonfinite"] == 4, "flow bpc chunk count"
assert (rows["flow"]["bpc_lam"], rows["flow"]["bpc_alpha"]) in ((0.5, 1), (0.2, 3)), rows["flow"]
b = rows["flow"]["bpc"]
assert b == math.inf if rows["flow"]["bpc_nonfinite"] else 0 < b < math.inf, f"flow bpc {b}"
assert len(r["bpc_lam_validation"]) == 2
assert r["args"]["steps"] == 300 and r["train_chars"] == 3523
print(f"ok: n-gram bpc {ng:.3f}, flow jsd unigram {rows['flow']['jsd_unigram']:.3f}, held-out words {rows['heldout']['word_fraction']:.3f}")
PY
# the reference rows alone
"$build/fisherflow" run experiments/text8.lua --data "$tmp/data" --L 32 --samples 4 --bpc_seqs 4 --reference_only \
  --out "$tmp/refonly" > "$tmp/refonly.log" 2>&1 || { cat "$tmp/refonly.log"; fail "text8.lua --reference_only exited non-zero"; }
python3 - "$tmp" <<'PY'
import json, sys
r = json.load(open(sys.argv[1] + "/refonly.json"))
assert set(r["rows"]) == {"ngram", "heldout"}, sorted(r["rows"])
assert r["train_seconds"] is None and r["rows"]["ngram"]["bpc_test_chunked"] > 0
PY
[ ! -e "$tmp/refonly.png" ] && [ -s "$tmp/refonly_chars.png" ] || fail "--reference_only: expected only refonly_chars.png"
echo "PASS: text8_smoke"
