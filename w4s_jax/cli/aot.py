"""`w4s-jax aot`: compile the train step for a TPU slice on a CPU host; JSON report of memory and FLOPs."""

from __future__ import annotations

import json
import math
import os
import pathlib

import ml_collections

from w4s_jax.config.config_checks import validate

# The compile runs on this host's CPU; libtpu only describes and compiles for the TPU topology.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

DOC = (
    "Compile the RLAO train step ahead of time for a TPU topology (config.topology: v5p-8, v5e-8, "
    "v5p-64, ...) on this CPU host with libtpu, choosing the mesh and the largest micro-batch that fit "
    "HBM (or config.mesh / config.micro_batch), and write a JSON report (config.output) with the "
    "per-chip memory (arguments, outputs, temporaries, aliased), total bytes per chip and FLOPs per step."
)
DEFAULT_CONFIG = "aot.py"


def main(config: ml_collections.ConfigDict) -> None:
    validate(config, sections=("model",))
    from w4s_jax.models import get_preset
    from w4s_jax.rlao.aot import GIB, plan_and_compile, tpu_topology
    from w4s_jax.rlao.trainer import lora_config

    m = config.model
    model = get_preset(m.preset).replace(dtype=m.dtype, param_dtype=m.param_dtype, scan_layers=m.scan_layers, remat=m.remat)
    topology = tpu_topology(config.topology)
    report = plan_and_compile(
        model, topology, seq_len=config.seq_len, micro_batch=config.micro_batch,
        grad_accum_steps=config.grad_accum_steps, mesh=config.mesh, lora=lora_config(config),
        logits_chunk=config.logits_chunk, max_rows_per_group=config.max_rows_per_group,
    )  # fmt: skip
    out = pathlib.Path(config.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x)) + "\n")
    verdict = "fits" if report["fits"] else "does NOT fit"
    print(
        f"aot: {report['model']} ({report['mode']}) on {report['topology']}: mesh {report['mesh']}, micro_batch "
        f"{report['micro_batch']} x seq {report['seq_len']}: {report['bytes_per_chip'] / GIB:.2f} GiB per chip of "
        f"{report['hbm_bytes_per_chip'] / GIB:.0f} GiB ({verdict}); {report['flops_per_step']:.3e} FLOPs per step -> {out}"
    )
