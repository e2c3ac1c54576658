#!/usr/bin/env bash
# Source this after the defaults block of a script: every "--some_name value" (also
# "--some-name value" or "--some_name=value") overrides the variable some_name of that block.
# The options are the "name=value   # comment" lines above the line that sources this file
# (help_message excepted); --help lists them with their current values and comments, after
# $help_message if it is set.
# A default of true/false only takes true/false, an integer default only integers.
# "--config file" sources a file of name=value lines first. Remaining arguments are left
# in "$@" as positional arguments.  Example:
#   stage=0   # first stage to run
#   . utils/parse_options.sh  # ./run.sh --stage 3 data/x
if [ -z "${BASH_VERSION:-}" ]; then echo "parse_options.sh: needs bash" >&2; return 1; fi

_po_script=${BASH_SOURCE[1]:-$0}
# "name<TAB>comment" of each option line of the defaults block (the lines above this file's call).
_po_options=$(awk '/parse_options\.sh/ { exit }
  match($0, /^[A-Za-z_][A-Za-z0-9_]*=/) && !/^help_message=/ {
    name = substr($0, 1, RLENGTH - 1); comment = ""
    if (match($0, /[ \t]#[ \t]?/)) comment = substr($0, RSTART + RLENGTH)
    if (!(name in seen)) { seen[name]; print name "\t" comment } }' "$_po_script")
_po_names=" $(cut -f1 <<< "$_po_options" | tr '\n' ' ')"

while true; do
  [ -z "${1:-}" ] && break
  case "$1" in
    --help|-h)
      [ -n "${help_message:-}" ] && printf '%s\n\n' "$help_message" >&2
      echo "Options (--name value; --name-with-dashes also works), with their current defaults:" >&2
      while IFS=$'\t' read -r _po_var _po_comment; do
        printf '  --%-18s %-22s %s\n' "$_po_var" "${!_po_var:-\"\"}" "$_po_comment" >&2
      done <<< "$_po_options"
      exit 0 ;;
    --*=*) _po_name=${1%%=*}; _po_value=${1#*=}; shift ;;
    --*)
      if [ $# -lt 2 ]; then echo "$0: option '$1' needs a value" >&2; exit 1; fi
      _po_name=$1; _po_value=$2; shift 2 ;;
    *) break ;;
  esac
  _po_var=${_po_name#--}; _po_var=${_po_var//-/_}
  if [ "$_po_var" = config ]; then
    [ -f "$_po_value" ] || { echo "$0: config file '$_po_value' not found" >&2; exit 1; }
    . "$_po_value"; continue
  fi
  if [[ $_po_names != *" $_po_var "* ]]; then
    echo "$0: unknown option '$_po_name'; the options are:$(sed 's/ / --/g' <<< "${_po_names% }")" >&2
    echo "(see $0 --help)" >&2
    exit 1
  fi
  # Booleans stay booleans and integers integers, so a typo like --stage 3x fails here, not later.
  _po_old=${!_po_var}
  if { [ "$_po_old" = true ] || [ "$_po_old" = false ]; } && [ "$_po_value" != true ] && [ "$_po_value" != false ]; then
    echo "$0: option '$_po_name' expects true or false, got '$_po_value'" >&2
    exit 1
  fi
  if [[ $_po_old =~ ^-?[0-9]+$ && ! $_po_value =~ ^-?[0-9]+$ ]]; then
    echo "$0: option '$_po_name' expects an integer, got '$_po_value'" >&2
    exit 1
  fi
  printf -v "$_po_var" '%s' "$_po_value"
done
unset _po_script _po_options _po_names _po_name _po_value _po_var _po_old _po_comment
true
