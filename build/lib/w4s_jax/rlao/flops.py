"""Model FLOPs per training step and the peak FLOP/s they are measured against (MFU).

Training FLOPs = 6 * N * tokens (forward + backward through every matmul weight, LM head included;
the embedding lookup is not a matmul) + attention: per layer and attended (query, key) pair,
4 * heads * head_dim forward (scores and weighted values), times 3 with the backward pass. With
packing the pairs are counted per segment (causal: n(n+1)/2). LoRA skips the base weights'
gradients, so it costs 4 * N instead of 6 * N per token.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

from w4s_jax.models.config import ModelConfig

# Dense bf16 peak FLOP/s per chip, keyed by a substring of `device.device_kind`.
PEAK_FLOPS_PER_CHIP: dict[str, float] = {
    "TPU v6 lite": 918e12,
    "TPU v5 lite": 197e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v4": 275e12,
    "TPU v3": 123e12,
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
}


def matmul_params(config: ModelConfig) -> int:
    """Weights that take part in a matmul per token: attention, MLP and the LM head."""
    d, h, kv, dh, f = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim, config.intermediate_size
    per_layer = d * h * dh * 2 + d * kv * dh * 2 + 3 * d * f
    return config.num_layers * per_layer + d * config.vocab_size


def train_flops(config: ModelConfig, tokens: float, attention_pairs: float, lora: bool = False) -> float:
    """Model FLOPs of one optimizer step over `tokens` tokens (see module doc)."""
    weight_factor = 4 if lora else 6
    attention = 3 * 4 * config.num_layers * config.num_heads * config.head_dim * attention_pairs
    return weight_factor * matmul_params(config) * tokens + attention


def peak_for_kind(device_kind: str) -> float | None:
    for key, peak in PEAK_FLOPS_PER_CHIP.items():
        if key in device_kind:
            return peak
    return None


@functools.cache
def measured_cpu_peak(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a float32 [size, size] matmul on this host's first CPU device (best of repeats)."""
    return measured_matmul_peak(jax.devices("cpu")[0], jnp.float32, size, repeats)


def measured_matmul_peak(device: jax.Device, dtype: jnp.dtype, size: int, repeats: int) -> float:
    """FLOP/s of a [size, size] @ [size, size] matmul in `dtype` on `device` (best of repeats, after a warm-up)."""
    a = jax.device_put(jnp.ones((size, size), dtype), device)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_flops_per_second(devices: list[jax.Device]) -> tuple[float, str]:
    """(peak FLOP/s of these devices together, where the figure comes from).

    CPU "devices" (including fake ones from --xla_force_host_platform_device_count) share one
    host's cores, so their peak is the host's measured matmul rate, not a multiple of it.
    """
    kind = devices[0].device_kind
    if devices[0].platform == "cpu":
        return measured_cpu_peak(), "measured float32 matmul on this host"
    peak = peak_for_kind(kind)
    if peak is None:
        return float("nan"), f"unknown device kind {kind!r}"
    return peak * len(devices), f"table: {kind} bf16 dense x {len(devices)}"
