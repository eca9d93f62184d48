#!/usr/bin/env bash
# Bit-exact resume after SIGKILL, through the runner and the Lua API:
#  1. an uninterrupted run of STEPS training steps writes every step's loss (%.17g) to a JSONL file;
#  2. the same run through flow:fit{ checkpoint =, checkpoint_every = EVERY, resume = true } is
#     killed with SIGKILL mid-run (after its first checkpoint), then the same command is run again:
#     fit loads the checkpoint and trains the remaining steps up to the total;
#  3. every loss the resumed run logs must equal the uninterrupted run's loss at that step, bit for
#     bit, and so must the losses logged before the kill; the final parameters must match too.
# Minibatch rows come from the flow's training stream (flow:fit draws them from ff_flow_rng), which
# the checkpoint saves, so no data stream lives outside the checkpoint.
# Nothing here depends on timing: the kill is sent once a checkpoint and half a checkpoint interval
# of steps after it are on disk (polled, no fixed number of tries), and the killed run holds
# (blocks, without using the CPU) before its last checkpoint interval, so however late the kill comes
# under load it lands mid-run with a checkpoint behind it and steps left to resume. SIGKILL goes to
# the training process itself (its pid, never a subshell's: killing a subshell would leave the
# trainer running on, writing the same log and checkpoint as the resumed run).
#   tests/e2e/resume_sigkill.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=${1:?usage: resume_sigkill.sh SOURCE_DIR BUILD_DIR}
BUILD=${2:?usage: resume_sigkill.sh SOURCE_DIR BUILD_DIR}
FF="$BUILD/fisherflow"
[ -x "$FF" ] || { echo "resume_sigkill: $FF not built"; exit 1; }
export OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ff_resume.XXXXXX")
pid=
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null; rm -rf "$WORK"' EXIT
STEPS=${STEPS:-1500}
EVERY=${EVERY:-100}
HOLD=$((STEPS - EVERY / 2))   # the killed run blocks after this step: before its end, so its last
                              # checkpoint is before STEPS and the resumed run always has steps to train
[ "$HOLD" -gt $((EVERY + EVERY / 2)) ] || { echo "resume_sigkill: STEPS=$STEPS too small for EVERY=$EVERY"; exit 1; }

# killed_when PID WHAT CONDITION...: poll CONDITION until it holds (the process can only move
# forward, and it holds before its end, so there is no race), then SIGKILL PID and check that it
# died of that signal. Fails, rather than killing at the wrong moment, if PID exits first or
# CONDITION does not hold within 15 minutes.
killed_when() {
  local p=$1 what=$2 deadline=$((SECONDS + 900)) rc=0
  shift 2
  until "$@"; do
    kill -0 "$p" 2>/dev/null || { wait "$p" || rc=$?; pid=
      echo "resume_sigkill: $what exited (status $rc) before it could be killed"
      [ ! -s "$WORK/killed.err" ] || tail -n 20 "$WORK/killed.err"; return 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "resume_sigkill: $what: no checkpoint to kill after in 900 s"; return 1; }
    sleep 0.02
  done
  kill -9 "$p" || { echo "resume_sigkill: $what could not be killed"; return 1; }
  wait "$p" 2>/dev/null || rc=$?
  pid=
  [ "$rc" -eq 137 ] || { echo "resume_sigkill: $what exited with status $rc, not by SIGKILL"; return 1; }
}
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

# hold.lua: block until killed (a poll(2) sleep; gives up with an error after 15 minutes so that
# an abandoned process cannot hang around).
cat >"$WORK/hold.lua" <<'LUA'
local ffi = require "ffi"
pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout);")
return function(what)
  io.stderr:write(what, ": holding until killed\n")
  local t0 = os.time()
  while os.time() - t0 < 900 do ffi.C.poll(nil, 0, 100) end
  error(what .. ": held 900 s and was not killed", 0)
