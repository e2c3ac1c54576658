#!/usr/bin/env bash
# Stage 0 of egs/msp_podcast: <data_dir>/all, <data_dir>/fold1/{train,dev,test[,test2]} (the official
# Train / Development / Test1 / Test2 partitions), protocol and skipped, from an MSP-Podcast release.
# The release's documented totals are checked when given: --expected-counts Train=N,Development=N,...
# Run from the recipe dir:  local/data.sh [options] <MSP-Podcast_root> <data_dir>
# The options pass through to python -m mser.bin.prepare_corpus msp_podcast (its --help lists them with
# their defaults), e.g. --class-set 4class --expected-counts Train=N,Development=N,Test1=N --skip-bad-audio
set -euo pipefail
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/msp_podcast)" >&2; exit 1; }
. ./path.sh
python -m mser.bin.prepare_corpus msp_podcast "$@"
