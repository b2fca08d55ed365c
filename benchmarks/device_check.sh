#!/usr/bin/env bash
# The accelerator check, prepared to run in at most 8 minutes on one NVIDIA GPU (H100) with no network:
#   1. the model, sampler and train-step tests that run on one GPU (pytest; tests needing 8 devices skip);
#   2. benchmarks/device_check.py: forward, decode (batch 1 and 16) and the RLAO train step of a
#      Qwen2.5-1.5B-shaped model with random bf16 weights, MFU against the bf16 matmul peak and decode
#      against the copy bandwidth, both measured in the same run.
# Needs: Python with jax[cuda12] (the version setup.py pins) and the project's light dependencies
# (flax, optax, ml-collections, numpy, pytest; the check lists what is missing). It downloads
# nothing: with no network, set W4S_WHEELS to a folder of wheels and the missing ones install from it
# (pip --no-index). The checkout itself needs no install: it runs from this folder.
# Usage: bash benchmarks/device_check.sh [OUT_DIR]   (default runs/device_check; JSON + logs there)
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR="${1:-runs/device_check}"
PYTHON="${PYTHON:-python}"
mkdir -p "$OUT_DIR"

NEEDED=(jax flax optax ml_collections numpy pytest)
missing=$("$PYTHON" - "${NEEDED[@]}" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
)
if [[ -n "$missing" ]]; then
  if [[ -z "${W4S_WHEELS:-}" ]]; then
    echo "device_check: missing Python packages: $missing (set W4S_WHEELS to a folder of their wheels)" >&2
    exit 2
  fi
  read -r -a wheels <<< "${missing//_/-}"
  "$PYTHON" -m pip install --no-index --find-links "$W4S_WHEELS" "${wheels[@]}"
fi
"$PYTHON" -c "import jax; d = jax.devices()[0]; assert d.platform == 'gpu', f'no GPU: {d}'; print('device_check:', d.device_kind, jax.__version__)"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null | tee "$OUT_DIR/nvidia_smi.csv" || true

# 1. Tests on the GPU. fp32 matmuls at full precision (a GPU's default TF32 would miss the parity
# tolerances); tests that build meshes of several devices skip themselves.
TESTS=(tests/test_models_decoder.py tests/test_models_attention.py tests/test_sampling_sampler.py
       tests/test_sampling_shared_prefill.py tests/test_rlao_loss.py tests/test_rlao_train_step.py)
set +e
JAX_PLATFORMS=cuda JAX_DEFAULT_MATMUL_PRECISION=highest XLA_PYTHON_CLIENT_MEM_FRACTION=0.5 \
  timeout 240 "$PYTHON" -m pytest -q -p no:cacheprovider "${TESTS[@]}" 2>&1 | tee "$OUT_DIR/tests.log"
tests_rc=${PIPESTATUS[0]}
set -e
echo "device_check: tests exit status $tests_rc (124 = past the 240 s limit)"

# 2. The measurements (bf16; the default matmul precision).
set +e
JAX_PLATFORMS=cuda timeout 270 "$PYTHON" benchmarks/device_check.py --out "$OUT_DIR/device_check.json" \
  2>&1 | tee "$OUT_DIR/device_check.log"
check_rc=${PIPESTATUS[0]}
set -e
echo "device_check: measurements exit status $check_rc; results in $OUT_DIR"
exit $(( tests_rc != 0 || check_rc != 0 ))
