#!/usr/bin/env bash
# Make a new corpus recipe from this template, as ESPnet's egs2/TEMPLATE/asr1/setup.sh does.
#
# Usage: egs/TEMPLATE/asr1/setup.sh egs/<corpus>/asr1
#   egs/TEMPLATE/asr1/setup.sh egs/mycorpus/asr1      # then write egs/mycorpus/asr1/local/data.sh and run ./run.sh
#
# Makes <dir> with: utils and path.sh (links into the checkout), cmd.sh and db.sh (copies of this template's, to edit),
# run.sh (calls ../../TEMPLATE/asr1/llm_asr.sh with the corpus options to edit), conf/ (AN4's decoding configs, its
# conformer AM and Whisper + LoRA speech LLM as conf/train_asr.yaml and conf/train_llm_asr.yaml, links into
# conf/tuning/ as in egs/an4/asr1, and the tiny configs for a smoke run) and a local/data.sh that stops with what it
# must do. See egs/TEMPLATE/asr1/README.md.
set -euo pipefail
if [ $# -ne 1 ] || [[ $1 == -* ]]; then
  echo "Usage: $0 egs/<corpus>/asr1" >&2
  exit 2
fi
dir=${1%/}
template=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
egs=$(dirname "$(dirname "${template}")")
an4=${egs}/an4/asr1
corpus=$(basename "$(dirname "${dir}")")
if [ -e "${dir}" ]; then
  echo "setup.sh: error: ${dir} already exists" >&2; exit 1
fi
if ! [ -d "$(dirname "$(dirname "${dir}")")" ] || [ "$(cd "$(dirname "$(dirname "${dir}")")" && pwd -P)" != "${egs}" ]; then
  echo "setup.sh: error: ${dir}: a recipe lives at ${egs}/<corpus>/<task> (its links point two levels up)" >&2; exit 1
fi
if ! [[ ${corpus} =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || [ "${corpus}" = TEMPLATE ]; then
  echo "setup.sh: error: ${dir}: corpus name '${corpus}' must be letters, digits, '_', '.', '-' (and not TEMPLATE)" >&2
  exit 1
fi
for f in "${an4}/conf/decode_asr_beam10_ctc0.3.yaml" "${an4}/conf/tuning/train_asr_conformer.yaml"; do
  [ -f "${f}" ] || { echo "setup.sh: error: ${f} not found: conf/ is copied from egs/an4/asr1" >&2; exit 1; }
done

mkdir -p "${dir}/conf/tuning" "${dir}/local"
ln -s ../../../utils "${dir}/utils"
ln -s ../../TEMPLATE/asr1/path.sh "${dir}/path.sh"
cp "${template}/cmd.sh" "${template}/db.sh" "${dir}/"

# Decoding configs: AN4's, with the text LLM of stage 8 named after this corpus (exp/llm_text_<corpus>)
for f in "${an4}"/conf/decode_*.yaml; do
  sed "s#exp/llm_text_an4#exp/llm_text_${corpus}#" "${f}" > "${dir}/conf/$(basename "${f}")"
done
# Training configs: AN4's, their header (what each is, the run.sh command that trains it) told where it came from
for f in train_asr_conformer train_asr_tiny train_llm_asr_whisper_lora train_llm_asr_tiny train_llm_asr_tiny_ft; do
  awk -v note="# Copied from egs/an4/asr1/conf/tuning/${f}.yaml by egs/TEMPLATE/asr1/setup.sh: its figures are AN4's." \
    '!done && !/^#/ { print note; done = 1 } { print }' "${an4}/conf/tuning/${f}.yaml" > "${dir}/conf/tuning/${f}.yaml"
done
ln -s tuning/train_asr_conformer.yaml "${dir}/conf/train_asr.yaml"
ln -s tuning/train_llm_asr_whisper_lora.yaml "${dir}/conf/train_llm_asr.yaml"

cat > "${dir}/run.sh" <<RUN
#!/usr/bin/env bash
# ${corpus}: an ESPnet conformer CTC/attention AM alone and fused with an LLM, and a speech LLM (Whisper tiny.en
# encoder -> projector -> SmolLM2-135M + LoRA); sclite scores both, stage 13 writes RESULTS.md.
# Made by egs/TEMPLATE/asr1/setup.sh: set the options below for the corpus (../../TEMPLATE/asr1/README.md).
#
#   ./run.sh                                  # everything, default configs
#   ./run.sh --stage 11 --stop_stage 13       # decode, score and report again
#   ./run.sh --help                           # every option of ../../TEMPLATE/asr1/llm_asr.sh
set -euo pipefail
cd "\$(dirname "\$0")"

# --nbpe: conf/decode_asr_fusion_labelwise.yaml names exp/llm_text_${corpus}_bpe<nbpe>
../../TEMPLATE/asr1/llm_asr.sh \\
  --train_set train --valid_set dev --test_sets "test dev" \\
  --token_type bpe --nbpe 30 --speed_perturb_factors "0.9 1.0 1.1" \\
  --asr_config conf/train_asr.yaml \\
  --asr_inference_config conf/decode_asr_beam10_ctc0.3.yaml \\
  --fusion_inference_configs "conf/decode_asr_rescore_nbest10.yaml conf/decode_asr_fusion_labelwise.yaml conf/decode_asr_fusion_delayed.yaml" \\
  --text_llm_corpus ${corpus} \\
  --llm_input raw --llm_init_encoder false \\
  --llm_asr_config conf/train_llm_asr.yaml \\
  --llm_inference_config "conf/decode_llm_greedy.yaml conf/decode_llm_beam10_ctc0.3.yaml" \\
  "\$@"
RUN

cat > "${dir}/local/data.sh" <<'DATA'
#!/usr/bin/env bash
# The corpus -> data/{train,dev,test}: Kaldi data dirs (wav.scp, text, utt2spk, spk2utt), the one script a corpus writes.
# See ../../TEMPLATE/asr1/README.md for the data-dir contract; ../../an4/asr1/local/data.sh is a worked example.
set -euo pipefail
# shellcheck disable=SC1091
. ./db.sh
# shellcheck disable=SC1091
. ./path.sh
help_message="Usage: local/data.sh [options of your own, set with utils/parse_options.sh]"
. utils/parse_options.sh

echo "local/data.sh: error: not written yet. Make it read the corpus at CORPUS_ROOT=${CORPUS_ROOT} (db.sh) and write" \
     "data/train, data/dev and data/test (wav.scp, text, utt2spk, spk2utt; sorted, unique ids);" \
     "see ../../TEMPLATE/asr1/README.md" >&2
exit 1
DATA
chmod +x "${dir}/run.sh" "${dir}/local/data.sh"
echo "setup.sh: made ${dir}: now write ${dir}/local/data.sh, set ${dir}/db.sh and the options in ${dir}/run.sh"