end
LUA
# held.lua HOLD SCRIPT ARGS...: runs SCRIPT with ARGS, holding (until killed) before the flow's step
# HOLD + 1; the steps up to HOLD run unchanged.
cat >"$WORK/held.lua" <<'LUA'
local at, script = tonumber((...)), select(2, ...)
package.loaded["fisherflow.script"] = { path = script, args = { select(3, ...) } }
local Flow = require("fisherflow.flow").Flow
local step, hold = Flow.step, require "hold"
function Flow.step(self, ...)
  if self:steps() >= at then hold(script .. " at step " .. self:steps()) end
  return step(self, ...)
end
dofile(script)
LUA

cat >"$WORK/train.lua" <<'LUA'
-- A small toy-task training through flow:fit whose every step's loss is logged by the callback;
-- with --ckpt, fit saves a checkpoint every --every steps and at the end, and resumes from it.
local ff = require "fisherflow"
local arg = ff.args {
  steps  = { 300, "training steps (the run's total)" },
  every  = { 0, "checkpoint every this many steps (0: only at the end)" },
  ckpt   = { "", "checkpoint path (none: no checkpoints, no resume)" },
  log    = { "", "JSONL of per-step losses" },
  final  = { "", "where to save the final parameters" },
  hold   = { 0, "block (until killed) once this step is logged (0: never)" },
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
-- the per-step log continues (appends) when there is a checkpoint to resume from
local resuming = false
if arg.ckpt ~= "" then
  local f = io.open(arg.ckpt, "rb")
  if f then f:close(); resuming = true end
end
local log = assert(io.open(arg.log, resuming and "a" or "w"))
local opts = { steps = arg.steps, batch = 128, progress = false,
               callback = function(_, s)
                 log:write(string.format('{"step": %d, "loss": "%.17g"}\n', s.step, s.loss))
                 log:flush()
                 if s.step == arg.hold then require "hold" ("train.lua at step " .. s.step) end
               end }
if arg.ckpt ~= "" then opts.checkpoint, opts.checkpoint_every, opts.resume = arg.ckpt, arg.every, true end
local hist = flow:fit(data, opts)
assert(flow:steps() == arg.steps, "fit stopped at " .. flow:steps())
io.stderr:write(("fit ran steps %d..%d\n"):format(hist.start + 1, flow:steps()))
log:close()
if arg.final ~= "" then flow:save(arg.final) end
LUA

run() { "$FF" run "$WORK/train.lua" --steps "$STEPS" "$@"; }

t0=$SECONDS
run --log "$WORK/ref.jsonl" --final "$WORK/ref_final.safetensors"
echo "uninterrupted: $STEPS steps in $((SECONDS - t0)) s"

"$FF" run "$WORK/train.lua" --steps "$STEPS" --every "$EVERY" --ckpt "$WORK/ck.safetensors" --log "$WORK/run.jsonl" \
    --hold "$HOLD" &
pid=$!   # the runner itself (not a subshell), so SIGKILL hits the training process
# kill once the first checkpoint and half an interval of steps after it are logged: anywhere from
# there to step HOLD, depending on how the two processes are scheduled
killed_when $pid "the training run" \
  eval '[ -f "$WORK/ck.safetensors" ] && [ "$(lines "$WORK/run.jsonl")" -ge $((EVERY + EVERY / 2)) ]'
killed_at=$(wc -l <"$WORK/run.jsonl")
ck_step=$("$FF" run /dev/stdin <<LUA
local ff = require "fisherflow"
print(ff.checkpoint.meta("$WORK/ck.safetensors").step)
LUA
)
echo "killed after $killed_at logged steps; last checkpoint at step $ck_step"
# the checkpoint's step is logged before it is saved (fit calls back before it saves), and there is
# one to resume from with steps left; a kill just after a save loses no logged steps, but the
# resumed run still trains every step after the checkpoint in a new process
[ "$ck_step" -ge "$EVERY" ] && [ "$ck_step" -lt "$STEPS" ] && [ "$ck_step" -le "$killed_at" ] \
  || { echo "resume_sigkill: checkpoint at step $ck_step after $killed_at logged steps: not a mid-run kill"; exit 1; }

run --every "$EVERY" --ckpt "$WORK/ck.safetensors" --log "$WORK/run.jsonl" \
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

# 4. The same for experiments/toy_dfm.lua, which runs its own loop over flow:step and draws data from
# its own stream (saved in the checkpoint's run table): kill it after a checkpoint, rerun the same
# command, and compare its log (every loss and grad-norm record) and results with an uninterrupted run.
TOY_STEPS=${TOY_STEPS:-400}
TOY=(--K 5 --steps "$TOY_STEPS" --batch 32 --samples 256)
t0=$SECONDS
"$FF" run "$SRC/experiments/toy_dfm.lua" "${TOY[@]}" --out "$WORK/toy_ref" >/dev/null 2>&1
echo "toy_dfm uninterrupted: ${TOY[*]} in $((SECONDS - t0)) s"
TOY_HOLD=$((TOY_STEPS - 50))   # before the end (toy_dfm also saves at its last step): steps always left to resume
[ "$TOY_HOLD" -gt 150 ] || { echo "resume_sigkill: TOY_STEPS=$TOY_STEPS too small"; exit 1; }
TOY_CK=(--out "$WORK/toy" --checkpoint-every 100 --resume)
# the runner itself in the background (a shell function there would run in a subshell, and SIGKILL
# would hit that subshell and leave toy_dfm training on), held before step TOY_HOLD + 1
"$FF" run "$WORK/held.lua" "$TOY_HOLD" "$SRC/experiments/toy_dfm.lua" "${TOY[@]}" "${TOY_CK[@]}" \
    >/dev/null 2>"$WORK/killed.err" &
pid=$!
# the step of the log's last whole record (ff.log writes keys sorted, "step" last; a line cut off
# mid-write has no closing brace), 0 if none; polled every 20 ms, so sed, not an interpreter per poll
last_step() {
  local s=
  [ ! -s "$1" ] || s=$(sed -n 's/.*"step" *: *\([0-9][0-9]*\) *}.*/\1/p' "$1" | tail -n 1)
  echo "${s:-0}"
}
# kill once the checkpoint at step 100 and a log record at step >= 150 are written
killed_when $pid "toy_dfm" eval '[ -f "$WORK/toy.safetensors" ] && [ "$(last_step "$WORK/toy.jsonl")" -ge 150 ]'
toy_logged=$(last_step "$WORK/toy.jsonl")
toy_ck=$("$FF" run /dev/stdin <<LUA
local ff = require "fisherflow"
print(ff.checkpoint.meta("$WORK/toy.safetensors").step)
LUA
)
echo "toy_dfm killed after logging step $toy_logged; last checkpoint at step $toy_ck"
[ "$toy_ck" -ge 100 ] && [ "$toy_ck" -lt "$TOY_STEPS" ] && [ "$toy_ck" -le "$toy_logged" ] \
  || { echo "resume_sigkill: toy_dfm checkpoint at step $toy_ck after logging step $toy_logged: not a mid-run kill"; exit 1; }
"$FF" run "$SRC/experiments/toy_dfm.lua" "${TOY[@]}" "${TOY_CK[@]}" >/dev/null 2>&1
python3 - "$WORK/toy_ref" "$WORK/toy" <<'PY' || exit 1
import json, sys
def log(p): return [{k: v for k, v in json.loads(l).items() if k != "elapsed"} for l in open(p + ".jsonl")]
a, b = log(sys.argv[1]), log(sys.argv[2])
bad = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
timing = ("train_seconds", "eval_seconds")
ja, jb = json.load(open(sys.argv[1] + ".json")), json.load(open(sys.argv[2] + ".json"))
diff = [k for k in sorted(set(ja) | set(jb)) if k not in timing and ja.get(k) != jb.get(k)]
print("toy_dfm: compared %d log records (loss, grad_norm): %d differ; results differ in: %s"
      % (len(a), bad, ", ".join(diff) or "nothing (timings aside)"))
sys.exit(1 if bad or diff else 0)
PY
echo "resume_sigkill: toy_dfm resumed after SIGKILL identical to the uninterrupted run ($((SECONDS - t0)) s)"
