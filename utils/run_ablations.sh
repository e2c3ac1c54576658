#!/usr/bin/env bash
# Train, decode and score every conf/tuning/*.yaml of a recipe (run from the recipe dir, after
# stages 0..2). Options are passed on to run.sh, e.g.: utils/run_ablations.sh --folds "1 2"
# RESULTS.md then compares every tag with the default model on the same features (paired tests).
set -euo pipefail
for conf in conf/tuning/*.yaml; do
  echo "$(date '+%Y-%m-%d %H:%M:%S') (run_ablations.sh) $conf"
  ./run.sh --stage 3 --stop-stage 5 --train-config "$conf" "$@"
done
