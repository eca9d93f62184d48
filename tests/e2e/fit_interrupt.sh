#!/usr/bin/env bash
# Ctrl-C / SIGTERM during flow:fit (issue 19): a running `fisherflow run` that gets SIGINT during
# step 20 (made slow by the script's callback) stops at
# the end of the current step, saves its checkpoint at that step, closes the log (whole records),
# prints where it stopped and how to resume, and exits with 128 + 2; the resumed run continues to
# the total. SIGTERM the same (143). Two SIGINTs in a row end it at once (status 130, by the
# signal's default action, no message).
#   tests/e2e/fit_interrupt.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=${1:?usage: fit_interrupt.sh SOURCE_DIR BUILD_DIR}
BUILD=${2:?usage: fit_interrupt.sh SOURCE_DIR BUILD_DIR}
FF="$BUILD/fisherflow"
export OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ff_interrupt.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$WORK"' EXIT
fail() { echo "fit_interrupt: $*"; [ -f "$WORK/err" ] && cat "$WORK/err"; exit 1; }

cat >"$WORK/train.lua" <<'LUA'
local ff = require "fisherflow"
local arg = ff.args { out = { "out", "directory" }, resume = { false, "resume" } }
local data = ff.data.smiley { n = 2048, seed = 1 }
local flow = ff.flow { sphere = { k = 1, d = 2 }, network = ff.plugin("network", "bmlp", { hidden = 64, depth = 2 }), seed = 3 }
-- step 20 takes 1.5 s (a busy callback): the signals arrive while it runs
local h = flow:fit(data, { steps = 100000, batch = 64, progress = false, log = arg.out .. "/log.jsonl", log_every = 1,
                           checkpoint = arg.out .. "/ck.safetensors", resume = arg.resume,
                           callback = function(i)
                             if i ~= 20 then return end
                             io.open(arg.out .. "/started", "w"):close()
                             local t = os.clock() + 1.5
                             while os.clock() < t do end
                           end })
print("finished at " .. flow:steps())
LUA

run_and_signal() {   # $1: signal(s) to send, one after another
  rm -f "$WORK/started" "$WORK/ck.safetensors" "$WORK/log.jsonl"
  "$FF" run "$WORK/train.lua" --out "$WORK" 2>"$WORK/err" &
  pid=$!
  for _ in $(seq 1 600); do [ -f "$WORK/started" ] && break; sleep 0.05; done
  [ -f "$WORK/started" ] || fail "training did not start"
  sleep 0.2
  for s in $1; do kill -s "$s" "$pid"; sleep 0.1; done
  set +e; wait "$pid"; rc=$?; set -e
  pid=
}

step_of() {
  python3 -c "import json,struct,sys; f=open(sys.argv[1],'rb'); n=struct.unpack('<Q',f.read(8))[0]; print(json.loads(f.read(n))['__metadata__']['step'])" "$1"
}

# 1. SIGINT
run_and_signal INT
[ "$rc" = 130 ] || fail "SIGINT: exit status $rc, expected 130"
[ -f "$WORK/ck.safetensors" ] || fail "SIGINT: no checkpoint written"
step=$(step_of "$WORK/ck.safetensors")
grep -q "fisherflow: stopped by SIGINT at step $step of 100000; checkpoint $WORK/ck.safetensors (step $step); to continue, run it again with resume = true" "$WORK/err" \
  || fail "SIGINT: message"
last=$(python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(r[-1]['step'])" "$WORK/log.jsonl") \
  || fail "SIGINT: the log is not whole JSON lines"
[ "$step" = 20 ] || fail "SIGINT during step 20: the checkpoint is at step $step"
[ "$last" = "$step" ] || fail "SIGINT: the log ends at step $last, the checkpoint at $step"
echo "1. SIGINT: stopped at step $step, checkpoint and log at that step, exit 130, message:"
grep "stopped by" "$WORK/err"

# the checkpoint resumes (a short total, so the resumed run finishes)
cat >"$WORK/resume.lua" <<LUA
local ff = require "fisherflow"
local flow = ff.flow { sphere = { k = 1, d = 2 }, network = ff.plugin("network", "bmlp", { hidden = 64, depth = 2 }), seed = 3 }
local h = flow:fit(ff.data.smiley { n = 2048, seed = 1 }, { steps = $step + 3, batch = 64, progress = false,
                   checkpoint = "$WORK/ck.safetensors", resume = true })
assert(h.start == $step and flow:steps() == $step + 3, "resumed from " .. h.start .. " to " .. flow:steps())
print("resumed from $step")
LUA
"$FF" run "$WORK/resume.lua" || fail "the interrupted checkpoint does not resume"

# 2. SIGTERM
run_and_signal TERM
[ "$rc" = 143 ] || fail "SIGTERM: exit status $rc, expected 143"
grep -q "fisherflow: stopped by SIGTERM at step" "$WORK/err" || fail "SIGTERM: message"
[ -f "$WORK/ck.safetensors" ] || fail "SIGTERM: no checkpoint written"
echo "2. SIGTERM: exit 143, checkpoint at step $(step_of "$WORK/ck.safetensors")"

# 3. two SIGINTs: out at once, by the signal
run_and_signal "INT INT"
[ "$rc" = 130 ] || fail "two SIGINTs: exit status $rc, expected 130"
grep -q "stopped by SIGINT" "$WORK/err" && fail "two SIGINTs: the run went on to the clean stop"
echo "3. two SIGINTs: ended at once (status 130)"
echo "fit_interrupt: ok"
