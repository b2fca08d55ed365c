"""The README's scale table: the RLAO train step compiled ahead of time for TPU slices on this host.

Full run (minutes per row, several GB of RAM; run rows one at a time): Qwen2.5-Coder-7B full
fine-tuning at 8192 tokens on v5p-8, 7B LoRA on v5e-8, 32B full fine-tuning on v5p-64, each with the
mesh and micro-batch chosen automatically (the largest micro-batch that fits HBM on the first mesh
that fits). `quick` compiles Qwen2.5-0.5B on v5p-8 only.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from w4s_jax.models import get_preset
from w4s_jax.rlao.aot import GIB, plan_and_compile, tpu_topology
from w4s_jax.rlao.settings import LoraConfig

# (label, preset, topology, seq_len, lora, parameter dtype)
ROWS = (
    ("7B full", "qwen2p5_coder_7b", "v5p-8", 8192, False, "float32"),
    ("7B LoRA", "qwen2p5_coder_7b", "v5e-8", 8192, True, "bfloat16"),
    ("32B full", "qwen2p5_32b", "v5p-64", 8192, False, "float32"),
)
QUICK_ROWS = (("0.5B full", "qwen2p5_0p5b", "v5p-8", 2048, False, "float32"),)


def table_row(label: str, report: dict) -> dict:
    memory = report["memory_per_chip"] or {}
    return {
        "run": label,
        "model": report["model"],
        "topology": f"{report['topology']} ({report['chips']} chips)",
        "mesh (data,fsdp,tensor)": ",".join(str(v) for v in report["mesh"].values()),
        "micro_batch x seq": f"{report['micro_batch']} x {report['seq_len']}",
        "GiB/chip (args+out+temp-alias)": round(report["bytes_per_chip"] / GIB, 1) if report["bytes_per_chip"] else "n/a",
        "temp GiB": round(memory.get("temporaries", 0) / GIB, 1),
        "HBM GiB": round(report["hbm_bytes_per_chip"] / GIB),
        "fits": "yes" if report["fits"] else "no",
        "TFLOP/step": round(report["flops_per_step"] / 1e12, 1),
        "compile s": round(report["compile_s"] or 0, 0),
    }


def compile_row(label, preset, topology, seq_len, lora, param_dtype, max_rows_per_group=16) -> dict:
    model = get_preset(preset).replace(dtype="bfloat16", param_dtype=param_dtype, remat="full")
    return plan_and_compile(
        model, tpu_topology(topology), seq_len=seq_len, lora=LoraConfig() if lora else None,
        max_rows_per_group=max_rows_per_group, log=lambda _: None,
    )  # fmt: skip


def run(quick: bool = False) -> dict:
    reports = {row[0]: compile_row(*row, max_rows_per_group=2 if quick else 16) for row in (QUICK_ROWS if quick else ROWS)}
    return {"rows": [table_row(label, report) for label, report in reports.items()], "reports": reports}


if __name__ == "__main__":
    from w4s_jax.cli.bench_report import script_main

    script_main(run, __doc__)
