#!/usr/bin/env bash
# LibriSpeech (960 h, or the 100 h subset): conformer CTC/attention baseline, speech LLM (conformer encoder ->
# projector -> LLM with LoRA), decoding, sclite scoring and RESULTS.md. Sized for GPUs (see docs/cluster.md).
#
#   ./run.sh --ngpu 4                                     # 960 h
#   ./run.sh --ngpu 1 --train_set train_clean_100 --local_data_opts "--train_set train_clean_100"
#   cmd_backend=slurm ./run.sh --ngpu 4                   # jobs through utils/slurm.pl (cmd.sh)
#   ./run.sh --help
set -euo pipefail
cd "$(dirname "$0")"

../../TEMPLATE/asr1/llm_asr.sh \
  --train_set train_960 --valid_set dev --test_sets "test_clean test_other dev_clean dev_other" \
  --token_type bpe --nbpe 5000 --speed_perturb_factors "0.9 1.0 1.1" --nj 32 --inference_nj 32 \
  --asr_config conf/train_asr.yaml \
  --asr_inference_config conf/decode_asr_beam10_ctc0.3.yaml \
  --llm_asr_config conf/train_llm_asr.yaml \
  --llm_inference_config conf/decode_llm_greedy.yaml \
  "$@"
