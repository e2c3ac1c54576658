#!/usr/bin/env bash
# Emotion-query fusion SER on CREMA-D (91 actors, 12 fixed sentences, 6 emotions; 5 speaker-
# independent folds; headline UA). The text carries no emotion: compare with the audio-only
# model, ./run.sh --train_config conf/tuning/audio_only.yaml. Set CREMA_D in db.sh.
# Default features: the packaged Whisper base encoder, all 6 layers, on each utterance's own
# length (conf/feats/whisper_base.yaml; multilingual) and the packaged MiniLM; --audio_feat fbank
# for Kaldi fbank+pitch, hubert_large + mpnet for the paper's (local weights). Nothing is
# downloaded. The stages are egs/TEMPLATE/ser.sh; ./run.sh --help lists every option. Corpus
# options (local/data.sh --help) go through --local_data_opts.
set -euo pipefail
. ./db.sh

./ser.sh \
  --corpus "$CREMA_D" \
  --nj 4 \
  --audio_feat whisper_base \
  --text_feat minilm \
  --train_config conf/train.yaml \
  "$@"
