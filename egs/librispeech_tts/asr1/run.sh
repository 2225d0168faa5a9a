#!/usr/bin/env bash
# General English from offline TTS voices: LibriSpeech dev-clean and Gutenberg sentences spoken by 13 voices of eSpeak
# NG, Flite and Festival and by Piper's neural voice (local/data.sh; nothing downloaded), a speech LLM trained on them
# (Whisper tiny.en encoder -> 80 ms stacking -> SmolLM2-135M + LoRA, two stages, speed perturbation and simulated rooms
# on the fly) and tested on real read speech: the LibriVox and cards clips. No AM: --asr_config "".
#
#   ./run.sh                                  # everything (2 CPU cores: 1 h 38 min measured, most of it the two stages)
#   ./run.sh --local_data_opts "--an4 true" --test_sets "librivox cards an4_test"   # + AN4 (train and test)
#   ./run.sh --stage 11 --stop_stage 13       # decode, score and report again
#   ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

../../TEMPLATE/asr1/llm_asr.sh \
  --train_set train --valid_set dev --test_sets "librivox cards" \
  --token_type bpe --nbpe 30 --speed_perturb_factors "" \
  --asr_config "" --fusion_inference_configs "" \
  --llm_input raw --llm_init_encoder false \
  --llm_asr_first_config conf/train_llm_asr_first.yaml \
  --llm_asr_config conf/train_llm_asr.yaml \
  --llm_inference_config "conf/decode_llm_greedy.yaml conf/decode_llm_beam10_ctc0.3.yaml" \
  "$@"
