# shellcheck shell=bash
# Where the text and the check sets are: the shared copies beside the checkout by default.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# LibriSpeech dev-clean transcripts (text only) and Project Gutenberg books: what the offline voices speak.
LIBRISPEECH_TEXT=${LIBRISPEECH_TEXT:-${here}/../../../../shared/data/text/librispeech-dev-clean}
GUTENBERG_TEXT=${GUTENBERG_TEXT:-${here}/../../../../shared/data/text/gutenberg}
# Real read speech to test on: the LibriVox clips (data/librivox) and the cards clips (data/cards).
LIBRIVOX_ROOT=${LIBRIVOX_ROOT:-${here}/../../../../shared/data/librivox-clips}
# AN4 (optional extra training speech and test set: local/data.sh --an4 true).
AN4_ROOT=${AN4_ROOT:-${here}/../../../../shared/data/an4}
