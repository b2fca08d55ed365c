"""Matmul screen (docs/results/cpu_ratios.md): XLA:CPU with the XLA_FLAGS given vs PyTorch on SmolLM2-135M
shapes, same process; prints JSON of GFLOP/s per shape. Run once per flag setting:
`JAX_PLATFORMS=cpu XLA_FLAGS="<flags>" nice -n 5 python benchmarks/_matmul_screen.py`. It does not import
w4s_jax, so the project's flags do not apply. ONLY=<substring> picks shapes; STAT=min takes the best time.

The shapes above time one matmul again and again, so its weights sit in cache. Decode reads every
weight once per step from memory: the `cold` rows time a chain of 30 SmolLM2 MLPs (up, tanh, down),
each with its own weights (212 MB in all, beyond the L3 cache), and also report GB/s of weights read.
"""
import json
import os
import statistics
import time

import jax
import numpy as np
import torch

HIDDEN, FFN, KV, VOCAB = 576, 1536, 192, 49152  # SmolLM2-135M: hidden, MLP, 3 kv heads x 64, vocabulary
SHAPES = {  # name: (rows, k, n) of [rows, k] @ [k, n]
    "fwd1024 mlp-up [1024,576]x[576,1536]": (1024, HIDDEN, FFN),
    "fwd1024 mlp-down [1024,1536]x[1536,576]": (1024, FFN, HIDDEN),
    "fwd1024 q/o [1024,576]x[576,576]": (1024, HIDDEN, HIDDEN),
    "fwd1024 k/v [1024,576]x[576,192]": (1024, HIDDEN, KV),
    "fwd1024 head [1024,576]x[576,49152]": (1024, HIDDEN, VOCAB),
    "train4096 mlp-up [4096,576]x[576,1536]": (4096, HIDDEN, FFN),
    "train dW [576,4096]x[4096,1536]": (HIDDEN, 4096, FFN),
    "dec16 mlp-up [16,576]x[576,1536]": (16, HIDDEN, FFN),
    "dec16 mlp-down [16,1536]x[1536,576]": (16, FFN, HIDDEN),
    "dec16 q/o [16,576]x[576,576]": (16, HIDDEN, HIDDEN),
    "dec16 k/v [16,576]x[576,192]": (16, HIDDEN, KV),
    "dec16 head [16,576]x[576,49152]": (16, HIDDEN, VOCAB),
    "dec1 mlp-up [1,576]x[576,1536]": (1, HIDDEN, FFN),
    "square2048": (2048, 2048, 2048),
}
COLD_LAYERS, COLD_ROWS = 30, (1, 4, 16, 64)


def timed(fn, repeats: int) -> float:
    """Seconds per call (median, or best with STAT=min) after a pause and two warm-up calls."""
    time.sleep(0.3)  # let the other library's spinning workers park
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) if os.environ.get("STAT") == "min" else statistics.median(times)


def main() -> None:
    if os.environ.get("TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["TORCH_THREADS"]))
    only = os.environ.get("ONLY")
    rng = np.random.default_rng(0)
    matmul = jax.jit(lambda x, y: x @ y)
    out = {"flags": os.environ.get("XLA_FLAGS", ""), "torch_threads": torch.get_num_threads(), "rows": {}}
    for name, (m, k, n) in SHAPES.items():
        if only and only not in name:
            continue
        a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
        flops = 2 * m * k * n
        repeats = max(5, min(200, int(2e10 / flops)))
        device_a, device_b = jax.device_put(a), jax.device_put(b)
        xla_s = timed(lambda: matmul(device_a, device_b).block_until_ready(), repeats)  # noqa: B023
        torch_a, torch_b = torch.from_numpy(a), torch.from_numpy(b)
        torch_s = timed(lambda: torch_a @ torch_b, repeats)  # noqa: B023
        out["rows"][name] = {"xla_gflops": round(flops / xla_s / 1e9, 1), "torch_gflops": round(flops / torch_s / 1e9, 1),
                             "ratio": round(torch_s / xla_s, 2)}
    for rows in COLD_ROWS:
        name = f"cold{rows} mlp chain [{rows},576] x 30 x ([576,1536], [1536,576])"
        if not only or only in name:
            out["rows"][name] = _cold_chain(rows, rng)
    print(json.dumps(out))


def _cold_chain(rows: int, rng: np.random.Generator) -> dict:
    """GFLOP/s and GB/s of weights of `rows` rows through COLD_LAYERS MLPs with distinct weights."""
    up = [rng.standard_normal((HIDDEN, FFN), np.float32) * 0.02 for _ in range(COLD_LAYERS)]
    down = [rng.standard_normal((FFN, HIDDEN), np.float32) * 0.02 for _ in range(COLD_LAYERS)]
    x = rng.standard_normal((rows, HIDDEN), np.float32)

    @jax.jit
    def chain(x, up, down):
        for u, d in zip(up, down):
            x = x + jax.numpy.tanh(x @ u) @ d
        return x

    def torch_chain(x, up, down):
        for u, d in zip(up, down):
            x = x + torch.tanh(x @ u) @ d
        return x

    device = [jax.device_put(a) for a in (x, up, down)]
    xla_s = timed(lambda: chain(*device).block_until_ready(), 30)
    host = (torch.from_numpy(x), [torch.from_numpy(u) for u in up], [torch.from_numpy(d) for d in down])
    with torch.inference_mode():
        torch_s = timed(lambda: torch_chain(*host), 30)
    flops, weight_bytes = 4 * COLD_LAYERS * rows * HIDDEN * FFN, 2 * COLD_LAYERS * HIDDEN * FFN * 4
    return {"xla_gflops": round(flops / xla_s / 1e9, 1), "torch_gflops": round(flops / torch_s / 1e9, 1),
            "xla_weight_gb_per_s": round(weight_bytes / xla_s / 1e9, 1),
            "torch_weight_gb_per_s": round(weight_bytes / torch_s / 1e9, 1), "ratio": round(torch_s / xla_s, 2)}


if __name__ == "__main__":
    main()
