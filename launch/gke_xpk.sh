#!/usr/bin/env bash
# GKE TPU slices: submit one `w4s-jax` subcommand as a workload that runs on every host of every
# slice (jax.distributed initialises from the GKE TPU environment), with xpk or as a plain JobSet.
#
#   bash launch/gke_xpk.sh [--dry-run] [OPTIONS] run -- SUBCOMMAND [FLAGS]     xpk workload create
#   bash launch/gke_xpk.sh [--dry-run] [OPTIONS] delete                        xpk workload delete
#   bash launch/gke_xpk.sh [OPTIONS] jobset -- SUBCOMMAND [FLAGS] | kubectl apply -f -
#                                                       a JobSet manifest, for clusters without xpk
#
# OPTIONS
#   --cluster NAME      GKE cluster (required for run/delete)
#   --workload NAME     workload / JobSet name (default: w4s-jax)
#   --project PROJECT   project (default: the gcloud configuration's)
#   --zone ZONE         zone (default: $W4S_TPU_ZONE or us-east5-a)
#   --tpu-type TYPE     v5p-8, v5p-16, v5p-32, v5p-64, v5e-4, v5e-8, v5e-16, v5e-32, v6e-8, v6e-16, v4-8
#                       (default: v5p-64)
#   --num-slices N      slices (default: 1); more than 1 is multislice over the data-center network
#   --image IMAGE       a container image with w4s-jax installed ("pip install -e .[tpu]");
#                       without it, run builds one from this checkout on --base-image (xpk --script-dir)
#   --base-image IMAGE  base of that build (default: python:3.11-slim); required by nothing else
#   --env NAME          give the workload an environment variable (repeatable), e.g. OPENAI_API_KEY:
#                       run forwards the local value; jobset reads it from the Kubernetes secret
#                       w4s-jax-secrets (kubectl create secret generic w4s-jax-secrets --from-literal=...)
#   --dry-run           print the xpk command instead of running it (no xpk needed)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=launch/common.sh
source launch/common.sh

CLUSTER=""
WORKLOAD="w4s-jax"
PROJECT=""
ZONE="${W4S_TPU_ZONE:-us-east5-a}"
TPU_TYPE="v5p-64"
NUM_SLICES=1
IMAGE=""
BASE_IMAGE="python:3.11-slim"
FORWARD_ENV=()
ACTION=""
W4S_ARGS=()
SECRET="w4s-jax-secrets"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --cluster) CLUSTER="$2"; shift ;;
    --workload) WORKLOAD="$2"; shift ;;
    --project) PROJECT="$2"; shift ;;
    --zone) ZONE="$2"; shift ;;
    --tpu-type) TPU_TYPE="$2"; shift ;;
    --num-slices) NUM_SLICES="$2"; shift ;;
    --image) IMAGE="$2"; shift ;;
    --base-image) BASE_IMAGE="$2"; shift ;;
    --env) FORWARD_ENV+=("$(env_name "$2")"); shift ;;
    run | delete | jobset) ACTION="$1" ;;
    --) shift; W4S_ARGS=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

[[ -n "$ACTION" ]] || die "expected an action: run, delete or jobset (see --help)"
[[ "$ACTION" == delete || ${#W4S_ARGS[@]} -gt 0 ]] || die "$ACTION needs a w4s-jax subcommand after --"
[[ "$NUM_SLICES" =~ ^[1-9][0-9]*$ ]] || die "--num-slices wants a positive integer, got '$NUM_SLICES'"

# TPU type -> GKE node label, topology, hosts per slice and chips per host.
slice_shape() {
  case "$1" in
    v4-8) echo "tpu-v4-podslice 2x2x1 1 4" ;;
    v5p-8) echo "tpu-v5p-slice 2x2x1 1 4" ;;
    v5p-16) echo "tpu-v5p-slice 2x2x2 2 4" ;;
    v5p-32) echo "tpu-v5p-slice 2x2x4 4 4" ;;
    v5p-64) echo "tpu-v5p-slice 2x4x4 8 4" ;;
    v5e-4) echo "tpu-v5-lite-podslice 2x2 1 4" ;;
    v5e-8) echo "tpu-v5-lite-podslice 2x4 1 8" ;;
    v5e-16) echo "tpu-v5-lite-podslice 4x4 4 4" ;;
    v5e-32) echo "tpu-v5-lite-podslice 4x8 8 4" ;;
    v6e-8) echo "tpu-v6e-slice 2x4 1 8" ;;
    v6e-16) echo "tpu-v6e-slice 4x4 4 4" ;;
    *) die "unknown --tpu-type '$1' (see --help for the known ones)" ;;
  esac
}
read -r NODE_LABEL TOPOLOGY HOSTS CHIPS_PER_HOST <<<"$(slice_shape "$TPU_TYPE")"

