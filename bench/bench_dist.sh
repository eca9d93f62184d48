#!/usr/bin/env bash
# Data-parallel training on this machine: np = 1 with 2 OpenBLAS threads against np = 2 with one
# thread each, on the toy (K = 20, bmlp 512 x 4) and on cnn1d at L = 1024; prints steps/s,
# samples/s and the all-reduce's share of the step (bench_dist.lua). Needs a build with MPI.
#   bench/bench_dist.sh [BUILD_DIR]        (as root: OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$HERE/../build}
FF="$BUILD/fisherflow"
MPIRUN=${MPIRUN:-mpirun}
"$FF" --version | grep -q MPI || { echo "bench_dist: $FF was built without MPI"; exit 1; }
run() {   # run MODEL BATCH STEPS
  OPENBLAS_NUM_THREADS=2 "$FF" run "$HERE/bench_dist.lua" --model "$1" --batch "$2" --steps "$3"
  "$MPIRUN" --oversubscribe --bind-to none -np 2 -x OPENBLAS_NUM_THREADS=1 "$FF" run "$HERE/bench_dist.lua" \
    --model "$1" --batch "$2" --steps "$3"
}
export OPENBLAS_NUM_THREADS=1
run toy 256 ${TOY_STEPS:-40}
run toy 2048 ${TOY_STEPS_BIG:-8}
run cnn1d 16 ${CNN_STEPS:-4}
