#!/usr/bin/env bash
# Stages 0..5 of every recipe, and stage 6 when asked (--stop_stage 6: the final model on every
# training speaker, with its model card); egs/<corpus>/run.sh calls it with the corpus's defaults:
#   ./ser.sh --corpus DIR [--option value ...]      (run from the recipe dir; ./ser.sh --help)
# Corpus hooks: local/data.sh [local_data_opts] <corpus> <data> (stage 0) and, if present,
# local/score.sh <corpus> <exp/tag> (end of stage 5) and local/model_card.md (stage 6: licence,
# language, limits). See egs/TEMPLATE/README.md.
set -euo pipefail

stage=0                    # first stage to run
stop_stage=5               # last stage to run
corpus=                    # corpus dir handed to local/data.sh (db.sh sets it in run.sh)
local_data_opts=           # options of local/data.sh (local/data.sh --help), e.g. "--cv speaker"
nj=4                       # parallel jobs of feature extraction
ngpu=auto                  # GPUs per job (features, training, decoding); auto: 1 if CUDA is there
nproc=1                    # DDP processes per training job (CPU: gloo; GPU: one per GPU)
nnodes=1                   # nodes per training job (cmd_backend=slurm: srun tasks on each)
folds=                     # folds to train, decode and score; empty: every data/fold<k>
fold_jobs=auto             # folds trained (and decoded) at once, as one job array; auto: on CPU as many as the cores allow (OMP_NUM_THREADS or the CPUs given / --nproc), 1 on GPU, all under Slurm
seed=0                     # training seed
audio_feat=fbank           # acoustic features: conf/feats/<audio_feat>.yaml
text_feat=minilm           # linguistic features: conf/feats/<text_feat>.yaml
train_text=gold            # transcripts of train/dev: gold (the corpus's) or asr (--asr_model's)
test_text=gold             # transcripts of the test sets: gold or asr (gold/asr: as deployed)
asr_model=packaged:whisper-tiny.en  # ASR of stage 2 when a text is asr: packaged:NAME or a dir
context_turns=5            # a config with a 'context' stream (conf/tuning/text_context.yaml): previous turns of the dialogue per utterance, as text features (needs data/all/utt2turn)
train_config=conf/train.yaml  # training YAML (a tuning YAML names its base)
train_opts=                # extra options of mser.bin.train, e.g. "--epochs 5"
tag=                       # experiment name; empty: <config name>_<features the config uses>
reference_tag=             # RESULTS.md tests this tag against it; empty: conf/train.yaml's tag on these features, gold text
probe_tag=                 # ... and against this linear probe; empty: conf/tuning/probe*.yaml's tag of the same streams (a config with tasks: the probe with those tasks, e.g. probe_dimensions.yaml)
language=en                # language of the corpus (stage 6: the model card)
help_message="Usage: ./run.sh [--option value ...]   (run from egs/<corpus>; stages in README.md)"
. utils/parse_options.sh
. ./path.sh
. ./cmd.sh

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (ser.sh:${BASH_LINENO[0]}) $*"; }
die() { echo "ser.sh: $*" >&2; exit 1; }
for name in nj nproc nnodes; do [ "${!name}" -ge 1 ] || die "--$name ${!name}: expected at least 1"; done
[[ $fold_jobs == auto || $fold_jobs -ge 1 ]] 2>/dev/null || die "--fold_jobs $fold_jobs: expected auto or at least 1"
for name in train_text test_text; do
  [[ ${!name} == gold || ${!name} == asr ]] || die "--$name ${!name}: expected gold or asr"
