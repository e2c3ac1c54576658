#!/usr/bin/env bash
# Emotion-query fusion SER on the generated IEMOCAP-layout demo corpus: stages 0..5 in minutes
# on 2 CPU cores. The stages are egs/TEMPLATE/ser.sh; ./run.sh --help lists every option.
# Corpus options go through --local_data_opts (local/data.sh --help), e.g.
#   ./run.sh --local_data_opts "--utts_per_session 100 --text_specific 0.8"
# Default features are pre-trained, as in the paper: the packaged Whisper tiny.en encoder run on
# each utterance's own length (the padded 30 s window costs 11x; README "Pre-trained models")
# and the packaged MiniLM; --audio_feat fbank trains on Kaldi fbank+pitch instead. Two folds
# train at once, each on half the cores: 1.2x faster than one after another on 2 cores.
set -euo pipefail
. ./db.sh

./ser.sh \
  --corpus "$SYNTH_IEMOCAP" \
  --nj 2 \
  --audio_feat whisper_tiny_utterance \
  --text_feat minilm \
  --train_config conf/train.yaml \
  "$@"
