#!/usr/bin/env bash
# experiments/toy_sweep.sh — the paper's Fig. 3 sweep (docs/PAPER_PROTOCOLS.md §2): experiments/toy_dfm.lua for every
# K x coupler x geometry, then experiments/toy_sweep.lua collects the runs into <out>/sweep.json
# (one row per run, with its budget) and <out>/sweep.png (KL against K, log y, with the paper's
# preliminary Fisher-Flow and Dirichlet-FM numbers as dashed reference series).
# Runs whose JSON exists are skipped, so an interrupted sweep resumes where it stopped.
#   experiments/toy_sweep.sh --steps 500 --samples 20480 --jobs 2
#   experiments/toy_sweep.sh --Ks "20 160" --couplers exact_ot --geometries "sphere linear"
#   experiments/toy_sweep.sh --steps 12000 --ema 0.999 --couplers exact_ot   (sample with EMA weights)
# Paper budget (does not fit a laptop): --steps 98000 --samples 512000.
# Every run keeps its final weights in <run>.safetensors, so it can be evaluated again with more
# samples without retraining: copy <run>.{safetensors,jsonl} to a new prefix P and run
#   fisherflow run experiments/toy_dfm.lua <the run's options> --out P --checkpoint-every S --resume --samples N
set -euo pipefail
cd "$(dirname "$0")/.."

bin=build/fisherflow out=out/toy_sweep steps=2000 samples=51200 jobs=1 seed=1 ema=0
Ks="5 10 20 40 60 80 100 120 140 160" couplers="exact_ot independent" geometries="sphere linear"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2 ;; --out) out=$2 ;; --steps) steps=$2 ;; --samples) samples=$2 ;;
    --jobs) jobs=$2 ;; --seed) seed=$2 ;; --Ks) Ks=$2 ;; --couplers) couplers=$2 ;;
    --geometries) geometries=$2 ;; --ema) ema=$2 ;;
    -h|--help) sed -n '2,13p' "$0"; echo "options: --bin --out --steps --samples --jobs --seed --Ks --couplers --geometries --ema"; exit 0 ;;
    *) echo "toy_sweep.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done
[ -x "$bin" ] || { echo "toy_sweep.sh: $bin is not an executable (build first, or pass --bin)" >&2; exit 2; }
mkdir -p "$out"

# One line per run, geometry- then coupler-major so the main curve (sphere, exact_ot) finishes first.
# EMA runs get their own names: they are a different budget, not a rerun of the live-weight one.
runs=() tag=""
[ "$ema" = 0 ] || tag="_ema$ema"
for g in $geometries; do for c in $couplers; do for K in $Ks; do
  name="$out/${g}_${c}_K${K}_s${steps}_n${samples}${tag}_seed${seed}"
  [ -f "$name.json" ] || runs+=("$g $c $K $name")
done; done; done
echo "toy_sweep.sh: ${#runs[@]} runs to do (steps $steps, samples $samples, ema $ema, jobs $jobs)"

export bin steps samples seed ema
if [ ${#runs[@]} -gt 0 ]; then
  printf '%s\n' "${runs[@]}" | xargs -P "$jobs" -L 1 bash -c '
    OPENBLAS_NUM_THREADS=1 "$bin" run experiments/toy_dfm.lua --geometry "$0" --coupler "$1" --K "$2" \
      --steps "$steps" --samples "$samples" --seed "$seed" --ema "$ema" --checkpoint-every "$steps" --out "$3" > "$3.log" 2>&1 \
      && tail -n 1 "$3.log" || { echo "FAILED: $3 (see $3.log)"; exit 0; }'
fi
"$bin" run experiments/toy_sweep.lua --dir "$out"
