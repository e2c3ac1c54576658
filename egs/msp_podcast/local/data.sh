#!/usr/bin/env bash
# Prepare <data_dir>/all, <data_dir>/fold1/{train,dev,test[,test2]} (the official Train /
# Development / Test1 / Test2 partitions), protocol and skipped from an MSP-Podcast release.
# Run from the recipe dir:  local/data.sh [options] <MSP-Podcast_root> <data_dir>
# See python -m mser.bin.prepare_corpus msp_podcast --help for what each option does.
set -euo pipefail

class_set=8class        # 8class (all but O and X) or 4class (N H S A)
expected_counts=        # the release's documented rows, e.g. Train=N,Development=N,Test1=N,Test2=N
                        # (from its documentation; empty: counts printed, not checked)
skip_bad_audio=false    # true: skip (and list) missing or unreadable wavs instead of failing
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 [options] <MSP-Podcast_root> <data_dir>   (options: $0 --help)" >&2
  exit 1
fi
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/msp_podcast)" >&2; exit 1; }
. ./path.sh

flags=()
[ -n "$expected_counts" ] && flags+=(--expected-counts "$expected_counts")
$skip_bad_audio && flags+=(--skip-bad-audio)
python -m mser.bin.prepare_corpus msp_podcast --class-set "$class_set" ${flags[@]+"${flags[@]}"} "$1" "$2"
