#!/usr/bin/env bash
# Emotion-query fusion SER on EmoDB (10 German speakers, 10 fixed sentences, 7 emotions; leave-
# one-speaker-out, 10 folds; headline UA). The text carries no emotion: compare with the audio-
# only model, ./run.sh --train_config conf/tuning/audio_only.yaml. Set EMODB in db.sh.
# Pre-trained encoders are read from local directories (conf/feats/*.yaml); nothing is
# downloaded. The stages are egs/TEMPLATE/ser.sh; ./run.sh --help lists every option. Corpus
# options (local/data.sh --help) go through --local_data_opts.
set -euo pipefail
. ./db.sh

./ser.sh \
  --corpus "$EMODB" \
  --nj 4 \
  --audio_feat fbank \
  --text_feat minilm \
  --train_config conf/train.yaml \
  "$@"
