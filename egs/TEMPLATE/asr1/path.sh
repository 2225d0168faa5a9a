# shellcheck shell=bash
# Environment of every recipe (each egs/<corpus>/asr1/path.sh links here): the virtualenv, sclite, offline HF, threads.
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
if [ -f "${MAIN_ROOT}/tools/venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "${MAIN_ROOT}/tools/venv/bin/activate"
fi
export PATH=${MAIN_ROOT}/utils:/usr/lib/sctk/bin:${PATH}
export PYTHONPATH=${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONIOENCODING=UTF-8 LC_ALL=C
