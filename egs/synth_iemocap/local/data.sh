#!/usr/bin/env bash
# Generate the IEMOCAP-layout demo corpus with espeak-ng (skipped when <corpus_dir>/.done says it
# is complete), then prepare <data_dir>/all and <data_dir>/fold{1..5}/{train,dev,test}
# (4 classes, leave-one-session-out, dev = one speaker of the next session).
# Run from the recipe dir:
#   local/data.sh [--nj 2] [--seed 0] [--utts-per-session 300] [--text-specific 0.5] [--voice-specific 0.5] <corpus_dir> <data_dir>
# --text-specific: probability that the words of an angry or sad utterance name the emotion (else
# they only say something negative); --voice-specific: probability that the voice of a happy or
# angry utterance has its emotion's quality (else it only sounds aroused). See mser/data/synth.py.
set -euo pipefail

nj=2
seed=0
utts_per_session=300
text_specific=0.5
voice_specific=0.5
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 [--nj $nj] [--seed $seed] [--utts-per-session $utts_per_session] [--text-specific $text_specific] [--voice-specific $voice_specific] <corpus_dir> <data_dir>" >&2
  exit 1
fi
corpus=$1
data=$2
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/synth_iemocap)" >&2; exit 1; }
. ./path.sh

python -m mser.bin.make_synth_iemocap --nj "$nj" --seed "$seed" \
  --utts-per-session "$utts_per_session" --text-specific "$text_specific" \
  --voice-specific "$voice_specific" "$corpus"
python -m mser.bin.prepare_iemocap --iemocap "$corpus" "$data"
utils/validate_data_dir.sh "$data/all"
awk '{ s += $2 } END { printf "%s: %d utterances, %.2f hours of audio\n", FILENAME, NR, s / 3600 }' \
  "$data/all/utt2dur"
