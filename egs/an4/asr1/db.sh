# shellcheck shell=bash
# Where the corpora are. AN4 defaults to the shared copy beside the checkout.
AN4_ROOT=${AN4_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../../../shared/data/an4}
# The LibriVox clips: an out-of-domain decoding check (data/librivox), prepared when present.
LIBRIVOX_ROOT=${LIBRIVOX_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../../../shared/data/librivox-clips}
# LibriSpeech dev-clean transcripts (text only): what local/data.sh --synth_utts N has offline TTS voices speak (data/synth).
LIBRISPEECH_TEXT=${LIBRISPEECH_TEXT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../../../shared/data/text/librispeech-dev-clean}
# Project Gutenberg books (text only): more text for data/synth with local/data.sh --synth_gutenberg true.
GUTENBERG_TEXT=${GUTENBERG_TEXT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../../../shared/data/text/gutenberg}
