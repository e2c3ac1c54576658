#!/usr/bin/env bash
# Prepare <data_dir>/all and <data_dir>/fold*/{train,dev,test} from IEMOCAP_full_release.
# Run from the recipe dir:  local/data.sh [options] <IEMOCAP_root> <data_dir>
# Defaults: the standard 4 classes (exc merged into hap, 5,531 utterances), 5 leave-one-session-out
# folds, dev = one speaker of the session after the test session. See
# python -m mser.bin.prepare_iemocap --help for what each option does.
set -euo pipefail

class_set=4class          # 4class, 4class_noexc or 6class
improvised_only=false
noise_tags=strip          # strip or keep transcript tags such as [LAUGHTER]
cv=session                # session (5 folds) or speaker (10 folds)
dev=speaker               # speaker or fraction
dev_fraction=0.1
seed=0
skip_missing_wav=false    # true: drop labelled utterances without a wav instead of failing
skip_missing_text=false   # true: drop labelled utterances without a transcript instead of failing
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 [options] <IEMOCAP_root> <data_dir>   (options: $0 --help)" >&2
  exit 1
fi
[ -f path.sh ] || { echo "$0: run me from the recipe dir (egs/iemocap)" >&2; exit 1; }
. ./path.sh

flags=()
$improvised_only && flags+=(--improvised-only)
$skip_missing_wav && flags+=(--skip-missing-wav)
$skip_missing_text && flags+=(--skip-missing-text)
python -m mser.bin.prepare_iemocap --iemocap "$1" --class-set "$class_set" --noise-tags "$noise_tags" \
  --cv "$cv" --dev "$dev" --dev-fraction "$dev_fraction" --seed "$seed" ${flags[@]+"${flags[@]}"} "$2"
