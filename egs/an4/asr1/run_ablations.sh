#!/usr/bin/env bash
# Ablation grid of the speech LLM on AN4: one command trains, decodes and scores every system of the chosen
# studies through ./run.sh (stage 9, then stages 11-12, then 13), and writes one table per study into the
# RESULTS_ablations.md (espnet_llm.bin.ablation_table); stage 13's RESULTS.md leaves these systems out.
#
#   ./run_ablations.sh --budget small                      # Whisper tiny.en encoder, 2 epochs, test set only (CPU)
#   ./run_ablations.sh --budget full --studies "stride tuning"   # conformer encoder from the AM, GPU, test + dev
#   ./run_ablations.sh --budget small --dry_run true        # write the configs and the manifest, print the commands
#
# Studies (each variant sets its keys on the base config; a variant whose YAML equals the base's is the base system,
# trained once and shared by every study):
#   stride     projector_conf.stride_ms 80 / 160 / 320 / 640 / 960
#   tuning     LLM frozen / LoRA r8 / LoRA r32 / full fine-tuning (lr 2e-4)
#   mask       model_conf.text_mask_prob 0 / 0.1 / 0.25
#   projector  stack_linear / stack_mlp / conv
#   prompt     none / a short instruction
#   decode     one system, the base + ${decode_train_changes} (a CTC head), decoded greedy / beam 10 /
#              beam 10 length-normalised / beam 10 + CTC 0.3 / 0.5
# Configs are generated from the base with espnet_llm.bin.config_overlay into ${outdir}/conf/; systems go to
# exp/llm_asr_abl_<study>_<variant> (exp/llm_asr_abl_base for the base). A system already trained (its model file
# exists) or scored (score_wer/result.json) is not redone, so a stopped grid continues where it stopped.
# Needs stages 1-4 and 7 of ./run.sh (data, features, Whisper and LLM); --budget full also the AM (stages 5-6).
set -euo pipefail
cd "$(dirname "$0")"

log() {
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"
}

budget=small            # small: Whisper encoder, frozen LLM, 2 epochs, test set (a few CPU hours); full: GPU
studies="stride tuning mask projector prompt decode"  # studies to run, in this order
base_config=""          # training YAML the grid varies; default: whisper_frozen (small) or lora_stride80 (full)
decode_train_changes="model_conf.ctc_weight=0.3"  # keys set on the base for the decode study's system (CTC head)
max_epoch=""            # epochs of every training; default: 2 (small), the base config's (full)
test_sets=""            # sets to decode; default: test (small), "test dev" (full)
ngpu=""                 # GPUs for training; default: 0 (small), 1 (full)
decode_base_config=conf/decode_llm_greedy.yaml  # decoding YAML the decode study varies (greedy: the base)
run_args=""             # extra options for every ./run.sh call, e.g. "--nthreads 1 --llm /path/to/Qwen2-0.5B"
outdir=exp/ablations    # generated configs and the manifest
expdir=exp              # where run.sh puts experiments (its --expdir)
results=RESULTS_ablations.md  # the grid's report
dry_run=false           # true: generate configs and the manifest, print the run.sh commands, run nothing
jobs=1                  # systems trained and decoded at once (use with --run_args "--nthreads 1 --inference_nj 1")
python=python3          # python of the environment (path.sh activates tools/venv)

help_message="Usage: $0 [--budget small|full] [--studies \"stride tuning ...\"] [options]"
grid_command=$(printf '%q ' "./${0##*/}" "$@")
# shellcheck disable=SC1091
. utils/parse_options.sh
# shellcheck disable=SC1091
. ./path.sh

case ${budget} in
  small) base_config=${base_config:-conf/tuning/train_llm_asr_whisper_frozenllm.yaml}; max_epoch=${max_epoch:-2}
         test_sets=${test_sets:-test}; ngpu=${ngpu:-0}
         budget_opts=(--llm_input raw --llm_init_encoder false) ;;
  full)  base_config=${base_config:-conf/tuning/train_llm_asr_conformer_lora_stride80.yaml}
         test_sets=${test_sets:-test dev}; ngpu=${ngpu:-1}
         budget_opts=(--llm_input fbank --llm_init_encoder true) ;;
  *) log "Error: --budget ${budget}: small or full"; exit 2 ;;
