#!/usr/bin/env bash
# Faults under `mpirun -np 2` (dist.h):
#  1. rank 1 of a 2-rank flow:fit run (checkpoint every 10 steps) holds after step 30 and is then
#     SIGKILLed: the job must end within LIMIT seconds, with mpirun's message naming rank 1;
#  2. the same command on 1 process (no mpirun) with resume continues from rank 0's last checkpoint
#     (step 30) to the total of 60 steps: fit starts at step 30, and the log holds every step once
#     (fit's resume drops the records the killed job wrote past its checkpoint); resumed on 2 ranks
#     instead, the losses equal an uninterrupted 2-rank run's bit for bit (docs/DISTRIBUTED.md);
#  3. a rank that stops answering without dying (SIGSTOP) is caught by the watchdog: with
#     FF_DIST_TIMEOUT=3 the job ends within LIMIT seconds and rank 0 says it waited 3 s;
#  4. a Lua error on one rank ends the job, with the error and the rank's number.
#   tests/e2e/mpi_fault.sh SOURCE_DIR BUILD_DIR   (MPIRUN, OMPI_ALLOW_RUN_AS_ROOT* from ctest)
set -euo pipefail
SRC=${1:?usage: mpi_fault.sh SOURCE_DIR BUILD_DIR}
BUILD=${2:?usage: mpi_fault.sh SOURCE_DIR BUILD_DIR}
FF="$BUILD/fisherflow"
MPIRUN=${MPIRUN:-mpirun}
LIMIT=${LIMIT:-20}
export OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ff_mpi_fault.XXXXXX")
job=
# on a failure mid-case: end the job and its rank 1 (which may be stopped); never fails itself
cleanup() {
  if [ -n "$job" ]; then
    kill -9 "$job" 2>/dev/null || true
    [ ! -s "$WORK/pid.1" ] || kill -9 "$(cat "$WORK/pid.1")" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "mpi_fault: $*"; exit 1; }

# rank 1 writes its pid and holds (poll sleep, no CPU) in fit's callback after step HOLD
cat >"$WORK/train.lua" <<'LUA'
local ff = require "fisherflow"
local ffi = require "ffi"
pcall(ffi.cdef, "int poll(void *fds, unsigned long nfds, int timeout); int getpid(void);")
local arg = ff.args { out = { "out", "directory" }, hold = { 0, "rank 1 holds after this step (0: never)" },
                      slow = { 0, "rank 1 spends 2 s in this step's callback (0: never)" } }
local flow = ff.flow { sphere = { k = 1, d = 2 }, network = ff.plugin("network", "bmlp", { hidden = 16, depth = 1 }),
                       optim = ff.optim.adamw { lr = 3e-3 }, seed = 11 }
local hist = flow:fit(ff.data.smiley { n = 2048, seed = 1 }, {
  steps = 60, batch = 32, progress = false, log_every = 1, log = arg.out .. "/log.jsonl",
  checkpoint = arg.out .. "/run.safetensors", checkpoint_every = 10, resume = true,
  callback = function(i)
    if ff.dist.rank() == 1 and flow:steps() == arg.slow then
      local f = assert(io.open(arg.out .. "/pid.1", "w")); f:write(ffi.C.getpid()); f:close()
      local t = os.clock() + 2
      while os.clock() < t do end
    end
    if ff.dist.rank() == 1 and flow:steps() == arg.hold then
      local f = assert(io.open(arg.out .. "/pid.1", "w")); f:write(ffi.C.getpid()); f:close()
      for _ = 1, 6000 do ffi.C.poll(nil, 0, 100) end
      error("rank 1 held 600 s and was not killed", 0)
    end
  end })
ff.results(arg.out .. "/start.json", { start = hist.start, steps = flow:steps() })
LUA

