"""Peak host memory while `load_model` reads a Hugging Face safetensors checkpoint.

Each load runs in a fresh subprocess: after the imports and JAX's start-up its RSS is the
baseline, and the kernel's RSS high-water mark (VmHWM) is reset there (`/proc/self/clear_refs`,
since imports alone peak far above the baseline); VmHWM after the load, minus the baseline, is
the load's peak. On a CPU backend the loaded parameters themselves live in host RAM, so the figure
that shows the loader's own cost is `overhead` = peak - baseline - parameter bytes, to be compared
with the largest single tensor (the design target) and the checkpoint size (a naive
load-everything-then-place loader).

Checkpoints: SmolLM2-135M-Instruct (from the shipped GGUF, exported by our `export_hf`, fp32) and
a randomly initialised qwen2p5_1p5b-shaped bf16 checkpoint that the script writes to a temp dir
(quick mode: qwen2p5_0p5b).

`run(quick)` returns JSON-safe results with markdown-table rows; `python benchmarks/load_memory.py
[--quick]` prints the table.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from w4s_jax.models.hf_export import PendingTensor, write_safetensors
from w4s_jax.models.hf_layout import hf_tensor_shapes
from w4s_jax.models.presets import get_preset

MIB = 1024 * 1024


def write_random_checkpoint(preset: str, directory: pathlib.Path, dtype: str = "bfloat16", seed: int = 0) -> None:
    """A random checkpoint of the preset's shape, streamed tensor by tensor (never all in memory)."""
    config = get_preset(preset).replace(param_dtype=dtype)
    rng = np.random.default_rng(seed)
    tensors = [
        PendingTensor(name, shape, lambda shape=shape: 0.02 * rng.standard_normal(shape, dtype=np.float32))
        for name, shape in hf_tensor_shapes(config)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors(directory / "model.safetensors", tensors, dtype)
    (directory / "config.json").write_text(json.dumps(config.to_hf_config(), indent=2), encoding="utf-8")


def export_smollm2(directory: pathlib.Path) -> None:
    """SmolLM2-135M-Instruct from the GGUF, written as fp32 safetensors by our exporter."""
    import jax

    from w4s_jax.models import export_hf, load_model, smollm2_gguf_path
    from w4s_jax.parallel.mesh import make_mesh

    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    config, model = load_model("smollm2_135m", smollm2_gguf_path(), mesh=mesh)
    export_hf(model, config, directory)


def _status_kib(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_child(path: str, preset: str, dtype: str) -> dict:
    """Runs in the fresh subprocess: baseline RSS, reset high-water mark, load, high-water RSS."""
    import jax
    from flax import nnx
    from safetensors import safe_open

    from w4s_jax.models import load_model
    from w4s_jax.models.hf_import import tensor_index
    from w4s_jax.parallel.mesh import make_mesh

    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    jax.block_until_ready(jax.numpy.zeros(()))
    index = tensor_index(pathlib.Path(path))  # headers only
    itemsize = np.dtype(jax.numpy.dtype(dtype)).itemsize
    largest = 0
    for name, file in index.items():
        with safe_open(file, framework="np") as handle:
            largest = max(largest, int(np.prod(handle.get_slice(name).get_shape())) * itemsize)
    pathlib.Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    baseline = _status_kib("VmRSS") * 1024
    _, model = load_model(preset, path, mesh=mesh, dtype=dtype, param_dtype=dtype)
    params = jax.tree.leaves(nnx.state(model))
    jax.block_until_ready(params)
    return {
        "baseline_rss_bytes": baseline,
        "high_water_bytes": _status_kib("VmHWM") * 1024,
        "param_bytes": int(sum(p.nbytes for p in params)),
        "largest_tensor_bytes": largest,
        "checkpoint_bytes": int(sum(f.stat().st_size for f in pathlib.Path(path).glob("*.safetensors"))),
    }


def measure(path: pathlib.Path, preset: str, dtype: str) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    env.pop("XLA_FLAGS", None)  # one CPU device: the whole model in this process's RAM
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(path), preset, dtype],
        capture_output=True, text=True, env=env, check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"load_memory child for {preset} failed:\n{child.stderr[-4000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    peak = result["high_water_bytes"] - result["baseline_rss_bytes"]
    result.update(
        preset=preset,
        dtype=dtype,
        peak_over_baseline_bytes=peak,
        overhead_bytes=peak - result["param_bytes"],
        overhead_over_largest_tensor=(peak - result["param_bytes"]) / result["largest_tensor_bytes"],
    )
    return result


def run(quick: bool = False) -> dict:
    """Measures both loads; returns the figures and markdown rows."""
    big = "qwen2p5_0p5b" if quick else "qwen2p5_1p5b"
    with tempfile.TemporaryDirectory() as tmp:
        smol_dir, big_dir = pathlib.Path(tmp) / "smollm2", pathlib.Path(tmp) / big
        export_smollm2(smol_dir)
        write_random_checkpoint(big, big_dir)
        results = [measure(smol_dir, "smollm2_135m", "float32"), measure(big_dir, big, "bfloat16")]
    rows = [
        {
            "checkpoint": f"{r['preset']} ({r['dtype']})",
            "file MiB": f"{r['checkpoint_bytes'] / MIB:.0f}",
            "params MiB": f"{r['param_bytes'] / MIB:.0f}",
            "largest tensor MiB": f"{r['largest_tensor_bytes'] / MIB:.0f}",
            "peak - baseline MiB": f"{r['peak_over_baseline_bytes'] / MIB:.0f}",
            "overhead (peak - baseline - params) MiB": f"{r['overhead_bytes'] / MIB:.0f}",
            "overhead / largest tensor": f"{r['overhead_over_largest_tensor']:.2f}",
        }
        for r in results
    ]
    return {"name": "load_memory", "quick": quick, "results": results, "rows": rows}


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(measure_child(*sys.argv[2:])))
        sys.exit(0)
    from w4s_jax.cli.bench_report import script_main

    script_main(run, __doc__, "qwen2p5_0p5b instead of qwen2p5_1p5b")
