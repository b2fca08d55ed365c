"""The accelerator check: forward, decode and the RLAO train step of a Qwen2.5-1.5B-shaped model with
random bf16 weights on one accelerator, each against a ceiling measured in the same run.

- peak: the best FLOP/s of a large bf16 matmul ([8192, 8192] @ [8192, 8192]) on the device;
- bandwidth: (bytes read + bytes written) / time of a device copy of a 2 GiB array (STREAM's count);
- forward: a jitted forward over 4 x 2048 tokens; MFU = (2 N tokens + causal attention) / time / peak;
- decode: the sampler's decode call (the on-device loop) at batch 1 and 16, 128 new tokens after a
  512-token prompt, timed per step, and its fraction of the bandwidth bound: (parameter bytes +
  KV-cache bytes read per step) / bandwidth over the step time;
- train: the RLAO train step (bf16 compute, fp32 master weights and AdamW, the 1.5B remat policy)
  at 4 x 4096 tokens (halved on out-of-memory); MFU = (6 N tokens + attention) / time / peak.
`--cpu-smoke` runs every part with the tiny preset and small shapes on CPU in seconds (the test in
tests/test_device_check.py): the driver stays runnable where no accelerator is lent.
`benchmarks/device_check.sh` runs the GPU tests and then this file; `run(quick)` serves `w4s-jax bench`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # the checkout's w4s_jax (no install needed), bench_train_step


@dataclasses.dataclass(frozen=True)
class Shapes:
    preset: str
    matmul: int  # square bf16 matmul size for the peak
    copy_bytes: int  # device copy size for the bandwidth
    forward: tuple[int, int]  # batch x tokens
    prompt: int
    new_tokens: int
    decode_batches: tuple[int, ...]
    train: tuple[int, int]  # rows x tokens
    repeats: int


GPU = Shapes("qwen2p5_1p5b", 8192, 2 * 2**30, (4, 2048), 512, 128, (1, 16), (4, 4096), 5)
SMOKE = Shapes("tiny", 256, 16 * 2**20, (2, 64), 32, 8, (1, 16), (2, 64), 2)
TRAIN_REMAT = "dots_with_no_batch_dims_saveable"  # config.presets.MODEL_SIZES["1.5b"]


def _median_s(fn, repeats: int) -> float:
    """Median seconds of `fn()` (which blocks on its result) after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measured_peak(size: int, repeats: int) -> float:
    """FLOP/s of a bf16 [size, size] @ [size, size] on the default device (best of `repeats`)."""
    import jax
    import jax.numpy as jnp

    from w4s_jax.rlao.flops import measured_matmul_peak

    return measured_matmul_peak(jax.devices()[0], jnp.bfloat16, size, repeats)