wait_for() {   # wait_for SECONDS CONDITION...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
job_done() { ! kill -0 "$job" 2>/dev/null; }

# 1. SIGKILL rank 1 while rank 0 waits for it in the all-reduce
"$MPIRUN" --oversubscribe -np 2 "$FF" run "$WORK/train.lua" --out "$WORK" --hold 30 >"$WORK/kill.out" 2>&1 &
job=$!
ckpt_step() {   # the step recorded in the checkpoint's safetensors header ("" when there is none)
  python3 -c "import json,struct,sys; f=open(sys.argv[1],'rb'); n=struct.unpack('<Q',f.read(8))[0]; print(json.loads(f.read(n))['__metadata__']['step'])" "$WORK/run.safetensors" 2>/dev/null || true
}
at30() { [ -s "$WORK/pid.1" ] && [ "$(ckpt_step)" = 30 ]; }
wait_for 60 at30 || { cat "$WORK/kill.out"; fail "rank 1 never held at step 30 with rank 0's checkpoint of step 30 on disk"; }
t0=$(date +%s.%N)
kill -9 "$(cat "$WORK/pid.1")"
wait_for "$LIMIT" job_done || fail "the job still runs $LIMIT s after rank 1 was SIGKILLed"
rc=0; wait "$job" || rc=$?; job=
t1=$(date +%s.%N)
[ "$rc" -ne 0 ] || fail "the job exited 0 after rank 1 was killed"
grep -q "rank 1" "$WORK/kill.out" || { cat "$WORK/kill.out"; fail "mpirun's message does not name rank 1"; }
echo "1. SIGKILL of rank 1: the job ended in $(python3 -c "print('%.2f' % ($t1 - $t0))") s (status $rc): $(grep -m1 'rank 1' "$WORK/kill.out")"

# 2. resume on 1 process from rank 0's checkpoint
step=$(ckpt_step)
[ "$step" = 30 ] || fail "rank 0's last checkpoint is at step $step, expected 30"
# (2b. the same checkpoint resumed on 2 ranks reproduces an uninterrupted 2-rank run bit for bit)
mkdir -p "$WORK/two" "$WORK/ref"
cp "$WORK/run.safetensors" "$WORK/log.jsonl" "$WORK/two/"
"$MPIRUN" --oversubscribe -np 2 "$FF" run "$WORK/train.lua" --out "$WORK/two" 2>"$WORK/two.err" \
  || { cat "$WORK/two.err"; fail "the 2-rank resume failed"; }
"$MPIRUN" --oversubscribe -np 2 "$FF" run "$WORK/train.lua" --out "$WORK/ref" 2>"$WORK/ref.err" \
  || { cat "$WORK/ref.err"; fail "the uninterrupted 2-rank run failed"; }
python3 - "$WORK/two/log.jsonl" "$WORK/ref/log.jsonl" <<'PY' || fail "the 2-rank resume differs from the uninterrupted 2-rank run"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])][1:]     # after the configuration record
b = [json.loads(l) for l in open(sys.argv[2])][1:]
assert [x["step"] for x in a] == list(range(1, 61)), [x["step"] for x in a]
bad = [(x["step"], x["loss"], y["loss"]) for x, y in zip(a, b) if x["loss"] != y["loss"]]
assert not bad, bad[:3]
PY
echo "2. 2-rank resume from step 30: losses of steps 1..60 equal to an uninterrupted 2-rank run, bit for bit"
rm -f "$WORK/pid.1"
"$FF" run "$WORK/train.lua" --out "$WORK" 2>"$WORK/resume.err" || { cat "$WORK/resume.err"; fail "the 1-process resume failed"; }
python3 - "$WORK/log.jsonl" "$WORK/start.json" <<'PY' || fail "the resumed log"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert "config" in recs[0], recs[0]
steps = [x["step"] for x in recs[1:]]
assert steps == list(range(1, 61)), steps
r = json.load(open(sys.argv[2]))
assert r == {"start": 30, "steps": 60}, r
PY
echo "   1-process --resume continued from step $step to 60; the log holds steps 1..60 once each"

