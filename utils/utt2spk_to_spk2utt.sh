#!/usr/bin/env bash
# Print the spk2utt of an utt2spk file (or of stdin).
# Usage: utils/utt2spk_to_spk2utt.sh [<utt2spk>] > spk2utt
# Options and details: utils/utt2spk_to_spk2utt.sh --help (this wraps: python -m espnet_llm.bin.datadir_tool utt2spk_to_spk2utt).
set -euo pipefail

utils_dir=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="${utils_dir%/*}${PYTHONPATH:+:${PYTHONPATH}}"
exec python -m espnet_llm.bin.datadir_tool --prog "$(basename "$0")" utt2spk_to_spk2utt "$@"
