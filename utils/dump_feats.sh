#!/usr/bin/env bash
# Extract features for a data dir in parallel jobs, then merge and check them.
#   utils/dump_feats.sh [--cmd "$cpu_cmd"] [--nj 4] [--gpu 0] [--num-threads N] [--model-dir DIR] \
#     [--conf-opts "KEY=VALUE ..."] <conf.yaml> <data_dir> <dump_dir>
# Writes <dump_dir>/{feats.scp,utt2num_frames,feat_conf.yaml,skipped} (see mser/io/storage.py)
# and logs in <dump_dir>/log/. Does nothing if <dump_dir> is complete for this config and data
# dir; finished jobs of an interrupted run are not redone. Run from a recipe dir (path.sh sourced).
set -euo pipefail

cmd=utils/run_local.sh
nj=4
gpu=0               # GPUs per job; > 0 runs the extractor on cuda
num_threads=0       # torch threads per job; 0: the cores of this machine divided by nj
model_dir=          # overrides model_dir: of the config
conf_opts=          # overrides keys of the config, e.g. "truncation_side=left"
. utils/parse_options.sh

if [ $# -ne 3 ]; then
  echo "Usage: $0 [--cmd CMD] [--nj N] [--gpu N] [--num-threads N] [--model-dir DIR] [--conf-opts \"KEY=VALUE ...\"] <conf.yaml> <data_dir> <dump_dir>" >&2
  exit 1
fi
conf=$1; data=$2; dir=$3
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (dump_feats.sh:${BASH_LINENO[0]}) $*"; }

[ "$num_threads" -gt 0 ] || num_threads=$(( $(nproc) / nj > 0 ? $(nproc) / nj : 1 ))
device=cpu; [ "$gpu" -gt 0 ] && device=cuda
common=(--config "$conf" --data-dir "$data" --out-dir "$dir" --nj "$nj")
[ -n "$model_dir" ] && common+=(--model-dir "$model_dir")
for opt in $conf_opts; do common+=(--set "$opt"); done

if python -m mser.bin.merge_feats "${common[@]}" --check-done; then
  log "$dir is complete for $conf and $data; nothing to do"
  exit 0
fi
mkdir -p "$dir/log"
log "extracting $conf for $data in $nj job(s) (logs: $dir/log/extract.*.log)"
$cmd --gpu "$gpu" --num-threads "$num_threads" JOB=1:"$nj" "$dir/log/extract.JOB.log" \
  python -m mser.bin.extract_feats "${common[@]}" --job JOB --device $device --num-threads "$num_threads"
python -m mser.bin.merge_feats "${common[@]}" 2>&1 | tee "$dir/log/merge.log"
