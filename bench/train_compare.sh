#!/usr/bin/env bash
# Training throughput of kiln-train vs PyTorch on the BN-CNN
# (examples/fashion_mnist/bn_cnn.json): batch 128, Adam, float32, the same
# thread count each, Fashion-MNIST. Each tool trains STEPS batches as warm-up,
# then STEPS timed batches; kiln and PyTorch alternate for ROUNDS rounds.
#
#   bash bench/train_compare.sh [BUILD_DIR]      (default: build-bench)
#
# Env: STEPS (100), ROUNDS (2), THREADS (2). Needs Debian's python3-torch.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-bench}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
STEPS=${STEPS:-100} ROUNDS=${ROUNDS:-2} THREADS=${THREADS:-2}
PYTHON=/usr/bin/python3  # Debian's, with python3-torch
SPEC=$ROOT/examples/fashion_mnist/bn_cnn.json
TRAIN=$BUILD/trainer/kiln-train
[[ -x $TRAIN ]] || { echo "train_compare: $TRAIN missing; build it: ninja -C $BUILD kiln-train" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kiln-train-compare.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# kiln-train times whole epochs: two epochs of STEPS batches, the second one
# timed. A small validation split keeps the untimed evaluation short.
"$PYTHON" - "$SPEC" "$TMP/spec.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["training"]["validation_size"] = 1000
json.dump(spec, open(sys.argv[2], "w"))
PY
BATCH=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["training"]["batch_size"])' "$SPEC")

kiln_rate() {
  "$TRAIN" fit "$TMP/spec.json" --data fashion-mnist --epochs 2 --train-limit $((STEPS * BATCH)) \
    --threads "$THREADS" -o "$TMP/model.onnx" 2>&1 >/dev/null | sed -n 's|^epoch 2/2 .* \([0-9]*\) samples/s.*|\1|p'
}
torch_rate() {
  "$PYTHON" "$ROOT/bench/torch_train.py" "$SPEC" --steps "$STEPS" --threads "$THREADS" | sed -n 's/^samples\/s //p'
}

echo "bn_cnn, batch $BATCH, $STEPS warm-up + $STEPS timed steps, $THREADS thread(s), load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %14s %14s %12s\n' round kiln_samples/s torch_samples/s kiln/torch
for ((r = 1; r <= ROUNDS; ++r)); do
  k=$(kiln_rate) t=$(torch_rate)
  printf '%-6s %14s %14s %12s\n' "$r" "$k" "$t" "$(awk -v k="$k" -v t="$t" 'BEGIN { printf "%.2f", k / t }')"
done
