"""`w4s-jax aot`: the train step and the sampler's programs compiled for TPU topologies on this CPU
host (libtpu), tiny preset."""

import json
import pathlib
import subprocess
import sys

import jax
import pytest
from flax import nnx

from w4s_jax.config_errors import ConfigError
from w4s_jax.models import get_preset
from w4s_jax.models.decoder import Decoder
from w4s_jax.rlao.aot import GIB, plan_and_compile, tpu_topology
from w4s_jax.rlao.aot_sampling import (
    GenerationShape,
    compile_generation,
    largest_fitting_generation,
    round_phases,
)
from w4s_jax.rlao.settings import LoraConfig

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_cli_writes_the_report(tmp_path):
    out = tmp_path / "OUT.json"
    command = [
        sys.executable, "-m", "w4s_jax.cli.main", "aot", "--config=configs/aot.py", "--config.model.preset=tiny",
        "--config.topology=v5p-8", "--config.seq_len=256", f"--config.output={out}", "--config.max_rows_per_group=1",
        "--config.generation.rows=8", "--config.generation.prompt_len=128", "--config.generation.new_tokens=32",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["topology"] == "v5p-8" and report["chips"] == 4 and report["device_kind"].startswith("TPU v5")
    assert report["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1} and report["micro_batch"] == 4
    memory = report["memory_per_chip"]
    assert report["bytes_per_chip"] == memory["arguments"] + memory["outputs"] + memory["temporaries"] - memory["aliased"]
    assert memory["aliased"] > 0  # the donated train state is reused for the new one
    assert report["hbm_bytes_per_chip"] == 95 * GIB and report["fits"]
    # Two layers: XLA's count (loop bodies once, remat recompute included) is near the model's.
    assert 0.3 < report["xla_flops_per_chip"] * report["chips"] / report["flops_per_step"] < 3
    assert "aot: tiny (full) on v5p-8" in done.stdout
    # The round: the sampler's programs on the train step's mesh, each phase's peak beside the step's.
    generation, phases = report["generation"], report["phases"]
    assert generation["mesh"] == report["mesh"] and generation["rows"] == 8 and generation["cache_len"] == 128 + 32
    assert generation["prefill"]["program"] == "prefill_shared" and generation["distinct_prompts"] == 4
    # One model copy: the sampler's while generating, the trainer's while training (rlao/rounds.py).
    assert phases["training"]["peak_bytes_per_chip"] == report["bytes_per_chip"]
    assert phases["generation"]["peak_bytes_per_chip"] == max(
        generation["prefill"]["bytes_per_chip"], generation["decode"]["bytes_per_chip"])
    assert phases["hand_over"]["peak_bytes_per_chip"] == memory["arguments"] + generation["sampler_param_bytes_per_chip"]
    assert report["fits"] and "aot: generation 8 rows x (128 + 32)" in done.stdout


def test_sampler_programs_compile_for_v5e_8():
    """The sampler's own prefill (shared by a turn's candidates, or one per row) and decode, lowered
    with abstract sharded inputs for a v5e-8 slice: the cache is the analytic size, decode reuses it."""
    model = get_preset("tiny").replace(dtype="bfloat16", param_dtype="bfloat16")
    topology = tpu_topology("v5e-8")
    report = compile_generation(model, topology, (1, 8, 1), GenerationShape(rows=16, candidates=5, prompt_len=200,
                                                                            new_tokens=50))
    # 16 rows of ceil(16 / 5) = 4 prompts (padded to 8, the fsdp axis); a 200-slot prompt + 64 new slots.
    assert (report["rows"], report["distinct_prompts"], report["prompt_len"], report["new_tokens"]) == (16, 8, 200, 64)
    assert report["prefill"]["program"] == "prefill_shared" and report["mode"] == "sample"
    rows_per_chip, slots = 16 // 8, 264
    kv = model.num_layers * 2 * rows_per_chip * model.num_kv_heads * slots * model.head_dim * 2
    assert report["kv_cache_bytes_per_chip"] == kv + rows_per_chip * slots * 4 + 4  # + segment ids, end
    decode = report["decode"]["memory_per_chip"]
    assert decode["aliased"] >= report["kv_cache_bytes_per_chip"]  # the donated state's cache is reused
    assert decode["arguments"] >= report["kv_cache_bytes_per_chip"] + report["sampler_param_bytes_per_chip"]
    params = sum(x.size for x in jax.tree.leaves(nnx.state(nnx.eval_shape(lambda: Decoder(model, rngs=nnx.Rngs(0))))))
    assert params * 2 / 8 <= report["sampler_param_bytes_per_chip"] < params * 2 / 4  # bf16, sharded over 8 chips
    one_per_row = compile_generation(model, topology, (1, 4, 2), GenerationShape(rows=16, candidates=1, prompt_len=200,
                                                                                 new_tokens=50))
    assert one_per_row["prefill"]["program"] == "prefill" and one_per_row["distinct_prompts"] == 16


def test_generation_rows_halve_until_the_phase_fits(monkeypatch):
    """The generation search halves the rows (not below the data-parallel groups) until the phase's
    peak (the larger program) fits; each phase's peak is its own, the hand-over's a bound."""
    import w4s_jax.rlao.aot_sampling as aot_sampling

    tried = []

    def fake_compile(model, topology, mesh_shape, shape):
        tried.append(shape.rows)
        program = {"bytes_per_chip": shape.rows * GIB // 2}  # decode: half a GiB per row per chip
        return {"rows": shape.rows, "prompt_len": 4096, "new_tokens": 2048, "model_param_bytes_per_chip": 4 * GIB, "sampler_param_bytes_per_chip": 2 * GIB,
                "prefill": {"bytes_per_chip": GIB}, "decode": program}

    monkeypatch.setattr(aot_sampling, "compile_generation", fake_compile)
    v5e = tpu_topology("v5e-8")  # 16 GiB: rows / 2 <= 16 -> 32 rows; halving from 128 gives 32
    chosen, attempts = largest_fitting_generation(get_preset("tiny"), v5e, (1, 8, 1),
                                                  GenerationShape(128, 5, 4096, 2048), log=lambda _: None)
    assert tried == [128, 64, 32] and chosen["rows"] == 32 and chosen["fits"] and [a["fits"] for a in attempts] == [False, False, True]
    tried.clear()
    chosen, _ = largest_fitting_generation(get_preset("tiny"), v5e, (1, 8, 1), GenerationShape(200, 5, 4096, 2048),
                                           log=lambda _: None)
    assert tried == [200, 100, 50, 25] and chosen["fits"]  # 25 rows: 12.5 GiB
    train = {"bytes_per_chip": 9 * GIB, "mode": "full", "memory_per_chip": {"arguments": 3 * GIB}}
    phases = round_phases(train, chosen, v5e.generation.hbm_bytes)
    assert phases == {"generation": {"peak_bytes_per_chip": 25 * GIB // 2, "fits": True},
                      "training": {"peak_bytes_per_chip": 9 * GIB, "fits": True},
                      "hand_over": {"peak_bytes_per_chip": 5 * GIB, "fits": True}}  # step arguments + new sampler copy
    lora = round_phases(train | {"mode": "lora"}, chosen, v5e.generation.hbm_bytes)
    assert lora["hand_over"]["peak_bytes_per_chip"] == 9 * GIB  # + the merged model
    assert lora["training"] == phases["training"] and lora["generation"] == phases["generation"]


def test_lora_on_v5e_with_a_given_mesh_and_micro_batch():
    model = get_preset("tiny").replace(dtype="bfloat16", param_dtype="bfloat16", remat="full")
    report = plan_and_compile(model, tpu_topology("v5litepod-8"), seq_len=128, micro_batch=8, mesh="1,4,2",
                              lora=LoraConfig(rank=4), log=lambda _: None)
    assert report["chips"] == 8 and report["hbm_bytes_per_chip"] == 16 * GIB
    assert report["mesh"] == {"data": 1, "fsdp": 4, "tensor": 2} and report["micro_batch"] == 8
    assert report["mode"] == "lora" and report["fits"] and len(report["attempts"]) == 1


def test_bad_topology_and_mesh_are_config_errors():
    with pytest.raises(ConfigError, match="topology"):
        tpu_topology("v5p-7")
    with pytest.raises(ConfigError, match="mesh"):
        plan_and_compile(get_preset("tiny"), tpu_topology("v5p-8"), seq_len=128, mesh="2,2,2")


def test_auto_search_extrapolates_to_the_largest_micro_batch(monkeypatch):
    """With a linear memory model (fixed + per row) the search compiles 1 and 2 rows per group, then
    the extrapolated largest count, stepping down while it does not fit; meshes go in order."""
    import w4s_jax.rlao.aot as aot

    calls = []
    row_gib = {1: 40, 2: 7}  # per row and tensor-parallel degree: tensor parallelism splits attention

    def fake_compile(request, topology):
        groups = request.mesh_shape[0] * request.mesh_shape[1]
        per_row = row_gib[request.mesh_shape[2]] * GIB
        calls.append((request.mesh_shape, request.micro_batch))
        return {"bytes_per_chip": 10 * GIB + per_row * request.micro_batch // groups, "memory_per_chip": {},
                "flops_per_chip": 1.0, "compile_s": 0.0}

    monkeypatch.setattr(aot, "compile_step", fake_compile)
    report = plan_and_compile(get_preset("tiny"), tpu_topology("v5e-8"), seq_len=128, log=lambda _: None)
    # (1,8,1): 50 GiB per chip > 16; (1,4,2) with 4 rows: 10 + 7 = 17 GiB > 16; (1,2,4): 2 rows, 17 GiB...
    # the tiny preset has 2 KV heads, so tensor stops at 2 and nothing fits: the report says so.
    assert calls == [((1, 8, 1), 8), ((1, 4, 2), 4)]
    assert not report["fits"] and report["micro_batch"] == 4 and report["mesh"] == {"data": 1, "fsdp": 4, "tensor": 2}
    calls.clear()
    report = plan_and_compile(get_preset("tiny"), tpu_topology("v5p-8"), seq_len=128, log=lambda _: None)
    # 10 + 40 k <= 95 -> k = 2 rows per chip; the extrapolation (2 + (95 - 90) // 40 = 2) stops there.
    assert calls == [((1, 4, 1), 4), ((1, 4, 1), 8)] and report["micro_batch"] == 8
    calls.clear()
    row_gib[1] = 10  # 20, 30 GiB for 1 and 2 rows -> 2 + (95 - 30) // 10 = 8 rows per chip = 90 GiB
    report = plan_and_compile(get_preset("tiny"), tpu_topology("v5p-8"), seq_len=128, log=lambda _: None)
    assert calls == [((1, 4, 1), 4), ((1, 4, 1), 8), ((1, 4, 1), 32)] and report["micro_batch"] == 32
