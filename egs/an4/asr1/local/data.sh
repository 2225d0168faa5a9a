#!/usr/bin/env bash
# AN4 -> data/{train,dev,test}. Uses ${AN4_ROOT} from db.sh; downloads AN4 when it is absent and online.
set -euo pipefail
# shellcheck disable=SC1091
. ./db.sh
# shellcheck disable=SC1091
. ./path.sh
n_dev=100   # utterances held out of train for dev (whole speakers)
synth_utts=0  # >0: also data/<synth_name>, this many LibriSpeech dev-clean transcripts spoken by offline TTS voices
synth_name=synth  # its data dir (for --llm_train_extra_sets)
synth_max_words=16  # longest transcript drawn for it, in words
synth_nj=2     # synthesisers run at once
synth_skip=0   # >0: leave out the first N utterances of the seeded draw (new text only: disjoint from --synth_utts N's)
synth_gutenberg=false  # true: draw from the Gutenberg books too, without Austen's (Sense and Sensibility is the
                       # LibriVox check's book) and Shakespeare's (early modern spelling)
num_rirs=0     # >0: also data/rirs/wav.scp, this many simulated room impulse responses (training-time reverberation:
               # rir_scp in a speech LLM config, e.g. conf/tuning/train_llm_asr_whisper_lora_tts_aug.yaml)
help_message="Usage: local/data.sh [--n_dev N] [--synth_utts N] [--synth_max_words N] [--synth_nj N] [--synth_gutenberg true|false] [--synth_skip N] [--synth_name NAME] [--num_rirs N]"
. utils/parse_options.sh

if [ ! -d "${AN4_ROOT}/etc" ]; then
  url=http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz
  echo "local/data.sh: AN4 not found at ${AN4_ROOT}; downloading ${url} to downloads/ as ESPnet's recipe does" >&2
  mkdir -p downloads
  if ! { [ -f downloads/an4_sphere.tar.gz ] || wget -q -O downloads/an4_sphere.tar.gz.part "${url}" && \
         mv downloads/an4_sphere.tar.gz.part downloads/an4_sphere.tar.gz; }; then
    echo "local/data.sh: error: AN4 is not at ${AN4_ROOT} and could not be downloaded (offline?)." \
         "Set AN4_ROOT in db.sh or the environment to a copy of AN4." >&2
    exit 1
  fi
  tar -C downloads -xzf downloads/an4_sphere.tar.gz
  AN4_ROOT=$(pwd)/downloads/an4   # SPHERE audio: soundfile (libsndfile) reads it
fi
python local/an4_data_prep.py --root "${AN4_ROOT}" --out_dir data --n_dev "${n_dev}"
if [ -d "${LIBRIVOX_ROOT}/librivox" ]; then
  python local/librivox_data_prep.py --root "${LIBRIVOX_ROOT}" --out_dir data
fi
if [ "${synth_utts}" -gt 0 ]; then  # general English for the speech LLM (out-of-domain text; no audio is downloaded)
  texts=("${LIBRISPEECH_TEXT}")
  "${synth_gutenberg}" && texts+=("${GUTENBERG_TEXT}")
  python local/synth_text.py --text "${texts[@]}" --exclude_books 'austen-*' 'shakespeare-*' \
    --out "data/local/${synth_name}_text"
  python -m espnet_llm.bin.synth_speech --text "data/local/${synth_name}_text" --out_dir "data/${synth_name}" \
    --max_utts "${synth_utts}" --skip_utts "${synth_skip}" --max_words "${synth_max_words}" --nj "${synth_nj}"
fi
if [ "${num_rirs}" -gt 0 ]; then  # simulated rooms (pyroomacoustics), nothing downloaded
  python -m espnet_llm.bin.make_rirs --out_dir data/rirs --num_rirs "${num_rirs}"
fi
