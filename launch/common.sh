#!/usr/bin/env bash
# Helpers sourced by the launch scripts: dry-run aware command runner, errors, quoting.
# Not run on its own.

DRY_RUN="${DRY_RUN:-0}"

# Runs a command, or prints it shell-quoted (one line, copy-pastable) under --dry-run.
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    quote_words "$@"
    printf '\n'
  else
    "$@"
  fi
}

# Prints the arguments shell-quoted and space-separated, without a newline. Plain words stay bare;
# others go in single quotes (readable, and safe to paste into a shell or a remote --command).
quote_words() {
  local first=1 word squote="'"
  for word in "$@"; do
    [[ "$first" == 1 ]] || printf ' '
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      printf '%s' "$word"
    else
      printf "'%s'" "${word//$squote/$squote\\$squote$squote}"
    fi
    first=0
  done
}

die() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# Requires a tool on PATH unless this is a dry run (dry runs need no cloud tooling).
need_tool() {
  [[ "$DRY_RUN" == 1 ]] || command -v "$1" >/dev/null || die "'$1' not found on PATH: $2"
}

# The accelerator type GCP expects: v5e is called v5litepod there.
gcp_accelerator_type() {
  local type="$1"
  if [[ "$type" == v5e-* ]]; then echo "v5litepod-${type#v5e-}"; else echo "$type"; fi
}

# The TPU VM software version that matches a TPU generation.
tpu_runtime_version() {
  case "$1" in
    v4-*) echo "tpu-ubuntu2204-base" ;;
    v5e-* | v5litepod-*) echo "v2-alpha-tpuv5-lite" ;;
    v5p-*) echo "v2-alpha-tpuv5" ;;
    v6e-*) echo "v2-alpha-tpuv6e" ;;
    *) die "no runtime version known for accelerator '$1'; pass --version" ;;
  esac
}

# `export NAME=VALUE; ...` for each variable named, to forward secrets such as OPENAI_API_KEY to a
# remote shell. Values are hidden under --dry-run so a printed plan never leaks a key.
forwarded_exports() {
  local name value
  for name in "$@"; do
    value="${!name-}"
    [[ "$DRY_RUN" == 1 ]] && value="<${name} from the local environment>"
    [[ "$DRY_RUN" == 1 || -n "$value" ]] || die "--env $name: the variable is not set locally"
    printf 'export %s=%s; ' "$name" "$(quote_words "$value")"
  done
}

# Prints the script's leading comment block (its usage), without the comment markers.
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

# Prints NAME if it can be an environment variable's name; dies otherwise (for --env NAME).
env_name() {
  [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--env wants a variable name, got '$1'"
  echo "$1"
}
