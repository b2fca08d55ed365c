#!/usr/bin/env bash
# Cloud TPU VM (single host or pod slice): create-or-reuse, copy this checkout to every worker,
# install it with the TPU extra, and run one `w4s-jax` subcommand on all workers at once
# (--worker=all), so that jax.distributed initialises on every host of the slice.
#
#   bash launch/tpu_vm.sh [--dry-run] [OPTIONS] up                  create or reuse, copy, install
#   bash launch/tpu_vm.sh [--dry-run] [OPTIONS] run -- SUBCOMMAND [FLAGS]   up, then run on all workers
#   bash launch/tpu_vm.sh [--dry-run] [OPTIONS] down                delete the TPU VM
#
# OPTIONS
#   --name NAME         TPU VM name (default: w4s-jax)
#   --zone ZONE         zone (default: $W4S_TPU_ZONE or us-east5-a)
#   --project PROJECT   project (default: the gcloud configuration's)
#   --accelerator TYPE  v5p-8, v5e-16, v5p-64, v6e-8, v4-8, ... (default: v5p-8)
#   --version VERSION   TPU software version (default: the one for the accelerator's generation)
#   --spot              create a Spot (preemptible) TPU VM
#   --data DIR          also copy DIR to ~/shared/data on every worker (the configs' task.data_dir)
#   --env NAME          forward a local environment variable, e.g. OPENAI_API_KEY (repeatable)
#   --teardown          with run: delete the TPU VM when the run ends, also on failure
#   --dry-run           print every command instead of running it (no gcloud needed)
#
# Logs stream to this terminal and stay on each worker under ~/w4s-jax/runs/logs/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=launch/common.sh
source launch/common.sh

NAME="w4s-jax"
ZONE="${W4S_TPU_ZONE:-us-east5-a}"
PROJECT=""
ACCELERATOR="v5p-8"
VERSION=""
SPOT=0
DATA_DIR=""
TEARDOWN=0
FORWARD_ENV=()
ACTION=""
W4S_ARGS=()
REMOTE_DIR="w4s-jax"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --name) NAME="$2"; shift ;;
    --zone) ZONE="$2"; shift ;;
    --project) PROJECT="$2"; shift ;;
    --accelerator) ACCELERATOR="$2"; shift ;;
    --version) VERSION="$2"; shift ;;
    --spot) SPOT=1 ;;
    --data) DATA_DIR="$2"; shift ;;
    --env) FORWARD_ENV+=("$(env_name "$2")"); shift ;;
    --teardown) TEARDOWN=1 ;;
    up | run | down) ACTION="$1" ;;
    --) shift; W4S_ARGS=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

[[ -n "$ACTION" ]] || die "expected an action: up, run or down (see --help)"
[[ "$ACTION" != run || ${#W4S_ARGS[@]} -gt 0 ]] || die "run needs a w4s-jax subcommand after --, e.g. run -- rlao --config=configs/paper.py:humaneval"
need_tool gcloud "install the Google Cloud CLI, or use --dry-run"

TYPE="$(gcp_accelerator_type "$ACCELERATOR")"
VERSION="${VERSION:-$(tpu_runtime_version "$TYPE")}"
LOCATION=(--zone="$ZONE")
[[ -z "$PROJECT" ]] || LOCATION+=(--project="$PROJECT")
TPU=(gcloud compute tpus tpu-vm)

on_all_workers() {
  run "${TPU[@]}" ssh "$NAME" "${LOCATION[@]}" --worker=all --command="$1"
}

# Copies a local directory to REMOTE (relative to the home directory) on every worker, via one tarball.
copy_tree() {
  local source_dir="$1" remote="$2" archive
  archive="${TMPDIR:-/tmp}/${NAME}-$(basename "$remote").tar.gz"
  run tar -czf "$archive" --exclude=.venv --exclude=.git --exclude=runs --exclude=__pycache__ -C "$source_dir" .
  run "${TPU[@]}" scp "$archive" "$NAME:$(basename "$archive")" "${LOCATION[@]}" --worker=all
  on_all_workers "set -e; mkdir -p ~/$remote; tar -xzf ~/$(basename "$archive") -C ~/$remote"
}

create_or_reuse() {
  local create=("${TPU[@]}" create "$NAME" "${LOCATION[@]}" --accelerator-type="$TYPE" --version="$VERSION")
  [[ "$SPOT" == 0 ]] || create+=(--spot)
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "# reuse $NAME if this succeeds, else create it:"
    run "${TPU[@]}" describe "$NAME" "${LOCATION[@]}" --format=value\(state\)
    run "${create[@]}"
  elif "${TPU[@]}" describe "$NAME" "${LOCATION[@]}" --format='value(state)' >/dev/null 2>&1; then
    echo "reusing TPU VM $NAME in $ZONE"
  else
    run "${create[@]}"
  fi
}

up() {
  create_or_reuse
  copy_tree . "$REMOTE_DIR"
  on_all_workers "set -e; cd ~/$REMOTE_DIR; test -x .venv/bin/python || python3 -m venv .venv; .venv/bin/pip install -q --upgrade pip; .venv/bin/pip install -q -e '.[tpu]'"
  [[ -z "$DATA_DIR" ]] || copy_tree "$DATA_DIR" shared/data
}

down() {
  run "${TPU[@]}" delete "$NAME" "${LOCATION[@]}" --quiet
}

run_everywhere() {
  local exports command log
  exports="$(forwarded_exports "${FORWARD_ENV[@]}")"
  command="$(quote_words .venv/bin/w4s-jax "${W4S_ARGS[@]}")"
  log="runs/logs/${W4S_ARGS[0]}-\$(date -u +%Y%m%dT%H%M%S)-\$(hostname).log"
  on_all_workers "set -o pipefail; cd ~/$REMOTE_DIR; mkdir -p runs/logs; ${exports}${command} 2>&1 | tee $log"
}

case "$ACTION" in
  up) up ;;
  down) down ;;
  run)
    if [[ "$TEARDOWN" == 1 && "$DRY_RUN" == 0 ]]; then trap down EXIT; fi
    up
    run_everywhere
    if [[ "$TEARDOWN" == 1 && "$DRY_RUN" == 1 ]]; then down; fi
    ;;
esac
