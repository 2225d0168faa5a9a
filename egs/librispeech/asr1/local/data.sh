#!/usr/bin/env bash
# LibriSpeech -> data/{train_clean_100,train_960,dev,dev_clean,dev_other,test_clean,test_other}.
# Uses ${LIBRISPEECH} from db.sh. --train_set train_clean_100 needs only train-clean-100 and the dev/test subsets.
set -euo pipefail
# shellcheck disable=SC1091
. ./db.sh
# shellcheck disable=SC1091
. ./path.sh
train_set=train_960   # train_960 (all 960 h) or train_clean_100 (the 100 h subset)
help_message="Usage: local/data.sh [--train_set train_960|train_clean_100]"
. utils/parse_options.sh

case "${train_set}" in
  train_960|train_clean_100) ;;
  *) echo "local/data.sh: error: --train_set ${train_set}: train_960 or train_clean_100" >&2; exit 2 ;;
esac
python local/librispeech_data_prep.py --root "${LIBRISPEECH}" --out_dir data --train_set "${train_set}"
