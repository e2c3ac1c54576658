#!/usr/bin/env bash
# Emotion timelines of every recording of a wav.scp (or a data dir's) in parallel jobs through the
# job wrapper, then one data dir of them all (mser-timeline; mser/timeline.py):
#   utils/timeline.sh [--cmd "$cpu_cmd"] [--nj 4] [--num-threads N] [--asr packaged:whisper-tiny.en] \
#     [--opts "--max-segment 10 ..."] <model_dir> <wav.scp | data_dir> <out_dir>
# Per recording <out_dir>/<rec>/{timeline.tsv,timeline.csv,timeline.json,timeline.png,data/};
# <out_dir>/data: the segments of all recordings (Kaldi data dir). Logs in <out_dir>/log/.
# Finished recordings are not redone; a failed one is named in the merge log and <out_dir>/<rec>/error.
# Run from a recipe dir (path.sh sourced), or anywhere with mser installed.
set -euo pipefail

cmd=utils/run_local.sh
nj=4
num_threads=0       # torch threads per job; 0: the cores of this machine divided by nj
asr=packaged:whisper-tiny.en   # ASR of the segments (a local Whisper/CTC dir, or none)
opts=""             # more mser-timeline options (mser-timeline --help)
. utils/parse_options.sh

if [ $# -ne 3 ]; then
  echo "Usage: $0 [--cmd CMD] [--nj N] [--num-threads N] [--asr ASR] [--opts \"...\"] <model_dir> <wav.scp|data_dir> <out_dir>" >&2
  exit 1
fi
model=$1; scp=$2; dir=$3
[ -d "$scp" ] && scp=$scp/wav.scp
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (timeline.sh:${BASH_LINENO[0]}) $*"; }

[ -f "$scp" ] || { echo "$0: $scp: no such file" >&2; exit 1; }
recordings=$(grep -c . "$scp" || true)
[ "$recordings" -gt 0 ] || { echo "$0: $scp has no recordings" >&2; exit 1; }
[ "$nj" -le "$recordings" ] || nj=$recordings
[ "$num_threads" -gt 0 ] || num_threads=$(( $(nproc) / nj > 0 ? $(nproc) / nj : 1 ))
mkdir -p "$dir/log"
log "timelines of $recordings recording(s) of $scp with $model in $nj job(s) (logs: $dir/log/timeline.*.log)"
# A job with a failed recording exits 1 after the others: merge what finished all the same (the
# merge names each recording left out), then exit with the failure.
jobs_status=0
# shellcheck disable=SC2086  # $opts holds several options
$cmd --num-threads "$num_threads" JOB=1:"$nj" "$dir/log/timeline.JOB.log" \
  python -m mser.bin.timeline --model-dir "$model" --wav-scp "$scp" --out-dir "$dir" \
    --asr "$asr" --nj "$nj" --job JOB --num-threads "$num_threads" $opts || jobs_status=$?
merge_status=0
python -m mser.bin.timeline --model-dir "$model" --wav-scp "$scp" --out-dir "$dir" --merge \
  2>&1 | tee "$dir/log/merge.log" || merge_status=$?
if [ $jobs_status -ne 0 ] || [ $merge_status -ne 0 ]; then
  log "some recording(s) failed: named in $dir/log/merge.log and $dir/<rec>/error; the others are in $dir/data; a rerun redoes only the failed ones"
  exit 1
fi
