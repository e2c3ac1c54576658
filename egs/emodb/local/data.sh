#!/usr/bin/env bash
# Stage 0 of egs/emodb: <data_dir>/all, <data_dir>/fold{1..10}/{train,dev,test} (leave-one-speaker-out;
# dev = the next speaker), protocol and skipped, from EmoDB.
# Run from the recipe dir:  local/data.sh [options] <EmoDB_root> <data_dir>
# The options pass through to python -m mser.bin.prepare_corpus emodb (its --help lists them with
# their defaults), e.g. --num-folds 5 --dev-speakers 2 --expected-counts none --skip-bad-audio
set -euo pipefail
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/emodb)" >&2; exit 1; }
. ./path.sh
python -m mser.bin.prepare_corpus emodb "$@"
