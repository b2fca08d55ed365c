"""Ahead-of-time compilation of the sampler's prefill and decode for a TPU topology, and the peak of
each phase of an RLAO round.

`w4s-jax rlao` keeps the sampler and the trainer in one process on one mesh with one model copy
(`rlao/rounds.py`): the sampler holds the parameters while the meta-agent generates and hands them
to the trainer for training. So each phase's peak is its own programs':
- generation: the larger of prefill and decode (their arguments hold the sampler's parameters and
  the KV cache);
- training: the train step (its arguments hold the parameters, or LoRA's frozen base, and the
  optimizer state);
- the hand-over after training (no program runs): the train step's arguments, the trained model
  merged (LoRA) and the sampler's new copy, a bound.
The programs compiled here are the sampler's own (`Sampler._build_prefill*`, `_build_decode`), built
by a sampler whose parameters are abstract and lowered with sharded `jax.ShapeDtypeStruct` inputs:
no weight is allocated, and the TPU compiler reports each program's per-chip memory.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
from jax.sharding import Mesh

from w4s_jax.models import abstract_model
from w4s_jax.models.config import ModelConfig
from w4s_jax.parallel.mesh import MESH_AXES
from w4s_jax.parallel.sharding import state_shardings
from w4s_jax.rlao.aot import GIB, Topology, mesh_over, program_report, without_persistent_cache
from w4s_jax.sampling.bucketing import batch_bucket
from w4s_jax.sampling.decode_state import KNOB_DTYPES, RowKnobs, SampleRow
from w4s_jax.sampling.params import SamplingParams
from w4s_jax.sampling.sampler import Sampler, sampling_mode


@dataclasses.dataclass(frozen=True)
class GenerationShape:
    """One generation batch as the W4S runner forms it (see `w4s/generation_batcher.py`)."""

    rows: int  # sequences generated together: prompts x candidates, at most the sampler's max_batch
    candidates: int  # rows per distinct prompt (a W4S turn's m): with shared prefill, one prefill for them
    prompt_len: int  # longest prompt, tokens
    new_tokens: int  # max_new_tokens of every row
    temperature: float = 0.5  # selects the sampling mode (greedy / sample / filtered) of the programs
    share_prefill: bool = True

    def __post_init__(self) -> None:
        for name in ("rows", "candidates", "prompt_len", "new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"generation {name}: must be >= 1, got {getattr(self, name)}")


def abstract_sampler(model: ModelConfig, mesh: Mesh, shape: GenerationShape) -> Sampler:
    """A `Sampler` for `model` on `mesh` whose parameters are sharded ShapeDtypeStructs: its program
    builders and shardings are the real ones; it cannot run (there are no weights)."""
    graphdef, abstract = abstract_model(model)
    built: list[Sampler] = []

    def construct(state):  # traced: the sampler's layout conversion runs on abstract values
        built.append(Sampler((graphdef, state), None, mesh, max_prompt_len=shape.prompt_len, max_batch=shape.rows,
                             share_prefill=shape.share_prefill))
        return built[0].state

    with jax.set_mesh(mesh):
        decode_layout = jax.eval_shape(construct, abstract)
    sampler = built[0]
    sampler.state = with_shardings(decode_layout, sampler._state_shardings)
    return sampler


def with_shardings(tree, shardings):
    """ShapeDtypeStructs of `tree`'s leaves carrying the matching leaves of `shardings`."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def bytes_per_chip(tree) -> int:
    """Bytes one chip holds of a tree of sharded ShapeDtypeStructs (the largest shard of each leaf)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shard = leaf.sharding.shard_shape(leaf.shape)
        total += int(np.prod(shard, dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
    return total


def model_param_bytes(model: ModelConfig, mesh: Mesh) -> int:
    """Per-chip bytes of the model's parameters as loaded and trained (scanned layout, param dtype)."""
    _, abstract = abstract_model(model)
    return bytes_per_chip(with_shardings(abstract, state_shardings(abstract, mesh)))


def _rows_struct(sampler: Sampler, shape: tuple[int, ...], dtype) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sampler._rows_spec(shape))


