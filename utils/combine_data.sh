#!/usr/bin/env bash
# Merge Kaldi data dirs into one (an utterance id in two sources is an error).
# Usage: utils/combine_data.sh <dst-dir> <src-dir1> <src-dir2> ...
# Options and details: utils/combine_data.sh --help (this wraps: python -m espnet_llm.bin.datadir_tool combine).
set -euo pipefail

utils_dir=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="${utils_dir%/*}${PYTHONPATH:+:${PYTHONPATH}}"
exec python -m espnet_llm.bin.datadir_tool --prog "$(basename "$0")" combine "$@"
