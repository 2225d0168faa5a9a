#!/usr/bin/env bash
# Decoding studies of the trained speech LLM (after ./run.sh, or ./run_compare.sh for the reference AM of the word
# times): long recordings, word times, hotword biasing, the CTC fallback against hallucination. Each step decodes
# sets it builds from AN4 test/dev and the LibriVox clips with espnet_llm.bin.llm_asr_inference into
# ${llm_exp}/studies/<study>/<set>/, and the last writes RESULTS_studies.md (espnet_llm.bin.studies_report).
#
#   Step 1: test sets       data/{test,dev,librivox}  -> data/{test,dev,librivox}_long, data/test_all_long (concat),
#                                                        data/stress_{speech,nonspeech}, data/hotwords/*.txt
#   Step 2: long recordings greedy, segments one by one and long-form (VAD)  -> studies/{segments,longform}_greedy/;
#                           long-form with each --split_pause_seconds of the grid on dev_long
#                           -> studies/longform_greedy_pause<s>/, the value of the lowest dev WER on the test sets
#                           -> studies/longform_pause_greedy/
#   Step 3: word times      speech LLM CTM; the AM's alignment of the references -> studies/wordtimes_greedy/test/
#   Step 4: hotwords        beam 10 + CTC on dev with its rare words at each --hotword_bonus of the grid
#                           -> studies/hotwords_grid_b<bonus>/dev; the bonus of the lowest dev WER on test without /
#                           with the list / with distractors -> studies/hotwords_{none,biased,distractors}/test
#   Step 5: fallback        greedy without / with --fallback joint|ctc at each threshold -> studies/fallback_*/;
#                           greedy behind the VAD gate (--vad_gate true) -> studies/vadgate_greedy/
#   Step 6: report          all of the above                                  -> RESULTS_studies.md (+ a PNG)
#
#   ./run_studies.sh                        # every step (a finished decode is not redone)
#   ./run_studies.sh --step 6               # only the report
#   ./run_studies.sh --llm_exp exp/llm_asr_whisper_ft_lora_Qwen2-0.5B   # another speech LLM of this recipe
set -euo pipefail
cd "$(dirname "$0")"

log() {
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"
}

step=1                  # first step to run
stop_step=6             # last step to run
llm_exp=exp/llm_asr_whisper_ft_lora    # the speech LLM (./run.sh's default system)
model=valid.acc.ave.pth                # its model file
am_exp=exp/asr_whisper_ctc_att_nosp    # an ESPnet AM (raw audio or fbank) whose CTC aligns the references
                                       # (./run_compare.sh trains this one; ./run.sh trains exp/asr_conformer)
nthreads=2              # torch threads of each decoding process
max_segment_seconds=30  # long-form: recordings longer than this are cut by the VAD into segments at most this long
merge_segment_seconds=8 # long-form: pauses join speech into one segment only up to this (AN4's utterances: 1-8 s)
split_pause_grid="0.4 0.6 0.8"  # long-form: never join speech across a pause this long (s); dev_long chooses
thresholds="0.5 0.8"      # CTC-disagreement thresholds of the fallback; dev chooses, per mode
fallback_modes="joint ctc"  # the fallback: decode again with joint CTC, or take the CTC head's best path
hotword_bonus_grid="2 4 6"  # score bonus per LLM token of a listed phrase; dev with its rare words chooses
rare_max_train_count=2  # dev's biasing list: its words that the training transcripts have at most this often
hotword_sets="test"     # sets of the hotword study (each hypothesis runs to its length bound: costly)
distractors=100         # distractor words added to the biasing list
distractor_texts="../../../../shared/data/text/gutenberg/austen-*.txt"  # where the distractors come from
out=RESULTS_studies.md
help_message="Usage: $0 [--step N] [--stop_step M] [--llm_exp DIR] [--am_exp DIR] (steps in the header)"
# shellcheck disable=SC1091
. utils/parse_options.sh
# shellcheck disable=SC1091
. ./path.sh
export OMP_NUM_THREADS=${nthreads}

[ -f "${llm_exp}/${model}" ] || { log "Error: ${llm_exp}/${model} does not exist: train the speech LLM first (./run.sh)"; exit 1; }
studies=${llm_exp}/studies

