#!/usr/bin/env bash
# README's main command: build kiln, then classify a Fashion-MNIST test image
# with the shipped demo model using the reference interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
INDEX=${1:-0}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_BUILD_TESTS=OFF
cmake --build "$BUILD_DIR" --target kiln
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 scripts/fashion_mnist.py "$INDEX" "$out/image.npy"
"$BUILD_DIR/tools/kiln" inspect examples/fashion_mnist/cnn.onnx
"$BUILD_DIR/tools/kiln" run examples/fashion_mnist/cnn.onnx --input "image=$out/image.npy" \
  --output-dir "$out" --top-k 3 --labels examples/fashion_mnist/labels.txt
