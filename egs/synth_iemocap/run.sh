#!/usr/bin/env bash
# Emotion-query fusion SER on the generated IEMOCAP-layout demo corpus: stages 0..5 in minutes
# on 2 CPU cores. The stages are egs/TEMPLATE/ser.sh; ./run.sh --help lists every option.
# Corpus options go through --local_data_opts (local/data.sh --help), e.g.
#   ./run.sh --local_data_opts "--utts_per_session 100 --text_specific 0.8"
set -euo pipefail
. ./db.sh

./ser.sh \
  --corpus "$SYNTH_IEMOCAP" \
  --nj 2 \
  --audio_feat fbank \
  --text_feat minilm \
  --train_config conf/train.yaml \
  "$@"
