# shellcheck shell=bash
# Where the corpora are: the directory holding the extracted LibriSpeech subsets (or its LibriSpeech/ dir).
LIBRISPEECH=${LIBRISPEECH:-/data/LibriSpeech}