def measured_bandwidth(nbytes: int, repeats: int) -> float:
    """Bytes moved per second (read + write) by a device copy of an `nbytes` float32 array."""
    import jax
    import jax.numpy as jnp

    x = jnp.ones(nbytes // 4, jnp.float32)
    copy = jax.jit(lambda v: v + 0)  # one read and one write per element, no reuse
    return 2 * x.nbytes / _median_s(lambda: copy(x).block_until_ready(), repeats)


def forward_check(config, model, batch: int, length: int, peak: float, repeats: int) -> dict:
    import jax
    import numpy as np
    from flax import nnx

    from w4s_jax.rlao.flops import matmul_params

    tokens = np.random.default_rng(0).integers(0, config.vocab_size, (batch, length)).astype(np.int32)
    positions = np.broadcast_to(np.arange(length, dtype=np.int32), tokens.shape)
    segments = np.ones_like(tokens)
    graphdef, state = nnx.split(model)
    # Parameters are arguments, not closure constants (XLA would fold them into the program).
    forward = jax.jit(lambda state, t, p, s: nnx.merge(graphdef, state)(t, p, s)[0])
    seconds = _median_s(lambda: forward(state, tokens, positions, segments).block_until_ready(), repeats)
    attention = 4 * config.num_layers * config.num_heads * config.head_dim * batch * length * (length + 1) / 2
    flops = 2 * matmul_params(config) * batch * length + attention
    return {"batch": batch, "tokens": length, "seconds": seconds, "tokens_per_s": batch * length / seconds,
            "flops": flops, "mfu": flops / seconds / peak}


def decode_check(config, model, mesh, shapes: Shapes, bandwidth: float) -> list[dict]:
    """Per batch: the median time of the sampler's decode call (greedy, no stop ids, so every row
    runs new_tokens - 1 steps after prefill's first token), each from a fresh prefill."""
    import jax
    import numpy as np

    from w4s_jax.sampling.decode_state import SampleRow
    from w4s_jax.sampling.params import SamplingParams
    from w4s_jax.sampling.sampler import Sampler

    sampler = Sampler(model, None, mesh, max_prompt_len=shapes.prompt, max_batch=max(shapes.decode_batches))
    prompt = [int(t) for t in np.random.default_rng(1).integers(0, config.vocab_size, shapes.prompt)]
    params = SamplingParams(max_new_tokens=shapes.new_tokens, temperature=0.0, stop_token_ids=())
    param_bytes = sum(x.nbytes for x in jax.tree.leaves(sampler.state))
    results = []
    for batch in shapes.decode_batches:
        rows = [SampleRow(prompt, params, 0, i) for i in range(batch)]
        room = sampler.new_bucket(rows[0])
        times = []
        for _ in range(shapes.repeats + 1):  # the first call compiles
            prefilled = sampler.prefill(rows, room)
            jax.block_until_ready(prefilled.state)
            start = time.perf_counter()
            _, decoded = sampler.decode(prefilled.state, prefilled.knobs, steps=room, mode="greedy")
            times.append(time.perf_counter() - start)  # `decoded` is on the host: the call has finished
            assert (decoded.generated[:batch] == shapes.new_tokens).all()
        step_s = statistics.median(times[1:]) / (shapes.new_tokens - 1)
        # Each step attends over every slot of its cache: the prompt bucket + the new-token bucket.
        slots = prefilled.prompt_len + room
        kv_bytes = 2 * config.num_layers * slots * config.num_kv_heads * config.head_dim * sampler.cache_dtype.itemsize * batch
        bound_s = (param_bytes + kv_bytes) / bandwidth
        results.append({"batch": batch, "ms_per_step": 1000 * step_s, "tokens_per_s": batch / step_s,
                        "param_bytes": param_bytes, "kv_bytes_per_step": kv_bytes, "bound_ms_per_step": 1000 * bound_s,
                        "fraction_of_bandwidth_bound": bound_s / step_s, "cache_slots": slots})
    results.append({"compiled_programs": sampler.compile_count})
    return results


def train_check(shapes: Shapes, mesh, dtype: str, peak: float) -> dict:
    """The RLAO step at shapes.train (rows halved while the device runs out of memory)."""
    import jax
    import numpy as np
    from bench_train_step import synthetic_batch
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    from w4s_jax.models import load_model
    from w4s_jax.rlao.flops import train_flops
    from w4s_jax.rlao.pipeline import BATCH_AXES, place_batch
    from w4s_jax.rlao.settings import OptimizerConfig, StepConfig
    from w4s_jax.rlao.train_step import TrainProgram, to_numpy_metrics

    rows, seq = shapes.train
    config, model = load_model(shapes.preset, "", mesh=mesh, dtype=dtype, param_dtype="float32", remat=TRAIN_REMAT)
    program = TrainProgram(config, mesh, OptimizerConfig(learning_rate=1e-5, warmup_steps=0, total_steps=100),
                           StepConfig(logits_chunk=min(512, seq)))
    params = nnx.to_pure_dict(nnx.state(model))
    del model
    while True:
        batch = {k: v[None] for k, v in synthetic_batch(rows, seq, config.vocab_size).items()}
        placed = place_batch(batch, NamedSharding(mesh, PartitionSpec(None, BATCH_AXES, None)))
        state, frozen = program.init_state(jax.tree.map(lambda x: x.copy(), params), seed=0)
        try:
            with jax.set_mesh(mesh):
                start = time.perf_counter()
                state, metrics = program.step(state, frozen, placed)
                jax.block_until_ready(metrics)
                compile_s = time.perf_counter() - start
                times = []
                for _ in range(shapes.repeats):
                    start = time.perf_counter()
                    state, metrics = program.step(state, frozen, placed)
                    jax.block_until_ready(metrics)
                    times.append(time.perf_counter() - start)
            break
        except Exception as error:  # XLA reports out-of-memory as a runtime error
            if "RESOURCE_EXHAUSTED" not in str(error) or rows == 1:
                raise
            del state
            rows //= 2
    step_s = float(np.median(times))
    flops = train_flops(config, rows * seq, rows * seq * (seq + 1) / 2)
    values = to_numpy_metrics(metrics)
    if not (np.isfinite(values["loss"]) and np.isfinite(values["grad_norm"])):
        raise RuntimeError(f"device_check: the train step gave loss {values['loss']}, grad norm {values['grad_norm']}")
    return {"rows": rows, "tokens": seq, "step_s": step_s, "compile_and_first_step_s": compile_s,
            "tokens_per_s": rows * seq / step_s, "flops": flops, "mfu": flops / step_s / peak, "loss": values["loss"]}


def check(smoke: bool) -> dict:
    """Every part on the default JAX device; JSON-safe results with markdown rows."""
    import jax

    from w4s_jax.models import load_model
    from w4s_jax.parallel.mesh import make_mesh
    from w4s_jax.rlao.flops import peak_for_kind

    shapes = SMOKE if smoke else GPU
    dtype = "float32" if smoke else "bfloat16"
    device = jax.devices()[0]
    mesh = make_mesh(1, 1, 1, devices=[device])
    peak = measured_peak(shapes.matmul, shapes.repeats)
    bandwidth = measured_bandwidth(shapes.copy_bytes, shapes.repeats)
    config, model = load_model(shapes.preset, "", mesh=mesh, dtype=dtype, param_dtype=dtype)
    forward = forward_check(config, model, *shapes.forward, peak, shapes.repeats)
    decode = decode_check(config, model, mesh, shapes, bandwidth)
    del model
    train = train_check(shapes, mesh, dtype, peak)
    results = {
        "device": device.device_kind, "platform": device.platform, "smoke": smoke, "model": config.name,
        "dtype": dtype, "measured_bf16_peak_flops": peak, "table_peak_flops": peak_for_kind(device.device_kind),
        "measured_bandwidth_bytes_per_s": bandwidth, "forward": forward, "decode": decode[:-1],
        "compiled_sampler_programs": decode[-1]["compiled_programs"], "train": train,
    }  # fmt: skip
    rows = [
        {"part": "bf16 matmul peak (measured)", "shape": f"{shapes.matmul}^3", "result": f"{peak / 1e12:.1f} TFLOP/s"},
        {"part": "copy bandwidth (measured)", "shape": f"{shapes.copy_bytes / 2**30:.2f} GiB",
         "result": f"{bandwidth / 1e9:.0f} GB/s"},
        {"part": "forward", "shape": f"{forward['batch']} x {forward['tokens']}",
         "result": f"{forward['tokens_per_s']:.0f} tok/s, MFU {forward['mfu']:.2f}"},
        *({"part": f"decode batch {d['batch']}", "shape": f"{shapes.prompt} + {shapes.new_tokens}",
           "result": f"{d['ms_per_step']:.2f} ms/step, {d['fraction_of_bandwidth_bound']:.2f} of the bandwidth bound"}
          for d in decode[:-1]),
        {"part": "RLAO train step", "shape": f"{train['rows']} x {train['tokens']}",
         "result": f"{train['step_s']:.3f} s, {train['tokens_per_s']:.0f} tok/s, MFU {train['mfu']:.2f}"},
    ]  # fmt: skip
    return results | {"rows": rows}


def run(quick: bool = False) -> dict:
    """`w4s-jax bench`: the full check on an accelerator; the smoke shapes on CPU or with `quick`."""
    import jax

    return check(smoke=quick or jax.default_backend() == "cpu")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny preset, small shapes, on CPU (seconds)")
    parser.add_argument("--out", default="", help="also write the JSON results here")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    if not args.cpu_smoke and jax.default_backend() == "cpu":
        raise SystemExit("device_check: JAX sees no accelerator (backend cpu); pass --cpu-smoke for the CPU run")
    results = check(smoke=args.cpu_smoke)
    from w4s_jax.cli.bench_report import markdown_table

    print(markdown_table(results["rows"]))
    print(json.dumps({k: v for k, v in results.items() if k != "rows"}, indent=1))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