# 2c. SIGTERM to rank 1 alone during step 45: both ranks stop at the end of that step (they agree
# through one all-reduce per step), rank 0 saves the checkpoint of step 45 and says so
rm -f "$WORK/pid.1" "$WORK/run.safetensors" "$WORK/log.jsonl"
"$MPIRUN" --oversubscribe -np 2 "$FF" run "$WORK/train.lua" --out "$WORK" --slow 45 >"$WORK/term.out" 2>&1 &
job=$!
wait_for 60 test -s "$WORK/pid.1" || { cat "$WORK/term.out"; fail "rank 1 never reached step 45"; }
sleep 0.3
kill -TERM "$(cat "$WORK/pid.1")"
wait_for "$LIMIT" job_done || fail "the job still runs $LIMIT s after SIGTERM to rank 1"
rc=0; wait "$job" || rc=$?; job=
[ "$rc" -ne 0 ] || fail "the job exited 0 after SIGTERM"
[ "$(ckpt_step)" = 45 ] || { cat "$WORK/term.out"; fail "SIGTERM during step 45: the checkpoint is at step $(ckpt_step)"; }
grep -q "fisherflow: stopped by SIGTERM at step 45 of 60; checkpoint $WORK/run.safetensors (step 45); run the same command again" "$WORK/term.out" \
  || { cat "$WORK/term.out"; fail "SIGTERM: rank 0's message"; }
echo "2c. SIGTERM to rank 1 during step 45: both ranks stopped there, checkpoint at 45 (job status $rc)"
rm -f "$WORK/pid.1"

# 3. a stopped rank: the watchdog ends the job
rm -f "$WORK/pid.1" "$WORK/run.safetensors" "$WORK/log.jsonl"
FF_DIST_TIMEOUT=3 "$MPIRUN" --oversubscribe -x FF_DIST_TIMEOUT -np 2 "$FF" run "$WORK/train.lua" --out "$WORK" --hold 20 \
  >"$WORK/stop.out" 2>&1 &
job=$!
wait_for 60 test -s "$WORK/pid.1" || { cat "$WORK/stop.out"; fail "rank 1 never reached step 20"; }
t0=$(date +%s.%N)
kill -STOP "$(cat "$WORK/pid.1")"
wait_for "$LIMIT" job_done || fail "the job still runs $LIMIT s after rank 1 stopped (FF_DIST_TIMEOUT=3)"
rc=0; wait "$job" || rc=$?; job=
t1=$(date +%s.%N)
[ "$rc" -ne 0 ] || fail "the job exited 0 with a stopped rank"
grep -q "rank 0 of 2: MPI_Allreduce.*waited 3 s" "$WORK/stop.out" || { cat "$WORK/stop.out"; fail "no watchdog message from rank 0"; }
echo "3. SIGSTOP of rank 1: the watchdog ended the job in $(python3 -c "print('%.2f' % ($t1 - $t0))") s (status $rc)"
# 4. a script error on rank 1 alone: the job ends (rank 0 would wait in its barrier), naming rank 1
cat >"$WORK/err.lua" <<'LUA'
local ff = require "fisherflow"
if ff.dist.rank() == 1 then error("bad input on this rank", 0) end
ff.dist.barrier()
LUA
rc=0; timeout "$LIMIT" "$MPIRUN" --oversubscribe -np 2 "$FF" run "$WORK/err.lua" >"$WORK/err.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { cat "$WORK/err.out"; fail "a script error on rank 1: status $rc (124: hung)"; }
grep -q "fisherflow: bad input on this rank" "$WORK/err.out" && grep -q "rank 1 of 2: the script failed" "$WORK/err.out" \
  || { cat "$WORK/err.out"; fail "the error of rank 1 is not reported with its rank"; }
echo "4. a script error on rank 1 ended the job (status $rc) naming rank 1"
echo "mpi_fault: ok"
