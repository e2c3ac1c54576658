#!/usr/bin/env bash
# Stage 0 of egs/meld: <data_dir>/all, <data_dir>/fold1/{train,dev,test} (MELD's official split),
# protocol and skipped, from MELD.Raw; the mp4 clips are decoded once to 16 kHz mono wavs
# (<data_dir>/wav).
# Run from the recipe dir:  local/data.sh [options] <MELD_root> <data_dir>
# The options pass through to python -m mser.bin.prepare_corpus meld (its --help lists them with
# their defaults), e.g. --label sentiment --nj 4 --wav-dir DIR --expected-counts none --skip-bad-audio
set -euo pipefail
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/meld)" >&2; exit 1; }
. ./path.sh
python -m mser.bin.prepare_corpus meld "$@"
