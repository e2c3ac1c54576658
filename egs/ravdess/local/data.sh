#!/usr/bin/env bash
# Stage 0 of egs/ravdess: <data_dir>/all, <data_dir>/fold{1..6}/{train,dev,test} (EmoBox's 6 groups of 4
# actors; dev = 2 actors of the next group), protocol and skipped, from RAVDESS speech (audio-only).
# Run from the recipe dir:  local/data.sh [options] <RAVDESS_root> <data_dir>
# The options pass through to python -m mser.bin.prepare_corpus ravdess (its --help lists them with
# their defaults), e.g. --fold-groups balanced --num-folds 4 --dev-speakers 2 --expected-counts none
set -euo pipefail
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/ravdess)" >&2; exit 1; }
. ./path.sh
python -m mser.bin.prepare_corpus ravdess "$@"
