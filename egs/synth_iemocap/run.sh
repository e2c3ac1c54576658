#!/usr/bin/env bash
# Emotion-query fusion SER on the generated IEMOCAP-layout demo corpus: stages 0..5 in minutes
# on 2 CPU cores. Same stages as egs/iemocap; only the corpus and the feature defaults differ.
set -euo pipefail
. ./path.sh
. ./cmd.sh
. ./db.sh

stage=0
stop_stage=5
nj=2                       # parallel jobs for corpus generation and feature extraction
ngpu=0                     # GPUs per training job (0: CPU)
nproc=1                    # DDP processes per training job (CPU: gloo; GPU: one per GPU)
folds="1 2 3 4 5"          # leave-one-session-out folds to train, decode and score
utts_per_session=300       # size of the generated corpus
text_specific=0.5          # P(words of an angry/sad utterance name the emotion) (mser/data/synth.py)
voice_specific=0.5         # P(voice of a happy/angry utterance has the emotion's quality)
seed=0
audio_feat=fbank           # conf/feats/$audio_feat.yaml
text_feat=minilm           # conf/feats/$text_feat.yaml
train_config=conf/train.yaml
train_opts=                # extra options for mser.bin.train, e.g. "--epochs 5"
tag=                       # experiment name; default: <train_config>_<audio_feat>_<text_feat>
. utils/parse_options.sh

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (run.sh:${BASH_LINENO[0]}) $*"; }
tag=${tag:-$(basename "${train_config%.yaml}")_${audio_feat}_${text_feat}}
exp=exp/$tag

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "Stage 0: generate the demo corpus in $SYNTH_IEMOCAP, prepare data/all and data/fold{1..5}"
  local/data.sh --nj $nj --seed $seed --utts-per-session $utts_per_session \
    --text-specific $text_specific --voice-specific $voice_specific "$SYNTH_IEMOCAP" data
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: acoustic features ($audio_feat) -> dump/$audio_feat"
  utils/dump_feats.sh --cmd "$cpu_cmd" --nj $nj conf/feats/$audio_feat.yaml data/all dump/$audio_feat
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: linguistic features ($text_feat) -> dump/$text_feat"
  utils/dump_feats.sh --cmd "$cpu_cmd" --nj $nj conf/feats/$text_feat.yaml data/all dump/$text_feat
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: train $exp on folds $folds"
  for f in $folds; do
    $train_cmd --gpu $ngpu $exp/log/train.fold$f.log \
      python -m mser.bin.train --config $train_config --data-dir data/fold$f \
        --audio-feats dump/$audio_feat/feats.scp --text-feats dump/$text_feat/feats.scp \
        --exp-dir $exp/fold$f --ngpu $ngpu --nproc $nproc --seed $seed $train_opts
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: decode the test session of each fold (both modalities, audio only, text only)"
  for f in $folds; do
    python -m mser.bin.decode --exp-dir $exp/fold$f --data-dir data/fold$f/test
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: score $exp and regenerate RESULTS.md"
  python -m mser.bin.score --exp-dir $exp --folds "$folds" --results RESULTS.md \
    --reference-tag train_${audio_feat}_${text_feat}
  cat $exp/scores.txt
  f=${folds%% *}
  if grep -q "^  fusion: query" $exp/fold$f/config.yaml; then
    log "Stage 5: plot where the emotion queries attend (first test utterance of fold $f)"
    python -m mser.bin.infer --model-dir $exp/fold$f --data-dir data/fold$f/test --max-utts 1 \
      --attention-plot $exp/attention_fold$f.png
  fi
  log "Stage 5: accuracy by cue type (which modality alone identifies the emotion)"
  python local/cue_breakdown.py "$SYNTH_IEMOCAP/utt2cue" $exp
fi
