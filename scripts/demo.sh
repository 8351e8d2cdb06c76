#!/usr/bin/env bash
# README's main command: build kiln, compile the shipped Fashion-MNIST
# ensemble (three trained members and their learned weights) into one native
# shared library, and classify a test image with it through the runtime.
# Usage: scripts/demo.sh [TEST_IMAGE_INDEX]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
INDEX=${1:-0}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD_DIR" --target kiln
kiln="$BUILD_DIR/tools/kiln"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 scripts/fashion_mnist.py "$INDEX" "$out/image.npy"
"$kiln" compile --ensemble examples/fashion_mnist/ensemble/ensemble.json -o "$out/ensemble.so" \
  --header "$out/ensemble.h"
"$kiln" predict "$out/ensemble.so" --input "input=$out/image.npy" --output-dir "$out"
