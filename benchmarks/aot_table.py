"""The README's scale table: an RLAO round (train step, sampler prefill and decode) compiled ahead of
time for TPU slices on this host.

Full run (minutes per program, several GB of RAM; run rows one at a time): Qwen2.5-Coder-7B full
fine-tuning at 8192 tokens on v5p-8, 7B LoRA on v5e-8, 32B full fine-tuning on v5p-64. Each row
compiles the train step (at the micro-batch given, or the largest found to fit: `w4s-jax aot` with
micro_batch 0), then on its mesh the sampler's
prefill and decode for one generation batch as the runner forms it (64 rows: the sampler's
max_batch, i.e. all rollouts x 5 candidates of a collection up to 64; 4,096-token prompts, 2,048 new
tokens, m = 5 rows share a prefill), and reports the peak of each phase (the sampler and the trainer hold
one model copy between them, `rlao/rounds.py`). `quick` compiles Qwen2.5-0.5B
on v5p-8 only, with a small generation batch.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from w4s_jax.models import get_preset
from w4s_jax.rlao.aot import GIB, tpu_topology
from w4s_jax.rlao.aot_sampling import GenerationShape, plan_round
from w4s_jax.rlao.settings import LoraConfig

PAPER_GENERATION = GenerationShape(rows=64, candidates=5, prompt_len=4096, new_tokens=2048)
# (label, preset, topology, seq_len, lora, parameter dtype, micro_batch: 0 = search the largest that fits)
ROWS = (
    ("7B full", "qwen2p5_coder_7b", "v5p-8", 8192, False, "float32", 24),
    ("7B LoRA", "qwen2p5_coder_7b", "v5e-8", 8192, True, "bfloat16", 8),
    ("32B full", "qwen2p5_32b", "v5p-64", 8192, False, "float32", 128),
)
QUICK_ROWS = (("0.5B full", "qwen2p5_0p5b", "v5p-8", 2048, False, "float32", 0),)
QUICK_GENERATION = GenerationShape(rows=16, candidates=5, prompt_len=512, new_tokens=128)


def _gib(value: int | None) -> float | str:
    return round(value / GIB, 1) if value is not None else "n/a"


def table_row(label: str, report: dict) -> dict:
    generation, phases = report["generation"], report["phases"]
    return {
        "run": label,
        "model": report["model"],
        "topology": f"{report['topology']} ({report['chips']} chips)",
        "mesh (data,fsdp,tensor)": ",".join(str(v) for v in report["mesh"].values()),
        "micro_batch x seq": f"{report['micro_batch']} x {report['seq_len']}",
        "train step GiB/chip": _gib(report["bytes_per_chip"]),
        "generation rows x (prompt + new)": f"{generation['rows']} x ({generation['prompt_len']} + {generation['new_tokens']})",
        "prefill GiB/chip": _gib(generation["prefill"]["bytes_per_chip"]),
        "decode GiB/chip": _gib(generation["decode"]["bytes_per_chip"]),
        "KV cache GiB/chip": _gib(generation["kv_cache_bytes_per_chip"]),
        "generation peak GiB/chip": _gib(phases["generation"]["peak_bytes_per_chip"]),
        "training peak GiB/chip": _gib(phases["training"]["peak_bytes_per_chip"]),
        "hand-over peak GiB/chip": _gib(phases["hand_over"]["peak_bytes_per_chip"]),
        "HBM GiB": round(report["hbm_bytes_per_chip"] / GIB),
        "fits": "yes" if report["fits"] else "no",
        "TFLOP/step": round(report["flops_per_step"] / 1e12, 1),
        "compile s (train, prefill, decode)": ", ".join(
            str(round(x or 0)) for x in (report["compile_s"], generation["prefill"]["compile_s"], generation["decode"]["compile_s"])),
    }  # fmt: skip


def compile_row(label, preset, topology, seq_len, lora, param_dtype, micro_batch, generation=PAPER_GENERATION,
                max_rows_per_group=16, log=lambda _: None) -> dict:
    model = get_preset(preset).replace(dtype="bfloat16", param_dtype=param_dtype, remat="full")
    return plan_round(
        model, tpu_topology(topology), generation, log=log, seq_len=seq_len, micro_batch=micro_batch,
        lora=LoraConfig() if lora else None, max_rows_per_group=max_rows_per_group,
    )  # fmt: skip


def run(quick: bool = False) -> dict:
    if quick:
        reports = {row[0]: compile_row(*row, generation=QUICK_GENERATION, max_rows_per_group=2) for row in QUICK_ROWS}
    else:
        reports = {row[0]: compile_row(*row) for row in ROWS}
    return {"rows": [table_row(label, report) for label, report in reports.items()], "reports": reports}


if __name__ == "__main__":
    from w4s_jax.cli.bench_report import script_main

    script_main(run, __doc__)