done
[ $# -eq 0 ] || die "unexpected argument '$1' (options are --name value; see --help)"
[ -x local/data.sh ] || die "run me from a recipe dir (egs/<corpus>) holding local/data.sh"
ngpu=$(python -m mser.bin.resolve_ngpu "$ngpu")
device=cpu; [ "$ngpu" -gt 0 ] && device=cuda
# A modality the training config does not use gets no feature stage and no place in the tag.
modalities_of() { python -m mser.bin.show_config "$1" modalities; }
tag_of() {  # <config> <its modalities>
  local name; name=$(basename "${1%.yaml}")
  [[ $2 == *audio* ]] && name+=_$audio_feat
  [[ $2 == *text* ]] && name+=_$text_feat
  [[ $2 == *context* ]] && name+=_ctx$context_turns
  # ASR transcripts anywhere: the text source of training and of testing, e.g. _traingold_testasr
  [[ $2 == *text* && "$train_text$test_text" != goldgold ]] && name+=_train${train_text}_test${test_text}
  echo "$name"
}
modalities=$(modalities_of "$train_config")
tag=${tag:-$(tag_of "$train_config" "$modalities")}
# The linear probe of the same modalities (conf/tuning/probe*.yaml), every tag's baseline.
case $modalities in
  *context*) probe_config=conf/tuning/probe_text_context.yaml ;;
  *audio*text*|*text*audio*) probe_config=conf/tuning/probe.yaml ;;
  *audio*) probe_config=conf/tuning/probe_audio.yaml ;;
  *) probe_config=conf/tuning/probe_text.yaml ;;
esac
probe_tag=${probe_tag:-$(tag_of $probe_config "$modalities")}
exp=exp/$tag
# ASR text (stage 2): data/all_asr, its text features dump/<text_feat>_asr and per fold
# data/fold<k>/asr/{train,dev,test}: the fold's sets with ASR transcripts.
asr_sets=()
if [[ $modalities == *text* ]]; then
  [ $train_text = asr ] && asr_sets+=(train dev)
  [ $test_text = asr ] && asr_sets+=(test)
fi
text_dump() { [ "$1" = asr ] && echo dump/${text_feat}_asr || echo dump/$text_feat; }
fold_dir() { [ "$1" = asr ] && echo data/foldJOB/asr || echo data/foldJOB; }  # <text source>
feats=()
[[ $modalities == *audio* ]] && feats+=(--audio-feats dump/$audio_feat/feats.scp)
[[ $modalities == *text* ]] && feats+=(--text-feats $(text_dump $train_text)/feats.scp)
# The dialogue context (stage 2): data/all_context<N>, its text features dump/<text_feat>_context<N>.
context_data=data/all_context$context_turns
context_dump=dump/${text_feat}_context$context_turns
if [[ $modalities == *context* ]]; then
  [ "$train_text$test_text" = goldgold ] || die "a context stream is made of the gold transcripts; --train_text/--test_text asr is not supported with it"
  feats+=(--stream-feats context=$context_dump/feats.scp)
fi

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  [ -n "$corpus" ] || die "--corpus is empty: set the corpus dir in db.sh"
  log "Stage 0: prepare data/all and data/fold<k>/{train,dev,test} from $corpus"
  local/data.sh $local_data_opts "$corpus" data
  [ -s data/protocol ] || die "local/data.sh wrote no data/protocol (see egs/TEMPLATE/README.md)"
fi

folds=${folds:-$(ls -d data/fold* 2>/dev/null | sed 's:data/fold::' | sort -n | paste -sd ' ')}
[ $stop_stage -lt 3 ] || [ -n "$folds" ] || die "no data/fold<k>: run stage 0 first"
jobs=JOB=$(echo $folds | tr ' ' ,)  # the job array: one job per fold
num_folds=$(echo $folds | wc -w)
if [ $fold_jobs = auto ]; then  # nproc (the command) honours OMP_NUM_THREADS
  if [ "${cmd_backend:-local}" = slurm ]; then fold_jobs=$num_folds
  elif [ "$ngpu" -gt 0 ]; then fold_jobs=1
  else fold_jobs=$(( $(nproc) / nproc )); fi
