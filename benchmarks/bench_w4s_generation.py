"""One W4S turn's generation with one prefill per distinct prompt (on) and one per row (off), same run.

A W4S turn samples m candidates of one conversation: m requests of n = 1 with their own seeds, as
`SamplerPolicy` sends them to `Sampler.generate_requests`. Both settings run the same requests on
the same sampler (a SmolLM2-135M-shaped model with random float32 weights, so no reply stops early:
every reply is `NEW_TOKENS` long), sampled at the paper's temperature 0.5; the replies are checked
equal. Each setting runs once per shape; its time is the call's wall time less the time the sampler
spent compiling programs in it (`Sampler.compile_seconds`), so no prefill has to run twice.

The FLOP model says how the saving scales: generation FLOPs with one prefill per row over those with
one per prompt, for the ideal shapes (causal attention over the prompt, one LM-head row per prompt)
and, for the measured rows, as executed (batch and prompt buckets, attention over every cache slot).
Beside the ratios: the CPU model, its measured float32 matmul peak and copy bandwidth.

`run(quick)` returns JSON-safe results with markdown rows; `python benchmarks/bench_w4s_generation.py
[--quick]` prints them.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from w4s_jax.cli.bench_report import machine_line, measured_machine
from w4s_jax.models import get_preset, load_model
from w4s_jax.models.config import ModelConfig
from w4s_jax.parallel.mesh import make_mesh
from w4s_jax.rlao.flops import matmul_params
from w4s_jax.sampling.bucketing import batch_bucket, bucket, next_power_of_two
from w4s_jax.sampling.params import SamplingParams
from w4s_jax.sampling.sampler import Sampler

CANDIDATES = (4, 5)
PROMPT_TOKENS = (1000, 1700)
NEW_TOKENS = 256
TEMPERATURE = 0.5  # the paper's meta-agent temperature (configs/paper.py)
PAPER = ("qwen2p5_7b", 5, 4096, 2048)  # model preset, m, prompt tokens, new tokens


def forward_flops(config: ModelConfig, tokens: float, pairs: float, logit_rows: float) -> float:
    """Matmul FLOPs of a forward over `tokens` tokens attending `pairs` (query, key) pairs, with LM-head
    logits for `logit_rows` positions (prefill keeps only each row's last)."""
    head = config.hidden_size * config.vocab_size
    attention = 4 * config.num_layers * config.num_heads * config.head_dim * pairs
    return 2 * (matmul_params(config) - head) * tokens + 2 * head * logit_rows + attention


def ideal_ratio(config: ModelConfig, m: int, prompt: int, new: int) -> float:
    """Generation FLOPs, one prefill per row / one per prompt: causal prompt attention, replies of `new`
    tokens whose step t attends prompt + t keys, no padding."""
    prefill = forward_flops(config, prompt, prompt * (prompt + 1) / 2, 1)
    decode = m * forward_flops(config, new - 1, (new - 1) * prompt + (new - 1) * new / 2, new - 1)
    return (m * prefill + decode) / (prefill + decode)


def executed_ratio(config: ModelConfig, m: int, prompt: int, new: int, batch_multiple: int = 1) -> float:
    """The same ratio for the shapes the sampler runs: m rows padded to a batch bucket, the prompt to
    its bucket, every query attending every cache slot, decode steps to the new-token bucket."""
    rows, prompt_len = batch_bucket(m, batch_multiple, 1 << 30), bucket(prompt, 16, 1 << 30)
    steps = next_power_of_two(new)
    cache = prompt_len + steps

    def prefill(count: int) -> float:
        return forward_flops(config, count * prompt_len, count * prompt_len * cache, count)

    decode = forward_flops(config, rows * (new - 1), rows * (new - 1) * cache, rows * (new - 1))
    distinct = batch_bucket(1, batch_multiple, 1 << 30)
    return (prefill(rows) + decode) / (prefill(distinct) + decode)


def run(quick: bool = False) -> dict:
    """Times one turn per (m, prompt length) with sharing off and on; FLOP-model ratios beside them."""
    prompt_tokens, new_tokens = ((100, 170), 32) if quick else (PROMPT_TOKENS, NEW_TOKENS)
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    config, model = load_model("smollm2_135m", "", mesh=mesh, seed=0)
    sampler = Sampler(model, None, mesh, max_prompt_len=2048, max_batch=16)
    rng = np.random.default_rng(0)
    sampler.generate([[1, 2, 3]], SamplingParams(max_new_tokens=2, stop_token_ids=()))  # thread pools up
    machine = measured_machine(quick)
    results: dict = {"name": "w4s_generation_smollm2_135m_shape", "quick": quick, "new_tokens": new_tokens,
                     "temperature": TEMPERATURE, "machine": machine}
    rows = []
    for prompt_len in prompt_tokens:
        prompt = rng.integers(0, config.vocab_size, prompt_len).tolist()
        for m in CANDIDATES:
            requests = [([prompt], SamplingParams(max_new_tokens=new_tokens, temperature=TEMPERATURE, seed=seed,
                                                  stop_token_ids=())) for seed in range(m)]
            times, replies = {}, {}
            for share in (False, True):
                sampler.share_prefill = share
                compiling, start = sampler.compile_seconds, time.perf_counter()
                out = sampler.generate_requests(requests)
                times[share] = time.perf_counter() - start - (sampler.compile_seconds - compiling)
                replies[share] = [[[c.token_ids for c in p] for p in r] for r in out]
            if replies[True] != replies[False]:
                raise RuntimeError(f"m={m}, prompt {prompt_len}: shared-prefill replies differ from per-row ones")
            row = {"m": m, "prompt tokens": prompt_len, "new tokens": new_tokens,
                   "off s": round(times[False], 2), "on s": round(times[True], 2),
                   "speed-up": round(times[False] / times[True], 2),
                   "FLOP ratio (as run)": round(executed_ratio(config, m, prompt_len, new_tokens), 2),
                   "FLOP ratio (ideal)": round(ideal_ratio(config, m, prompt_len, new_tokens), 2)}
            rows.append(row)
            print(f"bench_w4s_generation: {row}", file=sys.stderr, flush=True)  # progress on a slow machine
    machine["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    results["compile_seconds"] = round(sampler.compile_seconds, 1)
    results["rows"] = rows
    results["scaling"] = scaling_rows(config)
    results["markdown"] = markdown(results)
    return results


def scaling_rows(config: ModelConfig) -> list[dict]:
    """The ideal FLOP ratio by m (rows) and prompt length (columns) for this model and 256 new tokens,
    then the paper's shapes. Roughly m (P + G) / (P + m G) for prompts of P and replies of G tokens."""
    rows = [{"model": config.name, "m": m, "new tokens": NEW_TOKENS,
             **{f"prompt {prompt}": round(ideal_ratio(config, m, prompt, NEW_TOKENS), 2)
                for prompt in (500, 1000, 1700, 4096)}} for m in (2, 4, 5, 8)]
    name, m, prompt, new = PAPER
    rows.append({"model": name, "m": m, "new tokens": new,
                 f"prompt {prompt}": round(ideal_ratio(get_preset(name), m, prompt, new), 2)})
    return rows


def markdown(results: dict) -> str:
    from w4s_jax.cli.bench_report import markdown_table

    machine = f"{machine_line(results['machine'])} Compile time ({results['compile_seconds']} s) excluded."
    return "\n\n".join([machine, markdown_table(results["rows"]),
                        "How the saving scales (generation FLOPs, one prefill per row / one per prompt):",
                        markdown_table(results["scaling"])])


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="prompts of 100 and 170 tokens, replies of 32")
    print(run(quick=parser.parse_args().quick)["markdown"])
