#!/usr/bin/env bash
# Copy part of a Kaldi data dir: n utterances (evenly spread, --first, --last or --shuffle [--seed N]), or those of a list.
# Usage: utils/subset_data_dir.sh [--first|--last|--shuffle] [--seed N] <src-dir> <n> <dst-dir> | [--utt-list F|--spk-list F] <src-dir> <dst-dir>
# Options and details: utils/subset_data_dir.sh --help (this wraps: python -m espnet_llm.bin.datadir_tool subset).
set -euo pipefail

utils_dir=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="${utils_dir%/*}${PYTHONPATH:+:${PYTHONPATH}}"
exec python -m espnet_llm.bin.datadir_tool --prog "$(basename "$0")" subset "$@"
