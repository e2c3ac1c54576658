#!/usr/bin/env bash
# Stage 0 of egs/iemocap: prepare <data_dir>/all and <data_dir>/fold<k>/{train,dev,test} from
# IEMOCAP_full_release and describe the protocol in <data_dir>/protocol.
#   local/data.sh [options] <IEMOCAP_root> <data_dir>      (run from the recipe dir)
# Defaults: the standard 4 classes (exc merged into hap, 5,531 utterances), 5 leave-one-session-out
# folds, dev = one speaker of the session after the test session. What each option does:
# python -m mser.bin.prepare_corpus iemocap --help.
set -euo pipefail

class_set=4class          # 4class, 4class_noexc or 6class
improvised_only=false     # true: keep the improvised dialogs only
noise_tags=strip          # strip or keep transcript tags such as [LAUGHTER] (the one switch:
                          # the text features of this recipe keep what the transcript holds)
cv=session                # session (5 folds) or speaker (10 folds)
text_disjoint=false       # true: drop train/dev utterances whose transcript is in the test set
dev=speaker               # speaker (one speaker of the next session) or fraction
dev_fraction=0.1          # dev share of the training sessions with --dev fraction
seed=0                    # seed of --dev fraction
skip_missing_wav=false    # true: drop labelled utterances without a wav instead of failing
skip_missing_text=false   # true: drop labelled utterances without a transcript instead of failing
help_message="Usage: $0 [options] <IEMOCAP_root> <data_dir>"
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
$text_disjoint && flags+=(--text-disjoint)
python -m mser.bin.prepare_corpus iemocap "$1" "$2" --class-set "$class_set" \
  --noise-tags "$noise_tags" --cv "$cv" --dev "$dev" --dev-fraction "$dev_fraction" --seed "$seed" \
  ${flags[@]+"${flags[@]}"}

