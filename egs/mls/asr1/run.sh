#!/usr/bin/env bash
# Multilingual LibriSpeech: one language (default German) or all eight together, same stages as AN4.
# Sized for GPUs (see docs/cluster.md).
#
#   ./run.sh --ngpu 4                                          # German
#   ./run.sh --ngpu 4 --local_data_opts "--lang dutch"         # another language
#   ./run.sh --ngpu 8 --local_data_opts "--lang all" --test_sets "test_german test_dutch ..."  # multilingual
#   ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

../../TEMPLATE/asr1/llm_asr.sh \
  --train_set train --valid_set dev --test_sets "test dev" \
  --token_type bpe --nbpe 2000 --speed_perturb_factors "" --nj 32 --inference_nj 32 \
  --local_data_opts "--lang german" \
  --asr_config conf/train_asr.yaml \
  --asr_inference_config conf/decode_asr_beam10_ctc0.3.yaml \
  --llm_asr_config conf/train_llm_asr.yaml \
  --llm_inference_config conf/decode_llm_greedy.yaml \
  "$@"
