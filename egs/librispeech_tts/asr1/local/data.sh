#!/usr/bin/env bash
# General English spoken by offline TTS voices -> data/{train,dev}; real read speech to test on -> data/{librivox,cards}.
# The text is LibriSpeech dev-clean and Project Gutenberg sentences (1-16 words; not Austen's, whose Sense and
# Sensibility the LibriVox clips read, nor Shakespeare's); train and dev are disjoint draws of it. Nothing is downloaded.
set -euo pipefail
# shellcheck disable=SC1091
. ./db.sh
# shellcheck disable=SC1091
. ./path.sh
voice_utts=3000  # training utterances in the 13 voices of eSpeak NG, Flite and Festival
piper_utts=3000  # training utterances in Piper's neural voice (piper:joe), lengths and noise varied per utterance
dev_utts=200     # dev utterances (half in each group of voices), text disjoint from the training draw
max_words=16     # longest sentence drawn, in words
synth_nj=2       # synthesisers run at once
num_rirs=200     # simulated rooms for training-time reverberation (data/rirs; rir_scp in the configs)
an4=false        # true: AN4's training speech joins data/train and AN4 test is a test set (data/an4_test)
help_message="Usage: local/data.sh [--voice_utts N] [--piper_utts N] [--dev_utts N] [--max_words N] [--synth_nj N] [--num_rirs N] [--an4 true|false]"
. utils/parse_options.sh

an4_local=../../an4/asr1/local  # the AN4 recipe's readers: Sphinx transcripts, the LibriVox/cards clips, the text pool
mkdir -p data/local
python "${an4_local}/synth_text.py" --text "${LIBRISPEECH_TEXT}" "${GUTENBERG_TEXT}" \
  --exclude_books 'austen-*' 'shakespeare-*' --out data/local/pool_text
synth() {  # <out dir> <utterances> <first utterance of the draw> <voices...>
  local out=$1 n=$2 skip=$3; shift 3
  python -m espnet_llm.bin.synth_speech --text data/local/pool_text --out_dir "${out}" --max_utts "${n}" \
    --skip_utts "${skip}" --min_words 1 --max_words "${max_words}" --voices "$@" --nj "${synth_nj}"
}
voices=(espeak:en-us espeak:en-gb espeak:en-gb-x-rp espeak:en-gb-scotland espeak:en-029 espeak:en-gb-x-gbclan
        flite:slt flite:rms flite:awb flite:kal16 festival:cmu_us_slt_arctic_hts festival:kal_diphone festival:ked_diphone)
half=$((dev_utts / 2))
# each group draws its own seeded sequence of sentences: its dev set starts where its training set ends, so the two
# never share a sentence; the two groups are kept apart by the Piper group starting after the voices' draws
synth data/local/train_voices "${voice_utts}" 0 "${voices[@]}"
synth data/local/dev_voices "${half}" "${voice_utts}" "${voices[@]}"
synth data/local/train_piper "${piper_utts}" $((voice_utts + half)) piper:joe
synth data/local/dev_piper "${half}" $((voice_utts + half + piper_utts)) piper:joe
train_parts=(data/local/train_voices data/local/train_piper)
if "${an4}"; then
  python "${an4_local}/an4_data_prep.py" --root "${AN4_ROOT}" --out_dir data/local/an4
  train_parts+=(data/local/an4/train)
  rm -rf data/an4_test && cp -r data/local/an4/test data/an4_test
fi
python -m espnet_llm.bin.datadir_tool combine data/train "${train_parts[@]}"
python -m espnet_llm.bin.datadir_tool combine data/dev data/local/dev_voices data/local/dev_piper
python "${an4_local}/librivox_data_prep.py" --root "${LIBRIVOX_ROOT}" --out_dir data
if [ "${num_rirs}" -gt 0 ]; then
  python -m espnet_llm.bin.make_rirs --out_dir data/rirs --num_rirs "${num_rirs}"
fi
