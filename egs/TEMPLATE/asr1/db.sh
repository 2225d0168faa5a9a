# shellcheck shell=bash
# Where the corpus is: local/data.sh reads it from here (set it here, or in the environment: CORPUS_ROOT=... ./run.sh).
CORPUS_ROOT=${CORPUS_ROOT:-/path/to/corpus}
