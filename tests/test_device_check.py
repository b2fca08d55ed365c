"""The accelerator check's driver runs here with tiny shapes on CPU (`--cpu-smoke`), and both it and
`device_check.sh` refuse a machine without an accelerator with a clear message."""

import json
import math
import os
import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The child sees one CPU device, as a one-GPU machine has one device.
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}


def test_cpu_smoke_runs_every_part(tmp_path):
    out = tmp_path / "device_check.json"
    done = subprocess.run([sys.executable, "benchmarks/device_check.py", "--cpu-smoke", "--out", str(out)],
                          cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["smoke"] and result["platform"] == "cpu" and result["model"] == "tiny"
    assert result["measured_bf16_peak_flops"] > 0 and result["measured_bandwidth_bytes_per_s"] > 0
    assert result["forward"]["batch"] == 2 and result["forward"]["mfu"] > 0
    assert [d["batch"] for d in result["decode"]] == [1, 16]
    for decode in result["decode"]:
        assert decode["ms_per_step"] > 0 and decode["fraction_of_bandwidth_bound"] > 0
        assert decode["cache_slots"] == 32 + 16  # prompt bucket + the smallest new-token bucket
    # batch 16 reads 16 caches per step, batch 1 one: the bound grows by exactly 15 caches
    one, sixteen = result["decode"]
    assert sixteen["kv_bytes_per_step"] == 16 * one["kv_bytes_per_step"]
    assert result["compiled_sampler_programs"] == 4  # prefill and decode per batch bucket
    train = result["train"]
    assert train["rows"] == 2 and train["tokens"] == 64 and math.isfinite(train["loss"]) and train["mfu"] > 0
    for part in ("forward", "decode batch 1", "decode batch 16", "RLAO train step"):
        assert f"| {part} |" in done.stdout


def test_without_an_accelerator_the_check_says_so(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/device_check.py"], cwd=REPO_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "no accelerator" in done.stderr and "--cpu-smoke" in done.stderr
    script = subprocess.run(["bash", "benchmarks/device_check.sh", str(tmp_path / "out")], cwd=REPO_ROOT,
                            env=ENV | {"PYTHON": sys.executable}, capture_output=True, text=True, timeout=120)
    assert script.returncode != 0 and "no GPU" in script.stderr
    assert not (tmp_path / "out" / "tests.log").exists()  # it stopped before running anything
