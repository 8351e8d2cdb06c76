#!/usr/bin/env bash
# The tuned Fashion-MNIST ensemble (trainer/README.md, "Tuned ensemble"):
#   1. a TPE search with Hyperband pruning over the BN-CNN family in
#      examples/fashion_mnist/tuned/search_space.json, on half the training
#      split, in the study examples/fashion_mnist/tuned/study.db. Rerunning
#      resumes it (a killed run's trial is failed and retried), so the search
#      can be spread over several sessions: commit the study between them.
#   2. the best TOP trials retrained on the whole training split as members,
#      log-loss weights on validation, one test evaluation (STAGE=ensemble).
# Usage: bash scripts/tune_ensemble.sh BUILD_DIR
# Environment: STAGE=search|ensemble|all (default all), EVALS (trials in the
# study, default 48), TOP (members, default 5), EPOCHS (member epochs,
# default 24), OUT (default examples/fashion_mnist/tuned/ensemble).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
TRAIN="$BUILD_DIR/trainer/kiln-train"
TUNED=examples/fashion_mnist/tuned
STUDY=$TUNED/study.db
STAGE=${STAGE:-all}

if [ "$STAGE" = search ] || [ "$STAGE" = all ]; then
  # 9 epochs per trial: Hyperband's brackets (eta 3) stop most trials after
  # 1 or 3 epochs. Two workers of one thread each keep both cores busy
  # without the threads' synchronization inside one trial.
  "$TRAIN" search "$TUNED/search_space.json" --study "$STUDY" --max-evals "${EVALS:-48}" --algo tpe \
    --pruner hyperband --eta 3 --epochs 9 --train-limit 25000 --workers 2 --threads 1 --seed 0 \
    --heartbeat-timeout 900 --data fashion-mnist
fi
if [ "$STAGE" = ensemble ] || [ "$STAGE" = all ]; then
  "$TRAIN" ensemble --study "$STUDY" --top "${TOP:-5}" --epochs "${EPOCHS:-24}" --threads 2 --seed 1 \
    --method logloss --data fashion-mnist -o "${OUT:-$TUNED/ensemble}"
fi
