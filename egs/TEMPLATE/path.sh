# Environment for every recipe (sourced by run.sh): project venv, C sorting, offline HF.
MAIN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
if [ ! -f "$MAIN_ROOT/tools/venv/bin/activate" ]; then
  echo "path.sh: $MAIN_ROOT/tools/venv not found; run: bash $MAIN_ROOT/tools/install.sh" >&2
  return 1
fi
. "$MAIN_ROOT/tools/venv/bin/activate"
export PATH=$MAIN_ROOT/utils:$PATH
export LC_ALL=C PYTHONUNBUFFERED=1 PYTHONIOENCODING=UTF-8
# Weights come from local directories only; nothing is downloaded at run time.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
