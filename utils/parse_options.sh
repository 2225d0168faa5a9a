#!/usr/bin/env bash
# Kaldi's option parser, sourced by a script after it defines its options as variables:
#
#   nj=4            # number of parallel jobs
#   use_gpu=false   # decode on the GPU
#   help_message="Usage: $0 [options] <data-dir>"
#   . utils/parse_options.sh
#
# Then "--nj 8", "--use-gpu true", "--use_gpu true" or "--nj=8" set those variables. Only variables that are
# already defined can be set, so a misspelt option is an error. A variable whose value is true or false only
# takes true or false. "--config <file>" sources <file> (lines like "nj=8") before the command-line options are
# applied, wherever it appears. "--help" prints help_message, then each option of the calling script (the
# "name=value  # comment" lines before it sources this file) with its current value and comment, and exits 0.
# Parsing stops at the first argument that is not an option, or after "--"; the caller's positional
# arguments are shifted past the options.

_po_fail() {
  echo "$0: $*" >&2
  exit 1
}

_po_print_help() {
  if [ -n "${help_message:-}" ]; then
    printf '%s\n' "${help_message}"
  fi
  [ -r "$0" ] || return 0
  local line name value comment printed=false
  while IFS= read -r line || [ -n "${line}" ]; do
    [[ ${line} =~ (^|[[:space:]])(\.|source)[[:space:]].*parse_options\.sh ]] && break
    [[ ${line} =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    name=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    [ "${name}" = help_message ] && continue
    [ -n "${!name+x}" ] || continue
    comment=
    if [[ ${value} =~ [[:space:]]#[[:space:]]*(.*)$ ]]; then
      comment=${BASH_REMATCH[1]}
    fi
    if ! ${printed}; then
      printf 'Options (current value, then what it does):\n'
      printed=true
    fi
    line=$(printf '  --%-24s %-16s %s' "${name//_/-}" "(${!name})" "${comment}")
    printf '%s\n' "${line%"${line##*[![:space:]]}"}"
  done < "$0"
}

# Config files first, so that options on the command line override them.
_po_args=("$@")
for ((_po_i = 0; _po_i < ${#_po_args[@]}; _po_i++)); do
  if [ "${_po_args[_po_i]}" = "--config" ] || [[ ${_po_args[_po_i]} == --config=* ]]; then
    if [ "${_po_args[_po_i]}" = "--config" ]; then
      _po_config=${_po_args[_po_i + 1]:-}
    else
      _po_config=${_po_args[_po_i]#--config=}
    fi
    [ -n "${_po_config}" ] || _po_fail "--config needs a file name"
    [ -r "${_po_config}" ] || _po_fail "cannot read config file '${_po_config}'"
    # shellcheck disable=SC1090  # the config file is the user's choice
    . "${_po_config}"
  fi
done
unset _po_args _po_i _po_config

while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h)
      _po_print_help
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --config)
      shift 2
      ;;
    --*=*)
      _po_name=${1%%=*}
      set -- "${_po_name}" "${1#*=}" "${@:2}"
      ;;
    --*)
      _po_name=${1#--}
      _po_name=${_po_name//-/_}
      [[ ${_po_name} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || _po_fail "invalid option $1"
      [ -n "${!_po_name+x}" ] || _po_fail "invalid option $1 (no variable ${_po_name} to set; see --help)"
      [ $# -ge 2 ] || _po_fail "option $1 needs a value"
      if [[ ${!_po_name} == true || ${!_po_name} == false ]] && [[ $2 != true && $2 != false ]]; then
        _po_fail "option $1 takes true or false, got '$2'"
      fi
      printf -v "${_po_name}" '%s' "$2"
      shift 2
      ;;
    *)
      break
      ;;
  esac
done
unset _po_name
unset -f _po_fail _po_print_help
true
