#!/usr/bin/env bash
# AN4 (CMU census, 948 train / 130 test utterances): conformer CTC/attention baseline, speech LLM
# (encoder -> projector -> SmolLM2-135M), decoding, sclite scoring and RESULTS.md.
#
#   ./run.sh                                  # everything, default configs (2 CPU cores)
#   ./run.sh --stage 8 --stop_stage 11 --llm_asr_config conf/tuning/train_llm_asr_frozen_stride80.yaml
#   ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

../../TEMPLATE/asr1/llm_asr.sh \
  --train_set train --valid_set dev --test_sets "test dev" \
  --token_type bpe --nbpe 30 --speed_perturb_factors "0.9 1.0 1.1" \
  --asr_config conf/tuning/train_asr_conformer.yaml \
  --asr_inference_config conf/decode_asr_beam10_ctc0.3.yaml \
  --llm_asr_config conf/tuning/train_llm_asr_lora_stride80.yaml \
  --llm_inference_config conf/decode_llm_greedy.yaml \
  "$@"
