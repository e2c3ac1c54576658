#!/usr/bin/env bash
# Prepare <data_dir>/all, <data_dir>/fold{1..5}/{train,dev,test} (speaker-independent folds of
# actors, gender-balanced; dev = actors of the next fold), protocol and skipped from CREMA-D.
# Run from the recipe dir:  local/data.sh [options] <CREMA-D_root> <data_dir>
# See python -m mser.bin.prepare_corpus crema_d --help for what each option does.
set -euo pipefail

num_folds=5
dev_speakers=9          # actors of the next fold's group held out as dev
expected_counts=        # default: the documented clips=7442,actors=91; none: no check
skip_bad_audio=false    # true: skip (and list) undocumented broken wavs instead of failing
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 [options] <CREMA-D_root> <data_dir>   (options: $0 --help)" >&2
  exit 1
fi
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/crema_d)" >&2; exit 1; }
. ./path.sh

flags=()
[ -n "$expected_counts" ] && flags+=(--expected-counts "$expected_counts")
$skip_bad_audio && flags+=(--skip-bad-audio)
python -m mser.bin.prepare_corpus crema_d --num-folds "$num_folds" --dev-speakers "$dev_speakers" \
  ${flags[@]+"${flags[@]}"} "$1" "$2"
