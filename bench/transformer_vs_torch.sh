#!/bin/sh
# bench/transformer_vs_torch.sh — interleaved rounds of bench_transformer (fisherflow) and
# torch_transformer.py (PyTorch) at the same thread count, so both see the same machine load.
#   bench/transformer_vs_torch.sh <build dir> [rounds=3] [threads=1] [extra args for both, e.g. --steps 5]
# Ratio per round = torch median / fisherflow median (cond=add is the like-for-like row).
set -eu
build=${1:?usage: transformer_vs_torch.sh <build dir> [rounds] [threads] [args..]}
rounds=${2:-3}
threads=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
here=$(dirname "$0")
i=1
while [ "$i" -le "$rounds" ]; do
  echo "== round $i  $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
  OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads "$build/bench/bench_transformer" "$@"
  OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads \
    /usr/bin/python3 "$here/torch_transformer.py" --threads "$threads" "$@" | grep -E "OpenBLAS|step:"
  i=$((i + 1))
done
