#!/usr/bin/env bash
# Submit a multi-node GPU job that runs one `w4s-jax` subcommand (launch/slurm.sbatch does the work).
#
#   bash launch/slurm.sh [--dry-run] [OPTIONS] -- SUBCOMMAND [FLAGS]
#
# OPTIONS
#   --nodes N            nodes (default: 2)
#   --gpus-per-node G    GPUs per node (default: 8)
#   --partition NAME     partition (default: the cluster's)
#   --account NAME       account to charge (default: yours)
#   --time HH:MM:SS      wall-clock limit (default: the partition's)
#   --env NAME           make sure a local variable such as OPENAI_API_KEY is set; sbatch passes
#                        the submitting environment to the job (repeatable)
#   --dry-run            print the sbatch line and the job's srun line (no SLURM needed)
#
# Run it from the checkout on a shared filesystem after installing the CUDA build once on a login
# node: python3 -m venv .venv && .venv/bin/pip install -e '.[cuda]'
# Logs: runs/logs/slurm-<job id>.out.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=launch/common.sh
source launch/common.sh

NODES=2
GPUS_PER_NODE=8
SBATCH_OPTIONS=()
REQUIRED_ENV=()
W4S_ARGS=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --nodes) NODES="$2"; shift ;;
    --gpus-per-node) GPUS_PER_NODE="$2"; shift ;;
    --partition) SBATCH_OPTIONS+=(--partition="$2"); shift ;;
    --account) SBATCH_OPTIONS+=(--account="$2"); shift ;;
    --time) SBATCH_OPTIONS+=(--time="$2"); shift ;;
    --env) REQUIRED_ENV+=("$(env_name "$2")"); shift ;;
    --) shift; W4S_ARGS=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

[[ ${#W4S_ARGS[@]} -gt 0 ]] || die "expected a w4s-jax subcommand after --, e.g. -- rlao --config=configs/paper.py:humaneval,h100-2x8"
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "--nodes wants a positive integer, got '$NODES'"
[[ "$GPUS_PER_NODE" =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-node wants a positive integer, got '$GPUS_PER_NODE'"
for name in "${REQUIRED_ENV[@]}"; do
  [[ "$DRY_RUN" == 1 || -n "${!name-}" ]] || die "--env $name: the variable is not set locally"
done
need_tool sbatch "run this on a SLURM login node, or use --dry-run"
[[ "$DRY_RUN" == 1 || -x "${W4S_VENV:-.venv}/bin/w4s-jax" ]] || die "no ${W4S_VENV:-.venv}/bin/w4s-jax: install with python3 -m venv .venv && .venv/bin/pip install -e '.[cuda]'"

[[ "$DRY_RUN" == 1 ]] || mkdir -p runs/logs
run sbatch --nodes="$NODES" --ntasks-per-node=1 --gpus-per-node="$GPUS_PER_NODE" "${SBATCH_OPTIONS[@]}" \
  --export=ALL launch/slurm.sbatch "${W4S_ARGS[@]}"
if [[ "$DRY_RUN" == 1 ]]; then
  echo "# the job then starts one task on each of the $NODES nodes:"
  SLURM_NNODES="$NODES" bash launch/slurm.sbatch --dry-run "${W4S_ARGS[@]}"
fi
