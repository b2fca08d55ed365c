"""RLAO train-step time on CPU: JAX (this project) vs an equivalent PyTorch step, and CPU MFU.

Both sides train SmolLM2-135M's architecture (random init) on the same batch shape (4 x 1024 tokens,
one example per row, reply tokens carrying the loss) with the same reward-weighted loss
(sum_e w_e * mean_token_nll_e / examples) and AdamW. PyTorch runs transformers' LlamaForCausalLM
built from the same config. MFU divides the model FLOPs (6 N tokens + attention) by a float32
matmul peak measured in the same run, printed with the CPU model, its vector features and the copy
bandwidth; `torch/jax at peak` is the ratio a step running at that peak would reach (1 / PyTorch's
MFU). `quick` shrinks the batch for a CI smoke run.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from w4s_jax.cli.bench_report import measured_machine
from w4s_jax.models import get_preset, load_model
from w4s_jax.parallel.mesh import make_mesh
from w4s_jax.rlao.flops import train_flops
from w4s_jax.rlao.pipeline import BATCH_AXES, place_batch
from w4s_jax.rlao.settings import OptimizerConfig, StepConfig
from w4s_jax.rlao.train_step import TrainProgram


def synthetic_batch(rows: int, seq: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One example per row: the first half is the prompt, the second half the weighted reply."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(rows, seq + 1)).astype(np.int32)
    mask = np.zeros((rows, seq), np.float32)
    mask[:, seq // 2 :] = 1.0
    weights = np.exp(rng.choice([0.0, 0.5, 1.0], size=rows) / 0.4).astype(np.float32)
    return {
        "inputs": ids[:, :-1],
        "targets": ids[:, 1:],
        "positions": np.broadcast_to(np.arange(seq, dtype=np.int32), (rows, seq)).copy(),
        "segment_ids": np.ones((rows, seq), np.int32),
        "branch_ids": np.zeros((rows, seq), np.int32),
        "target_scale": mask / mask.sum(1, keepdims=True),
        "example_weight": np.repeat(weights[:, None], seq, axis=1),
    }


def time_jax(batch: dict, steps: int) -> tuple[float, float]:
    """(compile + first step seconds, median step seconds) of the jitted RLAO step on one CPU device."""
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    config, model = load_model("smollm2_135m", "", mesh=mesh)
    program = TrainProgram(config, mesh, OptimizerConfig(learning_rate=1e-5, warmup_steps=0, total_steps=100),
                           StepConfig(logits_chunk=512))
    from flax import nnx

    state, frozen = program.init_state(nnx.to_pure_dict(nnx.state(model)), seed=0)
    del model
    local = {k: v[None] for k, v in batch.items()}
    placed = place_batch(local, NamedSharding(mesh, PartitionSpec(None, BATCH_AXES, None)))
    times = []
    with jax.set_mesh(mesh):
        for _ in range(steps + 1):
            start = time.perf_counter()
            state, metrics = program.step(state, frozen, placed)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - start)
    return times[0], float(np.median(times[1:]))


def time_torch(batch: dict, steps: int) -> float:
    """Median seconds of the same step in PyTorch (LlamaForCausalLM, torch AdamW)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    config = LlamaConfig(**{k: v for k, v in get_preset("smollm2_135m").to_hf_config().items()
                            if k not in ("architectures", "model_type", "torch_dtype")})
    config._attn_implementation = "sdpa"
    model = LlamaForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    inputs = torch.from_numpy(batch["inputs"]).long()
    targets = torch.from_numpy(batch["targets"]).long()
    scale = torch.from_numpy(batch["target_scale"])
    weight = torch.from_numpy(batch["example_weight"])
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        logits = model(input_ids=inputs).logits.float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        loss = (weight * scale * nll).sum() / inputs.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def run(quick: bool = False) -> dict:
    rows, seq, steps = (1, 256, 1) if quick else (4, 1024, 1)
    config = get_preset("smollm2_135m")
    batch = synthetic_batch(rows, seq, config.vocab_size)
    machine = measured_machine(quick)
    peak = machine["cpu_peak_gflops"] * 1e9
    compile_s, jax_s = time_jax(batch, steps)
    torch_s = time_torch(batch, steps)
    tokens = rows * seq
    flops = train_flops(config, tokens, rows * seq * (seq + 1) / 2)
    row = {
        "model": "smollm2_135m (fp32, CPU)",
        "batch": f"{rows} x {seq}",
        "jax_step_s": round(jax_s, 3),
        "torch_step_s": round(torch_s, 3),
        "torch/jax": round(torch_s / jax_s, 2),
        "jax_tokens_per_s": round(tokens / jax_s, 1),
        "jax_mfu": round(flops / jax_s / peak, 4),
        "torch_mfu": round(flops / torch_s / peak, 4),
        "cpu_peak_gflops": round(peak / 1e9, 1),
        "torch/jax at peak": round(torch_s / (flops / peak), 2),
        "jax_compile_s": round(compile_s, 1),
    }
    return {"rows": [row], "flops_per_step": flops, "cpu_peak_flops": peak, "quick": quick, "machine": machine}


if __name__ == "__main__":
    from w4s_jax.cli.bench_report import script_main

    script_main(run, __doc__)
