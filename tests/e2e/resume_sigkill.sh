#!/usr/bin/env bash
# Bit-exact resume after SIGKILL, through the runner and the Lua API:
#  1. an uninterrupted run of STEPS training steps writes every step's loss (%.17g) to a JSONL file;
#  2. the same run with a checkpoint every EVERY steps is killed with SIGKILL mid-run (after its
#     first checkpoint), then restarted with --resume: it loads the checkpoint (flow:load) and goes on;
#  3. every loss the resumed run logs must equal the uninterrupted run's loss at that step, bit for
#     bit, and so must the losses logged before the kill; the final parameters must match too.
# Minibatch rows come from the flow's training stream (flow:fit draws them from ff_flow_rng), which
# the checkpoint saves, so no data stream lives outside the checkpoint.
#   tests/e2e/resume_sigkill.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=${1:?usage: resume_sigkill.sh SOURCE_DIR BUILD_DIR}
BUILD=${2:?usage: resume_sigkill.sh SOURCE_DIR BUILD_DIR}
FF="$BUILD/fisherflow"
[ -x "$FF" ] || { echo "resume_sigkill: $FF not built"; exit 1; }
export OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ff_resume.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STEPS=${STEPS:-1500}
EVERY=${EVERY:-100}

cat >"$WORK/train.lua" <<'LUA'
-- A small toy-task training whose every step is logged; checkpoints every --every steps.
local ff = require "fisherflow"
local arg = ff.args {
  steps  = { 300, "training steps" },
  every  = { 0, "checkpoint every this many steps (0: never)" },
  ckpt   = { "", "checkpoint path" },
  resume = { false, "continue from --ckpt if it exists" },
  log    = { "", "JSONL of per-step losses" },
  final  = { "", "where to save the final parameters" },
}
local truth = ff.data.toy_categorical { k = 3, K = 5, seed = 4 }
local data = ff.data.sample_categorical(truth, 2000, { rng = ff.rng(5) })
local flow = ff.flow {
  space   = ff.sphere { k = 3, d = 4 },
  source  = ff.plugin("source", "uniform_sphere"),
  coupler = ff.plugin("coupler", "exact_ot"),
  network = ff.plugin("network", "bmlp", { hidden = 64, depth = 3, emb = 16 }),
  optim   = ff.optim.adamw { lr = 2e-3, weight_decay = 0 },
  ema     = 0.99,
  seed    = 11,
}
local mode = "w"
if arg.resume then
  local f = io.open(arg.ckpt, "rb")
  if f then f:close(); flow:load(arg.ckpt); mode = "a" end
end
local log = assert(io.open(arg.log, mode))
while flow:steps() < arg.steps do
  flow:fit(data, { steps = 1, batch = 128, progress = false,
                   callback = function(_, s)
                     log:write(string.format('{"step": %d, "loss": "%.17g"}\n', s.step, s.loss))
                     log:flush()
                   end })
  if arg.every > 0 and flow:steps() % arg.every == 0 then flow:save(arg.ckpt) end
end
log:close()
if arg.final ~= "" then flow:save(arg.final) end
LUA

run() { "$FF" run "$WORK/train.lua" --steps "$STEPS" "$@"; }

t0=$SECONDS
run --log "$WORK/ref.jsonl" --final "$WORK/ref_final.safetensors"
echo "uninterrupted: $STEPS steps in $((SECONDS - t0)) s"

"$FF" run "$WORK/train.lua" --steps "$STEPS" --every "$EVERY" --ckpt "$WORK/ck.safetensors" --log "$WORK/run.jsonl" &
pid=$!   # the runner itself (not a subshell), so SIGKILL hits the training process
# wait for the first checkpoint plus a few steps, then kill at a moment that is not a checkpoint step
for _ in $(seq 1 6000); do
  [ -f "$WORK/ck.safetensors" ] && [ "$(wc -l <"$WORK/run.jsonl")" -ge $((EVERY + EVERY / 2)) ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
kill -9 $pid 2>/dev/null || { echo "resume_sigkill: the run ended before it could be killed; raise STEPS"; exit 1; }
wait $pid 2>/dev/null || true
killed_at=$(wc -l <"$WORK/run.jsonl")
ck_step=$("$FF" run /dev/stdin <<LUA
local ff = require "fisherflow"
print(ff.checkpoint.meta("$WORK/ck.safetensors").step)
LUA
)
echo "killed after $killed_at logged steps; last checkpoint at step $ck_step"
[ "$ck_step" -lt "$killed_at" ] || { echo "resume_sigkill: no steps were lost to the kill; the test proves nothing"; exit 1; }

run --every "$EVERY" --ckpt "$WORK/ck.safetensors" --resume true --log "$WORK/run.jsonl" \
    --final "$WORK/run_final.safetensors"

# Compare: for every logged step (the killed segment, then the resumed one, which repeats the steps
# after the checkpoint), the loss string must equal the reference's.
python3 - "$WORK/ref.jsonl" "$WORK/run.jsonl" "$STEPS" "$ck_step" "$killed_at" <<'PY' || exit 1
import json, sys
ref = {}
for line in open(sys.argv[1]):
    r = json.loads(line); ref[r["step"]] = r["loss"]
steps, ck, killed = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
seen, bad, resumed = 0, 0, 0
for line in open(sys.argv[2]):
    r = json.loads(line)
    seen += 1
    if ref.get(r["step"]) != r["loss"]:
        bad += 1
        if bad <= 5: print("step %d: resumed %s, uninterrupted %s" % (r["step"], r["loss"], ref.get(r["step"])))
last = {}
for line in open(sys.argv[2]): r = json.loads(line); last[r["step"]] = r["loss"]
if sorted(last) != list(range(1, steps + 1)):
    print("logged steps are not 1..%d" % steps); sys.exit(1)
if seen != killed + steps - ck:   # a resume that silently restarted from step 1 would log more
    print("%d lines logged, expected %d killed + %d resumed" % (seen, killed, steps - ck)); sys.exit(1)
print("compared %d logged losses (steps %d..%d re-run after the kill): %d differ" % (seen, ck + 1, steps, bad))
sys.exit(1 if bad else 0)
PY
cmp "$WORK/ref_final.safetensors" "$WORK/run_final.safetensors" >/dev/null \
  || { echo "resume_sigkill: final checkpoints differ"; exit 1; }
echo "resume_sigkill: resumed run identical to the uninterrupted one (losses and final checkpoint bytes)"
