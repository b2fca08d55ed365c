"""`w4s-jax aot`: compile an RLAO round for a TPU slice on a CPU host; JSON report of memory and FLOPs."""

from __future__ import annotations

import json
import math
import os
import pathlib

import ml_collections

from w4s_jax.config.config_checks import validate
from w4s_jax.config_errors import ConfigError

# The compile runs on this host's CPU; libtpu only describes and compiles for the TPU topology.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

DOC = (
    "Compile an RLAO round ahead of time for a TPU topology (config.topology: v5p-8, v5e-8, v5p-64, ...) "
    "on this CPU host with libtpu: the train step, choosing the mesh and the largest micro-batch that fit "
    "HBM (or config.mesh / config.micro_batch), then on its mesh the sampler's prefill and decode for one "
    "generation batch (config.generation; rows halved until it fits). Writes a JSON report "
    "(config.output) with each program's per-chip memory (arguments, outputs, temporaries, aliased), "
    "the peak of the generation and training phases and of the hand-over between them (sampler and trainer "
    "share the process and one model copy) and FLOPs per step."
)
DEFAULT_CONFIG = "aot.py"


def main(config: ml_collections.ConfigDict) -> None:
    validate(config, sections=("model",))
    from w4s_jax.config.typed import section_settings
    from w4s_jax.models import get_preset
    from w4s_jax.rlao.aot import GIB, plan_and_compile, tpu_topology
    from w4s_jax.rlao.aot_sampling import GenerationShape, plan_round

    m, g = config.model, config.generation
    model = get_preset(m.preset).replace(dtype=m.dtype, param_dtype=m.param_dtype, scan_layers=m.scan_layers, remat=m.remat)
    topology = tpu_topology(config.topology)
    train = dict(
        seq_len=config.seq_len, micro_batch=config.micro_batch, grad_accum_steps=config.grad_accum_steps,
        mesh=config.mesh, lora=section_settings(config, "lora").adapters(), logits_chunk=config.logits_chunk,
        max_rows_per_group=config.max_rows_per_group,
    )  # fmt: skip
    if g.enabled:
        try:
            shape = GenerationShape(rows=g.rows, candidates=g.candidates, prompt_len=g.prompt_len, new_tokens=g.new_tokens)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        report = plan_round(model, topology, shape, **train)
    else:
        report = plan_and_compile(model, topology, **train)
    out = pathlib.Path(config.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x)) + "\n")
    gib = lambda n: f"{n / GIB:.2f} GiB"  # noqa: E731
    step_verdict = "fits" if report.get("train_fits", report["fits"]) else "does NOT fit"
    print(
        f"aot: {report['model']} ({report['mode']}) on {report['topology']}: mesh {report['mesh']}, micro_batch "
        f"{report['micro_batch']} x seq {report['seq_len']}: train step {gib(report['bytes_per_chip'])} per chip of "
        f"{report['hbm_bytes_per_chip'] / GIB:.0f} GiB ({step_verdict}); {report['flops_per_step']:.3e} FLOPs per step -> {out}"
    )
    if g.enabled:
        gen, phases = report["generation"], report["phases"]
        print(
            f"aot: generation {gen['rows']} rows x ({gen['prompt_len']} + {gen['new_tokens']}): prefill "
            f"{gib(gen['prefill']['bytes_per_chip'])}, decode {gib(gen['decode']['bytes_per_chip'])} per chip; phase peaks: "
            + ", ".join(f"{name} {gib(p['peak_bytes_per_chip'])} ({'fits' if p['fits'] else 'does NOT fit'})"
                        for name, p in phases.items())
        )
        if gen["fits"] and gen["rows"] < g.rows:
            print(f"aot: {g.rows} generation rows do not fit; run rlao on this slice with "
                  f"--config.sampling.max_batch={gen['rows']}")
