"""`w4s-jax aot`: the train step compiled for TPU topologies on this CPU host (libtpu), tiny preset."""

import json
import pathlib
import subprocess
import sys

import pytest

from w4s_jax.config.errors import ConfigError
from w4s_jax.models import get_preset
from w4s_jax.rlao.aot import GIB, plan_and_compile, tpu_topology
from w4s_jax.rlao.settings import LoraConfig

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_cli_writes_the_report(tmp_path):
    out = tmp_path / "OUT.json"
    command = [
        sys.executable, "-m", "w4s_jax.cli.main", "aot", "--config=configs/aot.py", "--config.model.preset=tiny",
        "--config.topology=v5p-8", "--config.seq_len=256", f"--config.output={out}", "--config.max_rows_per_group=1",
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
