#!/usr/bin/env bash
# Prepare <data_dir>/all, <data_dir>/fold1/{train,dev,test} (MELD's official split), protocol and
# skipped from MELD.Raw; the mp4 clips are decoded once to 16 kHz mono wavs (<data_dir>/wav).
# Run from the recipe dir:  local/data.sh [options] <MELD_root> <data_dir>
# See python -m mser.bin.prepare_corpus meld --help for what each option does.
set -euo pipefail

label=emotion           # emotion (7 classes) or sentiment (3)
nj=4                    # clip decoding processes
wav_dir=                # where the decoded wavs go (default: <data_dir>/wav)
expected_counts=        # default: the documented CSV rows train=9989,dev=1109,test=2610; none: no check
skip_bad_audio=false    # true: skip (and list) undocumented missing or broken clips instead of failing
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 [options] <MELD_root> <data_dir>   (options: $0 --help)" >&2
  exit 1
fi
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/meld)" >&2; exit 1; }
. ./path.sh

flags=()
[ -n "$wav_dir" ] && flags+=(--wav-dir "$wav_dir")
[ -n "$expected_counts" ] && flags+=(--expected-counts "$expected_counts")
$skip_bad_audio && flags+=(--skip-bad-audio)
python -m mser.bin.prepare_corpus meld --label "$label" --nj "$nj" ${flags[@]+"${flags[@]}"} "$1" "$2"