def compile_generation(model: ModelConfig, topology: Topology, mesh_shape: tuple[int, int, int],
                       shape: GenerationShape) -> dict:
    """Compiles the prefill and the decode the runner uses for one batch of `shape`; their per-chip
    memory, and the per-chip bytes of the sampler's and the model's parameter copies."""
    mesh = mesh_over(topology.devices, mesh_shape)
    sampler = abstract_sampler(model, mesh, shape)
    params = SamplingParams(max_new_tokens=shape.new_tokens, temperature=shape.temperature)
    row = SampleRow([0] * shape.prompt_len, params, 0, 0)
    batch = batch_bucket(shape.rows, sampler.batch_multiple, sampler.max_batch)
    prompt_len, room = sampler.prompt_bucket([row]), sampler.new_bucket(row)
    cache_len, mode = prompt_len + room, sampling_mode([params])
    state_spec, knob_spec = sampler._state_spec(batch, cache_len)
    knob_shape = {name: (batch,) for name in KNOB_DTYPES} | {"stop_ids": (batch, sampler.max_stop_ids)}
    knobs = RowKnobs(**{name: jax.ShapeDtypeStruct(knob_shape[name], dtype, sharding=getattr(knob_spec, name))
                        for name, dtype in KNOB_DTYPES.items()})
    shared = shape.share_prefill and shape.candidates > 1
    prompts = batch_bucket(-(-shape.rows // shape.candidates), sampler.batch_multiple, sampler.max_batch) if shared else batch
    matrix = tuple(_rows_struct(sampler, (prompts, prompt_len), np.int32) for _ in range(3))  # tokens, segments, positions
    if shared:
        kind, key = "prefill_shared", (batch, prompts, prompt_len, cache_len, mode)
        inputs = (*matrix, _rows_struct(sampler, (batch,), np.int32), knobs)
    else:
        kind, key = "prefill", (batch, prompt_len, cache_len, mode)
        inputs = (*matrix, knobs)
    results = {}
    with jax.set_mesh(mesh), without_persistent_cache():
        start = time.perf_counter()
        prefill = getattr(sampler, f"_build_{kind}")(*key)
        compiled = prefill.lower(sampler.state, *inputs).compile()
        results["prefill"] = program_report(compiled, time.perf_counter() - start) | {"program": kind}
        decode_state = with_shardings(jax.eval_shape(prefill, sampler.state, *inputs)[0], state_spec)
        start = time.perf_counter()
        decode = sampler._build_decode(batch, cache_len, room, mode)
        compiled = decode.lower(sampler.state, decode_state, knobs, _rows_struct(sampler, (batch,), np.bool_)).compile()
        results["decode"] = program_report(compiled, time.perf_counter() - start) | {"program": "decode"}
    return {
        "mesh": dict(zip(MESH_AXES, mesh_shape)),
        "rows": batch, "distinct_prompts": prompts, "prompt_len": prompt_len, "new_tokens": room, "cache_len": cache_len,
        "mode": mode, "kv_cache_bytes_per_chip": bytes_per_chip(decode_state.cache),
        "sampler_param_bytes_per_chip": bytes_per_chip(sampler.state),
        "model_param_bytes_per_chip": model_param_bytes(model, mesh),
        **results,
    }  # fmt: skip


def generation_peak(generation: dict) -> int:
    """Per-chip peak of the generation phase: the larger program (the sampler holds the one copy)."""
    return max(generation["prefill"]["bytes_per_chip"], generation["decode"]["bytes_per_chip"])


def largest_fitting_generation(model: ModelConfig, topology: Topology, mesh_shape: tuple[int, int, int],
                               shape: GenerationShape, log=print) -> tuple[dict, list[dict]]:
    """Compiles `shape`, halving its rows while the generation phase does not fit HBM; (the largest
    that fits, or the smallest tried when none does; every attempt)."""
    hbm = topology.generation.hbm_bytes
    multiple = mesh_shape[0] * mesh_shape[1]
    attempts = []
    while True:
        result = compile_generation(model, topology, mesh_shape, shape)
        result["generation_peak_bytes_per_chip"] = generation_peak(result)
        result["fits"] = result["generation_peak_bytes_per_chip"] <= hbm
        attempts.append(result)
        log(f"aot: {topology.name} generation {result['rows']} rows x ({result['prompt_len']} + {result['new_tokens']}): "
            f"{result['generation_peak_bytes_per_chip'] / GIB:.1f} GiB per chip "
            f"({'fits' if result['fits'] else 'too big'})")
        if result["fits"] or shape.rows <= multiple:
            return result, attempts
        shape = dataclasses.replace(shape, rows=max(shape.rows // 2, multiple))


def round_phases(train: dict, generation: dict, hbm: int) -> dict:
    """The per-chip peak of each phase of an RLAO round (module doc) and whether it fits `hbm` bytes."""
    merged = generation["model_param_bytes_per_chip"] if train["mode"] == "lora" else 0
    phases = {
        "generation": generation_peak(generation),
        "training": train["bytes_per_chip"],
        "hand_over": train["memory_per_chip"]["arguments"] + merged + generation["sampler_param_bytes_per_chip"],
    }
    return {name: {"peak_bytes_per_chip": peak, "fits": peak <= hbm} for name, peak in phases.items()}


def plan_round(model: ModelConfig, topology: Topology, generation: GenerationShape, log=print, **train) -> dict:
    """The whole RLAO round for `topology`: the train step (`plan_and_compile` with `train`'s keyword
    arguments), then on the train step's mesh the sampler's prefill and decode for `generation`
    (rows halved until the phase fits), and each phase's peak. The report is the train step's, with
    `generation`, `generation_attempts`, `phases` and `fits` (every phase)."""
    from w4s_jax.rlao.aot import plan_and_compile

    report = plan_and_compile(model, topology, log=log, **train)
    mesh_shape = tuple(report["mesh"][axis] for axis in MESH_AXES)
    chosen, attempts = largest_fitting_generation(model, topology, mesh_shape, generation, log=log)
    phases = round_phases(report, chosen, topology.generation.hbm_bytes)
    return report | {
        "train_fits": report["fits"],
        "generation": chosen,
        "generation_attempts": [{k: a[k] for k in ("rows", "generation_peak_bytes_per_chip", "fits")} for a in attempts],
        "phases": phases,
        "fits": all(phase["fits"] for phase in phases.values()),
    }
