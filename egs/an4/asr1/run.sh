#!/usr/bin/env bash
# AN4 (CMU census, 948 train / 130 test utterances): conformer CTC/attention baseline (ESPnet), the same AM fused
# with SmolLM2-135M (N-best rescoring, label-wise and delayed fusion), and the speech LLM: Whisper tiny.en encoder
# -> 80 ms stacking -> SmolLM2-135M + LoRA, trained in two stages (encoder frozen 10 epochs, then fine-tuned with
# the rest 4 epochs), decoded greedily and with joint CTC (beam 10, CTC weight 0.3); sclite scoring and RESULTS.md.
#
#   ./run.sh                                  # everything, default configs (2 CPU cores)
#   ./run.sh --stage 9 --stop_stage 13 --llm_asr_first_config "" \
#       --llm_asr_config conf/tuning/train_llm_asr_whisper_lora.yaml   # one stage: the Whisper encoder stays frozen
#   ./run.sh --stage 9 --stop_stage 13 --llm_input fbank --llm_init_encoder true \
#       --llm_asr_first_config conf/tuning/train_llm_asr_lora_stride80.yaml \
#       --llm_asr_config conf/tuning/train_llm_asr_lora_stride80_ftenc.yaml  # the same on the AM's conformer encoder
#   ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

../../TEMPLATE/asr1/llm_asr.sh \
  --train_set train --valid_set dev --test_sets "test dev" --llm_test_sets "test dev librivox cards" \
  --token_type bpe --nbpe 30 --speed_perturb_factors "0.9 1.0 1.1" \
  --asr_config conf/tuning/train_asr_conformer.yaml \
  --asr_inference_config conf/decode_asr_beam10_ctc0.3.yaml \
  --fusion_inference_configs "conf/decode_asr_rescore_nbest10.yaml conf/decode_asr_fusion_labelwise.yaml conf/decode_asr_fusion_delayed.yaml" \
  --text_llm_args "--epochs 2" \
  --llm_input raw --llm_init_encoder false \
  --llm_asr_first_config conf/tuning/train_llm_asr_whisper_lora.yaml \
  --llm_asr_config conf/tuning/train_llm_asr_whisper_ft_lora.yaml \
  --llm_inference_config "conf/decode_llm_greedy.yaml conf/decode_llm_beam10_ctc0.3.yaml" \
  "$@"
