#!/usr/bin/env bash
# Sort a Kaldi data dir, drop utterances missing from a file or with empty text, regenerate spk2utt (backup in <data-dir>/.backup/).
# Usage: utils/fix_data_dir.sh <data-dir>
# Options and details: utils/fix_data_dir.sh --help (this wraps: python -m espnet_llm.bin.datadir_tool fix).
set -euo pipefail

utils_dir=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="${utils_dir%/*}${PYTHONPATH:+:${PYTHONPATH}}"
exec python -m espnet_llm.bin.datadir_tool --prog "$(basename "$0")" fix "$@"
