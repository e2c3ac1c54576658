#!/usr/bin/env bash
# Stage 0 of egs/synth_iemocap: generate the IEMOCAP-layout demo corpus with espeak-ng (skipped
# when <corpus_dir>/.done says it is complete), prepare <data_dir>/all and
# <data_dir>/fold{1..5}/{train,dev,test} (4 classes, leave-one-session-out, dev = one speaker of
# the next session) and describe the protocol in <data_dir>/protocol.
#   local/data.sh [options] <corpus_dir> <data_dir>      (run from the recipe dir)
# The generator's options are described in python -m mser.bin.make_synth_iemocap --help.
set -euo pipefail

nj=2                      # parallel synthesis processes
seed=0                    # seed of the generated corpus
utts_per_session=300      # labelled utterances per session (size of the corpus)
text_specific=0.5         # P(words of an angry/sad utterance name the emotion)
voice_specific=0.5        # P(voice of a happy/angry utterance has the emotion's quality)
help_message="Usage: $0 [options] <corpus_dir> <data_dir>"
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 [options] <corpus_dir> <data_dir>   (options: $0 --help)" >&2
  exit 1
fi
corpus=$1
data=$2
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/synth_iemocap)" >&2; exit 1; }
. ./path.sh

python -m mser.bin.make_synth_iemocap --nj "$nj" --seed "$seed" \
  --utts-per-session "$utts_per_session" --text-specific "$text_specific" \
  --voice-specific "$voice_specific" "$corpus"
python -m mser.bin.prepare_corpus iemocap "$corpus" "$data" \
  --corpus-name "generated demo corpus (seed $seed)"
utils/validate_data_dir.sh "$data/all"
awk '{ s += $2 } END { printf "%s: %d utterances, %.2f hours of audio\n", FILENAME, NR, s / 3600 }' \
  "$data/all/utt2dur"
