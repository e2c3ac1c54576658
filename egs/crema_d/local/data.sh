#!/usr/bin/env bash
# Stage 0 of egs/crema_d: <data_dir>/all, <data_dir>/fold{1..5}/{train,dev,test} (speaker-independent
# folds of actors, gender-balanced; dev = 9 actors of the next fold), protocol and skipped, from
# CREMA-D.
# Run from the recipe dir:  local/data.sh [options] <CREMA-D_root> <data_dir>
# The options pass through to python -m mser.bin.prepare_corpus crema_d (its --help lists them with
# their defaults), e.g. --num-folds 5 --dev-speakers 9 --expected-counts none --skip-bad-audio
set -euo pipefail
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/crema_d)" >&2; exit 1; }
. ./path.sh
python -m mser.bin.prepare_corpus crema_d "$@"
