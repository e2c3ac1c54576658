#!/usr/bin/env bash
# Generate the IEMOCAP-layout demo corpus with espeak-ng (skipped when <corpus_dir>/.done says it
# is complete), then prepare <data_dir>/all and <data_dir>/fold{1..5}/{train,dev,test}
# (4 classes, leave-one-session-out, dev = one speaker of the next session).
# Run from the recipe dir:
#   local/data.sh [--nj 2] [--seed 0] [--utts-per-session 300] [--cue-shares "0.35 0.35 0.30"] <corpus_dir> <data_dir>
# --cue-shares: shares of the non-neutral utterances whose emotion is in the words only, in the
# voice only, and in both (mser/data/synth.py).
set -euo pipefail

nj=2
seed=0
utts_per_session=300
cue_shares="0.35 0.35 0.30"
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 [--nj $nj] [--seed $seed] [--utts-per-session $utts_per_session] [--cue-shares \"$cue_shares\"] <corpus_dir> <data_dir>" >&2
  exit 1
fi
corpus=$1
data=$2
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/synth_iemocap)" >&2; exit 1; }
. ./path.sh
read -r text_only voice_only both <<< "$cue_shares"

python -m mser.bin.make_synth_iemocap --nj "$nj" --seed "$seed" \
  --utts-per-session "$utts_per_session" --text-only "$text_only" --voice-only "$voice_only" \
  --both "$both" "$corpus"
python -m mser.bin.prepare_iemocap --iemocap "$corpus" "$data"
utils/validate_data_dir.sh "$data/all"
awk '{ s += $2 } END { printf "%s: %d utterances, %.2f hours of audio\n", FILENAME, NR, s / 3600 }' \
  "$data/all/utt2dur"
