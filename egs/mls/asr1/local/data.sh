#!/usr/bin/env bash
# Multilingual LibriSpeech -> data/{train,dev,test} of one language, or of all eight (language-prefixed ids)
# plus data/{dev,test}_<lang>. Uses ${MLS} from db.sh.
set -euo pipefail
# shellcheck disable=SC1091
. ./db.sh
# shellcheck disable=SC1091
. ./path.sh
lang=german   # english german dutch french spanish italian portuguese polish, or all (multilingual)
help_message="Usage: local/data.sh [--lang german|...|all]"
. utils/parse_options.sh

python local/mls_data_prep.py --root "${MLS}" --out_dir data --lang "${lang}"
