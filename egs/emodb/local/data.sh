#!/usr/bin/env bash
# Prepare <data_dir>/all, <data_dir>/fold{1..10}/{train,dev,test} (leave-one-speaker-out; dev =
# the next speaker), protocol and skipped from EmoDB.
# Run from the recipe dir:  local/data.sh [options] <EmoDB_root> <data_dir>
# See python -m mser.bin.prepare_corpus emodb --help for what each option does.
set -euo pipefail

num_folds=10            # 10: leave-one-speaker-out; fewer: gender-balanced speaker groups
dev_speakers=1          # speakers of the next fold held out as dev
expected_counts=        # default: the documented utterances=535,speakers=10; none: no check
skip_bad_audio=false    # true: skip (and list) unreadable wavs instead of failing
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 [options] <EmoDB_root> <data_dir>   (options: $0 --help)" >&2
  exit 1
fi
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/emodb)" >&2; exit 1; }
. ./path.sh

flags=()
[ -n "$expected_counts" ] && flags+=(--expected-counts "$expected_counts")
$skip_bad_audio && flags+=(--skip-bad-audio)
python -m mser.bin.prepare_corpus emodb --num-folds "$num_folds" --dev-speakers "$dev_speakers" \
  ${flags[@]+"${flags[@]}"} "$1" "$2"
