#!/usr/bin/env bash
# Emotion-query fusion SER on MSP-Podcast (podcast turns: audio + transcript; official Train /
# Development / Test1, and Test2 where labelled, all decoded; 8 classes; headline macro F1, model
# selected on dev macro F1). Set MSP_PODCAST in db.sh. 4 classes (N H S A):
#   ./run.sh --local_data_opts "--class-set 4class"
# Default features: the packaged Whisper base encoder, all 6 layers, on each utterance's own
# length (conf/feats/whisper_base.yaml; multilingual) and the packaged MiniLM; --audio_feat fbank
# for Kaldi fbank+pitch, hubert_large + mpnet for the paper's (local weights). Nothing is
# downloaded. The stages are egs/TEMPLATE/ser.sh; ./run.sh --help lists every option. Corpus
# options (local/data.sh --help) go through --local_data_opts.
set -euo pipefail
. ./db.sh

./ser.sh \
  --corpus "$MSP_PODCAST" \
  --nj 4 \
  --audio_feat whisper_base \
  --text_feat minilm \
  --train_config conf/train.yaml \
  "$@"
