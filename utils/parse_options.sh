#!/usr/bin/env bash
# Source this after defining defaults: every "--some-name value" (or "--some-name=value")
# overrides the shell variable some_name, which must already be defined.
# "--config file" sources a file of name=value lines first. Remaining arguments are left
# in "$@" as positional arguments.  Example:
#   stage=0; nj=4; . utils/parse_options.sh  # ./run.sh --stage 3 --nj 8 data/x
if [ -z "${BASH_VERSION:-}" ]; then echo "parse_options.sh: needs bash" >&2; return 1; fi

while true; do
  [ -z "${1:-}" ] && break
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then printf '%s\n' "$help_message" >&2; else
        echo "Options: $(grep -oE '^[a-z_][a-z0-9_]*=' "$0" | tr -d = | sed 's/^/--/; s/_/-/g' | tr '\n' ' ')" >&2; fi
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
  if [[ ! $_po_var =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!_po_var+set}" ]; then
    echo "$0: invalid option '$_po_name' (no variable '$_po_var' is defined before parse_options.sh)" >&2
    exit 1
  fi
  # Booleans must stay booleans, so a typo like --use-gpu ture fails here, not later.
  _po_old=${!_po_var}
  if { [ "$_po_old" = true ] || [ "$_po_old" = false ]; } && [ "$_po_value" != true ] && [ "$_po_value" != false ]; then
    echo "$0: option '$_po_name' expects true or false, got '$_po_value'" >&2
    exit 1
  fi
  printf -v "$_po_var" '%s' "$_po_value"
done
unset _po_name _po_value _po_var _po_old
true