esac
# each system is one training of its own YAML (run.sh's default two-stage training does not apply)
# shellcheck disable=SC2206
common_opts=("${budget_opts[@]}" --ngpu "${ngpu}" --expdir "${expdir}" --llm_test_sets "${test_sets}"
             --llm_asr_first_config "" ${run_args})
model=valid.acc.ave.pth

variants() {  # <study>: lines "<variant>|<key=yaml>|..." (the keys it sets on the base config)
  case $1 in
    stride)    for s in 80 160 320 640 960; do echo "stride${s}|projector_conf.stride_ms=${s}"; done ;;
    tuning)    echo "frozen|llm_conf.tuning=frozen"
               echo "lora_r8|llm_conf.tuning=lora|llm_conf.lora.r=8|llm_conf.lora.alpha=16"
               echo "lora_r32|llm_conf.tuning=lora|llm_conf.lora.r=32|llm_conf.lora.alpha=64"
               echo "full_lr2e-4|llm_conf.tuning=full|optim_conf.lr=0.0002" ;;
    mask)      for p in 0.0 0.1 0.25; do echo "mask${p}|model_conf.text_mask_prob=${p}"; done ;;
    projector) echo "linear|projector=stack_linear"; echo "mlp|projector=stack_mlp"; echo "conv|projector=conv" ;;
    prompt)    echo "none|model_conf.prompt=\"\""; echo "instruction|model_conf.prompt=\"Transcribe the speech.\"" ;;
    decode)    echo "greedy"; echo "beam10|beam_size=10"; echo "beam10_lennorm|beam_size=10|normalize_length=true"
               echo "beam10_ctc0.3|beam_size=10|ctc_weight=0.3"; echo "beam10_ctc0.5|beam_size=10|ctc_weight=0.5" ;;
    *) log "Error: unknown study '$1' (stride tuning mask projector prompt decode)"; exit 2 ;;
  esac
}

same_yaml() {  # <a.yaml> <b.yaml>: true when both load to the same configuration (comments aside)
  ${python} -c 'import sys, yaml; a, b = (yaml.safe_load(open(f)) for f in sys.argv[1:]); sys.exit(a != b)' "$1" "$2"
}

overlay() {  # <base yaml> <out yaml> <key=yaml>...: write the base with the changes
  local base=$1 out=$2 change; shift 2
  local opts=()
  for change in "$@"; do opts+=(--set "${change}"); done
  ${python} -m espnet_llm.bin.config_overlay --base "${base}" "${opts[@]}" --out "${out}" > /dev/null
}

run() {  # ./run.sh <options>, or only print it with --dry_run true
  log "./run.sh $*"
  "${dry_run}" || ./run.sh "$@"
}

mkdir -p "${outdir}/conf"
manifest=${outdir}/manifest.tsv
[ -f "${manifest}" ] || printf 'study\tsystem\texp_dir\tdecode_dir\ttest_set\tcommand\n' > "${manifest}"
echo "# grid: ${grid_command% }" >> "${manifest}"
greedy_conf=${outdir}/conf/decode_llm_abl_greedy.yaml
overlay "${decode_base_config}" "${greedy_conf}"
epoch_opts=(); [ -n "${max_epoch}" ] && epoch_opts=("max_epoch=${max_epoch}")

base_conf=${outdir}/conf/train_llm_asr_abl_base.yaml
overlay "${base_config}" "${base_conf}" "${epoch_opts[@]}"
# shellcheck disable=SC2206
decode_changes=(${decode_train_changes})