decode() {  # <study> <set> <decode YAML> [llm_asr_inference options...]: ${studies}/<study>/<set>, unless done
  local _study=$1 _set=$2 _conf=$3 _dir; shift 3
  _dir=${studies}/${_study}/${_set}
  if [ -f "${_dir}/.done" ] && [ "${_dir}/.done" -nt "${llm_exp}/${model}" ]; then
    log "${_dir} is decoded: skipping"; return 0
  fi
  log "Decoding data/${_set} ($(basename "${_conf}") $*) -> ${_dir}"
  mkdir -p "${_dir}"
  echo "python -m espnet_llm.bin.llm_asr_inference --config ${_conf} --exp_dir ${llm_exp} --asr_model_file ${model} $*" > "${_dir}/command.txt"
  python -m espnet_llm.bin.llm_asr_inference --config "${_conf}" --exp_dir "${llm_exp}" --asr_model_file "${model}" \
    --output_dir "${_dir}" --data_path_and_name_and_type "data/${_set}/wav.scp,speech,sound" "$@" > "${_dir}/decode.log" 2>&1 \
    || { log "Error: decoding failed: see ${_dir}/decode.log"; tail -3 "${_dir}/decode.log"; exit 1; }
}

decoded_with() {  # <decode dir> <option> <value>: its command.txt has "<option> <value>" (whole words; 4 is not 4.5)
  [[ " $(cat "$1/command.txt") " == *" $2 $3 "* ]]
}

if [ "${step}" -le 1 ] && [ "${stop_step}" -ge 1 ]; then
  log "Step 1: test sets: data/{test,dev,librivox} -> data/{test,dev,librivox}_long, data/test_all_long, data/stress_*, data/hotwords"
  for dset in test dev librivox; do
    [ -f "data/${dset}_long/text" ] || python -m espnet_llm.bin.datadir_tool concat --pause 1.0 "data/${dset}" "data/${dset}_long"
  done
  [ -f data/test_all_long/text ] || python -m espnet_llm.bin.datadir_tool concat --single --pause 1.0 data/test data/test_all_long
  [ -f data/stress_nonspeech/wav.scp ] || python -m espnet_llm.bin.make_stress_set --speech data/test --ood data/librivox --out_dir data/stress
  python -m espnet_llm.bin.hotword_list --phrases local/hotwords.txt --out data/hotwords/biased.txt
  python -m espnet_llm.bin.hotword_list --rare_words_of data/dev/text --train_text data/train/text \
    --max_train_count "${rare_max_train_count}" --out data/hotwords/dev_rare.txt
  # shellcheck disable=SC2086
  python -m espnet_llm.bin.hotword_list --phrases local/hotwords.txt --distractors "${distractors}" \
    --distractors_from ${distractor_texts} --exclude data/train/text data/dev/text data/test/text data/librivox/text \
    --out data/hotwords/distractors.txt
fi

if [ "${step}" -le 2 ] && [ "${stop_step}" -ge 2 ]; then
  log "Step 2: long recordings: data/{test,dev,librivox}{,_long}, data/test_all_long -> ${studies}/{segments,longform}_greedy, ${studies}/longform_{greedy_pause*,pause_greedy}"
  long_opts=(--long_form true --max_segment_seconds "${max_segment_seconds}" --merge_segment_seconds "${merge_segment_seconds}")
  for dset in test librivox; do
    decode segments_greedy "${dset}" conf/decode_llm_greedy.yaml --long_form false
    decode longform_greedy "${dset}_long" conf/decode_llm_greedy.yaml "${long_opts[@]}"
  done
  decode longform_greedy test_all_long conf/decode_llm_greedy.yaml "${long_opts[@]}"
  # the pause rule: dev_long chooses --split_pause_seconds among the grid, the long test sets are decoded with it
  if [ -z "${split_pause_grid// /}" ]; then
    log "No --split_pause_grid: no long-form decodes with --split_pause_seconds"
  else
    decode segments_greedy dev conf/decode_llm_greedy.yaml --long_form false
    for pause in ${split_pause_grid}; do
      decode "longform_greedy_pause${pause}" dev_long conf/decode_llm_greedy.yaml "${long_opts[@]}" --split_pause_seconds "${pause}"
    done
    # shellcheck disable=SC2086
    split_pause=$(python -m espnet_llm.bin.studies_report --studies_dir "${studies}" --choose_split_pause \
      --split_pause_grid ${split_pause_grid})
    log "--split_pause_seconds ${split_pause}: the lowest WER on data/dev_long"
    for dset in test_long test_all_long librivox_long; do
      pause_dir=${studies}/longform_pause_greedy/${dset}
      if [ -f "${pause_dir}/command.txt" ] && ! decoded_with "${pause_dir}" --split_pause_seconds "${split_pause}"; then
        log "${pause_dir} was decoded with another --split_pause_seconds: decoding it again"
        rm -f "${pause_dir}/.done"
      fi
      decode longform_pause_greedy "${dset}" conf/decode_llm_greedy.yaml "${long_opts[@]}" --split_pause_seconds "${split_pause}"
    done
  fi
