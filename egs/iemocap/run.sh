#!/usr/bin/env bash
# Emotion-query fusion SER on IEMOCAP (4 classes, 5,531 utterances, leave-one-session-out).
# The corpus is license-gated: set IEMOCAP in db.sh to your copy. Pre-trained encoders are read
# from local directories (conf/feats/*.yaml); nothing is downloaded. The stages are
# egs/TEMPLATE/ser.sh; ./run.sh --help lists every option. Corpus options (class set, improvised
# only, speaker folds, noise tags: local/data.sh --help) go through --local_data_opts, e.g.
#   ./run.sh --local_data_opts "--cv speaker --class_set 6class"
set -euo pipefail
. ./db.sh

./ser.sh \
  --corpus "$IEMOCAP" \
  --nj 4 \
  --audio_feat hubert_large \
  --text_feat mpnet \
  --train_config conf/train.yaml \
  "$@"
