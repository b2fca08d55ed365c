"""Forward throughput (tokens/s) of our jitted decoder vs transformers' PyTorch model, same run.

Both run SmolLM2-135M-Instruct in float32 on the same weights (ours from the shipped GGUF,
exported with `export_hf` and loaded by transformers) and the same token batch; the ratio
ours/transformers is what to compare across machines. The max abs logit difference between the
two is reported too, so a fast-but-wrong forward cannot pass unnoticed. So is the same ratio for one
bare fp32 matmul of the model's MLP shape (XLA:CPU vs PyTorch's CPU kernels): the share of the gap
that is the backend's, not the model code's. Beside the ratios: the CPU model, its vector features, the
float32 matmul peak and copy bandwidth measured in the same run, each side's MFU against that peak and
the ratio a forward running at the peak would reach (1 / PyTorch's MFU): where PyTorch is near the
peak already, no implementation can be far ahead of it.

`run(quick)` returns JSON-safe results with markdown-table rows; `python benchmarks/bench_forward.py
[--quick]` prints the table.
"""

from __future__ import annotations

import os
import pathlib
import statistics
import sys
import tempfile
import time

import jax
import numpy as np
import torch
import transformers
from flax import nnx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from w4s_jax.cli.bench_report import measured_machine
from w4s_jax.models import export_hf, load_model, smollm2_gguf_path
from w4s_jax.parallel.mesh import make_mesh
from w4s_jax.rlao.flops import train_flops


def _timed(fn, iterations: int) -> float:
    """Median seconds per call after one warm-up call (which also compiles)."""
    fn()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _matmul_ratio(rows: int, hidden: int, intermediate: int, iterations: int) -> float:
    """Speed of XLA's over PyTorch's [rows, hidden] @ [hidden, intermediate] on this CPU (> 1: XLA faster)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((rows, hidden), np.float32), rng.random((hidden, intermediate), np.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    device_a, device_b = jax.device_put(a), jax.device_put(b)
    xla_s = _timed(lambda: matmul(device_a, device_b).block_until_ready(), iterations * 5)
    torch_a, torch_b = torch.from_numpy(a), torch.from_numpy(b)
    torch_s = _timed(lambda: torch_a @ torch_b, iterations * 5)
    return torch_s / xla_s


def run(quick: bool = False) -> dict:
    """Measures both forwards on one batch; returns tokens/s, the ratio and markdown rows."""
    batch, length = (2, 64) if quick else (4, 256)
    iterations = 3 if quick else 10
    machine = measured_machine(quick)
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    config, model = load_model("smollm2_135m", smollm2_gguf_path(), mesh=mesh)
    with tempfile.TemporaryDirectory() as directory:
        export_hf(model, config, directory)
        reference = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()

    tokens = np.random.default_rng(0).integers(0, config.vocab_size, (batch, length))
    positions = np.broadcast_to(np.arange(length), tokens.shape)
    segments = np.ones_like(tokens, dtype=np.int32)
    graphdef, state = nnx.split(model)
    # Parameters are arguments, not closure constants: XLA would constant-fold 135M weights.
    forward = jax.jit(lambda state, t, p, s: nnx.merge(graphdef, state)(t, p, s)[0])
    ours_s = _timed(lambda: forward(state, tokens, positions, segments).block_until_ready(), iterations)
    ours_logits = np.asarray(forward(state, tokens, positions, segments))

    torch_tokens = torch.tensor(tokens)
    with torch.inference_mode():
        torch_s = _timed(lambda: reference(input_ids=torch_tokens).logits, iterations)
        torch_logits = reference(input_ids=torch_tokens).logits.float().numpy()

    matmul_ratio = _matmul_ratio(batch * length, config.hidden_size, config.intermediate_size, iterations)
    count = batch * length
    # Forward FLOPs: a third of a training step's (2 N per token, causal attention once).
    flops = train_flops(config, count, batch * length * (length + 1) / 2) / 3
    peak = machine["cpu_peak_gflops"] * 1e9
    results = {
        "name": "forward_smollm2_135m",
        "batch": batch,
        "length": length,
        "iterations": iterations,
        "quick": quick,
        "jax_device": str(jax.devices()[0].device_kind),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "ours_tokens_per_s": count / ours_s,
        "transformers_tokens_per_s": count / torch_s,
        "ratio_ours_over_transformers": torch_s / ours_s,
        "max_abs_logit_diff": float(np.abs(ours_logits - torch_logits).max()),
        "matmul_ratio_xla_over_torch": matmul_ratio,
        "ours_mfu": flops / ours_s / peak,
        "transformers_mfu": flops / torch_s / peak,
        "ratio_at_peak": torch_s / (flops / peak),
        "machine": machine,
    }
    results["rows"] = [
        {"implementation": "w4s-jax (jax.jit, fp32)", "batch x length": f"{batch} x {length}",
         "tokens/s": f"{results['ours_tokens_per_s']:.0f}"},
        {"implementation": "transformers (PyTorch, fp32)", "batch x length": f"{batch} x {length}",
         "tokens/s": f"{results['transformers_tokens_per_s']:.0f}"},
        {"implementation": "ratio ours / transformers", "batch x length": "",
         "tokens/s": f"{results['ratio_ours_over_transformers']:.2f}"},
        {"implementation": f"MFU at the measured {machine['cpu_peak_gflops']} GFLOP/s peak: ours / transformers",
         "batch x length": "", "tokens/s": f"{results['ours_mfu']:.2f} / {results['transformers_mfu']:.2f}"},
        {"implementation": "ratio a forward at the measured peak would reach (1 / transformers' MFU)",
         "batch x length": "", "tokens/s": f"{results['ratio_at_peak']:.2f}"},
        {"implementation": "ratio XLA / PyTorch, one MLP-shaped fp32 matmul", "batch x length": f"{count} rows",
         "tokens/s": f"{matmul_ratio:.2f}"},
    ]
    return results


if __name__ == "__main__":
    from w4s_jax.cli.bench_report import script_main

    script_main(run, __doc__, "small batch, few iterations")
