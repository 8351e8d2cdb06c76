#!/usr/bin/env bash
# Builds the runtime and its concurrency test with ThreadSanitizer (clang-19)
# in build-tsan and runs the 8-thread x 1000-run tests on a model and on an
# ensemble, on a pool of KILN_NUM_THREADS (default 4) threads. The test
# models are those the main build compiled (MAIN_BUILD/tests/runtime/
# artifacts, target kiln_runtime_test_artifacts). Exits non-zero on a race.
#
#   scripts/run-tsan.sh [MAIN_BUILD]    (default: build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
main_build=${1:-$root/build}
artifacts=$(cd "$main_build" && pwd)/tests/runtime/artifacts
build=$root/build-tsan

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$root/tests/runtime/tsan" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 "${launcher[@]}" \
  -DKILN_RUNTIME_TEST_ARTIFACTS="$artifacts"
ninja -C "$build" kiln_runtime_tsan_tests

export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
export KILN_NUM_THREADS=${KILN_NUM_THREADS:-4}
"$build/kiln_runtime_tsan_tests" "[concurrency]"
