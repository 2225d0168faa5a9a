# shellcheck shell=bash
# Where the corpora are: the directory holding mls_<lang>/ (FLAC release) or mls_<lang>_opus/ (Opus release).
MLS=${MLS:-/data/mls}
