#!/usr/bin/env bash
# Check a Kaldi data dir (sorted unique ids, files agree, non-empty UTF-8 text); exit 1 listing the problems.
# Usage: utils/validate_data_dir.sh [--feats] [--no-text] [--no-wav] <data-dir>
# Options and details: utils/validate_data_dir.sh --help (this wraps: python -m espnet_llm.bin.datadir_tool validate).
set -euo pipefail

utils_dir=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="${utils_dir%/*}${PYTHONPATH:+:${PYTHONPATH}}"
exec python -m espnet_llm.bin.datadir_tool --prog "$(basename "$0")" validate "$@"
