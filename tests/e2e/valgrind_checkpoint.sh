#!/usr/bin/env bash
# Runs an end-to-end C path under valgrind (memcheck, full leak check; any error fails):
# short trainings with checkpoint save/load, bit-exact resume, sampling after load, NaN refusal
# (test_checkpoint), the safetensors/sequence readers on good and malformed input (test_io), and the
# smiley data (test_data, quick cases). OpenBLAS runs single-threaded, so its thread pool does not
# appear and no suppression file is needed.
#   tests/e2e/valgrind_checkpoint.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=${1:?usage: valgrind_checkpoint.sh SOURCE_DIR BUILD_DIR}  # unused: the tests know their paths
BUILD=${2:?usage: valgrind_checkpoint.sh SOURCE_DIR BUILD_DIR}
command -v valgrind >/dev/null || { echo "valgrind not installed (scripts/setup installs it)"; exit 1; }
export OPENBLAS_NUM_THREADS=1
VG=(valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes --quiet)
run() {
  echo "== valgrind $*"
  local t0=$SECONDS
  "${VG[@]}" "$@"
  echo "   ($((SECONDS - t0)) s)"
}
run "$BUILD/tests/test_checkpoint" bit_exact_resume_independent bit_exact_resume_exact_ot_ema \
    file_layout_and_metadata refusals_leave_flow_untouched nan_batch_writes_no_garbage sampling_after_load
run "$BUILD/tests/test_io"
run "$BUILD/tests/test_data" smiley_geometry toy_categorical_table
echo "valgrind: no errors, no leaks"
