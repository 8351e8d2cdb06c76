#!/usr/bin/env bash
# Builds kiln with warnings as errors, runs the whole CTest suite, the
# runtime's concurrency test under ThreadSanitizer, then the importer fuzzer
# for a bounded time. This is README's test command and CI's.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
JOBS=${JOBS:-$(nproc)}

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WERROR=ON -DKILN_BUILD_TESTS=ON
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
bash scripts/run-tsan.sh "$BUILD_DIR"
bash scripts/run-fuzzer.sh "$FUZZ_SECONDS"