fi
[ $fold_jobs -ge 1 ] || fold_jobs=1
[ $num_folds -eq 0 ] || [ $fold_jobs -le $num_folds ] || fold_jobs=$num_folds
# The test subsets of each fold (data/protocol "tests", e.g. "test test2"); decoded and scored.
tests=$(awk '$1 == "tests" { $1 = ""; sub(/^ +/, ""); print }' data/protocol 2>/dev/null || true)
[ $stop_stage -lt 4 ] || [ -n "$tests" ] || die "data/protocol names no test subset: run stage 0 first"

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ] && [[ $modalities == *audio* ]]; then
  log "Stage 1: acoustic features ($audio_feat) -> dump/$audio_feat"
  utils/dump_feats.sh --cmd "$cpu_cmd" --nj $nj --gpu $ngpu conf/feats/$audio_feat.yaml data/all dump/$audio_feat
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [[ $modalities == *text* ]]; then
  log "Stage 2: linguistic features ($text_feat) -> dump/$text_feat"
  utils/dump_feats.sh --cmd "$cpu_cmd" --nj $nj --gpu $ngpu conf/feats/$text_feat.yaml data/all dump/$text_feat
  if [[ $modalities == *context* ]]; then
    log "Stage 2: dialogue context ($context_turns previous turns) -> $context_data, its $text_feat -> $context_dump"
    python -m mser.bin.dialogue_context --turns $context_turns data/all $context_data
    # cut from the left (the latest turns stay); float16: a context is several utterances long
    utils/dump_feats.sh --cmd "$cpu_cmd" --nj $nj --gpu $ngpu \
      --conf-opts "truncation_side=left storage=float16" conf/feats/$text_feat.yaml \
      $context_data $context_dump
  fi
  if [ ${#asr_sets[@]} -gt 0 ]; then
    log "Stage 2: ASR transcripts ($asr_model) -> data/all_asr, their $text_feat -> dump/${text_feat}_asr"
    utils/transcribe.sh --cmd "$cpu_cmd" --nj $nj --gpu $ngpu $asr_model data/all data/all_asr
    utils/dump_feats.sh --cmd "$cpu_cmd" --nj $nj --gpu $ngpu conf/feats/$text_feat.yaml data/all_asr dump/${text_feat}_asr
    log "Stage 2: data/fold<k>/asr/{${asr_sets[*]}} for folds $folds (utterances the ASR skipped are named)"
    for k in $folds; do
      python -m mser.bin.asr_subset data/all_asr \
        $(for s in ${asr_sets[@]}; do echo data/fold$k/$s data/fold$k/asr/$s; done)
    done
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  at_once="$fold_jobs at once"; [ $fold_jobs -eq 1 ] && at_once="one at a time"
  log "Stage 3: train $exp on fold(s) $folds, $at_once (logs: $exp/log/train.fold<k>.log)"
  procs=$nproc; [ "$ngpu" -gt 0 ] && procs=$ngpu  # per node
  # --nproc-per-node: train's --nproc, spelt so that the logged command also runs under an
  # external torchrun (which rejects --nproc as ambiguous).
  $train_cmd --gpu $ngpu --nodes $nnodes --tasks-per-node $procs --max-jobs-run $fold_jobs \
    $jobs $exp/log/train.foldJOB.log \
    python -m mser.bin.train --config $train_config --data-dir $(fold_dir $train_text) "${feats[@]}" \
      --exp-dir $exp/foldJOB --ngpu $ngpu --nproc-per-node $nproc --seed $seed $train_opts
  for k in $folds; do  # what each fold's schedule became and where its selection fell
    grep -h -o -e "[0-9]* epochs of .* fewer than --min-steps.*" -e "finished (.*): best dev .* at epoch [0-9]*" \
      -e "the mean of the [0-9]* best epochs .*" -e "best.pt averages .* within the .*" \
      $exp/fold$k/train.log 2>/dev/null | sed "s|^|fold $k: |" | while read -r line; do log "Stage 3: $line"; done
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  for t in $tests; do  # ASR test text applies to "test"; other subsets keep the gold text
    log "Stage 4: decode each fold's $t set on $device (both modalities, audio only, text only)"
    name=decode; [ $t = test ] || name=decode_$t
    src=gold; [ $t = test ] && src=$test_text
    test_feats=(); [[ $modalities == *text* ]] && test_feats=(--text-feats $(text_dump $src)/feats.scp)
    $train_cmd --gpu $ngpu --max-jobs-run $fold_jobs $jobs $exp/log/$name.foldJOB.log \
      python -m mser.bin.decode --exp-dir $exp/foldJOB --data-dir $(fold_dir $src)/$t --subset $t \
        "${test_feats[@]}" --device $device
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: score $exp on $tests and regenerate RESULTS.md (headline metric: data/protocol)"
  wer_dirs=()  # WER per fold of the ASR test transcripts against the gold ones
  [[ " ${asr_sets[*]} " == *" test "* ]] && wer_dirs=(--wer-dirs data/fold{fold}/test data/fold{fold}/asr/test)
  notes=(); [ -f local/results_notes.md ] && notes=(--notes local/results_notes.md)
  python -m mser.bin.score --exp-dir $exp --folds "$folds" --results RESULTS.md "${notes[@]}" \
    --protocol-file data/protocol "${wer_dirs[@]}" --probe-tag $probe_tag \
    --reference-tag ${reference_tag:-$(train_text=gold test_text=gold tag_of conf/train.yaml "$(modalities_of conf/train.yaml)")}
  cat $exp/scores*.txt
  [ -d exp/$probe_tag ] || [ $tag = $probe_tag ] || log "Stage 5: no exp/$probe_tag yet: train the probe (--train_config $probe_config) to test $tag against it"
  f=${folds%% *}
  if [ ! -f data/fold$f/test/wav.scp ]; then
    log "Stage 5: no attention plot (data/fold$f/test has no wav.scp: a text-only corpus)"
  elif [ "$(python -m mser.bin.show_config $exp/fold$f/config.yaml model_conf.fusion)" = query ]; then
    log "Stage 5: plot where the emotion queries attend (first test utterance of fold $f)"
    python -m mser.bin.infer --model-dir $exp/fold$f --data-dir data/fold$f/test --max-utts 1 \
      --device $device --attention-plot $exp/attention_fold$f.png
  fi
  if [ -x local/score.sh ]; then
    log "Stage 5: corpus-specific scoring (local/score.sh)"
    local/score.sh "$corpus" $exp
  fi
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  final=$exp/final
  log "Stage 6: the final model $final: $train_config on every fold's train and dev speakers, epochs from the folds (logs: $final/log/train.log)"
  final_opts=$(python -m mser.bin.final_model prepare --exp-dir $exp --folds "$folds" --data data)
  procs=$nproc; [ "$ngpu" -gt 0 ] && procs=$ngpu
  # No dev set: the epochs and the checkpoint averaging of the folds (--min-steps 0: the folds'
  # epochs are already stretched), set after $train_opts so that they win.
  $train_cmd --gpu $ngpu --nodes $nnodes --tasks-per-node $procs $final/log/train.log \
    python -m mser.bin.train --config $train_config --data-dir $final/data "${feats[@]}" \
      --exp-dir $final --ngpu $ngpu --nproc-per-node $nproc --seed $seed $train_opts \
      --no-dev true --min-steps 0 $final_opts
  card_notes=(); [ -f local/model_card.md ] && card_notes=(--notes local/model_card.md)
  python -m mser.bin.final_model card --exp-dir $exp --folds "$folds" --data data \
    --probe-tag $probe_tag --language $language "${card_notes[@]}"
  log "Stage 6: $final is a model dir (mser-infer / mser-timeline / mser-serve --model-dir $final); its card: $final/README.md"
fi
