#!/usr/bin/env bash
# Split a Kaldi data dir into <data-dir>/split<nj>/{1..nj} (by utterance; --per-spk keeps speakers whole). Reruns on unchanged input do nothing.
# Usage: utils/split_data.sh [--per-spk] <data-dir> <nj>
# Options and details: utils/split_data.sh --help (this wraps: python -m espnet_llm.bin.datadir_tool split).
set -euo pipefail

utils_dir=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="${utils_dir%/*}${PYTHONPATH:+:${PYTHONPATH}}"
exec python -m espnet_llm.bin.datadir_tool --prog "$(basename "$0")" split "$@"
