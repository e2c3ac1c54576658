#!/usr/bin/env bash
# Stage 5 hook of the demo: accuracy by cue type (which modality alone identifies the emotion).
#   local/score.sh <corpus_dir> <exp_dir>     (run from the recipe dir, after stage 4)
set -euo pipefail
[ $# -eq 2 ] || { echo "Usage: $0 <corpus_dir> <exp_dir>" >&2; exit 1; }
python local/cue_breakdown.py "$1/utt2cue" "$2"