fi

if [ "${step}" -le 3 ] && [ "${stop_step}" -ge 3 ]; then
  log "Step 3: word times: data/test -> ${studies}/wordtimes_greedy/test/1best_recog/ctm, ${am_exp}/align_${model%.pth}/test/ctm"
  decode wordtimes_greedy test conf/decode_llm_greedy.yaml --word_times true
  if [ -f "${am_exp}/${model}" ]; then
    [ -f "${am_exp}/align_${model%.pth}/test/ctm" ] || python -m espnet_llm.bin.ctc_align --asr_exp_dir "${am_exp}" \
      --model "${model}" --data_dir data/test --out "${am_exp}/align_${model%.pth}/test/ctm" --threads "${nthreads}"
  else
    log "No ${am_exp}/${model} (./run_compare.sh --parts whisper trains it): the word times have no reference alignment"
  fi
fi

if [ "${step}" -le 4 ] && [ "${stop_step}" -ge 4 ]; then
  log "Step 4: hotwords: data/dev + data/hotwords/dev_rare.txt, data/${hotword_sets// /,} -> ${studies}/hotwords_{grid_b*,none,biased,distractors}"
  for bonus in ${hotword_bonus_grid}; do
    decode "hotwords_grid_b${bonus}" dev conf/decode_llm_beam10_ctc0.3.yaml --hotwords data/hotwords/dev_rare.txt --hotword_bonus "${bonus}"
  done
  # shellcheck disable=SC2086
  bonus=$(python -m espnet_llm.bin.studies_report --studies_dir "${studies}" --choose_hotword_bonus \
    --hotword_bonus_grid ${hotword_bonus_grid})
  log "--hotword_bonus ${bonus}: the lowest WER on data/dev with its rare words"
  for dset in ${hotword_sets}; do
    decode hotwords_none "${dset}" conf/decode_llm_beam10_ctc0.3.yaml
    for list in biased distractors; do
      dir=${studies}/hotwords_${list}/${dset}
      if [ -f "${dir}/command.txt" ] && ! decoded_with "${dir}" --hotword_bonus "${bonus}"; then
        log "${dir} was decoded with another --hotword_bonus: decoding it again"
        rm -f "${dir}/.done"
      fi
      decode "hotwords_${list}" "${dset}" conf/decode_llm_beam10_ctc0.3.yaml --hotwords "data/hotwords/${list}.txt" --hotword_bonus "${bonus}"
    done
  done
fi

if [ "${step}" -le 5 ] && [ "${stop_step}" -ge 5 ]; then
  log "Step 5: fallback: data/{dev,test,stress_speech,stress_nonspeech} -> ${studies}/{fallback_{none,joint_t*,ctc_t*},vadgate_greedy}"
  for dset in dev test stress_speech stress_nonspeech; do
    decode fallback_none "${dset}" conf/decode_llm_greedy.yaml
    decode vadgate_greedy "${dset}" conf/decode_llm_greedy.yaml --vad_gate true
    for t in ${thresholds}; do
      for how in ${fallback_modes}; do
        decode "fallback_${how}_t${t}" "${dset}" conf/decode_llm_greedy.yaml --fallback "${how}" --fallback_threshold "${t}"
      done
    done
  done
fi

if [ "${step}" -le 6 ] && [ "${stop_step}" -ge 6 ]; then
  log "Step 6: report: ${studies} -> ${out}"
  # shellcheck disable=SC2086
  python -m espnet_llm.bin.studies_report --studies_dir "${studies}" --ref_ctm "${am_exp}/align_${model%.pth}/test/ctm" \
    --split_pause_grid ${split_pause_grid} --hotword_bonus_grid ${hotword_bonus_grid} --plot "${out%.md}_word_times.png" --out "${out}"
fi
log "Done: ${out}"
