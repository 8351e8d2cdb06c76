#!/usr/bin/env bash
# README's main command: build kiln, compile the shipped Fashion-MNIST model
# to a native shared library and classify a test image with it.
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
"$kiln" inspect examples/fashion_mnist/cnn.onnx --after-passes
"$kiln" compile examples/fashion_mnist/cnn.onnx -o "$out/cnn.so" --header "$out/cnn.h"
"$kiln" run "$out/cnn.so" --input "image=$out/image.npy" --output-dir "$out" \
  --top-k 3 --labels examples/fashion_mnist/labels.txt