# The container's shell command: install from the copied checkout when no ready image is given;
# with $1 = exports, forward the --env variables' local values inside the command.
container_command() {
  local install="" exports=""
  [[ -n "$IMAGE" ]] || install="pip install -q -e '.[tpu]' && "
  [[ "${1:-}" != exports ]] || exports="$(forwarded_exports "${FORWARD_ENV[@]}")"
  printf '%s%s%s' "$install" "$exports" "$(quote_words w4s-jax "${W4S_ARGS[@]}")"
}

location() {
  local flags=(--zone="$ZONE")
  [[ -z "$PROJECT" ]] || flags+=(--project="$PROJECT")
  printf '%s\n' "${flags[@]}"
}

xpk_run() {
  local create location_flags
  [[ -n "$CLUSTER" ]] || die "run needs --cluster"
  mapfile -t location_flags < <(location)
  create=(xpk workload create --cluster="$CLUSTER" --workload="$WORKLOAD" --tpu-type="$(gcp_accelerator_type "$TPU_TYPE")"
          --num-slices="$NUM_SLICES" "${location_flags[@]}")
  if [[ -n "$IMAGE" ]]; then
    create+=(--docker-image="$IMAGE")
  else
    create+=(--base-docker-image="$BASE_IMAGE" --script-dir=.)
  fi
  create+=(--command="$(container_command exports)")
  need_tool xpk "pip install xpk, or use --dry-run"
  run "${create[@]}"
}

xpk_delete() {
  local location_flags
  [[ -n "$CLUSTER" ]] || die "delete needs --cluster"
  mapfile -t location_flags < <(location)
  need_tool xpk "pip install xpk, or use --dry-run"
  run xpk workload delete --cluster="$CLUSTER" --workload="$WORKLOAD" "${location_flags[@]}"
}

# The env list of the container: every --env variable read from the Kubernetes secret.
jobset_env() {
  local name
  [[ ${#FORWARD_ENV[@]} -gt 0 ]] || return 0
  echo "                  env:"
  for name in "${FORWARD_ENV[@]}"; do
    cat <<EOF
                    - name: $name
                      valueFrom:
                        secretKeyRef: {name: $SECRET, key: $name}
EOF
  done
}

# A JobSet with one replicated job per slice and one pod per TPU host.
jobset_manifest() {
  local command
  [[ -n "$IMAGE" ]] || die "jobset needs --image (a container image with w4s-jax installed)"
  command="$(container_command)"
  command="${command//\\/\\\\}"
  cat <<EOF
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: $WORKLOAD
  annotations:
    alpha.jobset.sigs.k8s.io/exclusive-topology: cloud.google.com/gke-nodepool
spec:
  failurePolicy:
    maxRestarts: 0
  network:
    enableDNSHostnames: true
  replicatedJobs:
    - name: slice
      replicas: $NUM_SLICES
      template:
        spec:
          parallelism: $HOSTS
          completions: $HOSTS
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              nodeSelector:
                cloud.google.com/gke-tpu-accelerator: $NODE_LABEL
                cloud.google.com/gke-tpu-topology: $TOPOLOGY
              containers:
                - name: w4s-jax
                  image: $IMAGE
                  command: ["bash", "-c", "${command//\"/\\\"}"]
$(jobset_env)
                  resources:
                    limits:
                      google.com/tpu: $CHIPS_PER_HOST
EOF
}

case "$ACTION" in
  run) xpk_run ;;
  delete) xpk_delete ;;
  jobset) jobset_manifest ;;
esac
