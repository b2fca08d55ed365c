"""Ahead-of-time compilation of the RLAO train step for a TPU topology, on a CPU-only host.

With libtpu installed, `jax.experimental.topologies` describes a TPU slice's devices without the
hardware; the train step is lowered with abstract, sharded inputs for a mesh over those devices and
compiled by the TPU compiler, which reports the per-chip memory of the program (arguments, outputs,
temporaries, aliased donations) and its FLOPs. This is the scale proof: if it compiles and fits HBM
here, the same program runs on the slice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterator

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

from w4s_jax.config_errors import ConfigError
from w4s_jax.models.config import ModelConfig
from w4s_jax.parallel.mesh import MESH_AXES
from w4s_jax.rlao.flops import matmul_params, train_flops
from w4s_jax.rlao.settings import LoraConfig, OptimizerConfig, StepConfig
from w4s_jax.rlao.train_step import TrainProgram

GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class Generation:
    """A TPU generation: libtpu's name, chip config, host bounds, HBM per chip, and how to shape a slice."""

    libtpu_name: str
    chip_config: str
    host_bounds: tuple[int, int, int]
    hbm_bytes: int
    cores_per_chip: int  # the number in "v5p-8" counts TensorCores: 2 per chip on v4/v5p
    shapes: dict[int, str]  # chips -> physical topology


GENERATIONS: dict[str, Generation] = {
    "v5p": Generation("v5", "megacore", (2, 2, 1), 95 * GIB, 2, {
        4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8", 512: "8x8x8",
    }),
    "v5e": Generation("v5e", "default", (2, 4, 1), 16 * GIB, 1, {
        1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16",
    }),
    "v4": Generation("v4", "megacore", (2, 2, 1), 32 * GIB, 2, {
        4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4",
    }),
    "v6e": Generation("v6e", "default", (2, 4, 1), 32 * GIB, 1, {
        1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 256: "16x16",
    }),
}  # fmt: skip
ALIASES = {"v5litepod": "v5e", "v6litepod": "v6e"}


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str
    generation: Generation
    chips: int
    devices: tuple


def tpu_topology(name: str) -> Topology:
    """Devices of a named TPU slice ("v5p-8", "v5e-8" / "v5litepod-8", "v5p-64", "v4-8", "v6e-8")."""
    match = re.fullmatch(r"(v5p|v5e|v5litepod|v4|v6e|v6litepod)-(\d+)", name)
    if not match:
        raise ConfigError(f"topology: {name!r} is not like v5p-8, v5e-8, v5litepod-16, v4-8 or v6e-8")
    kind = ALIASES.get(match.group(1), match.group(1))
    generation = GENERATIONS[kind]
    cores = int(match.group(2))
    chips = cores // generation.cores_per_chip
    if chips not in generation.shapes:
        sizes = sorted(n * generation.cores_per_chip for n in generation.shapes)
        raise ConfigError(f"topology: {name!r} has no known slice shape; {kind} sizes: {sizes}")
    # Another process on this host may hold libtpu's lock file; compiling needs no exclusive TPU.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    description = topologies.get_topology_desc(
        platform="tpu",
        topology_name=f"{generation.libtpu_name}:{generation.shapes[chips]}",
        chip_config_name=generation.chip_config,
        chips_per_host_bounds=generation.host_bounds,
        num_slices=1,
    )
    return Topology(name, generation, chips, tuple(description.devices))


def mesh_over(devices: tuple, shape: tuple[int, int, int]) -> Mesh:
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=(AxisType.Auto,) * 3)


@dataclasses.dataclass(frozen=True)
class CompileRequest:
    model: ModelConfig
    seq_len: int
    micro_batch: int  # rows per micro-step over the whole slice
    grad_accum_steps: int
    mesh_shape: tuple[int, int, int]
    lora: LoraConfig | None
    logits_chunk: int = StepConfig.logits_chunk


@contextlib.contextmanager
def without_persistent_cache() -> Iterator[None]:
    """Compiles for a TPU topology write nothing to JAX's persistent compilation cache: on a CPU host
    there is no TPU client to load such a program back, so every later lookup of it would fail with a
    warning. (Turning the cache off instead would turn it off for the whole process: JAX decides once.)"""
    previous = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float("inf"))
    try:
        yield
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", previous)


def compile_step(request: CompileRequest, topology: Topology) -> dict:
    """Compiles one train step; returns the per-chip memory and FLOPs of the program."""
    mesh = mesh_over(topology.devices, request.mesh_shape)
    optimizer = OptimizerConfig(total_steps=1000)  # the schedule does not change memory or FLOPs
    program = TrainProgram(request.model, mesh, optimizer, StepConfig(request.logits_chunk, request.lora))
    start = time.perf_counter()
    with jax.set_mesh(mesh):
        args = program.abstract_inputs(request.grad_accum_steps, request.micro_batch, request.seq_len)
        with without_persistent_cache():
            compiled = program.step.lower(*args).compile()
    return program_report(compiled, time.perf_counter() - start)


def program_report(compiled, compile_s: float) -> dict:
    """Per-chip memory (arguments + outputs + temporaries - aliased donations) and XLA's FLOPs of a
    compiled program: the figures every AOT row reports."""
    memory = compiled.memory_analysis()
    parts = {
        "arguments": int(memory.argument_size_in_bytes),
        "outputs": int(memory.output_size_in_bytes),
        "temporaries": int(memory.temp_size_in_bytes),
        "aliased": int(memory.alias_size_in_bytes),
        "generated_code": int(memory.generated_code_size_in_bytes),
    }
    total = parts["arguments"] + parts["outputs"] + parts["temporaries"] - parts["aliased"]
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    flops_per_chip = float((cost or {}).get("flops", float("nan")))
    return {"bytes_per_chip": total, "memory_per_chip": parts, "flops_per_chip": flops_per_chip, "compile_s": compile_s}


