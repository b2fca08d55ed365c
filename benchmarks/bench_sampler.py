"""Decode throughput of our sampler vs transformers' `generate`, and batch 1 against the bandwidth bound.

Both sides run SmolLM2-135M-Instruct in float32 from the shipped GGUF (same dequantized weights), the
same chat prompt, 128 new tokens with no early stop. Decode time = time(128 new tokens) - time(1 new
token) on each side, so prefill is excluded the same way for both. The bandwidth bound at batch 1 is
(parameter bytes + KV-cache bytes read per step) / copy bandwidth, with the copy bandwidth measured in
the same run as (bytes read + bytes written) / time of a numpy copy of a 512 MiB array (the STREAM
convention). Also reported: the number of XLA programs the sampler compiled for the whole run, and
beside the ratios the CPU model, its vector features and the float32 matmul peak measured in the same
run, with the batch-16 step's floor (the larger of its matmul FLOPs at that peak and its bytes at the
copy bandwidth) and the ratio a decode at that floor would reach over transformers.

`run(quick)` returns JSON-safe results with markdown rows; `python benchmarks/bench_sampler.py [--quick]`
prints the table.
"""

from __future__ import annotations

import os
import pathlib
import statistics
import sys
import time

import jax
import torch
import transformers

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from w4s_jax.cli.bench_report import measured_machine
from w4s_jax.models import load_model, smollm2_gguf_path
from w4s_jax.parallel.mesh import make_mesh
from w4s_jax.rlao.flops import matmul_params
from w4s_jax.sampling.chat import ChatTokenizer
from w4s_jax.sampling.params import SamplingParams
from w4s_jax.sampling.sampler import Sampler

NEW_TOKENS = 128
QUESTION = "Write a short story about a robot who learns to paint, with a happy ending."


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool = False) -> dict:
    """Tokens/s of both implementations at batch 1 and 16, the bandwidth fraction and the compile count."""
    repeats = 1 if quick else 3
    batches = (1, 16)
    machine = measured_machine(quick)
    path = smollm2_gguf_path()
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    config, model = load_model("smollm2_135m", path, mesh=mesh)
    tokenizer = ChatTokenizer.from_path(path)
    sampler = Sampler(model, tokenizer, mesh, max_prompt_len=256, max_batch=16)
    prompt = tokenizer.encode_chat([{"role": "user", "content": QUESTION}])
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()

    def ours(batch: int, new_tokens: int) -> None:
        params = SamplingParams(max_new_tokens=new_tokens, temperature=0, stop_token_ids=())
        out = sampler.generate([prompt] * batch, params)
        assert all(len(c.token_ids) == new_tokens for (c,) in out)

    def theirs(batch: int, new_tokens: int) -> None:
        ids = torch.tensor([prompt] * batch)
        with torch.inference_mode():
            out = reference.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=tokenizer.pad_id)
        assert out.shape[1] == len(prompt) + new_tokens

    results: dict = {"name": "sampler_smollm2_135m", "quick": quick, "new_tokens": NEW_TOKENS, "prompt_tokens": len(prompt),
                     "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "jax_device": str(jax.devices()[0].device_kind)}
    for batch in batches:
        for name, fn in (("ours", ours), ("transformers", theirs)):
            fn(batch, 1)  # warm-up (compiles ours)
            fn(batch, NEW_TOKENS)
            prefill_s = _median_time(lambda fn=fn, b=batch: fn(b, 1), repeats)
            full_s = _median_time(lambda fn=fn, b=batch: fn(b, NEW_TOKENS), repeats)
            decode_s = max(full_s - prefill_s, 1e-9)
            results[f"{name}_b{batch}_decode_tokens_per_s"] = batch * (NEW_TOKENS - 1) / decode_s
            results[f"{name}_b{batch}_ms_per_step"] = 1000 * decode_s / (NEW_TOKENS - 1)
        results[f"ratio_b{batch}"] = results[f"ours_b{batch}_decode_tokens_per_s"] / results[f"transformers_b{batch}_decode_tokens_per_s"]

    bandwidth = machine["copy_bandwidth_gb_per_s"] * 1e9
    param_bytes = sum(x.nbytes for x in jax.tree.leaves(sampler.state))
    # Our loop attends over every cache slot (prompt bucket + new-token bucket) at each step.
    cache_slots = 64 + NEW_TOKENS if len(prompt) <= 64 else 2 * len(prompt) + NEW_TOKENS
    kv_bytes = 2 * config.num_layers * cache_slots * config.num_kv_heads * config.head_dim * 4
    bound_s = (param_bytes + kv_bytes) / bandwidth
    measured_s = results["ours_b1_ms_per_step"] / 1000
    # Batch 16's floor: its matmul FLOPs (weights and attention over every slot) at the measured peak,
    # or its bytes (weights once, 16 caches) at the copy bandwidth, whichever is longer.
    b16_flops = 16 * (2 * matmul_params(config) + 4 * config.num_layers * config.num_heads * config.head_dim * cache_slots)
    b16_floor_s = max(b16_flops / (machine["cpu_peak_gflops"] * 1e9), (param_bytes + 16 * kv_bytes) / bandwidth)
    results.update({
        "machine": machine,
        "b16_floor_ms_per_step": 1000 * b16_floor_s,
        "ratio_b16_at_floor": results["transformers_b16_ms_per_step"] / 1000 / b16_floor_s,
        "copy_bandwidth_gb_per_s": bandwidth / 1e9,
        "param_bytes": param_bytes,
        "kv_bytes_per_step": kv_bytes,
        "bandwidth_bound_ms_per_token": 1000 * bound_s,
        "fraction_of_bandwidth_bound_b1": bound_s / measured_s,
        "compiled_programs": sampler.compile_count,
    })
    rows = []
    for batch in batches:
        rows.append({"batch": batch, "ours tok/s": f"{results[f'ours_b{batch}_decode_tokens_per_s']:.1f}",
                     "transformers tok/s": f"{results[f'transformers_b{batch}_decode_tokens_per_s']:.1f}",
                     "ratio": f"{results[f'ratio_b{batch}']:.2f}",
                     "ours ms/step": f"{results[f'ours_b{batch}_ms_per_step']:.1f}"})
    rows.append({"batch": "1 (bound)", "ours tok/s": f"{1 / bound_s:.1f}", "transformers tok/s": "",
                 "ratio": f"{results['fraction_of_bandwidth_bound_b1']:.2f} of bound",
                 "ours ms/step": f"{1000 * bound_s:.1f}"})
    rows.append({"batch": "16 (floor)", "ours tok/s": f"{16 / b16_floor_s:.1f}", "transformers tok/s": "",
                 "ratio": f"{results['ratio_b16_at_floor']:.2f} at the floor", "ours ms/step": f"{1000 * b16_floor_s:.1f}"})
    results["rows"] = rows
    return results


if __name__ == "__main__":
    from w4s_jax.cli.bench_report import script_main

    script_main(run, __doc__, "one repeat, smaller copy")