declare -A pipeline=()  # tag -> lines "train <run.sh options>" and "decode <decode dir> <run.sh options>"
declare -A queued=()    # decode dirs already in a pipeline
tags=()
for study in ${studies}; do
  while IFS='|' read -r -a spec; do
    variant=${spec[0]}; changes=("${spec[@]:1}")
    decode_conf=${greedy_conf}; system=${variant}
    if [ "${study}" = decode ]; then  # one system, decoded in several ways
      decode_conf=${outdir}/conf/decode_llm_abl_${variant}.yaml
      overlay "${decode_base_config}" "${decode_conf}" "${changes[@]}"
      changes=("${decode_changes[@]}"); system=system
    fi
    tag=abl_${study}_${system}
    train_conf=${outdir}/conf/train_llm_asr_${tag}.yaml
    overlay "${base_config}" "${train_conf}" "${changes[@]}" "${epoch_opts[@]}"
    if same_yaml "${train_conf}" "${base_conf}"; then  # this variant is the base system
      rm "${train_conf}"; tag=abl_base; train_conf=${base_conf}
    fi
    exp=${expdir}/llm_asr_${tag}
    decode_dir=${exp}/decode_$(basename "${decode_conf}" .yaml | sed 's/^decode_//')_$(basename "${model}" .pth)
    train=(--stage 9 --stop_stage 9 --llm_asr_config "${train_conf}" --llm_asr_tag "${tag}" "${common_opts[@]}")
    decode=(--stage 11 --stop_stage 12 --llm_asr_config "${train_conf}" --llm_asr_tag "${tag}"
            --llm_inference_config "${decode_conf}" "${common_opts[@]}")
    command="$(printf '%q ' ./run.sh "${train[@]}")&& $(printf '%q ' ./run.sh "${decode[@]}")"
    for dset in ${test_sets}; do
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${study}" "${variant}" "${exp}" "${decode_dir}" "${dset}" "${command% }" >> "${manifest}"
    done
    log "${study}/${variant}: ${train_conf} -> ${exp}, ${decode_conf} -> ${decode_dir}"
    if [ -z "${pipeline[${tag}]+x}" ]; then tags+=("${tag}"); pipeline[${tag}]=$(printf '%q ' train "${train[@]}"); fi
    # the base system is the base of several studies: decode it once
    [ -n "${queued[${decode_dir}]+x}" ] && continue
    queued[${decode_dir}]=1
    pipeline[${tag}]+=$'\n'$(printf '%q ' decode "${decode_dir}" "${decode[@]}")
  done < <(variants "${study}")
done

system_pipeline() {  # <tag>: train the system unless its model exists, then each decoding not scored yet
  local line args exp=${expdir}/llm_asr_$1 scored dset
  while IFS= read -r line; do
    [ -n "${line}" ] || continue
    eval "args=(${line})"
    if [ "${args[0]}" = train ]; then
      if [ -e "${exp}/${model}" ]; then log "${exp}/${model} exists: not training again"; else run "${args[@]:1}" || return 1; fi
    else
      scored=true
      for dset in ${test_sets}; do [ -f "${args[1]}/${dset}/score_wer/result.json" ] || scored=false; done
      if "${scored}"; then log "${args[1]} is scored: not decoding again"; else run "${args[@]:2}" --score_exps "${exp}" || return 1; fi
    fi
  done <<< "${pipeline[$1]}"
}

# Systems are independent: up to ${jobs} of them train and decode at once, each logging to ${outdir}/log/<tag>.log
mkdir -p "${outdir}/log"
for tag in "${tags[@]}"; do
  if [ "${jobs}" -le 1 ] || "${dry_run}"; then
    system_pipeline "${tag}" || { log "Error: ${tag} failed"; exit 1; }
    continue
  fi
  while [ "$(jobs -rp | wc -l)" -ge "${jobs}" ]; do wait -n || true; done
  log "${tag}: started (log: ${outdir}/log/${tag}.log)"
  rm -f "${outdir}/log/${tag}.rc"
  { if system_pipeline "${tag}"; then rc=0; else rc=1; fi; echo "${rc}" > "${outdir}/log/${tag}.rc"; } \
    > "${outdir}/log/${tag}.log" 2>&1 &
done
wait
failed=()
if [ "${jobs}" -gt 1 ] && ! "${dry_run}"; then
  for tag in "${tags[@]}"; do [ "$(cat "${outdir}/log/${tag}.rc" 2>/dev/null)" = 0 ] || failed+=("${tag}"); done
fi
if [ ${#failed[@]} -gt 0 ]; then
  log "Error: these systems failed: ${failed[*]} (logs: ${outdir}/log/<tag>.log)"; exit 1
fi

if "${dry_run}"; then
  ${python} -m espnet_llm.bin.ablation_table --manifest "${manifest}" --out -
else
  ${python} -m espnet_llm.bin.ablation_table --manifest "${manifest}" --out "${results}"
fi
log "Successfully finished the ablation grid (${budget}: ${studies}); tables in ${results}"