def candidate_meshes(chips: int, num_kv_heads: int) -> list[tuple[int, int, int]]:
    """Meshes to try, best first: pure FSDP (no activation all-reduce), then FSDP x tensor (tensor
    parallelism splits the attention scores over heads: what long sequences on small HBM need)."""
    meshes = []
    for tensor in (1, 2, 4, 8):
        if chips % tensor == 0 and num_kv_heads % tensor == 0 and tensor <= chips:
            meshes.append((1, chips // tensor, tensor))
    return meshes


def parse_mesh(text: str, chips: int) -> tuple[int, int, int]:
    try:
        shape = tuple(int(x) for x in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or int(np.prod(shape)) != chips:
        raise ConfigError(f"mesh: {text!r} must be 'data,fsdp,tensor' multiplying to the topology's {chips} chips, or 'auto'")
    return shape  # type: ignore[return-value]


def plan_and_compile(
    model: ModelConfig,
    topology: Topology,
    *,
    seq_len: int,
    micro_batch: int = 0,
    grad_accum_steps: int = 1,
    mesh: str = "auto",
    lora: LoraConfig | None = None,
    logits_chunk: int = StepConfig.logits_chunk,
    max_rows_per_group: int = 16,
    log: Callable[[str], None] = print,
) -> dict:
    """Chooses mesh and micro-batch (unless given), compiles, and returns the JSON report.

    Auto: meshes in `candidate_meshes` order; on the first mesh where one row per data-parallel
    group fits HBM, the largest micro-batch that fits (see `largest_fitting`). Every compile is
    listed in `attempts`.
    """
    hbm = topology.generation.hbm_bytes
    meshes = [parse_mesh(mesh, topology.chips)] if mesh != "auto" else candidate_meshes(topology.chips, model.num_kv_heads)
    attempts: list[dict] = []

    def attempt(shape, rows) -> dict:
        request = CompileRequest(model, seq_len, rows, grad_accum_steps, shape, lora, logits_chunk)
        try:
            result = compile_step(request, topology)
        except Exception as error:  # the TPU compiler reports out-of-memory as an error
            result = {"error": f"{type(error).__name__}: {str(error)[:300]}", "bytes_per_chip": None}
        result |= {"mesh": dict(zip(MESH_AXES, shape)), "micro_batch": rows}
        result["fits"] = result.get("bytes_per_chip") is not None and result["bytes_per_chip"] <= hbm
        attempts.append(result)
        shown = f"{result['bytes_per_chip'] / GIB:.1f} GiB" if result["bytes_per_chip"] is not None else result["error"][:80]
        log(f"aot: {topology.name} mesh {shape} micro_batch {rows}: {shown} per chip ({'fits' if result['fits'] else 'too big'})")
        return result

    def largest_fitting(shape) -> dict | None:
        """1 and 2 rows per data-parallel group, then the linear extrapolation of those two compiles
        to the most rows that fit (stepping down while the compiler disagrees)."""
        groups = shape[0] * shape[1]
        one = attempt(shape, groups)
        if not one["fits"] or max_rows_per_group < 2:
            return one if one["fits"] else None
        two = attempt(shape, 2 * groups)
        if not two["fits"]:
            return one
        slope = two["bytes_per_chip"] - one["bytes_per_chip"]
        guess = max_rows_per_group if slope <= 0 else 2 + (hbm - two["bytes_per_chip"]) // slope
        for rows in range(min(int(guess), max_rows_per_group), 2, -1):
            result = attempt(shape, rows * groups)
            if result["fits"]:
                return result
        return two

    best = None
    for shape in meshes:
        if micro_batch:
            groups = shape[0] * shape[1]
            if micro_batch % groups:
                raise ConfigError(f"micro_batch: {micro_batch} must be a multiple of data x fsdp = {groups}")
            best = attempt(shape, micro_batch)
            break
        best = largest_fitting(shape)
        if best is not None:
            break
    if best is None:
        best = min(attempts, key=lambda r: r["bytes_per_chip"] if r["bytes_per_chip"] is not None else float("inf"))
    tokens = best["micro_batch"] * seq_len * grad_accum_steps
    return {
        "topology": topology.name,
        "chips": topology.chips,
        "device_kind": topology.devices[0].device_kind,
        "model": model.name,
        "mode": "lora" if lora else "full",
        "dtype": model.dtype,
        "param_dtype": model.param_dtype,
        "remat": model.remat,
        "seq_len": seq_len,
        "mesh": best["mesh"],
        "micro_batch": best["micro_batch"],
        "grad_accum_steps": grad_accum_steps,
        "tokens_per_step": tokens,
        "bytes_per_chip": best["bytes_per_chip"],
        "memory_per_chip": best.get("memory_per_chip"),
        "hbm_bytes_per_chip": topology.generation.hbm_bytes,
        "fits": best["fits"],
        # XLA's cost analysis counts a while loop's body once (the scanned layers, logits chunks and
        # micro-batches run many times), so FLOPs per step are the model's: 6 N tokens + attention.
        "flops_per_step": train_flops(model, tokens, best["micro_batch"] * grad_accum_steps * seq_len * (seq_len + 1) / 2, lora is not None),
        "flops_source": "model FLOPs (6 N tokens + causal attention, no remat recompute)",
        "xla_flops_per_chip": best.get("flops_per_chip"),
        "matmul_params": matmul_params(model),
        "compile_s": best.get("compile_s"),
        "attempts": attempts,
    }
