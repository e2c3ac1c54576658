#!/usr/bin/env bash
# Stage 0 of egs/nemo: <data_dir>/all, <data_dir>/fold{1..5}/{train,dev,test}, protocol and
# skipped from nEMO's data.tsv through the generic table corpus (mser/data/table.py): 5 speaker
# folds of the 9 speakers in which every test and dev set holds all 6 classes, dev = the next
# fold's speakers. Run from the recipe dir:  local/data.sh [options] <nEMO_root> <data_dir>
# The options pass through to python -m mser.bin.prepare_corpus table (its --help lists them),
# e.g. --num-folds 9 --dev-speakers 1 --expected-counts none
set -euo pipefail
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/nemo)" >&2; exit 1; }
. ./path.sh
python -m mser.bin.prepare_corpus table --table data.tsv --audio-dir samples \
  --path-column file_id --label-column emotion --speaker-column speaker_id \
  --text-column raw_text --name nEMO --expected-counts utterances=4481,speakers=9 "$@"
