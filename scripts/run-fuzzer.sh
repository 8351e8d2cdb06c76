#!/usr/bin/env bash
# Builds the ONNX importer fuzzer (clang-19, ASan + UBSan, libFuzzer) in
# build-fuzz and runs it for SECONDS on a seed corpus made of tests/malformed
# and small valid models. Exits non-zero when the fuzzer finds a crash; the
# crashing input is left in build-fuzz/fuzz-artifacts/.
#
#   scripts/run-fuzzer.sh SECONDS
set -euo pipefail

if [ $# -ne 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS" >&2
  exit 2
fi
seconds=$1
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
python=/usr/bin/python3

# fuzzer-no-link gives every library libFuzzer's coverage instrumentation, so
# the fuzzer sees inside the importer, not only the harness.
sanitize="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
  -DCMAKE_C_FLAGS="$sanitize" -DCMAKE_CXX_FLAGS="$sanitize" \
  -DKILN_FUZZ=ON -DKILN_BUILD_TRAINER=OFF
ninja -C "$build" kiln_importer_fuzzer

# Seeds are rebuilt each run; the corpus the fuzzer grows is kept across runs.
seeds=$build/fuzz-seeds
corpus=$build/fuzz-corpus
artifacts=$build/fuzz-artifacts
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus" "$artifacts"
if [ -d "$root/tests/malformed" ]; then
  find "$root/tests/malformed" -type f ! -name EXPECTED.tsv -size -1M -exec cp {} "$seeds/" \;
fi
find "$root/tests" "$root/examples" -name '*.onnx' -type f -size -1M -exec cp {} "$seeds/" \; 2>/dev/null || true
"$python" "$root/tests/cli/make_models.py" "$build/fuzz-models"
cp "$build"/fuzz-models/*.onnx "$seeds/"
echo "run-fuzzer: $(ls "$seeds" | wc -l) seed files, $(ls "$corpus" | wc -l) corpus files, ${seconds}s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
"$build/tests/fuzz/kiln_importer_fuzzer" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 \
  "$corpus" "$seeds" || status=$?
if [ "$status" -ne 0 ]; then
  echo "run-fuzzer: finding (exit $status); inputs in $artifacts:" >&2
  ls -l "$artifacts" >&2
fi
exit "$status"
