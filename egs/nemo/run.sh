#!/usr/bin/env bash
# Emotion-query fusion SER on nEMO (Polish acted speech, 9 speakers, 6 classes), audio only: its
# 90 sentences are read in every emotion. 5 speaker folds that hold every class (local/data.sh),
# headline UA. Features: the packaged multilingual Whisper base, all 6 layers. Set NEMO in db.sh.
# The stages are egs/TEMPLATE/ser.sh; ./run.sh --help lists every option. Corpus options
# (local/data.sh --help) go through --local_data_opts.
set -euo pipefail
. ./db.sh

./ser.sh \
  --corpus "$NEMO" \
  --nj 4 \
  --audio_feat whisper_base \
  --text_feat minilm \
  --train_config conf/train.yaml \
  --language pl \
  "$@"
