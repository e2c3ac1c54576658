#!/usr/bin/env bash
# Prepare <data_dir>/all, <data_dir>/fold{1..6}/{train,dev,test} (EmoBox's 6 groups of 4 actors;
# dev = 2 actors of the next group), protocol and skipped from RAVDESS speech (audio-only).
# Run from the recipe dir:  local/data.sh [options] <RAVDESS_root> <data_dir>
# See python -m mser.bin.prepare_corpus ravdess --help for what each option does.
set -euo pipefail

fold_groups=emobox      # emobox (6 folds, EmoBox's actor groups) or balanced (--num-folds)
num_folds=6             # with fold_groups=balanced
dev_speakers=2          # actors of the next fold's group held out as dev
expected_counts=        # default: the documented files=1440,actors=24; none: no check
skip_bad_audio=false    # true: skip (and list) unreadable wavs instead of failing
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 [options] <RAVDESS_root> <data_dir>   (options: $0 --help)" >&2
  exit 1
fi
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/ravdess)" >&2; exit 1; }
. ./path.sh

flags=()
[ -n "$expected_counts" ] && flags+=(--expected-counts "$expected_counts")
$skip_bad_audio && flags+=(--skip-bad-audio)
python -m mser.bin.prepare_corpus ravdess --fold-groups "$fold_groups" --num-folds "$num_folds" \
  --dev-speakers "$dev_speakers" ${flags[@]+"${flags[@]}"} "$1" "$2"
