#!/usr/bin/env bash
# The recorded command behind examples/fashion_mnist/ensemble/: three
# members of the shipped separable CNN spec (seeds 0..2, its 10 epochs), weights learned on
# the validation split (log-loss on the simplex), test set read once at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake --build "$BUILD_DIR" --target kiln-train
rm -rf examples/fashion_mnist/ensemble
"$BUILD_DIR/trainer/kiln-train" ensemble examples/fashion_mnist/separable_cnn.json \
  --members 3 --seed 0 --method logloss --data fashion-mnist \
  -o examples/fashion_mnist/ensemble
