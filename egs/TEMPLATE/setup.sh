#!/usr/bin/env bash
# A new recipe dir, as ESPnet's egs2/TEMPLATE/asr1/setup.sh makes one:
#   egs/TEMPLATE/setup.sh [--like ravdess] [--corpus_type table|folders --corpus_opts "..."] \
#     [--audio_only true] egs/<corpus>
# Links the shared scripts (path.sh cmd.sh ser.sh utils) and every shared config
# (egs/TEMPLATE/conf/{feats,tuning}/*.yaml), copies conf/train.yaml of the recipe --like names,
# and writes db.sh, run.sh and a local/data.sh that says what to write (egs/TEMPLATE/README.md).
# Clips of your own need no code: --corpus_type table (a CSV/TSV) or folders (<root>/<label>/
# *.wav) writes a local/data.sh that prepares them with these --corpus_opts (mser/data/table.py,
# python -m mser.bin.prepare_corpus table --help); --audio_only true makes conf/train.yaml use
# the audio alone (clips without transcripts, or transcripts that carry no emotion).
# Nothing that exists is overwritten, so it can be re-run to pick up new shared configs.
set -euo pipefail

like=ravdess   # recipe whose conf/train.yaml is the starting point
corpus_type=   # table or folders: a corpus of your own clips, prepared without code
corpus_opts="" # their options, e.g. "--table list.csv --text-column text" (written into local/data.sh)
audio_only=false  # conf/train.yaml trains on the audio alone
help_message="Usage: $0 [--like RECIPE] [--corpus_type table|folders --corpus_opts \"...\"] [--audio_only true] egs/<corpus>"
template=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$template/utils/parse_options.sh"
[ $# -eq 1 ] || { echo "$help_message" >&2; exit 1; }
recipe=$1
corpus=$(basename "$recipe")
[[ $corpus =~ ^[a-z][a-z0-9_]*$ ]] || {
  echo "$0: recipe dir name '$corpus': use lower case letters, digits and _ (it names the variable in db.sh)" >&2; exit 1; }
train_yaml=$template/../$like/conf/train.yaml
[ -f "$train_yaml" ] || { echo "$0: --like $like: no $train_yaml (pick a recipe under egs/)" >&2; exit 1; }
case $corpus_type in ""|table|folders) ;; *)
  echo "$0: --corpus_type $corpus_type: expected table or folders (or none: write local/data.sh yourself)" >&2; exit 1 ;;
esac
variable=$(tr a-z A-Z <<< "$corpus")

mkdir -p "$recipe/local" "$recipe/conf/feats" "$recipe/conf/tuning"
recipe=$(cd "$recipe" && pwd)
link() {  # <target> <link name>: a relative link, kept if the name exists
  [ -e "$2" ] || [ -L "$2" ] || ln -s "$(realpath --relative-to="$(dirname "$2")" "$1")" "$2"
}
write_new() {  # <file> <mode>, text on stdin: written unless the file exists
  if [ -e "$1" ]; then cat > /dev/null; else cat > "$1"; chmod "$2" "$1"; fi
}
for name in path.sh cmd.sh ser.sh; do link "$template/$name" "$recipe/$name"; done
link "$(realpath "$template/utils")" "$recipe/utils"
for conf in "$template"/conf/feats/*.yaml "$template"/conf/tuning/*.yaml; do
  link "$conf" "$recipe/conf/$(basename "$(dirname "$conf")")/$(basename "$conf")"
done
if [ ! -e "$recipe/conf/train.yaml" ]; then
  if $audio_only; then  # one stream: nothing to mask it against
    sed -e '/^  text: /d' -e 's/^\(  audio: {.*\)mask_prob: [0-9.]*\(.*}\).*/\1mask_prob: 0.0\2  # --audio_only true/' \
        "$train_yaml" > "$recipe/conf/train.yaml"
  else
    cp "$train_yaml" "$recipe/conf/train.yaml"
  fi
fi

write_new "$recipe/db.sh" 644 <<EOF
# Corpus location: where the $corpus distribution was unpacked. Set it here or export $variable.
$variable=\${$variable:-/path/to/$corpus}
EOF
write_new "$recipe/run.sh" 755 <<EOF
#!/usr/bin/env bash
# Emotion-query fusion SER on $corpus. Set $variable in db.sh. The stages are
# egs/TEMPLATE/ser.sh; ./run.sh --help lists every option. Corpus options (local/data.sh --help)
# go through --local_data_opts.
set -euo pipefail
. ./db.sh

./ser.sh \\
  --corpus "\$$variable" \\
  --nj 4 \\
  --audio_feat whisper_base \\
  --text_feat minilm \\
  --train_config conf/train.yaml \\
  "\$@"
EOF
if [ -n "$corpus_type" ]; then
  write_new "$recipe/local/data.sh" 755 <<EOF
#!/usr/bin/env bash
# Stage 0 of $corpus: the clips through the generic '$corpus_type' corpus (mser/data/table.py):
# <data_dir>/all, speaker folds in which every test and dev set holds every class (or the
# table's own split), protocol and skipped. Run from the recipe dir:
#   local/data.sh [options] <corpus_dir> <data_dir>
# More options: python -m mser.bin.prepare_corpus $corpus_type --help
set -euo pipefail
[ -f path.sh ] || { echo "\$0: run me from the recipe dir" >&2; exit 1; }
. ./path.sh
python -m mser.bin.prepare_corpus $corpus_type $corpus_opts "\$@"
EOF
else
write_new "$recipe/local/data.sh" 755 <<EOF
#!/usr/bin/env bash
# Stage 0 of $corpus: local/data.sh [options] <corpus_dir> <data_dir> writes <data_dir>/all,
# <data_dir>/fold<k>/{train,dev,test} and <data_dir>/protocol (the hook contract:
# egs/TEMPLATE/README.md; examples: egs/ravdess/local/data.sh, egs/meld/local/data.sh).
set -euo pipefail
. utils/parse_options.sh
echo "local/data.sh: stage 0 of $corpus is not written yet: write $corpus's preparation here" \\
     "(egs/TEMPLATE/README.md, 'Hooks')" >&2
exit 1
EOF
fi
if [ -n "$corpus_type" ]; then
  echo "$recipe: set $variable in db.sh (the clips' root), size conf/train.yaml (from $like), then ./run.sh"
else
  echo "$recipe: set $variable in db.sh, write local/data.sh, size conf/train.yaml (from $like), then ./run.sh"
fi
