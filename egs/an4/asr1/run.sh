#!/usr/bin/env bash
# AN4 (CMU census, 948 train / 130 test utterances) on 2 CPU cores, both roads on one corpus:
# - integration: the speech LLM, Whisper tiny.en encoder -> 80 ms stacking -> SmolLM2-135M + LoRA, trained in two
#   stages (conf/train_llm_asr_first.yaml: encoder frozen; conf/train_llm_asr.yaml: encoder fine-tuned), decoded
#   greedily and with joint CTC;
# - combination: an ESPnet conformer CTC/attention AM (conf/train_asr.yaml) alone and fused with SmolLM2-135M
#   (N-best rescoring, label-wise and delayed fusion).
# sclite scores both; stage 13 writes RESULTS.md.
#
#   ./run.sh                                  # everything, default configs
#   ./run.sh --stage 11 --stop_stage 13       # decode, score and report again
#   ./run.sh --llm_asr_first_config "" --llm_asr_config conf/tuning/train_llm_asr_whisper_lora.yaml  # one stage only
#   ./run.sh --llm /path/to/Qwen2-0.5B        # another LLM: its own exp/llm_asr_*_Qwen2-0.5B dirs
#   ./run_compare.sh                          # both roads on the same encoder, a strong AM, a random-init LLM
#   ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"
# RESULTS.md's comparison table (run_compare.sh makes the systems; a block shows the ones that exist)
compare="Whisper tiny.en encoder on both roads=exp/asr_whisper_ctc_att_nosp,exp/llm_asr_whisper_ft_lora"
compare+=",exp/llm_asr_whisper_ft_lora_smollm2-135m-random,exp/llm_asr_whisper_ft_lora_gemma-3-270m-q4_k_m"
compare+=";Conformer AM from scratch=exp/asr_conformer_ep40,exp/asr_conformer"

../../TEMPLATE/asr1/llm_asr.sh \
  --train_set train --valid_set dev --test_sets "test dev" --llm_test_sets "test dev librivox cards" \
  --token_type bpe --nbpe 30 --speed_perturb_factors "0.9 1.0 1.1" \
  --asr_config conf/train_asr.yaml \
  --asr_inference_config conf/decode_asr_beam10_ctc0.3.yaml \
  --fusion_inference_configs "conf/decode_asr_rescore_nbest10.yaml conf/decode_asr_fusion_labelwise.yaml conf/decode_asr_fusion_delayed.yaml" \
  --text_llm_args "--epochs 2" \
  --llm_input raw --llm_init_encoder false \
  --llm_asr_first_config conf/train_llm_asr_first.yaml \
  --llm_asr_config conf/train_llm_asr.yaml \
  --llm_inference_config "conf/decode_llm_greedy.yaml conf/decode_llm_beam10_ctc0.3.yaml" \
  --results_compare "${compare}" \
  "$@"
