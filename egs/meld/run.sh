#!/usr/bin/env bash
# Emotion-query fusion SER on MELD (Friends clips: audio + transcript, 7 emotions; the official
# train/dev/test split; headline weighted F1, model selected on dev weighted F1). Set MELD in
# db.sh. Sentiment (3 classes) instead: ./run.sh --local_data_opts "--label sentiment"
# Pre-trained encoders are read from local directories (conf/feats/*.yaml); nothing is
# downloaded. The stages are egs/TEMPLATE/ser.sh; ./run.sh --help lists every option. Corpus
# options (local/data.sh --help) go through --local_data_opts.
set -euo pipefail
. ./db.sh

./ser.sh \
  --corpus "$MELD" \
  --nj 4 \
  --audio_feat fbank \
  --text_feat minilm \
  --train_config conf/train.yaml \
  "$@"
