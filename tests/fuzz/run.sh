#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (own build directory) and runs each for a bounded time.
#   tests/fuzz/run.sh BUILD_DIR SECONDS
# Seed corpora (tests/fuzz/corpus_*) are read, never written: new inputs go to BUILD_DIR/corpus_*.
# Crashes are written to BUILD_DIR/crash-<harness>-*; the script then exits non-zero. Prints, per
# harness, the executions, runtime and executions/s that libFuzzer reported.
set -euo pipefail
BUILD=${1:?usage: run.sh BUILD_DIR SECONDS}
SECS=${2:?usage: run.sh BUILD_DIR SECONDS}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CC=${CC:-clang}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)

LIBSRC="$SRC/core/io/io_safetensors.c $SRC/core/io/io_sequences.c $SRC/core/io/io_json.c $SRC/core/base/tensor.c $SRC/core/base/error.c"
FLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$SRC/core/include"

status=0
for h in safetensors sequences; do
  $CC $FLAGS "$HERE/fuzz_$h.c" $LIBSRC -lm -o "$BUILD/fuzz_$h"
  mkdir -p "$BUILD/corpus_$h"
  log="$BUILD/fuzz_$h.log"
  set +e
  "$BUILD/fuzz_$h" -max_total_time="$SECS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -dict="$HERE/$h.dict" -artifact_prefix="$BUILD/crash-$h-" \
      "$BUILD/corpus_$h" "$HERE/corpus_$h" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || echo "cov: ?")
  echo "fuzz_$h: $runs executions in ${SECS}s, $eps exec/s, $cov, corpus $(ls "$BUILD/corpus_$h" | wc -l) files, exit $rc"
  if [ $rc -ne 0 ]; then
    echo "fuzz_$h FAILED; last lines of $log:"; tail -40 "$log"; status=1
  fi
done
exit $status
