#!/usr/bin/env bash
# Transcribe a data dir in parallel jobs, then merge: <out_dir> is a copy of <data_dir> whose text
# holds the recognised transcripts (unreadable wavs listed in <out_dir>/skipped, see mser/asr.py).
#   utils/transcribe.sh [--cmd "$cpu_cmd"] [--nj 4] [--gpu 0] [--num-threads N] [--batch-size 8] \
#     [--language en] [--num-beams 1] [--asr-backend auto] [--asr-window 15] \
#     <model_dir | packaged:NAME> <data_dir> <out_dir>
# Logs in <out_dir>/log/. Does nothing if <out_dir> is complete for these options and data dir;
# finished jobs of an interrupted run are not redone. Run from a recipe dir (path.sh sourced).
set -euo pipefail

cmd=utils/run_local.sh
nj=4
gpu=0               # GPUs per job; > 0 decodes on cuda
num_threads=0       # torch threads per job; 0: the cores of this machine divided by nj
batch_size=8        # utterances per forward
language=en         # multilingual Whisper only; "" detects the language
num_beams=1         # Whisper beam size
asr_backend=auto    # auto: CTranslate2 for Whisper in its format (the packaged models), else transformers
asr_window=         # CTranslate2's shortest encoder window in seconds; empty: mser.asr's default
. utils/parse_options.sh

if [ $# -ne 3 ]; then
  echo "Usage: $0 [--cmd CMD] [--nj N] [--gpu N] [--num-threads N] [--batch-size N] [--language L] [--num-beams N] [--asr-backend B] [--asr-window S] <model_dir> <data_dir> <out_dir>" >&2
  exit 1
fi
model=$1; data=$2; dir=$3
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (transcribe.sh:${BASH_LINENO[0]}) $*"; }

[ "$num_threads" -gt 0 ] || num_threads=$(( $(nproc) / nj > 0 ? $(nproc) / nj : 1 ))
ngpu=0; [ "$gpu" -gt 0 ] && ngpu=1
common=(--model-dir "$model" --nj "$nj" --language "$language" --num-beams "$num_beams"
        --asr-backend "$asr_backend" ${asr_window:+--asr-window "$asr_window"} "$data" "$dir")

if python -m mser.bin.transcribe "${common[@]}" --check-done; then
  log "$dir is complete for $model and $data; nothing to do"
  exit 0
fi
mkdir -p "$dir/log"
log "transcribing $data with $model in $nj job(s) (logs: $dir/log/transcribe.*.log)"
$cmd --gpu "$gpu" --num-threads "$num_threads" JOB=1:"$nj" "$dir/log/transcribe.JOB.log" \
  python -m mser.bin.transcribe "${common[@]}" --job JOB --ngpu $ngpu \
    --batch-size "$batch_size" --num-threads "$num_threads"
python -m mser.bin.transcribe "${common[@]}" --merge 2>&1 | tee "$dir/log/merge.log"
